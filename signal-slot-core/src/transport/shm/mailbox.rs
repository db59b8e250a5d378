//! A loop's cross-process inbox: one ring per producer process in the region,
//! a dirty mask naming the rings with news, and the loop's doorbell.

use super::region::{Region, MAX_MAILBOXES, MAX_PROCS};
use super::ring::RingError;
use crate::sync::{fence, Ordering};
use crate::transport::doorbell::wake_if_sleeping;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Which mailbox, and which of its lives (records carry it; a reused mailbox
/// ignores records meant for its previous loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MailboxAddr {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// Serializes this process's producers per target mailbox (a ring has one
/// producer process; its threads take turns). Held all at once across `fork`.
static PRODUCER_LOCKS: [Mutex<()>; MAX_MAILBOXES] = [const { Mutex::new(()) }; MAX_MAILBOXES];

/// Takes every producer lock (before `fork`, so no child inherits one held).
pub(crate) fn lock_all_producers() -> Vec<MutexGuard<'static, ()>> {
    PRODUCER_LOCKS
        .iter()
        .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
        .collect()
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
        let _g = lock.lock().unwrap_or_else(PoisonError::into_inner);
        region.ring(to, me).push(len, fill)?;
    }
    let mb = region.mailbox_header(to);
    let bit = 1u64 << me;
    if mb.dirty.load(Ordering::Relaxed) & bit == 0 {
        mb.dirty.fetch_or(bit, Ordering::SeqCst);
    }
    fence(Ordering::SeqCst);
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
        let mut mask = header.dirty.swap(0, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut n = 0;
        while mask != 0 {
            let p = mask.trailing_zeros();
            mask &= mask - 1;
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
