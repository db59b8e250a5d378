//! Pattern parsing and the naive matcher.
//!
//! The grammar is documented once, in the [module docs](super).

use std::fmt;
use std::str::FromStr;

use regex::{Regex, RegexBuilder};

use super::name::{is_valid_topic, scan};

/// Prefix of a regex pattern.
pub const REGEX_PREFIX: &str = "re:";

/// Limit on the compiled size of one regex pattern, in bytes (the regex
/// crate's `size_limit`): user input cannot make a pattern take more memory.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a string is not a valid pattern. See the [grammar](super).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern {pattern:?} at byte {position}: {reason}")]
pub struct PatternError {
    /// The rejected string.
    pub pattern: String,
    /// Byte offset of the offending character or level; for a regex that does
    /// not compile, the offset of the regex body (3, after `re:`).
    pub position: usize,
    /// What is wrong there (one line).
    pub reason: String,
}

/// A parsed subscription pattern: exact topic, MQTT-style wildcard, or `re:`
/// regex. See the [grammar](super).
///
/// Two patterns are equal when their source strings are.
#[derive(Clone)]
pub struct Pattern {
    src: String,
    kind: Kind,
}

#[derive(Clone)]
pub(super) enum Kind {
    Exact,
    Wildcard(Vec<Level>),
    Regex {
        re: Regex,
        /// The anchored source `re` was compiled from (what a `RegexSet`
        /// gets).
        anchored: String,
    },
}

/// One level of a wildcard pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Level {
    Literal(Box<str>),
    /// `+`: exactly one level.
    Plus,
    /// `#`: zero or more remaining levels (always the last).
    Hash,
}

impl Pattern {
    /// Parses a pattern.
    ///
    /// ```
    /// use signal_slot_core::topic::Pattern;
    ///
    /// let p = Pattern::parse("sensors/+/temperature").unwrap();
    /// assert!(p.matches("sensors/kitchen/temperature"));
    /// assert!(!p.is_exact());
    ///
    /// let err = Pattern::parse("a/#/b").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     r#"invalid pattern "a/#/b" at byte 2: '#' must be the last level"#
    /// );
    /// ```
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        let fail = |position: usize, reason: String| PatternError {
            pattern: s.to_string(),
            position,
            reason,
        };
        if let Some(body) = s.strip_prefix(REGEX_PREFIX) {
            let at = REGEX_PREFIX.len();
            if body.is_empty() {
                return Err(fail(at, "empty regex".to_string()));
            }
            let (re, anchored) = compile_anchored(body).map_err(|e| fail(at, e))?;
            return Ok(Pattern {
                src: s.to_string(),
                kind: Kind::Regex { re, anchored },
            });
        }
        scan(s, true).map_err(|(position, reason)| fail(position, reason))?;
        let levels: Vec<Level> = s
            .split('/')
            .map(|l| match l {
                "+" => Level::Plus,
                "#" => Level::Hash,
                _ => Level::Literal(l.into()),
            })
            .collect();
        let kind = if levels.iter().all(|l| matches!(l, Level::Literal(_))) {
            Kind::Exact
        } else {
            Kind::Wildcard(levels)
        };
        Ok(Pattern {
            src: s.to_string(),
            kind,
        })
    }

    /// The source string, as given to [`parse`](Self::parse).
    pub fn as_str(&self) -> &str {
        &self.src
    }

    /// Whether this pattern is an exact topic (no wildcard, not a regex): it
    /// matches only the topic equal to [`as_str`](Self::as_str).
    pub fn is_exact(&self) -> bool {
        matches!(self.kind, Kind::Exact)
    }

    /// Whether this pattern matches `topic`. Always false when `topic` is not
    /// a valid topic (see [`validate_topic`](super::validate_topic)).
    ///
    /// Straightforward: compares level by level, or runs the regex. To match
    /// one topic against many patterns, use a
    /// [`PatternIndex`](super::PatternIndex).
    pub fn matches(&self, topic: &str) -> bool {
        is_valid_topic(topic) && self.matches_valid(topic)
    }

    /// [`matches`](Self::matches) for a topic the caller already knows is
    /// valid (a topic index that validated it once, on entry).
    pub(crate) fn matches_valid(&self, topic: &str) -> bool {
        match &self.kind {
            Kind::Exact => self.src == topic,
            Kind::Wildcard(levels) => wildcard_matches(levels, topic),
            Kind::Regex { re, .. } => re.is_match(topic),
        }
    }

    /// The first level, when it is a literal: only topics that start with it
    /// can match.
    pub(crate) fn first_literal(&self) -> Option<&str> {
        match &self.kind {
            Kind::Exact => self.src.split('/').next(),
            Kind::Wildcard(levels) => match levels.first() {
                Some(Level::Literal(l)) => Some(l),
                _ => None,
            },
            Kind::Regex { .. } => None,
        }
    }

    /// True for `<literal>/#`, which matches every (valid) topic whose first
    /// level is that literal.
    pub(crate) fn is_first_level_subtree(&self) -> bool {
        matches!(&self.kind, Kind::Wildcard(levels)
            if matches!(levels.as_slice(), [Level::Literal(_), Level::Hash]))
    }

    pub(super) fn kind(&self) -> &Kind {
        &self.kind
    }
}

