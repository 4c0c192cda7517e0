//! The simulated cluster, seen through kube-rs as an operator sees a real API server.

mod common;

use common::{Cluster, eventually};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn cm(name: &str, labels: serde_json::Value, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": data})).expect("configmap")
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn crud_conflicts_and_invalid_objects() {
    let sim = Cluster::sim();
    let cms: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    let created = cms
        .create(&PostParams::default(), &cm("app", json!({}), json!({"k": "v1"})))
        .await
        .unwrap();
    assert!(created.uid().is_some());
    assert!(created.creation_timestamp().is_some());
    let rv1 = created.resource_version().unwrap();

    let (code, msg) = api_error(
        cms.create(&PostParams::default(), &cm("app", json!({}), json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409, "{msg}");
    assert!(msg.contains("already exists"), "{msg}");

    let mut fresh = cms.get("app").await.unwrap();
    fresh.data = Some([("k".to_string(), "v2".to_string())].into());
    let updated = cms.replace("app", &PostParams::default(), &fresh).await.unwrap();
    assert_ne!(updated.resource_version().unwrap(), rv1);

    // The same write again changes nothing and does not bump the resourceVersion.
    let same = cms.replace("app", &PostParams::default(), &updated).await.unwrap();
    assert_eq!(same.resource_version(), updated.resource_version());

    // A write based on the old version is refused.
    let (code, msg) = api_error(cms.replace("app", &PostParams::default(), &created).await.unwrap_err());
    assert_eq!(code, 409);
    assert!(msg.contains("the object has been modified"), "{msg}");

    let (code, _) = api_error(
        cms.create(&PostParams::default(), &cm("Bad_Name", json!({}), json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);

    cms.delete("app", &DeleteParams::default()).await.unwrap();
    let (code, msg) = api_error(cms.get("app").await.unwrap_err());
    assert_eq!(code, 404);
    assert_eq!(msg, "configmaps \"app\" not found");

    let missing: Api<ConfigMap> = Api::namespaced(sim.client().await, "nope");
    let (code, msg) = api_error(
        missing
            .create(&PostParams::default(), &cm("x", json!({}), json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404, "{msg}");
}

#[tokio::test]
async fn lists_by_label_and_field_in_pages() {
    let sim = Cluster::sim();
    let cms: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    for (i, tier) in ["a", "b", "c", "a", "b"].iter().enumerate() {
        cms.create(
            &PostParams::default(),
            &cm(&format!("cm-{i}"), json!({"tier": tier}), json!({})),
        )
        .await
        .unwrap();
    }
    let names = |l: &kube::core::ObjectList<ConfigMap>| l.items.iter().map(|c| c.name_any()).collect::<Vec<_>>();
    let ab = cms.list(&ListParams::default().labels("tier in (a,b)")).await.unwrap();
    assert_eq!(names(&ab), vec!["cm-0", "cm-1", "cm-3", "cm-4"]);
    let not_a = cms.list(&ListParams::default().labels("tier,tier!=a")).await.unwrap();
    assert_eq!(names(&not_a), vec!["cm-1", "cm-2", "cm-4"]);
    let one = cms
        .list(&ListParams::default().fields("metadata.name=cm-2"))
        .await
        .unwrap();
    assert_eq!(names(&one), vec!["cm-2"]);
    let (code, _) = api_error(cms.list(&ListParams::default().fields("data.x=1")).await.unwrap_err());
    assert_eq!(code, 400);

    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(2);
    let mut pages = 0;
    loop {
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        seen.extend(names(&page));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = ListParams::default().limit(2).continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec!["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);

    let all_ns: Api<ConfigMap> = Api::all(sim.client().await);
    assert_eq!(all_ns.list(&ListParams::default()).await.unwrap().items.len(), 5);
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version_and_expires() {
    let sim = Cluster::sim_with(&["--watch-history", "100", "--bookmark-seconds", "0.2"]);
    let client = sim.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &cm("w", json!({}), json!({"n": "0"})))
        .await
        .unwrap();
    let from = first.resource_version().unwrap();
    for n in 1..=3 {
        cms.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": n.to_string()}})),
        )
        .await
        .unwrap();
    }
    let stream = cms.watch(&WatchParams::default().timeout(2), &from).await.unwrap();
    let events: Vec<WatchEvent<ConfigMap>> = stream.take(3).try_collect().await.unwrap();
    let values: Vec<String> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Modified(c) => c.data.as_ref().unwrap()["n"].clone(),
            other => panic!("expected MODIFIED, got {other:?}"),
        })
        .collect();
    assert_eq!(values, vec!["1", "2", "3"]);

    // Bookmarks carry the latest resourceVersion when asked for.
    let mut stream = cms
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            }
            .timeout(3),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    let mut bookmark = None;
    while let Some(e) = stream.try_next().await.unwrap() {
        if let WatchEvent::Bookmark(b) = e {
            bookmark = Some(b.metadata.resource_version);
            break;
        }
    }
    assert!(bookmark.is_some(), "no bookmark arrived");

    for n in 0..150 {
        cms.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": format!("x{n}")}})),
        )
        .await
        .unwrap();
    }
    let mut stream = cms
        .watch(&WatchParams::default().timeout(2), &from)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // kube-runtime's watcher lists, watches and sees later changes.
    let mut w = watcher(cms.clone(), watcher::Config::default()).boxed();
    cms.create(&PostParams::default(), &cm("later", json!({}), json!({})))
        .await
        .unwrap();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(e) = w.try_next().await.unwrap() {
            match e {
                watcher::Event::Apply(c) | watcher::Event::InitApply(c) if c.name_any() == "later" => {
                    return true;
                }
                _ => {}
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "the watcher never saw the new ConfigMap");
}

#[tokio::test]
async fn server_side_apply_tracks_owners_and_conflicts() {
    let sim = Cluster::sim();
    let cms: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    let mine = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"team": "a"}}, "data": {"color": "blue", "size": "m"}});
    let applied = cms
        .patch("cfg", &PatchParams::apply("alice"), &Patch::Apply(&mine))
        .await
        .unwrap();
    let managers: Vec<String> = applied
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, vec!["alice"]);

    let theirs =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"color": "red"}});
    let (code, msg) = api_error(
        cms.patch("cfg", &PatchParams::apply("bob"), &Patch::Apply(&theirs))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    assert!(
        msg.contains("conflict with \"alice\"") && msg.contains(".data.color"),
        "{msg}"
    );

    let forced = cms
        .patch("cfg", &PatchParams::apply("bob").force(), &Patch::Apply(&theirs))
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["color"], "red");
    assert_eq!(forced.data.as_ref().unwrap()["size"], "m");

    // alice stops setting `size` and `team`: the fields she alone owned go.
    let less = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {}});
    let after = cms
        .patch("cfg", &PatchParams::apply("alice"), &Patch::Apply(&less))
        .await
        .unwrap();
    let data = after.data.clone().unwrap_or_default();
    assert!(!data.contains_key("size"), "{data:?}");
    assert_eq!(data["color"], "red");
    assert!(after.labels().get("team").is_none());

    // Applying to a missing object creates it; the request needs a field manager.
    let new = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "made"}, "data": {"a": "1"}});
    cms.patch("made", &PatchParams::apply("alice"), &Patch::Apply(&new))
        .await
        .unwrap();
    assert_eq!(cms.get("made").await.unwrap().data.unwrap()["a"], "1");
}

