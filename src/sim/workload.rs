//! The workload simulator: what the Deployment, ReplicaSet, ReplicationController and DaemonSet
//! controllers, the scheduler and the kubelet do. Deployments get ReplicaSets, ReplicaSets and
//! ReplicationControllers get Pods, DaemonSets a Pod on each Node, and Pods become Ready after the
//! delay their container env asks for (`SERIN_SIM_READY_SECONDS`), or never (`SERIN_SIM_CRASH=true`).

use super::kubelet::{ContainerState, container_status, pod_status_base};
use super::meta;
use super::resources::ResourceType;
use super::selector::LabelSelector;
use super::store::{DeleteOpts, EventType, Store, Subresource, WriteOpts};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

const RS_MANAGER: &str = "replicaset-controller";
const DEPLOY_MANAGER: &str = "deployment-controller";
const KUBELET: &str = "kubelet";

type Key = (String, String);

struct Types {
    deployments: Arc<ResourceType>,
    replicasets: Arc<ResourceType>,
    controllers: Arc<ResourceType>,
    daemonsets: Arc<ResourceType>,
    pods: Arc<ResourceType>,
}

/// The two kinds that keep a number of Pods: a ReplicaSet, or its older form, a
/// ReplicationController (whose selector is a plain label map).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PodSet {
    ReplicaSet,
    ReplicationController,
}

impl PodSet {
    fn of(kind: &str) -> Option<Self> {
        match kind {
            "ReplicaSet" => Some(PodSet::ReplicaSet),
            "ReplicationController" => Some(PodSet::ReplicationController),
            _ => None,
        }
    }

    fn rt<'a>(&self, t: &'a Types) -> &'a ResourceType {
        match self {
            PodSet::ReplicaSet => &t.replicasets,
            PodSet::ReplicationController => &t.controllers,
        }
    }

    fn selector(&self, set: &Value) -> LabelSelector {
        match self {
            PodSet::ReplicaSet => LabelSelector::from_object(&set["spec"]["selector"]),
            PodSet::ReplicationController => {
                LabelSelector::from_object(&json!({"matchLabels": set["spec"]["selector"]}))
            }
        }
    }

    fn owner_ref(&self, set: &Value) -> Value {
        match self {
            PodSet::ReplicaSet => owner_ref(set, "apps/v1", "ReplicaSet"),
            PodSet::ReplicationController => owner_ref(set, "v1", "ReplicationController"),
        }
    }

    fn manager(&self) -> &'static str {
        match self {
            PodSet::ReplicaSet => RS_MANAGER,
            PodSet::ReplicationController => "replication-controller",
        }
    }
}

type SetKey = (PodSet, Key);

/// The env value of the pod's first container that sets it.
pub fn container_env<'a>(pod_spec: &'a Value, name: &str) -> Option<&'a str> {
    pod_spec["containers"].as_array()?.iter().find_map(|c| {
        c["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
    })
}

