//! Calls to slots of objects whose loop runs in another process: the record
//! format, sending (encode once, write into the target mailbox) and receiving.
//!
//! Record: `[kind=1][flags][slot u16][mailbox generation u32][key index u32]
//! [key generation u32]` then, if flag bit 1 (a request), the request tag
//! `[request id u64][receiver index u32][requester process u32][reply mailbox
//! index u32][reply mailbox generation u32]`, then, if flag bit 0, `[meta length
//! u32][meta]`, then the argument tuple; integers little-endian, meta and
//! arguments postcard.

use super::LoopShared;
use crate::error::DropReason;
use crate::object::ObjectKey;
use crate::signal::meta::{MetaWire, MetaWireRef};
use crate::signal::request::RequestTag;
use crate::signal::{Meta, Overflow, SignalArgs, SlotTarget};
use crate::transport::codec;
use crate::transport::shm::mailbox::{self, MailboxAddr};
use crate::transport::shm::region::{Region, PROC_ALIVE};
use crate::transport::shm::ring::RingError;
use crate::transport::shm::system;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KIND_CALL: u8 = 1;
const HEADER: usize = 16;
const FLAG_META: u8 = 1;
const FLAG_REQUEST: u8 = 2;

/// Sends one call to `t`'s loop in process `owner` through `addr`.
///
/// The arguments are encoded into a private buffer first, then copied into
/// the ring under the mailbox's producer lock: the user's `Serialize` runs
/// with no lock held, so one that itself sends (to this mailbox or another
/// one, whose lock another thread may hold while it waits for ours) cannot
/// deadlock. Encoding straight into the ring saved a copy of a few dozen
/// bytes but ran user code under a spin lock.
pub(super) fn post<A: SignalArgs>(
    lp: &LoopShared,
    t: &SlotTarget<A>,
    args: &A,
    meta: Option<&Meta>,
    request: Option<&RequestTag>,
    addr: MailboxAddr,
    owner: u32,
) -> Result<(), DropReason> {
    // One encoding pass, with no lock held (see `codec::with_encoded`).
    let posted = codec::with_encoded(args, |encoded| {
        post_with(
            lp,
            t,
            meta.map(Meta::to_wire),
            request,
            addr,
            owner,
            encoded.len(),
            |buf| {
                buf.copy_from_slice(encoded);
                true
            },
        )
    });
    posted.unwrap_or_else(|e| not_encodable(t, &e))
}

/// [`post`] of a plain call (no metadata, not a request): the common emit to
/// another process, with nothing decided per call that the connection fixes.
#[inline(always)]
pub(super) fn post_plain<A: SignalArgs>(
    lp: &LoopShared,
    t: &SlotTarget<A>,
    args: &A,
    addr: MailboxAddr,
    owner: u32,
) -> Result<(), DropReason> {
    post_lean::<A, false>(lp, t, args, None, addr, owner)
}

/// [`post`] of a request without metadata.
pub(super) fn post_request<A: SignalArgs>(
    lp: &LoopShared,
    t: &SlotTarget<A>,
    args: &A,
    request: &RequestTag,
    addr: MailboxAddr,
    owner: u32,
) -> Result<(), DropReason> {
    post_lean::<A, true>(lp, t, args, Some(request), addr, owner)
}

/// A call record without metadata; `REQUEST` (with its tag in `request`)
/// makes the two kinds separate code, so a plain emit has no request branch.
#[inline(always)]
fn post_lean<A: SignalArgs, const REQUEST: bool>(
    lp: &LoopShared,
    t: &SlotTarget<A>,
    args: &A,
    request: Option<&RequestTag>,
    addr: MailboxAddr,
    owner: u32,
) -> Result<(), DropReason> {
    let request = request.filter(|_| REQUEST);
    let (at, flags) = match request {
        Some(_) => (HEADER + RequestTag::LEN, FLAG_REQUEST),
        None => (HEADER, 0),
    };
    let header = header_bytes(t, addr, flags);
    let posted = codec::with_encoded(args, |encoded| {
        // Checked after the encoding (user code, of any length), right
        // before the write: a loop that finishes drains its mailbox again a
        // grace after retiring it, which a sender checked before a long
        // encoding could miss (review helper-45), as `post_with` does.
        let region = live_mailbox(addr, owner)?;
        send_call(
            lp,
            t,
            region,
            addr,
            owner,
            at + encoded.len(),
            #[inline(always)]
            |buf| {
                let (head, rest) = buf.split_at_mut(at);
                head[..HEADER].copy_from_slice(&header);
                if let (true, Some(tag)) = (REQUEST, request) {
                    tag.write(&mut head[HEADER..]);
                }
                copy_short(rest, encoded);
                true
            },
        )
    });
    posted.unwrap_or_else(|e| not_encodable(t, &e))
}

