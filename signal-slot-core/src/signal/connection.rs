use crate::error::DisconnectError;
use crate::event_loop::LoopId;
use crate::object::{ObjectKey, ObjectShared};
use crate::signal::{SignalArgs, SignalControl, SignalShared, SlotFn};
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How a connection delivers; see the [module docs](crate::signal) for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionKind {
    /// Inline when the emitting thread runs the receiver's loop, queued otherwise.
    #[default]
    Auto,
    /// Inline; signal and receiver must live on the same loop.
    Direct,
    /// Always through the receiver loop's inbox.
    Queued,
}

/// What a queued delivery does when the receiving loop's inbox is full. Every
/// message not delivered is counted in the receiver's
/// [`LoopStats`](crate::LoopStats) and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Wait up to this long for room, then drop (the default, 1 s). Reported by
    /// [`SignalRef::try_emit`](crate::SignalRef::try_emit).
    Block(Duration),
    /// Drop the new message at once. Not reported as an error by `try_emit`.
    DropNewest,
    /// Drop the new message at once and report it from `try_emit`.
    Fail,
}

impl Default for Overflow {
    fn default() -> Self {
        Overflow::Block(Duration::from_secs(1))
    }
}

/// Options for [`SignalRef::connect_with`](crate::SignalRef::connect_with).
///
/// ```
/// use signal_slot::{ConnectOptions, ConnectionKind, Overflow};
/// let opts = ConnectOptions::new()
///     .kind(ConnectionKind::Queued)
///     .single_shot()
///     .overflow(Overflow::DropNewest);
/// assert_eq!(opts.connection_kind(), ConnectionKind::Queued);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    kind: ConnectionKind,
    single_shot: bool,
    overflow: Overflow,
    pub(crate) group: Option<Arc<str>>,
}

impl ConnectOptions {
    /// Auto connection, not single-shot, blocking up to 1 s on a full inbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the connection kind.
    pub fn kind(mut self, kind: ConnectionKind) -> Self {
        self.kind = kind;
        self
    }

    /// The connection breaks itself at the first emission, before the slot runs,
    /// so exactly one emission is delivered even when several threads emit.
    pub fn single_shot(mut self) -> Self {
        self.single_shot = true;
        self
    }

    /// Sets what a full inbox does to this connection's messages.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Joins the slot to the one-of-N group `name` of this signal: each
    /// emission goes to one live member of the group, in turn; a member whose
    /// inbox is full or whose process is gone is skipped (not waited on) while
    /// another member can take the message. See [`GroupStats`](crate::GroupStats).
    pub fn group(mut self, name: impl AsRef<str>) -> Self {
        self.group = Some(Arc::from(name.as_ref()));
        self
    }

    /// The group joined, if any.
    pub fn group_name(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// The kind set.
    pub fn connection_kind(&self) -> ConnectionKind {
        self.kind
    }

    pub(crate) fn is_single_shot(&self) -> bool {
        self.single_shot
    }

    pub(crate) fn overflow_policy(&self) -> Overflow {
        self.overflow
    }
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Unique in the system: the process's slot is in the high bits.
pub(crate) fn next_connection_id() -> u64 {
    u64::from(crate::transport::shm::system::my_incarnation()) << 48
        | NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed)
}

/// One entry of a signal's connection list.
pub(crate) struct Conn<A> {
    pub(crate) id: u64,
    /// For a single-shot connection: claimed by the one emission it delivers.
    /// Shared by every copy of the list, so a rebuilt list cannot fire twice.
    pub(crate) single_shot: Option<Arc<AtomicBool>>,
    pub(crate) target: Target<A>,
}

impl<A> Conn<A> {
    pub(crate) fn new(target: Target<A>, single_shot: bool) -> Self {
        Self::with_id(next_connection_id(), target, single_shot)
    }

    pub(crate) fn with_id(id: u64, target: Target<A>, single_shot: bool) -> Self {
        Self {
            id,
            single_shot: single_shot.then(|| Arc::new(AtomicBool::new(false))),
            target,
        }
    }
}

impl<A> Clone for Conn<A> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            single_shot: self.single_shot.clone(),
            target: self.target.clone(),
        }
    }
}

