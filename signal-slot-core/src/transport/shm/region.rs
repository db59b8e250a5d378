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
        // SAFETY: the ring (header and data) lies inside the mapping, 128-byte
        // aligned (see `ring_base`); the mapping lives for the whole process.
        unsafe { super::ring::RingView::new(self.ring_base(m, p), self.ring_bytes) }
    }

    /// Where the ring of producer `p` in mailbox `m` starts (its header, then
    /// `ring_bytes` of data).
    #[inline]
    fn ring_base(&self, m: u32, p: u32) -> *mut u8 {
        let m = m.min(MAX_MAILBOXES as u32 - 1);
        let p = p.min(MAX_PROCS as u32 - 1) as usize;
        let off = MAILBOX_HEADER + p * (super::ring::RING_HEADER + self.ring_bytes);
        // SAFETY: `m` and `p` are clamped to the layout, so the ring (header and
        // data) lies inside the mapping, 128-byte aligned (all strides are
        // multiples of 128).
        unsafe { self.mailbox_base(m).add(off) }
    }
}

/// The most of one ring [`Region::map_resident`] maps in one call: bounds
/// its one-time cost (~80 us a MiB of resident pages on the VMs measured).
const MAP_RESIDENT_MAX: usize = 4 << 20;

impl Region {
    /// Maps into this process's page tables, writable, the pages of the ring
    /// that producer `p` writes into mailbox `m` which some process wrote
    /// before (at most its first [`MAP_RESIDENT_MAX`] bytes). Page tables are
    /// per process, and a fork does not copy them for a shared mapping: a new
    /// process otherwise takes one page fault (1-3 us on the VMs measured) at
    /// each page of a ring on its first pass over it, ~1% of a cross-process
    /// ping-pong's round trips in a new child (the tail from p98 on). Mapped
    /// in one call they cost ~0.3 us a page. Pages never written stay
    /// unallocated (nothing is committed here) and fault in as the ring
    /// reaches them. Best effort: an error (a kernel before 5.14 has no
    /// `MADV_POPULATE_WRITE`) leaves every page to fault in as before.
    /// Cold: once per ring and process (a producer's first record into it,
    /// `mailbox::send_with`; a consumer's first read of its mailbox).
    #[cold]
    #[inline(never)]
    pub(crate) fn map_resident(&self, m: u32, p: u32) {
        let start = self.ring_base(m, p) as usize;
        let len = (super::ring::RING_HEADER + self.ring_bytes).min(MAP_RESIDENT_MAX);
        // The ring's whole pages (it is 128-byte aligned, not page aligned:
        // the pages it shares with its neighbours are mapped too, harmless).
        let page = page_size();
        let first = start & !(page - 1);
        let end = (start + len).next_multiple_of(page);
        // Whole pages of the mapping only: with 16 or 64 KiB pages its length
        // is no multiple of a page (mincore would write a byte more than
        // `resident` holds, review helper-60), and its last part page is
        // beyond the memfd's end.
        let map_end = (self.base.as_ptr() as usize + self.len) & !(page - 1);
        let end = end.min(map_end);
        if end <= first {
            return;
        }
        let pages = (end - first) / page;
        let mut resident = vec![0u8; pages];
        // SAFETY: `[first, end)` lies inside our mapping (page aligned: the
        // mapping starts on a page; `end` clamped to its end); `resident` has
        // one byte per page of it, as mincore writes.
        let r = unsafe {
            libc::mincore(
                first as *mut libc::c_void,
                end - first,
                resident.as_mut_ptr().cast(),
            )
        };
        if r != 0 {
            return;
        }
        let mut i = 0;
        while i < pages {
            if resident[i] & 1 == 0 {
                i += 1;
                continue;
            }
            let run = resident[i..].iter().take_while(|b| *b & 1 != 0).count();
            // SAFETY: a page-aligned range of resident pages inside our
            // mapping; MADV_POPULATE_WRITE only faults them in (their bytes
            // stay as they are), so concurrent readers and writers of the
            // ring see nothing of it.
            let r = unsafe {
                libc::madvise(
                    (first + i * page) as *mut libc::c_void,
                    run * page,
                    libc::MADV_POPULATE_WRITE,
                )
            };
            if r != 0 {
                // An old kernel, or memory tight: fault in as before.
                return;
            }
            i += run;
        }
    }
}

/// The page size (4 KiB if the OS does not say).
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
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

    /// Minor page faults taken by this thread so far.
    fn faults() -> i64 {
        // SAFETY: getrusage writes the struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) }, 0);
        ru.ru_minflt
    }

    /// Writes a zero byte (what the rings below hold) into each page of `[p,
    /// p + len)` (page aligned). Writes: a read fault maps up to 16 pages
    /// around it ("fault-around"), a write fault one.
    fn touch(p: *mut u8, len: usize) {
        for off in (0..len).step_by(page_size()) {
            // SAFETY: callers pass a range inside a live mapping.
            unsafe { std::ptr::write_volatile(p.add(off), 0) };
        }
    }

    /// Which pages of `[p, p + len)` (page aligned) are resident.
    fn resident(p: *mut u8, len: usize) -> Vec<bool> {
        let mut v = vec![0u8; len.div_ceil(page_size())];
        // SAFETY: a page-aligned range inside a live mapping, one byte a page.
        let r = unsafe { libc::mincore(p as *mut libc::c_void, len, v.as_mut_ptr()) };
        assert_eq!(r, 0);
        v.iter().map(|b| b & 1 != 0).collect()
    }

    #[test]
    fn map_resident_maps_written_pages_and_allocates_none() {
        let region = Region::create(1 << 16).unwrap();
        let page = page_size();
        // Whole pages inside ring (1, 2)'s data and inside ring (1, 3)'s.
        let inner = |p: u32| {
            let start = (region.ring_base(1, p) as usize + super::super::ring::RING_HEADER)
                .next_multiple_of(page);
            (start as *mut u8, (1 << 16) - page)
        };
        let (written, len) = inner(2);
        touch(written, len);
        let drop_tables = || {
            // SAFETY: a page-aligned range of our shared mapping: MADV_DONTNEED
            // drops this process's page table entries only (shared memory keeps
            // its pages and bytes).
            assert_eq!(
                unsafe { libc::madvise(written.cast(), len, libc::MADV_DONTNEED) },
                0
            );
        };
        drop_tables();
        // SAFETY: a page of our mapping; a populate changes no byte.
        let supported = unsafe { libc::madvise(written.cast(), page, libc::MADV_POPULATE_WRITE) };
        if supported != 0 {
            eprintln!("no MADV_POPULATE_WRITE here (kernel before 5.14): nothing to test");
            return;
        }
        drop_tables();
        assert!(
            resident(written, len).iter().all(|&r| r),
            "written pages stay"
        );
        let before = faults();
        touch(written, len);
        let lazily = faults() - before;
        if lazily < (len / page) as i64 / 2 {
            // Shared memory in huge pages or large folios here: a fault maps
            // many pages, and the faults this counts say nothing.
            eprintln!(
                "{lazily} faults for {} pages: nothing to test here",
                len / page
            );
            return;
        }
        drop_tables();
        region.map_resident(1, 2);
        let before = faults();
        touch(written, len);
        let after_mapping = faults() - before;
        // (A NUMA-balancing hint fault may come on top.)
        assert!(
            after_mapping <= 2,
            "{after_mapping} faults after map_resident"
        );
        // A ring never written: its pages stay unallocated.
        let (untouched, len3) = inner(3);
        region.map_resident(1, 3);
        assert!(resident(untouched, len3).iter().all(|&r| !r));
    }

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
