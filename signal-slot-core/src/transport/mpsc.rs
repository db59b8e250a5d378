//! The data queue of a loop's inbox: a bounded multi-producer single-consumer
//! ring of typed messages.
//!
//! Why not crossbeam's bounded channel, which it replaces: that channel serves
//! many consumers, so its receiver claims every message with a locked
//! compare-and-swap on the head and hands the slot back by writing its stamp.
//! With a loop's 80-byte envelopes that costs the consumer a locked instruction
//! that waits for the previous slot's line to come back from the producer, and
//! moves every slot line across cores twice per lap (there and back). Here the
//! one consumer advances `head` with a plain store and never writes a slot;
//! producers learn that a slot is free from `head`, which they read only when
//! the ring looks full from their last look (`head_seen`).
//!
//! Positions are `u64` counters that only grow; position `p` lives in slot
//! `p & mask` (the slot count is `capacity` rounded up to a power of two, the
//! capacity itself is exact). Protocol:
//!
//! * A producer claims position `t` by a CAS of `tail` from `t` to `t + 1`, but
//!   only if `t - head < capacity`; `head` only grows, so a stale value can only
//!   make it report full. Then it writes the message into the slot and stores
//!   the slot's stamp `t + 1` (Release).
//! * The consumer at position `h` loads the stamp (Acquire); `h + 1` means the
//!   message is there (a stamp of an older lap is smaller). It moves the message
//!   out, then stores `head = h + 1` (Release).
//! * The producer's Acquire load of `head` (directly, or through `head_seen`,
//!   which is stored Release after such a load and loaded Acquire) orders its
//!   write of a slot after the consumer's read of that slot one lap earlier.
//!
//! Sleeping: the consumer's doorbell check ([`Mpsc::is_empty`]) compares `tail`
//! (a SeqCst load) with `head`, and a post's CAS of `tail` is a SeqCst
//! read-modify-write, which is what
//! [`Doorbell::ring_after_seqcst_publish`](super::doorbell::Doorbell::ring_after_seqcst_publish)
//! needs. A claimed position whose message is not written yet counts as work
//! (the consumer polls until it lands, as crossbeam's receiver does).
//!
//! One consumer at a time: [`Mpsc::consumer`] hands out a [`Consumer`] only
//! while no other exists (a flag claimed with a swap), and only a `Consumer`
//! can take messages out.
//!
//! Retiring ([`Mpsc::retire`]) frees the slots of an empty ring that will never
//! carry a message again but must stay alive (the parent's copy of a loop
//! handed to a child process, kept by objects the parent may not drop). It
//! takes the consumer for good and claims every position up to the capacity in
//! one CAS of `tail`, allowed only while `tail == head`: every post claimed
//! before it was taken (so its slot accesses happen before the retirer's claim
//! of the consumer flag), and none can claim after it (`head` never moves
//! again, so the ring looks full forever). No one touches the slots after that.
//!
//! The ring is generic over its atomics and cells ([`Backend`]) only so that the
//! loom models (`loom_models`) run this exact code on loom's types; production
//! uses std's and everything inlines.

use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::AtomicUsize;

/// The atomics and cells the ring is built from.
pub(crate) trait Backend: 'static {
    type U64: Send + Sync;
    type Flag: Send + Sync;
    type Cell<T>;
    fn u64(v: u64) -> Self::U64;
    fn load(a: &Self::U64, order: Ordering) -> u64;
    fn store(a: &Self::U64, v: u64, order: Ordering);
    fn cas_weak(a: &Self::U64, current: u64, new: u64) -> Result<u64, u64>;
    fn fetch_max(a: &Self::U64, v: u64, order: Ordering);
    fn flag() -> Self::Flag;
    /// Sets the flag (Acquire); returns its old value.
    fn claim(f: &Self::Flag) -> bool;
    /// Clears the flag (Release).
    fn release(f: &Self::Flag);
    /// Whether the flag is set (Acquire).
    fn is_set(f: &Self::Flag) -> bool;
    fn cell<T>() -> Self::Cell<T>;
    /// # Safety
    /// The caller has the cell to itself and it holds no message.
    unsafe fn write<T>(c: &Self::Cell<T>, v: T);
    /// # Safety
    /// The caller has the cell to itself and it holds a message, which is
    /// moved out (the cell holds none afterwards).
    unsafe fn take<T>(c: &Self::Cell<T>) -> T;
}

/// Production: std's atomics and cells.
pub(crate) struct Std;

