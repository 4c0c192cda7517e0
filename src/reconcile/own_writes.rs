//! This process's own recent writes, until its caches show them. A watch event for a write arrives
//! a moment after the write returns; a reconcile started in between would read the copy from before
//! and decide again what was just decided: an Event recorded twice (409), a status written on a
//! stale resourceVersion (409), a ReplicaSet or AnalysisRun created twice. Reading our own writes
//! first makes those requests unnecessary.

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A watch shows a write within milliseconds; past this a write is forgotten whatever happened, so
/// an object deleted before the cache ever saw it cannot linger.
const KEEP: Duration = Duration::from_secs(30);

struct Written<K> {
    /// Every resourceVersion this write (and the writes of ours it followed) replaced.
    superseded: Vec<String>,
    /// This process created the object: until the cache has it, it is ours alone.
    created: bool,
    object: Arc<K>,
    at: Instant,
}

pub struct OwnWrites<K: Resource<DynamicType = ()>> {
    recent: Mutex<HashMap<ObjectRef<K>, Written<K>>>,
}

impl<K: Resource<DynamicType = ()>> Default for OwnWrites<K> {
    fn default() -> Self {
        OwnWrites {
            recent: Mutex::default(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone> OwnWrites<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<K>, Written<K>>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers what the API server answered to a write over version `replaced` (None: a create).
    pub fn remember(&self, replaced: Option<String>, written: K) {
        let key = ObjectRef::from_obj(&written);
        let mut recent = self.lock();
        recent.retain(|_, w| w.at.elapsed() < KEEP);
        let (mut superseded, mut created) = (Vec::new(), replaced.is_none());
        if let Some(before) = recent.remove(&key) {
            superseded = before.superseded;
            superseded.extend(before.object.meta().resource_version.clone());
            created |= before.created;
        }
        superseded.extend(replaced);
        recent.insert(
            key,
            Written {
                superseded,
                created,
                object: Arc::new(written),
                at: Instant::now(),
            },
        );
    }

    /// Forgets a write once the cache shows it or something later: from then on the cache is the
    /// freshest, and a copy kept longer is memory held for nothing (a thousand whole Rollouts after
    /// a release wave).
    pub fn caught_up(&self, cached: &K) {
        let key = ObjectRef::from_obj(cached);
        let mut recent = self.lock();
        let behind = |w: &Written<K>| {
            cached
                .meta()
                .resource_version
                .as_ref()
                .is_some_and(|rv| w.superseded.contains(rv))
        };
        if recent.get(&key).is_some_and(|w| !behind(w)) {
            recent.remove(&key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn forget(&self, key: &ObjectRef<K>) {
        self.lock().remove(key);
    }

    /// The newer of the cached copy and this process's last write of it. The write is newer exactly
    /// while the cache still shows a version it replaced; once the cache moves on it has the
    /// write, or something later.
    pub fn freshest(&self, cached: Arc<K>) -> Arc<K> {
        let key = ObjectRef::from_obj(cached.as_ref());
        let mut recent = self.lock();
        let Some(w) = recent.get(&key) else {
            return cached;
        };
        let stale = cached
            .meta()
            .resource_version
            .as_ref()
            .is_some_and(|rv| w.superseded.contains(rv));
        if w.at.elapsed() < KEEP && stale {
            return w.object.clone();
        }
        recent.remove(&key);
        cached
    }

    /// `cached`, each at its freshest, and the objects this process created that pass `belongs`
    /// and that the cache does not show yet.
    pub fn merged(&self, cached: Vec<Arc<K>>, belongs: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        let mut out: Vec<Arc<K>> = cached.into_iter().map(|o| self.freshest(o)).collect();
        let seen: std::collections::HashSet<ObjectRef<K>> =
            out.iter().map(|o| ObjectRef::from_obj(o.as_ref())).collect();
        let recent = self.lock();
        out.extend(
            recent
                .iter()
                .filter(|(k, w)| w.created && w.at.elapsed() < KEEP && !seen.contains(*k) && belongs(&w.object))
                .map(|(_, w)| w.object.clone()),
        );
        out
    }
}

/// When this process last wrote each object, for as long as that matters (`keep`): a status
/// that only mirrors the cluster waits until its last write is that old.
pub struct LastWrites<K: Resource<DynamicType = ()>> {
    at: Mutex<HashMap<ObjectRef<K>, Instant>>,
    keep: Duration,
}

impl<K: Resource<DynamicType = ()>> Default for LastWrites<K> {
    fn default() -> Self {
        LastWrites {
            at: Mutex::default(),
            keep: crate::plan::status_writes::MIRROR_HOLD,
        }
    }
}

impl<K: Resource<DynamicType = ()>> LastWrites<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<K>, Instant>> {
        self.at.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn wrote(&self, key: ObjectRef<K>) {
        let mut at = self.lock();
        // Older entries say nothing any more: dropping them keeps the map to recent writes.
        let keep = self.keep;
        at.retain(|_, t| t.elapsed() < keep);
        at.insert(key, Instant::now());
    }

    pub fn ago(&self, key: &ObjectRef<K>) -> Option<Duration> {
        self.lock().get(key).map(Instant::elapsed).filter(|d| *d < self.keep)
    }
}

/// Passes a cache's watch events on, forgetting each write the cache now shows (or an object it
/// saw deleted). Placed after the reflector, so `freshest` never prefers a cache that lacks it.
pub fn forget_seen<K, S>(events: S, own: Arc<OwnWrites<K>>) -> impl futures::Stream<Item = S::Item>
where
    K: Resource<DynamicType = ()> + Clone,
    S: futures::Stream<Item = Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>>,
{
    use futures::StreamExt;
    use kube::runtime::watcher::Event;
    events.inspect(move |event| match event {
        Ok(Event::Apply(o) | Event::InitApply(o)) => own.caught_up(o),
        Ok(Event::Delete(o)) => own.forget(&ObjectRef::from_obj(o)),
        _ => {}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str, rv: &str, data: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("shop".into());
        c.metadata.resource_version = Some(rv.into());
        c.data = Some([("v".to_string(), data.to_string())].into());
        c
    }

    fn data(c: &ConfigMap) -> &str {
        c.data.as_ref().and_then(|d| d.get("v")).map_or("", String::as_str)
    }

    #[test]
    fn a_write_shows_until_the_cache_moves_past_what_it_replaced() {
        let own = OwnWrites::default();
        own.remember(Some("1".into()), cm("a", "2", "mine"));
        assert_eq!(data(&own.freshest(Arc::new(cm("a", "1", "old")))), "mine");
        // A second write before the cache caught up: both older versions give way to it.
        own.remember(Some("2".into()), cm("a", "3", "mine again"));
        assert_eq!(data(&own.freshest(Arc::new(cm("a", "1", "old")))), "mine again");
        assert_eq!(data(&own.freshest(Arc::new(cm("a", "2", "mine")))), "mine again");
        // The cache caught up (or moved on): it wins, and the write is forgotten.
        assert_eq!(data(&own.freshest(Arc::new(cm("a", "4", "later")))), "later");
        assert_eq!(data(&own.freshest(Arc::new(cm("a", "1", "old")))), "old");
    }

    #[test]
    fn a_write_is_let_go_once_the_cache_shows_it() {
        let own = OwnWrites::default();
        own.remember(Some("1".into()), cm("a", "2", "mine"));
        own.remember(None, cm("b", "3", "created"));
        own.caught_up(&cm("a", "1", "old"));
        assert_eq!(own.len(), 2, "the cache is still behind");
        assert_eq!(data(&own.freshest(Arc::new(cm("a", "1", "old")))), "mine");
        own.caught_up(&cm("a", "2", "mine"));
        own.caught_up(&cm("b", "3", "created"));
        assert_eq!(own.len(), 0, "nothing held once the cache has both");
        own.remember(Some("4".into()), cm("c", "5", "mine"));
        own.caught_up(&cm("c", "9", "someone else's, later"));
        assert_eq!(own.len(), 0, "a later version supersedes ours");
    }

    #[test]
    fn a_creation_shows_until_the_cache_has_it() {
        let own = OwnWrites::default();
        own.remember(None, cm("new", "5", "created"));
        let names = |v: Vec<Arc<ConfigMap>>| -> Vec<String> {
            v.iter().map(|c| c.metadata.name.clone().unwrap_or_default()).collect()
        };
        let cached = vec![Arc::new(cm("a", "1", "x"))];
        assert_eq!(names(own.merged(cached.clone(), |_| true)), ["a", "new"]);
        assert_eq!(names(own.merged(cached.clone(), |_| false)), ["a"], "only what belongs");
        let with_it = vec![Arc::new(cm("a", "1", "x")), Arc::new(cm("new", "6", "status"))];
        let merged = own.merged(with_it, |_| true);
        assert_eq!(names(merged.clone()), ["a", "new"]);
        assert_eq!(data(&merged[1]), "status", "the cache's copy once it has one");
        own.remember(None, cm("gone", "7", "created"));
        own.forget(&ObjectRef::new("gone").within("shop"));
        assert_eq!(names(own.merged(cached, |_| true)), ["a"]);
    }
}
