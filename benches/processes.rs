//! Cross-process performance figures of signal-slot: a loop in the parent process
//! talking to a loop in a child process (`EventLoopProcess`, shared-memory
//! mailboxes), each measured side by side in the same run with raw `ipc-channel`
//! between a parent and a forked child, and for round trips also with plain
//! futex-woken shared-memory rings and a one-word futex ping-pong written here.
//!
//! Run: `cargo bench --bench processes` (about 30-60 s), or a ~10 s smoke run with
//! `BENCH_QUICK=1 cargo bench --bench processes` /
//! `cargo bench --bench processes -- --quick`. `BENCH_ONLY=<text>` runs only the
//! sections whose name contains it (`throughput_u64`, `throughput_string64`,
//! `ping_pong_u64`, `ping_pong_string64`, `request_u64`, `group_u64`).
//!
//! `BENCH_TAILS=1` adds, for the ping-pong, p90/p99.5/p99.9 and a histogram of
//! each kind's round trips.
//!
//! Output: one figure per line, `name value`, plus `placement ...` lines that say
//! where the two sides of the figures below them ran, and `#` comment lines. A
//! figure's name carries its payload and placement (`unpinned`, `pinned_cpu0_cpu1`:
//! parent side on cpu0, child on cpu1; `pinned_cpu0_cpu0`: both on cpu0), so
//! `grep '^ping_pong_u64_pinned_cpu0_cpu1_p50_ratio'` finds one line.
//!
//! 1. `throughput_u64_*`: a `Producer` on a parent loop thread emits N `(u64,)`
//!    signals in a tight loop inside one slot; a `Counter` slot in the child counts
//!    them (overflow `Block(60 s)`, so nothing is dropped) and, at the N-th,
//!    emits `done(count, sum, t1)` back to a parent object. Rate = N / (t1 - t0),
//!    `t0` taken in the parent before the first emit and `t1` in the child at the
//!    N-th slot call (both `CLOCK_MONOTONIC`, one clock for all processes).
//!    Baseline: `ipc-channel` `IpcSender<u64>` -> `IpcReceiver<u64>` from a parent
//!    thread to a forked child (a smaller N: it is much slower), timed the same
//!    way. Targets: >= 20 M signals/s and >= 15x ipc-channel. Median of several
//!    rounds; the two alternate so background load hits both alike. Unpinned and
//!    pinned cpu0/cpu1. `*_emit_ns` is the producer's own time per emit.
//!    A second baseline, `*_raw_shm_ring_*`: the same N `u64`s through a bare
//!    single-producer single-consumer ring of 16-byte slots in shared memory
//!    (a spinning consumer, no wake-ups, no framing, no encoding): the ceiling
//!    the machine gives any shared-memory queue in that placement. Unpinned, its
//!    spinning consumer collapses whenever the scheduler puts both on one CPU.
//! 2. `throughput_string64_*`: the same with a 64-byte `(String,)` payload (the
//!    producer clones one `String` per emit; the ipc-channel sender builds one per
//!    send, so both pay one allocation). Unpinned.
//! 3. `ping_pong_u64_*`: `Pinger` on a parent loop thread emits `ping`, `Ponger`
//!    in the child answers `pong`, whose slot in the parent records the round trip
//!    (`Instant`, in the parent) and pings again. p50/p99 in µs. Baselines between
//!    a parent thread and a forked child: (a) ipc-channel ping-pong over two
//!    channels (blocking `recv`); (b) four shared-memory lanes each way in one
//!    `mmap(MAP_SHARED | MAP_ANONYMOUS)` page. Two plain futex-woken rings of
//!    64 16-byte slots that publish themselves (a sequence word and a `u64`,
//!    one cache line a hop, as our records): `futex_ring`, whose waiter looks
//!    once, then sleeps in `FUTEX_WAIT` on the slot's word (every hop to a
//!    waiting peer is a wake-up; its one-core figure is the issue's "~1.8 us
//!    when the scheduler keeps both on one core"), and `slot_ring`, whose
//!    waiter first spins like the event loop's idle path (crossbeam `Backoff`:
//!    127 pause hints, then 4 `sched_yield`s). Two more for comparison, both
//!    spinning first: `index_ring`, the textbook ring (64 `u64` slots, a tail
//!    and a head index on lines of their own: the consumer sees the tail
//!    move, then reads the slot, two lines a hop one after the other), and
//!    `futex_word`, a sequence word alone (no slot, no payload: the floor of
//!    a hop). Every sleeper waits in `FUTEX_WAIT` (not private) on the word it
//!    polls; the writer stores it and calls `FUTEX_WAKE` only if a sleeper
//!    announced itself. Targets: p50 <= ipc-channel (ratio <= 1.0) and <=
//!    1.5x the faster of the two plain rings in that placement (each ratio is
//!    printed as a target line too; the sleeping one is faster on one CPU,
//!    the spinning one across CPUs). Unpinned, pinned cpu0/cpu1, and both
//!    pinned to cpu0.
//! 4. `ping_pong_string64_*`: the round trip with a 64-byte `(String,)` bounced
//!    back and forth (each side forwards the string it received), ours and
//!    ipc-channel, unpinned.
//!
//! 5. `request_u64_*`: blocking request round trip: a plain parent thread calls
//!    `SignalRef::request::<u64>` on a signal connected to one slot in the child
//!    that returns its `u64` argument; the call returns with the answer (checked).
//!    Timed lap to lap as the ping-pong is (one clock read a round trip, the
//!    checks between two requests included).
//!    p50/p99 in µs, measured in rounds alternating with the `ping_pong_u64`
//!    signal-slot round trip (unpinned, as in section 3), which gives the
//!    reference of `request_u64_unpinned_p50_ratio_vs_ping_pong`. Target: <= 1.5.
//! 6. `request_soak_*` (only with `BENCH_ONLY=request_soak`, `SOAK_ROUNDS=<n>`,
//!    default 100): rounds of 20,000 blocking requests with a 3 s timeout,
//!    counting the ones that went missing; at a miss it prints the shared
//!    memory (`__private::shared_memory_dump`) and asks again. It found a lost
//!    wake-up that showed about once in 10^7 requests under load (2026-11-30,
//!    see `shm::mailbox::Cleared`); run it with other work loading the cores.
//! 7. `group_u64_*`: one-of-N delivery across processes against a plain
//!    connection, rounds alternating: a `Dispatcher` on a parent loop emits N
//!    `(u64,)` signals from one slot to (a) a plain connection to a `Tally` in
//!    worker process 1, (b) a group of one (that worker), (c) a group of two
//!    (workers 1 and 2, two processes), (d) one-of-two written by hand: two
//!    signals plainly connected to workers 1 and 2, emitted in turn
//!    (`group_of_two_*_vs_in_turn` compares the group with it); then a
//!    `flush` signal reaches each worker behind the values; (e) a group of two
//!    inside worker 1 (two tallies on its loop: one ring, so only the group's
//!    own cost differs from (a)). Checked: the workers' counts and sums add up to
//!    what was sent, the group's counts to N per round, no drops, nothing
//!    undelivered. `*_emit_ns` is the dispatcher's own time per emit (the
//!    figure the group's choice of member adds to), `*_msgs_per_s` end to end;
//!    ratios against the plain connection of the same run. Unpinned.
//!
//! Every signal-slot measurement uses a fresh child process (forked by
//! `EventLoopProcess::start` after the objects are created and connected) and
//! checks that nothing was lost: the child's count (per round, and in total:
//! exactly warm-up + rounds x N slot calls), and `stats().dropped_total()`
//! of the parent loop, of the child loop as the child sees it (reported by a
//! slot) and of the child loop as the parent sees it (sender-side drops) are 0.
//! Raw baselines fork their own children, which leave with `_exit` and are
//! waited for. Rings have the default size (1 MiB).

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use ipc_channel::ipc::{self, IpcReceiver, IpcSender};
use serde::de::DeserializeOwned;
use serde::Serialize;
use signal_slot::prelude::*;
use std::hint::black_box;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;
use support::{
    figure, group_figures, loadavg, median, percentile, stop_and_join, target, unique_id,
    GroupFigures,
};

/// How long the bench waits for any one reply before giving up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a queued emit may wait for room in a full ring (nothing is dropped).
const BLOCK: Duration = Duration::from_secs(60);

/// The 64-byte string payload.
const TEXT64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Sizes of one run.
struct Config {
    quick: bool,
    /// `BENCH_ONLY`: run only the sections whose name contains it.
    only: Option<String>,
    /// Signals per signal-slot throughput round (u64 payload).
    throughput_n: u64,
    /// Messages per ipc-channel throughput round (u64 payload).
    ipc_throughput_n: u64,
    /// The same two for the 64-byte string payload.
    text_n: u64,
    ipc_text_n: u64,
    throughput_rounds: usize,
    /// Measured round trips per ping-pong round (after the warm-up).
    ping_pong_k: usize,
    ping_pong_warmup: usize,
    ping_pong_rounds: usize,
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
                ipc_throughput_n: 30_000,
                text_n: 200_000,
                ipc_text_n: 20_000,
                throughput_rounds: 1,
                ping_pong_k: 5_000,
                ping_pong_warmup: 500,
                ping_pong_rounds: 1,
            }
        } else {
            Config {
                quick,
                only,
                throughput_n: 2_000_000,
                ipc_throughput_n: 200_000,
                text_n: 1_000_000,
                ipc_text_n: 100_000,
                throughput_rounds: 7,
                ping_pong_k: 40_000,
                ping_pong_warmup: 4_000,
                ping_pong_rounds: 2,
            }
        }
    }

    /// Whether the section `name` runs.
    fn runs(&self, name: &str) -> bool {
        match &self.only {
            Some(o) => name.contains(o.as_str()),
            None => true,
        }
    }
}

