//! `apiregistration.k8s.io/v1` APIServices: the aggregation layer's list of who serves each API
//! group/version. Every built-in group/version has a local one, as in a real cluster; one that names
//! a Service is checked as the API server checks it, and never becomes available, since a
//! simulated cluster runs no aggregated API servers.

use super::meta;
use super::store::{DeleteOpts, Store, WriteOpts};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The label of APIServices the API server makes itself: `onstart` for built-in groups, `true`
/// for those of CRDs.
const AUTOMANAGED: &str = "kube-aggregator.kubernetes.io/automanaged";

/// Defaults, checks and the `Available` condition, which the availability controller would set.
pub fn admit(obj: &mut Value, old: Option<&Value>, causes: &mut Vec<(String, String)>) {
    let spec = &obj["spec"];
    let (group, version) = (
        spec["group"].as_str().unwrap_or_default(),
        spec["version"].as_str().unwrap_or_default(),
    );
    let name = meta::name(obj).to_string();
    if name != format!("{version}.{group}") {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: {name:?}: must be `spec.version\".\"spec.group`"),
        ));
    }
    if version.is_empty() {
        causes.push(("spec.version".into(), "Required value".into()));
    }
    let local = spec["service"].is_null();
    if !local {
        if group.is_empty() {
            causes.push((
                "spec.group".into(),
                "Required value: only v1 may have an empty group and it better be legacy kube".into(),
            ));
        }
        for (field, max) in [("groupPriorityMinimum", 20000), ("versionPriority", 1000)] {
            let n = spec[field].as_i64().unwrap_or(0);
            if n <= 0 || n > max {
                causes.push((
                    format!("spec.{field}"),
                    format!("Invalid value: {n}: must be positive and less than {max}"),
                ));
            }
        }
    }
    let available = if local {
        json!({"type": "Available", "status": "True", "reason": "Local", "message": "Local APIServices are always available"})
    } else {
        let svc = &spec["service"];
        json!({"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck",
               "message": format!("failing or missing response from https://{}.{}.svc:{}/apis/{group}/{version}: the simulated cluster runs no aggregated API servers",
                                  svc["name"].as_str().unwrap_or_default(), svc["namespace"].as_str().unwrap_or_default(),
                                  svc["port"].as_i64().unwrap_or(443))})
    };
    let kept = old.and_then(|o| o["status"]["conditions"].as_array()?.first().cloned());
    let transition = match &kept {
        Some(k) if k["status"] == available["status"] => k["lastTransitionTime"].clone(),
        _ => json!(meta::now_rfc3339()),
    };
    let mut available = available;
    available["lastTransitionTime"] = transition;
    obj["status"] = json!({"conditions": [available]});
}

/// The local APIServices of the built-in group/versions, as kube-apiserver registers them.
pub fn register_local(store: &Store) {
    let Some(rt) = store.find_type("apiregistration.k8s.io", "v1", "apiservices") else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for t in store.registry().all() {
        if t.crd.is_some() || !seen.insert((t.group.clone(), t.version.clone())) {
            continue;
        }
        let obj = json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": format!("{}.{}", t.version, t.group), "labels": {AUTOMANAGED: "onstart"}},
            "spec": {"group": t.group, "version": t.version, "groupPriorityMinimum": 17000, "versionPriority": 15},
        });
        // Registering on an empty store cannot conflict.
        let _ = store.create(&rt, None, obj, &WriteOpts::by("kube-apiserver"));
    }
}

/// The CRD registration controller: each group/version a CRD serves gets a local APIService
/// (`v1alpha1.serin.dev`), and loses it when no CRD serves it any more.
pub async fn run(store: Arc<Store>) {
    super::store::react(
        store,
        |e| e.key.group == "apiextensions.k8s.io",
        |store, _| sync_crd_group_versions(store),
        sync_crd_group_versions,
    )
    .await;
}

fn sync_crd_group_versions(store: &Store) {
    let Some(rt) = store.find_type("apiregistration.k8s.io", "v1", "apiservices") else {
        return;
    };
    let served: BTreeSet<String> = store
        .registry()
        .all()
        .iter()
        .filter(|t| t.crd.is_some())
        .map(|t| format!("{}.{}", t.version, t.group))
        .collect();
    let managed = store.list(&rt.storage_key(), None, None, None, &|o| {
        o["metadata"]["labels"][AUTOMANAGED] == "true"
    });
    let by = WriteOpts::by("kube-apiserver");
    for gone in managed.items.iter().filter(|o| !served.contains(meta::name(o))) {
        // Deleted in between: nothing left to do.
        let _ = store.delete(&rt, "", meta::name(gone), &DeleteOpts::default());
    }
    for name in served {
        if store.get(&rt, "", &name).is_ok() {
            continue;
        }
        let Some((version, group)) = name.split_once('.') else {
            continue;
        };
        // CRDs rank below every built-in group, as the API server ranks them.
        let obj = json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": name, "labels": {AUTOMANAGED: "true"}},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": 1000, "versionPriority": 100},
        });
        // Made in between by another event's sync: the same object.
        let _ = store.create(&rt, None, obj, &by);
    }
}
