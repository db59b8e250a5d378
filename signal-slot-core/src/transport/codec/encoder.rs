//! A serde serializer writing postcard's wire format into a [`Spill`]
//! (stack first, a reused heap buffer beyond).
//!
//! Why our own and not `postcard::Serializer` over a flavor: every emit to
//! another process encodes its arguments, and postcard's serializer left
//! each field's encoding out of line behind two variable-length copies
//! (~100 instructions for a `(u64,)`, measured with callgrind). Here a
//! varint is written byte by byte straight into the buffer. Decoding stays
//! postcard's; the tests below hold the bytes equal to postcard's for every
//! serde data model type.

use super::{CodecError, Spill, STACK};
use serde::ser::{self, Serialize};
use std::mem::MaybeUninit;

impl ser::Error for CodecError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        CodecError(msg.to_string())
    }
}

/// The serializer: appends to the spill it borrows.
pub(super) struct Encoder<'a>(pub(super) &'a mut Spill);

impl Encoder<'_> {
    #[inline(always)]
    fn push(&mut self, b: u8) {
        let out = &mut *self.0;
        match out.stack.get_mut(out.len) {
            Some(room) if out.heap.is_none() => {
                *room = MaybeUninit::new(b);
                out.len += 1;
            }
            _ => out.spill(&[b]),
        }
    }

    #[inline(always)]
    fn extend(&mut self, data: &[u8]) {
        let out = &mut *self.0;
        match out.stack.get_mut(out.len..out.len + data.len()) {
            Some(room) if out.heap.is_none() => {
                // SAFETY: `room` is `data.len()` bytes of our own stack buffer
                // (`MaybeUninit<u8>` has the layout of `u8`), apart from `data`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        data.as_ptr(),
                        room.as_mut_ptr().cast::<u8>(),
                        data.len(),
                    );
                }
                out.len += data.len();
            }
            _ => out.spill(data),
        }
    }

    /// LEB128, as postcard: seven bits a byte, low first, high bit = more.
    #[inline(always)]
    fn varint(&mut self, mut v: u64) {
        let out = &mut *self.0;
        // Room for the longest (10 bytes) on the stack: no check per byte.
        if out.heap.is_none() && out.len + 10 <= STACK {
            let mut at = out.len;
            while v >= 0x80 {
                out.stack[at] = MaybeUninit::new(v as u8 | 0x80);
                v >>= 7;
                at += 1;
            }
            out.stack[at] = MaybeUninit::new(v as u8);
            out.len = at + 1;
        } else {
            self.varint_slow(u128::from(v));
        }
    }

    #[inline(never)]
    fn varint_slow(&mut self, mut v: u128) {
        while v >= 0x80 {
            self.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }

    #[inline]
    fn len(&mut self, len: Option<usize>) -> Result<(), CodecError> {
        match len {
            Some(n) => {
                self.varint(n as u64);
                Ok(())
            }
            // postcard writes the length first, so it must be known.
            None => Err(CodecError("a sequence or map of unknown length".into())),
        }
    }
}

/// Zigzag: small magnitudes of either sign give small varints.
#[inline(always)]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

