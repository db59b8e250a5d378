//! Moving messages to an event loop: the only layer with `unsafe` and OS calls.
//!
//! It knows nothing of signals or objects: it carries type-erased calls
//! ([`erased::ErasedCall`]) and wakes a sleeping receiver ([`doorbell::Doorbell`]).
//! The in-process flavor is a data ring ([`mpsc::Mpsc`]) and a control channel
//! per loop (see [`inbox::Inbox`]); every producer rings the same doorbell, so a loop sleeps on
//! one futex whatever feeds it.

pub(crate) mod barrier;
pub(crate) mod codec;
pub(crate) mod doorbell;
pub(crate) mod erased;
pub(crate) mod fork;
pub(crate) mod inbox;
pub(crate) mod mpsc;
pub(crate) mod shm;
