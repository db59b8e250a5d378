//! Waking a sleeping event loop: a futex word that producers ring only when the
//! loop announced it sleeps, so a busy loop costs its producers no syscall.
//!
//! Ordering argument (Dekker): the sleeper writes `SLEEPING` then (after a SeqCst
//! fence) looks for work; a producer publishes its work then (after a SeqCst fence)
//! loads the word. The two fences are totally ordered, so either the sleeper sees
//! the work, or the producer sees `SLEEPING` and wakes it. A wake that races a
//! sleeper that already saw work is harmless: the futex wait then fails with
//! `EAGAIN` because the word is no longer `SLEEPING`, or returns spuriously.
//!
//! A loop that becomes reachable from other processes moves its word into shared
//! memory ([`Doorbell::use_external`]) while it may be running. The same argument
//! covers the move: the mover publishes the new word then checks the old one; the
//! sleeper announces sleep on the word it read, then re-reads which word is in use.
//!
//! The doorbell is generic over its word ([`BellWord`]) only so that the loom
//! models (`loom_models`) can run this exact code on a loom atomic whose futex
//! is a lock and a condvar (`loom_futex`): a lost wake-up is then a loom
//! deadlock. Production instances use std's `AtomicU32` and the real futex.

use crate::sync::{fence, AtomicU32, Ordering};
use std::fmt;
use std::ptr;
use std::sync::atomic::AtomicPtr;
use std::time::Duration;

const AWAKE: u32 = 0;
const SLEEPING: u32 = 1;

/// A futex word and what the doorbell does with it. Production uses std's
/// [`AtomicU32`] and the kernel's futex (everything inlines: the doorbell is
/// generic only so the loom models can run the same protocol on a loom atomic
/// whose futex is a lock and a condvar, see `loom_futex`).
pub(crate) trait BellWord: Default + Send + Sync + 'static {
    /// Where a doorbell keeps the address of its external word.
    type Slot: Default + Send + Sync;
    fn load_slot(slot: &Self::Slot) -> *mut Self;
    fn store_slot(slot: &Self::Slot, p: *mut Self);
    /// A fence of the same memory model as the word.
    fn fence(order: Ordering);
    fn load(&self, order: Ordering) -> u32;
    fn swap(&self, v: u32, order: Ordering) -> u32;
    /// `FUTEX_WAIT`: blocks while the word is `expected`, up to `timeout`;
    /// returns on wake, timeout, signal, value change or spuriously.
    fn wait(&self, expected: u32, timeout: Option<Duration>, shared: bool);
    /// `FUTEX_WAKE` of one waiter.
    fn wake_one(&self, shared: bool);
    /// `FUTEX_WAKE` of every waiter (process-private word).
    fn wake_all(&self);
}

impl BellWord for AtomicU32 {
    type Slot = AtomicPtr<AtomicU32>;
    #[inline]
    fn load_slot(slot: &Self::Slot) -> *mut Self {
        slot.load(Ordering::SeqCst)
    }
    #[inline]
    fn store_slot(slot: &Self::Slot, p: *mut Self) {
        slot.store(p, Ordering::SeqCst);
    }
    #[inline]
    fn fence(order: Ordering) {
        fence(order);
    }
    #[inline]
    fn load(&self, order: Ordering) -> u32 {
        AtomicU32::load(self, order)
    }
    #[inline]
    fn swap(&self, v: u32, order: Ordering) -> u32 {
        AtomicU32::swap(self, v, order)
    }
    #[inline]
    fn wait(&self, expected: u32, timeout: Option<Duration>, shared: bool) {
        futex::wait(self, expected, timeout, shared);
    }
    #[inline]
    fn wake_one(&self, shared: bool) {
        futex::wake_one(self, shared);
    }
    #[inline]
    fn wake_all(&self) {
        futex::wake_all(self);
    }
}

/// The wake-up word of one event loop.
pub(crate) struct Doorbell<W: BellWord = AtomicU32> {
    local: W,
    /// A word in shared memory once the loop has a mailbox; null before.
    external: W::Slot,
}

