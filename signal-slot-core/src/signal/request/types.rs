//! What a request returns: the answers, who was missing, what failed; and why a
//! request was not made.

use crate::error::DropReason;
use crate::object::ObjectId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

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
#[derive(Clone)]
pub struct Responder {
    /// Who and where, shared by every request to the receiver (made once).
    names: Arc<ReceiverNames>,
    slot: Cow<'static, str>,
}

/// A receiver's names as a [`Responder`] carries them: made on the first
/// request to it and kept with it, so a request takes one reference count
/// instead of a count on each name.
#[derive(Debug)]
pub(crate) struct ReceiverNames {
    receiver: ObjectId,
    loop_name: Arc<str>,
}

impl ReceiverNames {
    /// Object `receiver`, on the loop named `loop_name`.
    pub(crate) fn new(receiver: ObjectId, loop_name: Arc<str>) -> Self {
        ReceiverNames {
            receiver,
            loop_name,
        }
    }
}

/// A [`Responder`] as serde sees it (the form it always had: three fields).
#[derive(Serialize)]
#[serde(rename = "Responder")]
struct FieldsRef<'a> {
    receiver: &'a ObjectId,
    slot: &'a str,
    loop_name: &'a str,
}

/// [`FieldsRef`], owned.
#[derive(Deserialize)]
#[serde(rename = "Responder")]
struct Fields {
    receiver: ObjectId,
    slot: Cow<'static, str>,
    loop_name: String,
}

impl Serialize for Responder {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        FieldsRef {
            receiver: self.receiver(),
            slot: self.slot(),
            loop_name: self.loop_name(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Responder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = Fields::deserialize(d)?;
        Ok(Responder {
            names: Arc::new(ReceiverNames::new(f.receiver, Arc::from(f.loop_name))),
            slot: f.slot,
        })
    }
}

impl Responder {
    /// Slot `slot` of the receiver named by `names`.
    pub(super) fn new(names: Arc<ReceiverNames>, slot: &'static str) -> Self {
        Responder {
            names,
            slot: Cow::Borrowed(slot),
        }
    }

    /// The receiving object.
    pub fn receiver(&self) -> &ObjectId {
        &self.names.receiver
    }

    /// The slot's name.
    pub fn slot(&self) -> &str {
        &self.slot
    }

    /// The name of the loop the receiver lives on.
    pub fn loop_name(&self) -> &str {
        &self.names.loop_name
    }
}

impl PartialEq for Responder {
    fn eq(&self, other: &Self) -> bool {
        (Arc::ptr_eq(&self.names, &other.names)
            || (self.receiver() == other.receiver() && self.loop_name() == other.loop_name()))
            && self.slot() == other.slot()
    }
}

impl Eq for Responder {}

impl Hash for Responder {
    /// As the three names (equal responders hash alike).
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.receiver().hash(h);
        self.slot().hash(h);
        self.loop_name().hash(h);
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("receiver", self.receiver())
            .field("slot", &self.slot())
            .field("loop_name", &self.loop_name())
            .finish()
    }
}

impl fmt::Display for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}::{} (loop {:?})",
            self.receiver(),
            self.slot(),
            self.loop_name()
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
    pub(super) answers: List<Answer<R>>,
    pub(super) missing: Vec<Responder>,
    pub(super) failures: Vec<Failure>,
}

impl<R> Responses<R> {
    /// The answers, in connection order.
    pub fn answers(&self) -> &[Answer<R>] {
        self.answers.as_slice()
    }

    /// The answered values, in connection order.
    pub fn values(&self) -> impl Iterator<Item = &R> {
        self.answers.as_slice().iter().map(|a| &a.value)
    }