fn widget_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.serin.dev"},
        "spec": {
            "group": "test.serin.dev", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                "additionalPrinterColumns": [{"name": "Weight", "type": "integer", "jsonPath": ".spec.weight"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["replicas"],
                        "x-kubernetes-validations": [{"rule": "self.mode != 'slow' || self.weight <= 50", "message": "slow widgets take at most weight 50"}],
                        "properties": {
                        "replicas": {"type": "integer", "minimum": 0},
                        "weight": {"type": "integer", "minimum": 0, "maximum": 100, "default": 5},
                        "mode": {"type": "string", "enum": ["fast", "slow"]}
                    }},
                    "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "phase": {"type": "string"}}}
                }}}
            }]
        }
    })
}

async fn install_widgets(client: &Client) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(widget_crd()).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = crds.get("widgets.test.serin.dev").await.unwrap();
    let conds = established.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(conds.iter().any(|c| c.type_ == "Established" && c.status == "True"));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("test.serin.dev", "v1", "Widget"));
    Api::namespaced_with(client.clone(), "default", &ar)
}

fn widget(name: &str, spec: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "test.serin.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec, "status": {"phase": "Ignored"}})).unwrap()
}

#[tokio::test]
async fn custom_resources_follow_their_schema_and_subresources() {
    let sim = Cluster::sim();
    let client = sim.client().await;
    let widgets = install_widgets(&client).await;

    let mut w = widget("w1", json!({"replicas": 2, "extra": "dropped"}));
    w.data["spec"]["extra"] = json!("dropped");
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.data["spec"]["weight"], 5, "default applied");
    assert!(created.data["spec"].get("extra").is_none(), "unknown field pruned");
    assert!(created.data.get("status").is_none(), "status ignored on create");
    assert_eq!(created.metadata.generation, Some(1));

    let (code, msg) = api_error(
        widgets
            .create(
                &PostParams::default(),
                &widget("w2", json!({"replicas": 1, "weight": 200})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        msg.contains("spec.weight") && msg.contains("less than or equal to 100"),
        "{msg}"
    );
    let (code, msg) = api_error(
        widgets
            .create(
                &PostParams::default(),
                &widget("w3", json!({"weight": 1, "mode": "odd"})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        msg.contains("spec.replicas: Required value") && msg.contains("Unsupported value"),
        "{msg}"
    );

    let (code, msg) = api_error(
        widgets
            .create(
                &PostParams::default(),
                &widget("w4", json!({"replicas": 1, "weight": 60, "mode": "slow"})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(msg.contains("slow widgets take at most weight 50"), "CEL rule: {msg}");
    widgets
        .create(
            &PostParams::default(),
            &widget("w5", json!({"replicas": 1, "weight": 40, "mode": "slow"})),
        )
        .await
        .unwrap();

    // Status writes go through /status only and leave the generation alone.
    let status = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready", "replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(status.data["status"]["phase"], "Ready");
    assert_eq!(status.metadata.generation, Some(1));
    let spec_write = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"weight": 50}, "status": {"phase": "Hacked"}})),
        )
        .await
        .unwrap();
    assert_eq!(spec_write.data["status"]["phase"], "Ready", "spec writes ignore status");
    assert_eq!(spec_write.metadata.generation, Some(2));
    let meta_write = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        meta_write.metadata.generation,
        Some(2),
        "metadata changes keep the generation"
    );

    // The scale subresource reads and writes the schema's replica paths.
    let scale = widgets.get_scale("w1").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    assert_eq!(scale.status.map(|s| s.replicas), Some(2));
    widgets
        .patch_scale(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(widgets.get("w1").await.unwrap().data["spec"]["replicas"], 7);

    // Deleting the CRD removes its objects and stops serving the kind.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("widgets.test.serin.dev", &DeleteParams::default())
        .await
        .unwrap();
    let (code, _) = api_error(widgets.get("w1").await.unwrap_err());
    assert_eq!(code, 404);
}

fn deployment(name: &str, replicas: i32, env: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "example/app:1", "env": env}]}}}
    }))
    .unwrap()
}