impl<W: BellWord> Default for Doorbell<W> {
    fn default() -> Self {
        Self {
            local: W::default(),
            external: W::Slot::default(),
        }
    }
}

impl<W: BellWord> fmt::Debug for Doorbell<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (word, shared) = self.word();
        f.debug_struct("Doorbell")
            .field("word", &word.load(Ordering::Relaxed))
            .field("shared", &shared)
            .finish()
    }
}

impl Doorbell {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

impl<W: BellWord> Doorbell<W> {
    #[inline]
    fn word(&self) -> (&W, bool) {
        let p = W::load_slot(&self.external);
        if p.is_null() {
            (&self.local, false)
        } else {
            // SAFETY: `use_external` only stores `&'static` words.
            (unsafe { &*p }, true)
        }
    }

    /// Moves the doorbell to `word` (in shared memory, rung by other processes).
    pub(crate) fn use_external(&self, word: &'static W) {
        W::store_slot(&self.external, ptr::from_ref(word).cast_mut());
        W::fence(Ordering::SeqCst);
        // A sleeper that chose the old word before the move is woken from it.
        wake_if_sleeping(&self.local, false);
    }

    /// Called by a producer after it published work.
    #[inline]
    #[allow(dead_code)] // for producers whose publication is not a SeqCst RMW
    pub(crate) fn ring(&self) {
        W::fence(Ordering::SeqCst);
        let (word, shared) = self.word();
        wake_if_sleeping(word, shared);
    }

    /// Like [`ring`](Self::ring), for a producer whose publication was a SeqCst
    /// read-modify-write that the sleeper's work check reads with SeqCst loads
    /// (the data ring's tail CAS and `is_empty`, see `mpsc`; crossbeam-channel's
    /// for the control channel). Those and
    /// the SeqCst loads here are totally ordered, so the fence, which would make
    /// the producer wait for its stores to drain, is not needed.
    #[inline]
    pub(crate) fn ring_after_seqcst_publish(&self) {
        let (word, shared) = self.word();
        if word.load(Ordering::SeqCst) == SLEEPING && word.swap(AWAKE, Ordering::SeqCst) == SLEEPING
        {
            word.wake_one(shared);
        }
    }

    /// Sleeps until rung or `timeout` passes, unless `has_work` says there is work
    /// after the sleep was announced. `None` sleeps without a time limit.
    pub(crate) fn sleep(&self, has_work: impl Fn() -> bool, timeout: Option<Duration>) {
        let (word, shared) = self.word();
        // Every write of the word is a swap (a read-modify-write), not a store.
        // The protocol does not need it (a store would do under the memory
        // model), but it puts every write of the word in one RMW chain, so the
        // modification order is the execution order even to loom, which derives
        // it from vector clocks: with plain stores loom does not see that this
        // announcement supersedes a producer's earlier `swap(AWAKE)`, lets the
        // producer's load after its fence read that stale `AWAKE`, and reports
        // a lost wake-up that cannot happen (at preemption bound 4). Cost: none
        // here (a SeqCst store is an `xchg` on x86 anyway), and one locked
        // instruction instead of a plain store on the way out of a sleep.
        word.swap(SLEEPING, Ordering::SeqCst);
        W::fence(Ordering::SeqCst);
        let moved = self.word().1 != shared;
        if !moved && !has_work() {
            word.wait(SLEEPING, timeout, shared);
        }
        word.swap(AWAKE, Ordering::Relaxed);
    }
}

/// Where producers wait for room in a full inbox: a flag a waiter raises before
/// it looks for room, and a futex word the consumer bumps (and wakes) when it
/// finds the flag raised after taking messages.
///
/// Dekker again: a waiter raises `sleeping` ([`announce`](Self::announce)),
/// then (SeqCst fence) looks for room; the consumer releases room (the ring's
/// `head` store), then (SeqCst fence, [`wake_after_fence`](Self::wake_after_fence))
/// loads `sleeping`. Either the waiter sees the room, or the consumer sees the
/// flag, bumps `word` and wakes: the waiter's futex wait then returns, as it
/// passes the value of `word` it loaded before looking. The consumer may also
/// check without the fence ([`wake`](Self::wake)), to wake a waiter sooner.
/// Generic over its words for the loom model in `inbox`.
pub(crate) struct RoomBell<W: BellWord = AtomicU32> {
    sleeping: W,
    word: W,
}

impl<W: BellWord> Default for RoomBell<W> {
    fn default() -> Self {
        Self {
            sleeping: W::default(),
            word: W::default(),
        }
    }
}

impl<W: BellWord> RoomBell<W> {
    /// The waiter's side, before it looks for room: returns what to pass to
    /// [`sleep`](Self::sleep).
    #[inline]
    pub(crate) fn announce(&self) -> u32 {
        let seen = self.word.load(Ordering::Acquire);
        self.sleeping.swap(SLEEPING, Ordering::SeqCst);
        W::fence(Ordering::SeqCst);
        seen
    }

