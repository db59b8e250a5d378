//! The control plane: connection changes and removals made in one process are
//! applied in every other live process of the system, which acknowledge them.
//!
//! Each process has a control mailbox in the region and a control thread that
//! drains it. Control threads never wait for anything themselves, so a
//! `connect()` waiting for acknowledgements cannot deadlock with another.

use crate::event_loop::{LoopId, LoopShared};
use crate::object::{registry, ObjectId, ObjectKey, ObjectShared};
use crate::signal::shared::RemoteSlot;
use crate::signal::{ConnectionKind, Overflow};
use crate::sync::{lock, Ordering};
use crate::transport::codec;
use crate::transport::doorbell::Doorbell;
use crate::transport::shm::mailbox::{self, Cleared, MailboxAddr, MailboxConsumer};
use crate::transport::shm::region::{Region, MAX_PROCS};
use crate::transport::shm::ring::RingError;
use crate::transport::shm::system;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// First byte of a control record (call records start with 1).
const KIND_CONTROL: u8 = 2;
/// How long a change waits for every live process to acknowledge it.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Connect {
        from: u32,
        seq: u64,
        conn: WireConn,
    },
    Disconnect {
        from: u32,
        seq: u64,
        owner: ObjectAddr,
        signal: u16,
        id: u64,
    },
    RemoveObject {
        from: u32,
        seq: u64,
        object: ObjectAddr,
    },
    Subscribe {
        from: u32,
        seq: u64,
        sub: WireSub,
    },
    Unsubscribe {
        from: u32,
        seq: u64,
        id: u64,
    },
    ProcessDied {
        proc: u32,
        /// Which life of slot `proc` ended: a late notice must not retire
        /// what a new process in the slot owns.
        incarnation: u32,
    },
    Ack {
        from: u32,
        seq: u64,
    },
}

/// An object as other processes name it: its id, verified by the mailbox of its
/// loop and its key there (ids are unique per process, not per system).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ObjectAddr {
    pub(crate) id: String,
    pub(crate) mailbox: u32,
    pub(crate) key: (u32, u32),
}

impl ObjectAddr {
    pub(crate) fn of(o: &ObjectShared) -> Option<Self> {
        Some(ObjectAddr {
            id: o.id.to_string(),
            mailbox: o.lp.mailbox.get()?.index,
            key: (o.key.index, o.key.generation),
        })
    }

    /// True if `o` is the object at this address.
    fn is(&self, o: &ObjectShared) -> bool {
        o.id.as_str() == self.id
            && (o.key.index, o.key.generation) == self.key
            && o.lp.mailbox.get().is_some_and(|m| m.index == self.mailbox)
    }

    /// The object with this address in this process, if any.
    fn find(&self) -> Option<Arc<ObjectShared>> {
        registry::lookup(&self.id).filter(|o| {
            (o.key.index, o.key.generation) == self.key
                && o.lp.mailbox.get().is_some_and(|m| m.index == self.mailbox)
        })
    }
}

/// A signal → slot connection as it travels between processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireConn {
    pub(crate) id: u64,
    pub(crate) owner: ObjectAddr,
    pub(crate) signal: u16,
    pub(crate) receiver: String,
    pub(crate) loop_id: u64,
    pub(crate) loop_name: String,
    pub(crate) loop_owner: u32,
    pub(crate) mailbox: u32,
    pub(crate) mailbox_generation: u32,
    pub(crate) key: (u32, u32),
    pub(crate) slot: u16,
    pub(crate) wants_meta: bool,
    pub(crate) kind: u8,
    /// 0 block (with `block_ms`), 1 drop newest, 2 fail.
    pub(crate) overflow: u8,
    pub(crate) block_ms: u64,
    pub(crate) single_shot: bool,
    /// The one-of-N group the slot joins, if any.
    pub(crate) group: Option<String>,
}

impl WireConn {
    pub(crate) fn kind_code(kind: ConnectionKind) -> u8 {
        match kind {
            ConnectionKind::Auto => 0,
            ConnectionKind::Direct => 1,
            ConnectionKind::Queued => 2,
        }
    }

