//! Timers: single-shot and periodic, driven by the loop they belong to.

use super::local::LoopLocal;
use super::{Control, EventLoop};
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
    active: AtomicBool,
    /// Bumped by every start and stop; a scheduled firing with an older
    /// generation is stale and skipped.
    generation: AtomicU64,
}

impl TimerShared {
    fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns.load(Ordering::Relaxed))
    }

    fn is_current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) == generation && self.active.load(Ordering::Acquire)
    }

    /// The loop finished: no more firings, connections broken.
    pub(crate) fn retire(&self) {
        self.active.store(false, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.object.retire();
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
            active: AtomicBool::new(false),
            generation: AtomicU64::new(0),
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
        if lp.is_finished() {
            return Err(TimerError::LoopFinished(lp.name.clone()));
        }
        if lp.is_remote() {
            return Err(TimerError::RemoteLoop(lp.name.clone()));
        }
        let deadline = crate::deadline::in_(t.interval());
        t.active.store(true, Ordering::Release);
        let generation = t.generation.fetch_add(1, Ordering::AcqRel) + 1;
        lp.control(Control::StartTimer {
            timer: t.clone(),
            generation,
            deadline,
        });
        Ok(())
    }

    /// Stops the timer; a firing already due is skipped.
    pub fn stop(&self) {
        self.inner.active.store(false, Ordering::Release);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Changes the interval; a running timer restarts from now with it.
    pub fn set_interval(&self, interval: Duration) -> Result<(), TimerError> {
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
    pub fn is_active(&self) -> bool {
        self.inner.active.load(Ordering::Acquire)
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
                // Only this start's firing may clear `active`.
                if t.generation.load(Ordering::Acquire) == e.generation {
                    t.active.store(false, Ordering::Release);
                }
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
                if t.generation.load(Ordering::Acquire) == *g {
                    t.active.store(false, Ordering::Release);
                }
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

    #[test]
    fn restarting_a_timer_keeps_the_queue_small() {
        let lp = EventLoop::new("timer-restarts");
        let t = Timer::new(&lp, Duration::from_secs(3600), false).unwrap();
        let mut timers = Timers::default();
        let deadline = Instant::now() + Duration::from_secs(3600);
        for _ in 0..10_000 {
            // What a restart does: a new generation, and its firing queued.
            t.inner.active.store(true, Ordering::Release);
            let generation = t.inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
            timers.schedule(t.inner.clone(), generation, deadline);
        }
        assert!(timers.heap.len() <= 2 * SWEEP_MIN, "{}", timers.heap.len());
        // The current firing is kept.
        let last = t.inner.generation.load(Ordering::Acquire);
        assert!(timers.heap.iter().any(|Reverse(e)| e.generation == last));
    }
}
