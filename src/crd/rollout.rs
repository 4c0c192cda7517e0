//! The `Rollout` custom resource (`serin.dev/v1alpha1`): field names follow Argo Rollouts where
//! the idea is the same, so its users can move over with few edits.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pod template kept open in the schema: the API server checks it when the ReplicaSet is made,
/// and a full copy of the Pod schema would make the CRD too large for client-side `kubectl apply`.
fn open_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
    })
}

/// Rollout runs a new version next to the stable one and moves traffic to it in steps.
// Each `printcolumn(...)` repeats `type_`; clippy reads that as a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    status = "RolloutStatus",
    shortname = "sro",
    category = "all",
    derive = "PartialEq",
    doc = "A progressive rollout: a new version receives traffic in steps, checked at each one.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Pods the user asked for"
    ),
    printcolumn(
        name = "Current",
        type_ = "integer",
        json_path = ".status.replicas",
        description = "Pods that exist"
    ),
    printcolumn(
        name = "Up-to-date",
        type_ = "integer",
        json_path = ".status.updatedReplicas",
        description = "Pods of the newest version"
    ),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas",
        description = "Pods ready to serve"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Progressing, Paused, Healthy or Degraded"
    ),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.canaryWeight",
        description = "Traffic on the new version, in percent"
    ),
    printcolumn(
        name = "Step",
        type_ = "string",
        json_path = ".status.step",
        description = "Current step of all steps"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = kube::core::Rule::new("has(self.template) != has(self.workloadRef)").message("exactly one of template and workloadRef must be set"))]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Pods to run; defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Selects the Pods of this Rollout; must match the template's labels. With `workloadRef` it
    /// may be left out: the Deployment's is used.
    #[serde(default)]
    pub selector: LabelSelector,
    /// The Pod template of the version to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub template: Option<super::template::PodTemplate>,
    /// An existing Deployment whose template to use instead of `template`; Serin scales it to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<WorkloadRef>,
    /// Seconds a Pod must be Ready before it counts as available (and a step may go on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: Option<i32>,
    /// Old ReplicaSets kept, scaled to 0, for going back; defaults to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: Option<i32>,
    /// Seconds a rollout may go without progress before it is Degraded; defaults to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: Option<i32>,
    /// Abort (back to stable) when the progress deadline passes, instead of only reporting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_abort: Option<bool>,
    /// Holds the rollout where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Pods created before this time are restarted, one at a time within `maxUnavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_at: Option<Time>,
    pub strategy: RolloutStrategy,
    /// Who hears about steps, pauses, failed analyses, aborts and promotions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<super::hooks::Notifications>,
    /// Going back to one of the last `revisions` stable versions skips the steps and analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_window: Option<RollbackWindow>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackWindow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub revisions: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// What becomes of the Deployment's own Pods: left alone (`never`, the default), scaled to 0
    /// once the Rollout is healthy (`onsuccess`), or scaled down as the Rollout's Pods become
    /// available (`progressively`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<WorkloadScaleDown>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadScaleDown {
    #[default]
    Never,
    OnSuccess,
    Progressively,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = kube::core::Rule::new("has(self.canary) != has(self.blueGreen)").message("strategy names exactly one of canary and blueGreen"))]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    // Boxed: a Rollout uses one of the two, and the other would take its full size in every cached
    // Rollout all the same (about 1 KiB each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Box<CanaryStrategy>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<Box<BlueGreenStrategy>>,
}

impl RolloutStrategy {
    /// The Services Serin points at versions: a canary's stable and canary Services (with
    /// ping-pong, the one on the stable version `stable_side` and the other), or a blue-green
    /// Rollout's active and preview ones.
    pub fn service_names(&self, stable_side: Option<PingPongSide>) -> (Option<&String>, Option<&String>) {
        match (&self.canary, &self.blue_green) {
            (_, Some(bg)) => (Some(&bg.active_service), bg.preview_service.as_ref()),
            (Some(c), None) => match (&c.ping_pong, &c.stable_service, &c.canary_service) {
                (Some(pp), None, None) => match stable_side.unwrap_or_default() {
                    PingPongSide::Ping => (Some(&pp.ping_service), Some(&pp.pong_service)),
                    PingPongSide::Pong => (Some(&pp.pong_service), Some(&pp.ping_service)),
                },
                _ => (c.stable_service.as_ref(), c.canary_service.as_ref()),
            },
            (None, None) => (None, None),
        }
    }

