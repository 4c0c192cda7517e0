//! What the pages show, built from the caches: a row per Rollout, a Rollout's whole page, and the
//! small update an open page gets when the Rollout changes. Pure: objects in, JSON out.

use super::state::{EventView, History, Key, WeightPoint};
use crate::cli::rollouts::role_of;
use crate::crd::analysis::{AnalysisRun, Measurement, Metric};
use crate::crd::rollout::Rollout;
use crate::plan::{HASH_LABEL, steps};
use crate::reconcile::{REVISION_LABEL, ROLLOUT_LABEL, STEP_LABEL};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::ResourceExt;
use serde::Serialize;
use std::sync::Arc;

/// Runs shown on a Rollout's page, newest first.
const RUNS_SHOWN: usize = 6;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub strategy: &'static str,
    pub phase: String,
    /// `2/8`, as status says.
    pub step: String,
    pub weight: i32,
    /// The images of the stable version and of the one being released (the same when steady).
    pub stable_images: Vec<String>,
    pub new_images: Vec<String>,
    /// Milliseconds since the epoch.
    pub created: i64,
    pub message: String,
    pub aborted: bool,
    pub rolling: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetView {
    pub name: String,
    pub hash: String,
    pub role: &'static str,
    pub desired: i32,
    pub ready: i32,
    pub available: i32,
    pub images: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub t: i64,
    pub phase: String,
    /// The value when it is a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub shown: String,
    /// For `compare` and `sloBurnRate`: the canary's and stable's bad-event rates, the ratio's
    /// interval and the e-value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_high: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e_value: Option<f64>,
    /// The e-value at which the comparison decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e_threshold: Option<f64>,
    /// `sloBurnRate`: the burn rates of the short and long windows, and the budget spent (%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burn_short: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burn_long: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_spent: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricView {
    pub name: String,
    pub phase: String,
    pub provider: &'static str,
    /// Where the value must stay: (min, max) from `thresholdRange` or a simple condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    pub condition: String,
    /// `sloBurnRate`: the burn rate both windows must pass to fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burn_factor: Option<f64>,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub name: String,
    pub at: String,
    pub phase: String,
    pub message: String,
    pub metrics: Vec<MetricView>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    pub row: Row,
    pub steps: Vec<String>,
    pub current_step: i32,
    pub active: Option<String>,
    pub preview: Option<String>,
    pub stable_hash: Option<String>,
    pub current_hash: Option<String>,
    pub weights: Vec<WeightPoint>,
    pub runs: Vec<RunView>,
    pub replica_sets: Vec<ReplicaSetView>,
    pub events: Vec<EventView>,
    pub conditions: Vec<String>,
}

/// What an open page needs when its Rollout changes: small, the last of each series only.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Update {
    pub row: Row,
    pub current_step: i32,
    pub active: Option<String>,
    pub preview: Option<String>,
    pub weight: Option<WeightPoint>,
    pub runs: Vec<RunView>,
    pub replica_sets: Vec<ReplicaSetView>,
    pub event: Option<EventView>,
}

fn images_of(template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> Vec<String> {
    template
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.iter().filter_map(|c| c.image.clone()).collect())
        .unwrap_or_default()
}

fn rs_images(rs: &ReplicaSet) -> Vec<String> {
    images_of(rs.spec.as_ref().and_then(|s| s.template.as_ref()))
}

fn hash_of(rs: &ReplicaSet) -> String {
    rs.labels().get(HASH_LABEL).cloned().unwrap_or_default()
}

/// The ReplicaSets of one Rollout, newest first.
pub fn replica_sets_of(r: &Rollout, all: &[Arc<ReplicaSet>]) -> Vec<ReplicaSetView> {
    let ns = r.namespace();
    let name = r.name_any();
    let mut mine: Vec<&Arc<ReplicaSet>> = all
        .iter()
        .filter(|rs| rs.namespace() == ns && rs.labels().get(ROLLOUT_LABEL) == Some(&name))
        .collect();
    mine.sort_by_key(|rs| std::cmp::Reverse(rs.creation_timestamp().map(|t| t.0)));
    mine.iter()
        .map(|rs| {
            let status = rs.status.clone().unwrap_or_default();
            let hash = hash_of(rs);
            ReplicaSetView {
                name: rs.name_any(),
                role: role_of(r, &hash),
                hash,
                desired: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                ready: status.ready_replicas.unwrap_or(0),
                available: status.available_replicas.unwrap_or(0),
                images: rs_images(rs),
            }
        })
        .collect()
}

