//! What a request returns: the answers, who was missing, what failed; and why a
//! request was not made.

use crate::error::DropReason;
use crate::object::ObjectId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One receiver a request was sent to.
///
/// ```
/// use signal_slot::prelude::*;
/// use signal_slot::{ReplyError, RequestError};
/// use std::time::Duration;
///
/// #[derive(EventLoopObject, Default)]
/// struct Asker {
///     #[signal]
///     question: Signal<(u64,)>,
/// }
///
/// #[derive(EventLoopObject, Default)]
/// struct Square {}
///
/// #[slots]
/// impl Square {
///     fn square(&mut self, n: u64) -> u64 {
///         n * n
///     }
/// }
///
/// let worker = EventLoopThread::new("responder-doc-worker");
/// let sq = worker.event_loop().add("square-responder-doc", Square::default()).unwrap();
/// let lp = EventLoop::new("responder-doc");
/// let asker = lp.add("asker-responder-doc", Asker::default()).unwrap();
/// let t = Duration::from_secs(10);
/// asker.question().connect(&sq.square()).unwrap();
/// worker.start().unwrap();
/// for a in asker.question().request::<u64>((3,), t).unwrap().answers() {
///     let who = &a.responder;
///     assert_eq!((who.receiver().as_str(), who.slot(), a.value), ("square-responder-doc", "square", 9));
///     assert_eq!(who.loop_name(), "responder-doc-worker");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Responder {
    pub(super) receiver: ObjectId,
    pub(super) slot: std::borrow::Cow<'static, str>,
    #[serde(with = "shared_str")]
    pub(super) loop_name: std::sync::Arc<str>,
}

/// Serde for an `Arc<str>` field (serde's `rc` feature is not on).
mod shared_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub(super) fn serialize<S: Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(d).map(Arc::from)
    }
}

impl Responder {
    /// The receiving object.
    pub fn receiver(&self) -> &ObjectId {
        &self.receiver
    }

    /// The slot's name.
    pub fn slot(&self) -> &str {
        &self.slot
    }

    /// The name of the loop the receiver lives on.
    pub fn loop_name(&self) -> &str {
        &self.loop_name
    }
}

impl fmt::Display for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}::{} (loop {:?})",
            self.receiver, self.slot, self.loop_name
        )
    }
}

/// Why one receiver answered nothing usable (it did answer, or could not be
/// asked; a receiver that did not answer in time is in
/// [`Responses::missing`] instead).
///
/// ```
/// use signal_slot::prelude::*;
/// use signal_slot::{ReplyError, RequestError};
/// use std::time::Duration;
///
/// #[derive(EventLoopObject, Default)]
/// struct Asker {
///     #[signal]
///     question: Signal<(u64,)>,
/// }
///
/// #[derive(EventLoopObject, Default)]
/// struct Square {}
///
/// #[slots]
/// impl Square {
///     fn square(&mut self, n: u64) -> u64 {
///         n * n
///     }
/// }
///
/// let worker = EventLoopThread::new("reply-error-doc-worker");
/// let sq = worker.event_loop().add("square-reply-error-doc", Square::default()).unwrap();
/// let lp = EventLoop::new("reply-error-doc");
/// let asker = lp.add("asker-reply-error-doc", Asker::default()).unwrap();
/// let t = Duration::from_secs(10);
/// asker.question().connect(&sq.square()).unwrap();
/// worker.start().unwrap();
/// let r = asker.question().request::<String>((3,), t).unwrap();
/// let f = &r.failures()[0];
/// assert_eq!(f.responder.slot(), "square");
/// assert!(matches!(&f.error, ReplyError::WrongType { got, .. } if got == "u64"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ReplyError {
    /// The slot panicked (caught and counted by its loop as usual).
    #[error("the slot panicked")]
    Panicked,
    /// The slot returned another type than the request asked for.
    #[error("the slot returns {got}, not the requested {expected}")]
    WrongType {
        /// The type the request asked for.
        expected: String,
        /// The slot's return type.
        got: String,
    },
    /// The slot's return type cannot be sent back (it is not
    /// `Serialize + Send + 'static`, or it borrows).
    #[error("the slot returns {0}, which cannot answer a request")]
    NotAnswerable(String),
    /// The receiver does not answer requests (a plain-thread
    /// [`Receiver`](crate::Receiver), a slot of another argument type).
    #[error("the receiver does not answer requests")]
    NotAResponder,
    /// The request could not be queued, or was dropped before the slot ran.
    #[error("the request was not delivered: {0}")]
    Undelivered(DropReason),
    /// The arguments or the reply did not encode or decode across processes.
    #[error("encoding: {0}")]
    Codec(String),
}

