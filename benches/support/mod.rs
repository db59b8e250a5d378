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

/// The variants every group section has, in the order they alternate (a
/// section may add more after them): a plain connection to one receiver, a
/// group of one, a group of two, and two plain connections to two receivers
/// that the emitter uses in turn (one-of-two written by hand: what a group of
/// two replaces).
pub const GROUP_VARIANTS: [&str; 4] = [
    "plain_one_receiver",
    "group_of_one",
    "group_of_two",
    "plain_two_receivers_in_turn",
];

/// Per variant: rates (msgs/s end to end) and costs (the emitter's ns per
/// emit) of its rounds.
pub type GroupFigures = (Vec<Vec<f64>>, Vec<Vec<f64>>);

/// Drives a group section's rounds, its `variants` variants alternating
/// (round 0 warms up with variant 0 and is not counted). Per round: `connect(variant)`
/// makes the variant's connections (disconnected after the round), then
/// `cost_runs` runs of `cost_n` emits (the emitter's cost: they fit in the
/// queue) and one of `n` (the end-to-end rate: many queues' worth).
/// `run(k, variant)` makes one run and returns (emitter's ns per emit,
/// msgs/s end to end). Returns per variant the rates and the costs.
pub fn group_rounds(
    variants: usize,
    rounds: usize,
    (n, cost_n, cost_runs): (u64, u64, usize),
    mut connect: impl FnMut(usize) -> Vec<signal_slot::Connection>,
    mut run: impl FnMut(u64, usize) -> (f64, f64),
) -> GroupFigures {
    let mut rates = vec![Vec::new(); variants];
    let mut costs = vec![Vec::new(); variants];
    for round in 0..1 + variants * rounds {
        let variant = round % variants;
        let conns = connect(variant);
        for _ in 0..cost_runs {
            let (cost, _) = run(cost_n, variant);
            if round > 0 {
                costs[variant].push(cost);
            }
        }
        let k = if round == 0 { (n / 4).max(1) } else { n };
        let (_, rate) = run(k, variant);
        if round > 0 {
            rates[variant].push(rate);
        }
        for c in conns {
            c.disconnect().expect("disconnect");
        }
    }
    (rates, costs)
}

/// The figures of a group section (`prefix`, e.g. `group_u64_unpinned`) whose
/// variants are `names` ([`GROUP_VARIANTS`] first): per variant the median
/// rate and emit cost, the fastest run's cost, and the ratios to the plain
/// connection; for the group of two also to the two plain connections used
/// in turn. The cost runs are bimodal on small VMs (the receivers' reads
/// contending with the emitter's writes, or not): the fastest run of each
/// compares the code's own cost.
pub fn group_figures(prefix: &str, names: &[&str], (rates, costs): &GroupFigures) {
    let n = names.len();
    let (mut rate, mut cost, mut best) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        rate[i] = median(&mut rates[i].clone());
        cost[i] = median(&mut costs[i].clone());
        best[i] = costs[i].iter().copied().fold(f64::INFINITY, f64::min);
        let tag = format!("{prefix}_{}", names[i]);
        figure(&format!("{tag}_msgs_per_s"), format!("{:.0}", rate[i]));
        figure(&format!("{tag}_emit_ns"), format!("{:.1}", cost[i]));
        figure(&format!("{tag}_emit_ns_min"), format!("{:.1}", best[i]));
    }
    let ratio = |a: f64, b: f64| format!("{:.3}", a / b);
    let pairs = (1..n).map(|i| (i, 0, "plain")).chain([(2, 3, "in_turn")]);
    for (i, base, against) in pairs {
        let tag = format!("{prefix}_{}", names[i]);
        figure(
            &format!("{tag}_emit_ratio_vs_{against}"),
            ratio(cost[i], cost[base]),
        );
        figure(
            &format!("{tag}_emit_min_ratio_vs_{against}"),
            ratio(best[i], best[base]),
        );
        figure(
            &format!("{tag}_rate_ratio_vs_{against}"),
            ratio(rate[i], rate[base]),
        );
    }
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