    pub(crate) fn overflow_code(o: Overflow) -> (u8, u64) {
        match o {
            Overflow::Block(d) => (0, u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Overflow::DropNewest => (1, 0),
            Overflow::Fail => (2, 0),
        }
    }

    fn remote_slot(&self) -> RemoteSlot {
        RemoteSlot {
            id: self.id,
            slot: self.slot,
            wants_meta: self.wants_meta,
            kind: match self.kind {
                1 => ConnectionKind::Direct,
                2 => ConnectionKind::Queued,
                _ => ConnectionKind::Auto,
            },
            overflow: match self.overflow {
                1 => Overflow::DropNewest,
                2 => Overflow::Fail,
                _ => Overflow::Block(Duration::from_millis(self.block_ms)),
            },
            single_shot: self.single_shot,
            group: self.group.as_deref().map(Arc::from),
        }
    }
}

/// A pattern subscription as it travels between processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireSub {
    id: u64,
    pattern: String,
    receiver: String,
    loop_id: u64,
    loop_name: String,
    loop_owner: u32,
    mailbox: u32,
    mailbox_generation: u32,
    key: (u32, u32),
    slot: u16,
    wants_meta: bool,
    overflow: u8,
    block_ms: u64,
    fingerprint: String,
    initialize: bool,
    senders: Option<Vec<String>>,
    group: Option<String>,
}

/// Changes sent and not yet acknowledged: sequence → processes still to answer.
/// A plain mutex (a waiter parks on `ACKED` with it, and must not hold a fork
/// share while parked); the forker holds it across fork so no child inherits it
/// held.
static PENDING: std::sync::LazyLock<Mutex<HashMap<u64, HashSet<u32>>>> =
    std::sync::LazyLock::new(|| Mutex::new(HashMap::new()));

type Pending = std::sync::MutexGuard<'static, HashMap<u64, HashSet<u32>>>;

