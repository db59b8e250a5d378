//! The loop thread's own state: the object table, the local queue, timers, and
//! the run loop itself. Reached through a thread-local while `exec` runs.
//!
//! Async slots (feature `async`): the thunk of an `async fn` slot registers a
//! [`StartTask`] ([`spawn_slot_task`]); the caller of the thunk then takes the
//! object out of its cell (leaving a [`Vacant`], the cell marked busy) and
//! hands it to the task, a future kept in `tasks` and polled on `Poll` control
//! messages, which its waker posts from any thread. Messages for a busy object
//! (queued, direct ones, which then get queued, and mailbox records) wait in
//! the cell's backlog in arrival order and run when the task gives the object
//! back. A task that panics drops its object, which is removed from the loop
//! (the messages that waited are counted as dropped). A task whose object is
//! removed meanwhile runs to its end; the object is then dropped. Tasks left
//! when the loop stops are dropped, not polled.

use super::gather::{Drained, Gather, GATHER};
use super::remote::{self, Unusable};
use super::timer::Timers;
use super::{Control, Envelope, LoopId, LoopShared};
use crate::error::DropReason;
use crate::object::{ObjectId, ObjectKey, ObjectShared};
use crate::signal::{Meta, SignalArgs, SlotTarget};
use crate::transport::shm::mailbox::MailboxAddr;
use crate::transport::shm::mailbox::{Cleared, Found, MailboxConsumer, OneRecord};
use crate::transport::shm::system;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Inbox messages handled before the loop looks at control, local work and
/// timers again.
const BATCH: usize = 256;
/// Idle polls of the work indicators before yielding (a `pause` is ~27 ns on
/// the VMs measured: ~3.5 us), then yields before sleeping. A reply often comes
/// within microseconds, and waking a sleeper on another core costs 20-35 us.
const SPIN_POLLS: u32 = 128;
const SPIN_YIELDS: u32 = 4;
/// A yield that took longer than this ran another thread on our CPU. When
/// the work came after such a yield and its sender went idle on this CPU (or
/// its CPU is unknown), the sender most likely shares the CPU (it could only
/// run while we yielded): polling for it is time taken from it, so the loop
/// polls less (see `LoopLocal::spin_budget`). On the VMs measured a yield
/// with no one else to run takes 0.2-0.57 us, one that runs another thread at
/// least ~1.1 us (a switch there and back). A bound relative to the loop's
/// fastest yield (2x or 3x) was tried: it brought the same-CPU round trip
/// back to 4.6-7.7 us (the slower yields sit close to the switched ones).
/// On a host whose yields alone take longer, every yield looks switched and
/// work from this process's threads shrinks the budget; the wake-up rule
/// (`LoopLocal::woke_for`) grows it back. At 2 us a peer whose turn took
/// less than ~1 us went unnoticed: one side of a ping-pong on one CPU kept
/// polling its whole budget (~4.7 us) every round while its peer waited for
/// the CPU (round trip 5.1 us, 1.9 us with this bound; `BENCH_ONLY=
/// ping_pong_u64` of `processes`, both pinned to cpu0).
const YIELD_SWITCHED: Duration = Duration::from_nanos(700);

/// [`LoopLocal::receiver`] while no slot runs. A table would need 2^32
/// objects before a real key equals it (and that one would then only lose its
/// `object_id()` inside its slots).
const NO_RECEIVER: ObjectKey = ObjectKey {
    index: u32::MAX,
    generation: u32::MAX,
};

thread_local! {
    /// Id of the loop this thread runs (0: none). Read on every emit.
    static LOOP_ID: Cell<u64> = const { Cell::new(0) };
    static CURRENT: RefCell<Option<Rc<LoopLocal>>> = const { RefCell::new(None) };
}

/// What the idle poll found (see `LoopLocal::spin_for_work`).
#[derive(Clone, Copy)]
enum Spun {
    /// A plain record at the head of a ring of the mailbox.
    One(OneRecord),
    /// Records in the mailbox (not a plain one first).
    Records,
    /// Something else (the inbox).
    Work,
    Nothing,
}

struct ObjectCell {
    shared: Arc<ObjectShared>,
    object: RefCell<Box<dyn Any + Send>>,
    /// An async slot's task owns the object (`object` holds a [`Vacant`]).
    busy: Cell<bool>,
    /// Messages for the object that arrived while it was busy, in arrival
    /// order; they run when the task gives the object back.
    backlog: RefCell<VecDeque<Waiting>>,
}

impl ObjectCell {
    fn new(shared: Arc<ObjectShared>, object: Box<dyn Any + Send>) -> Self {
        Self {
            shared,
            object: RefCell::new(object),
            busy: Cell::new(false),
            backlog: RefCell::new(VecDeque::new()),
        }
    }

    /// New messages must wait behind a task or an older waiting message.
    #[inline]
    fn blocked(&self) -> bool {
        self.busy.get() || !self.backlog.borrow().is_empty()
    }
}

/// What an object's cell holds while an async slot's task owns the object.
struct Vacant;

/// A message that waits for its object (see [`ObjectCell::backlog`]).
enum Waiting {
    Envelope(Envelope),
    /// A private copy of a mailbox record (a call or a request from another
    /// process), parsed again when it runs.
    Record(Vec<u8>, MailboxAddr),
}

/// The future of an async slot: owns the object and gives it back when done.
pub(crate) type SlotFuture = Pin<Box<dyn Future<Output = Box<dyn Any + Send>>>>;

/// Builds an async slot's future from the object taken out of its cell.
pub(crate) type StartTask = Box<dyn FnOnce(Box<dyn Any + Send>) -> SlotFuture>;

/// A running async slot.
struct Task {
    cell: Rc<ObjectCell>,
    slot: &'static str,
    future: SlotFuture,
}

/// Wakes a task from any thread: a `Poll` control message to its loop.
struct TaskWaker {
    lp: Weak<LoopShared>,
    task: u64,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(lp) = self.lp.upgrade() {
            if !lp.is_finished() {
                lp.control(Control::Poll(self.task));
            }
        }
    }
}

