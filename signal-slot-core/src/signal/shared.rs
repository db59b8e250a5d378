//! The part of a signal every thread shares: its connection list and the
//! emission algorithm.

use crate::error::{DropReason, Undelivered};
use crate::event_loop::{self, LoopId};
use crate::object::ObjectId;
use crate::signal::directory::Sub;
use crate::signal::group::{Group, GroupStats, Member};
use crate::signal::meta::MetaWireRef;
use crate::signal::retained::{self, GateCall, GateRef, Retained, Value};
use crate::signal::{Conn, Headers, Message, Meta, SignalArgs, SlotFn, SlotTarget, Target};
use crate::sync::{lock, AtomicU64, Ordering};
use crate::transport::codec;
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
    pub(crate) topic: Arc<str>,
    /// Unique in the process.
    uid: u64,
    /// Set for a retained signal.
    retained: Option<Retained>,
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
    /// The topic emissions carry.
    fn topic(&self) -> &Arc<str>;
    /// Connects subscription `sub` to this signal (idempotent by id) and, if
    /// it asks to be initialized, sends it the retained value.
    fn attach(self: Arc<Self>, sub: &Sub) -> Attach;
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
    pub(crate) group: Option<Arc<str>>,
}

/// The call function of a connection whose receiver lives in another process:
/// never called (delivery encodes instead).
fn remote_only<A>(_: &mut dyn Any, _: A, _: Option<&Meta>) {}

