use signal_slot::prelude::*;

#[derive(EventLoopObject)]
struct A {}

#[slots]
impl A {
    fn on_text(&mut self, text: &str) {
        let _ = text;
    }
}

fn main() {}
