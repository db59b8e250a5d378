//! Topic-subscription performance figures of signal-slot: what many pattern
//! subscriptions cost an emission and a new topic, and how fast a late
//! subscriber is initialized from retained values held by another process.
//!
//! Run: `cargo bench --bench topics` (about 30-60 s), or a smoke run with
//! `BENCH_QUICK=1 cargo bench --bench topics` / `cargo bench --bench topics -- --quick`.
//!
//! Output: one figure per line, `name value`, plus `placement ...` lines that say
//! where the threads of the figures below them ran, and `#` comment lines.
//!
//! 1. `emit_seen_topic_*`: an `Emitter` on loop thread L emits M `(u64,)` values
//!    in a tight loop inside one of its slots; its signal (topic
//!    `seen/<id>/value`) reaches an `Accumulator` slot on L through ONE matching
//!    subscription (`seen/+/value`), so each emit is an inline call. ns per emit,
//!    median of several rounds, (a) with only that subscription, (b) with 10,000
//!    more that match nothing, on another subscriber object: 2,500
//!    `other/<i>/+/x`, 2,500 `x<i>/#`, 5,000 `re:nomatch<i>/.*`. Target: ratio
//!    (b)/(a) <= 1.5. `subscribe_10k_seconds`: the 10,000 `subscribe` calls.
//! 2. `first_emit_new_topic_*`: with the same patterns present (plus the one that
//!    matches), a slot on L adds a new object (unique id, one signal on a new
//!    topic `seen/<id>/value`) with `EventLoop::add` (the topic is matched against
//!    the index once there) and emits it once (inline to the accumulator):
//!    median/p90/max µs of add + first emit over several new objects, and the same
//!    with only the one matching pattern. No target; it must not grow with the
//!    number of patterns like a linear scan. `first_add_after_10k_subscribe_ms`:
//!    the first add after the 10,000 subscriptions, which also builds the index's
//!    `RegexSet` (untimed otherwise).
//! 3. `initialize_<N>k_retained_ms`: N (100,000; 10,000 quick) objects, each with
//!    one `#[signal(topic = "state/{id}", retain)]`, on the loop of an
//!    `EventLoopProcess`, created in the parent before `start()`. After the fork a
//!    slot in the child emits each of them once (so the retained values are set
//!    in the child), and reports. Then a `Collector` slot on a parent loop thread
//!    subscribes to `state/#` with `SubscribeOptions::new().initialize()`: time
//!    from calling `subscribe_with` until the collector has received all N
//!    replays (each value checked by sum). Target: < 100 ms (for N = 100,000).
//!    Also the time `subscribe_with` took to return, until the first replay
//!    arrived, from the first replay to the last (the stream alone, without
//!    the walks before it), to create the objects, and what a subscription to
//!    `nomatch/#` (no match, no replay) takes to return with the N topics
//!    present.
//!
//! Every section checks its counts (slot calls, values, no call on the
//! non-matching subscriptions) and that no loop dropped anything.

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use signal_slot::prelude::*;
use signal_slot::SubscribeOptions;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;
use support::{figure, loadavg, median, percentile, stop_and_join, target, unique_id, Accumulator};

/// How long the bench waits for any one reply before giving up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// Non-matching subscriptions of sections 1 and 2.
const EXTRA_PATTERNS: usize = 10_000;

/// Sizes of one run.
struct Config {
    quick: bool,
    /// Emits per direct-emit round.
    emit_m: u64,
    emit_rounds: usize,
    /// New objects per new-topic measurement.
    new_topics: usize,
    /// Retained signals in the child process.
    retained_n: u64,
}

