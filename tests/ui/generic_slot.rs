use signal_slot::prelude::*;

#[derive(EventLoopObject)]
struct A {}

#[slots]
impl A {
    fn on_any<T: Clone>(&mut self, value: T) {
        let _ = value;
    }
}

fn main() {}
