use crate::error::{ConnectError, DisconnectError, EmitError};
use crate::event_loop::LoopId;
use crate::object::{EventLoopObject, Handle, ObjectId, ObjectShared};
use crate::signal::shared::InsertError;
use crate::signal::{
    Conn, ConnectOptions, Connection, ConnectionKind, SignalArgs, SignalControl, SignalShared,
    SlotFn, SlotTarget, Target,
};
use std::fmt;
use std::sync::Arc;

/// A signal of some object, reachable from any thread: connect it, disconnect
/// it, emit it. Get one from a handle (`handle.my_signal()`).
///
/// ```
/// use signal_slot::prelude::*;
///
/// #[derive(EventLoopObject, Default)]
/// struct Button {
///     #[signal]
///     clicked: Signal<()>,
/// }
///
/// #[derive(EventLoopObject, Default)]
/// struct Lamp {
///     on: bool,
/// }
///
/// #[slots]
/// impl Lamp {
///     fn toggle(&mut self) {
///         self.on = !self.on;
///     }
/// }
///
/// let lp = EventLoop::new("signal-ref-doc");
/// let button = lp.add("button-doc", Button::default()).unwrap();
/// let lamp = lp.add("lamp-doc", Lamp::default()).unwrap();
/// let c = button.clicked().connect(&lamp.toggle()).unwrap();
/// // The same pair twice is refused.
/// assert!(button.clicked().connect(&lamp.toggle()).is_err());
/// button.clicked().emit(()); // queued: main does not run the loop
/// c.disconnect().unwrap();
/// assert_eq!(button.clicked().receiver_count(), 0);
/// ```
pub struct SignalRef<A: SignalArgs> {
    shared: Arc<SignalShared<A>>,
    owner: Option<Arc<ObjectShared>>,
}

impl<A: SignalArgs> SignalRef<A> {
    pub(crate) fn from_shared(shared: Arc<SignalShared<A>>) -> Self {
        Self {
            shared,
            owner: None,
        }
    }

    pub(crate) fn with_owner(shared: Arc<SignalShared<A>>, owner: Arc<ObjectShared>) -> Self {
        Self {
            shared,
            owner: Some(owner),
        }
    }

    /// A signal that is closed from the start (nothing connects to it).
    pub(crate) fn detached(owner: ObjectId, loop_id: LoopId) -> Self {
        let shared = Arc::new(SignalShared::new(owner, "detached", loop_id));
        shared.close();
        Self::from_shared(shared)
    }

    /// Connects with [`ConnectOptions::new`] (auto kind).
    pub fn connect<T: ConnectTarget<A>>(&self, target: &T) -> Result<Connection, ConnectError> {
        self.connect_with(target, ConnectOptions::new())
    }

