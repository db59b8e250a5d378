//! The emit fast path of a signal field: what a cached connection list needs
//! when it is one slot that can be called directly (or one group of such
//! slots on one loop), decided once when the cache is refreshed.
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
    /// turn it is gets called directly when this thread runs that loop.
    Group(Turns<A>, LoopId),
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
                    (Some(first), _) if loops.all(|l| l == Some(first)) => match Turns::of(g) {
                        Some(turns) => Fast::Group(turns, first),
                        None => Fast::General,
                    },
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
                // Elsewhere, the general path: a failed post is the group's
                // to count.
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
                // the general path and must find the turn where it was.
                if event_loop::current_loop_id() != Some(*lp) {
                    return Err(args);
                }
                turns.call_here(args)
            }
            Fast::General => Err(args),
        }
    }
}
