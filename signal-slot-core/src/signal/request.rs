//! Request/response: a signal's connected slots are run with the request's
//! arguments and their return values are gathered, with a timeout.
//!
//! The requesting side: [`Responses`] and the errors, the per-request
//! [`Collector`] that answers arrive in, how a request reaches each receiver
//! (a queued call whose metadata carries the way back, or a request record to
//! another process), the blocking wait, and the deadline thread of the form
//! that delivers to a slot.
//!
//! A request reaches the `Target::Slot` connections of the signal (explicit
//! connections and pattern subscriptions alike); signal-to-signal forwarding
//! and slots taking a [`Message`](crate::Message) are not asked. A request is
//! not an emission: single-shot connections are not used up, retained values
//! are not updated, and the call is always queued (never inline), also to a
//! receiver on the requester's own loop.

use crate::error::DropReason;
use crate::object::ObjectId;
use crate::signal::reply::{Encoder, ReplyFn, ReplyValue};
use crate::signal::{Meta, SignalArgs, SignalShared, SlotRef, SlotTarget, Target};
use crate::sync::{lock, AtomicBool, AtomicU64, Ordering};
use crate::transport::codec;
use crate::transport::shm::mailbox::{self, MailboxAddr};
use crate::transport::shm::ring::RingError;
use crate::transport::shm::system;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

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
    receiver: ObjectId,
    slot: std::borrow::Cow<'static, str>,
    loop_name: String,
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
    answers: Vec<Answer<R>>,
    missing: Vec<Responder>,
    failures: Vec<Failure>,
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

/// First byte of a reply record (call records start with 1, control ones with 2).
pub(crate) const KIND_REPLY: u8 = 3;

/// Where an answer from another process goes: request `id`, receiver `index`,
/// the requesting process and the mailbox it reads replies from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestTag {
    pub(crate) id: u64,
    pub(crate) index: u32,
    pub(crate) requester: u32,
    pub(crate) reply_to: MailboxAddr,
}

impl RequestTag {
    /// Bytes on the wire.
    pub(crate) const LEN: usize = 24;

    pub(crate) fn write(&self, b: &mut [u8]) {
        b[0..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..12].copy_from_slice(&self.index.to_le_bytes());
        b[12..16].copy_from_slice(&self.requester.to_le_bytes());
        b[16..20].copy_from_slice(&self.reply_to.index.to_le_bytes());
        b[20..24].copy_from_slice(&self.reply_to.generation.to_le_bytes());
    }

    pub(crate) fn read(b: &[u8]) -> Option<Self> {
        let b = b.get(..Self::LEN)?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut id = [0; 8];
        id.copy_from_slice(&b[0..8]);
        Some(RequestTag {
            id: u64::from_le_bytes(id),
            index: u32_at(8),
            requester: u32_at(12),
            reply_to: MailboxAddr {
                index: u32_at(16),
                generation: u32_at(20),
            },
        })
    }
}

/// A reply record: `[kind=3][request id u64][receiver index u32][status u8]`,
/// then for status 0 (an answer) `[type name length u16][type name][value]`,
/// for status 1 the [`ReplyError`]; integers little-endian, value and error
/// postcard. Written straight into the requester's ring.
const REPLY_HEADER: usize = 1 + 8 + 4 + 1;
const STATUS_VALUE: u8 = 0;
/// How long an answer waits for room in a full reply mailbox before it is
/// dropped (counted by the answering loop; the requester then reports the
/// receiver missing). Short: the answering loop waits meanwhile, and a full
/// reply mailbox usually holds answers nobody waits for any more.
const REPLY_WAIT: Duration = Duration::from_millis(10);
const STATUS_ERROR: u8 = 1;

