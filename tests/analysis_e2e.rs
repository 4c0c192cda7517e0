//! Analysis end to end: `serin sim` + a real Prometheus scraping its traffic + `serin controller`.

mod common;

use common::{Cluster, ControllerProc, Prometheus, eventually, web_rollout};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ListParams};
use serin::crd::analysis::{AnalysisPhase, AnalysisRun};
use serin::crd::rollout::{Phase, Rollout, RolloutStatus};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

/// The shipped example templates, pointed at this test's Prometheus and made quick.
fn templates(prometheus: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    ["analysis-error-rate.yaml", "analysis-latency-p99.yaml"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(dir.join(f))
                .expect("shipped template")
                .replace("http://prometheus.monitoring:9090", prometheus)
                .replace("interval: 10s", "interval: 2s")
                .replace("initialDelay: 10s", "initialDelay: 4s")
                .replace("consecutiveErrorLimit: 3", "consecutiveErrorLimit: 2")
                .replace("[30s]", "[8s]")
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn rollout(image: &str, error_rate: &str) -> String {
    let canary = "      steps:
      - setWeight: 50
      - analysis:
          templates: [{templateName: error-rate}, {templateName: latency-p99}]
          args: [{name: canary-hash, valueFrom: {podTemplateHashValue: Latest}}]
      - setWeight: 100";
    let rollout = web_rollout(2, image, &[("SERIN_SIM_ERROR_RATE", error_rate)], "", canary);
    // Traffic reaches the Pods through `web`; the stable and canary Services carry none.
    rollout + common::TRAFFIC_SERVICES
}

struct Env {
    sim: Cluster,
    prometheus: Option<Prometheus>,
    rollouts: Api<Rollout>,
    runs: Api<AnalysisRun>,
    rs: Api<ReplicaSet>,
}

async fn env() -> Env {
    let sim = Cluster::start();
    sim.install_crds();
    let prometheus = Prometheus::start(&[sim.traffic_target()]);
    let client = sim.client().await;
    sim.apply_yaml(&templates(&prometheus.url()));
    Env {
        rollouts: Api::default_namespaced(client.clone()),
        runs: Api::default_namespaced(client.clone()),
        rs: Api::default_namespaced(client),
        prometheus: Some(prometheus),
        sim,
    }
}

impl Env {
    fn apply(&self, yaml: &str) {
        self.sim.apply_yaml(yaml);
    }

    async fn runs_of_web(&self) -> Vec<AnalysisRun> {
        self.runs
            .list(&ListParams::default().labels("serin.dev/rollout=web"))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }

    async fn status(&self) -> RolloutStatus {
        common::rollout_status(&self.rollouts, "web").await
    }

    async fn size_of(&self, hash: &str) -> i32 {
        self.rs
            .get_opt(&format!("web-{hash}"))
            .await
            .ok()
            .flatten()
            .and_then(|r| r.spec?.replicas)
            .unwrap_or(0)
    }

    async fn healthy_v1(&self) -> String {
        self.apply(&rollout("example/web:1", "0"));
        eventually("version 1 healthy", WAIT, || async {
            let st = self.status().await;
            (st.phase == Some(Phase::Healthy)).then_some(st.stable_pod_hash?)
        })
        .await
    }
}

async fn metrics_of(controller: &ControllerProc) -> String {
    reqwest::get(format!("http://127.0.0.1:{}/metrics", controller.metrics_port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_healthy_release_is_promoted_on_measured_values() {
    let e = env().await;
    let ns = e.sim.namespace.clone();
    let controller = ControllerProc::start(&e.sim, "controller.log");
    let v1 = e.healthy_v1().await;
    e.apply(&rollout("example/web:2", "0"));
    let st = eventually("version 2 promoted", WAIT, || async {
        let st = e.status().await;
        (st.phase == Some(Phase::Healthy) && st.stable_pod_hash.as_deref() != Some(v1.as_str())).then_some(st)
    })
    .await;
    let runs = e.runs_of_web().await;
    let run = runs
        .iter()
        .find(|r| r.metadata.labels.as_ref().and_then(|l| l.get("serin.dev/revision")) == st.stable_pod_hash.as_ref())
        .expect("the run of version 2");
    let status = run.status.clone().unwrap();
    assert_eq!(status.phase, Some(AnalysisPhase::Successful), "{status:?}");
    // ArgoCD's health check reads the same run as Healthy.
    let health = common::argocd::health("AnalysisRun", &serde_json::to_value(run).unwrap());
    assert_eq!(health.0, "Healthy", "{health:?}");
    assert_eq!(status.metric_results.len(), 2, "error rate and p99 latency");
    let latency = status
        .metric_results
        .iter()
        .find(|m| m.name == "latency-p99")
        .expect("latency metric");
    assert_eq!(latency.phase, AnalysisPhase::Successful);
    let metric = status
        .metric_results
        .iter()
        .find(|m| m.name == "error-rate")
        .expect("error-rate metric");
    let judged: Vec<&str> = metric
        .measurements
        .iter()
        .filter(|m| m.phase == AnalysisPhase::Successful)
        .filter_map(|m| m.value.as_deref())
        .collect();
    assert_eq!(judged.len(), 3, "three measured values: {:?}", metric.measurements);
    assert!(
        judged.iter().all(|v| *v == "0"),
        "a zero error rate, measured: {judged:?}"
    );
    // The query went out with the version's hash in it, escaped into its label matcher.
    let query = &run.spec.metrics[0].provider.prometheus.as_ref().unwrap().query;
    assert!(
        query.contains(&format!(
            "pod_template_hash=\"{}\"",
            st.stable_pod_hash.clone().unwrap()
        )),
        "{query}"
    );
    assert_eq!(e.size_of(&v1).await, 0);
    // The controller's /metrics carries each metric's last value and its threshold.
    let text = metrics_of(&controller).await;
    assert!(
        text.contains(&format!(
            r#"serin_analysis_measurement_value{{namespace="{ns}",rollout="web",metric="error-rate"}} 0"#
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"serin_analysis_threshold{{namespace="{ns}",rollout="web",metric="latency-p99",bound="max"}} 0.5"#
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_bad_release_is_rolled_back_by_its_analysis() {
    let e = env().await;
    let controller = ControllerProc::start(&e.sim, "controller.log");
    let v1 = e.healthy_v1().await;
    let released = Instant::now();
    e.apply(&rollout("example/web:3", "0.3"));
    let st = eventually("aborted by analysis", WAIT, || async {
        let st = e.status().await;
        (st.abort == Some(true)).then_some(st)
    })
    .await;
    let decided = released.elapsed();
    let v3 = st.current_pod_hash.clone().unwrap();
    eventually("traffic back on stable", WAIT, || async {
        let st = e.status().await;
        (st.canary_weight == Some(0) && e.size_of(&v3).await == 0 && e.size_of(&v1).await == 2).then_some(())
    })
    .await;
    let back = released.elapsed();
    eprintln!("rollback: analysis verdict {decided:?} after release, traffic on stable {back:?} after release");
    // The failed run was taken ahead of the routine queue, and so was the canary's Pods going,
    // which is what brings the weight to 0 without a router.
    let text = metrics_of(&controller).await;
    let lane: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("serin_rollback_lane_reconciles_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        lane >= 2.0,
        "the failed run and the canary's Pods going, both in the lane:\n{text}"
    );
    assert_eq!(st.phase, Some(Phase::Degraded));
    assert!(
        st.message.clone().unwrap_or_default().contains("aborted"),
        "{:?}",
        st.message
    );
    let metric = st
        .analysis
        .iter()
        .flat_map(|a| a.metrics.iter())
        .find(|m| m.name == "error-rate")
        .expect("the metric in status");
    assert_eq!(metric.phase, "Failed");
    let value: f64 = metric.value.clone().unwrap_or_default().parse().unwrap_or(0.0);
    assert!((value - 0.3).abs() < 0.08, "measured error rate {value}");
    let view = e.sim.kubectl_serin_ok(&["get", "rollout", "web"]);
    assert!(view.contains("error-rate") && view.contains("Failed"), "{view}");
    // ArgoCD: the failed run is Degraded with its reason; the Rollout too, with the controller's words.
    let runs = e.runs_of_web().await;
    let failed = runs
        .iter()
        .find(|r| r.status.as_ref().and_then(|s| s.phase) == Some(AnalysisPhase::Failed))
        .expect("the failed run");
    let (health, message) = common::argocd::health("AnalysisRun", &serde_json::to_value(failed).unwrap());
    assert_eq!(health, "Degraded");
    assert!(message.contains("error-rate"), "{message}");
    let rollout = serde_json::to_value(e.rollouts.get("web").await.unwrap()).unwrap();
    let (health, message) = common::argocd::health("Rollout", &rollout);
    assert_eq!(health, "Degraded");
    assert!(message.contains("aborted"), "{message}");
}

#[tokio::test]
async fn prometheus_going_away_never_promotes() {
    let mut e = env().await;
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    let v1 = e.healthy_v1().await;
    e.apply(&rollout("example/web:2", "0"));
    // Prometheus stops once the analysis has begun measuring.
    eventually("a first measurement", WAIT, || async {
        let runs = e
            .runs
            .list(&ListParams::default().labels("serin.dev/rollout=web"))
            .await
            .ok()?
            .items;
        runs.iter()
            .filter_map(|r| r.status.as_ref())
            .any(|s| s.metric_results.iter().any(|m| !m.measurements.is_empty()))
            .then_some(())
    })
    .await;
    drop(e.prometheus.take());
    let st = eventually("paused on analysis errors", WAIT, || async {
        let st = e.status().await;
        (st.phase == Some(Phase::Paused)).then_some(st)
    })
    .await;
    let message = st.message.clone().unwrap_or_default();
    assert!(
        message.contains("error") && message.contains("kubectl serin promote"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let st = e.status().await;
    assert_eq!(st.stable_pod_hash.as_deref(), Some(v1.as_str()), "never promoted");
    assert_eq!(st.current_step_index, Some(1));
    // ArgoCD: a run in error waits for a person, and so does the Rollout.
    let rollout = serde_json::to_value(e.rollouts.get("web").await.unwrap()).unwrap();
    assert_eq!(common::argocd::health("Rollout", &rollout).0, "Suspended");
}

#[tokio::test]
async fn credentials_come_from_a_secret_and_stay_secret() {
    let e = env().await;
    let prom_url = e.prometheus.as_ref().map(|p| p.url()).unwrap_or_default();
    let proxy = common::start_proxy(common::Proxy {
        upstream: prom_url,
        authorization: "Bearer tok-9f8e7d".into(),
        delay: Duration::ZERO,
    })
    .await;
    e.sim.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "prom-token",
        "--from-literal=token=tok-9f8e7d",
    ]);
    e.sim
        .kubectl_ok(&["label", "secret", "prom-token", "serin.dev/analysis-access=true"]);
    let guarded = templates(&proxy)
        .replace(
            "        timeout: 5s\n",
            "        timeout: 5s\n        headers: [{key: X-Scope-OrgID, value: team-a}]\n        authentication: {bearerToken: {name: prom-token, key: token}}\n",
        );
    assert!(guarded.contains("bearerToken"), "the templates were rewritten");
    e.apply(&guarded);
    let controller = ControllerProc::start(&e.sim, "controller.log");
    let v1 = e.healthy_v1().await;
    e.apply(&rollout("example/web:2", "0"));
    eventually("promoted through the guarded Prometheus", WAIT, || async {
        let st = e.status().await;
        (st.phase == Some(Phase::Healthy) && st.stable_pod_hash.as_deref() != Some(v1.as_str())).then_some(())
    })
    .await;
    for what in [
        ["get", "analysisruns", "-o", "yaml"],
        ["get", "events", "-o", "yaml"],
        ["get", "rollouts", "-o", "yaml"],
    ] {
        let out = e.sim.kubectl_ok(&what);
        assert!(!out.contains("tok-9f8e7d"), "the token leaked into {what:?}");
    }
    assert!(
        !controller.log().contains("tok-9f8e7d"),
        "the token leaked into the controller's log"
    );
}
