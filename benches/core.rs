//! Core performance figures of signal-slot, each measured side by side with raw
//! `crossbeam-channel` in the same run.
//!
//! Run: `cargo bench --bench core` (about 30-60 s), or a ~5 s smoke run with
//! `BENCH_QUICK=1 cargo bench --bench core` / `cargo bench --bench core -- --quick`.
//!
//! Output: one figure per line, `name value`, plus `placement ...` lines that say
//! where the threads of the figures below them ran, and `#` comment lines. A
//! figure's name carries its placement (`unpinned`, `pinned_cpu0_cpu1`,
//! `pinned_cpu0_cpu0`), so `grep '^ping_pong_pinned_cpu0_cpu1_ratio'` finds one line.
//!
//! 1. `queued_throughput_*`: a `Source` on loop thread L1 emits N `(u64,)` signals
//!    in a tight loop inside one slot; they reach a `Sink` slot on loop thread L2
//!    (inbox capacity `CAPACITY`, overflow `Block(10 s)`, so nothing is dropped;
//!    both checked). Time from the first emit to the N-th slot call, in msgs/s.
//!    Baseline: `crossbeam_channel::bounded(CAPACITY)` between two plain threads.
//!    Target: ratio >= 0.50. Median of several rounds.
//! 2. `ping_pong_*`: `Pinger` on L1 emits `ping`, `Ponger` on L2 answers `pong`,
//!    whose slot on L1 records the round trip and pings again. p50/p99 in µs.
//!    Baseline: two plain threads bouncing a `u64` over two bounded channels
//!    (blocking `recv`). Target: p50 ratio <= 1.5. Unpinned, pinned to cpu0/cpu1,
//!    and both pinned to cpu0.
//! 3. `direct_emit_*`: same-loop emission to one connected slot (auto connection,
//!    so an inline call), ns per emit, timed inside a slot. Also an emit with no
//!    connection and a plain non-inlined Rust method call. Target: <= 20 ns.
//! 5. `group_emit_*`: same-loop emit to a one-of-N group of one and of two
//!    members against a plain connection to one receiver (rounds alternating).
//! 6. `group_queued_*`: the same with the receivers on another loop thread
//!    (queued), rounds alternating: the emitter's ns per emit over runs that
//!    fit in the inbox (`*_emit_ns` median, `*_emit_ns_min` the fastest run),
//!    and msgs/s end to end over N (the consumer sets the pace), per variant,
//!    with their ratios to the plain connection of the same run. A fourth
//!    variant, `plain_two_receivers_in_turn`, is one-of-two written by hand
//!    (two signals, each plainly connected to one of the two receivers,
//!    emitted in turn): `group_of_two_*_vs_in_turn` compares the group with
//!    what it replaces. Unpinned.
//! 7. `moved_ping_pong_*`: the ping-pong of section 2 with a ponger whose
//!    answer takes 2 us (busy), both loops pinned to one CPU, then the second
//!    moved to another: p50 and the loops' sleeps per round trip in each
//!    phase. Target: once apart, < 0.05 sleeps a round (the idle spin polls
//!    again; at ~1 per round every message pays a wake-up across cores).
//! 4. `idle_*`: a loop thread with one object and no timer, idle for a while:
//!    the loop thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, read in a slot at
//!    start and end) and `stats().wakeups`, per second. The wake-up that runs the
//!    closing probe is not counted. Then the same with a 100 ms periodic timer.

use crossbeam_channel::{bounded, unbounded, Sender};
use signal_slot::prelude::*;
use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;
use support::{
    figure, group_figures, group_rounds, loadavg, median, percentile, stop_and_join, target,
    unique_id, GroupFigures, GROUP_VARIANTS,
};

/// Inbox capacity of the receiving loop, and the capacity of the raw channels.
const CAPACITY: usize = 8192;

/// How long the bench waits for any one reply before giving up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Sizes of one run.
struct Config {
    quick: bool,
    /// `BENCH_ONLY`: run only the figures whose section name contains it.
    only: Option<String>,
    /// Messages per throughput round.
    throughput_n: u64,
    throughput_rounds: usize,
    /// Measured round trips per ping-pong round (after the warm-up).
    ping_pong_k: usize,
    ping_pong_warmup: usize,
    ping_pong_rounds: usize,
    /// Emits per direct-emit round.
    direct_m: u64,
    direct_rounds: usize,
    idle: Duration,
}

impl Config {
    fn from_env() -> Self {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let only = std::env::var("BENCH_ONLY").ok().filter(|s| !s.is_empty());
        if quick {
            Config {
                quick,
                only,
                throughput_n: 500_000,
                throughput_rounds: 1,
                ping_pong_k: 10_000,
                ping_pong_warmup: 1_000,
                ping_pong_rounds: 1,
                direct_m: 2_000_000,
                direct_rounds: 1,
                idle: Duration::from_millis(500),
            }
        } else {
            Config {
                quick,
                only,
                throughput_n: 2_000_000,
                throughput_rounds: 7,
                ping_pong_k: 50_000,
                ping_pong_warmup: 5_000,
                ping_pong_rounds: 2,
                direct_m: 20_000_000,
                direct_rounds: 5,
                idle: Duration::from_secs(2),
            }
        }
    }

    /// Whether the section `name` (`throughput`, `ping_pong`, `direct`, `idle`) runs.
    fn runs(&self, name: &str) -> bool {
        match &self.only {
            Some(o) => name.contains(o.as_str()),
            None => true,
        }
    }
}

// ---------------------------------------------------------------------------
// CPU placement

/// Where the two threads of a two-thread measurement run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    Unpinned,
    /// First thread on the first CPU, second thread on the second.
    Pinned(usize, usize),
}

