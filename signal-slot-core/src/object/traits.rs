use crate::object::{ObjectId, RawHandle};
use crate::signal::SignalBinder;
use std::any::Any;

/// A type whose values live on an event loop. Implement it with
/// `#[derive(EventLoopObject)]`, never by hand: the derive binds the `#[signal]`
/// fields and generates the typed accessors that [`Handle`](crate::Handle) derefs to.
///
/// # Lifecycle
///
/// *added* ([`EventLoop::add`](crate::EventLoop::add)) → *running* (its slots are
/// called on its loop thread, one message at a time) → *removed*
/// ([`Handle::remove`](crate::Handle::remove) or the loop finishing: its
/// `destroyed` signal is emitted, all its connections are broken, messages still
/// queued for it are dropped and counted, and the value is dropped on the loop
/// thread).
///
/// ```
/// use signal_slot::prelude::*;
///
/// #[derive(EventLoopObject, Default)]
/// struct Sensor {
///     #[signal]
///     reading: Signal<(f64,)>,
/// }
///
/// let lp = EventLoop::new("lifecycle-doc");
/// let sensor = lp.add("sensor-doc", Sensor::default()).unwrap();
/// assert_eq!(sensor.id(), "sensor-doc");
/// sensor.remove().unwrap();
/// assert!(!sensor.is_alive());
/// ```
pub trait EventLoopObject: Any + Send + Sized {
    /// The generated type [`Handle<Self>`](crate::Handle) derefs to: one method per
    /// signal and per slot.
    #[doc(hidden)]
    type __Proxy: From<RawHandle>;

    /// The type's slots (empty without a `#[slots]` impl).
    #[doc(hidden)]
    fn __slot_table() -> &'static [crate::signal::SlotEntry];

    /// Binds every `#[signal]` field, in declaration order.
    #[doc(hidden)]
    fn __bind_signals(&mut self, binder: &mut SignalBinder);

    /// The id this object was added under. For an object with no signal the id is
    /// known only while one of its slots runs; elsewhere it reads `"<unbound>"`.
    fn object_id(&self) -> ObjectId;
}
