//! A serde deserializer reading postcard's wire format from a byte slice: the
//! decoding twin of `encoder`.
//!
//! Why our own: every call from another process decodes its arguments, and
//! postcard's deserializer leaves each varint out of line behind a call
//! (with its result spilled through memory): for a `(u64,)`, the decode,
//! its wrapper and the call into it were ~85 instructions (callgrind,
//! `ping_pong_u64`). Here the bytes are read inline.
//!
//! It reads exactly what postcard's `take_from_bytes` reads, method by
//! method (the same varint limits and last-byte checks, the same visitor
//! calls and size hints), so a value it decodes is the value postcard
//! decodes; the tests below hold the two equal over arbitrary bytes. It has
//! no error messages of its own: on any failure [`super::decode`] decodes
//! again with postcard, whose error (or, should the two ever disagree,
//! whose value) is the result.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// Something failed; postcard says what.
#[derive(Debug)]
pub(super) struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not decodable")
    }
}

impl std::error::Error for Failed {}

impl de::Error for Failed {
    #[cold]
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Failed
    }
}

type Result<T> = std::result::Result<T, Failed>;

/// How deep values may nest (options, sequences, tuples, structs, maps, enum
/// variants): each level is a few bytes of input but a stack frame of the
/// decoding thread, so a peer's garbage (`[1, 1, 1, ...]` for a recursive
/// `Option<Box<_>>`) would otherwise overflow the stack and abort the
/// process. serde_json's default limit is 128.
pub(super) const MAX_DEPTH: u32 = 256;

/// How many elements that take no bytes (`()`, unit structs, structs of
/// skipped fields) one value may hold in its sequences and maps, all of them
/// together. Each still costs the visitor a call, and only they can outnumber
/// the bytes: without a bound a peer's length of 2^64 (or nested sequences of
/// them, each as long as the bytes left) would keep the receiving loop busy
/// for ever. A sequence announcing more than this beyond the bytes left is
/// refused before its first element. (postcard has no such bound; it is not
/// asked again.)
pub(super) const MAX_EMPTY_ELEMENTS: usize = 1 << 16;

/// The deserializer: the bytes not read yet.
pub(super) struct Decoder<'de> {
    pub(super) rest: &'de [u8],
    /// Levels of nesting left (see [`MAX_DEPTH`]).
    depth: u32,
    /// The value nests deeper than [`MAX_DEPTH`]: the caller must not decode
    /// it again with postcard, which has no limit.
    pub(super) too_deep: bool,
    /// A sequence or map announced more elements than [`MAX_EMPTY_ELEMENTS`]
    /// beyond the bytes left, or its elements that took no bytes ran out of
    /// [`MAX_EMPTY_ELEMENTS`]: not for postcard either.
    pub(super) too_long: bool,
    /// The wire length that `too_long` refused before reading any element
    /// (`None`: the elements that took no bytes ran out): most often an
    /// input cut short, which the error then says.
    pub(super) said: Option<(usize, usize)>,
    /// Elements that take no bytes still allowed (see [`MAX_EMPTY_ELEMENTS`]).
    empties_left: usize,
}

impl<'de> Decoder<'de> {
    pub(super) fn new(bytes: &'de [u8]) -> Self {
        Decoder {
            rest: bytes,
            depth: MAX_DEPTH,
            too_deep: false,
            too_long: false,
            said: None,
            empties_left: MAX_EMPTY_ELEMENTS,
        }
    }

    /// Runs `f` one level of nesting deeper; fails beyond [`MAX_DEPTH`].
    #[inline(always)]
    fn nest<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        if self.depth == 0 {
            return self.too_deep();
        }
        self.depth -= 1;
        let r = f(self);
        self.depth += 1;
        r
    }

    #[cold]
    #[inline(never)]
    fn too_deep<R>(&mut self) -> Result<R> {
        self.too_deep = true;
        Err(Failed)
    }

    /// A wire length of a sequence or map, bounded (see
    /// [`MAX_EMPTY_ELEMENTS`]).
    #[inline(always)]
    fn elements(&mut self) -> Result<usize> {
        let len = self.varint_usize()?;
        if len.saturating_sub(self.rest.len()) > MAX_EMPTY_ELEMENTS {
            self.said = Some((len, self.rest.len()));
            return self.too_long();
        }
        Ok(len)
    }

    #[cold]
    #[inline(never)]
    fn too_long<R>(&mut self) -> Result<R> {
        self.too_long = true;
        Err(Failed)
    }

    /// After an element of a wire-length sequence or map that began with
    /// `before` bytes left: one that took none counts against the budget.
    #[inline(always)]
    fn took_bytes_since(&mut self, before: usize) -> Result<()> {
        if self.rest.len() == before {
            if self.empties_left == 0 {
                return self.too_long();
            }
            self.empties_left -= 1;
        }
        Ok(())
    }
}