async fn ready_deployment(client: &Client, name: &str) -> Deployment {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment(name, 2, json!([])))
        .await
        .unwrap();
    eventually("deployment ready", WAIT, || {
        let deploys = deploys.clone();
        async move {
            let d = deploys.get(name).await.ok()?;
            (d.status.as_ref()?.ready_replicas == Some(2)).then_some(d)
        }
    })
    .await
}

async fn count_owned(client: &Client, app: &str) -> (usize, usize) {
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().labels(&format!("app={app}"));
    (
        rs.list(&lp).await.unwrap().items.len(),
        pods.list(&lp).await.unwrap().items.len(),
    )
}

#[tokio::test]
async fn workloads_become_ready_and_owners_collect_dependents() {
    let sim = Cluster::sim();
    let client = sim.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // Background: the Deployment goes at once, its ReplicaSet and Pods soon after.
    ready_deployment(&client, "bg").await;
    assert_eq!(count_owned(&client, "bg").await, (1, 2));
    deploys.delete("bg", &DeleteParams::background()).await.unwrap();
    eventually("background collection", WAIT, || {
        let client = client.clone();
        async move { (count_owned(&client, "bg").await == (0, 0)).then_some(()) }
    })
    .await;

    // Foreground: the Deployment stays, marked, until its dependents are gone.
    ready_deployment(&client, "fg").await;
    let marked = deploys.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let marked = marked.left().expect("the object is returned while it waits");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(marked.finalizers().contains(&"foregroundDeletion".to_string()));
    eventually("foreground deletion", WAIT, || {
        let (client, deploys) = (client.clone(), deploys.clone());
        async move {
            (deploys.get_opt("fg").await.ok()?.is_none() && count_owned(&client, "fg").await == (0, 0)).then_some(())
        }
    })
    .await;

    // Orphan: the ReplicaSet stays and loses its owner reference.
    ready_deployment(&client, "or").await;
    deploys.delete("or", &DeleteParams::orphan()).await.unwrap();
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let orphan = eventually("orphaned replicaset", WAIT, || {
        let (rs, deploys) = (rs.clone(), deploys.clone());
        async move {
            let gone = deploys.get_opt("or").await.ok()?.is_none();
            let r = rs
                .list(&ListParams::default().labels("app=or"))
                .await
                .ok()?
                .items
                .pop()?;
            (gone && r.owner_references().is_empty()).then_some(r)
        }
    })
    .await;
    assert_eq!(orphan.spec.and_then(|s| s.replicas), Some(2));

    // A crashing container never becomes ready and says why.
    deploys
        .create(
            &PostParams::default(),
            &deployment("crash", 1, json!([{"name": "SERIN_SIM_CRASH", "value": "true"}])),
        )
        .await
        .unwrap();
    let reason = eventually("crash-looping pod", WAIT, || {
        let pods = pods.clone();
        async move {
            let p = pods
                .list(&ListParams::default().labels("app=crash"))
                .await
                .ok()?
                .items
                .pop()?;
            let cs = p.status?.container_statuses?.pop()?;
            cs.state?.waiting?.reason
        }
    })
    .await;
    assert_eq!(reason, "CrashLoopBackOff");
    let d = deploys.get("crash").await.unwrap();
    assert_eq!(d.status.and_then(|s| s.ready_replicas).unwrap_or(0), 0);
}

