use signal_slot::prelude::*;

#[derive(EventLoopObject)]
struct A {
    #[signal(topic = "sensors/+/temperature")]
    value: Signal<(u32,)>,
}

fn main() {}