/// Unsigned integers postcard writes as varints, with its limits:
/// `varint_max` bytes at most, and then at most `max_of_last_byte` in the
/// last one. One and two bytes inline (every type here has room for three,
/// so neither is a last byte to check); longer ones out of line (the loop
/// unrolled kept the whole read out of line).
macro_rules! varint_reader {
    ($name:ident, $rest:ident, $t:ty) => {
        #[inline(always)]
        fn $name(&mut self) -> Result<$t> {
            let b0 = self.byte()?;
            if b0 & 0x80 == 0 {
                return Ok(<$t>::from(b0));
            }
            let b1 = self.byte()?;
            let out = <$t>::from(b0 & 0x7F) | <$t>::from(b1 & 0x7F) << 7;
            if b1 & 0x80 == 0 {
                return Ok(out);
            }
            self.$rest(out)
        }

        /// The bytes from the third on, `out` holding the first two's bits.
        #[inline(never)]
        fn $rest(&mut self, mut out: $t) -> Result<$t> {
            const BITS: usize = <$t>::BITS as usize;
            const MAX: usize = BITS.div_ceil(7);
            const LAST: u8 = (1 << (BITS % 7)) - 1;
            for i in 2..MAX {
                let val = self.byte()?;
                out |= <$t>::from(val & 0x7F) << (7 * i);
                if val & 0x80 == 0 {
                    return if i == MAX - 1 && val > LAST {
                        Err(Failed)
                    } else {
                        Ok(out)
                    };
                }
            }
            Err(Failed)
        }
    };
}

impl<'de> Decoder<'de> {
    #[inline(always)]
    fn byte(&mut self) -> Result<u8> {
        let (&b, rest) = self.rest.split_first().ok_or(Failed)?;
        self.rest = rest;
        Ok(b)
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        if self.rest.len() < n {
            return Err(Failed);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    varint_reader!(varint_u16, varint_u16_rest, u16);
    varint_reader!(varint_u32, varint_u32_rest, u32);
    varint_reader!(varint_u64, varint_u64_rest, u64);
    varint_reader!(varint_u128, varint_u128_rest, u128);

    #[inline(always)]
    fn varint_usize(&mut self) -> Result<usize> {
        // As postcard on 64-bit targets (the only ones this crate builds for:
        // shared-memory positions are u64).
        self.varint_u64().map(|u| u as usize)
    }
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = Failed;

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Failed)
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let v = match self.byte()? {
            0 => false,
            1 => true,
            _ => return Err(Failed),
        };
        visitor.visit_bool(v)
    }

    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i8(self.byte()? as i8)
    }

    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.varint_u16()?;
        visitor.visit_i16(((n >> 1) as i16) ^ (-((n & 1) as i16)))
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.varint_u32()?;
        visitor.visit_i32(((n >> 1) as i32) ^ (-((n & 1) as i32)))
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.varint_u64()?;
        visitor.visit_i64(((n >> 1) as i64) ^ (-((n & 1) as i64)))
    }

    #[inline]
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.varint_u128()?;
        visitor.visit_i128(((n >> 1) as i128) ^ (-((n & 1) as i128)))
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u8(self.byte()?)
    }

    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u16(self.varint_u16()?)
    }

    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u32(self.varint_u32()?)
    }

    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u64(self.varint_u64()?)
    }

    #[inline]
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u128(self.varint_u128()?)
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let b = self.take(4)?;
        visitor.visit_f32(f32::from_bits(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.take(8)?);
        visitor.visit_f64(f64::from_bits(u64::from_le_bytes(buf)))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let sz = self.varint_usize()?;
        if sz > 4 {
            return Err(Failed);
        }
        let bytes = self.take(sz)?;
        let c = std::str::from_utf8(bytes)
            .map_err(|_| Failed)?
            .chars()
            .next()
            .ok_or(Failed)?;
        visitor.visit_char(c)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let sz = self.varint_usize()?;
        let s = std::str::from_utf8(self.take(sz)?).map_err(|_| Failed)?;
        visitor.visit_borrowed_str(s)
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let sz = self.varint_usize()?;
        let s = std::str::from_utf8(self.take(sz)?).map_err(|_| Failed)?;
        visitor.visit_str(s)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let sz = self.varint_usize()?;
        visitor.visit_borrowed_bytes(self.take(sz)?)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let sz = self.varint_usize()?;
        visitor.visit_bytes(self.take(sz)?)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => self.nest(|de| visitor.visit_some(de)),
            _ => Err(Failed),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.nest(|de| visitor.visit_newtype_struct(de))
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.elements()?;
        self.nest(|de| visitor.visit_seq(Seq::<true> { de, len }))
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        self.nest(|de| visitor.visit_seq(Seq::<false> { de, len }))
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.nest(|de| visitor.visit_seq(Seq::<false> { de, len }))
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.elements()?;
        self.nest(|de| {
            visitor.visit_map(Map {
                de,
                len,
                entry_start: 0,
            })
        })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.nest(|de| {
            visitor.visit_seq(Seq::<false> {
                de,
                len: fields.len(),
            })
        })
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.nest(|de| visitor.visit_enum(de))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Failed)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Failed)
    }
}

