use signal_slot::prelude::*;

#[derive(EventLoopObject)]
struct Generic<T: Send + 'static> {
    value: T,
}

fn main() {}