pub async fn run(store: Arc<Store>) {
    let Some(types) = (|| {
        let r = store.registry();
        Some(Types {
            deployments: r.find("apps", "v1", "deployments")?,
            replicasets: r.find("apps", "v1", "replicasets")?,
            controllers: r.find("", "v1", "replicationcontrollers")?,
            daemonsets: r.find("apps", "v1", "daemonsets")?,
            pods: r.find("", "v1", "pods")?,
        })
    })() else {
        return;
    };
    let mut rx = store.subscribe();
    let mut dirty_deploys: BTreeSet<Key> = BTreeSet::new();
    let mut dirty_rs: BTreeSet<SetKey> = BTreeSet::new();
    let mut dirty_ds: BTreeSet<Key> = BTreeSet::new();
    let mut ready_at: BTreeMap<Instant, Vec<Key>> = BTreeMap::new();
    // Pods no Node would take; tried again when a Node changes (uncordoned, say).
    let mut unscheduled: BTreeSet<Key> = BTreeSet::new();
    // ReplicaSets to count again when a Pod has been Ready for their `minReadySeconds`.
    let mut available_at: BTreeMap<Instant, Vec<SetKey>> = BTreeMap::new();
    let mut resync = tokio::time::interval(Duration::from_secs(5));
    loop {
        let next_ready = ready_at
            .keys()
            .chain(available_at.keys())
            .min()
            .copied()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            received = rx.recv() => {
                let mut batch = Vec::new();
                match received {
                    Ok(e) => batch.push(e),
                    Err(RecvError::Lagged(_)) => full_resync(&store, &types, &mut dirty_deploys, &mut dirty_rs, &mut dirty_ds),
                    Err(RecvError::Closed) => return,
                }
                while let Ok(e) = rx.try_recv() {
                    batch.push(e);
                }
                for e in batch {
                    let key = (meta::namespace(&e.object).to_string(), meta::name(&e.object).to_string());
                    match (e.key.group.as_str(), e.key.plural.as_str()) {
                        ("apps", "deployments") => { dirty_deploys.insert(key); }
                        ("apps", "replicasets") => {
                            dirty_rs.insert((PodSet::ReplicaSet, key.clone()));
                            for d in controller_owner(&e.object, "Deployment") {
                                dirty_deploys.insert((key.0.clone(), d));
                            }
                        }
                        ("", "replicationcontrollers") => {
                            dirty_rs.insert((PodSet::ReplicationController, key));
                        }
                        ("apps", "daemonsets") => {
                            dirty_ds.insert(key);
                        }
                        ("", "nodes") if !unscheduled.is_empty() => {
                            let now = Instant::now();
                            ready_at.entry(now).or_default().extend(std::mem::take(&mut unscheduled));
                        }
                        ("", "pods") => {
                            for (kind, owner) in controllers_of(&e.object) {
                                match PodSet::of(&kind) {
                                    Some(set) => { dirty_rs.insert((set, (key.0.clone(), owner))); }
                                    None if kind == "DaemonSet" => { dirty_ds.insert((key.0.clone(), owner)); }
                                    None => {}
                                }
                            }
                            if e.type_ == EventType::Added {
                                schedule_ready(&e.object, &mut ready_at);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ = tokio::time::sleep_until(next_ready) => {
                let due: Vec<Instant> = ready_at.range(..=Instant::now()).map(|(k, _)| *k).collect();
                for at in due {
                    for pod in ready_at.remove(&at).unwrap_or_default() {
                        if !make_ready(&store, &types.pods, &pod) {
                            unscheduled.insert(pod);
                        }
                    }
                }
                let due: Vec<Instant> = available_at.range(..=Instant::now()).map(|(k, _)| *k).collect();
                for at in due {
                    dirty_rs.extend(available_at.remove(&at).unwrap_or_default());
                }
            }
            _ = resync.tick() => full_resync(&store, &types, &mut dirty_deploys, &mut dirty_rs, &mut dirty_ds),
        }
        for key in std::mem::take(&mut dirty_deploys) {
            sync_deployment(&store, &types, &key);
        }
        for key in std::mem::take(&mut dirty_rs) {
            if let Some(wait) = sync_pod_set(&store, &types, &key) {
                available_at.entry(Instant::now() + wait).or_default().push(key);
            }
        }
        for key in std::mem::take(&mut dirty_ds) {
            super::daemonsets::sync(&store, &types.daemonsets, &types.pods, &key);
        }
    }
}

fn full_resync(
    store: &Store,
    types: &Types,
    deploys: &mut BTreeSet<Key>,
    sets: &mut BTreeSet<SetKey>,
    daemonsets: &mut BTreeSet<Key>,
) {
    let keys = |rt: &ResourceType| -> Vec<Key> {
        store
            .list(&rt.storage_key(), None, None, None, &|_| true)
            .items
            .iter()
            .map(|o| (meta::namespace(o).to_string(), meta::name(o).to_string()))
            .collect()
    };
    deploys.extend(keys(&types.deployments));
    sets.extend(keys(&types.replicasets).into_iter().map(|k| (PodSet::ReplicaSet, k)));
    sets.extend(
        keys(&types.controllers)
            .into_iter()
            .map(|k| (PodSet::ReplicationController, k)),
    );
    daemonsets.extend(keys(&types.daemonsets));
}

/// The kind and name of an object's controlling owner.
fn controllers_of(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["controller"] == true)
        .filter_map(|r| Some((r["kind"].as_str()?.to_string(), r["name"].as_str()?.to_string())))
        .collect()
}

pub(super) fn controller_owner(obj: &Value, kind: &str) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == kind && r["controller"] == true)
        .filter_map(|r| r["name"].as_str().map(String::from))
        .collect()
}

fn schedule_ready(pod: &Value, ready_at: &mut BTreeMap<Instant, Vec<Key>>) {
    let secs = container_env(&pod["spec"], "SERIN_SIM_READY_SECONDS")
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0)
        .max(0.0);
    let at = Instant::now() + Duration::from_secs_f64(secs);
    ready_at
        .entry(at)
        .or_default()
        .push((meta::namespace(pod).to_string(), meta::name(pod).to_string()));
}

