//! Signals and patterns received by code that runs no event loop.
//!
//! A [`Receiver`] is a small object (`ChannelSink`) on a framework loop thread
//! of this process, connected or subscribed like any slot, that hands each
//! emission to a channel the plain thread reads. So it works for signals of
//! any loop and any process, at the cost of one hop. With the cargo feature
//! `async`, a receiver is also a `futures_core::Stream`.

use crate::error::ConnectError;
use crate::event_loop::EventLoopThread;
use crate::object::{EventLoopObject, Handle, ObjectId, RawHandle};
use crate::signal::slot_table::{decode_call, SlotEntry};
use crate::signal::{
    Meta, SignalArgs, SignalBinder, SignalRef, SlotRef, SubscribeError, SubscribeOptions,
    Subscription,
};
use crate::sync::{lock, AtomicU64, Ordering};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// How many emissions a [`Receiver`] holds unread before it drops new ones
/// (counted in [`Receiver::dropped`]).
pub const DEFAULT_RECEIVER_CAPACITY: usize = 65_536;

/// Emissions of one signal, or of every signal matching a pattern, for a
/// thread that runs no loop. Dropping it disconnects.
///
/// ```
/// use signal_slot::prelude::*;
/// use std::time::Duration;
///
/// #[derive(EventLoopObject, Default)]
/// struct Probe {
///     #[signal]
///     reading: Signal<(f64,)>,
/// }
///
/// let lp = EventLoopThread::new("receiver-doc");
/// let probe = lp.event_loop().add("probe-rx-doc", Probe::default()).unwrap();
/// lp.start().unwrap();
/// let rx = probe.reading().receiver().unwrap();
/// probe.reading().emit((1.5,));
/// assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok((1.5,)));
/// assert!(rx.try_recv().is_err());
/// ```
pub struct Receiver<A: SignalArgs> {
    rx: crossbeam_channel::Receiver<A>,
    shared: Arc<SinkShared>,
    sink: Handle<ChannelSink<A>>,
    subscription: Option<Subscription>,
}

/// Why [`Receiver::recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The signal's object was removed and everything it sent was read.
    #[error("the signal's object was removed")]
    Disconnected,
}

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing is waiting now.
    #[error("no emission waiting")]
    Empty,
    /// The signal's object was removed and everything it sent was read.
    #[error("the signal's object was removed")]
    Disconnected,
}

/// Why [`Receiver::recv_timeout`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// Nothing came in time.
    #[error("no emission in time")]
    Timeout,
    /// The signal's object was removed and everything it sent was read.
    #[error("the signal's object was removed")]
    Disconnected,
}

impl<A: SignalArgs> Receiver<A> {
    /// Receives from every signal matching `pattern` (see
    /// [`SlotRef::subscribe`]), in every process; never disconnected.
    pub fn subscribe(pattern: &str) -> Result<Self, SubscribeError> {
        Self::subscribe_with(pattern, SubscribeOptions::new(), DEFAULT_RECEIVER_CAPACITY)
    }

    /// [`subscribe`](Self::subscribe) with options and a capacity.
    pub fn subscribe_with(
        pattern: &str,
        opts: SubscribeOptions,
        capacity: usize,
    ) -> Result<Self, SubscribeError> {
        let mut r = Self::new(capacity).map_err(|_| {
            SubscribeError::NotSubscribable("the receivers' loop did not start".into())
        })?;
        r.subscription = Some(r.slot().subscribe_with(pattern, opts)?);
        Ok(r)
    }

    fn new(capacity: usize) -> Result<Self, ConnectError> {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let shared = Arc::new(SinkShared::default());
        let sink = ChannelSink {
            tx: Some(tx),
            shared: shared.clone(),
        };
        let sink = receivers_loop()
            .and_then(|lp| {
                let id = format!("receiver.{}", NEXT_SINK.fetch_add(1, Ordering::Relaxed));
                lp.event_loop().add(id, sink).ok()
            })
            .ok_or_else(|| ConnectError::ReceiverRemoved(ObjectId::internal("receiver".into())))?;
        Ok(Self {
            rx,
            shared,
            sink,
            subscription: None,
        })
    }

    fn slot(&self) -> SlotRef<A> {
        self.sink.raw().__slot("deliver", 0, false, sink_call::<A>)
    }

    /// Blocks until an emission arrives.
    pub fn recv(&self) -> Result<A, RecvError> {
        self.rx.recv().map_err(|_| RecvError::Disconnected)
    }