/// What became of one receiver.
pub(crate) enum Outcome {
    /// Answered in this process.
    Local(Box<dyn Any + Send>, &'static str),
    /// Answered from another process with the requested type: its encoding.
    Remote(Vec<u8>),
    Failed(ReplyError),
    /// Its process died before answering: reported missing.
    Gone,
}

struct Entry {
    responder: Responder,
    /// The process running the receiver's loop, when it is not this one.
    proc: Option<u32>,
    outcome: Option<Outcome>,
}

type OnDone = Box<dyn FnOnce(Vec<Entry>) + Send>;

struct Gather {
    entries: Vec<Entry>,
    finished: bool,
    on_done: Option<OnDone>,
}

/// One request in flight: the answers arrive here, from loop threads of this
/// process and (through the control thread) from other processes.
pub(crate) struct Collector {
    id: u64,
    /// The type name of the requested reply type.
    expected: &'static str,
    /// Receivers without an outcome yet (read without the lock by a waiter).
    remaining: AtomicUsize,
    /// A framework lock: held for short updates only, never while waiting.
    gather: Mutex<Gather>,
    /// The thread blocked in `request`, unparked when the last answer arrives.
    waiter: Option<std::thread::Thread>,
    /// Registered in [`IN_FLIGHT`] (some receiver is in another process).
    remote: bool,
}

/// Requests with a receiver in another process, by id, for their replies.
static IN_FLIGHT: LazyLock<Mutex<InFlight>> = LazyLock::new(|| Mutex::new(HashMap::default()));

type InFlight = HashMap<u64, Weak<Collector>, std::hash::BuildHasherDefault<IdHasher>>;

/// Hashes request ids (unique, made by a counter) with one multiplication.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

impl Collector {
    fn new(
        expected: &'static str,
        entries: Vec<Entry>,
        waiter: Option<std::thread::Thread>,
        on_done: Option<OnDone>,
    ) -> Arc<Self> {
        let remote = entries.iter().any(|e| e.proc.is_some());
        let c = Arc::new(Collector {
            id: u64::from(system::my_incarnation()) << 48
                | NEXT_REQUEST.fetch_add(1, Ordering::Relaxed),
            expected,
            remaining: AtomicUsize::new(entries.len()),
            gather: Mutex::new(Gather {
                entries,
                finished: false,
                on_done,
            }),
            waiter,
            remote,
        });
        if remote {
            lock(&IN_FLIGHT).insert(c.id, Arc::downgrade(&c));
        }
        c
    }

    /// Records receiver `index`'s outcome (the first one counts).
    pub(crate) fn complete(&self, index: usize, outcome: Outcome) {
        self.complete_from(index, outcome, false);
    }

    /// `by_waiter`: the blocked requester itself records it (it read the
    /// answer from its reply mailbox), so it needs no waking.
    fn complete_from(&self, index: usize, outcome: Outcome, by_waiter: bool) {
        let done = {
            let mut g = lock(&self.gather);
            if g.finished {
                return;
            }
            match g.entries.get_mut(index) {
                Some(e) if e.outcome.is_none() => e.outcome = Some(outcome),
                _ => return,
            }
            if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                Self::finish_locked(&mut g)
            } else {
                None
            }
        };
        if let Some(t) = self.waiter.as_ref().filter(|_| !by_waiter) {
            if self.remaining.load(Ordering::Acquire) == 0 {
                t.unpark();
                if self.remote {
                    // The requester may sleep on the reply mailbox's doorbell.
                    crate::process::replies::wake();
                }
            }
        }
        if let Some((f, entries)) = done {
            f(entries);
        }
    }

    /// Ends the gathering (all in, or the deadline): what is not in is
    /// missing. The blocking form gets the entries; the slot-delivered form
    /// delivers them (once).
    fn finish(&self) -> Option<Vec<Entry>> {
        let mut g = lock(&self.gather);
        g.finished = true;
        match g.on_done.take() {
            Some(f) => {
                let entries = std::mem::take(&mut g.entries);
                drop(g);
                f(entries);
                None
            }
            None if self.waiter.is_some() => Some(std::mem::take(&mut g.entries)),
            None => None,
        }
    }

