//! The part of a signal every thread shares: its connection list and the
//! emission algorithm.

use crate::error::{DropReason, Undelivered};
use crate::event_loop::{self, LoopId};
use crate::object::ObjectId;
use crate::signal::{Conn, Meta, SignalArgs, Target};
use crate::sync::{lock, AtomicU64, Ordering};
use std::any::Any;
use std::sync::{Arc, Mutex};

/// Forwarding chains longer than this are cut (connect refuses cycles, so only a
/// very deep chain gets here).
const MAX_FORWARD_DEPTH: u8 = 32;

/// The index `destroyed` has in signal addresses.
pub(crate) const DESTROYED_INDEX: u16 = u16::MAX;
/// The index of signals no other process can address (timers, process exits).
pub(crate) const LOCAL_INDEX: u16 = u16::MAX - 1;

pub(crate) struct SignalShared<A> {
    pub(crate) owner: ObjectId,
    pub(crate) name: &'static str,
    /// Position among the owner's signals, so other processes can name it.
    pub(crate) index: u16,
    pub(crate) loop_id: LoopId,
    topic: Arc<str>,
    /// Bumped on every change of `state.list`, under the lock; signal fields
    /// compare it to their cached copy (one atomic load per emit).
    version: AtomicU64,
    sequence: AtomicU64,
    state: Mutex<State<A>>,
}

struct State<A> {
    open: bool,
    list: Arc<[Conn<A>]>,
}

/// The type-independent face of a signal, for removal and `Connection`.
pub(crate) trait SignalControl: Send + Sync {
    fn remove_connection(&self, id: u64) -> bool;
    fn has_connection(&self, id: u64) -> bool;
    /// Removes every connection; the signal emits nothing from then on.
    fn close(&self);
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// How other processes name this signal: owner id and index.
    fn addr(&self) -> (ObjectId, u16);
    /// Adds a connection another process made (idempotent by id).
    fn apply_remote(
        self: Arc<Self>,
        spec: &RemoteSlot,
        recv: Arc<crate::object::ObjectShared>,
    ) -> bool;
}

/// A slot connection as another process describes it.
#[derive(Debug, Clone)]
pub(crate) struct RemoteSlot {
    pub(crate) id: u64,
    pub(crate) slot: u16,
    pub(crate) wants_meta: bool,
    pub(crate) kind: crate::signal::ConnectionKind,
    pub(crate) overflow: crate::signal::Overflow,
    pub(crate) single_shot: bool,
}

/// The call function of a connection whose receiver lives in another process:
/// never called (delivery encodes instead).
fn remote_only<A>(_: &mut dyn Any, _: A, _: Option<&Meta>) {}

/// Failures of one emission that the caller wants to hear about.
pub(crate) type Report = Vec<Undelivered>;

impl<A: SignalArgs> SignalShared<A> {
    pub(crate) fn new(owner: ObjectId, name: &'static str, loop_id: LoopId) -> Self {
        Self::with_index(owner, name, loop_id, LOCAL_INDEX)
    }

    pub(crate) fn with_index(
        owner: ObjectId,
        name: &'static str,
        loop_id: LoopId,
        index: u16,
    ) -> Self {
        let topic = Arc::from(format!("{owner}/{name}"));
        Self {
            owner,
            name,
            index,
            loop_id,
            topic,
            version: AtomicU64::new(0),
            sequence: AtomicU64::new(0),
            state: Mutex::new(State {
                open: true,
                list: Arc::from(Vec::new()),
            }),
        }
    }

    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub(crate) fn snapshot(&self) -> (u64, Arc<[Conn<A>]>) {
        let s = lock(&self.state);
        (self.version.load(Ordering::Relaxed), s.list.clone())
    }

    pub(crate) fn is_open(&self) -> bool {
        lock(&self.state).open
    }

    pub(crate) fn connection_count(&self) -> usize {
        lock(&self.state).list.len()
    }