// ---------------------------------------------------------------------------
// CPU placement

/// Where the two sides of a two-process measurement run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    Unpinned,
    /// Parent side on the first CPU, child side on the second.
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

    /// For the `placement` line.
    fn describe(self) -> String {
        match self {
            Placement::Unpinned => "unpinned".into(),
            Placement::Pinned(a, b) => format!("pinned parent=cpu{a},child=cpu{b}"),
        }
    }

    /// The CPU of side `i` (0 parent, 1 child), if pinned.
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

/// A helper object put on a parent loop to pin that loop's thread from a slot.
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

/// Pins the (running) thread of the parent loop `lp` to `cpu` and waits.
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

/// `CLOCK_MONOTONIC` in ns: one clock for every process of the machine.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---------------------------------------------------------------------------
// Raw child processes (baselines)

/// Forks a child that runs `f`, then leaves with `_exit` (0 if `f` returned,
/// 101 if it panicked). Returns the child's pid; wait for it with [`wait_child`].
fn fork_child(f: impl FnOnce()) -> libc::pid_t {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: the child runs only `f` (plain computation, ipc-channel calls, raw
    // syscalls on memory it owns) and leaves with `_exit`, never returning into
    // the parent's frames nor running its destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: prctl with PR_SET_PDEATHSIG and a signal number has no memory
        // effects: the child dies if the bench does.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let code = match catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => 0,
            Err(_) => 101,
        };
        // SAFETY: `_exit` is always safe to call; it does not return.
        unsafe { libc::_exit(code) }
    }
    pid
}

/// Waits for the child `pid` (killing it after `REPLY_TIMEOUT`); panics unless it
/// exited with code 0.
fn wait_child(pid: libc::pid_t) {
    let end = Instant::now() + REPLY_TIMEOUT;
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid, writable int; `pid` is our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        assert!(
            r == 0 || std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted,
            "waitpid({pid}): {}",
            std::io::Error::last_os_error()
        );
        if Instant::now() > end {
            // SAFETY: signalling and reaping our own child; no memory effects.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("baseline child {pid} hung: killed");
        }
        thread::sleep(Duration::from_millis(1));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "baseline child {pid} failed (wait status {status:#x})"
    );
}

// ---------------------------------------------------------------------------
// Statistics and printing

// ---------------------------------------------------------------------------
// Objects shared by the sections

/// What the parent hears from a child.
#[derive(Debug)]
enum Report {
    /// The child's loop thread was pinned; it runs on this CPU now (-1: failed).
    Pinned(i64),
    /// A throughput round ended in the child: (count, checksum, time of the last
    /// call in ns of `CLOCK_MONOTONIC`).
    Done(u64, u64, u64),
    /// The child loop's own counters: (delivered, dropped total, decode errors).
    Stats(u64, u64, u64),
    /// Every value the child's counter was called with since it was created.
    Total(u64),
}

/// Lives on a parent loop: forwards what children report into a channel.
#[derive(EventLoopObject)]
struct Reports {
    tx: Sender<Report>,
}

#[slots]
impl Reports {
    fn on_pinned(&mut self, cpu: i64) {
        let _ = self.tx.send(Report::Pinned(cpu));
    }
    fn on_done(&mut self, count: u64, sum: u64, t1_ns: u64) {
        let _ = self.tx.send(Report::Done(count, sum, t1_ns));
    }
    fn on_stats(&mut self, delivered: u64, dropped: u64, decode_errors: u64) {
        let _ = self
            .tx
            .send(Report::Stats(delivered, dropped, decode_errors));
    }
    fn on_total(&mut self, total: u64) {
        let _ = self.tx.send(Report::Total(total));
    }
}

/// Lives in a child: pins the child's loop thread, reports the child loop's stats.
#[derive(EventLoopObject)]
struct ChildControl {
    #[signal]
    pinned: Signal<(i64,)>,
    #[signal]
    stats: Signal<(u64, u64, u64)>,
    lp: EventLoop,
}

#[slots]
impl ChildControl {
    fn pin(&mut self, cpu: u64) {
        let on = usize::try_from(cpu)
            .ok()
            .and_then(|c| pin_current_thread(c).ok())
            .map_or(-1, |()| current_cpu());
        self.pinned.emit((on,));
    }
    fn report(&mut self) {
        let s = self.lp.stats();
        self.stats
            .emit((s.delivered, s.dropped_total(), s.decode_errors));
    }
}

/// A fresh child process with a `ChildControl` on its loop, whose reports reach
/// `reports` (on a parent loop). Not started.
fn child_process(
    name: &str,
    reports: &Handle<Reports>,
) -> (EventLoopProcess, Handle<ChildControl>) {
    let p = EventLoopProcess::new(unique_id(name)).expect("create child process");
    let ctl = p
        .event_loop()
        .add(
            unique_id("child-control"),
            ChildControl {
                pinned: Signal::new(),
                stats: Signal::new(),
                lp: p.event_loop().clone(),
            },
        )
        .unwrap_or_else(|e| panic!("add child control: {e}"));
    ctl.pinned()
        .connect(&reports.on_pinned())
        .expect("connect pinned");
    ctl.stats()
        .connect(&reports.on_stats())
        .expect("connect stats");
    (p, ctl)
}

/// A parent loop thread (not started) with a `Reports` on it, and the
/// channel its reports arrive on.
fn parent_loop(name: String) -> (EventLoopThread, Handle<Reports>, Receiver<Report>) {
    let parent = EventLoopThread::new(name);
    let (rep_tx, rep_rx) = unbounded();
    let reports = parent
        .event_loop()
        .add(unique_id("reports"), Reports { tx: rep_tx })
        .unwrap_or_else(|e| panic!("add reports: {e}"));
    (parent, reports, rep_rx)
}

fn next_report(rx: &Receiver<Report>) -> Report {
    rx.recv_timeout(REPLY_TIMEOUT)
        .expect("a report from the child within the timeout")
}

/// Pins the parent loop and the (started) child loop as `placement` says.
fn place(
    placement: Placement,
    parent: &EventLoop,
    ctl: &Handle<ChildControl>,
    rx: &Receiver<Report>,
) {
    if let Some(c) = placement.cpu(0) {
        pin_loop(parent, c);
    }
    if let Some(c) = placement.cpu(1) {
        ctl.pin().invoke((c as u64,)).expect("invoke child pin");
        match next_report(rx) {
            Report::Pinned(on) => assert_eq!(on, c as i64, "child loop not on cpu{c}"),
            other => panic!("expected the child's pin report, got {other:?}"),
        }
    }
}

/// Checks that no loop of a finished measurement dropped anything; stops the
/// parent loop and the child. Returns (child delivered, dropped total).
fn finish(
    parent: &EventLoopThread,
    p: &EventLoopProcess,
    ctl: &Handle<ChildControl>,
    rx: &Receiver<Report>,
) -> (u64, u64) {
    ctl.report().invoke(()).expect("invoke child report");
    let (delivered, child_dropped, decode_errors) = match next_report(rx) {
        Report::Stats(d, dr, de) => (d, dr, de),
        other => panic!("expected the child's stats, got {other:?}"),
    };
    let parent_dropped = parent.event_loop().stats().dropped_total();
    let sender_side = p.event_loop().stats().dropped_total();
    let dropped = child_dropped + parent_dropped + sender_side;
    assert_eq!(
        (child_dropped, parent_dropped, sender_side, decode_errors),
        (0, 0, 0, 0),
        "(child loop, parent loop, sender side) dropped, child decode errors"
    );
    stop_and_join(parent);
    p.stop().expect("stop child");
    let status = p.join().expect("join child");
    assert!(status.success(), "child process: {status}");
    (delivered, dropped)
}

// ---------------------------------------------------------------------------
// 1, 2. Throughput parent -> child

/// Lives on the parent loop; emits as fast as it can inside one slot.
#[derive(EventLoopObject)]
struct Producer {
    #[signal]
    value: Signal<(u64,)>,
    #[signal]
    text: Signal<(String,)>,
    payload: String,
    /// (t0 ns before the first emit, t ns after the last) per round.
    started: Sender<(u64, u64)>,
}

#[slots]
impl Producer {
    fn run_values(&mut self, n: u64) {
        let t0 = mono_ns();
        for i in 0..n {
            self.value.emit((i,));
        }
        let _ = self.started.send((t0, mono_ns()));
    }

    fn run_texts(&mut self, n: u64) {
        let t0 = mono_ns();
        for _ in 0..n {
            self.text.emit((self.payload.clone(),));
        }
        let _ = self.started.send((t0, mono_ns()));
    }
}