impl Config {
    fn from_env() -> Self {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Config {
                quick,
                emit_m: 2_000_000,
                emit_rounds: 3,
                new_topics: 50,
                retained_n: 10_000,
            }
        } else {
            Config {
                quick,
                emit_m: 10_000_000,
                emit_rounds: 7,
                new_topics: 200,
                retained_n: 100_000,
            }
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------
// 1, 2. Emits and new topics with many non-matching subscriptions

#[derive(EventLoopObject)]
struct Emitter {
    #[signal(topic = "seen/{id}/value")]
    out: Signal<(u64,)>,
    /// ns per emit of each round.
    result: Sender<f64>,
}

#[slots]
impl Emitter {
    fn run(&mut self, m: u64) {
        let t = Instant::now();
        for i in 0..m {
            self.out.emit((black_box(i),));
        }
        let _ = self.result.send(t.elapsed().as_nanos() as f64 / m as f64);
    }
}

/// Holds the 10,000 subscriptions that match nothing; counts calls (must be 0).
#[derive(EventLoopObject)]
struct Bystander {
    calls: u64,
    report: Sender<u64>,
}

#[slots]
impl Bystander {
    fn on_value(&mut self, _v: u64) {
        self.calls += 1;
    }

    fn report(&mut self) {
        let _ = self.report.send(self.calls);
    }
}

/// An object on a topic nobody has seen yet.
#[derive(EventLoopObject, Default)]
struct Fresh {
    #[signal(topic = "seen/{id}/value")]
    out: Signal<(u64,)>,
}

/// Adds `Fresh` objects from a slot on their own loop, so that their first emit
/// is an inline call.
#[derive(EventLoopObject)]
struct Spawner {
    lp: EventLoop,
    /// (ns of `add`, ns of the first emit) per new object.
    result: Sender<Vec<(u64, u64)>>,
}

#[slots]
impl Spawner {
    fn spawn(&mut self, n: u64, value: u64) {
        let mut times = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let id = unique_id("fresh");
            let t0 = Instant::now();
            let h = self
                .lp
                .add(&id, Fresh::default())
                .unwrap_or_else(|e| panic!("add {id}: {e}"));
            let t1 = Instant::now();
            h.out().emit((value,));
            let t2 = Instant::now();
            times.push((
                t1.duration_since(t0).as_nanos() as u64,
                t2.duration_since(t1).as_nanos() as u64,
            ));
        }
        let _ = self.result.send(times);
    }
}

/// Emit rounds (ns per emit each); the first, untimed, is a warm-up.
fn emit_rounds(cfg: &Config, emitter: &Handle<Emitter>, rx: &Receiver<f64>) -> Vec<f64> {
    let mut rounds = Vec::new();
    for r in 0..=cfg.emit_rounds {
        let m = if r == 0 { cfg.emit_m / 10 } else { cfg.emit_m };
        emitter.run().invoke((m,)).expect("invoke run");
        let ns = rx.recv_timeout(REPLY_TIMEOUT).expect("emit round");
        if r > 0 {
            rounds.push(ns);
        }
    }
    rounds
}

/// Adds `n` new objects and emits each once: (add + emit µs) sorted, and the
/// medians of add and of emit alone in µs.
fn new_topics(
    n: usize,
    value: u64,
    spawner: &Handle<Spawner>,
    rx: &Receiver<Vec<(u64, u64)>>,
) -> (Vec<f64>, f64, f64) {
    spawner
        .spawn()
        .invoke((n as u64, value))
        .expect("invoke spawn");
    let times = rx.recv_timeout(REPLY_TIMEOUT).expect("spawn result");
    assert_eq!(times.len(), n);
    let mut total: Vec<f64> = times.iter().map(|&(a, e)| (a + e) as f64 / 1e3).collect();
    total.sort_by(f64::total_cmp);
    let mut add: Vec<f64> = times.iter().map(|&(a, _)| a as f64 / 1e3).collect();
    let mut emit: Vec<f64> = times.iter().map(|&(_, e)| e as f64 / 1e3).collect();
    (total, median(&mut add), median(&mut emit))
}

fn print_new_topics(tag: &str, total: &[f64], add: f64, emit: f64) {
    figure(&format!("{tag}_objects"), total.len());
    figure(
        &format!("{tag}_median_us"),
        format!("{:.2}", percentile(total, 50.0)),
    );
    figure(
        &format!("{tag}_p90_us"),
        format!("{:.2}", percentile(total, 90.0)),
    );
    figure(
        &format!("{tag}_max_us"),
        format!("{:.2}", percentile(total, 100.0)),
    );
    figure(&format!("{tag}_add_median_us"), format!("{add:.2}"));
    figure(&format!("{tag}_emit_median_us"), format!("{emit:.3}"));
}

/// The calls the accumulator must have seen, and the sum of their values.
#[derive(Default)]
struct Expected {
    calls: u64,
    sum: u64,
}

impl Expected {
    /// `rounds` emit rounds of the values `0..m`.
    fn rounds(&mut self, m: u64, rounds: u64) {
        self.calls += m * rounds;
        self.sum = self
            .sum
            .wrapping_add((m * (m - 1) / 2).wrapping_mul(rounds));
    }
}

fn bench_patterns(cfg: &Config) {
    println!("placement unpinned");
    let lt = EventLoopThread::new(unique_id("topics"));
    let lp = lt.event_loop().clone();
    let (result_tx, result_rx) = bounded(1);
    let (acc_tx, acc_rx) = bounded(1);
    let (by_tx, by_rx) = bounded(1);
    let (spawn_tx, spawn_rx) = bounded(1);
    let acc = lp
        .add(
            unique_id("accumulator"),
            Accumulator {
                acc: 0,
                calls: 0,
                report: acc_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add accumulator: {e}"));
    let emitter = lp
        .add(
            unique_id("emitter"),
            Emitter {
                out: Signal::new(),
                result: result_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add emitter: {e}"));
    let bystander = lp
        .add(
            unique_id("bystander"),
            Bystander {
                calls: 0,
                report: by_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add bystander: {e}"));
    let spawner = lp
        .add(
            unique_id("spawner"),
            Spawner {
                lp: lp.clone(),
                result: spawn_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add spawner: {e}"));
    let seen = acc.on_value().subscribe("seen/+/value").expect("subscribe");
    assert_eq!(seen.local_matches(), 1, "the emitter's topic matches");
    assert_eq!(emitter.out().receiver_count(), 1);
    lt.start().expect("start loop");

    // The values the accumulator must have been called with.
    let mut expected = Expected::default();
    let warm = cfg.emit_m / 10;
    let rounds = cfg.emit_rounds as u64;

    // (a) one subscription.
    let mut one = emit_rounds(cfg, &emitter, &result_rx);
    expected.rounds(warm, 1);
    expected.rounds(cfg.emit_m, rounds);
    let (nt_one, nt_one_add, nt_one_emit) = new_topics(cfg.new_topics, 1, &spawner, &spawn_rx);

    // 10,000 subscriptions that match nothing, on another object.
    let t = Instant::now();
    let mut subs = Vec::with_capacity(EXTRA_PATTERNS);
    let quarter = EXTRA_PATTERNS / 4;
    for i in 0..EXTRA_PATTERNS {
        let pattern = if i < quarter {
            format!("other/{i}/+/x")
        } else if i < 2 * quarter {
            format!("x{i}/#")
        } else {
            format!("re:nomatch{i}/.*")
        };
        subs.push(
            bystander
                .on_value()
                .subscribe(&pattern)
                .unwrap_or_else(|e| panic!("subscribe {pattern}: {e}")),
        );
    }
    let subscribe_10k = t.elapsed();
    let extra_matches: usize = subs.iter().map(|s| s.local_matches()).sum();
    assert_eq!(extra_matches, 0, "a non-matching pattern matched");
    assert_eq!(emitter.out().receiver_count(), 1);

    // The first add after them also builds the index's RegexSet.
    let (first, _, _) = new_topics(1, 1, &spawner, &spawn_rx);
    let first_add_ms = first[0] / 1e3;

    // (b) with the 10,000 others.
    let mut many = emit_rounds(cfg, &emitter, &result_rx);
    expected.rounds(warm, 1);
    expected.rounds(cfg.emit_m, rounds);
    let (nt_many, nt_many_add, nt_many_emit) = new_topics(cfg.new_topics, 1, &spawner, &spawn_rx);
    let fresh_total = (2 * cfg.new_topics + 1) as u64;
    // Each new object emitted the value 1 once.
    expected.calls += fresh_total;
    expected.sum = expected.sum.wrapping_add(fresh_total);

    // The bystander's removal ends its 10,000 subscriptions.
    bystander
        .report()
        .invoke(())
        .expect("invoke bystander report");
    let by_calls = by_rx.recv_timeout(REPLY_TIMEOUT).expect("bystander report");
    assert_eq!(by_calls, 0, "a non-matching subscription was called");
    let t = Instant::now();
    bystander.remove().expect("remove bystander");
    let remove_10k = t.elapsed();
    assert!(subs.iter().all(|s| !s.is_active()), "subscription survived");

    // (a') one subscription again, so that drift hits (a) and (b) alike.
    let mut one_after = emit_rounds(cfg, &emitter, &result_rx);
    expected.rounds(warm, 1);
    expected.rounds(cfg.emit_m, rounds);

    // Checks, then cleanup.
    acc.report().invoke(()).expect("invoke report");
    let (calls, sum) = acc_rx.recv_timeout(REPLY_TIMEOUT).expect("acc report");
    assert_eq!(calls, expected.calls, "accumulator calls");
    assert_eq!(sum, expected.sum, "accumulator arguments");
    assert!(seen.unsubscribe(), "matching subscription ended early");
    let stats = lp.stats();
    assert_eq!(stats.dropped_total(), 0, "messages were dropped");
    assert_eq!(stats.type_mismatches, 0, "type mismatches");
    stop_and_join(&lt);

    println!("# 1. emit of a seen topic, one matching subscription, inline slot");
    println!(
        "# 1 subscription: median {:.2} ns before the 10,000 were added, {:.2} ns after \
         they were removed; the figure is the median of both",
        median(&mut one.clone()),
        median(&mut one_after.clone()),
    );
    one.append(&mut one_after);
    let one_ns = median(&mut one);
    let many_ns = median(&mut many);
    figure("emit_seen_topic_unpinned_calls_checked", calls);
    figure(
        "emit_seen_topic_unpinned_dropped_total",
        stats.dropped_total(),
    );
    figure(
        "emit_seen_topic_unpinned_1_sub_ns_per_emit",
        format!("{one_ns:.2}"),
    );
    figure(
        "emit_seen_topic_unpinned_10k_nonmatching_ns_per_emit",
        format!("{many_ns:.2}"),
    );
    let ratio = many_ns / one_ns;
    figure("emit_seen_topic_ratio_10k_vs_1", format!("{ratio:.3}"));
    target("emit_seen_topic ratio 10k vs 1 <= 1.5", ratio <= 1.5);
    figure(
        "subscribe_10k_seconds",
        format!("{:.3}", subscribe_10k.as_secs_f64()),
    );
    figure("subscribe_10k_nonmatching_calls", by_calls);
    figure("unsubscribe_10k_by_remove_ms", ms(remove_10k));

    println!("# 2. a new topic going live: EventLoop::add of a new object + its first emit");
    figure(
        "first_add_after_10k_subscribe_ms",
        format!("{first_add_ms:.3}"),
    );
    print_new_topics(
        "first_emit_new_topic_1_pattern",
        &nt_one,
        nt_one_add,
        nt_one_emit,
    );
    print_new_topics(
        "first_emit_new_topic_10k_patterns",
        &nt_many,
        nt_many_add,
        nt_many_emit,
    );
    figure(
        "first_emit_new_topic_ratio_10k_vs_1",
        format!(
            "{:.3}",
            percentile(&nt_many, 50.0) / percentile(&nt_one, 50.0)
        ),
    );
}

// ---------------------------------------------------------------------------
// 3. Initializing a late subscriber from retained values in another process

/// One retained topic in the child.
#[derive(EventLoopObject, Default)]
struct State {
    #[signal(topic = "state/{id}", retain)]
    value: Signal<(u64,)>,
}

/// Lives in the child: sets every retained value once, reports its loop's stats.
#[derive(EventLoopObject)]
struct Publisher {
    #[signal]
    published: Signal<(u64, u64)>,
    #[signal]
    stats: Signal<(u64, u64, u64)>,
    signals: Vec<SignalRef<(u64,)>>,
    lp: EventLoop,
}

#[slots]
impl Publisher {
    /// Emits `first + i` on the i-th signal; reports (count, ns taken).
    fn publish(&mut self, first: u64) {
        let t = Instant::now();
        for (i, s) in self.signals.iter().enumerate() {
            s.emit((first + i as u64,));
        }
        self.published
            .emit((self.signals.len() as u64, t.elapsed().as_nanos() as u64));
    }

    fn report(&mut self) {
        let s = self.lp.stats();
        self.stats
            .emit((s.delivered, s.dropped_total(), s.decode_errors));
    }
}

/// What the parent hears from the child.
#[derive(Debug)]
enum Report {
    /// (values set, ns the child took).
    Published(u64, u64),
    /// The child loop's own counters: (delivered, dropped total, decode errors).
    Stats(u64, u64, u64),
}

/// Lives on a parent loop: forwards the child's reports into a channel.
#[derive(EventLoopObject)]
struct Reports {
    tx: Sender<Report>,
}

#[slots]
impl Reports {
    fn on_published(&mut self, n: u64, ns: u64) {
        let _ = self.tx.send(Report::Published(n, ns));
    }
    fn on_stats(&mut self, delivered: u64, dropped: u64, decode_errors: u64) {
        let _ = self
            .tx
            .send(Report::Stats(delivered, dropped, decode_errors));
    }
}

/// What the collector saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Collected {
    replays: u64,
    live: u64,
    sum: u64,
}

/// The late subscriber, on a parent loop thread.
#[derive(EventLoopObject)]
struct Collector {
    expected: u64,
    seen: Collected,
    first: Option<Instant>,
    /// (time of the first replay, time of the `expected`-th) once complete.
    done: Sender<(Instant, Instant)>,
    report: Sender<Collected>,
}

#[slots]
impl Collector {
    fn on_state(&mut self, v: u64, meta: &Meta) {
        let now = Instant::now();
        if meta.is_replay() {
            self.seen.replays += 1;
        } else {
            self.seen.live += 1;
        }
        self.seen.sum = self.seen.sum.wrapping_add(v);
        let first = *self.first.get_or_insert(now);
        if self.seen.replays + self.seen.live == self.expected {
            let _ = self.done.send((first, now));
        }
    }

    fn report(&mut self) {
        let _ = self.report.send(self.seen);
    }
}

fn next_report(rx: &Receiver<Report>) -> Report {
    rx.recv_timeout(REPLY_TIMEOUT)
        .expect("a report from the child within the timeout")
}

fn bench_initialize(cfg: &Config) {
    println!("placement unpinned (collector on a parent loop thread, retained signals in a child process)");
    let n = cfg.retained_n;
    let tag = format!("initialize_{}k_retained", n / 1000);
    let first_value = 1_000u64;

    let p = EventLoopProcess::new(unique_id("retained-child")).expect("create child process");
    let parent = EventLoopThread::new(unique_id("init-parent"));
    let (rep_tx, rep_rx) = unbounded();
    let (done_tx, done_rx) = bounded(1);
    let (col_tx, col_rx) = bounded(1);
    let reports = parent
        .event_loop()
        .add(unique_id("reports"), Reports { tx: rep_tx })
        .unwrap_or_else(|e| panic!("add reports: {e}"));
    let collector = parent
        .event_loop()
        .add(
            unique_id("collector"),
            Collector {
                expected: n,
                seen: Collected {
                    replays: 0,
                    live: 0,
                    sum: 0,
                },
                first: None,
                done: done_tx,
                report: col_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add collector: {e}"));

    // The retained objects, on the child's loop before the fork.
    let prefix = unique_id("st");
    let t = Instant::now();
    let mut signals = Vec::with_capacity(n as usize);
    for i in 0..n {
        let h = p
            .event_loop()
            .add(format!("{prefix}-{i}"), State::default())
            .unwrap_or_else(|e| panic!("add state object {i}: {e}"));
        signals.push(h.value());
    }
    let create = t.elapsed();
    let publisher = p
        .event_loop()
        .add(
            unique_id("publisher"),
            Publisher {
                published: Signal::new(),
                stats: Signal::new(),
                signals,
                lp: p.event_loop().clone(),
            },
        )
        .unwrap_or_else(|e| panic!("add publisher: {e}"));
    publisher
        .published()
        .connect(&reports.on_published())
        .expect("connect published");
    publisher
        .stats()
        .connect(&reports.on_stats())
        .expect("connect stats");

    let t = Instant::now();
    p.start().expect("start child");
    let fork = t.elapsed();
    parent.start().expect("start parent loop");

    // The child sets every retained value.
    publisher
        .publish()
        .invoke((first_value,))
        .expect("invoke publish");
    let publish_ns = match next_report(&rep_rx) {
        Report::Published(count, ns) => {
            assert_eq!(count, n, "child published");
            ns
        }
        other => panic!("expected the child's publish report, got {other:?}"),
    };

    // What a subscription costs that matches none of the N topics (both
    // processes still look at each of them): a floor under the figure below.
    let t = Instant::now();
    let probe = collector
        .on_state()
        .subscribe("nomatch/#")
        .expect("subscribe nomatch/#");
    let nomatch_call = t.elapsed();
    assert!(probe.unsubscribe(), "probe subscription ended early");

    // The measurement.
    let t0 = Instant::now();
    let sub = collector
        .on_state()
        .subscribe_with("state/#", SubscribeOptions::new().initialize())
        .expect("subscribe state/#");
    let returned = t0.elapsed();
    let (first, last) = done_rx
        .recv_timeout(REPLY_TIMEOUT)
        .expect("every replay within the timeout");
    let total = last.duration_since(t0);
    let first_replay = first.duration_since(t0);

    // Checks: the child's stats report travels the same ring as the replays, so
    // the collector's count taken after it is final.
    assert!(sub.unsubscribe(), "subscription ended early");
    publisher.report().invoke(()).expect("invoke child report");
    let (child_delivered, child_dropped, decode_errors) = match next_report(&rep_rx) {
        Report::Stats(d, dr, de) => (d, dr, de),
        other => panic!("expected the child's stats, got {other:?}"),
    };
    collector
        .report()
        .invoke(())
        .expect("invoke collector report");
    let seen = col_rx
        .recv_timeout(REPLY_TIMEOUT)
        .expect("collector report");
    let expected_sum = (first_value..first_value + n).fold(0u64, u64::wrapping_add);
    assert_eq!(
        seen,
        Collected {
            replays: n,
            live: 0,
            sum: expected_sum
        },
        "what the collector received"
    );
    let parent_dropped = parent.event_loop().stats().dropped_total();
    let sender_side = p.event_loop().stats().dropped_total();
    assert_eq!(
        (child_dropped, parent_dropped, sender_side, decode_errors),
        (0, 0, 0, 0),
        "(child loop, parent loop, sender side) dropped, child decode errors"
    );
    stop_and_join(&parent);
    let t = Instant::now();
    p.stop().expect("stop child");
    let status = p.join().expect("join child");
    assert!(status.success(), "child process: {status}");
    let teardown = t.elapsed();

    figure(&format!("{tag}_objects"), n);
    figure(
        &format!("{tag}_create_objects_seconds"),
        format!("{:.3}", create.as_secs_f64()),
    );
    figure(&format!("{tag}_fork_ms"), ms(fork));
    figure(
        &format!("{tag}_child_publish_ms"),
        format!("{:.3}", publish_ns as f64 / 1e6),
    );
    figure(
        &format!("{tag}_nomatch_subscribe_call_ms"),
        ms(nomatch_call),
    );
    figure(&format!("{tag}_subscribe_call_ms"), ms(returned));
    figure(&format!("{tag}_first_replay_ms"), ms(first_replay));
    figure(
        &format!("{tag}_replay_stream_ms"),
        ms(last.duration_since(first)),
    );
    figure(&format!("{tag}_ms"), ms(total));
    figure(
        &format!("{tag}_replays_per_s"),
        format!("{:.0}", n as f64 / total.as_secs_f64()),
    );
    figure(&format!("{tag}_replays_received"), seen.replays);
    figure(&format!("{tag}_live_received"), seen.live);
    figure(&format!("{tag}_child_delivered"), child_delivered);
    figure(
        &format!("{tag}_dropped_total"),
        child_dropped + parent_dropped + sender_side,
    );
    figure(&format!("{tag}_child_stop_join_ms"), ms(teardown));
    if n == 100_000 {
        target(
            "initialize 100k retained < 100 ms",
            total.as_secs_f64() < 0.1,
        );
    } else {
        println!("# target initialize 100k retained < 100 ms: not measured (N = {n})");
    }
}

// ---------------------------------------------------------------------------

fn main() {
    let cfg = Config::from_env();
    let start = Instant::now();
    figure("bench_mode", if cfg.quick { "quick" } else { "full" });
    figure("loadavg_1min_start", loadavg());
    println!(
        "# emit: M={} x{} rounds; new topics: {} objects; extra patterns: {EXTRA_PATTERNS}; \
         retained: {}",
        cfg.emit_m, cfg.emit_rounds, cfg.new_topics, cfg.retained_n,
    );
    bench_patterns(&cfg);
    println!("# 3. initialize a late subscriber from retained values in a child process");
    bench_initialize(&cfg);
    figure("loadavg_1min_end", loadavg());
    figure(
        "bench_seconds",
        format!("{:.1}", start.elapsed().as_secs_f64()),
    );
}
