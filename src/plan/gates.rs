//! Webhook gates in the plan: which to call now, and what their last answers (kept in status)
//! mean for the rollout. Calling them is the shell's work; a new answer brings a new plan.

use super::{Planner, RunVerdict, since};
use crate::crd::hooks::{Webhook, WebhookRecord, WebhookType};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::time::Duration;

/// A webhook to call now, with the phase its payload reports.
#[derive(Debug, Clone, PartialEq)]
pub struct GateCall {
    pub webhook: Webhook,
    pub step: Option<i32>,
    pub phase: &'static str,
}

pub const PASSED: &str = "Passed";
pub const FAILED: &str = "Failed";

const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

pub fn interval_of(w: &Webhook) -> Duration {
    w.interval
        .as_ref()
        .and_then(|i| super::steps::parse_duration(&IntOrString::String(i.clone())).ok())
        .unwrap_or(DEFAULT_INTERVAL)
}

impl Planner<'_> {
    fn hooks(&self, kind: WebhookType) -> Vec<Webhook> {
        self.canary
            .webhooks
            .iter()
            .filter(|w| w.type_ == kind)
            .cloned()
            .collect()
    }

    /// The last answer of a gate for the current version, attempt and step.
    fn answer(&self, name: &str, step: Option<i32>) -> Option<&WebhookRecord> {
        let revision = self.st.current_pod_hash.as_deref().unwrap_or_default();
        let attempt = self.st.attempt;
        self.st
            .webhooks
            .iter()
            .find(|r| r.name == name && r.step == step && r.revision == revision && r.attempt == attempt)
    }

    fn call(&mut self, webhook: &Webhook, step: Option<i32>, phase: &'static str) {
        if !self.calls.iter().any(|c| c.webhook.name == webhook.name) {
            self.calls.push(GateCall {
                webhook: webhook.clone(),
                step,
                phase,
            });
        }
    }

    /// Calls the gate again once its interval has passed since the last answer.
    fn call_when_due(&mut self, webhook: &Webhook, step: Option<i32>, phase: &'static str, last: &WebhookRecord) {
        let left = interval_of(webhook).saturating_sub(since(self.now, &Some(last.called_at.clone())));
        if left.is_zero() {
            self.call(webhook, step, phase);
        } else {
            self.wake_in(left);
        }
    }

    /// Pre-rollout and rollout gates: every one must answer 2xx; a gate failing more often than
    /// its `failureLimit` aborts the rollout, as a failed measurement does.
    pub(super) fn check_gates(&mut self, kind: WebhookType, step: Option<i32>, what: &str) -> RunVerdict {
        let mut verdict = RunVerdict::Pass;
        for w in self.hooks(kind) {
            match self.answer(&w.name, step).cloned() {
                None => {
                    self.call(&w, step, "Progressing");
                    verdict = RunVerdict::Running(format!("{what}: calling webhook {}", w.name));
                }
                Some(a) if a.verdict == PASSED => {}
                Some(a) if a.failures > w.failure_limit.unwrap_or(0) => {
                    return RunVerdict::Abort(format!(
                        "{what}: webhook {} failed {} times ({})",
                        w.name, a.failures, a.message
                    ));
                }
                Some(a) => {
                    self.call_when_due(&w, step, "Progressing", &a);
                    verdict = RunVerdict::Running(format!(
                        "{what}: webhook {} failed ({}), {} of {} failures allowed; calling it again",
                        w.name,
                        a.message,
                        a.failures,
                        w.failure_limit.unwrap_or(0)
                    ));
                }
            }
        }
        verdict
    }

    /// Confirm-promotion gates: the rollout waits, paused, until each answers 2xx.
    pub(super) fn confirm_promotion(&mut self) -> RunVerdict {
        let mut verdict = RunVerdict::Pass;
        for w in self.hooks(WebhookType::ConfirmPromotion) {
            match self.answer(&w.name, None).cloned() {
                None => {
                    self.call(&w, None, "Promoting");
                    verdict = RunVerdict::Running(format!("asking webhook {} to confirm promotion", w.name));
                }
                Some(a) if a.verdict == PASSED => {}
                Some(a) => {
                    self.call_when_due(&w, None, "Promoting", &a);
                    verdict = RunVerdict::Hold(
                        "AwaitingPromotionConfirmation",
                        format!(
                            "waiting for webhook {} to confirm promotion ({}); `kubectl serin promote --full {}` goes on without it",
                            w.name, a.message, self.name
                        ),
                    );
                }
            }
        }
        verdict
    }

    /// Rollback gates are asked while the canary runs; a 2xx answer is a request to abort.
    pub(super) fn rollback_requested(&mut self) -> Option<String> {
        for w in self.hooks(WebhookType::Rollback) {
            match self.answer(&w.name, None).cloned() {
                None => self.call(&w, None, "Progressing"),
                Some(a) if a.verdict == PASSED => {
                    return Some(format!("webhook {} asked for a rollback", w.name));
                }
                Some(a) => self.call_when_due(&w, None, "Progressing", &a),
            }
        }
        None
    }

    /// `kubectl serin promote --full` stands in for every confirm-promotion gate's yes.
    pub(super) fn confirm_by_hand(&mut self) {
        for w in self.hooks(WebhookType::ConfirmPromotion) {
            let answer = WebhookRecord {
                name: w.name.clone(),
                type_: WebhookType::ConfirmPromotion.as_str().into(),
                revision: self.st.current_pod_hash.clone().unwrap_or_default(),
                step: None,
                attempt: self.st.attempt,
                verdict: PASSED.into(),
                failures: 0,
                message: "confirmed by `kubectl serin promote --full`".into(),
                called_at: self.now_time(),
            };
            record(&mut self.st.webhooks, answer);
        }
    }

    /// Post-rollout gates hear once how the rollout ended; their answers change nothing.
    pub(super) fn post_rollout(&mut self, succeeded: bool) {
        for w in self.hooks(WebhookType::PostRollout) {
            if self.answer(&w.name, None).is_none() {
                self.call(&w, None, if succeeded { "Succeeded" } else { "Failed" });
            }
        }
    }
}

/// A gate's answer as status keeps it: `Ok(code)` for 2xx, `Err(what)` for anything else.
/// Failures count up from the gate's last answer for the same version, attempt and step.
pub fn answer_record(
    status: &crate::crd::rollout::RolloutStatus,
    call: &GateCall,
    answer: Result<u16, String>,
    now: jiff::Timestamp,
) -> WebhookRecord {
    let revision = status.current_pod_hash.clone().unwrap_or_default();
    let w = &call.webhook;
    let previous = status
        .webhooks
        .iter()
        .find(|r| r.name == w.name && r.step == call.step && r.revision == revision && r.attempt == status.attempt)
        .filter(|r| r.verdict == FAILED)
        .map_or(0, |r| r.failures);
    let (verdict, failures, message) = match answer {
        Ok(code) => (PASSED, 0, format!("HTTP {code}")),
        Err(e) => (FAILED, previous + 1, e),
    };
    WebhookRecord {
        name: w.name.clone(),
        type_: w.type_.as_str().into(),
        revision,
        step: call.step,
        attempt: status.attempt,
        verdict: verdict.into(),
        failures,
        message,
        called_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
    }
}

/// Records a gate's answer in status, replacing its previous one for the same version and step.
pub fn record(records: &mut Vec<WebhookRecord>, answer: WebhookRecord) {
    records.retain(|r| !(r.name == answer.name && r.step == answer.step));
    records.push(answer);
}
