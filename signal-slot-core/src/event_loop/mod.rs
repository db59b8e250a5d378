//! Event loops: one inbox and one dispatcher on one thread.
//!
//! | you want | use |
//! | --- | --- |
//! | run a loop on the current thread (e.g. `main`) | [`EventLoop::new`] then [`EventLoop::exec`] |
//! | run a loop on a thread of its own | [`EventLoopThread`] |
//! | something to happen later or periodically | [`Timer`] |
//! | to see what a loop did | [`EventLoop::stats`] |
//!
//! A loop runs once: `exec` returns when it is stopped, and the loop is then
//! finished. Stopping removes every object on it (emitting their `destroyed`
//! signals) and drops, counting them, messages still queued. An idle loop sleeps
//! on a futex with the next timer as its timeout: no polling, ~0 % CPU.

mod control;
mod gather;
mod local;
mod remote;
mod stats;
mod thread;
mod timer;

pub(crate) use control::{Control, Envelope};
pub(crate) use local::{call_here, current_loop_id, current_receiver_id};
#[cfg(feature = "async")]
pub(crate) use local::{spawn_slot_task, SlotFuture};
pub(crate) use remote::Route;
pub(crate) use stats::Counters;
pub use stats::LoopStats;
pub use thread::EventLoopThread;
pub use timer::Timer;
pub(crate) use timer::TimerShared;

use crate::error::{AddError, AddErrorKind, DropReason, ExecError, StopError};
use crate::object::registry;
use crate::object::{EventLoopObject, Handle, ObjectId, ObjectKey, ObjectShared};
use crate::signal::{Meta, SignalArgs, SignalBinder, SlotRef, SlotTarget};
use crate::sync::{lock, AtomicBool, AtomicU64, AtomicU8, Ordering};
use crate::transport::inbox::{Inbox, PostError};
use crate::transport::shm::mailbox::{self, MailboxAddr};
use crate::transport::shm::region::Region;
use crate::transport::shm::system;
use std::fmt;
use std::sync::OnceLock;
use std::sync::{Arc, Mutex, Weak};

/// Identifies a loop within the system (the creating process's slot is in the
/// high bits, so ids made in different processes differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LoopId(u64);

static NEXT_LOOP: AtomicU64 = AtomicU64::new(1);

impl LoopId {
    /// An id received from another process.
    pub(crate) fn from_raw(raw: u64) -> Self {
        LoopId(raw)
    }

    /// The raw value, to send to another process.
    pub(crate) fn raw(self) -> u64 {
        self.0
    }
}

/// Every loop of this process, so loops made before the shared region existed
/// can be given a mailbox when it appears.
static ALL_LOOPS: Mutex<Vec<Weak<LoopShared>>> = Mutex::new(Vec::new());

/// Where a loop is in its one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopState {
    /// Created, not yet running.
    Idle,
    /// `exec` is running it.
    Running,
    /// A stop was requested; `exec` returns soon.
    Stopping,
    /// `exec` returned; the loop takes no more work.
    Finished,
}

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const STOPPING: u8 = 2;
const FINISHED: u8 = 3;

/// Default inbox capacity (data messages); see [`EventLoopBuilder::capacity`].
pub const DEFAULT_CAPACITY: usize = 8192;

/// The part of a loop every thread shares.
pub(crate) struct LoopShared {
    pub(crate) id: LoopId,
    pub(crate) name: String,
    /// The name again, shared cheaply (requests name each receiver's loop).
    pub(crate) label: Arc<str>,
    pub(crate) inbox: Inbox<Envelope, Control>,
    /// Written by the loop thread on every message: kept off the producers' lines.
    pub(crate) counters: crossbeam_utils::CachePadded<Counters>,
    state: AtomicU8,
    started: AtomicBool,
    keys: Mutex<KeyAlloc>,
    timers: Mutex<Vec<Weak<TimerShared>>>,
    /// The process whose thread runs this loop (its slot in the region).
    owner: crate::sync::AtomicU32,
    /// Set on the loop of an `EventLoopProcess`: posts take a fork share (through
    /// `handover`) so a fork cannot split one, and re-check the owner under it.
    for_process: AtomicBool,
    handover: Mutex<()>,
    /// Held by the posts of an install or a timer start from their last look
    /// at the loop's state to the post (see [`PostGate`]), and by whoever
    /// marks the loop finished: such a message is queued before the loop
    /// finishes (and read by its teardown) or refused. One queued after would
    /// hold an object or a timer, which holds the loop, which holds the
    /// message: never dropped.
    finishing: Mutex<()>,
    /// The loop's cross-process inbox, once the system has a region.
    pub(crate) mailbox: OnceLock<MailboxAddr>,
    mailbox_released: AtomicBool,
}

/// Hands out object slots; slot 0 is the loop's own control object.
#[derive(Default)]
struct KeyAlloc {
    generations: Vec<u32>,
    free: Vec<u32>,
}

impl KeyAlloc {
    fn alloc(&mut self) -> ObjectKey {
        if let Some(index) = self.free.pop() {
            let generation = self.generations[index as usize];
            return ObjectKey { index, generation };
        }
        if self.generations.is_empty() {
            self.generations.push(0); // the control object's slot
        }
        let index = u32::try_from(self.generations.len()).unwrap_or(u32::MAX);
        self.generations.push(0);
        ObjectKey {
            index,
            generation: 0,
        }
    }

    fn release(&mut self, key: ObjectKey) {
        if let Some(g) = self.generations.get_mut(key.index as usize) {
            *g = g.wrapping_add(1);
            self.free.push(key.index);
        }
    }
}

