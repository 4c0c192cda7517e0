//! Calls the webhook gates the plan asks for, all at once, and records each answer in the
//! status about to be written; the next plan reads them.

use super::{HookError, format, post_json, resolve_url};
use crate::crd::hooks::WebhookType;
use crate::crd::rollout::{Rollout, RolloutStatus};
use crate::plan::gates::{GateCall, answer_record, record};
use crate::plan::{Decision, Severity};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use std::time::Duration;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls each gate; returns the failures worth an Event.
pub async fn call(
    client: &kube::Client,
    http: &reqwest::Client,
    rollout: &Rollout,
    calls: &[GateCall],
    status: &mut RolloutStatus,
    now: jiff::Timestamp,
) -> Vec<Decision> {
    let ns = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    let revision = status.current_pod_hash.clone().unwrap_or_default();
    let answers = futures::future::join_all(calls.iter().map(|c| {
        let (ns, name, revision) = (ns.clone(), name.clone(), revision.clone());
        async move {
            let timeout = c
                .webhook
                .timeout
                .as_ref()
                .and_then(|t| crate::plan::steps::parse_duration(&IntOrString::String(t.clone())).ok())
                .unwrap_or(DEFAULT_TIMEOUT);
            let payload = format::gate_payload(&name, &ns, c.phase, &revision, c.webhook.metadata.as_ref());
            let answer: Result<u16, HookError> = match resolve_url(client, &ns, &c.webhook.endpoint).await {
                Ok(url) => post_json(http, &url, &payload, timeout).await,
                Err(e) => Err(e),
            };
            (c, answer)
        }
    }))
    .await;
    let mut failures = Vec::new();
    for (c, answer) in answers {
        let w = &c.webhook;
        let answer = answer.map_err(|e| e.to_string());
        let failed = answer.is_err();
        let rec = answer_record(status, c, answer, now);
        tracing::info!(webhook = %w.name, kind = w.type_.as_str(), verdict = %rec.verdict, message = %rec.message, "webhook gate answered");
        // A "no" is the normal answer of rollback and confirm-promotion gates, not a failure.
        let quiet = matches!(w.type_, WebhookType::Rollback | WebhookType::ConfirmPromotion);
        if failed && !quiet {
            failures.push(Decision {
                severity: Severity::Warning,
                reason: "WebhookFailed",
                action: format!(
                    "WebhookFailed-{revision}-{}-{}-{}",
                    w.name,
                    c.step.map_or(0, |s| s + 1),
                    rec.failures
                ),
                message: format!("webhook {} ({}) failed: {}", w.name, w.type_.as_str(), rec.message),
            });
        }
        record(&mut status.webhooks, rec);
    }
    failures
}