/// Lives in the child; counts a round and reports its end to the parent.
#[derive(EventLoopObject)]
struct Counter {
    #[signal]
    done: Signal<(u64, u64, u64)>,
    #[signal]
    total: Signal<(u64,)>,
    expected: u64,
    count: u64,
    sum: u64,
    calls: u64,
}

impl Counter {
    #[inline]
    fn count(&mut self, v: u64) {
        self.calls += 1;
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
        if self.count == self.expected {
            self.done.emit((self.count, self.sum, mono_ns()));
            self.count = 0;
            self.sum = 0;
        }
    }
}

#[slots]
impl Counter {
    /// Starts a round of `n` calls.
    fn arm(&mut self, n: u64) {
        (self.expected, self.count, self.sum) = (n, 0, 0);
    }
    fn on_value(&mut self, v: u64) {
        self.count(v);
    }
    fn on_text(&mut self, s: String) {
        self.count(s.len() as u64);
    }
    /// Reports every call counted so far.
    fn report_total(&mut self) {
        self.total.emit((self.calls,));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Payload {
    U64,
    Text64,
}

impl Payload {
    fn tag(self) -> &'static str {
        match self {
            Payload::U64 => "u64",
            Payload::Text64 => "string64",
        }
    }

    /// The checksum the child reports for a round of `n`.
    fn expected_sum(self, n: u64) -> u64 {
        match self {
            Payload::U64 => n * (n - 1) / 2,
            Payload::Text64 => n * TEXT64.len() as u64,
        }
    }
}

/// One throughput round's result: msgs/s end to end, producer ns per emit.
struct Round {
    rate: f64,
    emit_ns: f64,
}

/// signal-slot rounds; `after_round` runs after each (the raw baseline, so
/// background load hits both alike). Returns the rounds and (child counted,
/// dropped total).
fn throughput_signal_slot(
    cfg: &Config,
    payload: Payload,
    placement: Placement,
    mut after_round: impl FnMut(),
) -> (Vec<Round>, u64, u64) {
    let n = match payload {
        Payload::U64 => cfg.throughput_n,
        Payload::Text64 => cfg.text_n,
    };
    let (parent, reports, rep_rx) = parent_loop(unique_id("tp-parent"));
    let (started_tx, started_rx) = unbounded();
    let producer = parent
        .event_loop()
        .add(
            unique_id("producer"),
            Producer {
                value: Signal::new(),
                text: Signal::new(),
                payload: TEXT64.to_string(),
                started: started_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add producer: {e}"));
    let (p, ctl) = child_process("tp-child", &reports);
    let counter = p
        .event_loop()
        .add(
            unique_id("counter"),
            Counter {
                done: Signal::new(),
                total: Signal::new(),
                expected: 0,
                count: 0,
                sum: 0,
                calls: 0,
            },
        )
        .unwrap_or_else(|e| panic!("add counter: {e}"));
    let opts = || ConnectOptions::new().overflow(Overflow::Block(BLOCK));
    match payload {
        Payload::U64 => producer
            .value()
            .connect_with(&counter.on_value(), opts())
            .expect("connect value"),
        Payload::Text64 => producer
            .text()
            .connect_with(&counter.on_text(), opts())
            .expect("connect text"),
    };
    counter
        .done()
        .connect(&reports.on_done())
        .expect("connect done");
    counter
        .total()
        .connect(&reports.on_total())
        .expect("connect total");
    p.start().expect("start child");
    parent.start().expect("start parent loop");
    place(placement, parent.event_loop(), &ctl, &rep_rx);

    let round = |k: u64| -> Round {
        counter.arm().invoke((k,)).expect("invoke arm");
        match payload {
            Payload::U64 => producer.run_values().invoke((k,)),
            Payload::Text64 => producer.run_texts().invoke((k,)),
        }
        .expect("invoke run");
        let (t0, t_emitted) = started_rx
            .recv_timeout(REPLY_TIMEOUT)
            .expect("producer finished");
        let (count, sum, t1) = match next_report(&rep_rx) {
            Report::Done(c, s, t) => (c, s, t),
            other => panic!("expected the child's done, got {other:?}"),
        };
        assert_eq!(
            (count, sum),
            (k, payload.expected_sum(k)),
            "the child counted other values than sent"
        );
        Round {
            rate: k as f64 / (t1.saturating_sub(t0).max(1) as f64 / 1e9),
            emit_ns: (t_emitted - t0) as f64 / k as f64,
        }
    };
    // Untimed warm-up: faults in the ring pages, wakes both sides up.
    let warm = (n / 4).max(1);
    black_box(round(warm).rate);
    let mut rounds = Vec::new();
    for _ in 0..cfg.throughput_rounds {
        rounds.push(round(n));
        after_round();
    }
    // Exactly what was sent arrived: no more, no less.
    counter
        .report_total()
        .invoke(())
        .expect("invoke report_total");
    let counted = n * cfg.throughput_rounds as u64;
    match next_report(&rep_rx) {
        Report::Total(t) => assert_eq!(t, counted + warm, "the child's slot calls"),
        other => panic!("expected the child's total, got {other:?}"),
    }
    let (delivered, dropped) = finish(&parent, &p, &ctl, &rep_rx);
    assert!(
        delivered >= counted + warm,
        "child loop delivered {delivered} calls, fewer than the {counted} counted"
    );
    (rounds, counted, dropped)
}

/// msgs/s of one raw ipc-channel round of `n` messages made by `make` from a
/// parent thread to a forked child, which sums `measure` of each.
fn throughput_ipc<T: Serialize + DeserializeOwned + Send + 'static>(
    n: u64,
    placement: Placement,
    make: fn(u64) -> T,
    measure: fn(&T) -> u64,
) -> (f64, u64) {
    let (tx, rx): (IpcSender<T>, IpcReceiver<T>) = ipc::channel().expect("ipc channel");
    let (ack_tx, ack_rx) = ipc::channel::<(u64, u64, u64)>().expect("ipc channel");
    let child_cpu = placement.cpu(1);
    let parent = spawn_placed(placement.cpu(0), move || {
        let pid = fork_child(|| {
            if let Some(c) = child_cpu {
                pin_current_thread(c).expect("pin baseline child");
            }
            let mut sum = 0u64;
            for _ in 0..n {
                sum = sum.wrapping_add(measure(&rx.recv().expect("ipc recv")));
            }
            ack_tx.send((n, sum, mono_ns())).expect("ipc ack");
        });
        drop(ack_tx);
        let t0 = mono_ns();
        for i in 0..n {
            tx.send(make(i)).expect("ipc send");
        }
        let (count, sum, t1) = ack_rx.recv().expect("ipc ack from child");
        wait_child(pid);
        assert_eq!(count, n);
        (n as f64 / (t1.saturating_sub(t0).max(1) as f64 / 1e9), sum)
    });
    parent.join().expect("ipc throughput parent")
}

/// Slots of the raw ring (16 bytes each: 1 MiB, the size of our rings).
const RAW_SLOTS: u64 = 1 << 16;
/// Where the raw ring's data starts (the counters before it, a line each).
const RAW_DATA: usize = 256;

/// msgs/s of one round of `n` `u64`s through a bare single-producer
/// single-consumer ring in shared memory, from a parent thread to a forked
/// child: the ceiling the hardware gives a shared-memory queue in this
/// placement, to read our figure against. Slot `i % RAW_SLOTS` holds
/// `[seq, value]`; the producer writes the value, then `seq = i + 1`
/// (Release), and reads the consumer's released count only when its known
/// room runs out; the consumer spins (pause) on `seq`, sums, and releases
/// every 64 slots. No wake-ups, no framing, no encoding: what a queue cannot
/// go below.
fn throughput_raw_ring(n: u64, placement: Placement) -> f64 {
    const HEAD: usize = 0;
    const DONE: usize = 64;
    const SUM: usize = 72;
    const T1: usize = 80;
    let mem = SharedPage::with_len(RAW_DATA + RAW_SLOTS as usize * 16);
    let child_cpu = placement.cpu(1);
    let parent = spawn_placed(placement.cpu(0), move || {
        let m = &mem;
        let pid = fork_child(|| {
            if let Some(c) = child_cpu {
                pin_current_thread(c).expect("pin raw ring child");
            }
            let end = Instant::now() + REPLY_TIMEOUT;
            let mut sum = 0u64;
            for i in 0..n {
                let off = RAW_DATA + (i % RAW_SLOTS) as usize * 16;
                let mut spins = 0u32;
                while m.word64(off).load(Ordering::Acquire) != i + 1 {
                    std::hint::spin_loop();
                    spins = spins.wrapping_add(1);
                    // A clock reading every 65,536 pauses (~1-2 ms).
                    if spins % (1 << 16) == 0 {
                        assert!(Instant::now() < end, "raw ring producer went silent");
                    }
                }
                sum = sum.wrapping_add(m.word64(off + 8).load(Ordering::Relaxed));
                if i % 64 == 63 {
                    m.word64(HEAD).store(i + 1, Ordering::Release);
                }
            }
            m.word64(T1).store(mono_ns(), Ordering::Relaxed);
            m.word64(SUM).store(sum, Ordering::Relaxed);
            m.word64(DONE).store(1, Ordering::Release);
        });
        let end = Instant::now() + REPLY_TIMEOUT;
        let t0 = mono_ns();
        let mut head = 0u64;
        for i in 0..n {
            while i - head >= RAW_SLOTS {
                head = m.word64(HEAD).load(Ordering::Acquire);
                assert!(Instant::now() < end, "raw ring consumer went silent");
            }
            let off = RAW_DATA + (i % RAW_SLOTS) as usize * 16;
            m.word64(off + 8).store(i, Ordering::Relaxed);
            m.word64(off).store(i + 1, Ordering::Release);
        }
        while m.word64(DONE).load(Ordering::Acquire) == 0 {
            assert!(Instant::now() < end, "raw ring consumer did not finish");
            thread::sleep(Duration::from_micros(50));
        }
        wait_child(pid);
        let (sum, t1) = (
            m.word64(SUM).load(Ordering::Relaxed),
            m.word64(T1).load(Ordering::Relaxed),
        );
        assert_eq!(
            sum,
            Payload::U64.expected_sum(n),
            "raw ring child got other values"
        );
        n as f64 / (t1.saturating_sub(t0).max(1) as f64 / 1e9)
    });
    parent.join().expect("raw ring throughput parent")
}

fn ipc_round(n: u64, payload: Payload, placement: Placement) -> f64 {
    let (rate, sum) = match payload {
        Payload::U64 => throughput_ipc(n, placement, |i| i, |v| *v),
        Payload::Text64 => throughput_ipc(
            n,
            placement,
            |_| TEXT64.to_string(),
            |s: &String| s.len() as u64,
        ),
    };
    assert_eq!(sum, payload.expected_sum(n), "ipc child got other values");
    rate
}

fn bench_throughput(cfg: &Config, payload: Payload, placement: Placement) {
    let tag = format!("throughput_{}_{}", payload.tag(), placement.tag());
    println!("placement {}", placement.describe());
    let ipc_n = match payload {
        Payload::U64 => cfg.ipc_throughput_n,
        Payload::Text64 => cfg.ipc_text_n,
    };
    let mut ipc_rates = Vec::new();
    let mut ring_rates = Vec::new();
    let (rounds, counted, dropped) = throughput_signal_slot(cfg, payload, placement, || {
        ipc_rates.push(ipc_round(ipc_n, payload, placement));
        if payload == Payload::U64 {
            ring_rates.push(throughput_raw_ring(cfg.throughput_n, placement));
        }
    });
    let mut rates: Vec<f64> = rounds.iter().map(|r| r.rate).collect();
    let mut emit_ns: Vec<f64> = rounds.iter().map(|r| r.emit_ns).collect();
    // In run order: this VM's rounds fall into regimes (a consumer that keeps
    // up with its producer, or lags) that the median and range hide.
    let in_order: Vec<String> = rounds
        .iter()
        .map(|r| format!("{:.1}", r.rate / 1e6))
        .collect();
    println!(
        "# signal-slot rounds in run order (M msgs/s): {}",
        in_order.join(" ")
    );
    let ours = median(&mut rates);
    let raw = median(&mut ipc_rates);
    let ratio = ours / raw;
    let range = |v: &[f64]| format!("{:.0}..{:.0}", v[0], v[v.len() - 1]);
    println!(
        "# rounds (msgs/s, min..max): signal-slot {} (N={}), ipc-channel {} (N={ipc_n})",
        range(&rates),
        match payload {
            Payload::U64 => cfg.throughput_n,
            Payload::Text64 => cfg.text_n,
        },
        range(&ipc_rates),
    );
    if !ring_rates.is_empty() {
        let ring = median(&mut ring_rates);
        println!("# raw shm ring rounds (msgs/s): {}", range(&ring_rates));
        figure(
            &format!("{tag}_raw_shm_ring_msgs_per_s"),
            format!("{ring:.0}"),
        );
        figure(
            &format!("{tag}_ratio_vs_raw_shm_ring"),
            format!("{:.2}", ours / ring),
        );
    }
    figure(&format!("{tag}_child_counted"), counted);
    figure(&format!("{tag}_dropped_total"), dropped);
    figure(
        &format!("{tag}_signal_slot_msgs_per_s"),
        format!("{ours:.0}"),
    );
    figure(
        &format!("{tag}_signal_slot_emit_ns"),
        format!("{:.1}", median(&mut emit_ns)),
    );
    figure(
        &format!("{tag}_ipc_channel_msgs_per_s"),
        format!("{raw:.0}"),
    );
    figure(
        &format!("{tag}_ratio_vs_ipc_channel"),
        format!("{ratio:.2}"),
    );
    if payload == Payload::U64 {
        target(">= 20 M signals/s", ours >= 20e6);
        target(">= 15x ipc-channel", ratio >= 15.0);
    }
}

// ---------------------------------------------------------------------------
// 3, 4. Ping-pong parent <-> child

/// Lives on the parent loop; plays the round trips and times them.
#[derive(EventLoopObject)]
struct Pinger {
    #[signal]
    ping: Signal<(u64,)>,
    #[signal]
    ping_text: Signal<(String,)>,
    remaining: usize,
    last: Instant,
    samples: Vec<u64>,
    done: Sender<Vec<u64>>,
}

impl Pinger {
    /// Records one round trip; false when the game is over.
    #[inline]
    fn lap(&mut self) -> bool {
        let now = Instant::now();
        self.samples
            .push(now.duration_since(self.last).as_nanos() as u64);
        self.last = now;
        self.remaining -= 1;
        if self.remaining == 0 {
            let _ = self.done.send(std::mem::take(&mut self.samples));
            false
        } else {
            true
        }
    }

    fn begin(&mut self, k: u64) {
        self.remaining = k as usize;
        self.samples = Vec::with_capacity(self.remaining);
        self.last = Instant::now();
    }
}

#[slots]
impl Pinger {
    /// Plays `k` round trips with a `u64`, then sends their durations (ns).
    fn start(&mut self, k: u64) {
        self.begin(k);
        self.ping.emit((0,));
    }

    /// Plays `k` round trips with a 64-byte string.
    fn start_text(&mut self, k: u64) {
        self.begin(k);
        self.ping_text.emit((TEXT64.to_string(),));
    }

    fn on_pong(&mut self, seq: u64) {
        if self.lap() {
            self.ping.emit((seq + 1,));
        }
    }

    fn on_pong_text(&mut self, s: String) {
        assert_eq!(s.len(), TEXT64.len(), "string payload changed");
        if self.lap() {
            self.ping_text.emit((s,));
        }
    }
}

/// Lives in the child: answers each ping.
#[derive(EventLoopObject, Default)]
struct Ponger {
    #[signal]
    pong: Signal<(u64,)>,
    #[signal]
    pong_text: Signal<(String,)>,
}

#[slots]
impl Ponger {
    fn on_ping(&mut self, seq: u64) {
        self.pong.emit((seq,));
    }
    fn on_ping_text(&mut self, s: String) {
        self.pong_text.emit((s,));
    }
}

/// Round-trip samples (ns) of the signal-slot ping-pong, warm-up dropped; and
/// the dropped total (0, checked).
fn ping_pong_signal_slot(cfg: &Config, payload: Payload, placement: Placement) -> (Vec<u64>, u64) {
    let (parent, reports, rep_rx) = parent_loop(unique_id("pp-parent"));
    let (done_tx, done_rx) = bounded(1);
    let pinger = parent
        .event_loop()
        .add(
            unique_id("pinger"),
            Pinger {
                ping: Signal::new(),
                ping_text: Signal::new(),
                remaining: 0,
                last: Instant::now(),
                samples: Vec::new(),
                done: done_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add pinger: {e}"));
    let (p, ctl) = child_process("pp-child", &reports);
    let ponger = p
        .event_loop()
        .add(unique_id("ponger"), Ponger::default())
        .unwrap_or_else(|e| panic!("add ponger: {e}"));
    match payload {
        Payload::U64 => {
            pinger
                .ping()
                .connect(&ponger.on_ping())
                .expect("connect ping");
            ponger
                .pong()
                .connect(&pinger.on_pong())
                .expect("connect pong");
        }
        Payload::Text64 => {
            pinger
                .ping_text()
                .connect(&ponger.on_ping_text())
                .expect("connect ping");
            ponger
                .pong_text()
                .connect(&pinger.on_pong_text())
                .expect("connect pong");
        }
    }
    p.start().expect("start child");
    parent.start().expect("start parent loop");
    place(placement, parent.event_loop(), &ctl, &rep_rx);
    let total = (cfg.ping_pong_warmup + cfg.ping_pong_k) as u64;
    match payload {
        Payload::U64 => pinger.start().invoke((total,)),
        Payload::Text64 => pinger.start_text().invoke((total,)),
    }
    .expect("invoke start");
    let samples = done_rx
        .recv_timeout(REPLY_TIMEOUT)
        .expect("ping-pong finished");
    assert_eq!(samples.len() as u64, total);
    let (delivered, dropped) = finish(&parent, &p, &ctl, &rep_rx);
    assert!(delivered >= total, "child answered {delivered} < {total}");
    (samples[cfg.ping_pong_warmup..].to_vec(), dropped)
}

/// Round-trip samples (ns) of a parent thread and a forked child bouncing a
/// value over two ipc-channel channels, warm-up dropped.
fn ping_pong_ipc<T: Serialize + DeserializeOwned + Send + 'static>(
    cfg: &Config,
    placement: Placement,
    first: fn() -> T,
) -> Vec<u64> {
    let (ping_tx, ping_rx) = ipc::channel::<T>().expect("ipc channel");
    let (pong_tx, pong_rx) = ipc::channel::<T>().expect("ipc channel");
    let total = cfg.ping_pong_warmup + cfg.ping_pong_k;
    let warmup = cfg.ping_pong_warmup;
    let child_cpu = placement.cpu(1);
    let parent = spawn_placed(placement.cpu(0), move || {
        let pid = fork_child(|| {
            if let Some(c) = child_cpu {
                pin_current_thread(c).expect("pin baseline child");
            }
            for _ in 0..total {
                let v = ping_rx.recv().expect("ipc recv ping");
                pong_tx.send(v).expect("ipc send pong");
            }
        });
        drop(pong_tx);
        let mut samples = Vec::with_capacity(total);
        let mut v = first();
        let mut last = Instant::now();
        for _ in 0..total {
            ping_tx.send(v).expect("ipc send ping");
            v = pong_rx.recv().expect("ipc recv pong");
            let now = Instant::now();
            samples.push(now.duration_since(last).as_nanos() as u64);
            last = now;
        }
        black_box(v);
        wait_child(pid);
        samples
    });
    let samples = parent.join().expect("ipc ping-pong parent");
    samples[warmup..].to_vec()
}

/// Shared, zeroed memory (`MAP_SHARED | MAP_ANONYMOUS`): survives `fork` as the
/// same memory in both processes.
struct SharedPage {
    ptr: *mut libc::c_void,
    len: usize,
}

const PAGE: usize = 4096;

impl SharedPage {
    fn new() -> Self {
        Self::with_len(PAGE)
    }

    fn with_len(len: usize) -> Self {
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(
            ptr != libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        Self { ptr, len }
    }

    /// The 32-bit word at byte `offset` (a multiple of 4 below the length).
    fn word(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.len);
        // SAFETY: inside the page-aligned mapping, 4-aligned, mapped while `self`
        // lives; AtomicU32 has the size and alignment of u32, and zero is valid.
        unsafe { &*self.ptr.cast::<u8>().add(offset).cast::<AtomicU32>() }
    }

    /// The 64-bit word at byte `offset` (a multiple of 8 below the length).
    fn word64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len);
        // SAFETY: inside the page-aligned mapping, 8-aligned, mapped while `self`
        // lives; AtomicU64 has the size and alignment of u64, and zero is valid.
        unsafe { &*self.ptr.cast::<u8>().add(offset).cast::<AtomicU64>() }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference into it
        // outlives `self`.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

// SAFETY: the page is only accessed through atomics.
unsafe impl Send for SharedPage {}

/// One direction of the one-word futex ping-pong (and the tail of an
/// [`IndexRing`], the slot words of a [`SlotRing`]): a sequence word and a
/// sleeper count.
struct FutexLane<'a> {
    seq: &'a AtomicU32,
    sleepers: &'a AtomicU32,
}

impl FutexLane<'_> {
    /// Publishes `v`; wakes the peer if it announced it sleeps.
    #[inline]
    fn send(&self, v: u32) {
        self.seq.store(v, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            // SAFETY: FUTEX_WAKE only uses the address as a key (not private:
            // the waiter is another process).
            unsafe {
                libc::syscall(libc::SYS_futex, self.seq.as_ptr(), libc::FUTEX_WAKE, 1);
            }
        }
    }

    /// Waits until the word differs from `last`: spins like the event loop's
    /// idle path (crossbeam `Backoff`: 2^0..2^6 pause hints, then 4 yields), then
    /// sleeps in FUTEX_WAIT. Panics after `REPLY_TIMEOUT`.
    #[inline]
    fn recv(&self, last: u32) -> u32 {
        self.recv_spinning(last, true)
    }

    /// [`recv`](Self::recv), or with `spin` false a plain futex wait: one look
    /// at the word, then `FUTEX_WAIT` until it moves.
    #[inline]
    fn recv_spinning(&self, last: u32, spin: bool) -> u32 {
        for step in (0..=10u32).take_while(|_| spin) {
            let v = self.seq.load(Ordering::Acquire);
            if v != last {
                return v;
            }
            if step <= 6 {
                for _ in 0..1u32 << step {
                    std::hint::spin_loop();
                }
            } else {
                thread::yield_now();
            }
        }
        if !spin {
            let v = self.seq.load(Ordering::Acquire);
            if v != last {
                return v;
            }
        }
        let end = Instant::now() + REPLY_TIMEOUT;
        let ts = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        loop {
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let v = self.seq.load(Ordering::SeqCst);
            if v == last {
                // SAFETY: `seq` is a live, aligned u32 in the shared mapping;
                // FUTEX_WAIT only reads it; `ts` outlives the call. Every return
                // (wake, EAGAIN, EINTR, timeout) re-checks the word.
                unsafe {
                    libc::syscall(
                        libc::SYS_futex,
                        self.seq.as_ptr(),
                        libc::FUTEX_WAIT,
                        last,
                        &ts as *const libc::timespec,
                    );
                }
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            let v = self.seq.load(Ordering::Acquire);
            if v != last {
                return v;
            }
            assert!(Instant::now() < end, "futex ping-pong peer went silent");
        }
    }
}

/// One direction of a shared-memory baseline of the ping-pong, at a byte
/// offset of a [`SharedPage`] (at most 1,280 bytes from there, with a line of
/// its own for what each side writes): entry number `i` (the count sent
/// before) carries `v`.
trait Lane: Copy + Send + 'static {
    /// The figures' name.
    const TAG: &'static str;
    fn at(at: usize) -> Self;
    /// Producer. `head_seen`: the consumer's head as this producer last read
    /// it (a ring reads the shared one only when that says full).
    fn send(self, page: &SharedPage, i: u32, v: u64, head_seen: &mut u32);
    /// Consumer: waits for entry `i` and returns its value.
    fn recv(self, page: &SharedPage, i: u32) -> u64;
}

/// Slots of a ring baseline (a power of two).
const RING_SLOTS: u32 = 64;

/// Waits until the consumer's `head` leaves room for entry `i` of a ring of
/// [`RING_SLOTS`].
#[inline]
fn wait_for_room(head: &AtomicU32, i: u32, head_seen: &mut u32) {
    if i.wrapping_sub(*head_seen) < RING_SLOTS {
        return;
    }
    let end = Instant::now() + REPLY_TIMEOUT;
    loop {
        *head_seen = head.load(Ordering::Acquire);
        if i.wrapping_sub(*head_seen) < RING_SLOTS {
            return;
        }
        std::hint::spin_loop();
        assert!(Instant::now() < end, "ring consumer went silent");
    }
}

/// `futex_word`: the floor of a shared-memory hop, a sequence word and
/// nothing else (no slot, no payload: the value sent is the sequence).
#[derive(Clone, Copy)]
struct WordLane(usize);

impl WordLane {
    fn lane(self, page: &SharedPage) -> FutexLane<'_> {
        FutexLane {
            seq: page.word(self.0),
            sleepers: page.word(self.0 + 4),
        }
    }
}

