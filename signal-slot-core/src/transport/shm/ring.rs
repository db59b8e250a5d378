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
//!
//! The protocol is written once, generic over the ring's memory ([`RingMem`]):
//! production views a mapping through raw pointers ([`Mapped`]; monomorphized
//! and inlined, it costs nothing), while the models in `loom_models` back a
//! ring with loom atomics and one loom cell per data byte, so loom checks both
//! orderings above byte by byte (run them with
//! `RUSTFLAGS="--cfg loom" cargo test -p signal-slot-core --lib --release loom`).

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
    /// The producer's fill gave up; nothing was published.
    Unfilled,
}

/// The memory one ring lives in: its two position counters and its data area.
/// The ring protocol is written once against this; production uses [`Mapped`]
/// (raw pointers into the region, everything inlined away), the loom models a
/// backing of loom atomics and loom cells so loom checks every data byte.
pub(crate) trait RingMem {
    /// Bytes of the data area (a power of two of at least 64).
    fn capacity(&self) -> usize;
    fn load_tail(&self, order: Ordering) -> u64;
    fn store_tail(&self, v: u64, order: Ordering);
    fn load_head(&self, order: Ordering) -> u64;
    fn store_head(&self, v: u64, order: Ordering);
    /// Reads the u32 at data offset `off`, exactly once.
    ///
    /// # Safety
    /// `off` is a multiple of 4 with `off + 4 <= capacity`, and the bytes are
    /// published to the caller (the peer does not write them now).
    unsafe fn read_u32(&self, off: usize) -> u32;
    /// Writes the u32 at data offset `off`.
    ///
    /// # Safety
    /// `off` is a multiple of 4 with `off + 4 <= capacity`, and the bytes are
    /// owned by the caller (unpublished: the peer neither reads nor writes them).
    unsafe fn write_u32(&self, off: usize, v: u32);
    /// Lends the `len` data bytes at `off` to `f` for reading.
    ///
    /// # Safety
    /// `off + len <= capacity`, and the range is published to the caller: the
    /// peer does not write it until the caller releases it.
    unsafe fn read<R>(&self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R;
    /// Lends the `len` data bytes at `off` to `f` for writing.
    ///
    /// # Safety
    /// `off + len <= capacity`, and the range is owned by the caller.
    unsafe fn write<R>(&self, off: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R;
}

/// A ring inside a mapping that outlives it: the production backing.
#[derive(Clone, Copy)]
pub(crate) struct Mapped {
    base: *mut u8,
    capacity: usize,
}

// SAFETY: the view points into a shared mapping that lives as long as the
// process's region; all access goes through atomics or the ring protocol.
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

impl Mapped {
    #[inline]
    fn counter(&self, off: usize) -> &AtomicU64 {
        // SAFETY: `RingView::new`'s contract: the header is mapped and aligned;
        // AtomicU64 has the size and alignment of u64.
        unsafe { &*self.base.add(off).cast::<AtomicU64>() }
    }

    #[inline]
    fn data(&self) -> *mut u8 {
        // SAFETY: the data area follows the header inside the mapping.
        unsafe { self.base.add(RING_HEADER) }
    }
}

impl RingMem for Mapped {
    #[inline]
    fn capacity(&self) -> usize {
        self.capacity
    }
    #[inline]
    fn load_tail(&self, order: Ordering) -> u64 {
        self.counter(OFF_TAIL).load(order)
    }
    #[inline]
    fn store_tail(&self, v: u64, order: Ordering) {
        self.counter(OFF_TAIL).store(v, order);
    }
    #[inline]
    fn load_head(&self, order: Ordering) -> u64 {
        self.counter(OFF_HEAD).load(order)
    }
    #[inline]
    fn store_head(&self, v: u64, order: Ordering) {
        self.counter(OFF_HEAD).store(v, order);
    }
    #[inline]
    unsafe fn read_u32(&self, off: usize) -> u32 {
        // SAFETY: in bounds (contract). Volatile: one load the compiler cannot
        // repeat, so a peer rewriting the word cannot be seen with two values.
        unsafe { ptr::read_volatile(self.data().add(off).cast::<u32>()) }
    }
    #[inline]
    unsafe fn write_u32(&self, off: usize, v: u32) {
        // SAFETY: in bounds and owned by the caller (contract).
        unsafe { ptr::write_unaligned(self.data().add(off).cast::<u32>(), v) }
    }
    #[inline]
    unsafe fn read<R>(&self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        // SAFETY: in bounds, and not written while the slice lives (contract).
        f(unsafe { std::slice::from_raw_parts(self.data().add(off), len) })
    }
    #[inline]
    unsafe fn write<R>(&self, off: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        // SAFETY: in bounds, and nobody else touches it while the slice lives
        // (contract).
        f(unsafe { std::slice::from_raw_parts_mut(self.data().add(off), len) })
    }
}

/// A view of one ring; `M` is where it lives (a shared mapping in production).
#[derive(Clone, Copy)]
pub(crate) struct RingView<M = Mapped> {
    mem: M,
}

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
        Self {
            mem: Mapped { base, capacity },
        }
    }
}

