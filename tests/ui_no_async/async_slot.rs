use signal_slot::prelude::*;

#[derive(EventLoopObject)]
struct A {}

#[slots]
impl A {
    async fn on_value(&mut self, value: u32) {
        let _ = value;
    }
}

fn main() {}