pub(super) struct LoopLocal {
    shared: Arc<LoopShared>,
    objects: RefCell<Vec<Option<Rc<ObjectCell>>>>,
    /// Messages this loop posted to itself (queued connections, re-entrant calls).
    queue: RefCell<VecDeque<Envelope>>,
    controls: RefCell<VecDeque<Control>>,
    /// Polls a drain of `controls` puts off (see `drain_controls`), kept
    /// between drains so a yielding task allocates nothing.
    later: Cell<Vec<Control>>,
    pub(super) timers: RefCell<Timers>,
    stop: Cell<bool>,
    /// The object whose slot runs now, for `object_id()` of objects with no
    /// signal; [`NO_RECEIVER`] when none. A plain key, not an `Option`: saved
    /// and restored around every direct call in one load and one store.
    receiver: Cell<ObjectKey>,
    /// An async slot's task, registered by its thunk during the call and
    /// started by the caller once the object is no longer borrowed.
    pending: RefCell<Option<(&'static str, StartTask)>>,
    /// An async slot was called on this loop once: only then can objects be
    /// busy or have backlogs, so sync-only loops skip those checks.
    async_used: Cell<bool>,
    /// Running async slots by id.
    tasks: RefCell<HashMap<u64, Task>>,
    /// Idle polls before yielding (at most `SPIN_POLLS`): halved when work
    /// keeps coming only after a yield that ran another thread (a peer on
    /// the same CPU), doubled when it comes after yields that ran nothing or
    /// from a process whose loop went idle on another CPU (a peer elsewhere,
    /// slower than the polls).
    spin_budget: Cell<u32>,
    /// When to let a stream's records gather (see `event_loop::gather`).
    gather: Gather,
    next_task: Cell<u64>,
    /// The receiver of the last message dispatched from the inbox or the
    /// mailbox, kept across batches: a stream, or a ping-pong that hands
    /// one record per batch, finds it here instead of in the table. Cleared
    /// whenever an object is uninstalled (see [`LoopLocal::take_last`]), so it
    /// never keeps a removed object alive.
    last_receiver: Cell<Option<Rc<ObjectCell>>>,
    /// The receiver before the last one, looked at when a message is not
    /// for the last: two objects served in turn (a one-of-N group's members
    /// on this loop, a pair that converse) find theirs in one of the two.
    /// The table lookup it saves cost ~62 instructions a message (callgrind,
    /// core bench `BENCH_ONLY=group_queued`), a third of a group of two's
    /// dispatch in turn on one loop. Not taken by batches like
    /// `last_receiver`: only the lookup path touches it, and an uninstall
    /// clears it at once.
    before_last: Cell<Option<Rc<ObjectCell>>>,
    /// Objects uninstalled so far: a batch that took `last_receiver` puts it
    /// back only if none was uninstalled meanwhile.
    uninstalls: Cell<u64>,
    /// [`LoopLocal::mailbox`], once known (the mailbox and the region are
    /// set once and outlive the loop's run).
    mailbox_cache: Cell<Option<MailboxConsumer>>,
    /// Mailbox rings whose flags the loop cleared before a sleep: looked at
    /// again by every poll and settle until a grace after the clear (see
    /// `mailbox::Cleared`), also while the loop stays busy.
    cleared: Cell<Cleared>,
}

#[inline]
pub(crate) fn current_loop_id() -> Option<LoopId> {
    let id = LOOP_ID.with(Cell::get);
    (id != 0).then_some(LoopId(id))
}

pub(crate) fn current_loop_name() -> Option<String> {
    CURRENT.with(|c| c.borrow().as_ref().map(|l| l.shared.name.clone()))
}

fn with_current<R>(f: impl FnOnce(&LoopLocal) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_deref().map(f))
}

/// The id of the object whose slot runs on this thread now.
pub(crate) fn current_receiver_id() -> Option<ObjectId> {
    with_current(|l| {
        let key = l.receiver.get();
        if key == NO_RECEIVER {
            return None;
        }
        l.lookup(key).map(|c| c.shared.id.clone())
    })
    .flatten()
}

pub(super) fn post_local(env: Envelope) {
    with_current(|l| l.queue.borrow_mut().push_back(env));
}

/// Queues a call to an object an async slot's task owns in that object's
/// backlog, behind the calls already waiting there (the loop's own queue if
/// it no longer waits). Through the loop's queue, a later call could run
/// before it once the task ended (review helper-52).
pub(super) fn post_behind_task(env: Envelope) {
    with_current(|l| match l.lookup(env.key).filter(|c| c.blocked()) {
        Some(cell) => l.wait_for_object(&cell, Waiting::Envelope(env)),
        None => l.queue.borrow_mut().push_back(env),
    });
}

pub(super) fn post_control(msg: Control) {
    with_current(|l| l.controls.borrow_mut().push_back(msg));
}

/// Registers the task of the async slot being called (see [`LoopLocal::pending`]);
/// false when no loop runs on this thread (the call is then dropped).
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) fn spawn_slot_task(slot: &'static str, start: StartTask) -> bool {
    with_current(|l| {
        l.async_used.set(true);
        *l.pending.borrow_mut() = Some((slot, start));
    })
    .is_some()
}

pub(super) fn request_stop() {
    with_current(|l| {
        l.stop.set(true);
        super::stop_requested_from_slot(&l.shared);
    });
}

/// Why a direct call was not made.
pub(super) enum NotCalled<A> {
    /// The receiver is busy (or not on this thread's loop): queue the call.
    Busy(A),
    /// An async slot's task owns the receiver: queue the call behind it
    /// ([`post_behind_task`]).
    Blocked(A),
    /// The receiver was removed (its connections are about to go): nothing to
    /// queue for; a group tries its next member.
    Gone(A),
}

impl<A> NotCalled<A> {
    #[inline(always)]
    fn into_args(self) -> A {
        match self {
            NotCalled::Busy(a) | NotCalled::Blocked(a) | NotCalled::Gone(a) => a,
        }
    }
}

/// Calls a slot inline if the receiver lives on this thread's loop and is not
/// busy; otherwise hands the arguments back, saying why. `count`: a removed
/// receiver is counted as a drop of this loop (false when the caller will try
/// another receiver, as a group does).
#[inline]
pub(super) fn call_direct<A: SignalArgs>(
    t: &SlotTarget<A>,
    args: A,
    meta: Option<&Meta>,
    count: bool,
) -> Result<(), NotCalled<A>> {
    // The closure stays small so the thread-local access inlines; the call
    // itself is one out-of-line function.
    CURRENT.with(|c| match c.borrow().as_deref() {
        Some(l) => l.call_direct(t, args, meta, count),
        None => Err(NotCalled::Busy(args)),
    })
}

