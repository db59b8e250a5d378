use crate::error::EmitError;
use crate::event_loop::LoopId;
use crate::object::ObjectId;
use crate::signal::fast::Fast;
use crate::signal::retained::Retained;
use crate::signal::shared::Emission;
use crate::signal::{Conn, Headers, SignalArgs, SignalControl, SignalRef, SignalShared};
use crate::topic::TopicError;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

/// A signal declared as a `#[signal]` field of an object. Emit it from the
/// object's own slots; from elsewhere use the handle's accessor
/// (`handle.my_signal()`), which returns a [`SignalRef`] to the same signal.
///
/// Until the object is added to a loop the signal is unbound and `emit` does
/// nothing.
///
/// ```
/// use signal_slot::prelude::*;
///
/// #[derive(EventLoopObject, Default)]
/// struct Thermometer {
///     #[signal]
///     temperature: Signal<(f64,)>,
/// }
///
/// #[slots]
/// impl Thermometer {
///     fn sample(&mut self) {
///         self.temperature.emit((21.5,));
///     }
/// }
/// ```
pub struct Signal<A: SignalArgs> {
    bound: Option<Bound<A>>,
}

struct Bound<A> {
    shared: Arc<SignalShared<A>>,
    /// The connection list as of a version of the signal; refreshed when the
    /// version moves, so an emit takes no lock.
    cache: RefCell<Cached<A>>,
    /// The signal retains its value (a copy here: read on every emit).
    retained: bool,
}

/// A field's copy of its signal's connection list.
struct Cached<A> {
    version: u64,
    list: Arc<[Conn<A>]>,
    /// How a plain emit delivers to `list`.
    fast: Fast<A>,
}

impl<A: SignalArgs> Cached<A> {
    fn of(shared: &Arc<SignalShared<A>>) -> Self {
        let (version, list) = shared.snapshot();
        let fast = Fast::of(&list, shared);
        Self {
            // No version a signal reaches: the next emit decides again.
            version: if fast.settled() { version } else { u64::MAX },
            list,
            fast,
        }
    }
}

impl<A: SignalArgs> Signal<A> {
    /// An unbound signal; the derive binds it when the object is added.
    pub fn new() -> Self {
        Self { bound: None }
    }

    /// Delivers `args` to every connected slot (fire-and-forget: failures are
    /// counted in the receivers' [`LoopStats`](crate::LoopStats) and logged).
    #[inline]
    pub fn emit(&self, args: A) {
        if let Some(b) = &self.bound {
            b.emit_plain(args);
        }
    }

    /// Like [`emit`](Self::emit), with headers that receivers read from
    /// [`Meta::headers`](crate::Meta::headers) or
    /// [`Message::headers`](crate::Message::headers).
    pub fn emit_with_headers(&self, args: A, headers: Headers) {
        if let Some(b) = &self.bound {
            b.emit_general(args, Some(Arc::new(headers)), None);
        }
    }

    /// Like [`emit`](Self::emit), but reports the receivers that did not get the
    /// message (inbox full under [`Overflow::Block`](crate::Overflow) or
    /// [`Overflow::Fail`](crate::Overflow), receiver loop finished).
    pub fn try_emit(&self, args: A) -> Result<(), EmitError> {
        match &self.bound {
            Some(b) => {
                let mut report = Vec::new();
                b.emit_general(args, None, Some(&mut report));
                EmitError::from_report(report)
            }
            None => Err(EmitError::Unbound),
        }
    }

    /// Asks the connected slots and gathers their answers, blocking: see
    /// [`SignalRef::request`]. From a slot, a receiver on the slot's own loop
    /// is refused ([`RequestError::OwnLoop`](crate::RequestError::OwnLoop));
    /// receivers on other loops are asked, and this loop waits meanwhile.
    /// An unbound signal (the object is not on a loop yet) has no responders.
    ///
    /// ```
    /// use signal_slot::prelude::*;
    /// use std::time::Duration;
    ///
    /// #[derive(EventLoopObject, Default)]
    /// struct Asker {
    ///     #[signal]
    ///     question: Signal<()>,
    /// }
    ///
    /// let a = Asker::default();
    /// assert!(a.question.request::<u64>((), Duration::from_millis(10)).is_err());
    /// ```
    pub fn request<R: SignalArgs>(
        &self,
        args: A,
        timeout: std::time::Duration,
    ) -> Result<crate::signal::Responses<R>, crate::signal::RequestError> {
        match &self.bound {
            Some(b) => crate::signal::request::request(&b.shared, args, timeout),
            None => Err(crate::signal::RequestError::NoResponders {
                signal: "(unbound signal)".to_string(),
            }),
        }
    }

    /// Like [`request`](Self::request), delivering the answers to `slot`
    /// later: see [`SignalRef::request_to`]. Receivers on the slot's own loop
    /// are allowed.
    ///
    /// ```
    /// use signal_slot::prelude::*;
    /// use signal_slot::Responses;
    /// use std::time::Duration;
    ///
    /// #[derive(EventLoopObject, Default)]
    /// struct Asker {
    ///     #[signal]
    ///     question: Signal<()>,
    /// }
    ///
    /// #[slots]
    /// impl Asker {
    ///     fn answers(&mut self, r: Responses<u64>) {
    ///         println!("{} answers", r.answers().len());
    ///     }
    /// }
    ///
    /// let lp = EventLoop::new("signal-request-to-doc");
    /// let a = lp.add("asker-request-to-doc", Asker::default()).unwrap();
    /// let unbound = Asker::default();
    /// let t = Duration::from_millis(10);
    /// assert!(unbound.question.request_to::<u64>((), t, &a.answers()).is_err());
    /// ```
    pub fn request_to<R: SignalArgs>(
        &self,
        args: A,
        timeout: std::time::Duration,
        slot: &crate::SlotRef<(crate::signal::Responses<R>,)>,
    ) -> Result<(), crate::signal::RequestError> {
        match &self.bound {
            Some(b) => crate::signal::request::request_to(&b.shared, args, timeout, slot),
            None => Err(crate::signal::RequestError::NoResponders {
                signal: "(unbound signal)".to_string(),
            }),
        }
    }

