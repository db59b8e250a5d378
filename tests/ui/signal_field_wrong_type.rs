use signal_slot::prelude::*;

#[derive(EventLoopObject)]
struct A {
    #[signal]
    count: u32,
}

fn main() {}