pub fn row(r: &Rollout, all_rs: &[Arc<ReplicaSet>]) -> Row {
    let st = r.status.clone().unwrap_or_default();
    let stable_images = all_rs
        .iter()
        .find(|rs| {
            rs.namespace() == r.namespace()
                && rs.labels().get(ROLLOUT_LABEL) == Some(&r.name_any())
                && st.stable_pod_hash.as_deref() == Some(hash_of(rs).as_str())
        })
        .map(|rs| rs_images(rs))
        .unwrap_or_default();
    let new_images = images_of(r.spec.template.as_ref().map(|t| t.typed()).as_ref());
    Row {
        namespace: r.namespace().unwrap_or_default(),
        name: r.name_any(),
        strategy: r.spec.strategy.kind(),
        phase: st
            .phase
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "Unknown".into()),
        step: st.step.clone().unwrap_or_default(),
        weight: st.canary_weight.unwrap_or(0),
        stable_images: if stable_images.is_empty() {
            new_images.clone()
        } else {
            stable_images
        },
        new_images,
        created: r.creation_timestamp().map_or(0, |t| t.0.as_millisecond()),
        message: st.message.clone().unwrap_or_default(),
        aborted: st.abort == Some(true),
        rolling: st.current_pod_hash.is_some() && st.current_pod_hash != st.stable_pod_hash,
    }
}

/// `(min, max)` a value must stay within, from `thresholdRange` or a condition such as
/// `result < 0.05` or `result[0] >= 0.99`; the chart draws it.
fn bounds(m: &Metric) -> (Option<f64>, Option<f64>) {
    if let Some(t) = &m.threshold_range {
        return (t.min, t.max);
    }
    let parse = |c: &str, pass: bool| -> Option<(Option<f64>, Option<f64>)> {
        let c = c.replace("result[0]", "result");
        let rest = c.trim().strip_prefix("result")?.trim();
        let (op, num) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| Some((*op, rest.strip_prefix(op)?)))?;
        let n: f64 = num.trim().parse().ok()?;
        let upper = op.starts_with('<') == pass;
        Some(if upper { (None, Some(n)) } else { (Some(n), None) })
    };
    m.success_condition
        .as_deref()
        .and_then(|c| parse(c, true))
        .or_else(|| m.failure_condition.as_deref().and_then(|c| parse(c, false)))
        .unwrap_or((None, None))
}

fn point(m: &Measurement) -> Point {
    let shown = m.value.clone().unwrap_or_default();
    let c = m.comparison.as_ref();
    let rate = |e: &crate::crd::analysis::EventCounts| (e.total > 0.0).then(|| e.bad / e.total);
    Point {
        t: m.finished_at.as_ref().unwrap_or(&m.started_at).0.as_millisecond(),
        phase: m.phase.as_str().to_string(),
        value: shown.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        shown,
        canary_rate: c.and_then(|c| rate(&c.canary)),
        stable_rate: c.and_then(|c| c.stable.as_ref().and_then(rate)),
        ratio_low: c.and_then(|c| c.ratio_low),
        ratio_high: c.and_then(|c| c.ratio_high),
        e_value: c.and_then(|c| c.e_value),
        e_threshold: c.and_then(|c| c.threshold),
        burn_short: c.and_then(|c| c.burn_rate_short),
        burn_long: c.and_then(|c| c.burn_rate_long),
        budget_spent: c.and_then(|c| c.budget_spent),
    }
}

fn run_view(run: &AnalysisRun, blue_green: bool, history: &History, last_only: bool) -> RunView {
    let key: Key = (run.namespace().unwrap_or_default(), run.name_any());
    let status = run.status.clone().unwrap_or_default();
    let seen = history.measurements.get(&key);
    let at = match run.labels().get(STEP_LABEL).map(|s| s.parse::<usize>()) {
        Some(Ok(i)) if blue_green && i == crate::plan::bluegreen::PREVIEW => "pre-promotion".into(),
        Some(Ok(_)) if blue_green => "post-promotion".into(),
        Some(Ok(i)) => format!("step {}", i + 1),
        _ => "background".into(),
    };
    let metrics = run
        .spec
        .metrics
        .iter()
        .map(|m| {
            let result = status.metric_results.iter().find(|r| r.name == m.name);
            let all = seen
                .and_then(|s| s.get(&m.name))
                .cloned()
                .or_else(|| result.map(|r| r.measurements.clone()))
                .unwrap_or_default();
            let take = if last_only { all.len().saturating_sub(1) } else { 0 };
            let (min, max) = bounds(m);
            MetricView {
                name: m.name.clone(),
                phase: result.map_or("Pending", |r| r.phase.as_str()).to_string(),
                provider: m.provider.kind(),
                min,
                max,
                condition: m
                    .success_condition
                    .clone()
                    .or(m.failure_condition.as_ref().map(|f| format!("fails when {f}")))
                    .unwrap_or_default(),
                burn_factor: m
                    .provider
                    .slo_burn_rate
                    .as_ref()
                    .map(|b| b.factor.unwrap_or(crate::analysis::burn_rate::DEFAULT_FACTOR)),
                points: all[take..].iter().map(point).collect(),
            }
        })
        .collect();
    RunView {
        name: run.name_any(),
        at,
        phase: status.phase.map_or("Pending", |p| p.as_str()).to_string(),
        message: status.message.unwrap_or_default(),
        metrics,
    }
}

