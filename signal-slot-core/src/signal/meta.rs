use crate::object::ObjectId;
use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

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
    topic: Arc<str>,
    /// Where the signal name starts in `topic` (`<sender>/<signal>`).
    signal_at: usize,
    message_id: u64,
    sequence: u64,
    timestamp: SystemTime,
}

static NEXT_MESSAGE_ID: AtomicU64 = AtomicU64::new(1);

impl Meta {
    pub(crate) fn new(sender: ObjectId, topic: Arc<str>, sequence: u64) -> Self {
        let signal_at = (sender.as_str().len() + 1).min(topic.len());
        Self {
            sender,
            signal_at,
            topic,
            message_id: NEXT_MESSAGE_ID.fetch_add(1, Ordering::Relaxed),
            sequence,
            timestamp: SystemTime::now(),
        }
    }

    /// Metadata of a call that had none (a slot invoked directly).
    pub(crate) fn empty() -> Self {
        Self {
            sender: ObjectId::internal(String::new()),
            signal_at: 0,
            topic: Arc::from(""),
            message_id: 0,
            sequence: 0,
            timestamp: SystemTime::UNIX_EPOCH,
        }
    }

    /// The id of the object whose signal was emitted.
    pub fn sender(&self) -> &ObjectId {
        &self.sender
    }

    /// Metadata that came from another process.
    pub(crate) fn received(
        sender: String,
        topic: String,
        message_id: u64,
        sequence: u64,
        timestamp: SystemTime,
    ) -> Self {
        let signal_at = (sender.len() + 1).min(topic.len());
        Self {
            sender: ObjectId::internal(sender),
            topic: Arc::from(topic),
            signal_at,
            message_id,
            sequence,
            timestamp,
        }
    }

    /// The signal's name (the field name).
    pub fn signal(&self) -> &str {
        self.topic.get(self.signal_at..).unwrap_or("")
    }

    /// The emission's topic: `<sender id>/<signal name>`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Unique among the emissions of this process.
    pub fn message_id(&self) -> u64 {
        self.message_id
    }

    /// Counts the emissions of this signal that carried metadata, from 0.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Wall-clock time of the emission.
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }
}