/// Where a connection's plain calls to a slot of another process's loop go,
/// resolved when the emitting field's connection cache is refreshed (see
/// `signal/fast.rs`): the record's fixed header, the mailbox's producer
/// parts for this process, and the owner's liveness word. An emit through
/// it skips what [`post_plain`] derives again per call (the mailbox's
/// `OnceLock`, the region's, the header, the ring's address and the lock's
/// index). Valid while this process and the loop's owner are the ones it was
/// resolved for ([`Route::serves`]): a forked child or a loop whose handover
/// went back takes the general path. The mailbox address a loop has never
/// changes; its generation and the owner's liveness are loaded on every send.
pub(crate) struct Route {
    producer: mailbox::Producer<'static>,
    header: [u8; HEADER],
    generation: u32,
    owner: u32,
    /// The owner's process slot state (`region::PROC_ALIVE` while it lives).
    owner_state: &'static crate::sync::AtomicU32,
}

impl Route {
    /// The route of plain calls to `t`, if its loop runs in another process
    /// and has a mailbox (else the plain post decides per call).
    pub(crate) fn of<A: SignalArgs>(t: &SlotTarget<A>) -> Option<Route> {
        let lp = &t.recv.lp;
        let me = system::my_proc();
        let owner = lp.owner();
        if owner == me {
            return None;
        }
        let addr = *lp.mailbox.get()?;
        let region = system::region()?;
        Some(Route {
            producer: mailbox::Producer::new(region, addr.index, me)?,
            header: header_bytes(t, addr, 0),
            generation: addr.generation,
            owner,
            owner_state: &region.proc(owner)?.state,
        })
    }

    /// True if this route is still the one [`Route::of`] would resolve for
    /// `lp` (the loop of the target it was resolved for) in this process.
    #[inline(always)]
    pub(crate) fn serves(&self, lp: &LoopShared) -> bool {
        system::my_proc() == self.producer.me() && lp.owner() == self.owner
    }

    /// The mailbox address the route writes to.
    #[inline(always)]
    fn addr(&self) -> MailboxAddr {
        MailboxAddr {
            index: self.producer.to(),
            generation: self.generation,
        }
    }
}

/// [`post_plain`] through `route` (resolved for `t`, and [`Route::serves`]
/// checked by the caller): the same record, the same checks in the same
/// order (the mailbox's generation and the owner's liveness after the
/// encoding, right before the write), and a failed first try goes on in
/// [`send_call_again`] as there.
#[inline(always)]
pub(super) fn post_routed<A: SignalArgs>(
    lp: &LoopShared,
    t: &SlotTarget<A>,
    route: &Route,
    args: &A,
) -> Result<(), DropReason> {
    let posted = codec::with_encoded(args, |encoded| {
        let live = route.producer.header().generation.load(Ordering::Acquire) == route.generation
            && route.owner_state.load(Ordering::Acquire) == PROC_ALIVE;
        if !live {
            return Err(gone(route.producer.region(), route.owner));
        }
        send_routed(
            lp,
            t,
            route,
            HEADER + encoded.len(),
            #[inline(always)]
            |buf| {
                let (head, rest) = buf.split_at_mut(HEADER);
                head.copy_from_slice(&route.header);
                copy_short(rest, encoded);
                true
            },
        )
    });
    posted.unwrap_or_else(|e| not_encodable(t, &e))
}

