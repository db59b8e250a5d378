//! This process's pattern subscriptions and the signals they can reach.
//!
//! A subscription is turned into ordinary connections: when it is made, on
//! every signal of this process whose topic matches; when an object is added
//! later, on each of its signals whose topic matches (one index lookup per new
//! topic). An emission then walks its signal's connection list as usual, so the
//! number of subscriptions that do not match costs it nothing.

use crate::event_loop::LoopShared;
use crate::object::ObjectShared;
use crate::signal::shared::Attach;
use crate::signal::Overflow;
use crate::sync::lock;
use crate::topic::{is_valid_topic, Pattern, PatternIndex};
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// One subscription as this process applies it.
pub(crate) struct Sub {
    pub(crate) id: u64,
    pub(crate) pattern: Pattern,
    /// The subscribing object: local, or a stand-in for one in another process.
    pub(crate) recv: Arc<ObjectShared>,
    pub(crate) slot: u16,
    pub(crate) slot_name: &'static str,
    /// The slot's `SlotFn<Args>`, when the receiver lives in this process.
    pub(crate) typed: Option<&'static (dyn Any + Send + Sync)>,
    /// `type_name` of the slot's argument tuple.
    pub(crate) fingerprint: String,
    pub(crate) wants_meta: bool,
    pub(crate) overflow: Overflow,
    pub(crate) initialize: bool,
    /// Only signals of these objects, if set.
    pub(crate) senders: Option<Vec<String>>,
    /// The one-of-N group it joins on each signal, if any.
    pub(crate) group: Option<Arc<str>>,
}

/// One signal of this process, as the directory knows it.
struct Entry {
    topic: Arc<str>,
    obj: Weak<ObjectShared>,
    /// The object's loop (shared by its objects, so checking whether it went
    /// to another process touches no per-object memory).
    lp: Arc<LoopShared>,
    signal: u16,
}

#[derive(Default)]
struct Directory {
    index: PatternIndex<Arc<Sub>>,
    /// Every signal with a valid topic, by the topic's first level, then in
    /// the order the signals were added: a pattern with a literal first level
    /// walks one bucket, and a walk meets objects about in the order they
    /// were allocated (a random order costs a cache and TLB miss per object).
    buckets: HashMap<Box<str>, BTreeMap<u64, Entry>>,
    /// Each recorded object's first entry number (its signals follow it).
    first: HashMap<usize, u64>,
    next: u64,
}

static DIR: LazyLock<Mutex<Directory>> = LazyLock::new(|| Mutex::new(Directory::default()));

fn first_level(topic: &str) -> &str {
    topic.split('/').next().unwrap_or(topic)
}

impl Directory {
    /// The signals whose topic `pattern` matches: those emitted in this
    /// process, and with `moved` also those of loops that went to another.
    fn targets(&self, pattern: &Pattern, moved: bool) -> Vec<(Arc<ObjectShared>, u16)> {
        let mut out = Vec::new();
        let mut walk = |bucket: &BTreeMap<u64, Entry>, all: bool| {
            for e in bucket.values() {
                // Objects whose loop went to another process (for good): that
                // process attaches to them, this one never does again (but
                // removes what it attached before they went).
                if (!moved && e.lp.is_remote()) || !(all || pattern.matches_valid(&e.topic)) {
                    continue;
                }
                if let Some(obj) = e.obj.upgrade() {
                    out.push((obj, e.signal));
                }
            }
        };
        match pattern.first_literal() {
            Some(first) => {
                if let Some(bucket) = self.buckets.get(first) {
                    walk(bucket, pattern.is_first_level_subtree());
                }
            }
            None => self.buckets.values().for_each(|b| walk(b, false)),
        }
        out
    }
}

/// Records the signals of a new object and attaches the subscriptions that
/// match their topics.
pub(crate) fn object_added(obj: &Arc<ObjectShared>) {
    let mut todo = Vec::new();
    {
        let mut d = lock(&DIR);
        let first = d.next;
        d.next += obj.signals.len() as u64;
        d.first.insert(Arc::as_ptr(obj) as usize, first);
        for (i, s) in obj.signals.iter().enumerate() {
            let Ok(i) = u16::try_from(i) else { break };
            // An invalid topic matches no pattern: not recorded.
            if !is_valid_topic(s.topic()) {
                continue;
            }
            d.buckets
                .entry(first_level(s.topic()).into())
                .or_default()
                .insert(
                    first + u64::from(i),
                    Entry {
                        topic: s.topic().clone(),
                        obj: Arc::downgrade(obj),
                        lp: obj.lp.clone(),
                        signal: i,
                    },
                );
            if !d.index.is_empty() {
                for id in d.index.matching(s.topic()) {
                    if let Some((_, sub)) = d.index.get(id) {
                        todo.push((i, sub.clone()));
                    }
                }
            }
        }
    }
    // Attached outside the lock: attaching may post, and posting may wait.
    for (i, sub) in todo {
        if attach_one(obj, i, &sub) == Attach::Attached && !is_subscribed(sub.id) {
            // Unsubscribed meanwhile: its removal may have looked at this
            // signal before the attach, so undo it here (review helper-50:
            // connections of ended subscriptions stayed). Either this check
            // sees the subscription gone, or the removal, which comes after
            // it (the directory's lock orders the two), sees the attach.
            detach(obj, i, &sub);
        }
    }
}

