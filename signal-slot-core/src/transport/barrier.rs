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
//! the system run a full barrier ([`consumer`]: `membarrier(2)`
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED`). Either the producer's read ran before
//! the barrier it was made to run, and then its record was visible to the
//! consumer's reads after it, or it ran after, and then it sees the consumer's
//! write. A thread not running at the time went through a context switch,
//! which is a full barrier.
//!
//! **Backstop.** On the 2-vCPU VMs we test on, that guarantee was seen to
//! fail about once in 10^6-10^7 sleeps under load (a record in a ring whose
//! flag the consumer had cleared, the consumer asleep without a timeout; the
//! cause, kernel or hypervisor, is unknown). So consumers do not rely on it
//! alone: they look at the rings they cleared again, and sleep at most until
//! [`GRACE`] after the clear, when any store made before it is visible (see
//! `shm::mailbox::Cleared`). The barrier keeps that rare; the backstop bounds
//! what it costs when it happens.
//!
//! That needs every process that produces light to be registered for those
//! barriers ([`register`]: the root when it creates the system, each child
//! right after `fork`). If the root cannot register, the whole system uses
//! full fences on both sides; a child that cannot register produces with full
//! fences.
//!
//! **When the barrier fails at run time** (registration worked, the call does
//! not: a seccomp filter, a kernel that withdrew it), the consumer cannot
//! order the light producers' records, so that mailbox switches to full fences
//! on both sides for the rest of its life: the consumer sets the mailbox's
//! mode word ([`FULL`]), which every producer reads before choosing its
//! barrier (it sits on the doorbell's cache line, which the producer reads
//! anyway). A producer that read the old mode just before the switch may still
//! be in its light sequence (a few instructions; its store becomes visible
//! within the store buffer's drain time, or at once if it is preempted); until
//! [`GRACE`] has passed the consumer keeps its flags up (does not sleep), a
//! bounded spin once per mailbox. After that the mailbox is a plain Dekker
//! with SeqCst fences on both sides, and the consumer sleeps as usual. The
//! failure is sticky per process (logged once, the syscall not tried again);
//! mailboxes this process claims afterwards start in [`FULL`] mode.

use crate::sync::{compiler_fence, fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

/// A mailbox's mode word: its producers may use [`light`] barriers.
pub(crate) const LIGHT: u32 = 0;
/// A mailbox's mode word: full fences on both sides (its consumer's barrier
/// failed).
pub(crate) const FULL: u32 = 1;
/// How long after a switch to [`FULL`] a producer may still be finishing a
/// light send it began before the switch. Generous: the window is a store
/// buffer's drain time (nanoseconds to microseconds; a preempted or
/// descheduled CPU drains it on the way out).
pub(crate) const GRACE: Duration = Duration::from_millis(2);

/// The system uses asymmetric barriers (decided by the root before any fork;
/// children inherit the value).
static SYSTEM: AtomicBool = AtomicBool::new(false);
/// This process is registered: its producers may use [`light`] barriers.
static HERE: AtomicBool = AtomicBool::new(false);
/// `membarrier` failed in this process once: its consumers no longer call it.
static BROKEN: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
thread_local! {
    /// Makes this thread's consumer barriers fail, as a broken `membarrier`
    /// would (tests of the fallback).
    static FAIL_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Test hook: the consumer barriers of the calling thread fail from now on.
#[cfg(test)]
pub(crate) fn fail_on_this_thread() {
    FAIL_HERE.with(|f| f.set(true));
}

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

/// The producer's side: between publishing a record and reading the mask of
/// a mailbox whose mode word is `mode`.
#[inline(always)]
pub(crate) fn light(mode: &AtomicU32) {
    if HERE.load(Ordering::Relaxed) && mode.load(Ordering::Relaxed) == LIGHT {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The mode word of a mailbox a consumer of this process just claimed (with
/// its grace deadline): [`FULL`] at once if this process's barrier failed
/// before (no producer knows the mailbox yet, so no grace is needed).
pub(crate) fn reset(mode: &AtomicU32, grace_end: &AtomicU64) {
    grace_end.store(0, Ordering::Relaxed);
    let m = if BROKEN.load(Ordering::Relaxed) {
        FULL
    } else {
        LIGHT
    };
    mode.store(m, Ordering::SeqCst);
}

/// The consumer's side, between clearing the mask of a mailbox (mode word
/// `mode`, grace deadline `grace_end`) and reading its rings. True when every
/// record whose producer found its flag set before the clear is visible now;
/// false if not yet (the caller must then keep the flags up and not sleep:
/// only for [`GRACE`] after a failed barrier switched the mailbox to
/// [`FULL`]).
pub(crate) fn consumer(mode: &AtomicU32, grace_end: &AtomicU64) -> bool {
    fence(Ordering::SeqCst);
    if mode.load(Ordering::Relaxed) == FULL {
        // Every producer fences fully now; ones that read the old mode
        // finished their light sends by the deadline (0: none).
        let end = grace_end.load(Ordering::Relaxed);
        if end == 0 {
            return true;
        }
        let now = now_ns();
        if now < end {
            // The deadline lives in shared memory: one further away than a
            // grace from now is not ours (a peer wrote it). Clamped, so no
            // peer keeps the consumer awake beyond a grace per write.
            let grace = GRACE.as_nanos() as u64;
            if end - now > grace {
                grace_end.store(now + grace, Ordering::Relaxed);
            }
            return false;
        }
        grace_end.store(0, Ordering::Relaxed);
        return true;
    }
    if heavy() {
        return true;
    }
    // Producers that read LIGHT before this store is visible may still be
    // finishing light sends: wait out the grace (see the module comment).
    let end = now_ns().saturating_add(GRACE.as_nanos() as u64).max(1);
    grace_end.store(end, Ordering::Relaxed);
    mode.store(FULL, Ordering::SeqCst);
    false
}

/// The global barrier; false if it could not be made (see the module comment
/// for what the caller does then).
fn heavy() -> bool {
    #[cfg(test)]
    if FAIL_HERE.with(std::cell::Cell::get) {
        return false;
    }
    if !SYSTEM.load(Ordering::Relaxed) {
        // Every producer fences fully: the caller's fence was enough.
        return true;
    }
    if BROKEN.load(Ordering::Relaxed) {
        return false;
    }
    if membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0 {
        return true;
    }
    if !BROKEN.swap(true, Ordering::Relaxed) {
        log::warn!(
            "membarrier failed ({}): this process's mailboxes switch to full fences",
            std::io::Error::last_os_error()
        );
    }
    false
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the system.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer writing `u64::MAX` as the grace deadline keeps the consumer
    /// awake (flags up, no sleep) for one grace at most, not forever.
    #[test]
    fn a_grace_deadline_written_by_a_peer_ends_within_a_grace() {
        let mode = AtomicU32::new(FULL);
        let grace_end = AtomicU64::new(u64::MAX);
        let start = std::time::Instant::now();
        while !consumer(&mode, &grace_end) {
            assert!(start.elapsed() < GRACE * 50, "still in the grace");
            std::thread::sleep(Duration::from_micros(200));
        }
        assert_eq!(grace_end.load(Ordering::Relaxed), 0);
    }
}
