//! The job provider: a Kubernetes Job made for each measurement, in the run's namespace and
//! owned by the AnalysisRun. The measurement passes when the Job completes and fails when it
//! fails; until then it is in progress, and the Job is looked at again.

use super::provider::{Measured, MetricProvider, ProviderError};
use crate::crd::analysis::{AnalysisPhase, JobProvider};
use k8s_openapi::api::batch::v1::Job as KubeJob;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use std::collections::BTreeMap;

/// Labels every analysis Job carries: the run it belongs to, and the metric.
pub const RUN_LABEL: &str = "serin.dev/analysis-run";
pub const METRIC_LABEL: &str = "serin.dev/metric";
/// The measurement's metadata key holding its Job's name.
pub const JOB_NAME: &str = "job-name";

/// The run a Job is made for.
pub struct Owner {
    pub namespace: String,
    pub run: String,
    pub uid: String,
}

pub struct Job {
    pub api: Api<KubeJob>,
    pub spec: JobProvider,
    pub owner: Owner,
    pub metric: String,
    /// Which measurement of the metric this is, from 1: part of the Job's name.
    pub number: i32,
    /// The Job of the measurement in progress, when there is one.
    pub running: Option<String>,
}

/// A name a Job can have (63 characters at most, DNS label characters): the run's and metric's
/// names with the measurement number, shortened with a hash when too long.
pub fn job_name(run: &str, metric: &str, number: i32) -> String {
    let clean = |s: &str| -> String {
        s.to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
            .collect()
    };
    let full = format!("{}-{}-{number}", clean(run), clean(metric));
    if full.len() <= 63 {
        return full.trim_matches('-').to_string();
    }
    let hash = crate::hash::hash_text(&full);
    let tail = format!("-{hash}-{number}");
    format!("{}{tail}", full[..63 - tail.len()].trim_end_matches('-'))
}

/// A label value Kubernetes takes: letters, digits, `-`, `_`, `.`, at most 63, starting and
/// ending with a letter or digit.
fn label_value(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    clean.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

fn owned_by(job: &KubeJob, uid: &str) -> bool {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

impl Job {
    fn build(&self, name: &str) -> Result<KubeJob, ProviderError> {
        let mut spec_value = self.spec.spec.clone();
        let labels: BTreeMap<String, String> = [
            (RUN_LABEL.to_string(), label_value(&self.owner.run)),
            (METRIC_LABEL.to_string(), label_value(&self.metric)),
        ]
        .into();
        // The Pods carry the run's labels too, to find them by.
        if let Some(tpl) = spec_value.get_mut("template").and_then(|t| t.as_object_mut()) {
            let meta = tpl.entry("metadata").or_insert_with(|| serde_json::json!({}));
            if let Some(meta) = meta.as_object_mut() {
                let l = meta.entry("labels").or_insert_with(|| serde_json::json!({}));
                if let Some(l) = l.as_object_mut() {
                    for (k, v) in &labels {
                        l.insert(k.clone(), serde_json::json!(v));
                    }
                }
            }
        }
        let spec = serde_json::from_value(spec_value)
            .map_err(|e| ProviderError::Config(format!("job.spec is not a Job spec: {e}")))?;
        let user = self.spec.metadata.clone().unwrap_or_default();
        let mut all_labels = user.labels;
        all_labels.extend(labels);
        Ok(KubeJob {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(self.owner.namespace.clone()),
                labels: Some(all_labels),
                annotations: (!user.annotations.is_empty()).then_some(user.annotations),
                owner_references: Some(vec![OwnerReference {
                    api_version: "serin.dev/v1alpha1".into(),
                    kind: "AnalysisRun".into(),
                    name: self.owner.run.clone(),
                    uid: self.owner.uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        })
    }

    fn in_progress(name: &str, message: String) -> Measured {
        Measured::InProgress {
            message,
            metadata: [(JOB_NAME.to_string(), name.to_string())].into(),
        }
    }
}

/// What a Job's status comes to.
pub fn judge_job(name: &str, job: &KubeJob) -> Measured {
    let status = job.status.clone().unwrap_or_default();
    let condition = |t: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t && c.status == "True")
            .cloned()
    };
    if condition("Complete").is_some() {
        return Measured::Verdict {
            phase: AnalysisPhase::Successful,
            message: format!("job {name} completed"),
        };
    }
    if let Some(failed) = condition("Failed") {
        return Measured::Verdict {
            phase: AnalysisPhase::Failed,
            message: format!(
                "job {name} failed ({}): {}",
                failed.reason.unwrap_or_default(),
                failed.message.unwrap_or_default()
            ),
        };
    }
    Job::in_progress(
        name,
        format!(
            "job {name} running ({} active, {} failed)",
            status.active.unwrap_or(0),
            status.failed.unwrap_or(0)
        ),
    )
}

/// Why a container of a Job's Pods cannot start, and will not without someone's change: its
/// image cannot be pulled or its configuration is wrong.
const CANNOT_START: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// A Job whose Pod cannot start measures nothing: Inconclusive, saying why (as Argo Rollouts
/// 1.10 does), rather than in progress until the run's deadline, if it has one.
pub fn judge_pods(name: &str, pods: &[Pod]) -> Option<Measured> {
    pods.iter().find_map(|pod| {
        let statuses = pod.status.as_ref()?;
        let all = statuses
            .init_container_statuses
            .iter()
            .flatten()
            .chain(statuses.container_statuses.iter().flatten());
        all.into_iter().find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref()?;
            CANNOT_START.contains(&reason).then(|| Measured::Verdict {
                phase: AnalysisPhase::Inconclusive,
                message: format!(
                    "job {name} cannot start: container {} is waiting, {reason}: {}",
                    c.name,
                    waiting.message.clone().unwrap_or_default()
                ),
            })
        })
    })
}

impl Job {
    /// The Job's Pods, for why it does not start; an error reads as no Pods (looked at again).
    async fn pods(&self, name: &str) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.api.clone().into_client(), &self.owner.namespace);
        let params = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"));
        pods.list(&params).await.map(|l| l.items).unwrap_or_default()
    }

    /// A running Job's verdict: its own, or that its Pod cannot start (the Job then goes).
    async fn judge_running(&self, name: &str, job: &KubeJob) -> Measured {
        let judged = judge_job(name, job);
        if !matches!(judged, Measured::InProgress { .. }) {
            return judged;
        }
        match judge_pods(name, &self.pods(name).await) {
            Some(stuck) => {
                if let Err(e) = stop(&self.api.clone().into_client(), &self.owner.namespace, name).await {
                    tracing::warn!(error = %e, job = %name, "could not delete an analysis Job that cannot start");
                }
                stuck
            }
            None => judged,
        }
    }
}