impl Placement {
    /// For figure names: `unpinned`, `pinned_cpu0_cpu1`.
    fn tag(self) -> String {
        match self {
            Placement::Unpinned => "unpinned".into(),
            Placement::Pinned(a, b) => format!("pinned_cpu{a}_cpu{b}"),
        }
    }

    /// For the `placement` line: `unpinned`, `pinned cpu0,cpu1`.
    fn describe(self) -> String {
        match self {
            Placement::Unpinned => "unpinned".into(),
            Placement::Pinned(a, b) => format!("pinned cpu{a},cpu{b}"),
        }
    }

    /// The CPU of thread `i` (0 or 1), if pinned.
    fn cpu(self, i: usize) -> Option<usize> {
        match self {
            Placement::Unpinned => None,
            Placement::Pinned(a, b) => Some(if i == 0 { a } else { b }),
        }
    }
}

/// Pins the calling thread to `cpu`.
fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed; CPU_SET only
    // writes inside it (it ignores out-of-range CPUs); pid 0 means this thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The CPUs the process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: as in `pin_current_thread`; sched_getaffinity fills the zeroed set
    // and CPU_ISSET only reads inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// The CPU the calling thread runs on now.
fn current_cpu() -> i64 {
    // SAFETY: no arguments, no memory access.
    i64::from(unsafe { libc::sched_getcpu() })
}

/// A helper object put on a loop to pin that loop's thread from inside a slot.
#[derive(EventLoopObject)]
struct Pinner {
    ack: Sender<Result<i64, String>>,
}

#[slots]
impl Pinner {
    fn pin(&mut self, cpu: u64) {
        let r = usize::try_from(cpu)
            .map_err(|e| e.to_string())
            .and_then(|c| pin_current_thread(c).map_err(|e| e.to_string()))
            .map(|()| current_cpu());
        let _ = self.ack.send(r);
    }
}

/// Pins the (running) thread of `lp` to `cpu` and waits until it is done.
fn pin_loop(lp: &EventLoop, cpu: usize) {
    let (tx, rx) = bounded(1);
    let pinner = lp
        .add(unique_id("pinner"), Pinner { ack: tx })
        .unwrap_or_else(|e| panic!("add pinner: {e}"));
    pinner
        .pin()
        .invoke((cpu as u64,))
        .expect("invoke pin on the loop");
    match rx.recv_timeout(REPLY_TIMEOUT).expect("pin acknowledgement") {
        Ok(on) => assert_eq!(on, cpu as i64, "loop thread not on cpu{cpu} after pinning"),
        Err(e) => panic!("pinning loop {} to cpu{cpu}: {e}", lp.name()),
    }
    pinner.remove().expect("remove pinner");
}

/// Pins the loop threads of a two-loop measurement as `placement` says.
fn place_loops(placement: Placement, l1: &EventLoop, l2: &EventLoop) {
    for (i, lp) in [l1, l2].into_iter().enumerate() {
        if let Some(cpu) = placement.cpu(i) {
            pin_loop(lp, cpu);
        }
    }
}

/// Spawns a plain thread, pinned first if `cpu` says so.
fn spawn_placed<T: Send + 'static>(
    cpu: Option<usize>,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::spawn(move || {
        if let Some(c) = cpu {
            pin_current_thread(c).unwrap_or_else(|e| panic!("pin to cpu{c}: {e}"));
        }
        f()
    })
}

// ---------------------------------------------------------------------------
// Statistics and printing

// ---------------------------------------------------------------------------
// 1. Queued throughput between two loop threads

#[derive(EventLoopObject)]
struct Source {
    #[signal]
    out: Signal<(u64,)>,
    started: Sender<Instant>,
}

#[slots]
impl Source {
    /// Emits `n` values as fast as it can.
    fn run(&mut self, n: u64) {
        let t0 = Instant::now();
        for i in 0..n {
            self.out.emit((i,));
        }
        let _ = self.started.send(t0);
    }
}

#[derive(EventLoopObject)]
struct Sink {
    expected: u64,
    count: u64,
    sum: u64,
    total: u64,
    /// (time of the `expected`-th call, count, sum of values) per round.
    done: Sender<(Instant, u64, u64)>,
}

#[slots]
impl Sink {
    fn on_value(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
        if self.count == self.expected {
            let _ = self.done.send((Instant::now(), self.count, self.sum));
            self.total += self.count;
            self.count = 0;
            self.sum = 0;
        }
    }

    /// Forgets what was counted (after the warm-up).
    fn reset(&mut self) {
        (self.count, self.sum, self.total) = (0, 0, 0);
    }

    /// Reports every call counted so far (round remainders included).
    fn report(&mut self) {
        let _ = self
            .done
            .send((Instant::now(), self.total + self.count, self.sum));
    }
}