impl<'a, 'b> ser::Serializer for &'b mut Encoder<'a> {
    type Ok = ();
    type Error = CodecError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }
    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), CodecError> {
        self.push(u8::from(v));
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), CodecError> {
        self.push(v as u8);
        Ok(())
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), CodecError> {
        self.varint(zigzag(i64::from(v)));
        Ok(())
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), CodecError> {
        self.varint(zigzag(i64::from(v)));
        Ok(())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), CodecError> {
        self.varint(zigzag(v));
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), CodecError> {
        self.varint_slow(((v << 1) ^ (v >> 127)) as u128);
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), CodecError> {
        self.push(v);
        Ok(())
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), CodecError> {
        self.varint(u64::from(v));
        Ok(())
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), CodecError> {
        self.varint(u64::from(v));
        Ok(())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), CodecError> {
        self.varint(v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), CodecError> {
        self.varint_slow(v);
        Ok(())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), CodecError> {
        self.extend(&v.to_bits().to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), CodecError> {
        self.extend(&v.to_bits().to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Result<(), CodecError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), CodecError> {
        self.serialize_bytes(v.as_bytes())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), CodecError> {
        self.varint(v.len() as u64);
        self.extend(v);
        Ok(())
    }
    #[inline]
    fn serialize_none(self) -> Result<(), CodecError> {
        self.push(0);
        Ok(())
    }
    #[inline]
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), CodecError> {
        self.push(1);
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Result<(), CodecError> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), CodecError> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<(), CodecError> {
        self.varint(u64::from(index));
        Ok(())
    }
    #[inline]
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), CodecError> {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), CodecError> {
        self.varint(u64::from(index));
        value.serialize(self)
    }
    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, CodecError> {
        self.len(len)?;
        Ok(self)
    }
    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self, CodecError> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, CodecError> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, CodecError> {
        self.varint(u64::from(index));
        Ok(self)
    }
    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, CodecError> {
        self.len(len)?;
        Ok(self)
    }
    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, CodecError> {
        Ok(self)
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, CodecError> {
        self.varint(u64::from(index));
        Ok(self)
    }
}

/// Elements, fields and entries follow each other with nothing between.
macro_rules! in_order {
    ($trait:ident, $method:ident $(, $key:ident)?) => {
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = CodecError;
            #[inline]
            fn $method<T: ?Sized + Serialize>(
                &mut self,
                $($key: &'static str,)?
                value: &T,
            ) -> Result<(), CodecError> {
                $(let _ = $key;)?
                value.serialize(&mut **self)
            }
            #[inline]
            fn end(self) -> Result<(), CodecError> {
                Ok(())
            }
        }
    };
}

in_order!(SerializeSeq, serialize_element);
in_order!(SerializeTuple, serialize_element);
in_order!(SerializeTupleStruct, serialize_field);
in_order!(SerializeTupleVariant, serialize_field);
in_order!(SerializeStruct, serialize_field, _key);
in_order!(SerializeStructVariant, serialize_field, _key);

impl ser::SerializeMap for &mut Encoder<'_> {
    type Ok = ();
    type Error = CodecError;
    #[inline]
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), CodecError> {
        key.serialize(&mut **self)
    }
    #[inline]
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), CodecError> {
        value.serialize(&mut **self)
    }
    #[inline]
    fn end(self) -> Result<(), CodecError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::with_encoded;
    use serde::Serialize;
    use std::collections::BTreeMap;

    /// Our bytes for `v` are postcard's.
    fn same<T: Serialize + ?Sized>(v: &T) {
        let ours = with_encoded(v, <[u8]>::to_vec).unwrap();
        let theirs = postcard::to_allocvec(v).unwrap();
        assert_eq!(ours, theirs);
    }

    #[derive(Serialize)]
    struct Unit;
    #[derive(Serialize)]
    struct Newtype(i32);
    #[derive(Serialize)]
    struct Pair(u8, String);
    #[derive(Serialize)]
    struct Fields {
        a: u16,
        b: Option<Vec<i64>>,
        c: BTreeMap<String, (f32, f64)>,
    }
    #[derive(Serialize)]
    enum E {
        A,
        B(u64),
        C(i8, char),
        D { x: u128, y: i128 },
    }

    #[test]
    fn every_data_model_type_encodes_as_postcard_does() {
        for v in crate::transport::codec::VARINT_EDGES {
            same(&(v,));
            same(&(
                v as u16,
                v as u32,
                v as i64,
                -(v as i64),
                v as i16,
                v as i32,
            ));
        }
        same(&(i64::MIN, i64::MAX, i32::MIN, i16::MIN, i8::MIN, u8::MAX));
        same(&(u128::MAX, i128::MIN, i128::MAX, 0u128, -1i128));
        same(&(true, false, 'x', 'é', '𝄞', 1.5f32, -2.25f64, f64::NAN));
        same(&("", "hello".to_string(), serde_bytes_like(&[1, 2, 3])));
        same(&(
            None::<u8>,
            Some(7u32),
            (),
            Unit,
            Newtype(-9),
            Pair(3, "p".into()),
        ));
        let mut c = BTreeMap::new();
        c.insert("k".to_string(), (1.0f32, 2.0f64));
        same(&Fields {
            a: 500,
            b: Some(vec![-1, 0, 1 << 40]),
            c,
        });
        same(&vec![
            E::A,
            E::B(1 << 20),
            E::C(-3, 'z'),
            E::D { x: 1 << 100, y: -5 },
        ]);
        // Long enough to leave the stack part-way through a varint.
        same(&("y".repeat(super::STACK - 3), u64::MAX, "z".repeat(300)));
    }

    /// A `&[u8]` serialized as bytes (not as a sequence), as `serde_bytes`
    /// would.
    fn serde_bytes_like(b: &[u8]) -> impl Serialize + '_ {
        struct Bytes<'a>(&'a [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Bytes(b)
    }

    #[test]
    fn a_sequence_of_unknown_length_is_an_error_not_a_panic() {
        struct Unknown;
        impl Serialize for Unknown {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(None)?;
                seq.serialize_element(&1u8)?;
                seq.end()
            }
        }
        assert!(with_encoded(&Unknown, <[u8]>::to_vec).is_err());
        assert!(postcard::to_allocvec(&Unknown).is_err());
    }
}
