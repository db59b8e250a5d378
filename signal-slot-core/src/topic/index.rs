//! [`PatternIndex`]: which subscriptions match a topic, without trying each.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::OnceLock;

use regex::{RegexSet, RegexSetBuilder};

use super::name::is_valid_topic;
use super::pattern::{Kind, Level, Pattern};

/// Limit on the compiled size of the combined [`RegexSet`] of an index. Past
/// it the index falls back to running each regex pattern in turn.
const REGEX_SET_SIZE_LIMIT: usize = 16 << 20;

/// Subscriptions (a [`Pattern`] and a value each), keyed by a `u64` id chosen
/// by the caller, and the question "which of them match this topic?".
///
/// * exact patterns: a hash map from topic to ids;
/// * wildcard patterns: a trie keyed by level (a literal child per level
///   text, one `+` child, a list for `#`), walked along the topic's levels, so
///   a lookup costs about the topic's depth, not the number of patterns;
/// * regex patterns: one [`RegexSet`] that tries all of them in one pass. It is
///   rebuilt lazily, by the first [`matching`](Self::matching) after an
///   [`insert`](Self::insert) or [`remove`](Self::remove) that touched a regex
///   pattern; that call pays for compiling it. The cache is a [`OnceLock`], so
///   `matching` takes `&self` and the index can be shared between threads.
///
/// Ids are meant to increase with insertion order, so that the ascending ids
/// [`matching`](Self::matching) returns are in subscription order.
///
/// ```
/// use signal_slot_core::topic::{Pattern, PatternIndex};
///
/// let mut index = PatternIndex::new();
/// index.insert(1, Pattern::parse("sensors/+/temperature").unwrap(), "any room");
/// index.insert(2, Pattern::parse("sensors/kitchen/#").unwrap(), "kitchen");
/// index.insert(3, Pattern::parse("re:sensors/.*/humidity").unwrap(), "humidity");
/// index.insert(4, Pattern::parse("sensors/kitchen/temperature").unwrap(), "exact");
///
/// assert_eq!(index.matching("sensors/kitchen/temperature"), [1, 2, 4]);
/// assert_eq!(index.matching("sensors/hall/humidity"), [3]);
/// assert_eq!(index.get(2).map(|(_, v)| *v), Some("kitchen"));
/// assert!(index.remove(1).is_some());
/// assert_eq!(index.matching("sensors/kitchen/temperature"), [2, 4]);
/// ```
#[derive(Clone)]
pub struct PatternIndex<V> {
    entries: BTreeMap<u64, (Pattern, V)>,
    exact: HashMap<Box<str>, Vec<u64>>,
    trie: Node,
    regex_ids: BTreeSet<u64>,
    regex_cache: OnceLock<RegexCache>,
}

#[derive(Clone, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Patterns ending here with `#`.
    hash: Vec<u64>,
    /// Patterns ending exactly here.
    end: Vec<u64>,
}

#[derive(Clone)]
enum RegexCache {
    /// Set index `i` is the pattern of id `ids[i]`.
    Set { set: RegexSet, ids: Vec<u64> },
    /// The set would be too large: run each regex of `regex_ids` in turn.
    EachInTurn,
}

impl<V> Default for PatternIndex<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> PatternIndex<V> {
    /// An empty index.
    pub fn new() -> Self {
        PatternIndex {
            entries: BTreeMap::new(),
            exact: HashMap::new(),
            trie: Node::default(),
            regex_ids: BTreeSet::new(),
            regex_cache: OnceLock::new(),
        }
    }

    /// Adds a subscription under `id`. If `id` was already present, its
    /// subscription is replaced and returned.
    pub fn insert(&mut self, id: u64, pattern: Pattern, value: V) -> Option<(Pattern, V)> {
        let old = self.remove(id);
        match pattern.kind() {
            Kind::Exact => {
                let ids = self.exact.entry(pattern.as_str().into()).or_default();
                ids.push(id);
            }
            Kind::Wildcard(levels) => self.trie.insert(levels, id),
            Kind::Regex { .. } => {
                self.regex_ids.insert(id);
                self.regex_cache = OnceLock::new();
            }
        }
        self.entries.insert(id, (pattern, value));
        old
    }

