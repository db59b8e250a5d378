//! Errors, one enum per operation, and [`Error`] that any of them converts into.

use crate::object::{InvalidIdError, ObjectId};
use std::fmt;

/// Why a message was not delivered. Counted per receiving loop in
/// [`LoopStats`](crate::LoopStats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DropReason {
    /// The receiver's inbox was full for the connection's whole
    /// [`Overflow`](crate::Overflow) wait.
    QueueFull,
    /// The receiving object was removed before the message reached it.
    ReceiverGone,
    /// The receiving loop had stopped.
    LoopStopped,
    /// A signal-to-signal forwarding chain was too deep.
    ForwardDepth,
    /// No member of a one-of-N group took the message (every one full or gone).
    NoGroupMember,
    /// The encoded message exceeds the cross-process size limit
    /// ([`ProcessConfig`](crate::process::ProcessConfig)); nothing was written.
    TooLarge,
    /// The arguments could not be serialized for another process.
    Encode,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::QueueFull => "inbox full",
            DropReason::ReceiverGone => "receiver removed",
            DropReason::LoopStopped => "loop stopped",
            DropReason::ForwardDepth => "forwarding too deep",
            DropReason::NoGroupMember => "no group member took it",
            DropReason::TooLarge => "message too large",
            DropReason::Encode => "arguments not serializable",
        })
    }
}

/// One receiver that did not get an emission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// The receiving object.
    pub receiver: ObjectId,
    /// The slot (or forwarded signal) name.
    pub slot: &'static str,
    /// Why.
    pub reason: DropReason,
}

/// Returned by [`EventLoop::add`](crate::EventLoop::add); hands the object back.
pub struct AddError<T> {
    kind: AddErrorKind,
    object: T,
}

/// Why an object could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddErrorKind {
    /// A live object already has this id.
    #[error("an object with id {0:?} already exists")]
    DuplicateId(ObjectId),
    /// The id breaks the id rules.
    #[error(transparent)]
    InvalidId(#[from] InvalidIdError),
    /// The loop has finished; it takes no new objects.
    #[error("event loop {0:?} has finished")]
    LoopFinished(String),
    /// Another process runs the loop; objects reach a process's loop before
    /// `start()` or from inside that process.
    #[error("event loop {0:?} runs in another process; add objects before starting it")]
    RemoteLoop(String),
    /// A `#[signal(topic = ...)]` gives a topic that breaks the
    /// [topic rules](crate::topic).
    #[error(transparent)]
    InvalidTopic(#[from] crate::topic::TopicError),
}

impl<T> AddError<T> {
    pub(crate) fn new(kind: AddErrorKind, object: T) -> Self {
        Self { kind, object }
    }

    /// Why the object was refused.
    pub fn kind(&self) -> &AddErrorKind {
        &self.kind
    }

    /// The object that was not added.
    pub fn into_inner(self) -> T {
        self.object
    }
}

impl<T> fmt::Debug for AddError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for AddError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl<T> std::error::Error for AddError<T> {}

/// Why a connection was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The signal's object was removed.
    #[error("the sender {0:?} was removed")]
    SenderRemoved(ObjectId),
    /// The slot's object was removed.
    #[error("the receiver {0:?} was removed")]
    ReceiverRemoved(ObjectId),
    /// This signal is already connected to this slot (or signal).
    #[error("signal {signal} is already connected to this receiver")]
    AlreadyConnected {
        /// `<sender>/<signal>`.
        signal: String,
    },
    /// A direct connection needs signal and slot on the same loop.
    #[error("direct connection from {signal} to {slot}: they live on different loops")]
    DirectAcrossLoops {
        /// `<sender>/<signal>`.
        signal: String,
        /// `<receiver>::<slot>`.
        slot: String,
    },
    /// Forwarding would form a cycle back to this signal.
    #[error("forwarding would form a cycle back to {0}")]
    ForwardCycle(String),
    /// A one-of-N group's members are slots taking the signal's own
    /// arguments: a slot taking a `Message`, or a signal, cannot join one.
    #[error("{signal}: a group takes slots with the signal's own arguments, not a Message slot or a signal")]
    GroupNeedsSlot {
        /// `<sender>/<signal>`.
        signal: String,
    },
    /// The signal (a timer's) is emitted only in the process that runs its
    /// loop; connect it there.
    #[error("signal {0} is emitted in another process; connect it from there")]
    EmittedElsewhere(String),
    /// The connection is in force in this process, but these processes did not
    /// confirm it in time (they may be hung).
    #[error("connection from {signal} not confirmed by processes {processes:?}")]
    Unconfirmed {
        /// `<sender>/<signal>`.
        signal: String,
        /// The processes' slots.
        processes: Vec<u32>,
    },
}

