//! The canary judged against stable, end to end: `serin sim` + a real Prometheus scraping its
//! traffic + `serin controller`, with the shipped `serin-http` ClusterAnalysisTemplate named by
//! the Rollout's `analysis` and the default 5/25/50/100 steps.

mod common;

use common::lying::{self, Lie, Lies, Series, Whose};
use common::{Cluster, ControllerProc, Prometheus, eventually, web_rollout};
use kube::api::{Api, ListParams};
use serin::crd::analysis::{AnalysisPhase, AnalysisRun};
use serin::crd::rollout::{Phase, Rollout, RolloutStatus};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(150);

/// The shipped templates as a user installs them, made quick: a look every 2 s, ten of them, with
/// the same half minute for a new version's series to appear.
fn shipped_templates() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/analysis-templates.yaml");
    std::fs::read_to_string(path)
        .expect("shipped templates")
        .replace("interval: 10s", "interval: 2s")
        .replace("count: 30", "count: 10")
        .replace("consecutiveNoDataLimit: 6", "consecutiveNoDataLimit: 15")
}

/// Version `image` with its error rate and latency, analysed by `serin-http` at each default step.
fn rollout(image: &str, error_rate: &str, latency_ms: &str) -> String {
    rollout_bursting(image, error_rate, latency_ms, "1")
}

/// The same, its errors coming `burst` at a time (as from a client retrying each).
fn rollout_bursting(image: &str, error_rate: &str, latency_ms: &str, burst: &str) -> String {
    let canary = "      analysis:\n        templates: [{templateName: serin-http, clusterScope: true}]";
    let env = [
        ("SERIN_SIM_ERROR_RATE", error_rate),
        ("SERIN_SIM_LATENCY_MS", latency_ms),
        ("SERIN_SIM_ERROR_BURST", burst),
    ];
    // Bursts carry fewer independent errors: more traffic to tell a regression by.
    let rps = if burst == "1" { "\"400\"" } else { "\"2000\"" };
    web_rollout(4, image, &env, "", canary) + &common::TRAFFIC_SERVICES.replace("\"100\"", rps)
}

struct Env {
    sim: Cluster,
    _prometheus: Prometheus,
    controller: ControllerProc,
    rollouts: Api<Rollout>,
    runs: Api<AnalysisRun>,
    /// What the Prometheus Serin asks says wrong, when it lies.
    lies: Lies,
}

async fn env() -> Env {
    env_asking(false).await
}

/// Serin asking a real Prometheus, or a proxy in front of it that lies when told to.
async fn env_asking(liar: bool) -> Env {
    let sim = Cluster::start();
    sim.install_crds();
    let prometheus = Prometheus::start(&[sim.traffic_target()]);
    sim.apply_yaml(&shipped_templates());
    let (url, lies) = if liar {
        lying::start(&prometheus.url()).await
    } else {
        (prometheus.url(), Lies::default())
    };
    let address = format!("--prometheus-address={url}");
    let controller = ControllerProc::start_with(&sim, "compare-controller.log", &[&address]);
    let client = sim.client().await;
    Env {
        rollouts: Api::default_namespaced(client.clone()),
        runs: Api::default_namespaced(client),
        _prometheus: prometheus,
        controller,
        sim,
        lies,
    }
}

impl Env {
    async fn status(&self) -> RolloutStatus {
        common::rollout_status(&self.rollouts, "web").await
    }

    async fn release(&self, image: &str, error_rate: &str, latency_ms: &str) {
        self.sim.apply_yaml(&rollout(image, error_rate, latency_ms));
    }

    /// Version 1, healthy: 1% errors, 100 ms.
    async fn stable_v1(&self) -> String {
        self.stable_v1_bursting("1").await
    }

    /// Version 1, healthy, its errors `burst` at a time.
    async fn stable_v1_bursting(&self, burst: &str) -> String {
        self.sim
            .apply_yaml(&rollout_bursting("example/web:1", "0.01", "100", burst));
        eventually("version 1 healthy", WAIT, || async {
            let st = self.status().await;
            (st.phase == Some(Phase::Healthy)).then_some(st.stable_pod_hash?)
        })
        .await
    }

