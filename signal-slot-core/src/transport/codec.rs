//! The one wire codec: postcard (compact, serde-based; ipc-channel uses it too,
//! so the tree carries a single codec).

use serde::{de::DeserializeOwned, Serialize};

/// A payload that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

/// Appends the encoding of `value` to `buf`.
#[allow(dead_code)] // the process transport encodes with it
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

/// Encodes `value` into the start of `buf`; `None` if it does not fit.
#[inline]
pub(crate) fn encode_to_slice<'b, T: Serialize>(
    value: &T,
    buf: &'b mut [u8],
) -> Result<Option<&'b mut [u8]>, CodecError> {
    match postcard::to_slice(value, buf) {
        Ok(used) => Ok(Some(used)),
        Err(postcard::Error::SerializeBufferFull) => Ok(None),
        Err(e) => Err(CodecError(e.to_string())),
    }
}

/// Bytes the encoding of `value` takes (a dry run of the encoder).
pub(crate) fn encoded_size<T: Serialize>(value: &T) -> Result<usize, CodecError> {
    postcard::experimental::serialized_size(value).map_err(|e| CodecError(e.to_string()))
}

/// Encodes `value` into exactly `buf`; false if it does not fill `buf` exactly
/// (a `Serialize` impl that answered [`encoded_size`] differently).
pub(crate) fn encode_exact<T: Serialize>(value: &T, buf: &mut [u8]) -> bool {
    let len = buf.len();
    postcard::to_slice(value, buf).is_ok_and(|used| used.len() == len)
}

/// Decodes a `T` that must use all of `bytes`. Lengths inside the encoding
/// are bounded by `bytes` (serde's sequence visitors cap their preallocation), so
/// a lying length field cannot make it allocate without bound.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(CodecError(format!("{} trailing bytes", rest.len()))),
        Err(e) => Err(CodecError(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
