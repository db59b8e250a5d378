//! A loop's cross-process inbox: one ring per producer process in the region,
//! a dirty mask naming the rings with news, and the loop's doorbell.

use super::region::{Region, MAX_MAILBOXES, MAX_PROCS};
use super::ring::RingError;
use crate::sync::{fence, AtomicBool, Ordering};
use crate::transport::doorbell::wake_if_sleeping;

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
/// exchange, a third of a send's cost). Held all at once across `fork`.
static PRODUCER_LOCKS: [SpinLock; MAX_MAILBOXES] = [const { SpinLock::new() }; MAX_MAILBOXES];

struct SpinLock(AtomicBool);

impl SpinLock {
    const fn new() -> Self {
        SpinLock(AtomicBool::new(false))
    }

    fn lock(&self) -> SpinGuard<'_> {
        let backoff = crossbeam_utils::Backoff::new();
        while self
            .0
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            backoff.snooze();
        }
        SpinGuard(&self.0)
    }
}

pub(crate) struct SpinGuard<'a>(&'a AtomicBool);

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Takes every producer lock (before `fork`, so no child inherits one held).
pub(crate) fn lock_all_producers() -> Vec<SpinGuard<'static>> {
    PRODUCER_LOCKS.iter().map(SpinLock::lock).collect()
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
    let lock = PRODUCER_LOCKS
        .get(to as usize)
        .ok_or(RingError::Corrupt("mailbox index"))?;
    {
        let _g = lock.lock();
        region.ring(to, me).push(len, fill)?;
    }
    let mb = region.mailbox_header(to);
    let bit = 1u64 << me;
    // The fence orders the tail store before both checks: the consumer swaps the
    // mask then reads tails, or announces sleep then reads the mask.
    fence(Ordering::SeqCst);
    if mb.dirty.load(Ordering::Relaxed) & bit == 0 {
        mb.dirty.fetch_or(bit, Ordering::SeqCst);
    }
    wake_if_sleeping(&mb.bell, true);
    Ok(())
}

/// Claims a mailbox for a loop of process `owner`. Whatever its rings still hold
/// was meant for a previous owner and is skipped.
pub(crate) fn claim(region: &Region, owner: u32) -> Option<MailboxAddr> {
    let index = region.claim_mailbox(owner)?;
    for p in 0..MAX_PROCS as u32 {
        region.ring(index, p).skip_all();
    }
    let header = region.mailbox_header(index);
    header.dirty.store(0, Ordering::SeqCst);
    let generation = header.generation.load(Ordering::Acquire);
    Some(MailboxAddr { index, generation })
}

thread_local! {
    /// Round-robin start of each consumer thread's drains.
    static ROUND: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The consuming side of one mailbox, owned by its loop's thread.
pub(crate) struct MailboxConsumer {
    region: &'static Region,
    addr: MailboxAddr,
}

impl MailboxConsumer {
    /// A view of a mailbox this process claimed with [`claim`].
    pub(crate) fn new(region: &'static Region, addr: MailboxAddr) -> Self {
        Self { region, addr }
    }

    pub(crate) fn has_work(&self) -> bool {
        self.region
            .mailbox_header(self.addr.index)
            .dirty
            .load(Ordering::SeqCst)
            != 0
    }

    /// Hands up to `budget` records to `f` (with the producer's process index).
    /// A ring found corrupt is emptied and reported through `corrupt`.
    pub(crate) fn drain(
        &self,
        budget: usize,
        mut f: impl FnMut(u32, &[u8]),
        mut corrupt: impl FnMut(u32, &'static str),
    ) -> usize {
        let header = self.region.mailbox_header(self.addr.index);
        let mask = header.dirty.swap(0, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Start at a different producer each round so one busy producer cannot
        // starve the others of the budget.
        let start = ROUND.with(|r| {
            let v = r.get();
            r.set(v.wrapping_add(1));
            v % 64
        });
        let mut rotated = mask.rotate_right(start);
        let mut n = 0;
        while rotated != 0 {
            let p = (rotated.trailing_zeros() + start) % 64;
            rotated &= rotated - 1;
            let ring = self.region.ring(self.addr.index, p);
            let left = budget.saturating_sub(n);
            match ring.drain(left, |rec| f(p, rec)) {
                Ok(k) => n += k,
                Err(RingError::Corrupt(why)) => {
                    ring.skip_all();
                    corrupt(p, why);
                }
                Err(_) => {}
            }
            if !ring.is_empty() {
                // Budget spent: come back to this ring next round.
                header.dirty.fetch_or(1 << p, Ordering::SeqCst);
            }
        }
        n
    }
}
