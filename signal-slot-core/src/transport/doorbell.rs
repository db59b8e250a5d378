//! Waking a sleeping event loop: a futex word that producers ring only when the
//! loop announced it sleeps, so a busy loop costs its producers no syscall.
//!
//! Ordering argument (Dekker): the sleeper stores `SLEEPING` then (after a SeqCst
//! fence) looks for work; a producer publishes its work then (after a SeqCst fence)
//! loads the word. The two fences are totally ordered, so either the sleeper sees
//! the work, or the producer sees `SLEEPING` and wakes it. A wake that races a
//! sleeper that already saw work is harmless: the futex wait then fails with
//! `EAGAIN` because the word is no longer `SLEEPING`, or returns spuriously.

use crate::sync::{fence, AtomicU32, Ordering};
use std::time::Duration;

const AWAKE: u32 = 0;
const SLEEPING: u32 = 1;

/// The wake-up word of one event loop.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    state: AtomicU32,
}

impl Doorbell {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Called by a producer after it published work.
    #[inline]
    pub(crate) fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.state.load(Ordering::Relaxed) == SLEEPING
            && self.state.swap(AWAKE, Ordering::SeqCst) == SLEEPING
        {
            futex::wake_one(&self.state);
        }
    }

    /// Sleeps until rung or `timeout` passes, unless `has_work` says there is work
    /// after the sleep was announced. `None` sleeps without a time limit.
    pub(crate) fn sleep(&self, has_work: impl Fn() -> bool, timeout: Option<Duration>) {
        self.state.store(SLEEPING, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !has_work() {
            futex::wait(&self.state, SLEEPING, timeout);
        }
        self.state.store(AWAKE, Ordering::Relaxed);
    }
}

#[cfg(target_os = "linux")]
mod futex {
    use crate::sync::AtomicU32;
    use std::time::Duration;

    /// Blocks while `*word == expected`, up to `timeout`. Returns on wake, timeout,
    /// signal or value change; the caller re-checks its condition in every case.
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
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
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                expected,
                ts_ptr,
            );
        }
    }

    /// Wakes one thread blocked in [`wait`] on `word`.
    pub(super) fn wake_one(word: &AtomicU32) {
        // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access memory
        // beyond using the address as a key.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
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
        assert_eq!(bell.state.load(Ordering::SeqCst), AWAKE);
    }

    #[test]
    fn ring_wakes_a_sleeper_every_time() {
        // Many handshakes: a lost wake-up would hang this test (no timeout in sleep).
        let bell = Arc::new(Doorbell::new());
        let work = Arc::new(AtomicBool::new(false));
        let (b, w) = (bell.clone(), work.clone());
        let sleeper = std::thread::spawn(move || {
            for _ in 0..20_000 {
                while !w.swap(false, Ordering::SeqCst) {
                    b.sleep(|| w.load(Ordering::SeqCst), None);
                }
            }
        });
        for _ in 0..20_000 {
            while work.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            work.store(true, Ordering::SeqCst);
            bell.ring();
        }
        sleeper.join().unwrap();
    }
}
