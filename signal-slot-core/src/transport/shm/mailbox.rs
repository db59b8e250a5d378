//! A loop's cross-process inbox: one ring per producer process in the region,
//! a dirty mask naming the rings with news, and the loop's doorbell.

use super::region::{MailboxHeader, Region, MAX_MAILBOXES, MAX_PROCS};
use super::ring::{AtHead, Damage, Peek, RingError, RingView, Tail};
use crate::sync::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use crate::transport::barrier;
use crate::transport::doorbell::wake_if_sleeping;
use crossbeam_utils::CachePadded;
use std::time::{Duration, Instant};

/// Which mailbox, and which of its lives (records carry it; a reused mailbox
/// ignores records meant for its previous loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MailboxAddr {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// Serializes this process's producers per target mailbox (a ring has one
/// producer process; its threads take turns). A spin lock: it is held for a
/// record copy only, and its unlock is a plain store (a mutex's is a locked
/// exchange). Held all at once across `fork`.
/// Each on a line of its own: threads sending to different loops do not share.
///
/// A lock biased to the thread that keeps sending (entered with plain stores)
/// was tried and removed: with one `busy` flag per lock, a thread whose bias
/// was revoked while it was preempted could clear the flag of the next owner
/// and let a third thread in beside it (review, 2026-11-30). Doing it right
/// needs a flag per thread that outlives the thread.
static PRODUCER_LOCKS: [CachePadded<SpinLock>; MAX_MAILBOXES] =
    [const { CachePadded::new(SpinLock::new()) }; MAX_MAILBOXES];

struct SpinLock {
    held: AtomicBool,
    /// Producer state guarded by the lock: the head last read from the ring of
    /// process `head_of - 1` into this mailbox (see `RingView::push_at`).
    /// Tagged with the process, so a forked child, which writes its own ring,
    /// never uses its parent's value.
    head_of: AtomicU32,
    head_seen: AtomicU64,
    /// The ring's last record is this process's (`head_of`'s), so the word at
    /// its tail is the zero written with it (see `RingView::push_at`); false
    /// after damage: the next record looks at its tail, as a new producer's.
    tail_mine: AtomicBool,
}

impl SpinLock {
    const fn new() -> Self {
        SpinLock {
            held: AtomicBool::new(false),
            head_of: AtomicU32::new(0),
            head_seen: AtomicU64::new(0),
            tail_mine: AtomicBool::new(false),
        }
    }

    #[inline]
    fn lock(&self) -> SpinGuard<'_> {
        let backoff = crossbeam_utils::Backoff::new();
        while self
            .held
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            backoff.snooze();
        }
        SpinGuard(&self.held)
    }
}

pub(crate) struct SpinGuard<'a>(&'a AtomicBool);

impl Drop for SpinGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Takes every producer lock (before `fork`, so no child inherits one held).
pub(crate) fn lock_all_producers() -> Vec<SpinGuard<'static>> {
    PRODUCER_LOCKS.iter().map(|l| l.lock()).collect()
}

/// Writes one record of `len` bytes (filled by `fill`) from process `me` into
/// mailbox `to`, then wakes its loop if it sleeps.
pub(crate) fn send(
    region: &Region,
    to: u32,
    me: u32,
    len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Result<(), RingError> {
    send_with(region, to, me, len, |b| {
        fill(b);
        true
    })
}

#[cfg(debug_assertions)]
thread_local! {
    /// Mailboxes whose producer lock this thread holds (bit `m`).
    static FILLING: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(debug_assertions)]
/// Marks a mailbox's producer lock as held by this thread while it lives
/// (also when `fill` unwinds).
struct Filling(u64);

#[cfg(debug_assertions)]
impl Filling {
    /// None if this thread holds that lock already.
    #[inline]
    fn enter(to: u32) -> Option<Self> {
        let bit = 1u64 << (to % 64);
        FILLING.with(|f| {
            let held = f.get();
            (held & bit == 0).then(|| {
                f.set(held | bit);
                Filling(bit)
            })
        })
    }
}

#[cfg(debug_assertions)]
impl Drop for Filling {
    #[inline]
    fn drop(&mut self) {
        FILLING.with(|f| f.set(f.get() & !self.0));
    }
}

/// Like [`send`], for a `fill` that may fail (`false`: nothing is sent,
/// [`RingError::Unfilled`]).
///
/// A `fill` must not send to mailbox `to`: it would spin forever on the lock
/// its own thread holds. Every `fill` in the crate copies bytes encoded
/// before the call (user code, a `Serialize` impl, runs with no lock held;
/// see `event_loop::remote::post`), so none can; debug builds (the tests)
/// check it and refuse such a nested send ([`RingError::Unfilled`],
/// logged). Not release builds: the thread-local the check reads was 23 of
/// the ~330 instructions of a `(u64,)` emit to another process (callgrind,
/// `BENCH_ONLY=group_u64 BENCH_QUICK=1`, `deliver_elsewhere_plain`).
pub(crate) fn send_with(
    region: &Region,
    to: u32,
    me: u32,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> bool,
) -> Result<(), RingError> {
    Producer::new(region, to, me)
        .ok_or(RingError::Corrupt("mailbox index"))?
        .send(len, fill)
}

/// What process `me` needs to write into mailbox `to`, resolved once: its
/// producer lock, its ring and the mailbox's header. A connection to a slot
/// of another process keeps one (see `event_loop::remote::Route`), so that
/// its emits skip the index checks and the address arithmetic of
/// [`send_with`], which builds one per send.
///
/// Only for `me` = this process: a forked child, which writes a ring of its
/// own, must build its own (the lock's `head_of` tag keeps it from using the
/// parent's head all the same).
#[derive(Clone, Copy)]
pub(crate) struct Producer<'r> {
    lock: &'static SpinLock,
    ring: RingView,
    header: &'r MailboxHeader,
    region: &'r Region,
    to: u32,
    me: u32,
}

