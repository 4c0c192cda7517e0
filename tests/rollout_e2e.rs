//! The real `serin controller` against `serin sim`, driven with kubectl and `kubectl serin`.

mod common;

use common::{Cluster, ControllerProc, Prometheus, WEB_SERVICES, eventually, web_rollout};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Service};
use kube::api::{Api, ListParams};
use serin::crd::rollout::{Phase, Rollout};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

fn rollout_yaml(replicas: u32, image: &str, steps: &str) -> String {
    web_rollout(replicas, image, &[], "", &format!("      steps: {steps}")) + WEB_SERVICES
}

struct Env {
    sim: Cluster,
    rollouts: Api<Rollout>,
    rs: Api<ReplicaSet>,
    client: kube::Client,
}

async fn env() -> Env {
    let sim = Cluster::start();
    sim.install_crds();
    let client = sim.client().await;
    Env {
        rollouts: Api::default_namespaced(client.clone()),
        rs: Api::default_namespaced(client.clone()),
        client,
        sim,
    }
}

impl Env {
    fn apply(&self, yaml: &str) {
        self.sim.apply_yaml(yaml);
    }

    async fn status(&self) -> serin::crd::rollout::RolloutStatus {
        common::rollout_status(&self.rollouts, "web").await
    }

    async fn wait_phase(&self, phase: Phase, step: Option<i32>) -> serin::crd::rollout::RolloutStatus {
        eventually(&format!("phase {phase:?} at step {step:?}"), WAIT, || async move {
            let st = self.status().await;
            (st.phase == Some(phase) && (step.is_none() || st.current_step_index == step)).then_some(st)
        })
        .await
    }

    /// ReplicaSet sizes by pod-template hash.
    async fn sizes(&self) -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = self
            .rs
            .list(&ListParams::default().labels("serin.dev/rollout=web"))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .iter()
            .map(|rs| {
                let hash = rs
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("serin.dev/pod-template-hash").cloned())
                    .unwrap_or_default();
                (hash, rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
            })
            .collect();
        out.sort();
        out
    }

    async fn size_of(&self, hash: &str) -> i32 {
        self.sizes()
            .await
            .into_iter()
            .find(|(h, _)| h == hash)
            .map_or(0, |(_, n)| n)
    }

    async fn selector_hash(&self, service: &str) -> String {
        let svcs: Api<Service> = Api::default_namespaced(self.client.clone());
        svcs.get(service)
            .await
            .ok()
            .and_then(|s| s.spec?.selector?.get("serin.dev/pod-template-hash").cloned())
            .unwrap_or_default()
    }

    async fn events(&self, reason: &str) -> Vec<String> {
        let events: Api<Event> = Api::default_namespaced(self.client.clone());
        let mut out: Vec<(String, String)> = events
            .list(&ListParams::default().fields("involvedObject.name=web"))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| {
                let count = e.series.as_ref().and_then(|s| s.count).unwrap_or(1);
                (
                    e.metadata
                        .creation_timestamp
                        .map(|t| t.0.to_string())
                        .unwrap_or_default(),
                    format!("{}x{count}", e.message.unwrap_or_default()),
                )
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, m)| m).collect()
    }
}

