//! The process-wide view of the system: the region, and which process this is.

use super::region::{Region, RegionError, PROC_ALIVE};
use crate::sync::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

static REGION: OnceLock<Region> = OnceLock::new();
static CREATE: Mutex<()> = Mutex::new(());
/// This process's slot in the region: 0 for the root process.
static MY_PROC: AtomicU32 = AtomicU32::new(0);
/// This process's incarnation (see the region header).
static MY_INCARNATION: AtomicU32 = AtomicU32::new(0);
/// Ring size for a region not created yet.
static RING_BYTES: AtomicU32 = AtomicU32::new(1 << 20);

/// The region, if this system has one (it exists once a process was created).
#[inline]
pub(crate) fn region() -> Option<&'static Region> {
    REGION.get()
}

/// The region, created on first use (by the root process, before any fork).
/// Returns whether it was created by this call.
pub(crate) fn ensure() -> Result<(&'static Region, bool), RegionError> {
    if let Some(r) = REGION.get() {
        return Ok((r, false));
    }
    let _g = CREATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(r) = REGION.get() {
        return Ok((r, false));
    }
    let region = Region::create(RING_BYTES.load(Ordering::Relaxed) as usize)?;
    // Before any child exists: decides the barrier mode children inherit.
    crate::transport::barrier::register(true);
    // The root process takes slot 0.
    let root = region.claim_proc();
    debug_assert_eq!(root, Some(0));
    if let Some(slot) = region.proc(0) {
        slot.pid.store(std::process::id(), Ordering::Relaxed);
        slot.state.store(PROC_ALIVE, Ordering::Release);
    }
    Ok((REGION.get_or_init(|| region), true))
}

/// Sets the ring size of the region to be created; false if it exists already.
pub(crate) fn set_ring_bytes(bytes: u32) -> bool {
    if REGION.get().is_some() {
        return false;
    }
    RING_BYTES.store(bytes, Ordering::Relaxed);
    true
}

/// This process's slot.
#[inline]
pub(crate) fn my_proc() -> u32 {
    MY_PROC.load(Ordering::Relaxed)
}

/// Called first thing in a new child.
pub(crate) fn set_my_proc(p: u32) {
    MY_PROC.store(p, Ordering::Relaxed);
    // Before this process sends anything (see `transport::barrier`).
    crate::transport::barrier::register(false);
    if let Some(slot) = region().and_then(|r| r.proc(p)) {
        MY_INCARNATION.store(slot.incarnation.load(Ordering::Acquire), Ordering::Relaxed);
    }
}

/// Goes in the high bits of the ids this process makes (loops, connections,
/// control sequences), so they never collide with another process's.
#[inline]
pub(crate) fn my_incarnation() -> u32 {
    MY_INCARNATION.load(Ordering::Relaxed)
}

/// True while process `p` is alive in the region.
#[inline]
pub(crate) fn proc_alive(region: &Region, p: u32) -> bool {
    region
        .proc(p)
        .is_some_and(|s| s.state.load(Ordering::Acquire) == PROC_ALIVE)
}

/// Which life of process slot `p` this is (bumped each time a process takes
/// the slot; 0 if there is no such slot).
pub(crate) fn proc_incarnation(region: &Region, p: u32) -> u32 {
    region
        .proc(p)
        .map_or(0, |s| s.incarnation.load(Ordering::Acquire))
}

/// One life of a process slot: the slot and the incarnation that held it
/// when this was taken. Waiting on a process by its slot alone mistakes a
/// new process that took a dead one's slot for the one waited on (review
/// helpers 49 and 51).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcLife {
    pub(crate) slot: u32,
    incarnation: u32,
}

impl ProcLife {
    /// The life of slot `slot` now.
    pub(crate) fn of(region: &Region, slot: u32) -> Self {
        Self {
            slot,
            incarnation: proc_incarnation(region, slot),
        }
    }

    /// True while that process lives (the slot is alive, in the same life).
    pub(crate) fn alive(&self, region: &Region) -> bool {
        proc_alive(region, self.slot) && proc_incarnation(region, self.slot) == self.incarnation
    }
}

/// True while a process other than this one is alive in the region: only
/// those write to this process's mailboxes (its own threads post to a loop's
/// inbox).
pub(crate) fn others_alive(region: &Region) -> bool {
    let me = my_proc();
    (0..super::region::MAX_PROCS as u32).any(|p| p != me && proc_alive(region, p))
}

/// The CPU the calling thread runs on now, if the OS says.
pub(crate) fn current_cpu() -> Option<u32> {
    // SAFETY: no arguments, no memory access.
    let c = unsafe { libc::sched_getcpu() };
    u32::try_from(c).ok()
}

/// Records that a loop of this process goes idle on `cpu` (see
/// [`proc_cpu`]).
pub(crate) fn note_my_cpu(cpu: u32) {
    if let Some(slot) = region().and_then(|r| r.proc(my_proc())) {
        // Stored only when it changes (a loop mostly goes idle where it went
        // idle before): the slots are packed, and this word shares a cache
        // line with process states that every send to those processes reads
        // (`proc_alive`); a store would take that line from the readers.
        let v = cpu.saturating_add(1);
        if slot.cpu.load(Ordering::Relaxed) != v {
            slot.cpu.store(v, Ordering::Relaxed);
        }
    }
}

/// The CPU a loop of process `p` last went idle on, if known: where the
/// records it sends were most likely written.
pub(crate) fn proc_cpu(region: &Region, p: u32) -> Option<u32> {
    region
        .proc(p)
        .and_then(|s| s.cpu.load(Ordering::Relaxed).checked_sub(1))
}