    /// Marks the gathering finished; for the slot-delivered form, hands back
    /// the delivery and the entries (run it after unlocking).
    fn finish_locked(g: &mut Gather) -> Option<(OnDone, Vec<Entry>)> {
        g.finished = true;
        let f = g.on_done.take()?;
        Some((f, std::mem::take(&mut g.entries)))
    }

    /// Marks the receivers whose process died as gone.
    fn check_processes(&self) {
        if !self.remote {
            return;
        }
        let Some(region) = system::region() else {
            return;
        };
        let dead: Vec<usize> = lock(&self.gather)
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.outcome.is_none() && e.proc.is_some_and(|p| !system::proc_alive(region, p))
            })
            .map(|(i, _)| i)
            .collect();
        for i in dead {
            self.complete(i, Outcome::Gone);
        }
    }

    fn is_finished(&self) -> bool {
        lock(&self.gather).finished
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if self.remote {
            lock(&IN_FLIGHT).remove(&self.id);
        }
    }
}

/// What a queued request call finds in its metadata: where to put the answer.
pub(crate) struct RequestCall<A> {
    collector: Arc<Collector>,
    index: usize,
    reply: ReplyFn<A>,
    started: AtomicBool,
}

impl<A> Drop for RequestCall<A> {
    /// The call was dropped unanswered: never run (loop stopped, receiver
    /// removed), or its slot panicked. A no-op if it answered.
    fn drop(&mut self) {
        let error = if self.started.load(Ordering::Acquire) {
            ReplyError::Panicked
        } else {
            ReplyError::Undelivered(DropReason::ReceiverGone)
        };
        self.collector.complete(self.index, Outcome::Failed(error));
    }
}

/// Type-erased [`RequestCall`], as [`Meta`] holds it.
#[derive(Clone)]
pub(crate) struct RequestRef(Arc<dyn Any + Send + Sync>);

impl fmt::Debug for RequestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestRef")
    }
}

/// The slot function of a queued request call: runs the slot's reply thunk
/// and hands the answer to the collector the metadata names.
fn answer<A: SignalArgs>(obj: &mut dyn Any, args: A, meta: Option<&Meta>) {
    let Some(meta) = meta else { return };
    let Some(call) = meta
        .request()
        .and_then(|r| r.0.downcast_ref::<RequestCall<A>>())
    else {
        return;
    };
    call.started.store(true, Ordering::Release);
    let outcome = match (call.reply)(obj, args, Some(meta)) {
        Some(v) => local_outcome(v),
        None => Outcome::Failed(ReplyError::NotAResponder),
    };
    call.collector.complete(call.index, outcome);
}

fn local_outcome(v: ReplyValue) -> Outcome {
    match v.into_parts() {
        Ok((value, type_name)) => Outcome::Local(value, type_name),
        Err(t) => Outcome::Failed(ReplyError::NotAnswerable(t.to_string())),
    }
}

/// The slot connections of `shared` now.
fn targets<A: SignalArgs>(list: &[crate::signal::Conn<A>]) -> Vec<&SlotTarget<A>> {
    list.iter()
        .filter_map(|c| match &c.target {
            Target::Slot(t) => Some(t),
            Target::Signal { .. } | Target::Message(_) => None,
        })
        .collect()
}

fn entries<A: SignalArgs>(targets: &[&SlotTarget<A>]) -> Vec<Entry> {
    targets
        .iter()
        .map(|t| Entry {
            responder: Responder {
                receiver: t.recv.id.clone(),
                slot: std::borrow::Cow::Borrowed(t.name),
                loop_name: t.recv.lp.name.clone(),
            },
            proc: t.recv.lp.is_remote().then(|| t.recv.lp.owner()),
            outcome: None,
        })
        .collect()
}

fn describe<A: SignalArgs>(shared: &SignalShared<A>) -> String {
    format!("{}/{}", shared.owner, shared.name)
}

