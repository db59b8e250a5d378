//! Helpers every bench binary uses: ids, printing one figure a line, simple
//! statistics. Each bench uses a part of them.
#![allow(dead_code)]

use crossbeam_channel::Sender;
use signal_slot::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A process-unique object or loop id.
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

pub fn stop_and_join(t: &EventLoopThread) {
    t.stop().expect("stop loop thread");
    t.join().expect("join loop thread");
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `p`-th percentile (0..=100) of sorted samples.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[i]
}

/// The 1-minute load average, to print next to the figures it colours.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// One figure: `name value`.
pub fn figure(name: &str, value: impl std::fmt::Display) {
    println!("{name} {value}");
}

/// Whether a target of the issue was met.
pub fn target(what: &str, met: bool) {
    println!("# target {what}: {}", if met { "met" } else { "MISSED" });
}

/// Sums what it receives; `report` sends (calls, sum) so a bench can check
/// that nothing was lost.
#[derive(EventLoopObject)]
pub struct Accumulator {
    pub acc: u64,
    pub calls: u64,
    pub report: Sender<(u64, u64)>,
}

#[slots]
impl Accumulator {
    pub fn on_value(&mut self, v: u64) {
        self.acc = self.acc.wrapping_add(v);
        self.calls += 1;
    }

    pub fn report(&mut self) {
        let _ = self.report.send((self.calls, self.acc));
    }
}