impl<'r> Producer<'r> {
    /// None if `to` is no mailbox of the layout (`me` is clamped as in
    /// `Region::ring`).
    #[inline(always)]
    pub(crate) fn new(region: &'r Region, to: u32, me: u32) -> Option<Self> {
        let lock = PRODUCER_LOCKS.get(to as usize)?;
        Some(Producer {
            lock,
            ring: region.ring(to, me),
            header: region.mailbox_header(to),
            region,
            to,
            me,
        })
    }

    /// The mailbox's header (its generation, its doorbell).
    #[inline(always)]
    pub(crate) fn header(&self) -> &'r MailboxHeader {
        self.header
    }

    /// The producer process this was resolved for.
    #[inline(always)]
    pub(crate) fn me(&self) -> u32 {
        self.me
    }

    /// The mailbox written to.
    #[inline(always)]
    pub(crate) fn to(&self) -> u32 {
        self.to
    }

    /// The region the mailbox is in.
    #[inline(always)]
    pub(crate) fn region(&self) -> &'r Region {
        self.region
    }

    /// [`send_with`] through the resolved parts (the same contract: `fill`
    /// must not send to this mailbox).
    #[inline(always)]
    pub(crate) fn send(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<(), RingError> {
        let (lock, me) = (self.lock, self.me);
        {
            #[cfg(debug_assertions)]
            let Some(_filling) = Filling::enter(self.to) else {
                log::error!(
                    "a record to mailbox {} was sent while this thread wrote another one \
                     to it (from inside its encoding): refused",
                    self.to
                );
                return Err(RingError::Unfilled);
            };
            // This process's first record into this ring (`head_of` keeps its
            // producer's index from then on): its existing pages are mapped
            // at once (see `Region::map_resident`). Before the lock, as it
            // may take a few hundred us: the other threads of this process
            // sending to `to` do not wait for it, nor a fork. Two threads'
            // first records may both map it: harmless.
            if lock.head_of.load(Ordering::Relaxed) != me + 1 {
                self.region.map_resident(self.to, me);
            }
            let _g = lock.lock();
            // Relaxed: the lock orders these between this process's producers.
            let (mut head_seen, known) = if lock.head_of.load(Ordering::Relaxed) == me + 1 {
                let known = if lock.tail_mine.load(Ordering::Relaxed) {
                    Tail::Mine
                } else {
                    Tail::Unknown
                };
                (lock.head_seen.load(Ordering::Relaxed), known)
            } else {
                (0, Tail::Unknown)
            };
            let pushed = self.ring.push_at(len, &mut head_seen, known, fill);
            lock.head_of.store(me + 1, Ordering::Relaxed);
            lock.head_seen.store(head_seen, Ordering::Relaxed);
            // Whether the word at the tail is now known to be ours: after a
            // push that got as far as the look at it (or skipped it knowing),
            // not after damage. A record refused as too large looked at
            // nothing: what was known stays (review helper-69: a new
            // process's first send, too large, made it skip that look for
            // good, over a killed predecessor's record).
            let mine = match &pushed {
                Ok(()) | Err(RingError::Full | RingError::Unfilled) => true,
                Err(RingError::TooLarge) => known == Tail::Mine,
                Err(RingError::Corrupt(_)) => false,
            };
            lock.tail_mine.store(mine, Ordering::Relaxed);
            pushed?;
        }
        let mb = self.header;
        let bit = 1u64 << me;
        // Orders the record's publication before the mask check, paired with the
        // consumer's heavy barrier between its swap of the mask and its reads of
        // the rings
        // (see `transport::barrier`): if our flag is still set, the consumer has
        // not cleared it yet and will see the record when it does.
        barrier::light(&mb.fences);
        if mb.dirty.load(Ordering::Relaxed) & bit == 0 {
            // The consumer cleared the mask (it may be about to sleep): flag the
            // ring, then check the doorbell, ordered by full fences on both sides
            // (the sleeper announces sleep, fences, then reads the mask).
            mb.dirty.fetch_or(bit, Ordering::SeqCst);
            fence(Ordering::SeqCst);
        }
        wake_if_sleeping(&mb.bell, true);
        Ok(())
    }
}

