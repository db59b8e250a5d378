//! Objects and helpers shared by the integration tests.
#![allow(dead_code)]

use crossbeam_channel::{Receiver, Sender};
use signal_slot::prelude::*;
use std::time::Duration;

/// Long enough for a loaded 2-core machine; tests wait on events, not on time.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A unique id per test so parallel tests in one process never collide.
pub fn uid(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Emits on demand; records nothing.
#[derive(EventLoopObject, Default)]
pub struct Source {
    #[signal]
    pub value: Signal<(u64,)>,
    #[signal]
    pub text: Signal<(String,)>,
    #[signal]
    pub pair: Signal<(String, i64)>,
    #[signal]
    pub tick: Signal<()>,
}

#[slots]
impl Source {
    /// Emits `value` n times: 0..n.
    pub fn emit_values(&mut self, n: u64) {
        for i in 0..n {
            self.value.emit((i,));
        }
    }

    pub fn emit_text(&mut self, s: String) {
        self.text.emit((s,));
    }
}

/// Records what its slots receive, as strings, into a channel.
#[derive(EventLoopObject)]
pub struct Sink {
    pub tx: Sender<String>,
}

impl Sink {
    pub fn new() -> (Self, Receiver<String>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Sink { tx }, rx)
    }
}

#[slots]
impl Sink {
    pub fn on_value(&mut self, v: u64) {
        let _ = self.tx.send(format!("value {v}"));
    }

    pub fn on_text(&mut self, s: String) {
        let _ = self.tx.send(format!("text {s}"));
    }

    pub fn on_pair(&mut self, s: String, n: i64) {
        let _ = self.tx.send(format!("pair {s} {n}"));
    }

    pub fn on_tick(&mut self) {
        let _ = self.tx.send("tick".to_string());
    }

    pub fn on_text_meta(&mut self, s: String, meta: &Meta) {
        let _ = self.tx.send(format!(
            "meta {s} sender={} signal={} topic={}",
            meta.sender(),
            meta.signal(),
            meta.topic()
        ));
    }

    pub fn on_destroyed(&mut self, id: ObjectId) {
        let _ = self.tx.send(format!("destroyed {id}"));
    }

    pub fn whoami(&mut self) {
        let _ = self.tx.send(format!("I am {}", self.object_id()));
    }

    pub fn panic_on(&mut self, v: u64) {
        if v == 13 {
            panic!("unlucky {v}");
        }
        let _ = self.tx.send(format!("value {v}"));
    }
}

/// Receives `n` messages or fails the test with what it got.
pub fn take(rx: &Receiver<String>, n: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match rx.recv_timeout(DEADLINE) {
            Ok(m) => got.push(m),
            Err(_) => panic!("expected {n} messages within {DEADLINE:?}, got {got:?}"),
        }
    }
    got
}

/// Waits until `cond` holds, polling a thread-safe state (stats, flags).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::yield_now();
    }
}

/// A started thread loop.
pub fn thread_loop(name: &str) -> EventLoopThread {
    let t = EventLoopThread::new(uid(name));
    t.start().expect("start");
    t
}

/// A started thread loop with a `Source` and a `Sink` on it.
pub struct Rig {
    pub lp: EventLoopThread,
    pub src: Handle<Source>,
    pub sink: Handle<Sink>,
    pub rx: Receiver<String>,
}

pub fn rig(name: &str) -> Rig {
    let lp = thread_loop(name);
    let src = lp
        .event_loop()
        .add(uid("source"), Source::default())
        .expect("add source");
    let (sink, rx) = Sink::new();
    let sink = lp.event_loop().add(uid("sink"), sink).expect("add sink");
    Rig { lp, src, sink, rx }
}