/// An FNV-1a hash of the template, spelled with the alphabet Kubernetes uses for such suffixes.
/// A null field counts as absent, as the two are one in the API's types: a template sent back by
/// `kubectl rollout undo` without `creationTimestamp: null` is the same template.
pub fn template_hash(template: &Value) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in without_nulls(template).to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    let mut n = h;
    for _ in 0..10 {
        out.push(ALPHABET[(n % 27) as usize] as char);
        n /= 27;
        if n == 0 {
            break;
        }
    }
    out
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), without_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The objects of one type that `owner` controls, in name order, from the store's owner index:
/// a sync costs what the owner owns, not what its namespace holds.
pub(super) fn owned_of(
    store: &Store,
    owner: &Value,
    rt: &ResourceType,
    keep: impl Fn(&Value) -> bool,
) -> Vec<Arc<Value>> {
    let uid = meta::uid(owner);
    let mut out: Vec<Arc<Value>> = store
        .dependents_of(uid)
        .into_iter()
        .filter(|(t, o)| t.storage_key() == rt.storage_key() && owned_by(o, uid) && keep(o))
        .map(|(_, o)| o)
        .collect();
    out.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    out
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid && r["controller"] == true))
}

pub(super) fn owner_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": meta::name(owner), "uid": meta::uid(owner), "controller": true, "blockOwnerDeletion": true}])
}

fn sync_deployment(store: &Store, t: &Types, key: &Key) {
    let Ok(d) = store.get(&t.deployments, &key.0, &key.1) else {
        return;
    };
    if meta::is_deleting(&d) {
        return;
    }
    let owned = owned_of(store, &d, &t.replicasets, |_| true);
    let template = &d["spec"]["template"];
    let hash = template_hash(template);
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let current = owned
        .iter()
        .find(|rs| rs["metadata"]["labels"]["pod-template-hash"] == hash.as_str())
        .cloned();
    let new_rs = match current {
        Some(rs) => {
            if rs["spec"]["replicas"].as_i64() != Some(desired) {
                let _ = store.modify(
                    &t.replicasets,
                    &key.0,
                    meta::name(&rs),
                    &WriteOpts::by(DEPLOY_MANAGER),
                    &|o| o["spec"]["replicas"] = json!(desired),
                );
            }
            rs
        }
        None => {
            let mut tpl = template.clone();
            meta::set_path(&mut tpl, "metadata.labels.pod-template-hash", json!(hash));
            let mut selector = d["spec"]["selector"].clone();
            meta::set_path(&mut selector, "matchLabels.pod-template-hash", json!(hash));
            // Born with its revision and the Deployment's annotations: one write, not two.
            let mut annotations: serde_json::Map<String, Value> = carried_annotations(&d).into_iter().collect();
            let next = owned.iter().map(|rs| revision_of(rs)).max().unwrap_or(0) + 1;
            annotations.insert(REVISION.into(), json!(next.to_string()));
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": format!("{}-{hash}", key.1), "namespace": key.0, "labels": tpl["metadata"]["labels"],
                             "annotations": annotations, "ownerReferences": owner_ref(&d, "apps/v1", "Deployment")},
                "spec": {"replicas": desired, "selector": selector, "template": tpl,
                         "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0)},
            });
            match store.create(&t.replicasets, Some(&key.0), rs, &WriteOpts::by(DEPLOY_MANAGER)) {
                Ok(rs) => Arc::new(rs),
                Err(_) => return,
            }
        }
    };
    record_revision(store, t, &d, &new_rs, &owned);
    // Old ReplicaSets shrink as the new one becomes available (a rolling update).
    let new_available = new_rs["status"]["availableReplicas"].as_i64().unwrap_or(0);
    let mut old_budget = (desired - new_available).max(0);
    for rs in owned.iter().filter(|rs| meta::uid(rs) != meta::uid(&new_rs)) {
        let current = rs["spec"]["replicas"].as_i64().unwrap_or(0);
        let want = current.min(old_budget);
        old_budget -= want;
        if want != current {
            let _ = store.modify(
                &t.replicasets,
                &key.0,
                meta::name(rs),
                &WriteOpts::by(DEPLOY_MANAGER),
                &|o| o["spec"]["replicas"] = json!(want),
            );
        }
    }
    let sum = |field: &str| -> i64 {
        owned
            .iter()
            .map(|rs| rs["status"][field].as_i64().unwrap_or(0))
            .sum::<i64>()
            + if owned.iter().any(|rs| meta::uid(rs) == meta::uid(&new_rs)) {
                0
            } else {
                new_rs["status"][field].as_i64().unwrap_or(0)
            }
    };
    let available = sum("availableReplicas");
    let status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": sum("replicas"),
        "updatedReplicas": new_rs["status"]["replicas"].as_i64().unwrap_or(0),
        "readyReplicas": sum("readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": (desired - available).max(0),
        "conditions": [{
            "type": "Available",
            "status": if available >= desired { "True" } else { "False" },
            "reason": if available >= desired { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
            "message": if available >= desired { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
        }],
    });
    write_status(store, &t.deployments, &d, status, DEPLOY_MANAGER);
}

