//! The in-process inbox of one event loop: a bounded data channel for signal
//! deliveries, an unbounded control channel (adding objects, timers, stop) that
//! never blocks its sender, and the doorbell both ring.

use super::doorbell::Doorbell;
use crossbeam_channel::{bounded, unbounded, Receiver, SendTimeoutError, Sender, TrySendError};
use crossbeam_utils::CachePadded;
use std::time::{Duration, Instant};

/// Why a data message was not queued; the message is handed back.
#[derive(Debug)]
pub(crate) enum PostError<D> {
    /// The inbox stayed full for the whole wait (or no wait was allowed).
    Full(D),
}

pub(crate) struct Inbox<D, C> {
    data_tx: Sender<D>,
    data_rx: Receiver<D>,
    ctrl_tx: Sender<C>,
    ctrl_rx: Receiver<C>,
    /// On a line of its own: producers read it on every post.
    bell: CachePadded<Doorbell>,
}

impl<D, C> Inbox<D, C> {
    pub(crate) fn new(capacity: usize) -> Self {
        let (data_tx, data_rx) = bounded(capacity);
        let (ctrl_tx, ctrl_rx) = unbounded();
        Self {
            data_tx,
            data_rx,
            ctrl_tx,
            ctrl_rx,
            bell: CachePadded::new(Doorbell::new()),
        }
    }

    /// Queues a data message, waiting up to `wait` for room (`None`: not at all).
    #[inline]
    pub(crate) fn post(&self, msg: D, wait: Option<Duration>) -> Result<(), PostError<D>> {
        // The common case first: room now, no clock read.
        let sent = match self.data_tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => match wait {
                None => Err(PostError::Full(m)),
                Some(t) => self.post_when_room(m, t),
            },
        };
        if sent.is_ok() {
            self.bell.ring_after_seqcst_publish();
        }
        sent
    }

    /// The slow path of a blocking post into a full inbox.
    ///
    /// Retrying as soon as one slot frees hands the queue over a message at a
    /// time, with the producer polling the line the consumer writes on every
    /// receive: measured, that runs both threads at a tenth of their speed. So
    /// first let the consumer drain to half (yielding between looks, for up to
    /// `REFILL_POLL`), then queue; after that, block in the channel as usual.
    #[cold]
    fn post_when_room(&self, msg: D, wait: Duration) -> Result<(), PostError<D>> {
        /// Longer than the consumer takes to drain half a default inbox, short
        /// enough that a stuck consumer soon leaves the producer parked, not polling.
        const REFILL_POLL: Duration = Duration::from_millis(2);
        let start = Instant::now();
        let poll = REFILL_POLL.min(wait);
        let low = self.data_tx.capacity().unwrap_or(usize::MAX) / 2;
        while self.data_tx.len() > low && start.elapsed() < poll {
            std::thread::yield_now();
        }
        let left = wait.saturating_sub(start.elapsed());
        self.data_tx.send_timeout(msg, left).map_err(|e| match e {
            SendTimeoutError::Timeout(m) | SendTimeoutError::Disconnected(m) => PostError::Full(m),
        })
    }

    /// Queues a control message; never blocks (the control channel is unbounded
    /// because control messages are few and must not be lost).
    pub(crate) fn control(&self, msg: C) {
        // The receiver lives as long as `self`, so this cannot fail.
        let _ = self.ctrl_tx.send(msg);
        self.bell.ring_after_seqcst_publish();
    }

    #[inline]
    pub(crate) fn try_recv_data(&self) -> Option<D> {
        self.data_rx.try_recv().ok()
    }

    #[inline]
    pub(crate) fn try_recv_control(&self) -> Option<C> {
        self.ctrl_rx.try_recv().ok()
    }

    pub(crate) fn has_work(&self) -> bool {
        !self.ctrl_rx.is_empty() || !self.data_rx.is_empty()
    }

    /// Data messages waiting.
    pub(crate) fn len(&self) -> usize {
        self.data_rx.len()
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
