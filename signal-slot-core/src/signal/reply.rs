//! The answering side of a request: what a slot returns, captured as a
//! type-erased value that can be handed to a requester of this process or
//! encoded for one of another process.
//!
//! `#[slots]` generates, next to each slot's thunk, a *reply thunk* that runs
//! the slot and wraps its return value with [`ReplyProbe`]: a value whose type
//! is `Serialize + Send + 'static` becomes an answer; any other (an `Rc`, a
//! borrowed value, `impl Trait`) becomes [`ReplyValue::unanswerable`], which the
//! requester sees as [`ReplyError::NotAnswerable`](crate::signal::ReplyError).

use crate::signal::{Meta, ReplyError, SignalArgs};
use crate::transport::codec::{self, CodecError};
use serde::Serialize;
use std::any::Any;
use std::borrow::Cow;
use std::cell::Cell;

/// Runs a slot for a request and returns its answer; `None` if the receiver is
/// not of the slot's type (never for a well-formed table).
#[doc(hidden)]
pub type ReplyFn<A> = fn(&mut dyn Any, A, Option<&Meta>) -> Option<ReplyValue>;

/// Decodes a slot's argument tuple from bytes, runs the slot and returns its
/// answer (see [`ReplyFn`]).
#[doc(hidden)]
pub type DecodeReplyFn =
    fn(&mut dyn Any, &[u8], Option<&Meta>) -> Result<Option<ReplyValue>, CodecError>;

/// What a slot returned, type-erased.
#[doc(hidden)]
pub struct ReplyValue(Inner);

enum Inner {
    /// For a requester in this process (or made outside a [`decode_reply`]).
    Value {
        value: Box<dyn Any + Send>,
        type_name: &'static str,
        encode: fn(&dyn Any, &mut Vec<u8>) -> Result<(), CodecError>,
    },
    /// For a requester in another process: the value encoded already, in
    /// place (no allocation) when it takes at most [`INLINE`] bytes.
    Inline {
        type_name: &'static str,
        len: u8,
        bytes: [u8; INLINE],
    },
    /// Encoded, longer than [`INLINE`] bytes.
    Encoded {
        type_name: &'static str,
        bytes: Vec<u8>,
    },
    /// The value could not be encoded (the codec's message).
    Unencodable {
        type_name: &'static str,
        error: String,
    },
    /// The slot's return type cannot travel (its name).
    Unanswerable(&'static str),
}

/// Encodings of at most this many bytes are kept inside the [`ReplyValue`].
const INLINE: usize = 48;

thread_local! {
    /// True while a reply thunk runs for a requester in another process (set
    /// by [`decode_reply`]): the reply is then encoded at once, instead of
    /// boxed and encoded twice (size, then bytes) later.
    static FOR_ANOTHER_PROCESS: Cell<bool> = const { Cell::new(false) };
}

/// While alive, replies made on this thread are for a requester in another
/// process (`true`) or in this one; the previous setting is restored on drop
/// (a slot can make requests of its own, and can panic).
pub(crate) struct ReplyMode(bool);

impl ReplyMode {
    /// Replies for a requester in this process (as values).
    pub(crate) fn this_process() -> Self {
        ReplyMode(FOR_ANOTHER_PROCESS.with(|m| m.replace(false)))
    }