/// The whole direct call of a slot that takes no metadata, out of line in
/// one function: the emit fast path of a signal field whose one connection
/// (or group) is such a slot calls only this, once it checked that this
/// thread runs the receiver's loop. `Err(args)` when the call cannot be made
/// (a busy receiver): the caller takes the general path, which queues.
#[inline(never)]
pub(crate) fn call_here<A: SignalArgs>(t: &SlotTarget<A>, args: A) -> Result<(), A> {
    // A counted reference instead of a borrow held across the call: the same
    // cost (one count up and down), and the closure stays small enough for
    // the thread-local access to inline here.
    match CURRENT.with(|c| c.borrow().clone()) {
        // A removed receiver too: the general path counts it, or its group
        // tries the next member.
        Some(l) => l.call_slot(t, args, None).map_err(NotCalled::into_args),
        None => Err(args),
    }
}

impl LoopLocal {
    /// [`call_direct`] on this loop.
    #[inline(never)]
    fn call_direct<A: SignalArgs>(
        &self,
        t: &SlotTarget<A>,
        args: A,
        meta: Option<&Meta>,
        count: bool,
    ) -> Result<(), NotCalled<A>> {
        let r = self.call_slot(t, args, meta);
        if count && matches!(r, Err(NotCalled::Gone(_))) {
            self.shared
                .counters
                .dropped(DropReason::ReceiverGone, &self.shared.name);
        }
        r
    }

    /// The direct call itself, inlined into its two callers.
    #[inline(always)]
    fn call_slot<A: SignalArgs>(
        &self,
        t: &SlotTarget<A>,
        args: A,
        meta: Option<&Meta>,
    ) -> Result<(), NotCalled<A>> {
        // A shared borrow of the table for the call: the table only changes at the
        // top of the run loop, never inside a slot, so no borrow_mut can collide.
        let objects = self.objects.borrow();
        let Some(cell) = objects
            .get(t.key.index as usize)
            .and_then(Option::as_ref)
            .filter(|c| c.shared.key.generation == t.key.generation)
        else {
            return Err(NotCalled::Busy(args));
        };
        if !cell.shared.is_alive() {
            return Err(NotCalled::Gone(args));
        }
        if async_used(self) && cell.blocked() {
            // Queued behind the task that owns the object.
            return Err(NotCalled::Blocked(args));
        }
        let Ok(mut object) = cell.object.try_borrow_mut() else {
            return Err(NotCalled::Busy(args));
        };
        self.run_slot(cell, t.name, || (t.call)(&mut **object, args, meta));
        drop(object);
        self.start_pending(cell);
        Ok(())
    }
}

/// True once an async slot ran on `l`; always false without the `async`
/// feature, so sync-only builds compile the checks away.
#[inline(always)]
fn async_used(l: &LoopLocal) -> bool {
    cfg!(feature = "async") && l.async_used.get()
}

/// Clears the thread-local state even if the loop unwinds.
struct Entered;

impl Drop for Entered {
    fn drop(&mut self) {
        LOOP_ID.with(|id| id.set(0));
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

/// Runs a loop on this thread until stopped, then tears it down.
pub(super) fn run(
    shared: Arc<LoopShared>,
    control: Arc<ObjectShared>,
    control_object: Box<dyn Any + Send>,
) {
    let l = Rc::new(LoopLocal {
        shared,
        objects: RefCell::new(Vec::new()),
        queue: RefCell::new(VecDeque::new()),
        controls: RefCell::new(VecDeque::new()),
        later: Cell::new(Vec::new()),
        timers: RefCell::new(Timers::default()),
        stop: Cell::new(false),
        receiver: Cell::new(NO_RECEIVER),
        pending: RefCell::new(None),
        async_used: Cell::new(false),
        tasks: RefCell::new(HashMap::new()),
        next_task: Cell::new(0),
        spin_budget: Cell::new(SPIN_POLLS),
        gather: Gather::default(),
        last_receiver: Cell::new(None),
        before_last: Cell::new(None),
        uninstalls: Cell::new(0),
        mailbox_cache: Cell::new(None),
        cleared: Cell::new(Cleared::default()),
    });
    CURRENT.with(|c| *c.borrow_mut() = Some(l.clone()));
    LOOP_ID.with(|id| id.set(l.shared.id.0));
    let _entered = Entered;
    l.install(control, control_object);
    l.run_until_stopped();
    l.teardown();
}

impl LoopLocal {
    #[inline]
    fn lookup(&self, key: ObjectKey) -> Option<Rc<ObjectCell>> {
        let objects = self.objects.borrow();
        let cell = objects.get(key.index as usize)?.as_ref()?;
        (cell.shared.key.generation == key.generation).then(|| cell.clone())
    }

    fn install(&self, shared: Arc<ObjectShared>, object: Box<dyn Any + Send>) {
        if !shared.is_alive() {
            // Removed before the loop saw it.
            self.shared.release_key(shared.key);
            drop_object(object, &shared.id);
            return;
        }
        if self.shared.is_finished() {
            // The teardown's: goes as its objects go (an install read after
            // it took them stayed installed, its id taken, never retired).
            shared.retire();
            drop_object(object, &shared.id);
            return;
        }
        let index = shared.key.index as usize;
        let mut objects = self.objects.borrow_mut();
        if objects.len() <= index {
            objects.resize_with(index + 1, || None);
        }
        objects[index] = Some(Rc::new(ObjectCell::new(shared, object)));
    }

    fn uninstall(&self, key: ObjectKey) {
        let cell = {
            let mut objects = self.objects.borrow_mut();
            match objects.get_mut(key.index as usize) {
                Some(slot)
                    if slot
                        .as_ref()
                        .is_some_and(|c| c.shared.key.generation == key.generation) =>
                {
                    slot.take()
                }
                _ => None,
            }
        };
        if let Some(cell) = cell {
            // The cached receiver may be this object: let it go before the
            // drop below (and make any batch running now not put it back).
            self.uninstalls.set(self.uninstalls.get() + 1);
            drop(self.last_receiver.take());
            drop(self.before_last.take());
            self.shared.release_key(key);
            self.drop_backlog(&cell, DropReason::ReceiverGone);
            drop_cell(cell);
        }
    }

    /// Counts and drops the messages waiting for `cell`'s object.
    /// Queues a message behind the task that owns its object; beyond the
    /// loop's capacity it is dropped and counted (`QueueFull`), so a flood to
    /// a slow async slot cannot grow memory without bound.
    fn wait_for_object(&self, cell: &ObjectCell, w: Waiting) {
        let mut backlog = cell.backlog.borrow_mut();
        if backlog.len() >= self.shared.inbox.capacity() {
            drop(backlog);
            self.drop_waiting(w, DropReason::QueueFull);
            return;
        }
        backlog.push_back(w);
    }

    fn drop_backlog(&self, cell: &ObjectCell, why: DropReason) {
        let waiting: Vec<Waiting> = cell.backlog.borrow_mut().drain(..).collect();
        for w in waiting {
            self.drop_waiting(w, why);
        }
    }

    /// Counts a message that will not run; a request from another process
    /// among them gets its answer, "not delivered" and why, at once (review
    /// helper-53: its requester learnt nothing before its timeout). A
    /// request from this process is answered when its envelope drops.
    fn drop_waiting(&self, w: Waiting, why: DropReason) {
        self.shared.counters.dropped(why, &self.shared.name);
        if let Waiting::Record(rec, addr) = w {
            self.shared.answer_dropped(&rec, addr, why);
        }
    }

    /// Starts the task an async slot just registered: takes the object out of
    /// its cell (new messages for it wait in its backlog) and polls the task
    /// at the top of the next iteration.
    #[inline]
    fn start_pending(&self, cell: &Rc<ObjectCell>) {
        // One load on loops that never ran an async slot (the hot path).
        if async_used(self) {
            self.start_pending_task(cell);
        }
    }

    #[cold]
    #[inline(never)]
    fn start_pending_task(&self, cell: &Rc<ObjectCell>) {
        let Some((slot, start)) = self.pending.borrow_mut().take() else {
            return;
        };
        let object = std::mem::replace(&mut *cell.object.borrow_mut(), Box::new(Vacant));
        cell.busy.set(true);
        // Calls for it already in the loop's own queue (queued while it was
        // busy in a slot) wait behind the task too, ahead of the calls made
        // from now on, which go to its backlog: arrival order (review
        // helper-55: they were appended behind those).
        let key = cell.shared.key;
        let mut queue = self.queue.borrow_mut();
        if queue.iter().any(|e| e.key == key) {
            let mut backlog = cell.backlog.borrow_mut();
            let mut kept = VecDeque::with_capacity(queue.len());
            for env in queue.drain(..) {
                if env.key == key {
                    backlog.push_back(Waiting::Envelope(env));
                } else {
                    kept.push_back(env);
                }
            }
            *queue = kept;
        }
        drop(queue);
        let future = start(object);
        let id = self.next_task.get();
        self.next_task.set(id + 1);
        self.tasks.borrow_mut().insert(
            id,
            Task {
                cell: cell.clone(),
                slot,
                future,
            },
        );
        self.controls.borrow_mut().push_back(Control::Poll(id));
    }

    /// Polls a task (an unknown id is a task that already finished).
    fn poll_task(&self, id: u64) {
        let Some(mut task) = self.tasks.borrow_mut().remove(&id) else {
            return;
        };
        let waker = Waker::from(Arc::new(TaskWaker {
            lp: Arc::downgrade(&self.shared),
            task: id,
        }));
        let mut cx = Context::from_waker(&waker);
        let previous = self.receiver.replace(task.cell.shared.key);
        let result = catch_unwind(AssertUnwindSafe(|| task.future.as_mut().poll(&mut cx)));
        self.receiver.set(previous);
        match result {
            Ok(Poll::Pending) => {
                self.tasks.borrow_mut().insert(id, task);
            }
            Ok(Poll::Ready(object)) => self.finish_task(&task.cell, object),
            Err(payload) => {
                self.shared.counters.panicked_by_loop();
                log::error!(
                    "event loop {:?}: async slot {}::{} panicked: {}; the object is \
                     removed, the loop goes on",
                    self.shared.name,
                    task.cell.shared.id,
                    task.slot,
                    panic_message(&payload)
                );
                let Task { cell, future, .. } = task;
                // The object lived in the future: it is dropped with it.
                if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(future))) {
                    log::error!(
                        "dropping the task of {} panicked: {}",
                        cell.shared.id,
                        panic_message(&p)
                    );
                }
                cell.shared.retire();
                self.uninstall(cell.shared.key);
                self.drop_backlog(&cell, DropReason::ReceiverGone);
            }
        }
    }

