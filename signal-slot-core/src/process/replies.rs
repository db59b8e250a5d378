//! This process's reply mailbox: where answers to its *blocking* requests
//! come back from other processes, read by the requesting thread itself.
//!
//! Answers to the slot-delivered form go through the control mailbox (the
//! control thread is always there to read them); a blocking requester is
//! waiting anyway, so it reads its answers directly: it polls the mailbox for
//! up to ~100 microseconds (an answer from a loop that spins comes within a
//! few), then sleeps on the mailbox's doorbell. That saves the wake-up of a second
//! thread, which costs more than the rest of the round trip on small VMs.
//!
//! The mailbox is claimed on first use (one of the region's mailboxes, freed
//! with the process). One thread at a time reads it (the *drainer*); a second
//! blocking requester parks and takes over when the first one leaves.

use crate::sync::{lock, AtomicU32, AtomicU64, Ordering};
use crate::transport::doorbell::{wake_if_sleeping, Doorbell};
use crate::transport::shm::mailbox::{self, Cleared, Found, MailboxAddr, MailboxConsumer};
use crate::transport::shm::system;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// This process's reply mailbox, tagged with the process slot that claimed it
/// (a forked child inherits its parent's value and claims its own). Claims
/// are serialized by the lock; [`CACHED`] is what the hot path reads.
static MAILBOX: Mutex<Option<(u32, MailboxAddr)>> = Mutex::new(None);
/// `generation << 32 | (process slot + 1) << 8 | index`, 0 before a claim.
static CACHED: AtomicU64 = AtomicU64::new(0);
/// The process slot + 1 of the thread reading the mailbox, 0 when none does.
/// A child forked while its parent's drainer read sees another process's
/// value here and treats the role as free.
static DRAINER: AtomicU32 = AtomicU32::new(0);
/// Threads of this process waiting for their answers while another drains:
/// a drainer done with its own answer reads the rest for them before it
/// leaves (else they wait until they take the mailbox over, up to
/// [`TAKE_OVER`]). Alone, it leaves at once: the look past its answer is a
/// miss on the line its answerer just wrote (~0.1 us of a ~0.6 us request).
static WAITING: AtomicU32 = AtomicU32::new(0);

/// Polls of the mailbox before sleeping on its doorbell: ~100 us of `pause`
/// on the VMs measured. Longer than a loop's idle spin on purpose: the thread
/// is blocked anyway, and an answer that finds it awake keeps the answering
/// loop awake too (both turn around within its spin); one that finds it
/// asleep costs two wake-ups, ~20x the round trip (see `benches/processes.rs`,
/// section 5).
const SPIN_POLLS: u32 = 4096;
const SPIN_YIELDS: u32 = 8;
/// How long a requester that is not the drainer parks before trying again.
const TAKE_OVER: Duration = Duration::from_millis(1);

fn pack(p: u32, a: MailboxAddr) -> u64 {
    u64::from(a.generation) << 32 | u64::from(p + 1) << 8 | u64::from(a.index)
}

/// The cached mailbox, if this process claimed it.
fn cached() -> Option<MailboxAddr> {
    let v = CACHED.load(Ordering::Acquire);
    let p = ((v >> 8) & 0xff) as u32;
    (p == system::my_proc() + 1).then_some(MailboxAddr {
        index: (v & 0xff) as u32,
        generation: (v >> 32) as u32,
    })
}

/// The reply mailbox, claimed on first use; `None` if no mailbox is free
/// (answers then come through the control mailbox).
pub(crate) fn mailbox() -> Option<MailboxAddr> {
    if let Some(a) = cached() {
        return Some(a);
    }
    let region = system::region()?;
    let me = system::my_proc();
    let mut m = lock(&MAILBOX);
    if let Some((p, addr)) = *m {
        if p == me {
            return Some(addr);
        }
    }
    let addr = mailbox::claim(region, me)?;
    mailbox::map_resident_rings(region, addr.index);
    *m = Some((me, addr));
    CACHED.store(pack(me, addr), Ordering::Release);
    Some(addr)
}

/// Wakes the thread sleeping on the reply mailbox, if any (an answer from this
/// process completed a request whose requester may sleep there).
pub(crate) fn wake() {
    if let (Some(region), Some(addr)) = (system::region(), cached()) {
        wake_if_sleeping(&region.mailbox_header(addr.index).bell, true);
    }
}

/// Holds the drainer role; gives it up when dropped. A requester that holds
/// it from before sending until its answers are in reads them all itself.
pub(crate) struct Drainer;

impl Drainer {
    /// The role, if no other thread of this process holds it.
    pub(crate) fn try_take() -> Option<Self> {
        let me = system::my_proc() + 1;
        let v = DRAINER.load(Ordering::Acquire);
        if v == me {
            return None; // another thread of this process reads
        }
        DRAINER
            .compare_exchange(v, me, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Drainer)
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        DRAINER.store(0, Ordering::Release);
    }
}

/// A wait's deadline and next liveness tick, set at its first clock reading.
struct Clock {
    deadline: Instant,
    next_tick: Instant,
}

impl Clock {
    fn start(now: Instant, timeout: Duration, period: Duration) -> Self {
        Clock {
            deadline: crate::deadline::after(now, timeout),
            next_tick: now + period,
        }
    }
}