#[tokio::test]
async fn a_pod_is_available_only_after_min_ready_seconds() {
    let sim = Cluster::sim();
    let client = sim.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("slow", 2, json!([{"name": "SERIN_SIM_READY_SECONDS", "value": "0.1"}]));
    d.spec.as_mut().unwrap().min_ready_seconds = Some(3);
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().labels("app=slow");
    let started = std::time::Instant::now();
    let counts = || async {
        let items = rs.list(&lp).await.ok()?.items;
        let st = items.first()?.status.clone()?;
        Some((st.ready_replicas.unwrap_or(0), st.available_replicas.unwrap_or(0)))
    };
    let (ready, available) = eventually("Pods ready", WAIT, || async {
        counts().await.filter(|(ready, _)| *ready == 2)
    })
    .await;
    assert_eq!(available, 0, "Ready is not yet available");
    let minimum = items_min_ready(&rs, &lp).await;
    assert_eq!(
        minimum,
        Some(3),
        "the Deployment's minReadySeconds reaches its ReplicaSet"
    );
    eventually("Pods available", WAIT, || async {
        counts().await.filter(|(_, available)| *available == 2)
    })
    .await;
    // Ready times are whole seconds, as in Kubernetes: available between 2 and 4 s after.
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "available after {took:?}");
    let _ = ready;
}