    /// Every Service Serin may point at a version, whichever turn it is.
    pub fn all_service_names(&self) -> Vec<&String> {
        let (a, b) = self.service_names(None);
        let mut all: Vec<&String> = a.into_iter().chain(b).collect();
        if let Some(pp) = self.canary.as_ref().and_then(|c| c.ping_pong.as_ref()) {
            all.extend([&pp.ping_service, &pp.pong_service]);
        }
        all.sort();
        all.dedup();
        all
    }

    /// Every AnalysisTemplate the strategy names directly: its background analysis, its steps'
    /// analyses, blue-green's pre- and post-promotion analyses.
    pub fn template_refs(&self) -> Vec<&super::analysis::AnalysisTemplateRef> {
        let mut analyses: Vec<&RolloutAnalysis> = Vec::new();
        if let Some(c) = &self.canary {
            analyses.extend(c.analysis.as_ref());
            for step in c.steps.iter().flatten() {
                analyses.extend(step.analysis.as_deref());
            }
        }
        if let Some(bg) = &self.blue_green {
            analyses.extend(bg.pre_promotion_analysis.as_ref());
            analyses.extend(bg.post_promotion_analysis.as_ref());
        }
        analyses.into_iter().flat_map(|a| a.templates.iter()).collect()
    }

    /// The traffic router, for either strategy.
    pub fn traffic_routing(&self) -> Option<&TrafficRouting> {
        match (&self.canary, &self.blue_green) {
            (_, Some(bg)) => bg.traffic_routing.as_ref(),
            (Some(c), None) => c.traffic_routing.as_ref(),
            (None, None) => None,
        }
    }

    /// `canary`, `blueGreen` or `rollingUpdate` (a canary with `steps: []`), as metrics and the
    /// CLI name it.
    pub fn kind(&self) -> &'static str {
        match (&self.canary, &self.blue_green) {
            (_, Some(_)) => "blueGreen",
            (Some(c), None) if c.steps.as_ref().is_some_and(|s| s.is_empty()) => "rollingUpdate",
            _ => "canary",
        }
    }
}

/// Blue-green: the new version runs beside the active one, reachable through the preview Service,
/// until the active Service switches to it in one write; the old version stays up for a while so
/// that going back is one write too.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// The Service of the user's that takes production traffic; Serin points it at one version.
    pub active_service: String,
    /// A Service of the user's that selects the new version before it takes traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    /// Switch without waiting for `kubectl serin promote`; defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// Seconds to wait in preview before switching on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub auto_promotion_seconds: Option<i32>,
    /// Pods for the new version while in preview; it grows to `replicas` before the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub preview_replica_count: Option<i32>,
    /// Analysis of the preview, before any traffic reaches it; a failure aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Analysis after the switch; a failure switches the active Service back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<RolloutAnalysis>,
    /// Seconds the old version keeps its Pods after the switch; defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_seconds: Option<i32>,
    /// Old versions kept up within their scale-down delay; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Seconds an aborted new version keeps its Pods; defaults to 30; 0 keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// Switch by a traffic router instead of the active Service's selector: the route sends 0%
    /// then 100% to the preview Service, and the active Service follows once promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// Labels and annotations on the Pods of the active version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_metadata: Option<PodMetadata>,
    /// Labels and annotations on the Pods of the preview version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_metadata: Option<PodMetadata>,
}

