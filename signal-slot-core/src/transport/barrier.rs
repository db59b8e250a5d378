//! Asymmetric store-load barriers between the producers of a mailbox (every
//! record: cheap) and its consumer (only before it sleeps: dear).
//!
//! A producer publishes a record, then reads the mailbox's dirty mask and
//! doorbell to decide whether it must wake the consumer; the consumer about to
//! sleep clears the mask, then looks into the rings (Dekker). Each side needs
//! a store-load barrier between its write and its read. A full fence on the
//! producer's side costs it a store-buffer drain per record, waiting for the
//! cache lines the consumer keeps reading (about half of a send's time). So
//! the producer only stops the compiler ([`light`]) and the consumer, which
//! does this rarely (before it sleeps), makes every thread of every process of
//! the system run a full barrier ([`heavy`]: `membarrier(2)`
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED`). Either the producer's read ran before
//! the barrier it was made to run, and then its record was visible to the
//! consumer's reads after it, or it ran after, and then it sees the consumer's
//! write. A thread not running at the time went through a context switch,
//! which is a full barrier.
//!
//! That needs every process that produces light to be registered for those
//! barriers ([`register`]: the root when it creates the system, each child
//! right after `fork`). If the root cannot register, the whole system uses
//! full fences on both sides; a child that cannot register produces with full
//! fences.

use crate::sync::{compiler_fence, fence, AtomicBool, Ordering};

const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

/// The system uses asymmetric barriers (decided by the root before any fork;
/// children inherit the value).
static SYSTEM: AtomicBool = AtomicBool::new(false);
/// This process is registered: its producers may use [`light`] barriers.
static HERE: AtomicBool = AtomicBool::new(false);

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes no pointers; every command used here only
    // affects memory ordering (or registration) and returns a status.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    }
}

/// Registers this process for the consumers' barriers. In the root (`root`),
/// before the first child exists, this also decides the system's mode.
pub(crate) fn register(root: bool) {
    let supported = membarrier(MEMBARRIER_CMD_QUERY);
    let wanted = libc::c_long::from(
        MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
    );
    let ok = supported >= 0
        && supported & wanted == wanted
        && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
    if root {
        SYSTEM.store(ok, Ordering::SeqCst);
    }
    HERE.store(ok && SYSTEM.load(Ordering::SeqCst), Ordering::SeqCst);
    if !ok {
        log::debug!("membarrier unavailable: producers use full fences");
    }
}

/// The producer's side: between publishing a record and reading the mask.
#[inline(always)]
pub(crate) fn light() {
    if HERE.load(Ordering::Relaxed) {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The consumer's side: between clearing the mask and reading the rings.
/// False if the barrier could not be made (the caller must then not sleep on
/// what it read).
pub(crate) fn heavy() -> bool {
    fence(Ordering::SeqCst);
    if !SYSTEM.load(Ordering::Relaxed) {
        return true;
    }
    if membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0 {
        return true;
    }
    log::warn!(
        "membarrier failed ({}): not sleeping this round",
        std::io::Error::last_os_error()
    );
    false
}