impl LoopShared {
    fn state(&self) -> LoopState {
        match self.state.load(Ordering::Acquire) {
            IDLE => LoopState::Idle,
            RUNNING => LoopState::Running,
            STOPPING => LoopState::Stopping,
            _ => LoopState::Finished,
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.state.load(Ordering::Acquire) == FINISHED
    }

    /// The process running this loop.
    #[inline]
    pub(crate) fn owner(&self) -> u32 {
        self.owner.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_for_process(&self) {
        self.for_process.store(true, Ordering::Release);
    }

    /// True if another process runs this loop (this is a replica).
    #[inline]
    pub(crate) fn is_remote(&self) -> bool {
        self.owner() != system::my_proc()
    }

    /// True if another process runs this loop or will: a replica, or the
    /// loop of an `EventLoopProcess` not started (its child runs it; in the
    /// child, once it runs, it is local). A request to it travels as a record
    /// and comes back to a reply mailbox: queued in this process's inbox
    /// before the start, it ran in the child against the child's copy of the
    /// request, and the requester here had no answer but its timeout (and a
    /// `request_to` two `Responses`).
    #[inline]
    pub(crate) fn answers_elsewhere(&self) -> bool {
        self.is_remote()
            || (self.for_process.load(Ordering::Acquire) && !self.started.load(Ordering::Acquire))
    }

    /// Hands the loop to process `p` (before that process is forked).
    pub(crate) fn set_owner(&self, p: u32) {
        self.owner.store(p, Ordering::Release);
        if let (Some(region), Some(addr)) = (system::region(), self.mailbox.get()) {
            region
                .mailbox_header(addr.index)
                .owner
                .store(p, Ordering::Release);
        }
    }

    /// A loop of another process known only by its mailbox (reached through
    /// connections made elsewhere).
    pub(crate) fn remote_stub(
        name: String,
        id: LoopId,
        owner: u32,
        addr: MailboxAddr,
    ) -> Arc<Self> {
        let lp = LoopShared {
            id,
            label: Arc::from(name.as_str()),
            name,
            inbox: Inbox::new(1),
            counters: Default::default(),
            state: AtomicU8::new(RUNNING),
            started: AtomicBool::new(true),
            keys: Mutex::new(KeyAlloc::default()),
            timers: Mutex::new(Vec::new()),
            owner: crate::sync::AtomicU32::new(owner),
            for_process: AtomicBool::new(false),
            handover: Mutex::new(()),
            finishing: Mutex::new(()),
            mailbox: OnceLock::new(),
            mailbox_released: AtomicBool::new(true),
        };
        let _ = lp.mailbox.set(addr);
        Arc::new(lp)
    }

    /// Gives the loop a mailbox in the region (once) and moves its doorbell there.
    fn attach(&self, region: &'static Region) {
        if self.mailbox.get().is_some() {
            return;
        }
        match mailbox::claim(region, self.owner()) {
            Some(addr) => {
                if self.mailbox.set(addr).is_ok() {
                    self.inbox
                        .use_shared_bell(&region.mailbox_header(addr.index).bell);
                } else {
                    region.release_mailbox(addr.index);
                }
            }
            None => log::warn!(
                "event loop {:?}: no free mailbox (at most {} loops are reachable across \
                 processes); it stays reachable from this process only",
                self.name,
                crate::transport::shm::region::MAX_MAILBOXES
            ),
        }
    }

    /// Before the last drain of a finishing loop's mailbox: its generation
    /// moves on, so a sender that waited for room (see
    /// `remote::send_call_again`) and finds the room this drain makes is
    /// refused instead of writing where no one reads. A sender in the middle
    /// of its write lands its record within a grace: the teardown drains
    /// again then. (One preempted in the middle for longer still lands one
    /// there: counted by no one, skipped by the mailbox's next owner.)
    fn retire_mailbox(&self) {
        if self.is_remote() || self.mailbox_released.load(Ordering::Acquire) {
            return;
        }
        if let (Some(region), Some(addr)) = (system::region(), self.mailbox.get()) {
            region.retire_mailbox(addr.index);
        }
    }

    /// A finished loop's last look at its mailbox `mb`: retires it, then
    /// drops what other processes left there (counted), answering each
    /// request at once, "not delivered: the loop stopped", which its
    /// requester would otherwise learn only at its timeout.
    pub(super) fn drain_stopped_mailbox(&self, mb: mailbox::MailboxConsumer) {
        self.retire_mailbox();
        let addr = mb.addr();
        let drain_rest = || {
            mb.drain(
                &mut mailbox::Cleared::every_ring(),
                usize::MAX,
                |_, rec| self.answer_dropped(rec, addr, DropReason::LoopStopped),
                |_, _| (),
            )
        };
        let mut n = drain_rest();
        // A sender that found the mailbox live just before it retired may
        // still be writing its record: done within a grace, unless its
        // thread was preempted in the middle for longer (the same bound
        // `transport::barrier` relies on). Drained then, and counted: it
        // was left unread and uncounted (review helper-41). Only other
        // processes write there: none alive, no wait.
        if system::region().is_some_and(system::others_alive) {
            std::thread::sleep(crate::transport::barrier::GRACE);
            n += drain_rest();
        }
        for _ in 0..n {
            self.counters.dropped(DropReason::LoopStopped, &self.name);
        }
    }

    /// Answers the request `rec` (a record of mailbox `addr`) is, if it is
    /// one: not delivered, `why`.
    pub(super) fn answer_dropped(&self, rec: &[u8], addr: MailboxAddr, why: DropReason) {
        let Ok(remote::Call {
            request: Some(tag), ..
        }) = remote::parse(rec, addr)
        else {
            return;
        };
        let dropped = crate::signal::ReplyError::Undelivered(why);
        if let Err(reason) = crate::signal::request::send_reply(tag, Err(dropped)) {
            // Counted as an answer the loop could not send (see `answer_record`).
            self.counters.dropped(reason, &self.name);
        }
    }

    /// Marks the loop finished under `finishing` (see there).
    pub(super) fn mark_finished(&self) {
        let _gate = lock(&self.finishing);
        self.state.store(FINISHED, Ordering::Release);
    }

    /// What a post of an install or a timer start may do now, held until the
    /// post (see `finishing`). `handover` first, as every post to a process's
    /// loop takes it: a post blocked under it (a full inbox, `Overflow::Block`)
    /// must not hold up, through `finishing`, the teardown that would free it
    /// (review helper-63).
    pub(crate) fn post_gate(&self) -> PostGate<'_> {
        if local::current_loop_id() == Some(self.id) {
            // Its own thread: running, or in its teardown (finished).
            let fate = if self.is_finished() {
                Fate::Finished
            } else {
                Fate::Open
            };
            return PostGate {
                lp: self,
                fate,
                on_loop: true,
                _locks: None,
            };
        }
        let handover = self
            .for_process
            .load(Ordering::Acquire)
            .then(|| lock(&self.handover));
        let finishing = lock(&self.finishing);
        let fate = if self.is_finished() {
            Fate::Finished
        } else if self.is_remote() {
            Fate::Remote
        } else {
            Fate::Open
        };
        PostGate {
            lp: self,
            fate,
            on_loop: false,
            _locks: Some((handover, finishing)),
        }
    }

    /// Frees the mailbox (by the owning process, once the loop is done).
    fn release_mailbox(&self) {
        if self.is_remote() || self.mailbox_released.swap(true, Ordering::AcqRel) {
            return;
        }
        if let (Some(region), Some(addr)) = (system::region(), self.mailbox.get()) {
            region.release_mailbox(addr.index);
        }
    }

    /// Sends a control message; from the loop's own thread it goes to the local
    /// queue, handled at the top of the next iteration.
    pub(crate) fn control(&self, msg: Control) {
        if local::current_loop_id() == Some(self.id) {
            local::post_control(msg);
            return;
        }
        let handover = self
            .for_process
            .load(Ordering::Acquire)
            .then(|| lock(&self.handover));
        if self.is_remote() {
            // Logged with the lock released: a fork holds stderr's lock while
            // it waits for the framework's locks, and a logger writing to
            // stderr under one would wait for the fork (review helper-49).
            drop(handover);
            // Handed to a child meanwhile: control messages no longer reach it.
            log::warn!(
                "event loop {:?} moved to a child process; control message dropped",
                self.name
            );
            return;
        }
        self.inbox.control(msg);
        drop(handover);
    }

    pub(crate) fn remove_object(&self, key: ObjectKey) {
        self.control(Control::Remove(key));
    }

    pub(crate) fn release_key(&self, key: ObjectKey) {
        lock(&self.keys).release(key);
    }

    /// Marks the loop stopping; false if it already was (or finished).
    fn begin_stop(&self) -> Result<(), StopError> {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            match s {
                STOPPING => return Err(StopError::AlreadyStopping(self.name.clone())),
                FINISHED => return Err(StopError::Finished(self.name.clone())),
                _ => {}
            }
            match self
                .state
                .compare_exchange(s, STOPPING, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(now) => s = now,
            }
        }
    }

