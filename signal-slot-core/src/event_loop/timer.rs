//! Timers: single-shot and periodic, driven by the loop they belong to.

use super::local::LoopLocal;
use super::{Control, EventLoop, Fate};
use crate::error::TimerError;
use crate::object::{ObjectId, ObjectKey, ObjectShared};
use crate::signal::{SignalControl, SignalRef, SignalShared};
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

static NEXT_TIMER: AtomicU64 = AtomicU64::new(1);

/// A timer on a loop: its [`timeout`](Timer::timeout) signal is emitted on that
/// loop's thread when the interval has passed (monotonic clock).
///
/// * Single-shot timers fire once per start; periodic timers fire every interval.
/// * A periodic timer that falls behind (a slot ran long) fires once, then keeps
///   its rhythm from now: it never fires a burst to catch up.
/// * A zero interval fires when the loop has nothing else to do.
/// * The timer belongs to its loop: dropping the `Timer` handle does not stop it;
///   [`stop`](Timer::stop) does, and so does the loop finishing.
///
/// ```
/// use signal_slot::prelude::*;
/// use std::time::Duration;
///
/// let lp = EventLoop::new("timer-doc");
/// let t = Timer::single_shot(&lp, Duration::from_millis(10)).unwrap();
/// t.timeout().connect(&lp.stop_slot()).unwrap();
/// lp.exec().unwrap(); // returns after ~10 ms
/// assert!(!t.is_active());
/// ```
#[derive(Clone)]
pub struct Timer {
    inner: Arc<TimerShared>,
}

pub(crate) struct TimerShared {
    object: Arc<ObjectShared>,
    timeout: Arc<SignalShared<()>>,
    interval_ns: AtomicU64,
    single_shot: AtomicBool,
    /// The generation (bumped by every start and stop: a scheduled firing of
    /// an older one is stale and skipped) times two, plus 1 while the timer
    /// is active. One word, changed whole: with two, a start from another
    /// thread landing between a firing's look at the generation and its
    /// clearing of `active` was lost, and a stop and a start interleaved left
    /// a timer active with no firing of its generation (review helper-62).
    state: AtomicU64,
}

/// The [`TimerShared::state`] of generation `generation`, active or not.
fn state(generation: u64, active: bool) -> u64 {
    generation << 1 | u64::from(active)
}

/// The state of a timer whose loop finished: inactive, for good (no start
/// leaves it; a generation never gets this far).
const RETIRED: u64 = u64::MAX - 1;

/// The atomic a timer's state word lives in: std's, or loom's in the model
/// (`tests::loom_*`), which give it these two.
trait StateWord {
    fn load(&self, order: Ordering) -> u64;
    fn cas(&self, current: u64, new: u64) -> Result<u64, u64>;

    /// Sets the word to `f` of it; returns what it set.
    fn update(&self, f: impl Fn(u64) -> u64) -> u64 {
        let mut s = self.load(Ordering::Acquire);
        loop {
            let new = f(s);
            match self.cas(s, new) {
                Ok(_) => return new,
                Err(now) => s = now,
            }
        }
    }

    /// Sets the word to `new` if it is `current`.
    fn replace_if(&self, current: u64, new: u64) {
        let _ = self.cas(current, new);
    }
}

impl StateWord for AtomicU64 {
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    fn cas(&self, current: u64, new: u64) -> Result<u64, u64> {
        self.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
    }
}

/// True if firings of `generation` are current: it is the last start.
fn is_current(w: &impl StateWord, generation: u64) -> bool {
    w.load(Ordering::Acquire) == state(generation, true)
}

/// A start (`active`) or stop: moves to the next generation; returns it, or
/// `None` if the timer is retired.
fn next_generation(w: &impl StateWord, active: bool) -> Option<u64> {
    let now = w.update(|s| {
        if s == RETIRED {
            RETIRED
        } else {
            state((s >> 1) + 1, active)
        }
    });
    (now != RETIRED).then_some(now >> 1)
}

/// The loop finished: no start takes the timer out of this.
fn retire(w: &impl StateWord) {
    w.update(|_| RETIRED);
}

/// A single-shot firing of `generation`: the timer is inactive from now,
/// unless a start or stop came since.
fn fired_once(w: &impl StateWord, generation: u64) {
    w.replace_if(state(generation, true), state(generation, false));
}

