//! Request/response: a signal's connected slots are run with the request's
//! arguments and their return values are gathered, with a timeout.
//!
//! The requesting side. Here: how a request reaches each receiver (a queued
//! call whose metadata carries the way back, or a request record to another
//! process) and the two forms (blocking, delivered to a slot). Beside it:
//! `types` ([`Responses`] and the errors), `collector` (one request in
//! flight, where answers arrive), `wire` (the request tag and the reply
//! record between processes), `deadlines` (the thread that ends
//! slot-delivered requests at their timeout). The answering side is
//! [`reply`](crate::signal::reply).
//!
//! A request reaches the `Target::Slot` connections of the signal (explicit
//! connections and pattern subscriptions alike); signal-to-signal forwarding
//! and slots taking a [`Message`](crate::Message) are not asked. A request is
//! not an emission: single-shot connections are not used up, retained values
//! are not updated, and the call is always queued (never inline), also to a
//! receiver on the requester's own loop.

mod collector;
mod deadlines;
mod types;
mod wire;

use collector::{Collector, Entry, OnDone, Outcome, Solo};

/// How many answers this process received after their request had ended
/// (its timeout passed, so the receiver was reported missing in
/// [`Responses::missing`]). Such answers are dropped; this counts them.
///
/// ```
/// let before = signal_slot::late_replies();
/// // ... requests whose receivers answer after the timeout ...
/// assert!(signal_slot::late_replies() >= before);
/// ```
pub fn late_replies() -> u64 {
    collector::LATE_REPLIES.load(Ordering::Relaxed)
}
pub(crate) use types::ReceiverNames;
pub use types::{Answer, Failure, ReplyError, RequestError, Responder, Responses};
pub(crate) use wire::{on_reply_record, send_reply, RequestTag, KIND_REPLY};
use wire::{on_reply_record_for, on_reply_record_solo};

use crate::error::DropReason;
use crate::signal::reply::{ReplyFn, ReplyValue};
use crate::signal::{Meta, SignalArgs, SignalShared, SlotRef, SlotTarget, Target};
use crate::sync::{AtomicBool, Ordering};
use crate::transport::codec;
use crate::transport::shm::mailbox::MailboxAddr;
use crate::transport::shm::system;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// What a queued request call finds in its metadata: where to put the answer.
pub(crate) struct RequestCall<A> {
    collector: Arc<Collector>,
    index: usize,
    reply: ReplyFn<A>,
    started: AtomicBool,
    /// Its answer was handed over: the drop has nothing to report (after
    /// the request ended, a second report would count one late answer
    /// twice; review helper-53).
    answered: AtomicBool,
}

impl<A> Drop for RequestCall<A> {
    /// The call was dropped unanswered: never run (loop stopped, receiver
    /// removed), or its slot panicked. A no-op if it answered.
    fn drop(&mut self) {
        if self.answered.load(Ordering::Acquire) {
            return;
        }
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
    let mode = crate::signal::reply::ReplyMode::this_process();
    let reply = (call.reply)(obj, args, Some(meta));
    drop(mode);
    let outcome = match reply {
        Some(v) => local_outcome(v),
        None => Outcome::Failed(ReplyError::NotAResponder),
    };
    // Before `complete`, which may run the request's end (user code): a
    // panic there must not make the drop report a second outcome.
    call.answered.store(true, Ordering::Release);
    call.collector.complete(call.index, outcome);
}

fn local_outcome(v: ReplyValue) -> Outcome {
    match v.into_parts() {
        Ok((value, type_name)) => Outcome::Local(value, type_name),
        Err(t) => Outcome::Failed(ReplyError::NotAnswerable(t.to_string())),
    }
}

/// A connection list a thread last requested through: its signal's uid and
/// version, and a `Weak<[Conn<A>]>` (a list its signal replaced is not kept
/// alive, nor are the receivers it names).
type LastList = Option<(u64, u64, Box<dyn Any>)>;

thread_local! {
    static LAST_LIST: RefCell<LastList> = const { RefCell::new(None) };
}

/// The connection list of `shared` now. A thread requesting through the same
/// signal again reuses its last list while the signal's version says it is
/// unchanged (as an emitting field keeps its list): one reference count taken
/// instead of a snapshot's lock, fork-guard share and count (six locked
/// instructions, a large part of a request's cost on the VMs measured).
fn connections<A: SignalArgs>(shared: &SignalShared<A>) -> Arc<[crate::signal::Conn<A>]> {
    let version = shared.version();
    let uid = shared.uid();
    // `try_with`: a request from a thread-local's destructor takes a snapshot.
    let last = LAST_LIST.try_with(|l| {
        let l = l.try_borrow().ok()?;
        let (u, v, weak) = l.as_ref()?;
        if *u != uid || *v != version {
            return None;
        }
        weak.downcast_ref::<Weak<[crate::signal::Conn<A>]>>()?
            .upgrade()
    });
    if let Ok(Some(list)) = last {
        return list;
    }
    let (version, list) = shared.snapshot();
    let _ = LAST_LIST.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            let weak = Arc::downgrade(&list);
            // The same argument type as last time: its box is reused.
            match &mut *l {
                Some((u, v, last)) => match last.downcast_mut::<Weak<[crate::signal::Conn<A>]>>() {
                    Some(w) => (*u, *v, *w) = (uid, version, weak),
                    None => *l = Some((uid, version, Box::new(weak))),
                },
                None => *l = Some((uid, version, Box::new(weak))),
            }
        }
    });
    list
}