/// The runs of one Rollout, newest first.
fn runs_of<'a>(r: &Rollout, runs: &'a [Arc<AnalysisRun>]) -> Vec<&'a Arc<AnalysisRun>> {
    let ns = r.namespace();
    let name = r.name_any();
    let mut mine: Vec<&Arc<AnalysisRun>> = runs
        .iter()
        .filter(|run| run.namespace() == ns && run.labels().get(ROLLOUT_LABEL) == Some(&name))
        .collect();
    mine.sort_by_key(|run| std::cmp::Reverse(run.creation_timestamp().map(|t| t.0)));
    mine.truncate(RUNS_SHOWN);
    mine
}

/// Blue-green's active and preview versions; none for a canary.
fn blue_green_versions(r: &Rollout) -> (Option<String>, Option<String>) {
    let bg = r.status.as_ref().and_then(|s| s.blue_green.clone()).unwrap_or_default();
    match r.spec.strategy.blue_green {
        Some(_) => (bg.active_selector, bg.preview_selector),
        None => (None, None),
    }
}

pub fn detail(r: &Rollout, all_rs: &[Arc<ReplicaSet>], runs: &[Arc<AnalysisRun>], history: &History) -> Detail {
    let st = r.status.clone().unwrap_or_default();
    let key: Key = (r.namespace().unwrap_or_default(), r.name_any());
    let blue_green = r.spec.strategy.blue_green.is_some();
    let (active, preview) = blue_green_versions(r);
    Detail {
        row: row(r, all_rs),
        steps: steps::names(&r.spec.strategy),
        current_step: st.current_step_index.unwrap_or(0),
        active,
        preview,
        stable_hash: st.stable_pod_hash.clone(),
        current_hash: st.current_pod_hash.clone(),
        weights: history
            .weights
            .get(&key)
            .map(|w| w.iter().cloned().collect())
            .unwrap_or_default(),
        runs: runs_of(r, runs)
            .iter()
            .map(|run| run_view(run, blue_green, history, false))
            .collect(),
        replica_sets: replica_sets_of(r, all_rs),
        events: history.events.get(&key).cloned().unwrap_or_default(),
        conditions: st
            .conditions
            .iter()
            .flatten()
            .map(|c| format!("{}={} ({})", c.type_, c.status, c.reason))
            .collect(),
    }
}