    /// An emission if one is waiting.
    pub fn try_recv(&self) -> Result<A, TryRecvError> {
        self.rx.try_recv().map_err(|e| match e {
            crossbeam_channel::TryRecvError::Empty => TryRecvError::Empty,
            crossbeam_channel::TryRecvError::Disconnected => TryRecvError::Disconnected,
        })
    }

    /// Waits up to `timeout` for an emission.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<A, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).map_err(|e| match e {
            crossbeam_channel::RecvTimeoutError::Timeout => RecvTimeoutError::Timeout,
            crossbeam_channel::RecvTimeoutError::Disconnected => RecvTimeoutError::Disconnected,
        })
    }

    /// Blocks for each emission in turn; ends when disconnected.
    pub fn iter(&self) -> impl Iterator<Item = A> + '_ {
        self.rx.iter()
    }

    /// The emissions waiting now.
    pub fn try_iter(&self) -> impl Iterator<Item = A> + '_ {
        self.rx.try_iter()
    }

    /// Emissions dropped because the receiver held `capacity` unread ones,
    /// or because they reached it after its publisher's end.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Emissions waiting now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl<A: SignalArgs> Drop for Receiver<A> {
    fn drop(&mut self) {
        if let Some(s) = &self.subscription {
            s.unsubscribe();
        }
        let _ = self.sink.remove();
    }
}

impl<A: SignalArgs> SignalRef<A> {
    /// A [`Receiver`] of this signal's emissions, for a thread that runs no
    /// loop; disconnected once the signal's object is removed.
    pub fn receiver(&self) -> Result<Receiver<A>, ConnectError> {
        self.receiver_with_capacity(DEFAULT_RECEIVER_CAPACITY)
    }

    /// [`receiver`](Self::receiver) holding at most `capacity` unread emissions.
    pub fn receiver_with_capacity(&self, capacity: usize) -> Result<Receiver<A>, ConnectError> {
        let r = Receiver::new(capacity)?;
        let owner = self.owner_object();
        self.connect(&r.slot())?;
        let close: SlotRef<(ObjectId,)> = r.sink.raw().__slot("close", 1, false, close_call::<A>);
        // A signal with no registered object (a timer's) never disconnects.
        let _ = self.destroyed_ref().connect(&close);
        // Removed between the two connects, its `destroyed` may have gone
        // before the second: the receiver would never end (review
        // helper-56). Still alive here, its `destroyed` comes after the
        // connect (its removal marks it dead before it emits).
        if owner.is_some_and(|o| !o.is_alive()) {
            return Err(ConnectError::SenderRemoved(self.owner_id()));
        }
        Ok(r)
    }
}

static NEXT_SINK: AtomicU64 = AtomicU64::new(1);

#[derive(Default)]
struct SinkShared {
    dropped: AtomicU64,
    /// The task polling the receiver as a `Stream`, if one waits.
    #[cfg(feature = "async")]
    waker: Mutex<Option<std::task::Waker>>,
    #[cfg(feature = "async")]
    waiting: crate::sync::AtomicBool,
}

impl SinkShared {
    /// Wakes a task waiting on the stream (with the `async` feature).
    #[inline]
    fn wake(&self) {
        // The fence pairs with the one in `poll_next` (a store then a load on
        // each side: without both fences each could miss the other).
        #[cfg(feature = "async")]
        {
            crate::sync::fence(Ordering::SeqCst);
            if self.waiting.swap(false, Ordering::SeqCst) {
                if let Some(w) = lock(&self.waker).take() {
                    w.wake();
                }
            }
        }
    }
}

#[cfg(feature = "async")]
impl<A: SignalArgs> futures_core::Stream for Receiver<A> {
    type Item = A;

    /// Ends when [`recv`](Receiver::recv) would return `Disconnected`.
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<A>> {
        use std::task::Poll;
        let poll = |r: &Self| match r.rx.try_recv() {
            Ok(v) => Some(Poll::Ready(Some(v))),
            Err(crossbeam_channel::TryRecvError::Disconnected) => Some(Poll::Ready(None)),
            Err(crossbeam_channel::TryRecvError::Empty) => None,
        };
        if let Some(p) = poll(&self) {
            return p;
        }
        *lock(&self.shared.waker) = Some(cx.waker().clone());
        self.shared.waiting.store(true, Ordering::SeqCst);
        crate::sync::fence(Ordering::SeqCst);
        // Checked again: an emission between the first check and the flag
        // found no waker to wake.
        poll(&self).unwrap_or(Poll::Pending)
    }
}

