//! The one wire codec: postcard (compact, serde-based; ipc-channel uses it too,
//! so the tree carries a single codec). Hot encodings and decodings go
//! through our own serializer and deserializer of the same format
//! (`encoder`, `decoder`); postcard's decoder says why bytes do not decode.

mod decoder;
mod encoder;

use encoder::Encoder;
use serde::{de::DeserializeOwned, Serialize};
use std::mem::MaybeUninit;

/// A payload that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

/// Appends the encoding of `value` to `buf`.
pub(crate) fn encode_into<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    let taken = std::mem::take(buf);
    match postcard::to_extend(value, taken) {
        Ok(out) => {
            *buf = out;
            Ok(())
        }
        Err(e) => Err(CodecError(e.to_string())),
    }
}

/// Encodings up to this size stay on the stack.
const STACK: usize = 128;

thread_local! {
    /// Where encodings longer than [`STACK`] go, reused (taken while in use:
    /// an encode nested in another's, from a user's `Serialize`, gets a fresh one).
    static SPILL: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` on the encoding of `value`. One pass (a user's `Serialize` runs
/// once, before `f`: no lock of ours is held while it runs); on the stack up
/// to [`STACK`] bytes, beyond that in a reused per-thread buffer. Inlined:
/// the encoding of a small tuple is a few stores, the call would double it.
#[inline(always)]
pub(crate) fn with_encoded<T: Serialize + ?Sized, R>(
    value: &T,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, CodecError> {
    let mut out = Spill {
        // Not zeroed (an inline const: a repeated `uninit()` value was still
        // zeroed, 10 instructions per encoding): only the written prefix is read.
        stack: [const { MaybeUninit::uninit() }; STACK],
        len: 0,
        heap: None,
    };
    value.serialize(&mut Encoder(&mut out))?;
    Ok(match out.heap.take() {
        None => f(out.written()),
        Some(heap) => {
            let r = f(&heap);
            SPILL.with(|s| s.set(heap));
            r
        }
    })
}

/// A postcard output on the stack that moves to the heap when it outgrows it.
/// Invariant: `len <= STACK` and `stack[..len]` is initialized (the encoder
/// writes only at `len`, then moves it past what it wrote).
struct Spill {
    stack: [MaybeUninit<u8>; STACK],
    len: usize,
    heap: Option<Vec<u8>>,
}

impl Spill {
    /// The bytes written on the stack.
    #[inline(always)]
    fn written(&self) -> &[u8] {
        let init = &self.stack[..self.len];
        // SAFETY: `stack[..len]` is initialized (the type's invariant), and
        // `MaybeUninit<u8>` has the layout of `u8`.
        unsafe { std::slice::from_raw_parts(init.as_ptr().cast::<u8>(), init.len()) }
    }

    /// Appends `data` beyond the stack: moves what the stack holds to the
    /// heap first.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, data: &[u8]) {
        let mut heap = match self.heap.take() {
            Some(heap) => heap,
            None => {
                let mut heap = SPILL.with(|s| s.take());
                heap.clear();
                heap.extend_from_slice(self.written());
                heap
            }
        };
        heap.extend_from_slice(data);
        self.heap = Some(heap);
    }
}

/// Decodes a `T` that must use all of `bytes`. Lengths inside the encoding
/// are bounded by `bytes` (serde's sequence visitors cap their preallocation), so
/// a lying length field cannot make it allocate without bound.
///
/// Read by our own decoder (inline); on any failure, by postcard again, whose
/// error (or value, should the two ever disagree) is the result: errors say
/// what they said, and the values are postcard's either way. (A `T` whose
/// `Deserialize` fails part-way therefore runs twice on such bytes, and one
/// decoded with bytes left over is built, dropped and built again.) Values
/// nested deeper than `decoder::MAX_DEPTH` levels are an error (garbage could
/// otherwise overflow the decoding thread's stack), and so are more than
/// `decoder::MAX_EMPTY_ELEMENTS` elements that take no bytes in the sequences
/// and maps of one value (they would otherwise keep it busy for ever).
#[inline(always)]
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut de = decoder::Decoder::new(bytes);
    match T::deserialize(&mut de) {
        Ok(value) if de.rest.is_empty() => Ok(value),
        // Not postcard again: it has no limit (its stack would overflow).
        _ if de.too_deep => Err(too_deep()),
        _ if de.too_long => Err(too_long(de.said)),
        _ => decode_postcard(bytes),
    }
}

#[cold]
#[inline(never)]
fn too_long(said: Option<(usize, usize)>) -> CodecError {
    let limit = decoder::MAX_EMPTY_ELEMENTS;
    CodecError(match said {
        // Cut short, most likely (review helper-54: the message only named
        // the limit, for a `Vec<u64>` whose bytes ended early).
        Some((len, left)) => format!(
            "a sequence or map says {len} elements, but {left} bytes are left: \
             the input is cut short (or more than {limit} elements take no bytes)"
        ),
        None => format!("more than {limit} elements that take no bytes"),
    })
}

#[cold]
#[inline(never)]
fn too_deep() -> CodecError {
    CodecError(format!("nested deeper than {} levels", decoder::MAX_DEPTH))
}

/// [`decode`] by postcard.
#[cold]
#[inline(never)]
fn decode_postcard<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(CodecError(format!("{} trailing bytes", rest.len()))),
        Err(e) => Err(CodecError(e.to_string())),
    }
}

/// `u64` values at the edges of postcard's varint lengths, for the tests
/// holding our encoder and decoder to postcard's.
#[cfg(test)]
pub(crate) const VARINT_EDGES: [u64; 9] =
    [0, 1, 127, 128, 300, 16_383, 16_384, u64::MAX / 3, u64::MAX];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_cut_short_says_so() {
        // A `Vec<u64>` that says 100,000 elements, then 10 bytes.
        let mut bytes = Vec::new();
        encode_into(&100_000u32, &mut bytes).unwrap();
        bytes.extend([1u8; 10]);
        let e = decode::<Vec<u64>>(&bytes).unwrap_err().to_string();
        assert!(e.contains("cut short"), "{e}");
        // A flood of elements that take no bytes is still refused as such.
        let mut units = Vec::new();
        encode_into(&u64::MAX, &mut units).unwrap();
        let e = decode::<Vec<()>>(&units).unwrap_err().to_string();
        assert!(e.contains("take no bytes"), "{e}");
    }

    #[test]
    fn round_trip_and_rejects_garbage_without_panicking() {
        let mut buf = Vec::new();
        encode_into(&("hello".to_string(), 42i64), &mut buf).unwrap();
        let back: (String, i64) = decode(&buf).unwrap();
        assert_eq!(back, ("hello".to_string(), 42));
        assert!(decode::<(String, i64)>(&buf[..buf.len() - 1]).is_err());
        let mut longer = buf.clone();
        longer.push(0);
        assert!(decode::<(String, i64)>(&longer).is_err());
        // A string claiming 2^60 bytes: an error, not an allocation.
        let lying = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
        assert!(decode::<(String,)>(&lying).is_err());
        assert!(decode::<(Vec<u64>,)>(&lying).is_err());
    }

    #[test]
    fn with_encoded_matches_encode_into_short_long_and_nested() {
        for value in ["x".repeat(3), "y".repeat(STACK), "z".repeat(STACK * 5)] {
            let mut expected = Vec::new();
            encode_into(&(value.clone(), 7u8), &mut expected).unwrap();
            let got = with_encoded(&(value.clone(), 7u8), |b| {
                // An encode nested in the use of another's bytes.
                let inner = with_encoded(&value, <[u8]>::to_vec).unwrap();
                assert_eq!(decode::<String>(&inner).unwrap(), value);
                b.to_vec()
            })
            .unwrap();
            assert_eq!(got, expected);
        }
    }
}
