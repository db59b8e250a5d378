//! The seed's ping-pong objects, shared by the `ping_pong` examples: A and B answer
//! each other with a one-second pause, printing timestamped lines.

use signal_slot::prelude::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `HH:MM:SS.mmm` (UTC), so the output shows the one-second rhythm.
pub fn stamp() -> String {
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
pub struct A {
    #[signal]
    pub signal_a: Signal<(String, i64)>,
}

#[slots]
impl A {
    pub fn on_signal_b(&mut self, msg: String) {
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
pub struct B {
    #[signal]
    pub signal_b: Signal<(String,)>,
}

#[slots]
impl B {
    pub fn on_signal_a(&mut self, msg: String, other: i64) {
        println!(
            "[{}] {} received signal_a: {msg} {other}",
            stamp(),
            self.object_id()
        );
        std::thread::sleep(Duration::from_secs(1));
        self.signal_b.emit(("hello from B".into(),));
    }
}