    /// The waiter's side, after it found no room.
    pub(crate) fn sleep(&self, seen: u32, timeout: Option<Duration>) {
        self.word.wait(seen, timeout, false);
    }

    /// The consumer's side, after it made room: wakes the waiters if one
    /// announced itself (a hint without a preceding SeqCst fence).
    #[inline]
    pub(crate) fn wake(&self) {
        if self.sleeping.load(Ordering::Relaxed) == SLEEPING
            && self.sleeping.swap(AWAKE, Ordering::SeqCst) == SLEEPING
        {
            // Only the one consumer writes the word.
            let next = self.word.load(Ordering::Relaxed).wrapping_add(1);
            self.word.swap(next, Ordering::Release);
            self.word.wake_all();
        }
    }

    /// [`wake`](Self::wake) after the fence the protocol relies on.
    #[inline]
    pub(crate) fn wake_after_fence(&self) {
        W::fence(Ordering::SeqCst);
        self.wake();
    }
}

/// Wakes the sleeper of `word`, if one announced itself. Used by producers of
/// other processes too, which know only the word.
#[inline]
pub(crate) fn wake_if_sleeping<W: BellWord>(word: &W, shared: bool) {
    if word.load(Ordering::Relaxed) == SLEEPING && word.swap(AWAKE, Ordering::SeqCst) == SLEEPING {
        word.wake_one(shared);
    }
}

/// The kernel futex as loom sees it: one global "hash bucket" lock. The wait
/// compares the word under the lock and parks on the condvar (which releases
/// the lock atomically); the wake takes the same lock and notifies. That is
/// the property the protocol relies on: `FUTEX_WAIT`'s compare is atomic with
/// respect to `FUTEX_WAKE`. A timed wait returns at once (a timeout is a
/// spurious return to the protocol); a wait that nothing ever wakes is a loom
/// deadlock, which is how a lost wake-up shows.
#[cfg(all(test, loom))]
mod loom_futex {
    use super::{BellWord, Duration, Ordering};
    use crate::sync::model::{fence, AtomicPtr, AtomicU32, Condvar, Mutex};

    loom::lazy_static! {
        static ref BUCKET: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }

    impl BellWord for AtomicU32 {
        type Slot = AtomicPtr<AtomicU32>;
        fn load_slot(slot: &Self::Slot) -> *mut Self {
            slot.load(Ordering::SeqCst)
        }
        fn store_slot(slot: &Self::Slot, p: *mut Self) {
            slot.store(p, Ordering::SeqCst);
        }
        fn fence(order: Ordering) {
            fence(order);
        }
        fn load(&self, order: Ordering) -> u32 {
            AtomicU32::load(self, order)
        }
        fn swap(&self, v: u32, order: Ordering) -> u32 {
            AtomicU32::swap(self, v, order)
        }
        fn wait(&self, expected: u32, timeout: Option<Duration>, _shared: bool) {
            if timeout.is_some() {
                return;
            }
            let (lock, cv) = &*BUCKET;
            let guard = lock.lock().unwrap();
            if AtomicU32::load(self, Ordering::Relaxed) != expected {
                return;
            }
            drop(cv.wait(guard).unwrap());
        }
        fn wake_one(&self, _shared: bool) {
            let (lock, cv) = &*BUCKET;
            let _guard = lock.lock().unwrap();
            // All: the bucket is shared by every word of the model.
            cv.notify_all();
        }
        fn wake_all(&self) {
            self.wake_one(false);
        }
    }
}

#[cfg(target_os = "linux")]
mod futex {
    use crate::sync::AtomicU32;
    use std::time::Duration;

