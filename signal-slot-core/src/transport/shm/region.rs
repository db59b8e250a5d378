//! The system region: one memfd mapping shared by every process of the system.
//!
//! Layout (all offsets fixed by the header, zeroed memory is valid and empty):
//! ```text
//! [header page: magic, version, ring size, process slots, mailbox bitmap]
//! [mailbox 0: header (doorbell, generation, owner, dirty mask) | ring per process]
//! ...
//! [mailbox 63]
//! ```
//! The mapping is large (64 mailboxes x 32 rings) but sparse: a page costs
//! memory only once touched.

use crate::sync::{AtomicU32, AtomicU64, Ordering};
use std::ptr::NonNull;

/// Processes that can be alive at once in one system (the root included).
pub(crate) const MAX_PROCS: usize = 32;
/// Loops reachable from other processes at once (process control inboxes included).
pub(crate) const MAX_MAILBOXES: usize = 64;

const MAGIC: u64 = u64::from_le_bytes(*b"SIGSLOT1");
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 4096;
pub(crate) const MAILBOX_HEADER: usize = 256;

/// Why the region could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// The OS refused the memfd or the mapping.
    #[error("shared memory: {0}")]
    Os(#[from] std::io::Error),
    /// A ring size that is not a power of two in 4 KiB..=1 GiB.
    #[error("ring size {0} must be a power of two between 4 KiB and 1 GiB")]
    RingSize(usize),
}

#[repr(C)]
pub(crate) struct ProcSlot {
    /// 0 free, 1 starting, 2 alive, 3 dead (being cleaned).
    pub(crate) state: AtomicU32,
    pub(crate) pid: AtomicU32,
    /// The process's control mailbox.
    pub(crate) control: AtomicU32,
    /// The process's incarnation (see the header).
    pub(crate) incarnation: AtomicU32,
    /// 1 + the CPU a loop of the process last went idle on (0: unknown); a
    /// hint for the loops' idle polling, see `system::note_my_cpu`.
    pub(crate) cpu: AtomicU32,
}

pub(crate) const PROC_FREE: u32 = 0;
/// A mailbox owner that is no process.
const NO_OWNER: u32 = u32::MAX;
pub(crate) const PROC_ALIVE: u32 = 2;

#[repr(C)]
struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    ring_bytes: AtomicU32,
    mailboxes_used: AtomicU64,
    procs_used: AtomicU64,
    /// Counts process starts: ids made by a process carry its incarnation, so a
    /// reused slot never reissues an id.
    incarnations: AtomicU32,
    _pad: u32,
    procs: [ProcSlot; MAX_PROCS],
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_BYTES);

/// One mailbox's header. The doorbell (written by the consumer only when it goes
/// to sleep or wakes) and the dirty mask (swapped by the consumer on every drain)
/// sit on separate cache lines, so producers checking the bell do not miss on a
/// line the consumer keeps writing.
#[repr(C, align(128))]
pub(crate) struct MailboxHeader {
    /// The owning loop's doorbell word.
    pub(crate) bell: AtomicU32,
    /// Bumped each time the mailbox is given to a new loop; records carry it.
    pub(crate) generation: AtomicU32,
    /// The process whose loop consumes it.
    pub(crate) owner: AtomicU32,
    /// Which barriers its producers use (`transport::barrier::LIGHT` or
    /// `FULL`); read by producers on every send, next to the bell they read
    /// anyway.
    pub(crate) fences: AtomicU32,
    /// After a switch to full fences: when the last light send begun before
    /// it is over for sure (CLOCK_MONOTONIC ns; 0: no wait). The consumer's.
    pub(crate) grace_end: AtomicU64,
    _pad: [u8; 104],
    /// Bit p set: the ring of producer process p may have records.
    pub(crate) dirty: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<MailboxHeader>() <= MAILBOX_HEADER);

/// The mapping. Lives for the whole process (processes of a system share it).
pub(crate) struct Region {
    base: NonNull<u8>,
    len: usize,
    ring_bytes: usize,
}