/// Sends the request to every target; answers arrive in `c`.
fn send_all<A: SignalArgs>(
    shared: &SignalShared<A>,
    targets: &[&SlotTarget<A>],
    c: &Arc<Collector>,
    args: A,
    reply_to: Option<MailboxAddr>,
) {
    // Built only when a receiver needs it (a local one, or one taking `&Meta`).
    let needs_meta = targets
        .iter()
        .any(|t| t.wants_meta || !t.recv.lp.is_remote());
    let meta = needs_meta.then(|| shared.request_meta());
    let Some((last, rest)) = targets.split_last() else {
        return;
    };
    for (i, t) in rest.iter().enumerate() {
        send_one(i, t, args.clone(), meta.as_ref(), c, reply_to);
    }
    send_one(rest.len(), last, args, meta.as_ref(), c, reply_to);
}

fn send_one<A: SignalArgs>(
    index: usize,
    t: &SlotTarget<A>,
    args: A,
    meta: Option<&Meta>,
    c: &Arc<Collector>,
    reply_to: Option<MailboxAddr>,
) {
    let failed = |e: ReplyError| c.complete(index, Outcome::Failed(e));
    if t.recv.lp.is_remote() {
        let Some(reply_to) = reply_to else {
            return failed(ReplyError::Undelivered(DropReason::ReceiverGone));
        };
        let tag = RequestTag {
            id: c.id,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            requester: system::my_proc(),
            reply_to,
        };
        let meta = meta.filter(|_| t.wants_meta);
        if let Err(reason) = crate::event_loop::deliver_request(t, &args, meta, tag) {
            failed(ReplyError::Undelivered(reason));
        }
        return;
    }
    let reply = t
        .recv
        .slots
        .get(usize::from(t.index))
        .and_then(|e| e.typed_reply.downcast_ref::<ReplyFn<A>>());
    let Some(reply) = reply else {
        return failed(ReplyError::NotAResponder);
    };
    let call = Arc::new(RequestCall {
        collector: c.clone(),
        index,
        reply: *reply,
        started: AtomicBool::new(false),
    });
    let meta = meta.cloned().unwrap_or_else(Meta::empty);
    let meta = Arc::new(meta.with_request(RequestRef(call.clone())));
    let queued = SlotTarget {
        call: answer::<A>,
        kind: crate::signal::ConnectionKind::Queued,
        wants_meta: true,
        gate: None,
        ..t.clone()
    };
    // `call` is kept until here so a refused post reports its own reason
    // before the dropped envelope's generic one.
    if let Err(reason) = crate::event_loop::deliver(&queued, args, Some(meta)) {
        failed(ReplyError::Undelivered(reason));
    }
    drop(call);
}

/// Turns the gathered entries into the typed answer.
fn responses<R: SignalArgs>(entries: Vec<Entry>) -> Responses<R> {
    let mut out = Responses {
        answers: Vec::new(),
        missing: Vec::new(),
        failures: Vec::new(),
    };
    let expected = std::any::type_name::<R>();
    let wrong = |got: &str| ReplyError::WrongType {
        expected: expected.to_string(),
        got: got.to_string(),
    };
    for e in entries {
        let value = match e.outcome {
            None | Some(Outcome::Gone) => {
                out.missing.push(e.responder);
                continue;
            }
            Some(Outcome::Local(v, got)) => v.downcast::<R>().map(|v| *v).map_err(|_| wrong(got)),
            Some(Outcome::Remote(bytes)) => {
                codec::decode::<R>(&bytes).map_err(|e| ReplyError::Codec(e.to_string()))
            }
            Some(Outcome::Failed(error)) => Err(error),
        };
        match value {
            Ok(value) => out.answers.push(Answer {
                responder: e.responder,
                value,
            }),
            Err(error) => out.failures.push(Failure {
                responder: e.responder,
                error,
            }),
        }
    }
    out
}

