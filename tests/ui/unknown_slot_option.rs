use signal_slot::prelude::*;

#[derive(EventLoopObject)]
struct A {}

#[slots]
impl A {
    #[slot(hidden)]
    fn on_value(&mut self, value: u32) {
        let _ = value;
    }
}

fn main() {}