    pub(crate) fn register_timer(&self, t: &Arc<TimerShared>) {
        let finished = {
            let mut timers = lock(&self.timers);
            timers.retain(|w| w.strong_count() > 0);
            timers.push(Arc::downgrade(t));
            // Under the lock: a loop that finishes after this retires `t`
            // with the others; one that finished before (since the caller's
            // look) has retired them, and is seen finished here.
            self.is_finished()
        };
        if finished {
            t.retire();
        }
    }

    /// The loop finished: its timers never fire again.
    fn retire_timers(&self) {
        for t in self.take_timers() {
            t.retire();
        }
    }

    /// The loop's process ended: the parent's copies of its timers (made
    /// before the start) say inactive from now (they said active for good).
    /// Quietly: the child announced their `destroyed`.
    fn retire_timers_quietly(&self) {
        for t in self.take_timers() {
            t.retire_quietly();
        }
    }

    fn take_timers(&self) -> Vec<Arc<TimerShared>> {
        let timers = std::mem::take(&mut *lock(&self.timers));
        timers.iter().filter_map(Weak::upgrade).collect()
    }

    /// Drops (and counts) the calls left in the data ring of a finished loop,
    /// then retires the ring: a post that passed its `is_finished` check
    /// before the loop finished and lands after this drain is refused (and
    /// counted by its sender) instead of sitting in a ring no one reads
    /// again; the ring's storage is freed. A post in the middle of its write
    /// keeps the ring busy: drain it too, and try again. (A post stuck
    /// between its claim and its write for a second leaves the ring as it
    /// was before.)
    fn close_data(&self) {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            while let Some(env) = self.inbox.try_recv_data() {
                drop(env);
                self.counters.dropped(DropReason::LoopStopped, &self.name);
            }
            if self.inbox.retire_data() {
                break;
            }
            if std::time::Instant::now() > give_up {
                log::warn!("loop {:?}: its inbox could not be closed", self.name);
                break;
            }
            std::thread::yield_now();
        }
    }

    /// The last handle to a loop that never ran went: nothing can run it now.
    /// Its objects, still queued as installs, go as a finished loop's do
    /// (retired, `destroyed` emitted, ids freed, then dropped here), and what
    /// was queued for them is dropped and counted. Left queued, an install
    /// held its object, the object its loop, and the loop the install: none
    /// was ever dropped, and the ids stayed taken.
    fn discard_unrun(&self, control: &ObjectShared) {
        // Run (or running) here, or handed to a child: not ours to discard.
        // Claiming the start keeps any `exec` away from here on.
        if self.is_remote() || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        self.mark_finished();
        control.retire();
        self.reap_installs();
        self.close_data();
        // Calls and requests other processes sent (a loop of this process,
        // never handed to a child, has a mailbox they can reach).
        match (system::region(), self.mailbox.get()) {
            (Some(region), Some(addr)) => {
                self.drain_stopped_mailbox(mailbox::MailboxConsumer::new(region, *addr))
            }
            _ => self.retire_mailbox(),
        }
        self.release_mailbox();
        self.retire_timers();
    }

    /// The objects still queued as installs in the inbox of a loop that never
    /// ran: retired as a finished loop's objects are (`destroyed` emitted, ids
    /// freed), then dropped. Other control messages read on the way are
    /// dropped: a finished loop does nothing with them.
    fn reap_installs(&self) {
        let mut objects = Vec::new();
        // Until empty: a `destroyed` receiver may post more (a removal).
        while let Some(msg) = self.inbox.try_recv_control() {
            if let Control::Install { shared, object } = msg {
                shared.retire();
                objects.push((shared, object));
            }
        }
        for (shared, object) in objects {
            local::drop_object(object, &shared.id);
        }
    }
}

