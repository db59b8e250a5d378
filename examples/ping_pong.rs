//! The seed's README example: object A on the main loop, object B in a child
//! process (its loop runs there); A and B answer each other
//! with a one-second pause until a single-shot 10 s timer stops both loops.
//!
//! It exits 0 and leaves no process and no shared-memory file behind.
//!
//! Run: `cargo run --example ping_pong`

use signal_slot::prelude::*;
use std::time::Duration;

#[path = "shared/ping_pong_objects.rs"]
mod objects;
use objects::{stamp, A, B};

fn main() -> signal_slot::Result<()> {
    let main_loop = EventLoop::new("main_loop");
    let a = main_loop.add("object: a", A::default())?;

    let bg = EventLoopProcess::new("background_process")?;
    let b = bg.event_loop().add("object: b", B::default())?;

    a.signal_a().connect(&b.on_signal_a())?; // checked at compile time
    b.signal_b().connect(&a.on_signal_b())?;
    a.signal_a().emit(("Initial hello from A".into(), 1337));

    let stop = Timer::single_shot(&main_loop, Duration::from_secs(10))?;
    stop.timeout().connect(&main_loop.stop_slot())?;
    stop.timeout().connect(&bg.stop_slot())?;

    bg.start()?;
    main_loop.exec()?;
    let status = bg.join()?;
    assert!(status.success(), "background process: {status}");
    println!("[{}] Done!", stamp());
    Ok(())
}