impl Backend for Std {
    type U64 = AtomicU64;
    type Flag = AtomicBool;
    type Cell<T> = UnsafeCell<MaybeUninit<T>>;
    #[inline]
    fn u64(v: u64) -> AtomicU64 {
        AtomicU64::new(v)
    }
    #[inline]
    fn load(a: &AtomicU64, order: Ordering) -> u64 {
        a.load(order)
    }
    #[inline]
    fn store(a: &AtomicU64, v: u64, order: Ordering) {
        a.store(v, order);
    }
    #[inline]
    fn cas_weak(a: &AtomicU64, current: u64, new: u64) -> Result<u64, u64> {
        a.compare_exchange_weak(current, new, Ordering::SeqCst, Ordering::Acquire)
    }
    #[inline]
    fn fetch_max(a: &AtomicU64, v: u64, order: Ordering) {
        a.fetch_max(v, order);
    }
    fn flag() -> AtomicBool {
        AtomicBool::new(false)
    }
    #[inline]
    fn claim(f: &AtomicBool) -> bool {
        f.swap(true, Ordering::Acquire)
    }
    #[inline]
    fn release(f: &AtomicBool) {
        f.store(false, Ordering::Release);
    }
    #[inline]
    fn is_set(f: &AtomicBool) -> bool {
        f.load(Ordering::Acquire)
    }
    fn cell<T>() -> UnsafeCell<MaybeUninit<T>> {
        UnsafeCell::new(MaybeUninit::uninit())
    }
    #[inline]
    unsafe fn write<T>(c: &UnsafeCell<MaybeUninit<T>>, v: T) {
        // SAFETY: the caller has the cell to itself (no other reference to its
        // contents is live), so writing through the raw pointer is exclusive.
        unsafe { (*c.get()).write(v) };
    }
    #[inline]
    unsafe fn take<T>(c: &UnsafeCell<MaybeUninit<T>>) -> T {
        // SAFETY: the caller has the cell to itself and it holds an initialized
        // message, which is read exactly once (the caller treats the cell as
        // empty afterwards).
        unsafe { (*c.get()).assume_init_read() }
    }
}

/// How many positions ahead of its own a post prefetches.
const PREFETCH_AHEAD: u64 = 4;

