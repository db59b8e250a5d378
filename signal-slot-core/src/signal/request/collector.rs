//! One request in flight: the answers arrive here, from loop threads of this
//! process and from other processes.

use super::{ReplyError, Responder};
use crate::sync::{lock, AtomicU64, Ordering};
use crate::transport::shm::system;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

/// What became of one receiver.
pub(super) enum Outcome {
    /// Answered in this process.
    Local(Box<dyn Any + Send>, &'static str),
    /// Answered from another process with the requested type: its encoding.
    Remote(Encoded),
    Failed(ReplyError),
    /// Its process died before answering: reported missing.
    Gone,
}

/// An answer's encoding, copied out of the reply record: small ones (most
/// answers: a number, a short string) inline, so reading them allocates nothing.
pub(super) enum Encoded {
    Inline(u8, [u8; Encoded::INLINE]),
    Heap(Vec<u8>),
}

impl Encoded {
    const INLINE: usize = 30;

    pub(super) fn new(bytes: &[u8]) -> Self {
        match u8::try_from(bytes.len()) {
            Ok(n) if bytes.len() <= Self::INLINE => {
                let mut b = [0; Self::INLINE];
                b[..bytes.len()].copy_from_slice(bytes);
                Encoded::Inline(n, b)
            }
            _ => Encoded::Heap(bytes.to_vec()),
        }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Encoded::Inline(n, b) => &b[..usize::from(*n)],
            Encoded::Heap(v) => v,
        }
    }
}

pub(super) struct Entry {
    pub(super) responder: Responder,
    /// The process running the receiver's loop, when it is not this one
    /// (its life: a new process in its slot is not it).
    pub(super) proc: Option<system::ProcLife>,
    pub(super) outcome: Option<Outcome>,
}

pub(super) type OnDone = Box<dyn FnOnce(Vec<Entry>) + Send>;

pub(super) struct Gather {
    pub(super) entries: Vec<Entry>,
    pub(super) finished: bool,
    pub(super) on_done: Option<OnDone>,
}

/// One request in flight: the answers arrive here, from loop threads of this
/// process and (through the control thread) from other processes.
pub(super) struct Collector {
    pub(super) id: u64,
    /// The type name of the requested reply type.
    pub(super) expected: &'static str,
    /// Receivers without an outcome yet (read without the lock by a waiter).
    pub(super) remaining: AtomicUsize,
    /// A framework lock: held for short updates only, never while waiting.
    pub(super) gather: Mutex<Gather>,
    /// The thread blocked in `request`, unparked when the last answer arrives
    /// (`None` when only that thread completes entries).
    pub(super) waiter: Option<std::thread::Thread>,
    /// Some receiver is in another process.
    pub(super) remote: bool,
    /// Registered in [`IN_FLIGHT`], for answers read by another thread than
    /// the requester (not needed when it reads all its answers itself).
    registered: bool,
}

/// Requests with a receiver in another process, by id, for their replies.
static IN_FLIGHT: LazyLock<Mutex<InFlight>> = LazyLock::new(|| Mutex::new(HashMap::default()));

type InFlight = HashMap<u64, Weak<Collector>, std::hash::BuildHasherDefault<IdHasher>>;

/// Hashes request ids (unique, made by a counter) with one multiplication.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Ids a thread takes from [`NEXT_REQUEST`] at once: one locked add per
/// block instead of one per request.
const ID_BLOCK: u64 = 1024;

thread_local! {
    /// The next id of this thread's block and the block's end.
    static IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// A new request id, unique in the system (the process's incarnation above a
/// counter; a forked child has its own incarnation).
pub(super) fn next_id() -> u64 {
    let n = IDS.with(|ids| {
        let (mut next, mut end) = ids.get();
        if next == end {
            next = NEXT_REQUEST.fetch_add(ID_BLOCK, Ordering::Relaxed);
            end = next + ID_BLOCK;
        }
        ids.set((next + 1, end));
        next
    });
    u64::from(system::my_incarnation()) << 48 | n
}

/// Answers that arrived after their request ended (timed out): counted here,
/// read by [`late_replies`](super::late_replies).
pub(super) static LATE_REPLIES: AtomicU64 = AtomicU64::new(0);

/// Counts an answer nobody waits for any more.
pub(super) fn late_reply() {
    let n = LATE_REPLIES.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        log::debug!("an answer arrived after its request ended; {n} so far");
    }
}