/// The slot connections of `shared` now.
fn targets<A: SignalArgs>(
    list: &[crate::signal::Conn<A>],
) -> impl Iterator<Item = &SlotTarget<A>> + Clone {
    list.iter().filter_map(|c| match &c.target {
        Target::Slot(t) => Some(t),
        // Groups (one member per emission) and forwardings are not asked.
        Target::Signal { .. } | Target::Message(_) | Target::Group(_) => None,
    })
}

fn entries<'a, A: SignalArgs>(targets: impl Iterator<Item = &'a SlotTarget<A>>) -> Vec<Entry> {
    targets
        .map(|t| Entry {
            responder: responder(t),
            proc: t
                .recv
                .lp
                .answers_elsewhere()
                .then(|| system::region().map(|r| system::ProcLife::of(r, t.recv.lp.owner())))
                .flatten(),
            outcome: None,
        })
        .collect()
}

/// Who `t` is, as its answer names it.
fn responder<A: SignalArgs>(t: &SlotTarget<A>) -> Responder {
    Responder::new(t.recv.responder_names().clone(), t.name)
}

fn describe<A: SignalArgs>(shared: &SignalShared<A>) -> String {
    format!("{}/{}", shared.owner, shared.name)
}

/// Where the answers of a request go.
#[derive(Clone, Copy)]
enum Sink<'a> {
    Shared(&'a Arc<Collector>),
    /// Only the requester's thread completes entries (every receiver is in
    /// another process).
    Solo(&'a Solo),
}

impl Sink<'_> {
    fn id(self) -> u64 {
        match self {
            Sink::Shared(c) => c.id,
            Sink::Solo(s) => s.id,
        }
    }

    fn complete(self, index: usize, outcome: Outcome) {
        match self {
            Sink::Shared(c) => c.complete(index, outcome),
            Sink::Solo(s) => s.complete(index, outcome),
        }
    }
}

/// Sends the request to the `n` targets; answers arrive in `sink`.
fn send_all<'a, A: SignalArgs>(
    shared: &SignalShared<A>,
    targets: impl Iterator<Item = &'a SlotTarget<A>> + Clone,
    n: usize,
    sink: Sink<'_>,
    args: A,
    reply_to: Option<MailboxAddr>,
) {
    // Built only when a receiver needs it (a local one, or one taking `&Meta`).
    let needs_meta = targets
        .clone()
        .any(|t| t.wants_meta || !t.recv.lp.answers_elsewhere());
    let meta = needs_meta.then(|| shared.request_meta());
    let mut args = Some(args);
    for (i, t) in targets.enumerate() {
        // The last target gets the arguments themselves, the others a clone.
        let a = if i + 1 < n { args.clone() } else { args.take() };
        let Some(a) = a else { return };
        send_one(i, t, a, meta.as_ref(), sink, reply_to);
    }
}