fn pending() -> Pending {
    PENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Held by the forker across `fork`.
pub(crate) fn hold_for_fork() -> Pending {
    pending()
}

/// Frees process `p`'s control mailbox (a start that failed).
pub(crate) fn release_mailbox(region: &Region, p: u32) {
    if let Some(m) = control_mailbox(region, p) {
        region.release_mailbox_of(m, p);
    }
    if let Some(slot) = region.proc(p) {
        slot.control.store(0, Ordering::Release);
    }
}
static ACKED: Condvar = Condvar::new();
static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
/// Objects this process made up for receivers it only knows by address.
static STUBS: Mutex<Vec<Weak<ObjectShared>>> = Mutex::new(Vec::new());
/// Loops this process knows only by mailbox.
static STUB_LOOPS: Mutex<Vec<Weak<LoopShared>>> = Mutex::new(Vec::new());

/// Empties the data mailboxes of dead process `p` (it was their only reader,
/// so this process may read them now) and returns how many calls were waiting
/// there: messages lost with it.
pub(crate) fn discard_mailboxes_of(region: &'static Region, p: u32) -> u64 {
    let control = control_mailbox(region, p);
    let mut lost = 0u64;
    for m in 0..crate::transport::shm::region::MAX_MAILBOXES as u32 {
        if Some(m) == control || !region.mailbox_in_use(m) {
            continue;
        }
        let header = region.mailbox_header(m);
        if header.owner.load(Ordering::Acquire) != p {
            continue;
        }
        let addr = MailboxAddr {
            index: m,
            generation: header.generation.load(Ordering::Acquire),
        };
        MailboxConsumer::new(region, addr).drain(
            &mut Cleared::every_ring(),
            usize::MAX,
            |_, _| lost += 1,
            |from, why| log::error!("mailbox of dead process {p}, ring of {from}: {why}"),
        );
    }
    lost
}

/// Claims process `p`'s control mailbox and records it in the process slot.
pub(crate) fn claim_mailbox(region: &Region, p: u32) -> bool {
    match mailbox::claim(region, p) {
        Some(addr) => {
            if let Some(slot) = region.proc(p) {
                slot.control.store(addr.index + 1, Ordering::Release);
            }
            true
        }
        None => false,
    }
}

fn control_mailbox(region: &Region, p: u32) -> Option<u32> {
    let v = region.proc(p)?.control.load(Ordering::Acquire);
    v.checked_sub(1)
}

/// Starts this process's control thread (once per process).
pub(crate) fn start_thread(region: &'static Region, me: u32) {
    let Some(index) = control_mailbox(region, me) else {
        log::error!(
            "process {me} has no control mailbox; connections made elsewhere will not reach it"
        );
        return;
    };
    let generation = region
        .mailbox_header(index)
        .generation
        .load(Ordering::Acquire);
    let addr = MailboxAddr { index, generation };
    let spawned = std::thread::Builder::new()
        .name("signal-slot-control".into())
        .spawn(move || {
            let consumer = MailboxConsumer::new(region, addr);
            let bell = Doorbell::new();
            bell.use_external(&region.mailbox_header(index).bell);
            // Rings cleared before a sleep, looked at again for a grace.
            let mut cleared = Cleared::default();
            loop {
                consumer.drain(
                    &mut cleared,
                    usize::MAX,
                    // A private copy already (see `transport::shm::ring`).
                    |_, rec| handle_record(rec),
                    |from, why| log::error!("control ring from process {from} corrupt: {why}"),
                );
                bell.sleep(|| consumer.has_work(), cleared.nap(None));
            }
        });
    if let Err(e) = spawned {
        log::error!("could not start the control thread: {e}");
    }
}

/// This process's control mailbox (where answers to its requests arrive).
pub(crate) fn my_control_mailbox() -> Option<MailboxAddr> {
    let region = system::region()?;
    let index = control_mailbox(region, system::my_proc())?;
    let generation = region
        .mailbox_header(index)
        .generation
        .load(Ordering::Acquire);
    Some(MailboxAddr { index, generation })
}

fn handle_record(rec: &[u8]) {
    if rec.first() == Some(&crate::signal::request::KIND_REPLY) {
        return crate::signal::request::on_reply_record(rec);
    }
    let Some((&KIND_CONTROL, body)) = rec.split_first() else {
        log::error!("control mailbox: record of unknown kind skipped");
        return;
    };
    let msg: Msg = match codec::decode(body) {
        Ok(m) => m,
        Err(e) => {
            log::error!("control mailbox: undecodable record skipped: {e}");
            return;
        }
    };
    match msg {
        Msg::Connect { from, seq, conn } => {
            apply_connect(&conn);
            ack(from, seq);
        }
        Msg::Disconnect {
            from,
            seq,
            owner,
            signal,
            id,
        } => {
            if let Some(s) = owner.find().and_then(|o| o.signal_at(signal)) {
                s.remove_connection(id);
            }
            ack(from, seq);
        }
        Msg::RemoveObject { from, seq, object } => {
            if let Some(o) = object.find() {
                if o.lp.is_remote() {
                    o.retire_quietly();
                } else if o.retire() {
                    o.lp.remove_object(o.key);
                }
            }
            // The stand-ins this process made for it (an object added after
            // this process started, reached through a connection or a
            // pattern subscription made here): not in the registry, so the
            // lookup above misses them (review helper-56: a removed
            // subscriber kept its subscription and group membership here).
            for stub in stubs() {
                if object.is(&stub) {
                    retire_stub(&stub);
                }
            }
            ack(from, seq);
        }
        Msg::Subscribe { from, seq, sub } => {
            apply_subscribe(&sub);
            ack(from, seq);
        }
        Msg::Unsubscribe { from, seq, id } => {
            crate::signal::directory::unsubscribe(id);
            ack(from, seq);
        }
        Msg::ProcessDied { proc, incarnation } => {
            // The slot may have a new life by now (review helper-49: this
            // notice can be read after another process's ring that already
            // told of the new one): its objects are not the dead one's.
            match system::region() {
                Some(r) if system::proc_incarnation(r, proc) != incarnation => {
                    // Only what lived on the dead one's loops: their
                    // mailboxes were released at its death (their
                    // generation moved on), the new process's are current
                    // (review helper-55: ignoring the notice kept the dead
                    // one's objects alive here for good).
                    forget_process_where(proc, false, |lp| {
                        lp.mailbox.get().is_some_and(|a| {
                            r.mailbox_header(a.index).generation.load(Ordering::Acquire)
                                != a.generation
                        })
                    });
                }
                _ => forget_process(proc, false),
            }
        }
        Msg::Ack { from, seq } => {
            let mut waiting = pending();
            if let Some(w) = waiting.get_mut(&seq) {
                w.remove(&from);
            }
            drop(waiting);
            ACKED.notify_all();
        }
    }
}

fn ack(to: u32, seq: u64) {
    send(
        to,
        &Msg::Ack {
            from: system::my_proc(),
            seq,
        },
    );
}

/// Writes a control message into process `to`'s control mailbox, retrying while
/// it is full (control messages are few and must not be lost).
fn send(to: u32, msg: &Msg) -> bool {
    let Some(region) = system::region() else {
        return false;
    };
    let Some(index) = control_mailbox(region, to) else {
        return false;
    };
    let mut body = vec![KIND_CONTROL];
    if let Err(e) = codec::encode_into(msg, &mut body) {
        log::error!("control message not encodable: {e}");
        return false;
    }
    let end = Instant::now() + ACK_TIMEOUT;
    loop {
        if !system::proc_alive(region, to) {
            return false;
        }
        match mailbox::send(region, index, system::my_proc(), body.len(), |b| {
            b.copy_from_slice(&body)
        }) {
            Ok(()) => return true,
            Err(RingError::Full) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                log::error!("control message to process {to} lost: {e:?}");
                return false;
            }
        }
    }
}

