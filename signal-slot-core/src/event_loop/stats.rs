use crate::error::DropReason;
use crate::sync::{AtomicU64, Ordering};

/// A snapshot of one loop's counters.
///
/// ```
/// use signal_slot::EventLoop;
/// let lp = EventLoop::new("stats-doc");
/// let s = lp.stats();
/// assert_eq!((s.delivered, s.dropped_total(), s.slot_panics), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Slot calls made (inline and queued), including ones that panicked.
    pub delivered: u64,
    /// Messages dropped because the inbox stayed full.
    pub dropped_queue_full: u64,
    /// Messages dropped because their receiver was removed first.
    pub dropped_receiver_gone: u64,
    /// Messages dropped because the loop had stopped.
    pub dropped_loop_stopped: u64,
    /// Messages dropped because they exceeded the cross-process size limit or
    /// could not be serialized.
    pub dropped_unsendable: u64,
    /// Records from other processes that could not be decoded (skipped).
    pub decode_errors: u64,
    /// Pattern subscriptions of this loop's objects that matched a signal whose
    /// arguments are not the slot's (the signal was not connected; logged).
    pub type_mismatches: u64,
    /// Slot calls that panicked (caught; the loop went on).
    pub slot_panics: u64,
    /// Messages waiting in the inbox now.
    pub queue_depth: usize,
    /// Times the loop woke from sleeping in the kernel.
    pub wakeups: u64,
    /// Sends to this loop that found its queue full (its inbox, or from
    /// another process its ring) and waited for room, as their connection's
    /// [`Overflow::Block`](crate::Overflow) says (a zero timeout does not
    /// wait): got in after the wait, or dropped, and counted as such, when
    /// it ended (`dropped_queue_full`; `dropped_loop_stopped` or
    /// `dropped_receiver_gone` when the loop stopped or its process died
    /// meanwhile). Counted in the sender's process: a loop of another process
    /// shows, on its handle here, the waits of this process's senders.
    /// Answers to requests and control messages are not counted.
    pub waited_for_room: u64,
}

impl LoopStats {
    /// All drops, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_receiver_gone
            + self.dropped_loop_stopped
            + self.dropped_unsendable
    }
}

/// The live counters. `delivered`, `slot_panics` and `wakeups` are written by the
/// loop thread alone, so they are bumped without a read-modify-write.
#[derive(Default)]
pub(crate) struct Counters {
    delivered: AtomicU64,
    slot_panics: AtomicU64,
    wakeups: AtomicU64,
    queue_full: AtomicU64,
    receiver_gone: AtomicU64,
    loop_stopped: AtomicU64,
    unsendable: AtomicU64,
    decode_errors: AtomicU64,
    type_mismatches: AtomicU64,
    /// Sends to another process that waited for room in its ring.
    waited_remote: AtomicU64,
}

/// Single-writer increment: a plain load and store, no locked instruction.
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl Counters {
    #[inline]
    pub(crate) fn delivered_by_loop(&self) {
        bump(&self.delivered);
    }

    pub(crate) fn panicked_by_loop(&self) {
        bump(&self.slot_panics);
    }

    pub(crate) fn woke_by_loop(&self) {
        bump(&self.wakeups);
    }

    /// A record from another process that could not be decoded.
    pub(crate) fn decode_error(&self, loop_name: &str, why: &dyn std::fmt::Display) {
        let n = self.decode_errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            log::error!("event loop {loop_name:?}: undecodable record skipped ({why}); {n} so far");
        }
    }

    /// `n` messages were waiting for this loop when its process died: lost,
    /// counted as [`DropReason::ReceiverGone`].
    pub(crate) fn lost(&self, n: u64, process: &str) {
        self.receiver_gone.fetch_add(n, Ordering::Relaxed);
        log::warn!("process {process:?} died with {n} messages waiting for it: lost");
    }

    /// A pattern subscription matched a signal of another argument type.
    pub(crate) fn type_mismatch(&self, loop_name: &str, why: &dyn std::fmt::Display) {
        self.type_mismatches.fetch_add(1, Ordering::Relaxed);
        log::error!("event loop {loop_name:?}: {why}");
    }

    /// Counts a drop (any thread) and logs it, at 1, 2, 4, 8, ... drops of a
    /// reason so a flood does not flood the log.
    pub(crate) fn dropped(&self, reason: DropReason, loop_name: &str) {
        let c = match reason {
            DropReason::QueueFull => &self.queue_full,
            DropReason::ReceiverGone => &self.receiver_gone,
            DropReason::LoopStopped => &self.loop_stopped,
            DropReason::TooLarge | DropReason::Encode => &self.unsendable,
            DropReason::ForwardDepth | DropReason::NoGroupMember => return,
        };
        let n = c.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            log::warn!("event loop {loop_name:?}: message dropped ({reason}); {n} so far");
        }
    }

    /// A send to this loop in another process found its ring full and waits
    /// for room (once per send).
    pub(crate) fn waits_for_ring(&self) {
        self.waited_remote.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters, with the inbox's depth and waits (`inbox_waits`).
    pub(crate) fn snapshot(&self, queue_depth: usize, inbox_waits: u64) -> LoopStats {
        LoopStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped_queue_full: self.queue_full.load(Ordering::Relaxed),
            dropped_receiver_gone: self.receiver_gone.load(Ordering::Relaxed),
            dropped_loop_stopped: self.loop_stopped.load(Ordering::Relaxed),
            dropped_unsendable: self.unsendable.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
            type_mismatches: self.type_mismatches.load(Ordering::Relaxed),
            slot_panics: self.slot_panics.load(Ordering::Relaxed),
            queue_depth,
            wakeups: self.wakeups.load(Ordering::Relaxed),
            waited_for_room: self.waited_remote.load(Ordering::Relaxed) + inbox_waits,
        }
    }
}