fn wildcard_matches(levels: &[Level], topic: &str) -> bool {
    let mut parts = topic.split('/');
    for level in levels {
        match level {
            Level::Hash => return true,
            Level::Plus => {
                if parts.next().is_none() {
                    return false;
                }
            }
            Level::Literal(lit) => {
                if parts.next() != Some(&**lit) {
                    return false;
                }
            }
        }
    }
    parts.next().is_none()
}

fn build(src: &str) -> Result<Regex, String> {
    RegexBuilder::new(src)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| one_line(&e.to_string()))
}

/// Compiles `body` anchored to the whole topic: `^(?:body)$`.
///
/// The body is first compiled alone so that an error message refers to the
/// user's text, and so that a body with unbalanced groups (`a)|(b`) cannot
/// escape the anchoring group. A body that ends inside an `(?x)` comment
/// would comment out the closing `)$`; a newline then ends the comment (and
/// is ignored whitespace in that mode).
fn compile_anchored(body: &str) -> Result<(Regex, String), String> {
    build(body)?;
    let anchored = format!("^(?:{body})$");
    match build(&anchored) {
        Ok(re) => Ok((re, anchored)),
        Err(first) => {
            let anchored = format!("^(?:{body}\n)$");
            match build(&anchored) {
                Ok(re) => Ok((re, anchored)),
                Err(_) => Err(first),
            }
        }
    }
}

/// The regex crate's message on one line: the `error: ...` lines of a syntax
/// error (without the echoed pattern and caret), else the whitespace-collapsed
/// message.
fn one_line(msg: &str) -> String {
    let errors: Vec<&str> = msg
        .lines()
        .filter_map(|l| l.trim().strip_prefix("error: "))
        .collect();
    if errors.is_empty() {
        msg.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        errors.join("; ")
    }
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.src).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.src)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.src == other.src
    }
}

impl Eq for Pattern {}

