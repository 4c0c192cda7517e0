//! The AnalysisRun controller: takes each metric's measurements when they are due, records them,
//! and sets the run's verdict. The bookkeeping is pure (`analysis::verdict`); this only queries.

use super::measure::Measurer;
use super::{Error, events};
use crate::analysis::http::HttpClients;
use crate::analysis::job::JOB_NAME;
use crate::analysis::oauth2::Tokens;
use crate::analysis::rules::rules_for;
use crate::analysis::verdict::{self, in_progress};
use crate::crd::analysis::{AnalysisPhase, AnalysisRun, AnalysisRunSpec, AnalysisRunStatus, Metric, MetricResult};
use crate::plan::{Decision, Severity};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

pub struct RunContext {
    pub client: Client,
    pub instance: String,
    pub admin: Arc<crate::admin::Admin>,
    /// Status this process wrote that the cache does not show yet: a measurement is never taken
    /// again from the copy before it.
    pub written: Arc<super::own_writes::OwnWrites<AnalysisRun>>,
    /// Clients for the measurements' requests, shared by TLS setting.
    pub http: HttpClients,
    /// OAuth2 tokens, kept until they expire.
    pub tokens: Tokens,
    pub settings: super::AnalysisSettings,
    /// Every run, to carry a comparison's evidence from one step's run to the next.
    pub runs: reflector::Store<AnalysisRun>,
}

pub async fn run(
    client: Client,
    namespace: Option<String>,
    instance: String,
    admin: Arc<crate::admin::Admin>,
    config: kube::runtime::controller::Config,
    shard: crate::shard::Shard,
    settings: super::AnalysisSettings,
) {
    let runs: Api<AnalysisRun> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Its cache keeps runs lean too: no managed fields, no last-applied copy.
    let (reader, writer) = reflector::store();
    let ctx = Arc::new(RunContext {
        runs: reader.clone(),
        written: Default::default(),
        http: Default::default(),
        tokens: Default::default(),
        settings,
        client,
        instance,
        admin,
    });
    let activations = ctx.admin.gate.activations();
    // A run made for a Rollout goes with it; one made by hand is sharded by its own name.
    let labelled = super::managed_by::<AnalysisRun>(shard);
    let mine = move |run: &AnalysisRun| match run.labels().get(super::ROLLOUT_LABEL) {
        Some(_) => labelled(run),
        None => shard.owns(&run.namespace().unwrap_or_default(), &run.name_any()),
    };
    let stream = super::own_writes::forget_seen(
        super::only_mine(watcher(runs, watcher::Config::default()).default_backoff(), mine)
            .modify(super::lean)
            .modify(settled)
            .reflect(writer),
        ctx.written.clone(),
    )
    .touched_objects();
    Controller::for_stream(stream, reader)
        .with_config(config)
        .reconcile_all_on(activations)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "analysis run reconcile failed");
            }
        })
        .await;
}

