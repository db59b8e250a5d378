//! A single-producer single-consumer ring of variable-length records in shared
//! memory.
//!
//! Positions are `u64` byte counters that only grow: `tail` counts bytes the
//! producer wrote, `head` bytes the consumer released; a position's offset is
//! `pos % capacity` (a power of two). A record is `[u32 word][payload][pad to
//! 8]` starting at a multiple of 8, its word `len + 1`; a word 0 means "nothing
//! published here yet". When a record does not fit before the end of the data
//! area the producer writes it at offset 0 and then the wrap marker (low bits
//! all ones) where it would have started. Records longer than `capacity / 2`
//! are refused, so an empty ring takes any allowed record. Every word also
//! carries the lap of its position (`(pos / capacity) & 3`, in its two high
//! bits): a word without its position's lap is a leftover of an earlier lap
//! and reads as nothing published, so a consumer sent past the last record
//! (by garbage) stops at the end of this lap's records instead of replaying
//! the previous lap's.
//!
//! Each record publishes itself: the producer writes the payload, zeroes the
//! word where the next record will start, then stores the record's word
//! (Release; for a wrapped record, the marker last). The consumer loads the
//! word at its head (Acquire): 0 is an empty ring, anything else a record
//! whose bytes are all written. So a one-way trip costs the consumer the
//! record's own cache line only (a separate tail index would be a second
//! line the producer keeps writing), and the producer's `tail` is its own
//! bookkeeping, stored after the record. The consumer stores `head`
//! (Release) once per batch; the producer reads it only when the space it
//! knows free runs out.
//!
//! A producer killed mid-record never published it: the consumer cannot see a
//! torn record. One killed between a record's word and its `tail` leaves a
//! published record behind the tail: the next producer of the ring (a process
//! reusing the slot) steps over it. Only a producer new to the ring looks at
//! the word at its tail (see [`RingView::push_at`]); one that wrote the last
//! record knows it is the zero it stored, and writes over whatever a hostile
//! peer put there since (garbage, as any the consumer may read). The peer is
//! not trusted: every position and length read from shared memory is checked
//! before use, never a panic or an out-of-bounds access, and nothing is
//! allocated from an unchecked length field. A zeroed ring is a valid empty
//! ring.
//!
//! The consumer hands every record to its caller as a private copy (a record
//! the peer rewrites while it is decoded would be a data race and a
//! check-then-use hazard). A word at the head that no producer writes (a
//! length beyond the data area, a wrap marker at 0) is [`Damage`]: the
//! consumer skips to the producer's tail if that is ahead (the bytes between
//! are lost; where records start in them is unknown), else clears the word so
//! the producer writes its next record over it, reports it once and goes on
//! (only at the producer's tail, where it stores its next record's word last:
//! a head beyond the tail goes back to the tail instead). A producer likewise
//! writes over such a word at its tail, and resyncs a damaged tail to the
//! records from the consumer's head (refusing one record to report it).
//! Garbage with a plausible length reads as a record (the decoder rejects
//! it); if it sends the consumer between records, the check before sleeping
//! ([`RingView::check_stalled`]) finds no record where the tail says there
//! is one and skips to the tail. A drain reads at most a ring's worth of
//! bytes (more cannot have been published), so it always returns.
//! Positions at or beyond 2^62 are damage, so no position arithmetic
//! overflows.
//!
//! The protocol is written once, generic over the ring's memory ([`RingMem`]):
//! production views a mapping through raw pointers ([`Mapped`]; monomorphized
//! and inlined, it costs nothing), while the models in `loom_models` back a
//! ring with loom atomics (the record words) and loom cells (the other data
//! bytes), so loom checks both orderings above byte by byte (run them with
//! `RUSTFLAGS="--cfg loom" cargo test -p signal-slot-core --lib --release loom`).

use crate::sync::{AtomicU32, AtomicU64, Ordering};

const LEN_FIELD: usize = 4;
/// The word of a position where nothing is published.
const EMPTY: u32 = 0;
/// A record word is `lap << LAP_SHIFT | low`: `low` is `len + 1` for a record,
/// [`WRAP`] for a wrap marker; `lap` is [`lap`] of the word's position, so a
/// word left over from an earlier lap (or garbage without the right bits) is
/// not taken for a record of this one. Capacities are at most 2^30 bytes, so
/// `len + 1 < 2^29` leaves the two high bits free.
const LAP_SHIFT: u32 = 30;
const LOW_MASK: u32 = (1 << LAP_SHIFT) - 1;
/// The low bits of a wrap marker (no record is this long).
const WRAP: u32 = LOW_MASK;
/// Positions at or beyond this are out of range (damage): a counter takes
/// centuries to get there, and arithmetic on positions below it plus a few
/// capacities cannot overflow.
const POS_MAX: u64 = 1 << 62;
/// Why [`RingView::resync_tail`] ran when the tail itself was out of range.
const TAIL_OUT_OF_RANGE: &str = "tail out of range; resynced to the consumer's head";

/// Records a producer may find published behind its tail (a predecessor killed
/// between a record's word and its tail: a wrap marker and the record it points
/// to at most).
const MAX_RECOVER: usize = 2;

/// Records up to this size are copied out to the stack (most calls are a few
/// dozen bytes); larger ones to a buffer per thread.
const SMALL_RECORD: usize = 256;

thread_local! {
    /// The consumer's copy of a record larger than [`SMALL_RECORD`].
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

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
    /// Bytes of the data area (a power of two from 64 to 2^30).
    fn capacity(&self) -> usize;
    fn load_tail(&self, order: Ordering) -> u64;
    fn store_tail(&self, v: u64, order: Ordering);
    fn load_head(&self, order: Ordering) -> u64;
    fn store_head(&self, v: u64, order: Ordering);
    /// A sequentially consistent fence.
    fn fence_seq_cst(&self);
    /// Loads the record word at data offset `off` atomically.
    ///
    /// # Safety
    /// `off` is a multiple of 8 with `off + 4 <= capacity`.
    unsafe fn load_word(&self, off: usize, order: Ordering) -> u32;
    /// Stores the record word at data offset `off` atomically.
    ///
    /// # Safety
    /// As [`load_word`](Self::load_word); the word is the caller's to write
    /// (the producer's, at a position it owns).
    unsafe fn store_word(&self, off: usize, v: u32, order: Ordering);
    /// Replaces the word at `off` by `new` if it is `current`; true if it did.
    ///
    /// # Safety
    /// As [`load_word`](Self::load_word).
    unsafe fn cas_word(&self, off: usize, current: u32, new: u32) -> bool;
    /// Lends a private copy of the `len` data bytes at `off` to `f`: the peer
    /// cannot change what `f` reads.
    ///
    /// # Safety
    /// `off + len <= capacity`, and the range is published to the caller: a
    /// peer that keeps the protocol does not write it until the caller
    /// releases it. (One that does not may write it during the copy: the copy
    /// then holds torn bytes, see [`Mapped`]'s implementation.)
    unsafe fn read<R>(&self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R;
    /// Lends the `len` data bytes at `off` to `f` for writing.
    ///
    /// # Safety
    /// `off + len <= capacity`, and the range is owned by the caller: a peer
    /// that keeps the protocol neither reads nor writes it meanwhile.
    unsafe fn write<R>(&self, off: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R;
    /// A hint that the producer writes the data bytes at `off` soon: their
    /// cache line is fetched for writing now (nothing where the CPU cannot).
    fn will_write(&self, _off: usize) {}
}

/// Damage the consumer found at its head and got past (see the module
/// comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Damage {
    pub(crate) why: &'static str,
    /// Ring bytes discarded to get past it (the records among them are
    /// unknown); 0 when only a bad word was cleared.
    pub(crate) skipped: u64,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.skipped {
            0 => write!(f, "{}; bad word cleared", self.why),
            n => write!(f, "{}; {n} bytes skipped", self.why),
        }
    }
}

/// What one [`RingView::drain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Records handed out.
    pub(crate) records: usize,
    /// Damage found and got past (the drain stops there; the next one goes on).
    pub(crate) damage: Option<Damage>,
}

/// What the word at a consumer position says.
enum Slot {
    /// Nothing published here yet.
    Empty,
    /// A wrap marker without a record at 0: not something a producer
    /// publishes; the producer steps over it (a predecessor's leftover), so
    /// wait for it (see `check_stalled` for a tail already beyond).
    Marker,
    /// A whole record: its payload at `start + LEN_FIELD`, `skipped` bytes
    /// of wrap before it.
    Record {
        start: usize,
        skipped: u64,
        len: usize,
    },
    /// A word no producer writes, `word` at offset `at`.
    Damaged {
        why: &'static str,
        at: usize,
        word: u32,
    },
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