/// Whether a message that holds an object or a timer may be posted to a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Open,
    Finished,
    Remote,
}

/// See [`LoopShared::post_gate`]: the loop's [`Fate`] stays as it says until
/// this goes.
pub(crate) struct PostGate<'a> {
    lp: &'a LoopShared,
    fate: Fate,
    on_loop: bool,
    _locks: Option<(
        Option<crate::sync::Guard<'a, ()>>,
        crate::sync::Guard<'a, ()>,
    )>,
}

impl PostGate<'_> {
    pub(crate) fn fate(&self) -> Fate {
        self.fate
    }

    /// Posts `msg` (the fate is `Open`).
    pub(crate) fn post(self, msg: Control) {
        debug_assert_eq!(self.fate, Fate::Open);
        if self.on_loop {
            local::post_control(msg);
        } else {
            self.lp.inbox.control(msg);
        }
    }
}

/// Delivers one emission's arguments to one slot: inline when allowed, else to
/// the receiver's loop (locally when the emitter runs that loop).
#[inline(always)]
pub(crate) fn deliver<A: SignalArgs>(
    t: &SlotTarget<A>,
    args: A,
    meta: Option<Arc<Meta>>,
) -> Result<(), DropReason> {
    deliver_counted(t, args, meta, true)
}

/// [`deliver`]; `count`: a refusal is counted as a drop of the receiving loop
/// (false when the caller will try another receiver, as a group does).
///
/// The same-loop case (a direct call, the hot path) is inlined into the
/// emission; posting to another loop or process is out of line.
#[inline(always)]
pub(crate) fn deliver_counted<A: SignalArgs>(
    t: &SlotTarget<A>,
    args: A,
    meta: Option<Arc<Meta>>,
    count: bool,
) -> Result<(), DropReason> {
    if local::current_loop_id() == Some(t.loop_id) {
        deliver_here(t, args, meta, count)
    } else {
        deliver_elsewhere(t, args, meta, count)
    }
}

/// [`deliver`] when the emitting thread runs the receiver's loop: a direct
/// call unless the connection is queued or the receiver is busy. A receiver
/// removed but still connected (its connections go right after its
/// `destroyed` signal) is refused, so a group tries its next member.
#[inline(always)]
fn deliver_here<A: SignalArgs>(
    t: &SlotTarget<A>,
    args: A,
    meta: Option<Arc<Meta>>,
    count: bool,
) -> Result<(), DropReason> {
    let args = if t.kind == crate::signal::ConnectionKind::Queued {
        args
    } else {
        match local::call_direct(t, args, meta.as_deref(), count) {
            Ok(()) => return Ok(()),
            Err(local::NotCalled::Busy(args)) => args,
            Err(local::NotCalled::Blocked(args)) => {
                post_behind_task(t, args, meta);
                return Ok(());
            }
            Err(local::NotCalled::Gone(_)) => return Err(DropReason::ReceiverGone),
        }
    };
    post_here(t, args, meta);
    Ok(())
}

/// Queues a call behind the async task that owns its receiver (out of line,
/// as `post_here`).
#[inline(never)]
fn post_behind_task<A: SignalArgs>(t: &SlotTarget<A>, args: A, meta: Option<Arc<Meta>>) {
    local::post_behind_task(Envelope::new(t, args, meta));
}

/// Queues a call on the emitting thread's own loop (out of line: the direct
/// call is the hot path).
#[inline(never)]
fn post_here<A: SignalArgs>(t: &SlotTarget<A>, args: A, meta: Option<Arc<Meta>>) {
    local::post_local(Envelope::new(t, args, meta));
}

/// A plain emit's delivery to `t` from a signal field's fast path (see
/// `signal/fast.rs`): the direct call when this thread runs `t`'s loop, else
/// the post, both without the general path's metadata and reports (a failed
/// post is counted where it failed). `Err(args)` only when the direct call
/// could not be made (a busy receiver): the general path queues it.
#[inline(always)]
pub(crate) fn deliver_plain<A: SignalArgs>(t: &SlotTarget<A>, args: A) -> Result<(), A> {
    if local::current_loop_id() == Some(t.loop_id) {
        local::call_here(t, args)
    } else {
        deliver_elsewhere_plain(t, args);
        Ok(())
    }
}

/// [`deliver_plain`] to another loop or process: a post to another process
/// without the general path's metadata and drop-count decisions (a failed
/// post is counted, as `deliver_elsewhere` counts it).
#[inline(never)]
fn deliver_elsewhere_plain<A: SignalArgs>(t: &SlotTarget<A>, args: A) {
    post_elsewhere_counted(t, args);
}

