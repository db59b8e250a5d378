//! The one place atomics and framework locks come from.
//!
//! Every framework mutex is taken through [`lock`], which also holds a read
//! share of the fork guard; [`quiesce_for_fork`] takes the write share, so a
//! process forks only while no thread is inside a framework lock and no child
//! inherits one held. Only a thread's outermost lock takes the share: nested
//! locks would otherwise queue behind a waiting fork and deadlock.

pub(crate) use std::sync::atomic::{
    compiler_fence, fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering,
};

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

/// What the loom models of the shared-memory ring and the doorbell run on
/// (test builds only; used by `transport::shm::ring`, `transport::doorbell`
/// and `transport::mpsc` alone).
///
/// Under `RUSTFLAGS="--cfg loom"` these are loom's atomics, cell, locks and
/// threads, so a model explores every interleaving the memory model allows;
/// otherwise they are std's, and the same models run as ordinary threaded
/// tests (and under miri). The switch is local on purpose: the rest of the
/// crate keeps std atomics, which loom cannot stand in for (statics, atomics
/// overlaid on shared mappings), so it still builds and runs under `cfg(loom)`.
/// Production code never goes through here: the ring and the doorbell are
/// generic over their memory, and their production instances use std directly.
#[cfg(test)]
pub(crate) mod model {
    #[cfg(not(loom))]
    pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64};
    #[cfg(not(loom))]
    pub(crate) use std::sync::Arc;
    #[cfg(not(loom))]
    pub(crate) use std::thread;

    #[cfg(loom)]
    pub(crate) use loom::cell::UnsafeCell;
    #[cfg(loom)]
    pub(crate) use loom::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64};
    #[cfg(loom)]
    pub(crate) use loom::sync::{Arc, Condvar, Mutex};
    #[cfg(loom)]
    pub(crate) use loom::thread;

    /// `std::cell::UnsafeCell` with loom's closure API, so model code is the
    /// same in both builds.
    #[cfg(not(loom))]
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(std::cell::UnsafeCell::new(v))
        }
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// Default preemption bound of the loom models (`LOOM_MAX_PREEMPTIONS`
    /// overrides it). With 5 all the crate's models take ~35 s in release mode
    /// on two cores (4: ~12 s); every weakened ordering or dropped fence tried
    /// on the ring and the doorbell fails within seconds at this bound.
    #[cfg(loom)]
    const PREEMPTION_BOUND: usize = 5;

    /// Checks `f`: every interleaving (up to the preemption bound) under loom;
    /// `runs` plain runs on real threads otherwise.
    #[cfg_attr(loom, allow(unused_variables))]
    pub(crate) fn check(runs: usize, f: impl Fn() + Sync + Send + 'static) {
        #[cfg(loom)]
        {
            let mut b = loom::model::Builder::new();
            if b.preemption_bound.is_none() {
                b.preemption_bound = Some(PREEMPTION_BOUND);
            }
            b.check(f);
        }
        #[cfg(not(loom))]
        for _ in 0..runs {
            f();
        }
    }
}