const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";

fn revision_of(obj: &Value) -> i64 {
    obj["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The Deployment's annotations its ReplicaSets carry: all but the controller's and kubectl's own.
fn carried_annotations(d: &Value) -> Vec<(String, Value)> {
    d["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with("deployment.kubernetes.io/") && !k.starts_with("kubectl.kubernetes.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Revisions as the Deployment controller numbers them, which `kubectl rollout history` lists and
/// `kubectl rollout undo` goes back to: the ReplicaSet of the current template has the highest
/// (an old one brought back takes the next, remembering its earlier ones), carries the
/// Deployment's own annotations (`kubernetes.io/change-cause` among them), and the Deployment
/// shows its number.
fn record_revision(store: &Store, t: &Types, d: &Value, new_rs: &Value, owned: &[Arc<Value>]) {
    let highest = owned
        .iter()
        .filter(|rs| meta::uid(rs) != meta::uid(new_rs))
        .map(|rs| revision_of(rs))
        .max()
        .unwrap_or(0);
    let current = revision_of(new_rs);
    let revision = if current > highest { current } else { highest + 1 };
    let carried = carried_annotations(d);
    let stale = revision != current
        || carried
            .iter()
            .any(|(k, v)| new_rs["metadata"]["annotations"][k.as_str()] != *v);
    if stale {
        let by = WriteOpts::by(DEPLOY_MANAGER);
        let _ = store.modify(&t.replicasets, meta::namespace(d), meta::name(new_rs), &by, &|o| {
            // An old ReplicaSet brought back remembers the revisions it had.
            let history = match o["metadata"]["annotations"][REVISION_HISTORY].as_str() {
                _ if current == 0 || revision == current => None,
                None | Some("") => Some(current.to_string()),
                Some(h) => Some(format!("{h},{current}")),
            };
            let annotations = &mut o["metadata"]["annotations"];
            if !annotations.is_object() {
                *annotations = json!({});
            }
            for (k, v) in &carried {
                annotations[k.as_str()] = v.clone();
            }
            annotations[REVISION] = json!(revision.to_string());
            if let Some(h) = &history {
                annotations[REVISION_HISTORY] = json!(h);
            }
        });
    }
    if d["metadata"]["annotations"][REVISION] != revision.to_string().as_str() {
        let by = WriteOpts::by(DEPLOY_MANAGER);
        let _ = store.modify(&t.deployments, meta::namespace(d), meta::name(d), &by, &|o| {
            if !o["metadata"]["annotations"].is_object() {
                o["metadata"]["annotations"] = json!({});
            }
            o["metadata"]["annotations"][REVISION] = json!(revision.to_string());
        });
    }
}

/// Writes status only when it changed, keeping condition transition times that did not change.
pub(super) fn write_status(store: &Store, rt: &ResourceType, obj: &Value, mut status: Value, manager: &str) {
    let now = meta::now_rfc3339();
    if let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            let prev = obj["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|p| p["type"] == c["type"]));
            let time = match prev {
                Some(p) if p["status"] == c["status"] => p["lastTransitionTime"].clone(),
                _ => json!(now),
            };
            c["lastTransitionTime"] = time.clone();
            // Only a Deployment's conditions have an update time.
            if rt.kind == "Deployment" {
                c["lastUpdateTime"] = time;
            }
        }
    }
    if obj["status"] == status {
        return;
    }
    let opts = WriteOpts {
        manager,
        dry_run: false,
        force: false,
        subresource: Subresource::Status,
        caller: None,
    };
    let _ = store.modify(rt, meta::namespace(obj), meta::name(obj), &opts, &move |o| {
        o["status"] = status.clone()
    });
}

/// Pods to the ReplicaSet's (or ReplicationController's) size, and its status; how long until a
/// Ready Pod becomes available (`minReadySeconds`), when one is waiting for that.
fn sync_pod_set(store: &Store, t: &Types, (set, key): &SetKey) -> Option<Duration> {
    let rt = set.rt(t);
    let Ok(rs) = store.get(rt, &key.0, &key.1) else {
        return None;
    };
    if meta::is_deleting(&rs) {
        return None;
    }
    let selector = set.selector(&rs);
    let pods = owned_of(store, &rs, &t.pods, |p| {
        selector.matches(meta::labels(p)) && !meta::is_deleting(p)
    });
    let desired = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    if pods.len() < desired {
        for _ in pods.len()..desired {
            let tpl = &rs["spec"]["template"];
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": format!("{}-", key.1), "namespace": key.0, "labels": tpl["metadata"]["labels"],
                             "annotations": tpl["metadata"]["annotations"], "ownerReferences": set.owner_ref(&rs)},
                "spec": tpl["spec"],
            });
            let mut pod = pod;
            if pod["metadata"]["annotations"].is_null() {
                meta::remove_meta(&mut pod, "annotations");
            }
            let _ = store.create(&t.pods, Some(&key.0), pod, &WriteOpts::by(set.manager()));
        }
    } else if pods.len() > desired {
        // Not-ready pods go first, then the newest.
        let mut victims: Vec<&Arc<Value>> = pods.iter().collect();
        victims.sort_by_key(|p| {
            (
                meta::pod_ready(p),
                std::cmp::Reverse(p["metadata"]["creationTimestamp"].as_str().unwrap_or("").to_string()),
            )
        });
        for p in victims.into_iter().take(pods.len() - desired) {
            let _ = store.delete(&t.pods, &key.0, meta::name(p), &DeleteOpts::default());
        }
    }
    let live = owned_of(store, &rs, &t.pods, |p| !meta::is_deleting(p));
    let ready = live.iter().filter(|p| meta::pod_ready(p)).count();
    // As Kubernetes counts them: a Pod is available once it has been Ready for minReadySeconds.
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0).max(0);
    let now = jiff::Timestamp::now();
    let waits: Vec<Option<Duration>> = live
        .iter()
        .filter(|p| meta::pod_ready(p))
        .map(|p| {
            let since = ready_since(p)?;
            let at = since.checked_add(jiff::SignedDuration::from_secs(min_ready)).ok()?;
            (min_ready > 0 && at >= now).then(|| at.duration_since(now).unsigned_abs() + Duration::from_millis(10))
        })
        .collect();
    let available = waits.iter().filter(|w| w.is_none()).count();
    let status = json!({
        "replicas": live.len(),
        "fullyLabeledReplicas": live.len(),
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs["metadata"]["generation"],
    });
    write_status(store, rt, &rs, status, set.manager());
    waits.into_iter().flatten().min()
}

