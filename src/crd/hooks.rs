//! What a Rollout tells the outside world and asks of it: notifications (Slack, Teams, a JSON
//! webhook) on what happens, and webhook gates that can hold, fail or roll back a rollout.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A URL given in place, or kept in a Secret (webhook URLs are credentials).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = kube::core::Rule::new("has(self.url) != has(self.urlFrom)").message("exactly one of url and urlFrom must be set"))]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_from: Option<UrlFrom>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UrlFrom {
    /// A key of a Secret in the Rollout's namespace (the controller's, for default targets).
    pub secret_key_ref: crate::crd::analysis::SecretKeyRef,
}

/// What happened to a rollout, as notifications name it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum NotificationEvent {
    StepCompleted,
    Paused,
    AnalysisFailed,
    Aborted,
    Promoted,
}

impl NotificationEvent {
    pub const ALL: [NotificationEvent; 5] = [
        NotificationEvent::StepCompleted,
        NotificationEvent::Paused,
        NotificationEvent::AnalysisFailed,
        NotificationEvent::Aborted,
        NotificationEvent::Promoted,
    ];

    /// The event a decision of the plan is, by its reason.
    pub fn of_reason(reason: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == reason)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::StepCompleted => "StepCompleted",
            NotificationEvent::Paused => "Paused",
            NotificationEvent::AnalysisFailed => "AnalysisFailed",
            NotificationEvent::Aborted => "Aborted",
            NotificationEvent::Promoted => "Promoted",
        }
    }
}

/// The message format a target speaks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    /// A JSON object with the rollout, the event and its message.
    #[default]
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams channel workflow (Adaptive Card).
    Teams,
}

impl TargetType {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Webhook => "webhook",
            TargetType::Slack => "slack",
            TargetType::Teams => "teams",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationTarget {
    /// Names the target in Events and metrics.
    pub name: String,
    #[serde(rename = "type")]
    pub type_: TargetType,
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// The events to send; all of them when omitted. (Not `on`: YAML 1.1 reads that key as `true`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<NotificationEvent>>,
    /// Slack only: post to this channel instead of the webhook's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl NotificationTarget {
    pub fn wants(&self, event: NotificationEvent) -> bool {
        self.events.as_ref().is_none_or(|e| e.contains(&event))
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<NotificationTarget>,
    /// Also send to the controller's default targets (ConfigMap `serin-notifications`); defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_defaults: Option<bool>,
}

/// When a webhook gate is called, and what its answer does (Flagger's webhook types).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum WebhookType {
    /// Before the first step of a new version; a failure counts like a failed measurement.
    #[serde(rename = "pre-rollout")]
    PreRollout,
    /// At every step, before it completes; a failure counts like a failed measurement.
    #[default]
    #[serde(rename = "rollout")]
    Rollout,
    /// Before promotion: the rollout waits until it answers 2xx.
    #[serde(rename = "confirm-promotion")]
    ConfirmPromotion,
    /// Once after promotion or abort; its answer changes nothing.
    #[serde(rename = "post-rollout")]
    PostRollout,
    /// Asked while the canary runs: a 2xx answer aborts the rollout.
    #[serde(rename = "rollback")]
    Rollback,
}

impl WebhookType {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookType::PreRollout => "pre-rollout",
            WebhookType::Rollout => "rollout",
            WebhookType::ConfirmPromotion => "confirm-promotion",
            WebhookType::PostRollout => "post-rollout",
            WebhookType::Rollback => "rollback",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Unique among the Rollout's webhooks; names the gate in status and Events.
    pub name: String,
    #[serde(rename = "type")]
    pub type_: WebhookType,
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// How long one call may take (`10s` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Time between calls while a gate fails, waits or is polled (`10s` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Failed calls allowed before a pre-rollout or rollout gate aborts the rollout; defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failure_limit: Option<i32>,
    /// Sent as `metadata` in the payload (a load tester's `cmd`, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// A webhook gate's last answer for the current version, as status keeps it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    /// The version it was called for.
    pub revision: String,
    /// The step it was called at (rollout gates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    /// The attempt (retry) of the version it was called for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// `Passed` (2xx) or `Failed`.
    pub verdict: String,
    /// Calls that failed in a row.
    #[serde(default)]
    pub failures: i32,
    /// What the last answer was: `HTTP 200`, `HTTP 503: busy`, `timed out after 10s`.
    pub message: String,
    pub called_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}
