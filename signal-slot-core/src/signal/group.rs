//! One-of-N groups: connections of one signal joined under a name, of which
//! each emission reaches one live member, in turn (NATS queue groups).
//!
//! A group is one entry of the signal's connection list whose members are
//! ordinary slot connections, so an emission pays for groups only when the
//! signal has one. A member is tried without waiting (its inbox full, its
//! process gone: the next one is tried); only when every member refused does
//! the last attempt follow the member's own overflow policy.

use crate::object::ObjectId;
use crate::signal::shared::Emission;
use crate::signal::{Conn, Overflow, SignalArgs, SignalShared, SlotTarget, Target};
use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a group of a signal did so far.
///
/// ```
/// use signal_slot::prelude::*;
/// use signal_slot::ConnectOptions;
///
/// #[derive(EventLoopObject, Default)]
/// struct Jobs {
///     #[signal]
///     job: Signal<(u32,)>,
/// }
///
/// #[derive(EventLoopObject, Default)]
/// struct Worker {
///     done: u32,
/// }
///
/// #[slots]
/// impl Worker {
///     fn work(&mut self, _job: u32) {
///         self.done += 1;
///     }
/// }
///
/// let lp = EventLoop::new("group-doc");
/// let jobs = lp.add("jobs-doc", Jobs::default()).unwrap();
/// let w1 = lp.add("w1-doc", Worker::default()).unwrap();
/// let w2 = lp.add("w2-doc", Worker::default()).unwrap();
/// for w in [&w1, &w2] {
///     jobs.job().connect_with(&w.work(), ConnectOptions::new().group("workers")).unwrap();
/// }
/// for j in 0..10 {
///     jobs.job().emit((j,)); // each job to one worker
/// }
/// let stats = jobs.job().group_stats("workers").unwrap();
/// assert_eq!(stats.members.iter().map(|m| m.delivered).sum::<u64>(), 10);
/// assert_eq!(stats.members[0].delivered, 5); // in turn
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// The group's name.
    pub name: String,
    /// Each member and how many emissions it was given.
    pub members: Vec<GroupMember>,
    /// Attempts that skipped a member (inbox full, receiver gone).
    pub skipped: u64,
    /// Emissions no member took (counted and logged; also in the members'
    /// loop counters).
    pub undelivered: u64,
}

/// One member of a group, in [`GroupStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The receiving object.
    pub receiver: ObjectId,
    /// The slot.
    pub slot: &'static str,
    /// Emissions delivered to it (queued or called).
    pub delivered: u64,
}

#[derive(Default)]
struct Counters {
    cursor: AtomicU64,
    /// The turn the fast path's last call was made at (see
    /// [`Turns::refused`]). Next to `cursor`: the same line, written anyway.
    called: AtomicU64,
    skipped: AtomicU64,
    undelivered: AtomicU64,
}

/// A member of a group. `repr(C)` with what an emit reads first: the fast
/// path calls `quick` and counts in `delivered` right after it, so the count
/// sits next to what the call reads (no allocation of its own to reach).
/// Line-aligned: that part spans two cache lines, not three.
#[repr(C, align(64))]
pub(crate) struct Member<A> {
    /// The same target with [`Overflow::Fail`]: the attempts that must not
    /// wait. Also what the fast path calls (a direct call has no overflow).
    quick: SlotTarget<A>,
    /// Emissions delivered to it. In the member, not an allocation of its
    /// own: a changed group copies it (a count an emitter makes on the old
    /// list meanwhile is lost: statistics).
    delivered: AtomicU64,
    pub(crate) conn: Conn<A>,
}

impl<A> Clone for Member<A> {
    fn clone(&self) -> Self {
        Self {
            quick: self.quick.clone(),
            delivered: AtomicU64::new(self.delivered.load(Ordering::Relaxed)),
            conn: self.conn.clone(),
        }
    }
}

impl<A> Member<A> {
    /// The target: as connected when it is the last one to try (it may wait
    /// per its policy), else the one that never waits.
    #[inline]
    pub(crate) fn target(&self, last: bool) -> &SlotTarget<A> {
        match (&self.conn.target, last) {
            (Target::Slot(t), true) => t,
            _ => &self.quick,
        }
    }