impl Lane for WordLane {
    const TAG: &'static str = "futex_word";
    fn at(at: usize) -> Self {
        WordLane(at)
    }
    #[inline]
    fn send(self, page: &SharedPage, i: u32, v: u64, _: &mut u32) {
        debug_assert_eq!(v, u64::from(i) + 1);
        self.lane(page).send(i.wrapping_add(1));
    }
    #[inline]
    fn recv(self, page: &SharedPage, i: u32) -> u64 {
        u64::from(self.lane(page).recv(i))
    }
}

/// `slot_ring` (`SPIN`) and `futex_ring` (not `SPIN`, see [`FutexRing`]): a
/// ring whose slots publish themselves, the plain ring built for latency (ours
/// publishes its records the same way): 16-byte slots of a
/// sequence word and a `u64`, so a hop moves the slot's cache line only. The
/// producer writes the value, then the slot's sequence (`i + 1`), and wakes
/// a sleeper; the consumer waits on that slot's sequence (its futex word),
/// reads the value, and releases the slot through the head. Head and
/// sleeper count are on lines of their own, which the producer only reads.
#[derive(Clone, Copy)]
struct SlotRing<const SPIN: bool = true>(usize);

/// `futex_ring`: a [`SlotRing`] whose waiter does not spin (one look at the
/// slot, then `FUTEX_WAIT`), so every hop to a waiting peer is a futex wake.
/// Its one-core figure is the issue's "~1.8 us when the scheduler keeps both
/// on one core" (both on cpu0 here: 2-4 us; the spinning one takes 5-7 us
/// there); across cores each hop pays a cross-core wake-up (~5 us here).
type FutexRing = SlotRing<false>;