    /// Connects to a slot or forwards to another signal with the same arguments.
    ///
    /// Errors: either end removed; the pair already connected (a second connect
    /// of the same signal to the same slot is refused, whatever the options);
    /// [`ConnectionKind::Direct`] across loops; a forwarding cycle.
    pub fn connect_with<T: ConnectTarget<A>>(
        &self,
        target: &T,
        opts: ConnectOptions,
    ) -> Result<Connection, ConnectError> {
        let TargetSpec(target) = target.__target(&opts);
        if let Some(owner) = &self.owner {
            if !owner.is_alive() {
                return Err(ConnectError::SenderRemoved(owner.id.clone()));
            }
            // A timer's signal is emitted only where its loop runs; a connection
            // made here would never see an emission.
            if self.shared.index == crate::signal::shared::LOCAL_INDEX && owner.lp.is_remote() {
                return Err(ConnectError::EmittedElsewhere(self.describe()));
            }
        }
        match &target {
            Target::Slot(s) => {
                if opts.connection_kind() == ConnectionKind::Direct
                    && s.loop_id != self.shared.loop_id
                {
                    return Err(ConnectError::DirectAcrossLoops {
                        signal: self.describe(),
                        slot: format!("{}::{}", s.recv.id, s.name),
                    });
                }
            }
            Target::Signal { shared, .. } => {
                if Arc::ptr_eq(shared, &self.shared) || shared.forwards_to(&self.shared, 0) {
                    return Err(ConnectError::ForwardCycle(self.describe()));
                }
            }
            Target::Message(_) | Target::Group(_) => {}
        }
        let conn = Conn::new(target, opts.is_single_shot());
        let id = conn.id;
        let receiver = conn.target.receiver().cloned();
        let signal: Arc<dyn SignalControl> = self.shared.clone();
        let mut refused = None;
        let mut insert =
            || match self
                .shared
                .insert_checked(conn.clone(), true, opts.group.as_ref())
            {
                Ok(()) => Some(id),
                Err(e) => {
                    refused = Some(e);
                    None
                }
            };
        let added = match &receiver {
            Some(r) => r.add_incoming(Arc::downgrade(&signal), insert),
            None => insert().is_some(),
        };
        if added {
            if let Some(wire) = self.wire(&conn, opts.group_name()) {
                if let Err(processes) = crate::process::control::replicate_connect(wire) {
                    return Err(ConnectError::Unconfirmed {
                        signal: self.describe(),
                        processes,
                    });
                }
            }
            return Ok(Connection {
                signal: Arc::downgrade(&signal),
                id,
            });
        }
        Err(match refused {
            Some(InsertError::Duplicate) => ConnectError::AlreadyConnected {
                signal: self.describe(),
            },
            Some(InsertError::Closed) => ConnectError::SenderRemoved(self.shared.owner.clone()),
            Some(InsertError::GroupNeedsSlot) => ConnectError::GroupNeedsSlot {
                signal: self.describe(),
            },
            None => ConnectError::ReceiverRemoved(
                receiver.map_or_else(|| self.shared.owner.clone(), |r| r.id.clone()),
            ),
        })
    }

    /// Breaks the connection from this signal to `target`.
    pub fn disconnect<T: ConnectTarget<A>>(&self, target: &T) -> Result<(), DisconnectError> {
        let TargetSpec(target) = target.__target(&ConnectOptions::new());
        match self.shared.disconnect_where(|c| c.target.same_as(&target)) {
            0 => Err(DisconnectError::NotConnected),
            _ => Ok(()),
        }
    }

    /// Breaks every connection from this signal to slots of `receiver`; returns
    /// how many.
    pub fn disconnect_receiver<O: EventLoopObject>(&self, receiver: &Handle<O>) -> usize {
        let r = &receiver.raw().0;
        self.shared
            .disconnect_where(|c| c.target.receiver().is_some_and(|x| Arc::ptr_eq(x, r)))
    }

    /// Breaks every connection from this signal; returns how many.
    pub fn disconnect_all(&self) -> usize {
        self.shared.disconnect_where(|_| true)
    }

    /// Emits from the calling thread (fire-and-forget; see [`Signal::emit`](crate::Signal::emit)).
    pub fn emit(&self, args: A) {
        self.shared
            .emit_shared(args, crate::signal::shared::Emission::new(None), None);
    }

    /// Emits with headers (see [`Signal::emit_with_headers`](crate::Signal::emit_with_headers)).
    pub fn emit_with_headers(&self, args: A, headers: crate::signal::Headers) {
        self.shared.emit_shared(
            args,
            crate::signal::shared::Emission::new(Some(Arc::new(headers))),
            None,
        );
    }

    /// The `destroyed` signal of this signal's object.
    pub(crate) fn destroyed_ref(&self) -> SignalRef<(ObjectId,)> {
        match self.owner_object() {
            Some(o) => SignalRef::with_owner(o.destroyed.clone(), o),
            None => SignalRef::detached(self.shared.owner.clone(), self.shared.loop_id),
        }
    }

    /// The object emitting it, if it is one of this process's (registered).
    pub(crate) fn owner_object(&self) -> Option<Arc<crate::object::ObjectShared>> {
        self.owner
            .clone()
            .or_else(|| crate::object::registry::lookup(self.shared.owner.as_str()))
    }

    /// The id of the object emitting it.
    pub(crate) fn owner_id(&self) -> ObjectId {
        self.shared.owner.clone()
    }

    /// The topic its emissions carry: `<sender>/<name>` unless the signal
    /// declares its own.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// Emits and reports receivers that did not get the message.
    pub fn try_emit(&self, args: A) -> Result<(), EmitError> {
        if !self.shared.is_open() {
            return Err(EmitError::SenderRemoved(self.shared.owner.clone()));
        }
        let mut report = Vec::new();
        self.shared.emit_shared(
            args,
            crate::signal::shared::Emission::new(None),
            Some(&mut report),
        );
        EmitError::from_report(report)
    }

