//! When a loop lets a stream's records gather before it reads its mailbox
//! again.
//!
//! Why: a consumer that keeps up with a producer in another process record
//! by record reads each record's cache line while the producer writes the
//! next record into it, so every emit waits for its line to come back from
//! the other core (the producer's lock is a locked instruction, which waits
//! for its earlier stores). Measured on the 2-vCPU VM, `(u64,)` parent ->
//! child, cpu0/cpu1: rounds where the consumer kept up ran at 9-11 M/s,
//! rounds where it lagged at 25-30; waiting 1 us after such a drain gave
//! 12-15 M/s in the slow rounds, 3 us 15-22, 5 us 17-32, 10 us 18-30 (one
//! stream; `benches/processes.rs`, `BENCH_ONLY=throughput_u64`).
//!
//! A wait follows only a drain that looked like a stream: several records,
//! all from one producer process, none a request, fewer than a batch (a full
//! batch is a consumer already behind) and a small part of the ring (a ring
//! filling up must not be left to fill). A ping-pong, a request, or peers in
//! several processes never make the loop wait. A peer whose every round
//! sends two records looks like a stream once: the drain after the wait
//! finds only its next round, so waits stop for [`BACKOFF_FIRST`] such
//! drains, twice as many after each further miss (up to [`BACKOFF_MAX`]).

use std::cell::Cell;
use std::time::Duration;

/// The longest a stream's records are left to gather: records of a stream
/// are read at most this much later than they would have been.
pub(super) const GATHER: Duration = Duration::from_micros(5);
/// Records a drain must find to look like a stream.
const STREAM_AFTER: usize = 2;
/// Records the drain after a wait must find for the wait to have gathered a
/// stream (a stream of 2 M/s leaves 10 in [`GATHER`]).
const STREAM_GATHERED: usize = 8;
/// Stream-like drains not waited after, following a wait that gathered no
/// stream; doubled on each further miss, up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: u32 = 64;
const BACKOFF_MAX: u32 = 4096;

/// What one drain of the mailbox found.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Drained {
    /// Records handed to the loop.
    pub(super) records: usize,
    /// Their bytes.
    pub(super) bytes: usize,
    /// They came from more than one producer process.
    pub(super) several_rings: bool,
    /// One of them was a request (its requester waits for the answer).
    pub(super) request: bool,
}

/// The loop's state for [`Gather::after_drain`] (one per loop thread).
#[derive(Debug, Default)]
pub(super) struct Gather {
    /// The last drain was followed by a wait.
    waited: Cell<bool>,
    /// Stream-like drains still not to wait after.
    skip: Cell<u32>,
    /// The next miss's `skip` (0: [`BACKOFF_FIRST`]).
    backoff: Cell<u32>,
}

impl Gather {
    /// Whether to wait (up to [`GATHER`]) after a drain that found `d`, of a
    /// batch of at most `batch` records from rings of `ring_bytes` each;
    /// `allowed` (asked last, only for a stream): the loop has nothing else
    /// to do now and no sender shares its CPU. A true answer is taken as a
    /// wait done.
    #[inline]
    pub(super) fn after_drain(
        &self,
        d: Drained,
        batch: usize,
        ring_bytes: usize,
        allowed: impl FnOnce() -> bool,
    ) -> bool {
        if self.waited.replace(false) {
            if d.records < STREAM_GATHERED {
                self.no_stream_came();
                return false;
            }
            self.backoff.set(0);
        }
        let stream_like = (STREAM_AFTER..batch).contains(&d.records)
            && !d.several_rings
            && !d.request
            && d.bytes < ring_bytes / 8;
        if !stream_like {
            return false;
        }
        if let Some(left) = self.skip.get().checked_sub(1) {
            self.skip.set(left);
            return false;
        }
        if !allowed() {
            return false;
        }
        self.waited.set(true);
        true
    }