impl<M: RingMem> RingView<M> {
    /// Largest payload a record may carry.
    pub(crate) fn max_record(&self) -> usize {
        self.mem.capacity() / 2 - LEN_FIELD
    }

    /// Producer: the position to write at (the published tail).
    pub(crate) fn producer_tail(&self) -> u64 {
        self.mem.load_tail(Ordering::Relaxed)
    }

    /// Consumer: the position to read at (the released head).
    pub(crate) fn consumer_head(&self) -> u64 {
        self.mem.load_head(Ordering::Relaxed)
    }

    /// Consumer: drops everything published so far (a new consumer starting
    /// fresh on a reused mailbox).
    pub(crate) fn skip_all(&self) {
        let tail = self.mem.load_tail(Ordering::Acquire);
        self.mem.store_head(tail, Ordering::Release);
    }

    /// True when nothing is published beyond `head`.
    pub(crate) fn is_empty(&self) -> bool {
        self.mem.load_tail(Ordering::Acquire) == self.consumer_head()
    }

    /// Producer: writes one record of `len` bytes filled by `fill`, and publishes
    /// it. Only one thread of one process may produce on a ring at a time.
    #[cfg(test)]
    pub(crate) fn push(&self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), RingError> {
        self.push_with(len, &mut 0, |b| {
            fill(b);
            true
        })
    }