/// A plain emit's delivery to `t`, a slot of another process's loop, through
/// the connection's `route` (see `signal/fast.rs`): the post of
/// [`deliver_elsewhere_plain`] without re-deriving the mailbox, the ring and
/// the record header per emit. A route that no longer serves (this is a
/// forked child, or the loop's handover went back) leaves the emit to
/// [`deliver_plain`]. `Err(args)` as there. Out of line: the same-loop
/// direct calls stay small.
#[inline(never)]
pub(crate) fn deliver_routed<A: SignalArgs>(
    t: &SlotTarget<A>,
    route: &Route,
    args: A,
) -> Result<(), A> {
    let lp = &t.recv.lp;
    if !route.serves(lp) {
        return deliver_unrouted(t, args);
    }
    if let Err(reason) = remote::post_routed(lp, t, route, &args) {
        lp.counters.dropped(reason, &lp.name);
    }
    Ok(())
}

/// [`deliver_routed`] when its route no longer serves.
#[cold]
#[inline(never)]
fn deliver_unrouted<A: SignalArgs>(t: &SlotTarget<A>, args: A) -> Result<(), A> {
    deliver_plain(t, args)
}

/// The post of [`deliver_elsewhere_plain`] (also a group of one's, from its
/// own out-of-line caller): true if delivered, else false with the drop
/// counted at the receiving loop.
#[inline(always)]
pub(crate) fn post_elsewhere_counted<A: SignalArgs>(t: &SlotTarget<A>, args: A) -> bool {
    let lp = &t.recv.lp;
    // `is_remote`, with the owner loaded once for the post too.
    let owner = lp.owner();
    if owner == system::my_proc() {
        // The common post first (no room: the general path's wait).
        return match try_post_here(t, args) {
            Ok(()) => true,
            Err(args) => deliver_elsewhere(t, args, None, true).is_ok(),
        };
    }
    let result = match lp.mailbox.get() {
        Some(addr) => remote::post_plain(lp, t, &args, *addr, owner),
        None => Err(DropReason::ReceiverGone),
    };
    match result {
        Ok(()) => true,
        Err(reason) => {
            lp.counters.dropped(reason, &lp.name);
            false
        }
    }
}

/// A group member's try from a signal field's fast path, the member's loop
/// not this thread's: a post to it, in another process or on another thread
/// of this one, with `t`'s policy (the member's quick target: no wait).
/// `Err(args)`, nothing counted, when the post was refused or the loop is a
/// process's not running yet (being handed over): the general path then
/// tries the member again, counting what it refuses, and the rest of the
/// group. (A refusal the post logs, arguments that do not encode, is logged
/// again there, as for every member it tries.) Inlined into its one caller,
/// itself out of line (`Turns::post_elsewhere`).
#[inline(always)]
pub(crate) fn try_post_elsewhere<A: SignalArgs>(t: &SlotTarget<A>, args: A) -> Result<(), A> {
    let lp = &t.recv.lp;
    let owner = lp.owner();
    if owner != system::my_proc() {
        return match lp.mailbox.get() {
            Some(addr) if remote::post_plain(lp, t, &args, *addr, owner).is_ok() => Ok(()),
            _ => Err(args),
        };
    }
    try_post_here(t, args)
}

/// A post to the inbox of `t`'s loop, a loop of this process run by another
/// thread, that never waits: `Err(args)`, nothing counted, when the inbox is
/// full, the loop finished, or it is a process's loop (the general path's
/// care: its handover lock).
#[inline(always)]
fn try_post_here<A: SignalArgs>(t: &SlotTarget<A>, args: A) -> Result<(), A> {
    let lp = &t.recv.lp;
    if lp.for_process.load(Ordering::Acquire) || lp.is_finished() {
        return Err(args);
    }
    match lp.inbox.post(Envelope::new(t, args, None), None) {
        Ok(()) => Ok(()),
        Err(PostError::Full(envelope)) => match envelope.into_args() {
            Some(args) => Err(args),
            // The envelope was built from an `A` just above: its arguments are
            // an `A`. (Counting a drop here instead would count the emission
            // delivered too, in a group.)
            None => unreachable!("an envelope's arguments changed type"),
        },
    }
}

/// [`deliver`] to another loop's inbox or another process's mailbox.
#[inline(never)]
fn deliver_elsewhere<A: SignalArgs>(
    t: &SlotTarget<A>,
    args: A,
    meta: Option<Arc<Meta>>,
    count: bool,
) -> Result<(), DropReason> {
    use crate::signal::Overflow;
    let lp = &t.recv.lp;
    // A loop handed to a child stays remote (the handover only goes back if the
    // fork fails, and the child of a later start then drains the mailbox), so a post that
    // sees it remote needs no fork share: the common cross-process case takes
    // no lock. A loop being handed over is checked again under the lock. One
    // call site of `post_remote`, so it is inlined here (~20 instructions).
    let handover = if lp.is_remote() {
        None
    } else {
        lp.for_process
            .load(Ordering::Acquire)
            .then(|| lock(&lp.handover))
    };
    if lp.is_remote() {
        drop(handover);
        return post_remote(lp, t, &args, meta.as_deref(), count);
    }
    let _handover = handover;
    if lp.is_finished() {
        if count {
            lp.counters.dropped(DropReason::LoopStopped, &lp.name);
        }
        return Err(DropReason::LoopStopped);
    }
    let wait = match t.overflow {
        Overflow::Block(d) => Some(d),
        Overflow::DropNewest | Overflow::Fail => None,
    };
    match lp.inbox.post(Envelope::new(t, args, meta), wait) {
        Ok(()) => Ok(()),
        Err(PostError::Full(envelope)) => {
            drop(envelope);
            // A ring retired by the loop's teardown looks full: the loop
            // stopped (its FINISHED store comes before the retire).
            let reason = if lp.is_finished() {
                DropReason::LoopStopped
            } else {
                DropReason::QueueFull
            };
            if count {
                lp.counters.dropped(reason, &lp.name);
            }
            Err(reason)
        }
    }
}

