//! Analysis as Argo Rollouts' users write it, end to end: arguments in the address, a short rate
//! window, no initialDelay (so the first measurement finds no data), templates made of
//! templates. `serin sim`, a real Prometheus scraping its traffic and `serin controller`; nobody
//! touches the rollouts.

mod common;

use common::{Cluster, ControllerProc, Prometheus, eventually, web_rollout};
use kube::api::{Api, ListParams};
use serin::crd::analysis::{AnalysisPhase, AnalysisRun};
use serin::crd::rollout::{Phase, Rollout, RolloutStatus};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// The error rate of one version, as Argo Rollouts' documentation writes such a template.
const ERROR_RATE: &str = r#"
apiVersion: serin.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: error-rate}
spec:
  args:
  - name: prometheus
  - name: canary-hash
  metrics:
  - name: error-rate
    interval: 3s
    count: 3
    failureLimit: 0
    successCondition: result < 0.05
    provider:
      prometheus:
        address: "{{args.prometheus}}"
        query: |
          sum(rate(http_requests_total{pod_template_hash="{{args.canary-hash}}",code=~"5.."}[6s]))
          /
          sum(rate(http_requests_total{pod_template_hash="{{args.canary-hash}}"}[6s]))
"#;

/// A template of templates: the error rate, and a check that Prometheus itself is up.
const CANARY_CHECKS: &str = r#"
apiVersion: serin.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: canary-checks}
spec:
  templates:
  - templateName: error-rate
  - templateName: prometheus-up
---
apiVersion: serin.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: prometheus-up}
spec:
  args:
  - name: prometheus
  metrics:
  - name: prometheus-up
    successCondition: result[0] == 1
    provider:
      prometheus:
        address: "{{args.prometheus}}"
        query: max(up)
"#;

/// A query for a series that never exists.
const NEVER: &str = r#"
apiVersion: serin.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: never}
spec:
  args:
  - name: prometheus
  - name: canary-hash
  metrics:
  - name: checkout-latency
    interval: 2s
    count: 3
    consecutiveNoDataLimit: 3
    successCondition: result < 0.5
    provider:
      prometheus:
        address: "{{args.prometheus}}"
        query: sum(checkout_latency_seconds{pod_template_hash="{{args.canary-hash}}"})
"#;

fn rollout(image: &str, error_rate: &str, template: &str, prometheus: Option<&str>) -> String {
    let prometheus = prometheus
        .map(|p| format!("\n          - {{name: prometheus, value: \"{p}\"}}"))
        .unwrap_or_default();
    let canary = format!(
        "      steps:
      - setWeight: 20
      - analysis:
          templates: [{{templateName: {template}}}]
          args:
          - {{name: canary-hash, valueFrom: {{podTemplateHashValue: Latest}}}}{prometheus}
      - setWeight: 100"
    );
    web_rollout(5, image, &[("SERIN_SIM_ERROR_RATE", error_rate)], "", &canary) + common::TRAFFIC_SERVICES
}

struct Env {
    sim: Cluster,
    prometheus: Prometheus,
    rollouts: Api<Rollout>,
    runs: Api<AnalysisRun>,
    _controller: ControllerProc,
}

async fn env(templates: &[&str]) -> Env {
    let sim = Cluster::start();
    sim.install_crds();
    let prometheus = Prometheus::start(&[sim.traffic_target()]);
    let client = sim.client().await;
    for t in templates {
        sim.apply_yaml(t);
    }
    let controller = ControllerProc::start(&sim, "controller.log");
    Env {
        rollouts: Api::default_namespaced(client.clone()),
        runs: Api::default_namespaced(client),
        prometheus,
        sim,
        _controller: controller,
    }
}

impl Env {
    async fn status(&self) -> RolloutStatus {
        common::rollout_status(&self.rollouts, "web").await
    }

    /// Version 1, healthy: the first version takes all traffic without analysis.
    async fn v1(&self, template: &str) -> String {
        let address = self.prometheus.url();
        self.sim
            .apply_yaml(&rollout("example/web:1", "0", template, Some(&address)));
        eventually("version 1 healthy", WAIT, || async {
            let st = self.status().await;
            (st.phase == Some(Phase::Healthy)).then_some(st.stable_pod_hash?)
        })
        .await
    }

    async fn run_of(&self, hash: &str) -> Option<AnalysisRun> {
        let runs = self
            .runs
            .list(&ListParams::default().labels(&format!("serin.dev/revision={hash}")))
            .await
            .ok()?
            .items;
        runs.into_iter().next()
    }
}

/// Seconds since a run was made (the start of its analysis step).
fn age(run: &AnalysisRun) -> f64 {
    let made = run
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_default();
    jiff::Timestamp::now().duration_since(made).as_secs_f64()
}

