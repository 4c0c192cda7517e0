//! `AnalysisTemplate`, `ClusterAnalysisTemplate` and `AnalysisRun`: the questions Serin asks
//! Prometheus during a rollout, and their recorded answers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Job spec kept open in the schema: the API server checks it when the Job is made, and a full
/// copy of the Pod schema would make the CRD too large for client-side `kubectl apply`.
fn open_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

fn int_or_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"x-kubernetes-int-or-string": true})
}

/// An argument's value as text, also when YAML wrote it as a number (`value: 9090`).
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(serde_json::Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "an argument's value is text or a number, not {other}"
        ))),
    }
}

fn open_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"x-kubernetes-preserve-unknown-fields": true})
}

/// The metrics a template asks about, and the arguments its queries take.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    shortname = "at",
    derive = "PartialEq",
    doc = "Metrics to check during a rollout, with their pass and fail conditions.",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = kube::core::Rule::new("(has(self.metrics) && size(self.metrics) > 0) || (has(self.templates) && size(self.templates) > 0)").message("a template needs metrics or templates to include"))]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    // Bounded so that kube-apiserver can bound the cost of each metric's CEL rule.
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub metrics: Vec<Metric>,
    /// Other templates whose metrics and arguments this one includes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<AnalysisTemplateRef>,
    /// Metrics measured and shown that never decide (`metricName` is a regular expression).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep in status per metric (`metricName` is a regular expression).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// The same as an AnalysisTemplate, for every namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    shortname = "cat",
    derive = "PartialEq",
    doc = "Metrics to check during a rollout, shared by every namespace.",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = kube::core::Rule::new("(has(self.metrics) && size(self.metrics) > 0) || (has(self.templates) && size(self.templates) > 0)").message("a template needs metrics or templates to include"))]
#[serde(rename_all = "camelCase")]
pub struct ClusterAnalysisTemplateSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    // Bounded so that kube-apiserver can bound the cost of each metric's CEL rule.
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub metrics: Vec<Metric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<AnalysisTemplateRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

impl From<ClusterAnalysisTemplateSpec> for AnalysisTemplateSpec {
    fn from(c: ClusterAnalysisTemplateSpec) -> Self {
        AnalysisTemplateSpec {
            args: c.args,
            metrics: c.metrics,
            templates: c.templates,
            dry_run: c.dry_run,
            measurement_retention: c.measurement_retention,
        }
    }
}

/// A template by name; `clusterScope: true` for a ClusterAnalysisTemplate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    pub template_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
}

/// A metric (or every metric a regular expression matches) that is measured but never decides.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    pub metric_name: String,
}

/// How many measurements of a metric (or of every metric a regular expression matches) to keep.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    pub metric_name: String,
    #[schemars(range(min = 1))]
    pub limit: i32,
}

/// An argument of a template: a value, or where to find one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Argument {
    pub name: String,
    /// The value (text, or a number as YAML writes `9090`); in a template, a default the Rollout
    /// may override.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    #[schemars(schema_with = "int_or_string")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgValueFrom>,
}

/// Where an argument's value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = crate::crd::exactly_one_of(&["podTemplateHashValue", "fieldRef", "secretKeyRef"], "valueFrom names exactly one of podTemplateHashValue, fieldRef, secretKeyRef"))]
#[serde(rename_all = "camelCase")]
pub struct ArgValueFrom {
    /// `Stable` or `Latest`: the pod-template hash of that version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash_value: Option<String>,
    /// A field of the Rollout: `metadata.name`, `metadata.labels['app']`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
    /// A key of a Secret in the Rollout's namespace labelled `serin.dev/analysis-access: "true"`.
    /// Its value is read at each measurement and never stored or shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    pub field_path: String,
}

/// What an empty result counts as. Never a silent pass unless asked for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum NoData {
    #[default]
    Inconclusive,
    Failed,
    Successful,
}

/// What to do when a metric keeps erroring past `consecutiveErrorLimit`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum OnError {
    #[default]
    Pause,
    Abort,
}