#[tokio::test]
async fn a_release_walks_its_steps_and_promotes() {
    let e = env().await;
    let ns = e.sim.namespace.clone();
    let controller = ControllerProc::start_with(
        &e.sim,
        "controller.log",
        &["--leader-election-lease-duration=2", "--log-format=json"],
    );
    // A real Prometheus scrapes the controller, as a ServiceMonitor would have it.
    let prom = Prometheus::start(&[format!("127.0.0.1:{}", controller.metrics_port)]);
    let prom = prometheus_http_query::Client::try_from(prom.url().as_str()).expect("prometheus client");
    let scalar = |q: &'static str| {
        let prom = prom.clone();
        async move {
            let r = prom.query(q).get().await.ok()?;
            let v = r.data().as_vector()?.first()?.sample().value();
            Some(v)
        }
    };
    e.apply(&rollout_yaml(
        4,
        "example/web:1",
        "[{setWeight: 25}, {pause: {duration: 1s}}, {setWeight: 50}, {pause: {}}, {setWeight: 75}]",
    ));
    let first = e.wait_phase(Phase::Healthy, None).await;
    let v1 = first.stable_pod_hash.clone().unwrap();
    assert_eq!(e.sizes().await, vec![(v1.clone(), 4)]);
    assert_eq!(e.selector_hash("web-stable").await, v1);

    eventually("Prometheus scrapes the controller", WAIT, || async {
        (scalar(r#"serin_rollout_phase{rollout="web",phase="Healthy"}"#).await? == 1.0).then_some(())
    })
    .await;

    let said = e.sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2"]);
    assert!(said.contains("example/web:2"), "{said}");
    let paused = e.wait_phase(Phase::Paused, Some(3)).await;
    let v2 = paused.current_pod_hash.clone().unwrap();
    assert_ne!(v1, v2);
    // 50% of 4 Pods by Pod ratio: two each, and the Services follow the versions.
    assert_eq!((e.size_of(&v2).await, e.size_of(&v1).await), (2, 2));
    assert_eq!(paused.canary_weight, Some(50));
    assert_eq!(e.selector_hash("web-canary").await, v2);
    assert_eq!(e.selector_hash("web-stable").await, v1);
    let view = e.sim.kubectl_serin_ok(&["get", "rollout", "web"]);
    assert!(
        view.contains("Paused") && view.contains("▶  4  pause until promoted"),
        "{view}"
    );

    eventually("Prometheus sees the pause at 50%", WAIT, || async {
        (scalar(r#"serin_rollout_canary_weight{rollout="web"}"#).await? == 50.0).then_some(())
    })
    .await;
    let said = e.sim.kubectl_serin_ok(&["promote", "web"]);
    assert!(said.contains("moving past step 4/5"), "{said}");
    let done = e.wait_phase(Phase::Healthy, None).await;
    assert_eq!(done.stable_pod_hash.as_deref(), Some(v2.as_str()));
    eventually("old version scaled down", WAIT, || async {
        (e.size_of(&v1).await == 0).then_some(())
    })
    .await;
    assert_eq!(e.size_of(&v2).await, 4);
    assert_eq!(e.selector_hash("web-stable").await, v2);
    let steps = e.events("StepCompleted").await;
    assert_eq!(steps.len(), 5, "one Event per step: {steps:?}");
    assert!(!e.events("Promoted").await.is_empty());
    // The rollout is healthy for kubectl wait, too.
    e.sim
        .kubectl_ok(&["wait", "--for=condition=Healthy", "rollout/web", "--timeout=10s"]);

    // The controller says what it did on /metrics, and that it is alive and ready.
    let admin = format!("http://127.0.0.1:{}", controller.metrics_port);
    assert_eq!(
        reqwest::get(format!("{admin}/healthz"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{admin}/readyz")).await.unwrap().status().as_u16(),
        200
    );
    let metrics = eventually("metrics of the promoted rollout", WAIT, || {
        let admin = admin.clone();
        let ns = ns.clone();
        async move {
            let text = reqwest::get(format!("{admin}/metrics")).await.ok()?.text().await.ok()?;
            text.contains(&format!(
                r#"serin_rollout_phase{{namespace="{ns}",rollout="web",phase="Healthy"}} 1"#
            ))
            .then_some(text)
        }
    })
    .await;
    assert!(
        metrics.contains(&format!(
            r#"serin_rollout_promotions_total{{namespace="{ns}",rollout="web"}} 1"#
        )),
        "{metrics}"
    );
    let info = format!(r#"serin_rollout_info{{namespace="{ns}",rollout="web",strategy="canary",revision="{v2}"}} 1"#);
    assert!(metrics.contains(&info), "{metrics}");
    assert!(metrics.contains("serin_reconcile_duration_seconds_count"), "{metrics}");

    // What Prometheus stored: the 50% pause it saw, the promotion, and the API calls by verb.
    eventually("Prometheus has the rollout's story", WAIT, || async {
        let healthy = scalar(r#"serin_rollout_phase{rollout="web",phase="Healthy"}"#).await?;
        let peak = scalar(r#"max_over_time(serin_rollout_canary_weight{rollout="web"}[5m])"#).await?;
        let promotions = scalar(r#"serin_rollout_promotions_total{rollout="web"}"#).await?;
        let status_writes =
            scalar(r#"sum(serin_kube_requests_total{verb="update",kind="rollouts/status",code="200"})"#).await?;
        (healthy == 1.0 && peak >= 50.0 && promotions == 1.0 && status_writes > 0.0).then_some(())
    })
    .await;

    // The Grafana dashboard's queries all run against this Prometheus, and its core panels have data.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/charts/serin/dashboards/serin.json"
        ))
        .expect("the dashboard"),
    )
    .expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"]
                .as_str()
                .expect("expr")
                .replace("$namespace", ".*")
                .replace("$rollout", ".*")
                .replace("$job", ".*")
                .replace("$__rate_interval", "1m");
            let result = prom.query(expr.as_str()).get().await;
            let data = result.unwrap_or_else(|e| panic!("panel {}: {expr}: {e}", panel["title"]));
            let series = data.data().as_vector().map_or(0, |v| v.len());
            if [
                "Traffic on the new version",
                "Strategy and version",
                "Controller up",
                "Kubernetes API requests",
            ]
            .contains(&panel["title"].as_str().unwrap_or_default())
            {
                assert!(series > 0, "panel {} has data: {expr}", panel["title"]);
            }
        }
    }

    // JSON logs, one object a line; what the controller decided names the Rollout and revision.
    let log = controller.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let promoted = lines
        .iter()
        .find(|l| l["fields"]["reason"] == "Promoted")
        .unwrap_or_else(|| panic!("a Promoted line: {log}"));
    assert_eq!(promoted["span"]["namespace"], ns, "{promoted}");
    assert_eq!(promoted["span"]["rollout"], "web", "{promoted}");
    assert_eq!(promoted["span"]["revision"], v2.as_str(), "{promoted}");
    assert_eq!(promoted["level"], "INFO", "{promoted}");
}

/// A Git sync mid-release, as Argo CD's server-side sync applies one: the Rollout re-applied as it
/// is never conflicts with Serin (it writes no field of a Rollout's spec), and the Services, whose
/// atomic selectors Serin owns once it points them, conflict unless forced; forced, they select
/// every version for a moment, and Serin points them again.
#[tokio::test]
async fn a_forced_sync_of_the_services_mid_release_is_pointed_again() {
    let e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    let yaml = |image: &str| rollout_yaml(4, image, "[{setWeight: 50}, {pause: {}}]");
    e.apply(&yaml("example/web:1"));
    let v1 = e.wait_phase(Phase::Healthy, None).await.stable_pod_hash.unwrap();
    e.apply(&yaml("example/web:2"));
    let v2 = e.wait_phase(Phase::Paused, Some(1)).await.current_pod_hash.unwrap();
    assert_eq!(
        (e.selector_hash("web-stable").await, e.selector_hash("web-canary").await),
        (v1.clone(), v2.clone())
    );

    let rollout_only = yaml("example/web:2").replace(WEB_SERVICES, "");
    let out = e
        .sim
        .kubectl_stdin(&["apply", "--server-side", "-f", "-"], &rollout_only);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = e
        .sim
        .kubectl_stdin(&["apply", "--server-side", "-f", "-"], WEB_SERVICES);
    assert!(
        !out.status.success(),
        "the Services' selectors are Serin's once it points them"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("conflict") && err.contains(".spec.selector"), "{err}");

    e.apply(WEB_SERVICES);
    eventually("both Services pointed again", WAIT, || async {
        let pointed = (e.selector_hash("web-stable").await, e.selector_hash("web-canary").await);
        (pointed == (v1.clone(), v2.clone())).then_some(())
    })
    .await;
    let st = e.status().await;
    assert_eq!(
        (st.phase, st.current_step_index),
        (Some(Phase::Paused), Some(1)),
        "the release goes on where it was"
    );
}

#[tokio::test]
async fn abort_brings_traffic_back_and_retry_starts_over() {
    let e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    e.apply(&rollout_yaml(4, "example/web:1", "[{setWeight: 50}, {pause: {}}]"));
    let v1 = e.wait_phase(Phase::Healthy, None).await.stable_pod_hash.unwrap();
    e.sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2"]);
    let v2 = e.wait_phase(Phase::Paused, Some(1)).await.current_pod_hash.unwrap();
    assert_eq!(e.size_of(&v2).await, 2);

    let said = e.sim.kubectl_serin_ok(&["abort", "web"]);
    assert!(said.contains("aborting"), "{said}");
    let aborted = e.wait_phase(Phase::Degraded, None).await;
    assert_eq!(aborted.abort, Some(true));
    eventually("stable full and canary gone", WAIT, || async {
        (e.size_of(&v1).await == 4 && e.size_of(&v2).await == 0).then_some(())
    })
    .await;
    assert_eq!(
        e.selector_hash("web-canary").await,
        v1,
        "the canary Service points at stable again"
    );
    eventually("no canary traffic", WAIT, || async {
        (e.status().await.canary_weight == Some(0)).then_some(())
    })
    .await;
    assert!(!e.events("Aborted").await.is_empty());
    // It stays aborted: no step runs by itself.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(e.size_of(&v2).await, 0);

    let out = e.sim.kubectl_serin(&["promote", "web"]);
    assert!(!out.status.success(), "promote of an aborted rollout is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retry"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    e.sim.kubectl_serin_ok(&["retry", "web"]);
    e.wait_phase(Phase::Paused, Some(1)).await;
    assert_eq!(e.size_of(&v2).await, 2);
}

/// Without a router the Pods are the traffic: a single replica at `setWeight: 25` keeps its stable
/// Pod and surges a canary beside it (Argo Rollouts' 1 + 1), never all traffic on the new version
/// while the Rollout says step 1; 3 replicas at 20% run 1 canary beside all 3 stable Pods.
#[tokio::test]
async fn a_single_replica_canary_keeps_its_stable_pod() {
    let e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    e.apply(&rollout_yaml(1, "example/web:1", "[{setWeight: 25}, {pause: {}}]"));
    let v1 = e.wait_phase(Phase::Healthy, None).await.stable_pod_hash.unwrap();
    e.sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2"]);
    let v2 = e.wait_phase(Phase::Paused, Some(1)).await.current_pod_hash.unwrap();
    assert_eq!((e.size_of(&v2).await, e.size_of(&v1).await), (1, 1));
    let st = eventually("the canary's share of ready Pods", WAIT, || async {
        let st = e.status().await;
        (st.canary_weight == Some(50)).then_some(st)
    })
    .await;
    assert_eq!(st.stable_pod_hash.as_deref(), Some(v1.as_str()));
    assert_eq!(e.selector_hash("web-stable").await, v1);
    e.sim.kubectl_serin_ok(&["promote", "web"]);
    eventually("version 2 alone", WAIT, || async {
        let st = e.status().await;
        (st.phase == Some(Phase::Healthy)
            && st.stable_pod_hash.as_deref() == Some(v2.as_str())
            && e.size_of(&v1).await == 0
            && e.size_of(&v2).await == 1)
            .then_some(())
    })
    .await;

    // Three replicas at 20%: 1 of 4 Pods (25%) is nearer than 1 of 3 (33%).
    e.apply(&rollout_yaml(3, "example/web:3", "[{setWeight: 20}, {pause: {}}]"));
    let v3 = e.wait_phase(Phase::Paused, Some(1)).await.current_pod_hash.unwrap();
    assert_ne!(v3, v2);
    eventually("1 canary beside 3 stable Pods", WAIT, || async {
        (e.size_of(&v3).await == 1 && e.size_of(&v2).await == 3).then_some(())
    })
    .await;
}

/// `steps: []` is a rolling update within maxSurge / maxUnavailable; a revert in Git to a version
/// stable within `rollbackWindow` goes straight back, saying so.
#[tokio::test]
async fn empty_steps_roll_and_a_revert_within_the_window_skips_the_steps() {
    let e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    let rolling = |image: &str| {
        web_rollout(
            4,
            image,
            &[],
            "  rollbackWindow: {revisions: 2}",
            "      maxSurge: 1\n      maxUnavailable: 0\n      steps: []",
        )
    };
    // The Services once: their selector is Serin's to point from then on.
    e.apply(&(rolling("example/web:1") + WEB_SERVICES));
    let v1 = e.wait_phase(Phase::Healthy, None).await.stable_pod_hash.unwrap();
    e.apply(&rolling("example/web:2"));
    let most = std::cell::Cell::new(0);
    let v2 = eventually("the rolling update done", WAIT, || async {
        most.set(most.get().max(e.sizes().await.iter().map(|(_, n)| n).sum::<i32>()));
        let st = e.status().await;
        (st.phase == Some(Phase::Healthy) && st.stable_pod_hash.as_deref() != Some(&v1)).then_some(st.stable_pod_hash?)
    })
    .await;
    let most = most.get();
    assert!(most <= 5, "at most replicas + maxSurge ReplicaSet Pods: {most}");
    let shown = e.sim.kubectl_serin_ok(&["get", "rollout", "web"]);
    assert!(shown.contains("rolling update"), "{shown}");

    // Going back to version 1 in Git.
    e.apply(&rolling("example/web:1"));
    eventually("version 1 stable again", WAIT, || async {
        let st = e.status().await;
        (st.phase == Some(Phase::Healthy) && st.stable_pod_hash.as_deref() == Some(&v1)).then_some(())
    })
    .await;
    assert_eq!(e.size_of(&v2).await, 0);
    let said = e.events("RollbackWithinWindow").await;
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains(&v1), "{said:?}");
}

/// A Rollout as Argo users write one around an existing Deployment: no selector, no template,
/// `scaleDown: onsuccess`, and `minReadySeconds`.
#[tokio::test]
async fn a_workload_ref_without_selector_takes_the_deployment_and_scales_it_down_on_success() {
    let e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    e.apply(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: example/web:1
        env: [{name: SERIN_SIM_READY_SECONDS, value: "0.2"}]
---
apiVersion: serin.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 3
  minReadySeconds: 2
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web, scaleDown: onsuccess}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {}}]
"#,
    );
    let st = e.wait_phase(Phase::Healthy, None).await;
    let v1 = st.stable_pod_hash.unwrap_or_default();
    assert_eq!(st.selector.as_deref(), Some("app=web"));
    let rs = e.rs.get(&format!("web-{v1}")).await.expect("the Rollout's ReplicaSet");
    let spec = rs.spec.unwrap_or_default();
    assert_eq!(spec.min_ready_seconds, Some(2));
    assert_eq!(
        spec.template
            .and_then(|t| t.spec)
            .map(|s| s.containers[0].image.clone()),
        Some(Some("example/web:1".into()))
    );
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> = Api::default_namespaced(e.client.clone());
    eventually("the Deployment scaled to 0", WAIT, || async {
        let d = deploys.get("web").await.ok()?;
        (d.spec?.replicas == Some(0)).then_some(())
    })
    .await;
}

/// `restartAt`: every Pod made before it is replaced, within maxUnavailable, and the status says
/// when it is done.
/// The Deployment a `workloadRef` names is watched: one applied after the Rollout is taken up
/// at once, and so is a new template in it.
#[tokio::test]
async fn a_workload_ref_deployment_applied_later_or_changed_is_taken_up() {
    let e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    e.apply(
        r#"apiVersion: serin.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web-late}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {}}]
"#,
    );
    let st = e.wait_phase(Phase::Degraded, None).await;
    let message = st.message.unwrap_or_default();
    assert!(message.contains("web-late"), "{message}");
    let deployment = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web-late}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: \"{image}\"}}]\n"
        )
    };
    e.apply(&deployment("example/web:1"));
    let v1 = e
        .wait_phase(Phase::Healthy, None)
        .await
        .stable_pod_hash
        .unwrap_or_default();
    e.apply(&deployment("example/web:2"));
    let st = e.wait_phase(Phase::Paused, Some(1)).await;
    assert_ne!(
        st.current_pod_hash.unwrap_or_default(),
        v1,
        "the new template is a new version"
    );
}

