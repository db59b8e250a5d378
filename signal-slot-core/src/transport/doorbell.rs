//! Waking a sleeping event loop: a futex word that producers ring only when the
//! loop announced it sleeps, so a busy loop costs its producers no syscall.
//!
//! Ordering argument (Dekker): the sleeper stores `SLEEPING` then (after a SeqCst
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

use crate::sync::{fence, AtomicU32, Ordering};
use std::ptr;
use std::sync::atomic::AtomicPtr;
use std::time::Duration;

const AWAKE: u32 = 0;
const SLEEPING: u32 = 1;

/// The wake-up word of one event loop.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    local: AtomicU32,
    /// A word in shared memory once the loop has a mailbox; null before.
    external: AtomicPtr<AtomicU32>,
}

impl Doorbell {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn word(&self) -> (&AtomicU32, bool) {
        let p = self.external.load(Ordering::SeqCst);
        if p.is_null() {
            (&self.local, false)
        } else {
            // SAFETY: `use_external` only stores `&'static` words.
            (unsafe { &*p }, true)
        }
    }

    /// Moves the doorbell to `word` (in shared memory, rung by other processes).
    pub(crate) fn use_external(&self, word: &'static AtomicU32) {
        self.external
            .store(ptr::from_ref(word).cast_mut(), Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // A sleeper that chose the old word before the move is woken from it.
        wake_if_sleeping(&self.local, false);
    }

    /// Called by a producer after it published work.
    #[inline]
    #[allow(dead_code)] // for producers whose publication is not a SeqCst RMW
    pub(crate) fn ring(&self) {
        fence(Ordering::SeqCst);
        let (word, shared) = self.word();
        wake_if_sleeping(word, shared);
    }

    /// Like [`ring`](Self::ring), for a producer whose publication was a SeqCst
    /// read-modify-write that the sleeper's work check reads with SeqCst loads
    /// (crossbeam-channel's tail CAS and `is_empty`, in both flavors). Those and
    /// the SeqCst loads here are totally ordered, so the fence, which would make
    /// the producer wait for its stores to drain, is not needed.
    #[inline]
    pub(crate) fn ring_after_seqcst_publish(&self) {
        let (word, shared) = self.word();
        if word.load(Ordering::SeqCst) == SLEEPING && word.swap(AWAKE, Ordering::SeqCst) == SLEEPING
        {
            futex::wake_one(word, shared);
        }
    }

    /// Sleeps until rung or `timeout` passes, unless `has_work` says there is work
    /// after the sleep was announced. `None` sleeps without a time limit.
    pub(crate) fn sleep(&self, has_work: impl Fn() -> bool, timeout: Option<Duration>) {
        let (word, shared) = self.word();
        word.store(SLEEPING, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let moved = self.word().1 != shared;
        if !moved && !has_work() {
            futex::wait(word, SLEEPING, timeout, shared);
        }
        word.store(AWAKE, Ordering::Relaxed);
    }
}

/// Wakes the sleeper of `word`, if one announced itself. Used by producers of
/// other processes too, which know only the word.
#[inline]
pub(crate) fn wake_if_sleeping(word: &AtomicU32, shared: bool) {
    if word.load(Ordering::Relaxed) == SLEEPING && word.swap(AWAKE, Ordering::SeqCst) == SLEEPING {
        futex::wake_one(word, shared);
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