/// A metric without a condition passes with every answer, as in Argo Rollouts (a web check that
/// only needs the endpoint to answer); an error is still an error.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    pub name: String,
    /// Time between measurements (`30s`, `1m`); absent means one measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<IntOrString>,
    /// Measurements with data to take; defaults to 1, or unbounded for background analysis with
    /// an interval. No-data measurements and errors do not use it up. Like every count here, a
    /// number or a string holding one, such as `"{{args.count}}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<IntOrString>,
    /// Wait before the first measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<IntOrString>,
    /// Failed measurements tolerated before the metric fails; defaults to 0. `-1`: failures never
    /// end the metric (with `consecutiveSuccessLimit`, running out of `count` then fails it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<IntOrString>,
    /// Inconclusive measurements tolerated before the metric is inconclusive; defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<IntOrString>,
    /// Errors in a row tolerated before the metric is in error; defaults to 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_error_limit: Option<IntOrString>,
    /// No-data measurements in a row tolerated before `noData` decides the metric; defaults to 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_no_data_limit: Option<IntOrString>,
    /// Successes in a row after which the metric passes without waiting for `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_success_limit: Option<IntOrString>,
    /// CEL over `result` (a number for one sample, a list otherwise): true passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// CEL over `result`: true fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Passes when every value lies within.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_range: Option<ThresholdRange>,
    /// What the metric comes to once it found no data `consecutiveNoDataLimit` times in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data: Option<NoData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    pub provider: MetricProvider,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = crate::crd::exactly_one_of(&["prometheus", "web", "job", "compare", "sloBurnRate"], "provider names exactly one of prometheus, web, job, compare, sloBurnRate"))]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobProvider>,
    /// The canary against the stable version at the same time, by an anytime-valid sequential test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<CompareProvider>,
    /// The canary's error-budget burn rate and exposure: the absolute guardrail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_burn_rate: Option<SloBurnRateProvider>,
}

/// A metric's counts and limits as numbers. Argo Rollouts types them as int-or-string so that an
/// argument can stand in them; a run's metrics have their arguments put in, and
/// [`Metric::checked_limits`] refused what is not a whole number before the run was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub count: Option<i32>,
    pub failure_limit: Option<i32>,
    pub inconclusive_limit: Option<i32>,
    pub consecutive_error_limit: Option<i32>,
    pub consecutive_no_data_limit: Option<i32>,
    pub consecutive_success_limit: Option<i32>,
}

/// A count that is not a whole number in its range, once its arguments are in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} must be a whole number of at least {min}, as a number or a string holding one (with its arguments put in)"
)]
pub struct NotACount {
    pub field: &'static str,
    pub min: i32,
}

fn whole(v: &Option<IntOrString>) -> Result<Option<i32>, ()> {
    match v {
        None => Ok(None),
        Some(IntOrString::Int(n)) => Ok(Some(*n)),
        Some(IntOrString::String(s)) => s.trim().parse::<i32>().map(Some).map_err(|_| ()),
    }
}

impl Metric {
    /// The counts and limits, each `None` where it is absent (or not a number, which
    /// [`Metric::checked_limits`] refuses before a run is made).
    pub fn limits(&self) -> Limits {
        let get = |v: &Option<IntOrString>| whole(v).ok().flatten();
        Limits {
            count: get(&self.count),
            failure_limit: get(&self.failure_limit),
            inconclusive_limit: get(&self.inconclusive_limit),
            consecutive_error_limit: get(&self.consecutive_error_limit),
            consecutive_no_data_limit: get(&self.consecutive_no_data_limit),
            consecutive_success_limit: get(&self.consecutive_success_limit),
        }
    }