/// [`send_call`] through `route`.
#[inline(always)]
fn send_routed<A: SignalArgs>(
    lp: &LoopShared,
    t: &SlotTarget<A>,
    route: &Route,
    len: usize,
    fill: impl Fn(&mut [u8]) -> bool,
) -> Result<(), DropReason> {
    // As in `send_call`: a closure of its own, so the fill is inlined.
    match route.producer.send(
        len,
        #[inline(always)]
        |buf| fill(buf),
    ) {
        Ok(()) => Ok(()),
        Err(e) => send_call_again(
            lp,
            t,
            route.producer.region(),
            route.addr(),
            route.owner,
            len,
            &fill,
            e,
        ),
    }
}

/// Logs arguments that could not be encoded (a user's `Serialize` failed).
#[cold]
fn not_encodable<A: SignalArgs>(
    t: &SlotTarget<A>,
    e: &codec::CodecError,
) -> Result<(), DropReason> {
    log::error!(
        "slot {}::{}: arguments not encodable: {e}",
        t.recv.id,
        t.name
    );
    Err(DropReason::Encode)
}

/// `dst.copy_from_slice(src)` for the few bytes of a typical argument tuple
/// without a call into `memcpy` (two overlapping loads and stores; ~18
/// instructions less per emit, measured). Equal lengths (checked by the slice
/// operations, which panic otherwise, like `copy_from_slice`).
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    macro_rules! two {
        ($w:literal) => {{
            let (a, b) = (n - $w, n);
            let first: [u8; $w] = src[..$w].try_into().unwrap_or([0; $w]);
            let last: [u8; $w] = src[a..b].try_into().unwrap_or([0; $w]);
            dst[..$w].copy_from_slice(&first);
            dst[a..b].copy_from_slice(&last);
        }};
    }
    match n {
        0 => {}
        1 => dst[0] = src[0],
        2..=3 => two!(2),
        4..=7 => two!(4),
        8..=16 => two!(8),
        _ => dst.copy_from_slice(src),
    }
}

/// The region, if mailbox `addr` of process `owner` is still read by the loop
/// the caller means; else nothing would ever read what is written, and why:
/// `LoopStopped` if the loop finished (its mailbox released or given to
/// another loop) in a live process, as a loop of this process says,
/// `ReceiverGone` if the process died.
#[inline]
fn live_mailbox(addr: MailboxAddr, owner: u32) -> Result<&'static Region, DropReason> {
    let Some(region) = system::region() else {
        return Err(DropReason::ReceiverGone);
    };
    let generation = region
        .mailbox_header(addr.index)
        .generation
        .load(Ordering::Acquire);
    if system::proc_alive(region, owner) && generation == addr.generation {
        Ok(region)
    } else {
        Err(gone(region, owner))
    }
}

#[cold]
#[inline(never)]
fn gone(region: &Region, owner: u32) -> DropReason {
    if system::proc_alive(region, owner) {
        DropReason::LoopStopped
    } else {
        DropReason::ReceiverGone
    }
}

/// Like [`post`], with the argument tuple already encoded (a retained value):
/// copied as it is; the metadata comes in its wire form.
pub(super) fn post_encoded<A: SignalArgs>(
    lp: &LoopShared,
    t: &SlotTarget<A>,
    args: &[u8],
    meta: Option<MetaWireRef<'_>>,
    addr: MailboxAddr,
    owner: u32,
) -> Result<(), DropReason> {
    post_with(lp, t, meta, None, addr, owner, args.len(), |buf| {
        buf.copy_from_slice(args);
        true
    })
}

