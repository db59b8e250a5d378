//! The process-wide map of live object ids, so an id names one object.

use crate::object::{ObjectId, ObjectShared};
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

static REGISTRY: LazyLock<Mutex<HashMap<ObjectId, Weak<ObjectShared>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Runs `make` and registers its result under `id`, unless a live object has that
/// id (then returns `None` without calling `make`). The lock is held across
/// `make` so two threads cannot both claim an id.
pub(crate) fn register_with(
    id: &ObjectId,
    make: impl FnOnce() -> Arc<ObjectShared>,
) -> Option<Arc<ObjectShared>> {
    let mut map = lock(&REGISTRY);
    if map
        .get(id)
        .and_then(Weak::upgrade)
        .is_some_and(|o| o.is_alive())
    {
        return None;
    }
    let shared = make();
    map.insert(id.clone(), Arc::downgrade(&shared));
    Some(shared)
}

/// Removes `id` if it still names `object` (a newer object may have taken it).
pub(crate) fn unregister(id: &ObjectId, object: &ObjectShared) {
    let mut map = lock(&REGISTRY);
    if map
        .get(id)
        .is_some_and(|w| std::ptr::eq(w.as_ptr(), object))
    {
        map.remove(id);
    }
}

/// The live object with this id, if any.
#[allow(dead_code)] // used by the process layer
pub(crate) fn lookup(id: &str) -> Option<Arc<ObjectShared>> {
    lock(&REGISTRY)
        .get(id)
        .and_then(Weak::upgrade)
        .filter(|o| o.is_alive())
}

/// Every live registered object of this process.
pub(crate) fn live_objects() -> Vec<Arc<ObjectShared>> {
    lock(&REGISTRY)
        .values()
        .filter_map(Weak::upgrade)
        .filter(|o| o.is_alive())
        .collect()
}
