//! A single-producer single-consumer ring of variable-length records in shared
//! memory.
//!
//! Positions are `u64` byte counters that only grow: `tail` counts bytes the
//! producer published, `head` bytes the consumer released; a position's offset is
//! `pos % capacity` (a power of two). A record is `[u32 len][payload][pad to 8]`
//! starting at a multiple of 8; when it does not fit before the end of the data
//! area the producer writes the wrap marker `u32::MAX` and starts at offset 0.
//! Records longer than `capacity / 2` are refused, so an empty ring takes any
//! allowed record.
//!
//! The producer writes a whole record, then stores `tail` (Release); the consumer
//! loads `tail` (Acquire), reads `[head, tail)`, then stores `head` (Release) once
//! per batch. A producer killed mid-record never published it: the consumer
//! cannot see a torn record. The peer is not trusted: every position and length
//! read from shared memory is checked before use; a violation is
//! [`RingError::Corrupt`], never a panic or an out-of-bounds access, and nothing
//! is allocated from a length field. A zeroed ring is a valid empty ring.

use crate::sync::{AtomicU64, Ordering};
use std::ptr;

const LEN_FIELD: usize = 4;
const WRAP: u32 = u32::MAX;

/// Bytes the ring header takes: head and tail on cache lines of their own.
pub(crate) const RING_HEADER: usize = 256;
const OFF_TAIL: usize = 0;
const OFF_HEAD: usize = 128;

/// What went wrong with a ring operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RingError {
    /// No room now.
    Full,
    /// Can never fit.
    TooLarge,
    /// The shared memory breaks the ring's invariants.
    Corrupt(&'static str),
}

/// A view of one ring inside a mapping that outlives it.
#[derive(Clone, Copy)]
pub(crate) struct RingView {
    base: *mut u8,
    capacity: usize,
}

// SAFETY: the view points into a shared mapping that lives as long as the
// process's region; all access goes through atomics or the ring protocol.
unsafe impl Send for RingView {}
// SAFETY: as above.
unsafe impl Sync for RingView {}

/// Bytes a record of payload `len` occupies.
#[inline]
fn record_size(len: usize) -> usize {
    (LEN_FIELD + len + 7) & !7
}

impl RingView {
    /// # Safety
    /// `base` must point at `RING_HEADER + capacity` bytes of mapped, 128-byte
    /// aligned memory that stays mapped while the view is used; `capacity` is a
    /// power of two of at least 64.
    pub(crate) unsafe fn new(base: *mut u8, capacity: usize) -> Self {
        Self { base, capacity }
    }

    fn counter(&self, off: usize) -> &AtomicU64 {
        // SAFETY: `new`'s contract: the header is mapped and aligned; AtomicU64
        // has the size and alignment of u64.
        unsafe { &*self.base.add(off).cast::<AtomicU64>() }
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: the data area follows the header inside the mapping.
        unsafe { self.base.add(RING_HEADER) }
    }

    /// Largest payload a record may carry.
    pub(crate) fn max_record(&self) -> usize {
        self.capacity / 2 - LEN_FIELD
    }

    /// Producer: the position to write at (the published tail).
    pub(crate) fn producer_tail(&self) -> u64 {
        self.counter(OFF_TAIL).load(Ordering::Relaxed)
    }

    /// Consumer: the position to read at (the released head).
    pub(crate) fn consumer_head(&self) -> u64 {
        self.counter(OFF_HEAD).load(Ordering::Relaxed)
    }

    /// Consumer: drops everything published so far (a new consumer starting
    /// fresh on a reused mailbox).
    pub(crate) fn skip_all(&self) {
        let tail = self.counter(OFF_TAIL).load(Ordering::Acquire);
        self.counter(OFF_HEAD).store(tail, Ordering::Release);
    }

    /// True when nothing is published beyond `head`.
    pub(crate) fn is_empty(&self) -> bool {
        self.counter(OFF_TAIL).load(Ordering::Acquire) == self.consumer_head()
    }