    /// What the one-of-N group `name` of this signal did so far (in this
    /// process: for a signal emitted in another process, ask there).
    pub fn group_stats(&self, name: &str) -> Option<crate::signal::GroupStats> {
        self.shared.group_stats(name)
    }

    /// Asks every slot connected to this signal and gathers what they return,
    /// waiting up to `timeout`; blocks the calling thread meanwhile.
    ///
    /// Each connected slot is called once with `args`, always queued to its
    /// loop (in this process or another), and its return value comes back as
    /// an [`Answer`](crate::Answer) if its type is `R`. The call returns when
    /// every receiver answered, or at the timeout: the receivers that did not
    /// answer by then, or whose process died meanwhile (noticed within a few
    /// milliseconds), are in [`Responses::missing`](crate::Responses::missing); answers that are not
    /// usable (the slot panicked or returns another type than `R`, the call
    /// could not be queued) are in [`Responses::failures`](crate::Responses::failures), never a wrong
    /// value. A slot that returns nothing answers `()`. The timeout counts
    /// from the sending (a send that waits for room in a full inbox, per the
    /// connection's [`Overflow`](crate::Overflow), waits first).
    ///
    /// Errors, at once and before anything is sent:
    /// [`RequestError::NoResponders`](crate::RequestError::NoResponders) when no slot is connected;
    /// [`RequestError::OwnLoop`](crate::RequestError::OwnLoop) when a receiver lives on the loop the calling
    /// thread runs (it would wait on itself; use
    /// [`request_to`](Self::request_to) there). From a slot, requests to other
    /// loops are allowed; the calling loop then runs nothing else until the
    /// request returns.
    ///
    /// A request reaches slot connections and pattern subscriptions; signals
    /// forwarded to and slots taking a [`Message`](crate::Message) are not
    /// asked. It is not an emission: single-shot connections stay, retained
    /// values do not change.
    ///
    /// ```
    /// use signal_slot::prelude::*;
    /// use signal_slot::RequestError;
    /// use std::time::Duration;
    ///
    /// #[derive(EventLoopObject, Default)]
    /// struct Client {
    ///     #[signal]
    ///     ask: Signal<(String,)>,
    /// }
    ///
    /// #[derive(EventLoopObject, Default)]
    /// struct Server {}
    ///
    /// #[slots]
    /// impl Server {
    ///     fn length(&mut self, s: String) -> Result<usize, String> {
    ///         if s.is_empty() { Err("empty".into()) } else { Ok(s.len()) }
    ///     }
    /// }
    ///
    /// let server_loop = EventLoopThread::new("request-doc-server");
    /// let server = server_loop.event_loop().add("server-doc", Server::default()).unwrap();
    /// let lp = EventLoop::new("request-doc");
    /// let client = lp.add("client-doc", Client::default()).unwrap();
    /// let t = Duration::from_secs(10);
    /// assert!(matches!(
    ///     client.ask().request::<Result<usize, String>>(("abc".into(),), t),
    ///     Err(RequestError::NoResponders { .. })
    /// ));
    /// client.ask().connect(&server.length()).unwrap();
    /// server_loop.start().unwrap();
    /// let r = client.ask().request::<Result<usize, String>>(("abc".into(),), t).unwrap();
    /// assert_eq!(r.answers()[0].value, Ok(3));
    /// // Asking for another type than the slot returns is a failure, not a value.
    /// let r = client.ask().request::<u64>(("abc".into(),), t).unwrap();
    /// assert!(r.answers().is_empty() && r.failures().len() == 1);
    /// ```
    pub fn request<R: SignalArgs>(
        &self,
        args: A,
        timeout: std::time::Duration,
    ) -> Result<crate::signal::Responses<R>, crate::signal::RequestError> {
        crate::signal::request::request(&self.shared, args, timeout)
    }