/// msgs/s of each signal-slot round; `after_round` runs after each round (the
/// raw baseline, so background load hits both alike).
fn throughput_signal_slot(
    cfg: &Config,
    placement: Placement,
    mut after_round: impl FnMut(),
) -> Vec<f64> {
    let n = cfg.throughput_n;
    let l1 = EventLoopThread::new(unique_id("tp-l1"));
    let l2 = EventLoopThread::with_loop(
        EventLoop::builder(unique_id("tp-l2"))
            .capacity(CAPACITY)
            .create(),
    );
    let (started_tx, started_rx) = unbounded();
    let (done_tx, done_rx) = unbounded();
    let source = l1
        .event_loop()
        .add(
            unique_id("source"),
            Source {
                out: Signal::new(),
                started: started_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add source: {e}"));
    let sink = l2
        .event_loop()
        .add(
            unique_id("sink"),
            Sink {
                expected: n,
                count: 0,
                sum: 0,
                total: 0,
                done: done_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add sink: {e}"));
    let opts = ConnectOptions::new().overflow(Overflow::Block(Duration::from_secs(10)));
    source
        .out()
        .connect_with(&sink.on_value(), opts)
        .expect("connect source to sink");
    l1.start().expect("start L1");
    l2.start().expect("start L2");
    place_loops(placement, l1.event_loop(), l2.event_loop());

    // Untimed warm-up (faults in the inbox pages, wakes the threads up).
    let warm = (n / 4).max(1);
    source.run().invoke((warm,)).expect("invoke warm-up run");
    started_rx
        .recv_timeout(REPLY_TIMEOUT)
        .expect("warm-up source");
    sink.report().invoke(()).expect("invoke warm-up report");
    let (_, warm_count, _) = done_rx.recv_timeout(REPLY_TIMEOUT).expect("warm-up sink");
    assert_eq!(warm_count, warm, "warm-up messages lost");
    sink.reset().invoke(()).expect("invoke reset");
    throughput_crossbeam(warm, placement);

    let expected_sum = n * (n - 1) / 2;
    let mut rates = Vec::new();
    for _ in 0..cfg.throughput_rounds {
        source.run().invoke((n,)).expect("invoke run");
        let t0 = started_rx
            .recv_timeout(REPLY_TIMEOUT)
            .expect("source finished");
        let (t1, count, sum) = done_rx.recv_timeout(REPLY_TIMEOUT).expect("sink finished");
        assert_eq!(
            (count, sum),
            (n, expected_sum),
            "sink got other values than sent"
        );
        rates.push(n as f64 / t1.duration_since(t0).as_secs_f64());
        after_round();
    }
    sink.report().invoke(()).expect("invoke report");
    let (_, total, _) = done_rx.recv_timeout(REPLY_TIMEOUT).expect("sink report");
    let expected_total = n * cfg.throughput_rounds as u64;
    assert_eq!(
        total, expected_total,
        "sink counted {total}, expected {expected_total}"
    );
    let dropped = l1.event_loop().stats().dropped_total() + l2.event_loop().stats().dropped_total();
    assert_eq!(dropped, 0, "messages were dropped");
    stop_and_join(&l1);
    stop_and_join(&l2);
    let tag = placement.tag();
    figure(&format!("queued_throughput_{tag}_dropped_total"), dropped);
    figure(&format!("queued_throughput_{tag}_consumer_counted"), total);
    rates
}

/// msgs/s of one raw crossbeam round.
fn throughput_crossbeam(n: u64, placement: Placement) -> f64 {
    let (tx, rx) = bounded::<(u64,)>(CAPACITY);
    let (ready_tx, ready_rx) = bounded::<()>(2);
    let (go_tx, go_rx) = bounded::<()>(1);
    let ready = ready_tx.clone();
    let consumer = spawn_placed(placement.cpu(1), move || {
        ready.send(()).expect("ready");
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(rx.recv().expect("recv").0);
        }
        (Instant::now(), sum)
    });
    let producer = spawn_placed(placement.cpu(0), move || {
        ready_tx.send(()).expect("ready");
        go_rx.recv().expect("go");
        let t0 = Instant::now();
        for i in 0..n {
            tx.send((i,)).expect("send");
        }
        t0
    });
    ready_rx.recv().expect("ready");
    ready_rx.recv().expect("ready");
    go_tx.send(()).expect("go");
    let t0 = producer.join().expect("producer");
    let (t1, sum) = consumer.join().expect("consumer");
    assert_eq!(sum, n * (n - 1) / 2);
    n as f64 / t1.duration_since(t0).as_secs_f64()
}

fn bench_throughput(cfg: &Config, placement: Placement) {
    let tag = placement.tag();
    println!("placement {}", placement.describe());
    let mut raw_rates = Vec::new();
    let mut ours_rates = throughput_signal_slot(cfg, placement, || {
        raw_rates.push(throughput_crossbeam(cfg.throughput_n, placement));
    });
    let ours = median(&mut ours_rates);
    let raw = median(&mut raw_rates);
    let ratio = ours / raw;
    let range = |v: &[f64]| format!("{:.0}..{:.0}", v[0], v[v.len() - 1]);
    println!(
        "# rounds (msgs/s, min..max): signal-slot {}, crossbeam {}",
        range(&ours_rates),
        range(&raw_rates)
    );
    figure(
        &format!("queued_throughput_{tag}_signal_slot_msgs_per_s"),
        format!("{ours:.0}"),
    );
    figure(
        &format!("queued_throughput_{tag}_crossbeam_msgs_per_s"),
        format!("{raw:.0}"),
    );
    figure(
        &format!("queued_throughput_{tag}_ratio_vs_crossbeam"),
        format!("{ratio:.3}"),
    );
    target("queued throughput ratio >= 0.50", ratio >= 0.5);
}

// ---------------------------------------------------------------------------
// 2. Ping-pong between two loop threads

#[derive(EventLoopObject)]
struct Pinger {
    #[signal]
    ping: Signal<(u64,)>,
    remaining: usize,
    last: Instant,
    samples: Vec<u64>,
    done: Sender<Vec<u64>>,
}

#[slots]
impl Pinger {
    /// Plays `k` round trips, then sends their durations (ns).
    fn start(&mut self, k: u64) {
        self.remaining = k as usize;
        self.samples = Vec::with_capacity(self.remaining);
        self.last = Instant::now();
        self.ping.emit((0,));
    }

    fn on_pong(&mut self, seq: u64) {
        let now = Instant::now();
        self.samples
            .push(now.duration_since(self.last).as_nanos() as u64);
        self.last = now;
        self.remaining -= 1;
        if self.remaining == 0 {
            let _ = self.done.send(std::mem::take(&mut self.samples));
        } else {
            self.ping.emit((seq + 1,));
        }
    }
}

#[derive(EventLoopObject)]
struct Ponger {
    #[signal]
    pong: Signal<(u64,)>,
    /// How long each answer takes (busy, not sleeping); zero in section 2.
    busy: Duration,
}

#[slots]
impl Ponger {
    fn on_ping(&mut self, seq: u64) {
        if !self.busy.is_zero() {
            let t = Instant::now();
            while t.elapsed() < self.busy {
                std::hint::spin_loop();
            }
        }
        self.pong.emit((seq,));
    }
}

/// Two started loop threads with a `Pinger` on the first and a `Ponger`
/// answering after `busy` on the second, connected both ways; the pinger's
/// rounds come back on the receiver.
struct PingPongPair {
    l1: EventLoopThread,
    l2: EventLoopThread,
    pinger: Handle<Pinger>,
    done: crossbeam_channel::Receiver<Vec<u64>>,
}

impl PingPongPair {
    fn start(busy: Duration) -> Self {
        let l1 = EventLoopThread::new(unique_id("pp-l1"));
        let l2 = EventLoopThread::new(unique_id("pp-l2"));
        let (done_tx, done) = bounded(1);
        let pinger = l1
            .event_loop()
            .add(
                unique_id("pinger"),
                Pinger {
                    ping: Signal::new(),
                    remaining: 0,
                    last: Instant::now(),
                    samples: Vec::new(),
                    done: done_tx,
                },
            )
            .unwrap_or_else(|e| panic!("add pinger: {e}"));
        let ponger = l2
            .event_loop()
            .add(
                unique_id("ponger"),
                Ponger {
                    pong: Signal::new(),
                    busy,
                },
            )
            .unwrap_or_else(|e| panic!("add ponger: {e}"));
        pinger
            .ping()
            .connect(&ponger.on_ping())
            .expect("connect ping");
        ponger
            .pong()
            .connect(&pinger.on_pong())
            .expect("connect pong");
        l1.start().expect("start L1");
        l2.start().expect("start L2");
        PingPongPair {
            l1,
            l2,
            pinger,
            done,
        }
    }

    /// `total` round trips' durations (ns).
    fn play(&self, total: usize) -> Vec<u64> {
        self.pinger
            .start()
            .invoke((total as u64,))
            .expect("invoke start");
        let samples = self
            .done
            .recv_timeout(REPLY_TIMEOUT)
            .expect("ping-pong finished");
        assert_eq!(samples.len(), total);
        samples
    }

    /// Both loops' sleeps so far.
    fn wakeups(&self) -> u64 {
        self.l1.event_loop().stats().wakeups + self.l2.event_loop().stats().wakeups
    }

    fn finish(self) {
        let dropped = self.l1.event_loop().stats().dropped_total()
            + self.l2.event_loop().stats().dropped_total();
        assert_eq!(dropped, 0, "ping-pong messages were dropped");
        stop_and_join(&self.l1);
        stop_and_join(&self.l2);
    }
}

/// Round-trip samples (ns) of the signal-slot ping-pong, warm-up dropped.
fn ping_pong_signal_slot(cfg: &Config, placement: Placement) -> Vec<u64> {
    let pair = PingPongPair::start(Duration::ZERO);
    place_loops(placement, pair.l1.event_loop(), pair.l2.event_loop());
    let samples = pair.play(cfg.ping_pong_warmup + cfg.ping_pong_k);
    pair.finish();
    samples[cfg.ping_pong_warmup..].to_vec()
}

/// How long the ponger of section 7 takes to answer.
const MOVED_BUSY: Duration = Duration::from_micros(2);

/// Section 7: a ping-pong whose answers take [`MOVED_BUSY`], both loops first
/// on one CPU, then moved apart. While they share the CPU each loop learns to yield
/// at once instead of polling (its peer needs the CPU); once apart, answers
/// that take longer than its yields put it to sleep, and the wake-ups must
/// teach it to poll again, else every message pays a wake-up across cores
/// (20-35 us here; review helper-44 found both sides stuck that way).
fn bench_moved_ping_pong(cfg: &Config, cpus: (usize, usize)) {
    let pair = PingPongPair::start(MOVED_BUSY);
    let k = cfg.ping_pong_k / 2;
    let mut after_move = (0.0, 0.0);
    for (phase, l2_cpu) in [("same_cpu", cpus.0), ("moved_apart", cpus.1)] {
        place_loops(
            Placement::Pinned(cpus.0, l2_cpu),
            pair.l1.event_loop(),
            pair.l2.event_loop(),
        );
        pair.play(cfg.ping_pong_warmup);
        let w0 = pair.wakeups();
        let mut samples = pair.play(k);
        let per_round = (pair.wakeups() - w0) as f64 / k as f64;
        samples.sort_unstable();
        let p50 = percentile(&samples, 50.0) as f64 / 1000.0;
        let tag = format!("moved_ping_pong_busy2us_{phase}");
        figure(&format!("{tag}_p50_us"), format!("{p50:.3}"));
        figure(
            &format!("{tag}_wakeups_per_round"),
            format!("{per_round:.4}"),
        );
        after_move = (p50, per_round);
    }
    pair.finish();
    target(
        "moved apart, the loops poll again (< 0.05 wake-ups a round)",
        after_move.1 < 0.05,
    );
}

/// Round-trip samples (ns) of two plain threads over two bounded channels.
fn ping_pong_crossbeam(cfg: &Config, placement: Placement) -> Vec<u64> {
    let (ping_tx, ping_rx) = bounded::<u64>(CAPACITY);
    let (pong_tx, pong_rx) = bounded::<u64>(CAPACITY);
    let total = cfg.ping_pong_warmup + cfg.ping_pong_k;
    let warmup = cfg.ping_pong_warmup;
    let ponger = spawn_placed(placement.cpu(1), move || {
        while let Ok(seq) = ping_rx.recv() {
            if pong_tx.send(seq).is_err() {
                break;
            }
        }
    });
    let pinger = spawn_placed(placement.cpu(0), move || {
        let mut samples = Vec::with_capacity(total);
        let mut last = Instant::now();
        for seq in 0..total as u64 {
            ping_tx.send(seq).expect("send ping");
            let back = pong_rx.recv().expect("recv pong");
            let now = Instant::now();
            samples.push(now.duration_since(last).as_nanos() as u64);
            last = now;
            black_box(back);
        }
        drop(ping_tx);
        samples
    });
    let samples = pinger.join().expect("pinger thread");
    ponger.join().expect("ponger thread");
    samples[warmup..].to_vec()
}

fn bench_ping_pong(cfg: &Config, placement: Placement) {
    let tag = placement.tag();
    println!("placement {}", placement.describe());
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    // Alternate the two so a burst of background load hits both alike.
    for _ in 0..cfg.ping_pong_rounds {
        ours.extend(ping_pong_signal_slot(cfg, placement));
        raw.extend(ping_pong_crossbeam(cfg, placement));
    }
    ours.sort_unstable();
    raw.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    let (o50, o99) = (percentile(&ours, 50.0), percentile(&ours, 99.0));
    let (r50, r99) = (percentile(&raw, 50.0), percentile(&raw, 99.0));
    figure(&format!("ping_pong_{tag}_round_trips"), ours.len());
    figure(
        &format!("ping_pong_{tag}_signal_slot_p50_us"),
        format!("{:.3}", us(o50)),
    );
    figure(
        &format!("ping_pong_{tag}_signal_slot_p99_us"),
        format!("{:.3}", us(o99)),
    );
    figure(
        &format!("ping_pong_{tag}_crossbeam_p50_us"),
        format!("{:.3}", us(r50)),
    );
    figure(
        &format!("ping_pong_{tag}_crossbeam_p99_us"),
        format!("{:.3}", us(r99)),
    );
    let ratio = o50 as f64 / r50 as f64;
    figure(
        &format!("ping_pong_{tag}_p50_ratio_vs_crossbeam"),
        format!("{ratio:.3}"),
    );
    figure(
        &format!("ping_pong_{tag}_p99_ratio_vs_crossbeam"),
        format!("{:.3}", o99 as f64 / r99 as f64),
    );
    target("ping-pong p50 ratio <= 1.5", ratio <= 1.5);
}

// ---------------------------------------------------------------------------
// 3. Direct (same-loop) emit

/// ns per call of each variant in one round.
#[derive(Debug, Clone, Copy)]
struct DirectTimes {
    connected: f64,
    unconnected: f64,
    plain: f64,
}

#[derive(EventLoopObject)]
struct Emitter {
    #[signal]
    out: Signal<(u64,)>,
    #[signal]
    unconnected: Signal<(u64,)>,
    result: Sender<DirectTimes>,
}

/// The plain-Rust stand-in for `Accumulator::on_value`.
struct PlainAccumulator {
    acc: u64,
    calls: u64,
}

impl PlainAccumulator {
    #[inline(never)]
    fn on_value(&mut self, v: u64) {
        self.acc = self.acc.wrapping_add(v);
        self.calls += 1;
    }
}

fn ns_per(elapsed: Duration, m: u64) -> f64 {
    elapsed.as_nanos() as f64 / m as f64
}

#[slots]
impl Emitter {
    fn run(&mut self, m: u64) {
        let t = Instant::now();
        for i in 0..m {
            self.out.emit((black_box(i),));
        }
        let connected = ns_per(t.elapsed(), m);

        let t = Instant::now();
        for i in 0..m {
            self.unconnected.emit((black_box(i),));
        }
        let unconnected = ns_per(t.elapsed(), m);

        let mut plain_acc = PlainAccumulator { acc: 0, calls: 0 };
        let t = Instant::now();
        for i in 0..m {
            black_box(&mut plain_acc).on_value(black_box(i));
        }
        let plain = ns_per(t.elapsed(), m);
        assert_eq!(plain_acc.calls, m);
        black_box(plain_acc.acc);

        let _ = self.result.send(DirectTimes {
            connected,
            unconnected,
            plain,
        });
    }
}

/// Sums what it receives. Defined here, not in `support`: where the slot's
/// code lands changed the direct-emit figure by 8 ns (code placement), and this
/// figure is the one compared with earlier runs.
#[derive(EventLoopObject)]
struct Accumulator {
    acc: u64,
    calls: u64,
    report: Sender<(u64, u64)>,
}

#[slots]
impl Accumulator {
    fn on_value(&mut self, v: u64) {
        self.acc = self.acc.wrapping_add(v);
        self.calls += 1;
    }

    fn report(&mut self) {
        let _ = self.report.send((self.calls, self.acc));
    }
}

fn bench_direct(cfg: &Config) {
    println!("placement unpinned");
    let m = cfg.direct_m;
    let lt = EventLoopThread::new(unique_id("direct"));
    let (result_tx, result_rx) = bounded(1);
    let (report_tx, report_rx) = bounded(1);
    let emitter = lt
        .event_loop()
        .add(
            unique_id("emitter"),
            Emitter {
                out: Signal::new(),
                unconnected: Signal::new(),
                result: result_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add emitter: {e}"));
    let acc = lt
        .event_loop()
        .add(
            unique_id("accumulator"),
            Accumulator {
                acc: 0,
                calls: 0,
                report: report_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add accumulator: {e}"));
    emitter
        .out()
        .connect(&acc.on_value())
        .expect("connect direct");
    lt.start().expect("start loop");
    // Untimed warm-up round, counted separately below.
    let warm = (m / 10).max(1);
    emitter.run().invoke((warm,)).expect("invoke warm-up run");
    result_rx
        .recv_timeout(REPLY_TIMEOUT)
        .expect("warm-up round");
    let mut rounds = Vec::new();
    for _ in 0..cfg.direct_rounds {
        emitter.run().invoke((m,)).expect("invoke run");
        rounds.push(result_rx.recv_timeout(REPLY_TIMEOUT).expect("direct round"));
    }
    acc.report().invoke(()).expect("invoke report");
    let (calls, sum) = report_rx
        .recv_timeout(REPLY_TIMEOUT)
        .expect("accumulator report");
    let rounds_n = cfg.direct_rounds as u64;
    assert_eq!(calls, m * rounds_n + warm, "slot calls");
    let round_sum = |m: u64| m * (m - 1) / 2;
    let expected_sum = round_sum(m)
        .wrapping_mul(rounds_n)
        .wrapping_add(round_sum(warm));
    assert_eq!(sum, expected_sum, "slot arguments");
    assert_eq!(lt.event_loop().stats().dropped_total(), 0);
    stop_and_join(&lt);
    let pick = |f: fn(&DirectTimes) -> f64| median(&mut rounds.iter().map(f).collect::<Vec<_>>());
    let connected = pick(|t| t.connected);
    figure("direct_emit_unpinned_calls_checked", calls);
    figure(
        "direct_emit_unpinned_connected_ns_per_call",
        format!("{connected:.2}"),
    );
    figure(
        "direct_emit_unpinned_unconnected_ns_per_call",
        format!("{:.2}", pick(|t| t.unconnected)),
    );
    figure(
        "direct_emit_unpinned_plain_method_ns_per_call",
        format!("{:.2}", pick(|t| t.plain)),
    );
    target("direct emit <= 20 ns/call", connected <= 20.0);
}

// ---------------------------------------------------------------------------
// 5. One-of-N group delivery against a plain connection to one receiver

/// Same-loop emit cost through a group of two members against a plain
/// connection to one receiver, rounds alternating (the connection is swapped
/// between rounds), in one run.
fn bench_group(cfg: &Config) {
    println!("placement unpinned");
    let m = cfg.direct_m;
    let lt = EventLoopThread::new(unique_id("group"));
    let (result_tx, result_rx) = bounded(1);
    let (report_tx, report_rx) = bounded(2);
    let emitter = lt
        .event_loop()
        .add(
            unique_id("emitter"),
            Emitter {
                out: Signal::new(),
                unconnected: Signal::new(),
                result: result_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add emitter: {e}"));
    let accs: Vec<_> = (0..2)
        .map(|_| {
            lt.event_loop()
                .add(
                    unique_id("accumulator"),
                    Accumulator {
                        acc: 0,
                        calls: 0,
                        report: report_tx.clone(),
                    },
                )
                .unwrap_or_else(|e| panic!("add accumulator: {e}"))
        })
        .collect();
    lt.start().expect("start loop");
    // Variant per round: 0 = plain connection to one receiver, 1 = a group of
    // one member (the group mechanism alone), 2 = a group of two (members in
    // turn: two objects' state in the cache). Round 0 warms up.
    let mut times: [Vec<f64>; 3] = Default::default();
    let total = 1 + 3 * cfg.direct_rounds.max(1);
    for round in 0..total {
        let variant = round % 3;
        let conns: Vec<_> = match variant {
            0 => vec![emitter.out().connect(&accs[0].on_value()).expect("connect")],
            n => accs[..n]
                .iter()
                .map(|a| {
                    emitter
                        .out()
                        .connect_with(&a.on_value(), ConnectOptions::new().group("g"))
                        .expect("join group")
                })
                .collect(),
        };
        emitter.run().invoke((m,)).expect("invoke run");
        let t = result_rx.recv_timeout(REPLY_TIMEOUT).expect("group round");
        for c in conns {
            c.disconnect().expect("disconnect");
        }
        if round > 0 {
            times[variant].push(t.connected);
        }
    }
    let mut calls = 0;
    for a in &accs {
        a.report().invoke(()).expect("invoke report");
        calls += report_rx.recv_timeout(REPLY_TIMEOUT).expect("report").0;
    }
    assert_eq!(
        calls,
        m * total as u64,
        "every emission reached one receiver"
    );
    assert_eq!(lt.event_loop().stats().dropped_total(), 0);
    stop_and_join(&lt);
    let [p, g1, g2] = times.map(|mut v| median(&mut v));
    figure("group_emit_unpinned_calls_checked", calls);
    figure(
        "group_emit_unpinned_plain_one_receiver_ns_per_emit",
        format!("{p:.2}"),
    );
    figure(
        "group_emit_unpinned_group_of_one_ns_per_emit",
        format!("{g1:.2}"),
    );
    figure(
        "group_emit_unpinned_group_of_two_ns_per_emit",
        format!("{g2:.2}"),
    );
    figure(
        "group_emit_unpinned_group_of_one_ratio_vs_plain",
        format!("{:.3}", g1 / p),
    );
    figure(
        "group_emit_unpinned_group_of_two_ratio_vs_plain",
        format!("{:.3}", g2 / p),
    );
    target(
        "group delivery (group of one) <= 1.1x a plain connection",
        g1 / p <= 1.1,
    );
}

// ---------------------------------------------------------------------------
// 6. One-of-N group delivery to another loop thread

/// Lives on L1: emits `(u64,)` values from one slot, timing its own side.
#[derive(EventLoopObject)]
struct Spreader {
    #[signal]
    out: Signal<(u64,)>,
    /// The second of two plain connections used in turn (`run_in_turn`).
    #[signal]
    out_b: Signal<(u64,)>,
    /// (t0 before the first emit, t after the last) per round.
    started: Sender<(Instant, Instant)>,
}

#[slots]
impl Spreader {
    fn run(&mut self, n: u64) {
        let t0 = Instant::now();
        for i in 0..n {
            self.out.emit((i,));
        }
        let _ = self.started.send((t0, Instant::now()));
    }

    /// One-of-two by hand: `out` and `out_b` in turn.
    fn run_in_turn(&mut self, n: u64) {
        let t0 = Instant::now();
        for i in 0..n {
            if i & 1 == 0 {
                self.out.emit((i,));
            } else {
                self.out_b.emit((i,));
            }
        }
        let _ = self.started.send((t0, Instant::now()));
    }
}

/// Lives on L2: counts; `report` sends (now, count, sum) and starts over.
#[derive(EventLoopObject)]
struct Tally {
    count: u64,
    sum: u64,
    report: Sender<(Instant, u64, u64)>,
}

#[slots]
impl Tally {
    fn on_value(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
    }
    fn report(&mut self) {
        let _ = self.report.send((Instant::now(), self.count, self.sum));
        (self.count, self.sum) = (0, 0);
    }
}

/// Emits of one run measuring the emitter's cost: fewer than the inbox
/// holds (`GROUP_CAPACITY`), so no emit waits for room.
const COST_N: u64 = 20_000;
/// Cost runs per round.
const COST_RUNS: usize = 5;
/// The receiving loop's inbox in the group section.
const GROUP_CAPACITY: usize = 1 << 15;

/// Queued emits from L1 to two `Tally`s on L2, rounds alternating: a plain
/// connection to the first, a group of one (the first), a group of two
/// (both), two plain connections used in turn (both). Per variant: the
/// rounds' msgs/s end to end, the emitter's ns per emit.
fn group_queued_rounds(cfg: &Config) -> GroupFigures {
    let l1 = EventLoopThread::new(unique_id("gq-l1"));
    let l2 = EventLoopThread::with_loop(
        EventLoop::builder(unique_id("gq-l2"))
            .capacity(GROUP_CAPACITY)
            .create(),
    );
    let (started_tx, started_rx) = unbounded();
    let (report_tx, report_rx) = unbounded();
    let spreader = l1
        .event_loop()
        .add(
            unique_id("spreader"),
            Spreader {
                out: Signal::new(),
                out_b: Signal::new(),
                started: started_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add spreader: {e}"));
    let tallies: Vec<_> = (0..2)
        .map(|_| {
            l2.event_loop()
                .add(
                    unique_id("tally"),
                    Tally {
                        count: 0,
                        sum: 0,
                        report: report_tx.clone(),
                    },
                )
                .unwrap_or_else(|e| panic!("add tally: {e}"))
        })
        .collect();
    l1.start().expect("start L1");
    l2.start().expect("start L2");
    let opts = || ConnectOptions::new().overflow(Overflow::Block(Duration::from_secs(10)));
    // One run of `k` emits: (t0, t after the last emit, t when the last tally
    // reported); checks the values and the group's counts.
    let run = |k: u64, variant: usize| -> (Instant, Instant, Instant) {
        let counted = || {
            spreader.out().group_stats("g").map_or((0, 0), |s| {
                (s.members.iter().map(|m| m.delivered).sum(), s.skipped)
            })
        };
        let (before, skipped_before) = counted();
        let in_turn = variant == 3;
        if in_turn {
            spreader.run_in_turn().invoke((k,)).expect("invoke run");
        } else {
            spreader.run().invoke((k,)).expect("invoke run");
        }
        let (t0, t_emitted) = started_rx
            .recv_timeout(REPLY_TIMEOUT)
            .expect("spreader finished");
        // Posted after the last value: each report runs after it.
        let (mut count, mut sum, mut t1) = (0, 0u64, t0);
        for t in &tallies {
            t.report().invoke(()).expect("invoke report");
            let (at, c, s) = report_rx.recv_timeout(REPLY_TIMEOUT).expect("report");
            (count, sum, t1) = (count + c, sum.wrapping_add(s), t1.max(at));
        }
        assert_eq!((count, sum), (k, k * (k - 1) / 2), "variant {variant}");
        if variant > 0 && !in_turn {
            let (after, skipped) = counted();
            assert_eq!(after - before, k, "the group's counts (variant {variant})");
            if k <= COST_N {
                assert_eq!(skipped, skipped_before, "a member was full");
            }
            let stats = spreader.out().group_stats("g").expect("group stats");
            assert_eq!(stats.undelivered, 0, "{stats:?}");
        }
        (t0, t_emitted, t1)
    };
    let connect = |variant: usize| match variant {
        0 => vec![spreader
            .out()
            .connect_with(&tallies[0].on_value(), opts())
            .expect("connect plain")],
        3 => vec![
            spreader
                .out()
                .connect_with(&tallies[0].on_value(), opts())
                .expect("connect plain"),
            spreader
                .out_b()
                .connect_with(&tallies[1].on_value(), opts())
                .expect("connect plain"),
        ],
        k => tallies[..k]
            .iter()
            .map(|t| {
                spreader
                    .out()
                    .connect_with(&t.on_value(), opts().group("g"))
                    .expect("join group")
            })
            .collect(),
    };
    let figures = group_rounds(
        GROUP_VARIANTS.len(),
        cfg.throughput_rounds,
        (cfg.throughput_n, COST_N, COST_RUNS),
        connect,
        |k, variant| {
            let (t0, t_emitted, t1) = run(k, variant);
            (
                ns_per(t_emitted.duration_since(t0), k),
                k as f64 / t1.duration_since(t0).as_secs_f64(),
            )
        },
    );
    let dropped = l1.event_loop().stats().dropped_total() + l2.event_loop().stats().dropped_total();
    assert_eq!(dropped, 0, "messages were dropped");
    stop_and_join(&l1);
    stop_and_join(&l2);
    figures
}

fn bench_group_queued(cfg: &Config) {
    println!("placement unpinned");
    group_figures(
        "group_queued_unpinned",
        &GROUP_VARIANTS,
        &group_queued_rounds(cfg),
    );
}

// ---------------------------------------------------------------------------
// 4. Idle CPU

/// CPU time consumed by the calling thread so far, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[derive(EventLoopObject)]
struct Probe {
    ticks: u64,
    /// (thread CPU ns, ticks seen) at each sample.
    samples: Sender<(u64, u64)>,
}

#[slots]
impl Probe {
    fn sample(&mut self) {
        let _ = self.samples.send((thread_cpu_ns(), self.ticks));
    }

    fn tick(&mut self) {
        self.ticks += 1;
    }
}

fn bench_idle(cfg: &Config, timer: Option<Duration>) {
    let tag = match timer {
        None => "idle".to_string(),
        Some(t) => format!("idle_timer_{}ms", t.as_millis()),
    };
    println!("placement unpinned");
    let lt = EventLoopThread::new(unique_id("idle"));
    let (tx, rx) = bounded(1);
    let probe = lt
        .event_loop()
        .add(
            unique_id("probe"),
            Probe {
                ticks: 0,
                samples: tx,
            },
        )
        .unwrap_or_else(|e| panic!("add probe: {e}"));
    let _timer = timer.map(|interval| {
        let t = Timer::periodic(lt.event_loop(), interval).expect("timer");
        t.timeout().connect(&probe.tick()).expect("connect timer");
        t
    });
    lt.start().expect("start loop");
    // Let the loop settle (spin down into its futex sleep) before the first sample.
    thread::sleep(Duration::from_millis(50));
    let sample = || {
        probe.sample().invoke(()).expect("invoke sample");
        let s = rx.recv_timeout(REPLY_TIMEOUT).expect("probe sample");
        (s, lt.event_loop().stats().wakeups)
    };
    let ((cpu0, ticks0), wake0) = sample();
    let t0 = Instant::now();
    thread::sleep(cfg.idle);
    let ((cpu1, ticks1), wake1) = sample();
    let secs = t0.elapsed().as_secs_f64();
    stop_and_join(&lt);
    // One wake-up ran the closing sample itself.
    let wakeups = wake1.saturating_sub(wake0).saturating_sub(1);
    let cpu_ms = (cpu1 - cpu0) as f64 / 1e6;
    figure(&format!("{tag}_seconds"), format!("{secs:.2}"));
    figure(
        &format!("{tag}_cpu_ms_per_s"),
        format!("{:.4}", cpu_ms / secs),
    );
    figure(
        &format!("{tag}_wakeups_per_s"),
        format!("{:.2}", wakeups as f64 / secs),
    );
    if timer.is_some() {
        figure(
            &format!("{tag}_ticks_per_s"),
            format!("{:.2}", (ticks1 - ticks0) as f64 / secs),
        );
    }
}

// ---------------------------------------------------------------------------

fn main() {
    let cfg = Config::from_env();
    let cpus = allowed_cpus();
    let start = Instant::now();
    figure("bench_mode", if cfg.quick { "quick" } else { "full" });
    figure("cpus_allowed", cpus.len());
    figure("loadavg_1min_start", loadavg());
    println!(
        "# throughput: N={} x{} rounds, ping-pong: K={} (+{} warm-up) x{} rounds, \
         direct: M={} x{} rounds, idle: {:?}, capacity {CAPACITY}",
        cfg.throughput_n,
        cfg.throughput_rounds,
        cfg.ping_pong_k,
        cfg.ping_pong_warmup,
        cfg.ping_pong_rounds,
        cfg.direct_m,
        cfg.direct_rounds,
        cfg.idle,
    );

    let mut placements = vec![Placement::Unpinned];
    if cpus.contains(&0) && cpus.contains(&1) {
        placements.push(Placement::Pinned(0, 1));
    } else {
        println!("# cpu0 and cpu1 not both allowed: pinned cross-core runs skipped");
    }
    let same_core = cpus.first().map(|&c| Placement::Pinned(c, c));

    if cfg.runs("throughput") {
        println!("# 1. queued emit->slot throughput, payload (u64,)");
        for &p in &placements {
            bench_throughput(&cfg, p);
        }
    }
    if cfg.runs("ping_pong") {
        println!("# 2. ping-pong round trip between two loop threads");
        for p in placements.iter().copied().chain(same_core) {
            bench_ping_pong(&cfg, p);
        }
    }
    if cfg.runs("direct") {
        println!("# 3. direct same-loop emit to one connected slot");
        bench_direct(&cfg);
    }
    if cfg.runs("group") {
        println!("# 5. one-of-N group (2 members) vs a plain connection, same-loop emit");
        bench_group(&cfg);
    }
    if cfg.runs("group_queued") {
        println!("# 6. one-of-N group on another loop thread vs a plain connection, queued emit");
        bench_group_queued(&cfg);
    }
    if cfg.runs("moved_ping_pong") {
        println!("# 7. ping-pong with 2 us answers, both loops on one CPU, then moved apart");
        match (cpus.first(), cpus.get(1)) {
            (Some(&a), Some(&b)) => bench_moved_ping_pong(&cfg, (a, b)),
            _ => println!("# one CPU allowed: section 7 skipped"),
        }
    }
    if cfg.runs("idle") {
        println!("# 4. idle loop thread");
        bench_idle(&cfg, None);
        bench_idle(&cfg, Some(Duration::from_millis(100)));
    }

    figure("loadavg_1min_end", loadavg());
    figure(
        "bench_seconds",
        format!("{:.1}", start.elapsed().as_secs_f64()),
    );
}