/// Writes a call record whose arguments `write_args` fills (exactly
/// `args_len` bytes; false if it could not).
#[allow(clippy::too_many_arguments)] // one record's parts, all needed
fn post_with<A: SignalArgs>(
    lp: &LoopShared,
    t: &SlotTarget<A>,
    meta: Option<MetaWireRef<'_>>,
    request: Option<&RequestTag>,
    addr: MailboxAddr,
    owner: u32,
    args_len: usize,
    write_args: impl Fn(&mut [u8]) -> bool,
) -> Result<(), DropReason> {
    let region = live_mailbox(addr, owner)?;
    let (head, request_flag) = match request {
        Some(_) => (HEADER + RequestTag::LEN, FLAG_REQUEST),
        None => (HEADER, 0),
    };
    let write_head = |buf: &mut [u8], flags: u8| {
        write_header(buf, t, addr, flags | request_flag);
        if let Some(tag) = request {
            tag.write(&mut buf[HEADER..head]);
        }
    };
    let Some(wire) = meta else {
        return send_call(lp, t, region, addr, owner, head + args_len, |buf| {
            write_head(buf, 0);
            write_args(&mut buf[head..])
        });
    };
    codec::with_encoded(&wire, |m| {
        let len = head + 4 + m.len() + args_len;
        send_call(lp, t, region, addr, owner, len, |buf| {
            write_head(buf, FLAG_META);
            // Bounded by the record size, itself below u32::MAX.
            buf[head..head + 4].copy_from_slice(&(m.len() as u32).to_le_bytes());
            let at = head + 4 + m.len();
            buf[head + 4..at].copy_from_slice(m);
            write_args(&mut buf[at..])
        })
    })
    .unwrap_or(Err(DropReason::Encode))
}

/// The fixed part of a call record.
#[inline]
fn write_header<A: SignalArgs>(buf: &mut [u8], t: &SlotTarget<A>, addr: MailboxAddr, flags: u8) {
    buf[..HEADER].copy_from_slice(&header_bytes(t, addr, flags));
}

/// The fixed part of a call record, built in registers (two words, not
/// sixteen byte stores into the ring).
#[inline(always)]
fn header_bytes<A: SignalArgs>(t: &SlotTarget<A>, addr: MailboxAddr, flags: u8) -> [u8; HEADER] {
    let lo = u64::from(KIND_CALL)
        | u64::from(flags) << 8
        | u64::from(t.index) << 16
        | u64::from(addr.generation) << 32;
    let hi = u64::from(t.key.index) | u64::from(t.key.generation) << 32;
    let mut h = [0; HEADER];
    h[..8].copy_from_slice(&lo.to_le_bytes());
    h[8..].copy_from_slice(&hi.to_le_bytes());
    h
}

/// Writes one record of `len` bytes (`fill`: false if it could not) into the
/// mailbox, waiting for room as the connection's overflow policy says.
#[inline]
fn send_call<A: SignalArgs>(
    lp: &LoopShared,
    t: &SlotTarget<A>,
    region: &Region,
    addr: MailboxAddr,
    owner: u32,
    len: usize,
    fill: impl Fn(&mut [u8]) -> bool,
) -> Result<(), DropReason> {
    // A closure of its own, inlined, so the record's fill is inlined into
    // the ring write (through `&fill` it stayed a call: ~10 instructions).
    let first = mailbox::send_with(
        region,
        addr.index,
        system::my_proc(),
        len,
        #[inline(always)]
        |buf| fill(buf),
    );
    match first {
        Ok(()) => Ok(()),
        Err(e) => send_call_again(lp, t, region, addr, owner, len, &fill, e),
    }
}

/// [`send_call`] after a first attempt failed with `first`: waits for room as
/// the overflow policy says, or gives up (out of line: the common send
/// succeeds at once).
#[allow(clippy::too_many_arguments)] // send_call's, and its first result
#[inline(never)]
fn send_call_again<A: SignalArgs>(
    lp: &LoopShared,
    t: &SlotTarget<A>,
    region: &Region,
    addr: MailboxAddr,
    owner: u32,
    len: usize,
    fill: &dyn Fn(&mut [u8]) -> bool,
    first: RingError,
) -> Result<(), DropReason> {
    let mut deadline = None;
    let mut pause = Duration::from_micros(20);
    let mut result = Err(first);
    loop {
        match result {
            Ok(()) => return Ok(()),
            Err(RingError::TooLarge) => return Err(DropReason::TooLarge),
            Err(RingError::Unfilled) => {
                // (A debug build's mailbox logs a send nested in another
                // record's fill, too.)
                log::error!(
                    "slot {}::{}: the record could not be written",
                    t.recv.id,
                    t.name
                );
                return Err(DropReason::Encode);
            }
            Err(RingError::Corrupt(why)) => {
                log::error!("mailbox of loop {:?} is corrupt: {why}", lp.name);
                return Err(DropReason::ReceiverGone);
            }
            Err(RingError::Full) => {
                // A dead consumer never makes room: stop waiting for it.
                if !system::proc_alive(region, owner) {
                    return Err(DropReason::ReceiverGone);
                }
                let Overflow::Block(wait) = t.overflow else {
                    return Err(DropReason::QueueFull);
                };
                let end = *deadline.get_or_insert_with(|| {
                    if !wait.is_zero() {
                        lp.counters.waits_for_ring();
                    }
                    crate::deadline::in_(wait)
                });
                let now = Instant::now();
                if now >= end {
                    return Err(DropReason::QueueFull);
                }
                // The consumer does not signal room; poll with a growing pause.
                std::thread::sleep(pause.min(end - now));
                pause = (pause * 2).min(Duration::from_millis(2));
                // Its loop may have finished meanwhile, and its mailbox been
                // released (drained, so it has room): a record written there
                // now would be read by no one, or skipped as stale by the
                // mailbox's next loop, and this send would say it got in
                // (review helper-41).
                live_mailbox(addr, owner)?;
            }
        }
        result = mailbox::send_with(region, addr.index, system::my_proc(), len, fill);
    }
}