    /// The counts and limits, refusing one that is not a whole number within its range.
    pub fn checked_limits(&self) -> Result<Limits, NotACount> {
        let get = |v: &Option<IntOrString>, field: &'static str, min: i32| {
            whole(v)
                .ok()
                .filter(|n| n.is_none_or(|n| n >= min))
                .ok_or(NotACount { field, min })
        };
        Ok(Limits {
            count: get(&self.count, "count", 0)?,
            failure_limit: get(&self.failure_limit, "failureLimit", -1)?,
            inconclusive_limit: get(&self.inconclusive_limit, "inconclusiveLimit", 0)?,
            consecutive_error_limit: get(&self.consecutive_error_limit, "consecutiveErrorLimit", 0)?,
            consecutive_no_data_limit: get(&self.consecutive_no_data_limit, "consecutiveNoDataLimit", 0)?,
            consecutive_success_limit: get(&self.consecutive_success_limit, "consecutiveSuccessLimit", 0)?,
        })
    }
}

impl MetricProvider {
    /// The provider's name, for messages.
    pub fn kind(&self) -> &'static str {
        if self.prometheus.is_some() {
            "prometheus"
        } else if self.web.is_some() {
            "web"
        } else if self.job.is_some() {
            "job"
        } else if self.compare.is_some() {
            "compare"
        } else if self.slo_burn_rate.is_some() {
            "sloBurnRate"
        } else {
            "none"
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusProvider {
    /// `http://prometheus.monitoring:9090`; when empty, the controller's `--prometheus-address`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// PromQL; `{{args.NAME}}` is replaced by the argument, escaped as a label value.
    pub query: String,
    /// Ask for a range of samples instead of one instant: `result` is then the list of values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_query: Option<RangeQuery>,
    /// Per query: a duration (`10s`) or a number of seconds; defaults to 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<PrometheusAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PrometheusTls>,
    /// Accept any server certificate (the same as `tls.insecureSkipVerify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// Where a `compare` or `sloBurnRate` metric asks: the settings of the `prometheus` provider
/// without its query.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusServer {
    /// When empty, the controller's `--prometheus-address`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<PrometheusAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PrometheusTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

impl PrometheusServer {
    /// The `prometheus` provider that asks this server `query`.
    pub fn asking(&self, query: String) -> PrometheusProvider {
        PrometheusProvider {
            address: self.address.clone(),
            query,
            range_query: None,
            timeout: self.timeout.clone(),
            headers: self.headers.clone(),
            authentication: self.authentication.clone(),
            tls: self.tls.clone(),
            insecure: self.insecure,
        }
    }
}

/// Two counters, asked once per version with `{{version}}` as that version's pod-template hash:
/// how many requests were bad, and how many there were in all.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompareProvider {
    #[serde(default)]
    pub prometheus: PrometheusServer,
    /// PromQL giving a counter of bad requests (errors, or requests slower than a bound);
    /// `{{version}}` is the version's pod-template hash, `{{service}}` its Service.
    pub bad: String,
    /// PromQL giving a counter of all requests.
    pub total: String,
    /// How much worse than stable's the canary's bad-request rate may be and not count as a
    /// regression; defaults to 1.2 (20% worse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0))]
    pub max_increase: Option<f64>,
    /// How sure the evidence must be before it decides; defaults to 0.99, so a canary no worse
    /// than `maxIncrease` is rolled back at most 1% of the time over its whole release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.5, max = 0.999999))]
    pub confidence: Option<f64>,
    /// Requests each version must have served before the canary can pass; defaults to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_events: Option<i64>,
    /// The versions' pod-template hashes: filled in by Serin when it makes the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Versions>,
}

/// The pod-template hashes of the canary and the stable version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    pub canary: String,
    pub stable: String,
    /// The Rollout's `canaryService` and `stableService`, for `{{service}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_service: Option<String>,
}

/// Google's multi-window burn-rate alert, scaled to an analysis, and the error budget the
/// canary's bad requests have spent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloBurnRateProvider {
    #[serde(default)]
    pub prometheus: PrometheusServer,
    /// PromQL giving a counter of bad requests; `{{version}}` is the canary's pod-template hash.
    pub bad: String,
    /// PromQL giving a counter of all requests.
    pub total: String,
    /// The objective, in percent of good requests: `99.9`.
    pub objective: f64,
    /// The objective's period; defaults to 30d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// The burn rate both windows must pass to fail; defaults to 14.4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// The share of the period's error budget the canary may spend: `1%`; defaults to 1%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_budget_spent: Option<IntOrString>,
    /// How sure the evidence must be that the canary burns faster than `factor` before it
    /// fails; defaults to 0.999 (a guardrail fires on overwhelming evidence only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.5, max = 0.999999))]
    pub confidence: Option<f64>,
    /// The versions' pod-template hashes: filled in by Serin when it makes the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Versions>,
}

