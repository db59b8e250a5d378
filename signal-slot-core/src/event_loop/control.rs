//! What travels through a loop's inbox.

use crate::event_loop::TimerShared;
use crate::object::{ObjectKey, ObjectShared};
use crate::signal::{Meta, SignalArgs, SlotTarget};
use crate::transport::erased::ErasedCall;
use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

/// One queued slot call.
pub(crate) struct Envelope {
    pub(crate) key: ObjectKey,
    pub(crate) slot: &'static str,
    pub(crate) call: ErasedCall<dyn Any, Meta>,
    pub(crate) meta: Option<Arc<Meta>>,
}

impl Envelope {
    #[inline]
    pub(crate) fn new<A: SignalArgs>(t: &SlotTarget<A>, args: A, meta: Option<Arc<Meta>>) -> Self {
        Self {
            key: t.key,
            slot: t.name,
            call: ErasedCall::new(t.call, args),
            meta,
        }
    }

    /// The arguments of an envelope built by [`new`](Self::new) with an `A`,
    /// back unrun (a post refused it).
    #[inline]
    pub(crate) fn into_args<A: SignalArgs>(self) -> Option<A> {
        self.call.into_args().ok()
    }
}

/// Changes to the loop itself.
pub(crate) enum Control {
    /// Hand an added object to the loop thread.
    Install {
        shared: Arc<ObjectShared>,
        object: Box<dyn Any + Send>,
    },
    /// Drop a removed object.
    Remove(ObjectKey),
    /// Leave `exec`.
    Stop,
    /// (Re)start a timer; `generation` tells a current start from a stale one.
    StartTimer {
        timer: Arc<TimerShared>,
        generation: u64,
        deadline: Instant,
    },
    /// Poll the async slot task with this id (sent by its waker).
    Poll(u64),
}
