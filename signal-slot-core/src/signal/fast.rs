//! The emit fast path of a signal field: what a cached connection list needs
//! when it is one slot that can be called directly or posted to another
//! loop or process (or one group of such slots), decided once when the cache
//! is refreshed.
//!
//! Why: the general delivery ([`SignalShared::deliver`](super::SignalShared))
//! handles every kind of target, metadata, single-shot connections and
//! reports; a plain emit to one same-loop slot needs none of it. Deciding
//! the shape when the list changes (rarely) instead of on every emit keeps
//! the common emit to one call of [`call_here`](crate::event_loop::call_here).

use crate::event_loop::{self, LoopId};
use crate::signal::group::{Group, Member, Turns};
use crate::signal::{Conn, ConnectionKind, SignalArgs, SignalShared, SlotTarget, Target};
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
    /// One plain slot of a loop another process runs, with the route its
    /// records take (resolved when the cache was refreshed): posted through
    /// it while it serves, else as `Slot`.
    Remote(Remote<A>),
    /// A group of one plain slot: the same call or post as `Slot`, and the
    /// member's count (in the group's own member: a fixed-size array, no
    /// length check), or the group's count of undelivered emissions. The
    /// target is a copy here, as for `Slot`: the call reads it from the
    /// field, not through the member's pointer first.
    Lone(Lone<A>),
    /// A group whose members are plain slots of the signal's own loop: the
    /// member whose turn it is gets called directly when this thread runs
    /// that loop (else the general path).
    Group(Turns<A>, LoopId),
    /// A group whose members are plain slots of other loops or of several
    /// (workers on other threads or in child processes, typically): the
    /// member whose turn it is gets a post that never waits when this thread
    /// does not run its loop (else, or refused, the general path). Apart from
    /// `Group`: the two arms in one, the pointer to the turns was kept in a
    /// callee-saved register across the direct call, which every field emit
    /// pushed and popped (8-10 instructions more per round of the core
    /// bench's group section, plain emits on their own loop too).
    Spread(Turns<A>),
    /// Anything else: the general path.
    General,
    /// One plain slot of an `EventLoopProcess`'s loop not started yet: the
    /// general path, and the cache is not kept (see `Fast::settled`), so the
    /// first emit after the start finds the route (`Remote`). Kept as `Slot`,
    /// a connection emitted on before the start took the slower per-call
    /// post for good.
    Unsettled,
}

/// A slot a direct call can serve without the general path: no metadata
/// wanted, not forced through the queue.
fn plain<A>(t: &SlotTarget<A>) -> bool {
    !t.wants_meta && t.kind != ConnectionKind::Queued
}

impl<A: SignalArgs> Fast<A> {
    /// The fast path for `list`, a list of `shared` (where a group's post
    /// that was refused goes on: the general path).
    pub(crate) fn of(list: &[Conn<A>], shared: &Arc<SignalShared<A>>) -> Self {
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
            Target::Slot(t) if plain(t) => match event_loop::Route::of(t) {
                Some(route) => Fast::Remote(Remote {
                    t: t.clone(),
                    route,
                }),
                None if t.recv.lp.answers_elsewhere() && !t.recv.lp.is_remote() => Fast::Unsettled,
                None => Fast::Slot(t.clone()),
            },
            Target::Group(g) => {
                let mut loops = g.members.iter().map(|m| match &m.conn.target {
                    Target::Slot(t) if m.conn.single_shot.is_none() && plain(t) => Some(t.loop_id),
                    _ => None,
                });
                match (loops.next().flatten(), &*g.members) {
                    (Some(_), [m]) => match (&m.conn.target, g.members.clone().try_into()) {
                        (Target::Slot(t), Ok(m)) => Fast::Lone(Lone {
                            t: t.clone(),
                            m,
                            g: g.clone(),
                        }),
                        _ => Fast::General,
                    },
                    (Some(first), _) => {
                        let (mut one, mut plain) = (true, true);
                        for l in loops {
                            one &= l == Some(first);
                            plain &= l.is_some();
                        }
                        match (Turns::of(g, shared), one && first == shared.loop_id, plain) {
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
    /// must (a receiver on this thread's loop that is busy, a `Group`'s
    /// members when this thread does not run their loop, or a list the fast
    /// path does not serve). A refused post of a `Spread` group takes the
    /// general path from `Turns::post_elsewhere` itself.
    #[inline(always)]
    pub(crate) fn deliver(&self, args: A) -> Result<(), A> {
        match self {
            Fast::Empty => Ok(()),
            Fast::Slot(t) => event_loop::deliver_plain(t, args),
            Fast::Remote(r) => event_loop::deliver_routed(&r.t, &r.route, args),
            Fast::Lone(lone) => {
                if event_loop::current_loop_id() != Some(lone.t.loop_id) {
                    lone.post(args);
                    return Ok(());
                }
                event_loop::call_here(&lone.t, args)?;
                let [m] = &*lone.m;
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
            Fast::Spread(turns) => {
                turns.post_elsewhere(args);
                Ok(())
            }
            Fast::General | Fast::Unsettled => Err(args),
        }
    }

    /// False if the list's delivery is decided again at the next emit.
    pub(crate) fn settled(&self) -> bool {
        !matches!(self, Fast::Unsettled)
    }
}

/// A plain slot of another process's loop and its route (see
/// [`Fast::Remote`]), the target first as in [`Lone`].
#[repr(C)]
pub(crate) struct Remote<A> {
    t: SlotTarget<A>,
    route: event_loop::Route,
}

/// A group of one plain slot (see [`Fast::Lone`]), its target first: the
/// same place in the variant as `Slot`'s target, so that the post below,
/// passed the whole, takes the pointer the other arms compute anyway (passed
/// the enum or the parts, every field emit on its own loop cost 1-2
/// instructions more: a pointer computed before the dispatch).
#[repr(C)]
pub(crate) struct Lone<A> {
    t: SlotTarget<A>,
    m: Arc<[Member<A>; 1]>,
    g: Group<A>,
}

impl<A: SignalArgs> Lone<A> {
    /// The emission when this thread does not run the member's loop: the
    /// plain post with the member's own policy (what the general path does
    /// for a lone member: no other member to try, so it may wait), then the
    /// member's count, or the group's count of undelivered emissions (the
    /// loop counted the drop). Out of line, like the plain post.
    #[inline(never)]
    fn post(&self, args: A) {
        if event_loop::post_elsewhere_counted(&self.t, args) {
            let [m] = &*self.m;
            m.took();
        } else {
            self.g.undelivered();
        }
    }
}