    /// Gives the object back to its cell and runs what waited for it, until
    /// the backlog is empty or another async slot takes the object.
    fn finish_task(&self, cell: &Rc<ObjectCell>, object: Box<dyn Any + Send>) {
        let installed = self
            .lookup(cell.shared.key)
            .is_some_and(|c| Rc::ptr_eq(&c, cell));
        if !installed || !cell.shared.is_alive() {
            // Removed while its task ran.
            drop_object(object, &cell.shared.id);
            self.drop_backlog(cell, DropReason::ReceiverGone);
            return;
        }
        *cell.object.borrow_mut() = object;
        cell.busy.set(false);
        while !cell.busy.get() && !self.stopping() {
            let Some(waiting) = cell.backlog.borrow_mut().pop_front() else {
                break;
            };
            match waiting {
                Waiting::Envelope(env) => self.run_envelope(cell, env),
                Waiting::Record(bytes, addr) => self.dispatch_waiting_record(&bytes, addr, cell),
            }
        }
    }

    /// Runs one slot call with panic isolation and accounting.
    #[inline]
    fn run_slot(&self, cell: &ObjectCell, slot: &'static str, f: impl FnOnce()) {
        let previous = self.receiver.replace(cell.shared.key);
        let result = catch_unwind(AssertUnwindSafe(f));
        self.receiver.set(previous);
        self.shared.counters.delivered_by_loop();
        if let Err(payload) = result {
            self.slot_panicked(cell, slot, payload);
        }
    }

    /// Counts and logs a slot's panic (out of line: the call path stays small).
    #[cold]
    #[inline(never)]
    fn slot_panicked(&self, cell: &ObjectCell, slot: &'static str, payload: Box<dyn Any + Send>) {
        self.shared.counters.panicked_by_loop();
        log::error!(
            "event loop {:?}: slot {}::{} panicked: {}; the loop goes on",
            self.shared.name,
            cell.shared.id,
            slot,
            panic_message(&payload)
        );
    }

