//! Retained values (the last value of a signal, for subscribers that join late)
//! and the gate that keeps a replayed value from overtaking a newer live one.
//!
//! Ordering contract: a subscriber that asks to be initialized sees, per
//! publishing signal, a sequence of values whose sequence numbers only grow:
//! the replay (if any) first, then live emissions newer than it. Across
//! processes this holds because the replay and the live emissions leave the
//! publisher's process through the same FIFO ring, the replay written under the
//! lock that orders emissions. Inside a process a live emission may take a
//! shorter path (an inline call) than the replay, so the receiving side drops
//! what is not newer than what it already saw ([`Gate`]).

use crate::signal::{Headers, Meta, SignalArgs, SlotFn};
use crate::sync::lock;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What a retained signal keeps.
pub(crate) struct Retained {
    pub(crate) skip_no_change: bool,
    pub(crate) value: Mutex<Option<Value>>,
}

/// The last value of a retained signal.
pub(crate) struct Value {
    pub(crate) sequence: u64,
    /// The encoded argument tuple (also what `skip_no_change` compares).
    pub(crate) bytes: Arc<[u8]>,
    pub(crate) timestamp: SystemTime,
    pub(crate) headers: Option<Arc<Headers>>,
}

impl Retained {
    pub(crate) fn new(skip_no_change: bool) -> Self {
        Self {
            skip_no_change,
            value: Mutex::new(None),
        }
    }

    /// Forgets the value (its publisher was removed).
    pub(crate) fn clear(&self) {
        *lock(&self.value) = None;
    }
}

/// The newest sequence number seen per publishing signal, for one subscription
/// in one process.
#[derive(Default)]
pub(crate) struct Gate {
    last: Mutex<HashMap<u64, u64>>,
}

impl Gate {
    /// True if `sequence` is newer than anything seen from `signal`.
    fn admit(&self, signal: u64, sequence: u64) -> bool {
        let mut last = lock(&self.last);
        match last.get(&signal) {
            Some(&seen) if seen >= sequence => false,
            _ => {
                last.insert(signal, sequence);
                true
            }
        }
    }
}

/// A gated call: travels in the metadata of each message of a gated
/// connection, since a slot function is a plain `fn` and carries no state.
pub(crate) struct GateCall<A> {
    pub(crate) gate: Arc<Gate>,
    pub(crate) signal: u64,
    pub(crate) inner: SlotFn<A>,
    pub(crate) inner_wants_meta: bool,
}

/// Type-erased [`GateCall`], as [`Meta`] holds it.
#[derive(Clone)]
pub(crate) struct GateRef(pub(crate) Arc<dyn Any + Send + Sync>);

impl std::fmt::Debug for GateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GateRef")
    }
}

/// The slot function of a gated connection: calls the real slot only when the
/// message is newer than what this subscription saw from that signal.
pub(crate) fn gated<A: SignalArgs>(obj: &mut dyn Any, args: A, meta: Option<&Meta>) {
    let Some(meta) = meta else { return };
    let Some(call) = meta.gate().and_then(|g| g.0.downcast_ref::<GateCall<A>>()) else {
        return;
    };
    if call.gate.admit(call.signal, meta.sequence()) {
        (call.inner)(obj, args, call.inner_wants_meta.then_some(meta));
    }
}