impl<const SPIN: bool> SlotRing<SPIN> {
    /// Byte offset of slot `i`'s sequence word (its value follows).
    fn slot(self, i: u32) -> usize {
        self.0 + 256 + (i % RING_SLOTS) as usize * 16
    }

    /// The lane of slot `i`'s sequence word.
    fn lane(self, page: &SharedPage, i: u32) -> FutexLane<'_> {
        FutexLane {
            seq: page.word(self.slot(i)),
            sleepers: page.word(self.0 + 128),
        }
    }
}

impl<const SPIN: bool> Lane for SlotRing<SPIN> {
    const TAG: &'static str = if SPIN { "slot_ring" } else { "futex_ring" };
    fn at(at: usize) -> Self {
        SlotRing(at)
    }
    #[inline]
    fn send(self, page: &SharedPage, i: u32, v: u64, head_seen: &mut u32) {
        wait_for_room(page.word(self.0), i, head_seen);
        page.word64(self.slot(i) + 8).store(v, Ordering::Relaxed);
        self.lane(page, i).send(i.wrapping_add(1));
    }
    #[inline]
    fn recv(self, page: &SharedPage, i: u32) -> u64 {
        // The slot holds entry `i - RING_SLOTS` (or nothing) until then.
        let before = i.checked_sub(RING_SLOTS).map_or(0, |e| e + 1);
        let seq = self.lane(page, i).recv_spinning(before, SPIN);
        assert_eq!(seq, i.wrapping_add(1), "slot ring out of step");
        let v = page.word64(self.slot(i) + 8).load(Ordering::Relaxed);
        page.word(self.0)
            .store(i.wrapping_add(1), Ordering::Release);
        v
    }
}