    /// The live object at `key`: the previous message's receiver when it is the
    /// same (streams usually are), else a lookup, kept in `last` for the next
    /// message (borrowed from there: no count up and down per message). A
    /// miss is counted as a drop and leaves `last` as it was.
    #[inline]
    fn receiver_of<'l>(
        &self,
        key: ObjectKey,
        last: &'l mut Option<Rc<ObjectCell>>,
    ) -> Option<&'l Rc<ObjectCell>> {
        // The common case of a stream: the same receiver again.
        let same = last
            .as_ref()
            .is_some_and(|c| c.shared.key == key && c.shared.is_alive());
        if !same && !self.look_up_receiver(key, last) {
            return None;
        }
        last.as_ref()
    }

    /// [`receiver_of`](Self::receiver_of) for a receiver other than the last:
    /// the one before it, or the table's; false (counted) if it is gone.
    #[inline(never)]
    fn look_up_receiver(&self, key: ObjectKey, last: &mut Option<Rc<ObjectCell>>) -> bool {
        let cell = match self.before_last.take() {
            Some(c) if c.shared.key == key => Some(c),
            before => {
                self.before_last.set(before);
                self.lookup(key).or_else(|| {
                    // The object's Install may still sit in the control queue.
                    self.drain_controls();
                    self.lookup(key)
                })
            }
        };
        match cell.filter(|c| c.shared.is_alive()) {
            Some(c) => {
                match last.replace(c) {
                    // Kept only while it lives: an object removed during
                    // this batch (whose uninstall cleared `before_last`
                    // already) would stay alive there past the batch.
                    Some(old) if old.shared.is_alive() => {
                        if let Some(out) = self.before_last.replace(Some(old)) {
                            drop_cell(out);
                        }
                    }
                    // Maybe an object removed during this batch, its last
                    // holder now: dropped like any removed object (its
                    // `Drop` caught), not by a plain overwrite.
                    Some(old) => drop_cell(old),
                    None => {}
                }
                true
            }
            None => {
                self.shared
                    .counters
                    .dropped(DropReason::ReceiverGone, &self.shared.name);
                false
            }
        }
    }

    fn dispatch(&self, env: Envelope) {
        self.dispatch_cached(env, &mut None);
    }

    /// Dispatches, reusing the receiver of the previous message of a batch.
    fn dispatch_cached(&self, env: Envelope, last: &mut Option<Rc<ObjectCell>>) {
        let Some(cell) = self.receiver_of(env.key, last) else {
            return;
        };
        if async_used(self) && cell.blocked() {
            self.wait_for_object(cell, Waiting::Envelope(env));
            return;
        }
        self.run_envelope(cell, env);
    }

    fn run_envelope(&self, cell: &Rc<ObjectCell>, env: Envelope) {
        let Ok(mut object) = cell.object.try_borrow_mut() else {
            // Top-level dispatch never nests, so no object is borrowed here.
            log::error!(
                "object {} busy at top level; message dropped",
                cell.shared.id
            );
            self.shared
                .counters
                .dropped(DropReason::ReceiverGone, &self.shared.name);
            return;
        };
        let Envelope {
            slot, call, meta, ..
        } = env;
        self.run_slot(cell, slot, || call.call(&mut **object, meta.as_deref()));
        drop(object);
        self.start_pending(cell);
    }

    fn handle_control(&self, msg: Control) {
        match msg {
            Control::Install { shared, object } => self.install(shared, object),
            Control::Remove(key) => self.uninstall(key),
            Control::Stop => self.stop.set(true),
            Control::StartTimer {
                timer,
                generation,
                deadline,
            } => self
                .timers
                .borrow_mut()
                .schedule(timer, generation, deadline),
            // Tasks left at the end are dropped by `teardown`, not polled.
            Control::Poll(task) if !self.stopping() => self.poll_task(task),
            Control::Poll(_) => {}
        }
    }

    fn drain_controls(&self) -> bool {
        let mut any = false;
        // A task's polls queued by this thread during this drain (a future
        // that wakes itself and returns `Pending`, as a yield does) wait for
        // the loop's next round: polled here again and again, they kept
        // everything else on the loop from running (review helper-62).
        let mut queued_before = self.controls.borrow().len();
        // Taken (not borrowed: a nested drain, `look_up_receiver`, gets its
        // own) only when a poll is put off.
        let mut later: Option<Vec<Control>> = None;
        loop {
            let local = self.controls.borrow_mut().pop_front();
            let msg = match local {
                Some(m) if queued_before > 0 => {
                    queued_before -= 1;
                    m
                }
                Some(m @ Control::Poll(_)) => {
                    later.get_or_insert_with(|| self.later.take()).push(m);
                    continue;
                }
                Some(m) => m,
                None => match self.shared.inbox.try_recv_control() {
                    Some(m) => m,
                    None => break,
                },
            };
            any = true;
            self.handle_control(msg);
        }
        if let Some(mut later) = later {
            let mut controls = self.controls.borrow_mut();
            for m in later.drain(..).rev() {
                controls.push_front(m);
            }
            self.later.set(later);
            any = true;
        }
        any
    }

    fn drain_inbox(&self) -> bool {
        let Some(mut inbox) = self.shared.inbox.data_receiver() else {
            return false;
        };
        let (mut last, epoch) = self.take_last();
        let mut n = 0;
        while n < BATCH {
            if inbox
                .recv_with(|env| self.dispatch_cached(env, &mut last))
                .is_none()
            {
                break;
            }
            n += 1;
            if self.stopping() {
                break;
            }
        }
        self.keep_last(last, epoch);
        n > 0
    }

    /// A slot of this loop stopped it, or another thread's `stop()` did
    /// (its control message comes later): nothing more runs. Looked at after
    /// each message of a batch: a stop from another thread let up to a
    /// batch (256) more slot calls run (review helper-52).
    #[inline]
    fn stopping(&self) -> bool {
        self.stop.get() || self.stopped_elsewhere()
    }

    /// Another thread's `stop()` (see [`stopping`](Self::stopping)).
    #[inline]
    fn stopped_elsewhere(&self) -> bool {
        self.shared.state.load(std::sync::atomic::Ordering::Relaxed) == super::STOPPING
    }

    /// The receiver cached across batches (see [`LoopLocal::last_receiver`]),
    /// for a batch to use as its `last`, and the count of uninstalls to hand
    /// back with it to [`keep_last`](Self::keep_last).
    #[inline]
    fn take_last(&self) -> (Option<Rc<ObjectCell>>, u64) {
        (self.last_receiver.take(), self.uninstalls.get())
    }

    /// Caches a batch's last receiver for the next batch, unless an object
    /// was uninstalled since [`take_last`](Self::take_last): it may be this
    /// one, which must not be kept alive (dropped here through `drop_cell`,
    /// which drops the object if this was its last reference).
    #[inline]
    fn keep_last(&self, last: Option<Rc<ObjectCell>>, epoch: u64) {
        if self.uninstalls.get() == epoch {
            self.last_receiver.set(last);
        } else if let Some(cell) = last {
            drop_cell(cell);
        }
    }

    /// Runs what was queued locally before this call; later posts wait a round,
    /// so a slot posting to itself cannot starve the inbox.
    fn drain_local(&self) -> bool {
        let n = self.queue.borrow().len();
        for _ in 0..n {
            let Some(env) = self.queue.borrow_mut().pop_front() else {
                break;
            };
            self.dispatch(env);
            if self.stopping() {
                break;
            }
        }
        n > 0
    }

    /// This loop's mailbox, if it has one and this process runs the loop.
    #[inline]
    fn mailbox(&self) -> Option<MailboxConsumer> {
        if let Some(mb) = self.mailbox_cache.get() {
            return Some(mb);
        }
        self.find_mailbox()
    }

    #[cold]
    #[inline(never)]
    fn find_mailbox(&self) -> Option<MailboxConsumer> {
        let addr = *self.shared.mailbox.get()?;
        let region = system::region()?;
        // This thread reads it from now on (in its own process).
        crate::transport::shm::mailbox::map_resident_rings(region, addr.index);
        let mb = MailboxConsumer::new(region, addr);
        self.mailbox_cache.set(Some(mb));
        Some(mb)
    }

    /// Runs calls that other processes sent.
    fn drain_mailbox(&self) -> bool {
        // Records, not flags: while the loop polls, flags stay up after their
        // rings are drained (see `drain_polling`), and a drain of empty rings
        // costs several times this look.
        match self.mailbox() {
            Some(mb) if mb.has_records_or(&self.cleared.get()) => self.drain_records(mb),
            _ => false,
        }
    }

    /// [`drain_mailbox`](Self::drain_mailbox) once records were seen.
    fn drain_records(&self, mb: MailboxConsumer) -> bool {
        let addr = mb.addr();
        let (mut last, epoch) = self.take_last();
        let mut d = Drained::default();
        let mut first_ring = None;
        // `rec` is a private copy already (see `transport::shm::ring`).
        let n = mb.drain_polling(
            BATCH,
            |from, rec| {
                d.bytes += rec.len();
                d.several_rings |= *first_ring.get_or_insert(from) != from;
                d.request |= remote::is_request(rec);
                // A stop from another thread is looked at in
                // `dispatch_record`: here it kept this closure from being
                // inlined (+24 instructions a record, callgrind).
                if self.stop.get() {
                    // A slot of this batch stopped the loop: nothing runs
                    // after a stop (a thread's posts stay in the inbox, and
                    // the teardown drops them), so the rest of the batch is
                    // dropped here, counted as the teardown counts it.
                    return self.record_after_stop(rec, addr);
                }
                self.dispatch_record(rec, addr, &mut last, false)
            },
            |from, why| self.ring_damaged(from, why),
        );
        self.keep_last(last, epoch);
        d.records = n;
        // Nothing else to do now, and no sender seen on this CPU lately.
        let allowed =
            || !self.stop.get() && !self.has_local_work() && self.spin_budget.get() == SPIN_POLLS;
        if self.gather.after_drain(d, BATCH, mb.ring_bytes(), allowed) {
            self.let_records_gather();
        }
        n > 0
    }

    /// The record the idle poll found, straight to its slot: a ping-pong's
    /// every record. A batch's drain would find that ring again and set up
    /// for up to [`BATCH`] records (~100 instructions of a hop's ~600 before
    /// its answer is published, callgrind, helper-65). Records behind it
    /// wait for the next round's [`drain_mailbox`](Self::drain_mailbox),
    /// which the loop runs before it polls again.
    #[inline(never)]
    fn drain_one(&self, mb: MailboxConsumer, one: OneRecord) {
        let addr = mb.addr();
        let (mut last, epoch) = self.take_last();
        // A private copy (see `transport::shm::ring`); the head moves past
        // the record after its slot returns, as in a batch. No slot ran since
        // the loop looked at its own stop (another thread's stop is looked at
        // in `dispatch_record`).
        one.take(|rec| self.dispatch_record(rec, addr, &mut last, false));
        self.keep_last(last, epoch);
        self.gather.after_one();
    }

    /// A record the loop will not run: it stopped in the middle of a batch.
    #[cold]
    #[inline(never)]
    fn record_after_stop(&self, rec: &[u8], addr: MailboxAddr) {
        self.shared
            .counters
            .dropped(DropReason::LoopStopped, &self.shared.name);
        self.answer_stopped(rec, addr);
    }

    /// A request among the records a stopped loop drops gets its answer at
    /// once, "not delivered: the loop stopped": its requester learnt nothing
    /// before its timeout while the loop's process lived on (review
    /// helper-42). Other records need nothing.
    fn answer_stopped(&self, rec: &[u8], addr: MailboxAddr) {
        self.shared
            .answer_dropped(rec, addr, DropReason::LoopStopped);
    }

    /// Waits up to [`GATHER`] without touching the rings (see
    /// `event_loop::gather` for why and when), or until the inbox has work.
    /// Out of line: the drain's own path stays small.
    #[inline(never)]
    fn let_records_gather(&self) {
        let start = Instant::now();
        while start.elapsed() < GATHER && !self.shared.inbox.has_work() {
            for _ in 0..8 {
                std::hint::spin_loop();
            }
        }
    }

    /// Damage found in the ring from process `from` (skipped; see
    /// `transport::shm::ring`): counted as one undecodable record.
    fn ring_damaged(&self, from: u32, why: impl std::fmt::Display) {
        self.shared.counters.decode_error(
            &self.shared.name,
            &format_args!("ring from process {from} corrupt: {why}"),
        )
    }

    /// `waited`: the record comes from its object's backlog (it runs even
    /// though older messages may still wait behind it).
    ///
    /// Everything off the plain call's path is out of line (fewer registers
    /// to save on the way in and out).
    fn dispatch_record(
        &self,
        rec: &[u8],
        addr: MailboxAddr,
        last: &mut Option<Rc<ObjectCell>>,
        waited: bool,
    ) {
        if self.stopped_elsewhere() {
            return self.record_after_stop(rec, addr);
        }
        // Taken apart at once: only the parts a plain call uses stay live
        // across the calls below (not the whole record, request tag included).
        let remote::Call {
            key,
            slot,
            meta,
            args,
            request,
        } = match remote::parse(rec, addr) {
            Ok(call) => call,
            Err(why) => return self.record_unusable(why),
        };
        if let Some(tag) = request {
            let call = remote::Call {
                key,
                slot,
                meta,
                args,
                request,
            };
            return self.dispatch_request(call, tag, rec, addr, last, waited);
        }
        let Some(cell) = self.receiver_of(key, last) else {
            return;
        };
        if !waited && async_used(self) && cell.blocked() {
            return self.record_waits(cell, rec, addr);
        }
        let Some(entry) = cell.shared.slots.get(usize::from(slot)) else {
            return self.no_such_slot();
        };
        let Ok(mut object) = cell.object.try_borrow_mut() else {
            return;
        };
        let mut failed = None;
        self.run_slot(cell, entry.name, || {
            failed = (entry.decode_call)(&mut **object, args, meta.as_deref()).err();
        });
        drop(object);
        self.start_pending(cell);
        if let Some(e) = failed {
            self.slot_failed_to_decode(cell, entry.name, e);
        }
    }

    /// [`dispatch_record`](Self::dispatch_record) of a record that waited in
    /// its object's backlog (out of line: one copy of the dispatch in the
    /// drain is enough).
    #[inline(never)]
    fn dispatch_waiting_record(&self, rec: &[u8], addr: MailboxAddr, cell: &Rc<ObjectCell>) {
        self.dispatch_record(rec, addr, &mut Some(cell.clone()), true);
    }

    #[cold]
    #[inline(never)]
    fn record_unusable(&self, why: Unusable) {
        match why {
            Unusable::Stale => self
                .shared
                .counters
                .dropped(DropReason::ReceiverGone, &self.shared.name),
            Unusable::Garbage(why) => self.shared.counters.decode_error(&self.shared.name, &why),
        }
    }

    /// A record for an object whose async slot's task owns it: waits in its
    /// backlog as a private copy.
    #[cold]
    #[inline(never)]
    fn record_waits(&self, cell: &ObjectCell, rec: &[u8], addr: MailboxAddr) {
        self.wait_for_object(cell, Waiting::Record(rec.to_vec(), addr));
    }

    #[cold]
    #[inline(never)]
    fn no_such_slot(&self) {
        self.shared
            .counters
            .decode_error(&self.shared.name, &"no such slot");
    }

    #[cold]
    #[inline(never)]
    fn slot_failed_to_decode(
        &self,
        cell: &ObjectCell,
        slot: &'static str,
        e: crate::transport::codec::CodecError,
    ) {
        self.shared.counters.decode_error(
            &self.shared.name,
            &format_args!("{}::{}: {e}", cell.shared.id, slot),
        );
    }

    /// A request record: waits behind the task that owns its object, or runs
    /// and is answered.
    #[inline(never)]
    fn dispatch_request(
        &self,
        call: remote::Call<'_>,
        tag: crate::signal::request::RequestTag,
        rec: &[u8],
        addr: MailboxAddr,
        last: &mut Option<Rc<ObjectCell>>,
        waited: bool,
    ) {
        // Looked up here only when a task may own the object (the answer
        // looks the receiver up through `last`).
        if !waited && async_used(self) {
            if let Some(cell) = self.lookup(call.key).filter(|c| c.blocked()) {
                return self.record_waits(&cell, rec, addr);
            }
        }
        self.answer_record(call, tag, last);
    }

    /// Runs a request from another process and sends the answer back; a
    /// receiver that is gone, a panic or bad arguments are answered too.
    /// Out of line: a plain call's dispatch stays small.
    #[inline(never)]
    fn answer_record(
        &self,
        call: remote::Call<'_>,
        tag: crate::signal::request::RequestTag,
        last: &mut Option<Rc<ObjectCell>>,
    ) {
        let outcome = self.run_request(&call, last);
        let encoder = match &outcome {
            Ok(v) => v.encoder(),
            Err(e) => Err(e.clone()),
        };
        if let Err(reason) = crate::signal::request::send_reply(tag, encoder) {
            // The answer was dropped (the requester died or its mailbox stayed
            // full): counted here, reported missing there.
            self.shared.counters.dropped(reason, &self.shared.name);
        }
    }

    fn run_request(
        &self,
        call: &remote::Call<'_>,
        last: &mut Option<Rc<ObjectCell>>,
    ) -> Result<crate::signal::reply::ReplyValue, crate::signal::ReplyError> {
        use crate::signal::ReplyError;
        let gone = || ReplyError::Undelivered(DropReason::ReceiverGone);
        let cell = self.receiver_of(call.key, last).ok_or_else(gone)?;
        let Some(entry) = cell.shared.slots.get(usize::from(call.slot)) else {
            self.shared
                .counters
                .decode_error(&self.shared.name, &"no such slot");
            return Err(ReplyError::NotAResponder);
        };
        let mut object = cell.object.try_borrow_mut().map_err(|_| gone())?;
        let mut result = None;
        self.run_slot(cell, entry.name, || {
            result = Some((entry.decode_reply)(
                &mut **object,
                call.args,
                call.meta.as_deref(),
            ));
        });
        drop(object);
        self.start_pending(cell);
        match result {
            None => Err(ReplyError::Panicked),
            Some(Err(e)) => {
                self.shared.counters.decode_error(
                    &self.shared.name,
                    &format_args!("{}::{}: {e}", cell.shared.id, entry.name),
                );
                Err(ReplyError::Codec(e.to_string()))
            }
            Some(Ok(None)) => Err(ReplyError::NotAResponder),
            Some(Ok(Some(v))) => Ok(v),
        }
    }

    fn has_local_work(&self) -> bool {
        !self.queue.borrow().is_empty() || !self.controls.borrow().is_empty()
    }

    fn run_until_stopped(&self) {
        loop {
            let mut busy = self.drain_controls();
            if self.stopping() {
                break;
            }
            busy |= self.drain_inbox();
            if self.stopping() {
                break;
            }
            busy |= self.drain_local();
            if self.stopping() {
                break;
            }
            busy |= self.drain_mailbox();
            if self.stopping() {
                break;
            }
            if !self.timers.borrow().is_idle() {
                busy |= Timers::fire_due(self, Instant::now());
            }
            if self.stopping() {
                break;
            }
            if busy || self.has_local_work() {
                continue;
            }
            if Timers::fire_idle(self) {
                continue;
            }
            // Nothing to do: poll briefly, then sleep.
            match self.spin_for_work() {
                Spun::One(one) => {
                    if let Some(mb) = self.mailbox() {
                        self.drain_one(mb, one);
                    }
                    if self.stopping() {
                        break;
                    }
                    continue;
                }
                // Straight to the records: the other sources were empty a
                // moment ago and are looked at on the next round anyway.
                Spun::Records => {
                    if let Some(mb) = self.mailbox() {
                        self.drain_records(mb);
                    }
                    if self.stopping() {
                        break;
                    }
                    continue;
                }
                Spun::Work => continue,
                Spun::Nothing => {}
            }
            let timeout = self
                .timers
                .borrow()
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if timeout.is_some_and(|t| t.is_zero()) {
                continue;
            }
            let mailbox = self.mailbox();
            // The mailbox's flags stay up while the loop polls (see
            // `drain_polling`); they are cleared only here, before sleeping.
            let mut cleared = self.cleared.get();
            let busy = mailbox.as_ref().is_some_and(|m| {
                m.settle_reporting(&mut cleared, |from, why| self.ring_damaged(from, why))
            });
            self.cleared.set(cleared);
            if busy {
                continue;
            }
            self.shared.inbox.sleep(cleared.nap(timeout), || {
                mailbox.as_ref().is_some_and(|m| m.has_work())
            });
            self.shared.counters.woke_by_loop();
            self.woke_for(mailbox.as_ref());
        }
    }

    /// After a sleep: work woke the loop, so polling longer would have caught
    /// it without the wake-up (20-35 us across cores on the VMs measured),
    /// unless its sender shares this CPU (it could not run while we polled):
    /// the budget grows unless the work is records from a process that went
    /// idle on this CPU. Work from a thread of this process says nothing of
    /// its sender's CPU; if that sender still shares the CPU, the next yields
    /// find its work and the budget shrinks again. Without this, a budget
    /// that fell to 0 (a peer on the same CPU, or yields slowed by noise)
    /// never grew again once the peer's answers took longer than the yields
    /// (~1 us): both sides then slept for every message (review helper-44: a
    /// thread ping-pong moved apart went from 3 to 13 us a round trip).
    fn woke_for(&self, mailbox: Option<&MailboxConsumer>) {
        let budget = self.spin_budget.get();
        if budget == SPIN_POLLS {
            return;
        }
        let records_from_here = match (mailbox, system::current_cpu()) {
            (Some(m), Some(cpu)) => m.records_from_cpu(cpu),
            _ => None,
        };
        let grow = match records_from_here {
            Some(same_cpu) => !same_cpu,
            // A timer's wake-up finds no work: nothing to learn.
            None => self.shared.inbox.has_work() || mailbox.is_some_and(|m| m.has_work()),
        };
        if grow {
            self.spin_budget.set((budget * 2 + 1).min(SPIN_POLLS));
        }
    }

    /// Polls the cheap work indicators (mailbox, inbox) densely, then yields a
    /// few times; says as soon as work shows up, and where.
    fn spin_for_work(&self) -> Spun {
        let mailbox = self.mailbox();
        let has_work = || {
            let found = match &mailbox {
                Some(m) => m.find_record(&self.cleared.get()),
                None => Found::Nothing,
            };
            match found {
                Found::One(one) => Spun::One(one),
                Found::Records => Spun::Records,
                Found::Nothing if self.shared.inbox.has_work() => Spun::Work,
                Found::Nothing => Spun::Nothing,
            }
        };
        let budget = self.spin_budget.get();
        for _ in 0..budget {
            let found = has_work();
            if !matches!(found, Spun::Nothing) {
                return found;
            }
            std::hint::spin_loop();
        }
        // Where we go idle, for our peers' own decisions below.
        if let Some(cpu) = system::current_cpu() {
            system::note_my_cpu(cpu);
        }
        let mut switched = false;
        for _ in 0..SPIN_YIELDS {
            let t = Instant::now();
            std::thread::yield_now();
            switched |= t.elapsed() > YIELD_SWITCHED;
            let found = has_work();
            if !matches!(found, Spun::Nothing) {
                // Another thread ran here meanwhile: the sender, if the
                // records' producer went idle on this CPU too (any other
                // thread under load otherwise). Without a hint (work from this
                // process), the time alone decides.
                let same_cpu = switched
                    && match (found, &mailbox, system::current_cpu()) {
                        (Spun::One(_) | Spun::Records, Some(m), Some(cpu)) => {
                            m.records_from_cpu(cpu).unwrap_or(true)
                        }
                        _ => true,
                    };
                self.spin_budget.set(if same_cpu {
                    budget / 2
                } else {
                    (budget * 2 + 1).min(SPIN_POLLS)
                });
                return found;
            }
        }
        Spun::Nothing
    }

    /// Retires every object, drops what is still queued (counted), and drops the
    /// objects on this thread.
    fn teardown(&self) {
        // An install or timer start is queued before this (read below) or
        // refused (see `LoopShared::finishing`).
        self.shared.mark_finished();
        // No more dispatch: objects are dropped below, none kept alive here.
        drop(self.last_receiver.take());
        drop(self.before_last.take());
        self.drain_controls();
        let cells: Vec<Rc<ObjectCell>> = self.objects.borrow().iter().flatten().cloned().collect();
        for c in &cells {
            c.shared.retire();
        }
        // Messages posted by `destroyed` receivers or racing emitters: count them.
        self.drain_controls();
        let dropped = |_: Envelope| {
            self.shared
                .counters
                .dropped(DropReason::LoopStopped, &self.shared.name)
        };
        // Then the data ring is retired (after the store above).
        self.shared.close_data();
        let queued: Vec<Envelope> = self.queue.borrow_mut().drain(..).collect();
        queued.into_iter().for_each(dropped);
        if let Some(mb) = self.mailbox() {
            self.shared.drain_stopped_mailbox(mb);
        }
        self.shared.release_mailbox();
        self.timers.borrow_mut().clear();
        // Unfinished async slots: dropped with the objects they own.
        let tasks: Vec<Task> = self.tasks.borrow_mut().drain().map(|(_, t)| t).collect();
        for Task { cell, future, .. } in tasks {
            self.drop_backlog(&cell, DropReason::LoopStopped);
            if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(future))) {
                log::error!(
                    "dropping the task of {} panicked: {}",
                    cell.shared.id,
                    panic_message(&p)
                );
            }
        }
        // Calls still waiting for an object whose task finished (a slot among
        // those it then ran stopped the loop): counted, as the unfinished
        // tasks' are above (review helper-42).
        for c in &cells {
            self.drop_backlog(c, DropReason::LoopStopped);
        }
        drop(cells);
        let all: Vec<Rc<ObjectCell>> = self.objects.borrow_mut().drain(..).flatten().collect();
        all.into_iter().for_each(drop_cell);
    }

    pub(super) fn stopped(&self) -> bool {
        self.stopping()
    }
}

fn drop_cell(cell: Rc<ObjectCell>) {
    if let Ok(cell) = Rc::try_unwrap(cell) {
        let ObjectCell { shared, object, .. } = cell;
        drop_object(object.into_inner(), &shared.id);
    }
}

/// Drops a user object, containing a panic in its `Drop`.
pub(super) fn drop_object(object: Box<dyn Any + Send>, id: &ObjectId) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(object))) {
        log::error!("dropping object {id} panicked: {}", panic_message(&p));
    }
}

fn panic_message(payload: &Box<dyn Any + Send>) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}