/// A group's member chosen for one emission: its index, and a copy of the
/// arguments for the members after it when it may refuse.
struct Turn<'g, A> {
    g: &'g Group<A>,
    member: &'g Member<A>,
    i: usize,
    spare: Option<A>,
}

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
        Self::with_options(owner, name, loop_id, index, None, None)
    }

    pub(crate) fn with_options(
        owner: ObjectId,
        name: &'static str,
        loop_id: LoopId,
        index: u16,
        topic: Option<Arc<str>>,
        retained: Option<Retained>,
    ) -> Self {
        static NEXT_UID: AtomicU64 = AtomicU64::new(1);
        let topic = topic.unwrap_or_else(|| Arc::from(format!("{owner}/{name}")));
        Self {
            owner,
            name,
            index,
            loop_id,
            topic,
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            retained,
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

    /// Unique in the process (a signal's address can be reused).
    #[inline]
    pub(crate) fn uid(&self) -> u64 {
        self.uid
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

    /// `by_target`: refuse a second connection to the same receiver (explicit
    /// connections); otherwise only the same id is a duplicate (subscriptions,
    /// which may coexist with an explicit connection to the same slot).
    /// `group`: join that one-of-N group of this signal instead.
    pub(crate) fn insert_checked(
        &self,
        conn: Conn<A>,
        by_target: bool,
        group: Option<&Arc<str>>,
    ) -> Result<(), InsertError> {
        let mut s = lock(&self.state);
        if !s.open {
            return Err(InsertError::Closed);
        }
        // A slot already connected plainly or in any group of this signal is
        // a duplicate whatever the options (review helper-50: a group option
        // let one slot be connected three times).
        if contains_id(&s.list, conn.id)
            || (by_target && flatten(&s.list).any(|c| c.target.same_as(&conn.target)))
        {
            return Err(InsertError::Duplicate);
        }
        if group.is_some() && !matches!(conn.target, Target::Slot(_)) {
            // A group's members take the signal's own arguments.
            return Err(InsertError::GroupNeedsSlot);
        }
        let mut v: Vec<Conn<A>> = s.list.iter().map(Conn::clone).collect();
        match group {
            None => v.push(conn),
            Some(name) => {
                let at = v
                    .iter()
                    .position(|c| matches!(&c.target, Target::Group(g) if g.name == *name));
                let current = match at {
                    Some(i) => match &v[i].target {
                        Target::Group(g) => g.clone(),
                        _ => Group::new(name.clone()),
                    },
                    None => Group::new(name.clone()),
                };
                let grown = current.with(conn).ok_or(InsertError::Duplicate)?;
                match at {
                    Some(i) => v[i] = Conn::with_id(v[i].id, Target::Group(grown), false),
                    None => v.push(Conn::new(Target::Group(grown), false)),
                }
            }
        }
        s.list = Arc::from(v);
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// The statistics of group `name` of this signal.
    pub(crate) fn group_stats(&self, name: &str) -> Option<GroupStats> {
        lock(&self.state).list.iter().find_map(|c| match &c.target {
            Target::Group(g) if &*g.name == name => Some(g.stats()),
            _ => None,
        })
    }

    /// Removes the connections `pred` selects and tells the other processes;
    /// returns how many.
    pub(crate) fn disconnect_where(&self, pred: impl Fn(&Conn<A>) -> bool) -> usize {
        let ids: Vec<u64> = flatten(&lock(&self.state).list)
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

    /// Removes the connections `pred` selects (group members too); returns how
    /// many.
    pub(crate) fn remove_where(&self, pred: impl Fn(&Conn<A>) -> bool) -> usize {
        let removed: Vec<Conn<A>> = self.edit(|v, _| {
            let mut gone = Vec::new();
            let mut kept = Vec::with_capacity(v.len());
            for c in v.drain(..) {
                match &c.target {
                    Target::Group(g) => {
                        let (left, out) = g.without(&pred);
                        gone.extend(out);
                        if !left.members.is_empty() {
                            kept.push(Conn::with_id(c.id, Target::Group(left), false));
                        }
                    }
                    _ if pred(&c) => gone.push(c),
                    _ => kept.push(c),
                }
            }
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
            Target::Slot(_) | Target::Message(_) | Target::Group(_) => false,
        })
    }

    /// The metadata of a request made through this signal.
    pub(crate) fn request_meta(&self) -> Meta {
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        Meta::new(self.owner.clone(), self.name, self.topic.clone(), seq)
    }

    #[inline]
    pub(crate) fn is_retained(&self) -> bool {
        self.retained.is_some()
    }

    /// Emits through the shared list (handles, forwarding, timers, retained
    /// signals).
    pub(crate) fn emit_shared(&self, args: A, em: Emission, report: Option<&mut Report>) {
        if self.retained.is_some() {
            return self.emit_retained(args, em, report);
        }
        let (_, list) = self.snapshot();
        self.deliver(&list, args, &em, report);
    }

    /// Updates the retained value, then delivers. The value and the list are
    /// taken under the value's lock, which a subscriber's replay also holds, so
    /// a replay is never of a value older than one the subscriber gets live.
    fn emit_retained(&self, args: A, em: Emission, report: Option<&mut Report>) {
        let Some(r) = &self.retained else { return };
        let mut bytes = Vec::new();
        if let Err(e) = codec::encode_into(&args, &mut bytes) {
            log::error!("retained signal {}: value not encodable: {e}", self.topic);
            if let Some(rep) = report {
                rep.push(Undelivered {
                    receiver: self.owner.clone(),
                    slot: self.name,
                    reason: DropReason::Encode,
                });
            }
            return;
        }
        let (list, em) = {
            let mut value = lock(&r.value);
            if r.skip_no_change && value.as_ref().is_some_and(|v| *v.bytes == *bytes) {
                return;
            }
            let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
            let previous = value
                .replace(Value {
                    sequence,
                    bytes: Arc::from(bytes),
                    timestamp: std::time::SystemTime::now(),
                    headers: em.headers.clone(),
                })
                .map(|v| v.bytes);
            let (_, list) = self.snapshot();
            (
                list,
                Emission {
                    sequence: Some(sequence),
                    previous,
                    ..em
                },
            )
        };
        self.deliver(&list, args, &em, report);
    }

    /// Delivers one emission to every connection of `list`, cloning the arguments
    /// for all but the last.
    #[inline]
    pub(crate) fn deliver(
        &self,
        list: &[Conn<A>],
        args: A,
        em: &Emission,
        mut report: Option<&mut Report>,
    ) {
        let Some((last, rest)) = list.split_last() else {
            return;
        };
        let mut meta = None;
        if rest.is_empty() {
            return self.deliver_one(last, args, &mut meta, em, report);
        }
        // A slot of this emission may disconnect a connection further down
        // the list: that one is not called (as in Qt; review helper-50). The
        // list is a snapshot, so after any change (the version moved) each
        // connection left is delivered as the live list has it, if it still
        // does: a group then without the members removed meanwhile (its own
        // id stays; review helper-51: looking the group up by its members'
        // ids skipped it).
        let version = self.version();
        for c in rest {
            if self.version() == version {
                self.deliver_one(c, args.clone(), &mut meta, em, report.as_deref_mut());
            } else if let Some(live) = self.live(c.id) {
                self.deliver_one(&live, args.clone(), &mut meta, em, report.as_deref_mut());
            }
        }
        if self.version() == version {
            self.deliver_one(last, args, &mut meta, em, report);
        } else if let Some(live) = self.live(last.id) {
            self.deliver_one(&live, args, &mut meta, em, report);
        }
    }

    /// Connection `id` (a plain one, or a group's own) as the live list has
    /// it now. Out of line: only after the list changed during an emission.
    #[cold]
    #[inline(never)]
    fn live(&self, id: u64) -> Option<Conn<A>> {
        lock(&self.state).list.iter().find(|c| c.id == id).cloned()
    }

    #[inline]
    fn deliver_one(
        &self,
        c: &Conn<A>,
        args: A,
        meta: &mut Option<Arc<Meta>>,
        em: &Emission,
        report: Option<&mut Report>,
    ) {
        if let Some(fired) = &c.single_shot {
            if !self.fire_once(c.id, fired) {
                return;
            }
        }
        // A slot and a group's chosen member share one copy of the delivery
        // path below, so a group costs its member choice and its counter, not
        // a second inlined path.
        let (t, turn) = match &c.target {
            Target::Slot(t) => (t, None),
            Target::Group(g) => match g.members.len() {
                0 => return,
                // A lone member is the last to try: its own policy, no turn.
                1 => {
                    let member = &g.members[0];
                    (
                        member.target(true),
                        Some(Turn {
                            g,
                            member,
                            i: 0,
                            spare: None,
                        }),
                    )
                }
                n => {
                    let i = g.next_start(n);
                    let member = &g.members[i];
                    let spare = Some(args.clone());
                    (
                        member.target(false),
                        Some(Turn {
                            g,
                            member,
                            i,
                            spare,
                        }),
                    )
                }
            },
            Target::Message(t) => return self.deliver_message(t, args, meta, em, report),
            Target::Signal { shared, .. } => return self.forward(shared, args, em, report),
        };
        // A single-shot member takes one emission, then leaves its group.
        let turn = match turn {
            Some(x) if x.member.conn.single_shot.is_some() && !self.member_fires(x.member) => {
                return self.group_refused(x, meta, em, report);
            }
            other => other,
        };
        let m = self.meta_for(t, meta, em);
        let count = !turn.as_ref().is_some_and(|x| x.spare.is_some());
        match (event_loop::deliver_counted(t, args, m, count), turn) {
            (Ok(()), None) => {}
            (Ok(()), Some(x)) => x.member.took(),
            (Err(reason), None) => {
                if let Some(r) = report {
                    Self::report_undelivered(t, reason, r);
                }
            }
            (Err(_), Some(x)) => self.group_refused(x, meta, em, report),
        }
    }

    /// A single-shot member's one emission: true for the first caller, which
    /// also removes the member from its group.
    #[cold]
    #[inline(never)]
    fn member_fires(&self, m: &Member<A>) -> bool {
        match &m.conn.single_shot {
            Some(fired) => self.fire_once(m.conn.id, fired),
            None => true,
        }
    }

    /// The member whose turn it was refused (or a lone member failed): the
    /// others are tried, or the emission is counted undelivered.
    #[cold]
    #[inline(never)]
    fn group_refused(
        &self,
        x: Turn<'_, A>,
        meta: &mut Option<Arc<Meta>>,
        em: &Emission,
        report: Option<&mut Report>,
    ) {
        match x.spare {
            Some(args) => self.deliver_group_rest(x.g, x.i, args, meta, em, report),
            None => self.group_undelivered(x.g, report),
        }
    }

    /// A single-shot connection's one emission: true for the first caller,
    /// which also removes the connection.
    #[cold]
    #[inline(never)]
    fn fire_once(&self, id: u64, fired: &crate::sync::AtomicBool) -> bool {
        if fired.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.remove_where(|x| x.id == id);
        true
    }

    /// The emission to a slot taking [`Message`]: the arguments encoded once
    /// per such connection. Out of line, like the other non-slot targets.
    #[inline(never)]
    fn deliver_message(
        &self,
        t: &SlotTarget<(Message,)>,
        args: A,
        meta: &mut Option<Arc<Meta>>,
        em: &Emission,
        report: Option<&mut Report>,
    ) {
        match Message::encode(
            &self.topic,
            self.owner.as_str(),
            &args,
            em.headers.as_deref(),
        ) {
            Ok(msg) => self.post(t, (msg,), meta, em, report),
            Err(e) => {
                log::error!("signal {}: arguments not encodable: {e}", self.topic);
                t.recv
                    .lp
                    .counters
                    .dropped(DropReason::Encode, &t.recv.lp.name);
            }
        }
    }

    /// Signal-to-signal forwarding: the next signal emits, one level deeper.
    #[inline(never)]
    fn forward(
        &self,
        shared: &Arc<SignalShared<A>>,
        args: A,
        em: &Emission,
        report: Option<&mut Report>,
    ) {
        if em.depth >= MAX_FORWARD_DEPTH {
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
        let next = Emission {
            depth: em.depth + 1,
            headers: em.headers.clone(),
            sequence: None,
            previous: None,
        };
        shared.emit_shared(args, next, report);
    }

    #[cold]
    fn group_undelivered(&self, g: &Group<A>, report: Option<&mut Report>) {
        g.undelivered();
        if let Some(r) = report {
            r.push(Undelivered {
                receiver: self.owner.clone(),
                slot: self.name,
                reason: DropReason::NoGroupMember,
            });
        }
    }

    /// The members after `start`, when the first one refused.
    #[cold]
    fn deliver_group_rest(
        &self,
        g: &Group<A>,
        start: usize,
        args: A,
        meta: &mut Option<Arc<Meta>>,
        em: &Emission,
        report: Option<&mut Report>,
    ) {
        let n = g.members.len();
        g.skipped();
        let mut args = Some(args);
        for k in 1..n {
            let i = if start + k < n {
                start + k
            } else {
                start + k - n
            };
            let last = k + 1 == n;
            // A single-shot member takes one emission, then leaves its
            // group, here as on the fast path; one that fired already is no
            // member any more (review helper-50: this path skipped the check,
            // and such a member took every emission its turn-mate refused).
            let member = &g.members[i];
            if member.conn.single_shot.is_some() && !self.member_fires(member) {
                continue;
            }
            let Some(a) = (if last { args.take() } else { args.clone() }) else {
                break;
            };
            let t = g.target(i, last);
            let m = self.meta_for(t, meta, em);
            // The turn goes on after the member tried: if it takes the
            // emission, else that member, whose turn is next, would take two
            // in a row and the one after it half as many as the rest. Before
            // the call, as on the fast path: a slot called here that emits
            // again finds the turn moved (review helper-38).
            g.moved_past(i);
            if event_loop::deliver_counted(t, a, m, last).is_ok() {
                g.took(i);
                return;
            }
            if !last {
                g.skipped();
            }
        }
        self.group_undelivered(g, report);
    }

    /// Posts one call to a slot, with the emission's metadata when the slot (or
    /// its gate) needs it. Always inlined, like the rest of the path to a
    /// direct call: the frames of small out-of-line steps were a third of it.
    #[inline(always)]
    fn post<B: SignalArgs>(
        &self,
        t: &SlotTarget<B>,
        args: B,
        meta: &mut Option<Arc<Meta>>,
        em: &Emission,
        report: Option<&mut Report>,
    ) {
        let m = self.meta_for(t, meta, em);
        if let Err(reason) = event_loop::deliver(t, args, m) {
            if let Some(r) = report {
                Self::report_undelivered(t, reason, r);
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn report_undelivered<B>(t: &SlotTarget<B>, reason: DropReason, r: &mut Report) {
        // DropNewest asked for silent drops; the counters still see them.
        let quiet =
            reason == DropReason::QueueFull && t.overflow == crate::signal::Overflow::DropNewest;
        if !quiet {
            r.push(Undelivered {
                receiver: t.recv.id.clone(),
                slot: t.name,
                reason,
            });
        }
    }

    /// The emission's metadata for target `t`, made once per emission (in
    /// `meta`) when a target first needs it.
    #[inline(always)]
    fn meta_for<B>(
        &self,
        t: &SlotTarget<B>,
        meta: &mut Option<Arc<Meta>>,
        em: &Emission,
    ) -> Option<Arc<Meta>> {
        if t.wants_meta {
            Some(self.make_meta(t, meta, em))
        } else {
            None
        }
    }

    #[inline(never)]
    fn make_meta<B>(
        &self,
        t: &SlotTarget<B>,
        meta: &mut Option<Arc<Meta>>,
        em: &Emission,
    ) -> Arc<Meta> {
        let shared = meta
            .get_or_insert_with(|| {
                let seq = em
                    .sequence
                    .unwrap_or_else(|| self.sequence.fetch_add(1, Ordering::Relaxed));
                Arc::new(
                    Meta::new(self.owner.clone(), self.name, self.topic.clone(), seq)
                        .with_headers(em.headers.clone())
                        .with_previous(em.previous.clone()),
                )
            })
            .clone();
        match &t.gate {
            Some(g) => Arc::new(shared.gated(g.clone())),
            None => shared,
        }
    }

    /// The slot target of subscription `sub` for this signal's argument type
    /// `B` (`A`, or `(Message,)` for a dynamic slot); `None` if the slot does
    /// not take `B`.
    fn sub_target<B: SignalArgs>(&self, sub: &Sub) -> Option<SlotTarget<B>> {
        let local = !sub.recv.lp.is_remote();
        let call: SlotFn<B> = if local {
            *sub.typed.as_ref()?.downcast_ref::<SlotFn<B>>()?
        } else {
            remote_only::<B>
        };
        let mut t = SlotTarget {
            loop_id: sub.recv.lp.id,
            key: sub.recv.key,
            name: sub.slot_name,
            index: sub.slot,
            call,
            wants_meta: sub.wants_meta,
            kind: crate::signal::ConnectionKind::Auto,
            overflow: sub.overflow,
            recv: sub.recv.clone(),
            gate: None,
        };
        if local && sub.initialize && self.retained.is_some() {
            t.gate = Some(GateRef(Arc::new(GateCall::new(call, sub.wants_meta))));
            t.call = retained::gated::<B>;
            t.wants_meta = true;
        }
        Some(t)
    }

    /// Sends the retained value `v` to a new subscriber through `conn` alone,
    /// queued (never inline: the caller holds the value's lock).
    fn replay(&self, conn: &Conn<A>, v: &Value) {
        let meta = || {
            Meta::replay(
                self.owner.clone(),
                self.name,
                self.topic.clone(),
                v.sequence,
                v.timestamp,
                v.headers.clone(),
            )
        };
        fn queued<B>(t: &SlotTarget<B>) -> SlotTarget<B> {
            let mut t = t.clone();
            t.kind = crate::signal::ConnectionKind::Queued;
            t
        }
        match &conn.target {
            // Another process decodes it: the retained bytes are the encoded
            // arguments already.
            Target::Slot(t) if t.recv.lp.is_remote() => {
                let m = t.wants_meta.then(|| {
                    MetaWireRef::replay(
                        self.owner.as_str(),
                        self.name,
                        &self.topic,
                        v.sequence,
                        v.timestamp,
                        v.headers.as_deref(),
                    )
                });
                let _ = event_loop::post_encoded(t, &v.bytes, m);
            }
            Target::Slot(t) => match codec::decode::<A>(&v.bytes) {
                Ok(args) => {
                    let mut cell = Some(Arc::new(meta()));
                    self.post(&queued(t), args, &mut cell, &Emission::new(None), None);
                }
                Err(e) => log::error!("retained value of {} does not decode: {e}", self.topic),
            },
            Target::Message(t) => {
                let msg = Message::from_encoded::<A>(
                    &self.topic,
                    self.owner.as_str(),
                    v.bytes.to_vec(),
                    v.headers.as_deref(),
                );
                let mut cell = Some(Arc::new(meta()));
                self.post(&queued(t), (msg,), &mut cell, &Emission::new(None), None);
            }
            Target::Signal { .. } | Target::Group(_) => {}
        }
    }
}

/// Every connection of `list`, group members included.
pub(crate) fn flatten<A>(list: &[Conn<A>]) -> impl Iterator<Item = &Conn<A>> {
    list.iter().flat_map(|c| {
        let members: &[Member<A>] = match &c.target {
            Target::Group(g) => &g.members,
            _ => &[],
        };
        let own = match &c.target {
            Target::Group(_) => None,
            _ => Some(c),
        };
        own.into_iter().chain(members.iter().map(|m| &m.conn))
    })
}

fn contains_id<A>(list: &[Conn<A>], id: u64) -> bool {
    flatten(list).any(|c| c.id == id)
}

/// What travels with one emission besides its arguments.
pub(crate) struct Emission {
    pub(crate) depth: u8,
    pub(crate) headers: Option<Arc<Headers>>,
    /// Set for a retained signal (which numbers every emission).
    sequence: Option<u64>,
    /// The retained value this emission replaced.
    previous: Option<Arc<[u8]>>,
}

impl Emission {
    /// A plain emission: no headers, not retained, not forwarded.
    pub(crate) const PLAIN: Emission = Emission {
        depth: 0,
        headers: None,
        sequence: None,
        previous: None,
    };

    #[inline]
    pub(crate) fn new(headers: Option<Arc<Headers>>) -> Self {
        Self {
            depth: 0,
            headers,
            sequence: None,
            previous: None,
        }
    }
}

/// What [`SignalControl::attach`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attach {
    Attached,
    /// The subscription was attached already, or the signal is closed.
    Skipped,
    /// The slot does not take this signal's arguments (counted and logged).
    Mismatch,
    ReceiverGone,
}

pub(crate) enum InsertError {
    Closed,
    Duplicate,
    /// A group was asked for a target that is no slot taking the signal's
    /// arguments (a `Message` slot, a signal).
    GroupNeedsSlot,
}

impl<A: SignalArgs> SignalControl for SignalShared<A> {
    fn remove_connection(&self, id: u64) -> bool {
        self.remove_where(|c| c.id == id) > 0
    }

    fn has_connection(&self, id: u64) -> bool {
        contains_id(&lock(&self.state).list, id)
    }

    fn close(&self) {
        if let Some(r) = &self.retained {
            r.clear();
        }
        let removed: Vec<Conn<A>> = {
            let mut s = lock(&self.state);
            s.open = false;
            let old = std::mem::replace(&mut s.list, Arc::from(Vec::new()));
            self.version.fetch_add(1, Ordering::Release);
            flatten(&old).cloned().collect()
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

    fn topic(&self) -> &Arc<str> {
        &self.topic
    }

    fn attach(self: Arc<Self>, sub: &Sub) -> Attach {
        let target = if sub.fingerprint == std::any::type_name::<(Message,)>() {
            self.sub_target::<(Message,)>(sub).map(Target::Message)
        } else if sub.fingerprint == std::any::type_name::<A>() {
            self.sub_target::<A>(sub).map(Target::Slot)
        } else {
            None
        };
        let Some(target) = target else {
            sub.recv.lp.counters.type_mismatch(
                &sub.recv.lp.name,
                &format_args!(
                    "subscription {:?} of {}::{} takes {}, but {} carries {}: not connected",
                    sub.pattern.as_str(),
                    sub.recv.id,
                    sub.slot_name,
                    sub.fingerprint,
                    self.topic,
                    std::any::type_name::<A>()
                ),
            );
            return Attach::Mismatch;
        };
        let conn = Conn::with_id(sub.id, target, false);
        // Held across insert and replay: see `emit_retained`.
        let value = self.retained.as_ref().map(|r| lock(&r.value));
        let weak: std::sync::Weak<dyn SignalControl> =
            Arc::downgrade(&(self.clone() as Arc<dyn SignalControl>));
        let mut closed = false;
        let added = sub.recv.add_incoming(weak, || {
            match self.insert_checked(conn.clone(), false, sub.group.as_ref()) {
                Ok(()) => Some(sub.id),
                // Closed, or attached already (same id).
                Err(_) => {
                    closed = true;
                    None
                }
            }
        });
        if !added {
            return if closed {
                Attach::Skipped
            } else {
                Attach::ReceiverGone
            };
        }
        if sub.initialize {
            if let Some(v) = value.as_deref().and_then(Option::as_ref) {
                self.replay(&conn, v);
            }
        }
        Attach::Attached
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
        if contains_id(&lock(&self.state).list, spec.id) {
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
            gate: None,
        };
        let conn = Conn::with_id(spec.id, Target::Slot(target), spec.single_shot);
        let weak: std::sync::Weak<dyn SignalControl> =
            Arc::downgrade(&(self.clone() as Arc<dyn SignalControl>));
        recv.add_incoming(weak, || {
            self.insert_checked(conn, true, spec.group.as_ref())
                .ok()
                .map(|()| spec.id)
        })
    }
}
