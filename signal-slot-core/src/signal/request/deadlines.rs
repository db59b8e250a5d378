//! The deadline thread of the slot-delivered form (one per process, started
//! on first use, again in a forked child): ends requests at their deadline
//! and notices receivers whose process died.

use super::{Collector, LIVENESS_PERIOD};
use crate::sync::{lock, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Holds the collector of a slot-delivered request: nothing else does
/// while its receivers are all in other processes.
struct Watched {
    deadline: Instant,
    collector: Arc<Collector>,
}

static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());
/// The thread and the process that started it.
static THREAD: Mutex<Option<(u32, std::thread::Thread)>> = Mutex::new(None);

pub(super) fn watch(c: &Arc<Collector>, deadline: Instant) {
    let mut w = lock(&WATCHED);
    // Requests all answered before their deadline leave here.
    w.retain(|x| x.collector.remaining.load(Ordering::Acquire) != 0);
    w.push(Watched {
        deadline,
        collector: c.clone(),
    });
    drop(w);
    if let Some(t) = thread() {
        t.unpark();
    }
}

fn thread() -> Option<std::thread::Thread> {
    let pid = std::process::id();
    let mut t = lock(&THREAD);
    if let Some((p, handle)) = &*t {
        if *p == pid {
            return Some(handle.clone());
        }
    }
    match std::thread::Builder::new()
        .name("signal-slot-requests".into())
        .spawn(run)
    {
        Ok(h) => {
            let handle = h.thread().clone();
            *t = Some((pid, handle.clone()));
            Some(handle)
        }
        Err(e) => {
            log::error!("could not start the request deadline thread: {e}");
            None
        }
    }
}

fn run() {
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        let mut remote = Vec::new();
        let next = {
            let mut w = lock(&WATCHED);
            w.retain(|x| {
                let c = &x.collector;
                if c.is_finished() {
                    false
                } else if x.deadline <= now {
                    due.push(c.clone());
                    false
                } else {
                    if c.remote {
                        remote.push(c.clone());
                    }
                    true
                }
            });
            w.iter().map(|x| x.deadline).min()
        };
        for c in due {
            let _ = c.finish();
        }
        let poll = !remote.is_empty();
        for c in remote {
            c.check_processes();
        }
        let mut nap = next.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        if poll {
            nap = nap.min(LIVENESS_PERIOD);
        }
        std::thread::park_timeout(nap);
    }
}