/// A sequence, tuple or struct: `len` elements. `WIRE`: its length came from
/// the wire (a sequence), so its elements that take no bytes are counted (see
/// [`MAX_EMPTY_ELEMENTS`]); a tuple's or struct's is the type's own.
struct Seq<'a, 'de, const WIRE: bool> {
    de: &'a mut Decoder<'de>,
    len: usize,
}

impl<'de, const WIRE: bool> de::SeqAccess<'de> for Seq<'_, 'de, WIRE> {
    type Error = Failed;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        if !WIRE {
            return seed.deserialize(&mut *self.de).map(Some);
        }
        let before = self.de.rest.len();
        let v = seed.deserialize(&mut *self.de)?;
        self.de.took_bytes_since(before)?;
        Ok(Some(v))
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        // As postcard's: no hint beyond the bytes left.
        (self.de.rest.len() >= self.len).then_some(self.len)
    }
}

/// A map: `len` entries.
struct Map<'a, 'de> {
    de: &'a mut Decoder<'de>,
    len: usize,
    /// Bytes left when the current entry's key began.
    entry_start: usize,
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de> {
    type Error = Failed;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        self.entry_start = self.de.rest.len();
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let v = seed.deserialize(&mut *self.de)?;
        self.de.took_bytes_since(self.entry_start)?;
        Ok(v)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        // No hint beyond the bytes left (each entry takes at least one): a
        // visitor that trusts hints must not allocate from a wire length.
        (self.de.rest.len() >= self.len).then_some(self.len)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Decoder<'de> {
    type Error = Failed;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let index = self.varint_u32()?;
        let v = seed.deserialize(IntoDeserializer::<Failed>::into_deserializer(index))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Decoder<'de> {
    type Error = Failed;

    #[inline]
    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::Decoder;
    use proptest::prelude::*;
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    /// Ours alone (no postcard fallback): the value and the bytes left.
    fn ours<T: DeserializeOwned>(bytes: &[u8]) -> Option<(T, usize)> {
        let mut de = Decoder::new(bytes);
        T::deserialize(&mut de).ok().map(|v| (v, de.rest.len()))
    }

    /// Whatever ours decodes from `bytes`, postcard decodes the same (value
    /// and bytes left); and where postcard succeeds, so do we.
    fn agree<T: DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
        let theirs = postcard::take_from_bytes::<T>(bytes)
            .ok()
            .map(|(v, rest)| (v, rest.len()));
        assert_eq!(ours::<T>(bytes), theirs, "bytes {bytes:?}");
    }