/// A range of time before now: `start: "-10m"`, `end: "now"`, `step: "1m"`. Argo Rollouts'
/// `now() - duration("10m")` is read too.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RangeQuery {
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    pub step: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub key: String,
    pub value: String,
}

/// A key of a Secret in the AnalysisRun's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusAuth {
    /// `Authorization: Bearer <token>`, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<SecretKeyRef>,
    /// Basic auth from Secret keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// Basic auth as text, usually `{{args.NAME}}` from a Secret argument.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthValues>,
    /// An OAuth2 client-credentials token, fetched from `tokenUrl` and sent as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    pub username: SecretKeyRef,
    pub password: SecretKeyRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthValues {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2 {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusTls {
    /// A PEM CA bundle to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// An HTTP endpoint whose JSON answer (or the part `jsonPath` picks) is the measured value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebProvider {
    pub url: String,
    /// `GET` (the default), `POST` or `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// The request body, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The request body as JSON (instead of `body`); sent with `Content-Type: application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_value")]
    pub json_body: Option<serde_json::Value>,
    /// A JSONPath into the answer (`{$.data.ok}` or `$.data.ok`); the whole answer when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// Defaults to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<i64>,
    /// Accept any server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<WebAuth>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthValues>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
}

/// A Kubernetes Job run in the Rollout's namespace: the metric passes when it completes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ExtraMetadata>,
    /// A `batch/v1` JobSpec.
    #[schemars(schema_with = "open_object")]
    pub spec: serde_json::Value,
}

/// Labels and annotations added to an object Serin makes (a Job, an AnalysisRun).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtraMetadata {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// One analysis, run for one version of a Rollout at one step (or in the background).
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "AnalysisRun",
    namespaced,
    shortname = "ar",
    status = "AnalysisRunStatus",
    derive = "PartialEq",
    doc = "Measurements taken for one step of a rollout, and their verdict.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    /// The metrics as their templates wrote them: `{{args.NAME}}` is resolved at each
    /// measurement, so that a Secret's value is never stored.
    #[schemars(length(max = 1000))]
    pub metrics: Vec<Metric>,
    /// The arguments: values resolved when the run was made, Secrets by reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// Stop measuring; a run stopped before its verdict counts as successful for background runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate: Option<bool>,
    /// Measure until terminated (background analysis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
    /// Metrics measured and shown that never decide.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// How long a finished run is kept before it is deleted (runs made for a Rollout follow its
    /// history instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_strategy: Option<TtlStrategy>,
}

/// Seconds a finished run is kept: after any end, after a success, after a failure (the
/// specific one wins).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TtlStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub seconds_after_completion: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub seconds_after_success: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub seconds_after_failure: Option<i32>,
}