/// `index_ring`: the textbook single-producer single-consumer ring of fixed
/// slots (a `u64` each) with a tail and a head index on cache lines of their
/// own, woken through a futex on the tail. The producer writes the slot, then
/// publishes the tail; the consumer sees the tail move, then reads the slot:
/// two cache lines a hop, one after the other.
#[derive(Clone, Copy)]
struct IndexRing(usize);

impl IndexRing {
    fn tail(self, page: &SharedPage) -> FutexLane<'_> {
        FutexLane {
            seq: page.word(self.0),
            sleepers: page.word(self.0 + 4),
        }
    }

    fn slot(self, page: &SharedPage, i: u32) -> &AtomicU64 {
        page.word64(self.0 + 256 + (i % RING_SLOTS) as usize * 8)
    }
}

impl Lane for IndexRing {
    const TAG: &'static str = "index_ring";
    fn at(at: usize) -> Self {
        IndexRing(at)
    }
    #[inline]
    fn send(self, page: &SharedPage, i: u32, v: u64, head_seen: &mut u32) {
        wait_for_room(page.word(self.0 + 128), i, head_seen);
        self.slot(page, i).store(v, Ordering::Relaxed);
        self.tail(page).send(i.wrapping_add(1));
    }
    #[inline]
    fn recv(self, page: &SharedPage, i: u32) -> u64 {
        self.tail(page).recv(i);
        let v = self.slot(page, i).load(Ordering::Relaxed);
        page.word(self.0 + 128)
            .store(i.wrapping_add(1), Ordering::Release);
        v
    }
}

/// Round-trip samples (ns) of a ping-pong over two lanes `L` (one each way,
/// 2 KiB apart in one shared page) between a parent thread and a forked
/// child, warm-up dropped. The child echoes each value; checked.
fn ping_pong_baseline<L: Lane>(cfg: &Config, placement: Placement) -> Vec<u64> {
    let total = cfg.ping_pong_warmup + cfg.ping_pong_k;
    let warmup = cfg.ping_pong_warmup;
    // Entries are counted in u32 (the futex word's width).
    let entries = u32::try_from(total).expect("ping-pong rounds fit a u32");
    let child_cpu = placement.cpu(1);
    let page = SharedPage::new();
    let parent = spawn_placed(placement.cpu(0), move || {
        let (ping, pong) = (L::at(0), L::at(2048));
        let pid = fork_child(|| {
            if let Some(c) = child_cpu {
                pin_current_thread(c).expect("pin baseline child");
            }
            let mut head_seen = 0;
            for i in 0..entries {
                let v = ping.recv(&page, i);
                pong.send(&page, i, v, &mut head_seen);
            }
        });
        let mut head_seen = 0;
        let mut samples = Vec::with_capacity(total);
        let mut last = Instant::now();
        for i in 0..entries {
            let v = u64::from(i) + 1;
            ping.send(&page, i, v, &mut head_seen);
            let back = pong.recv(&page, i);
            assert_eq!(back, v, "{} ping-pong out of step", L::TAG);
            let now = Instant::now();
            samples.push(now.duration_since(last).as_nanos() as u64);
            last = now;
        }
        wait_child(pid);
        drop(page);
        samples
    });
    let samples = parent.join().expect("baseline ping-pong parent");
    samples[warmup..].to_vec()
}

/// With `BENCH_TAILS=1`: more percentiles and a histogram of each kind's
/// sorted round trips (how the fault tail of 2026-12-01 was found: a bump at
/// 1.5-3.5 us in ours only).
fn print_tails<'a>(tag: &str, kinds: impl Iterator<Item = (&'a str, &'a Vec<u64>)>) {
    for (name, v) in kinds.filter(|(_, v)| !v.is_empty()) {
        for p in [90.0, 99.5, 99.9] {
            figure(&format!("{tag}_{name}_p{p}_us"), us(percentile(v, p)));
        }
        let mut bins = [0usize; 24];
        for &x in v {
            bins[usize::try_from(x / 500).unwrap_or(usize::MAX).min(23)] += 1;
        }
        println!(
            "# {tag} {name} round trips per 0.5 us from 0 (the last: 11.5 us and more): {bins:?}"
        );
    }
}

fn us(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1000.0)
}