pub fn update(r: &Rollout, all_rs: &[Arc<ReplicaSet>], runs: &[Arc<AnalysisRun>], history: &History) -> Update {
    let st = r.status.clone().unwrap_or_default();
    let key: Key = (r.namespace().unwrap_or_default(), r.name_any());
    let blue_green = r.spec.strategy.blue_green.is_some();
    let (active, preview) = blue_green_versions(r);
    // The current version's runs only: older ones no longer change.
    let current = st.current_pod_hash.clone().unwrap_or_default();
    let runs: Vec<RunView> = runs_of(r, runs)
        .iter()
        .filter(|run| run.labels().get(REVISION_LABEL) == Some(&current))
        .map(|run| run_view(run, blue_green, history, true))
        .collect();
    Update {
        row: row(r, all_rs),
        current_step: st.current_step_index.unwrap_or(0),
        active,
        preview,
        weight: history.weights.get(&key).and_then(|w| w.back().cloned()),
        runs,
        replica_sets: replica_sets_of(r, all_rs),
        event: history.events.get(&key).and_then(|e| e.last().cloned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::analysis::{AnalysisPhase, AnalysisRunStatus, MetricResult};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn metric(extra: serde_json::Value) -> Metric {
        let mut m = json!({"name": "m", "provider": {"prometheus": {"query": "q"}}});
        if let (Some(a), Some(b)) = (m.as_object_mut(), extra.as_object()) {
            a.extend(b.clone());
        }
        serde_json::from_value(m).unwrap()
    }

    #[test]
    fn thresholds_come_from_the_range_or_a_simple_condition() {
        assert_eq!(
            bounds(&metric(json!({"thresholdRange": {"max": 0.5}}))),
            (None, Some(0.5))
        );
        assert_eq!(
            bounds(&metric(json!({"successCondition": "result < 0.05"}))),
            (None, Some(0.05))
        );
        assert_eq!(
            bounds(&metric(json!({"successCondition": "result[0] >= 0.99"}))),
            (Some(0.99), None)
        );
        assert_eq!(
            bounds(&metric(json!({"failureCondition": "result > 3"}))),
            (None, Some(3.0))
        );
        assert_eq!(
            bounds(&metric(json!({"successCondition": "result.all(x, x < 1)"}))),
            (None, None),
            "nothing to draw"
        );
    }

    fn rollout() -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": "2026-12-01T10:00:00Z"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:2"}]}},
                "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}}},
            "status": {"phase": "Paused", "step": "2/2", "canaryWeight": 10, "currentStepIndex": 1,
                "stablePodHash": "s1", "currentPodHash": "c2"}
        }))
        .unwrap()
    }

    fn rs(hash: &str, image: &str, n: i32) -> Arc<ReplicaSet> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("web-{hash}"), "namespace": "shop",
                    "labels": {ROLLOUT_LABEL: "web", HASH_LABEL: hash}},
                "spec": {"replicas": n, "selector": {}, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
                "status": {"replicas": n, "readyReplicas": n, "availableReplicas": n}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn a_row_names_both_versions_and_each_replica_set_its_role() {
        let r = rollout();
        let all = vec![rs("s1", "web:1", 4), rs("c2", "web:2", 1)];
        let row = row(&r, &all);
        assert_eq!(
            (row.weight, row.phase.as_str(), row.step.as_str()),
            (10, "Paused", "2/2")
        );
        assert_eq!(
            (row.stable_images.clone(), row.new_images.clone()),
            (vec!["web:1".to_string()], vec!["web:2".to_string()])
        );
        assert!(row.rolling);
        let roles: Vec<&str> = replica_sets_of(&r, &all).iter().map(|v| v.role).collect();
        assert!(roles.contains(&"stable") && roles.contains(&"canary"), "{roles:?}");
    }

    #[test]
    fn blue_green_shows_its_active_and_preview_versions() {
        let mut r = rollout();
        r.spec.strategy =
            serde_json::from_value(json!({"blueGreen": {"activeService": "a", "previewService": "p"}})).unwrap();
        let st = r.status.get_or_insert_default();
        st.blue_green = Some(serde_json::from_value(json!({"activeSelector": "s1", "previewSelector": "c2"})).unwrap());
        let all = vec![rs("s1", "web:1", 4), rs("c2", "web:2", 4)];
        let d = detail(&r, &all, &[], &History::default());
        assert_eq!((d.active.as_deref(), d.preview.as_deref()), (Some("s1"), Some("c2")));
        assert_eq!(d.steps.len(), crate::plan::bluegreen::STAGES);
        let roles: Vec<&str> = d.replica_sets.iter().map(|v| v.role).collect();
        assert!(roles.contains(&"active") && roles.contains(&"preview"), "{roles:?}");
    }

    #[test]
    fn an_update_carries_only_the_last_measurement_and_stays_small() {
        let r = rollout();
        let metrics: Vec<Metric> = (0..3)
            .map(|i| metric(json!({"name": format!("metric-{i}"), "successCondition": "result < 0.05"})))
            .collect();
        let measurements: Vec<Measurement> = (0..200)
            .map(|s| Measurement {
                started_at: Time(jiff::Timestamp::from_second(1_800_000_000 + s).unwrap()),
                finished_at: None,
                phase: AnalysisPhase::Successful,
                value: Some("0.01".into()),
                message: None,
                metadata: Default::default(),
                comparison: None,
            })
            .collect();
        let run: AnalysisRun = AnalysisRun {
            metadata: kube::api::ObjectMeta {
                name: Some("web-c2-1-0".into()),
                namespace: Some("shop".into()),
                labels: Some(
                    [
                        (ROLLOUT_LABEL.to_string(), "web".to_string()),
                        (REVISION_LABEL.to_string(), "c2".to_string()),
                        (STEP_LABEL.to_string(), "1".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: crate::crd::analysis::AnalysisRunSpec {
                metrics: metrics.clone(),
                ..Default::default()
            },
            status: Some(AnalysisRunStatus {
                phase: Some(AnalysisPhase::Running),
                metric_results: metrics
                    .iter()
                    .map(|m| MetricResult {
                        name: m.name.clone(),
                        phase: AnalysisPhase::Running,
                        measurements: measurements.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
        };
        let runs = vec![Arc::new(run)];
        let all = vec![rs("s1", "web:1", 4), rs("c2", "web:2", 1)];
        let history = History::default();
        let u = update(&r, &all, &runs, &history);
        assert_eq!(u.runs.len(), 1);
        assert_eq!(u.runs[0].at, "step 2");
        assert!(u.runs[0].metrics.iter().all(|m| m.points.len() == 1));
        let size = serde_json::to_string(&u).unwrap().len();
        assert!(size < 2048, "{size} bytes");
        let d = detail(&r, &all, &runs, &history);
        assert_eq!(
            d.runs[0].metrics[0].points.len(),
            200,
            "the page gets every measurement"
        );
        assert_eq!(d.runs[0].metrics[0].max, Some(0.05));
    }
}