/// Whether `rec` is a request's record (its flags say so; garbage may say
/// anything, which only matters to the loop's gathering decision).
#[inline]
pub(super) fn is_request(rec: &[u8]) -> bool {
    rec.get(1).is_some_and(|flags| flags & FLAG_REQUEST != 0)
}

/// A call record, checked and split.
pub(super) struct Call<'a> {
    pub(super) key: ObjectKey,
    pub(super) slot: u16,
    pub(super) meta: Option<Arc<Meta>>,
    pub(super) args: &'a [u8],
    /// Set for a request: where the answer goes.
    pub(super) request: Option<RequestTag>,
}

/// Why a record was not dispatched.
pub(super) enum Unusable {
    /// Meant for a previous loop of this mailbox.
    Stale,
    /// Malformed.
    Garbage(&'static str),
}

/// Parses a record received in mailbox `addr`.
#[inline]
pub(super) fn parse(rec: &[u8], addr: MailboxAddr) -> Result<Call<'_>, Unusable> {
    let header = rec
        .get(..HEADER)
        .ok_or(Unusable::Garbage("record shorter than its header"))?;
    if header[0] != KIND_CALL {
        return Err(Unusable::Garbage("unknown record kind"));
    }
    let u32_at =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if u32_at(4) != addr.generation {
        return Err(Unusable::Stale);
    }
    let key = ObjectKey {
        index: u32_at(8),
        generation: u32_at(12),
    };
    let slot = u16::from_le_bytes([header[2], header[3]]);
    let mut rest = &rec[HEADER..];
    let request = if header[1] & FLAG_REQUEST != 0 {
        let tag = RequestTag::read(rest).ok_or(Unusable::Garbage("truncated request tag"))?;
        rest = &rest[RequestTag::LEN..];
        Some(tag)
    } else {
        None
    };
    let (meta, args) = if header[1] & FLAG_META != 0 {
        let len_bytes = rest
            .get(..4)
            .ok_or(Unusable::Garbage("truncated metadata length"))?;
        let mlen =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let body = rest
            .get(4..4usize.saturating_add(mlen))
            .ok_or(Unusable::Garbage("metadata beyond the record"))?;
        let wire: MetaWire = codec::decode(body).map_err(|_| Unusable::Garbage("bad metadata"))?;
        let mut meta = Meta::from_wire(wire);
        if request.is_some() {
            meta = meta.into_request();
        }
        (Some(Arc::new(meta)), &rest[4 + mlen..])
    } else {
        (None, rest)
    };
    Ok(Call {
        key,
        slot,
        meta,
        args,
        request,
    })
}

#[cfg(test)]
mod tests {
    use super::copy_short;

    #[test]
    fn copy_short_copies_every_length() {
        let src: Vec<u8> = (1..=40).collect();
        for n in 0..=40 {
            let mut dst = vec![0u8; n];
            copy_short(&mut dst, &src[..n]);
            assert_eq!(dst, &src[..n], "length {n}");
        }
    }
}
