//! What the DaemonSet controller does: one Pod of the template on each Node, made for that Node;
//! a changed template replaces the Pods one Node at a time (`RollingUpdate`, one unavailable at
//! once) or only as they are deleted (`OnDelete`); the counts in status follow.

use super::meta;
use super::nodes::NODES;
use super::resources::ResourceType;
use super::selector::LabelSelector;
use super::store::{DeleteOpts, Store, WriteOpts};
use super::workload::{owned_of, owner_ref, template_hash, write_status};
use serde_json::{Value, json};
use std::sync::Arc;

const MANAGER: &str = "daemonset-controller";
/// The label that says which template a DaemonSet's Pod was made from.
const REVISION_LABEL: &str = "controller-revision-hash";

pub fn sync(store: &Store, daemonsets: &ResourceType, pods: &ResourceType, key: &(String, String)) {
    let Ok(ds) = store.get(daemonsets, &key.0, &key.1) else {
        return;
    };
    if meta::is_deleting(&ds) {
        return;
    }
    let selector = LabelSelector::from_object(&ds["spec"]["selector"]);
    let live = owned_of(store, &ds, pods, |p| {
        selector.matches(meta::labels(p)) && !meta::is_deleting(p)
    });
    let hash = template_hash(&ds["spec"]["template"]);
    let on = |node: &str| -> Vec<&Arc<Value>> { live.iter().filter(|p| p["spec"]["nodeName"] == node).collect() };
    let rolling = ds["spec"]["updateStrategy"]["type"] != "OnDelete";
    // A Pod of an older template goes when every other Pod is available, one at a time.
    let all_ready = NODES.iter().all(|n| on(n).iter().any(|p| meta::pod_ready(p)));
    let mut replaced_one = false;
    for node in NODES {
        let here = on(node);
        if here.is_empty() {
            create_pod(store, pods, &ds, node, &hash);
            continue;
        }
        // Two on one Node (a Pod made twice): the extra goes.
        for extra in here.iter().skip(1) {
            let _ = store.delete(pods, &key.0, meta::name(extra), &DeleteOpts::default());
        }
        let outdated = here[0]["metadata"]["labels"][REVISION_LABEL] != hash.as_str();
        if rolling && outdated && all_ready && !replaced_one {
            replaced_one = true;
            let _ = store.delete(pods, &key.0, meta::name(here[0]), &DeleteOpts::default());
        }
    }
    let count = |keep: &dyn Fn(&Value) -> bool| NODES.iter().filter(|n| on(n).first().is_some_and(|p| keep(p))).count();
    let scheduled = count(&|_| true);
    let ready = count(&|p| meta::pod_ready(p));
    let updated = count(&|p| p["metadata"]["labels"][REVISION_LABEL] == hash.as_str());
    let desired = NODES.len();
    let mut status = json!({
        "currentNumberScheduled": scheduled,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "observedGeneration": ds["metadata"]["generation"],
        "updatedNumberScheduled": updated,
        "numberAvailable": ready,
    });
    if ready < desired {
        status["numberUnavailable"] = json!(desired - ready);
    }
    write_status(store, daemonsets, &ds, status, MANAGER);
}

fn create_pod(store: &Store, pods: &ResourceType, ds: &Value, node: &str, hash: &str) {
    let tpl = &ds["spec"]["template"];
    let mut labels = tpl["metadata"]["labels"].clone();
    labels[REVISION_LABEL] = json!(hash);
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": format!("{}-", meta::name(ds)), "namespace": meta::namespace(ds), "labels": labels,
                     "annotations": tpl["metadata"]["annotations"], "ownerReferences": owner_ref(ds, "apps/v1", "DaemonSet")},
        "spec": tpl["spec"],
    });
    if pod["metadata"]["annotations"].is_null() {
        meta::remove_meta(&mut pod, "annotations");
    }
    // The controller places its Pods itself: each one is made for its Node.
    pod["spec"]["nodeName"] = json!(node);
    let _ = store.create(pods, Some(meta::namespace(ds)), pod, &WriteOpts::by(MANAGER));
}
