//! The one place atomics come from, so a model checker can swap them in later.
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex of the framework. A panic never happens while one of these is
/// held (user code is never called under them), so poisoning carries no meaning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