    /// Producer: writes one record of `len` bytes filled by `fill`, and publishes
    /// it. Only one thread of one process may produce on a ring at a time.
    pub(crate) fn push(&self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), RingError> {
        if len > self.max_record() {
            return Err(RingError::TooLarge);
        }
        let cap = self.capacity as u64;
        let tail = self.producer_tail();
        let head = self.counter(OFF_HEAD).load(Ordering::Acquire);
        if head > tail || tail - head > cap || tail % 8 != 0 {
            return Err(RingError::Corrupt("head/tail out of range"));
        }
        let size = record_size(len) as u64;
        let off = (tail % cap) as usize;
        let to_end = self.capacity - off;
        let (start, wasted) = if (size as usize) <= to_end {
            (off, 0u64)
        } else {
            (0, to_end as u64)
        };
        if tail + wasted + size - head > cap {
            return Err(RingError::Full);
        }
        let data = self.data();
        // SAFETY: `[tail, head + cap)` belongs to the producer (checked above): the
        // consumer reads nothing beyond the published tail. `off + 4 <= capacity`
        // since offsets are multiples of 8 and capacity a multiple of 8; the record
        // `[start, start + size)` lies inside the data area (`size <= to_end` or it
        // starts at 0 with `size <= capacity / 2`).
        unsafe {
            if wasted > 0 {
                ptr::write_unaligned(data.add(off).cast::<u32>(), WRAP);
            }
            // `len <= capacity / 2 < u32::MAX`.
            ptr::write_unaligned(data.add(start).cast::<u32>(), len as u32);
            let buf = std::slice::from_raw_parts_mut(data.add(start + LEN_FIELD), len);
            fill(buf);
        }
        self.counter(OFF_TAIL)
            .store(tail + wasted + size, Ordering::Release);
        Ok(())
    }