impl TimerShared {
    fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns.load(Ordering::Relaxed))
    }

    fn is_current(&self, generation: u64) -> bool {
        is_current(&self.state, generation)
    }

    fn next_generation(&self, active: bool) -> Option<u64> {
        next_generation(&self.state, active)
    }

    fn fired_once(&self, generation: u64) {
        fired_once(&self.state, generation)
    }

    /// The loop finished: no more firings, connections broken.
    pub(crate) fn retire(&self) {
        retire(&self.state);
        self.object.retire();
        self.timeout.close();
    }

    /// [`retire`](Self::retire) without emitting `destroyed`: the parent's
    /// copy of a timer whose loop ran in a child (which announced it).
    pub(crate) fn retire_quietly(&self) {
        retire(&self.state);
        self.object.retire_quietly();
        self.timeout.close();
    }
}

impl Timer {
    /// A stopped timer; call [`start`](Self::start).
    pub fn new(lp: &EventLoop, interval: Duration, single_shot: bool) -> Result<Timer, TimerError> {
        let shared = lp.shared();
        if shared.is_finished() {
            return Err(TimerError::LoopFinished(shared.name.clone()));
        }
        if shared.is_remote() {
            return Err(TimerError::RemoteLoop(shared.name.clone()));
        }
        let n = NEXT_TIMER.fetch_add(1, Ordering::Relaxed);
        let id = ObjectId::internal(format!("#timer-{n}@{}", shared.name));
        let timeout = Arc::new(SignalShared::new(id.clone(), "timeout", shared.id));
        let signals: Box<[Arc<dyn SignalControl>]> = Box::new([timeout.clone()]);
        // Timers are not in the object table; the key is never looked up.
        let key = ObjectKey {
            index: u32::MAX,
            generation: u32::MAX,
        };
        let object = Arc::new(ObjectShared::new(
            id,
            key,
            shared.clone(),
            signals,
            false,
            &[],
        ));
        let inner = Arc::new(TimerShared {
            object,
            timeout,
            interval_ns: AtomicU64::new(duration_ns(interval)),
            single_shot: AtomicBool::new(single_shot),
            state: AtomicU64::new(state(0, false)),
        });
        shared.register_timer(&inner);
        Ok(Timer { inner })
    }

    /// A started timer that fires once after `after`.
    pub fn single_shot(lp: &EventLoop, after: Duration) -> Result<Timer, TimerError> {
        let t = Self::new(lp, after, true)?;
        t.start()?;
        Ok(t)
    }

    /// A started timer that fires every `interval`.
    pub fn periodic(lp: &EventLoop, interval: Duration) -> Result<Timer, TimerError> {
        let t = Self::new(lp, interval, false)?;
        t.start()?;
        Ok(t)
    }

    /// Starts the timer, or restarts it from now if it runs.
    pub fn start(&self) -> Result<(), TimerError> {
        let t = &self.inner;
        let lp = &t.object.lp;
        // Looked at and posted under the loop's gate: a start queued after
        // the teardown's last read of the inbox would stay there, active for
        // good, and keep the loop alive (review helper-63).
        let gate = lp.post_gate();
        match gate.fate() {
            Fate::Finished => return Err(TimerError::LoopFinished(lp.name.clone())),
            Fate::Remote => return Err(TimerError::RemoteLoop(lp.name.clone())),
            Fate::Open => {}
        }
        let deadline = crate::deadline::in_(t.interval());
        let Some(generation) = t.next_generation(true) else {
            return Err(TimerError::LoopFinished(lp.name.clone()));
        };
        gate.post(Control::StartTimer {
            timer: t.clone(),
            generation,
            deadline,
        });
        Ok(())
    }

    /// Stops the timer; a firing already due is skipped. A timer of a loop
    /// another process runs (an `EventLoopProcess`'s, after its `start()`) is
    /// not reached from here: `RemoteLoop`, nothing changed (stop it from
    /// inside that process, e.g. from a slot there).
    pub fn stop(&self) -> Result<(), TimerError> {
        let lp = &self.inner.object.lp;
        if lp.is_remote() {
            return Err(TimerError::RemoteLoop(lp.name.clone()));
        }
        // A retired timer stays so (and inactive).
        let _ = self.inner.next_generation(false);
        Ok(())
    }