    fn another_process() -> Self {
        ReplyMode(FOR_ANOTHER_PROCESS.with(|m| m.replace(true)))
    }
}

impl Drop for ReplyMode {
    fn drop(&mut self) {
        FOR_ANOTHER_PROCESS.with(|m| m.set(self.0));
    }
}

impl ReplyValue {
    /// A value that can answer.
    pub fn new<T: Serialize + Send + 'static>(value: T) -> Self {
        let type_name = std::any::type_name::<T>();
        if !FOR_ANOTHER_PROCESS.with(Cell::get) {
            return ReplyValue(Inner::Value {
                value: Box::new(value),
                type_name,
                encode: encode_as::<T>,
            });
        }
        // One encoding pass (the user's `Serialize` runs once), kept in place
        // when short.
        let inner = codec::with_encoded(&value, |buf| {
            if buf.len() <= INLINE {
                let mut bytes = [0; INLINE];
                bytes[..buf.len()].copy_from_slice(buf);
                Inner::Inline {
                    type_name,
                    // At most INLINE (< 256).
                    len: buf.len() as u8,
                    bytes,
                }
            } else {
                Inner::Encoded {
                    type_name,
                    bytes: buf.to_vec(),
                }
            }
        });
        ReplyValue(inner.unwrap_or_else(|e| Inner::Unencodable {
            type_name,
            error: e.to_string(),
        }))
    }

    /// The answer of a slot whose return type cannot be sent (`type_name`).
    pub fn unanswerable(type_name: &'static str) -> Self {
        ReplyValue(Inner::Unanswerable(type_name))
    }

    /// The value, or the name of the type that cannot answer.
    pub(crate) fn into_parts(self) -> Result<(Box<dyn Any + Send>, &'static str), &'static str> {
        match self.0 {
            Inner::Value {
                value, type_name, ..
            } => Ok((value, type_name)),
            Inner::Unanswerable(t) => Err(t),
            // Made for another process: not expected here (the local request
            // path sets `ReplyMode::this_process`), reported as not answerable.
            Inner::Inline { type_name, .. }
            | Inner::Encoded { type_name, .. }
            | Inner::Unencodable { type_name, .. } => Err(type_name),
        }
    }

    /// For a requester in another process: the type name and the encoded
    /// value. A value made for this process (an async slot's answer, finished
    /// outside [`decode_reply`]) is encoded here, before any lock is taken.
    pub(crate) fn encoder(&self) -> Result<Encoder<'_>, ReplyError> {
        let codec_error = |type_name: &str, e: &dyn std::fmt::Display| {
            ReplyError::Codec(format!("reply of type {type_name}: {e}"))
        };
        match &self.0 {
            Inner::Value {
                value,
                type_name,
                encode,
            } => {
                let mut bytes = Vec::new();
                encode(&**value, &mut bytes).map_err(|e| codec_error(type_name, &e))?;
                Ok(Encoder {
                    type_name,
                    bytes: Cow::Owned(bytes),
                })
            }
            Inner::Inline {
                type_name,
                len,
                bytes,
            } => Ok(Encoder {
                type_name,
                bytes: Cow::Borrowed(&bytes[..usize::from(*len)]),
            }),
            Inner::Encoded { type_name, bytes } => Ok(Encoder {
                type_name,
                bytes: Cow::Borrowed(bytes),
            }),
            Inner::Unencodable { type_name, error } => Err(codec_error(type_name, error)),
            Inner::Unanswerable(t) => Err(ReplyError::NotAnswerable((*t).to_string())),
        }
    }
}

/// A reply value ready to be written into a record: encoded already, so no
/// user code runs while the record is written.
pub(crate) struct Encoder<'a> {
    pub(crate) type_name: &'static str,
    pub(crate) bytes: Cow<'a, [u8]>,
}

/// Appends the encoding of a `T` held as `dyn Any`.
fn encode_as<T: Serialize + 'static>(v: &dyn Any, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    match v.downcast_ref::<T>() {
        Some(v) => codec::encode_into(v, buf),
        // `ReplyValue::new` pairs the value with this function: unreachable.
        None => Ok(()),
    }
}

/// Wraps a slot's return value so the generated code can ask, by autoref
/// specialization, whether its type can answer a request.
#[doc(hidden)]
pub struct ReplyProbe<T>(Cell<Option<T>>);

impl<T> ReplyProbe<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        ReplyProbe(Cell::new(Some(value)))
    }
}

/// Chosen when the value's type can answer.
#[doc(hidden)]
pub trait ViaReply {
    /// The answer.
    fn __reply(&self) -> ReplyValue;
}