    /// Consumer: hands up to `max` published records to `f`, then releases them.
    /// Returns how many were read. Only one thread may consume a ring.
    pub(crate) fn drain(&self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize, RingError> {
        let cap = self.capacity as u64;
        let mut head = self.consumer_head();
        let tail = self.counter(OFF_TAIL).load(Ordering::Acquire);
        if tail < head || tail - head > cap || tail % 8 != 0 || head % 8 != 0 {
            return Err(RingError::Corrupt("tail out of range of head"));
        }
        let data = self.data();
        let mut n = 0;
        let result = loop {
            if head == tail || n == max {
                break Ok(n);
            }
            let off = (head % cap) as usize;
            // SAFETY: `off` is a multiple of 8 below capacity, so 4 bytes fit; the
            // range `[head, tail)` is published and owned by the consumer.
            let len = unsafe { ptr::read_volatile(data.add(off).cast::<u32>()) };
            let (start, skipped) = if len == WRAP {
                (0usize, (self.capacity - off) as u64)
            } else {
                (off, 0)
            };
            let len = if skipped > 0 {
                if head + skipped >= tail {
                    break Err(RingError::Corrupt("wrap marker at the tail"));
                }
                // SAFETY: offset 0 is inside the data area and published (checked).
                unsafe { ptr::read_volatile(data.cast::<u32>()) }
            } else {
                len
            } as usize;
            let size = record_size(len) as u64;
            if len > self.max_record()
                || start + LEN_FIELD + len > self.capacity
                || head + skipped + size > tail
            {
                break Err(RingError::Corrupt("record beyond the published range"));
            }
            // SAFETY: `[start, start + 4 + len)` lies inside the data area (len <=
            // capacity / 2 and the record is within the published range, which
            // never straddles the end: wraps are marked). The producer does not
            // write it until `head` moves past it, which happens after `f` returns.
            let rec = unsafe { std::slice::from_raw_parts(data.add(start + LEN_FIELD), len) };
            f(rec);
            head += skipped + size;
            n += 1;
        };
        self.counter(OFF_HEAD).store(head, Ordering::Release);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heap-backed ring for tests (128-byte aligned).
    pub(crate) struct HeapRing {
        buf: Vec<u128>,
        pub(crate) view: RingView,
    }

    impl HeapRing {
        pub(crate) fn new(capacity: usize) -> Self {
            let mut buf = vec![0u128; (RING_HEADER + capacity) / 16 + 8];
            let p = buf.as_mut_ptr().cast::<u8>();
            let aligned = unsafe { p.add(p.align_offset(128)) };
            // SAFETY: the buffer outlives the view and is large enough.
            let view = unsafe { RingView::new(aligned, capacity) };
            Self { buf, view }
        }
        pub(crate) fn raw(&mut self) -> *mut u8 {
            let p = self.buf.as_mut_ptr().cast::<u8>();
            unsafe { p.add(p.align_offset(128)) }
        }
    }

    fn drain_all(r: &RingView) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        r.drain(usize::MAX, |b| out.push(b.to_vec())).unwrap();
        out
    }

    #[test]
    fn records_come_out_in_order_across_wraps_of_every_size() {
        let h = HeapRing::new(256);
        let r = h.view;
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for round in 0..2000usize {
            let len = (round * 7) % (r.max_record() + 1);
            let rec: Vec<u8> = (0..len).map(|i| (i + round) as u8).collect();
            match r.push(len, |b| b.copy_from_slice(&rec)) {
                Ok(()) => expected.push(rec),
                Err(RingError::Full) => {
                    got.extend(drain_all(&r));
                    r.push(len, |b| b.copy_from_slice(&rec)).unwrap();
                    expected.push(rec);
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        got.extend(drain_all(&r));
        assert_eq!(got, expected);
    }

    #[test]
    fn too_large_and_full_are_refused_without_writing() {
        let h = HeapRing::new(64);
        let r = h.view;
        assert_eq!(r.push(r.max_record() + 1, |_| ()), Err(RingError::TooLarge));
        // Two records of half the capacity fill it exactly.
        r.push(r.max_record(), |_| ()).unwrap();
        r.push(r.max_record(), |_| ()).unwrap();
        assert_eq!(r.push(1, |_| ()), Err(RingError::Full));
        assert_eq!(drain_all(&r).len(), 2);
        assert!(r.is_empty());
    }

    #[test]
    fn corrupt_positions_and_lengths_are_errors_not_panics() {
        let mut h = HeapRing::new(256);
        let r = h.view;
        r.push(8, |b| b.fill(1)).unwrap();
        let base = h.raw();
        // A length field claiming more than was published.
        unsafe { ptr::write_unaligned(base.add(RING_HEADER).cast::<u32>(), 4000) };
        assert!(matches!(r.drain(10, |_| ()), Err(RingError::Corrupt(_))));
        // A record published across the end of the data area.
        let mut h4 = HeapRing::new(256);
        let b4 = h4.raw();
        h4.view.counter(OFF_HEAD).store(248, Ordering::Relaxed);
        h4.view.counter(OFF_TAIL).store(248 + 64, Ordering::Relaxed);
        unsafe { ptr::write_unaligned(b4.add(RING_HEADER + 248).cast::<u32>(), 40) };
        assert!(matches!(
            h4.view.drain(10, |_| ()),
            Err(RingError::Corrupt(_))
        ));
        // A tail far beyond the head.
        let h2 = HeapRing::new(256);
        h2.view.counter(OFF_TAIL).store(1 << 40, Ordering::Relaxed);
        assert!(matches!(
            h2.view.drain(10, |_| ()),
            Err(RingError::Corrupt(_))
        ));
        assert!(matches!(
            h2.view.push(1, |_| ()),
            Err(RingError::Corrupt(_))
        ));
        // An unaligned tail.
        let h3 = HeapRing::new(256);
        h3.view.counter(OFF_TAIL).store(3, Ordering::Relaxed);
        assert!(matches!(
            h3.view.drain(10, |_| ()),
            Err(RingError::Corrupt(_))
        ));
    }

    #[test]
    fn a_record_written_but_not_published_is_invisible() {
        // What a producer killed mid-write leaves behind: bytes, no tail.
        let mut h = HeapRing::new(256);
        let base = h.raw();
        unsafe { ptr::write_unaligned(base.add(RING_HEADER).cast::<u32>(), 16) };
        assert_eq!(drain_all(&h.view).len(), 0);
        // The next producer overwrites it.
        h.view.push(3, |b| b.copy_from_slice(b"abc")).unwrap();
        assert_eq!(drain_all(&h.view), vec![b"abc".to_vec()]);
    }

    #[test]
    fn two_threads_stream_a_million_records_intact() {
        let h = HeapRing::new(1 << 12);
        let r = h.view;
        const N: u32 = 1_000_000;
        let producer = std::thread::spawn(move || {
            for i in 0..N {
                let len = (i % 61) as usize + 4;
                loop {
                    match r.push(len, |b| {
                        b[..4].copy_from_slice(&i.to_le_bytes());
                        b[4..].fill(i as u8);
                    }) {
                        Ok(()) => break,
                        Err(RingError::Full) => std::thread::yield_now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
        });
        let mut next = 0u32;
        while next < N {
            r.drain(usize::MAX, |b| {
                let i = u32::from_le_bytes(b[..4].try_into().unwrap());
                assert_eq!(i, next);
                assert_eq!(b.len(), (i % 61) as usize + 4);
                assert!(b[4..].iter().all(|x| *x == i as u8));
                next += 1;
            })
            .unwrap();
        }
        producer.join().unwrap();
        drop(h);
    }
}
