use crate::object::ObjectId;
use crate::signal::Headers;
use crate::sync::{AtomicU64, Ordering};
use crate::transport::codec::{self, CodecError};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What is known about one emission. A slot receives it by taking `&Meta` as its
/// last parameter; it is only built (one allocation per emission, shared by all
/// receivers) when a connected slot asks for it.
///
/// ```
/// use signal_slot::prelude::*;
///
/// #[derive(EventLoopObject, Default)]
/// struct Logger {}
///
/// #[slots]
/// impl Logger {
///     fn on_any(&mut self, text: String, meta: &Meta) {
///         println!("{} from {} on {} at {:?}", text, meta.sender(), meta.topic(), meta.timestamp());
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Meta {
    sender: ObjectId,
    signal: Cow<'static, str>,
    topic: Arc<str>,
    message_id: u64,
    sequence: u64,
    timestamp: SystemTime,
    headers: Option<Arc<Headers>>,
    /// The retained value this emission replaced, encoded.
    previous: Option<Arc<[u8]>>,
    replay: bool,
    /// Set on the copy a gated connection delivers (in-process only).
    gate: Option<crate::signal::retained::GateRef>,
    /// Set on a request's call: where the answer goes (in-process only).
    request: Option<crate::signal::request::RequestRef>,
    /// The call runs for a request (in this process or another).
    is_request: bool,
}

static NEXT_MESSAGE_ID: AtomicU64 = AtomicU64::new(1);

/// How metadata travels to another process (decoded form).
#[derive(Deserialize)]
pub(crate) struct MetaWire {
    sender: String,
    signal: String,
    topic: String,
    message_id: u64,
    sequence: u64,
    timestamp_ns: u64,
    headers: Option<Headers>,
    previous: Option<Vec<u8>>,
    replay: bool,
}

/// The encoding side of [`MetaWire`]: the same fields in the same order and
/// the same encoding (`&str` as `String`, `&[u8]` as `Vec<u8>`), borrowed from
/// the `Meta`, so sending copies no string.
#[derive(Serialize)]
pub(crate) struct MetaWireRef<'a> {
    sender: &'a str,
    signal: &'a str,
    topic: &'a str,
    message_id: u64,
    sequence: u64,
    timestamp_ns: u64,
    headers: Option<&'a Headers>,
    previous: Option<&'a [u8]>,
    replay: bool,
}

impl<'a> MetaWireRef<'a> {
    /// A retained value's metadata for a subscriber in another process, made
    /// straight from the signal's fields (no [`Meta`] to build and drop).
    pub(crate) fn replay(
        sender: &'a str,
        signal: &'a str,
        topic: &'a str,
        sequence: u64,
        timestamp: SystemTime,
        headers: Option<&'a Headers>,
    ) -> Self {
        MetaWireRef {
            sender,
            signal,
            topic,
            message_id: NEXT_MESSAGE_ID.fetch_add(1, Ordering::Relaxed),
            sequence,
            timestamp_ns: nanos_since_epoch(timestamp),
            headers,
            previous: None,
            replay: true,
        }
    }
}