/// Labels and annotations Serin puts on one version's Pods for as long as it has that role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodMetadata {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// A Service of the user's whose selector Serin points at the stable version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_service: Option<String>,
    /// A Service of the user's whose selector Serin points at the new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,
    /// The steps; omitted means weight 5, 25, 50, 100 with analysis after each.
    // Bounded so that kube-apiserver can bound the cost of each step's CEL rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub steps: Option<Vec<CanaryStep>>,
    /// Analysis run in the background for the whole rollout, and at each default step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    /// How traffic is split; absent means by the ratio of Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// Extra Pods allowed above `replicas` while versions change (count or percent); defaults to 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Pods that may be unavailable while versions change (count or percent); defaults to 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Seconds an aborted canary keeps its Pods after traffic left it; defaults to 30; 0 keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// Seconds the old stable keeps its Pods after a promotion; defaults to 30 with a traffic router, 0 without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_seconds: Option<i32>,
    /// Old versions kept up within their scale-down delay; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Labels and annotations on the canary's Pods while it is the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_metadata: Option<PodMetadata>,
    /// Labels and annotations on the stable version's Pods while it is stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_metadata: Option<PodMetadata>,
    /// With a traffic router, shrink the stable as the canary grows instead of keeping it full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_stable_scale: Option<bool>,
    /// Two Services that take turns as stable and canary, instead of `stableService` and
    /// `canaryService`: a promotion moves the traffic, never a selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_pong: Option<PingPong>,
    /// Webhook gates, called with Flagger's payload so that its load tester and approval tools work.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<super::hooks::Webhook>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PingPong {
    pub ping_service: String,
    pub pong_service: String,
}

/// Which of the ping-pong Services is on the stable version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PingPongSide {
    #[default]
    Ping,
    Pong,
}

impl PingPongSide {
    pub fn other(self) -> PingPongSide {
        match self {
            PingPongSide::Ping => PingPongSide::Pong,
            PingPongSide::Pong => PingPongSide::Ping,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = crate::crd::exactly_one_of(&["setWeight", "pause", "analysis", "setCanaryScale", "setHeaderRoute", "setMirrorRoute"], "each step sets exactly one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute, setMirrorRoute"))]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Percent of traffic for the new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub set_weight: Option<i32>,
    /// Wait: for a duration, or without one until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    /// Run analysis and wait for its verdict.
    // This and the routes are boxed: a step is one of six kinds, and unboxed each step of every
    // cached Rollout would take the room of all six.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Box<RolloutAnalysis>>,
    /// Size the canary independently of the traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
    /// Send requests that match headers to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<Box<SetHeaderRoute>>,
    /// Copy matching requests to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<Box<SetMirrorRoute>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// `30s`, `5m`, `1h30m`, or a number of seconds; absent means until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<IntOrString>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = crate::crd::exactly_one_of(&["replicas", "weight", "matchTrafficWeight"], "setCanaryScale sets exactly one of replicas, weight, matchTrafficWeight"))]
#[serde(rename_all = "camelCase")]
pub struct SetCanaryScale {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub weight: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_traffic_weight: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    pub name: String,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<Vec<HeaderMatch>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMirrorRoute {
    pub name: String,
    /// Requests to copy: headers as `setHeaderRoute` writes them (`headerName`, `headerValue`,
    /// all of them), or Argo's form (`method`, `path`, `headers`; any entry).
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<Vec<MirrorMatch>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percentage: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    pub header_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_value: Option<StringMatch>,
}

/// One entry of a mirror route's `match`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_value: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, StringMatch>,
}

/// Requests by method, path and headers (all of them), Argo's form of a mirror match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, StringMatch>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    pub templates: Vec<AnalysisTemplateRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<AnalysisArg>>,
    /// Metrics measured and shown that never decide (`metricName` is a regular expression).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<super::analysis::DryRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<super::analysis::MeasurementRetention>,
    /// Background analysis only: the step index (from 0) at which it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_step: Option<i32>,
    /// Labels and annotations for the AnalysisRuns made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<super::analysis::ExtraMetadata>,
}

pub use super::analysis::{AnalysisTemplateRef, ArgValueFrom, Argument as AnalysisArg, FieldRef};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = crate::crd::at_least_one_of(&["gatewayAPI", "nginx", "istio", "smi", "plugins"], "trafficRouting names at least one of gatewayAPI, nginx, istio, smi, plugins"))]
#[serde(rename_all = "camelCase")]
pub struct TrafficRouting {
    #[serde(default, rename = "gatewayAPI", skip_serializing_if = "Option::is_none")]
    pub gateway_api: Option<GatewayApiRouting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxRouting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioRouting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smi: Option<SmiRouting>,
    /// Argo Rollouts' plugin block. `argoproj-labs/gatewayAPI` is read as the native `gatewayAPI`
    /// router (no plugin is needed); other plugins are refused with a condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_map")]
    pub plugins: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// The order of the header and mirror routes the steps set (the first matches first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_routes: Vec<ManagedRouteName>,
}

