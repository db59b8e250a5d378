use signal_slot::prelude::*;

#[derive(EventLoopObject)]
struct A {}

#[slots]
impl A {
    fn consume(self, n: u32) {
        let _ = n;
    }
}

fn main() {}
