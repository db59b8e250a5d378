use signal_slot::prelude::*;

#[derive(EventLoopObject)]
struct A {
    #[signal(retained)]
    value: Signal<(u32,)>,
}

fn main() {}