/// The name of the Gateway API plugin of Argo Rollouts.
pub const GATEWAY_API_PLUGIN: &str = "argoproj-labs/gatewayAPI";

impl TrafficRouting {
    /// Whether the only router weighs Istio DestinationRule subsets, which select versions by
    /// their labels: then no stable and canary Services are needed.
    pub fn by_subsets_only(&self) -> bool {
        self.istio.as_ref().is_some_and(|i| i.destination_rule.is_some())
            && self.gateway_api().is_none()
            && self.nginx.is_none()
            && self.smi.is_none()
    }

    /// The Gateway API router: written natively, or in Argo's plugin block.
    pub fn gateway_api(&self) -> Option<GatewayApiRouting> {
        self.gateway_api.clone().or_else(|| {
            let p = self.plugins.as_ref()?.get(GATEWAY_API_PLUGIN)?;
            let text = |v: &serde_json::Value| v.as_str().map(String::from);
            // The plugin lists routes as names or as `{name, useHeaderRoutes}`.
            let names = |k: &str| {
                p[k].as_array().map(|a| {
                    a.iter()
                        .filter_map(|r| text(r).or_else(|| text(&r["name"])))
                        .collect::<Vec<_>>()
                })
            };
            Some(GatewayApiRouting {
                http_route: text(&p["httpRoute"]),
                http_routes: names("httpRoutes"),
                grpc_route: text(&p["grpcRoute"]).or_else(|| names("grpcRoutes").and_then(|g| g.first().cloned())),
                namespace: text(&p["namespace"]),
            })
        })
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRouteName {
    pub name: String,
}

/// A map whose values are kept as written.
fn open_map(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    })
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiRouting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_routes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_route: Option<String>,
    /// The routes' namespace, when not the Rollout's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NginxRouting {
    /// The user's Ingress for the stable Service; Serin makes `<rollout>-<name>-canary` beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ingress: Option<String>,
    /// Several Ingresses for the stable Service, each with its canary twin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stable_ingresses: Vec<String>,
    /// Annotations added to each generated canary Ingress.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub additional_ingress_annotations: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_prefix: Option<String>,
}

impl NginxRouting {
    /// Every stable Ingress named.
    pub fn ingresses(&self) -> Vec<String> {
        self.stable_ingress
            .iter()
            .chain(&self.stable_ingresses)
            .cloned()
            .collect()
    }
}

impl IstioRouting {
    /// Every VirtualService named.
    pub fn services(&self) -> Vec<IstioVirtualService> {
        self.virtual_service
            .iter()
            .chain(&self.virtual_services)
            .cloned()
            .collect()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioRouting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<IstioVirtualService>,
    /// Several VirtualServices, each with the routes to weigh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_services: Vec<IstioVirtualService>,
    /// Subset based routing: the DestinationRule whose subsets Serin points at the versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<IstioDestinationRule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioDestinationRule {
    pub name: String,
    pub stable_subset_name: String,
    pub canary_subset_name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioVirtualService {
    pub name: String,
    /// The `http` routes to weigh, by name; absent means those that send to the stable host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
    /// The `tls` routes to weigh, each by its port and SNI hosts; absent means those that send
    /// to the stable host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_routes: Vec<IstioTlsRoute>,
    /// The `tcp` routes to weigh, each by its port; absent means those that send to the stable host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_routes: Vec<IstioTcpRoute>,
}

/// A `tls` route of a VirtualService: the one whose matches name exactly this port and these SNI hosts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioTlsRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni_hosts: Vec<String>,
}

/// A `tcp` route of a VirtualService: the one whose matches name this port.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioTcpRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmiRouting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split: Option<String>,
    /// Argo Rollouts' name for `trafficSplit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_service: Option<String>,
}

