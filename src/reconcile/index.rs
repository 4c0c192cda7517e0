//! Cached objects by the Rollout they belong to (their `serin.dev/rollout` label), so a reconcile
//! reads its own ReplicaSets and AnalysisRuns instead of scanning every object in the cache: with
//! thousands of Rollouts the scan, not the plan, would be what a reconcile costs.

use super::ROLLOUT_LABEL;
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// (namespace, Rollout name)
type Group = (String, String);

/// Names by group, and each name's group, so a relabelled object moves.
#[derive(Default)]
struct Groups {
    members: HashMap<Group, BTreeSet<String>>,
    group_of: HashMap<(String, String), Group>,
}

impl Groups {
    fn remove(&mut self, ns: &str, name: &str) {
        let key = (ns.to_string(), name.to_string());
        if let Some(group) = self.group_of.remove(&key)
            && let Some(names) = self.members.get_mut(&group)
        {
            names.remove(name);
            if names.is_empty() {
                self.members.remove(&group);
            }
        }
    }

    fn insert<K: Resource>(&mut self, obj: &K) {
        let meta = obj.meta();
        let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
            return;
        };
        self.remove(ns, name);
        if let Some(rollout) = meta.labels.as_ref().and_then(|l| l.get(ROLLOUT_LABEL)) {
            let group = (ns.to_string(), rollout.clone());
            self.members.entry(group.clone()).or_default().insert(name.to_string());
            self.group_of.insert((ns.to_string(), name.to_string()), group);
        }
    }
}

#[derive(Default)]
struct Names {
    live: Groups,
    /// Filled while the watch lists again; replaces `live` when the list is complete, as the
    /// reflector's own store does, so objects deleted in a watch gap leave the index too.
    relisting: Option<Groups>,
}

/// A reflector store with the names of its objects grouped by Rollout.
pub struct ByRollout<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    names: Arc<Mutex<Names>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> ByRollout<K> {
    /// Indexes `store`; `events` must be the stream that fills it (see [`ByRollout::track`]).
    pub fn new(store: Store<K>) -> Self {
        ByRollout {
            store,
            names: Default::default(),
        }
    }

    /// Passes the store's events through, keeping the index in step with them.
    pub fn track<S>(&self, events: S) -> impl Stream<Item = S::Item> + use<K, S>
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    {
        let names = self.names.clone();
        events.inspect(move |event| {
            let Ok(event) = event else { return };
            let mut n = names.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                watcher::Event::Apply(obj) => n.live.insert(obj),
                watcher::Event::Delete(obj) => {
                    let meta = obj.meta();
                    n.live.remove(
                        meta.namespace.as_deref().unwrap_or_default(),
                        meta.name.as_deref().unwrap_or_default(),
                    );
                }
                watcher::Event::Init => n.relisting = Some(Groups::default()),
                watcher::Event::InitApply(obj) => n.relisting.get_or_insert_default().insert(obj),
                watcher::Event::InitDone => {
                    if let Some(fresh) = n.relisting.take() {
                        n.live = fresh;
                    }
                }
            }
        })
    }

    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<K>> {
        self.store.get(&ObjectRef::new(name).within(ns))
    }

    /// The cached objects labelled for this Rollout, in name order.
    pub fn of(&self, ns: &str, rollout: &str) -> Vec<Arc<K>> {
        let names: Vec<String> = {
            let n = self.names.lock().unwrap_or_else(|e| e.into_inner());
            n.live
                .members
                .get(&(ns.to_string(), rollout.to_string()))
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        };
        names
            .into_iter()
            .filter_map(|name| self.store.get(&ObjectRef::new(&name).within(ns)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use kube::runtime::reflector;

    fn rs(name: &str, rollout: Option<&str>) -> ReplicaSet {
        let mut r = ReplicaSet::default();
        r.metadata.name = Some(name.into());
        r.metadata.namespace = Some("shop".into());
        r.metadata.labels = rollout.map(|ro| [(ROLLOUT_LABEL.to_string(), ro.to_string())].into());
        r
    }

    fn names(index: &ByRollout<ReplicaSet>, rollout: &str) -> Vec<String> {
        index
            .of("shop", rollout)
            .iter()
            .filter_map(|r| r.metadata.name.clone())
            .collect()
    }

    #[tokio::test]
    async fn groups_follow_applies_deletes_relabels_and_relists() {
        let (reader, writer) = reflector::store();
        let index = ByRollout::new(reader);
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let events = index.track(reflector::reflector(writer, rx));
        tokio::spawn(events.for_each(|_| async {}));
        let send = |e: watcher::Event<ReplicaSet>| tx.unbounded_send(Ok(e)).unwrap();
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(20));

        send(watcher::Event::Init);
        send(watcher::Event::InitApply(rs("web-a", Some("web"))));
        send(watcher::Event::InitApply(rs("web-b", Some("web"))));
        send(watcher::Event::InitApply(rs("api-a", Some("api"))));
        send(watcher::Event::InitApply(rs("loose", None)));
        send(watcher::Event::InitDone);
        settle().await;
        assert_eq!(names(&index, "web"), ["web-a", "web-b"]);
        assert_eq!(names(&index, "api"), ["api-a"]);

        send(watcher::Event::Delete(rs("web-a", Some("web"))));
        send(watcher::Event::Apply(rs("api-a", Some("web"))));
        settle().await;
        assert_eq!(names(&index, "web"), ["api-a", "web-b"], "a relabelled object moves");
        assert!(names(&index, "api").is_empty());

        // A relist that no longer has web-b (deleted while the watch was down) drops it.
        send(watcher::Event::Init);
        send(watcher::Event::InitApply(rs("api-a", Some("web"))));
        send(watcher::Event::InitDone);
        settle().await;
        assert_eq!(names(&index, "web"), ["api-a"]);
    }
}