// SAFETY: the mapping is shared memory accessed only through atomics and the ring
// protocol; the pointer itself never changes.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    fn mailbox_stride(ring_bytes: usize) -> usize {
        MAILBOX_HEADER + MAX_PROCS * (super::ring::RING_HEADER + ring_bytes)
    }

    /// The data bytes of each ring.
    pub(crate) fn ring_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// Creates and maps a zeroed region whose rings hold `ring_bytes` each.
    pub(crate) fn create(ring_bytes: usize) -> Result<Region, RegionError> {
        if !ring_bytes.is_power_of_two() || !(4096..=1 << 30).contains(&ring_bytes) {
            return Err(RegionError::RingSize(ring_bytes));
        }
        let len = HEADER_BYTES + MAX_MAILBOXES * Self::mailbox_stride(ring_bytes);
        let base = map_anonymous_shared(len)?;
        let r = Region {
            base,
            len,
            ring_bytes,
        };
        let h = r.header();
        h.version.store(VERSION, Ordering::Relaxed);
        h.ring_bytes.store(ring_bytes as u32, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
        Ok(r)
    }

    fn header(&self) -> &Header {
        // SAFETY: the header sits at the start of the mapping, which is page
        // aligned and at least HEADER_BYTES long; all fields are atomics.
        unsafe { &*self.base.as_ptr().cast::<Header>() }
    }

    #[inline]
    pub(crate) fn proc(&self, p: u32) -> Option<&ProcSlot> {
        self.header().procs.get(p as usize)
    }

    /// Claims a free process slot (root claims 0 at creation).
    pub(crate) fn claim_proc(&self) -> Option<u32> {
        let p = claim_bit(&self.header().procs_used, MAX_PROCS)?;
        let n = self.header().incarnations.fetch_add(1, Ordering::AcqRel);
        if let Some(s) = self.proc(p) {
            s.incarnation.store(n, Ordering::Release);
        }
        Some(p)
    }

    /// Frees a process slot once the process is gone and cleaned up.
    pub(crate) fn release_proc(&self, p: u32) {
        if let Some(s) = self.proc(p) {
            s.state.store(PROC_FREE, Ordering::Release);
            s.pid.store(0, Ordering::Relaxed);
            // The next process in this slot runs elsewhere, maybe: until one
            // of its loops goes idle, its CPU is unknown, not its
            // predecessor's (a loop that took it for its own would poll
            // less for records it sends from another CPU).
            s.cpu.store(0, Ordering::Relaxed);
        }
        self.header()
            .procs_used
            .fetch_and(!(1u64 << p), Ordering::AcqRel);
    }

    /// Claims a free mailbox for a loop of process `owner`; returns its index.
    pub(crate) fn claim_mailbox(&self, owner: u32) -> Option<u32> {
        let m = claim_bit(&self.header().mailboxes_used, MAX_MAILBOXES)?;
        let mb = self.mailbox_header(m);
        mb.owner.store(owner, Ordering::Relaxed);
        mb.generation.fetch_add(1, Ordering::AcqRel);
        Some(m)
    }

    pub(crate) fn mailbox_in_use(&self, m: u32) -> bool {
        m < MAX_MAILBOXES as u32
            && self.header().mailboxes_used.load(Ordering::Acquire) & (1 << m) != 0
    }

    /// Makes senders see mailbox `m` as no longer read (its generation
    /// moves on), its owner still holding it (see `release_mailbox`).
    pub(crate) fn retire_mailbox(&self, m: u32) {
        self.mailbox_header(m)
            .generation
            .fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn release_mailbox(&self, m: u32) {
        let mb = self.mailbox_header(m);
        mb.owner.store(NO_OWNER, Ordering::Release);
        mb.generation.fetch_add(1, Ordering::AcqRel);
        self.header()
            .mailboxes_used
            .fetch_and(!(1u64 << m), Ordering::AcqRel);
    }

    /// Releases mailbox `m` if process `p` owns it (cleaning up after `p`);
    /// the owner is taken first, so a mailbox just claimed by another loop, or
    /// released already, is left alone.
    pub(crate) fn release_mailbox_of(&self, m: u32, p: u32) {
        if m >= MAX_MAILBOXES as u32 || !self.mailbox_in_use(m) {
            return;
        }
        let mb = self.mailbox_header(m);
        if mb
            .owner
            .compare_exchange(p, NO_OWNER, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            mb.generation.fetch_add(1, Ordering::AcqRel);
            self.header()
                .mailboxes_used
                .fetch_and(!(1u64 << m), Ordering::AcqRel);
        }
    }

    #[inline]
    fn mailbox_base(&self, m: u32) -> *mut u8 {
        let off = HEADER_BYTES + m as usize * Self::mailbox_stride(self.ring_bytes);
        debug_assert!(off + Self::mailbox_stride(self.ring_bytes) <= self.len);
        // SAFETY: `m < MAX_MAILBOXES` (callers index with claimed or checked
        // mailboxes), so the offset is inside the mapping.
        unsafe { self.base.as_ptr().add(off) }
    }

    #[inline]
    pub(crate) fn mailbox_header(&self, m: u32) -> &MailboxHeader {
        let m = m.min(MAX_MAILBOXES as u32 - 1);
        // SAFETY: inside the mapping (clamped index), 256-byte aligned, atomics only.
        unsafe { &*self.mailbox_base(m).cast::<MailboxHeader>() }
    }

    /// The ring that producer process `p` writes into mailbox `m`.
    #[inline]
    pub(crate) fn ring(&self, m: u32, p: u32) -> super::ring::RingView {
        let m = m.min(MAX_MAILBOXES as u32 - 1);
        let p = p.min(MAX_PROCS as u32 - 1) as usize;
        let off = MAILBOX_HEADER + p * (super::ring::RING_HEADER + self.ring_bytes);
        // SAFETY: `m` and `p` are clamped to the layout, so the ring (header and
        // data) lies inside the mapping, 128-byte aligned (all strides are
        // multiples of 128); the mapping lives for the whole process.
        unsafe { super::ring::RingView::new(self.mailbox_base(m).add(off), self.ring_bytes) }
    }
}

/// Sets the lowest clear bit of `word` below `n`; returns its index.
fn claim_bit(word: &AtomicU64, n: usize) -> Option<u32> {
    let mut cur = word.load(Ordering::Acquire);
    loop {
        let free = (!cur).trailing_zeros();
        if free as usize >= n {
            return None;
        }
        match word.compare_exchange(cur, cur | (1 << free), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some(free),
            Err(now) => cur = now,
        }
    }
}

/// An unnamed memfd of `len` zero bytes, mapped shared.
fn map_anonymous_shared(len: usize) -> Result<NonNull<u8>, std::io::Error> {
    // SAFETY: memfd_create with a valid NUL-terminated name; the fd is owned below.
    let fd = unsafe { libc::memfd_create(c"signal-slot".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let size = libc::off_t::try_from(len).map_err(|_| std::io::Error::other("region too large"))?;
    // SAFETY: plain syscall on an fd we own.
    if unsafe { libc::ftruncate(raw, size) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh shared mapping of the whole memfd; the kernel picks the address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_NORESERVE,
            raw,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // The mapping keeps the memory alive; the fd is not needed (and is CLOEXEC).
    drop(fd);
    NonNull::new(p.cast::<u8>()).ok_or_else(|| std::io::Error::other("mmap returned null"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_process_slot_forgets_its_predecessors_cpu() {
        let region = Region::create(4096).unwrap();
        let p = region.claim_proc().unwrap();
        let slot = region.proc(p).unwrap();
        // The word holds 1 + the CPU: its loops went idle on CPU 1.
        slot.cpu.store(1 + 1, Ordering::Relaxed);
        assert_eq!(crate::transport::shm::system::proc_cpu(&region, p), Some(1));
        region.release_proc(p);
        let again = region.claim_proc().unwrap();
        assert_eq!(again, p, "the freed slot is claimed again");
        assert_eq!(
            crate::transport::shm::system::proc_cpu(&region, again),
            None
        );
    }
}