fn bench_ping_pong(cfg: &Config, payload: Payload, placement: Placement) {
    let tag = format!("ping_pong_{}_{}", payload.tag(), placement.tag());
    println!("placement {}", placement.describe());
    let (mut ours, mut ipc) = (Vec::new(), Vec::new());
    // The shared-memory baselines, by `Lane::TAG`; the first one is the
    // target's.
    let mut shm: [(&str, Vec<u64>); 4] = [
        (FutexRing::TAG, Vec::new()),
        (<SlotRing>::TAG, Vec::new()),
        (IndexRing::TAG, Vec::new()),
        (WordLane::TAG, Vec::new()),
    ];
    let mut dropped = 0;
    // Alternate the kinds so a burst of background load hits all alike.
    for _ in 0..cfg.ping_pong_rounds {
        let (samples, d) = ping_pong_signal_slot(cfg, payload, placement);
        ours.extend(samples);
        dropped += d;
        match payload {
            Payload::U64 => {
                ipc.extend(ping_pong_ipc(cfg, placement, || 0u64));
                shm[0]
                    .1
                    .extend(ping_pong_baseline::<FutexRing>(cfg, placement));
                shm[1]
                    .1
                    .extend(ping_pong_baseline::<SlotRing<true>>(cfg, placement));
                shm[2]
                    .1
                    .extend(ping_pong_baseline::<IndexRing>(cfg, placement));
                shm[3]
                    .1
                    .extend(ping_pong_baseline::<WordLane>(cfg, placement));
            }
            Payload::Text64 => {
                ipc.extend(ping_pong_ipc(cfg, placement, || TEXT64.to_string()));
            }
        }
    }
    ours.sort_unstable();
    ipc.sort_unstable();
    for (_, v) in &mut shm {
        v.sort_unstable();
    }
    if std::env::var_os("BENCH_TAILS").is_some() {
        let kinds = std::iter::once(("signal_slot", &ours)).chain(shm.iter().map(|(n, v)| (*n, v)));
        print_tails(&tag, kinds);
    }
    let (o50, o99) = (percentile(&ours, 50.0), percentile(&ours, 99.0));
    let (i50, i99) = (percentile(&ipc, 50.0), percentile(&ipc, 99.0));
    figure(&format!("{tag}_round_trips"), ours.len());
    figure(&format!("{tag}_dropped_total"), dropped);
    figure(&format!("{tag}_signal_slot_p50_us"), us(o50));
    figure(&format!("{tag}_signal_slot_p99_us"), us(o99));
    figure(&format!("{tag}_ipc_channel_p50_us"), us(i50));
    figure(&format!("{tag}_ipc_channel_p99_us"), us(i99));
    for (name, v) in &shm {
        if !v.is_empty() {
            figure(&format!("{tag}_{name}_p50_us"), us(percentile(v, 50.0)));
            figure(&format!("{tag}_{name}_p99_us"), us(percentile(v, 99.0)));
        }
    }
    let ratio_ipc = o50 as f64 / i50 as f64;
    figure(
        &format!("{tag}_p50_ratio_vs_ipc_channel"),
        format!("{ratio_ipc:.3}"),
    );
    figure(
        &format!("{tag}_p99_ratio_vs_ipc_channel"),
        format!("{:.3}", o99 as f64 / i99 as f64),
    );
    target("ping-pong p50 <= ipc-channel", ratio_ipc <= 1.0);
    for (i, (name, v)) in shm.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        let (b50, b99) = (percentile(v, 50.0), percentile(v, 99.0));
        let ratio = o50 as f64 / b50 as f64;
        figure(&format!("{tag}_p50_ratio_vs_{name}"), format!("{ratio:.3}"));
        figure(
            &format!("{tag}_p99_ratio_vs_{name}"),
            format!("{:.3}", o99 as f64 / b99 as f64),
        );
        match i {
            0 => target(
                "ping-pong p50 <= 1.5x plain futex-woken ring, waiter sleeping at once (futex_ring)",
                ratio <= 1.5,
            ),
            1 => target(
                "ping-pong p50 <= 1.5x plain futex-woken ring, waiter spinning first (slot_ring)",
                ratio <= 1.5,
            ),
            _ => {}
        }
    }
    // The issue names "a plain futex-woken ring": whichever of the two is
    // faster in this placement (the sleeping waiter on one CPU, the spinning
    // one across CPUs) is the bar.
    if let Some(fastest) = shm[..2]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(_, v)| percentile(v, 50.0))
        .min()
    {
        target(
            "ping-pong p50 <= 1.5x the faster plain futex-woken ring of this placement",
            o50 as f64 <= 1.5 * fastest as f64,
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Request round trip

/// Asks from the parent (from a plain thread, not its loop's).
#[derive(EventLoopObject, Default)]
struct Asker {
    #[signal]
    question: Signal<(u64,)>,
}

/// Lives in the child: answers each request with its argument.
#[derive(EventLoopObject, Default)]
struct Answerer {}

#[slots]
impl Answerer {
    fn answer(&mut self, n: u64) -> u64 {
        n
    }
}

/// Round-trip samples (ns) of blocking requests to one slot in a child,
/// warm-up dropped; and the dropped total (0, checked).
/// A started parent loop with an [`Asker`] and a started child with an
/// [`Answerer`], the question connected to the answer; `name` prefixes the
/// loops' names.
struct RequestPair {
    parent: EventLoopThread,
    p: EventLoopProcess,
    ctl: Handle<ChildControl>,
    rep_rx: Receiver<Report>,
    asker: Handle<Asker>,
}

impl RequestPair {
    fn start(name: &str) -> Self {
        let (parent, reports, rep_rx) = parent_loop(unique_id(&format!("{name}-parent")));
        let asker = parent
            .event_loop()
            .add(unique_id("asker"), Asker::default())
            .unwrap_or_else(|e| panic!("add asker: {e}"));
        let (p, ctl) = child_process(&format!("{name}-child"), &reports);
        let answerer = p
            .event_loop()
            .add(unique_id("answerer"), Answerer::default())
            .unwrap_or_else(|e| panic!("add answerer: {e}"));
        asker
            .question()
            .connect(&answerer.answer())
            .expect("connect question");
        p.start().expect("start child");
        parent.start().expect("start parent loop");
        RequestPair {
            parent,
            p,
            ctl,
            rep_rx,
            asker,
        }
    }

    /// [`finish`] for the pair.
    fn finish(&self) -> (u64, u64) {
        finish(&self.parent, &self.p, &self.ctl, &self.rep_rx)
    }
}

fn request_round_trips(cfg: &Config) -> (Vec<u64>, u64) {
    let pair = RequestPair::start("rq");
    let total = cfg.ping_pong_warmup + cfg.ping_pong_k;
    let question = pair.asker.question();
    let mut samples = Vec::with_capacity(total);
    // Timed from one request's end to the next one's, as the ping-pong times
    // its laps: one clock read a round trip, and what a loop of requests
    // does between two (checking and dropping the answers) is counted.
    let mut last = Instant::now();
    for i in 0..total as u64 {
        let r = question
            .request::<u64>((i,), REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("request: {e}"));
        assert!(r.is_complete(), "request {i}: {r:?}");
        assert_eq!(r.answers()[0].value, i, "answer of request {i}");
        drop(r);
        let now = Instant::now();
        samples.push(now.duration_since(last).as_nanos() as u64);
        last = now;
    }
    let (delivered, dropped) = pair.finish();
    assert!(
        delivered >= total as u64,
        "child answered {delivered} < {total}"
    );
    (samples[cfg.ping_pong_warmup..].to_vec(), dropped)
}

fn bench_request(cfg: &Config) {
    let placement = Placement::Unpinned;
    let tag = format!("request_u64_{}", placement.tag());
    println!("placement {}", placement.describe());
    let (mut ours, mut ping) = (Vec::new(), Vec::new());
    let mut dropped = 0;
    // Alternate with the ping-pong so a burst of background load hits both alike.
    for _ in 0..cfg.ping_pong_rounds {
        let (samples, d) = ping_pong_signal_slot(cfg, Payload::U64, placement);
        ping.extend(samples);
        dropped += d;
        let (samples, d) = request_round_trips(cfg);
        ours.extend(samples);
        dropped += d;
    }
    ours.sort_unstable();
    ping.sort_unstable();
    let (o50, o99) = (percentile(&ours, 50.0), percentile(&ours, 99.0));
    let (p50, p99) = (percentile(&ping, 50.0), percentile(&ping, 99.0));
    figure(&format!("{tag}_round_trips"), ours.len());
    figure(&format!("{tag}_dropped_total"), dropped);
    figure(&format!("{tag}_p50_us"), us(o50));
    figure(&format!("{tag}_p99_us"), us(o99));
    figure(&format!("{tag}_ping_pong_p50_us"), us(p50));
    figure(&format!("{tag}_ping_pong_p99_us"), us(p99));
    let ratio = o50 as f64 / p50 as f64;
    figure(
        &format!("{tag}_p50_ratio_vs_ping_pong"),
        format!("{ratio:.3}"),
    );
    figure(
        &format!("{tag}_p99_ratio_vs_ping_pong"),
        format!("{:.3}", o99 as f64 / p99 as f64),
    );
    target("request p50 <= 1.5x ping-pong", ratio <= 1.5);
}

// ---------------------------------------------------------------------------
// 7. One-of-N group across processes

/// Lives on the parent loop: emits `(u64,)` values, then `flush`, which
/// reaches each worker after everything this process posted to it before.
#[derive(EventLoopObject)]
struct Dispatcher {
    #[signal]
    value: Signal<(u64,)>,
    /// The second of two plain connections used in turn (`run_in_turn`).
    #[signal]
    value_b: Signal<(u64,)>,
    #[signal]
    flush: Signal<()>,
    /// (t0 ns before the first emit, t ns after the last) per round.
    started: Sender<(u64, u64)>,
}

#[slots]
impl Dispatcher {
    fn run(&mut self, n: u64) {
        let t0 = mono_ns();
        for i in 0..n {
            self.value.emit((i,));
        }
        let t = mono_ns();
        self.flush.emit(());
        let _ = self.started.send((t0, t));
    }

    /// One-of-two by hand: `value` and `value_b` in turn.
    fn run_in_turn(&mut self, n: u64) {
        let t0 = mono_ns();
        for i in 0..n {
            if i & 1 == 0 {
                self.value.emit((i,));
            } else {
                self.value_b.emit((i,));
            }
        }
        let t = mono_ns();
        self.flush.emit(());
        let _ = self.started.send((t0, t));
    }
}

/// Lives in a worker process: counts what it gets; `flush` reports the count
/// and sum since the last flush, stamped when the flush arrives.
#[derive(EventLoopObject, Default)]
struct Tally {
    #[signal]
    done: Signal<(u64, u64, u64)>,
    count: u64,
    sum: u64,
}

#[slots]
impl Tally {
    fn on_value(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
    }
    fn flush(&mut self) {
        self.done.emit((self.count, self.sum, mono_ns()));
        (self.count, self.sum) = (0, 0);
    }
}

/// Emits of one run measuring the emitter's cost: ~0.5 MB of `(u64,)`
/// records, half the default ring, so no emit waits for room.
const COST_N: u64 = 20_000;
/// Cost runs per round.
const COST_RUNS: usize = 5;

/// The variants of this section: the common ones, then a group of two whose
/// members live in one worker process (on its loop: one ring), which
/// separates what the group itself costs from what a second process costs.
const GROUP_VARIANTS_U64: [&str; 5] = [
    support::GROUP_VARIANTS[0],
    support::GROUP_VARIANTS[1],
    support::GROUP_VARIANTS[2],
    support::GROUP_VARIANTS[3],
    "group_of_two_in_one_process",
];

/// Rounds from a parent loop to workers in two child processes, alternating:
/// a plain connection to worker 1, a group of one (worker 1), a group of two
/// (workers 1 and 2), two plain connections used in turn (workers 1 and 2),
/// a group of two in worker 1 (two tallies on its loop).
/// Returns per variant the rounds' msgs/s end to end (N emits) and the
/// emitter's ns per emit (runs of `COST_N`).
fn group_u64_rounds(cfg: &Config) -> GroupFigures {
    let (parent, reports, rep_rx) = parent_loop(unique_id("grp-parent"));
    let (started_tx, started_rx) = unbounded();
    let d = parent
        .event_loop()
        .add(
            unique_id("dispatcher"),
            Dispatcher {
                value: Signal::new(),
                value_b: Signal::new(),
                flush: Signal::new(),
                started: started_tx,
            },
        )
        .unwrap_or_else(|e| panic!("add dispatcher: {e}"));
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let (p, ctl) = child_process(&format!("grp-worker-{i}"), &reports);
            let w = p
                .event_loop()
                .add(unique_id("tally"), Tally::default())
                .unwrap_or_else(|e| panic!("add tally: {e}"));
            w.done().connect(&reports.on_done()).expect("connect done");
            d.flush().connect(&w.flush()).expect("connect flush");
            (p, ctl, w)
        })
        .collect();
    // A second tally in worker 1, for a group of two in one process.
    let second = workers[0]
        .0
        .event_loop()
        .add(unique_id("tally"), Tally::default())
        .unwrap_or_else(|e| panic!("add tally: {e}"));
    second
        .done()
        .connect(&reports.on_done())
        .expect("connect done");
    d.flush().connect(&second.flush()).expect("connect flush");
    for (p, _, _) in &workers {
        p.start().expect("start worker");
    }
    parent.start().expect("start parent loop");
    let opts = || ConnectOptions::new().overflow(Overflow::Block(BLOCK));
    // One run of `k` emits: (t0, t after the last emit, t when the last
    // worker got its flush) in ns; checks the values and the group's counts.
    let run = |k: u64, variant: usize| -> (u64, u64, u64) {
        let counted = || {
            d.value().group_stats("workers").map_or((0, 0), |s| {
                (s.members.iter().map(|m| m.delivered).sum(), s.skipped)
            })
        };
        let (before, skipped_before) = counted();
        let in_turn = variant == 3;
        if in_turn {
            d.run_in_turn().invoke((k,)).expect("invoke run");
        } else {
            d.run().invoke((k,)).expect("invoke run");
        }
        let (t0, t_emitted) = started_rx
            .recv_timeout(REPLY_TIMEOUT)
            .expect("dispatcher finished");
        let (mut count, mut sum, mut t1) = (0, 0u64, 0);
        // Every tally reports at its flush: the workers' and the second.
        for _ in 0..workers.len() + 1 {
            match next_report(&rep_rx) {
                Report::Done(c, s, t) => {
                    count += c;
                    sum = sum.wrapping_add(s);
                    t1 = t1.max(t);
                }
                other => panic!("expected a worker's done, got {other:?}"),
            }
        }
        assert_eq!(
            (count, sum),
            (k, k * (k - 1) / 2),
            "the workers counted other values than sent (variant {variant})"
        );
        if variant > 0 && !in_turn {
            let (after, skipped) = counted();
            assert_eq!(after - before, k, "the group's counts (variant {variant})");
            // The cost runs fit in the rings: no member is ever full.
            if k <= COST_N {
                assert_eq!(skipped, skipped_before, "a member was full");
            }
            let stats = d.value().group_stats("workers").expect("group stats");
            assert_eq!(stats.undelivered, 0, "{stats:?}");
        }
        (t0, t_emitted, t1)
    };
    let connect = |variant: usize| match variant {
        0 => vec![d
            .value()
            .connect_with(&workers[0].2.on_value(), opts())
            .expect("connect plain")],
        3 => vec![
            d.value()
                .connect_with(&workers[0].2.on_value(), opts())
                .expect("connect plain"),
            d.value_b()
                .connect_with(&workers[1].2.on_value(), opts())
                .expect("connect plain"),
        ],
        4 => [&workers[0].2, &second]
            .into_iter()
            .map(|w| {
                d.value()
                    .connect_with(&w.on_value(), opts().group("workers"))
                    .expect("join group")
            })
            .collect(),
        k => workers[..k]
            .iter()
            .map(|(_, _, w)| {
                d.value()
                    .connect_with(&w.on_value(), opts().group("workers"))
                    .expect("join group")
            })
            .collect(),
    };
    let figures = support::group_rounds(
        GROUP_VARIANTS_U64.len(),
        cfg.throughput_rounds,
        (cfg.throughput_n, COST_N, COST_RUNS),
        connect,
        |k, variant| {
            let (t0, t_emitted, t1) = run(k, variant);
            (
                (t_emitted - t0) as f64 / k as f64,
                k as f64 / (t1.saturating_sub(t0).max(1) as f64 / 1e9),
            )
        },
    );
    assert_eq!(parent.event_loop().stats().dropped_total(), 0);
    for (p, _, _) in &workers {
        assert_eq!(p.event_loop().stats().dropped_total(), 0, "sender side");
    }
    stop_and_join(&parent);
    for (p, _, _) in &workers {
        p.stop().expect("stop worker");
        assert!(p.join().expect("join worker").success());
    }
    figures
}