/// Before a process first reads mailbox `m`: maps the pages of its rings
/// that exist (see `Region::map_resident`), so that the first pass of this
/// process over each does not fault page by page. Cold: once per consumer.
pub(crate) fn map_resident_rings(region: &Region, m: u32) {
    for p in 0..MAX_PROCS as u32 {
        region.map_resident(m, p);
    }
}

/// After producer process `p` died: flags its ring in every mailbox where it
/// left records, and wakes their loops. A producer killed between publishing
/// a record and flagging its ring (or ringing the doorbell) left a record a
/// sleeping loop would not look at until another process sent to it (review
/// helper-48). Its records were whole (a record publishes itself), so they
/// are read as any other.
pub(crate) fn wake_for_dead_producer(region: &Region, p: u32) {
    if p as usize >= MAX_PROCS {
        return;
    }
    let bit = 1u64 << p;
    for m in 0..MAX_MAILBOXES as u32 {
        if !region.mailbox_in_use(m) || region.ring(m, p).is_empty() {
            continue;
        }
        let mb = region.mailbox_header(m);
        // As a producer that found its flag clear (see `send_with`).
        mb.dirty.fetch_or(bit, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        wake_if_sleeping(&mb.bell, true);
    }
}

/// Claims a mailbox for a loop of process `owner`. Whatever its rings still hold
/// was meant for a previous owner and is skipped.
pub(crate) fn claim(region: &Region, owner: u32) -> Option<MailboxAddr> {
    let index = region.claim_mailbox(owner)?;
    for p in 0..MAX_PROCS as u32 {
        region.ring(index, p).skip_all();
    }
    let header = region.mailbox_header(index);
    barrier::reset(&header.fences, &header.grace_end);
    header.dirty.store(0, Ordering::SeqCst);
    let generation = header.generation.load(Ordering::Acquire);
    Some(MailboxAddr { index, generation })
}

/// The flags a consumer cleared before sleeping, looked at again until a
/// [`barrier::GRACE`] has passed: the backstop of the asymmetric barrier.
///
/// A producer that found its flag set skips flagging and waking; its record
/// must then be visible to the consumer's ring reads after the clear, which
/// `membarrier(2)` guarantees (see `transport::barrier`). On the 2-vCPU VMs
/// we test on, that guarantee failed about once in 10^6-10^7 sleeps under
/// load: a request record sat in a ring whose flag the consumer had cleared,
/// while the consumer slept without a timeout (found by a stress run of the
/// request bench; the cause in the kernel or hypervisor is unknown). The
/// store is there, only late: a store is visible within a store buffer's
/// drain time (or at once when its CPU is preempted), the bound the barrier's
/// fallback already relies on. So a consumer keeps the rings it cleared in
/// here, looks at them in every poll ([`MailboxConsumer::find_record`])
/// and every [`MailboxConsumer::settle`] until [`barrier::GRACE`] after the
/// last clear, sleeps at most until then ([`Cleared::nap`]), and flags them
/// again if it stops reading the mailbox before that
/// ([`MailboxConsumer::hand_back`]). Cost: one extra wake-up per idle period
/// of a loop, a grace after it went idle. (Not counted: a record a producer
/// is about to flag looks the same as one the barrier failed to order.)
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cleared {
    mask: u64,
    /// When the rings of `mask` may be forgotten (after a last look).
    until: Option<Instant>,
}

/// A dirty mask naming every ring of a mailbox.
const EVERY_RING: u64 = if MAX_PROCS >= 64 {
    u64::MAX
} else {
    (1 << MAX_PROCS) - 1
};

impl Cleared {
    /// Every ring of the mailbox, flagged or not: for a last [`drain`] that
    /// must find all that is left (a stopped loop's, a dead process's), a
    /// record the barrier did not order included.
    ///
    /// [`drain`]: MailboxConsumer::drain
    pub(crate) fn every_ring() -> Self {
        Cleared {
            mask: EVERY_RING,
            until: None,
        }
    }

    /// How long the consumer may sleep at most (`timeout`, or less while
    /// cleared rings must be looked at again).
    pub(crate) fn nap(&self, timeout: Option<Duration>) -> Option<Duration> {
        let Some(until) = self.until else {
            return timeout;
        };
        let left = until.saturating_duration_since(Instant::now());
        Some(timeout.map_or(left, |t| t.min(left)))
    }

    /// Notes the rings of `mask` as cleared now; forgets the older ones if
    /// their grace is over (`now`, read before they were looked at).
    fn note(&mut self, mask: u64, now: Instant) {
        if mask != 0 {
            self.mask |= mask;
            self.until = Some(now + barrier::GRACE);
        } else if self.until.is_some_and(|u| now >= u) {
            *self = Cleared::default();
        }
    }
}

thread_local! {
    /// Round-robin start of each consumer thread's drains.
    static ROUND: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The consuming side of one mailbox, owned by its loop's thread.
#[derive(Clone, Copy)]
pub(crate) struct MailboxConsumer {
    region: &'static Region,
    addr: MailboxAddr,
    /// The mailbox's header, looked up once: every poll reads its mask.
    header: &'static MailboxHeader,
}

/// What [`MailboxConsumer::find_record`] found.
#[derive(Clone, Copy)]
pub(crate) enum Found {
    /// No ring holds records.
    Nothing,
    /// A plain record at the head of a ring.
    One(OneRecord),
    /// Records (or damage) a drain reads.
    Records,
}

/// A record at the head of one ring of a mailbox, found by its consumer.
#[derive(Clone, Copy)]
pub(crate) struct OneRecord {
    ring: RingView,
    at: AtHead,
}

impl OneRecord {
    /// Consumes the record (a private copy to `f`). Records behind it stay
    /// for the next drain.
    #[inline(always)]
    pub(crate) fn take<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        self.ring.take(self.at, f)
    }
}

impl MailboxConsumer {
    /// A view of a mailbox this process claimed with [`claim`].
    pub(crate) fn new(region: &'static Region, addr: MailboxAddr) -> Self {
        Self {
            region,
            addr,
            header: region.mailbox_header(addr.index),
        }
    }

    /// The mailbox this consumer reads.
    #[inline]
    pub(crate) fn addr(&self) -> MailboxAddr {
        self.addr
    }

    /// The data bytes of each of its rings.
    pub(crate) fn ring_bytes(&self) -> usize {
        self.region.ring_bytes()
    }

    /// Some producer flagged its ring since the mask was last cleared. With
    /// [`drain_polling`](Self::drain_polling) flags outlive their records: this
    /// is then the check to sleep on (after [`settle`](Self::settle)), and
    /// [`has_records_or`](Self::has_records_or) the one to poll.
    pub(crate) fn has_work(&self) -> bool {
        self.header().dirty.load(Ordering::SeqCst) != 0
    }

    #[inline]
    fn header(&self) -> &MailboxHeader {
        self.header
    }

    /// Hands up to `budget` records to `f` (with the producer's process index;
    /// each a private copy), clearing the mask first: for a consumer that
    /// sleeps on [`has_work`] right after. Damage found in a ring is got past
    /// and reported through `corrupt` (see `ring`), once.
    ///
    /// [`has_work`]: Self::has_work
    ///
    /// `cleared`: the caller's [`Cleared`] backstop; the rings it holds are
    /// drained too, and the caller sleeps at most [`Cleared::nap`].
    pub(crate) fn drain(
        &self,
        cleared: &mut Cleared,
        budget: usize,
        f: impl FnMut(u32, &[u8]),
        corrupt: impl FnMut(u32, Damage),
    ) -> usize {
        let header = self.header();
        let mask = header.dirty.swap(0, Ordering::SeqCst);
        // Producers that found their flag set before the swap published their
        // records before it (see `transport::barrier`).
        let mut left = 0;
        if !barrier::consumer(&header.fences, &header.grace_end) {
            // Not ordered yet (for a bounded time, see `transport::barrier`):
            // keep the flags up so the caller does not sleep.
            left = mask;
        }
        let look = mask | cleared.mask;
        if look != 0 {
            cleared.note(mask, Instant::now());
        }
        let (n, rest) = self.drain_rings(look, budget, true, f, corrupt);
        left |= rest;
        if left != 0 {
            // Budget spent: come back to these rings next round.
            header.dirty.fetch_or(left, Ordering::SeqCst);
        }
        n
    }

    /// Like [`drain`](Self::drain), but leaves the mask set: for a consumer
    /// that keeps polling. A flag then stays up while its producer streams, so
    /// the producer finds it set and skips the read-modify-write (and the
    /// cache line stays put between the two); the consumer clears the mask
    /// only when it is about to sleep, with [`settle`](Self::settle).
    // Inlined, with the ring's drain, into the loop's one call site: a
    // ping-pong hands one record per drain, and each layer's call costs
    // about a tenth of the record's whole consumer path.
    #[inline]
    pub(crate) fn drain_polling(
        &self,
        budget: usize,
        f: impl FnMut(u32, &[u8]),
        corrupt: impl FnMut(u32, Damage),
    ) -> usize {
        let mask = self.header().dirty.load(Ordering::SeqCst);
        self.drain_rings(mask, budget, false, f, corrupt).0
    }

    /// True if a flagged ring, or one of `cleared` (see [`Cleared`]), holds
    /// records: the look of a consumer that drains with
    /// [`drain_polling`](Self::drain_polling). A ring of `cleared` that holds
    /// records gets its flag back, so the drain that follows reads it.
    #[inline]
    pub(crate) fn has_records_or(&self, cleared: &Cleared) -> bool {
        !matches!(self.find_record(cleared), Found::Nothing)
    }

    /// [`has_records_or`](Self::has_records_or) for the idle poll: also says
    /// which record is at the head of the first ring that holds one, if it
    /// is a plain one, for [`OneRecord::take`].
    #[inline(always)]
    pub(crate) fn find_record(&self, cleared: &Cleared) -> Found {
        let flagged = self.header().dirty.load(Ordering::SeqCst);
        let mut mask = flagged | cleared.mask;
        while mask != 0 {
            let p = mask.trailing_zeros();
            mask &= mask - 1;
            let ring = self.region.ring(self.addr.index, p);
            let found = match ring.peek() {
                Peek::Empty => continue,
                Peek::Record(at) => Found::One(OneRecord { ring, at }),
                Peek::Other => Found::Records,
            };
            if flagged & (1 << p) == 0 {
                self.header().dirty.fetch_or(1 << p, Ordering::SeqCst);
            }
            return found;
        }
        Found::Nothing
    }

    /// Gives back the flags of the rings `cleared` still holds (a consumer
    /// that stops reading the mailbox within a grace of clearing them: the
    /// next reader, which does not know them, polls them then).
    pub(crate) fn hand_back(&self, cleared: &Cleared) {
        if cleared.until.is_some() && cleared.mask != 0 {
            self.header().dirty.fetch_or(cleared.mask, Ordering::SeqCst);
        }
    }

    /// Whether a producer whose ring holds records last went idle on `cpu`
    /// (see `system::proc_cpu`); `None` if no such producer's CPU is known.
    pub(crate) fn records_from_cpu(&self, cpu: u32) -> Option<bool> {
        let mut mask = self.header().dirty.load(Ordering::SeqCst);
        let mut known = None;
        while mask != 0 {
            let p = mask.trailing_zeros();
            mask &= mask - 1;
            if self.region.ring(self.addr.index, p).is_empty() {
                continue;
            }
            match super::system::proc_cpu(self.region, p) {
                Some(c) if c == cpu => return Some(true),
                Some(_) => known = Some(false),
                None => {}
            }
        }
        known
    }

    /// Before sleeping (then on [`has_work`](Self::has_work)): clears the mask,
    /// and puts back the flags of rings that still hold records; true if any
    /// did (do not sleep then).
    ///
    /// Why no record is missed: a producer publishes its record, then (after a
    /// light barrier) reads the mask. If it read its flag clear, it sets it
    /// itself, fences, then checks the doorbell (the sleeper reads the mask
    /// after announcing sleep). If it read its flag set, the swap here came
    /// after that read, so the heavy barrier here makes its record visible to
    /// the ring reads below (see `transport::barrier`).
    ///
    /// Also looks at the rings `cleared` holds (see [`Cleared`]); the caller
    /// then sleeps at most [`Cleared::nap`].
    pub(crate) fn settle(&self, cleared: &mut Cleared) -> bool {
        self.settle_reporting(cleared, |from, damage| {
            log::error!("ring from process {from} damaged: {damage}");
        })
    }

    /// [`settle`](Self::settle), reporting the damage found on the way (a
    /// consumer sent astray in a ring, see `RingView::check_stalled`) through
    /// `corrupt`.
    pub(crate) fn settle_reporting(
        &self,
        cleared: &mut Cleared,
        mut corrupt: impl FnMut(u32, Damage),
    ) -> bool {
        let header = self.header();
        let mask = header.dirty.swap(0, Ordering::SeqCst);
        // See `transport::barrier`; without it (for a bounded time), do not
        // sleep.
        let ordered = barrier::consumer(&header.fences, &header.grace_end);
        let mut busy = if ordered { 0 } else { mask };
        let mut rest = mask | cleared.mask;
        if rest != 0 {
            // Read before the looks below: what they find is as of then.
            cleared.note(mask, Instant::now());
        }
        while rest != 0 {
            let p = rest.trailing_zeros();
            rest &= rest - 1;
            let ring = self.region.ring(self.addr.index, p);
            if ring.is_empty() {
                // Before sleeping (not while polling: it reads the
                // producer's line).
                let Some(damage) = ring.check_stalled() else {
                    continue;
                };
                corrupt(p, damage);
            }
            busy |= 1 << p;
        }
        if busy != 0 {
            header.dirty.fetch_or(busy, Ordering::SeqCst);
        }
        busy != 0
    }

    /// Drains the rings of `mask`, up to `budget` records in all; returns the
    /// records handed out and (if `find_left`) the rings left non-empty.
    #[inline]
    fn drain_rings(
        &self,
        mask: u64,
        budget: usize,
        find_left: bool,
        mut f: impl FnMut(u32, &[u8]),
        mut corrupt: impl FnMut(u32, Damage),
    ) -> (usize, u64) {
        // Start at a different producer each round so one busy producer cannot
        // starve the others of the budget. One flagged ring (a peer streaming,
        // a ping-pong) has no one to starve: no thread-local to touch.
        let start = if mask & mask.wrapping_sub(1) == 0 {
            0
        } else {
            ROUND.with(|r| {
                let v = r.get();
                r.set(v.wrapping_add(1));
                v % 64
            })
        };
        let mut rotated = mask.rotate_right(start);
        let mut n = 0;
        let mut left = 0;
        while rotated != 0 {
            let p = (rotated.trailing_zeros() + start) % 64;
            rotated &= rotated - 1;
            let ring = self.region.ring(self.addr.index, p);
            let room = budget.saturating_sub(n);
            let drained = ring.drain(room, |rec| f(p, rec));
            n += drained.records;
            if let Some(damage) = drained.damage {
                corrupt(p, damage);
            }
            if find_left {
                // A consumer about to sleep: also the check before sleeping.
                if ring.is_empty() {
                    if let Some(damage) = ring.check_stalled() {
                        corrupt(p, damage);
                    }
                }
                if !ring.is_empty() {
                    left |= 1 << p;
                }
            }
        }
        (n, left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::barrier;
    use std::time::{Duration, Instant};

    /// A system region of small rings, for the life of the test process.
    fn region() -> &'static Region {
        Box::leak(Box::new(Region::create(4096).unwrap()))
    }

    /// Drains everything, returning the records' first bytes.
    fn drain(c: &MailboxConsumer) -> Vec<u8> {
        let mut got = Vec::new();
        c.drain(
            &mut Cleared::default(),
            usize::MAX,
            |_, r| got.push(r[0]),
            |_, why| panic!("{why}"),
        );
        got
    }

    /// Settles until the consumer may sleep; fails if that takes `limit`.
    fn settle_within(c: &MailboxConsumer, limit: Duration) -> Duration {
        let t = Instant::now();
        while c.settle(&mut Cleared::default()) {
            assert!(t.elapsed() < limit, "the consumer never may sleep");
            std::hint::spin_loop();
        }
        t.elapsed()
    }

    #[test]
    #[cfg(debug_assertions)]
    fn a_send_nested_in_the_fill_of_another_to_the_same_mailbox_is_refused() {
        let region = region();
        let addr = claim(region, 0).unwrap();
        let other = claim(region, 0).unwrap();
        let mut nested = Vec::new();
        send(region, addr.index, 1, 8, |b| {
            // Before: spun forever on the lock this thread holds.
            nested.push(send(region, addr.index, 1, 8, |b| b.fill(9)));
            nested.push(send(region, other.index, 1, 8, |b| b.fill(3)));
            b.fill(1);
        })
        .unwrap();
        assert_eq!(nested, [Err(RingError::Unfilled), Ok(())]);
        assert_eq!(drain(&MailboxConsumer::new(region, addr)), [1]);
        assert_eq!(drain(&MailboxConsumer::new(region, other)), [3]);
        // The lock and the mark were released.
        send(region, addr.index, 1, 8, |b| b.fill(2)).unwrap();
        assert_eq!(drain(&MailboxConsumer::new(region, addr)), [2]);
    }

    /// Two producer processes' resolved `Producer`s (a connection's route
    /// keeps one; a forked child resolves its own) into one mailbox, sending
    /// records of random lengths in a random interleaving with drains of
    /// random size: each ring hands out exactly what was sent into it without
    /// an error, in order and intact. (Processes 5 and 6: the other tests
    /// send as 1, and the locks, with their cached heads, are process-wide.)
    #[test]
    fn producers_of_two_processes_keep_each_ring_in_order() {
        let region = region();
        let addr = claim(region, 0).unwrap();
        let procs = [5u32, 6];
        let producers = procs.map(|p| Producer::new(region, addr.index, p).unwrap());
        let mut sent: [std::collections::VecDeque<Vec<u8>>; 2] = Default::default();
        let (mut seq, mut full) = (0u32, 0);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for _ in 0..20_000 {
            let i = next(2) as usize;
            if next(3) > 0 {
                seq += 1;
                let len = 4 + next(300) as usize;
                let mut rec = vec![(seq % 251) as u8; len];
                rec[..4].copy_from_slice(&seq.to_le_bytes());
                match producers[i].send(len, |b| {
                    b.copy_from_slice(&rec);
                    true
                }) {
                    Ok(()) => sent[i].push_back(rec),
                    Err(RingError::Full) => full += 1,
                    Err(e) => panic!("{e:?}"),
                }
            } else {
                let max = 1 + next(40) as usize;
                let drained = region.ring(addr.index, procs[i]).drain(max, |r| {
                    assert_eq!(sent[i].pop_front().as_deref(), Some(r), "ring {i}");
                });
                assert!(drained.damage.is_none());
            }
        }
        for (i, p) in procs.into_iter().enumerate() {
            region.ring(addr.index, p).drain(usize::MAX, |r| {
                assert_eq!(sent[i].pop_front().as_deref(), Some(r), "ring {i}");
            });
            assert!(sent[i].is_empty());
        }
        // The rings (4 KiB) did fill up now and then.
        assert!(full > 0);
    }

    /// The producer lock's cached head is tagged with the process that
    /// loaded it: a producer of another process (a forked child inherits the
    /// lock as it was) reads its own ring's head instead. Here process 8's
    /// cached head lies inside process 7's unread records: used for 7's
    /// ring, the record below would have been written over 7's first one.
    #[test]
    fn the_cached_head_of_another_process_is_not_used() {
        let region = region();
        let addr = claim(region, 0).unwrap();
        let (a, b) = (7u32, 8u32);
        let [pa, pb] = [a, b].map(|p| Producer::new(region, addr.index, p).unwrap());
        let rec = |v: u8| {
            move |buf: &mut [u8]| {
                buf.fill(v);
                true
            }
        };
        // 39 records of 104 bytes: 4056 of the 4096 bytes, none read.
        for _ in 0..39 {
            pa.send(100, rec(1)).unwrap();
        }
        // Process 8's head, loaded when its space ran out: 2080.
        for _ in 0..20 {
            pb.send(100, rec(2)).unwrap();
        }
        region.ring(addr.index, b).drain(usize::MAX, |_| ());
        for _ in 0..20 {
            pb.send(100, rec(2)).unwrap();
        }
        assert_eq!(pa.send(100, rec(9)), Err(RingError::Full));
        let mut got = 0;
        region.ring(addr.index, a).drain(usize::MAX, |r| {
            assert!(r.iter().all(|&x| x == 1));
            got += 1;
        });
        assert_eq!(got, 39);
    }

    /// A process new to a ring steps over the record its killed predecessor
    /// in the same process slot published without moving the tail, also
    /// after a first record refused as too large; from its first record
    /// written on it writes at its tail without looking (its own zero is
    /// there), and every record arrives in order.
    #[test]
    fn a_new_producer_steps_over_its_killed_predecessors_record() {
        let region = region();
        let addr = claim(region, 0).unwrap();
        let p = 12u32;
        let ring = region.ring(addr.index, p);
        // The predecessor: a record published, the tail left behind it.
        ring.push(3, |b| b.copy_from_slice(b"old")).unwrap();
        ring.set_tail_for_test(0);
        let producer = Producer::new(region, addr.index, p).unwrap();
        // A first record refused as too large looked at nothing: the next
        // still looks (review helper-69).
        let too_large = producer.send(ring.max_record() + 1, |_| true);
        assert_eq!(too_large, Err(RingError::TooLarge));
        for rec in [b"new", b"two", b"end"] {
            producer
                .send(3, |b| {
                    b.copy_from_slice(rec);
                    true
                })
                .unwrap();
        }
        let mut got = Vec::new();
        ring.drain(usize::MAX, |r| got.push(r.to_vec()));
        assert_eq!(got, [b"old", b"new", b"two", b"end"]);
    }

    #[test]
    fn a_failing_barrier_switches_the_mailbox_to_full_fences_then_sleeps() {
        let region = region();
        let addr = claim(region, 0).unwrap();
        let header = region.mailbox_header(addr.index);
        assert_eq!(header.fences.load(Ordering::Relaxed), barrier::LIGHT);
        barrier::fail_on_this_thread();
        let c = MailboxConsumer::new(region, addr);
        send(region, addr.index, 1, 8, |b| b.fill(1)).unwrap();
        assert!(c.has_work());
        assert_eq!(drain(&c), [1]);
        // The failed barrier switched the mailbox; the consumer keeps its
        // flags up for the grace only (before the fix: forever, spinning).
        assert_eq!(header.fences.load(Ordering::Relaxed), barrier::FULL);
        assert!(c.has_work(), "flags kept up while unordered");
        settle_within(&c, Duration::from_secs(5));
        assert!(!c.has_work());
        // From now on producers fence fully and flag the ring themselves: a
        // send after the settle is seen, and the consumer sleeps at once after.
        send(region, addr.index, 1, 8, |b| b.fill(2)).unwrap();
        assert!(c.has_work());
        assert_eq!(drain(&c), [2]);
        assert!(settle_within(&c, Duration::from_secs(5)) < barrier::GRACE);
        assert!(!c.has_work());
    }

    /// A record published before the consumer cleared its flag but visible
    /// only after the consumer looked (what a barrier that did not order it
    /// leaves: the record in its ring, its flag down, the consumer asleep).
    /// Made here by writing the record into the ring without flagging it.
    #[test]
    fn a_record_the_barrier_did_not_order_is_found_within_a_grace() {
        let region = region();
        let addr = claim(region, 0).unwrap();
        let c = MailboxConsumer::new(region, addr);
        let mut cleared = Cleared::default();
        send(region, addr.index, 1, 8, |b| b.fill(1)).unwrap();
        let mut got = Vec::new();
        c.drain_polling(usize::MAX, |_, r| got.push(r[0]), |_, why| panic!("{why}"));
        assert_eq!(got, [1]);
        // About to sleep: the flag is cleared, the ring is empty.
        assert!(!c.settle(&mut cleared));
        assert!(!c.has_work());
        let nap = cleared.nap(None).expect("a sleep limited to the grace");
        assert!(nap <= barrier::GRACE);
        // The late record: in the ring, no flag.
        region.ring(addr.index, 1).push(8, |b| b.fill(2)).unwrap();
        assert!(
            !c.has_work() && !c.has_records_or(&Cleared::default()),
            "invisible to the flags"
        );
        // The next look before sleeping again finds it and raises its flag.
        assert!(c.settle(&mut cleared));
        assert!(c.has_records_or(&Cleared::default()));
        got.clear();
        c.drain_polling(usize::MAX, |_, r| got.push(r[0]), |_, why| panic!("{why}"));
        assert_eq!(got, [2]);
    }

    /// Once a grace has passed since the last clear, the cleared rings are
    /// forgotten (after one more look) and the consumer sleeps without limit.
    #[test]
    fn cleared_rings_are_forgotten_a_grace_after_the_last_clear() {
        let region = region();
        let addr = claim(region, 0).unwrap();
        let c = MailboxConsumer::new(region, addr);
        let mut cleared = Cleared::default();
        assert_eq!(cleared.nap(None), None, "nothing cleared yet");
        send(region, addr.index, 1, 8, |b| b.fill(1)).unwrap();
        assert_eq!(c.drain_polling(usize::MAX, |_, _| (), |_, _| ()), 1);
        assert!(!c.settle(&mut cleared));
        let limit = Duration::from_secs(60);
        assert!(cleared
            .nap(Some(limit))
            .is_some_and(|n| n <= barrier::GRACE));
        // Waits for a deadline to pass (a clock, not an event).
        std::thread::sleep(barrier::GRACE * 2);
        // The last look, after the grace, still finds a late record...
        region.ring(addr.index, 1).push(8, |b| b.fill(2)).unwrap();
        assert!(c.settle(&mut cleared));
        assert_eq!(c.drain_polling(usize::MAX, |_, _| (), |_, _| ()), 1);
        assert!(!c.settle(&mut cleared));
        // ... and once one finds nothing a grace after the last clear, the
        // rings are forgotten.
        std::thread::sleep(barrier::GRACE * 2);
        assert!(!c.settle(&mut cleared));
        assert_eq!(cleared.nap(None), None);
        assert_eq!(cleared.nap(Some(limit)), Some(limit));
    }

    /// Review helper-48: a producer killed between publishing a record and
    /// flagging its ring; the reaper's wake-up makes a sleeping loop look.
    #[test]
    fn the_records_of_a_producer_that_died_before_flagging_its_ring_are_found() {
        let region = region();
        let addr = claim(region, 0).unwrap();
        let c = MailboxConsumer::new(region, addr);
        // Published, then killed before its flag and the doorbell.
        region.ring(addr.index, 3).push(8, |b| b.fill(7)).unwrap();
        let mut cleared = Cleared::default();
        assert!(!c.settle(&mut cleared), "a loop would sleep");
        assert!(!c.has_work());
        wake_for_dead_producer(region, 3);
        assert!(c.has_work(), "its ring is flagged");
        assert_eq!(drain(&c), vec![7]);
        // Nothing left: nothing flagged again.
        wake_for_dead_producer(region, 3);
        assert!(!c.settle(&mut cleared));
    }

    /// A last drain (a stopped loop's, a dead process's mailboxes) finds
    /// what any ring holds, flagged or not, so it can count it as lost.
    #[test]
    fn a_last_drain_of_every_ring_finds_unflagged_records() {
        let region = region();
        let addr = claim(region, 0).unwrap();
        let c = MailboxConsumer::new(region, addr);
        region.ring(addr.index, 3).push(8, |b| b.fill(7)).unwrap();
        assert_eq!(drain(&c), Vec::<u8>::new(), "not flagged");
        let mut got = Vec::new();
        c.drain(
            &mut Cleared::every_ring(),
            usize::MAX,
            |from, r| got.push((from, r[0])),
            |_, why| panic!("{why}"),
        );
        assert_eq!(got, [(3, 7)]);
    }

    /// A consumer that stays busy (polls, never settles) still finds a late
    /// record in a ring it cleared.
    #[test]
    fn a_poll_looks_at_the_cleared_rings_too() {
        let region = region();
        let addr = claim(region, 0).unwrap();
        let c = MailboxConsumer::new(region, addr);
        let mut cleared = Cleared::default();
        send(region, addr.index, 1, 8, |b| b.fill(1)).unwrap();
        assert_eq!(c.drain_polling(usize::MAX, |_, _| (), |_, _| ()), 1);
        assert!(!c.settle(&mut cleared));
        region.ring(addr.index, 1).push(8, |b| b.fill(2)).unwrap();
        assert!(!c.has_records_or(&Cleared::default()), "not flagged");
        assert!(c.has_records_or(&cleared));
        let mut got = Vec::new();
        c.drain_polling(usize::MAX, |_, r| got.push(r[0]), |_, why| panic!("{why}"));
        assert_eq!(got, [2]);
    }

    /// A reader that leaves within a grace of clearing a ring (the reply
    /// mailbox's drainer role passes between threads) flags it again, so the
    /// next reader, which starts with no cleared rings, polls it.
    #[test]
    fn a_reader_that_leaves_within_the_grace_hands_its_rings_back() {
        let region = region();
        let addr = claim(region, 0).unwrap();
        let c = MailboxConsumer::new(region, addr);
        let mut first = Cleared::default();
        send(region, addr.index, 1, 8, |b| b.fill(1)).unwrap();
        assert_eq!(c.drain_polling(usize::MAX, |_, _| (), |_, _| ()), 1);
        assert!(!c.settle(&mut first));
        region.ring(addr.index, 1).push(8, |b| b.fill(2)).unwrap();
        c.hand_back(&first);
        let next = Cleared::default();
        assert!(c.has_records_or(&next));
        let mut got = Vec::new();
        c.drain_polling(usize::MAX, |_, r| got.push(r[0]), |_, why| panic!("{why}"));
        assert_eq!(got, [2]);
    }
}
