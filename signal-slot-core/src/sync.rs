//! The one place atomics and framework locks come from.
//!
//! Every framework mutex is taken through [`lock`], which also holds a read
//! share of the fork guard; [`quiesce_for_fork`] takes the write share, so a
//! process forks only while no thread is inside a framework lock and no child
//! inherits one held. Only a thread's outermost lock takes the share: nested
//! locks would otherwise queue behind a waiting fork and deadlock.

pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

static FORK_GUARD: RwLock<()> = RwLock::new(());

thread_local! {
    /// Framework locks this thread holds, and its read share while any is held.
    static HELD: RefCell<(u32, Option<RwLockReadGuard<'static, ()>>)> =
        const { RefCell::new((0, None)) };
}

/// A framework mutex guard; releases the fork-guard share after the mutex.
pub(crate) struct Guard<'a, T> {
    inner: MutexGuard<'a, T>,
    _share: ForkShare,
}

struct ForkShare;

impl ForkShare {
    fn take() -> Self {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if h.0 == 0 {
                h.1 = Some(FORK_GUARD.read().unwrap_or_else(PoisonError::into_inner));
            }
            h.0 += 1;
        });
        ForkShare
    }
}

impl Drop for ForkShare {
    fn drop(&mut self) {
        let share = HELD.with(|h| {
            let mut h = h.borrow_mut();
            h.0 = h.0.saturating_sub(1);
            if h.0 == 0 {
                h.1.take()
            } else {
                None
            }
        });
        drop(share);
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

/// Locks a mutex of the framework. A panic never happens while one of these is
/// held (user code is never called under them), so poisoning carries no meaning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> Guard<'_, T> {
    let share = ForkShare::take();
    Guard {
        inner: m.lock().unwrap_or_else(PoisonError::into_inner),
        _share: share,
    }
}

/// Waits until no thread holds a framework lock and keeps new ones out while
/// the returned guard lives. The caller must hold no framework lock.
pub(crate) fn quiesce_for_fork() -> RwLockWriteGuard<'static, ()> {
    FORK_GUARD.write().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `cv` with a framework guard (the fork share stays held).
pub(crate) fn wait<'a, T>(
    cv: &std::sync::Condvar,
    guard: Guard<'a, T>,
    timeout: Option<std::time::Duration>,
) -> Guard<'a, T> {
    let Guard { inner, _share } = guard;
    let inner = match timeout {
        None => cv.wait(inner).unwrap_or_else(PoisonError::into_inner),
        Some(t) => {
            cv.wait_timeout(inner, t)
                .unwrap_or_else(PoisonError::into_inner)
                .0
        }
    };
    Guard { inner, _share }
}