/// How often a waiting request checks that the processes it waits on live.
const LIVENESS_PERIOD: Duration = Duration::from_millis(5);
/// Polls of the collector before parking (an answer from a loop that spins
/// often comes within microseconds; waking a parked thread costs more).
const SPIN_POLLS: u32 = 256;
const SPIN_YIELDS: u32 = 8;

/// The blocking form; see [`SignalRef::request`](crate::SignalRef::request).
pub(crate) fn request<A: SignalArgs, R: SignalArgs>(
    shared: &SignalShared<A>,
    args: A,
    timeout: Duration,
) -> Result<Responses<R>, RequestError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let (_, list) = shared.snapshot();
    let targets = targets(&list);
    if targets.is_empty() {
        return Err(RequestError::NoResponders {
            signal: describe(shared),
        });
    }
    if let Some(me) = crate::event_loop::current_loop_id() {
        if let Some(t) = targets.iter().find(|t| t.loop_id == me) {
            return Err(RequestError::OwnLoop {
                signal: describe(shared),
                receiver: t.recv.id.clone(),
                loop_name: t.recv.lp.name.clone(),
            });
        }
    }
    let c = Collector::new(
        std::any::type_name::<R>(),
        entries(&targets),
        Some(std::thread::current()),
        None,
    );
    // Answers from other processes come to the reply mailbox, read by the
    // waiting thread (or, if no mailbox is free, to the control thread's).
    let replies = if c.remote {
        crate::process::replies::mailbox()
    } else {
        None
    };
    let reply_to = replies.or_else(crate::process::control::my_control_mailbox);
    send_all(shared, &targets, &c, args, reply_to);
    match replies {
        Some(addr) => crate::process::replies::wait(
            addr,
            &mut |rec| on_reply_record_for(rec, Some(&c)),
            &|| c.remaining.load(Ordering::Acquire) == 0,
            started,
            deadline,
            LIVENESS_PERIOD,
            &|| c.check_processes(),
        ),
        None => wait(&c, deadline),
    }
    Ok(responses(c.finish().unwrap_or_default()))
}

