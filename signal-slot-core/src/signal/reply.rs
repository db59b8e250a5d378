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
        encode: fn(&dyn Any, &mut Vec<u8>) -> Result<(), CodecError>,
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
            encode: encode_as::<T>,
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

    /// The value encoded, with its type name (for a requester in another
    /// process).
    pub(crate) fn encode(&self) -> Result<(&'static str, Vec<u8>), ReplyError> {
        match &self.0 {
            Inner::Value {
                value,
                type_name,
                encode,
            } => {
                let mut bytes = Vec::new();
                encode(&**value, &mut bytes)
                    .map(|()| (*type_name, bytes))
                    .map_err(|e| ReplyError::Codec(format!("reply of type {type_name}: {e}")))
            }
            Inner::Unanswerable(t) => Err(ReplyError::NotAnswerable((*t).to_string())),
        }
    }
}

fn encode_as<T: Serialize + 'static>(v: &dyn Any, out: &mut Vec<u8>) -> Result<(), CodecError> {
    match v.downcast_ref::<T>() {
        Some(v) => codec::encode_into(v, out),
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
        let (name, bytes) = (&&ReplyProbe::new(String::from("x")))
            .__reply()
            .encode()
            .expect("encodes");
        assert_eq!(name, std::any::type_name::<String>());
        assert_eq!(codec::decode::<String>(&bytes).ok().as_deref(), Some("x"));
    }
}