#[tokio::test]
async fn restart_at_replaces_the_old_pods_one_by_one() {
    let e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    let yaml = |restart: &str| {
        web_rollout(
            3,
            "example/web:1",
            &[],
            restart,
            "      maxUnavailable: 1\n      steps: [{setWeight: 50}]",
        )
    };
    e.apply(&(yaml("") + WEB_SERVICES));
    e.wait_phase(Phase::Healthy, None).await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::default_namespaced(e.client.clone());
    let names = || async {
        let mut n: Vec<String> = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .map(|l| l.items.iter().map(kube::ResourceExt::name_any).collect())
            .unwrap_or_default();
        n.sort();
        n
    };
    let before = names().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let at = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    e.apply(&yaml(&format!("  restartAt: \"{at}\"")));
    eventually("the restart done", WAIT, || async {
        let st = e.status().await;
        (st.restarted_at.is_some() && st.phase == Some(Phase::Healthy)).then_some(())
    })
    .await;
    let after = names().await;
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|p| !before.contains(p)), "{before:?} -> {after:?}");
    assert_eq!(e.events("Restarted").await.len(), 1);
}

const EIGHT_STEPS: &str = "[{setWeight: 20}, {pause: {duration: 2s}}, {setWeight: 40}, {pause: {duration: 2s}}, {setWeight: 60}, {pause: {duration: 2s}}, {setWeight: 80}, {pause: {duration: 1s}}]";