async fn items_min_ready(rs: &Api<ReplicaSet>, lp: &ListParams) -> Option<i32> {
    rs.list(lp).await.ok()?.items.first()?.spec.as_ref()?.min_ready_seconds
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    let sim = Cluster::sim();
    let client = sim.client().await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "temp"}})).unwrap(),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "temp");
    cms.create(&PostParams::default(), &cm("c", json!({}), json!({})))
        .await
        .unwrap();
    namespaces.delete("temp", &DeleteParams::default()).await.unwrap();
    eventually("namespace gone", WAIT, || {
        let namespaces = namespaces.clone();
        async move { namespaces.get_opt("temp").await.ok()?.is_none().then_some(()) }
    })
    .await;
    assert!(cms.list(&ListParams::default()).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn unsupported_verbs_and_unknown_paths_are_status_errors() {
    let sim = Cluster::sim();
    let http = reqwest::Client::new();
    let post_named = http
        .post(format!("{}/api/v1/namespaces/default/configmaps/x", sim.api_url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(post_named.status().as_u16(), 405);
    let body: serde_json::Value = post_named.json().await.unwrap();
    assert_eq!(
        (body["kind"].as_str(), body["reason"].as_str()),
        (Some("Status"), Some("MethodNotAllowed"))
    );
    let unknown = http
        .get(format!("{}/apis/nothing.example/v1/things", sim.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let bad_patch = http
        .patch(format!("{}/api/v1/namespaces/default/configmaps/x", sim.api_url()))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_patch.status().as_u16(), 415);
}

#[tokio::test]
async fn a_kube_runtime_controller_sees_changes() {
    let sim = Cluster::sim();
    let client = sim.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let controller = Controller::new(cms.clone(), watcher::Config::default().labels("watched=yes"))
        .run(
            |obj: Arc<ConfigMap>, tx: Arc<tokio::sync::mpsc::UnboundedSender<String>>| async move {
                let value = obj.data.as_ref().and_then(|d| d.get("v").cloned()).unwrap_or_default();
                let _ = tx.send(format!("{}={value}", obj.name_any()));
                Ok::<_, kube::Error>(Action::await_change())
            },
            |_obj, _err, _tx| Action::requeue(Duration::from_secs(1)),
            Arc::new(tx),
        )
        .for_each(|_| async {});
    tokio::spawn(controller);
    cms.create(
        &PostParams::default(),
        &cm("seen", json!({"watched": "yes"}), json!({"v": "1"})),
    )
    .await
    .unwrap();
    cms.create(&PostParams::default(), &cm("ignored", json!({}), json!({"v": "1"})))
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, rx.recv()).await.ok().flatten();
    assert_eq!(first.as_deref(), Some("seen=1"));
    cms.patch(
        "seen",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    let second = tokio::time::timeout(WAIT, rx.recv()).await.ok().flatten();
    assert_eq!(second.as_deref(), Some("seen=2"));
}

#[tokio::test]
async fn events_recorded_through_events_k8s_io_are_core_events_too() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let sim = Cluster::sim();
    let client = sim.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let target = cms
        .create(&PostParams::default(), &cm("subject", json!({}), json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "serin".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "StepCompleted".into(),
        note: Some("weight 25%".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = target.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();

    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let listed = core
        .list(&ListParams::default().fields("involvedObject.name=subject"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1, "a repeated event is one object with a series");
    let e = &listed.items[0];
    assert_eq!(e.reason.as_deref(), Some("StepCompleted"));
    assert_eq!(e.message.as_deref(), Some("weight 25%"));
    assert_eq!(e.involved_object.kind.as_deref(), Some("ConfigMap"));
    assert_eq!(e.reporting_component.as_deref(), Some("serin"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(Some(2)));
}

#[tokio::test]
async fn status_and_spec_appliers_own_their_own_parts() {
    let sim = Cluster::sim();
    let client = sim.client().await;
    let widgets = install_widgets(&client).await;
    let spec = json!({"apiVersion": "test.serin.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
                      "spec": {"replicas": 1}, "status": {"phase": "FromSpecApplier"}});
    let created = widgets
        .patch("w", &PatchParams::apply("user"), &Patch::Apply(&spec))
        .await
        .unwrap();
    assert!(
        created.data.get("status").is_none(),
        "the main endpoint does not write status"
    );
    let status = json!({"apiVersion": "test.serin.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
                        "spec": {"replicas": 9}, "status": {"phase": "Ready"}});
    let after = widgets
        .patch_status("w", &PatchParams::apply("controller"), &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(after.data["status"]["phase"], "Ready");
    assert_eq!(
        after.data["spec"]["replicas"], 1,
        "the status endpoint does not write spec"
    );
    let owners: Vec<(String, String)> = after
        .managed_fields()
        .iter()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.subresource.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        owners,
        vec![
            ("user".to_string(), String::new()),
            ("controller".to_string(), "status".to_string())
        ]
    );
    // The user re-applying its spec does not conflict with the controller's status.
    widgets
        .patch("w", &PatchParams::apply("user"), &Patch::Apply(&spec))
        .await
        .unwrap();
}

/// kube-apiserver stores a new ReplicaSet with its zero status (`replicas: 0`), so a client reads
/// a status before any controller has written one.
#[tokio::test]
async fn a_new_replica_set_has_a_zero_status() {
    let sim = Cluster::sim();
    let client = sim.client().await;
    let sets: Api<ReplicaSet> = Api::namespaced(client, "default");
    let set: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "zero"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "zero"}},
                 "template": {"metadata": {"labels": {"app": "zero"}},
                              "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}},
        "status": {"replicas": 7}
    }))
    .expect("a ReplicaSet");
    let created = sets.create(&PostParams::default(), &set).await.expect("created");
    assert_eq!(created.status.map(|s| s.replicas), Some(0));
}

/// An eviction (what a restart and `kubectl drain` send) deletes the Pod; the simulated cluster
/// keeps no PodDisruptionBudgets to refuse one (docs/sim.md).
#[tokio::test]
async fn an_eviction_deletes_the_pod() {
    let sim = Cluster::sim();
    let pods: Api<Pod> = Api::namespaced(sim.client().await, "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web-1"},
        "spec": {"containers": [{"name": "web", "image": "web:1"}]}}))
    .expect("pod");
    pods.create(&PostParams::default(), &pod).await.expect("created");
    pods.evict("web-1", &kube::api::EvictParams::default())
        .await
        .expect("the eviction is accepted");
    eventually("the Pod gone", WAIT, || async {
        pods.get_opt("web-1").await.ok().flatten().is_none().then_some(())
    })
    .await;
    let (code, _) = api_error(
        pods.evict("web-1", &kube::api::EvictParams::default())
            .await
            .expect_err("no Pod to evict"),
    );
    assert_eq!(code, 404);
}