    /// A [`SignalRef`] to this signal, once bound.
    pub fn signal_ref(&self) -> Option<SignalRef<A>> {
        self.bound
            .as_ref()
            .map(|b| SignalRef::from_shared(b.shared.clone()))
    }

    /// True once the object was added to a loop.
    pub fn is_bound(&self) -> bool {
        self.bound.is_some()
    }

    /// The id of the owning object, once bound.
    pub fn owner(&self) -> Option<&ObjectId> {
        self.bound.as_ref().map(|b| &b.shared.owner)
    }
}

impl<A: SignalArgs> Bound<A> {
    /// A plain emit to a list the fast path serves is one call here; the rest
    /// (retained values, a moved list, several connections, a receiver
    /// busy) is [`emit_general`](Self::emit_general).
    #[inline]
    fn emit_plain(&self, args: A) {
        if self.retained {
            return self.emit_general(args, None, None);
        }
        // A shared borrow: a slot that emits this signal again takes the fast
        // path too.
        let args = match self.cache.try_borrow() {
            Ok(c) if c.version == self.shared.version() => match c.fast.deliver(args) {
                Ok(()) => return,
                Err(args) => args,
            },
            _ => args,
        };
        // The borrow has ended: the general path may refresh the cache.
        self.emit_general(args, None, None)
    }

    /// Every emit that carries headers or wants a report, and the plain ones
    /// the fast path did not serve.
    #[inline(never)]
    fn emit_general(
        &self,
        args: A,
        headers: Option<Arc<Headers>>,
        report: Option<&mut crate::signal::shared::Report>,
    ) {
        if self.retained || headers.is_some() {
            return self
                .shared
                .emit_shared(args, Emission::new(headers), report);
        }
        let version = self.shared.version();
        match self.cache.try_borrow_mut() {
            Ok(mut cache) => {
                if cache.version != version {
                    *cache = Cached::of(&self.shared);
                }
                self.shared
                    .deliver(&cache.list, args, &Emission::PLAIN, report);
            }
            // Only re-entrant use of the same field gets here; take the shared path.
            Err(_) => self.shared.emit_shared(args, Emission::PLAIN, report),
        }
    }
}

impl<A: SignalArgs> Default for Signal<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: SignalArgs> fmt::Debug for Signal<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.bound {
            Some(b) => write!(f, "Signal({}/{})", b.shared.owner, b.shared.name),
            None => f.write_str("Signal(unbound)"),
        }
    }
}

/// Binds the signal fields of an object being added. Generated code only.
#[doc(hidden)]
pub struct SignalBinder {
    owner: ObjectId,
    loop_id: LoopId,
    signals: Vec<Arc<dyn SignalControl>>,
    /// The first bad `#[signal(topic = ...)]`, reported by `add`.
    bad_topic: Option<TopicError>,
}

/// What `#[signal(...)]` says about one field. Generated code only.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SignalOptions {
    /// A topic of its own; `{id}` stands for the object's id.
    pub topic: Option<&'static str>,
    /// Keep the last value for late subscribers.
    pub retain: bool,
    /// Do not deliver an emission equal to the retained value.
    pub skip_no_change: bool,
}

impl SignalBinder {
    pub(crate) fn new(owner: ObjectId, loop_id: LoopId) -> Self {
        Self {
            owner,
            loop_id,
            signals: Vec::new(),
            bad_topic: None,
        }
    }

    /// Binds one field; fields are bound in declaration order.
    pub fn bind<A: SignalArgs>(&mut self, signal: &mut Signal<A>, name: &'static str) {
        self.bind_with(signal, name, SignalOptions::default());
    }

    /// Binds one field with the options of its `#[signal(...)]`.
    pub fn bind_with<A: SignalArgs>(
        &mut self,
        signal: &mut Signal<A>,
        name: &'static str,
        opts: SignalOptions,
    ) {
        let index = u16::try_from(self.signals.len()).unwrap_or(crate::signal::shared::LOCAL_INDEX);
        let topic: Option<Arc<str>> = opts.topic.map(|t| {
            let t = t.replace("{id}", self.owner.as_str());
            if let Err(e) = crate::topic::validate_topic(&t) {
                self.bad_topic.get_or_insert(e);
            }
            Arc::from(t)
        });
        let retained =
            (opts.retain || opts.skip_no_change).then(|| Retained::new(opts.skip_no_change));
        let shared = Arc::new(SignalShared::with_options(
            self.owner.clone(),
            name,
            self.loop_id,
            index,
            topic,
            retained,
        ));
        self.signals.push(shared.clone());
        let cache = RefCell::new(Cached::of(&shared));
        let retained = shared.is_retained();
        signal.bound = Some(Bound {
            shared,
            cache,
            retained,
        });
    }

    pub(crate) fn finish(self) -> Result<Box<[Arc<dyn SignalControl>]>, TopicError> {
        match self.bad_topic {
            Some(e) => Err(e),
            None => Ok(self.signals.into_boxed_slice()),
        }
    }
}