    /// Rebuilds the list with `f` applied; returns what `f` returned.
    fn edit<R>(&self, f: impl FnOnce(&mut Vec<Conn<A>>, bool) -> R) -> R
    where
        A: SignalArgs,
    {
        let mut s = lock(&self.state);
        let mut v: Vec<Conn<A>> = s.list.iter().map(Conn::clone).collect();
        let r = f(&mut v, s.open);
        s.list = Arc::from(v);
        self.version.fetch_add(1, Ordering::Release);
        r
    }

    /// Appends a connection unless the signal is closed or already reaches the
    /// same target.
    pub(crate) fn insert(&self, conn: Conn<A>) -> Result<(), InsertError> {
        let mut s = lock(&self.state);
        if !s.open {
            return Err(InsertError::Closed);
        }
        if s.list.iter().any(|c| c.target.same_as(&conn.target)) {
            return Err(InsertError::Duplicate);
        }
        let mut v: Vec<Conn<A>> = s.list.iter().map(Conn::clone).collect();
        v.push(conn);
        s.list = Arc::from(v);
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Removes the connections `pred` selects and tells the other processes;
    /// returns how many.
    pub(crate) fn disconnect_where(&self, pred: impl Fn(&Conn<A>) -> bool) -> usize {
        let ids: Vec<u64> = lock(&self.state)
            .list
            .iter()
            .filter(|c| pred(c))
            .map(|c| c.id)
            .collect();
        let n = self.remove_where(|c| ids.contains(&c.id));
        if self.index != LOCAL_INDEX {
            for id in ids {
                if let Err(missing) =
                    crate::process::control::replicate_disconnect(&self.owner, self.index, id)
                {
                    log::warn!(
                        "disconnect of {}: not confirmed by processes {missing:?}",
                        self.topic
                    );
                }
            }
        }
        n
    }

    /// Removes the connections `pred` selects; returns how many.
    pub(crate) fn remove_where(&self, pred: impl Fn(&Conn<A>) -> bool) -> usize {
        let removed: Vec<Conn<A>> = self.edit(|v, _| {
            let (gone, kept): (Vec<_>, Vec<_>) = v.drain(..).partition(|c| pred(c));
            *v = kept;
            gone
        });
        for c in &removed {
            if let Some(r) = c.target.receiver() {
                r.forget_incoming(c.id);
            }
        }
        removed.len()
    }

    /// Does a forwarding chain from this signal reach `target`?
    pub(crate) fn forwards_to(&self, target: &Arc<SignalShared<A>>, depth: u8) -> bool {
        if depth > MAX_FORWARD_DEPTH {
            return true;
        }
        let (_, list) = self.snapshot();
        list.iter().any(|c| match &c.target {
            Target::Signal { shared, .. } => {
                Arc::ptr_eq(shared, target) || shared.forwards_to(target, depth + 1)
            }
            Target::Slot(_) => false,
        })
    }

    /// Emits through the shared list (handles, forwarding, timers).
    pub(crate) fn emit_shared(&self, args: A, depth: u8, report: Option<&mut Report>) {
        let (_, list) = self.snapshot();
        self.deliver(&list, args, depth, report);
    }

    /// Delivers one emission to every connection of `list`, cloning the arguments
    /// for all but the last.
    #[inline]
    pub(crate) fn deliver(
        &self,
        list: &[Conn<A>],
        args: A,
        depth: u8,
        mut report: Option<&mut Report>,
    ) {
        let Some((last, rest)) = list.split_last() else {
            return;
        };
        let mut meta = None;
        for c in rest {
            self.deliver_one(c, args.clone(), &mut meta, depth, report.as_deref_mut());
        }
        self.deliver_one(last, args, &mut meta, depth, report);
    }

    #[inline]
    fn deliver_one(
        &self,
        c: &Conn<A>,
        args: A,
        meta: &mut Option<Arc<Meta>>,
        depth: u8,
        report: Option<&mut Report>,
    ) {
        if let Some(fired) = &c.single_shot {
            if fired.swap(true, Ordering::AcqRel) {
                return;
            }
            let id = c.id;
            self.remove_where(|x| x.id == id);
        }
        match &c.target {
            Target::Slot(t) => {
                let m = if t.wants_meta {
                    Some(
                        meta.get_or_insert_with(|| {
                            let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
                            Arc::new(Meta::new(self.owner.clone(), self.topic.clone(), seq))
                        })
                        .clone(),
                    )
                } else {
                    None
                };
                if let Err(reason) = event_loop::deliver(t, args, m) {
                    if let Some(r) = report {
                        // DropNewest asked for silent drops; the counters still see them.
                        let quiet = reason == DropReason::QueueFull
                            && t.overflow == crate::signal::Overflow::DropNewest;
                        if !quiet {
                            r.push(Undelivered {
                                receiver: t.recv.id.clone(),
                                slot: t.name,
                                reason,
                            });
                        }
                    }
                }
            }
            Target::Signal { shared, .. } => {
                if depth >= MAX_FORWARD_DEPTH {
                    log::error!(
                        "signal {}: forwarding chain deeper than {MAX_FORWARD_DEPTH}, emission cut",
                        self.topic
                    );
                    if let Some(r) = report {
                        r.push(Undelivered {
                            receiver: shared.owner.clone(),
                            slot: shared.name,
                            reason: DropReason::ForwardDepth,
                        });
                    }
                    return;
                }
                shared.emit_shared(args, depth + 1, report);
            }
        }
    }
}

pub(crate) enum InsertError {
    Closed,
    Duplicate,
}

impl<A: SignalArgs> SignalControl for SignalShared<A> {
    fn remove_connection(&self, id: u64) -> bool {
        self.remove_where(|c| c.id == id) > 0
    }

