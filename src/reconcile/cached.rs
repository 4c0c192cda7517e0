//! ReplicaSets and Services as the caches keep them: only the fields Serin reads. The API's own
//! types hold every field inline (a ReplicaSet is over 2 KiB before any of its contents, most of it
//! an absent Pod template), and with tens of thousands of cached objects that is most of the memory.
//! These types read the same API objects; what they leave out is never parsed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, NamespaceResourceScope, Resource};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

impl Resource for CachedReplicaSet {
    const API_VERSION: &'static str = "apps/v1";
    const GROUP: &'static str = "apps";
    const KIND: &'static str = "ReplicaSet";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "replicasets";
    type Scope = NamespaceResourceScope;
}

impl Metadata for CachedReplicaSet {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
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

impl Resource for CachedService {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Service";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "services";
    type Scope = NamespaceResourceScope;
}

impl Metadata for CachedService {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
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
}
