//! Which AnalysisTemplates exist, by name only: a Rollout naming one that does not is an invalid
//! spec (Degraded, `InvalidSpec`) until it appears, as in Argo Rollouts. Watched as metadata, so
//! the cache holds names, not metrics.

use crate::crd::analysis::{AnalysisTemplate, ClusterAnalysisTemplate};
use crate::crd::rollout::Rollout;
use futures::StreamExt;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};

type Names<K> = Store<PartialObjectMeta<K>>;
/// The watch events that fill a name cache, each the object it touched.
type Events<K> = futures::stream::BoxStream<'static, Result<PartialObjectMeta<K>, watcher::Error>>;

pub struct TemplateNames {
    namespaced: Names<AnalysisTemplate>,
    /// `None` where this controller may not see ClusterAnalysisTemplates (one namespace).
    cluster: Option<Names<ClusterAnalysisTemplate>>,
}

impl TemplateNames {
    /// The templates `rollout` names that do not exist, each as "AnalysisTemplate \"NAME\"".
    pub fn missing(&self, ns: &str, rollout: &Rollout) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in rollout.spec.strategy.template_refs() {
            let (kind, found) = if r.cluster_scope == Some(true) {
                let found = self
                    .cluster
                    .as_ref()
                    .is_none_or(|c| c.get(&ObjectRef::new(&r.template_name)).is_some());
                ("ClusterAnalysisTemplate", found)
            } else {
                let found = self
                    .namespaced
                    .get(&ObjectRef::new(&r.template_name).within(ns))
                    .is_some();
                ("AnalysisTemplate", found)
            };
            let said = format!("{kind} \"{}\"", r.template_name);
            if !found && !out.contains(&said) {
                out.push(said);
            }
        }
        out
    }
}

/// The name caches and the watch events that fill them, for the controller to drive (each wakes
/// the Rollouts that name it, so one waiting for it goes on at once). Each counts among the
/// first lists that open the gate: [`WATCHES`] without ClusterAnalysisTemplates, one more with.
pub const WATCHES: usize = 1;

pub fn watch(
    client: &kube::Client,
    namespace: &Option<String>,
    lists: &std::sync::Arc<super::caches::InitialLists>,
) -> (TemplateNames, Events<AnalysisTemplate>, Events<ClusterAnalysisTemplate>) {
    let api: Api<PartialObjectMeta<AnalysisTemplate>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let namespaced = lists
        .track(watcher(api, watcher::Config::default()).default_backoff())
        .reflect(writer)
        .touched_objects()
        .boxed();
    let (cluster, cluster_stream) = match namespace {
        Some(_) => (None, futures::stream::pending().boxed()),
        None => {
            let api: Api<PartialObjectMeta<ClusterAnalysisTemplate>> = Api::all(client.clone());
            let (reader, writer) = reflector::store();
            let stream = lists
                .track(watcher(api, watcher::Config::default()).default_backoff())
                .reflect(writer)
                .touched_objects();
            (Some(reader), stream.boxed())
        }
    };
    (
        TemplateNames {
            namespaced: reader,
            cluster,
        },
        namespaced,
        cluster_stream,
    )
}