    /// The member took an emission. Not a locked add: exact when one thread
    /// emits at a time (the usual case: a signal is emitted on its object's
    /// loop); concurrent emitters may miscount (a count is statistics, the
    /// delivery itself is exactly once either way).
    #[inline(always)]
    pub(crate) fn took(&self) {
        let d = &self.delivered;
        // Wrapping: a statistic must never panic an emit (debug builds).
        d.store(d.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// The loop the member lives on.
    #[inline]
    pub(crate) fn loop_id(&self) -> crate::event_loop::LoopId {
        self.quick.loop_id
    }

    /// Posts to this member, whose loop is not this thread's, without
    /// waiting (its quick target), and counts it. `Err(args)`, nothing
    /// counted, when the post was refused: the general path then tries this
    /// member again (counting what it refuses, waiting when it is the last to
    /// try) and the others.
    #[inline]
    pub(crate) fn post_elsewhere(&self, args: A) -> Result<(), A>
    where
        A: SignalArgs,
    {
        crate::event_loop::try_post_elsewhere(&self.quick, args)?;
        self.took();
        Ok(())
    }
}

/// A group laid out for the emit fast path: the group's own members (their
/// counts included) and its turn, so either path continues the other's turn
/// and counts. Built when a field's connection cache is refreshed.
pub(crate) struct Turns<A> {
    counters: Arc<Counters>,
    members: Arc<[Member<A>]>,
    /// The signal, for a refused post's general path.
    shared: Arc<SignalShared<A>>,
}

impl<A: SignalArgs> Turns<A> {
    /// `g` for the fast path; `None` unless every member is a slot.
    pub(crate) fn of(g: &Group<A>, shared: &Arc<SignalShared<A>>) -> Option<Self> {
        g.members
            .iter()
            .all(|m| matches!(m.conn.target, Target::Slot(_)))
            .then(|| Self {
                counters: g.counters.clone(),
                members: g.members.clone(),
                shared: shared.clone(),
            })
    }

    /// Calls the member whose turn it is on this thread's loop (the caller
    /// checked it runs the members' loop), moving the turn and counting the
    /// delivery. `Err(args)` with the turn where it was when the call cannot
    /// be made (the member busy), so the general path starts at the same
    /// member; also when the turn is out of range (the group changed
    /// meanwhile), which the general path wraps.
    #[inline(always)]
    pub(crate) fn call_here(&self, args: A) -> Result<(), A> {
        let i = self.counters.cursor.load(Ordering::Relaxed);
        let Some(m) = usize::try_from(i).ok().and_then(|i| self.members.get(i)) else {
            return Err(args);
        };
        // The turn moves before the call: a slot that emits this signal
        // again finds the next member's turn, as on the general path. The
        // count too: after the call only a refusal has anything to do.
        self.counters
            .cursor
            .store(after(i, self.members.len()), Ordering::Relaxed);
        self.counters.called.store(i, Ordering::Relaxed);
        m.took();
        crate::event_loop::call_here(&m.quick, args).map_err(|args| self.refused(args))
    }

    /// The turn and the member whose turn it is; `None` when the turn is out
    /// of range (the group changed meanwhile: the general path wraps it).
    #[inline]
    pub(crate) fn current(&self) -> Option<(u64, &Member<A>)> {
        let i = self.counters.cursor.load(Ordering::Relaxed);
        let m = usize::try_from(i).ok().and_then(|i| self.members.get(i))?;
        Some((i, m))
    }

    /// The emission from a thread that does not run the loop of the member
    /// whose turn it is: a post to that member that never waits (to another
    /// process's mailbox or another thread's inbox), then the turn moves on.
    /// A refused post (and a member on this thread's loop, a spread group's,
    /// or of a process not running yet) leaves the turn where it was and takes
    /// the general path, through the signal's list: it tries that member
    /// again, counting what it refuses, and the rest of the group, the last
    /// one with its own policy.
    ///
    /// Out of line, and called from [`Fast::deliver`](super::fast::Fast::deliver)
    /// with the pointer its other arms compute anyway, returning nothing: a
    /// `Result` handed back there, or these branches inlined, took a
    /// callee-saved register that every field emit pushed and popped (8-10
    /// instructions more per round of the core bench's group section, plain
    /// emits on their own loop too); going back to the field for the general
    /// path (a second look at its cache) cost a group emit ~35 instructions.
    #[inline(never)]
    pub(crate) fn post_elsewhere(&self, args: A) {
        let here = crate::event_loop::current_loop_id();
        let args = match self.current().filter(|(_, m)| here != Some(m.loop_id())) {
            Some((i, m)) => match m.post_elsewhere(args) {
                Ok(()) => return self.passed(i),
                Err(args) => args,
            },
            None => args,
        };
        self.shared.emit_shared(args, Emission::PLAIN, None);
    }

    /// Member `i`, whose turn it was, took an emission: the turn moves on.
    #[inline]
    pub(crate) fn passed(&self, i: u64) {
        self.counters
            .cursor
            .store(after(i, self.members.len()), Ordering::Relaxed);
    }

    /// The member called last could not be called: its count and the turn
    /// back. Its turn is read from `called`, which only the fast path writes,
    /// on the members' loop thread, and a refused call ran no slot that could
    /// emit again meanwhile; finding the member from `cursor` instead read a
    /// turn another thread's emit may have moved, and took the count back
    /// from a member that had none (a count of 2^64 - 1, review 2026-11-30).
    /// Nothing is kept across the call (a value kept there costs every field
    /// emit ~8 instructions: callee-saved registers).
    #[cold]
    #[inline(never)]
    fn refused(&self, args: A) -> A {
        let i = self.counters.called.load(Ordering::Relaxed);
        let Some(m) = usize::try_from(i).ok().and_then(|i| self.members.get(i)) else {
            return args;
        };
        let d = &m.delivered;
        d.store(
            d.load(Ordering::Relaxed).saturating_sub(1),
            Ordering::Relaxed,
        );
        self.counters.cursor.store(i, Ordering::Relaxed);
        args
    }
}

/// The turn after member `i`'s in a group of `n` (`i < n`). Computed, not
/// a successor stored in the member: the turn is a chain from one emit to
/// the next (each reads what the last one stored), and a load from the
/// member in that chain cost a group of two on its own loop ~1.2 ns an
/// emit: 12.8-13.1 ns against 11.5-11.9 now, a plain connection's 10.5-11.1
/// (core bench, `BENCH_ONLY=group`), though the load took 4 instructions
/// fewer than this arithmetic.
#[inline(always)]
fn after(i: u64, n: usize) -> u64 {
    if i + 1 < n as u64 {
        i + 1
    } else {
        0
    }
}

/// A group entry of a connection list. Copy-on-write, like the list.
pub(crate) struct Group<A> {
    pub(crate) name: Arc<str>,
    counters: Arc<Counters>,
    pub(crate) members: Arc<[Member<A>]>,
}

impl<A> Clone for Group<A> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            counters: self.counters.clone(),
            members: self.members.clone(),
        }
    }
}

