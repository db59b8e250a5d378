//! Runtime of [signal-slot](https://docs.rs/signal-slot): objects, signals,
//! event loops, timers and the transport between loops.
//!
//! Use it through the `signal-slot` crate, which adds the derive macros and a
//! prelude; this crate is what the macros generate calls into.
#![warn(missing_docs)]

mod deadline;
mod error;
pub mod event_loop;
pub mod object;
pub mod process;
pub mod signal;
mod sync;
pub mod topic;
mod transport;

pub use error::{
    AddError, AddErrorKind, ConnectError, DisconnectError, DropReason, EmitError, Error, ExecError,
    JoinError, RemoveError, Result, StartError, StopError, TimerError, Undelivered,
};
pub use event_loop::{
    EventLoop, EventLoopBuilder, EventLoopThread, LoopId, LoopState, LoopStats, Timer,
};
pub use object::{EventLoopObject, Handle, InvalidIdError, ObjectId, RawHandle};
pub use process::{EventLoopProcess, ProcessError, ProcessExit};
pub use signal::{
    late_replies, Answer, ConnectOptions, ConnectTarget, Connection, ConnectionKind, Failure,
    GroupMember, GroupStats, Headers, Message, MessageError, Meta, Overflow, Receiver, RecvError,
    RecvTimeoutError, ReplyError, RequestError, Responder, Responses, Signal, SignalArgs,
    SignalRef, SlotRef, SubscribeError, SubscribeOptions, Subscription, TryRecvError,
};
pub use transport::codec::CodecError;

/// What generated code uses. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::object::RawHandle;
    pub use crate::signal::reply::{
        decode_reply, ReplyFn, ReplyProbe, ReplyValue, ViaNoReply, ViaReply,
    };
    pub use crate::signal::slot_table::{
        decode_call, SlotEntry, Slots, SlotsProbe, ViaNoSlots, ViaSlots,
    };
    pub use crate::signal::{SignalBinder, SignalOptions, SlotFn};

    /// `object_id()` of an object with no signal field: the object whose slot
    /// runs on this thread now.
    pub fn current_object_id() -> crate::ObjectId {
        crate::event_loop::current_receiver_id()
            .unwrap_or_else(|| crate::ObjectId::internal("<unbound>".to_string()))
    }

    /// The future of an async slot: owns the object taken out of its cell and
    /// gives it back when done.
    #[cfg(feature = "async")]
    pub type SlotFuture = crate::event_loop::SlotFuture;

    /// Called by the thunk of an async slot: `start` gets the object (taken
    /// out of its cell once the call returns) and builds the slot's future,
    /// which the loop polls until it gives the object back. Messages for the
    /// object wait meanwhile; other objects of the loop go on.
    #[cfg(feature = "async")]
    pub fn spawn_slot_task(
        slot: &'static str,
        start: impl FnOnce(Box<dyn std::any::Any + Send>) -> SlotFuture + 'static,
    ) {
        if !crate::event_loop::spawn_slot_task(slot, Box::new(start)) {
            log::error!("async slot {slot} called outside an event loop; call dropped");
        }
    }

    /// What a `&Meta` slot parameter gets when the call carries no metadata
    /// (a direct [`SlotRef::invoke`](crate::SlotRef::invoke)).
    pub fn empty_meta() -> &'static crate::Meta {
        static EMPTY: std::sync::LazyLock<crate::Meta> =
            std::sync::LazyLock::new(crate::Meta::empty);
        &EMPTY
    }

    /// Writes raw bytes as one record into `lp`'s mailbox, as another process
    /// would. For tests of what a loop does with garbage; false if it could not.
    pub fn inject_raw_record(lp: &crate::EventLoop, bytes: &[u8]) -> bool {
        crate::event_loop::inject_raw_record(lp, bytes)
    }

    /// A text dump of the shared region's mailboxes (owners, doorbells,
    /// flags, each ring's head, tail and the word at its head), for
    /// diagnosing a message that did not arrive; used by the soak section of
    /// the processes bench.
    pub fn shared_memory_dump() -> String {
        crate::transport::shm::dump::mailboxes()
    }

    /// Bytes of in-process inbox storage (every loop's data ring) alive in
    /// this process; for tests of what a loop handed to a child process
    /// leaves behind in the parent.
    pub fn inbox_ring_bytes() -> usize {
        crate::transport::mpsc::live_slot_bytes()
    }

    /// The argument tuple of a `Signal<A>` field type.
    pub trait SignalField {
        /// The tuple.
        type Args: crate::SignalArgs;
        /// The owner's id once bound.
        fn bound_owner(&self) -> Option<crate::ObjectId>;
    }

    impl<A: crate::SignalArgs> SignalField for crate::Signal<A> {
        type Args = A;
        fn bound_owner(&self) -> Option<crate::ObjectId> {
            self.owner().cloned()
        }
    }
}
