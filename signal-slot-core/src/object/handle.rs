use crate::error::RemoveError;
use crate::object::{EventLoopObject, ObjectId, ObjectShared};
use crate::signal::{SignalArgs, SignalRef, SlotFn, SlotRef};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A typed, cloneable reference to an object on a loop, usable from any thread.
///
/// It derefs to generated accessors: `handle.my_signal()` gives a
/// [`SignalRef`], `handle.my_slot()` a [`SlotRef`]; connecting the two checks
/// the argument types at compile time.
///
/// ```
/// use signal_slot::prelude::*;
///
/// #[derive(EventLoopObject, Default)]
/// struct Counter {
///     #[signal]
///     changed: Signal<(u32,)>,
///     value: u32,
/// }
///
/// #[slots]
/// impl Counter {
///     fn set(&mut self, v: u32) {
///         self.value = v;
///         self.changed.emit((v,));
///     }
/// }
///
/// let lp = EventLoop::new("handle-doc");
/// let a = lp.add("counter-a", Counter::default()).unwrap();
/// let b = lp.add("counter-b", Counter::default()).unwrap();
/// a.changed().connect(&b.set()).unwrap(); // a's changes set b
/// assert_eq!(a.changed().receiver_count(), 1);
/// ```
pub struct Handle<T: EventLoopObject> {
    raw: RawHandle,
    proxy: T::__Proxy,
}

impl<T: EventLoopObject> Handle<T> {
    pub(crate) fn new(shared: Arc<ObjectShared>) -> Self {
        let raw = RawHandle(shared);
        Self {
            proxy: T::__Proxy::from(raw.clone()),
            raw,
        }
    }

    /// The object's id.
    pub fn id(&self) -> &ObjectId {
        &self.raw.0.id
    }

    /// False once the object was removed or its loop finished.
    pub fn is_alive(&self) -> bool {
        self.raw.0.is_alive()
    }

    /// Removes the object from its loop: emits its `destroyed` signal, breaks every
    /// connection to and from it, drops (and counts) messages still queued for it.
    /// The value itself is dropped on its loop thread.
    pub fn remove(&self) -> Result<(), RemoveError> {
        self.raw.remove()
    }

    /// Emitted with the object's id when it is removed.
    pub fn destroyed(&self) -> SignalRef<(ObjectId,)> {
        SignalRef::with_owner(self.raw.0.destroyed.clone(), self.raw.0.clone())
    }

    /// The untyped handle.
    pub fn raw(&self) -> &RawHandle {
        &self.raw
    }
}

impl<T: EventLoopObject> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Self::new(self.raw.0.clone())
    }
}

impl<T: EventLoopObject> Deref for Handle<T> {
    type Target = T::__Proxy;
    fn deref(&self) -> &T::__Proxy {
        &self.proxy
    }
}

impl<T: EventLoopObject> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("id", self.id())
            .field("type", &std::any::type_name::<T>())
            .field("alive", &self.is_alive())
            .finish()
    }
}

/// An untyped handle: what generated accessors build [`SignalRef`]s and
/// [`SlotRef`]s from.
#[derive(Clone)]
pub struct RawHandle(pub(crate) Arc<ObjectShared>);

impl RawHandle {
    /// The object's id.
    pub fn id(&self) -> &ObjectId {
        &self.0.id
    }

    pub(crate) fn remove(&self) -> Result<(), RemoveError> {
        let o = &self.0;
        if o.lp.is_remote() {
            // Its own process removes it (and notifies); here, the replica goes.
            if !o.retire_quietly() {
                return Err(RemoveError::AlreadyRemoved(o.id.clone()));
            }
        } else {
            if !o.retire() {
                return Err(RemoveError::AlreadyRemoved(o.id.clone()));
            }
            o.lp.remove_object(o.key);
        }
        if let Err(missing) = crate::process::control::replicate_removal(o) {
            log::warn!(
                "removal of {}: not confirmed by processes {missing:?}",
                o.id
            );
        }
        Ok(())
    }

    /// The `index`-th `#[signal]` field. Generated code only.
    #[doc(hidden)]
    pub fn __signal<A: SignalArgs>(&self, index: usize) -> SignalRef<A> {
        let typed = self
            .0
            .signals
            .get(index)
            .and_then(|s| s.clone().into_any().downcast().ok());
        match typed {
            Some(shared) => SignalRef::with_owner(shared, self.0.clone()),
            None => {
                // Only a mismatch between generated code and this crate gets here.
                log::error!(
                    "object {}: no signal #{index} of type {}; returning a detached signal",
                    self.0.id,
                    std::any::type_name::<A>()
                );
                SignalRef::detached(self.0.id.clone(), self.0.lp.id)
            }
        }
    }

    /// A slot of this object. Generated code only.
    #[doc(hidden)]
    pub fn __slot<A: SignalArgs>(
        &self,
        name: &'static str,
        index: u16,
        wants_meta: bool,
        call: SlotFn<A>,
    ) -> SlotRef<A> {
        SlotRef::new(self.0.clone(), name, index, wants_meta, call)
    }
}

impl fmt::Debug for RawHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawHandle").field(&self.0.id).finish()
    }
}