/// Sends a request record to the loop of another process that `t`'s receiver
/// lives on; counts a drop.
pub(crate) fn deliver_request<A: SignalArgs>(
    t: &SlotTarget<A>,
    args: &A,
    meta: Option<&Meta>,
    tag: crate::signal::request::RequestTag,
) -> Result<(), DropReason> {
    let lp = &t.recv.lp;
    let result = match lp.mailbox.get() {
        Some(addr) => match meta {
            None => remote::post_request(lp, t, args, &tag, *addr, lp.owner()),
            Some(_) => remote::post(lp, t, args, meta, Some(&tag), *addr, lp.owner()),
        },
        None => Err(DropReason::ReceiverGone),
    };
    if let Err(reason) = result {
        lp.counters.dropped(reason, &lp.name);
    }
    result
}

/// Posts to the mailbox of a loop another process runs; counts a drop.
#[inline]
fn post_remote<A: SignalArgs>(
    lp: &LoopShared,
    t: &SlotTarget<A>,
    args: &A,
    meta: Option<&Meta>,
    count: bool,
) -> Result<(), DropReason> {
    let result = match lp.mailbox.get() {
        Some(addr) => match meta {
            None => remote::post_plain(lp, t, args, *addr, lp.owner()),
            Some(_) => remote::post(lp, t, args, meta, None, *addr, lp.owner()),
        },
        None => Err(DropReason::ReceiverGone),
    };
    if let (Err(reason), true) = (result, count) {
        lp.counters.dropped(reason, &lp.name);
    }
    result
}

/// Posts a call whose arguments are encoded already (a retained value) to a
/// slot of a loop another process runs; counts a drop.
pub(crate) fn post_encoded<A: SignalArgs>(
    t: &SlotTarget<A>,
    args: &[u8],
    meta: Option<crate::signal::meta::MetaWireRef<'_>>,
) -> Result<(), DropReason> {
    let lp = &t.recv.lp;
    let result = match lp.mailbox.get() {
        Some(addr) => remote::post_encoded(lp, t, args, meta, *addr, lp.owner()),
        None => Err(DropReason::ReceiverGone),
    };
    if let Err(reason) = result {
        lp.counters.dropped(reason, &lp.name);
    }
    result
}

/// Configures a loop before creating it.
///
/// ```
/// use signal_slot::EventLoop;
/// let lp = EventLoop::builder("sized").capacity(1024).create();
/// assert_eq!(lp.name(), "sized");
/// ```
#[derive(Debug, Clone)]
pub struct EventLoopBuilder {
    name: String,
    capacity: usize,
}

impl EventLoopBuilder {
    /// How many queued messages the inbox holds before the connections'
    /// [`Overflow`](crate::Overflow) policy applies (default 8192; at least 1).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Creates the loop (idle until [`EventLoop::exec`]).
    pub fn create(self) -> EventLoop {
        let me = system::my_proc();
        let shared = Arc::new(LoopShared {
            id: LoopId(
                u64::from(system::my_incarnation()) << 48
                    | NEXT_LOOP.fetch_add(1, Ordering::Relaxed),
            ),
            owner: crate::sync::AtomicU32::new(me),
            for_process: AtomicBool::new(false),
            handover: Mutex::new(()),
            finishing: Mutex::new(()),
            mailbox: OnceLock::new(),
            mailbox_released: AtomicBool::new(false),
            inbox: Inbox::new(self.capacity),
            counters: Default::default(),
            state: AtomicU8::new(IDLE),
            started: AtomicBool::new(false),
            keys: Mutex::new(KeyAlloc::default()),
            timers: Mutex::new(Vec::new()),
            label: Arc::from(self.name.as_str()),
            name: self.name,
        });
        let control = Arc::new(ObjectShared::new(
            ObjectId::internal(format!("#loop:{}", shared.name)),
            ObjectKey {
                index: 0,
                generation: 0,
            },
            shared.clone(),
            Box::new([]),
            false,
            CONTROL_SLOTS,
        ));
        {
            let mut all = lock(&ALL_LOOPS);
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&shared));
        }
        if let Some(region) = system::region() {
            shared.attach(region);
        }
        let last = Arc::new(LastHandle {
            shared: shared.clone(),
            control: control.clone(),
        });
        EventLoop {
            shared,
            control,
            _last: last,
        }
    }
}

/// An event loop: owns objects, runs their slots on the thread that calls
/// [`exec`](Self::exec). Cloning gives another handle to the same loop. When
/// the last handle to a loop that never ran goes, its objects are removed as
/// a finished loop's are (their `destroyed` emitted, then dropped).
///
/// ```
/// use signal_slot::prelude::*;
/// use std::time::Duration;
///
/// #[derive(EventLoopObject, Default)]
/// struct Greeter {
///     #[signal]
///     greeted: Signal<(String,)>,
/// }
///
/// #[slots]
/// impl Greeter {
///     fn greet(&mut self, name: String) {
///         self.greeted.emit((format!("hello {name}"),));
///     }
/// }
///
/// let lp = EventLoop::new("doc-loop");
/// let g = lp.add("greeter-doc", Greeter::default()).unwrap();
/// g.greeted().connect(&lp.stop_slot()).unwrap(); // stop after the first greeting
/// g.greet().invoke(("world".into(),)).unwrap();
/// lp.exec().unwrap();
/// assert_eq!(lp.stats().delivered, 2); // greet, then stop
/// ```
#[derive(Clone)]
pub struct EventLoop {
    shared: Arc<LoopShared>,
    /// The loop's own object: the receiver of its stop slot.
    control: Arc<ObjectShared>,
    /// Shared by every handle: goes with the last one.
    _last: Arc<LastHandle>,
}

