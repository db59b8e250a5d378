//! Per-type tables of slots, so a message that arrives as bytes (from another
//! process) can be decoded and dispatched by slot index.

use crate::signal::{Meta, SignalArgs, SlotFn};
use crate::transport::codec::{self, CodecError};
use std::any::Any;
use std::marker::PhantomData;

/// Decodes a slot's argument tuple from bytes and calls it on the receiver.
#[doc(hidden)]
pub type DecodeCallFn = fn(&mut dyn Any, &[u8], Option<&Meta>) -> Result<(), CodecError>;

/// One slot of a type: its name and how to call it from encoded arguments.
#[doc(hidden)]
pub struct SlotEntry {
    /// The method name.
    pub name: &'static str,
    /// See [`DecodeCallFn`].
    pub decode_call: DecodeCallFn,
    /// The typed thunk, a `SlotFn<Args>`, for calls within one process.
    pub typed: &'static (dyn Any + Send + Sync),
    /// The slot's return type as written (`()` when it returns nothing).
    pub reply_type: &'static str,
    /// The typed reply thunk, a [`ReplyFn<Args>`](crate::signal::reply::ReplyFn):
    /// runs the slot for a request within one process.
    pub typed_reply: &'static (dyn Any + Send + Sync),
    /// Runs the slot for a request from another process.
    pub decode_reply: crate::signal::reply::DecodeReplyFn,
}

/// Implemented by `#[slots]`: the type's slots, in declaration order.
#[doc(hidden)]
pub trait Slots {
    /// The table.
    const TABLE: &'static [SlotEntry];
}

/// Decodes `A` from `bytes`, then runs the typed slot thunk. Always inlined
/// (with the decoder and the thunk) into the slot table's entry: one call
/// less per record from another process, ~34 instructions a hop (callgrind,
/// helper-65).
#[doc(hidden)]
#[inline(always)]
pub fn decode_call<A: SignalArgs>(
    obj: &mut dyn Any,
    bytes: &[u8],
    meta: Option<&Meta>,
    call: SlotFn<A>,
) -> Result<(), CodecError> {
    let args: A = codec::decode(bytes)?;
    call(obj, args, meta);
    Ok(())
}

/// Finds a type's slot table whether or not it has a `#[slots]` impl (autoref
/// specialization: the generated call site names a concrete type).
#[doc(hidden)]
pub struct SlotsProbe<T>(PhantomData<T>);

impl<T> SlotsProbe<T> {
    /// The probe value.
    pub const NEW: Self = SlotsProbe(PhantomData);
}

/// Chosen when the type has a `#[slots]` impl.
#[doc(hidden)]
pub trait ViaSlots {
    /// The type's table.
    fn __slot_table(&self) -> &'static [SlotEntry];
}

impl<T: Slots> ViaSlots for &SlotsProbe<T> {
    fn __slot_table(&self) -> &'static [SlotEntry] {
        T::TABLE
    }
}

/// Chosen otherwise: no slots.
#[doc(hidden)]
pub trait ViaNoSlots {
    /// An empty table.
    fn __slot_table(&self) -> &'static [SlotEntry];
}

impl<T> ViaNoSlots for SlotsProbe<T> {
    fn __slot_table(&self) -> &'static [SlotEntry] {
        &[]
    }
}
