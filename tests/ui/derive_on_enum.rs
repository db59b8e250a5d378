use signal_slot::prelude::*;

#[derive(EventLoopObject)]
enum NotAStruct {
    One,
}

fn main() {}
