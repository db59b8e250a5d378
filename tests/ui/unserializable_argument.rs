use signal_slot::prelude::*;

#[derive(Clone)]
struct NotSerde;

#[derive(EventLoopObject)]
struct A {
    #[signal]
    value: Signal<(NotSerde,)>,
}

fn main() {}
