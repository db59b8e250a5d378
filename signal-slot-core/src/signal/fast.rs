//! The emit fast path of a signal field: what a cached connection list needs
//! when it is one slot that can be called directly or posted to another
//! process (or one group of such slots), decided once when the cache is
//! refreshed.
//!
//! Why: the general delivery ([`SignalShared::deliver`](super::SignalShared))
//! handles every kind of target, metadata, single-shot connections and
//! reports; a plain emit to one same-loop slot needs none of it. Deciding
//! the shape when the list changes (rarely) instead of on every emit keeps
//! the common emit to one call of [`call_here`](crate::event_loop::call_here).

use crate::event_loop::{self, LoopId};
use crate::signal::group::{Member, Turns};
use crate::signal::{Conn, ConnectionKind, SignalArgs, SlotTarget, Target};
use std::sync::Arc;

/// How an emit delivers to a cached list.
// Variants inline, not boxed: one pointer load less on every emit, for a few
// hundred bytes per signal field.
// An explicit tag (`repr(u8)`): with a niche in a target the dispatch first
// decoded the tag (three instructions more per emit, plain ones too).
#[allow(clippy::large_enum_variant)]
#[repr(u8)]
pub(crate) enum Fast<A> {
    /// No connections: nothing to do.
    Empty,
    /// One plain slot: called directly when this thread runs its loop, else
    /// posted to its loop or process.
    Slot(SlotTarget<A>),
    /// A group of one plain slot: the same call on its loop, and the member's
    /// count (in the group's own member: a fixed-size array, no length
    /// check). The target is a copy here, as for `Slot`: the call reads it
    /// from the field, not through the member's pointer first.
    Lone(SlotTarget<A>, Arc<[Member<A>; 1]>),
    /// A group whose members are plain slots of one loop: the member whose
    /// turn it is gets called directly when this thread runs that loop, else
    /// posted when another process runs it.
    Group(Turns<A>, LoopId),
    /// A group whose members are plain slots of several loops (workers in
    /// child processes, typically): the member whose turn it is gets posted
    /// when another process runs its loop.
    Spread(Turns<A>),
    /// Anything else: the general path.
    General,
}

/// A slot a direct call can serve without the general path: no metadata
/// wanted, not forced through the queue.
fn plain<A>(t: &SlotTarget<A>) -> bool {
    !t.wants_meta && t.kind != ConnectionKind::Queued
}

impl<A: SignalArgs> Fast<A> {
    /// The fast path for `list`.
    pub(crate) fn of(list: &[Conn<A>]) -> Self {
        let [c] = list else {
            return if list.is_empty() {
                Fast::Empty
            } else {
                Fast::General
            };
        };
        if c.single_shot.is_some() {
            return Fast::General;
        }
        match &c.target {
            Target::Slot(t) if plain(t) => Fast::Slot(t.clone()),
            Target::Group(g) => {
                let mut loops = g.members.iter().map(|m| match &m.conn.target {
                    Target::Slot(t) if m.conn.single_shot.is_none() && plain(t) => Some(t.loop_id),
                    _ => None,
                });
                match (loops.next().flatten(), &*g.members) {
                    (Some(_), [m]) => match (&m.conn.target, g.members.clone().try_into()) {
                        (Target::Slot(t), Ok(m)) => Fast::Lone(t.clone(), m),
                        _ => Fast::General,
                    },
                    (Some(first), _) => {
                        let (mut one, mut plain) = (true, true);
                        for l in loops {
                            one &= l == Some(first);
                            plain &= l.is_some();
                        }
                        match (Turns::of(g), one, plain) {
                            (Some(turns), true, _) => Fast::Group(turns, first),
                            (Some(turns), false, true) => Fast::Spread(turns),
                            _ => Fast::General,
                        }
                    }
                    _ => Fast::General,
                }
            }
            _ => Fast::General,
        }
    }

    /// Delivers `args` on the fast path; `Err(args)` when the general path
    /// must (the receiver is not on this thread's loop, or busy).
    #[inline(always)]
    pub(crate) fn deliver(&self, args: A) -> Result<(), A> {
        match self {
            Fast::Empty => Ok(()),
            Fast::Slot(t) => event_loop::deliver_plain(t, args),
            Fast::Lone(t, m) => {
                // Elsewhere: `post_elsewhere`, after this returns (see there).
                if event_loop::current_loop_id() != Some(t.loop_id) {
                    return Err(args);
                }
                event_loop::call_here(t, args)?;
                let [m] = &**m;
                m.took();
                Ok(())
            }
            Fast::Group(turns, lp) => {
                // Checked before the turn moves: an emit from elsewhere takes
                // `post_elsewhere` or the general path and must find the turn
                // where it was.
                if event_loop::current_loop_id() != Some(*lp) {
                    return Err(args);
                }
                turns.call_here(args)
            }
            Fast::Spread(_) => Err(args),
            Fast::General => Err(args),
        }
    }

    /// What [`deliver`](Self::deliver) left to its caller that is still
    /// simpler than the general path: the group member whose turn it is, when
    /// this thread does not run its loop, gets a post that never waits (to
    /// another process's mailbox or another thread's inbox). A refused post
    /// (and a member on this thread's loop, or of a process not running yet)
    /// gives `Err(args)` with the turn where it was: the general path then
    /// tries that member again, counting what it refuses, and the rest of the
    /// group, the last one with its own policy. Apart from `deliver`, called
    /// out of line: inlined there, these branches took a callee-saved register
    /// that every emit (same-loop calls included) pushed and popped: callgrind
    /// counted 9 instructions more per round of the core bench's group
    /// section (one connected and one unconnected emit), plain emits too.
    #[inline(always)]
    pub(crate) fn post_elsewhere(&self, args: A) -> Result<(), A> {
        let (member, turns) = match self {
            Fast::Lone(_, m) => (m.first(), None),
            Fast::Group(turns, _) | Fast::Spread(turns) => (turns.current(), Some(turns)),
            // (Before the thread-local read: the general path's emits pass
            // here too.)
            _ => return Err(args),
        };
        // A member on this thread's loop (a busy one, or a spread group's):
        // a direct call, the general path's.
        let here = event_loop::current_loop_id();
        let Some(m) = member.filter(|m| here != Some(m.loop_id())) else {
            return Err(args);
        };
        // One post for every kind (one copy of the send paths inlined here).
        m.post_elsewhere(args)?;
        if let Some(turns) = turns {
            turns.passed(m);
        }
        Ok(())
    }
}
