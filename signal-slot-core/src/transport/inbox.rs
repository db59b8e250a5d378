//! The in-process inbox of one event loop: a bounded data queue for signal
//! deliveries (an [`Mpsc`] ring: many producers, the loop the one consumer),
//! an unbounded control channel (adding objects, timers, stop) that never
//! blocks its sender, and the doorbell both ring.

use super::doorbell::{Doorbell, RoomBell};
use super::mpsc::{Consumer, Mpsc};
use crate::sync::{AtomicU64, Ordering};
use crossbeam_channel::{unbounded, Receiver, Sender};
use crossbeam_utils::CachePadded;
use std::time::{Duration, Instant};

/// Why a data message was not queued; the message is handed back.
#[derive(Debug)]
pub(crate) enum PostError<D> {
    /// The inbox stayed full for the whole wait (or no wait was allowed).
    Full(D),
}

pub(crate) struct Inbox<D, C> {
    data: Mpsc<D>,
    ctrl_tx: Sender<C>,
    ctrl_rx: Receiver<C>,
    /// On a line of its own: producers read it on every post.
    bell: CachePadded<Doorbell>,
    /// Producers blocked on a full inbox sleep on this (see `post_when_room`).
    room: CachePadded<RoomBell>,
    /// Posts that found the inbox full and waited for room (the slow path
    /// only writes it).
    waits: AtomicU64,
}

impl<D, C> Inbox<D, C> {
    pub(crate) fn new(capacity: usize) -> Self {
        let (ctrl_tx, ctrl_rx) = unbounded();
        Self {
            data: Mpsc::new(capacity),
            ctrl_tx,
            ctrl_rx,
            bell: CachePadded::new(Doorbell::new()),
            room: CachePadded::new(RoomBell::default()),
            waits: AtomicU64::new(0),
        }
    }

    /// Posts so far that found the inbox full and waited for room.
    pub(crate) fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// The most data messages it holds.
    pub(crate) fn capacity(&self) -> usize {
        self.data.capacity()
    }

    /// Queues a data message, waiting up to `wait` for room (`None`: not at all).
    #[inline]
    pub(crate) fn post(&self, msg: D, wait: Option<Duration>) -> Result<(), PostError<D>> {
        // The common case first: room now, no clock read. (Kept apart from the
        // slow path so the fast one builds no `Result` holding a message.)
        match self.data.try_send(msg) {
            Ok(()) => {
                self.bell.ring_after_seqcst_publish();
                Ok(())
            }
            Err(m) => self.post_full(m, wait),
        }
    }

    #[cold]
    #[inline(never)]
    fn post_full(&self, msg: D, wait: Option<Duration>) -> Result<(), PostError<D>> {
        match wait {
            // A retired ring never makes room: no use waiting.
            _ if self.data.is_retired() => Err(PostError::Full(msg)),
            None => Err(PostError::Full(msg)),
            Some(t) => {
                if !t.is_zero() {
                    self.waits.fetch_add(1, Ordering::Relaxed);
                }
                let sent = self.post_when_room(msg, t);
                if sent.is_ok() {
                    self.bell.ring_after_seqcst_publish();
                }
                sent
            }
        }
    }

