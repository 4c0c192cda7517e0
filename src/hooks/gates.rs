//! Calls the webhook gates the plan asks for, all at once, and records each answer in the
//! status about to be written; the next plan reads them.

use super::{HookError, format, post_json, resolve_url};
use crate::crd::hooks::WebhookRecord;
use crate::crd::hooks::WebhookType;
use crate::crd::rollout::{Rollout, RolloutStatus};
use crate::plan::gates::{GateCall, answer_record, record};
use crate::plan::{Decision, Severity};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls each gate; returns the failures worth an Event.
/// Each answer is also remembered in `recent` until the cache has it.
pub async fn call(
    client: &kube::Client,
    http: &reqwest::Client,
    rollout: &Rollout,
    calls: &[GateCall],
    status: &mut RolloutStatus,
    now: jiff::Timestamp,
    recent: &RecentAnswers,
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
        recent.remember(&ns, &name, &rec);
        record(&mut status.webhooks, rec);
    }
    failures
}

/// Gate answers not yet seen in the Rollout cache. A reconcile may run on a copy read before the
/// last status write came back; without these it would call the same gate a second time.
#[derive(Default)]
pub struct RecentAnswers {
    by_rollout: Mutex<HashMap<(String, String), Vec<WebhookRecord>>>,
}

impl RecentAnswers {
    fn remember(&self, ns: &str, name: &str, answer: &WebhookRecord) {
        let mut map = self.by_rollout.lock().unwrap_or_else(|e| e.into_inner());
        let answers = map.entry((ns.to_string(), name.to_string())).or_default();
        answers.retain(|a| !(a.name == answer.name && a.step == answer.step));
        answers.push(answer.clone());
    }

    /// The Rollout with the answers its cached copy lacks, or None when it has them all.
    pub fn overlay(&self, rollout: &Rollout) -> Option<Rollout> {
        let key = (rollout.namespace().unwrap_or_default(), rollout.name_any());
        let mut map = self.by_rollout.lock().unwrap_or_else(|e| e.into_inner());
        let answers = map.get_mut(&key)?;
        let seen = rollout
            .status
            .as_ref()
            .map(|s| s.webhooks.as_slice())
            .unwrap_or_default();
        // Status keeps whole seconds.
        answers.retain(|a| {
            !seen.iter().any(|r| {
                r.name == a.name
                    && r.step == a.step
                    && r.revision == a.revision
                    && r.attempt == a.attempt
                    && r.called_at.0.as_second() >= a.called_at.0.as_second()
            })
        });
        if answers.is_empty() {
            map.remove(&key);
            return None;
        }
        let mut view = rollout.clone();
        let status = view.status.get_or_insert_default();
        for a in answers.iter() {
            record(&mut status.webhooks, a.clone());
        }
        Some(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::hooks::WebhookRecord;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn answer(name: &str, at: i64) -> WebhookRecord {
        WebhookRecord {
            name: name.into(),
            type_: "rollout".into(),
            revision: "v2".into(),
            step: Some(0),
            attempt: None,
            verdict: "Passed".into(),
            failures: 0,
            message: "HTTP 200".into(),
            called_at: Time(jiff::Timestamp::from_second(at).unwrap()),
        }
    }

    #[test]
    fn a_stale_copy_sees_the_answers_it_lacks_until_it_catches_up() {
        let recent = RecentAnswers::default();
        let mut rollout: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {}, "strategy": {"canary": {}}}
        }))
        .unwrap();
        assert!(recent.overlay(&rollout).is_none());
        recent.remember("shop", "web", &answer("load", 100));
        let view = recent.overlay(&rollout).expect("the answer is overlaid");
        assert_eq!(view.status.unwrap().webhooks, vec![answer("load", 100)]);
        // The cache catches up: nothing to add, and nothing kept.
        rollout
            .status
            .get_or_insert_default()
            .webhooks
            .push(answer("load", 100));
        assert!(recent.overlay(&rollout).is_none());
        assert!(recent.by_rollout.lock().unwrap().is_empty());
    }
}
