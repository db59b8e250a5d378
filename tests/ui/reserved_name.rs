use signal_slot::prelude::*;

#[derive(EventLoopObject)]
struct A {
    #[signal]
    destroyed: Signal<()>,
}

fn main() {}
