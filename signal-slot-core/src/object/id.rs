use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// The name of an object, unique among the live objects of the process.
///
/// An id is non-empty, at most 255 bytes, and holds no `/`, `+`, `#` or control
/// characters, because it is the first level of the object's topics
/// (`<object id>/<signal name>`). Cloning is cheap (a shared string).
///
/// ```
/// use signal_slot::ObjectId;
/// let id = ObjectId::new("object: a").unwrap();
/// assert_eq!(id, "object: a");
/// assert!(ObjectId::new("a/b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(Arc<str>);

/// An id that breaks the rules of [`ObjectId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid object id {id:?} at byte {position}: {reason}")]
pub struct InvalidIdError {
    /// The rejected id.
    pub id: String,
    /// Byte offset of the offending character (0 for an empty or too long id).
    pub position: usize,
    /// What is wrong.
    pub reason: &'static str,
}

const MAX_ID_LEN: usize = 255;

impl ObjectId {
    /// Checks `id` against the rules above.
    pub fn new(id: impl AsRef<str>) -> Result<Self, InvalidIdError> {
        let id = id.as_ref();
        let err = |position, reason| InvalidIdError {
            id: id.to_string(),
            position,
            reason,
        };
        if id.is_empty() {
            return Err(err(0, "an object id must not be empty"));
        }
        if id.len() > MAX_ID_LEN {
            return Err(err(0, "an object id must be at most 255 bytes"));
        }
        if let Some((i, c)) = id
            .char_indices()
            .find(|(_, c)| matches!(c, '/' | '+' | '#') || c.is_control())
        {
            let reason = if c.is_control() {
                "control characters are not allowed"
            } else {
                "'/', '+' and '#' are reserved for topics"
            };
            return Err(err(i, reason));
        }
        Ok(Self(Arc::from(id)))
    }

    /// For ids the framework makes itself (loop control objects, timers).
    pub(crate) fn internal(id: String) -> Self {
        Self(Arc::from(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for ObjectId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ObjectId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ObjectId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ObjectId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl Serialize for ObjectId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ObjectId::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_enforced_with_position_and_reason() {
        assert!(ObjectId::new("object: a").is_ok());
        let e = ObjectId::new("ab/c").unwrap_err();
        assert_eq!((e.position, e.id.as_str()), (2, "ab/c"));
        assert!(ObjectId::new("").is_err());
        assert!(ObjectId::new("x#").is_err());
        assert!(ObjectId::new("a+b").is_err());
        assert!(ObjectId::new("a\nb")
            .unwrap_err()
            .reason
            .contains("control"));
        assert!(ObjectId::new("x".repeat(256)).is_err());
        assert!(ObjectId::new("x".repeat(255)).is_ok());
    }
}