impl<T: Serialize + Send + 'static> ViaReply for &ReplyProbe<T> {
    fn __reply(&self) -> ReplyValue {
        match self.0.take() {
            Some(v) => ReplyValue::new(v),
            None => ReplyValue::unanswerable(std::any::type_name::<T>()),
        }
    }
}

/// Chosen otherwise: the slot ran, its value is dropped, the request is told.
#[doc(hidden)]
pub trait ViaNoReply {
    /// An unanswerable reply.
    fn __reply(&self) -> ReplyValue;
}

impl<T> ViaNoReply for ReplyProbe<T> {
    fn __reply(&self) -> ReplyValue {
        drop(self.0.take());
        ReplyValue::unanswerable(std::any::type_name::<T>())
    }
}

/// Decodes `A` from `bytes`, then runs the slot's reply thunk.
#[doc(hidden)]
pub fn decode_reply<A: SignalArgs>(
    obj: &mut dyn Any,
    bytes: &[u8],
    meta: Option<&Meta>,
    call: ReplyFn<A>,
) -> Result<Option<ReplyValue>, CodecError> {
    let args: A = codec::decode(bytes)?;
    let _mode = ReplyMode::another_process();
    Ok(call(obj, args, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_borrow)] // the probe needs the double reference
    fn serializable_values_answer_and_others_do_not() {
        #[allow(unused_imports)]
        use super::{ViaNoReply as _, ViaReply as _};
        let r = (&&ReplyProbe::new(42u64)).__reply();
        let Ok((v, name)) = r.into_parts() else {
            panic!("u64 answers")
        };
        assert_eq!(v.downcast_ref::<u64>(), Some(&42));
        assert_eq!(name, "u64");
        let r = (&&ReplyProbe::new(std::rc::Rc::new(1u8))).__reply();
        assert!(r.into_parts().is_err());
        let reply = (&&ReplyProbe::new(String::from("x"))).__reply();
        let Ok(e) = reply.encoder() else {
            panic!("a String encodes")
        };
        assert_eq!(e.type_name, std::any::type_name::<String>());
        assert_eq!(codec::decode::<String>(&e.bytes).ok().as_deref(), Some("x"));
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the probe needs the double reference
    fn replies_for_another_process_are_encoded_once_in_place_or_not() {
        #[allow(unused_imports)]
        use super::{ViaNoReply as _, ViaReply as _};
        let encoded = |r: &ReplyValue| {
            let Ok(e) = r.encoder() else {
                panic!("encodes")
            };
            e.bytes.to_vec()
        };
        let long = "y".repeat(INLINE * 2);
        let (short, big, local) = {
            let _mode = ReplyMode::another_process();
            let short = (&&ReplyProbe::new(7u64)).__reply();
            let big = (&&ReplyProbe::new(long.clone())).__reply();
            // A request the slot makes meanwhile is answered by value.
            let local = {
                let _inner = ReplyMode::this_process();
                (&&ReplyProbe::new(8u64)).__reply()
            };
            (short, big, local)
        };
        assert!(matches!(short.0, Inner::Inline { .. }));
        assert_eq!(codec::decode::<u64>(&encoded(&short)).ok(), Some(7));
        assert!(matches!(big.0, Inner::Encoded { .. }));
        assert_eq!(codec::decode::<String>(&encoded(&big)).ok(), Some(long));
        assert!(matches!(local.0, Inner::Value { .. }));
        assert_eq!(codec::decode::<u64>(&encoded(&local)).ok(), Some(8));
        // The setting was restored: replies are values again.
        let after = (&&ReplyProbe::new(9u64)).__reply();
        let Ok((v, _)) = after.into_parts() else {
            panic!("a value")
        };
        assert_eq!(v.downcast_ref::<u64>(), Some(&9));
        assert_eq!(short.into_parts().err(), Some("u64"));
    }
}