    /// What the Rollout and its runs show, for a test that failed.
    async fn explain(&self) -> String {
        let st = self.status().await;
        let runs = self
            .runs
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let runs: Vec<String> = runs
            .iter()
            .map(|r| serde_json::to_string(&r.status).unwrap_or_default())
            .collect();
        format!("{st:?}\nruns:\n{}", runs.join("\n"))
    }

    async fn runs_of(&self, hash: &str) -> Vec<AnalysisRun> {
        let mut runs = self
            .runs
            .list(&ListParams::default().labels(&format!("serin.dev/rollout=web,serin.dev/revision={hash}")))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        runs.sort_by_key(|r| r.metadata.creation_timestamp.clone().map(|t| t.0));
        runs
    }

    /// The canary's hash, once its first run has read the counters (counting has begun).
    async fn counting_began(&self, v1: &str) -> String {
        eventually("the canary's analysis counting", WAIT, || async {
            let st = self.status().await;
            let hash = st.current_pod_hash.filter(|h| h != v1)?;
            let runs = self.runs_of(&hash).await;
            let counting = runs.iter().any(|r| {
                r.status.as_ref().is_some_and(|s| {
                    s.metric_results
                        .iter()
                        .any(|m| m.name == "errors-vs-stable" && m.evidence.is_some())
                })
            });
            counting.then_some(hash)
        })
        .await
    }

    /// Stable version 1, then version 2 failing at `error_rate`; once the canary's counting has
    /// begun (before the evidence can decide), `lie` about `series` of stable's series (or the
    /// canary's), for `lasting`. Returns both hashes.
    async fn release_then_lie(
        &self,
        error_rate: &str,
        about_stable: bool,
        (series, lie): (Series, Lie),
        lasting: Option<Duration>,
    ) -> (String, String) {
        let v1 = self.stable_v1().await;
        self.release("example/web:2", error_rate, "100").await;
        let hash = self.counting_began(&v1).await;
        let whose = if about_stable { v1.clone() } else { hash.clone() };
        self.lies.tell(Whose::Version(whose), series, lie, lasting);
        (v1, hash)
    }

    /// Measurement messages of the canary's runs, of `metric`.
    async fn said(&self, hash: &str, metric: &str) -> Vec<String> {
        self.runs_of(hash)
            .await
            .iter()
            .filter_map(|r| r.status.clone())
            .flat_map(|s| s.metric_results)
            .filter(|m| m.name == metric)
            .flat_map(|m| m.measurements)
            .filter_map(|m| m.message)
            .collect()
    }