/// The object behind a [`Receiver`]. Not derived: it is generic.
#[doc(hidden)]
pub struct ChannelSink<A> {
    tx: Option<crossbeam_channel::Sender<A>>,
    shared: Arc<SinkShared>,
}

/// What a `Handle<ChannelSink<A>>` derefs to (nothing of use).
#[doc(hidden)]
pub struct ChannelSinkProxy {
    _raw: RawHandle,
}

impl From<RawHandle> for ChannelSinkProxy {
    fn from(raw: RawHandle) -> Self {
        Self { _raw: raw }
    }
}

impl<A: SignalArgs> EventLoopObject for ChannelSink<A> {
    type __Proxy = ChannelSinkProxy;

    fn __slot_table() -> &'static [SlotEntry] {
        sink_table::<A>()
    }

    fn __bind_signals(&mut self, _binder: &mut SignalBinder) {}

    fn object_id(&self) -> ObjectId {
        crate::event_loop::current_receiver_id()
            .unwrap_or_else(|| ObjectId::internal("<unbound>".into()))
    }
}

fn sink_call<A: SignalArgs>(obj: &mut dyn Any, args: A, _meta: Option<&Meta>) {
    let Some(sink) = obj.downcast_mut::<ChannelSink<A>>() else {
        return;
    };
    let Some(tx) = &sink.tx else {
        // After its publisher's end: a value that raced the end (emitted by
        // another thread during the removal, or read from another process's
        // ring after the end) is counted, not lost unseen (review helper-50).
        sink.shared.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if tx.try_send(args).is_err() {
        let n = sink.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            log::warn!("a plain-thread receiver is full: emission dropped; {n} so far");
        }
    }
    sink.shared.wake();
}

/// The publisher was removed: drop the sender, so the reader sees the end
/// after what is queued.
fn close_call<A: SignalArgs>(obj: &mut dyn Any, _args: (ObjectId,), _meta: Option<&Meta>) {
    if let Some(sink) = obj.downcast_mut::<ChannelSink<A>>() {
        sink.tx = None;
        sink.shared.wake();
    }
}

/// Plain-thread receivers do not answer requests (a request to one reports
/// it as a failure, [`ReplyError::NotAResponder`](crate::signal::ReplyError)).
static NOT_A_RESPONDER: () = ();

/// The slot table of `ChannelSink<A>`: one per type, made once (a generic
/// type cannot have a `static` of its own).
fn sink_table<A: SignalArgs>() -> &'static [SlotEntry] {
    static TABLES: LazyLock<Mutex<HashMap<TypeId, &'static [SlotEntry]>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut tables = lock(&TABLES);
    tables.entry(TypeId::of::<A>()).or_insert_with(|| {
        let deliver: &'static crate::signal::SlotFn<A> =
            Box::leak(Box::new(sink_call::<A> as crate::signal::SlotFn<A>));
        let close: &'static crate::signal::SlotFn<(ObjectId,)> = Box::leak(Box::new(
            close_call::<A> as crate::signal::SlotFn<(ObjectId,)>,
        ));
        Box::leak(Box::new([
            SlotEntry {
                name: "deliver",
                decode_call: |obj, bytes, meta| decode_call::<A>(obj, bytes, meta, sink_call::<A>),
                typed: deliver,
                reply_type: "()",
                typed_reply: &NOT_A_RESPONDER,
                decode_reply: |_, _, _| Ok(None),
            },
            SlotEntry {
                name: "close",
                decode_call: |obj, bytes, meta| {
                    decode_call::<(ObjectId,)>(obj, bytes, meta, close_call::<A>)
                },
                typed: close,
                reply_type: "()",
                typed_reply: &NOT_A_RESPONDER,
                decode_reply: |_, _, _| Ok(None),
            },
        ]))
    })
}

/// This process's loop thread for receivers, started on first use (again in a
/// child process: a forked child has none of its parent's threads).
fn receivers_loop() -> Option<&'static EventLoopThread> {
    static LOOP: Mutex<Option<(u32, &'static EventLoopThread)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut l = lock(&LOOP);
    if let Some((p, lp)) = *l {
        if p == pid {
            return Some(lp);
        }
    }
    let lp: &'static EventLoopThread = Box::leak(Box::new(EventLoopThread::new(format!(
        "signal-slot-receivers-{pid}"
    ))));
    lp.start().ok()?;
    *l = Some((pid, lp));
    Some(lp)
}