/// Waits until every answer is in, the deadline passes, or the processes
/// still to answer died.
fn wait(c: &Collector, deadline: Instant) {
    let done = || c.remaining.load(Ordering::Acquire) == 0;
    for _ in 0..SPIN_POLLS {
        if done() {
            return;
        }
        std::hint::spin_loop();
    }
    for _ in 0..SPIN_YIELDS {
        if done() {
            return;
        }
        std::thread::yield_now();
    }
    loop {
        if done() {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let nap = (deadline - now).min(if c.remote {
            LIVENESS_PERIOD
        } else {
            Duration::from_secs(3600)
        });
        std::thread::park_timeout(nap);
        c.check_processes();
    }
}

/// The form that delivers to a slot; see
/// [`SignalRef::request_to`](crate::SignalRef::request_to).
pub(crate) fn request_to<A: SignalArgs, R: SignalArgs>(
    shared: &SignalShared<A>,
    args: A,
    timeout: Duration,
    slot: &SlotRef<(Responses<R>,)>,
) -> Result<(), RequestError> {
    let deadline = Instant::now() + timeout;
    let (_, list) = shared.snapshot();
    let targets = targets(&list);
    if targets.is_empty() {
        return Err(RequestError::NoResponders {
            signal: describe(shared),
        });
    }
    let slot = slot.clone();
    // Run by whichever thread completes the request (a loop thread, the
    // control thread, the deadline thread): it must not wait, so a full inbox
    // drops the answers at once (counted by the receiving loop, and logged).
    let on_done: OnDone = Box::new(move |entries| {
        let answers = (responses::<R>(entries),);
        if let Err(e) = slot.invoke_with(answers, crate::signal::Overflow::Fail) {
            log::error!("answers of a request not delivered to {slot:?}: {e}");
        }
    });
    let c = Collector::new(
        std::any::type_name::<R>(),
        entries(&targets),
        None,
        Some(on_done),
    );
    deadlines::watch(&c, deadline);
    let reply_to = crate::process::control::my_control_mailbox();
    send_all(shared, &targets, &c, args, reply_to);
    Ok(())
}

/// The deadline thread of the slot-delivered form (one per process, started
/// on first use, again in a forked child): ends requests at their deadline
/// and notices receivers whose process died.
mod deadlines {
    use super::{Collector, LIVENESS_PERIOD};
    use crate::sync::{lock, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// Holds the collector of a slot-delivered request: nothing else does
    /// while its receivers are all in other processes.
    struct Watched {
        deadline: Instant,
        collector: Arc<Collector>,
    }

    static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());
    /// The thread and the process that started it.
    static THREAD: Mutex<Option<(u32, std::thread::Thread)>> = Mutex::new(None);

    pub(super) fn watch(c: &Arc<Collector>, deadline: Instant) {
        let mut w = lock(&WATCHED);
        // Requests all answered before their deadline leave here.
        w.retain(|x| x.collector.remaining.load(Ordering::Acquire) != 0);
        w.push(Watched {
            deadline,
            collector: c.clone(),
        });
        drop(w);
        if let Some(t) = thread() {
            t.unpark();
        }
    }

    fn thread() -> Option<std::thread::Thread> {
        let pid = std::process::id();
        let mut t = lock(&THREAD);
        if let Some((p, handle)) = &*t {
            if *p == pid {
                return Some(handle.clone());
            }
        }
        match std::thread::Builder::new()
            .name("signal-slot-requests".into())
            .spawn(run)
        {
            Ok(h) => {
                let handle = h.thread().clone();
                *t = Some((pid, handle.clone()));
                Some(handle)
            }
            Err(e) => {
                log::error!("could not start the request deadline thread: {e}");
                None
            }
        }
    }

    fn run() {
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            let mut remote = Vec::new();
            let next = {
                let mut w = lock(&WATCHED);
                w.retain(|x| {
                    let c = &x.collector;
                    if c.is_finished() {
                        false
                    } else if x.deadline <= now {
                        due.push(c.clone());
                        false
                    } else {
                        if c.remote {
                            remote.push(c.clone());
                        }
                        true
                    }
                });
                w.iter().map(|x| x.deadline).min()
            };
            for c in due {
                let _ = c.finish();
            }
            let poll = !remote.is_empty();
            for c in remote {
                c.check_processes();
            }
            let mut nap = next.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            if poll {
                nap = nap.min(LIVENESS_PERIOD);
            }
            std::thread::park_timeout(nap);
        }
    }
}

