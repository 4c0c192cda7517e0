//! The AnalysisRun controller: takes each metric's measurements when they are due, records them,
//! and sets the run's verdict. The bookkeeping is pure (`analysis::verdict`); this only queries.

use super::secrets::secret_value;
use super::{Error, events};
use crate::analysis::condition::judge;
use crate::analysis::prometheus::{DEFAULT_TIMEOUT, HttpClients, Prometheus};
use crate::analysis::provider::{Credentials, MetricProvider};
use crate::analysis::verdict::{self, Outcome};
use crate::crd::analysis::{AnalysisPhase, AnalysisRun, Metric, MetricResult};
use crate::plan::steps::parse_duration;
use crate::plan::{Decision, Severity};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
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
    pub written: super::own_writes::OwnWrites<AnalysisRun>,
    /// Clients for the measurements' queries, shared by TLS setting.
    pub http: HttpClients,
}

pub async fn run(
    client: Client,
    namespace: Option<String>,
    instance: String,
    admin: Arc<crate::admin::Admin>,
    config: kube::runtime::controller::Config,
) {
    let runs: Api<AnalysisRun> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let ctx = Arc::new(RunContext {
        written: Default::default(),
        http: Default::default(),
        client,
        instance,
        admin,
    });
    let activations = ctx.admin.gate.activations();
    // Its cache keeps runs lean too: no managed fields, no last-applied copy.
    let (reader, writer) = reflector::store();
    let stream = watcher(runs, watcher::Config::default())
        .default_backoff()
        .modify(super::lean)
        .reflect(writer)
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

/// One measurement of one metric: read credentials, query, judge. Errors become an Error outcome.
async fn measure(client: &Client, http: &HttpClients, ns: &str, metric: &Metric) -> Outcome {
    let Some(prom) = &metric.provider.prometheus else {
        return Outcome::Error("the metric has no provider".into());
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut creds = Credentials::default();
    if let Some(auth) = &prom.authentication {
        if let Some(token) = &auth.bearer_token {
            match secret_value(&secrets, token).await {
                Ok(v) => creds.bearer_token = Some(v),
                Err(e) => return Outcome::Error(format!("bearer token: {e}")),
            }
        }
        if let Some(basic) = &auth.basic {
            match (
                secret_value(&secrets, &basic.username).await,
                secret_value(&secrets, &basic.password).await,
            ) {
                (Ok(u), Ok(p)) => creds.basic = Some((u, p)),
                (Err(e), _) | (_, Err(e)) => return Outcome::Error(format!("basic auth: {e}")),
            }
        }
    }
    if let Some(ca) = prom.tls.as_ref().and_then(|t| t.ca.as_ref()) {
        match secret_value(&secrets, ca).await {
            Ok(v) => creds.ca_pem = Some(v.into_bytes()),
            Err(e) => return Outcome::Error(format!("tls.ca: {e}")),
        }
    }
    let timeout = prom
        .timeout
        .as_ref()
        .and_then(|t| parse_duration(t).ok())
        .unwrap_or(DEFAULT_TIMEOUT);
    let provider = match Prometheus::new(prom, &creds, timeout, http) {
        Ok(p) => p,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    match provider.measure(&prom.query).await {
        Ok(result) => match judge(metric, &result) {
            Ok((phase, reason)) => Outcome::Judged { result, phase, reason },
            Err(e) => Outcome::Error(e.to_string()),
        },
        Err(e) => Outcome::Error(e.to_string()),
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
    reconcile_run(run, ctx).instrument(span).await
}

async fn reconcile_run(run: Arc<AnalysisRun>, ctx: Arc<RunContext>) -> Result<Action, Error> {
    let run = ctx.written.freshest(run);
    let ns = run.namespace().ok_or(Error::MissingField(".metadata.namespace"))?;
    let name = run.name_any();
    let mut status = run.status.clone().unwrap_or_default();
    let before = status.clone();
    if status.phase.is_some_and(|p| p.is_finished()) {
        return Ok(Action::await_change());
    }
    let now = jiff::Timestamp::now();
    let mut decisions = Vec::new();
    let background = run.spec.background == Some(true);
    if run.spec.terminate == Some(true) {
        status.phase = Some(AnalysisPhase::Successful);
        status.message = Some("stopped: the rollout moved on".into());
    } else {
        if status.started_at.is_none() {
            status.started_at = Some(Time(now));
            status.phase = Some(AnalysisPhase::Running);
        }
        for i in verdict::due(&run.spec, &status, now) {
            let metric = &run.spec.metrics[i];
            let started = jiff::Timestamp::now();
            let outcome = measure(&ctx.client, &ctx.http, &ns, metric).await;
            if let Outcome::Judged {
                result: crate::analysis::condition::QueryResult::Scalar(v),
                ..
            } = &outcome
                && let Some(rollout) = run.labels().get(super::ROLLOUT_LABEL)
            {
                let range = metric.threshold_range.as_ref();
                ctx.admin.metrics.measured(
                    &ns,
                    rollout,
                    &metric.name,
                    *v,
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
            verdict::record(result, metric, background, started, finished, outcome);
            if result.phase != was && result.phase.is_finished() {
                decisions.push(Decision {
                    severity: if result.phase == AnalysisPhase::Successful {
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
                    action: format!("Measure-{}", metric.name),
                    message: format!("metric {}: {}", metric.name, result.message.clone().unwrap_or_default()),
                });
            }
        }
        let phase = verdict::run_phase(&status.metric_results, run.spec.metrics.len());
        status.phase = Some(phase);
        status.message = Some(summary(&status.metric_results, phase));
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
    if status.phase.is_some_and(|p| p.is_finished()) {
        return Ok(Action::await_change());
    }
    let wait = verdict::wait(&run.spec, &status, jiff::Timestamp::now()).unwrap_or(Duration::from_secs(5));
    Ok(Action::requeue(wait.max(Duration::from_millis(100))))
}

/// `error-rate: 0.012 (Successful); latency: no data (Inconclusive)`.
pub fn summary(results: &[MetricResult], phase: AnalysisPhase) -> String {
    let parts: Vec<String> = results
        .iter()
        .map(|r| {
            let value = r
                .measurements
                .last()
                .and_then(|m| m.value.clone().or(m.message.clone()))
                .unwrap_or_default();
            format!("{}: {value} ({})", r.name, r.phase.as_str())
        })
        .collect();
    if parts.is_empty() {
        phase.as_str().to_string()
    } else {
        parts.join("; ")
    }
}
