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
//! what is not newer than what it already saw ([`GateCall`]).

use crate::signal::{Headers, Meta, SignalArgs, SlotFn};
use crate::sync::lock;
use std::any::Any;
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

/// A gated call: travels in the metadata of each message of a gated
/// connection, since a slot function is a plain `fn` and carries no state.
///
/// It holds the newest sequence number its connection delivered (a
/// subscription connects to a signal once): that lives as long as something
/// can still be checked against it (the connection, its messages in flight)
/// and goes with them when the publisher is removed. A map per subscription
/// kept an entry for every publisher it ever saw.
pub(crate) struct GateCall<A> {
    last: Mutex<Option<u64>>,
    inner: SlotFn<A>,
    inner_wants_meta: bool,
}

impl<A> GateCall<A> {
    pub(crate) fn new(inner: SlotFn<A>, inner_wants_meta: bool) -> Self {
        #[cfg(test)]
        LIVE_GATE_STATES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            last: Mutex::new(None),
            inner,
            inner_wants_meta,
        }
    }

    /// True if `sequence` is newer than anything this connection delivered.
    fn admit(&self, sequence: u64) -> bool {
        let mut last = lock(&self.last);
        if last.is_some_and(|seen| seen >= sequence) {
            return false;
        }
        *last = Some(sequence);
        true
    }
}

/// Gate states alive in this process (tests check that they do not pile up).
#[cfg(test)]
static LIVE_GATE_STATES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cfg(test)]
fn live_gate_states() -> usize {
    LIVE_GATE_STATES.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
impl<A> Drop for GateCall<A> {
    fn drop(&mut self) {
        LIVE_GATE_STATES.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
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
/// message is newer than what this connection delivered.
pub(crate) fn gated<A: SignalArgs>(obj: &mut dyn Any, args: A, meta: Option<&Meta>) {
    let Some(meta) = meta else { return };
    let Some(call) = meta.gate().and_then(|g| g.0.downcast_ref::<GateCall<A>>()) else {
        return;
    };
    if call.admit(meta.sequence()) {
        (call.inner)(obj, args, call.inner_wants_meta.then_some(meta));
    }
}

#[cfg(test)]
mod tests {
    use super::live_gate_states;
    use crate::__private::{
        current_object_id, decode_call, decode_reply, ReplyValue, SignalBinder, SignalOptions,
        SlotEntry,
    };
    use crate::{EventLoopObject, EventLoopThread, Meta, ObjectId, RawHandle, Signal};
    use crate::{SlotRef, SubscribeOptions};
    use crossbeam_channel::{Receiver, Sender};
    use std::any::Any;
    use std::time::Duration;

    // Written out as the derive macros would: their `::signal_slot` is, in
    // these tests, a second copy of this crate, whose gates this one cannot
    // count. The count is process-wide: no other test here makes gates.

    /// A publisher with one retained signal.
    #[derive(Default)]
    struct Publisher {
        value: Signal<(u64,)>,
    }

    impl EventLoopObject for Publisher {
        type __Proxy = RawHandle;
        fn __slot_table() -> &'static [SlotEntry] {
            &[]
        }
        fn __bind_signals(&mut self, binder: &mut SignalBinder) {
            let opts = SignalOptions {
                topic: Some("gate-churn/{id}/value"),
                retain: true,
                skip_no_change: false,
            };
            binder.bind_with(&mut self.value, "value", opts);
        }
        fn object_id(&self) -> ObjectId {
            current_object_id()
        }
    }

    /// Sends what its one slot receives: (value, replay?).
    struct Recorder(Sender<(u64, bool)>);

    fn on_value(obj: &mut dyn Any, (v,): (u64,), meta: Option<&Meta>) {
        if let Some(r) = obj.downcast_mut::<Recorder>() {
            let _ = r.0.send((v, meta.is_some_and(Meta::is_replay)));
        }
    }

    fn on_value_reply(obj: &mut dyn Any, args: (u64,), meta: Option<&Meta>) -> Option<ReplyValue> {
        on_value(obj, args, meta);
        None
    }

    const ON_VALUE: crate::__private::SlotFn<(u64,)> = on_value;
    const ON_VALUE_REPLY: crate::__private::ReplyFn<(u64,)> = on_value_reply;

    impl EventLoopObject for Recorder {
        type __Proxy = RawHandle;
        fn __slot_table() -> &'static [SlotEntry] {
            const TABLE: &[SlotEntry] = &[SlotEntry {
                name: "on_value",
                typed: &ON_VALUE,
                reply_type: "()",
                typed_reply: &ON_VALUE_REPLY,
                decode_reply: |o, b, m| decode_reply::<(u64,)>(o, b, m, on_value_reply),
                decode_call: |o, b, m| decode_call::<(u64,)>(o, b, m, on_value),
            }];
            TABLE
        }
        fn __bind_signals(&mut self, _: &mut SignalBinder) {}
        fn object_id(&self) -> ObjectId {
            current_object_id()
        }
    }

    fn next(rx: &Receiver<(u64, bool)>) -> (u64, bool) {
        rx.recv_timeout(Duration::from_secs(20)).expect("a value")
    }

    #[test]
    fn removed_publishers_leave_no_gate_state_behind() {
        let lp = EventLoopThread::new("gate-churn");
        let (tx, rx) = crossbeam_channel::unbounded();
        let rec = lp.event_loop().add("gate-churn-rec", Recorder(tx)).unwrap();
        let slot: SlotRef<(u64,)> = rec.raw().__slot("on_value", 0, true, on_value);
        let opts = SubscribeOptions::new().initialize();
        let sub = slot.subscribe_with("gate-churn/+/value", opts).unwrap();
        lp.start().unwrap();
        // One publisher stays: its state must stay too.
        let live = lp
            .event_loop()
            .add("gate-churn-live", Publisher::default())
            .unwrap();
        live.raw().__signal::<(u64,)>(0).emit((0,));
        assert_eq!(next(&rx), (0, false));
        for i in 1..=300 {
            let p = lp
                .event_loop()
                .add(format!("gate-churn-{i}"), Publisher::default())
                .unwrap();
            p.raw().__signal::<(u64,)>(0).emit((i,));
            assert_eq!(next(&rx), (i, false));
            p.remove().unwrap();
        }
        // The live publisher's, plus a few still being dropped.
        let states = live_gate_states();
        assert!(states <= 8, "{states} gate states for 1 live publisher");
        live.raw().__signal::<(u64,)>(0).emit((1000,));
        assert_eq!(next(&rx), (1000, false));
        sub.unsubscribe();
        lp.stop().unwrap();
        lp.join().unwrap();
    }
}
