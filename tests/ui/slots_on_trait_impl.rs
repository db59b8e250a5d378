use signal_slot::prelude::*;

#[derive(EventLoopObject)]
struct A {}

trait Named {
    fn name(&self) -> String;
}

#[slots]
impl Named for A {
    fn name(&self) -> String {
        String::new()
    }
}

fn main() {}