/// Why a disconnect did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectError {
    /// No such connection (never made, already broken, or an end was removed).
    #[error("not connected")]
    NotConnected,
}

/// Why `try_emit` (or `SlotRef::invoke`) reports a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The signal's object is not added to a loop yet.
    #[error("the signal is not bound: its object was not added to a loop")]
    Unbound,
    /// The signal's object was removed.
    #[error("the sender {0:?} was removed")]
    SenderRemoved(ObjectId),
    /// Some receivers did not get the message; the others did.
    #[error("{} receiver(s) did not get the message (first: {}::{}, {})",
        .0.len(), .0[0].receiver, .0[0].slot, .0[0].reason)]
    Undelivered(Vec<Undelivered>),
}

impl EmitError {
    pub(crate) fn from_report(report: Vec<Undelivered>) -> Result<(), EmitError> {
        if report.is_empty() {
            Ok(())
        } else {
            Err(EmitError::Undelivered(report))
        }
    }
}

/// Why an object could not be removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoveError {
    /// It was removed before (or its loop finished).
    #[error("object {0:?} was already removed")]
    AlreadyRemoved(ObjectId),
}

/// Why [`EventLoop::exec`](crate::EventLoop::exec) did not run the loop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Another thread runs it.
    #[error("event loop {0:?} is already running")]
    AlreadyRunning(String),
    /// It ran and finished; a loop runs once.
    #[error("event loop {0:?} has finished")]
    Finished(String),
    /// Another process runs it.
    #[error("event loop {0:?} runs in another process")]
    Remote(String),
    /// It is an [`EventLoopProcess`](crate::EventLoopProcess)'s loop: it runs in
    /// the child once the process is started, never in this one.
    #[error("event loop {0:?} belongs to an EventLoopProcess: it runs in the child after start()")]
    ForProcess(String),
    /// This thread already runs a loop.
    #[error("this thread already runs event loop {running:?}; cannot also run {requested:?}")]
    Nested {
        /// The loop running on this thread.
        running: String,
        /// The loop asked for.
        requested: String,
    },
}

/// Why a stop request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StopError {
    /// A stop was already requested.
    #[error("event loop {0:?} is already stopping")]
    AlreadyStopping(String),
    /// The loop already finished.
    #[error("event loop {0:?} has already finished")]
    Finished(String),
    /// The stop request could not reach the loop's process.
    #[error("could not send the stop to event loop {0:?}: {1}")]
    Unreachable(String, String),
}

/// Why a loop thread did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `start` was called before.
    #[error("event loop thread {0:?} was already started")]
    AlreadyStarted(String),
    /// The OS refused to create the thread.
    #[error("could not spawn the thread of event loop {name:?}: {source}")]
    Spawn {
        /// The loop's name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The loop cannot run on this thread at all (an
    /// [`EventLoopProcess`](crate::EventLoopProcess)'s loop, one running or
    /// finished): said before a thread is spawned for it.
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// Why `join` did not return a clean exit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The thread was never started.
    #[error("event loop thread {0:?} was never started")]
    NotStarted(String),
    /// `join` was called before.
    #[error("event loop thread {0:?} was already joined")]
    AlreadyJoined(String),
    /// `join` was called on the loop's own thread (from one of its slots):
    /// it would wait for itself. Stop it there, and join from elsewhere.
    #[error("event loop thread {0:?} cannot be joined from its own thread")]
    FromItsOwnThread(String),
    /// The loop thread panicked outside any slot.
    #[error("event loop thread {0:?} panicked")]
    Panicked(String),
    /// The loop could not run.
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// Why a timer operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    /// The timer's loop has finished.
    #[error("event loop {0:?} has finished; its timers cannot run")]
    LoopFinished(String),
    /// Another process runs the timer's loop; timers of a process's loop are
    /// made before `start()` or from inside that process.
    #[error("event loop {0:?} runs in another process")]
    RemoteLoop(String),
}

/// Any error of this crate, for `?` in functions that do several operations.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)]
pub enum Error {
    #[error(transparent)]
    Add(#[from] AddErrorKind),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Disconnect(#[from] DisconnectError),
    #[error(transparent)]
    Emit(#[from] EmitError),
    #[error(transparent)]
    Remove(#[from] RemoveError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Stop(#[from] StopError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error(transparent)]
    Timer(#[from] TimerError),
    #[error(transparent)]
    InvalidId(#[from] InvalidIdError),
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    #[error(transparent)]
    Request(#[from] crate::signal::RequestError),
}

impl<T> From<AddError<T>> for Error {
    fn from(e: AddError<T>) -> Self {
        Error::Add(e.kind)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
