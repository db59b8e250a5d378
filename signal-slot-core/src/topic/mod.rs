//! Topics, subscription patterns, and an index that matches one topic against
//! many patterns.
//!
//! This is the one place that documents the grammar; the items of this module
//! refer here.
//!
//! # Topics
//!
//! A topic names what a signal publishes, MQTT-style: a non-empty string of
//! *levels* separated by `/`. The framework's default topic of a signal is
//! `<object id>/<signal name>`; a signal can be given any other, e.g.
//! `sensors/kitchen/temperature`.
//!
//! A valid topic
//! * is not empty and is at most [`MAX_TOPIC_LEN`] (1024) bytes long;
//! * has no empty level: no leading, trailing or doubled `/`;
//! * contains no control character (Unicode category `Cc`: `\0`, `\t`, `\n`,
//!   ...);
//! * contains no `+` and no `#`: those are the wildcards of patterns.
//!
//! Any other character is allowed, spaces and non-ASCII included. Levels are
//! compared byte for byte: `Kitchen` and `kitchen` differ.
//!
//! ```
//! use signal_slot_core::topic::validate_topic;
//!
//! assert!(validate_topic("sensors/kitchen/temperature").is_ok());
//! assert!(validate_topic("obj-7/value_changed").is_ok());
//! assert!(validate_topic("température/cuisine").is_ok());
//!
//! for bad in ["", "/a", "a/", "a//b", "a/+", "a/#", "a\tb"] {
//!     assert!(validate_topic(bad).is_err(), "{bad:?}");
//! }
//! let err = validate_topic("a/b+c").unwrap_err();
//! assert_eq!(err.position, 3); // byte offset of the offending character
//! assert_eq!(
//!     err.to_string(),
//!     r#"invalid topic "a/b+c" at byte 3: '+' is a wildcard, not allowed in a topic"#
//! );
//! ```
//!
//! # Patterns
//!
//! A [`Pattern`] selects topics. It is one of three kinds:
//!
//! | kind | written as | matches |
//! | --- | --- | --- |
//! | exact | a valid topic | that topic only |
//! | wildcard | levels, some of them `+` or a last `#` | see below |
//! | regex | `re:` then a regex | topics the whole regex matches |
//!
//! **Wildcards.** `+` stands for exactly one level; `#` stands for zero or more
//! remaining levels. Each must be a whole level (`a+b`, `a/b#` are errors) and
//! `#` must be the last level (`a/#/b` is an error). Otherwise a wildcard
//! pattern follows the rules of topics (length, empty levels, control
//! characters). As in MQTT, `a/#` also matches `a` itself, and `#` alone
//! matches every topic.
//!
//! | pattern | matches | does not match |
//! | --- | --- | --- |
//! | `sensors/+/temperature` | `sensors/kitchen/temperature` | `sensors/temperature`, `sensors/a/b/temperature` |
//! | `sensors/#` | `sensors`, `sensors/kitchen`, `sensors/kitchen/temperature` | `sensorsX`, `other/sensors` |
//! | `+/+` | `a/b` | `a`, `a/b/c` |
//! | `+/#` | `a`, `a/b`, `a/b/c` | — |
//! | `#` | every topic | — |
//!
//! ```
//! use signal_slot_core::topic::Pattern;
//!
//! let p = Pattern::parse("sensors/#").unwrap();
//! assert!(p.matches("sensors"));
//! assert!(p.matches("sensors/kitchen/temperature"));
//! assert!(!p.matches("sensorsX"));
//!
//! let p: Pattern = "+/+".parse().unwrap();
//! assert!(p.matches("a/b"));
//! assert!(!p.matches("a"));
//!
//! let err = Pattern::parse("a/#/b").unwrap_err();
//! assert_eq!((err.position, err.reason.as_str()), (2, "'#' must be the last level"));
//! assert_eq!(
//!     err.to_string(),
//!     r#"invalid pattern "a/#/b" at byte 2: '#' must be the last level"#
//! );
//! assert_eq!(Pattern::parse("a/b+").unwrap_err().reason, "'+' must be a whole level");
//! ```
//!
//! **Regexes.** `re:` followed by a regex in the syntax of the
//! [`regex`](https://docs.rs/regex) crate, matched against the *whole* topic
//! (it is anchored as `^(?:...)$`; no need to write `^` or `$`). `/` has no
//! special meaning to it: `.` matches `/` too, use `[^/]` for "within one
//! level". Compiling one is limited to [`REGEX_SIZE_LIMIT`] (1 MiB), so a huge
//! regex is an error, not an exhausted memory. An error in the regex is
//! reported at byte 3 (the start of the regex), with the regex crate's message.
//!
//! To match a topic that itself begins with `re:` exactly, use a regex:
//! `re:re:foo` matches the topic `re:foo`.
//!
//! ```
//! use signal_slot_core::topic::Pattern;
//!
//! let p = Pattern::parse("re:sensors/[^/]+/(temperature|humidity)").unwrap();
//! assert!(p.matches("sensors/kitchen/humidity"));
//! assert!(!p.matches("sensors/kitchen/humidity/raw"));
//! assert!(!Pattern::parse("re:a").unwrap().matches("ab")); // anchored
//!
//! let err = Pattern::parse("re:a(").unwrap_err();
//! assert_eq!(err.to_string(), r#"invalid pattern "re:a(" at byte 3: unclosed group"#);
//! assert!(Pattern::parse(r"re:(?:\w{100}){100}{100}").is_err()); // too big
//! ```
//!
//! No pattern matches a string that is not a valid topic: [`Pattern::matches`]
//! and [`PatternIndex::matching`] return no match for `""` or `a//b`.
//!
//! # Index
//!
//! [`PatternIndex`] holds many subscriptions and answers which of them match a
//! topic, without trying each pattern in turn; it returns exactly the ids
//! whose [`Pattern::matches`] is true.

mod index;
mod name;
mod pattern;

pub use index::PatternIndex;
pub(crate) use name::is_valid_topic;
pub use name::{validate_topic, TopicError, MAX_TOPIC_LEN};
pub use pattern::{Pattern, PatternError, REGEX_PREFIX, REGEX_SIZE_LIMIT};