/// Takes back an attach of `sub` to signal `signal` of `obj`.
#[cold]
fn detach(obj: &ObjectShared, signal: u16, sub: &Sub) {
    if let Some(s) = obj.signals.get(usize::from(signal)) {
        s.remove_connection(sub.id);
    }
    sub.recv.forget_incoming(sub.id);
}

/// Forgets a removed object: its signals, and its subscriptions.
pub(crate) fn object_removed(obj: &ObjectShared) {
    let mut d = lock(&DIR);
    let ptr = std::ptr::from_ref(obj) as usize;
    if let Some(first) = d.first.remove(&ptr) {
        for (i, s) in obj.signals.iter().enumerate() {
            let level = first_level(s.topic());
            if let Some(bucket) = d.buckets.get_mut(level) {
                bucket.remove(&(first + i as u64));
                if bucket.is_empty() {
                    d.buckets.remove(level);
                }
            }
        }
    }
    if !d.index.is_empty() {
        let mine: Vec<u64> = d
            .index
            .iter()
            .filter(|(_, _, s)| std::ptr::eq(Arc::as_ptr(&s.recv), obj))
            .map(|(id, _, _)| id)
            .collect();
        for id in mine {
            d.index.remove(id);
        }
    }
}

fn attach_one(obj: &Arc<ObjectShared>, signal: u16, sub: &Sub) -> Attach {
    if !obj.is_alive() || obj.lp.is_remote() {
        return Attach::Skipped; // another process emits it, and attaches there
    }
    if let Some(senders) = &sub.senders {
        if !senders.iter().any(|s| s == obj.id.as_str()) {
            return Attach::Skipped;
        }
    }
    match obj.signals.get(usize::from(signal)) {
        Some(s) => s.clone().attach(sub),
        None => Attach::Skipped,
    }
}

/// What applying a subscription here did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) attached: usize,
    pub(crate) mismatched: usize,
}

/// How many targets ahead of the one being attached `subscribe` reads from.
const TOUCH_AHEAD: usize = 6;

/// Reads a target's signal (and its topic) so that its cache misses, the bulk
/// of an attach to many cold signals, overlap with the attach before it.
fn touch(obj: &ObjectShared, signal: u16) {
    if let Some(s) = obj.signals.get(usize::from(signal)) {
        std::hint::black_box(s.topic().as_bytes().first());
    }
}

/// Adds a subscription and attaches it to every matching signal emitted here.
pub(crate) fn subscribe(sub: Arc<Sub>) -> Applied {
    let targets = {
        let mut d = lock(&DIR);
        d.index.insert(sub.id, sub.pattern.clone(), sub.clone());
        d.targets(&sub.pattern, false)
    };
    let mut applied = Applied::default();
    for (j, (obj, i)) in targets.iter().enumerate() {
        if let Some((next, k)) = targets.get(j + TOUCH_AHEAD) {
            touch(next, *k);
        }
        match attach_one(obj, *i, &sub) {
            Attach::Attached => applied.attached += 1,
            Attach::Mismatch => applied.mismatched += 1,
            Attach::Skipped | Attach::ReceiverGone => {}
        }
    }
    applied
}

/// Removes a subscription and its connections; false if it was not here.
pub(crate) fn unsubscribe(id: u64) -> bool {
    let (sub, targets) = {
        let mut d = lock(&DIR);
        let Some((pattern, sub)) = d.index.remove(id) else {
            return false;
        };
        let targets = d.targets(&pattern, true);
        (sub, targets)
    };
    for (obj, i) in targets {
        if let Some(s) = obj.signals.get(usize::from(i)) {
            s.remove_connection(id);
        }
    }
    sub.recv.forget_incoming(id);
    true
}

/// True while the subscription is in this process's index.
pub(crate) fn is_subscribed(id: u64) -> bool {
    lock(&DIR).index.get(id).is_some()
}