#[tokio::test]
async fn a_release_failing_40_percent_is_rolled_back_by_itself_within_30s() {
    let e = env(&[ERROR_RATE]).await;
    let v1 = e.v1("error-rate").await;
    let address = e.prometheus.url();
    e.sim
        .apply_yaml(&rollout("example/web:2", "0.4", "error-rate", Some(&address)));
    let (st, run, took) = eventually("aborted by its analysis", WAIT, || async {
        let st = e.status().await;
        if st.abort != Some(true) {
            return None;
        }
        let run = e.run_of(st.current_pod_hash.as_deref()?).await?;
        let took = age(&run);
        Some((st, run, took))
    })
    .await;
    eprintln!("from the analysis step's start to the rollback: {took:.1}s");
    assert!(took < 30.0, "the rollback took {took:.1}s");
    let status = run.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(AnalysisPhase::Failed), "{status:?}");
    let metric = &status.metric_results[0];
    assert!(
        metric.no_data >= 1,
        "the first measurement, at the start of the step, found no data yet: {metric:?}"
    );
    assert_eq!(metric.measurements[0].phase, AnalysisPhase::NoData);
    let failed = metric
        .measurements
        .iter()
        .find(|m| m.phase == AnalysisPhase::Failed)
        .expect("a failed measurement");
    let value: f64 = failed.value.clone().unwrap_or_default().parse().unwrap_or(0.0);
    assert!((value - 0.4).abs() < 0.15, "measured error rate {value}");
    eventually("traffic back on version 1", WAIT, || async {
        let st = e.status().await;
        (st.canary_weight == Some(0) && st.stable_pod_hash.as_deref() == Some(v1.as_str())).then_some(())
    })
    .await;
    assert_eq!(st.phase, Some(Phase::Degraded));
}

#[tokio::test]
async fn a_healthy_release_is_promoted_by_a_template_of_templates() {
    let e = env(&[ERROR_RATE, CANARY_CHECKS]).await;
    let v1 = e.v1("canary-checks").await;
    let address = e.prometheus.url();
    e.sim
        .apply_yaml(&rollout("example/web:2", "0", "canary-checks", Some(&address)));
    let st = eventually("version 2 promoted to 100%", WAIT, || async {
        let st = e.status().await;
        (st.phase == Some(Phase::Healthy) && st.stable_pod_hash.as_deref() != Some(v1.as_str())).then_some(st)
    })
    .await;
    let run = e
        .run_of(st.stable_pod_hash.as_deref().unwrap_or_default())
        .await
        .expect("the run of version 2");
    let status = run.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(AnalysisPhase::Successful), "{status:?}");
    let names: Vec<&str> = run.spec.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["error-rate", "prometheus-up"], "both templates' metrics");
    let errors = status
        .metric_results
        .iter()
        .find(|m| m.name == "error-rate")
        .expect("error-rate");
    assert_eq!(errors.count, 3, "three measurements with data decided: {errors:?}");
}

#[tokio::test]
async fn a_metric_that_never_gets_data_ends_inconclusive_naming_its_query() {
    let e = env(&[NEVER]).await;
    let v1 = e.v1("never").await;
    let address = e.prometheus.url();
    e.sim
        .apply_yaml(&rollout("example/web:2", "0", "never", Some(&address)));
    let view = eventually("kubectl serin get rollout says it waits for data", WAIT, || async {
        let view = e.sim.kubectl_serin_ok(&["get", "rollout", "web"]);
        view.contains("waiting for data from checkout-latency").then_some(view)
    })
    .await;
    assert!(view.contains("Running"), "{view}");
    let st = eventually("paused for a person", WAIT, || async {
        let st = e.status().await;
        (st.phase == Some(Phase::Paused)).then_some(st)
    })
    .await;
    let message = st.message.clone().unwrap_or_default();
    assert!(
        message.contains("kubectl serin promote web") && message.contains("kubectl serin abort web"),
        "{message}"
    );
    assert!(
        message.contains("checkout_latency_seconds"),
        "the Rollout names the query: {message}"
    );
    let run = e
        .run_of(st.current_pod_hash.as_deref().unwrap_or_default())
        .await
        .expect("the run");
    let status = run.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(AnalysisPhase::Inconclusive), "{status:?}");
    let metric = &status.metric_results[0];
    assert_eq!((metric.no_data, metric.count), (4, 0), "{metric:?}");
    let said = metric.message.clone().unwrap_or_default();
    assert!(
        said.contains("no data 4 times in a row") && said.contains("sum(checkout_latency_seconds{pod_template_hash="),
        "{said}"
    );
    assert_eq!(st.stable_pod_hash.as_deref(), Some(v1.as_str()), "never promoted");
}

#[tokio::test]
async fn an_argument_without_a_value_fails_the_run_and_says_which() {
    let e = env(&[ERROR_RATE]).await;
    let v1 = e.v1("error-rate").await;
    // Version 2 forgets the Prometheus address the template asks for.
    e.sim.apply_yaml(&rollout("example/web:2", "0", "error-rate", None));
    let st = eventually("aborted", WAIT, || async {
        let st = e.status().await;
        (st.abort == Some(true)).then_some(st)
    })
    .await;
    let run = e
        .run_of(st.current_pod_hash.as_deref().unwrap_or_default())
        .await
        .expect("the run");
    let status = run.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(AnalysisPhase::Failed), "{status:?}");
    let said = status.message.clone().unwrap_or_default();
    assert!(
        said.contains("AnalysisTemplate \"error-rate\"") && said.contains("{{args.prometheus}}"),
        "{said}"
    );
    assert!(status.metric_results.is_empty(), "nothing was measured");
    let message = st.message.clone().unwrap_or_default();
    assert!(
        message.contains("{{args.prometheus}}"),
        "the Rollout says why: {message}"
    );
    assert_eq!(st.stable_pod_hash.as_deref(), Some(v1.as_str()));
}