    /// Like [`push`](Self::push), for a `fill` that may fail (an encoder writing
    /// straight into the ring): on `false` nothing is published
    /// ([`RingError::Unfilled`]) and the space is reused by the next record.
    ///
    /// `head_seen` is the producer's private copy of the consumer's head: a head
    /// this producer loaded from this ring before (or 0). The head only grows,
    /// so space below `head_seen + capacity` is released for sure; the shared
    /// head (a cache line the consumer writes on every drain) is read only when
    /// that space runs out, and `head_seen` updated.
    pub(crate) fn push_with(
        &self,
        len: usize,
        head_seen: &mut u64,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<(), RingError> {
        if len > self.max_record() {
            return Err(RingError::TooLarge);
        }
        let capacity = self.mem.capacity();
        let cap = capacity as u64;
        let tail = self.producer_tail();
        if tail % 8 != 0 {
            return Err(RingError::Corrupt("tail out of alignment"));
        }
        let size = record_size(len) as u64;
        // `capacity` is a power of two: a mask, not a division.
        let off = (tail & (cap - 1)) as usize;
        let to_end = capacity - off;
        let (start, wasted) = if (size as usize) <= to_end {
            (off, 0u64)
        } else {
            (0, to_end as u64)
        };
        let end = tail + wasted + size;
        let mut head = *head_seen;
        if head > tail || end - head > cap {
            // Acquire: the consumer's reads of the space it released happen
            // before our writes into it (a `head_seen` was loaded the same way).
            head = self.mem.load_head(Ordering::Acquire);
            if head > tail || tail - head > cap {
                return Err(RingError::Corrupt("head/tail out of range"));
            }
            *head_seen = head;
            if end - head > cap {
                return Err(RingError::Full);
            }
        }
        // SAFETY: `[tail, head + cap)` belongs to the producer (checked above): the
        // consumer reads nothing beyond the published tail. `off + 4 <= capacity`
        // since offsets are multiples of 8 and capacity a multiple of 8; the record
        // `[start, start + size)` lies inside the data area (`size <= to_end` or it
        // starts at 0 with `size <= capacity / 2`).
        unsafe {
            if wasted > 0 {
                self.mem.write_u32(off, WRAP);
            }
            // `len <= capacity / 2 < u32::MAX`.
            self.mem.write_u32(start, len as u32);
            if !self.mem.write(start + LEN_FIELD, len, fill) {
                // Unpublished: the bytes stay the producer's.
                return Err(RingError::Unfilled);
            }
        }
        // Release: the record's bytes happen before the consumer's reads of them.
        self.mem.store_tail(tail + wasted + size, Ordering::Release);
        Ok(())
    }

    /// Consumer: hands up to `max` published records to `f`, then releases them.
    /// Returns how many were read. Only one thread may consume a ring.
    pub(crate) fn drain(&self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize, RingError> {
        let capacity = self.mem.capacity();
        let cap = capacity as u64;
        let mut head = self.consumer_head();
        // Acquire: pairs with the producer's Release of `tail`.
        let tail = self.mem.load_tail(Ordering::Acquire);
        if tail < head || tail - head > cap || tail % 8 != 0 || head % 8 != 0 {
            return Err(RingError::Corrupt("tail out of range of head"));
        }
        let mut n = 0;
        let result = loop {
            if head == tail || n == max {
                break Ok(n);
            }
            let off = (head & (cap - 1)) as usize;
            // SAFETY: `off` is a multiple of 8 below capacity, so 4 bytes fit; the
            // range `[head, tail)` is published and owned by the consumer.
            let len = unsafe { self.mem.read_u32(off) };
            let (start, skipped) = if len == WRAP {
                (0usize, (capacity - off) as u64)
            } else {
                (off, 0)
            };
            let len = if skipped > 0 {
                if head + skipped >= tail {
                    break Err(RingError::Corrupt("wrap marker at the tail"));
                }
                // SAFETY: offset 0 is inside the data area and published (checked).
                unsafe { self.mem.read_u32(0) }
            } else {
                len
            } as usize;
            let size = record_size(len) as u64;
            if len > self.max_record()
                || start + LEN_FIELD + len > capacity
                || head + skipped + size > tail
            {
                break Err(RingError::Corrupt("record beyond the published range"));
            }
            // SAFETY: `[start, start + 4 + len)` lies inside the data area (len <=
            // capacity / 2 and the record is within the published range, which
            // never straddles the end: wraps are marked). The producer does not
            // write it until `head` moves past it, which happens after `f` returns.
            unsafe { self.mem.read(start + LEN_FIELD, len, &mut f) };
            head += skipped + size;
            n += 1;
        };
        // Release: our reads of the records happen before the producer reuses
        // their bytes.
        self.mem.store_head(head, Ordering::Release);
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
        let rounds = if cfg!(miri) { 300 } else { 2000 };
        for round in 0..rounds {
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
        h4.view.mem.counter(OFF_HEAD).store(248, Ordering::Relaxed);
        h4.view
            .mem
            .counter(OFF_TAIL)
            .store(248 + 64, Ordering::Relaxed);
        unsafe { ptr::write_unaligned(b4.add(RING_HEADER + 248).cast::<u32>(), 40) };
        assert!(matches!(
            h4.view.drain(10, |_| ()),
            Err(RingError::Corrupt(_))
        ));
        // A tail far beyond the head.
        let h2 = HeapRing::new(256);
        h2.view
            .mem
            .counter(OFF_TAIL)
            .store(1 << 40, Ordering::Relaxed);
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
        h3.view.mem.counter(OFF_TAIL).store(3, Ordering::Relaxed);
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
    fn an_abandoned_fill_publishes_nothing() {
        let h = HeapRing::new(256);
        let mut head_seen = 0;
        let r = h.view.push_with(8, &mut head_seen, |b| {
            b.fill(9);
            false
        });
        assert_eq!(r, Err(RingError::Unfilled));
        assert!(h.view.is_empty());
        h.view.push(3, |b| b.copy_from_slice(b"abc")).unwrap();
        assert_eq!(drain_all(&h.view), vec![b"abc".to_vec()]);
    }

    #[test]
    fn two_threads_stream_a_million_records_intact() {
        let h = HeapRing::new(1 << 12);
        let r = h.view;
        // Miri runs the same race with far fewer records (it is ~1000x slower).
        const N: u32 = if cfg!(miri) { 2_000 } else { 1_000_000 };
        let producer = std::thread::spawn(move || {
            let mut head_seen = 0;
            for i in 0..N {
                let len = (i % 61) as usize + 4;
                loop {
                    match r.push_with(len, &mut head_seen, |b| {
                        b[..4].copy_from_slice(&i.to_le_bytes());
                        b[4..].fill(i as u8);
                        true
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

/// A ring backed by model-checkable memory: loom atomics for the counters and
/// one loom cell per data byte under `cfg(loom)`, so loom checks that every
/// byte the consumer reads was written before it (tail publication) and that
/// the producer never overwrites a byte the consumer may still read (head
/// release). Without loom: std atomics and cells, for threaded runs and miri.
#[cfg(test)]
mod model_mem {
    use super::{Ordering, RingMem, RingView};
    use crate::sync::model::{Arc, AtomicU64, UnsafeCell};

    struct Buf {
        tail: AtomicU64,
        head: AtomicU64,
        data: Box<[UnsafeCell<u8>]>,
    }

    // SAFETY: the data cells are accessed under the ring protocol, which is
    // exactly what the models check (loom reports any access not ordered by it).
    unsafe impl Sync for Buf {}

    #[derive(Clone)]
    pub(super) struct ModelMem {
        buf: Arc<Buf>,
        capacity: usize,
    }

    impl ModelMem {
        fn read_byte(&self, i: usize) -> u8 {
            // SAFETY: a plain read of a live cell; loom checks it is ordered
            // after the last write.
            self.buf.data[i].with(|p| unsafe { *p })
        }
        fn write_byte(&self, i: usize, v: u8) {
            // SAFETY: a plain write of a live cell; loom checks it is ordered
            // after every earlier access.
            self.buf.data[i].with_mut(|p| unsafe { *p = v })
        }
    }

    /// An empty model ring of `capacity` data bytes.
    pub(super) fn ring(capacity: usize) -> RingView<ModelMem> {
        RingView {
            mem: ModelMem {
                buf: Arc::new(Buf {
                    tail: AtomicU64::new(0),
                    head: AtomicU64::new(0),
                    data: (0..capacity).map(|_| UnsafeCell::new(0)).collect(),
                }),
                capacity,
            },
        }
    }

    impl RingMem for ModelMem {
        fn capacity(&self) -> usize {
            self.capacity
        }
        fn load_tail(&self, order: Ordering) -> u64 {
            self.buf.tail.load(order)
        }
        fn store_tail(&self, v: u64, order: Ordering) {
            self.buf.tail.store(v, order);
        }
        fn load_head(&self, order: Ordering) -> u64 {
            self.buf.head.load(order)
        }
        fn store_head(&self, v: u64, order: Ordering) {
            self.buf.head.store(v, order);
        }
        unsafe fn read_u32(&self, off: usize) -> u32 {
            let mut b = [0u8; 4];
            for (i, x) in b.iter_mut().enumerate() {
                *x = self.read_byte(off + i);
            }
            u32::from_ne_bytes(b)
        }
        unsafe fn write_u32(&self, off: usize, v: u32) {
            for (i, x) in v.to_ne_bytes().into_iter().enumerate() {
                self.write_byte(off + i, x);
            }
        }
        unsafe fn read<R>(&self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
            let v: Vec<u8> = (off..off + len).map(|i| self.read_byte(i)).collect();
            f(&v)
        }
        unsafe fn write<R>(&self, off: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
            // Start from the bytes in place, as the real backing lends them.
            let mut v: Vec<u8> = (off..off + len).map(|i| self.read_byte(i)).collect();
            let r = f(&mut v);
            for (i, x) in v.into_iter().enumerate() {
                self.write_byte(off + i, x);
            }
            r
        }
    }
}

/// Models of the ring's concurrency: every interleaving under
/// `RUSTFLAGS="--cfg loom"` (loom also checks every data byte for races, see
/// [`model_mem`]); plain threaded runs otherwise (and under miri).
///
/// `RUSTFLAGS="--cfg loom" cargo test -p signal-slot-core --lib --release loom`
#[cfg(test)]
mod loom_models {
    use super::{model_mem, RingError};
    use crate::sync::model::{self, thread};

    /// Plain runs of each model without loom.
    const RUNS: usize = if cfg!(miri) { 4 } else { 300 };

    /// Record `i`: its own length and content.
    fn record(lens: &[usize], i: usize) -> Vec<u8> {
        vec![i as u8 + 1; lens[i]]
    }

    /// Pushes `rec`, yielding while the ring is full. `head_seen` is the
    /// producer's private copy of the head, kept across pushes as production
    /// keeps it (so loom checks writes into space released by a stale head).
    fn push_waiting(r: &super::RingView<model_mem::ModelMem>, head_seen: &mut u64, rec: &[u8]) {
        loop {
            match r.push_with(rec.len(), head_seen, |b| {
                b.copy_from_slice(rec);
                true
            }) {
                Ok(()) => return,
                Err(RingError::Full) => thread::yield_now(),
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    /// Drains until `lens.len()` records arrived, `max` per batch; checks each.
    fn consume(r: &super::RingView<model_mem::ModelMem>, lens: &[usize], max: usize) {
        let mut got = 0;
        while got < lens.len() {
            let n = r
                .drain(max, |b| {
                    assert!(got < lens.len(), "more records than pushed");
                    assert_eq!(b, &record(lens, got)[..], "record {got}");
                    got += 1;
                })
                .unwrap();
            if n == 0 {
                thread::yield_now();
            }
        }
        assert!(r.is_empty());
    }

    /// SPSC in a 64-byte ring: records of 20, 13 and 17 bytes (24 bytes each on
    /// the ring); the third does not fit before the end, so the producer writes
    /// a wrap marker and needs the first record released. All arrive in order,
    /// intact, and (under loom) with no data race on any byte.
    #[test]
    fn loom_spsc_records_arrive_in_order_across_a_wrap() {
        const LENS: [usize; 3] = [20, 13, 17];
        model::check(RUNS, || {
            let r = model_mem::ring(64);
            let p = r.clone();
            let producer = thread::spawn(move || {
                let mut head_seen = 0;
                for i in 0..LENS.len() {
                    push_waiting(&p, &mut head_seen, &record(&LENS, i));
                }
            });
            consume(&r, &LENS, usize::MAX);
            producer.join().unwrap();
            // The wrap happened: tail counts the 16 skipped bytes.
            assert_eq!(r.producer_tail(), 24 * 3 + 16);
        });
    }

    /// The ring fills exactly (two records of the largest size), the third push
    /// finds it full until the consumer, draining one record at a time,
    /// releases space; the bytes it then overwrites were read before.
    #[test]
    fn loom_full_ring_waits_for_released_space() {
        model::check(RUNS, || {
            let r = model_mem::ring(64);
            let max = r.max_record();
            let lens = [max, max, max];
            let p = r.clone();
            let producer = thread::spawn(move || {
                let mut head_seen = 0;
                push_waiting(&p, &mut head_seen, &record(&lens, 0));
                push_waiting(&p, &mut head_seen, &record(&lens, 1));
                // Full until the consumer released record 0.
                push_waiting(&p, &mut head_seen, &record(&lens, 2));
            });
            consume(&r, &lens, 1);
            producer.join().unwrap();
            assert_eq!(r.producer_tail(), 3 * 32);
            assert_eq!(r.consumer_head(), 3 * 32);
        });
    }
}