impl<A> Clone for Target<A> {
    fn clone(&self) -> Self {
        match self {
            Target::Slot(s) => Target::Slot(s.clone()),
            Target::Signal { shared, owner } => Target::Signal {
                shared: shared.clone(),
                owner: owner.clone(),
            },
            Target::Message(s) => Target::Message(s.clone()),
            Target::Group(g) => Target::Group(g.clone()),
        }
    }
}

impl<A> Clone for SlotTarget<A> {
    fn clone(&self) -> Self {
        Self {
            recv: self.recv.clone(),
            loop_id: self.loop_id,
            key: self.key,
            name: self.name,
            index: self.index,
            call: self.call,
            wants_meta: self.wants_meta,
            kind: self.kind,
            overflow: self.overflow,
            gate: self.gate.clone(),
        }
    }
}

pub(crate) enum Target<A> {
    Slot(SlotTarget<A>),
    /// Signal-to-signal forwarding: the other signal is emitted inline.
    Signal {
        shared: Arc<SignalShared<A>>,
        owner: Option<Arc<ObjectShared>>,
    },
    /// A pattern subscription's slot that takes a [`Message`](crate::Message):
    /// the arguments are encoded into one at emission.
    Message(SlotTarget<(crate::signal::Message,)>),
    /// A one-of-N group: its members are slot connections.
    Group(crate::signal::group::Group<A>),
}

/// Everything needed to reach a slot, copied out of the receiver so the hot path
/// does not chase pointers.
pub(crate) struct SlotTarget<A> {
    pub(crate) recv: Arc<ObjectShared>,
    pub(crate) loop_id: LoopId,
    pub(crate) key: ObjectKey,
    pub(crate) name: &'static str,
    #[allow(dead_code)] // read by the process layer
    pub(crate) index: u16,
    pub(crate) call: SlotFn<A>,
    pub(crate) wants_meta: bool,
    pub(crate) kind: ConnectionKind,
    pub(crate) overflow: Overflow,
    /// For a subscription initialized from retained values: `call` is
    /// [`gated`](crate::signal::retained::gated) and this is what it checks.
    pub(crate) gate: Option<crate::signal::retained::GateRef>,
}

impl<A: SignalArgs> Target<A> {
    /// Same receiver: same slot of the same object, or the same signal.
    pub(crate) fn same_as(&self, other: &Target<A>) -> bool {
        match (self, other) {
            (Target::Slot(a), Target::Slot(b)) => Arc::ptr_eq(&a.recv, &b.recv) && a.name == b.name,
            (Target::Message(a), Target::Message(b)) => {
                Arc::ptr_eq(&a.recv, &b.recv) && a.name == b.name
            }
            (Target::Signal { shared: a, .. }, Target::Signal { shared: b, .. }) => {
                Arc::ptr_eq(a, b)
            }
            _ => false,
        }
    }

    /// The object at the receiving end, if known.
    pub(crate) fn receiver(&self) -> Option<&Arc<ObjectShared>> {
        match self {
            Target::Slot(s) => Some(&s.recv),
            Target::Message(s) => Some(&s.recv),
            Target::Signal { owner, .. } => owner.as_ref(),
            Target::Group(_) => None,
        }
    }
}

/// A made connection; [`disconnect`](Connection::disconnect) breaks it. Dropping
/// it does **not** disconnect (connections live as long as both ends).
#[derive(Clone)]
pub struct Connection {
    pub(crate) signal: Weak<dyn SignalControl>,
    pub(crate) id: u64,
}

impl Connection {
    /// Breaks the connection. Messages it already queued are still delivered.
    pub fn disconnect(&self) -> Result<(), DisconnectError> {
        match self.signal.upgrade() {
            Some(s) if s.remove_connection(self.id) => {
                let (owner, index) = s.addr();
                if index != crate::signal::shared::LOCAL_INDEX {
                    if let Err(missing) =
                        crate::process::control::replicate_disconnect(&owner, index, self.id)
                    {
                        log::warn!("disconnect not confirmed by processes {missing:?}");
                    }
                }
                Ok(())
            }
            _ => Err(DisconnectError::NotConnected),
        }
    }

    /// False after a disconnect, after a single-shot delivery, or once either end
    /// was removed.
    pub fn is_connected(&self) -> bool {
        self.signal
            .upgrade()
            .is_some_and(|s| s.has_connection(self.id))
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("connected", &self.is_connected())
            .finish()
    }
}
