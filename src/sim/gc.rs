//! The garbage collector and namespace controller: dependents follow their owners (background,
//! foreground, orphan), and a deleted namespace takes its contents with it.

use super::meta;
use super::resources::ResourceType;
use super::store::{DeleteOpts, EventType, Propagation, Store, WatchEvent, WriteOpts};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

const MANAGER: &str = "generic-garbage-collector";

pub async fn run(store: Arc<Store>) {
    let mut rx = store.subscribe();
    let mut sweep = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Ok(e) => on_event(&store, &e),
                Err(RecvError::Lagged(_)) => sweep_all(&store),
                Err(RecvError::Closed) => return,
            },
            _ = sweep.tick() => sweep_all(&store),
        }
    }
}

fn on_event(store: &Store, e: &WatchEvent) {
    let obj = &e.object;
    match e.type_ {
        EventType::Deleted => {
            let uid = meta::uid(obj);
            for (rt, dep) in store.dependents_of(uid) {
                collect_dependent(store, &rt, &dep, uid);
            }
            for owner in meta::owner_uids(obj) {
                finish_if_done(store, &owner);
            }
            if e.key.group.is_empty() && e.key.plural != "namespaces" {
                let ns = meta::namespace(obj);
                if !ns.is_empty() {
                    finish_namespace_if_empty(store, ns);
                }
            }
        }
        EventType::Added | EventType::Modified => {
            if meta::is_deleting(obj) {
                handle_deleting(store, obj, e.key.group.is_empty() && e.key.plural == "namespaces");
            }
            if e.type_ == EventType::Added {
                let owners = meta::owner_uids(obj);
                if !owners.is_empty()
                    && owners.iter().all(|o| store.by_uid(o).is_none())
                    && let Some(rt) = store.registry().storage_type(&e.key)
                {
                    delete(store, &rt, obj, Propagation::Background);
                }
            }
        }
    }
}

fn sweep_all(store: &Store) {
    for (rt, obj) in store.deleting_objects() {
        let is_ns = rt.group.is_empty() && rt.plural == "namespaces";
        handle_deleting(store, &obj, is_ns);
    }
}

fn handle_deleting(store: &Store, obj: &Value, is_namespace: bool) {
    let uid = meta::uid(obj);
    if is_namespace {
        let ns = meta::name(obj);
        for (rt, child) in store.objects_in_namespace(ns) {
            if !meta::is_deleting(&child) {
                delete(store, &rt, &child, Propagation::Background);
            }
        }
        finish_namespace_if_empty(store, ns);
        return;
    }
    let finalizers = meta::finalizers(obj);
    if finalizers.iter().any(|f| f == "orphan") {
        for (rt, dep) in store.dependents_of(uid) {
            drop_owner_ref(store, &rt, &dep, uid);
        }
        remove_finalizer(store, obj, "orphan");
    }
    if finalizers.iter().any(|f| f == "foregroundDeletion") {
        for (rt, dep) in store.dependents_of(uid) {
            if !meta::is_deleting(&dep) {
                delete(store, &rt, &dep, Propagation::Foreground);
            }
        }
        finish_if_done(store, uid);
    }
}

/// A foreground-deleted owner goes once its dependents are gone.
fn finish_if_done(store: &Store, owner_uid: &str) {
    let Some((_, owner)) = store.by_uid(owner_uid) else {
        return;
    };
    if meta::is_deleting(&owner)
        && meta::finalizers(&owner).iter().any(|f| f == "foregroundDeletion")
        && store.dependents_of(owner_uid).is_empty()
    {
        remove_finalizer(store, &owner, "foregroundDeletion");
    }
}

fn finish_namespace_if_empty(store: &Store, ns: &str) {
    // Only a namespace being deleted waits to be emptied. Asking that first costs one lookup; the
    // emptiness check copies the whole namespace, too much on every Pod deleted in a large one.
    let deleting = store
        .find_type("", "v1", "namespaces")
        .and_then(|rt| store.get(&rt, "", ns).ok())
        .is_some_and(|n| meta::is_deleting(&n));
    if deleting && store.objects_in_namespace(ns).is_empty() {
        store.finalize_namespace(ns);
    }
}

fn collect_dependent(store: &Store, rt: &ResourceType, dep: &Value, owner_uid: &str) {
    let others_alive = meta::owner_uids(dep)
        .iter()
        .any(|o| o != owner_uid && store.by_uid(o).is_some());
    if others_alive {
        drop_owner_ref(store, rt, dep, owner_uid);
    } else if !meta::is_deleting(dep) {
        delete(store, rt, dep, Propagation::Background);
    }
}

fn delete(store: &Store, rt: &ResourceType, obj: &Value, propagation: Propagation) {
    let opts = DeleteOpts {
        propagation: Some(propagation),
        precondition_uid: Some(meta::uid(obj).to_string()),
        ..Default::default()
    };
    // Already gone or replaced: nothing left to collect.
    let _ = store.delete(rt, meta::namespace(obj), meta::name(obj), &opts);
}

fn drop_owner_ref(store: &Store, rt: &ResourceType, dep: &Value, owner_uid: &str) {
    let owner_uid = owner_uid.to_string();
    let _ = store.modify(
        rt,
        meta::namespace(dep),
        meta::name(dep),
        &WriteOpts::by(MANAGER),
        &move |o| {
            if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != json!(owner_uid));
            }
            if o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.is_empty())
            {
                meta::remove_meta(o, "ownerReferences");
            }
        },
    );
}

fn remove_finalizer(store: &Store, obj: &Value, finalizer: &str) {
    let Some((rt, _)) = store.by_uid(meta::uid(obj)) else {
        return;
    };
    let finalizer = finalizer.to_string();
    let _ = store.modify(
        &rt,
        meta::namespace(obj),
        meta::name(obj),
        &WriteOpts::by(MANAGER),
        &move |o| {
            if let Some(list) = o["metadata"]["finalizers"].as_array_mut() {
                list.retain(|f| f != &json!(finalizer));
            }
        },
    );
}