/// When a Pod's Ready condition last turned true.
fn ready_since(pod: &Value) -> Option<jiff::Timestamp> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")?["lastTransitionTime"]
        .as_str()?
        .parse()
        .ok()
}

/// The kubelet starting a Pod once it is bound; false when no Node would take it yet.
fn make_ready(store: &Store, pods: &ResourceType, key: &Key) -> bool {
    let Ok(pod) = store.get(pods, &key.0, &key.1) else {
        return true;
    };
    if meta::is_deleting(&pod) {
        return true;
    }
    let Some(pod) = bind(store, pods, key, pod) else {
        return false;
    };
    let now = meta::now_rfc3339();
    let n = u32::from_str_radix(&meta::uid(&pod).replace('-', "")[..6.min(meta::uid(&pod).len())], 16).unwrap_or(1);
    let ip = format!("10.244.{}.{}", (n >> 8) & 0xff, (n & 0xff).max(2));
    if container_env(&pod["spec"], "SERIN_SIM_CRASH") == Some("true") {
        let status = crash_status(&pod);
        let opts = WriteOpts {
            manager: KUBELET,
            dry_run: false,
            force: false,
            subresource: Subresource::Status,
            caller: None,
        };
        let _ = store.modify(pods, &key.0, &key.1, &opts, &move |o| o["status"] = status.clone());
        return true;
    }
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let state = ContainerState {
                state: json!({"running": {"startedAt": now}}),
                last_state: json!({}),
                ready: true,
                started: true,
                restarts: 0,
            };
            container_status(&pod, i, c, state)
        })
        .collect();
    let created = &pod["metadata"]["creationTimestamp"];
    let mut status = pod_status_base(&pod, "Running", &ip);
    status["conditions"] = json!([
        {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": created},
        {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
        {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
        {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": created},
    ]);
    status["containerStatuses"] = json!(statuses);
    let opts = WriteOpts {
        manager: KUBELET,
        dry_run: false,
        force: false,
        subresource: Subresource::Status,
        caller: None,
    };
    let _ = store.modify(pods, &key.0, &key.1, &opts, &move |o| o["status"] = status.clone());
    true
}

/// The scheduler's part: a Pod not yet on a Node is bound to one as it starts.
/// The scheduler's part: the Pod bound to a Node that takes new Pods, or, when none does, left
/// Pending with the reason (`None`).
fn bind(store: &Store, pods: &ResourceType, key: &Key, pod: Value) -> Option<Value> {
    if !pod["spec"]["nodeName"].is_null() {
        return Some(pod);
    }
    let opts = WriteOpts::by("default-scheduler");
    let Some(node) = super::nodes::node_for(&pod, &super::nodes::schedulable(store)) else {
        let total = super::nodes::NODES.len();
        let condition = json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastProbeTime": null,
                               "lastTransitionTime": meta::now_rfc3339(),
                               "message": format!("0/{total} nodes are available: {total} node(s) were unschedulable.")});
        let status = WriteOpts {
            subresource: Subresource::Status,
            ..opts
        };
        let unscheduled = pod["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["reason"] == "Unschedulable"));
        if !unscheduled {
            let _ = store.modify(pods, &key.0, &key.1, &status, &move |o| {
                o["status"]["conditions"] = json!([condition.clone()])
            });
        }
        return None;
    };
    Some(
        store
            .modify(pods, &key.0, &key.1, &opts, &move |o| {
                o["spec"]["nodeName"] = json!(node)
            })
            .unwrap_or(pod),
    )
}

/// Pods created with `SERIN_SIM_CRASH=true` show as crash-looping, as a broken image would.
fn crash_status(pod: &Value) -> Value {
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let state = ContainerState {
                state: json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}}),
                last_state: json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
                ready: false,
                started: false,
                restarts: 1,
            };
            container_status(pod, i, c, state)
        })
        .collect();
    let mut status = pod_status_base(pod, "Running", "");
    status["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]);
    status["containerStatuses"] = json!(statuses);
    status
}