impl std::hash::Hash for Pattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.src.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(s: &str) -> (usize, String) {
        let e = Pattern::parse(s).unwrap_err();
        assert_eq!(e.pattern, s);
        (e.position, e.reason)
    }

    #[test]
    fn kinds() {
        assert!(p("a/b").is_exact());
        assert!(p("a").is_exact());
        assert!(!p("a/+").is_exact());
        assert!(!p("#").is_exact());
        assert!(!p("re:a").is_exact());
        assert_eq!(p("re:a/.*").as_str(), "re:a/.*");
        assert_eq!(format!("{:?}", p("a/+")), r#"Pattern("a/+")"#);
        assert_eq!(p("a/+").to_string(), "a/+");
        assert_eq!("x/#".parse::<Pattern>().unwrap(), p("x/#"));
    }

    #[test]
    fn exact() {
        let a = p("sensors/kitchen");
        assert!(a.matches("sensors/kitchen"));
        assert!(!a.matches("sensors"));
        assert!(!a.matches("sensors/kitchen/x"));
        assert!(!a.matches("sensors/kitche"));
    }

    #[test]
    fn mqtt_edge_cases() {
        // `#` matches the parent level too (zero remaining levels).
        assert!(p("a/#").matches("a"));
        assert!(p("a/#").matches("a/b"));
        assert!(p("a/#").matches("a/b/c"));
        assert!(!p("a/#").matches("b"));
        assert!(!p("a/#").matches("ab"));
        // `#` alone matches everything valid.
        for t in ["a", "a/b", "x/y/z/w"] {
            assert!(p("#").matches(t), "{t}");
        }
        // `+` is exactly one non-empty level.
        assert!(p("+").matches("a"));
        assert!(!p("+").matches(""));
        assert!(!p("+").matches("a/b"));
        assert!(!p("a/+").matches("a"));
        assert!(!p("a/+").matches("a/"));
        assert!(p("a/+").matches("a/b"));
        assert!(!p("+/+").matches("a"));
        assert!(p("+/+").matches("a/b"));
        assert!(!p("+/+").matches("a/b/c"));
        assert!(p("+/#").matches("a"));
        assert!(p("+/b/#").matches("a/b"));
        assert!(!p("+/b/#").matches("a/c"));
        // Invalid topics never match.
        assert!(!p("#").matches(""));
        assert!(!p("#").matches("a//b"));
        assert!(!p("re:.*").matches(""));
        assert!(!p("re:.*").matches("a/+"));
    }

    #[test]
    fn first_level_helpers() {
        assert_eq!(p("a/b").first_literal(), Some("a"));
        assert_eq!(p("a/+/c").first_literal(), Some("a"));
        assert_eq!(p("+/b").first_literal(), None);
        assert_eq!(p("#").first_literal(), None);
        assert_eq!(p("re:a/.*").first_literal(), None);
        assert!(p("a/#").is_first_level_subtree());
        assert!(!p("a/b/#").is_first_level_subtree());
        assert!(!p("+/#").is_first_level_subtree());
        assert!(!p("a").is_first_level_subtree());
        for (pat, topic) in [
            ("a/#", "a"),
            ("a/+", "a/b"),
            ("a/b", "a/b"),
            ("re:a/.*", "a/x"),
        ] {
            assert!(p(pat).matches_valid(topic), "{pat} {topic}");
        }
        assert!(!p("a/+").matches_valid("a/b/c"));
    }

    #[test]
    fn regex_is_anchored() {
        assert!(p("re:a").matches("a"));
        assert!(!p("re:a").matches("ab"));
        assert!(!p("re:a").matches("ba"));
        assert!(!p("re:a|b").matches("ab"));
        assert!(p("re:a|b").matches("b"));
        assert!(p("re:a/.*").matches("a/b/c"));
        assert!(!p("re:a/.*").matches("a"));
        assert!(p("re:sensors/[^/]+/temp").matches("sensors/k/temp"));
        // A comment at the end in verbose mode does not eat the anchor.
        let v = p("re:(?x) a / b # comment");
        assert!(v.matches("a/b"));
        assert!(!v.matches("a/bc"));
        // Flags stay inside the pattern's group.
        assert!(p("re:(?i)A").matches("a"));
        assert!(!p("re:(?i)A").matches("ab"));
    }

    #[test]
    fn invalid_patterns() {
        assert_eq!(err(""), (0, "pattern is empty".into()));
        assert_eq!(err("a/#/b"), (2, "'#' must be the last level".into()));
        assert_eq!(err("#/a"), (0, "'#' must be the last level".into()));
        assert_eq!(err("a+b"), (1, "'+' must be a whole level".into()));
        assert_eq!(err("a/b+"), (3, "'+' must be a whole level".into()));
        assert_eq!(err("a/+b"), (2, "'+' must be a whole level".into()));
        assert_eq!(err("a/##"), (2, "'#' must be a whole level".into()));
        assert_eq!(err("a/b#"), (3, "'#' must be a whole level".into()));
        assert_eq!(err("/+"), (0, "empty level (leading '/')".into()));
        assert_eq!(err("+/"), (1, "empty level (trailing '/')".into()));
        assert_eq!(err("+//#"), (2, "empty level (\"//\")".into()));
        assert_eq!(
            err("a/\u{0}"),
            (2, "control character U+0000 is not allowed".into())
        );
        let too_long = format!("{}/#", "a".repeat(1100));
        assert_eq!(
            err(&too_long),
            (1024, "pattern is longer than 1024 bytes".into())
        );
        assert_eq!(err("re:"), (3, "empty regex".into()));
    }

    #[test]
    fn display() {
        assert_eq!(
            Pattern::parse("a/#/b").unwrap_err().to_string(),
            r#"invalid pattern "a/#/b" at byte 2: '#' must be the last level"#
        );
    }

    #[test]
    fn regex_errors_are_one_line() {
        assert_eq!(err("re:a("), (3, "unclosed group".into()));
        assert_eq!(err("re:a)|(b"), (3, "unopened group".into()));
        let (pos, reason) = err("re:[z-a]");
        assert_eq!(pos, 3);
        assert!(!reason.contains('\n'), "{reason}");
        assert!(reason.contains("invalid character class range"), "{reason}");
        let e = Pattern::parse("re:x{").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn huge_regex_is_an_error() {
        // Would compile to far more than the limit.
        let (pos, reason) = err(r"re:(?:\w{100}){100}{100}");
        assert_eq!(pos, 3);
        assert!(reason.contains("size limit"), "{reason}");
        assert!(!reason.contains('\n'));
        // Deep nesting is refused by the parser, not a stack overflow.
        let deep = format!("re:{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        let (pos, reason) = err(&deep);
        assert_eq!(pos, 3);
        assert!(!reason.contains('\n'), "{reason}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            if let Ok(pat) = Pattern::parse(&s) {
                prop_assert_eq!(pat.as_str(), s.as_str());
                let _ = pat.matches(&s);
            }
        }

        #[test]
        fn parse_regex_never_panics(s in any::<String>()) {
            let s = format!("re:{s}");
            if let Ok(pat) = Pattern::parse(&s) {
                let _ = pat.matches("a/b");
            }
        }

        #[test]
        fn parse_grammar_chars_never_panics(s in "[ab+#/é\u{1}]{0,12}") {
            match Pattern::parse(&s) {
                Ok(pat) => {
                    prop_assert!(!s.is_empty());
                    let _ = pat.matches("a/b");
                }
                Err(e) => prop_assert!(e.position <= s.len()),
            }
        }

        #[test]
        fn exact_pattern_iff_valid_topic(s in "[ab/]{0,8}") {
            let topic_ok = super::super::validate_topic(&s).is_ok();
            let pat = Pattern::parse(&s);
            prop_assert_eq!(topic_ok, pat.as_ref().is_ok_and(Pattern::is_exact));
            if let Ok(pat) = pat {
                prop_assert!(pat.matches(&s));
            }
        }
    }
}