fn send_one<A: SignalArgs>(
    index: usize,
    t: &SlotTarget<A>,
    args: A,
    meta: Option<&Meta>,
    sink: Sink<'_>,
    reply_to: Option<MailboxAddr>,
) {
    let failed = |e: ReplyError| sink.complete(index, Outcome::Failed(e));
    if t.recv.lp.answers_elsewhere() {
        let Some(reply_to) = reply_to else {
            return failed(ReplyError::Undelivered(DropReason::ReceiverGone));
        };
        let tag = RequestTag {
            id: sink.id(),
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
    // A solo request has no receiver here (a loop once handed to another
    // process stays remote, so this is not expected).
    let Sink::Shared(c) = sink else {
        return failed(ReplyError::Undelivered(DropReason::ReceiverGone));
    };
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
        answered: AtomicBool::new(false),
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
    let n = entries.len();
    responses_into(Responses::room_for(n), entries)
}

impl<R> Responses<R> {
    /// Empty, with room for `n` answers (most receivers answer: one
    /// allocation of the right size).
    fn room_for(n: usize) -> Self {
        Responses {
            answers: types::List::Many(Vec::with_capacity(n)),
            missing: Vec::new(),
            failures: Vec::new(),
        }
    }
}

/// Adds the gathered entries to `out` (see [`responses`]).
fn responses_into<R: SignalArgs>(mut out: Responses<R>, entries: Vec<Entry>) -> Responses<R> {
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
            // A user's `Deserialize` may panic: this runs on whichever
            // thread ends the request (the control thread, the deadline
            // thread), which must live on (review helper-53), so it is a
            // failure of this answer, as in `request_one`.
            Some(Outcome::Remote(bytes)) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    codec::decode::<R>(bytes.bytes())
                }))
                .map_err(|_| ReplyError::Codec("the reply's decoding panicked".into()))
                .and_then(|r| r.map_err(|e| ReplyError::Codec(e.to_string())))
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
    // No clock read here: each wait below starts counting the timeout at its
    // first reading, after the sending (an answer that comes while it polls
    // costs none).
    let list = connections(shared);
    let targets = targets(&list);
    if targets.clone().next().is_none() {
        return Err(RequestError::NoResponders {
            signal: describe(shared),
        });
    }
    if let Some(me) = crate::event_loop::current_loop_id() {
        if let Some(t) = targets.clone().find(|t| t.loop_id == me) {
            return Err(RequestError::OwnLoop {
                signal: describe(shared),
                receiver: t.recv.id.clone(),
                loop_name: t.recv.lp.name.clone(),
            });
        }
    }
    let n = targets.clone().count();
    let remote = |t: &&SlotTarget<A>| t.recv.lp.answers_elsewhere();
    // Answers from other processes come to the reply mailbox, read by the
    // waiting thread (or, if no mailbox is free, to the control thread's).
    let replies = if targets.clone().any(|t| remote(&t)) {
        crate::process::replies::mailbox()
    } else {
        None
    };
    // Reading the reply mailbox from before sending on, this thread reads
    // every answer to this request itself: the request need not be findable
    // by others (a later answer, read after we left, is counted late).
    let role = replies.and_then(|_| crate::process::replies::Drainer::try_take());
    let reply_to = replies.or_else(crate::process::control::my_control_mailbox);
    let solo = role.is_some() && targets.clone().all(|t| remote(&t));
    if let (Some(addr), true) = (replies, solo) {
        if n == 1 {
            drop(targets); // borrows `list`
            return Ok(request_one(shared, list, args, addr, role, timeout));
        }
        // The common case: nobody else completes an entry, so the answers are
        // gathered without locks or atomics.
        let solo = Solo::new(std::any::type_name::<R>(), n);
        send_all(
            shared,
            targets.clone(),
            n,
            Sink::Solo(&solo),
            args,
            reply_to,
        );
        // While the receivers work (off the round trip): who they are (the
        // clones of their names) and room for the answers.
        solo.fill(entries(targets));
        let out = Responses::room_for(n);
        crate::process::replies::wait(
            addr,
            role,
            &mut |rec| on_reply_record_solo(rec, &solo),
            &|| solo.is_done(),
            timeout,
            LIVENESS_PERIOD,
            &|| solo.check_processes(),
        );
        return Ok(responses_into(out, solo.into_entries()));
    }
    let entries = entries(targets.clone());
    // Woken by whoever else completes an entry: a loop of this process, or
    // (a registered request) the thread that read the answer. Not needed
    // when this thread reads all the answers itself.
    let others = role.is_none() || entries.iter().any(|e| e.proc.is_none());
    let c = Collector::new(
        std::any::type_name::<R>(),
        entries,
        others.then(std::thread::current),
        None,
        role.is_none(),
    );
    send_all(shared, targets, n, Sink::Shared(&c), args, reply_to);
    match replies {
        Some(addr) => crate::process::replies::wait(
            addr,
            role,
            &mut |rec| on_reply_record_for(rec, Some(&c)),
            &|| c.remaining.load(Ordering::Acquire) == 0,
            timeout,
            LIVENESS_PERIOD,
            &|| c.check_processes(),
        ),
        None => wait(&c, timeout),
    }
    // Usually nothing else holds the collector now: it is taken apart without
    // its lock (answers arriving later find nothing, as after `finish`).
    let entries = match Arc::try_unwrap(c) {
        Ok(mut c) => c.take_entries(),
        Err(c) => c.finish().unwrap_or_default(),
    };
    Ok(responses(entries))
}

