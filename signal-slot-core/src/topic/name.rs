//! Topic validation; the level scanner that pattern parsing shares.
//!
//! The grammar is documented once, in the [module docs](super).

/// Longest topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 1024;

/// Why a string is not a valid topic. See the [grammar](super).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic {topic:?} at byte {position}: {reason}")]
pub struct TopicError {
    /// The rejected string.
    pub topic: String,
    /// Byte offset of the offending character or level.
    pub position: usize,
    /// What is wrong there.
    pub reason: String,
}

/// Checks that `topic` is a valid topic: non-empty, at most
/// [`MAX_TOPIC_LEN`] bytes, `/`-separated non-empty levels, no control
/// characters, no `+` or `#`.
///
/// ```
/// use signal_slot_core::topic::validate_topic;
///
/// assert!(validate_topic("sensors/kitchen/temperature").is_ok());
/// let err = validate_topic("sensors//temperature").unwrap_err();
/// assert_eq!(err.position, 8);
/// assert_eq!(
///     err.to_string(),
///     r#"invalid topic "sensors//temperature" at byte 8: empty level ("//")"#
/// );
/// ```
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    scan(topic, false).map_err(|(position, reason)| TopicError {
        topic: topic.to_string(),
        position,
        reason,
    })
}

/// Whether `topic` is valid, without building an error.
pub(crate) fn is_valid_topic(topic: &str) -> bool {
    scan(topic, false).is_ok()
}

/// Checks the level structure of a topic (`wildcards == false`) or of a
/// wildcard pattern (`wildcards == true`: `+` as a whole level, `#` as a whole
/// last level). Reports the first problem, by byte offset, as
/// `(position, reason)`.
pub(super) fn scan(s: &str, wildcards: bool) -> Result<(), (usize, String)> {
    let what = if wildcards { "pattern" } else { "topic" };
    if s.is_empty() {
        return Err((0, format!("{what} is empty")));
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err((
            MAX_TOPIC_LEN,
            format!("{what} is longer than {MAX_TOPIC_LEN} bytes"),
        ));
    }
    let bytes = s.as_bytes();
    let mut level_start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '/' => {
                if i == 0 {
                    return Err((0, "empty level (leading '/')".to_string()));
                }
                if bytes[i - 1] == b'/' {
                    return Err((i, "empty level (\"//\")".to_string()));
                }
                if i + 1 == s.len() {
                    return Err((i, "empty level (trailing '/')".to_string()));
                }
                level_start = i + 1;
            }
            '+' | '#' if !wildcards => {
                return Err((i, format!("'{c}' is a wildcard, not allowed in a topic")));
            }
            '+' | '#' => {
                let level_end = s[i..].find('/').map_or(s.len(), |e| i + e);
                if level_start != i || level_end != i + 1 {
                    return Err((i, format!("'{c}' must be a whole level")));
                }
                if c == '#' && level_end != s.len() {
                    return Err((i, "'#' must be the last level".to_string()));
                }
            }
            c if c.is_control() => {
                return Err((
                    i,
                    format!("control character U+{:04X} is not allowed", c as u32),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(topic: &str) -> (usize, String) {
        let e = validate_topic(topic).unwrap_err();
        assert_eq!(e.topic, topic);
        (e.position, e.reason)
    }

    #[test]
    fn valid_topics() {
        for t in [
            "a",
            "a/b",
            "sensors/kitchen/temperature",
            "obj-1/value_changed",
            "with space/ünïcödé/日本",
            "re:x",
            "$SYS/x",
            "a.b/c:d/e*f",
        ] {
            assert_eq!(validate_topic(t), Ok(()), "{t}");
        }
        let longest = "a".repeat(MAX_TOPIC_LEN);
        assert_eq!(validate_topic(&longest), Ok(()));
    }

    #[test]
    fn invalid_topics() {
        assert_eq!(err(""), (0, "topic is empty".into()));
        assert_eq!(err("/a"), (0, "empty level (leading '/')".into()));
        assert_eq!(err("/"), (0, "empty level (leading '/')".into()));
        assert_eq!(err("a/"), (1, "empty level (trailing '/')".into()));
        assert_eq!(err("ab//c"), (3, "empty level (\"//\")".into()));
        assert_eq!(
            err("a/b+c"),
            (3, "'+' is a wildcard, not allowed in a topic".into())
        );
        assert_eq!(
            err("a/#"),
            (2, "'#' is a wildcard, not allowed in a topic".into())
        );
        assert_eq!(
            err("é/a\u{7}"),
            (4, "control character U+0007 is not allowed".into())
        );
        assert_eq!(
            err("a\nb"),
            (1, "control character U+000A is not allowed".into())
        );
        assert_eq!(
            err("a\u{85}"),
            (1, "control character U+0085 is not allowed".into())
        );
        let too_long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(
            err(&too_long),
            (1024, "topic is longer than 1024 bytes".into())
        );
    }

    #[test]
    fn display() {
        assert_eq!(
            validate_topic("a/+").unwrap_err().to_string(),
            r#"invalid topic "a/+" at byte 2: '+' is a wildcard, not allowed in a topic"#
        );
        assert_eq!(
            validate_topic("a\tb").unwrap_err().to_string(),
            r#"invalid topic "a\tb" at byte 1: control character U+0009 is not allowed"#
        );
    }
}