    fn op(base: libc::c_int, shared: bool) -> libc::c_int {
        if shared {
            base
        } else {
            base | libc::FUTEX_PRIVATE_FLAG
        }
    }

    /// Blocks while `*word == expected`, up to `timeout`. Returns on wake, timeout,
    /// signal or value change; the caller re-checks its condition in every case.
    /// `shared`: the word is in memory shared with other processes.
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>, shared: bool) {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            // Always below 1e9, so it fits any c_long.
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned u32 for the whole call; FUTEX_WAIT only
        // reads it. `ts_ptr` is null or points at `ts`, alive until the call returns.
        // Errors (EAGAIN, EINTR, ETIMEDOUT) all mean "return and re-check".
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                op(libc::FUTEX_WAIT, shared),
                expected,
                ts_ptr,
            );
        }
    }

    /// Wakes every thread blocked in [`wait`] on `word` (process-private).
    pub(super) fn wake_all(word: &AtomicU32) {
        // SAFETY: as in `wake_one`.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                op(libc::FUTEX_WAKE, false),
                libc::c_int::MAX,
            );
        }
    }

    /// Wakes one thread blocked in [`wait`] on `word`.
    pub(super) fn wake_one(word: &AtomicU32, shared: bool) {
        // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access memory
        // beyond using the address as a key.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                op(libc::FUTEX_WAKE, shared),
                1,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn sleep_returns_at_once_when_work_is_already_there() {
        let bell = Doorbell::new();
        let start = Instant::now();
        bell.sleep(|| true, None);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn sleep_times_out_without_a_ring() {
        let bell = Doorbell::new();
        bell.sleep(|| false, Some(Duration::from_millis(1)));
        assert_eq!(bell.local.load(Ordering::SeqCst), AWAKE);
    }

    fn handshakes(bell: Arc<Doorbell>, rounds: u32, mid: impl FnOnce()) {
        // A lost wake-up would hang this test (no timeout in sleep).
        let work = Arc::new(AtomicBool::new(false));
        let (b, w) = (bell.clone(), work.clone());
        let sleeper = std::thread::spawn(move || {
            for _ in 0..rounds {
                while !w.swap(false, Ordering::SeqCst) {
                    b.sleep(|| w.load(Ordering::SeqCst), None);
                }
            }
        });
        let mut mid = Some(mid);
        for i in 0..rounds {
            while work.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            if i == rounds / 2 {
                if let Some(f) = mid.take() {
                    f();
                }
            }
            work.store(true, Ordering::SeqCst);
            bell.ring();
        }
        sleeper.join().unwrap();
    }

    #[test]
    fn ring_wakes_a_sleeper_every_time() {
        handshakes(Arc::new(Doorbell::new()), 20_000, || {});
    }

    #[test]
    fn moving_the_word_while_the_sleeper_runs_loses_no_wake_up() {
        static EXTERNAL: AtomicU32 = AtomicU32::new(0);
        let bell = Arc::new(Doorbell::new());
        let b = bell.clone();
        handshakes(bell, 20_000, move || b.use_external(&EXTERNAL));
    }
}

/// Models of the doorbell's Dekker protocol: every interleaving under
/// `RUSTFLAGS="--cfg loom"` (the futex is `loom_futex`, so a lost wake-up is
/// a loom deadlock); plain threaded runs on the real futex otherwise (and
/// under miri).
///
/// `RUSTFLAGS="--cfg loom" cargo test -p signal-slot-core --lib --release loom`
///
/// Not modelled: [`Doorbell::ring_after_seqcst_publish`], whose argument rests
/// on the total order of SeqCst loads and RMWs without a fence; loom treats
/// SeqCst accesses as AcqRel (only SeqCst fences are total), so it would
/// report lost wake-ups that the C++/Rust memory model rules out.
#[cfg(test)]
mod loom_models {
    use super::{BellWord, Doorbell};
    use crate::sync::model::{self, thread, Arc, AtomicU32};
    use std::sync::atomic::Ordering;

    const RUNS: usize = if cfg!(miri) { 4 } else { 300 };

    /// A `'static` word for `use_external`, of its own for each use of the
    /// macro. Under loom a fresh one for each execution; without loom one
    /// static serves every run of its test (each run leaves it `AWAKE`: the
    /// sleeper's last write).
    macro_rules! external_word {
        () => {{
            #[cfg(loom)]
            let w: &'static AtomicU32 = {
                loom::lazy_static! {
                    static ref EXTERNAL: AtomicU32 = AtomicU32::new(0);
                }
                &EXTERNAL
            };
            #[cfg(not(loom))]
            let w: &'static AtomicU32 = {
                static EXTERNAL: AtomicU32 = AtomicU32::new(0);
                &EXTERNAL
            };
            assert_eq!(BellWord::load(w, Ordering::Relaxed), super::AWAKE);
            w
        }};
    }

    /// The loop's side: waits for work items `1..=rounds`, sleeping (without a
    /// timeout) whenever it sees none.
    fn consume(bell: &Doorbell<AtomicU32>, work: &AtomicU32, rounds: u32) {
        for i in 1..=rounds {
            while work.load(Ordering::Acquire) < i {
                bell.sleep(|| work.load(Ordering::Acquire) >= i, None);
            }
        }
    }

    /// The producer's side: publishes each item with a plain Release store,
    /// then rings (the fence in `ring` is what orders the two).
    fn produce(bell: &Doorbell<AtomicU32>, work: &AtomicU32, rounds: u32) {
        for i in 1..=rounds {
            work.store(i, Ordering::Release);
            bell.ring();
        }
    }

    fn setup() -> (Arc<Doorbell<AtomicU32>>, Arc<AtomicU32>) {
        (Arc::new(Doorbell::default()), Arc::new(AtomicU32::new(0)))
    }

    /// A consumer that sleeps when it sees no work and a producer that
    /// publishes then rings: the consumer never sleeps forever.
    #[test]
    fn loom_doorbell_loses_no_wake_up() {
        model::check(RUNS, || {
            let (bell, work) = setup();
            let (b, w) = (bell.clone(), work.clone());
            let producer = thread::spawn(move || produce(&b, &w, 2));
            consume(&bell, &work, 2);
            producer.join().unwrap();
        });
    }

    /// The word moves to "shared memory" (`use_external`) on a third thread
    /// while the consumer sleeps and the producer rings: a sleeper on the old
    /// word is woken by the move, a producer that still rings the old word
    /// finds the sleeper there, or the sleeper sees its work.
    #[test]
    fn loom_doorbell_moving_the_word_mid_run_loses_no_wake_up() {
        model::check(RUNS, || {
            let (bell, work) = setup();
            let (b, w) = (bell.clone(), work.clone());
            let producer = thread::spawn(move || produce(&b, &w, 1));
            let b = bell.clone();
            let word = external_word!();
            let mover = thread::spawn(move || b.use_external(word));
            consume(&bell, &work, 1);
            producer.join().unwrap();
            mover.join().unwrap();
            // Everything rings the new word from now on.
            assert!(bell.word().1);
        });
    }

    /// The same, with the move on the producer's thread between two items.
    #[test]
    fn loom_doorbell_moving_the_word_between_items_loses_no_wake_up() {
        model::check(RUNS, || {
            let (bell, work) = setup();
            let (b, w) = (bell.clone(), work.clone());
            let producer = thread::spawn(move || {
                produce(&b, &w, 1);
                b.use_external(external_word!());
                w.store(2, Ordering::Release);
                b.ring();
            });
            consume(&bell, &work, 2);
            producer.join().unwrap();
        });
    }
}
