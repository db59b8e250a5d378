//! Signals, slots and connections.
//!
//! | you have | use |
//! | --- | --- |
//! | a `#[signal]` field, inside the object's own slots | [`Signal::emit`] |
//! | a [`Handle`](crate::Handle), on any thread | `handle.my_signal()` → [`SignalRef`] |
//! | a slot to connect to | `handle.my_slot()` → [`SlotRef`] |
//! | to break a connection | the [`Connection`] that `connect` returned, or [`SignalRef::disconnect`] |
//!
//! # Connection kinds
//!
//! * [`ConnectionKind::Auto`] (default): called inline when the emitting thread is
//!   running the receiver's loop, queued to the receiver's loop otherwise.
//! * [`ConnectionKind::Direct`]: called inline in the emitting thread. Only allowed
//!   when signal and receiver live on the same loop (checked by `connect`). An
//!   emission from a thread that does not run that loop (e.g. `main` through a
//!   [`SignalRef`]) is queued instead, since only the loop thread may touch the
//!   receiver.
//! * [`ConnectionKind::Queued`]: always posted to the receiver's loop, even from
//!   that loop, and run after the current message.
//!
//! An inline call that would re-enter an object whose slot is already running
//! (an object emitting to its own slot) is queued instead: Rust gives one `&mut`
//! to an object at a time.
//!
//! Queued messages from one thread to one loop are delivered in emission order.
//! Each emission is delivered to the connections in the order they were made.

pub(crate) mod connection;
pub(crate) mod directory;
mod fast;
mod field;
mod group;
mod message;
pub(crate) mod meta;
mod receiver;
mod refs;
pub(crate) mod reply;
pub(crate) mod request;
pub(crate) mod retained;
pub(crate) mod shared;
pub(crate) mod slot_table;
mod subscription;

pub(crate) use connection::{Conn, SlotTarget, Target};
pub use connection::{ConnectOptions, Connection, ConnectionKind, Overflow};
pub use field::{Signal, SignalBinder, SignalOptions};
pub use group::{GroupMember, GroupStats};
pub use message::{Headers, Message, MessageError};
pub use meta::Meta;
pub use receiver::{
    ChannelSink, Receiver, RecvError, RecvTimeoutError, TryRecvError, DEFAULT_RECEIVER_CAPACITY,
};
pub use refs::{ConnectTarget, SignalRef, SlotRef, TargetSpec};
pub use request::{late_replies, Answer, Failure, ReplyError, RequestError, Responder, Responses};
pub(crate) use shared::{SignalControl, SignalShared};
pub use slot_table::SlotEntry;
pub use subscription::{SubscribeError, SubscribeOptions, Subscription};

use serde::{de::DeserializeOwned, Serialize};

/// What a signal carries: a tuple (`()`, `(T,)`, `(A, B)`, ...) that can be
/// cloned for each receiver, sent to another thread, and serialized to reach
/// another process. Implemented for every such type.
pub trait SignalArgs: Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> SignalArgs for T {}

/// The function a slot is reached through: the receiver as `dyn Any`, the
/// argument tuple, and the metadata when the slot asked for it.
pub type SlotFn<A> = fn(&mut dyn std::any::Any, A, Option<&Meta>);