impl Collector {
    /// `findable`: register the request (if remote) so that answers read by
    /// other threads (the control thread, another requester reading the
    /// reply mailbox) find it.
    pub(super) fn new(
        expected: &'static str,
        entries: Vec<Entry>,
        waiter: Option<std::thread::Thread>,
        on_done: Option<OnDone>,
        findable: bool,
    ) -> Arc<Self> {
        let remote = entries.iter().any(|e| e.proc.is_some());
        let registered = remote && findable;
        let c = Arc::new(Collector {
            id: next_id(),
            expected,
            remaining: AtomicUsize::new(entries.len()),
            gather: Mutex::new(Gather {
                entries,
                finished: false,
                on_done,
            }),
            waiter,
            remote,
            registered,
        });
        if registered {
            lock(&IN_FLIGHT).insert(c.id, Arc::downgrade(&c));
        }
        c
    }

    /// Records receiver `index`'s outcome (the first one counts).
    pub(super) fn complete(&self, index: usize, outcome: Outcome) {
        self.complete_from(index, outcome, false);
    }

    /// `by_waiter`: the blocked requester itself records it (it read the
    /// answer from its reply mailbox), so it needs no waking.
    pub(super) fn complete_from(&self, index: usize, outcome: Outcome, by_waiter: bool) {
        let done = {
            let mut g = lock(&self.gather);
            if g.finished {
                late_reply();
                return;
            }
            match g.entries.get_mut(index) {
                Some(e) if e.outcome.is_none() => e.outcome = Some(outcome),
                _ => return,
            }
            if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                Self::finish_locked(&mut g)
            } else {
                None
            }
        };
        if let Some(t) = self.waiter.as_ref().filter(|_| !by_waiter) {
            if self.remaining.load(Ordering::Acquire) == 0 {
                t.unpark();
                if self.remote {
                    // The requester may sleep on the reply mailbox's doorbell.
                    crate::process::replies::wake();
                }
            }
        }
        if let Some((f, entries)) = done {
            f(entries);
        }
    }

    /// Ends the gathering (all in, or the deadline): what is not in is
    /// missing. The blocking form gets the entries; the slot-delivered form
    /// delivers them (once; later calls get what is left: nothing).
    pub(super) fn finish(&self) -> Option<Vec<Entry>> {
        let mut g = lock(&self.gather);
        g.finished = true;
        match g.on_done.take() {
            Some(f) => {
                let entries = std::mem::take(&mut g.entries);
                drop(g);
                f(entries);
                None
            }
            None => Some(std::mem::take(&mut g.entries)),
        }
    }

    /// The entries of a collector nobody else holds any more.
    pub(super) fn take_entries(&mut self) -> Vec<Entry> {
        let g = self
            .gather
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut g.entries)
    }

    /// Marks the gathering finished; for the slot-delivered form, hands back
    /// the delivery and the entries (run it after unlocking).
    fn finish_locked(g: &mut Gather) -> Option<(OnDone, Vec<Entry>)> {
        g.finished = true;
        let f = g.on_done.take()?;
        Some((f, std::mem::take(&mut g.entries)))
    }

    /// Marks the receivers whose process died as gone.
    pub(super) fn check_processes(&self) {
        if !self.remote {
            return;
        }
        let dead = gone(&lock(&self.gather).entries);
        for i in dead {
            self.complete(i, Outcome::Gone);
        }
    }

    pub(super) fn is_finished(&self) -> bool {
        lock(&self.gather).finished
    }
}

impl Collector {
    /// The request `id` of this process, if still in flight.
    pub(super) fn lookup(id: u64) -> Option<Arc<Collector>> {
        lock(&IN_FLIGHT).get(&id).and_then(Weak::upgrade)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if self.registered {
            lock(&IN_FLIGHT).remove(&self.id);
        }
    }
}