    /// Removes the subscription `id`, returning it; `None` if there was none.
    pub fn remove(&mut self, id: u64) -> Option<(Pattern, V)> {
        let (pattern, value) = self.entries.remove(&id)?;
        match pattern.kind() {
            Kind::Exact => {
                if let Some(ids) = self.exact.get_mut(pattern.as_str()) {
                    ids.retain(|&i| i != id);
                    if ids.is_empty() {
                        self.exact.remove(pattern.as_str());
                    }
                }
            }
            Kind::Wildcard(levels) => {
                self.trie.remove(levels, id);
            }
            Kind::Regex { .. } => {
                self.regex_ids.remove(&id);
                self.regex_cache = OnceLock::new();
            }
        }
        Some((pattern, value))
    }

    /// The subscription `id`.
    pub fn get(&self, id: u64) -> Option<(&Pattern, &V)> {
        self.entries.get(&id).map(|(p, v)| (p, v))
    }

    /// Mutable access to the value of subscription `id`.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut V> {
        self.entries.get_mut(&id).map(|(_, v)| v)
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no subscription.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All subscriptions, by ascending id.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Pattern, &V)> + '_ {
        self.entries.iter().map(|(&id, (p, v))| (id, p, v))
    }

    /// Ids of all subscriptions whose pattern matches `topic`, ascending, each
    /// once: the same as the ids whose [`Pattern::matches`] is true. Empty if
    /// `topic` is not a valid topic.
    ///
    /// The first call after a change to the regex patterns compiles their
    /// [`RegexSet`].
    pub fn matching(&self, topic: &str) -> Vec<u64> {
        let mut out = Vec::new();
        if self.entries.is_empty() || !is_valid_topic(topic) {
            return out;
        }
        if let Some(ids) = self.exact.get(topic) {
            out.extend_from_slice(ids);
        }
        if !self.trie.is_empty() {
            let levels: Vec<&str> = topic.split('/').collect();
            self.trie.collect(&levels, &mut out);
        }
        if !self.regex_ids.is_empty() {
            match self.regex_cache.get_or_init(|| self.build_regex_cache()) {
                RegexCache::Set { set, ids } => {
                    out.extend(set.matches(topic).into_iter().map(|i| ids[i]));
                }
                RegexCache::EachInTurn => {
                    out.extend(
                        self.regex_ids.iter().copied().filter(|id| {
                            self.entries.get(id).is_some_and(|(p, _)| p.matches(topic))
                        }),
                    );
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn build_regex_cache(&self) -> RegexCache {
        let mut ids = Vec::with_capacity(self.regex_ids.len());
        let mut sources = Vec::with_capacity(self.regex_ids.len());
        for id in &self.regex_ids {
            if let Some((pattern, _)) = self.entries.get(id) {
                if let Kind::Regex { anchored, .. } = pattern.kind() {
                    ids.push(*id);
                    sources.push(anchored.as_str());
                }
            }
        }
        match RegexSetBuilder::new(sources)
            .size_limit(REGEX_SET_SIZE_LIMIT)
            // The default lazy-DFA cache (2 MiB) thrashes above ~2,000 patterns and
            // the set falls back to an engine whose cost grows with the count.
            .dfa_size_limit(REGEX_SET_SIZE_LIMIT)
            .build()
        {
            Ok(set) => RegexCache::Set { set, ids },
            Err(_) => RegexCache::EachInTurn,
        }
    }

    #[cfg(test)]
    fn trie_nodes(&self) -> usize {
        self.trie.count()
    }
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.end.is_empty()
    }

    fn insert(&mut self, levels: &[Level], id: u64) {
        let mut node = self;
        for level in levels {
            node = match level {
                Level::Literal(lit) => node.children.entry(lit.clone()).or_default(),
                Level::Plus => node.plus.get_or_insert_with(Default::default),
                Level::Hash => {
                    node.hash.push(id);
                    return;
                }
            };
        }
        node.end.push(id);
    }

    /// Removes `id` from the node `levels` leads to; prunes nodes left empty
    /// on the way back up.
    fn remove(&mut self, levels: &[Level], id: u64) {
        let Some((first, rest)) = levels.split_first() else {
            self.end.retain(|&i| i != id);
            return;
        };
        match first {
            Level::Literal(lit) => {
                if let Some(child) = self.children.get_mut(lit) {
                    child.remove(rest, id);
                    if child.is_empty() {
                        self.children.remove(lit);
                    }
                }
            }
            Level::Plus => {
                if let Some(child) = self.plus.as_mut() {
                    child.remove(rest, id);
                    if child.is_empty() {
                        self.plus = None;
                    }
                }
            }
            Level::Hash => self.hash.retain(|&i| i != id),
        }
    }

    /// Adds the ids of patterns under this node that match the remaining
    /// `levels` of a topic. Visits each node at most once.
    fn collect(&self, levels: &[&str], out: &mut Vec<u64>) {
        out.extend_from_slice(&self.hash);
        match levels.split_first() {
            None => out.extend_from_slice(&self.end),
            Some((first, rest)) => {
                if let Some(child) = self.children.get(*first) {
                    child.collect(rest, out);
                }
                if let Some(child) = &self.plus {
                    child.collect(rest, out);
                }
            }
        }
    }

    #[cfg(test)]
    fn count(&self) -> usize {
        1 + self.children.values().map(Node::count).sum::<usize>()
            + self.plus.as_ref().map_or(0, |p| p.count())
    }
}

impl<V: fmt::Debug> fmt::Debug for PatternIndex<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|(id, (p, v))| (id, (p.as_str(), v))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Instant;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn kinds_together() {
        let mut ix = PatternIndex::new();
        ix.insert(1, p("a/b"), ());
        ix.insert(2, p("a/+"), ());
        ix.insert(3, p("a/#"), ());
        ix.insert(4, p("#"), ());
        ix.insert(5, p("+/+"), ());
        ix.insert(6, p("re:a/.*"), ());
        ix.insert(7, p("re:a"), ());
        ix.insert(8, p("a/b"), ());
        assert_eq!(ix.len(), 8);
        assert_eq!(ix.matching("a/b"), [1, 2, 3, 4, 5, 6, 8]);
        assert_eq!(ix.matching("a"), [3, 4, 7]);
        assert_eq!(ix.matching("b"), [4]);
        assert_eq!(ix.matching("a/b/c"), [3, 4, 6]);
        assert!(ix.matching("a//b").is_empty());
        assert!(ix.matching("").is_empty());
        assert_eq!(ix.remove(4).map(|(p, _)| p), Some(p("#")));
        assert_eq!(ix.remove(4), None);
        assert_eq!(ix.remove(7).map(|(p, _)| p), Some(p("re:a")));
        assert_eq!(ix.matching("a"), [3]);
        assert_eq!(ix.remove(1).map(|(p, _)| p), Some(p("a/b")));
        assert_eq!(ix.matching("a/b"), [2, 3, 5, 6, 8]);
        assert_eq!(
            ix.iter().map(|(id, _, _)| id).collect::<Vec<_>>(),
            [2, 3, 5, 6, 8]
        );
    }

    #[test]
    fn replace_same_id() {
        let mut ix = PatternIndex::new();
        assert!(ix.insert(1, p("a/+"), "first").is_none());
        let old = ix.insert(1, p("re:b"), "second").unwrap();
        assert_eq!((old.0.as_str(), old.1), ("a/+", "first"));
        assert_eq!(ix.len(), 1);
        assert!(ix.matching("a/x").is_empty());
        assert_eq!(ix.matching("b"), [1]);
        *ix.get_mut(1).unwrap() = "third";
        assert_eq!(
            ix.get(1).map(|(p, v)| (p.as_str(), *v)),
            Some(("re:b", "third"))
        );
        assert_eq!(ix.trie_nodes(), 1);
    }

    #[test]
    fn removing_prunes_the_trie() {
        let mut ix = PatternIndex::new();
        ix.insert(1, p("a/+/c/#"), ());
        ix.insert(2, p("a/+/d"), ());
        ix.insert(3, p("+"), ());
        // root, a, a/+, a/+/c, a/+/d, +
        assert_eq!(ix.trie_nodes(), 6);
        ix.remove(1);
        assert_eq!(ix.trie_nodes(), 5);
        ix.remove(2);
        assert_eq!(ix.trie_nodes(), 2);
        ix.remove(3);
        assert_eq!(ix.trie_nodes(), 1);
        assert!(ix.is_empty());
        assert!(ix.exact.is_empty());
    }

    #[test]
    fn exact_ids_pruned() {
        let mut ix = PatternIndex::new();
        ix.insert(1, p("a"), ());
        ix.insert(2, p("a"), ());
        ix.remove(1);
        assert_eq!(ix.matching("a"), [2]);
        ix.remove(2);
        assert!(ix.exact.is_empty());
    }

    #[test]
    fn many_non_matching_wildcards_are_not_scanned() {
        let mut ix = PatternIndex::new();
        for i in 0..10_000u64 {
            ix.insert(i, p(&format!("dev{i}/+/temp/#")), ());
        }
        // The walk only visits the root: no literal child "other".
        let start = Instant::now();
        for _ in 0..10_000 {
            assert!(ix.matching("other/x/temp/y").is_empty());
        }
        let elapsed = start.elapsed();
        // A scan would be 10^8 pattern checks; the walk is 10^4 lookups.
        assert!(elapsed.as_secs() < 2, "{elapsed:?}");
        assert_eq!(ix.matching("dev42/x/temp"), [42]);
    }

    #[test]
    fn many_regexes_in_one_set() {
        let mut ix = PatternIndex::new();
        for i in 0..200u64 {
            ix.insert(i, p(&format!("re:dev{i}/.*")), ());
        }
        assert_eq!(ix.matching("dev7/x"), [7]);
        assert!(matches!(ix.regex_cache.get(), Some(RegexCache::Set { .. })));
        assert!(ix.matching("dev7").is_empty());
        // A change drops the set; the next lookup rebuilds it.
        ix.remove(7);
        assert!(ix.regex_cache.get().is_none());
        assert!(ix.matching("dev7/x").is_empty());
        assert_eq!(ix.matching("dev8/x"), [8]);
    }

    #[test]
    fn oversized_set_falls_back() {
        let mut ix = PatternIndex::new();
        // Each is under the per-pattern limit; together they exceed the set's.
        for i in 0..40u64 {
            ix.insert(i, p(&format!(r"re:x{i}/\w{{20}}")), ());
        }
        let topic = format!("x3/{}", "é".repeat(20));
        assert_eq!(ix.matching(&topic), [3]);
        assert!(matches!(ix.regex_cache.get(), Some(RegexCache::EachInTurn)));
        assert!(ix.matching("x3/a").is_empty());
    }

    #[test]
    fn index_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<PatternIndex<u32>>();
    }

    // ---- model test ----

    const LEVELS: [&str; 4] = ["a", "b", "ab", "x1"];
    const REGEXES: [&str; 6] = [
        "re:a/.*",
        "re:.*b",
        "re:(a|b)(/x1)?",
        "re:[ab]+(/[ab]+)*",
        "re:x1",
        "re:.*/x1/.*",
    ];

    fn level() -> impl Strategy<Value = String> {
        prop::sample::select(&LEVELS[..]).prop_map(str::to_string)
    }

    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..=5).prop_map(|l| l.join("/"))
    }

    fn pattern() -> impl Strategy<Value = Pattern> {
        let wild_level = prop_oneof![3 => level(), 2 => Just("+".to_string())];
        let wildcard = (prop::collection::vec(wild_level, 0..=4), any::<bool>()).prop_map(
            |(mut levels, hash)| {
                if hash || levels.is_empty() {
                    levels.push("#".to_string());
                }
                levels.join("/")
            },
        );
        let regex = prop::sample::select(&REGEXES[..]).prop_map(str::to_string);
        prop_oneof![3 => topic(), 5 => wildcard, 2 => regex]
            .prop_map(|s| Pattern::parse(&s).unwrap())
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Pattern),
        Remove(prop::sample::Index),
        RemoveMissing,
        Query(String),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => pattern().prop_map(Op::Insert),
            2 => any::<prop::sample::Index>().prop_map(Op::Remove),
            1 => Just(Op::RemoveMissing),
            3 => topic().prop_map(Op::Query),
        ]
    }

    fn naive(model: &BTreeMap<u64, Pattern>, t: &str) -> Vec<u64> {
        model
            .iter()
            .filter(|(_, p)| p.matches(t))
            .map(|(&id, _)| id)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn index_agrees_with_naive_matcher(
            ops in prop::collection::vec(op(), 1..60),
            probes in prop::collection::vec(topic(), 1..10),
        ) {
            let mut ix = PatternIndex::new();
            let mut model: BTreeMap<u64, Pattern> = BTreeMap::new();
            let mut next_id = 0u64;
            for op in ops {
                match op {
                    Op::Insert(pat) => {
                        next_id += 1;
                        prop_assert!(ix.insert(next_id, pat.clone(), next_id).is_none());
                        model.insert(next_id, pat);
                    }
                    Op::Remove(i) => {
                        if model.is_empty() {
                            continue;
                        }
                        let id = *model.keys().nth(i.index(model.len())).unwrap();
                        let pat = model.remove(&id).unwrap();
                        prop_assert_eq!(ix.remove(id), Some((pat, id)));
                    }
                    Op::RemoveMissing => {
                        prop_assert_eq!(ix.remove(next_id + 1), None);
                    }
                    Op::Query(t) => {
                        prop_assert_eq!(ix.matching(&t), naive(&model, &t), "topic {}", t);
                    }
                }
                prop_assert_eq!(ix.len(), model.len());
            }
            for t in &probes {
                prop_assert_eq!(ix.matching(t), naive(&model, t), "topic {}", t);
            }
            // Removing everything leaves an empty trie and maps.
            let ids: Vec<u64> = model.keys().copied().collect();
            for id in ids {
                prop_assert!(ix.remove(id).is_some());
            }
            prop_assert!(ix.is_empty());
            prop_assert_eq!(ix.trie_nodes(), 1);
            prop_assert!(ix.exact.is_empty());
            prop_assert!(ix.regex_ids.is_empty());
        }

        #[test]
        fn invalid_topics_match_nothing(t in "[ab/+#]{0,6}") {
            let mut ix = PatternIndex::new();
            ix.insert(1, p("#"), ());
            ix.insert(2, p("re:.*"), ());
            ix.insert(3, p("+/+"), ());
            let valid = super::super::validate_topic(&t).is_ok();
            prop_assert_eq!(ix.matching(&t).is_empty(), !valid || !naive_any(&ix, &t));
            let expect: Vec<u64> = ix.iter().filter(|(_, p, _)| p.matches(&t)).map(|(id, _, _)| id).collect();
            prop_assert_eq!(ix.matching(&t), expect);
        }
    }

    fn naive_any(ix: &PatternIndex<()>, t: &str) -> bool {
        ix.iter().any(|(_, p, _)| p.matches(t))
    }
}