/// One answer: who gave it and the value its slot returned.
///
/// ```
/// use signal_slot::prelude::*;
/// use signal_slot::{ReplyError, RequestError};
/// use std::time::Duration;
///
/// #[derive(EventLoopObject, Default)]
/// struct Asker {
///     #[signal]
///     question: Signal<(u64,)>,
/// }
///
/// #[derive(EventLoopObject, Default)]
/// struct Square {}
///
/// #[slots]
/// impl Square {
///     fn square(&mut self, n: u64) -> u64 {
///         n * n
///     }
/// }
///
/// let worker = EventLoopThread::new("answer-doc-worker");
/// let sq = worker.event_loop().add("square-answer-doc", Square::default()).unwrap();
/// let lp = EventLoop::new("answer-doc");
/// let asker = lp.add("asker-answer-doc", Asker::default()).unwrap();
/// let t = Duration::from_secs(10);
/// asker.question().connect(&sq.square()).unwrap();
/// worker.start().unwrap();
/// for a in asker.question().request::<u64>((3,), t).unwrap().answers() {
///     let who = &a.responder;
///     assert_eq!((who.receiver().as_str(), who.slot(), a.value), ("square-answer-doc", "square", 9));
///     assert_eq!(who.loop_name(), "answer-doc-worker");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer<R> {
    /// Who answered.
    pub responder: Responder,
    /// What the slot returned.
    pub value: R,
}

/// One receiver whose answer is not usable, and why.
///
/// ```
/// use signal_slot::prelude::*;
/// use signal_slot::{ReplyError, RequestError};
/// use std::time::Duration;
///
/// #[derive(EventLoopObject, Default)]
/// struct Asker {
///     #[signal]
///     question: Signal<(u64,)>,
/// }
///
/// #[derive(EventLoopObject, Default)]
/// struct Square {}
///
/// #[slots]
/// impl Square {
///     fn square(&mut self, n: u64) -> u64 {
///         n * n
///     }
/// }
///
/// let worker = EventLoopThread::new("failure-doc-worker");
/// let sq = worker.event_loop().add("square-failure-doc", Square::default()).unwrap();
/// let lp = EventLoop::new("failure-doc");
/// let asker = lp.add("asker-failure-doc", Asker::default()).unwrap();
/// let t = Duration::from_secs(10);
/// asker.question().connect(&sq.square()).unwrap();
/// worker.start().unwrap();
/// let r = asker.question().request::<String>((3,), t).unwrap();
/// let f = &r.failures()[0];
/// assert_eq!(f.responder.slot(), "square");
/// assert!(matches!(&f.error, ReplyError::WrongType { got, .. } if got == "u64"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Who.
    pub responder: Responder,
    /// Why.
    pub error: ReplyError,
}