    /// Like [`request`](Self::request), without blocking: returns at once, and
    /// the gathered [`Responses`](crate::Responses) arrive later as one call
    /// of `slot` (queued to its loop), when every receiver answered or at the
    /// timeout, whichever comes first. Receivers on the calling thread's own
    /// loop are allowed (their calls are queued, and run after the current
    /// slot returns). The timeout is kept by a framework thread of this
    /// process.
    ///
    /// Errors at once with [`RequestError::NoResponders`](crate::RequestError::NoResponders) when no slot is
    /// connected (`slot` is then not called).
    ///
    /// ```
    /// use signal_slot::prelude::*;
    /// use signal_slot::Responses;
    /// use std::time::Duration;
    ///
    /// #[derive(EventLoopObject, Default)]
    /// struct Counter {
    ///     #[signal]
    ///     poll: Signal<()>,
    ///     #[signal]
    ///     total: Signal<(u64,)>,
    /// }
    ///
    /// #[slots]
    /// impl Counter {
    ///     fn count(&mut self) -> u64 {
    ///         7
    ///     }
    ///     fn tally(&mut self, r: Responses<u64>) {
    ///         self.total.emit((r.values().sum(),));
    ///     }
    /// }
    ///
    /// let lp = EventLoop::new("request-to-doc");
    /// let c = lp.add("counter-doc", Counter::default()).unwrap();
    /// c.poll().connect(&c.count()).unwrap(); // it asks itself: fine, the call is queued
    /// c.total().connect(&lp.stop_slot()).unwrap();
    /// c.poll().request_to::<u64>((), Duration::from_secs(10), &c.tally()).unwrap();
    /// lp.exec().unwrap(); // count answers, tally gets the answers and stops the loop
    /// ```
    pub fn request_to<R: SignalArgs>(
        &self,
        args: A,
        timeout: std::time::Duration,
        slot: &SlotRef<(crate::signal::Responses<R>,)>,
    ) -> Result<(), crate::signal::RequestError> {
        crate::signal::request::request_to(&self.shared, args, timeout, slot)
    }

    /// How many connections leave this signal.
    pub fn receiver_count(&self) -> usize {
        self.shared.connection_count()
    }

    /// The id of the object that owns the signal.
    pub fn sender(&self) -> &ObjectId {
        &self.shared.owner
    }

    /// The signal's name.
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// The connection as other processes are told about it; `None` when they
    /// need not know (no system, a local-only signal, a forwarding, a receiver
    /// loop without a mailbox).
    fn wire(
        &self,
        conn: &Conn<A>,
        group: Option<&str>,
    ) -> Option<crate::process::control::WireConn> {
        use crate::process::control::WireConn;
        crate::transport::shm::system::region()?;
        if self.shared.index == crate::signal::shared::LOCAL_INDEX {
            return None;
        }
        let Target::Slot(t) = &conn.target else {
            return None;
        };
        let addr = t.recv.lp.mailbox.get()?;
        let owner = match &self.owner {
            Some(o) => crate::process::control::ObjectAddr::of(o)?,
            None => crate::process::control::ObjectAddr::of(&*crate::object::registry::lookup(
                self.shared.owner.as_str(),
            )?)?,
        };
        let (overflow, block_ms) = WireConn::overflow_code(t.overflow);
        Some(WireConn {
            id: conn.id,
            owner,
            signal: self.shared.index,
            receiver: t.recv.id.to_string(),
            loop_id: t.recv.lp.id.raw(),
            loop_name: t.recv.lp.name.clone(),
            loop_owner: t.recv.lp.owner(),
            mailbox: addr.index,
            mailbox_generation: addr.generation,
            key: (t.key.index, t.key.generation),
            slot: t.index,
            wants_meta: t.wants_meta,
            kind: WireConn::kind_code(t.kind),
            overflow,
            block_ms,
            single_shot: conn.single_shot.is_some(),
            group: group.map(str::to_string),
        })
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.shared.owner, self.shared.name)
    }
}

impl<A: SignalArgs> Clone for SignalRef<A> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            owner: self.owner.clone(),
        }
    }
}

impl<A: SignalArgs> fmt::Debug for SignalRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalRef({})", self.describe())
    }
}

/// A slot of some object, typed by its argument tuple: the other end of a
/// connection. Get one from a handle (`handle.my_slot()`) or a loop
/// ([`EventLoop::stop_slot`](crate::EventLoop::stop_slot)).
pub struct SlotRef<A: SignalArgs> {
    recv: Arc<ObjectShared>,
    name: &'static str,
    /// Position in the receiver type's slot table (for encoded delivery).
    index: u16,
    wants_meta: bool,
    call: SlotFn<A>,
}