    fn has_connection(&self, id: u64) -> bool {
        lock(&self.state).list.iter().any(|c| c.id == id)
    }

    fn close(&self) {
        let removed: Vec<Conn<A>> = {
            let mut s = lock(&self.state);
            s.open = false;
            let old = std::mem::replace(&mut s.list, Arc::from(Vec::new()));
            self.version.fetch_add(1, Ordering::Release);
            old.iter().map(Conn::clone).collect()
        };
        for c in &removed {
            if let Some(r) = c.target.receiver() {
                r.forget_incoming(c.id);
            }
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn addr(&self) -> (ObjectId, u16) {
        (self.owner.clone(), self.index)
    }

    fn apply_remote(
        self: Arc<Self>,
        spec: &RemoteSlot,
        recv: Arc<crate::object::ObjectShared>,
    ) -> bool {
        let entry = recv.slots.get(usize::from(spec.slot));
        let call: crate::signal::SlotFn<A> = if recv.lp.is_remote() {
            remote_only::<A>
        } else {
            match entry.and_then(|e| e.typed.downcast_ref::<crate::signal::SlotFn<A>>()) {
                Some(f) => *f,
                None => {
                    log::error!(
                        "connection {} from {}: slot #{} of {} does not take {}",
                        spec.id,
                        self.topic,
                        spec.slot,
                        recv.id,
                        std::any::type_name::<A>()
                    );
                    return false;
                }
            }
        };
        if lock(&self.state).list.iter().any(|c| c.id == spec.id) {
            return true;
        }
        let target = crate::signal::SlotTarget {
            loop_id: recv.lp.id,
            key: recv.key,
            name: entry.map_or("(slot of another process)", |e| e.name),
            index: spec.slot,
            call,
            wants_meta: spec.wants_meta,
            kind: spec.kind,
            overflow: spec.overflow,
            recv: recv.clone(),
        };
        let conn = Conn::with_id(spec.id, Target::Slot(target), spec.single_shot);
        let weak: std::sync::Weak<dyn SignalControl> =
            Arc::downgrade(&(self.clone() as Arc<dyn SignalControl>));
        recv.add_incoming(weak, || self.insert(conn).ok().map(|()| spec.id))
    }
}
