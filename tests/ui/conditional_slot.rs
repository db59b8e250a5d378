use signal_slot::prelude::*;

#[derive(EventLoopObject, Default)]
struct Probe {}

#[slots]
impl Probe {
    #[cfg(debug_assertions)]
    fn debug_only(&mut self, _n: u32) {}
}

fn main() {}
