//! Headers an emission may carry, and the dynamic message a pattern slot may
//! take instead of a typed argument tuple.

use crate::transport::codec::{self, CodecError};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// String key/value pairs carried by one emission, in insertion order. Keys may
/// repeat; [`get`](Headers::get) returns the first.
///
/// ```
/// use signal_slot::Headers;
/// let h = Headers::new().with("unit", "celsius").with("source", "probe-2");
/// assert_eq!(h.get("unit"), Some("celsius"));
/// assert_eq!(h.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds one header (builder style).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    /// Adds one header.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.push((key.into(), value.into()));
    }

    /// The first value under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True without headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An emission as a slot sees it when it takes `Message` instead of the
/// signal's typed arguments: for pattern subscriptions that match signals of
/// different types. The payload is the encoded argument tuple;
/// [`decode`](Message::decode) checks the type before decoding, so a wrong
/// guess is an error, never a wrong value.
///
/// ```
/// use signal_slot::prelude::*;
/// use signal_slot::Message;
///
/// #[derive(EventLoopObject, Default)]
/// struct Recorder {
///     seen: Vec<String>,
/// }
///
/// #[slots]
/// impl Recorder {
///     fn on_any(&mut self, msg: Message) {
///         match msg.decode::<(f64,)>() {
///             Ok((v,)) => self.seen.push(format!("{} = {v}", msg.topic())),
///             Err(_) => self.seen.push(format!("{}: a {}", msg.topic(), msg.type_name())),
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    topic: String,
    sender: String,
    type_name: String,
    payload: Vec<u8>,
    headers: Headers,
}

/// Why [`Message::decode`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The message carries another type.
    #[error("message on {topic} carries {found}, not {expected}")]
    WrongType {
        /// The topic.
        topic: String,
        /// The type asked for.
        expected: &'static str,
        /// The type the signal carries.
        found: String,
    },
    /// The payload did not decode.
    #[error("message on {topic}: {source}")]
    Decode {
        /// The topic.
        topic: String,
        /// The codec's complaint.
        source: CodecError,
    },
}

impl Message {
    pub(crate) fn encode<A: Serialize>(
        topic: &str,
        sender: &str,
        args: &A,
        headers: Option<&Headers>,
    ) -> Result<Self, CodecError> {
        let mut payload = Vec::new();
        codec::encode_into(args, &mut payload)?;
        Ok(Self {
            topic: topic.to_string(),
            sender: sender.to_string(),
            type_name: std::any::type_name::<A>().to_string(),
            payload,
            headers: headers.cloned().unwrap_or_default(),
        })
    }

    /// A message around an already encoded `A` (a replayed retained value).
    pub(crate) fn from_encoded<A>(
        topic: &str,
        sender: &str,
        payload: Vec<u8>,
        headers: Option<&Headers>,
    ) -> Self {
        Self {
            topic: topic.to_string(),
            sender: sender.to_string(),
            type_name: std::any::type_name::<A>().to_string(),
            payload,
            headers: headers.cloned().unwrap_or_default(),
        }
    }

    /// The emission's topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The id of the emitting object.
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// The Rust type of the argument tuple (as `std::any::type_name` says).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The encoded argument tuple (postcard).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The emission's headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Decodes the argument tuple as `T`, which must be the signal's type.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, MessageError> {
        let expected = std::any::type_name::<T>();
        if expected != self.type_name {
            return Err(MessageError::WrongType {
                topic: self.topic.clone(),
                expected,
                found: self.type_name.clone(),
            });
        }
        codec::decode(&self.payload).map_err(|source| MessageError::Decode {
            topic: self.topic.clone(),
            source,
        })
    }
}