/// Asks for the cache lines of `v` in a writable state (`prefetchw`); a hint,
/// no effect on the program's meaning. (`_mm_prefetch` with `_MM_HINT_ET0`
/// compiles to a read prefetch unless the build enables `prfchw`, and a read
/// prefetch leaves the line shared with the consumer.)
#[inline(always)]
fn prefetch_for_write<V>(v: &V) {
    #[cfg(target_arch = "x86_64")]
    {
        let p = std::ptr::from_ref(v).cast::<u8>();
        for off in (0..std::mem::size_of::<V>()).step_by(64) {
            // SAFETY: `prefetchw` never faults, writes no memory and changes no
            // register or flag (CPUs without it run it as a `nop`); `p + off`
            // stays inside `v`, so the pointer arithmetic is in bounds.
            unsafe {
                std::arch::asm!(
                    "prefetchw [{p}]",
                    p = in(reg) p.add(off),
                    options(nostack, preserves_flags, readonly)
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

struct Slot<B: Backend, T> {
    /// `p + 1` once the message of position `p` is written.
    stamp: B::U64,
    msg: B::Cell<T>,
}

/// See the module documentation.
pub(crate) struct Mpsc<T, B: Backend = Std> {
    /// Next position to claim (producers only).
    tail: CachePadded<B::U64>,
    /// A recent value of `head`, shared by the producers so that they read
    /// `head` itself only when the ring looks full.
    head_seen: CachePadded<B::U64>,
    /// Next position to take (written by the consumer only).
    head: CachePadded<B::U64>,
    /// A [`Consumer`] exists.
    consuming: B::Flag,
    /// [`retire`](Self::retire) freed the slots.
    retired: B::Flag,
    capacity: u64,
    mask: u64,
    /// Replaced by an empty slice only by `retire`, once no one can reach a
    /// slot any more (see the module documentation).
    slots: UnsafeCell<Box<[Slot<B, T>]>>,
    _owns: PhantomData<T>,
}

/// Bytes of slot storage of every ring alive in this process.
static LIVE_SLOT_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes of slot storage of every ring alive in this process (a test hook:
/// what a handed-over loop leaves behind shows here).
pub(crate) fn live_slot_bytes() -> usize {
    LIVE_SLOT_BYTES.load(Ordering::Relaxed)
}

// SAFETY: messages move between threads (hence `T: Send`); every access to a
// slot's message is exclusive by the protocol above (a producer writes only a
// position it claimed and the consumer released, the one consumer reads only a
// position whose stamp says written), and `slots` itself is replaced only by
// `retire` after the last access, so sharing the ring is sound.
unsafe impl<T: Send, B: Backend> Sync for Mpsc<T, B> {}
// SAFETY: as above; the ring owns its messages.
unsafe impl<T: Send, B: Backend> Send for Mpsc<T, B> {}

impl<T, B: Backend> Mpsc<T, B> {
    /// A ring that holds up to `capacity` (at least 1) messages.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let n = capacity.next_power_of_two();
        LIVE_SLOT_BYTES.fetch_add(n * std::mem::size_of::<Slot<B, T>>(), Ordering::Relaxed);
        Self {
            tail: CachePadded::new(B::u64(0)),
            head_seen: CachePadded::new(B::u64(0)),
            head: CachePadded::new(B::u64(0)),
            consuming: B::flag(),
            retired: B::flag(),
            capacity: capacity as u64,
            mask: n as u64 - 1,
            slots: UnsafeCell::new(
                (0..n)
                    .map(|_| Slot {
                        stamp: B::u64(0),
                        msg: B::cell(),
                    })
                    .collect(),
            ),
            _owns: PhantomData,
        }
    }

    /// The slot of position `p`.
    #[inline(always)]
    fn slot(&self, p: u64) -> &Slot<B, T> {
        // SAFETY: only `retire` writes `slots`, and only after every access
        // made through here happened before it and none can follow: callers
        // are a post that claimed a position (none can after a retire) and the
        // consumer (which a retired ring never hands out again); see the
        // module documentation.
        let slots = unsafe { &*self.slots.get() };
        &slots[(p & self.mask) as usize]
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Queues `msg` if there is room; hands it back if not.
    #[inline]
    pub(crate) fn try_send(&self, msg: T) -> Result<(), T> {
        // Acquire (here and on a failed CAS): a `t` read together with a head
        // older than it would count posts already taken as still queued.
        let mut t = B::load(&self.tail, Ordering::Acquire);
        loop {
            // Saturating: a stale `t` (other posts and the consumer moved past
            // it meanwhile) may be below the head; it is then not "full", and
            // the CAS below fails and reloads it.
            if t.saturating_sub(B::load(&self.head_seen, Ordering::Acquire)) >= self.capacity {
                let h = B::load(&self.head, Ordering::Acquire);
                B::fetch_max(&self.head_seen, h, Ordering::Release);
                if t.saturating_sub(h) >= self.capacity {
                    return Err(msg);
                }
            }
            match B::cas_weak(&self.tail, t, t + 1) {
                Ok(_) => break,
                Err(now) => t = now,
            }
        }
        // Start taking the lines of a slot a few positions on, so the next posts
        // find them here: the consumer read them last, and a post's CAS waits
        // for this post's stores, which would otherwise each wait for a line.
        prefetch_for_write(self.slot(t + PREFETCH_AHEAD));
        let slot = self.slot(t);
        // SAFETY: position `t` is ours (the CAS), and `t - head < capacity <=
        // slot count` was seen after an Acquire of `head`: the consumer took
        // the slot's previous message (position `t - slot count`) before
        // releasing that `head`, and no one else writes it until we stamp it.
        unsafe { B::write(&slot.msg, msg) };
        B::store(&slot.stamp, t + 1, Ordering::Release);
        Ok(())
    }

    /// Messages queued (claimed positions not yet taken; exact only when no
    /// one posts or takes meanwhile). None in a retired ring.
    pub(crate) fn len(&self) -> usize {
        if self.is_retired() {
            // Its positions were all claimed by `retire`, not by messages.
            return 0;
        }
        let h = B::load(&self.head, Ordering::SeqCst);
        let t = B::load(&self.tail, Ordering::SeqCst);
        t.saturating_sub(h) as usize
    }

    /// No message queued or being written. The `tail` load is SeqCst: the
    /// doorbell's sleep check relies on it (see the module documentation).
    /// A retired ring is empty (its positions were claimed by `retire`, not by
    /// messages): a loop that still polled it would otherwise never sleep.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        let t = B::load(&self.tail, Ordering::SeqCst);
        let h = B::load(&self.head, Ordering::SeqCst);
        t == h || self.is_retired()
    }

    /// The consumer's end, unless another thread holds it now.
    #[inline]
    pub(crate) fn consumer(&self) -> Option<Consumer<'_, T, B>> {
        if B::claim(&self.consuming) {
            None
        } else {
            Some(Consumer { ring: self })
        }
    }
}

impl<T, B: Backend> Mpsc<T, B> {
    /// Frees the slots for good if the ring is empty and no one consumes it:
    /// from then on every post is refused (the ring looks full) and no
    /// consumer is handed out. False, and nothing changed, otherwise. See the
    /// module documentation.
    pub(crate) fn retire(&self) -> bool {
        let Some(c) = self.consumer() else {
            return false;
        };
        // We are the consumer: `head` is ours to read.
        let h = B::load(&self.head, Ordering::Relaxed);
        loop {
            match B::cas_weak(&self.tail, h, h + self.capacity) {
                Ok(_) => break,
                Err(now) if now == h => continue, // a spurious failure
                Err(_) => return false,           // a message is queued
            }
        }
        // Only now: a post refused while the ring is merely full must wait
        // for room, not take it for retired. (`len` may count the claimed
        // positions until this store; nothing depends on that instant.)
        B::claim(&self.retired);
        // The consumer flag stays set: no one reads a slot again.
        std::mem::forget(c);
        // SAFETY: no slot access can happen from now on, and every earlier one
        // happened before this: see the module documentation.
        let slots = std::mem::take(unsafe { &mut *self.slots.get() });
        LIVE_SLOT_BYTES.fetch_sub(std::mem::size_of_val(&*slots), Ordering::Relaxed);
        drop(slots);
        true
    }

    /// [`retire`](Self::retire) freed the slots.
    pub(crate) fn is_retired(&self) -> bool {
        B::is_set(&self.retired)
    }
}

impl<T, B: Backend> Drop for Mpsc<T, B> {
    fn drop(&mut self) {
        // `&mut self`: no producer or consumer is left, every claimed position
        // was written (a post writes right after its claim and cannot fail).
        // A retired ring hands out no consumer and holds nothing.
        while let Some(c) = self.consumer() {
            if c.try_recv().is_none() {
                break;
            }
        }
        LIVE_SLOT_BYTES.fetch_sub(
            std::mem::size_of_val(&**self.slots.get_mut()),
            Ordering::Relaxed,
        );
    }
}

/// The right to take messages out of an [`Mpsc`]; one exists at a time.
pub(crate) struct Consumer<'a, T, B: Backend = Std> {
    ring: &'a Mpsc<T, B>,
}

impl<T, B: Backend> Consumer<'_, T, B> {
    /// The oldest message, if it has been written.
    #[inline]
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.recv_with(|m| m)
    }

    /// Runs `f` on the oldest message, if it has been written. Unlike
    /// `try_recv` no `Option<T>` is built: moving a large `T` in and out of
    /// one (its niche word apart from the rest) made the compiler copy it in
    /// chunks that straddled the earlier stores, and the loads stalled on
    /// store forwarding.
    #[inline(always)]
    pub(crate) fn recv_with<R>(&self, f: impl FnOnce(T) -> R) -> Option<R> {
        let r = self.ring;
        // Only the consumer writes `head`, and we are the consumer.
        let h = B::load(&r.head, Ordering::Relaxed);
        let slot = r.slot(h);
        if B::load(&slot.stamp, Ordering::Acquire) != h + 1 {
            return None;
        }
        // SAFETY: the stamp (Acquire, pairing with the producer's Release) says
        // position `h` is written; producers do not touch it again until `head`
        // passes it, and we are the only consumer (`consuming`).
        let msg = unsafe { B::take(&slot.msg) };
        B::store(&r.head, h + 1, Ordering::Release);
        Some(f(msg))
    }
}

impl<T, B: Backend> Drop for Consumer<'_, T, B> {
    fn drop(&mut self) {
        B::release(&self.ring.consuming);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn capacity_is_exact_and_order_is_kept() {
        let q: Mpsc<u32> = Mpsc::new(3);
        assert_eq!(q.capacity(), 3);
        for i in 0..3 {
            q.try_send(i).unwrap();
        }
        assert_eq!(q.try_send(9), Err(9));
        assert_eq!(q.len(), 3);
        let c = q.consumer().unwrap();
        assert!(q.consumer().is_none(), "one consumer at a time");
        assert_eq!(c.try_recv(), Some(0));
        q.try_send(3).unwrap();
        assert_eq!(q.try_send(9), Err(9));
        assert_eq!(
            (1..=3).map(|_| c.try_recv().unwrap()).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(c.try_recv(), None);
        assert!(q.is_empty());
        drop(c);
        assert!(q.consumer().is_some());
    }

    #[test]
    fn unreceived_messages_are_dropped_with_the_ring() {
        let probe = Arc::new(());
        let q: Mpsc<Arc<()>> = Mpsc::new(4);
        for _ in 0..3 {
            q.try_send(probe.clone()).unwrap();
        }
        drop(q.consumer().unwrap().try_recv());
        assert_eq!(Arc::strong_count(&probe), 3);
        drop(q);
        assert_eq!(Arc::strong_count(&probe), 1);
    }

    #[test]
    fn a_retired_ring_frees_its_slots_and_refuses_everything() {
        let q: Mpsc<u64> = Mpsc::new(100);
        q.try_send(1).unwrap();
        assert!(!q.retire(), "not while a message is queued");
        let c = q.consumer().unwrap();
        assert_eq!(c.try_recv(), Some(1));
        assert!(!q.retire(), "not while someone consumes");
        drop(c);
        assert!(q.retire());
        assert!(q.is_retired());
        // SAFETY: test only; the ring is not shared.
        assert_eq!(unsafe { &*q.slots.get() }.len(), 0, "the storage is freed");
        assert_eq!(q.try_send(2), Err(2));
        assert_eq!(q.len(), 0);
        assert!(q.consumer().is_none());
        assert!(q.is_empty(), "nothing to poll for");
        assert!(!q.retire(), "once");
    }

    #[test]
    fn many_producers_one_consumer_lose_nothing() {
        const PER: u64 = 20_000;
        let q: Arc<Mpsc<u64>> = Arc::new(Mpsc::new(16));
        let producers: Vec<_> = (0..3)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..PER {
                        let mut m = p << 32 | i;
                        while let Err(back) = q.try_send(m) {
                            m = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u64; 3];
        let mut got = 0;
        while got < 3 * PER {
            let c = q.consumer().unwrap();
            match c.try_recv() {
                Some(m) => {
                    let (p, i) = ((m >> 32) as usize, m & 0xffff_ffff);
                    assert_eq!(i, next[p], "per-producer order");
                    next[p] += 1;
                    got += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        producers.into_iter().for_each(|p| p.join().unwrap());
        assert!(q.is_empty());
    }
}

/// Every interleaving of a few producers and the consumer under
/// `RUSTFLAGS="--cfg loom"` (loom's cells report any unsynchronized access to a
/// slot's message, so a missing Acquire/Release shows); plain threaded runs
/// otherwise.
#[cfg(all(test, loom))]
pub(crate) mod loom_models {
    use super::{Backend, Mpsc};
    use crate::sync::model::{self, thread, Arc};
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicBool, AtomicU64};
    use std::mem::MaybeUninit;
    use std::sync::atomic::Ordering;

    /// The ring on loom's atomics and cells (also used by the room-bell model
    /// in `inbox`).
    pub(crate) struct Loom;

    impl Backend for Loom {
        type U64 = AtomicU64;
        type Flag = AtomicBool;
        type Cell<T> = UnsafeCell<MaybeUninit<T>>;
        fn u64(v: u64) -> AtomicU64 {
            AtomicU64::new(v)
        }
        fn load(a: &AtomicU64, order: Ordering) -> u64 {
            a.load(order)
        }
        fn store(a: &AtomicU64, v: u64, order: Ordering) {
            a.store(v, order);
        }
        fn cas_weak(a: &AtomicU64, current: u64, new: u64) -> Result<u64, u64> {
            a.compare_exchange_weak(current, new, Ordering::SeqCst, Ordering::Acquire)
        }
        fn fetch_max(a: &AtomicU64, v: u64, order: Ordering) {
            a.fetch_max(v, order);
        }
        fn flag() -> AtomicBool {
            AtomicBool::new(false)
        }
        fn claim(f: &AtomicBool) -> bool {
            f.swap(true, Ordering::Acquire)
        }
        fn release(f: &AtomicBool) {
            f.store(false, Ordering::Release);
        }
        fn is_set(f: &AtomicBool) -> bool {
            f.load(Ordering::Acquire)
        }
        fn cell<T>() -> UnsafeCell<MaybeUninit<T>> {
            UnsafeCell::new(MaybeUninit::uninit())
        }
        unsafe fn write<T>(c: &UnsafeCell<MaybeUninit<T>>, v: T) {
            // SAFETY: as for `Std` (loom checks the exclusivity).
            c.with_mut(|p| unsafe { (*p).write(v) });
        }
        unsafe fn take<T>(c: &UnsafeCell<MaybeUninit<T>>) -> T {
            // SAFETY: as for `Std` (loom checks the exclusivity).
            c.with(|p| unsafe { (*p).assume_init_read() })
        }
    }

    /// Receives `n` messages, in order (`i`, from producer 0).
    fn consume(q: &Mpsc<u32, Loom>, n: usize) {
        let mut next = 0;
        let mut got = 0;
        while got < n {
            let c = q.consumer().expect("one consumer");
            match c.try_recv() {
                Some(m) => {
                    assert_eq!(m, next);
                    next += 1;
                    got += 1;
                }
                None => thread::yield_now(),
            }
        }
        assert!(q.is_empty());
    }

    fn produce(q: &Mpsc<u32, Loom>, n: u32) {
        for i in 0..n {
            let mut m = i;
            while let Err(back) = q.try_send(m) {
                m = back;
                thread::yield_now();
            }
        }
    }

    /// Two producers try one post each into a ring of one slot while the
    /// consumer takes the first message: the second post finds the ring full
    /// or reuses the slot just emptied. Whatever succeeded arrives, once.
    #[test]
    fn loom_mpsc_two_producers_share_one_slot() {
        model::check(1, || {
            let q = Arc::new(Mpsc::<u32, Loom>::new(1));
            let producers: Vec<_> = (0..2)
                .map(|p| {
                    let q = q.clone();
                    thread::spawn(move || q.try_send(p << 8).is_ok())
                })
                .collect();
            // The first post into the empty ring always succeeds.
            let mut got = vec![loop {
                if let Some(m) = q.consumer().expect("one consumer").try_recv() {
                    break m;
                }
                thread::yield_now();
            }];
            let sent = producers
                .into_iter()
                .map(|p| p.join().unwrap())
                .filter(|ok| *ok)
                .count();
            got.extend(q.consumer().expect("one consumer").try_recv());
            assert_eq!(got.len(), sent);
            assert!(q.is_empty());
            got.dedup();
            assert_eq!(got.len(), sent, "a message arrived twice");
        });
    }

    /// Found in review: a producer's stale tail (others posted, the consumer
    /// took) once made it report "full" on a ring that never held more than
    /// its capacity. Every post must succeed here.
    #[test]
    fn loom_mpsc_a_stale_tail_is_never_full() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let q = Arc::new(Mpsc::<u32, Loom>::new(2));
            let q2 = q.clone();
            let a = thread::spawn(move || q2.try_send(100).is_ok());
            for i in 0..3u32 {
                assert!(q.try_send(i).is_ok(), "post {i} refused");
                loop {
                    match q.consumer().expect("one consumer").try_recv() {
                        Some(100) => {}
                        Some(m) => {
                            assert_eq!(m, i);
                            break;
                        }
                        None => thread::yield_now(),
                    }
                }
            }
            assert!(a.join().unwrap(), "spurious full: the ring never held 2");
        });
    }

    /// A post racing the retirement of its empty ring: either the post is
    /// refused and the ring retired, or the post lands and the retirement is
    /// refused (the message then arrives).
    #[test]
    fn loom_mpsc_retire_races_a_post() {
        model::check(1, || {
            let q = Arc::new(Mpsc::<u32, Loom>::new(1));
            let q2 = q.clone();
            let p = thread::spawn(move || q2.try_send(7).is_ok());
            let retired = q.retire();
            let sent = p.join().unwrap();
            assert!(retired != sent, "retired {retired}, sent {sent}");
            assert_eq!(q.is_retired(), retired);
            if sent {
                assert_eq!(q.consumer().expect("one consumer").try_recv(), Some(7));
            } else {
                assert!(q.consumer().is_none());
            }
        });
    }

    /// One producer laps a ring of one slot three times.
    #[test]
    fn loom_mpsc_producer_laps_the_ring() {
        model::check(1, || {
            let q = Arc::new(Mpsc::<u32, Loom>::new(1));
            let q2 = q.clone();
            let p = thread::spawn(move || produce(&q2, 3));
            consume(&q, 3);
            p.join().unwrap();
        });
    }
}
