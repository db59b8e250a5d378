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
    Value {
        value: Box<dyn Any + Send>,
        type_name: &'static str,
        codec: &'static Codec,
    },
    /// The slot's return type cannot travel (its name).
    Unanswerable(&'static str),
}

impl ReplyValue {
    /// A value that can answer.
    pub fn new<T: Serialize + Send + 'static>(value: T) -> Self {
        ReplyValue(Inner::Value {
            value: Box::new(value),
            type_name: std::any::type_name::<T>(),
            codec: &CodecOf::<T>::CODEC,
        })
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
        }
    }

    /// For a requester in another process: the type name and an encoder of
    /// the value (its size, then its bytes written into exactly that room).
    pub(crate) fn encoder(&self) -> Result<Encoder<'_>, ReplyError> {
        match &self.0 {
            Inner::Value {
                value,
                type_name,
                codec,
            } => {
                let size = (codec.size)(&**value)
                    .map_err(|e| ReplyError::Codec(format!("reply of type {type_name}: {e}")))?;
                Ok(Encoder {
                    type_name,
                    size,
                    value: &**value,
                    write: codec.write,
                })
            }
            Inner::Unanswerable(t) => Err(ReplyError::NotAnswerable((*t).to_string())),
        }
    }
}

/// How a reply's value encodes (one per type, shared by its replies).
struct Codec {
    size: fn(&dyn Any) -> Result<usize, CodecError>,
    write: fn(&dyn Any, &mut [u8]) -> bool,
}

/// A reply value ready to be written into a record.
pub(crate) struct Encoder<'a> {
    pub(crate) type_name: &'static str,
    /// Bytes the encoding takes.
    pub(crate) size: usize,
    value: &'a dyn Any,
    write: fn(&dyn Any, &mut [u8]) -> bool,
}

impl Encoder<'_> {
    /// Writes the encoding into `buf`, exactly [`size`](Self::size) bytes;
    /// false if it did not fill them.
    pub(crate) fn write(&self, buf: &mut [u8]) -> bool {
        (self.write)(self.value, buf)
    }
}

/// The [`Codec`] of `T`, as a constant the reference to which lives forever.
struct CodecOf<T>(std::marker::PhantomData<T>);

impl<T: Serialize + 'static> CodecOf<T> {
    const CODEC: Codec = Codec {
        size: size_as::<T>,
        write: write_as::<T>,
    };
}

fn size_as<T: Serialize + 'static>(v: &dyn Any) -> Result<usize, CodecError> {
    match v.downcast_ref::<T>() {
        Some(v) => codec::encoded_size(v),
        // `ReplyValue::new` pairs the value with this function: unreachable.
        None => Ok(0),
    }
}

fn write_as<T: Serialize + 'static>(v: &dyn Any, buf: &mut [u8]) -> bool {
    v.downcast_ref::<T>()
        .is_some_and(|v| codec::encode_exact(v, buf))
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
        let mut bytes = vec![0; e.size];
        assert!(e.write(&mut bytes));
        assert_eq!(codec::decode::<String>(&bytes).ok().as_deref(), Some("x"));
    }
}