/// Dropped with the last [`EventLoop`] handle. Only a handle can run the loop
/// (`Handle`s and slots hold its `LoopShared`, not it), so a loop that never
/// ran by then never will: it is discarded ([`LoopShared::discard_unrun`]).
struct LastHandle {
    shared: Arc<LoopShared>,
    control: Arc<ObjectShared>,
}

impl Drop for LastHandle {
    fn drop(&mut self) {
        self.shared.discard_unrun(&self.control);
    }
}

/// The object behind [`EventLoop::stop_slot`].
struct LoopControl;

fn stop_thunk<A>(obj: &mut dyn std::any::Any, _: A, _: Option<&Meta>) {
    if obj.downcast_mut::<LoopControl>().is_some() {
        local::request_stop();
    }
}

/// The control object's slots as seen from other processes: the stop slot
/// ignores its arguments, whatever signal it was connected to.
static CONTROL_SLOTS: &[crate::signal::SlotEntry] = &[crate::signal::SlotEntry {
    name: "stop",
    typed: &(stop_thunk::<()> as crate::signal::SlotFn<()>),
    decode_call: |obj, _bytes, meta| {
        stop_thunk::<()>(obj, (), meta);
        Ok(())
    },
    reply_type: "()",
    typed_reply: &(stop_reply as crate::signal::reply::ReplyFn<()>),
    decode_reply: |obj, _bytes, meta| Ok(stop_reply(obj, (), meta)),
}];

/// The stop slot, requested: stops the loop and answers `()`.
fn stop_reply(
    obj: &mut dyn std::any::Any,
    args: (),
    meta: Option<&Meta>,
) -> Option<crate::signal::reply::ReplyValue> {
    stop_thunk::<()>(obj, args, meta);
    Some(crate::signal::reply::ReplyValue::new(()))
}

pub(crate) fn inject_raw_record(lp: &EventLoop, bytes: &[u8]) -> bool {
    match (system::region(), lp.shared.mailbox.get()) {
        (Some(region), Some(addr)) => {
            mailbox::send(region, addr.index, system::my_proc(), bytes.len(), |b| {
                b.copy_from_slice(bytes)
            })
            .is_ok()
        }
        _ => false,
    }
}

/// Gives every loop of this process a mailbox in the (new) region.
pub(crate) fn attach_all(region: &'static Region) {
    let loops: Vec<Arc<LoopShared>> = lock(&ALL_LOOPS).iter().filter_map(Weak::upgrade).collect();
    for lp in loops {
        if !lp.is_finished() {
            lp.attach(region);
        }
    }
}

impl Drop for LoopShared {
    fn drop(&mut self) {
        self.release_mailbox();
    }
}

impl EventLoop {
    /// A loop with default settings.
    pub fn new(name: impl Into<String>) -> Self {
        Self::builder(name).create()
    }

