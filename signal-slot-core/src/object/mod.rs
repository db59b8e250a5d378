//! Objects: ids, the process-wide registry, handles, and the trait the derive
//! macro implements.
//!
//! # Lifecycle
//!
//! 1. **Added**: [`EventLoop::add`](crate::EventLoop::add) gives the object its id,
//!    binds its signals and returns a [`Handle`]. From here connections can be made.
//! 2. **Running**: the loop thread owns the object; its slots run there, one message
//!    at a time.
//! 3. **Removed**: [`Handle::remove`], or its loop finishing, emits the object's
//!    `destroyed` signal, disconnects everything to and from it, and drops messages
//!    still queued for it (counted as [`DropReason::ReceiverGone`](crate::DropReason)).
//!    The object itself is dropped on its loop thread.

mod handle;
mod id;
pub(crate) mod registry;
mod shared;
mod traits;

pub use handle::{Handle, RawHandle};
pub use id::{InvalidIdError, ObjectId};
pub(crate) use shared::{ObjectKey, ObjectShared};
pub use traits::EventLoopObject;
