//! ReplicaSets, Services and AnalysisRuns as the Rollout controller's caches keep them: only the
//! fields it reads. The API's own
//! types hold every field inline (a ReplicaSet is over 2 KiB before any of its contents, most of it
//! an absent Pod template), and with tens of thousands of cached objects that is most of the memory.
//! These types read the same API objects; what they leave out is never parsed.

use crate::crd::analysis::{AnalysisPhase, AnalysisRun, OnError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, NamespaceResourceScope, Resource};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// The API kind a cached type reads, and its metadata: what kube's `Api` and reflectors need.
macro_rules! cached_kind {
    ($ty:ty, $group:literal, $version:literal, $kind:literal, $plural:literal) => {
        impl Resource for $ty {
            const API_VERSION: &'static str = if $group.is_empty() {
                $version
            } else {
                concat!($group, "/", $version)
            };
            const GROUP: &'static str = $group;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = NamespaceResourceScope;
        }

        impl Metadata for $ty {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

cached_kind!(CachedReplicaSet, "apps", "v1", "ReplicaSet", "replicasets");
cached_kind!(CachedService, "", "v1", "Service", "services");
cached_kind!(CachedRun, "serin.dev", "v1alpha1", "AnalysisRun", "analysisruns");

/// apps/v1 ReplicaSet: its size, its Pods' counts, its labels and owner.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct CachedReplicaSet {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ReplicaSetSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReplicaSetCounts>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ReplicaSetSize {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetCounts {
    #[serde(default)]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
}

/// v1 Service: its selector, the one field of it Serin reads or writes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct CachedService {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ServiceSelector>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ServiceSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
}