    /// The slow path of a blocking post into a full inbox.
    ///
    /// Retrying as soon as one slot frees hands the queue over a message at a
    /// time, with the producer polling the line the consumer writes on every
    /// receive: measured, that runs both threads at a tenth of their speed. So
    /// first let the consumer drain to half (yielding between looks, for up to
    /// `REFILL_POLL`), then queue; a consumer slower than that leaves the
    /// producer asleep on the room bell until a drain makes room.
    #[cold]
    fn post_when_room(&self, mut msg: D, wait: Duration) -> Result<(), PostError<D>> {
        /// Longer than the consumer takes to drain half a default inbox, short
        /// enough that a stuck consumer soon leaves the producer asleep.
        const REFILL_POLL: Duration = Duration::from_millis(2);
        /// Longest sleep between two looks (a backstop: the consumer wakes
        /// sleepers when it makes room).
        const MAX_SLEEP: Duration = Duration::from_millis(10);
        let start = Instant::now();
        let poll = REFILL_POLL.min(wait);
        let low = self.data.capacity() / 2;
        while self.data.len() > low && start.elapsed() < poll {
            std::thread::yield_now();
        }
        loop {
            let seen = self.room.announce();
            match self.data.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(m) => msg = m,
            }
            let left = wait.saturating_sub(start.elapsed());
            // A ring retired meanwhile (its loop finished) never makes room.
            if left.is_zero() || self.data.is_retired() {
                return Err(PostError::Full(msg));
            }
            self.room.sleep(seen, Some(left.min(MAX_SLEEP)));
        }
    }

    /// Queues a control message; never blocks (the control channel is unbounded
    /// because control messages are few and must not be lost).
    pub(crate) fn control(&self, msg: C) {
        // The receiver lives as long as `self`, so this cannot fail.
        let _ = self.ctrl_tx.send(msg);
        self.bell.ring_after_seqcst_publish();
    }

    /// The consumer's end of the data queue, for a batch of receives; `None`
    /// while another thread holds it.
    #[inline]
    pub(crate) fn data_receiver(&self) -> Option<DataReceiver<'_, D, C>> {
        Some(DataReceiver {
            inbox: self,
            rx: self.data.consumer()?,
            took: false,
        })
    }

    /// One data message (for occasional use; a loop's drain takes
    /// [`data_receiver`](Self::data_receiver) once per batch).
    pub(crate) fn try_recv_data(&self) -> Option<D> {
        self.data_receiver()?.try_recv()
    }

    #[inline]
    pub(crate) fn try_recv_control(&self) -> Option<C> {
        self.ctrl_rx.try_recv().ok()
    }

    pub(crate) fn has_work(&self) -> bool {
        !self.ctrl_rx.is_empty() || !self.data.is_empty()
    }

    /// Data messages waiting.
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// Frees the data ring's storage for good, if it is empty and no one
    /// receives from it (see [`Mpsc::retire`]); posts are refused as full from
    /// then on. For an inbox that will never carry data again but must stay
    /// alive. False, and nothing changed, otherwise.
    pub(crate) fn retire_data(&self) -> bool {
        let retired = self.data.retire();
        if retired {
            // Producers waiting for room give up now, not at their deadline
            // (after a fence, as a drain wakes them: one that announced itself
            // sees the retired ring or is woken).
            self.room.wake_after_fence();
        }
        retired
    }

    /// Sleeps until a message arrives (here or where `more` looks) or `timeout`
    /// passes.
    pub(crate) fn sleep(&self, timeout: Option<Duration>, more: impl Fn() -> bool) {
        self.bell.sleep(|| self.has_work() || more(), timeout);
    }

    /// From now on the loop sleeps on `word` (its mailbox's doorbell in shared
    /// memory), which producers of other processes ring too.
    pub(crate) fn use_shared_bell(&self, word: &'static crate::sync::AtomicU32) {
        self.bell.use_external(word);
    }
}

/// The consumer's end of an inbox's data queue (one at a time); wakes the
/// producers waiting for room when dropped after taking messages.
pub(crate) struct DataReceiver<'a, D, C> {
    inbox: &'a Inbox<D, C>,
    rx: Consumer<'a, D>,
    took: bool,
}

impl<D, C> DataReceiver<'_, D, C> {
    #[inline]
    pub(crate) fn try_recv(&mut self) -> Option<D> {
        self.recv_with(|m| m)
    }

    /// Runs `f` on the oldest message, if there is one (see
    /// [`Consumer::recv_with`]).
    #[inline(always)]
    pub(crate) fn recv_with<R>(&mut self, f: impl FnOnce(D) -> R) -> Option<R> {
        let r = self.rx.recv_with(f)?;
        self.took = true;
        self.inbox.room.wake();
        Some(r)
    }
}