impl<A: SignalArgs> Group<A> {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self {
            name,
            counters: Arc::default(),
            members: Arc::from(Vec::new()),
        }
    }

    /// This group with `conn` (a slot connection) added; `None` if the slot is
    /// a member already.
    pub(crate) fn with(&self, conn: Conn<A>) -> Option<Self> {
        let Target::Slot(t) = &conn.target else {
            return None;
        };
        if self
            .members
            .iter()
            .any(|m| m.conn.target.same_as(&conn.target))
        {
            return None;
        }
        let mut quick = t.clone();
        quick.overflow = Overflow::Fail;
        let mut v: Vec<Member<A>> = self.members.to_vec();
        v.push(Member {
            quick,
            delivered: AtomicU64::new(0),
            conn,
        });
        Some(Self {
            members: Arc::from(v),
            ..self.clone()
        })
    }

    /// This group without the members `pred` selects, and those members.
    pub(crate) fn without(&self, pred: impl Fn(&Conn<A>) -> bool) -> (Self, Vec<Conn<A>>) {
        let (gone, kept): (Vec<Member<A>>, Vec<Member<A>>) =
            self.members.iter().cloned().partition(|m| pred(&m.conn));
        (
            Self {
                members: Arc::from(kept),
                ..self.clone()
            },
            gone.into_iter().map(|m| m.conn).collect(),
        )
    }

    /// The member to try first for the next emission, in turn. A plain load
    /// and store, not a locked add: two threads emitting at once may start at
    /// the same member, which only shifts the turn. Kept below `n`, so picking
    /// needs no division.
    #[inline]
    pub(crate) fn next_start(&self, n: usize) -> usize {
        let start = match self.counters.cursor.load(Ordering::Relaxed) as usize {
            i if i < n => i,
            _ => 0,
        };
        self.counters
            .cursor
            .store(after(start as u64, n), Ordering::Relaxed);
        start
    }

    /// Member `i`'s target: see [`Member::target`].
    #[inline]
    pub(crate) fn target(&self, i: usize, last: bool) -> &SlotTarget<A> {
        self.members[i].target(last)
    }

    /// Member `i` is tried with an emission whose turn was another's (who
    /// refused): the turn goes to the member after `i`.
    #[inline]
    pub(crate) fn moved_past(&self, i: usize) {
        self.counters
            .cursor
            .store(after(i as u64, self.members.len()), Ordering::Relaxed);
    }

    /// Member `i` took an emission: see [`Member::took`].
    #[inline]
    pub(crate) fn took(&self, i: usize) {
        self.members[i].took();
    }

    /// A member was passed over (full, gone).
    pub(crate) fn skipped(&self) {
        self.counters.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// No member took an emission.
    pub(crate) fn undelivered(&self) {
        let n = self.counters.undelivered.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            log::warn!(
                "group {:?}: no member took an emission; {n} so far",
                self.name
            );
        }
    }

    pub(crate) fn stats(&self) -> GroupStats {
        GroupStats {
            name: self.name.to_string(),
            members: self
                .members
                .iter()
                .map(|m| GroupMember {
                    receiver: m.quick.recv.id.clone(),
                    slot: m.quick.name,
                    delivered: m.delivered.load(Ordering::Relaxed),
                })
                .collect(),
            skipped: self.counters.skipped.load(Ordering::Relaxed),
            undelivered: self.counters.undelivered.load(Ordering::Relaxed),
        }
    }
}