impl<A: SignalArgs> SlotRef<A> {
    pub(crate) fn new(
        recv: Arc<ObjectShared>,
        name: &'static str,
        index: u16,
        wants_meta: bool,
        call: SlotFn<A>,
    ) -> Self {
        Self {
            recv,
            name,
            index,
            wants_meta,
            call,
        }
    }

    pub(crate) fn parts(&self) -> (&Arc<ObjectShared>, &'static str, u16, bool) {
        (&self.recv, self.name, self.index, self.wants_meta)
    }

    /// The receiving object's id.
    pub fn receiver(&self) -> &ObjectId {
        &self.recv.id
    }

    /// The slot's name (the method name).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Posts a call of this slot to its loop, as a queued connection would
    /// (without metadata). Errors when the message could not be queued.
    ///
    /// ```
    /// use signal_slot::prelude::*;
    ///
    /// let lp = EventLoop::new("invoke-doc");
    /// lp.stop_slot::<()>().invoke(()).unwrap(); // the loop will stop at once
    /// lp.exec().unwrap();
    /// ```
    pub fn invoke(&self, args: A) -> Result<(), EmitError> {
        self.invoke_with(args, crate::signal::Overflow::default())
    }

    /// [`invoke`](Self::invoke) with the given full-inbox policy.
    pub(crate) fn invoke_with(
        &self,
        args: A,
        overflow: crate::signal::Overflow,
    ) -> Result<(), EmitError> {
        let t = self.target(
            &ConnectOptions::new()
                .kind(ConnectionKind::Queued)
                .overflow(overflow),
        );
        let (meta, mut report) = (None, Vec::new());
        if let Err(reason) = crate::event_loop::deliver(&t, args, meta) {
            report.push(crate::error::Undelivered {
                receiver: self.recv.id.clone(),
                slot: self.name,
                reason,
            });
        }
        EmitError::from_report(report)
    }

    fn target(&self, opts: &ConnectOptions) -> SlotTarget<A> {
        SlotTarget {
            recv: self.recv.clone(),
            loop_id: self.recv.lp.id,
            key: self.recv.key,
            name: self.name,
            index: self.index,
            call: self.call,
            wants_meta: self.wants_meta,
            kind: opts.connection_kind(),
            overflow: opts.overflow_policy(),
            gate: None,
        }
    }
}

impl<A: SignalArgs> Clone for SlotRef<A> {
    fn clone(&self) -> Self {
        Self::new(
            self.recv.clone(),
            self.name,
            self.index,
            self.wants_meta,
            self.call,
        )
    }
}

impl<A: SignalArgs> fmt::Debug for SlotRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotRef({}::{})", self.recv.id, self.name)
    }
}

/// What a signal can connect to: a [`SlotRef`] with the same argument tuple, or
/// another [`SignalRef`] with the same argument tuple (forwarding). Sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be connected to a signal carrying `{A}`",
    label = "the slot's parameters (or the other signal's tuple) must be exactly `{A}`"
)]
pub trait ConnectTarget<A: SignalArgs>: sealed::Sealed {
    #[doc(hidden)]
    fn __target(&self, opts: &ConnectOptions) -> TargetSpec<A>;
}

/// A connection target as the runtime sees it. Opaque.
#[doc(hidden)]
pub struct TargetSpec<A>(pub(crate) Target<A>);

impl<A: SignalArgs> ConnectTarget<A> for SlotRef<A> {
    fn __target(&self, opts: &ConnectOptions) -> TargetSpec<A> {
        TargetSpec(Target::Slot(self.target(opts)))
    }
}

impl<A: SignalArgs> ConnectTarget<A> for SignalRef<A> {
    fn __target(&self, _opts: &ConnectOptions) -> TargetSpec<A> {
        TargetSpec(Target::Signal {
            shared: self.shared.clone(),
            owner: self.owner.clone(),
        })
    }
}

mod sealed {
    pub trait Sealed {}
    impl<A: super::SignalArgs> Sealed for super::SlotRef<A> {}
    impl<A: super::SignalArgs> Sealed for super::SignalRef<A> {}
}
