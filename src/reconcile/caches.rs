//! What the controller's caches share: each watches one kind, keeps only this shard's objects,
//! drops what nothing reads, and counts toward the first full lists that open the gate.

use super::ROLLOUT_LABEL;
use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::sync::Arc;

/// The watch events of the objects this shard keeps; the others are never cached.
pub(crate) fn only_mine<K, S>(
    events: S,
    mine: impl Fn(&K) -> bool + Send + 'static,
) -> impl futures::Stream<Item = S::Item>
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    events.filter(move |event| {
        let keep = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o)) => mine(o),
            _ => true,
        };
        futures::future::ready(keep)
    })
}

/// Whether an object labelled with its Rollout's name belongs to this shard.
pub(crate) fn managed_by<K: kube::Resource>(shard: crate::shard::Shard) -> impl Fn(&K) -> bool + Send + 'static {
    move |o: &K| {
        let ns = o.meta().namespace.as_deref().unwrap_or_default();
        let name = o.meta().labels.as_ref().and_then(|l| l.get(ROLLOUT_LABEL));
        name.is_none_or(|name| shard.owns(ns, name))
    }
}

/// Cached objects drop their managed fields and `kubectl apply`'s copy of the last applied object:
/// nothing reads them, and they are a large share of the memory a cache takes.
pub(crate) fn lean<K: kube::Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Opens the gate once every cache has had its first full list. Watched from the event streams
/// themselves: a store's `wait_until_ready` keeps one waker, and the controller already waits on it.
pub(super) struct InitialLists {
    pending: std::sync::atomic::AtomicUsize,
    admin: Arc<crate::admin::Admin>,
}

impl InitialLists {
    /// Waits for the first lists of `caches` watches.
    pub(super) fn new(caches: usize, admin: Arc<crate::admin::Admin>) -> Arc<Self> {
        Arc::new(InitialLists {
            pending: std::sync::atomic::AtomicUsize::new(caches),
            admin,
        })
    }

    /// One kind's watch as a cache takes it: only this shard's objects, lean, its first list
    /// counted.
    pub(super) fn watch<K, F>(
        self: &Arc<Self>,
        api: Api<K>,
        config: watcher::Config,
        mine: F,
    ) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + use<K, F>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
        F: Fn(&K) -> bool + Send + 'static,
    {
        self.track(only_mine(watcher(api, config).default_backoff(), mine).modify(lean))
    }

    pub(super) fn track<K, S>(self: &Arc<Self>, events: S) -> impl futures::Stream<Item = S::Item> + use<K, S>
    where
        S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    {
        let (lists, mut listed) = (self.clone(), false);
        events.inspect(move |event| {
            if !listed && matches!(event, Ok(watcher::Event::InitDone)) {
                listed = true;
                if lists.pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                    lists.admin.gate.set_synced();
                }
            }
        })
    }
}
