//! The seed's README example: object A on the main loop, object B in a child
//! process (its loop runs there); A and B answer each other
//! with a one-second pause until a single-shot 10 s timer stops both loops.
//!
//! It exits 0 and leaves no process and no shared-memory file behind.
//!
//! Run: `cargo run --example ping_pong`

use signal_slot::prelude::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `HH:MM:SS.mmm` (UTC), so the output shows the one-second rhythm.
fn stamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let s = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        now.subsec_millis()
    )
}

#[derive(EventLoopObject, Default)]
struct A {
    #[signal]
    signal_a: Signal<(String, i64)>,
}

#[slots]
impl A {
    fn on_signal_b(&mut self, msg: String) {
        println!(
            "[{}] {} received signal_b: {msg}",
            stamp(),
            self.object_id()
        );
        std::thread::sleep(Duration::from_secs(1));
        self.signal_a.emit(("hello from A".into(), 42));
    }
}

#[derive(EventLoopObject, Default)]
struct B {
    #[signal]
    signal_b: Signal<(String,)>,
}

#[slots]
impl B {
    fn on_signal_a(&mut self, msg: String, other: i64) {
        println!(
            "[{}] {} received signal_a: {msg} {other}",
            stamp(),
            self.object_id()
        );
        std::thread::sleep(Duration::from_secs(1));
        self.signal_b.emit(("hello from B".into(),));
    }
}

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