/// What a release looked like from outside: the step and weight at every sample.
struct Walk {
    steps: Vec<i32>,
    weights: Vec<i32>,
}

impl Env {
    /// Releases `example/web:2` over EIGHT_STEPS, calling `disrupt` with the step at each sample
    /// until the rollout is done.
    async fn walk(&self, mut disrupt: impl AsyncFnMut(i32)) -> Walk {
        self.sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2"]);
        let mut walk = Walk {
            steps: Vec::new(),
            weights: Vec::new(),
        };
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let st = self.status().await;
            if let Some(i) = st.current_step_index
                && st.current_pod_hash != st.stable_pod_hash
            {
                walk.steps.push(i);
                walk.weights.push(st.canary_weight.unwrap_or(0));
                disrupt(i).await;
            }
            if st.phase == Some(Phase::Healthy) && st.stable_pod_hash == st.current_pod_hash && !walk.steps.is_empty() {
                return walk;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the rollout did not finish: steps seen {:?}",
                walk.steps
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every step was taken once, in order, and traffic never went back.
    async fn assert_walked_once(&self, walk: &Walk) {
        let seen = &walk.steps;
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "the step never went back: {seen:?}"
        );
        let completed = self.events("StepCompleted").await;
        for i in 1..=8 {
            let n = completed
                .iter()
                .filter(|m| m.starts_with(&format!("step {i}/8 done")))
                .count();
            assert_eq!(n, 1, "step {i} completed exactly once: {completed:?}");
        }
        let max_so_far: Vec<i32> = walk
            .weights
            .iter()
            .scan(0, |m, w| {
                *m = (*m).max(*w);
                Some(*m)
            })
            .collect();
        let drops = walk
            .weights
            .iter()
            .zip(&max_so_far)
            .filter(|(w, m)| **w + 20 < **m)
            .count();
        assert_eq!(drops, 0, "traffic never fell back a step: {:?}", walk.weights);
    }
}

#[tokio::test]
async fn a_killed_controller_resumes_where_it_was() {
    let e = env().await;
    let mut controller = ControllerProc::start(&e.sim, "controller-1.log");
    e.apply(&rollout_yaml(5, "example/web:1", EIGHT_STEPS));
    e.wait_phase(Phase::Healthy, None).await;
    let mut restarts = 0;
    let walk = e
        .walk(async |step| {
            // SIGKILL in the middle of the rollout, twice, and start again.
            if restarts < 2 && step >= 2 + 3 * restarts {
                controller.kill();
                tokio::time::sleep(Duration::from_millis(300)).await;
                let log = if restarts == 0 {
                    "controller-2.log"
                } else {
                    "controller-3.log"
                };
                controller = ControllerProc::start(&e.sim, log);
                restarts += 1;
            }
        })
        .await;
    assert_eq!(restarts, 2, "two kills mid-rollout: steps seen {:?}", walk.steps);
    e.assert_walked_once(&walk).await;
}

async fn readyz(port: u16) -> Option<String> {
    reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// Writes a controller made, by resource, from its own request counter (Lease renewals aside).
async fn writes_but_leases(port: u16) -> Vec<String> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with("serin_kube_requests_total{"))
        .filter(|l| {
            ["create", "patch", "update", "delete"]
                .iter()
                .any(|v| l.contains(&format!(r#"verb="{v}""#)))
        })
        .filter(|l| !l.contains(r#"kind="leases""#))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn two_controllers_elect_one_leader_and_hand_over() {
    let e = env().await;
    let mut procs = [
        ControllerProc::start(&e.sim, "controller-a.log"),
        ControllerProc::start(&e.sim, "controller-b.log"),
    ];
    let ports: Vec<u16> = procs.iter().map(|p| p.metrics_port).collect();
    let deadline = std::time::Instant::now() + WAIT;
    let (leader, standby) = loop {
        let roles = (readyz(ports[0]).await, readyz(ports[1]).await);
        match (roles.0.as_deref(), roles.1.as_deref()) {
            (Some("ready: leader"), Some("ready: standby")) => break (0, 1),
            (Some("ready: standby"), Some("ready: leader")) => break (1, 0),
            _ if std::time::Instant::now() > deadline => {
                panic!("no single leader: {roles:?}\n{}\n{}", procs[0].log(), procs[1].log())
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    e.apply(&rollout_yaml(5, "example/web:1", EIGHT_STEPS));
    e.wait_phase(Phase::Healthy, None).await;

    let mut handover = None;
    let walk = e
        .walk(async |step| {
            if handover.is_none() && step >= 3 {
                let standby_writes = writes_but_leases(ports[standby]).await;
                assert!(standby_writes.is_empty(), "only the leader writes: {standby_writes:?}");
                let leader_writes = writes_but_leases(ports[leader]).await;
                assert!(!leader_writes.is_empty(), "the leader's writes are counted");
                procs[leader].kill();
                let killed = std::time::Instant::now();
                eventually("the standby takes over", WAIT, || async {
                    (readyz(ports[standby]).await.as_deref() == Some("ready: leader")).then_some(())
                })
                .await;
                handover = Some(killed.elapsed());
            }
        })
        .await;
    let handover = handover.expect("the leader was killed mid-rollout");
    eprintln!("handover after SIGKILL of the leader: {handover:?} (lease 2s)");
    // The Lease expires 2s after the last renewal, and the taker waits up to 1s to avoid a tie.
    assert!(handover < Duration::from_millis(3500), "handover took {handover:?}");
    e.assert_walked_once(&walk).await;

    // SIGTERM: the leader stops, and gives the Lease up on its way out.
    let status = procs[standby].terminate();
    assert!(status.success(), "a graceful stop exits 0: {status:?}");
    let holder = e.sim.kubectl_ok(&[
        "get",
        "lease",
        "serin-controller",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder.trim(), "", "the Lease was released");
}

#[tokio::test]
async fn invalid_rollouts_are_refused_or_reported() {
    let e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    // Refused at admission, by the schema's rules.
    let base = rollout_yaml(2, "example/web:1", "[{setWeight: 50}]");
    for (bad, expect) in [
        (
            base.replace("setWeight: 50", "setWeight: 150"),
            "less than or equal to 100",
        ),
        (
            base.replace("[{setWeight: 50}]", "[{}]"),
            "each step sets exactly one of",
        ),
        (
            base.replace("[{setWeight: 50}]", "[{setWeight: 5, pause: {}}]"),
            "each step sets exactly one of",
        ),
        (
            base.replace("[{setWeight: 50}]", "[{setFoo: 1}]"),
            ".spec.strategy.canary.steps[0].setFoo: field not declared in schema",
        ),
        (
            base.replace(
                "  strategy:",
                "  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  strategy:",
            ),
            "exactly one of template and workloadRef",
        ),
    ] {
        let out = e.sim.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &bad);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
    }
    // A metric without a provider is refused; one without a condition is accepted, as Argo
    // Rollouts accepts it (each answer passes).
    let no_provider = "apiVersion: serin.dev/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: t}\nspec:\n  metrics:\n  - name: m\n    successCondition: result < 1\n    provider: {}\n";
    let out = e.sim.kubectl_stdin(&["apply", "--server-side", "-f", "-"], no_provider);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("provider names exactly one of prometheus, web, job"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Accepted by the schema but unsound: a condition and an Event, no crash loop.
    e.apply(&base.replace(
        "selector: {matchLabels: {app: web}}",
        "selector: {matchLabels: {app: other}}",
    ));
    let st = e.wait_phase(Phase::Degraded, None).await;
    let cond = st
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "InvalidSpec")
        .expect("InvalidSpec condition");
    assert_eq!(cond.status, "True");
    assert!(cond.message.contains("selector does not select"), "{}", cond.message);
    let events = e.events("InvalidSpec").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(e.sizes().await.is_empty(), "nothing is created for an invalid spec");
    // Fixed, it goes on.
    e.apply(&base);
    e.wait_phase(Phase::Healthy, None).await;
}

/// `apiserver_request_total` of the simulated API server, for one client, by verb and resource.
async fn calls_of(sim: &Cluster, client: &str) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for (k, n) in sim.requests().await.into_iter().filter(|(k, _)| k.client == client) {
        *out.entry(format!("{} {}", k.verb, k.resource)).or_default() += n;
    }
    out
}

/// Requests of one client the API server refused with 409 Conflict (or AlreadyExists).
async fn conflicts_of(sim: &Cluster, client: &str) -> u64 {
    sim.requests()
        .await
        .into_iter()
        .filter(|(k, _)| k.client == client && k.code == 409)
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test]
async fn one_canary_step_costs_few_api_calls() {
    let e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    e.apply(&rollout_yaml(
        4,
        "example/web:1",
        "[{setWeight: 25}, {pause: {}}, {setWeight: 50}, {pause: {}}]",
    ));
    e.wait_phase(Phase::Healthy, None).await;
    e.sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2"]);
    e.wait_phase(Phase::Paused, Some(1)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = calls_of(&e.sim, "serin-controller").await;
    let conflicts_before = conflicts_of(&e.sim, "serin-controller").await;
    e.sim.kubectl_serin_ok(&["promote", "web"]);
    e.wait_phase(Phase::Paused, Some(3)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = calls_of(&e.sim, "serin-controller").await;
    let mut writes = 0;
    eprintln!("API calls of serin-controller for one step (pause promoted -> setWeight 50 -> pause):");
    for (k, n) in &after {
        let d = n - before.get(k).copied().unwrap_or(0);
        // Lease renewals are the leader's heartbeat, not the step's work.
        if d > 0 && !k.starts_with("watch") && !k.ends_with(" leases") {
            eprintln!("  {k:<32} {d}");
            if !k.starts_with("get") && !k.starts_with("list") {
                writes += d;
            }
        }
    }
    eprintln!("  writes: {writes}");
    // Two steps and the pause they reach: their three Events, the two ReplicaSets' sizes, and the
    // Rollout status (the step, the new Pod's count, the pause): 8, with one status write of slack
    // for a Pod that is created and ready in separate moments.
    assert!(writes <= 9, "too many writes for one step: {writes}");
    // Nobody else wrote meanwhile: a 409 would be the controller deciding again from a copy older
    // than its own last write.
    assert_eq!(
        conflicts_of(&e.sim, "serin-controller").await,
        conflicts_before,
        "no write of the step was refused as stale"
    );
    // Idle: a paused rollout makes no writes at all.
    let idle_before = calls_of(&e.sim, "serin-controller").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_after = calls_of(&e.sim, "serin-controller").await;
    let idle_writes: u64 = idle_after
        .iter()
        .filter(|(k, _)| !k.starts_with("get") && !k.starts_with("list") && !k.starts_with("watch"))
        .filter(|(k, _)| !k.ends_with(" leases"))
        .map(|(k, n)| n - idle_before.get(k).copied().unwrap_or(0))
        .sum();
    assert_eq!(idle_writes, 0, "{idle_after:?}");
}

#[tokio::test]
async fn the_shipped_example_rollout_is_accepted_and_runs() {
    let e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/rollout.yaml");
    e.sim
        .kubectl_ok(&["apply", "--server-side", "-f", path.to_str().unwrap_or_default()]);
    e.wait_phase(Phase::Healthy, None).await;
    e.sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2.0"]);
    let st = e.wait_phase(Phase::Paused, Some(1)).await;
    assert_eq!(st.canary_weight, Some(25));
    let table = e.sim.kubectl_ok(&["get", "sro", "web"]);
    assert!(table.contains("Paused") && table.contains("2/4"), "{table}");
}

#[tokio::test]
async fn pause_resume_and_scale_like_an_autoscaler() {
    let e = env().await;
    let ns = e.sim.namespace.clone();
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    e.apply(&rollout_yaml(
        4,
        "example/web:1",
        "[{setWeight: 25}, {pause: {duration: 1s}}, {setWeight: 50}]",
    ));
    e.wait_phase(Phase::Healthy, None).await;
    e.sim.kubectl_serin_ok(&["pause", "web"]);
    e.sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2"]);
    let st = e.wait_phase(Phase::Paused, Some(0)).await;
    assert!(st.message.unwrap_or_default().contains("kubectl serin pause"));
    let paused = st
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Paused")
        .expect("Paused condition");
    assert_eq!((paused.status.as_str(), paused.reason.as_str()), ("True", "UserPaused"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(e.status().await.current_step_index, Some(0), "held while paused");
    e.sim.kubectl_serin_ok(&["resume", "web"]);
    let done = e.wait_phase(Phase::Healthy, None).await;
    assert_eq!(done.stable_pod_hash, done.current_pod_hash);

    // The scale subresource, as an HPA uses it.
    e.sim.kubectl_ok(&["scale", "rollout", "web", "--replicas=6"]);
    let v2 = done.stable_pod_hash.unwrap_or_default();
    eventually("six Pods", WAIT, || async { (e.size_of(&v2).await == 6).then_some(()) }).await;
    e.sim.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.status.availableReplicas}=6",
        "rollout/web",
        "--timeout=20s",
    ]);
    let selector = e.sim.kubectl_ok(&[
        "get",
        "--raw",
        &format!("/apis/serin.dev/v1alpha1/namespaces/{ns}/rollouts/web/scale"),
    ]);
    assert!(selector.contains("\"selector\":\"app=web\""), "{selector}");
}

#[tokio::test]
async fn sigterm_stops_a_controller_even_before_its_caches_fill() {
    // No right to list anything: the Rollout cache never gets its first list, and its controller
    // never starts.
    let sim = Cluster::start();
    let user = sim.user_kubeconfig();
    let mut controller = ControllerProc::start_with(
        &sim,
        "controller.log",
        &["--kubeconfig", user.to_str().unwrap_or_default()],
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = std::time::Instant::now();
    let status = controller.terminate();
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}: {}", controller.log());
    assert!(took < Duration::from_secs(15), "stopping took {took:?}");
}

/// Polls the ReplicaSets for the fewest available Pods of all of them together at any one
/// moment, until [`FewestAvailable::stop`].
fn fewest_available(rs: Api<ReplicaSet>) -> FewestAvailable {
    let fewest = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(i32::MAX));
    let seen = fewest.clone();
    let task = tokio::spawn(async move {
        loop {
            // One list is one moment of the cluster: its ReplicaSets' statuses agree.
            if let Ok(list) = rs.list(&ListParams::default()).await {
                let available: i32 = list
                    .items
                    .iter()
                    .filter_map(|r| r.status.as_ref()?.available_replicas)
                    .sum();
                seen.fetch_min(available, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });
    FewestAvailable { fewest, task }
}

struct FewestAvailable {
    fewest: std::sync::Arc<std::sync::atomic::AtomicI32>,
    task: tokio::task::JoinHandle<()>,
}

impl FewestAvailable {
    fn stop(self) -> i32 {
        self.task.abort();
        self.fewest.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A status that only mirrors Pod counts waits for the next decision (or 10 s): a rolling update
/// of ten Pods, one at a time, writes its status a few times, not twice a Pod; the status it ends
/// with still shows every Pod.
#[tokio::test]
async fn pod_counts_alone_do_not_cost_a_status_write_each() {
    let e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    let yaml = |image: &str| {
        web_rollout(
            10,
            image,
            &[],
            "",
            "      maxSurge: 1\n      maxUnavailable: 0\n      steps: []",
        )
    };
    e.apply(&(yaml("example/web:1") + WEB_SERVICES));
    e.wait_phase(Phase::Healthy, None).await;
    // Counted from a quiet Rollout: a write of mere counts may still be due up to 10 s after the
    // last one, and would otherwise be taken for one of the release's.
    let rv = || async { e.rollouts.get("web").await.ok()?.metadata.resource_version };
    let mut last = rv().await;
    loop {
        tokio::time::sleep(Duration::from_secs(11)).await;
        let now = rv().await;
        if now == last {
            break;
        }
        last = now;
    }
    let v1 = e.status().await.stable_pod_hash;
    let before = calls_of(&e.sim, "serin-controller").await;
    let released = std::time::Instant::now();
    let fewest = fewest_available(e.rs.clone());
    e.apply(&yaml("example/web:2"));
    let st = eventually("version 2 rolled out", WAIT, || async {
        let st = e.status().await;
        let done = st.phase == Some(Phase::Healthy)
            && st.stable_pod_hash != v1
            && st.stable_pod_hash == st.current_pod_hash
            && st.available_replicas == Some(10);
        done.then_some(st)
    })
    .await;
    assert_eq!(st.updated_available_replicas, Some(10));
    let fewest = fewest.stop();
    assert!(
        fewest >= 10,
        "maxUnavailable 0, yet only {fewest} Pods were available at one moment"
    );
    let after = calls_of(&e.sim, "serin-controller").await;
    let status_writes = after.get("update rollouts/status").copied().unwrap_or(0)
        - before.get("update rollouts/status").copied().unwrap_or(0);
    let resizes =
        after.get("patch replicasets").copied().unwrap_or(0) - before.get("patch replicasets").copied().unwrap_or(0);
    for (k, n) in &after {
        let d = n - before.get(k).copied().unwrap_or(0);
        if d > 0 {
            eprintln!("  {k:<32} {d}");
        }
    }
    eprintln!("a rolling update of 10 Pods: {status_writes} status writes, {resizes} ReplicaSet resizes");
    assert!(resizes >= 10, "one Pod at a time: {resizes} resizes");
    // The decisions, and at most one write of mere counts every 10 s (a loaded machine makes the
    // rolling update take longer).
    let allowed = 6 + released.elapsed().as_secs() / 10;
    assert!(
        status_writes <= allowed,
        "{status_writes} status writes for a rolling update of 10 Pods in {:?}",
        released.elapsed()
    );
}