impl<D, C> Drop for DataReceiver<'_, D, C> {
    #[inline]
    fn drop(&mut self) {
        if self.took {
            // The fenced check the protocol relies on (see `RoomBell`).
            self.inbox.room.wake_after_fence();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn full_inbox_hands_the_message_back() {
        let inbox: Inbox<u32, ()> = Inbox::new(1);
        inbox.post(1, None).unwrap();
        match inbox.post(2, None) {
            Err(PostError::Full(m)) => assert_eq!(m, 2),
            Ok(()) => panic!("second post into capacity 1 must fail"),
        }
        match inbox.post(3, Some(Duration::from_millis(1))) {
            Err(PostError::Full(m)) => assert_eq!(m, 3),
            Ok(()) => panic!("timed post into a full inbox must fail"),
        }
        assert_eq!(inbox.try_recv_data(), Some(1));
    }

    #[test]
    fn producers_blocked_on_a_full_inbox_get_every_message_in() {
        // Capacity 1 and a consumer that sometimes naps: the producers go
        // through the refill poll and the room bell; nothing is lost or doubled.
        let inbox: Arc<Inbox<u32, ()>> = Arc::new(Inbox::new(1));
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let inbox = inbox.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        inbox
                            .post(p * 1000 + i, Some(Duration::from_secs(60)))
                            .unwrap();
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        while got.len() < 200 {
            match inbox.try_recv_data() {
                Some(v) => got.push(v),
                None if got.len() % 50 == 7 => std::thread::sleep(Duration::from_millis(3)),
                None => std::thread::yield_now(),
            }
        }
        producers.into_iter().for_each(|p| p.join().unwrap());
        for p in 0..2 {
            let mine: Vec<u32> = got.iter().copied().filter(|v| v / 1000 == p).collect();
            assert_eq!(mine, (0..100).map(|i| p * 1000 + i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_sleeping_receiver_wakes_for_data_and_control() {
        let inbox: Arc<Inbox<u32, u32>> = Arc::new(Inbox::new(16));
        let rx = inbox.clone();
        let t = std::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 200 {
                if let Some(c) = rx.try_recv_control() {
                    got.push(c);
                } else if let Some(d) = rx.try_recv_data() {
                    got.push(d);
                } else {
                    rx.sleep(None, || false);
                }
            }
            got
        });
        for i in 0..100 {
            inbox.post(i, Some(Duration::from_secs(60))).unwrap();
            inbox.control(1000 + i);
        }
        let got = t.join().unwrap();
        let data: Vec<u32> = got.iter().copied().filter(|v| *v < 1000).collect();
        assert_eq!(data, (0..100).collect::<Vec<_>>());
    }
}

/// The room bell's protocol with the ring it guards, under
/// `RUSTFLAGS="--cfg loom"`: the blocked producer's futex wait has no timeout
/// here, so a lost wake-up is a loom deadlock.
#[cfg(all(test, loom))]
mod loom_models {
    use crate::sync::model::{self, thread, Arc, AtomicU32};
    use crate::transport::doorbell::RoomBell;
    use crate::transport::mpsc::{loom_models::Loom, Mpsc};

    /// A producer blocked on a full one-slot ring and the consumer that makes
    /// room, then checks the bell once (after its fence, as a drain does).
    #[test]
    fn loom_room_bell_wakes_a_blocked_producer() {
        model::check(1, || {
            let q = Arc::new(Mpsc::<u32, Loom>::new(1));
            let room = Arc::new(RoomBell::<AtomicU32>::default());
            q.try_send(0).unwrap();
            let (q2, r2) = (q.clone(), room.clone());
            let producer = thread::spawn(move || {
                let mut m = 1;
                loop {
                    let seen = r2.announce();
                    match q2.try_send(m) {
                        Ok(()) => break,
                        Err(back) => m = back,
                    }
                    r2.sleep(seen, None);
                }
            });
            let c = q.consumer().expect("one consumer");
            assert_eq!(c.try_recv(), Some(0));
            room.wake_after_fence();
            let second = loop {
                if let Some(v) = c.try_recv() {
                    break v;
                }
                thread::yield_now();
            };
            assert_eq!(second, 1);
            drop(c);
            producer.join().unwrap();
        });
    }
}
