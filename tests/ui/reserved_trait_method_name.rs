use signal_slot::prelude::*;

#[derive(EventLoopObject, Default)]
struct Copier {}

#[slots]
impl Copier {
    // `h.clone()` is the handle's own (`Clone`): this slot would be hidden.
    fn clone(&mut self, _n: u32) {}
}

fn main() {}
