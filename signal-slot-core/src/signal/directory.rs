//! This process's pattern subscriptions and the signals they can reach.
//!
//! A subscription is turned into ordinary connections: when it is made, on
//! every signal of this process whose topic matches; when an object is added
//! later, on each of its signals whose topic matches (one index lookup per new
//! topic). An emission then walks its signal's connection list as usual, so the
//! number of subscriptions that do not match costs it nothing.

use crate::object::ObjectShared;
use crate::signal::retained::Gate;
use crate::signal::shared::Attach;
use crate::signal::Overflow;
use crate::sync::lock;
use crate::topic::{Pattern, PatternIndex};
use std::any::Any;
use std::collections::HashMap;
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
    pub(crate) gate: Arc<Gate>,
}

#[derive(Default)]
struct Directory {
    index: PatternIndex<Arc<Sub>>,
    /// Every signal of this process's objects, by topic: (object, signal index).
    topics: HashMap<Arc<str>, Vec<(Weak<ObjectShared>, u16)>>,
}

static DIR: LazyLock<Mutex<Directory>> = LazyLock::new(|| Mutex::new(Directory::default()));

/// Records the signals of a new object and attaches the subscriptions that
/// match their topics.
pub(crate) fn object_added(obj: &Arc<ObjectShared>) {
    let mut todo = Vec::new();
    {
        let mut d = lock(&DIR);
        for (i, s) in obj.signals.iter().enumerate() {
            let Ok(i) = u16::try_from(i) else { break };
            d.topics
                .entry(s.topic().clone())
                .or_default()
                .push((Arc::downgrade(obj), i));
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
        attach_one(obj, i, &sub);
    }
}

/// Forgets a removed object: its signals, and its subscriptions.
pub(crate) fn object_removed(obj: &ObjectShared) {
    let mut d = lock(&DIR);
    for s in obj.signals.iter() {
        if let Some(v) = d.topics.get_mut(s.topic()) {
            v.retain(|(w, _)| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), obj));
            if v.is_empty() {
                d.topics.remove(s.topic());
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

/// Adds a subscription and attaches it to every matching signal emitted here.
pub(crate) fn subscribe(sub: Arc<Sub>) -> Applied {
    let targets: Vec<(Arc<ObjectShared>, u16)> = {
        let mut d = lock(&DIR);
        d.index.insert(sub.id, sub.pattern.clone(), sub.clone());
        // Objects removed, or whose loop went to another process (for good):
        // this process never attaches to them again.
        d.topics.retain(|_, v| {
            v.retain(|(w, _)| w.upgrade().is_some_and(|o| !o.lp.is_remote()));
            !v.is_empty()
        });
        d.topics
            .iter()
            .filter(|(topic, _)| sub.pattern.matches(topic))
            .flat_map(|(_, v)| v.iter().filter_map(|(w, i)| Some((w.upgrade()?, *i))))
            .collect()
    };
    let mut applied = Applied::default();
    for (obj, i) in targets {
        match attach_one(&obj, i, &sub) {
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
        let targets: Vec<(Arc<ObjectShared>, u16)> = d
            .topics
            .iter()
            .filter(|(topic, _)| pattern.matches(topic))
            .flat_map(|(_, v)| v.iter().filter_map(|(w, i)| Some((w.upgrade()?, *i))))
            .collect();
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