fn bench_group(cfg: &Config) {
    println!("placement unpinned");
    group_figures(
        "group_u64_unpinned",
        &GROUP_VARIANTS_U64,
        &group_u64_rounds(cfg),
    );
}

// ---------------------------------------------------------------------------
// 6. Request soak (only with BENCH_ONLY=request_soak)

/// How long a soak request may take before it counts as missing: far beyond
/// any round trip, short enough for a miss to be seen while it lasts.
const SOAK_TIMEOUT: Duration = Duration::from_secs(3);

/// `rounds` rounds of `k` blocking requests, each round with a fresh parent
/// loop and child (as section 5 builds them), counting requests that did not
/// come back within [`SOAK_TIMEOUT`]. At a miss: the shared memory as it is
/// (which loop sleeps, which flags are up, which rings hold records), then
/// one more request, to see whether the child answers once woken.
fn request_soak(rounds: usize, k: u64) {
    let (mut requests, mut missing) = (0u64, 0u64);
    for round in 0..rounds {
        let pair = RequestPair::start("soak");
        let question = pair.asker.question();
        for i in 0..k {
            requests += 1;
            let r = question
                .request::<u64>((i,), SOAK_TIMEOUT)
                .unwrap_or_else(|e| panic!("request: {e}"));
            if r.is_complete() {
                assert_eq!(r.answers()[0].value, i, "answer of request {i}");
                continue;
            }
            missing += 1;
            println!("# round {round} request {i} missing: {r:?}");
            println!("# late replies so far: {}", signal_slot::late_replies());
            for line in signal_slot::__private::shared_memory_dump().lines() {
                println!("#   {line}");
            }
            let again = question.request::<u64>((i,), REPLY_TIMEOUT);
            println!(
                "# the same request again: {again:?}; late replies {}",
                signal_slot::late_replies()
            );
        }
        pair.finish();
    }
    figure("request_soak_rounds", rounds);
    figure("request_soak_requests", requests);
    figure("request_soak_missing", missing);
    target("no request missing", missing == 0);
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
        "# throughput: N={} (ipc-channel {}) u64, N={} (ipc-channel {}) string64, x{} rounds; \
         ping-pong: K={} (+{} warm-up) x{} rounds; rings 1 MiB (default)",
        cfg.throughput_n,
        cfg.ipc_throughput_n,
        cfg.text_n,
        cfg.ipc_text_n,
        cfg.throughput_rounds,
        cfg.ping_pong_k,
        cfg.ping_pong_warmup,
        cfg.ping_pong_rounds,
    );

    let mut placements = vec![Placement::Unpinned];
    if cpus.contains(&0) && cpus.contains(&1) {
        placements.push(Placement::Pinned(0, 1));
    } else {
        println!("# cpu0 and cpu1 not both allowed: pinned cross-core runs skipped");
    }
    let same_core = cpus.first().map(|&c| Placement::Pinned(c, c));

    if cfg.runs("throughput_u64") {
        println!("# 1. emit (parent) -> slot (child) throughput, payload (u64,)");
        for &p in &placements {
            bench_throughput(&cfg, Payload::U64, p);
        }
    }
    if cfg.runs("throughput_string64") {
        println!("# 2. emit (parent) -> slot (child) throughput, payload (String,) of 64 bytes");
        bench_throughput(&cfg, Payload::Text64, Placement::Unpinned);
    }
    if cfg.runs("ping_pong_u64") {
        println!("# 3. ping-pong round trip parent <-> child, payload (u64,)");
        for p in placements.iter().copied().chain(same_core) {
            bench_ping_pong(&cfg, Payload::U64, p);
        }
    }
    if cfg.runs("ping_pong_string64") {
        println!("# 4. ping-pong round trip parent <-> child, payload (String,) of 64 bytes");
        bench_ping_pong(&cfg, Payload::Text64, Placement::Unpinned);
    }

    if cfg.runs("request_u64") {
        println!("# 5. blocking request round trip parent -> child slot returning u64");
        bench_request(&cfg);
    }
    if cfg.runs("group_u64") {
        println!("# 7. one-of-N group across processes vs a plain connection, payload (u64,)");
        bench_group(&cfg);
    }
    // Only when asked for by name: it runs for as long as SOAK_ROUNDS says.
    if cfg.only.as_deref() == Some("request_soak") {
        let rounds = std::env::var("SOAK_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if cfg.quick { 2 } else { 100 });
        let k = if cfg.quick { 2_000 } else { 20_000 };
        println!("# 6. request soak: {rounds} rounds of {k} blocking requests");
        request_soak(rounds, k);
    }

    figure("loadavg_1min_end", loadavg());
    figure(
        "bench_seconds",
        format!("{:.1}", start.elapsed().as_secs_f64()),
    );
}