    /// Changes the interval; a running timer restarts from now with it.
    /// `RemoteLoop` for a timer of a loop another process runs (see
    /// [`stop`](Self::stop)).
    pub fn set_interval(&self, interval: Duration) -> Result<(), TimerError> {
        let lp = &self.inner.object.lp;
        if lp.is_remote() {
            return Err(TimerError::RemoteLoop(lp.name.clone()));
        }
        if lp.is_finished() {
            return Err(TimerError::LoopFinished(lp.name.clone()));
        }
        self.inner
            .interval_ns
            .store(duration_ns(interval), Ordering::Relaxed);
        if self.is_active() {
            self.start()?;
        }
        Ok(())
    }

    /// Makes the timer single-shot or periodic from its next firing on, as
    /// Qt's `QTimer::setSingleShot` does: a running periodic timer made
    /// single-shot fires once more, then stops; a running single-shot timer
    /// made periodic goes on firing. (The docs said "from its next start",
    /// which the code never did; review helper-52.)
    pub fn set_single_shot(&self, single_shot: bool) {
        self.inner.single_shot.store(single_shot, Ordering::Relaxed);
    }

    /// The interval.
    pub fn interval(&self) -> Duration {
        self.inner.interval()
    }

    /// True from `start` until `stop`, or until a single-shot timer fired.
    /// For a timer of a loop another process runs: as it was when the loop
    /// was handed over.
    pub fn is_active(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) & 1 == 1
    }

    /// Emitted at each firing, on the timer's loop thread.
    pub fn timeout(&self) -> SignalRef<()> {
        SignalRef::with_owner(self.inner.timeout.clone(), self.inner.object.clone())
    }

    /// The timer's generated id (`#timer-<n>@<loop>`).
    pub fn id(&self) -> &ObjectId {
        &self.inner.object.id
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("id", self.id())
            .field("interval", &self.interval())
            .field("active", &self.is_active())
            .finish()
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A scheduled firing.
struct Entry {
    deadline: Instant,
    seq: u64,
    generation: u64,
    timer: Arc<TimerShared>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

/// The loop thread's timer queue.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Zero-interval timers, fired when the loop is idle.
    idle: Vec<(Arc<TimerShared>, u64)>,
    seq: u64,
    /// The heap's length at which firings a restart or stop made stale are
    /// swept out (twice its length after the last sweep, at least
    /// [`SWEEP_MIN`]): a watchdog restarted at every message left one entry
    /// per restart until its (distant) deadline, ~70 bytes each (review
    /// helper-52: 210 MB after 3 M restarts of a one-hour timer).
    sweep_at: usize,
}

/// The smallest heap worth sweeping.
const SWEEP_MIN: usize = 64;

impl Timers {
    pub(super) fn schedule(&mut self, timer: Arc<TimerShared>, generation: u64, deadline: Instant) {
        if timer.interval().is_zero() {
            self.idle.retain(|(t, _)| !Arc::ptr_eq(t, &timer));
            self.idle.push((timer, generation));
            return;
        }
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            deadline,
            seq: self.seq,
            generation,
            timer,
        }));
        if self.heap.len() > self.sweep_at.max(SWEEP_MIN) {
            // Amortized: each sweep at least halves what it looks at, or
            // doubles the threshold.
            self.heap
                .retain(|Reverse(e)| e.timer.is_current(e.generation));
            self.sweep_at = 2 * self.heap.len();
        }
    }

    /// True when no timer is scheduled (so the loop need not read the clock).
    pub(super) fn is_idle(&self) -> bool {
        self.heap.is_empty()
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        if self.idle.is_empty() {
            self.heap.peek().map(|Reverse(e)| e.deadline)
        } else {
            Some(Instant::now())
        }
    }

    pub(super) fn clear(&mut self) {
        self.heap.clear();
        self.idle.clear();
    }

    /// Fires every timer due at `now`. Never holds the borrow while a slot runs
    /// (slots may start and stop timers).
    pub(super) fn fire_due(l: &LoopLocal, now: Instant) -> bool {
        let mut fired = false;
        loop {
            let entry = {
                let mut timers = l.timers.borrow_mut();
                match timers.heap.peek() {
                    Some(Reverse(e)) if e.deadline <= now => timers.heap.pop().map(|r| r.0),
                    _ => None,
                }
            };
            let Some(e) = entry else {
                return fired;
            };
            if !e.timer.is_current(e.generation) {
                continue;
            }
            fired = true;
            let t = &e.timer;
            if t.single_shot.load(Ordering::Relaxed) {
                t.fired_once(e.generation);
            } else {
                let interval = t.interval();
                let mut next = crate::deadline::after(e.deadline, interval);
                if next <= now {
                    next = crate::deadline::after(now, interval); // fell behind: no burst
                }
                l.timers
                    .borrow_mut()
                    .schedule(e.timer.clone(), e.generation, next);
            }
            t.timeout
                .emit_shared((), crate::signal::shared::Emission::new(None), None);
            if l.stopped() {
                return true;
            }
        }
    }

    /// Fires zero-interval timers; true if any fired.
    pub(super) fn fire_idle(l: &LoopLocal) -> bool {
        let current: Vec<(Arc<TimerShared>, u64)> = {
            let mut timers = l.timers.borrow_mut();
            // Every idle round of every loop comes here: most have none.
            if timers.idle.is_empty() {
                return false;
            }
            timers.idle.retain(|(t, g)| t.is_current(*g));
            timers.idle.clone()
        };
        for (t, g) in &current {
            if t.single_shot.load(Ordering::Relaxed) {
                l.timers
                    .borrow_mut()
                    .idle
                    .retain(|(x, _)| !Arc::ptr_eq(x, t));
                t.fired_once(*g);
            }
            t.timeout
                .emit_shared((), crate::signal::shared::Emission::new(None), None);
            if l.stopped() {
                break;
            }
        }
        !current.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(loom)]
    impl StateWord for crate::sync::model::AtomicU64 {
        fn load(&self, order: Ordering) -> u64 {
            crate::sync::model::AtomicU64::load(self, order)
        }
        fn cas(&self, current: u64, new: u64) -> Result<u64, u64> {
            self.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
        }
    }

    #[test]
    fn loom_a_start_racing_a_single_shot_firing_is_kept() {
        use crate::sync::model::{check, thread, Arc, AtomicU64};
        // Generation 1 runs; its one firing is due on the loop thread while
        // another thread restarts the timer (a watchdog): the restart must
        // stay (review helper-62: with `active` and the generation apart, the
        // firing's clearing of `active` could land after the restart).
        check(1000, || {
            let w = Arc::new(AtomicU64::new(state(1, true)));
            let starter = {
                let w = w.clone();
                thread::spawn(move || next_generation(&*w, true).unwrap())
            };
            if is_current(&*w, 1) {
                fired_once(&*w, 1);
            }
            let g = starter.join().unwrap();
            assert!(is_current(&*w, g), "the restart was lost");
        });
    }

    #[test]
    fn loom_a_start_racing_the_loops_finish_leaves_the_timer_retired() {
        use crate::sync::model::{check, thread, Arc, AtomicU64};
        // A start that passed its look at the loop as the loop retired its
        // timers stored `active` after the retire: active for good (review
        // helper-63).
        check(1000, || {
            let w = Arc::new(AtomicU64::new(state(1, false)));
            let starter = {
                let w = w.clone();
                thread::spawn(move || next_generation(&*w, true))
            };
            retire(&*w);
            let _ = starter.join().unwrap();
            assert_eq!(w.load(Ordering::SeqCst), RETIRED);
        });
    }

    #[test]
    fn loom_a_stop_racing_a_start_leaves_the_later_one() {
        use crate::sync::model::{check, thread, Arc, AtomicU64};
        check(1000, || {
            let w = Arc::new(AtomicU64::new(state(1, true)));
            let stopper = {
                let w = w.clone();
                thread::spawn(move || next_generation(&*w, false).unwrap())
            };
            let started = next_generation(&*w, true).unwrap();
            let stopped = stopper.join().unwrap();
            let now = w.load(Ordering::SeqCst);
            if stopped > started {
                assert_eq!(now, state(stopped, false));
            } else {
                assert_eq!(
                    now,
                    state(started, true),
                    "active with no firing of its own"
                );
            }
        });
    }

    #[test]
    fn restarting_a_timer_keeps_the_queue_small() {
        let lp = EventLoop::new("timer-restarts");
        let t = Timer::new(&lp, Duration::from_secs(3600), false).unwrap();
        let mut timers = Timers::default();
        let deadline = Instant::now() + Duration::from_secs(3600);
        for _ in 0..10_000 {
            // What a restart does: a new generation, and its firing queued.
            let generation = t.inner.next_generation(true).unwrap();
            timers.schedule(t.inner.clone(), generation, deadline);
        }
        assert!(timers.heap.len() <= 2 * SWEEP_MIN, "{}", timers.heap.len());
        // The current firing is kept.
        let last = t.inner.state.load(Ordering::Acquire) >> 1;
        assert!(timers.heap.iter().any(|Reverse(e)| e.generation == last));
    }
}