/// A blocking request to exactly one receiver, in another process, whose
/// answer this thread reads itself (it holds the reply mailbox's drainer
/// `role`, or no other thread of this process reads `addr`): the most common
/// request, without a [`Solo`] to fill and take apart. The answer is decoded
/// straight from its reply record. `list` is the signal's connection list,
/// with that one slot target.
fn request_one<A: SignalArgs, R: SignalArgs>(
    shared: &SignalShared<A>,
    list: Arc<[crate::signal::Conn<A>]>,
    args: A,
    addr: MailboxAddr,
    role: Option<crate::process::replies::Drainer>,
    timeout: Duration,
) -> Responses<R> {
    let Some(t) = targets(&list).next() else {
        return Responses::room_for(0); // not reached: `request` found it
    };
    let id = collector::next_id();
    // The answer or failure, once in; none: missing (not in by the deadline,
    // or the receiver's process died).
    let got: Cell<Option<Result<R, ReplyError>>> = Cell::new(None);
    let done = Cell::new(false);
    let finish = |v: Result<R, ReplyError>| {
        got.set(Some(v));
        done.set(true);
    };
    let tag = RequestTag {
        id,
        index: 0,
        requester: system::my_proc(),
        reply_to: addr,
    };
    let meta = t.wants_meta.then(|| shared.request_meta());
    if let Err(reason) = crate::event_loop::deliver_request(t, &args, meta.as_ref(), tag) {
        finish(Err(ReplyError::Undelivered(reason)));
    }
    drop(args);
    // While the receiver works (off the round trip): who it is.
    let responder = responder(t);
    let proc = system::region().map(|r| system::ProcLife::of(r, t.recv.lp.owner()));
    // Also here rather than after the answer: giving back the list's count (a
    // locked instruction).
    drop(list);
    // The receiver's process was seen dead: the wait ends after one more
    // drain, so an answer it wrote before dying still counts.
    let dead = Cell::new(false);
    if !done.get() {
        crate::process::replies::wait(
            addr,
            role,
            &mut |rec| {
                let Some((rid, index, status, rest)) = wire::parse(rec) else {
                    return;
                };
                if rid != id {
                    return wire::others(rid, index, status, rest);
                }
                // The first answer counts (a well-formed one comes once).
                if index == 0 && !done.get() {
                    // A user `Deserialize` that panics must not unwind
                    // through the ring's drain (its batch would be handed
                    // out again): a failure of this request instead.
                    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        wire::typed_answer::<R>(status, rest)
                    }))
                    .unwrap_or_else(|_| {
                        Err(ReplyError::Codec("the reply's decoding panicked".into()))
                    });
                    finish(answer);
                }
            },
            &|| done.get() || dead.get(),
            timeout,
            LIVENESS_PERIOD,
            &|| {
                if let (Some(r), Some(p)) = (system::region(), proc) {
                    if !p.alive(r) {
                        dead.set(true);
                    }
                }
            },
        );
    }
    let mut out = Responses {
        answers: types::List::Many(Vec::new()),
        missing: Vec::new(),
        failures: Vec::new(),
    };
    match got.take() {
        // Held inline: no allocation for the common outcome.
        Some(Ok(value)) => out.answers = types::List::One(Answer { responder, value }),
        Some(Err(error)) => out.failures.push(Failure { responder, error }),
        // Not in by the deadline, or its process died.
        None => out.missing.push(responder),
    }
    out
}

/// Waits until every answer is in, `timeout` is over (counted from the first
/// clock reading, after the spinning), or the processes still to answer died.
fn wait(c: &Collector, timeout: Duration) {
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
    let mut deadline = None;
    loop {
        if done() {
            return;
        }
        let now = Instant::now();
        let deadline = *deadline.get_or_insert_with(|| crate::deadline::after(now, timeout));
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
    let deadline = crate::deadline::in_(timeout);
    let (_, list) = shared.snapshot();
    let targets = targets(&list);
    if targets.clone().next().is_none() {
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
    let entries = entries(targets.clone());
    let n = entries.len();
    let c = Collector::new(
        std::any::type_name::<R>(),
        entries,
        None,
        Some(on_done),
        true,
    );
    deadlines::watch(&c, deadline);
    let reply_to = crate::process::control::my_control_mailbox();
    send_all(shared, targets, n, Sink::Shared(&c), args, reply_to);
    Ok(())
}