    /// The record word at data offset `off` (a multiple of 8 with
    /// `off + 4 <= capacity`, the callers' contract).
    #[inline]
    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: inside the data area (contract), 4-aligned (the data area is
        // 128-byte aligned and `off` a multiple of 8); AtomicU32 has the size and
        // alignment of u32, and every bit pattern is a valid u32.
        unsafe { &*self.data().add(off).cast::<AtomicU32>() }
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
    fn fence_seq_cst(&self) {
        crate::sync::fence(Ordering::SeqCst);
    }
    #[inline]
    unsafe fn load_word(&self, off: usize, order: Ordering) -> u32 {
        self.word(off).load(order)
    }
    #[inline]
    unsafe fn store_word(&self, off: usize, v: u32, order: Ordering) {
        self.word(off).store(v, order);
    }
    #[inline]
    unsafe fn cas_word(&self, off: usize, current: u32, new: u32) -> bool {
        self.word(off)
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
    #[inline(always)]
    fn will_write(&self, off: usize) {
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        let _ = off;
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if off < self.capacity {
            // SAFETY: PREFETCHW only moves a cache line into this core's
            // cache for writing (a hint: no architectural effect, a NOP where
            // unsupported); the address is inside the data area, which stays
            // mapped.
            unsafe {
                std::arch::asm!(
                    "prefetchw [{0}]",
                    in(reg) self.data().add(off),
                    options(nostack, preserves_flags, readonly)
                )
            };
        }
    }
    #[inline]
    unsafe fn read<R>(&self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        // SAFETY: in bounds (contract).
        let src = unsafe { self.data().add(off) };
        // Copied with raw pointers, never through a reference into the
        // mapping. What holds: a peer that keeps the protocol does not write
        // the range during the copy (contract), so the copy is the record. A
        // peer that breaks it may write the range meanwhile (another process:
        // nothing this program's compiler sees or orders); then the copy may
        // hold any mix of old and new bytes, each byte one the peer or the
        // producer wrote. Every bit pattern is a valid u8 and no reference
        // into the mapping exists to be invalidated, so that costs a wrong
        // record (the decoder rejects it or decodes garbage, both checked),
        // not this process's memory safety; and once copied, the bytes `f`
        // decodes cannot change under it.
        if len <= SMALL_RECORD {
            let mut buf = std::mem::MaybeUninit::<[u8; SMALL_RECORD]>::uninit();
            let dst = buf.as_mut_ptr().cast::<u8>();
            // SAFETY: `len` bytes of the live mapping are readable at `src`
            // (contract; possibly torn, see above) and writable at `dst`
            // (`len <= SMALL_RECORD`); a private buffer does not overlap the
            // mapping. The first `len` bytes are then initialized.
            return f(unsafe {
                copy_small(src, dst, len);
                std::slice::from_raw_parts(dst, len)
            });
        }
        // Larger records: a buffer per thread, reused. Taken out of its cell
        // while `f` runs, so a nested drain (a slot that waits for a reply)
        // gets a fresh one. `len <= capacity / 2` (checked by the caller), so
        // it never grows beyond half a ring.
        let mut buf = SCRATCH.with(std::cell::Cell::take);
        buf.clear();
        buf.reserve(len);
        // SAFETY: as above; `buf` has room for `len` bytes, which the copy
        // initializes before `set_len`.
        unsafe {
            std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), len);
            buf.set_len(len);
        }
        let r = f(&buf);
        SCRATCH.with(|s| s.set(buf));
        r
    }
    // Always: the producer's fill (the record's bytes) then inlines into the
    // ring write of `push_with` instead of one more call per record.
    #[inline(always)]
    unsafe fn write<R>(&self, off: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        // SAFETY: in bounds, and no peer that keeps the protocol reads or
        // writes the range while the slice lives (contract); `f` is our own
        // encoder, writing plain bytes. A peer that breaks the protocol may
        // write the range meanwhile (outside what this process's compiler
        // orders): `f`'s bytes may then be garbled before they are
        // published, which the consumer's checks of every record handle
        // (`push_with` decides every length and offset before `f`, from
        // nothing in the range).
        f(unsafe { std::slice::from_raw_parts_mut(self.data().add(off), len) })
    }
}

/// Copies `len` bytes (at most [`SMALL_RECORD`]) from `src` to `dst`, inline
/// for records of up to 64 bytes (most calls): two overlapping loads and
/// stores of one width cover any length from that width to twice it, where a
/// `memcpy` call costs about as much again as the copy. Reads exactly the
/// bytes `[src, src + len)`, like `copy_nonoverlapping`.
///
/// # Safety
/// As for `copy_nonoverlapping(src, dst, len)`.
#[inline(always)]
unsafe fn copy_small(src: *const u8, dst: *mut u8, len: usize) {
    /// Copies `[0, N)` and `[len - N, len)` for `N <= len <= 2 * N`.
    ///
    /// # Safety
    /// As for `copy_small`, with `N <= len`.
    #[inline(always)]
    unsafe fn ends<const N: usize>(src: *const u8, dst: *mut u8, len: usize) {
        // SAFETY: both ranges lie inside `[0, len)` (`N <= len`); unaligned
        // reads and writes of plain bytes.
        unsafe {
            let a = src.cast::<[u8; N]>().read_unaligned();
            let b = src.add(len - N).cast::<[u8; N]>().read_unaligned();
            dst.cast::<[u8; N]>().write_unaligned(a);
            dst.add(len - N).cast::<[u8; N]>().write_unaligned(b);
        }
    }
    // SAFETY: each branch stays within `len` bytes (see `ends`).
    unsafe {
        match len {
            32..=64 => ends::<32>(src, dst, len),
            16..=31 => ends::<16>(src, dst, len),
            8..=15 => ends::<8>(src, dst, len),
            4..=7 => ends::<4>(src, dst, len),
            0..=3 => {
                for i in 0..len {
                    *dst.add(i) = *src.add(i);
                }
            }
            _ => std::ptr::copy_nonoverlapping(src, dst, len),
        }
    }
}

/// A view of one ring; `M` is where it lives (a shared mapping in production).
#[derive(Clone, Copy)]
pub(crate) struct RingView<M = Mapped> {
    mem: M,
}

/// What [`RingView::peek`] found at the consumer's head.
#[derive(Clone, Copy)]
pub(crate) enum Peek {
    /// Nothing published.
    Empty,
    /// A plain record of this lap, its bounds checked.
    Record(AtHead),
    /// A wrap marker before a record, damage, or a garbled head: a drain
    /// sorts it out.
    Other,
}

/// A checked record at the consumer's head (see [`RingView::take`]).
#[derive(Clone, Copy)]
pub(crate) struct AtHead {
    pos: u64,
    off: usize,
    len: usize,
}

/// What a producer knows of the word at its ring's tail (see
/// [`RingView::push_at`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    /// This producer (this process, under its producer lock) wrote the
    /// ring's last record: the word at the tail is the zero it stored.
    Mine,
    /// New to the ring: a predecessor may have published records beyond the
    /// tail before it was killed.
    Unknown,
}

/// Bytes a record of payload `len` occupies.
#[inline]
fn record_size(len: usize) -> usize {
    (LEN_FIELD + len + 7) & !7
}

/// The lap bits of the word at position `pos` of a ring of `cap` bytes (a
/// power of two): `(pos / cap) & 3`, shifted into place.
#[inline]
fn lap(pos: u64, cap: usize) -> u32 {
    (((pos >> cap.trailing_zeros()) & 3) as u32) << LAP_SHIFT
}

/// True if `pos` is a position a producer or consumer can legitimately hold.
#[inline]
fn pos_ok(pos: u64) -> bool {
    pos % 8 == 0 && pos < POS_MAX
}

impl RingView {
    /// # Safety
    /// `base` must point at `RING_HEADER + capacity` bytes of mapped, 128-byte
    /// aligned memory that stays mapped while the view is used; `capacity` is a
    /// power of two from 64 to 2^30 (record words keep two bits for the lap).
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

    /// The head, the tail and the raw word at the head, as they are now: for
    /// a diagnostic dump (see `shm::dump`), not for the protocol.
    pub(crate) fn snapshot(&self) -> (u64, u64, u32) {
        let head = self.mem.load_head(Ordering::Acquire);
        let tail = self.mem.load_tail(Ordering::Acquire);
        let off = (head & (self.mem.capacity() as u64 - 1)) as usize & !7;
        // SAFETY: `off` is a multiple of 8 below capacity (masked, then
        // aligned down).
        let word = unsafe { self.mem.load_word(off, Ordering::Acquire) };
        (head, tail, word)
    }

    /// Consumer: drops everything published so far (a new consumer starting
    /// fresh on a reused mailbox).
    pub(crate) fn skip_all(&self) {
        let tail = self.mem.load_tail(Ordering::Acquire);
        // Never back: records between a tail left behind by a killed producer
        // and the head were read already. A tail out of range is the
        // producer's to resync.
        if pos_ok(tail) && tail > self.consumer_head() {
            self.mem.store_head(tail, Ordering::Release);
        }
    }