/// Sends a change to every other live process and waits until each has applied
/// it (or died). Returns the processes that did not confirm in time.
fn replicate(make: impl Fn(u32, u64) -> Msg) -> Result<(), Vec<u32>> {
    let Some(region) = system::region() else {
        return Ok(());
    };
    let me = system::my_proc();
    let others: HashSet<u32> = (0..MAX_PROCS as u32)
        .filter(|p| {
            *p != me && system::proc_alive(region, *p) && control_mailbox(region, *p).is_some()
        })
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    // Each one's life: a process that dies before it answers and whose slot
    // a new process takes at once (which never got the message) is no longer
    // waited for (review helper-49: the connect waited its whole timeout and
    // named the new process as not confirming).
    let lives: HashMap<u32, system::ProcLife> = others
        .iter()
        .map(|p| (*p, system::ProcLife::of(region, *p)))
        .collect();
    let same_life = |p: &u32| lives.get(p).is_some_and(|l| l.alive(region));
    let seq = u64::from(system::my_incarnation()) << 48 | SEQ.fetch_add(1, Ordering::Relaxed);
    pending().insert(seq, others.clone());
    for p in &others {
        if !send(*p, &make(me, seq)) {
            if let Some(w) = pending().get_mut(&seq) {
                w.remove(p);
            }
        }
    }
    let end = Instant::now() + ACK_TIMEOUT;
    let mut pending = pending();
    loop {
        let waiting = pending.get(&seq).cloned().unwrap_or_default();
        let still: Vec<u32> = waiting.into_iter().filter(same_life).collect();
        if still.is_empty() {
            pending.remove(&seq);
            return Ok(());
        }
        let now = Instant::now();
        if now >= end {
            pending.remove(&seq);
            return Err(still);
        }
        pending = ACKED
            .wait_timeout(pending, (end - now).min(Duration::from_millis(20)))
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
}

/// Replicates a new connection; see [`replicate`].
pub(crate) fn replicate_connect(conn: WireConn) -> Result<(), Vec<u32>> {
    replicate(|from, seq| Msg::Connect {
        from,
        seq,
        conn: conn.clone(),
    })
}

/// Replicates a new pattern subscription (not needed, and not sent, when the
/// subscriber's loop has no mailbox: no other process could reach it).
pub(crate) fn replicate_subscribe(sub: &crate::signal::directory::Sub) -> Result<(), Vec<u32>> {
    system::region().map_or(Ok(()), |_| {
        let Some(addr) = sub.recv.lp.mailbox.get() else {
            return Ok(());
        };
        let (overflow, block_ms) = WireConn::overflow_code(sub.overflow);
        let wire = WireSub {
            id: sub.id,
            pattern: sub.pattern.as_str().to_string(),
            receiver: sub.recv.id.to_string(),
            loop_id: sub.recv.lp.id.raw(),
            loop_name: sub.recv.lp.name.clone(),
            loop_owner: sub.recv.lp.owner(),
            mailbox: addr.index,
            mailbox_generation: addr.generation,
            key: (sub.recv.key.index, sub.recv.key.generation),
            slot: sub.slot,
            wants_meta: sub.wants_meta,
            overflow,
            block_ms,
            fingerprint: sub.fingerprint.clone(),
            initialize: sub.initialize,
            senders: sub.senders.clone(),
            group: sub.group.as_deref().map(str::to_string),
        };
        replicate(|from, seq| Msg::Subscribe {
            from,
            seq,
            sub: wire.clone(),
        })
    })
}

/// Replicates the end of a pattern subscription.
pub(crate) fn replicate_unsubscribe(id: u64) -> Result<(), Vec<u32>> {
    replicate(|from, seq| Msg::Unsubscribe { from, seq, id })
}

/// Replicates a disconnect of a signal of the object `owner` (of this process).
pub(crate) fn replicate_disconnect(owner: &ObjectId, signal: u16, id: u64) -> Result<(), Vec<u32>> {
    let Some(owner) = system::region()
        .and(registry::lookup(owner.as_str()))
        .and_then(|o| ObjectAddr::of(&o))
    else {
        return Ok(());
    };
    replicate(|from, seq| Msg::Disconnect {
        from,
        seq,
        owner: owner.clone(),
        signal,
        id,
    })
}

/// Replicates an object's removal: its own process removes it, the others
/// retire their replicas.
pub(crate) fn replicate_removal(object: &ObjectShared) -> Result<(), Vec<u32>> {
    let Some(addr) = system::region().and(ObjectAddr::of(object)) else {
        return Ok(());
    };
    replicate(|from, seq| Msg::RemoveObject {
        from,
        seq,
        object: addr.clone(),
    })
}

/// Tells the other live processes that `proc` died (no acknowledgement).
pub(crate) fn announce_death(proc: u32) {
    let Some(region) = system::region() else {
        return;
    };
    let me = system::my_proc();
    // Read before the slot is released (the caller releases it after).
    let incarnation = system::proc_incarnation(region, proc);
    for p in 0..MAX_PROCS as u32 {
        if p != me && p != proc && system::proc_alive(region, p) {
            send(p, &Msg::ProcessDied { proc, incarnation });
        }
    }
}

/// Retires every object this process knows on the loops of dead process
/// `proc`; `notify` emits their `destroyed` signals (done by one process only).
pub(crate) fn forget_process(proc: u32, notify: bool) {
    forget_process_where(proc, notify, |_| true);
}

/// [`forget_process`] of the objects whose loop `dead` says is the dead
/// process's.
fn forget_process_where(
    proc: u32,
    notify: bool,
    dead: impl Fn(&crate::event_loop::LoopShared) -> bool,
) {
    for object in registry::live_objects() {
        if object.lp.owner() == proc && dead(&object.lp) {
            if notify {
                object.retire();
            } else {
                object.retire_quietly();
            }
        }
    }
    for stub in stubs() {
        if stub.lp.owner() == proc && dead(&stub.lp) {
            retire_stub(&stub);
        }
    }
}

/// The live stand-ins of objects of other processes this process made.
fn stubs() -> Vec<Arc<ObjectShared>> {
    let mut s = lock(&STUBS);
    s.retain(|w| w.strong_count() > 0);
    s.iter().filter_map(Weak::upgrade).collect()
}

/// Retires a stand-in: its connections go, and the pattern subscriptions
/// it receives for leave this process's index (a stand-in is not
/// registered, so retiring it does not do that by itself).
fn retire_stub(stub: &ObjectShared) {
    if stub.retire_quietly() {
        crate::signal::directory::object_removed(stub);
    }
}

fn apply_connect(c: &WireConn) {
    let Some(signal) = c.owner.find().and_then(|o| o.signal_at(c.signal)) else {
        return; // this process never sees that signal emitted
    };
    let recv = receiver(&Receiver {
        id: &c.receiver,
        key: c.key,
        mailbox: c.mailbox,
        mailbox_generation: c.mailbox_generation,
        loop_name: &c.loop_name,
        loop_id: c.loop_id,
        loop_owner: c.loop_owner,
    });
    if !signal.apply_remote(&c.remote_slot(), recv) {
        log::warn!(
            "connection {} to {} not applied in this process",
            c.id,
            c.receiver
        );
    }
}

fn apply_subscribe(w: &WireSub) {
    let Ok(pattern) = crate::topic::Pattern::parse(&w.pattern) else {
        log::error!("subscription {}: bad pattern {:?} skipped", w.id, w.pattern);
        return;
    };
    let recv = receiver(&Receiver {
        id: &w.receiver,
        key: w.key,
        mailbox: w.mailbox,
        mailbox_generation: w.mailbox_generation,
        loop_name: &w.loop_name,
        loop_id: w.loop_id,
        loop_owner: w.loop_owner,
    });
    let entry = recv.slots.get(usize::from(w.slot));
    let sub = crate::signal::directory::Sub {
        id: w.id,
        pattern,
        slot: w.slot,
        slot_name: entry.map_or("(slot of another process)", |e| e.name),
        typed: entry.filter(|_| !recv.lp.is_remote()).map(|e| e.typed),
        fingerprint: w.fingerprint.clone(),
        wants_meta: w.wants_meta,
        overflow: match w.overflow {
            1 => Overflow::DropNewest,
            2 => Overflow::Fail,
            _ => Overflow::Block(Duration::from_millis(w.block_ms)),
        },
        initialize: w.initialize,
        senders: w.senders.clone(),
        group: w.group.as_deref().map(Arc::from),
        recv,
    };
    crate::signal::directory::subscribe(Arc::new(sub));
}

/// A receiving object as a change names it.
struct Receiver<'a> {
    id: &'a str,
    key: (u32, u32),
    mailbox: u32,
    mailbox_generation: u32,
    loop_name: &'a str,
    loop_id: u64,
    loop_owner: u32,
}

