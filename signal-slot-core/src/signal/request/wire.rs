//! How requests and answers cross processes: the request tag a call record
//! carries, and the reply record.

use super::collector::{Encoded, Solo};
use super::{Collector, Outcome, ReplyError};
use crate::error::DropReason;
use crate::signal::reply::Encoder;
use crate::signal::SignalArgs;
use crate::sync::Ordering;
use crate::transport::codec;
use crate::transport::shm::mailbox::{self, MailboxAddr};
use crate::transport::shm::ring::RingError;
use crate::transport::shm::system;
use std::time::{Duration, Instant};

/// First byte of a reply record (call records start with 1, control ones with 2).
pub(crate) const KIND_REPLY: u8 = 3;

/// Where an answer from another process goes: request `id`, receiver `index`,
/// the requesting process and the mailbox it reads replies from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestTag {
    pub(crate) id: u64,
    pub(crate) index: u32,
    pub(crate) requester: u32,
    pub(crate) reply_to: MailboxAddr,
}

impl RequestTag {
    /// Bytes on the wire.
    pub(crate) const LEN: usize = 24;

    pub(crate) fn write(&self, b: &mut [u8]) {
        b[0..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..12].copy_from_slice(&self.index.to_le_bytes());
        b[12..16].copy_from_slice(&self.requester.to_le_bytes());
        b[16..20].copy_from_slice(&self.reply_to.index.to_le_bytes());
        b[20..24].copy_from_slice(&self.reply_to.generation.to_le_bytes());
    }

    pub(crate) fn read(b: &[u8]) -> Option<Self> {
        let b = b.get(..Self::LEN)?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut id = [0; 8];
        id.copy_from_slice(&b[0..8]);
        Some(RequestTag {
            id: u64::from_le_bytes(id),
            index: u32_at(8),
            requester: u32_at(12),
            reply_to: MailboxAddr {
                index: u32_at(16),
                generation: u32_at(20),
            },
        })
    }
}

/// A reply record: `[kind=3][request id u64][receiver index u32][status u8]`,
/// then for status 0 (an answer) `[type name length u16][type name][value]`,
/// for status 1 the [`ReplyError`]; integers little-endian, value and error
/// postcard. Written straight into the requester's ring.
const REPLY_HEADER: usize = 1 + 8 + 4 + 1;
const STATUS_VALUE: u8 = 0;
/// How long an answer waits for room in a full reply mailbox before it is
/// dropped (counted by the answering loop; the requester then reports the
/// receiver missing). Short: the answering loop waits meanwhile, and a full
/// reply mailbox usually holds answers nobody waits for any more.
const REPLY_WAIT: Duration = Duration::from_millis(10);
const STATUS_ERROR: u8 = 1;