    /// Holds for `how_long`: the release neither promoted nor rolled back, while `what` is what
    /// the canary's runs say; returns that once it is said.
    async fn neither_promoted_nor_rolled_back(&self, v1: &str, hash: &str, what: &str, how_long: Duration) -> String {
        let until = std::time::Instant::now() + how_long;
        let mut seen = None;
        while std::time::Instant::now() < until || seen.is_none() {
            let st = self.status().await;
            assert_ne!(
                st.abort,
                Some(true),
                "rolled back on corrupt data:\n{}",
                self.explain().await
            );
            assert_eq!(
                st.stable_pod_hash.as_deref(),
                Some(v1),
                "promoted on corrupt data:\n{}",
                self.explain().await
            );
            if seen.is_none() {
                seen = self
                    .said(hash, "errors-vs-stable")
                    .await
                    .into_iter()
                    .find(|m| m.contains(what));
            }
            assert!(
                std::time::Instant::now() < until + WAIT,
                "never said {what:?}:\n{}",
                self.explain().await
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        seen.unwrap_or_default()
    }

    /// Waits for the release to be rolled back by itself; returns the Rollout's status and the
    /// failed run.
    async fn rolled_back(&self, v1: &str) -> (RolloutStatus, AnalysisRun) {
        let wait = eventually("the canary rolled back by its analysis", WAIT, || async {
            let st = self.status().await;
            (st.abort == Some(true) || st.phase == Some(Phase::Degraded)).then_some(st)
        });
        let st = match tokio::time::timeout(WAIT - Duration::from_secs(5), wait).await {
            Ok(st) => st,
            Err(_) => panic!("not rolled back:\n{}", self.explain().await),
        };
        assert_eq!(st.stable_pod_hash.as_deref(), Some(v1), "stable stays version 1");
        let hash = st.current_pod_hash.clone().unwrap_or_default();
        let failed = self
            .runs_of(&hash)
            .await
            .into_iter()
            .find(|r| r.status.as_ref().and_then(|s| s.phase) == Some(AnalysisPhase::Failed))
            .expect("a failed run");
        (st, failed)
    }
}

#[tokio::test]
async fn twice_the_stable_error_rate_is_rolled_back_with_its_evidence() {
    let e = env().await;
    let v1 = e.stable_v1().await;
    e.release("example/web:2", "0.02", "100").await;
    let (st, run) = e.rolled_back(&v1).await;
    let status = run.status.clone().unwrap_or_default();
    let errors = status
        .metric_results
        .iter()
        .find(|m| m.name == "errors-vs-stable")
        .expect("errors-vs-stable");
    assert_eq!(errors.phase, AnalysisPhase::Failed, "{errors:?}");
    let last = errors.measurements.last().expect("a measurement");
    let c = last.comparison.clone().expect("the evidence");
    let threshold = c.threshold.unwrap_or_default();
    assert!(c.e_value.unwrap_or_default() >= threshold, "{c:?}");
    let ratio = c.ratio.unwrap_or_default();
    assert!(ratio > 1.5 && ratio < 2.7, "measured ratio {ratio}: {c:?}");
    assert!(c.canary.bad > 0.0 && c.stable.is_some_and(|s| s.bad > 0.0), "{c:?}");
    let message = last.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("canary 2.0% (")
            && message.contains(" vs stable 1.0% (")
            && message.ends_with(": regression"),
        "{message}"
    );
    // The same line reaches the Rollout's status and `kubectl serin get rollout`.
    let said = st.message.clone().unwrap_or_default();
    assert!(
        said.contains("errors-vs-stable") && said.contains(": regression"),
        "{said}"
    );
    let shown = e
        .sim
        .kubectl_serin_ok(&["get", "rollout", "web", "-n", &e.sim.namespace]);
    assert!(
        shown.contains("errors-vs-stable") && shown.contains(": regression"),
        "{shown}"
    );
    // And the run's Event.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(e.sim.client().await);
    let run_name = run.metadata.name.clone().unwrap_or_default();
    let said: Vec<String> = events
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|ev| ev.involved_object.name.as_deref() == Some(run_name.as_str()))
        .filter_map(|ev| ev.message)
        .collect();
    assert!(
        said.iter()
            .any(|m| m.contains("errors-vs-stable") && m.contains(": regression")),
        "{said:?}"
    );
    // And the controller's metrics.
    let ns = &e.sim.namespace;
    let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", e.controller.metrics_port))
        .await
        .map(|r| r.text())
        .expect("metrics")
        .await
        .unwrap_or_default();
    assert!(
        text.contains(&format!(
            r#"serin_analysis_evalue{{namespace="{ns}",rollout="web",metric="errors-vs-stable"}}"#
        )) && text.contains(&format!(
            r#"serin_analysis_ratio{{namespace="{ns}",rollout="web",metric="errors-vs-stable"}}"#
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_healthy_canary_is_promoted_through_every_default_step_on_evidence_carried_along() {
    let e = env().await;
    let v1 = e.stable_v1().await;
    e.release("example/web:2", "0.01", "100").await;
    let st = eventually("version 2 promoted", Duration::from_secs(240), || async {
        let st = e.status().await;
        assert_ne!(
            st.abort,
            Some(true),
            "a healthy canary was rolled back: {:?}",
            st.message
        );
        (st.phase == Some(Phase::Healthy) && st.stable_pod_hash.as_deref() != Some(v1.as_str())).then_some(st)
    })
    .await;
    let hash = st.stable_pod_hash.clone().unwrap_or_default();
    let runs = e.runs_of(&hash).await;
    let steps: Vec<String> = runs
        .iter()
        .filter_map(|r| r.metadata.labels.as_ref()?.get("serin.dev/step").cloned())
        .filter(|s| s != "bg")
        .collect();
    assert_eq!(
        steps.len(),
        4,
        "an analysis after each of 5, 25, 50 and 100%: {steps:?}"
    );
    let runs: Vec<AnalysisRun> = runs
        .into_iter()
        .filter(|r| {
            r.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("serin.dev/step"))
                .map(String::as_str)
                != Some("bg")
        })
        .collect();
    for r in &runs {
        let s = r.status.clone().unwrap_or_default();
        assert_eq!(s.phase, Some(AnalysisPhase::Successful), "{s:?}");
    }
    // The evidence began with the first step's run and carried on: the last run's counts
    // include the first's.
    let counted = |r: &AnalysisRun| {
        let s = r.status.clone().unwrap_or_default();
        let m = s.metric_results.iter().find(|m| m.name == "errors-vs-stable").cloned();
        m.and_then(|m| m.evidence).map(|e| (e.since.0, e.counted[0].total))
    };
    let (first, last) = (counted(&runs[0]), counted(&runs[runs.len() - 1]));
    let ((since_first, total_first), (since_last, total_last)) = (first.expect("evidence"), last.expect("evidence"));
    assert_eq!(since_first, since_last, "one e-process for the version");
    assert!(total_last > total_first, "{total_first} then {total_last}");
}

#[tokio::test]
async fn a_canary_slower_than_stable_is_rolled_back() {
    let e = env().await;
    let v1 = e.stable_v1().await;
    e.release("example/web:2", "0.01", "700").await;
    let (_, run) = e.rolled_back(&v1).await;
    let status = run.status.clone().unwrap_or_default();
    let latency = status
        .metric_results
        .iter()
        .find(|m| m.name == "latency-vs-stable")
        .expect("latency-vs-stable");
    assert_eq!(latency.phase, AnalysisPhase::Failed, "{latency:?}");
    let message = latency
        .measurements
        .last()
        .and_then(|m| m.message.clone())
        .unwrap_or_default();
    assert!(
        message.starts_with("canary 100.0% (") && message.ends_with(": regression"),
        "{message}"
    );
}

/// A Prometheus that lies (a proxy in front of the real one) makes no promotion and no rollback.
/// The canary fails twice as often as stable, and its bad-request series reads NaN from the
/// start: every look is an Error that says so, and the release waits for a person.
#[tokio::test]
async fn a_worse_canary_whose_bad_series_reads_nan_is_never_promoted() {
    let e = env_asking(true).await;
    let v1 = e.stable_v1().await;
    e.lies.tell(Whose::AllBut(v1.clone()), Series::Bad, Lie::NaN, None);
    e.release("example/web:2", "0.02", "100").await;
    let hash = eventually("the canary", WAIT, || async {
        e.status().await.current_pod_hash.filter(|h| *h != v1)
    })
    .await;
    let said = e
        .neither_promoted_nor_rolled_back(&v1, &hash, "bad counter reads NaN", Duration::from_secs(40))
        .await;
    assert!(said.starts_with("the canary's bad counter reads NaN"), "{said}");
}

/// Stable's series vanish while its Pods still serve: no data, never "stable serves nothing, so
/// the canary passes", for a canary twice as bad.
#[tokio::test]
async fn a_worse_canary_is_not_promoted_when_stables_series_vanish() {
    let e = env_asking(true).await;
    let (v1, hash) = e.release_then_lie("0.02", true, (Series::All, Lie::Vanish), None).await;
    let said = e
        .neither_promoted_nor_rolled_back(&v1, &hash, "series are gone", Duration::from_secs(40))
        .await;
    assert!(
        said.contains("its series are gone while its ReplicaSet still has 4 ready Pods"),
        "{said}"
    );
}

/// Stable's bad counter reads -5: an Error, not a restart that makes the healthy canary look bad.
#[tokio::test]
async fn a_healthy_canary_is_not_rolled_back_when_stables_bad_counter_reads_negative() {
    let e = env_asking(true).await;
    let (v1, hash) = e
        .release_then_lie("0.01", true, (Series::Bad, Lie::Value(-5.0)), None)
        .await;
    let said = e
        .neither_promoted_nor_rolled_back(&v1, &hash, "reads -5", Duration::from_secs(40))
        .await;
    assert!(said.starts_with("the stable's bad counter reads -5"), "{said}");
}

/// The canary's bad counter reads -1 for a few seconds, then right again: those looks are Errors,
/// counting goes on from the last good reading (not from zero, as a restart would), and the
/// healthy canary is promoted.
#[tokio::test]
async fn a_healthy_canary_whose_bad_counter_dips_for_seconds_is_promoted() {
    let e = env_asking(true).await;
    let (_, hash) = e
        .release_then_lie(
            "0.01",
            false,
            (Series::Bad, Lie::Value(-1.0)),
            Some(Duration::from_secs(5)),
        )
        .await;
    eventually("version 2 promoted", Duration::from_secs(240), || async {
        let st = e.status().await;
        assert_ne!(st.abort, Some(true), "rolled back:\n{}", e.explain().await);
        (st.phase == Some(Phase::Healthy) && st.stable_pod_hash.as_deref() == Some(hash.as_str())).then_some(())
    })
    .await;
    // The looks of the dip were Errors (their messages have since left the kept measurements).
    let errors: i32 = e
        .runs_of(&hash)
        .await
        .iter()
        .filter_map(|r| r.status.clone())
        .flat_map(|s| s.metric_results)
        .filter(|m| m.name == "errors-vs-stable")
        .map(|m| m.error)
        .sum();
    assert!(errors >= 1, "no look of the dip was an Error:\n{}", e.explain().await);
}

/// Errors in bursts of 5 (each failed request retried 4 times), from both versions, through the
/// real binary and a real Prometheus: a healthy canary is promoted, and the evidence says the
/// errors cluster.
#[tokio::test]
async fn a_healthy_canary_whose_errors_come_in_bursts_is_promoted() {
    let e = env().await;
    let v1 = e.stable_v1_bursting("5").await;
    e.sim.apply_yaml(&rollout_bursting("example/web:2", "0.01", "100", "5"));
    let st = eventually("version 2 promoted", Duration::from_secs(240), || async {
        let st = e.status().await;
        assert_ne!(
            st.abort,
            Some(true),
            "a healthy canary was rolled back:\n{}",
            e.explain().await
        );
        (st.phase == Some(Phase::Healthy) && st.stable_pod_hash.as_deref() != Some(v1.as_str())).then_some(st)
    })
    .await;
    let hash = st.stable_pod_hash.clone().unwrap_or_default();
    let dispersions: Vec<f64> = e
        .runs_of(&hash)
        .await
        .iter()
        .filter_map(|r| r.status.clone())
        .flat_map(|s| s.metric_results)
        .filter(|m| m.name == "errors-vs-stable")
        .flat_map(|m| m.measurements)
        .filter_map(|m| m.comparison?.dispersion)
        .collect();
    assert!(
        dispersions.iter().any(|d| *d > 1.5),
        "the bursts were seen as dispersion: {dispersions:?}\n{}",
        e.explain().await
    );
}

/// And a canary failing twice as often, in the same bursts, is rolled back.
#[tokio::test]
async fn a_canary_twice_as_bad_in_bursts_is_rolled_back() {
    let e = env().await;
    let v1 = e.stable_v1_bursting("5").await;
    e.sim.apply_yaml(&rollout_bursting("example/web:2", "0.02", "100", "5"));
    let (_, run) = e.rolled_back(&v1).await;
    let status = run.status.clone().unwrap_or_default();
    let failed: Vec<String> = status
        .metric_results
        .iter()
        .filter(|m| m.phase == AnalysisPhase::Failed)
        .map(|m| m.name.clone())
        .collect();
    assert!(!failed.is_empty(), "{status:?}");
}