    /// The encoding of `v` decodes to `v`, all of it, as postcard's does.
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &T) {
        let bytes = postcard::to_allocvec(v).unwrap();
        let (back, left) = ours::<T>(&bytes).expect("decodes");
        assert!(back == *v || format!("{back:?}") == format!("{v:?}")); // NaN
        assert_eq!(left, 0);
        agree::<T>(&bytes);
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Unit;
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Newtype(i32);
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Fields {
        a: u16,
        b: Option<Vec<i64>>,
        c: BTreeMap<String, (f32, u8)>,
    }
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    enum E {
        A,
        B(u64),
        C(i8, char),
        D { x: u128, y: i128 },
    }

    type Ints = (u8, u16, u32, u64, i8, i16, i32, i64);
    type Wide = (u128, i128, bool, char, f64);
    type Texts = (String, Vec<u8>, Option<String>, ());

    #[test]
    fn values_decode_as_postcard_decodes_them() {
        for v in crate::transport::codec::VARINT_EDGES {
            round_trip(&(v,));
            round_trip(&(
                v as u8, v as u16, v as u32, v, v as i8, v as i16, v as i32, v as i64,
            ));
            round_trip(&(
                u128::from(v) << 64 | u128::from(v),
                -(v as i128),
                v % 2 == 0,
                'é',
                1.5f64,
            ));
        }
        round_trip(&(
            "héllo".to_string(),
            vec![1u8, 2, 3],
            Some("x".to_string()),
            (),
        ));
        round_trip(&(Unit, Newtype(-7), E::A, E::B(9), E::C(-1, '𝄞')));
        round_trip(&E::D {
            x: u128::MAX,
            y: i128::MIN,
        });
        round_trip(&Fields {
            a: 65535,
            b: Some(vec![i64::MIN, 0, i64::MAX]),
            c: [("k".to_string(), (0.5, 7))].into_iter().collect(),
        });
        round_trip(&(1.25f32, f64::INFINITY, vec![(1u32, 'z')]));
    }

    #[test]
    fn edge_varints_agree_with_postcard() {
        // Longest forms, one byte too long, last-byte limits, non-canonical
        // zeros, truncation.
        let cases: &[&[u8]] = &[
            &[0xff, 0xff, 0x03],
            &[0xff, 0xff, 0x04],
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
            &[0xff, 0xff, 0xff, 0xff, 0x10],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            &[
                0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
            ],
            &[0x80, 0x00],
            &[0x80],
            &[],
        ];
        for b in cases {
            agree::<(u16,)>(b);
            agree::<(u32,)>(b);
            agree::<(u64,)>(b);
            agree::<(i16,)>(b);
            agree::<(i32,)>(b);
            agree::<(i64,)>(b);
            agree::<(u128,)>(b);
            agree::<(i128,)>(b);
            agree::<String>(b);
            agree::<Vec<u16>>(b);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_decode_as_postcard_decodes_them(
            bytes in proptest::collection::vec(any::<u8>(), 0..40)
        ) {
            agree::<(u64,)>(&bytes);
            agree::<Ints>(&bytes);
            agree::<Wide>(&bytes);
            agree::<Texts>(&bytes);
            agree::<Fields>(&bytes);
            agree::<E>(&bytes);
            agree::<Vec<E>>(&bytes);
            agree::<(f32, Option<bool>, BTreeMap<u8, String>)>(&bytes);
        }
    }

    /// Recursive garbage (`[1, 1, 1, ...]` read as `Some(Some(...))`) is an
    /// error, not a stack overflow; nesting up to the limit decodes.
    #[test]
    fn nesting_deeper_than_the_limit_is_an_error_not_a_stack_overflow() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Node(Option<Box<Node>>);
        let garbage = vec![1u8; 1 << 20];
        let err = crate::transport::codec::decode::<Node>(&garbage).unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
        // Each level is an option and a newtype: 2 levels a node.
        let mut ok = Node(None);
        for _ in 0..(super::MAX_DEPTH / 2 - 1) {
            ok = Node(Some(Box::new(ok)));
        }
        let bytes = postcard::to_allocvec(&ok).unwrap();
        assert_eq!(crate::transport::codec::decode::<Node>(&bytes).unwrap(), ok);
    }

    /// A wire length far beyond the bytes left, for elements that take no
    /// bytes, is an error at once (it would call the visitor 2^62 times);
    /// up to the allowance it decodes.
    #[test]
    fn a_length_of_empty_elements_beyond_the_allowance_is_an_error_not_a_spin() {
        use std::collections::BTreeMap;
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Unit;
        let decode = crate::transport::codec::decode::<Vec<Unit>>;
        let huge = postcard::to_allocvec(&(1u64 << 62)).unwrap();
        let err = decode(&huge).unwrap_err();
        assert!(err.to_string().contains("elements"), "{err}");
        let err = crate::transport::codec::decode::<BTreeMap<(), ()>>(&huge).unwrap_err();
        assert!(err.to_string().contains("elements"), "{err}");
        let most: Vec<Unit> = (0..super::MAX_EMPTY_ELEMENTS).map(|_| Unit).collect();
        let bytes = postcard::to_allocvec(&most).unwrap();
        assert_eq!(decode(&bytes).unwrap().len(), super::MAX_EMPTY_ELEMENTS);
        let over = postcard::to_allocvec(&(super::MAX_EMPTY_ELEMENTS as u64 + 4)).unwrap();
        assert!(decode(&over).is_err());
        // Nested: each inner sequence within the bytes left, all together
        // far beyond the budget (16 x 60,000 units): refused, not run.
        let mut nested = postcard::to_allocvec(&16u64).unwrap();
        for _ in 0..16 {
            nested.extend(postcard::to_allocvec(&60_000u64).unwrap());
        }
        let err = crate::transport::codec::decode::<Vec<Vec<Unit>>>(&nested).unwrap_err();
        assert!(err.to_string().contains("elements"), "{err}");
        // Elements that take bytes are bounded by the bytes themselves.
        let ok = postcard::to_allocvec(&vec![7u8; 100_000]).unwrap();
        assert_eq!(
            crate::transport::codec::decode::<Vec<u8>>(&ok)
                .unwrap()
                .len(),
            100_000
        );
    }
}
