//! The part of an object that other threads see: id, where it lives, whether it
//! is alive, its signals, and the connections that end at it.

use crate::event_loop::LoopShared;
use crate::object::ObjectId;
use crate::signal::request::ReceiverNames;
use crate::signal::{SignalControl, SignalShared, SlotEntry};
use crate::sync::{lock, AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Where an object sits in its loop's table; the generation tells a reused slot
/// from the object that had it before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ObjectKey {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// A connection whose receiver is this object, kept so removing the object can
/// remove the connection from the emitting signal.
struct Incoming {
    signal: Weak<dyn SignalControl>,
    connection: u64,
}

pub(crate) struct ObjectShared {
    pub(crate) id: ObjectId,
    pub(crate) key: ObjectKey,
    pub(crate) lp: Arc<LoopShared>,
    pub(crate) signals: Box<[Arc<dyn SignalControl>]>,
    pub(crate) destroyed: Arc<SignalShared<(ObjectId,)>>,
    /// How to call this object's slots from encoded arguments.
    #[allow(dead_code)] // read by the process layer
    pub(crate) slots: &'static [SlotEntry],
    alive: AtomicBool,
    /// False for framework objects (loop controls, timers), which are not in the registry.
    registered: bool,
    incoming: Mutex<Vec<Incoming>>,
    /// Its names as an answer to a request names it, made on the first request.
    names: OnceLock<Arc<ReceiverNames>>,
}

impl ObjectShared {
    pub(crate) fn new(
        id: ObjectId,
        key: ObjectKey,
        lp: Arc<LoopShared>,
        signals: Box<[Arc<dyn SignalControl>]>,
        registered: bool,
        slots: &'static [SlotEntry],
    ) -> Self {
        let destroyed = Arc::new(SignalShared::with_index(
            id.clone(),
            "destroyed",
            lp.id,
            crate::signal::shared::DESTROYED_INDEX,
        ));
        Self {
            id,
            key,
            lp,
            signals,
            destroyed,
            slots,
            alive: AtomicBool::new(true),
            registered,
            incoming: Mutex::new(Vec::new()),
            names: OnceLock::new(),
        }
    }

    /// Its id and loop name, as a request's [`Responder`](crate::Responder)
    /// holds them: made once, shared by every request to it.
    pub(crate) fn responder_names(&self) -> &Arc<ReceiverNames> {
        self.names
            .get_or_init(|| Arc::new(ReceiverNames::new(self.id.clone(), self.lp.label.clone())))
    }

    #[inline]
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Records an incoming connection, unless the object is already removed.
    /// `add` runs under the same lock, so a removal cannot miss the connection.
    pub(crate) fn add_incoming(
        &self,
        signal: Weak<dyn SignalControl>,
        add: impl FnOnce() -> Option<u64>,
    ) -> bool {
        let mut incoming = lock(&self.incoming);
        if !self.is_alive() {
            return false;
        }
        match add() {
            Some(connection) => {
                incoming.push(Incoming { signal, connection });
                true
            }
            None => false,
        }
    }

    pub(crate) fn forget_incoming(&self, connection: u64) {
        lock(&self.incoming).retain(|i| i.connection != connection);
    }

    /// Marks the object removed: `destroyed` is emitted, then every connection to
    /// and from it is removed. Returns false if it was removed already.
    pub(crate) fn retire(&self) -> bool {
        self.retire_with(true)
    }

    /// Like [`retire`](Self::retire) without emitting `destroyed`: for a replica
    /// of an object whose own process reports its removal.
    pub(crate) fn retire_quietly(&self) -> bool {
        self.retire_with(false)
    }

    /// The signal `index` names (as other processes address it).
    pub(crate) fn signal_at(&self, index: u16) -> Option<Arc<dyn SignalControl>> {
        if index == crate::signal::shared::DESTROYED_INDEX {
            return Some(self.destroyed.clone());
        }
        self.signals.get(usize::from(index)).cloned()
    }

    fn retire_with(&self, notify: bool) -> bool {
        if !self.alive.swap(false, Ordering::AcqRel) {
            return false;
        }
        if self.registered {
            crate::object::registry::unregister(&self.id, self);
            crate::signal::directory::object_removed(self);
        }
        if notify {
            self.destroyed.emit_shared(
                (self.id.clone(),),
                crate::signal::shared::Emission::new(None),
                None,
            );
        }
        let incoming = std::mem::take(&mut *lock(&self.incoming));
        for i in incoming {
            if let Some(signal) = i.signal.upgrade() {
                signal.remove_connection(i.connection);
            }
        }
        for s in self.signals.iter() {
            s.close();
        }
        self.destroyed.close();
        true
    }
}