/// serin.dev AnalysisRun as the Rollout controller reads it: labels, whether it was told to stop,
/// how its errors end, its phase, and each metric's phase with the latest measurement. Queries,
/// arguments and the measurement history are the AnalysisRun controller's, which caches them whole.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct CachedRun {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: RunSpecSummary,
    #[serde(default)]
    pub status: Option<RunStatusSummary>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct RunSpecSummary {
    #[serde(default)]
    pub terminate: Option<bool>,
    #[serde(default)]
    pub metrics: Vec<MetricErrorPolicy>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricErrorPolicy {
    #[serde(default)]
    pub on_error: Option<OnError>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunStatusSummary {
    #[serde(default)]
    pub phase: Option<AnalysisPhase>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub metric_results: Vec<LatestResult>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct LatestResult {
    pub name: String,
    pub phase: AnalysisPhase,
    /// The last of `measurements`; the others are never kept.
    #[serde(default, rename = "measurements", deserialize_with = "last_of")]
    pub latest: Option<LatestMeasurement>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct LatestMeasurement {
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// Whether it holds a comparison's evidence (read but not kept): its message explains it.
    #[serde(default, rename = "comparison", deserialize_with = "present")]
    pub compared: bool,
}

/// Whether a field is there, without keeping it.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = Option::<serde::de::IgnoredAny>::deserialize(d)?;
    Ok(v.is_some())
}

/// Reads a list keeping only its last element.
fn last_of<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LatestMeasurement>, D::Error> {
    struct Last;
    impl<'de> serde::de::Visitor<'de> for Last {
        type Value = Option<LatestMeasurement>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of measurements")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut last = None;
            while let Some(m) = seq.next_element()? {
                last = Some(m);
            }
            Ok(last)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Last)
}

impl From<&AnalysisRun> for CachedRun {
    fn from(run: &AnalysisRun) -> Self {
        let mut metadata = run.metadata.clone();
        metadata.managed_fields = None;
        CachedRun {
            metadata,
            spec: RunSpecSummary {
                terminate: run.spec.terminate,
                metrics: run
                    .spec
                    .metrics
                    .iter()
                    .map(|m| MetricErrorPolicy { on_error: m.on_error })
                    .collect(),
            },
            status: run.status.as_ref().map(|s| RunStatusSummary {
                phase: s.phase,
                message: s.message.clone(),
                metric_results: s
                    .metric_results
                    .iter()
                    .map(|r| LatestResult {
                        name: r.name.clone(),
                        phase: r.phase,
                        latest: r.measurements.last().map(|m| LatestMeasurement {
                            value: m.value.clone(),
                            message: m.message.clone(),
                            compared: m.comparison.is_some(),
                        }),
                    })
                    .collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_replica_set_from_the_api_keeps_its_size_counts_and_owner() {
        let rs: CachedReplicaSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "shop", "labels": {"serin.dev/rollout": "web"},
                         "ownerReferences": [{"apiVersion": "serin.dev/v1alpha1", "kind": "Rollout", "name": "web",
                                              "uid": "u1", "controller": true}]},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app", "image": "web:1"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 1, "observedGeneration": 4}
        }))
        .unwrap();
        assert_eq!(rs.spec.as_ref().and_then(|s| s.replicas), Some(3));
        let counts = rs.status.clone().unwrap_or_default();
        assert_eq!(
            (counts.replicas, counts.ready_replicas, counts.available_replicas),
            (3, Some(2), Some(1))
        );
        assert_eq!(rs.metadata.owner_references.as_ref().map(Vec::len), Some(1));
        // Written back, it carries nothing it did not read: no template to overwrite.
        let back = serde_json::to_value(&rs).unwrap();
        assert!(back["spec"].get("template").is_none(), "{back}");
    }

    #[test]
    fn a_service_from_the_api_keeps_its_selector() {
        let svc: CachedService = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web-stable", "namespace": "shop"},
            "spec": {"selector": {"app": "web", "serin.dev/pod-template-hash": "abc"},
                     "ports": [{"port": 80}], "clusterIP": "10.0.0.1"},
            "status": {"loadBalancer": {}}
        }))
        .unwrap();
        let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
        assert_eq!(
            selector.get("serin.dev/pod-template-hash").map(String::as_str),
            Some("abc")
        );
    }

    #[test]
    fn the_cached_forms_are_a_fraction_of_the_api_types() {
        use std::mem::size_of;
        assert!(size_of::<CachedReplicaSet>() * 4 < size_of::<k8s_openapi::api::apps::v1::ReplicaSet>());
        assert!(size_of::<CachedService>() * 2 < size_of::<k8s_openapi::api::core::v1::Service>());
    }

    #[test]
    fn a_run_from_the_api_keeps_its_latest_measurement_only() {
        let body = json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "web-abc-2-1", "namespace": "shop", "labels": {"serin.dev/rollout": "web"}},
            "spec": {"terminate": true, "metrics": [
                {"name": "errors", "onError": "Abort", "successCondition": "result < 0.05",
                 "provider": {"prometheus": {"address": "http://p:9090", "query": "sum(rate(x[1m]))"}}}]},
            "status": {"phase": "Running", "message": "errors: 0.02", "metricResults": [
                {"name": "errors", "phase": "Running", "count": 3, "measurements": [
                    {"startedAt": "2026-01-01T00:00:00Z", "phase": "Successful", "value": "0.01"},
                    {"startedAt": "2026-01-01T00:00:10Z", "phase": "Successful", "value": "0.03"},
                    {"startedAt": "2026-01-01T00:00:20Z", "phase": "Successful", "value": "0.02"}]}]}
        });
        let cached: CachedRun = serde_json::from_value(body.clone()).unwrap();
        let result = &cached.status.as_ref().unwrap().metric_results[0];
        assert_eq!(result.latest.as_ref().and_then(|m| m.value.as_deref()), Some("0.02"));
        assert_eq!(cached.spec.terminate, Some(true));
        assert_eq!(cached.spec.metrics[0].on_error, Some(OnError::Abort));
        // The same run written by this process and remembered reads the same.
        let full: AnalysisRun = serde_json::from_value(body).unwrap();
        assert_eq!(CachedRun::from(&full), cached);
    }

    #[test]
    fn the_cached_kinds_are_the_api_kinds() {
        use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Service};
        use kube::Resource as _;
        assert_eq!(
            (
                CachedReplicaSet::API_VERSION,
                CachedReplicaSet::KIND,
                CachedReplicaSet::URL_PATH_SEGMENT
            ),
            (ReplicaSet::API_VERSION, ReplicaSet::KIND, ReplicaSet::URL_PATH_SEGMENT)
        );
        assert_eq!(
            (
                CachedService::API_VERSION,
                CachedService::GROUP,
                CachedService::URL_PATH_SEGMENT
            ),
            (Service::API_VERSION, Service::GROUP, Service::URL_PATH_SEGMENT)
        );
        assert_eq!(
            (CachedRun::API_VERSION, CachedRun::KIND, CachedRun::URL_PATH_SEGMENT),
            (
                AnalysisRun::api_version(&()).as_ref(),
                AnalysisRun::kind(&()).as_ref(),
                AnalysisRun::plural(&()).as_ref()
            )
        );
    }
}