impl MetricProvider for Job {
    async fn measure(&self) -> Result<Measured, ProviderError> {
        let kube_error = |e: kube::Error| ProviderError::Query(format!("job: {e}"));
        if let Some(name) = &self.running {
            return match self.api.get_opt(name).await {
                Ok(Some(job)) => Ok(self.judge_running(name, &job).await),
                Ok(None) => Err(ProviderError::Answer(format!("job {name} is gone"))),
                // The Job goes on whatever the API said just now: looked at again, not abandoned.
                Err(e) => Ok(Job::in_progress(
                    name,
                    format!("job {name}: could not read it ({e}); looking again"),
                )),
            };
        }
        let name = job_name(&self.owner.run, &self.metric, self.number);
        let job = self.build(&name)?;
        match self.api.create(&PostParams::default(), &job).await {
            Ok(_) => Ok(Job::in_progress(&name, format!("job {name} created"))),
            // Made by an earlier attempt whose status write was lost: carry on with it, if it is
            // this run's and not a namesake's left from before.
            Err(kube::Error::Api(s)) if s.code == 409 => match self.api.get_opt(&name).await.map_err(kube_error)? {
                Some(job) if owned_by(&job, &self.owner.uid) => Ok(judge_job(&name, &job)),
                Some(_) => Err(ProviderError::Answer(format!(
                    "job {name} exists and belongs to another run: delete it to measure again"
                ))),
                None => Err(ProviderError::Answer(format!("job {name} is gone"))),
            },
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
                Err(ProviderError::Config(format!("job {name} was refused: {}", s.message)))
            }
            Err(e) => Err(kube_error(e)),
        }
    }

    fn describe(&self) -> String {
        format!("job for metric {}", self.metric)
    }
}

/// Deletes a Job of a run that stopped before it finished.
pub async fn stop(client: &Client, namespace: &str, name: &str) -> Result<(), kube::Error> {
    let api: Api<KubeJob> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_what_kubernetes_takes() {
        assert_eq!(label_value("error rate {p99}/eu"), "error-rate--p99--eu");
        assert_eq!(label_value("-x-"), "x");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn job_names_fit_kubernetes() {
        assert_eq!(job_name("web-abc-2-0", "smoke", 1), "web-abc-2-0-smoke-1");
        assert_eq!(job_name("web", "Smoke_Test", 3), "web-smoke-test-3");
        let long = job_name(&"r".repeat(60), "integration-tests", 12);
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with("-12"));
        assert_ne!(long, job_name(&"r".repeat(61), "integration-tests", 12));
    }

    #[test]
    fn a_pod_that_cannot_pull_its_image_is_inconclusive() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "status": {"containerStatuses": [{"name": "check", "image": "nope:latest", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}
        }))
        .unwrap();
        match judge_pods("j", &[pod]) {
            Some(Measured::Verdict { phase, message }) => {
                assert_eq!(phase, AnalysisPhase::Inconclusive);
                assert!(message.contains("ImagePullBackOff"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let starting: Pod = serde_json::from_value(serde_json::json!({
            "status": {"containerStatuses": [{"name": "check", "image": "ok", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        }))
        .unwrap();
        assert!(judge_pods("j", &[starting]).is_none(), "still starting");
    }

    #[test]
    fn a_jobs_conditions_are_its_verdict() {
        let job = |conds: serde_json::Value| -> KubeJob {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "j"}, "status": conds})).unwrap()
        };
        assert!(matches!(
            judge_job(
                "j",
                &job(serde_json::json!({"conditions": [{"type": "Complete", "status": "True"}]}))
            ),
            Measured::Verdict {
                phase: AnalysisPhase::Successful,
                ..
            }
        ));
        match judge_job(
            "j",
            &job(serde_json::json!({"failed": 3, "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})),
        ) {
            Measured::Verdict {
                phase: AnalysisPhase::Failed,
                message,
            } => assert!(message.contains("BackoffLimitExceeded"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            judge_job("j", &job(serde_json::json!({"active": 1}))),
            Measured::InProgress { .. }
        ));
    }
}