/// What a timestamp travels as.
fn nanos_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Meta {
    pub(crate) fn new(
        sender: ObjectId,
        signal: &'static str,
        topic: Arc<str>,
        sequence: u64,
    ) -> Self {
        Self {
            sender,
            signal: Cow::Borrowed(signal),
            topic,
            message_id: NEXT_MESSAGE_ID.fetch_add(1, Ordering::Relaxed),
            sequence,
            timestamp: SystemTime::now(),
            headers: None,
            previous: None,
            replay: false,
            gate: None,
            request: None,
            is_request: false,
        }
    }

    pub(crate) fn with_headers(mut self, headers: Option<Arc<Headers>>) -> Self {
        self.headers = headers;
        self
    }

    pub(crate) fn with_previous(mut self, previous: Option<Arc<[u8]>>) -> Self {
        self.previous = previous;
        self
    }

    /// A copy carrying a gated connection's call.
    pub(crate) fn gated(&self, gate: crate::signal::retained::GateRef) -> Self {
        let mut m = self.clone();
        m.gate = Some(gate);
        m
    }

    pub(crate) fn gate(&self) -> Option<&crate::signal::retained::GateRef> {
        self.gate.as_ref()
    }

    /// A copy carrying a request's way back.
    pub(crate) fn with_request(mut self, r: crate::signal::request::RequestRef) -> Self {
        self.request = Some(r);
        self.is_request = true;
        self
    }

    pub(crate) fn request(&self) -> Option<&crate::signal::request::RequestRef> {
        self.request.as_ref()
    }

    /// Marks the metadata of a request that came from another process.
    pub(crate) fn into_request(mut self) -> Self {
        self.is_request = true;
        self
    }

    /// True when the slot runs to answer a request
    /// ([`SignalRef::request`](crate::SignalRef::request)) rather than for an
    /// emission: its return value goes back to the requester.
    pub fn is_request(&self) -> bool {
        self.is_request
    }

    /// Metadata of a call that had none (a slot invoked directly).
    pub(crate) fn empty() -> Self {
        Self {
            sender: ObjectId::internal(String::new()),
            signal: Cow::Borrowed(""),
            topic: Arc::from(""),
            message_id: 0,
            sequence: 0,
            timestamp: SystemTime::UNIX_EPOCH,
            headers: None,
            previous: None,
            replay: false,
            gate: None,
            request: None,
            is_request: false,
        }
    }

    /// A retained value's metadata for a subscriber that asked to be
    /// initialized (stamped with the time the value was set).
    pub(crate) fn replay(
        sender: ObjectId,
        signal: &'static str,
        topic: Arc<str>,
        sequence: u64,
        timestamp: SystemTime,
        headers: Option<Arc<Headers>>,
    ) -> Self {
        let mut m = Self::new(sender, signal, topic, sequence).with_headers(headers);
        m.timestamp = timestamp;
        m.replay = true;
        m
    }

    pub(crate) fn to_wire(&self) -> MetaWireRef<'_> {
        MetaWireRef {
            sender: self.sender.as_str(),
            signal: &self.signal,
            topic: &self.topic,
            message_id: self.message_id,
            sequence: self.sequence,
            timestamp_ns: nanos_since_epoch(self.timestamp),
            headers: self.headers.as_deref(),
            previous: self.previous.as_deref(),
            replay: self.replay,
        }
    }

    /// Metadata that came from another process.
    pub(crate) fn from_wire(w: MetaWire) -> Self {
        Self {
            sender: ObjectId::internal(w.sender),
            signal: Cow::Owned(w.signal),
            topic: Arc::from(w.topic),
            message_id: w.message_id,
            sequence: w.sequence,
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_nanos(w.timestamp_ns),
            headers: w.headers.map(Arc::new),
            previous: w.previous.map(Arc::from),
            replay: w.replay,
            gate: None,
            request: None,
            is_request: false,
        }
    }

    /// The id of the object whose signal was emitted.
    pub fn sender(&self) -> &ObjectId {
        &self.sender
    }

    /// The signal's name (the field name).
    pub fn signal(&self) -> &str {
        &self.signal
    }

    /// The emission's topic: `<sender id>/<signal name>` unless the signal was
    /// given a topic of its own (`#[signal(topic = "...")]`).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Unique among the emissions of the sending process.
    pub fn message_id(&self) -> u64 {
        self.message_id
    }

    /// Counts the emissions of this signal that carried metadata, from 0 (every
    /// emission, for a retained signal).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Wall-clock time of the emission (for a replayed retained value: of the
    /// emission that set it).
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }

    /// The headers the emission carried ([`Signal::emit_with_headers`](crate::Signal::emit_with_headers)).
    pub fn headers(&self) -> &Headers {
        static NONE: Headers = Headers::new();
        self.headers.as_deref().unwrap_or(&NONE)
    }

    /// True for a retained value delivered to a subscriber that asked to be
    /// initialized, rather than a live emission.
    pub fn is_replay(&self) -> bool {
        self.replay
    }

    /// For a retained signal: the value this emission replaced, decoded as `T`
    /// (the signal's argument tuple). `None` for the first value, for signals
    /// that retain nothing and for replays.
    pub fn previous<T: DeserializeOwned>(&self) -> Option<Result<T, CodecError>> {
        self.previous.as_deref().map(codec::decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_wire_form_decodes_as_the_owned_one() {
        let meta = Meta::new(
            ObjectId::internal("sender-1".into()),
            "value",
            Arc::from("a/b"),
            7,
        )
        .with_headers(Some(Arc::new(Headers::new().with("unit", "celsius"))))
        .with_previous(Some(Arc::from(&[1u8, 2, 200][..])));
        let mut bytes = Vec::new();
        codec::encode_into(&meta.to_wire(), &mut bytes).unwrap();
        let back = Meta::from_wire(codec::decode::<MetaWire>(&bytes).unwrap());
        assert_eq!(back.sender().as_str(), "sender-1");
        assert_eq!(back.signal(), "value");
        assert_eq!(back.topic(), "a/b");
        assert_eq!(back.message_id(), meta.message_id());
        assert_eq!(back.sequence(), 7);
        assert_eq!(back.headers(), meta.headers());
        assert_eq!(back.previous.as_deref(), Some(&[1u8, 2, 200][..]));
        assert!(!back.is_replay());
        let stamp = meta
            .timestamp()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        let got = back
            .timestamp()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(got.as_nanos(), stamp.as_nanos());
        let r = MetaWireRef::replay("s", "v", "t", 3, SystemTime::UNIX_EPOCH, None);
        bytes.clear();
        codec::encode_into(&r, &mut bytes).unwrap();
        let back = Meta::from_wire(codec::decode::<MetaWire>(&bytes).unwrap());
        assert!(back.is_replay());
        assert_eq!(back.sequence(), 3);
        assert!(back.previous::<(u64,)>().is_none());
    }
}