/// Sends the answer to a request from process `tag.requester` (called by the
/// loop that ran the slot), copied into the requester's ring
/// (encoded before: no user code runs under the ring's lock). Gives
/// up when the requester is gone or its mailbox stays full: the requester
/// then reports the receiver missing.
pub(crate) fn send_reply(
    tag: RequestTag,
    outcome: Result<Encoder<'_>, ReplyError>,
) -> Result<(), DropReason> {
    let Some(region) = system::region() else {
        return Err(DropReason::ReceiverGone);
    };
    let mut error = Vec::new();
    let (status, len) = match &outcome {
        Ok(e) => {
            let name = e.type_name.len().min(usize::from(u16::MAX));
            (STATUS_VALUE, REPLY_HEADER + 2 + name + e.bytes.len())
        }
        Err(e) => {
            if let Err(c) = codec::encode_into(e, &mut error) {
                log::error!("reply to request {:#x} not encodable: {c}", tag.id);
                return Err(DropReason::Encode);
            }
            (STATUS_ERROR, REPLY_HEADER + error.len())
        }
    };
    let fill = |b: &mut [u8]| {
        b[0] = KIND_REPLY;
        b[1..9].copy_from_slice(&tag.id.to_le_bytes());
        b[9..13].copy_from_slice(&tag.index.to_le_bytes());
        b[13] = status;
        match &outcome {
            Ok(e) => {
                let name = &e.type_name.as_bytes()[..e.type_name.len().min(usize::from(u16::MAX))];
                let at = REPLY_HEADER + 2 + name.len();
                // Bounded by u16::MAX above.
                b[REPLY_HEADER..REPLY_HEADER + 2]
                    .copy_from_slice(&(name.len() as u16).to_le_bytes());
                b[REPLY_HEADER + 2..at].copy_from_slice(name);
                b[at..].copy_from_slice(&e.bytes);
                true
            }
            Err(_) => {
                b[REPLY_HEADER..].copy_from_slice(&error);
                true
            }
        }
    };
    let mut end = None;
    loop {
        let live = system::proc_alive(region, tag.requester)
            && region
                .mailbox_header(tag.reply_to.index)
                .generation
                .load(Ordering::Acquire)
                == tag.reply_to.generation;
        if !live {
            return Err(DropReason::ReceiverGone);
        }
        match mailbox::send_with(region, tag.reply_to.index, system::my_proc(), len, fill) {
            Ok(()) => return Ok(()),
            Err(RingError::Full)
                if Instant::now() < *end.get_or_insert_with(|| Instant::now() + REPLY_WAIT) =>
            {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => {
                log::error!(
                    "reply to request {:#x} of process {} lost: {e:?}",
                    tag.id,
                    tag.requester
                );
                return Err(match e {
                    RingError::Full => DropReason::QueueFull,
                    RingError::TooLarge => DropReason::TooLarge,
                    RingError::Unfilled => DropReason::Encode,
                    RingError::Corrupt(_) => DropReason::ReceiverGone,
                });
            }
        }
    }
}

/// Handles a reply record (with its first byte, [`KIND_REPLY`]).
pub(crate) fn on_reply_record(rec: &[u8]) {
    on_reply_record_for(rec, None);
}

/// Handles a reply record read by the requester blocked on `own` (an answer
/// to `own` needs no look-up and no wake-up).
pub(super) fn on_reply_record_for(rec: &[u8], own: Option<&Collector>) {
    let Some((id, index, status, rest)) = parse(rec) else {
        return;
    };
    match own {
        Some(c) if c.id == id => c.complete_from(index, outcome(c.expected, status, rest), true),
        _ => others(id, index, status, rest),
    }
}

/// Handles a reply record read by the requester of `own`, which nobody else
/// completes: its answers go to `own`, others' to their requests.
pub(super) fn on_reply_record_solo(rec: &[u8], own: &Solo) {
    let Some((id, index, status, rest)) = parse(rec) else {
        return;
    };
    if id == own.id {
        own.complete(index, outcome(own.expected, status, rest));
    } else {
        others(id, index, status, rest);
    }
}

/// A reply record's request id, receiver index, status and what follows.
pub(super) fn parse(rec: &[u8]) -> Option<(u64, usize, u8, &[u8])> {
    let Some(head) = rec.get(..REPLY_HEADER) else {
        log::error!("reply record shorter than its header skipped");
        return None;
    };
    let mut id = [0; 8];
    id.copy_from_slice(&head[1..9]);
    let index = u32::from_le_bytes([head[9], head[10], head[11], head[12]]) as usize;
    Some((
        u64::from_le_bytes(id),
        index,
        head[13],
        &rec[REPLY_HEADER..],
    ))
}

/// An answer to another request than the reader's: to its collector, if
/// still in flight.
pub(super) fn others(id: u64, index: usize, status: u8, rest: &[u8]) {
    match Collector::lookup(id) {
        Some(c) => c.complete_from(index, outcome(c.expected, status, rest), false),
        // Finished meanwhile (timed out): the receiver was reported missing.
        None => super::collector::late_reply(),
    }
}

/// What a reply record's status and rest say, for a request of `expected`.
fn outcome(expected: &str, status: u8, rest: &[u8]) -> Outcome {
    match value_of(expected, status, rest, Encoded::new) {
        Ok(bytes) => Outcome::Remote(bytes),
        Err(e) => Outcome::Failed(e),
    }
}

/// The answer of a reply record for a request of `R`, decoded straight from
/// the record (no copy of its encoding kept for later).
pub(super) fn typed_answer<R: SignalArgs>(status: u8, rest: &[u8]) -> Result<R, ReplyError> {
    value_of(std::any::type_name::<R>(), status, rest, codec::decode::<R>)?
        .map_err(|e| ReplyError::Codec(e.to_string()))
}

/// A reply record's value (its encoding handed to `value`) or error.
#[inline]
fn value_of<T>(
    expected: &str,
    status: u8,
    rest: &[u8],
    value: impl FnOnce(&[u8]) -> T,
) -> Result<T, ReplyError> {
    let malformed = || ReplyError::Codec("malformed reply".into());
    if status != STATUS_VALUE {
        return Err(match codec::decode::<ReplyError>(rest) {
            Ok(e) => e,
            Err(e) => ReplyError::Codec(e.to_string()),
        });
    }
    let parsed = rest.get(..2).and_then(|l| {
        let n = usize::from(u16::from_le_bytes([l[0], l[1]]));
        Some((rest.get(2..2 + n)?, &rest[2 + n..]))
    });
    match parsed {
        // Compared as bytes: the expected name is valid UTF-8 already.
        Some((name, bytes)) if name == expected.as_bytes() => Ok(value(bytes)),
        Some((name, _)) => Err(match std::str::from_utf8(name) {
            Ok(name) => ReplyError::WrongType {
                expected: expected.to_string(),
                got: name.to_string(),
            },
            Err(_) => malformed(),
        }),
        None => Err(malformed()),
    }
}