    /// True when nothing is published at the consumer's head (damage there
    /// is not empty: the next drain gets past it).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self.peek(), Peek::Empty)
    }

    /// What the consumer's head holds now: the idle loop's poll, which hands
    /// a plain record straight to [`take`](Self::take) (a ping-pong's every
    /// record) instead of having a drain look for it again.
    #[inline(always)]
    pub(crate) fn peek(&self) -> Peek {
        let head = self.consumer_head();
        // A head another process garbled holds something: the drain repairs
        // it (and no position arithmetic runs on it here).
        if !pos_ok(head) {
            return Peek::Other;
        }
        let capacity = self.mem.capacity();
        let off = (head & (capacity as u64 - 1)) as usize;
        // SAFETY: `off` is a multiple of 8 below capacity. Acquire: pairs
        // with the producer's Release of the word.
        let w = unsafe { self.mem.load_word(off, Ordering::Acquire) };
        // `slot_of`'s answer, decided early where it can be: nothing
        // published (or another lap's word) is empty.
        if w == EMPTY || w & !LOW_MASK != lap(head, capacity) {
            return Peek::Empty;
        }
        // The drain's inline case: a record of this lap in bounds (an empty
        // word or a wrap marker make `len` too large, see `drain`).
        let len = ((w & LOW_MASK) as usize).wrapping_sub(1);
        if len <= self.max_record() && off + LEN_FIELD + len <= capacity {
            return Peek::Record(AtHead {
                pos: head,
                off,
                len,
            });
        }
        if w & LOW_MASK != WRAP {
            return Peek::Other;
        }
        match self.slot_of(head, off, w) {
            Slot::Empty | Slot::Marker => Peek::Empty,
            _ => Peek::Other,
        }
    }

    /// Consumes the record [`peek`](Self::peek) found, handing `f` a private
    /// copy (as [`drain`](Self::drain) does). Only this ring's consumer
    /// moves the head, so it is still where `peek` saw it.
    #[inline(always)]
    pub(crate) fn take<R>(&self, at: AtHead, f: impl FnOnce(&[u8]) -> R) -> R {
        // SAFETY: `peek` checked `[off, off + 4 + len)` lies inside the data
        // area, and the word was published after the bytes (see `drain`).
        let r = unsafe { self.mem.read(at.off + LEN_FIELD, at.len, f) };
        // Release: our read of the record happens before the producer
        // reuses its bytes; after `f`, as a drain stores its head.
        self.mem
            .store_head(at.pos + record_size(at.len) as u64, Ordering::Release);
        r
    }

    /// Reads the word at consumer position `pos` (a multiple of 8). A word
    /// without `pos`'s lap bits is a leftover of an earlier lap (or garbage):
    /// nothing published here in this lap.
    #[inline]
    fn slot(&self, pos: u64) -> Slot {
        let capacity = self.mem.capacity();
        let off = (pos & (capacity as u64 - 1)) as usize;
        // SAFETY: `off` is a multiple of 8 below capacity. Acquire: pairs
        // with the producer's Release of the word.
        let w = unsafe { self.mem.load_word(off, Ordering::Acquire) };
        self.slot_of(pos, off, w)
    }

    /// [`slot`](Self::slot) for the word `w` loaded (Acquire) at `off`, the
    /// offset of `pos`.
    #[inline]
    fn slot_of(&self, pos: u64, off: usize, w: u32) -> Slot {
        let capacity = self.mem.capacity();
        if w == EMPTY || w & !LOW_MASK != lap(pos, capacity) {
            return Slot::Empty;
        }
        let (start, skipped, word) = if w & LOW_MASK == WRAP {
            if off == 0 {
                return Slot::Damaged {
                    why: "wrap marker at the start",
                    at: 0,
                    word: w,
                };
            }
            let skipped = (capacity - off) as u64;
            // SAFETY: offset 0 holds a word. Ordered after the marker's load.
            let w0 = unsafe { self.mem.load_word(0, Ordering::Acquire) };
            // The producer publishes the record at 0 before its marker: a
            // marker without it is a predecessor's leftover (stepped over).
            if w0 == EMPTY
                || w0 & !LOW_MASK != lap(pos + skipped, capacity)
                || w0 & LOW_MASK == WRAP
            {
                return Slot::Marker;
            }
            (0usize, skipped, w0)
        } else {
            (off, 0, w)
        };
        let low = word & LOW_MASK;
        let len = (low as usize).wrapping_sub(1);
        if low == 0 || len > self.max_record() || start + LEN_FIELD + len > capacity {
            return Slot::Damaged {
                why: "record beyond the data area",
                at: start,
                word,
            };
        }
        Slot::Record {
            start,
            skipped,
            len,
        }
    }

    /// True if at most [`MAX_RECOVER`] published records from `from` end
    /// exactly at `to` (both in range).
    fn leftovers_reach(&self, from: u64, to: u64) -> bool {
        let cap = self.mem.capacity() as u64;
        let mut pos = from;
        for _ in 0..MAX_RECOVER {
            // `pos < from + 2 * cap < POS_MAX + 2^31`: no overflow.
            match self.slot(pos) {
                Slot::Record { skipped, len, .. } => pos += skipped + record_size(len) as u64,
                // A marker alone counts as one step (its record may follow).
                Slot::Marker => pos += cap - (pos & (cap - 1)),
                _ => return false,
            }
            if pos == to {
                return true;
            }
        }
        false
    }

    /// Consumer: gets past damage at `head`. To the producer's tail if that
    /// is ahead (released). Else, where the producer's next record word goes
    /// (its tail, or the end of records a killed or preempted predecessor
    /// published beyond it), clears the bad word so the producer writes its
    /// next record over it (it never steps over such a word). A head beyond
    /// the tail anywhere else is garbled: the bytes there are the producer's
    /// (clearing a word could zero a record it is writing), so back to the
    /// tail.
    fn get_past(&self, head: u64, why: &'static str, at: usize, word: u32) -> Damage {
        let cap = self.mem.capacity() as u64;
        // Acquire: every record below the tail is published.
        let tail = self.mem.load_tail(Ordering::Acquire);
        if pos_ok(tail) && tail > head && tail - head <= cap {
            self.mem.store_head(tail, Ordering::Release);
            return Damage {
                why,
                skipped: tail - head,
            };
        }
        if pos_ok(tail) && head > tail && !self.leftovers_reach(tail, head) {
            if self.back_to_tail(head, tail) {
                return Damage {
                    why,
                    skipped: head - tail,
                };
            }
            // The producer moved meanwhile: the next drain looks again.
            return Damage { why, skipped: 0 };
        }
        // Here the producer's next record starts at `head` (its tail, or
        // beyond a damaged tail it resyncs to our head): it writes the
        // record's payload after this word, and the word itself (a record's
        // or a marker's, and for a wrap the word at 0) last.
        // SAFETY: `at` is a word's offset (from `slot`). Only a word no
        // producer writes is replaced: if the producer has written over it
        // meanwhile, the exchange fails and its record stays.
        unsafe { self.mem.cas_word(at, word, EMPTY) };
        Damage { why, skipped: 0 }
    }

    /// Consumer: `head` is beyond the producer's `tail` (both in range), and
    /// not over published leftovers that end at it. Moves the head back to the
    /// tail, unless a record is published at the head or the tail moved since
    /// it was loaded: then it was a producer preempted between a record's
    /// word and its tail, whose records this consumer read (the leftovers
    /// check may have seen its next lap's bytes). True if it moved the head.
    fn back_to_tail(&self, head: u64, tail: u64) -> bool {
        // The word first (Acquire: a producer's record or marker there was
        // stored after its tail moved to `head`), then the tail again.
        if matches!(self.slot(head), Slot::Record { .. }) {
            return false;
        }
        // If anything read above (the leftovers check) came from the
        // producer's writes into space released by our head, the producer
        // loaded that head after storing its tail past `tail`, with a SeqCst
        // fence before the load (`push_with`); this fence then orders after
        // that one, so the load below sees the moved tail.
        self.mem.fence_seq_cst();
        if self.mem.load_tail(Ordering::Acquire) != tail {
            return false;
        }
        self.mem.store_head(tail, Ordering::Release);
        true
    }

    /// Consumer, before sleeping on a ring that looks empty: if the
    /// producer's tail is ahead of the head, a record must start at the head;
    /// if none does, garbage with a plausible length sent the consumer between
    /// records: skip to the tail. A head ahead of the tail is legitimate only
    /// over a killed or preempted producer's leftovers (records from the tail
    /// that end at the head); otherwise the producer writes where the consumer
    /// never looks: go back to the tail. A head out of range is the drain's
    /// to fix, a tail out of range the producer's. Loads the producer's tail:
    /// not for the polling path.
    pub(crate) fn check_stalled(&self) -> Option<Damage> {
        // Acquire, before the words it reads: every record below it is
        // published.
        self.check_stalled_from(self.mem.load_tail(Ordering::Acquire))
    }

    /// [`check_stalled`](Self::check_stalled) with the producer's tail as
    /// loaded (a test may load it earlier, as a preempted consumer would).
    fn check_stalled_from(&self, tail: u64) -> Option<Damage> {
        let cap = self.mem.capacity() as u64;
        let head = self.consumer_head();
        if !pos_ok(tail) || !pos_ok(head) {
            return None;
        }
        if tail > head && tail - head <= cap {
            if let Slot::Record { .. } = self.slot(head) {
                return None;
            }
            self.mem.store_head(tail, Ordering::Release);
            return Some(Damage {
                why: "no record where the producer's tail says one is",
                skipped: tail - head,
            });
        }
        if head > tail && !self.leftovers_reach(tail, head) && self.back_to_tail(head, tail) {
            return Some(Damage {
                why: "head beyond the producer's tail",
                skipped: head - tail,
            });
        }
        None
    }

    /// Producer: its tail is out of range (unaligned, or more than a ring
    /// beyond the consumer's head), or garbage that looks like records lies
    /// beyond it (`why` says which). Goes on after the records published from
    /// the consumer's head (the consumer may be reading them, and reads any
    /// garbage among them as records the decoder rejects), so the ring works
    /// again; refuses this record once to report it.
    fn resync_tail(&self, head_seen: &mut u64, why: &'static str) -> RingError {
        let cap = self.mem.capacity() as u64;
        let head = self.mem.load_head(Ordering::Acquire);
        if !pos_ok(head) {
            // The consumer fixes its head on its next drain.
            return RingError::Corrupt("head and tail out of range");
        }
        let mut pos = head;
        // At most a ring's worth of records (each at least 8 bytes).
        while let Slot::Record { skipped, len, .. } = self.slot(pos) {
            let next = pos + skipped + record_size(len) as u64;
            if next + 8 - head > cap {
                break;
            }
            pos = next;
        }
        self.mem.store_tail(pos, Ordering::Release);
        *head_seen = head;
        RingError::Corrupt(why)
    }

    /// Sets the producer's tail as a producer killed between a record's word
    /// and its tail leaves it (for tests elsewhere in the transport).
    #[cfg(test)]
    pub(crate) fn set_tail_for_test(&self, pos: u64) {
        self.mem.store_tail(pos, Ordering::Release);
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
    #[cfg(test)]
    pub(crate) fn push_with(
        &self,
        len: usize,
        head_seen: &mut u64,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<(), RingError> {
        self.push_at(len, head_seen, Tail::Unknown, fill)
    }

    /// [`push_with`](Self::push_with); `tail` says whether this producer
    /// wrote the ring's last record itself ([`Tail::Mine`]), so the word at
    /// its tail is the zero it stored then and is not looked at: that look
    /// is a load from the cache line the consumer polls, which the consumer's
    /// poll has taken from this core by then (a cross-core miss, ~100 ns on
    /// every send here, before the record's own stores; a line the producer
    /// only writes is fetched while it goes on). A producer new to the ring
    /// ([`Tail::Unknown`]) steps over what a killed predecessor published.
    #[inline(always)] // one call less per send (its only production caller is `mailbox::Producer::send`)
    pub(crate) fn push_at(
        &self,
        len: usize,
        head_seen: &mut u64,
        known: Tail,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<(), RingError> {
        if len > self.max_record() {
            return Err(RingError::TooLarge);
        }
        let capacity = self.mem.capacity();
        let cap = capacity as u64;
        let mut tail = self.producer_tail();
        if !pos_ok(tail) {
            return Err(self.resync_tail(head_seen, TAIL_OUT_OF_RANGE));
        }
        // The word at the tail is 0 (this producer zeroed it with the previous
        // record), unless a predecessor was killed after publishing a record
        // and before moving the tail: step over what it published.
        let first = tail;
        let mut recovered = 0;
        let mut looked_at_head = false;
        // Skipped when the last record is this producer's (see `Tail`).
        if known == Tail::Unknown {
            loop {
                let off = (tail & (cap - 1)) as usize;
                // SAFETY: `off` is a multiple of 8 below capacity.
                let w = unsafe { self.mem.load_word(off, Ordering::Acquire) };
                // A word of an earlier lap is no record of this one.
                if w == EMPTY || w & !LOW_MASK != lap(tail, capacity) {
                    break;
                }
                let low = w & LOW_MASK;
                let step = if low == WRAP {
                    (off != 0).then_some((capacity - off) as u64)
                } else {
                    let l = (low as usize).wrapping_sub(1);
                    (low != 0 && l <= self.max_record() && off + LEN_FIELD + l <= capacity)
                        .then(|| record_size(l) as u64)
                };
                // A word no producer writes, in our own space: the record below
                // writes over it (the consumer clears it too, or skips it).
                let Some(step) = step else { break };
                if !looked_at_head {
                    looked_at_head = true;
                    // The consumer may have read them already: below its head
                    // everything is released.
                    let head = self.mem.load_head(Ordering::Acquire);
                    if pos_ok(head) && head > tail && head - tail <= cap {
                        tail = head;
                        continue;
                    }
                }
                if recovered == MAX_RECOVER {
                    // More than a killed predecessor leaves: garbage in our space
                    // (a peer wrote it), or a garbled tail that stepped onto
                    // records. Refusing here for as long as it lies there would
                    // refuse every record (nothing wakes the consumer to read it
                    // away); clearing it could clear records the consumer has not
                    // read. So go on after the records from the consumer's head:
                    // the consumer reads the garbage as records the decoder
                    // rejects (counted), then ours.
                    return Err(self.resync_tail(
                        head_seen,
                        "records published beyond the tail; resynced to the consumer's head",
                    ));
                }
                recovered += 1;
                tail += step;
            }
        }
        if tail != first {
            self.mem.store_tail(tail, Ordering::Release);
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
        // No overflow: `tail < POS_MAX + 2 * cap` (in range, then at most
        // two steps of at most a ring each, or a head at most a ring ahead).
        let end = tail + wasted + size;
        // The record and the word after it (zeroed for the next record) must
        // lie in space the consumer released.
        let mut head = *head_seen;
        if head > tail || end + 8 - head > cap {
            // Acquire: the consumer's reads of the space it released happen
            // before our writes into it (a `head_seen` was loaded the same way).
            // The SeqCst fence (here only, when the space known free runs out)
            // orders our tail stores before every write into space this load
            // releases, for a consumer that looks at those writes and then
            // at the tail (`back_to_tail`).
            self.mem.fence_seq_cst();
            head = self.mem.load_head(Ordering::Acquire);
            if head > tail {
                // Garbled: the consumer goes back to our tail before it
                // sleeps (`check_stalled`).
                return Err(RingError::Corrupt("head beyond the tail"));
            }
            if tail - head > cap {
                return Err(self.resync_tail(head_seen, TAIL_OUT_OF_RANGE));
            }
            *head_seen = head;
            if end + 8 - head > cap {
                return Err(RingError::Full);
            }
        }
        let next = (end & (cap - 1)) as usize;
        // SAFETY: `[tail, end + 8)` belongs to the producer (checked above): the
        // consumer reads nothing beyond the first word that is 0, which is the
        // one at `tail` (or, wrapping, the one at 0 before the marker is
        // stored). Offsets are multiples of 8 below capacity, so words fit; the
        // record `[start, start + size)` lies inside the data area (`size <=
        // to_end`, or it starts at 0 with `size <= capacity / 2`).
        unsafe {
            if !self.mem.write(start + LEN_FIELD, len, fill) {
                // Unpublished: the bytes stay the producer's.
                return Err(RingError::Unfilled);
            }
            // Where the next record starts: nothing published there yet. (Our
            // own bytes from an earlier lap, or a stale word.)
            self.mem.store_word(next, EMPTY, Ordering::Relaxed);
            // Release: the payload and the zeroed next word happen before the
            // consumer's reads after it loads this word. `len <= capacity / 2`,
            // so `len + 1` is neither EMPTY nor WRAP.
            // The word carries its position's lap (see `LAP_SHIFT`).
            self.mem.store_word(
                start,
                lap(tail + wasted, capacity) | (len as u32 + 1),
                Ordering::Release,
            );
            if wasted > 0 {
                // The consumer reaches the record at 0 through the marker only:
                // stored last, it publishes both.
                self.mem
                    .store_word(off, lap(tail, capacity) | WRAP, Ordering::Release);
            }
        }
        // The line after the one the next record starts in: where the word
        // after the next record is zeroed, the record written. Fetched now,
        // while nothing waits for it; else that store, cold a lap after this
        // one, held up the next record's publication behind it (TSO).
        self.mem.will_write(((next | 63) + 1) & (capacity - 1));
        self.mem.store_tail(end, Ordering::Release);
        Ok(())
    }

    /// Consumer: hands up to `max` published records to `f` (each a private
    /// copy), then releases them. Stops at damage, gets past it and reports
    /// it (see the module comment). Only one thread may consume a ring.
    #[inline]
    pub(crate) fn drain(&self, max: usize, mut f: impl FnMut(&[u8])) -> Drained {
        let mut head = self.consumer_head();
        if !pos_ok(head) {
            // Our own position, garbled: go on from the producer's tail (or
            // the next aligned position, or 0, if that is garbled too).
            let tail = self.mem.load_tail(Ordering::Acquire);
            let to = if pos_ok(tail) {
                tail
            } else if head < POS_MAX {
                (head | 7) + 1
            } else {
                0
            };
            self.mem.store_head(to, Ordering::Release);
            return Drained {
                records: 0,
                damage: Some(Damage {
                    why: if head % 8 != 0 {
                        "head out of alignment"
                    } else {
                        "head out of range"
                    },
                    skipped: to.abs_diff(head),
                }),
            };
        }
        let capacity = self.mem.capacity();
        let cap = capacity as u64;
        // A producer writes at most a ring beyond the head we released: a
        // batch that read more was sent astray by garbage (and must not run
        // forever). No overflow: `head < POS_MAX`.
        let end = head + cap;
        // `slot`'s invariants, hoisted out of the loop.
        let lap_shift = capacity.trailing_zeros();
        let max_len = self.max_record();
        let mut n = 0;
        let damaged = loop {
            if n == max || head >= end {
                break None;
            }
            let off = (head & (cap - 1)) as usize;
            // SAFETY: `off` is a multiple of 8 below capacity. Acquire: pairs
            // with the producer's Release of the word.
            let w = unsafe { self.mem.load_word(off, Ordering::Acquire) };
            // Nothing published (`slot_of`'s first `Empty`), first: every
            // drain ends on it, after the records.
            if w == EMPTY {
                break None;
            }
            let lap_bits = (((head >> lap_shift) & 3) as u32) << LAP_SHIFT;
            let len = ((w & LOW_MASK) as usize).wrapping_sub(1);
            // The common case inline: a record right at the head, in this
            // lap. Exactly `slot_of`'s `Record` with nothing skipped: `len <=
            // max_len` also rules out an empty word (low bits 0: `len` wraps
            // to usize::MAX) and a wrap marker (low bits `WRAP`: `len` is
            // beyond any capacity's `max_len`). Anything else goes through
            // `slot_of`.
            let (start, skipped, len) =
                if w & !LOW_MASK == lap_bits && len <= max_len && off + LEN_FIELD + len <= capacity
                {
                    (off, 0, len)
                } else {
                    match self.slot_of(head, off, w) {
                        Slot::Empty | Slot::Marker => break None,
                        Slot::Damaged { why, at, word } => break Some((why, at, word)),
                        Slot::Record {
                            start,
                            skipped,
                            len,
                        } => (start, skipped, len),
                    }
                };
            // SAFETY: `[start, start + 4 + len)` lies inside the data area
            // (checked above or by `slot_of`). Its word was published after
            // its bytes, and a producer that keeps the protocol does not
            // write them until `head` moves past them, which happens after
            // `f` returns (one that does not garbles the copy only, see
            // `Mapped::read`).
            unsafe { self.mem.read(start + LEN_FIELD, len, &mut f) };
            head += skipped + record_size(len) as u64;
            n += 1;
        };
        // Release: our reads of the records happen before the producer reuses
        // their bytes.
        if n > 0 {
            self.mem.store_head(head, Ordering::Release);
        }
        Drained {
            records: n,
            damage: damaged.map(|(why, at, word)| self.get_past(head, why, at, word)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;

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
        let d = r.drain(usize::MAX, |b| out.push(b.to_vec()));
        assert_eq!(d.damage, None);
        out
    }

    /// Drains once, expecting damage; returns it.
    fn damage(r: &RingView) -> Damage {
        let d = r.drain(10, |_| ());
        d.damage.expect("damage reported")
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

    /// The idle poll's `peek` then `take`, with a drain wherever `peek`
    /// hands nothing, read every record in order across wraps of every size,
    /// and `peek` hands a record only where the drain would read that very
    /// record with nothing skipped (a wrap marker before one is `Other`).
    #[test]
    fn peek_and_take_read_what_a_drain_reads_across_wraps() {
        let h = HeapRing::new(256);
        let r = h.view;
        let mut expected = Vec::new();
        let mut got = Vec::new();
        let (mut taken, mut others) = (0, 0);
        let rounds = if cfg!(miri) { 300 } else { 3000 };
        for round in 0..rounds {
            let len = (round * 13) % (r.max_record() + 1);
            let rec: Vec<u8> = (0..len).map(|i| (i * 3 + round) as u8).collect();
            while r.push(len, |b| b.copy_from_slice(&rec)) == Err(RingError::Full) {
                match r.peek() {
                    Peek::Record(at) => {
                        got.push(r.take(at, |b| b.to_vec()));
                        taken += 1;
                    }
                    Peek::Other => {
                        others += 1;
                        let d = r.drain(1, |b| got.push(b.to_vec()));
                        assert_eq!((d.records, d.damage), (1, None));
                    }
                    Peek::Empty => panic!("a full ring peeked empty"),
                }
            }
            expected.push(rec);
        }
        got.extend(drain_all(&r));
        assert_eq!(got, expected);
        assert!(matches!(r.peek(), Peek::Empty) && r.is_empty());
        assert!(
            taken > others && others > 0,
            "{taken} taken, {others} wraps"
        );
    }

    /// Damage at the head is `Other` for `peek` (never a record to take),
    /// and the drain that follows reports it once.
    #[test]
    fn peek_leaves_damage_to_the_drain() {
        let mut h = HeapRing::new(256);
        put(&h.view, b"first");
        poke_word(&mut h, 0, 4000);
        assert!(matches!(h.view.peek(), Peek::Other));
        assert_eq!(damage(&h.view).why, "record beyond the data area");
        assert!(matches!(h.view.peek(), Peek::Empty));
        put(&h.view, b"next");
        let Peek::Record(at) = h.view.peek() else {
            panic!("a plain record at the head");
        };
        assert_eq!(h.view.take(at, |b| b.to_vec()), b"next");
        assert!(h.view.is_empty());
        // A garbled head: `Other`, with no arithmetic on it.
        h.view
            .mem
            .counter(OFF_HEAD)
            .store(u64::MAX - 7, Ordering::Relaxed);
        assert!(matches!(h.view.peek(), Peek::Other));

        // Each of the two bounds alone (review helper-67): a length allowed
        // for a record but running past the data area's end, and a length
        // inside the data area but over the largest record. Neither may be
        // handed to `take`.
        let max = HeapRing::new(256).view.max_record() as u32;
        for (at, len) in [(200u64, 100u32), (0, max + 20)] {
            assert!(
                len <= max || at as u32 + 4 + len <= 256,
                "one bound at a time"
            );
            let mut h = HeapRing::new(256);
            for c in [OFF_HEAD, OFF_TAIL] {
                h.view.mem.counter(c).store(at, Ordering::Relaxed);
            }
            poke_word(&mut h, at as usize, len + 1);
            assert!(matches!(h.view.peek(), Peek::Other), "len {len} at {at}");
            assert_eq!(damage(&h.view).why, "record beyond the data area");
        }
    }

    #[test]
    fn the_inline_copy_copies_exactly_the_record_at_every_small_length() {
        let src: Vec<u8> = (0..SMALL_RECORD as u32 + 8)
            .map(|i| i as u8 ^ 0x5a)
            .collect();
        for len in 0..=SMALL_RECORD {
            for at in [0, 3] {
                let mut dst = vec![0xeeu8; SMALL_RECORD + 16];
                // SAFETY: both ranges are in bounds and do not overlap.
                unsafe { copy_small(src[at..].as_ptr(), dst[at..].as_mut_ptr(), len) };
                assert_eq!(dst[at..at + len], src[at..at + len], "len {len}");
                assert!(dst[..at].iter().all(|&b| b == 0xee), "len {len}");
                assert!(dst[at + len..].iter().all(|&b| b == 0xee), "len {len}");
            }
        }
    }

    #[test]
    fn too_large_and_full_are_refused_without_writing() {
        let h = HeapRing::new(64);
        let r = h.view;
        assert_eq!(r.push(r.max_record() + 1, |_| ()), Err(RingError::TooLarge));
        // A record of half the capacity, one of 20 bytes (24 on the ring) and
        // the word after it fill it exactly.
        r.push(r.max_record(), |_| ()).unwrap();
        r.push(20, |_| ()).unwrap();
        assert_eq!(r.push(0, |_| ()), Err(RingError::Full));
        assert_eq!(drain_all(&r).len(), 2);
        assert!(r.is_empty());
        // An empty ring takes the largest record wherever its tail is.
        r.push(r.max_record(), |_| ()).unwrap();
        assert_eq!(drain_all(&r).len(), 1);
    }

    /// Writes the word at data offset `off` of a heap ring.
    fn poke_word(h: &mut HeapRing, off: usize, w: u32) {
        unsafe { ptr::write_unaligned(h.raw().add(RING_HEADER + off).cast::<u32>(), w) };
    }

    /// Pushes `rec`.
    fn put(r: &RingView, rec: &[u8]) {
        r.push(rec.len(), |b| b.copy_from_slice(rec)).unwrap();
    }

    #[test]
    fn garbage_at_the_head_is_skipped_once_and_later_records_arrive() {
        // A word claiming more than the data area holds, in a published
        // record with another behind it: both are lost (where the second
        // starts is unknown), the damage is reported once, the ring goes on.
        let mut h = HeapRing::new(256);
        put(&h.view, b"first");
        put(&h.view, b"second");
        poke_word(&mut h, 0, 4000);
        let d = damage(&h.view);
        assert_eq!((d.why, d.skipped), ("record beyond the data area", 32));
        assert!(h.view.is_empty());
        assert_eq!(drain_all(&h.view), Vec::<Vec<u8>>::new());
        put(&h.view, b"third");
        put(&h.view, b"fourth");
        assert_eq!(drain_all(&h.view), [b"third".to_vec(), b"fourth".to_vec()]);

        // Garbage where nothing is published yet (head = tail): the word is
        // cleared, and the producer's next record lands there.
        let mut h = HeapRing::new(256);
        put(&h.view, b"a");
        assert_eq!(drain_all(&h.view).len(), 1);
        // (Lap 0's bits, as the position's, and a length beyond the area; a
        // word without the position's lap bits reads as nothing published.)
        poke_word(&mut h, 8, 0xdead_beef);
        assert!(h.view.is_empty(), "another lap's word");
        poke_word(&mut h, 8, 0x0ead_beef);
        assert!(!h.view.is_empty(), "the next drain must look at it");
        let d = damage(&h.view);
        assert_eq!((d.why, d.skipped), ("record beyond the data area", 0));
        assert!(h.view.is_empty());
        put(&h.view, b"b");
        assert_eq!(drain_all(&h.view), [b"b".to_vec()]);

        // The same, but the producer comes first: it writes over the garbage
        // at its tail (it used to refuse every record from then on).
        let mut h = HeapRing::new(256);
        poke_word(&mut h, 0, 0xdead_beef);
        put(&h.view, b"c");
        assert_eq!(drain_all(&h.view), [b"c".to_vec()]);

        // A record running over the end of the data area.
        let mut h = HeapRing::new(256);
        h.view.mem.counter(OFF_HEAD).store(248, Ordering::Relaxed);
        h.view.mem.counter(OFF_TAIL).store(248, Ordering::Relaxed);
        poke_word(&mut h, 248, 41);
        assert_eq!(damage(&h.view).skipped, 0);
        put(&h.view, b"d");
        assert_eq!(drain_all(&h.view), [b"d".to_vec()]);

        // A wrap marker at offset 0: cleared, then written over.
        let mut h = HeapRing::new(256);
        poke_word(&mut h, 0, WRAP);
        assert_eq!(damage(&h.view).why, "wrap marker at the start");
        put(&h.view, b"e");
        assert_eq!(drain_all(&h.view), [b"e".to_vec()]);

        // A wrap marker with no record at 0: nothing to read yet (not a
        // spin); the producer steps over it and its record arrives.
        let mut h = HeapRing::new(256);
        h.view.mem.counter(OFF_HEAD).store(128, Ordering::Relaxed);
        h.view.mem.counter(OFF_TAIL).store(128, Ordering::Relaxed);
        poke_word(&mut h, 128, WRAP);
        assert!(h.view.is_empty());
        assert_eq!(drain_all(&h.view).len(), 0);
        assert_eq!(h.view.check_stalled(), None);
        put(&h.view, b"f");
        assert_eq!(drain_all(&h.view), [b"f".to_vec()]);

        // An unaligned head (our own word, garbled): back to the tail.
        let h = HeapRing::new(256);
        put(&h.view, b"g");
        h.view.mem.counter(OFF_HEAD).store(3, Ordering::Relaxed);
        assert_eq!(damage(&h.view).why, "head out of alignment");
        put(&h.view, b"h");
        assert_eq!(drain_all(&h.view), [b"h".to_vec()]);
    }

    #[test]
    fn a_consumer_sent_astray_by_a_plausible_length_finds_its_way_back() {
        // Garbage with a plausible length reads as a record (the decoder
        // rejects it) and lands the consumer between records: before
        // sleeping, the consumer sees the tail ahead with no record at its
        // head, and skips to the tail.
        let mut h = HeapRing::new(256);
        put(&h.view, b"first");
        put(&h.view, &[0; 20]);
        poke_word(&mut h, 0, 21); // 20 bytes: ends in the middle of record 2
        let got = drain_all(&h.view);
        assert_eq!(got.len(), 1, "one garbage record");
        assert!(h.view.is_empty());
        let d = h.view.check_stalled().expect("stall found");
        assert_eq!(d.skipped, 16);
        assert_eq!(h.view.check_stalled(), None);
        put(&h.view, b"third");
        assert_eq!(drain_all(&h.view), [b"third".to_vec()]);

        // A head garbled ahead of the tail: the producer writes where the
        // consumer never looks, until the consumer goes back to the tail.
        let h = HeapRing::new(256);
        h.view.mem.counter(OFF_HEAD).store(64, Ordering::Relaxed);
        put(&h.view, b"lost");
        assert_eq!(drain_all(&h.view).len(), 0);
        let d = h.view.check_stalled().expect("stall found");
        assert_eq!(d.why, "head beyond the producer's tail");
        put(&h.view, b"found");
        assert_eq!(drain_all(&h.view), [b"found".to_vec()]);
    }

    #[test]
    fn a_producer_refuses_garbage_beyond_its_tail_that_looks_like_records_once() {
        // Plausible records beyond the tail, more than a killed producer
        // leaves, not read by the consumer: an error for the sender.
        let mut h = HeapRing::new(256);
        poke_word(&mut h, 0, 1);
        poke_word(&mut h, 8, 1);
        poke_word(&mut h, 16, 1);
        assert!(matches!(h.view.push(1, |_| ()), Err(RingError::Corrupt(_))));
        // Refused once, not for ever (before: every record was refused, and
        // nothing woke the consumer to read the garbage away): the next
        // records go after it; the consumer reads the garbage as (empty)
        // records, which the decoder rejects, then ours.
        put(&h.view, b"a");
        put(&h.view, b"b");
        assert_eq!(
            drain_all(&h.view),
            [vec![], vec![], vec![], b"a".to_vec(), b"b".to_vec()]
        );
        put(&h.view, b"c");
        assert_eq!(drain_all(&h.view), [b"c".to_vec()]);

        // The same garbage read away by a consumer while the producer
        // resyncs: nothing written after is lost (a review found clearing
        // the garbage instead lost the next records here).
        let mut h = HeapRing::new(256);
        poke_word(&mut h, 0, 1);
        poke_word(&mut h, 8, 1);
        poke_word(&mut h, 16, 1);
        assert!(matches!(h.view.push(1, |_| ()), Err(RingError::Corrupt(_))));
        h.view.mem.store_head(24, Ordering::Release);
        put(&h.view, b"x");
        put(&h.view, b"y");
        assert_eq!(h.view.check_stalled(), None);
        assert_eq!(drain_all(&h.view), [b"x".to_vec(), b"y".to_vec()]);

        // A tail garbled onto the consumer's unread records (aligned, four
        // laps ahead, so their words carry its lap): they are not lost.
        let h = HeapRing::new(256);
        for r in [b"a", b"b", b"c", b"d"] {
            put(&h.view, r);
        }
        h.view
            .mem
            .counter(OFF_TAIL)
            .store(4 * 256, Ordering::Relaxed);
        assert!(matches!(h.view.push(1, |_| ()), Err(RingError::Corrupt(_))));
        put(&h.view, b"e");
        assert_eq!(
            drain_all(&h.view),
            [b"a", b"b", b"c", b"d", b"e"].map(|r| r.to_vec())
        );
        // A tail far beyond the head, or unaligned.
        let h2 = HeapRing::new(256);
        h2.view
            .mem
            .counter(OFF_TAIL)
            .store(1 << 40, Ordering::Relaxed);
        assert!(matches!(
            h2.view.push(1, |_| ()),
            Err(RingError::Corrupt(_))
        ));
        let h3 = HeapRing::new(256);
        h3.view.mem.counter(OFF_TAIL).store(3, Ordering::Relaxed);
        assert!(matches!(
            h3.view.push(1, |_| ()),
            Err(RingError::Corrupt(_))
        ));
    }

    #[test]
    fn a_record_written_but_not_published_is_invisible() {
        // What a producer killed mid-write leaves behind: bytes, no word.
        let mut h = HeapRing::new(256);
        let base = h.raw();
        unsafe { ptr::write_bytes(base.add(RING_HEADER + 4), 0xAB, 16) };
        assert!(h.view.is_empty());
        assert_eq!(drain_all(&h.view).len(), 0);
        // The next producer overwrites it.
        h.view.push(3, |b| b.copy_from_slice(b"abc")).unwrap();
        assert_eq!(drain_all(&h.view), vec![b"abc".to_vec()]);
    }

    #[test]
    fn a_record_published_without_its_tail_is_read_once_and_stepped_over() {
        // A producer killed between a record's word and its tail: the record
        // is whole, the tail behind it.
        let h = HeapRing::new(256);
        h.view.push(5, |b| b.copy_from_slice(b"first")).unwrap();
        h.view.mem.counter(OFF_TAIL).store(0, Ordering::Relaxed);
        assert_eq!(drain_all(&h.view), vec![b"first".to_vec()]);
        // The next producer (a process reusing the slot) steps over it.
        h.view.push(6, |b| b.copy_from_slice(b"second")).unwrap();
        assert_eq!(drain_all(&h.view), vec![b"second".to_vec()]);
        // The same with a wrapped record: its marker and the record at 0.
        let h = HeapRing::new(64);
        let r = h.view;
        r.push(20, |b| b.fill(1)).unwrap(); // [0, 24)
        r.push(20, |b| b.fill(2)).unwrap(); // [24, 48)
        assert_eq!(drain_all(&r).len(), 2);
        r.push(20, |b| b.fill(3)).unwrap(); // wraps: marker at 48, record at 0
        assert_eq!(r.producer_tail(), 88);
        r.mem.counter(OFF_TAIL).store(48, Ordering::Relaxed);
        r.push(8, |b| b.fill(4)).unwrap(); // steps over both: [24, 40)
        assert_eq!(r.producer_tail(), 104);
        assert_eq!(drain_all(&r), vec![vec![3; 20], vec![4; 8]]);
        // A new consumer skipping everything never goes back.
        r.mem.counter(OFF_TAIL).store(48, Ordering::Relaxed);
        r.skip_all();
        assert_eq!(r.consumer_head(), 104);
        assert!(r.is_empty());
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
            let d = r.drain(usize::MAX, |b| {
                let i = u32::from_le_bytes(b[..4].try_into().unwrap());
                assert_eq!(i, next);
                assert_eq!(b.len(), (i % 61) as usize + 4);
                assert!(b[4..].iter().all(|x| *x == i as u8));
                next += 1;
            });
            assert_eq!(d.damage, None);
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
    use crate::sync::model::{Arc, AtomicU32, AtomicU64, UnsafeCell};

    /// The data area as 8-byte units: bytes 0..4 of a unit (where a record
    /// word may sit) are one atomic word, bytes 4..8 plain cells. Payload
    /// bytes that fall on a word are read and written through the atomic
    /// (Relaxed), so loom checks them by value (the models compare every
    /// record), the others by race detection.
    struct Buf {
        tail: AtomicU64,
        head: AtomicU64,
        words: Box<[AtomicU32]>,
        cells: Box<[UnsafeCell<u8>]>,
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
            if i % 8 < 4 {
                return self.buf.words[i / 8].load(Ordering::Relaxed).to_ne_bytes()[i % 8];
            }
            // SAFETY: a plain read of a live cell; loom checks it is ordered
            // after the last write.
            self.buf.cells[i / 8 * 4 + i % 8 - 4].with(|p| unsafe { *p })
        }
        fn write_byte(&self, i: usize, v: u8) {
            if i % 8 < 4 {
                let w = &self.buf.words[i / 8];
                let mut b = w.load(Ordering::Relaxed).to_ne_bytes();
                b[i % 8] = v;
                w.store(u32::from_ne_bytes(b), Ordering::Relaxed);
                return;
            }
            // SAFETY: a plain write of a live cell; loom checks it is ordered
            // after every earlier access.
            self.buf.cells[i / 8 * 4 + i % 8 - 4].with_mut(|p| unsafe { *p = v })
        }
    }

    /// An empty model ring of `capacity` data bytes (a multiple of 8).
    pub(super) fn ring(capacity: usize) -> RingView<ModelMem> {
        RingView {
            mem: ModelMem {
                buf: Arc::new(Buf {
                    tail: AtomicU64::new(0),
                    head: AtomicU64::new(0),
                    words: (0..capacity / 8).map(|_| AtomicU32::new(0)).collect(),
                    cells: (0..capacity / 2).map(|_| UnsafeCell::new(0)).collect(),
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
        fn fence_seq_cst(&self) {
            #[cfg(loom)]
            crate::sync::model::fence(Ordering::SeqCst);
            #[cfg(not(loom))]
            std::sync::atomic::fence(Ordering::SeqCst);
        }
        unsafe fn load_word(&self, off: usize, order: Ordering) -> u32 {
            self.buf.words[off / 8].load(order)
        }
        unsafe fn store_word(&self, off: usize, v: u32, order: Ordering) {
            self.buf.words[off / 8].store(v, order);
        }
        unsafe fn cas_word(&self, off: usize, current: u32, new: u32) -> bool {
            self.buf.words[off / 8]
                .compare_exchange(current, new, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
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
    use super::{model_mem, Peek, RingError, Tail};
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

    /// A producer thread pushing `record(lens, i)` for every `i`, in order.
    fn spawn_pushing(
        r: &super::RingView<model_mem::ModelMem>,
        lens: &'static [usize],
    ) -> thread::JoinHandle<()> {
        let p = r.clone();
        thread::spawn(move || {
            let mut head_seen = 0;
            for i in 0..lens.len() {
                push_waiting(&p, &mut head_seen, &record(lens, i));
            }
        })
    }

    /// Drains until `lens.len()` records arrived, `max` per batch; checks each.
    fn consume(r: &super::RingView<model_mem::ModelMem>, lens: &[usize], max: usize) {
        let mut got = 0;
        while got < lens.len() {
            let d = r.drain(max, |b| {
                assert!(got < lens.len(), "more records than pushed");
                assert_eq!(b, &record(lens, got)[..], "record {got}");
                got += 1;
            });
            assert_eq!(d.damage, None);
            if d.records == 0 {
                thread::yield_now();
            }
        }
        assert!(r.is_empty());
    }

    /// SPSC in a 64-byte ring: records of 20, 13 and 17 bytes (24 bytes each on
    /// the ring); the third does not fit before the end, so the producer writes
    /// it at 0 over the first record's bytes and word (and zeroes the word
    /// after it, where the second record's payload was), then the wrap marker;
    /// it needs the first two records released. All arrive in order, intact,
    /// and (under loom) with no data race on any cell and no stale word read.
    #[test]
    fn loom_spsc_records_arrive_in_order_across_a_wrap() {
        const LENS: [usize; 3] = [20, 13, 17];
        model::check(RUNS, || {
            let r = model_mem::ring(64);
            let producer = spawn_pushing(&r, &LENS);
            consume(&r, &LENS, usize::MAX);
            producer.join().unwrap();
            // The wrap happened: tail counts the 16 skipped bytes.
            assert_eq!(r.producer_tail(), 24 * 3 + 16);
        });
    }

    /// The idle poll's consumer (`peek`, then `take`, or a drain of one
    /// record where `peek` finds a wrap marker) against a producer that knows
    /// its tail after its first record (`Tail::Mine`, as `mailbox::Producer`
    /// sends): the same records in order across a wrap, with no data race on
    /// any cell and no stale word read (review helper-67: no model drove
    /// `peek`/`take`).
    #[test]
    fn loom_peek_and_take_against_a_producer_that_knows_its_tail() {
        peek_and_take(&[20, 13, 17]);
    }

    /// The same with records of 32, 8, 24 and 24 bytes on the ring: the
    /// fourth goes over the first one's bytes as soon as the consumer's head
    /// is past the first, so `take` must have read them by then.
    #[test]
    fn loom_peek_and_take_release_a_record_after_reading_it() {
        peek_and_take(&[28, 4, 20, 20]);
    }

    fn peek_and_take(lens: &'static [usize]) {
        model::check(RUNS, move || {
            let r = model_mem::ring(64);
            let p = r.clone();
            let producer = thread::spawn(move || {
                let mut head_seen = 0;
                for i in 0..lens.len() {
                    let rec = record(lens, i);
                    let known = if i == 0 { Tail::Unknown } else { Tail::Mine };
                    loop {
                        let fill = |b: &mut [u8]| {
                            b.copy_from_slice(&rec);
                            true
                        };
                        match p.push_at(rec.len(), &mut head_seen, known, fill) {
                            Ok(()) => break,
                            Err(RingError::Full) => thread::yield_now(),
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
            });
            let mut got = 0;
            while got < lens.len() {
                match r.peek() {
                    Peek::Record(at) => {
                        r.take(at, |b| {
                            assert_eq!(b, &record(lens, got)[..], "record {got}")
                        });
                        got += 1;
                    }
                    Peek::Other => {
                        let d = r.drain(1, |b| {
                            assert_eq!(b, &record(lens, got)[..], "record {got}");
                            got += 1;
                        });
                        assert_eq!(d.damage, None);
                    }
                    Peek::Empty => thread::yield_now(),
                }
            }
            producer.join().unwrap();
            assert!(r.is_empty());
        });
    }

    /// The check before sleeping, run whenever a drain finds nothing, never
    /// fires on a healthy ring: not while the producer is between a record's
    /// word and its tail (the consumer's head is then beyond the tail it
    /// loads), nor across a wrap (the record at 0 carries the next lap).
    /// Records of 20, 13 and 17 bytes in a 64-byte ring, as above.
    #[test]
    fn loom_check_stalled_never_fires_on_a_healthy_ring() {
        const LENS: [usize; 3] = [20, 13, 17];
        model::check(RUNS, || {
            let r = model_mem::ring(64);
            let producer = spawn_pushing(&r, &LENS);
            let mut got = 0;
            while got < LENS.len() {
                let d = r.drain(usize::MAX, |b| {
                    assert_eq!(b, &record(&LENS, got)[..], "record {got}");
                    got += 1;
                });
                assert_eq!(d.damage, None);
                if d.records == 0 {
                    if r.is_empty() {
                        assert_eq!(r.check_stalled(), None);
                    }
                    thread::yield_now();
                }
            }
            producer.join().unwrap();
            assert_eq!(r.check_stalled(), None);
            assert_eq!(r.consumer_head(), r.producer_tail());
        });
    }

    /// Records of the largest size (half the ring): each push but the first
    /// finds the ring full (a record and the word after it must fit) until the
    /// consumer, draining one record at a time, releases the one before; the
    /// bytes it then overwrites were read before, and the word at 0 it zeroes
    /// after the second record hides the first record's stale word.
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
                // Full until the consumer released record 1.
                push_waiting(&p, &mut head_seen, &record(&lens, 2));
            });
            consume(&r, &lens, 1);
            producer.join().unwrap();
            assert_eq!(r.producer_tail(), 3 * 32);
            assert_eq!(r.consumer_head(), 3 * 32);
        });
    }
}

/// Regressions from review: damage another process writes never makes the
/// consumer replay old records, spin, or send a producer's record astray,
/// never panics, and the ring always works again.
#[cfg(test)]
mod damage_regressions {
    use super::tests::HeapRing;
    use super::*;

    fn poke(h: &mut HeapRing, off: usize, w: u32) {
        // SAFETY: inside the heap ring's data area.
        unsafe { std::ptr::write_unaligned(h.raw().add(RING_HEADER + off).cast::<u32>(), w) };
    }

    /// Drains and checks for stalls as the loop does, `rounds` times;
    /// returns the records delivered.
    fn run_consumer(r: &RingView, rounds: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for _ in 0..rounds {
            r.drain(usize::MAX, |b| got.push(b.to_vec()));
            if r.is_empty() {
                let _ = r.check_stalled();
            }
        }
        got
    }

    /// Pushes `rec` and expects it (and nothing else) to arrive.
    fn round_trip(r: &RingView, rec: &[u8]) {
        let mut pushed = r.push(rec.len(), |b| b.copy_from_slice(rec));
        if let Err(RingError::Corrupt(_)) = pushed {
            // Reported once; the ring works again.
            pushed = r.push(rec.len(), |b| b.copy_from_slice(rec));
        }
        assert_eq!(pushed, Ok(()));
        let got = run_consumer(r, 3);
        assert_eq!(got, vec![rec.to_vec()]);
    }

    /// A plausible length written over the zero word at an idle head, at every
    /// lap and several sizes: at most one garbage record is delivered (the
    /// decoder rejects it), old records of the previous lap are never
    /// replayed, and the producer goes on.
    #[test]
    fn a_plausible_word_at_an_idle_head_replays_nothing_and_the_producer_goes_on() {
        for laps in 0..12 {
            for (sizes, word) in [(&[28usize][..], 29u32), (&[12, 28, 4, 44, 20], 5)] {
                let mut h = HeapRing::new(256);
                let r = h.view;
                let mut i = 0usize;
                while r.producer_tail() < laps * 256 + 40 {
                    let len = sizes[i % sizes.len()];
                    r.push(len, |b| b.fill(i as u8)).unwrap();
                    assert_eq!(run_consumer(&r, 1).len(), 1);
                    i += 1;
                }
                let head = r.consumer_head();
                assert_eq!(head, r.producer_tail());
                // With this lap's bits: believable (without, it reads empty).
                poke(&mut h, (head % 256) as usize, lap(head, 256) | word);
                let got = run_consumer(&r, 100);
                assert!(
                    got.len() <= 1,
                    "laps {laps}: replayed {} records",
                    got.len()
                );
                round_trip(&r, b"after");
            }
        }
    }

    /// Uniform records whose payload holds a plausible length at the next
    /// 8-byte boundary: a consumer displaced by garbage reads payload fields
    /// as records. It stops within a ring (a drain always returns) and finds
    /// its way back.
    #[test]
    fn a_consumer_displaced_into_payloads_stops_and_finds_its_way_back() {
        for laps in 0..8u64 {
            let mut h = HeapRing::new(256);
            let r = h.view;
            let mut rec = [0u8; 28];
            rec[4..8].copy_from_slice(&29u32.to_le_bytes());
            while r.producer_tail() < laps * 256 + 40 {
                r.push(28, |b| b.copy_from_slice(&rec)).unwrap();
                assert_eq!(run_consumer(&r, 1).len(), 1);
            }
            let head = r.consumer_head();
            // The payload words the displaced consumer lands on carry this
            // lap's bits, so they read as believable records.
            rec[4..8].copy_from_slice(&(lap(head, 256) | 29).to_le_bytes());
            r.push(28, |b| b.copy_from_slice(&rec)).unwrap();
            r.push(28, |b| b.copy_from_slice(&rec)).unwrap();
            // A length of 4: lands 8 bytes into the next record.
            poke(&mut h, (head % 256) as usize, lap(head, 256) | 5);
            let mut n = 0;
            let d = r.drain(usize::MAX, |_| n += 1);
            assert!(n <= 256 / 8, "a drain of {n} records from one ring");
            let _ = d;
            let got = run_consumer(&r, 10);
            assert!(n + got.len() <= 256 / 8);
            assert!(r.is_empty());
            round_trip(&r, b"after");
        }
    }

    /// A head garbled ahead of the tail, the consumer running while the
    /// producer writes a record over that head: the consumer must not clear
    /// a "bad word" that is the producer's payload.
    #[test]
    fn a_garbled_head_ahead_of_the_tail_never_clears_a_payload_being_written() {
        let h = HeapRing::new(256);
        let r = h.view;
        r.mem.counter(OFF_HEAD).store(16, Ordering::Relaxed);
        // The payload word under the garbled head (ring offset 16, payload
        // bytes 12..16) reads as a damaged word of this lap (an impossible
        // length), so the consumer's damage path runs on it.
        let mut payload = [0xABu8; 40];
        payload[12..16].copy_from_slice(&0x3FFF_0000u32.to_le_bytes());
        let mut head_seen = 0;
        let mut damage = None;
        r.push_with(40, &mut head_seen, |b| {
            b.copy_from_slice(&payload);
            // The consumer (another process) runs now.
            damage = r.drain(10, |_| ()).damage;
            let _ = r.check_stalled();
            true
        })
        .unwrap();
        assert!(damage.is_some(), "the damage path did not run");
        let mut got = Vec::new();
        r.drain(10, |b| got.push(b.to_vec()));
        assert_eq!(got, vec![payload.to_vec()], "a good record delivered torn");
    }

    /// Positions near `u64::MAX` (written by another process) neither panic
    /// (debug builds check overflow) nor stop the ring for good.
    #[test]
    fn positions_near_the_end_of_u64_do_not_panic_and_the_ring_recovers() {
        for (head, tail) in [
            (u64::MAX, 3),
            (u64::MAX - 7, u64::MAX - 7),
            (u64::MAX - 7, 0),
            (0, u64::MAX - 7),
            (u64::MAX - 255, u64::MAX - 255),
        ] {
            let h = HeapRing::new(256);
            let r = h.view;
            r.mem.counter(OFF_HEAD).store(head, Ordering::Relaxed);
            r.mem.counter(OFF_TAIL).store(tail, Ordering::Relaxed);
            let _ = r.drain(10, |_| ());
            let _ = r.check_stalled();
            let _ = r.push(8, |_| ());
            let _ = run_consumer(&r, 2);
            round_trip(&r, b"after");
        }
    }

    /// `is_empty` (asked before any drain, e.g. before sleeping) on a head
    /// garbled near the end of u64 with a wrap marker under it: not empty,
    /// no overflow (it panicked in debug builds), and the drain repairs it.
    #[test]
    fn is_empty_on_a_garbled_head_says_not_empty_without_overflow() {
        let mut h = HeapRing::new(256);
        let r = h.view;
        r.mem
            .counter(OFF_HEAD)
            .store(u64::MAX - 7, Ordering::Relaxed);
        poke(&mut h, 248, (3 << LAP_SHIFT) | WRAP);
        poke(&mut h, 0, 29);
        assert!(!r.is_empty());
        let _ = run_consumer(&r, 2);
        round_trip(&r, b"after");
    }

    /// A producer preempted between a record's word and its tail; the
    /// consumer reads the record, sees the ring empty and loads the old tail;
    /// the producer then writes nearly a ring (over the old record's bytes).
    /// The consumer must not go back to the old tail (a ring behind).
    #[test]
    fn a_preempted_producer_does_not_send_the_consumer_back_a_lap() {
        let h = HeapRing::new(256);
        let r = h.view;
        r.push(28, |b| b.fill(1)).unwrap(); // [0, 32)
        r.mem.counter(OFF_TAIL).store(0, Ordering::Relaxed); // not yet stored
        assert_eq!(run_consumer(&r, 1).len(), 1);
        assert!(r.is_empty());
        let stale_tail = r.mem.load_tail(Ordering::Acquire);
        // The producer resumes: its tail, then records up to the head + ring.
        r.mem.counter(OFF_TAIL).store(32, Ordering::Relaxed);
        for i in 0..7 {
            r.push(28, |b| b.fill(i + 2)).unwrap();
        }
        // The word at 0 is zeroed for the record after these.
        assert_eq!(r.producer_tail(), 256);
        assert_eq!(r.check_stalled_from(stale_tail), None);
        assert_eq!(r.consumer_head(), 32);
        let got = run_consumer(&r, 1);
        assert_eq!(got, (2..9).map(|i| vec![i; 28]).collect::<Vec<_>>());
    }

    /// A tail garbled beyond a ring ahead of the head, or unaligned: one
    /// record is refused to report it, then the producer goes on from the
    /// consumer's head.
    #[test]
    fn a_damaged_tail_is_reported_once_and_the_producer_goes_on() {
        for bad in [1 << 40, 3, 512 + 8, u64::MAX] {
            let h = HeapRing::new(256);
            let r = h.view;
            r.push(5, |b| b.fill(1)).unwrap();
            r.mem.counter(OFF_TAIL).store(bad, Ordering::Relaxed);
            let mut head_seen = 0;
            let first = r.push_with(3, &mut head_seen, |b| {
                b.fill(2);
                true
            });
            assert!(matches!(first, Err(RingError::Corrupt(_))), "{bad}");
            // The record published before the damage is not overwritten.
            r.push_with(3, &mut head_seen, |b| {
                b.fill(3);
                true
            })
            .unwrap();
            assert_eq!(run_consumer(&r, 2), vec![vec![1; 5], vec![3; 3]]);
        }
    }
}