impl TtlStrategy {
    /// How long a run that ended in `phase` is kept.
    pub fn keep_for(&self, phase: AnalysisPhase) -> Option<std::time::Duration> {
        let specific = match phase {
            AnalysisPhase::Successful => self.seconds_after_success,
            AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive => self.seconds_after_failure,
            _ => None,
        };
        specific
            .or(self.seconds_after_completion)
            .map(|s| std::time::Duration::from_secs(s.max(0) as u64))
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AnalysisPhase {
    #[default]
    Pending,
    Running,
    Successful,
    Failed,
    Inconclusive,
    Error,
    /// Of a measurement only: the query found nothing (no evidence yet, never a verdict).
    NoData,
}

impl AnalysisPhase {
    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            AnalysisPhase::Pending | AnalysisPhase::Running | AnalysisPhase::NoData
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisPhase::Pending => "Pending",
            AnalysisPhase::Running => "Running",
            AnalysisPhase::Successful => "Successful",
            AnalysisPhase::Failed => "Failed",
            AnalysisPhase::Inconclusive => "Inconclusive",
            AnalysisPhase::Error => "Error",
            AnalysisPhase::NoData => "NoData",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    pub started_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    pub phase: AnalysisPhase,
    /// The value as measured (`0.012`, `[0.1, 0.3]`, `no data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Why it is what it is: the error, the condition that decided, or the query that found nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the provider keeps of a measurement in progress (`job-name` for a Job).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// The evidence of a `compare` or `sloBurnRate` measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

/// Bad requests among all, for one version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventCounts {
    pub bad: f64,
    pub total: f64,
}

/// The evidence so far: each version's counts since the evidence began, the canary's rate over
/// stable's with its interval, and the e-values (how many times more likely the counts are if the
/// canary is worse than `maxIncrease`, and if it is not).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub canary: EventCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<EventCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_high: Option<f64>,
    /// Evidence of a regression; it decides at `threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_value: Option<f64>,
    /// Evidence that the canary is no worse than `maxIncrease`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_value_not_worse: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Burn rates of the short and the long window (`sloBurnRate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate_short: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate_long: Option<f64>,
    /// How many times more the canary's share of bad events varies than independent requests
    /// would make it (errors in clusters); the evidence is weighed down by it (`compare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispersion: Option<f64>,
    /// The share of the period's error budget the canary has spent, in percent (`sloBurnRate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_spent: Option<f64>,
}

/// What a `compare` or `sloBurnRate` metric carries from one look to the next, and from one
/// step's run to the next for the same version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceState {
    /// The counters as last read (canary, then stable).
    pub reading: Vec<EventCounts>,
    /// Counts since the evidence began (canary, then stable).
    pub counted: Vec<EventCounts>,
    /// Canary requests counted in this run.
    #[serde(default)]
    pub counted_in_run: f64,
    /// The natural logs of the e-process' mixture components: regression, then no regression.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_worse: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_not_worse: Vec<f64>,
    /// How clustered bad events are: the sum of the intervals' Pearson terms for how bad events
    /// split between the versions, and the number of intervals (`compare`).
    #[serde(default, skip_serializing_if = "is_no_count")]
    pub dispersion_sum: f64,
    #[serde(default, skip_serializing_if = "is_no_count")]
    pub dispersion_intervals: f64,
    /// The counters (canary, then stable) at a look that found one gone down without restarting:
    /// counting goes on from there if they count on from there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<EventCounts>,
    /// When the evidence began.
    pub since: Time,
    /// When the counters were read.
    pub read_at: Time,
    /// The evidence lets the metric pass now (the canary shown no worse than `maxIncrease`, or
    /// stable serving nothing left to compare with).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passed: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    pub name: String,
    pub phase: AnalysisPhase,
    #[serde(default)]
    pub count: i32,
    #[serde(default)]
    pub successful: i32,
    #[serde(default)]
    pub failed: i32,
    #[serde(default)]
    pub inconclusive: i32,
    #[serde(default)]
    pub error: i32,
    #[serde(default)]
    pub consecutive_error: i32,
    /// Measurements that found no data.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub no_data: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_no_data: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_success: i32,
    /// Measured and shown, never deciding the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The latest measurements, oldest first, at most `measurementRetention` (10 by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    /// The evidence of a `compare` or `sloBurnRate` metric, carried to the next look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AnalysisPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_results: Vec<MetricResult>,
    /// How the dry-run metrics came out, by metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_summary: Option<RunSummary>,
}

/// Metrics counted by how they ended.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub count: i32,
    pub successful: i32,
    pub failed: i32,
    pub inconclusive: i32,
    pub error: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn is_no_count(x: &f64) -> bool {
    *x == 0.0
}