/// Waits until `done()` or `timeout` is over: reads the reply mailbox `addr`
/// when no other thread does (`role`: the caller holds that role already),
/// handing each answer (to this thread's request or another's) to
/// `on_record`, and calls `tick` every `period` (to notice dead processes).
///
/// The timeout counts from the wait's first clock reading, which is taken only
/// once polling found nothing (an answer that comes while polling costs no
/// clock read): at most the polling (~100 us) after the request was sent.
pub(crate) fn wait(
    addr: MailboxAddr,
    mut role: Option<Drainer>,
    on_record: &mut dyn FnMut(&[u8]),
    done: &dyn Fn() -> bool,
    timeout: Duration,
    period: Duration,
    tick: &dyn Fn(),
) {
    let Some(region) = system::region() else {
        return;
    };
    let consumer = MailboxConsumer::new(region, addr);
    // Made when first needed: most answers come while polling.
    let mut bell: Option<Doorbell> = None;
    // `rec` is a private copy already (see `transport::shm::ring`): the peer
    // cannot change it while it is parsed.
    let mut handle = |rec: &[u8]| match rec.first() {
        Some(&crate::signal::request::KIND_REPLY) => on_record(rec),
        _ => log::error!("reply mailbox: record of unknown kind skipped"),
    };
    // Drained while polling (flags stay up, see `MailboxConsumer::drain_polling`),
    // settled before sleeping, as a loop does with its mailbox.
    let drain = |consumer: &MailboxConsumer, handle: &mut dyn FnMut(&[u8])| {
        consumer.drain_polling(
            usize::MAX,
            |_, rec| handle(rec),
            |from, why| log::error!("reply ring from process {from} corrupt: {why}"),
        )
    };
    // The answer the poll found, taken alone (a blocking request's every
    // answer, as a loop's idle poll does, see `LoopLocal::drain_one`); then
    // anything behind it through the drain, before `done` is asked, when
    // other threads wait (see `WAITING`) or after a liveness tick (the last
    // look after a receiver died must see all; review helper-69). True if
    // records were read.
    let mut read = |consumer: &MailboxConsumer, cleared: &Cleared, all: bool| {
        let mut n = match consumer.find_record(cleared) {
            Found::Nothing => return false,
            Found::One(one) => {
                one.take(&mut handle);
                if !all && WAITING.load(Ordering::Relaxed) == 0 {
                    return true;
                }
                1
            }
            Found::Records => 0,
        };
        if consumer.has_records_or(cleared) {
            n += drain(consumer, &mut handle);
        }
        n > 0
    };
    // Set at the first clock reading (see above).
    let mut clock: Option<Clock> = None;
    let mut polls = 0u32;
    // A liveness tick ran since the last read (see `read`).
    let mut ticked = false;
    loop {
        if done() {
            return;
        }
        let Some(_role) = role.take().or_else(Drainer::try_take) else {
            let now = Instant::now();
            let c = clock.get_or_insert_with(|| Clock::start(now, timeout, period));
            if now >= c.deadline {
                return;
            }
            if now >= c.next_tick {
                tick();
                c.next_tick = now + period;
                continue;
            }
            WAITING.fetch_add(1, Ordering::Relaxed);
            std::thread::park_timeout((c.deadline - now).min(TAKE_OVER).min(c.next_tick - now));
            WAITING.fetch_sub(1, Ordering::Relaxed);
            continue;
        };
        // Rings this drainer cleared before a sleep, looked at again for a
        // grace (see `Cleared`; without it an answer the barrier did not
        // order waited for the next record in its ring, past its deadline),
        // and flagged again for the next drainer if it leaves before that.
        let mut kept = HandBack {
            consumer: &consumer,
            cleared: Cleared::default(),
        };
        // The drainer: read, poll a little, sleep on the doorbell, repeat.
        loop {
            // Looked at first: the answer to a request just sent is not in yet.
            if read(&consumer, &kept.cleared, std::mem::take(&mut ticked)) {
                polls = 0;
            }
            if done() {
                return;
            }
            if polls < SPIN_POLLS + SPIN_YIELDS {
                poll(&consumer, &kept.cleared, done, &mut polls);
                continue;
            }
            let now = Instant::now();
            let c = clock.get_or_insert_with(|| Clock::start(now, timeout, period));
            if now >= c.deadline {
                return;
            }
            if now >= c.next_tick {
                tick();
                ticked = true;
                c.next_tick = now + period;
                continue;
            }
            if consumer.settle(&mut kept.cleared) {
                continue;
            }
            let limit = (c.deadline - now).min(c.next_tick - now);
            let nap = kept.cleared.nap(Some(limit)).unwrap_or(limit);
            bell.get_or_insert_with(|| {
                let b = Doorbell::new();
                b.use_external(&region.mailbox_header(addr.index).bell);
                b
            })
            .sleep(|| consumer.has_work() || done(), Some(nap));
        }
    }
}

/// Polls until a record or `done()`, or the polls are used up. Out of line:
/// profiles show the polling apart from the work of a request.
#[inline(never)]
fn poll(consumer: &MailboxConsumer, cleared: &Cleared, done: &dyn Fn() -> bool, polls: &mut u32) {
    while *polls < SPIN_POLLS + SPIN_YIELDS && !consumer.has_records_or(cleared) && !done() {
        if *polls < SPIN_POLLS {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        *polls += 1;
    }
}

/// A drainer's [`Cleared`] rings, flagged again when it stops reading the
/// mailbox (the next drainer does not know them; see
/// [`MailboxConsumer::hand_back`]).
struct HandBack<'a> {
    consumer: &'a MailboxConsumer,
    cleared: Cleared,
}

impl Drop for HandBack<'_> {
    fn drop(&mut self) {
        self.consumer.hand_back(&self.cleared);
    }
}
