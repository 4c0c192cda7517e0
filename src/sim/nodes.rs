//! The cluster's machines and what comes with every namespace: three Ready Nodes, as kubelet
//! registers and reports them, and the `default` ServiceAccount that the service-account controller
//! puts in each namespace. Pods are placed on the Nodes in turn when they start.

use super::meta;
use super::store::{EventType, Store, Subresource, WriteOpts};
use serde_json::{Value, json};
use std::sync::Arc;

/// The simulated machines.
pub const NODES: [&str; 3] = ["sim-node-1", "sim-node-2", "sim-node-3"];

/// The Kubernetes version the simulated cluster reports, from `/version` to each Node's kubelet.
pub const KUBE_VERSION: &str = "v1.33.0";

/// The InternalIP of a Node, or of the first one for a Pod not yet placed.
pub fn address_of(node: &str) -> String {
    let n = NODES.iter().position(|n| *n == node).unwrap_or(0);
    format!("172.18.0.{}", n + 2)
}

/// The Node a Pod runs on, among those that take new Pods: chosen from its uid, so Pods spread out.
pub fn node_for(pod: &Value, among: &[&'static str]) -> Option<&'static str> {
    let sum: u32 = meta::uid(pod).bytes().map(u32::from).sum();
    among.get(sum as usize % among.len().max(1)).copied()
}

/// The Nodes the scheduler places new Pods on: those not cordoned (`spec.unschedulable`).
pub fn schedulable(store: &Store) -> Vec<&'static str> {
    let Some(rt) = store.find_type("", "v1", "nodes") else {
        return NODES.to_vec();
    };
    NODES
        .into_iter()
        .filter(|n| {
            store
                .get(&rt, "", n)
                .is_ok_and(|node| node["spec"]["unschedulable"] != true)
        })
        .collect()
}

fn node(name: &str, index: usize) -> Value {
    let now = meta::now_rfc3339();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": now,
               "reason": reason, "message": message})
    };
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    });
    if index == 0 {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
    }
    let resources =
        json!({"cpu": "4", "ephemeral-storage": "102350Mi", "hugepages-2Mi": "0", "memory": "16384Mi", "pods": "110"});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {"podCIDR": format!("10.244.{index}.0/24"), "podCIDRs": [format!("10.244.{index}.0/24")],
                 "providerID": format!("sim://{name}")},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": address_of(name)}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("{index:032x}"),
                "systemUUID": format!("00000000-0000-0000-0000-{index:012x}"),
                "bootID": format!("00000000-0000-0000-0001-{index:012x}"),
                "kernelVersion": "6.1.0",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": KUBE_VERSION,
                "kubeProxyVersion": KUBE_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

/// Registers the Nodes, as each kubelet does when it joins.
pub fn register(store: &Store) {
    let Some(rt) = store.find_type("", "v1", "nodes") else {
        return;
    };
    for (i, name) in NODES.iter().enumerate() {
        let node = node(name, i);
        let status = node["status"].clone();
        // Kubelet registers its Node, then reports on it through /status, as a create leaves the
        // status out. Neither can conflict on a store that has no Nodes yet.
        let _ = store.create(&rt, None, node, &WriteOpts::by("kubelet"));
        let report = WriteOpts {
            subresource: Subresource::Status,
            ..WriteOpts::by("kubelet")
        };
        let _ = store.modify(&rt, "", name, &report, &move |n| n["status"] = status.clone());
    }
}

/// The service-account controller: every namespace, the built-in ones too, gets `default`.
pub async fn run(store: Arc<Store>) {
    super::store::react(
        store,
        |e| e.type_ == EventType::Added && e.key.group.is_empty() && e.key.plural == "namespaces",
        |store, e| give_default_account(store, meta::name(&e.object)),
        every_namespace_gets_one,
    )
    .await;
}

fn every_namespace_gets_one(store: &Store) {
    let Some(rt) = store.find_type("", "v1", "namespaces") else {
        return;
    };
    let page = store.list(&rt.storage_key(), None, None, None, &|_| true);
    for ns in page.items {
        give_default_account(store, meta::name(&ns));
    }
}

fn give_default_account(store: &Store, ns: &str) {
    let Some(rt) = store.find_type("", "v1", "serviceaccounts") else {
        return;
    };
    if store.get(&rt, ns, "default").is_ok() {
        return;
    }
    let account =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
    // A namespace already going, or an account made in between: nothing to do either way.
    let _ = store.create(&rt, Some(ns), account, &WriteOpts::by("kube-controller-manager"));
}