    /// Configure a loop before creating it.
    pub fn builder(name: impl Into<String>) -> EventLoopBuilder {
        EventLoopBuilder {
            name: name.into(),
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Identifies the loop within the process.
    pub fn id(&self) -> LoopId {
        self.shared.id
    }

    /// Where the loop is in its run.
    pub fn state(&self) -> LoopState {
        self.shared.state()
    }

    /// Puts `object` on this loop under `id` and returns a handle to it. Works
    /// before and while the loop runs, from any thread; the object is handed to
    /// the loop thread, which owns it from then on.
    ///
    /// Errors (the object is handed back in the error): `id` breaks the
    /// [`ObjectId`] rules, a live object already has it, or the loop finished.
    pub fn add<T: EventLoopObject>(
        &self,
        id: impl AsRef<str>,
        mut object: T,
    ) -> Result<Handle<T>, AddError<T>> {
        let id = match ObjectId::new(id) {
            Ok(id) => id,
            Err(e) => return Err(AddError::new(e.into(), object)),
        };
        if self.shared.is_finished() {
            return Err(AddError::new(
                AddErrorKind::LoopFinished(self.shared.name.clone()),
                object,
            ));
        }
        if self.shared.is_remote() {
            return Err(AddError::new(
                AddErrorKind::RemoteLoop(self.shared.name.clone()),
                object,
            ));
        }
        let mut binder = SignalBinder::new(id.clone(), self.shared.id);
        object.__bind_signals(&mut binder);
        let signals = match binder.finish() {
            Ok(signals) => signals,
            Err(e) => return Err(AddError::new(AddErrorKind::InvalidTopic(e), object)),
        };
        let registered = registry::register_with(&id, || {
            let key = lock(&self.shared.keys).alloc();
            Arc::new(ObjectShared::new(
                id.clone(),
                key,
                self.shared.clone(),
                signals,
                true,
                T::__slot_table(),
            ))
        });
        let Some(shared) = registered else {
            return Err(AddError::new(AddErrorKind::DuplicateId(id), object));
        };
        crate::signal::directory::object_added(&shared);
        // The loop may have finished since the check above, its teardown past
        // its last read of the inbox: an install queued then stayed there,
        // its object never dropped, its id taken (see `finishing`).
        let gate = self.shared.post_gate();
        let refused = match gate.fate() {
            Fate::Open => {
                gate.post(Control::Install {
                    shared: shared.clone(),
                    object: Box::new(object),
                });
                return Ok(Handle::new(shared));
            }
            Fate::Finished => AddErrorKind::LoopFinished(self.shared.name.clone()),
            // Handed to a child since the check above.
            Fate::Remote => AddErrorKind::RemoteLoop(self.shared.name.clone()),
        };
        drop(gate);
        // Never anywhere (no `destroyed`): back to the caller, its id freed.
        shared.retire_quietly();
        Err(AddError::new(refused, object))
    }

    /// Runs the loop on the calling thread until it is stopped, then removes its
    /// objects and returns. A loop runs once.
    pub fn exec(&self) -> Result<(), ExecError> {
        if self.shared.for_process.load(Ordering::Acquire) {
            // Run here, it would take the inbox the child is handed at
            // `start()` (and a started process's loop is remote anyway).
            return Err(if self.shared.is_remote() {
                ExecError::Remote(self.shared.name.clone())
            } else {
                ExecError::ForProcess(self.shared.name.clone())
            });
        }
        self.exec_here()
    }

    /// What [`exec`](Self::exec) would refuse now, asked before a thread is
    /// spawned for it (`exec` asks again, atomically, when it runs).
    pub(crate) fn runnable(&self) -> Result<(), ExecError> {
        let name = || self.shared.name.clone();
        if self.shared.is_remote() {
            return Err(ExecError::Remote(name()));
        }
        if self.shared.for_process.load(Ordering::Acquire) {
            return Err(ExecError::ForProcess(name()));
        }
        if self.shared.started.load(Ordering::Acquire) {
            return Err(match self.shared.state() {
                LoopState::Finished => ExecError::Finished(name()),
                _ => ExecError::AlreadyRunning(name()),
            });
        }
        Ok(())
    }

    /// [`exec`](Self::exec) in the child process the loop was handed to.
    pub(crate) fn exec_in_child(&self) -> Result<(), ExecError> {
        self.exec_here()
    }

    fn exec_here(&self) -> Result<(), ExecError> {
        if self.shared.is_remote() {
            return Err(ExecError::Remote(self.shared.name.clone()));
        }
        if let Some(running) = local::current_loop_name() {
            return Err(ExecError::Nested {
                running,
                requested: self.shared.name.clone(),
            });
        }
        if self.shared.started.swap(true, Ordering::AcqRel) {
            return Err(match self.shared.state() {
                LoopState::Finished => ExecError::Finished(self.shared.name.clone()),
                _ => ExecError::AlreadyRunning(self.shared.name.clone()),
            });
        }
        // A stop requested before the start leaves STOPPING in place: the Stop
        // message it queued ends the run after objects are installed.
        let _ =
            self.shared
                .state
                .compare_exchange(IDLE, RUNNING, Ordering::AcqRel, Ordering::Acquire);
        local::run(
            self.shared.clone(),
            self.control.clone(),
            Box::new(LoopControl),
        );
        self.shared.state.store(FINISHED, Ordering::Release);
        self.shared.retire_timers();
        Ok(())
    }

    /// Asks the loop to stop: it finishes the message it is running and `exec`
    /// returns; messages still queued are dropped and counted. Works before the
    /// loop runs (it then stops as soon as it starts).
    ///
    /// Errors when a stop was already requested or the loop finished.
    pub fn stop(&self) -> Result<(), StopError> {
        self.shared.begin_stop()?;
        if self.shared.is_remote() {
            // Another process runs it: call its stop slot there.
            return self
                .stop_slot::<()>()
                .invoke(())
                .map_err(|e| StopError::Unreachable(self.shared.name.clone(), e.to_string()));
        }
        if local::current_loop_id() == Some(self.shared.id) {
            // From one of its own slots: at once, as its stop slot does (a
            // control posted to itself waited for the rest of the batch: up
            // to 256 more slot calls).
            local::request_stop();
            return Ok(());
        }
        self.shared.control(Control::Stop);
        Ok(())
    }

    /// After a fork, in the parent: the loop and everything queued for it now
    /// live in the child. The parent's copies are leaked, not dropped: dropping
    /// them would run user destructors for objects that live on in the child.
    ///
    /// An object holding a handle to its own loop thus keeps the parent's
    /// `LoopShared` alive for good, so the data ring's storage (~0.7 MB at the
    /// default capacity) is freed here: this process posts to the loop only
    /// through its mailbox from now on (it is remote, checked under the fork
    /// share every post takes) and never runs it.
    pub(crate) fn hand_over_to_child(&self) {
        self.mark_started_elsewhere();
        while let Some(msg) = self.shared.inbox.try_recv_control() {
            std::mem::forget(msg);
        }
        while let Some(env) = self.shared.inbox.try_recv_data() {
            std::mem::forget(env);
        }
        if !self.shared.inbox.retire_data() {
            // Something here still uses the ring (the loop was also run in
            // this process): keeping the storage is the safe choice.
            log::debug!(
                "event loop {:?}: inbox busy at the handover, its storage is kept",
                self.shared.name
            );
        }
    }

    /// Marks the loop finished in this process (its process ended).
    pub(crate) fn mark_finished(&self) {
        self.shared.mark_finished();
        self.shared.retire_timers_quietly();
    }

    /// Marks the loop as started here, so this process never runs it (it was
    /// handed to a child process).
    pub(crate) fn mark_started_elsewhere(&self) {
        self.shared.started.store(true, Ordering::Release);
    }

    /// A slot that stops this loop, connectable to a signal of any arguments
    /// (they are ignored). Stopping a loop that already stops is a no-op here.
    pub fn stop_slot<A: SignalArgs>(&self) -> SlotRef<A> {
        SlotRef::new(self.control.clone(), "stop", 0, false, stop_thunk::<A>)
    }

    /// Counters of this loop.
    pub fn stats(&self) -> LoopStats {
        self.shared
            .counters
            .snapshot(self.shared.inbox.len(), self.shared.inbox.waits())
    }

    pub(crate) fn shared(&self) -> &Arc<LoopShared> {
        &self.shared
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("name", &self.shared.name)
            .field("state", &self.shared.state())
            .finish()
    }
}

/// Marks the object behind the stop slot stopping when it runs on its loop.
pub(crate) fn stop_requested_from_slot(shared: &LoopShared) {
    let _ = shared.begin_stop();
}