fn error_policy(_run: Arc<AnalysisRun>, error: &Error, _ctx: Arc<RunContext>) -> Action {
    match error.label() {
        "conflict" => Action::requeue(Duration::from_millis(200)),
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

async fn reconcile(run: Arc<AnalysisRun>, ctx: Arc<RunContext>) -> Result<Action, Error> {
    if !ctx.admin.gate.may_act() {
        return Ok(Action::await_change());
    }
    let label = |key: &str| run.labels().get(key).cloned().unwrap_or_default();
    let span = tracing::info_span!(
        "analysis_run",
        namespace = run.namespace().unwrap_or_default(),
        rollout = label(super::ROLLOUT_LABEL),
        revision = label(super::observe::REVISION_LABEL),
        run = run.name_any(),
    );
    super::guarded(reconcile_run(run, ctx).instrument(span)).await
}

async fn reconcile_run(run: Arc<AnalysisRun>, ctx: Arc<RunContext>) -> Result<Action, Error> {
    let run = ctx.written.freshest(run);
    let ns = run.namespace().ok_or(Error::MissingField(".metadata.namespace"))?;
    let name = run.name_any();
    let mut status = run.status.clone().unwrap_or_default();
    let before = status.clone();
    if let Some(phase) = status.phase.filter(|p| p.is_finished()) {
        return expire(&ctx, &run, phase).await;
    }
    let now = jiff::Timestamp::now();
    let mut decisions = Vec::new();
    if run.spec.terminate == Some(true) {
        stop_jobs(&ctx, &ns, &mut status).await;
        let phase = verdict::stopped_phase(&status.metric_results);
        status.phase = Some(phase);
        status.message = Some(match phase {
            AnalysisPhase::Inconclusive => {
                "stopped: the rollout moved on while a measurement was under way".to_string()
            }
            _ => format!(
                "stopped: the rollout moved on; {}",
                summary(&status.metric_results, phase)
            ),
        });
    } else {
        if status.started_at.is_none() {
            status.started_at = Some(Time(now));
            status.phase = Some(AnalysisPhase::Running);
        }
        decisions = measure_due(&ctx, &run, &ns, &mut status, now).await;
        let phase = verdict::run_phase(&status.metric_results, run.spec.metrics.len());
        status.phase = Some(phase);
        status.message = Some(summary(&status.metric_results, phase));
        status.dry_run_summary = verdict::dry_run_summary(&status.metric_results);
        if phase.is_finished() {
            // The run is decided: measurements still going (a Job) are not needed any more.
            stop_jobs(&ctx, &ns, &mut status).await;
        }
    }
    if status.phase.is_some_and(|p| p.is_finished()) && status.completed_at.is_none() {
        status.completed_at = Some(Time(jiff::Timestamp::now()));
    }
    for d in &decisions {
        if let Err(e) = events::record(&ctx.client, run.as_ref(), &ctx.instance, d).await {
            tracing::warn!(error = %e, "could not record an Event");
        }
    }
    if status != before {
        let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
        let mut next = (*run).clone();
        next.status = Some(status.clone());
        next.metadata.managed_fields = None;
        let mut written = api.replace_status(&name, &PostParams::default(), &next).await?;
        super::lean(&mut written);
        ctx.written.remember(run.metadata.resource_version.clone(), written);
    }
    if let Some(phase) = status.phase.filter(|p| p.is_finished()) {
        let mut ended = (*run).clone();
        ended.status = Some(status);
        return expire(&ctx, &ended, phase).await;
    }
    let wait = verdict::wait(&scheduled(&run.spec), &status, jiff::Timestamp::now()).unwrap_or(Duration::from_secs(5));
    Ok(Action::requeue(wait.max(Duration::from_millis(100))))
}

/// A finished run, as the cache keeps it: only what its expiry and later runs' evidence read. Its
/// queries, arguments and measurements are never used again, and a Rollout's history of finished
/// runs would otherwise be most of this controller's memory.
fn settled(run: &mut AnalysisRun) {
    let Some(status) = run.status.as_mut().filter(|s| s.phase.is_some_and(|p| p.is_finished())) else {
        return;
    };
    run.spec.metrics = Vec::new();
    run.spec.args = Vec::new();
    run.spec.dry_run = Vec::new();
    run.spec.measurement_retention = Vec::new();
    for r in &mut status.metric_results {
        // The last one says when the run ended, where `completedAt` is missing.
        let last = r.measurements.pop();
        r.measurements = last.into_iter().collect();
        r.message = None;
    }
    status.dry_run_summary = None;
}

/// A finished run with a `ttlStrategy` is deleted once its time is up (runs made for a Rollout
/// follow the Rollout's history instead).
async fn expire(ctx: &RunContext, run: &AnalysisRun, phase: AnalysisPhase) -> Result<Action, Error> {
    let Some(keep) = run.spec.ttl_strategy.as_ref().and_then(|t| t.keep_for(phase)) else {
        return Ok(Action::await_change());
    };
    // A run that ended before `completedAt` was written: its last measurement, else its making.
    let status = run.status.clone().unwrap_or_default();
    let last_measured = status
        .metric_results
        .iter()
        .filter_map(|r| r.measurements.last()?.finished_at.as_ref().map(|t| t.0))
        .max();
    let ended = status
        .completed_at
        .map(|t| t.0)
        .or(last_measured)
        .or(run.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or_else(jiff::Timestamp::now);
    let kept = jiff::Timestamp::now().duration_since(ended).unsigned_abs();
    if kept < keep {
        return Ok(Action::requeue((keep - kept).max(Duration::from_millis(100))));
    }
    let ns = run.namespace().ok_or(Error::MissingField(".metadata.namespace"))?;
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
    match api
        .delete(&run.name_any(), &kube::api::DeleteParams::background())
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// The run's spec as its schedule and verdicts read it: a run written by hand may give
/// `interval`, `initialDelay` or a count or limit as `{{args.NAME}}`, which the Rollout
/// controller fills in for the runs it makes.
fn scheduled(spec: &AnalysisRunSpec) -> std::borrow::Cow<'_, AnalysisRunSpec> {
    use crate::analysis::args::{Partial, substitute_plain};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    fn fields(m: &mut Metric) -> [&mut Option<IntOrString>; 8] {
        [
            &mut m.interval,
            &mut m.initial_delay,
            &mut m.count,
            &mut m.failure_limit,
            &mut m.inconclusive_limit,
            &mut m.consecutive_error_limit,
            &mut m.consecutive_no_data_limit,
            &mut m.consecutive_success_limit,
        ]
    }
    let templated = |v: &Option<IntOrString>| matches!(v, Some(IntOrString::String(s)) if s.contains("{{"));
    let mut out = spec.clone();
    if !out.metrics.iter_mut().any(|m| fields(m).iter().any(|v| templated(v))) {
        return std::borrow::Cow::Borrowed(spec);
    }
    let values = spec
        .args
        .iter()
        .filter_map(|a| Some((a.name.clone(), a.value.clone()?)))
        .collect();
    let later = spec
        .args
        .iter()
        .filter(|a| a.value.is_none())
        .map(|a| a.name.clone())
        .collect();
    let args = Partial {
        values: &values,
        later: &later,
    };
    for m in &mut out.metrics {
        for v in fields(m) {
            if let Some(IntOrString::String(s)) = v
                && let Ok(filled) = substitute_plain(s, &args)
            {
                *s = filled;
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Takes the measurements due at `now` and records them; the metrics' verdicts come back as the
/// Events they are worth.
async fn measure_due(
    ctx: &RunContext,
    run: &AnalysisRun,
    ns: &str,
    status: &mut AnalysisRunStatus,
    now: jiff::Timestamp,
) -> Vec<Decision> {
    let carried = carried_evidence(&ctx.runs, run, status);
    let measurer = Measurer {
        carried: &carried,
        client: &ctx.client,
        http: &ctx.http,
        tokens: &ctx.tokens,
        access: ctx.settings.secret_access,
        default_prometheus: ctx.settings.prometheus_address.as_deref(),
        run,
        namespace: ns,
    };
    let mut decisions = Vec::new();
    let spec = scheduled(&run.spec);
    for i in verdict::due(&spec, status, now) {
        let metric = &spec.metrics[i];
        let started = jiff::Timestamp::now();
        let previous = status.metric_results.iter().find(|r| r.name == metric.name);
        let taken = measurer.measure(metric, previous).await;
        let took = jiff::Timestamp::now().duration_since(started).as_secs_f64();
        ctx.admin.metrics.measurement_took(took.max(0.0));
        if let Some(v) = taken.number
            && let Some(rollout) = run.labels().get(super::ROLLOUT_LABEL)
        {
            let range = metric.threshold_range.as_ref();
            ctx.admin.metrics.measured(
                ns,
                rollout,
                &metric.name,
                v,
                range.and_then(|r| r.min),
                range.and_then(|r| r.max),
            );
        }
        let finished = jiff::Timestamp::now();
        let idx = match status.metric_results.iter().position(|r| r.name == metric.name) {
            Some(i) => i,
            None => {
                status.metric_results.push(MetricResult {
                    name: metric.name.clone(),
                    phase: AnalysisPhase::Running,
                    ..Default::default()
                });
                status.metric_results.len() - 1
            }
        };
        let result = &mut status.metric_results[idx];
        let was = result.phase;
        let rules = rules_for(&run.spec, &metric.name);
        verdict::record(result, metric, rules, started, finished, taken.outcome);
        if let Some(c) = result.measurements.last().and_then(|m| m.comparison.as_ref())
            && let Some(rollout) = run.labels().get(super::ROLLOUT_LABEL)
        {
            let value = c.burn_rate_long.or(c.ratio);
            if c.e_value.is_some() {
                ctx.admin
                    .metrics
                    .compared(ns, rollout, &metric.name, c.e_value, c.ratio);
            } else if let Some(v) = value {
                ctx.admin.metrics.measured(ns, rollout, &metric.name, v, None, None);
            }
        }
        if result.phase != was && result.phase.is_finished() {
            decisions.push(metric_decision(&metric.name, result, rules.dry_run));
        }
    }
    decisions
}

/// For the run's `compare` and `sloBurnRate` metrics that have no evidence of their own yet, the
/// latest evidence an earlier step's run of the same Rollout, version and attempt left: one
/// e-process per metric per version, so the false-rollback bound holds over the whole release.
fn carried_evidence(
    runs: &reflector::Store<AnalysisRun>,
    run: &AnalysisRun,
    status: &AnalysisRunStatus,
) -> std::collections::BTreeMap<String, crate::crd::analysis::EvidenceState> {
    use super::observe::{ATTEMPT_LABEL, REVISION_LABEL, STEP_LABEL};
    let wanted: Vec<&str> = run
        .spec
        .metrics
        .iter()
        .filter(|m| m.provider.compare.is_some() || m.provider.slo_burn_rate.is_some())
        .map(|m| m.name.as_str())
        .filter(|name| {
            !status
                .metric_results
                .iter()
                .any(|r| r.name == *name && r.evidence.is_some())
        })
        .collect();
    let mut out = std::collections::BTreeMap::new();
    let key =
        |r: &AnalysisRun| [super::ROLLOUT_LABEL, REVISION_LABEL, ATTEMPT_LABEL].map(|k| r.labels().get(k).cloned());
    let mine = key(run);
    // The step runs of a version share one e-process; a background run, measuring alongside
    // them, keeps its own (two at once would each count the same requests).
    let background = |r: &AnalysisRun| r.labels().get(STEP_LABEL).is_none_or(|s| s == "bg");
    if wanted.is_empty() || mine[0].is_none() || mine[1].is_none() || background(run) {
        return out;
    }
    for other in runs.state() {
        let unrelated = other.namespace() != run.namespace() || other.name_any() == run.name_any();
        if unrelated || key(&other) != mine || background(&other) {
            continue;
        }
        for r in other.status.iter().flat_map(|s| s.metric_results.iter()) {
            let Some(e) = r.evidence.as_ref().filter(|_| wanted.contains(&r.name.as_str())) else {
                continue;
            };
            let newer = out
                .get(&r.name)
                .is_none_or(|kept: &crate::crd::analysis::EvidenceState| kept.read_at.0 < e.read_at.0);
            if newer {
                out.insert(r.name.clone(), e.clone());
            }
        }
    }
    out
}

/// The Event a metric's verdict is worth.
fn metric_decision(name: &str, result: &MetricResult, dry_run: bool) -> Decision {
    let dry = if dry_run { " (dry run: it does not decide)" } else { "" };
    Decision {
        severity: if result.phase == AnalysisPhase::Successful || dry_run {
            Severity::Normal
        } else {
            Severity::Warning
        },
        reason: match result.phase {
            AnalysisPhase::Successful => "MetricSuccessful",
            AnalysisPhase::Failed => "MetricFailed",
            AnalysisPhase::Inconclusive => "MetricInconclusive",
            _ => "MetricError",
        },
        action: format!("Measure-{name}"),
        message: format!("metric {name}{dry}: {}", result.message.clone().unwrap_or_default()),
    }
}

/// Jobs of measurements in progress are deleted, and their measurements end inconclusive.
async fn stop_jobs(ctx: &RunContext, ns: &str, status: &mut AnalysisRunStatus) {
    for result in &mut status.metric_results {
        if !in_progress(result) {
            continue;
        }
        let Some(m) = result.measurements.last_mut() else {
            continue;
        };
        if let Some(job) = m.metadata.get(JOB_NAME)
            && let Err(e) = crate::analysis::job::stop(&ctx.client, ns, job).await
        {
            tracing::warn!(error = %e, job = %job, "could not delete an analysis Job");
        }
        m.phase = AnalysisPhase::Inconclusive;
        m.finished_at = Some(Time(jiff::Timestamp::now()));
        m.message = Some("stopped before it finished: the run ended".into());
        result.message = m.message.clone();
    }
}

/// `error-rate: 0.012 (Successful); latency: waiting for data (Running)`.
pub fn summary(results: &[MetricResult], phase: AnalysisPhase) -> String {
    let parts: Vec<String> = results
        .iter()
        .map(|r| {
            let last = r.measurements.last();
            let value = match last {
                Some(m) if m.phase == AnalysisPhase::NoData && r.phase == AnalysisPhase::Running => {
                    "waiting for data".to_string()
                }
                // Decided by no data: what was asked and how often, so the Rollout's message says.
                Some(m) if m.phase == AnalysisPhase::NoData => {
                    r.message.clone().or(m.message.clone()).unwrap_or_default()
                }
                // A comparison that decided says on what evidence.
                Some(m) if m.comparison.is_some() && r.phase.is_finished() => m.message.clone().unwrap_or_default(),
                Some(m) => m.value.clone().or(m.message.clone()).unwrap_or_default(),
                None => String::new(),
            };
            let dry = if r.dry_run == Some(true) { ", dry run" } else { "" };
            format!("{}: {value} ({}{dry})", r.name, r.phase.as_str())
        })
        .collect();
    if parts.is_empty() {
        phase.as_str().to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_names_the_query_that_found_nothing() {
        use crate::analysis::verdict::{Outcome, Rules, record};
        use crate::crd::analysis::Metric;
        let m = Metric {
            name: "latency".into(),
            consecutive_no_data_limit: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0)),
            ..Default::default()
        };
        let mut r = MetricResult {
            name: "latency".into(),
            ..Default::default()
        };
        let t = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        record(
            &mut r,
            &m,
            Rules::default(),
            t,
            t,
            Outcome::NoData {
                what: "query `sum(slow)`".into(),
            },
        );
        let s = summary(&[r], AnalysisPhase::Inconclusive);
        assert!(
            s.starts_with("latency: no data once (consecutiveNoDataLimit 0") && s.contains("sum(slow)"),
            "{s}"
        );
    }

    #[test]
    fn a_hand_written_schedule_takes_its_arguments() {
        let spec: AnalysisRunSpec = serde_json::from_value(serde_json::json!({
            "args": [{"name": "every", "value": "7s"}, {"name": "wait", "value": "2s"}],
            "metrics": [{"name": "m", "interval": "{{args.every}}", "initialDelay": "{{ args.wait }}",
                         "successCondition": "result < 1",
                         "provider": {"prometheus": {"address": "http://p", "query": "up"}}}]
        }))
        .unwrap();
        let s = scheduled(&spec);
        let m = &s.metrics[0];
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        assert_eq!(m.interval, Some(IntOrString::String("7s".into())));
        assert_eq!(m.initial_delay, Some(IntOrString::String("2s".into())));
        let plain = AnalysisRunSpec::default();
        assert!(matches!(scheduled(&plain), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn a_finished_run_is_cached_with_what_its_expiry_and_evidence_read_a_running_one_whole() {
        let run = |phase: &str| -> AnalysisRun {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisRun",
                "metadata": {"name": "web-1", "namespace": "default", "labels": {"serin.dev/rollout": "web"}},
                "spec": {"args": [{"name": "hash", "value": "abc"}], "ttlStrategy": {"secondsAfterCompletion": 60},
                         "metrics": [{"name": "errors", "provider": {"prometheus": {"query": "sum(rate(x[1m]))"}}}]},
                "status": {"phase": phase, "metricResults": [{"name": "errors", "phase": phase, "count": 3,
                    "measurements": [{"phase": "Successful", "value": "0.1", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:00Z"},
                                     {"phase": phase, "value": "0.2", "startedAt": "2026-01-01T00:01:00Z", "finishedAt": "2026-01-01T00:01:00Z"}],
                    "evidence": {"reading": [], "counted": [], "since": "2026-01-01T00:00:00Z", "readAt": "2026-01-01T00:01:00Z"}}]}
            }))
            .unwrap()
        };
        let mut running = run("Running");
        settled(&mut running);
        assert_eq!(running, run("Running"), "a running run is measured from its cache");
        let mut done = run("Failed");
        settled(&mut done);
        assert!(done.spec.metrics.is_empty() && done.spec.args.is_empty());
        assert!(done.spec.ttl_strategy.is_some(), "its expiry reads it");
        let r = &done.status.as_ref().unwrap().metric_results[0];
        assert_eq!(r.measurements.len(), 1);
        assert_eq!(
            r.measurements[0].value.as_deref(),
            Some("0.2"),
            "the last says when it ended"
        );
        assert!(r.evidence.is_some(), "the next step's run carries it on");
        assert_eq!((r.count, r.phase), (3, AnalysisPhase::Failed));
    }
}