/// The answers of a blocking request that only its own thread completes: it
/// reads the reply mailbox from before sending, and every receiver is in
/// another process. Shared with nobody, so kept without an `Arc`, a lock or
/// atomics (each locked instruction costs ~12 ns on the VMs measured, and a
/// [`Collector`] takes about a dozen per request).
///
/// Its entries (who the receivers are: clones of their ids and loop names)
/// are [filled](Solo::fill) after sending, while the receivers work: a
/// send that fails before is kept aside until then.
pub(super) struct Solo {
    pub(super) id: u64,
    pub(super) expected: &'static str,
    entries: RefCell<Vec<Entry>>,
    /// Outcomes of receivers completed before [`fill`](Solo::fill).
    early: RefCell<Vec<(usize, Outcome)>>,
    n: usize,
    remaining: Cell<usize>,
}

impl Solo {
    /// A request to `n` receivers (at least one), entries to be filled.
    pub(super) fn new(expected: &'static str, n: usize) -> Self {
        Solo {
            id: next_id(),
            expected,
            entries: RefCell::new(Vec::new()),
            early: RefCell::new(Vec::new()),
            n,
            remaining: Cell::new(n),
        }
    }

    /// The receivers, in sending order (as many as [`new`](Solo::new) was
    /// told); outcomes recorded meanwhile are moved in.
    pub(super) fn fill(&self, mut entries: Vec<Entry>) {
        debug_assert_eq!(entries.len(), self.n);
        for (i, outcome) in self.early.take() {
            if let Some(e) = entries.get_mut(i) {
                e.outcome = Some(outcome);
            }
        }
        *self.entries.borrow_mut() = entries;
    }

    /// Records receiver `index`'s outcome (the first one counts).
    pub(super) fn complete(&self, index: usize, outcome: Outcome) {
        let mut entries = self.entries.borrow_mut();
        if entries.is_empty() {
            // Not filled yet (a request has at least one receiver).
            let mut early = self.early.borrow_mut();
            if index < self.n && !early.iter().any(|(i, _)| *i == index) {
                early.push((index, outcome));
                self.remaining.set(self.remaining.get() - 1);
            }
            return;
        }
        if let Some(e) = entries.get_mut(index).filter(|e| e.outcome.is_none()) {
            e.outcome = Some(outcome);
            self.remaining.set(self.remaining.get() - 1);
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.remaining.get() == 0
    }

    /// Marks the receivers whose process died as gone.
    pub(super) fn check_processes(&self) {
        let dead = gone(&self.entries.borrow());
        for i in dead {
            self.complete(i, Outcome::Gone);
        }
    }

    /// Ends the gathering: what is not in is missing (an answer read later
    /// finds no request and is counted late).
    pub(super) fn into_entries(self) -> Vec<Entry> {
        self.entries.into_inner()
    }
}

/// The unanswered entries whose receiver's process died.
fn gone(entries: &[Entry]) -> Vec<usize> {
    let Some(region) = system::region() else {
        return Vec::new();
    };
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.outcome.is_none() && e.proc.is_some_and(|p| !p.alive(region)))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::ObjectId;
    use crate::signal::request::ReceiverNames;

    fn entry(name: &str) -> Entry {
        Entry {
            responder: Responder::new(
                std::sync::Arc::new(ReceiverNames::new(
                    ObjectId::new(name).unwrap(),
                    std::sync::Arc::from("loop"),
                )),
                "slot",
            ),
            proc: None,
            outcome: None,
        }
    }

    #[test]
    fn solo_keeps_outcomes_recorded_before_its_entries_are_filled() {
        let solo = Solo::new("u64", 3);
        // Sends that failed before the entries were filled (once each).
        solo.complete(2, Outcome::Gone);
        solo.complete(2, Outcome::Failed(ReplyError::Panicked));
        solo.complete(7, Outcome::Gone);
        assert!(!solo.is_done());
        solo.fill(vec![entry("a"), entry("b"), entry("c")]);
        solo.complete(0, Outcome::Failed(ReplyError::NotAResponder));
        solo.complete(0, Outcome::Gone);
        assert!(!solo.is_done());
        solo.complete(1, Outcome::Gone);
        assert!(solo.is_done());
        let entries = solo.into_entries();
        assert!(matches!(
            entries[0].outcome,
            Some(Outcome::Failed(ReplyError::NotAResponder))
        ));
        assert!(matches!(entries[1].outcome, Some(Outcome::Gone)));
        assert!(matches!(entries[2].outcome, Some(Outcome::Gone)));
    }
}