    /// The answers, by value.
    pub fn into_answers(self) -> Vec<Answer<R>> {
        self.answers.into_vec()
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

/// A list that holds one item without a heap allocation: the answers of the
/// most common request (one receiver). Shows, compares and encodes as the
/// `Vec` it stands for.
#[derive(Clone)]
pub(super) enum List<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> List<T> {
    fn as_slice(&self) -> &[T] {
        match self {
            List::One(t) => std::slice::from_ref(t),
            List::Many(v) => v,
        }
    }

    fn into_vec(self) -> Vec<T> {
        match self {
            List::One(t) => vec![t],
            List::Many(v) => v,
        }
    }

    /// Adds `t` at the end.
    pub(super) fn push(&mut self, t: T) {
        match self {
            List::Many(v) => v.push(t),
            List::One(_) => {
                let one = std::mem::replace(self, List::Many(Vec::new()));
                *self = List::Many(one.into_vec());
                self.push(t);
            }
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for List<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: PartialEq> PartialEq for List<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Serialize> Serialize for List<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.as_slice())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::deserialize(d).map(List::Many)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::DefaultHasher;

    /// The form `Responder` had before its names were shared (derived).
    mod old {
        use crate::object::ObjectId;
        use serde::{Deserialize, Serialize};
        use std::borrow::Cow;

        #[derive(Debug, Hash, Serialize, Deserialize)]
        pub(super) struct Responder {
            pub(super) receiver: ObjectId,
            pub(super) slot: Cow<'static, str>,
            pub(super) loop_name: String,
        }
    }

    fn hash_of(v: &impl Hash) -> u64 {
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn a_responder_shows_encodes_and_hashes_as_its_three_names() {
        let id = ObjectId::new("square-7").unwrap();
        let names = Arc::new(ReceiverNames::new(id.clone(), Arc::from("worker \"a\"")));
        let new = Responder::new(names, "square");
        let old = old::Responder {
            receiver: id,
            slot: Cow::Borrowed("square"),
            loop_name: "worker \"a\"".into(),
        };
        assert_eq!(format!("{new:?}"), format!("{old:?}"));
        assert_eq!(format!("{new:#?}"), format!("{old:#?}"));
        assert_eq!(new.to_string(), r#"square-7::square (loop "worker \"a\"")"#);
        assert_eq!(hash_of(&new), hash_of(&old));
        let bytes = postcard::to_allocvec(&new).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&old).unwrap());
        let back: Responder = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, new);
        assert_eq!(hash_of(&back), hash_of(&new));
    }

    #[test]
    fn one_answer_held_inline_shows_compares_and_encodes_as_a_vec() {
        let one = List::One((7u64, "x".to_string()));
        let many = List::Many(vec![(7u64, "x".to_string())]);
        assert_eq!(one, many);
        assert_eq!(format!("{one:?}"), format!("{:?}", vec![(7u64, "x")]));
        assert_eq!(format!("{one:#?}"), format!("{many:#?}"));
        let bytes = postcard::to_allocvec(&one).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&vec![(7u64, "x")]).unwrap());
        let back: List<(u64, String)> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, one);
        let mut grown = one.clone();
        grown.push((8, "y".into()));
        assert_eq!(grown.as_slice(), [(7, "x".into()), (8, "y".into())]);
        assert_eq!(grown.into_vec().len(), 2);
        assert_eq!(one.into_vec(), vec![(7, "x".to_string())]);
        assert_ne!(List::One(1u8), List::Many(vec![]));
    }

    #[test]
    fn responders_are_equal_when_their_names_are() {
        let names = |id: &str, lp: &str| {
            Arc::new(ReceiverNames::new(
                ObjectId::new(id).unwrap(),
                Arc::from(lp),
            ))
        };
        let a = Responder::new(names("x", "l"), "s");
        assert_eq!(a, Responder::new(names("x", "l"), "s"));
        assert_eq!(a, a.clone());
        assert_ne!(a, Responder::new(names("y", "l"), "s"));
        assert_ne!(a, Responder::new(names("x", "m"), "s"));
        assert_ne!(a, Responder::new(names("x", "l"), "t"));
    }
}