/// Sends the answer to a request from process `tag.requester` (called by the
/// loop that ran the slot), encoded straight into the requester's ring. Gives
/// up when the requester is gone or its mailbox stays full: the requester
/// then reports the receiver missing.
pub(crate) fn send_reply(
    tag: RequestTag,
    outcome: Result<Encoder<'_>, ReplyError>,
) -> Result<(), DropReason> {
    let Some(region) = system::region() else {
        return Err(DropReason::ReceiverGone);
    };
    let mut error = Vec::new();
    let (status, len) = match &outcome {
        Ok(e) => {
            let name = e.type_name.len().min(usize::from(u16::MAX));
            (STATUS_VALUE, REPLY_HEADER + 2 + name + e.size)
        }
        Err(e) => {
            if let Err(c) = codec::encode_into(e, &mut error) {
                log::error!("reply to request {:#x} not encodable: {c}", tag.id);
                return Err(DropReason::Encode);
            }
            (STATUS_ERROR, REPLY_HEADER + error.len())
        }
    };
    let fill = |b: &mut [u8]| {
        b[0] = KIND_REPLY;
        b[1..9].copy_from_slice(&tag.id.to_le_bytes());
        b[9..13].copy_from_slice(&tag.index.to_le_bytes());
        b[13] = status;
        match &outcome {
            Ok(e) => {
                let name = &e.type_name.as_bytes()[..e.type_name.len().min(usize::from(u16::MAX))];
                let at = REPLY_HEADER + 2 + name.len();
                // Bounded by u16::MAX above.
                b[REPLY_HEADER..REPLY_HEADER + 2]
                    .copy_from_slice(&(name.len() as u16).to_le_bytes());
                b[REPLY_HEADER + 2..at].copy_from_slice(name);
                e.write(&mut b[at..])
            }
            Err(_) => {
                b[REPLY_HEADER..].copy_from_slice(&error);
                true
            }
        }
    };
    let mut end = None;
    loop {
        let live = system::proc_alive(region, tag.requester)
            && region
                .mailbox_header(tag.reply_to.index)
                .generation
                .load(Ordering::Acquire)
                == tag.reply_to.generation;
        if !live {
            return Err(DropReason::ReceiverGone);
        }
        match mailbox::send_with(region, tag.reply_to.index, system::my_proc(), len, fill) {
            Ok(()) => return Ok(()),
            Err(RingError::Full)
                if Instant::now() < *end.get_or_insert_with(|| Instant::now() + REPLY_WAIT) =>
            {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => {
                log::error!(
                    "reply to request {:#x} of process {} lost: {e:?}",
                    tag.id,
                    tag.requester
                );
                return Err(match e {
                    RingError::Full => DropReason::QueueFull,
                    RingError::TooLarge => DropReason::TooLarge,
                    RingError::Unfilled => DropReason::Encode,
                    RingError::Corrupt(_) => DropReason::ReceiverGone,
                });
            }
        }
    }
}

/// Handles a reply record (with its first byte, [`KIND_REPLY`]).
pub(crate) fn on_reply_record(rec: &[u8]) {
    on_reply_record_for(rec, None);
}

/// Handles a reply record read by the requester blocked on `own` (an answer
/// to `own` needs no look-up and no wake-up).
fn on_reply_record_for(rec: &[u8], own: Option<&Arc<Collector>>) {
    let Some(head) = rec.get(..REPLY_HEADER) else {
        log::error!("reply record shorter than its header skipped");
        return;
    };
    let mut id = [0; 8];
    id.copy_from_slice(&head[1..9]);
    let id = u64::from_le_bytes(id);
    let index = u32::from_le_bytes([head[9], head[10], head[11], head[12]]) as usize;
    let rest = &rec[REPLY_HEADER..];
    let by_waiter = own.is_some_and(|c| c.id == id);
    let c = match own {
        Some(c) if by_waiter => Some(c.clone()),
        _ => lock(&IN_FLIGHT).get(&id).and_then(Weak::upgrade),
    };
    let Some(c) = c else {
        return; // finished meanwhile (timed out)
    };
    let outcome = match head[13] {
        STATUS_VALUE => {
            let parsed = rest.get(..2).and_then(|l| {
                let n = usize::from(u16::from_le_bytes([l[0], l[1]]));
                let name = std::str::from_utf8(rest.get(2..2 + n)?).ok()?;
                Some((name, &rest[2 + n..]))
            });
            match parsed {
                Some((name, bytes)) if name == c.expected => Outcome::Remote(bytes.to_vec()),
                Some((name, _)) => Outcome::Failed(ReplyError::WrongType {
                    expected: c.expected.to_string(),
                    got: name.to_string(),
                }),
                None => Outcome::Failed(ReplyError::Codec("malformed reply".into())),
            }
        }
        _ => match codec::decode::<ReplyError>(rest) {
            Ok(e) => Outcome::Failed(e),
            Err(e) => Outcome::Failed(ReplyError::Codec(e.to_string())),
        },
    };
    c.complete_from(index, outcome, by_waiter);
}