/// What a request gathered: the answers, the receivers that did not answer in
/// time (or whose process died), and the receivers whose answer is not usable.
/// Every receiver asked is in exactly one of the three.
///
/// ```
/// use signal_slot::prelude::*;
/// use signal_slot::Responses;
/// use std::time::Duration;
///
/// #[derive(EventLoopObject, Default)]
/// struct Asker {
///     #[signal]
///     question: Signal<(u64,)>,
/// }
///
/// #[derive(EventLoopObject, Default)]
/// struct Doubler {}
///
/// #[slots]
/// impl Doubler {
///     fn double(&mut self, n: u64) -> u64 {
///         n * 2
///     }
/// }
///
/// let worker = EventLoopThread::new("responses-doc");
/// let d = worker.event_loop().add("doubler-doc", Doubler::default()).unwrap();
/// let lp = EventLoop::new("responses-doc-main");
/// let asker = lp.add("asker-doc", Asker::default()).unwrap();
/// asker.question().connect(&d.double()).unwrap();
/// worker.start().unwrap();
/// let r: Responses<u64> = asker.question().request((21,), Duration::from_secs(10)).unwrap();
/// assert_eq!(r.values().copied().collect::<Vec<_>>(), [42]);
/// assert!(r.missing().is_empty() && r.failures().is_empty());
/// assert_eq!(r.answers()[0].responder.receiver().as_str(), "doubler-doc");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Responses<R> {
    pub(super) answers: Vec<Answer<R>>,
    pub(super) missing: Vec<Responder>,
    pub(super) failures: Vec<Failure>,
}

impl<R> Responses<R> {
    /// The answers, in connection order.
    pub fn answers(&self) -> &[Answer<R>] {
        &self.answers
    }

    /// The answered values, in connection order.
    pub fn values(&self) -> impl Iterator<Item = &R> {
        self.answers.iter().map(|a| &a.value)
    }

    /// The answers, by value.
    pub fn into_answers(self) -> Vec<Answer<R>> {
        self.answers
    }

    /// The receivers that did not answer before the timeout, or whose process
    /// died before answering.
    pub fn missing(&self) -> &[Responder] {
        &self.missing
    }

    /// The receivers whose answer is not usable, with the reason.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// True when every receiver answered.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.failures.is_empty()
    }
}

/// Why a request was not made.
///
/// ```
/// use signal_slot::prelude::*;
/// use signal_slot::{ReplyError, RequestError};
/// use std::time::Duration;
///
/// #[derive(EventLoopObject, Default)]
/// struct Asker {
///     #[signal]
///     question: Signal<(u64,)>,
/// }
///
/// #[derive(EventLoopObject, Default)]
/// struct Square {}
///
/// #[slots]
/// impl Square {
///     fn square(&mut self, n: u64) -> u64 {
///         n * n
///     }
/// }
///
/// let worker = EventLoopThread::new("request-error-doc-worker");
/// let sq = worker.event_loop().add("square-request-error-doc", Square::default()).unwrap();
/// let lp = EventLoop::new("request-error-doc");
/// let asker = lp.add("asker-request-error-doc", Asker::default()).unwrap();
/// let t = Duration::from_secs(10);
/// let e = asker.question().request::<u64>((3,), t).unwrap_err();
/// assert!(matches!(e, RequestError::NoResponders { .. }));
/// asker.question().connect(&sq.square()).unwrap();
/// worker.start().unwrap();
/// assert!(asker.question().request::<u64>((3,), t).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No slot is connected to the signal (answered at once).
    #[error("no slot is connected to {signal}: no responders")]
    NoResponders {
        /// `<sender>/<signal>`.
        signal: String,
    },
    /// A receiver lives on the loop the calling thread runs: a blocking
    /// request would wait on itself. Nothing was sent. Use
    /// [`SignalRef::request_to`](crate::SignalRef::request_to) from there.
    #[error(
        "{signal}: receiver {receiver} lives on loop {loop_name:?}, which this thread runs; \
         a blocking request would wait on itself"
    )]
    OwnLoop {
        /// `<sender>/<signal>`.
        signal: String,
        /// The receiver on that loop.
        receiver: ObjectId,
        /// The loop.
        loop_name: String,
    },
}