/// Where a rollout stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    #[default]
    Progressing,
    Paused,
    Healthy,
    Degraded,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Healthy => "Healthy",
            Phase::Degraded => "Degraded",
        }
    }
}

/// What people asked of a rollout through `kubectl serin`, waiting for the controller to act on it.
/// Written to the status subresource, so no field a GitOps tool owns in `spec` is touched.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlRequests {
    /// Move past this step index (a pause, or an inconclusive analysis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_step: Option<i32>,
    /// Skip every remaining step and promote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_full: Option<bool>,
    /// Send traffic back to stable and stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<bool>,
    /// Start an aborted rollout again from its first step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<bool>,
    /// Hold (true) or go on (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<bool>,
}

/// An old version that keeps its Pods until `at`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDownDeadline {
    pub pod_hash: String,
    pub at: Time,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Pod-template hash of the version the spec asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_pod_hash: Option<String>,
    /// Pod-template hash of the version that has all the traffic when nothing is rolling out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_pod_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// `2/8`: the step being worked on, of all steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_started_at: Option<Time>,
    /// Percent of traffic on the new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,
    /// Pods the canary should have by a `setCanaryScale` step, when one set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_scale: Option<i32>,
    /// The rollout was aborted: traffic is on stable until a retry or a new template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<Time>,
    /// Why it was aborted: the failed analysis or gate, or a person's request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// Paused by `kubectl serin pause`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_paused: Option<bool>,
    /// Last time the rollout moved forward (a step, a newly available Pod); drives the progress deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_at: Option<Time>,
    /// When the last promotion happened, and from which version (its Pods go after a delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_stable_hash: Option<String>,
    /// The `metadata.generation` of the `workloadRef` Deployment last seen, as Argo Rollouts
    /// writes it (a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_observed_generation: Option<String>,
    /// Old versions keeping their Pods after a promotion, each until its own scale-down delay
    /// ends (at most `scaleDownDelayRevisionLimit` of them, the newest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scale_down_deadlines: Vec<ScaleDownDeadline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Available Pods of the newest version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_available_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// The label selector in string form, for the scale subresource (HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Requests from `kubectl serin` not yet acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<ControlRequests>,
    /// How many times this version was retried; analysis runs are per attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// A background analysis run a person chose to go past (promote) after it was inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_run: Option<String>,
    /// Header routes set by `setHeaderRoute` steps, removed on promotion and abort.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_routes: Vec<ManagedRoute>,
    /// Mirror routes set by `setMirrorRoute` steps, removed on promotion and abort.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror_routes: Vec<ManagedRoute>,
    /// The analysis runs of the current version, with each metric's last value and verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis: Vec<AnalysisSummary>,
    /// The webhook gates' last answers for the current version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<super::hooks::WebhookRecord>,
    /// The `spec.restartAt` whose restart is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,
    /// Versions that were stable, newest first (bounded): the rollback window looks here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stable_history: Vec<String>,
    /// Blue-green: which version each Service selects, and when the active one switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStatus>,
    /// DestinationRules whose subsets select versions by Serin's hash label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labelled_destination_rules: Vec<String>,
    /// With ping-pong, which Service is on the stable version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ping_pong: Option<PingPongSide>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// The version the active Service selects: the one taking production traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_selector: Option<String>,
    /// The version the preview Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_selector: Option<String>,
    /// When the preview was ready and its pre-promotion analysis passed: auto-promotion counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Time>,
    /// When the active Service last switched, and from which version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_from: Option<String>,
    /// `kubectl serin promote --full` or a rollback within the window: no analysis, no pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_full: Option<bool>,
}

/// A route Serin adds to the router for a step: requests matching go to (or are copied to) the canary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRoute {
    pub name: String,
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<HeaderMatch>,
    /// Mirror routes in Argo's form: requests matching any entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestMatch>,
    /// Mirror routes: percent of matching requests copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<i32>,
}

/// One analysis run as the Rollout shows it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSummary {
    pub run: String,
    /// `background`, or the step index.
    pub step: String,
    pub phase: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSummary>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSummary {
    pub name: String,
    pub phase: String,
    /// The last measured value (`0.012`, `no data`), or the last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}