    /// [`after_drain`](Self::after_drain) of a drain that read one record
    /// (never a stream: it never waits).
    #[inline]
    pub(super) fn after_one(&self) {
        if self.waited.replace(false) {
            self.no_stream_came();
        }
    }

    /// A wait gathered no stream: a peer with a few records per round.
    #[cold]
    fn no_stream_came(&self) {
        let skip = match self.backoff.get() {
            0 => BACKOFF_FIRST,
            b => b,
        };
        self.skip.set(skip);
        self.backoff.set((skip * 2).min(BACKOFF_MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: usize = 256;
    const RING: usize = 1 << 20;

    fn drained(records: usize) -> Drained {
        Drained {
            records,
            bytes: records * 24,
            ..Drained::default()
        }
    }

    fn after(g: &Gather, records: usize) -> bool {
        g.after_drain(drained(records), BATCH, RING, || true)
    }

    #[test]
    fn a_stream_is_waited_for_after_every_drain_that_kept_up() {
        let g = Gather::default();
        assert!(after(&g, 2));
        for n in [40, 100, 255] {
            assert!(after(&g, n), "{n} records gathered: still a stream");
        }
        // A full batch: the loop is behind, no wait; a stream again later.
        assert!(!after(&g, BATCH));
        assert!(after(&g, 30));
    }

    #[test]
    fn single_records_requests_several_rings_and_full_rings_never_wait() {
        let g = Gather::default();
        for _ in 0..10 {
            assert!(!after(&g, 1), "a ping-pong's drain");
        }
        let request = Drained {
            request: true,
            ..drained(5)
        };
        assert!(!g.after_drain(request, BATCH, RING, || true));
        let several = Drained {
            several_rings: true,
            ..drained(5)
        };
        assert!(!g.after_drain(several, BATCH, RING, || true));
        let filling = Drained {
            records: 100,
            bytes: RING / 4,
            ..Drained::default()
        };
        assert!(!g.after_drain(filling, BATCH, RING, || true));
        assert!(
            !g.after_drain(drained(5), BATCH, RING, || false),
            "not allowed"
        );
        assert!(after(&g, 5), "none of these counted as a miss");
    }

    /// The idle poll's one-record drain (see `LoopLocal::drain_one`) after
    /// a wait is a miss like any other drain that gathered nothing.
    #[test]
    fn a_one_record_drain_after_a_wait_is_a_miss() {
        let g = Gather::default();
        g.after_one();
        assert!(after(&g, 2), "no wait before it: nothing to miss");
        g.after_one();
        for n in 0..BACKOFF_FIRST {
            assert!(!after(&g, 2), "drain {n} after the miss");
        }
        assert!(after(&g, 2));
    }

    #[test]
    fn a_peer_with_two_records_a_round_stops_the_waits_longer_after_each_miss() {
        let g = Gather::default();
        let mut waits = Vec::new();
        for round in 0..20_000u32 {
            if after(&g, 2) {
                waits.push(round);
            }
        }
        // Waited at rounds 0, then after 64, 128, 256, ... skipped drains
        // (each wait's next drain is its miss).
        assert_eq!(&waits[..4], &[0, 66, 196, 454]);
        let gaps: Vec<u32> = waits.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
        assert_eq!(*gaps.last().unwrap_or(&0), BACKOFF_MAX + 2, "{gaps:?}");
    }

    #[test]
    fn a_stream_after_misses_backs_off_from_the_start_again() {
        let g = Gather::default();
        assert!(after(&g, 2));
        assert!(!after(&g, 2), "miss: skip 64");
        for _ in 0..64 {
            assert!(!after(&g, 2));
        }
        assert!(after(&g, 2));
        assert!(after(&g, 50), "a stream this time");
        assert!(!after(&g, 3), "miss");
        for _ in 0..BACKOFF_FIRST {
            assert!(!after(&g, 2), "skips the first backoff again, not 128");
        }
        assert!(after(&g, 2));
    }
}
