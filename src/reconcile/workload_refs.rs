//! A `workloadRef` Deployment's changes, as triggers: the Rollout that names it is reconciled when
//! it is created or its spec changes (its `generation`), so a Deployment applied after the Rollout
//! or a new template in it is taken up at once. Watched as metadata only; nothing is cached.

use crate::crd::rollout::Rollout;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, predicates};

pub type Events = futures::stream::BoxStream<'static, Result<PartialObjectMeta<Deployment>, watcher::Error>>;

pub fn watch(client: &kube::Client, namespace: &Option<String>) -> Events {
    let api: Api<PartialObjectMeta<Deployment>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    watcher(api, watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .predicate_filter(predicates::generation, Default::default())
        .boxed()
}

/// The Rollouts whose `workloadRef` names this Deployment.
pub fn naming(rollouts: Store<Rollout>) -> impl Fn(PartialObjectMeta<Deployment>) -> Vec<ObjectRef<Rollout>> {
    move |d| {
        let (name, ns) = (d.metadata.name.unwrap_or_default(), d.metadata.namespace);
        rollouts
            .state()
            .iter()
            .filter(|r| r.metadata.namespace == ns)
            .filter(|r| {
                r.spec
                    .workload_ref
                    .as_ref()
                    .is_some_and(|w| w.kind == "Deployment" && w.name == name)
            })
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect()
    }
}