/// The object `r` names: this process's own, or a stand-in.
fn receiver(r: &Receiver<'_>) -> Arc<ObjectShared> {
    let key = ObjectKey {
        index: r.key.0,
        generation: r.key.1,
    };
    registry::lookup(r.id)
        .filter(|o| o.key == key && o.lp.mailbox.get().is_some_and(|m| m.index == r.mailbox))
        .unwrap_or_else(|| stub_object(r, key))
}

/// An object known only by address: its loop is another process's.
fn stub_object(c: &Receiver<'_>, key: ObjectKey) -> Arc<ObjectShared> {
    let addr = MailboxAddr {
        index: c.mailbox,
        generation: c.mailbox_generation,
    };
    let lp = {
        let mut loops = lock(&STUB_LOOPS);
        loops.retain(|w| w.strong_count() > 0);
        let found = loops
            .iter()
            .filter_map(Weak::upgrade)
            .find(|l| l.mailbox.get() == Some(&addr));
        match found {
            Some(l) => l,
            None => {
                let l = LoopShared::remote_stub(
                    c.loop_name.to_string(),
                    LoopId::from_raw(c.loop_id),
                    c.loop_owner,
                    addr,
                );
                loops.push(Arc::downgrade(&l));
                l
            }
        }
    };
    let stub = Arc::new(ObjectShared::new(
        ObjectId::internal(c.id.to_string()),
        key,
        lp,
        Box::new([]),
        false,
        &[],
    ));
    lock(&STUBS).push(Arc::downgrade(&stub));
    stub
}
