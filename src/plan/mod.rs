//! The rollout state machine, as a pure function: from the Rollout, what is observed of its
//! ReplicaSets, and `now`, to the ReplicaSet sizes, Service selectors, traffic weight, next status,
//! the decisions worth an Event, and when to look again. No I/O and no clock: `now` is an argument.

pub mod bluegreen;
mod canary;
pub mod conditions;
pub mod gates;
pub mod pod_metadata;
pub mod replicas;
pub mod status_writes;
pub mod steps;
pub mod validate;

use crate::crd::analysis::AnalysisPhase;
use crate::crd::rollout::{
    AnalysisSummary, BlueGreenStrategy, CanaryStep, CanaryStrategy, ManagedRoute, MetricSummary, Phase, Rollout,
    RolloutAnalysis, RolloutStatus,
};
use crate::hash::pod_template_hash;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use replicas::{Sizes, Targets, resolve, step_towards};
use std::collections::BTreeMap;
use std::time::Duration;

/// The label that ties Pods, ReplicaSets and Service selectors to one version.
pub const HASH_LABEL: &str = "serin.dev/pod-template-hash";

/// A ReplicaSet of this Rollout, as the controller last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedReplicaSet {
    pub name: String,
    pub hash: String,
    /// `spec.replicas`: the size asked for.
    pub spec_replicas: i32,
    /// `status.replicas`: Pods that exist.
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub created: Timestamp,
    /// The role labels and annotations Serin last put on its Pods.
    pub pod_metadata: Option<crate::crd::rollout::PodMetadata>,
}

/// An AnalysisRun of this Rollout, as last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRun {
    pub name: String,
    pub hash: String,
    /// The step it was made for; `None` for the background analysis.
    pub step: Option<i32>,
    pub attempt: i32,
    pub phase: AnalysisPhase,
    /// A metric in error says to abort rather than pause.
    pub abort_on_error: bool,
    pub terminating: bool,
    pub message: String,
    pub metrics: Vec<MetricSummary>,
    pub created: Timestamp,
}

/// An AnalysisRun to create.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub name: String,
    pub step: Option<i32>,
    pub attempt: i32,
    pub analysis: RolloutAnalysis,
}

/// Finished AnalysisRuns kept, beyond those of the current version.
pub const ANALYSIS_RUN_HISTORY: usize = 5;

/// Stable versions remembered for the rollback window.
pub const STABLE_HISTORY: usize = 10;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub replica_sets: Vec<ObservedReplicaSet>,
    pub analysis_runs: Vec<ObservedRun>,
    /// The template of the Deployment named by `workloadRef`, when it exists.
    pub workload_template: Option<PodTemplateSpec>,
    /// Its selector, for a Rollout that has none of its own.
    pub workload_selector: Option<LabelSelector>,
    /// Its `spec.replicas`.
    pub workload_replicas: Option<i32>,
    /// Its `metadata.generation`.
    pub workload_generation: Option<i64>,
    /// While a `restartAt` is pending: the Rollout's Pods created before it, the unready first.
    pub pods_to_restart: Vec<String>,
    /// While a `restartAt` is pending: the Rollout's Pods ready now, from the same fresh list.
    /// ReplicaSet statuses trail deletions, and a restart judged by them alone would delete
    /// more Pods before the last ones were counted gone.
    pub ready_pods: Option<i32>,
    /// Services carrying Serin's label for this Rollout: those it pointed at a version.
    pub pointed_services: Vec<String>,
    /// Templates the Rollout names that do not exist, as `AnalysisTemplate "NAME"`.
    pub missing_templates: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

/// A decision worth telling the user about (an Event).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub severity: Severity,
    pub reason: &'static str,
    /// What was done, specific to the version and step, so that two different decisions with
    /// the same reason are two Events rather than one Event counted twice.
    pub action: String,
    pub message: String,
}

/// A ReplicaSet the Rollout should have, and its size.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredReplicaSet {
    pub hash: String,
    /// The Pod template, for the version the spec asks for: the only one that may need creating.
    /// Other versions' ReplicaSets exist and only change size.
    pub template: Option<PodTemplateSpec>,
    pub replicas: i32,
    /// The role labels and annotations its Pods should carry (`canaryMetadata`, ...), when the
    /// Rollout names any.
    pub pod_metadata: Option<crate::crd::rollout::PodMetadata>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub replica_sets: Vec<DesiredReplicaSet>,
    /// ReplicaSets beyond the revision history, to delete.
    pub delete: Vec<String>,
    /// The hash the stable Service selects.
    pub stable_service_hash: Option<String>,
    /// The hash the canary Service selects.
    pub canary_service_hash: Option<String>,
    /// Services Serin pointed that the Rollout no longer names (its strategy or Service names
    /// changed): their selectors go back to the app's own.
    pub release_services: Vec<String>,
    /// DestinationRules whose subsets Serin labelled that the Rollout no longer routes through:
    /// their subsets lose Serin's hash labels, or they would keep selecting old Pods.
    pub release_destination_rules: Vec<String>,
    /// Percent of traffic for the canary (what a traffic router is set to).
    pub weight: i32,
    pub status: RolloutStatus,
    pub decisions: Vec<Decision>,
    pub requeue_after: Option<Duration>,
    /// The size for a `workloadRef` Deployment, by its `scaleDown` mode; `None` leaves it alone.
    pub workload_replicas: Option<i32>,
    /// The selector the Rollout's Pods are chosen by: its own, or its workload's.
    pub selector: LabelSelector,
    /// Pods to delete now for a `restartAt` (their ReplicaSets make new ones).
    pub restart_pods: Vec<String>,
    pub create_runs: Vec<RunRequest>,
    /// Runs to stop (`spec.terminate`): the rollout moved on.
    pub terminate_runs: Vec<String>,
    /// Finished runs beyond the history.
    pub delete_runs: Vec<String>,
    /// Webhook gates to call now; their answers go into `status.webhooks`.
    pub call_webhooks: Vec<gates::GateCall>,
}

/// The selector a Rollout's Pods are chosen by: its own, or (when it has none) its workload's.
pub fn selector_of(rollout: &Rollout, workload_selector: Option<&LabelSelector>) -> LabelSelector {
    let own = &rollout.spec.selector;
    let empty = own.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && own.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    match (workload_selector, empty && rollout.spec.workload_ref.is_some()) {
        (Some(s), true) => s.clone(),
        _ => own.clone(),
    }
}

/// The template a Rollout runs: its own, or its workload's.
pub fn template_of(rollout: &Rollout, observed: &Observed) -> Option<PodTemplateSpec> {
    match &rollout.spec.template {
        Some(t) => Some(t.typed()),
        None => observed.workload_template.clone(),
    }
}

fn since(now: Timestamp, t: &Option<Time>) -> Duration {
    t.as_ref()
        .map(|t| now.duration_since(t.0).unsigned_abs())
        .unwrap_or_default()
}

/// What an analysis run means for the rollout.
enum RunVerdict {
    Pass,
    Running(String),
    /// Pause: (condition reason, message with the way forward).
    Hold(&'static str, String),
    Abort(String),
}

struct Planner<'a> {
    name: String,
    replicas: i32,
    now: Timestamp,
    observed: &'a Observed,
    canary: CanaryStrategy,
    /// Set for a blue-green Rollout; `canary` is then empty.
    blue_green: Option<BlueGreenStrategy>,
    /// `rollbackWindow.revisions`.
    rollback_window: usize,
    steps: Vec<CanaryStep>,
    routed: bool,
    surge: i32,
    unavailable: i32,
    st: RolloutStatus,
    decisions: Vec<Decision>,
    sizes: BTreeMap<String, i32>,
    /// The spec's template, labelled with its hash.
    current_template: PodTemplateSpec,
    requeue: Option<Duration>,
    weight: i32,
    phase: Phase,
    reason: &'static str,
    message: String,
    create_runs: Vec<RunRequest>,
    terminate_runs: Vec<String>,
    calls: Vec<gates::GateCall>,
}

impl<'a> Planner<'a> {
    fn attempt(&self) -> i32 {
        self.st.attempt.unwrap_or(0)
    }

    /// The attempt a version starts with: the first, unless runs of an earlier release of the same
    /// version are still kept (a return to an older version), whose names it must not reuse.
    fn fresh_attempt(&self, hash: &str) -> Option<i32> {
        self.observed
            .analysis_runs
            .iter()
            .filter(|r| r.hash == hash)
            .map(|r| r.attempt + 1)
            .max()
    }

    /// The run of the current version and attempt for a step (or the background).
    fn run_for(&self, hash: &str, step: Option<i32>) -> Option<&'a ObservedRun> {
        let attempt = self.attempt();
        self.observed
            .analysis_runs
            .iter()
            .find(|r| r.hash == hash && r.step == step && r.attempt == attempt)
    }

    fn request_run(&mut self, hash: &str, step: Option<i32>, analysis: RolloutAnalysis) {
        let which = self.run_label(step);
        let name = format!("{}-{hash}-{which}-{}", self.name, self.attempt());
        if !self.create_runs.iter().any(|r| r.name == name) {
            self.create_runs.push(RunRequest {
                name,
                step,
                attempt: self.attempt(),
                analysis,
            });
        }
    }

    /// `bg`, a step's number, or blue-green's `pre` and `post`.
    fn run_label(&self, step: Option<i32>) -> String {
        match (step, self.blue_green.is_some()) {
            (None, _) => "bg".into(),
            (Some(0), true) => "pre".into(),
            (Some(_), true) => "post".into(),
            (Some(s), false) => (s + 1).to_string(),
        }
    }

    fn judge_run(&self, run: &ObservedRun, what: &str) -> RunVerdict {
        match run.phase {
            AnalysisPhase::Successful => RunVerdict::Pass,
            AnalysisPhase::Failed => RunVerdict::Abort(format!("{what} failed ({})", run.message)),
            AnalysisPhase::Error if run.abort_on_error => {
                RunVerdict::Abort(format!("{what} kept erroring ({})", run.message))
            }
            AnalysisPhase::Inconclusive | AnalysisPhase::Error => RunVerdict::Hold(
                if run.phase == AnalysisPhase::Error {
                    "AnalysisError"
                } else {
                    "InconclusiveAnalysis"
                },
                format!(
                    "{what} is {} ({}): `kubectl serin promote {}` goes on, `kubectl serin abort {}` goes back",
                    run.phase.as_str().to_lowercase(),
                    run.message,
                    self.name,
                    self.name
                ),
            ),
            AnalysisPhase::Pending | AnalysisPhase::Running | AnalysisPhase::NoData => {
                RunVerdict::Running(format!("{what} running ({})", run.message))
            }
        }
    }

    /// Every run still measuring stops: the rollout moved on.
    fn terminate_runs(&mut self) {
        for r in &self.observed.analysis_runs {
            if !r.phase.is_finished() && !r.terminating && !self.terminate_runs.contains(&r.name) {
                self.terminate_runs.push(r.name.clone());
            }
        }
    }

    fn rs(&self, hash: &str) -> Option<&ObservedReplicaSet> {
        self.observed.replica_sets.iter().find(|r| r.hash == hash)
    }

    fn sizes_of(&self, hash: &str) -> Sizes {
        self.rs(hash)
            .map(|r| Sizes {
                spec: r.spec_replicas,
                available: r.available,
            })
            .unwrap_or_default()
    }

    fn ready_of(&self, hash: &str) -> i32 {
        self.rs(hash).map_or(0, |r| r.ready)
    }

    fn note(&mut self, severity: Severity, reason: &'static str, message: String) {
        let version = self.st.current_pod_hash.clone().unwrap_or_default();
        let action = format!("{reason}-{version}-{}", self.step_index() + 1);
        self.decisions.push(Decision {
            severity,
            reason,
            action,
            message,
        });
    }

    fn wake_in(&mut self, d: Duration) {
        let d = d.max(Duration::from_millis(100));
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }

    fn want(&mut self, hash: &str, replicas: i32) {
        self.sizes.insert(hash.to_string(), replicas.max(0));
    }

    fn now_time(&self) -> Time {
        Time(self.now)
    }

    fn step_index(&self) -> usize {
        self.st.current_step_index.unwrap_or(0).max(0) as usize
    }

    fn set_step(&mut self, index: usize) {
        self.st.current_step_index = Some(index as i32);
        self.st.current_step_started_at = Some(self.now_time());
        self.st.last_progress_at = Some(self.now_time());
    }

    fn scale_down_delay(&self) -> Duration {
        if let Some(bg) = &self.blue_green {
            return bluegreen::scale_down_delay(bg);
        }
        let default = if self.routed { 30 } else { 0 };
        Duration::from_secs(self.canary.scale_down_delay_seconds.unwrap_or(default).max(0) as u64)
    }

    /// How long an aborted new version keeps its Pods; `None` when it keeps them (a delay of 0,
    /// as in Argo Rollouts).
    fn abort_delay(&self) -> Option<Duration> {
        let seconds = match &self.blue_green {
            Some(bg) => bg.abort_scale_down_delay_seconds,
            None => self.canary.abort_scale_down_delay_seconds,
        };
        match seconds.unwrap_or(30) {
            s if s <= 0 => None,
            s => Some(Duration::from_secs(s as u64)),
        }
    }

    /// Without a router a canary's share of traffic is its share of ready Pods; a blue-green
    /// Rollout routes by its Services.
    fn traffic_by_pods(&self) -> bool {
        !self.routed && self.blue_green.is_none()
    }

    /// How many steps (or blue-green stages) a release walks.
    fn step_count(&self) -> usize {
        if self.blue_green.is_some() {
            bluegreen::STAGES
        } else {
            self.steps.len()
        }
    }

    /// A steady Rollout a person paused is Paused, as in Argo Rollouts: its next version will wait
    /// at its first step. The message says how to let it go.
    fn hold_if_paused(&mut self, spec_paused: bool) {
        let Some((reason, why)) = self.paused_by(spec_paused).filter(|_| self.phase == Phase::Healthy) else {
            return;
        };
        let release = if spec_paused {
            "set spec.paused to false to let it go".to_string()
        } else {
            format!("`kubectl serin resume {}` lets it go", self.name)
        };
        self.phase = Phase::Paused;
        self.reason = reason;
        self.message = format!(
            "{}; {why}: a new version will wait at its first step; {release}",
            self.message
        );
    }

    /// What holds the rollout by a person's hand: `spec.paused` or `kubectl serin pause`.
    fn paused_by(&self, spec_paused: bool) -> Option<(&'static str, &'static str)> {
        if spec_paused {
            Some(("SpecPaused", "spec.paused is true"))
        } else if self.st.user_paused == Some(true) {
            Some(("UserPaused", "paused by `kubectl serin pause`"))
        } else {
            None
        }
    }

    fn clear_abort(&mut self) {
        self.st.abort = None;
        self.st.aborted_at = None;
        self.st.abort_reason = None;
        self.st.canary_scale = None;
    }

    /// Going back to one of the last `rollbackWindow.revisions` stable versions (not the stable
    /// one itself) whose ReplicaSet is still there.
    fn in_rollback_window(&self, current: &str) -> bool {
        self.st
            .stable_history
            .iter()
            .skip(1)
            .take(self.rollback_window)
            .any(|h| h == current)
            && self.rs(current).is_some()
    }

    fn note_rollback_window(&mut self, current: &str) {
        self.note(
            Severity::Normal,
            "RollbackWithinWindow",
            format!(
                "version {current} was stable within the last {} versions (rollbackWindow): it is scaled straight back, without steps or analysis",
                self.rollback_window
            ),
        );
    }

    /// A rolling update (or a pause in one) keeps both versions' sizes as they are.
    fn hold_sizes(&mut self, stable: &str, current: &str) {
        let (c, s) = (self.sizes_of(current).spec, self.sizes_of(stable).spec);
        self.want(current, c);
        self.want(stable, s);
        self.scale_down_others();
        self.weight = self.pod_share(stable, current);
    }

    /// `restartAt`: the Pods created before it go one by one, no more unavailable at once than
    /// `maxUnavailable` allows; done when none is left. The Pods to delete now.
    fn restart(&mut self, spec: &crate::crd::rollout::RolloutSpec) -> Vec<String> {
        let Some(at) = spec.restart_at.clone() else {
            return Vec::new();
        };
        if self.st.restarted_at.as_ref() == Some(&at) || at.0 > self.now {
            if at.0 > self.now {
                self.wake_in(at.0.duration_since(self.now).unsigned_abs());
            }
            return Vec::new();
        }
        let old = &self.observed.pods_to_restart;
        if old.is_empty() {
            self.st.restarted_at = Some(at.clone());
            self.note(
                Severity::Normal,
                "Restarted",
                format!("every Pod created before {} was restarted (restartAt)", at.0),
            );
            return Vec::new();
        }
        let spec_total: i32 = self.observed.replica_sets.iter().map(|r| r.spec_replicas).sum();
        let available: i32 = self
            .observed
            .replica_sets
            .iter()
            .map(|r| r.available.min(r.spec_replicas))
            .sum::<i32>()
            .min(self.observed.ready_pods.unwrap_or(i32::MAX));
        let budget = self.unavailable.max(1) - (spec_total - available).max(0);
        self.wake_in(Duration::from_secs(1));
        if self.phase == Phase::Healthy {
            self.phase = Phase::Progressing;
            self.reason = "RolloutRestarting";
            self.message = format!(
                "restarting: {} Pods created before {} to go (restartAt)",
                old.len(),
                at.0
            );
        }
        old.iter().take(budget.max(0) as usize).cloned().collect()
    }

    /// A version that became stable, for the rollback window.
    /// Records the DestinationRule whose subsets the router labels now; the ones labelled before
    /// and no longer routed through are to be released.
    fn note_destination_rule(&mut self, spec: &crate::crd::rollout::RolloutSpec) -> Vec<String> {
        let now: Vec<String> = spec
            .strategy
            .traffic_routing()
            .and_then(|r| r.istio.as_ref())
            .and_then(|i| i.destination_rule.as_ref())
            .map(|dr| dr.name.clone())
            .into_iter()
            .collect();
        let before = std::mem::replace(&mut self.st.labelled_destination_rules, now.clone());
        before.into_iter().filter(|d| !now.contains(d)).collect()
    }

    fn remember_stable(&mut self, hash: &str) {
        self.st.stable_history.retain(|h| h != hash);
        self.st.stable_history.insert(0, hash.to_string());
        self.st.stable_history.truncate(STABLE_HISTORY);
    }

    /// `scaleDownDelayRevisionLimit`: how many old versions may wait out their delay at once.
    fn revision_limit(&self) -> Option<usize> {
        let limit = match &self.blue_green {
            Some(bg) => bg.scale_down_delay_revision_limit,
            None => self.canary.scale_down_delay_revision_limit,
        };
        limit.map(|l| l.max(0) as usize)
    }

    /// The old versions still within their scale-down delay, by hash, with when it ends: the
    /// newest `scaleDownDelayRevisionLimit` of them. A status written before deadlines were kept
    /// per version has only the previous stable and when it was promoted.
    fn draining(&self) -> BTreeMap<String, Timestamp> {
        // A canary that no longer routes (its router removed) has no delay unless one is asked.
        if self.blue_green.is_none() && !self.routed && self.canary.scale_down_delay_seconds.is_none() {
            return BTreeMap::new();
        }
        let mut all: Vec<(String, Timestamp)> = self
            .st
            .scale_down_deadlines
            .iter()
            .map(|d| (d.pod_hash.clone(), d.at.0))
            .collect();
        if let (Some(previous), Some(promoted)) = (&self.st.previous_stable_hash, &self.st.promoted_at)
            && self.st.scale_down_deadlines.is_empty()
            && let Ok(at) = promoted.0.checked_add(self.scale_down_delay())
        {
            all.push((previous.clone(), at));
        }
        all.retain(|(_, at)| *at > self.now);
        all.sort_by_key(|d| std::cmp::Reverse(d.1));
        all.truncate(self.revision_limit().unwrap_or(usize::MAX));
        all.into_iter().collect()
    }

    /// Every ReplicaSet not kept by name goes to 0, except old versions still within their
    /// scale-down delay after a promotion. Deadlines that passed, or whose version is gone or
    /// kept by name again, are forgotten.
    fn scale_down_others(&mut self) {
        let draining = self.draining();
        let others: Vec<(String, i32)> = self
            .observed
            .replica_sets
            .iter()
            .filter(|r| !self.sizes.contains_key(&r.hash))
            .map(|r| (r.hash.clone(), r.spec_replicas))
            .collect();
        let mut kept = Vec::new();
        for (hash, spec) in others {
            match draining.get(&hash) {
                Some(at) if spec > 0 => {
                    self.want(&hash, spec);
                    self.wake_in(at.duration_since(self.now).unsigned_abs());
                    kept.push(hash);
                }
                _ => self.want(&hash, 0),
            }
        }
        self.st.scale_down_deadlines.retain(|d| kept.contains(&d.pod_hash));
    }

    /// No canary: the current version is the stable one and gets every Pod.
    fn clear_routes(&mut self) {
        self.st.header_routes.clear();
        self.st.mirror_routes.clear();
    }

    fn steady(&mut self, current: &str) {
        self.terminate_runs();
        self.clear_routes();
        self.st.current_pod_hash = Some(current.to_string());
        self.st.current_step_index = Some(self.step_count() as i32);
        self.st.current_step_started_at = None;
        self.clear_abort();
        if self.blue_green.is_some() {
            let bg = self.st.blue_green.get_or_insert_default();
            bg.active_selector = Some(current.to_string());
            bg.preview_selector = Some(current.to_string());
            bg.ready_at = None;
            bg.promoted_full = None;
        }
        self.want(current, self.replicas);
        let stable_available = self.sizes_of(current).available;
        let draining = self.draining();
        // A canary left over goes as the stable fills up, so capacity never dips.
        let leftovers: Vec<(String, i32)> = self
            .observed
            .replica_sets
            .iter()
            .filter(|r| r.hash != current && !draining.contains_key(&r.hash))
            .map(|r| (r.hash.clone(), r.spec_replicas))
            .collect();
        for (hash, spec) in leftovers {
            self.want(&hash, spec.min((self.replicas - stable_available).max(0)));
        }
        self.scale_down_others();
        self.weight = 0;
        let others_gone = self
            .observed
            .replica_sets
            .iter()
            .filter(|r| r.hash != current)
            .all(|r| r.replicas == 0 && self.sizes.get(&r.hash) == Some(&0));
        // With a router or in blue-green the old version has no traffic once the new one has it
        // all: its Pods kept for the scale-down delay do not hold Healthy back. Without a router
        // they are traffic, and must be gone first.
        if stable_available >= self.replicas && (others_gone || !self.traffic_by_pods()) {
            self.phase = Phase::Healthy;
            self.reason = "RolloutHealthy";
            self.message = format!(
                "{}/{} Pods of version {current} available",
                stable_available, self.replicas
            );
            let old: Vec<i32> = self
                .observed
                .replica_sets
                .iter()
                .filter(|r| r.hash != current && r.replicas > 0)
                .map(|r| r.replicas)
                .collect();
            let pods: i32 = old.iter().sum();
            let whose = match old.len() {
                0 | 1 => "the old version".to_string(),
                n => format!("{n} old versions"),
            };
            if pods > 0 {
                self.message.push_str(&format!(
                    "; {pods} Pods of {whose} wait out the scale-down delay, without traffic"
                ));
            }
        } else {
            self.phase = Phase::Progressing;
            self.reason = "ReplicaSetUpdated";
            self.message = format!(
                "{}/{} Pods of version {current} available",
                stable_available, self.replicas
            );
        }
    }

    /// Percent of ready Pods that are the canary's: the traffic it gets without a router.
    fn pod_share(&self, stable: &str, current: &str) -> i32 {
        let c = self.ready_of(current);
        let s = self.ready_of(stable);
        if c + s == 0 {
            0
        } else {
            ((100 * c) as f64 / f64::from(c + s)).round() as i32
        }
    }

    fn move_towards(&mut self, stable: &str, current: &str, t: Targets) {
        // With a router and a full stable, the canary's Pods are extra by design, not a surge.
        let surge = if self.routed && self.canary.dynamic_stable_scale != Some(true) {
            self.replicas
        } else {
            self.surge
        };
        let next = step_towards(
            self.replicas,
            t,
            self.sizes_of(current),
            self.sizes_of(stable),
            surge,
            self.unavailable,
        );
        self.want(current, next.canary);
        self.want(stable, next.stable);
        self.scale_down_others();
    }

    /// All steps done: the canary grows to full size, then becomes the stable version.
    fn promote(&mut self, stable: &str, current: &str) {
        let n = self.steps.len();
        self.st.current_step_index = Some(n as i32);
        let stable_target = if self.routed && self.canary.dynamic_stable_scale != Some(true) {
            self.replicas
        } else {
            0
        };
        let t = Targets {
            canary: self.replicas,
            stable: stable_target,
        };
        self.move_towards(stable, current, t);
        let canary_available = self.sizes_of(current).available;
        // Without a router the old version's Pods are its traffic: the promotion waits for them to
        // go, and is then settled at once.
        let old_gone = self.routed || self.rs(stable).is_none_or(|r| r.replicas == 0 && r.spec_replicas == 0);
        if canary_available >= self.replicas && old_gone {
            self.become_stable(current, stable, self.now_time());
            if self.phase != Phase::Healthy {
                self.reason = "RolloutPromoted";
                self.message = format!("version {current} promoted; the old version's Pods are going");
            }
        } else {
            self.weight = if self.routed {
                self.promotion_weight(current)
            } else {
                self.pod_share(stable, current)
            };
            self.phase = Phase::Progressing;
            self.reason = "RolloutProgressing";
            self.message = if self.in_rollback_window(current) {
                format!(
                    "rolling back within the window to version {current}: {canary_available}/{} Pods available",
                    self.replicas
                )
            } else if self.steps.is_empty() {
                format!(
                    "rolling update: {canary_available}/{} Pods of version {current} available",
                    self.replicas
                )
            } else {
                format!("promoting: canary {canary_available}/{} Pods available", self.replicas)
            };
        }
    }

    /// The weight while the canary grows to full size: the last step's, once the canary has the
    /// Pods that step asks (it may have been met in this same look, and not written yet), else the
    /// one written (a promotion to the end skips weights whose Pods are not there).
    fn promotion_weight(&self, current: &str) -> i32 {
        let last = steps::weight_at(&self.steps, self.steps.len().saturating_sub(1));
        let dynamic = self.canary.dynamic_stable_scale == Some(true);
        let needs = replicas::targets(self.replicas, last, 0, true, dynamic, self.st.canary_scale).canary;
        let has = self.rs(current).map_or(0, |r| r.available);
        let written = self.st.canary_weight.unwrap_or(0);
        if has >= needs { written.max(last) } else { written }
    }

    /// The new version is stable; `previous` keeps its Pods for the scale-down delay counted from
    /// `since`. Straight to the settled state (runs stopped, routes cleared), in one status write.
    fn become_stable(&mut self, current: &str, previous: &str, since: Time) {
        self.note(
            Severity::Normal,
            "Promoted",
            format!("version {current} is promoted: it has all the traffic and becomes stable"),
        );
        self.post_rollout(true);
        self.st.scale_down_deadlines.retain(|d| d.pod_hash != current);
        if previous != current
            && let Ok(at) = since.0.checked_add(self.scale_down_delay())
            && at > self.now
        {
            self.st.scale_down_deadlines.retain(|d| d.pod_hash != previous);
            self.st
                .scale_down_deadlines
                .push(crate::crd::rollout::ScaleDownDeadline {
                    pod_hash: previous.to_string(),
                    at: Time(at),
                });
        }
        self.st.previous_stable_hash = Some(previous.to_string());
        self.st.promoted_at = Some(since);
        // Ping-pong: the Service the new version was canary on is now the stable one.
        if previous != current {
            self.st.stable_ping_pong = self.st.stable_ping_pong.map(|side| side.other());
        }
        self.remember_stable(current);
        self.st.stable_pod_hash = Some(current.to_string());
        self.st.last_progress_at = Some(self.now_time());
        self.sizes.clear();
        self.steady(current);
        if self.routed {
            // Routes are set before Services: the route keeps all traffic on the new version's
            // Service until the stable (active) Service selects it, on the next reconcile.
            self.weight = 100;
            self.phase = Phase::Progressing;
        }
    }

    /// `kubectl serin retry` of an aborted version (a new attempt, from `step`, saying `retried`)
    /// or `kubectl serin abort`. Whether a promotion to the end was asked and may go ahead.
    fn retry_or_abort(&mut self, control: &crate::crd::rollout::ControlRequests, step: usize, retried: String) -> bool {
        let aborted = self.st.abort == Some(true);
        if control.retry == Some(true) && aborted {
            self.clear_abort();
            self.st.attempt = Some(self.attempt() + 1);
            self.st.acknowledged_run = None;
            if let Some(bg) = self.st.blue_green.as_mut() {
                bg.ready_at = None;
                bg.promoted_full = None;
            }
            self.set_step(step);
            self.note(Severity::Normal, "Retried", retried);
        } else if control.abort == Some(true) && !aborted {
            self.abort("aborted on request".to_string());
        } else if control.promote_full == Some(true) && aborted {
            // As in Argo Rollouts: a person may promote an aborted version to the end anyway.
            self.clear_abort();
            self.note(
                Severity::Normal,
                "PromotedAfterAbort",
                "the aborted version is promoted to the end on request".to_string(),
            );
        }
        self.st.abort != Some(true) && control.promote_full == Some(true)
    }

    /// Aborts for `why` (what failed, or "aborted on request"), which the status keeps.
    fn abort(&mut self, why: String) {
        let stable = self.st.stable_pod_hash.clone().unwrap_or_default();
        self.st.abort = Some(true);
        self.st.aborted_at = Some(self.now_time());
        self.st.abort_reason = Some(why.clone());
        self.note(
            Severity::Warning,
            "Aborted",
            format!("{why}: traffic goes back to stable {stable}"),
        );
        self.post_rollout(false);
    }

    /// An aborted canary behind a router (or an aborted blue-green preview): the stable comes back
    /// whole and the canary's Pods go after `abortScaleDownDelaySeconds` (0 keeps them). With
    /// dynamic stable scaling the stable may be small: traffic moves back only as fast as the
    /// stable's Pods become available, and the canary shrinks with its share (or, with a delay
    /// asked for, waits it out from when all traffic is back), as in Argo Rollouts.
    fn routed_abort(&mut self, stable: &str, current: &str) {
        let dynamic = self.canary.dynamic_stable_scale == Some(true) && self.blue_green.is_none();
        let recorded = self
            .st
            .scale_down_deadlines
            .iter()
            .find(|d| d.pod_hash == current)
            .map(|d| d.at.0);
        self.want(stable, self.replicas);
        let canary_spec = self.sizes_of(current).spec;
        if dynamic {
            self.weight = self.weight_back_to(stable);
        }
        let asked = match &self.blue_green {
            Some(bg) => bg.abort_scale_down_delay_seconds.is_some(),
            None => self.canary.abort_scale_down_delay_seconds.is_some(),
        };
        let (canary, deadline) = match self.abort_delay() {
            None => (canary_spec, None),
            // Without a delay asked for, the canary keeps only what its share of traffic needs.
            Some(_) if dynamic && !asked => (replicas::for_weight(self.replicas, self.weight).min(canary_spec), None),
            Some(delay) => {
                let from = if dynamic {
                    (self.weight == 0).then(|| recorded.or_else(|| self.now.checked_add(delay).ok()))
                } else {
                    self.st.aborted_at.as_ref().map(|t| t.0.checked_add(delay).ok())
                };
                match from.flatten() {
                    Some(at) if at <= self.now => (0, None),
                    at => (canary_spec, at),
                }
            }
        };
        self.want(current, canary);
        self.scale_down_others();
        // The status says when the canary's Pods go, as it does for an old stable's.
        if let Some(at) = deadline.filter(|_| canary > 0) {
            self.wake_in(at.duration_since(self.now).unsigned_abs());
            self.st
                .scale_down_deadlines
                .push(crate::crd::rollout::ScaleDownDeadline {
                    pod_hash: current.to_string(),
                    at: Time(at),
                });
        }
    }

    /// The canary's share while traffic goes back to a stable that is not yet whole: what the
    /// stable's available Pods cannot take, never more than the route carries now.
    fn weight_back_to(&self, stable: &str) -> i32 {
        let available = self.sizes_of(stable).available.clamp(0, self.replicas.max(1));
        let expected = 100 - 100 * available / self.replicas.max(1);
        expected.min(self.st.canary_weight.unwrap_or(expected)).max(0)
    }

    /// Traffic back on stable at once; the canary's Pods go after the delay (with a router) or
    /// as the stable fills up (without one, where Pods are the traffic).
    fn aborted(&mut self, stable: &str, current: &str) {
        self.terminate_runs();
        self.clear_routes();
        self.weight = 0;
        if self.traffic_by_pods() {
            // The Pods are the traffic: the stable comes back within maxSurge and the canary goes
            // as availability allows, as in any other move between two sizes.
            self.move_towards(
                stable,
                current,
                Targets {
                    canary: 0,
                    stable: self.replicas,
                },
            );
            self.weight = self.pod_share(stable, current);
        } else {
            self.routed_abort(stable, current);
        }
        self.phase = Phase::Degraded;
        self.reason = "RolloutAborted";
        // Why it was aborted stays in the message: "aborted on request", "aborted: analysis ... failed".
        let why = match self.st.abort_reason.as_deref() {
            Some(r) if r.starts_with("aborted") => r.to_string(),
            Some(r) => format!("aborted: {r}"),
            None => "aborted".to_string(),
        };
        // Without a router the canary's Pods take their share until they are gone: only then is
        // traffic back on stable.
        let canary_ready = self.ready_of(current);
        let traffic = if self.traffic_by_pods() && canary_ready > 0 {
            format!(
                "traffic is going back to stable version {stable}: the canary's {canary_ready} ready Pods take {}% until they are gone",
                self.weight
            )
        } else if self.weight > 0 {
            format!(
                "traffic is going back to stable version {stable} as its Pods become available: the canary keeps {}% meanwhile",
                self.weight
            )
        } else {
            format!("traffic is back on stable version {stable}")
        };
        self.message = format!(
            "{why}: {traffic}; `kubectl serin retry {}` runs the steps again, a new template starts a new rollout",
            self.name
        );
    }
}

/// Sets a named route; a route without matches is the step's way of removing it.
fn upsert(routes: &mut Vec<ManagedRoute>, route: ManagedRoute) {
    routes.retain(|r| r.name != route.name);
    if !route.match_.is_empty() || !route.requests.is_empty() {
        routes.push(route);
    }
}

/// The whole decision for one look at a Rollout.
pub fn plan(rollout: &Rollout, observed: &Observed, now: Timestamp) -> Plan {
    let spec = &rollout.spec;
    let generation = rollout.metadata.generation;
    let mut st = rollout.status.clone().unwrap_or_default();
    let now_time = Time(now);
    let control = st.control.take().unwrap_or_default();
    let mut conds = st.conditions.take().unwrap_or_default();
    // Ping-pong starts with ping on the stable version, as in Argo Rollouts.
    st.stable_ping_pong = match spec.strategy.canary.as_ref().and_then(|c| c.ping_pong.as_ref()) {
        Some(_) => Some(st.stable_ping_pong.unwrap_or_default()),
        None => None,
    };
    // Which generation of the workloadRef's Deployment this look saw (as Argo Rollouts says it).
    st.workload_observed_generation = spec
        .workload_ref
        .as_ref()
        .and(observed.workload_generation)
        .map(|g| g.to_string());
    let template = template_of(rollout, observed);
    let effective_selector = selector_of(rollout, observed.workload_selector.as_ref());
    let mut problems = validate::problems(spec, &effective_selector, template.as_ref());
    problems.extend(
        observed
            .missing_templates
            .iter()
            .map(|t| format!("{t} not found: create it, or name one that exists")),
    );
    let selector = selector_string(&effective_selector);
    let Some(template) = template.filter(|_| problems.is_empty()) else {
        return invalid(st, conds, control, &problems, selector, generation, &now_time);
    };
    conditions::remove(&mut conds, conditions::INVALID_SPEC);
    // The shell sets this one when a router refuses; a plan that gets written means it worked.
    conditions::remove(&mut conds, "TrafficRouting");
    plugin_condition(spec, &mut conds, generation, &now_time);
    if let Some(pause) = control.pause {
        st.user_paused = pause.then_some(true);
    }
    let previous_canary_available = st.updated_available_replicas.unwrap_or(0);
    let name = rollout.metadata.name.clone().unwrap_or_default();
    let mut p = Planner::new(name, spec, observed, now, st);
    let current = pod_template_hash(&template);
    let mut current_template = template;
    current_template
        .metadata
        .get_or_insert_default()
        .labels
        .get_or_insert_default()
        .insert(HASH_LABEL.into(), current.clone());
    p.current_template = current_template;
    p.decide(&current, &control, spec.paused == Some(true));

    // The progress deadline counts only while the rollout should be moving; steps, promotions and
    // more available Pods of the new version are progress.
    let updated_available = p.rs(&current).map_or(0, |r| r.available);
    if updated_available > previous_canary_available {
        p.st.last_progress_at = Some(Time(now));
    }
    let deadline_exceeded = p.check_deadline(spec, &conds, &current);
    if p.phase == Phase::Paused && p.st.phase != Some(Phase::Paused) {
        p.note(Severity::Normal, "Paused", p.message.clone());
    }
    let restart_pods = p.restart(spec);
    p.write_status(&current, selector, generation);
    let available = p.st.available_replicas.unwrap_or(0);
    p.set_conditions(&mut conds, deadline_exceeded, available, generation, &now_time);
    p.st.conditions = Some(conds);
    p.into_plan(spec, &current, effective_selector, restart_pods)
}

/// Whether `spec.restartAt` asks for a restart not yet done.
pub fn restart_pending(rollout: &Rollout) -> bool {
    let done = rollout.status.as_ref().and_then(|s| s.restarted_at.as_ref());
    rollout.spec.restart_at.as_ref().is_some_and(|at| done != Some(at))
}

impl<'a> Planner<'a> {
    fn new(
        name: String,
        spec: &crate::crd::rollout::RolloutSpec,
        observed: &'a Observed,
        now: Timestamp,
        st: RolloutStatus,
    ) -> Self {
        let replicas = spec.replicas.unwrap_or(1).max(0);
        let canary = spec.strategy.canary.as_deref().cloned().unwrap_or_default();
        let blue_green = spec.strategy.blue_green.as_deref().cloned();
        let steps = if blue_green.is_some() {
            Vec::new()
        } else {
            steps::effective_steps(&canary)
        };
        Planner {
            name,
            replicas,
            now,
            observed,
            routed: spec.strategy.traffic_routing().is_some(),
            surge: resolve(canary.max_surge.as_ref(), replicas, true, 25),
            unavailable: resolve(canary.max_unavailable.as_ref(), replicas, false, 25),
            canary,
            blue_green,
            rollback_window: spec
                .rollback_window
                .as_ref()
                .and_then(|w| w.revisions)
                .unwrap_or(0)
                .max(0) as usize,
            steps,
            st,
            decisions: Vec::new(),
            sizes: BTreeMap::new(),
            current_template: PodTemplateSpec::default(),
            requeue: None,
            weight: 0,
            phase: Phase::Progressing,
            reason: "",
            message: String::new(),
            create_runs: Vec::new(),
            terminate_runs: Vec::new(),
            calls: Vec::new(),
        }
    }

    /// Where the version the spec asks for stands against the stable one, and what to do.
    fn decide(&mut self, current: &str, control: &crate::crd::rollout::ControlRequests, spec_paused: bool) {
        let stable = self
            .st
            .stable_pod_hash
            .clone()
            .filter(|s| *s == current || self.rs(s).is_some());
        match stable {
            None => {
                self.note(
                    Severity::Normal,
                    "FirstRevision",
                    format!("version {current} is the first: it gets every Pod at once"),
                );
                self.st.stable_pod_hash = Some(current.to_string());
                self.remember_stable(current);
                self.st.last_progress_at = Some(self.now_time());
                self.steady(current);
            }
            Some(s)
                if s == current
                    && self.blue_green.is_some()
                    && self.switch_back_after_promotion(current, control).is_some() =>
            {
                let back = self.st.stable_pod_hash.clone().unwrap_or_default();
                self.blue_green(&back, current, control, spec_paused);
            }
            Some(s) if s == current => {
                if let Some(was) = self.st.current_pod_hash.clone().filter(|c| c != current) {
                    self.note(
                        Severity::Normal,
                        "BackToStable",
                        format!(
                            "the template is stable version {current} again: version {was} is scaled down without steps"
                        ),
                    );
                }
                self.steady(current);
                self.hold_if_paused(spec_paused);
            }
            Some(s) if self.blue_green.is_some() => self.blue_green(&s, current, control, spec_paused),
            Some(s) => self.canary(&s, current, control, spec_paused),
        }
    }

    /// Pod counts, the step in words, the phase and message.
    fn write_status(&mut self, current: &str, selector: String, generation: Option<i64>) {
        let observed = self.observed;
        let n = self.step_count();
        let idx = self.step_index().min(n);
        self.st.step = Some(if n == 0 {
            "0/0".into()
        } else {
            format!("{}/{n}", (idx + 1).min(n))
        });
        self.st.canary_weight = Some(self.weight);
        self.st.replicas = Some(observed.replica_sets.iter().map(|r| r.replicas).sum());
        self.st.updated_replicas = Some(self.rs(current).map_or(0, |r| r.replicas));
        self.st.updated_available_replicas = Some(self.rs(current).map_or(0, |r| r.available));
        // Blue-green counts what serves: the active version's Pods, not the preview's beside them.
        let active = self
            .blue_green
            .as_ref()
            .and_then(|_| self.st.blue_green.as_ref()?.active_selector.clone())
            .and_then(|hash| self.rs(&hash));
        let (ready, available) = match active {
            Some(rs) => (rs.ready, rs.available),
            None => (
                observed.replica_sets.iter().map(|r| r.ready).sum(),
                observed.replica_sets.iter().map(|r| r.available).sum(),
            ),
        };
        self.st.ready_replicas = Some(ready);
        self.st.available_replicas = Some(available);
        self.st.selector = Some(selector);
        self.st.observed_generation = generation;
        self.st.phase = Some(self.phase);
        self.st.message = Some(self.message.clone());
    }

    /// The plan for the shell: ReplicaSets with their sizes and role metadata, Services, runs.
    fn into_plan(
        mut self,
        spec: &crate::crd::rollout::RolloutSpec,
        current: &str,
        selector: LabelSelector,
        restart_pods: Vec<String>,
    ) -> Plan {
        // ReplicaSets: those with a size, and old ones beyond the history limit.
        let (delete, deleted_hashes) = self.old_replica_sets(spec, current);
        let replica_sets = self
            .sizes
            .iter()
            .filter(|(h, _)| !deleted_hashes.contains(h))
            .filter(|(h, _)| *h == current || self.rs(h).is_some())
            .map(|(h, n)| DesiredReplicaSet {
                hash: h.clone(),
                template: (h == current).then(|| self.current_template.clone()),
                replicas: *n,
                pod_metadata: pod_metadata::wanted(spec, &self.st, h),
            })
            .collect();
        // Blue-green: the active Service is the stable one of the plan, the preview the canary one.
        // With a router the route switches, and the active Service follows once promoted.
        let stable_hash = match self
            .st
            .blue_green
            .as_ref()
            .filter(|_| self.blue_green.is_some() && !self.routed)
        {
            Some(bg) => bg.active_selector.clone().or(self.st.stable_pod_hash.clone()),
            None => self.st.stable_pod_hash.clone(),
        };
        // An abort takes the canary Service back to stable; blue-green's preview stays.
        let canary_hash = if self.st.abort == Some(true) && self.blue_green.is_none() {
            self.st.stable_pod_hash.clone()
        } else {
            Some(current.to_string())
        };
        let workload_replicas = workload_replicas(spec, self.phase, self.st.available_replicas.unwrap_or(0));
        // Analysis: what the current version's runs say, and the old finished runs to forget.
        let delete_runs = self.summarise_runs(current);
        let release_destination_rules = self.note_destination_rule(spec);
        let named = spec.strategy.all_service_names();
        let release_services = self
            .observed
            .pointed_services
            .iter()
            .filter(|s| !named.contains(s))
            .cloned()
            .collect();
        Plan {
            replica_sets,
            delete,
            stable_service_hash: stable_hash,
            canary_service_hash: canary_hash,
            release_services,
            release_destination_rules,
            weight: self.weight,
            status: self.st,
            decisions: self.decisions,
            requeue_after: self.requeue,
            workload_replicas,
            selector,
            restart_pods,
            create_runs: self.create_runs,
            terminate_runs: self.terminate_runs,
            delete_runs,
            call_webhooks: self.calls,
        }
    }
}

/// A spec that cannot be acted on: a condition and an Event saying why, and nothing changed.
fn invalid(
    mut st: RolloutStatus,
    mut conds: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    control: crate::crd::rollout::ControlRequests,
    problems: &[String],
    selector: String,
    generation: Option<i64>,
    now_time: &Time,
) -> Plan {
    let message = problems.join("; ");
    let mut decisions = Vec::new();
    let already = conds
        .iter()
        .any(|c| c.type_ == conditions::INVALID_SPEC && c.message == message);
    if !already {
        decisions.push(Decision {
            severity: Severity::Warning,
            reason: "InvalidSpec",
            action: format!("Validate-{}", generation.unwrap_or(0)),
            message: message.clone(),
        });
    }
    conditions::set(
        &mut conds,
        conditions::INVALID_SPEC,
        true,
        "InvalidSpec",
        &message,
        generation,
        now_time,
    );
    conditions::set(
        &mut conds,
        conditions::HEALTHY,
        false,
        "InvalidSpec",
        &message,
        generation,
        now_time,
    );
    st.conditions = Some(conds);
    st.phase = Some(Phase::Degraded);
    st.message = Some(format!("invalid spec: {message}"));
    st.observed_generation = generation;
    st.selector = Some(selector);
    // Requests wait until the spec can be acted on.
    st.control = Some(control).filter(|c| *c != Default::default());
    Plan {
        replica_sets: Vec::new(),
        delete: Vec::new(),
        stable_service_hash: None,
        canary_service_hash: None,
        release_services: Vec::new(),
        release_destination_rules: Vec::new(),
        weight: st.canary_weight.unwrap_or(0),
        status: st,
        decisions,
        requeue_after: None,
        workload_replicas: None,
        selector: LabelSelector::default(),
        restart_pods: Vec::new(),
        create_runs: Vec::new(),
        terminate_runs: Vec::new(),
        delete_runs: Vec::new(),
        call_webhooks: Vec::new(),
    }
}

impl Planner<'_> {
    /// The progress deadline counts only while the rollout should be moving. Whether it passed
    /// (and the rollout is Degraded rather than aborted).
    fn check_deadline(
        &mut self,
        spec: &crate::crd::rollout::RolloutSpec,
        conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        current: &str,
    ) -> bool {
        let now = self.now;
        let deadline = Duration::from_secs(spec.progress_deadline_seconds.unwrap_or(600).max(1) as u64);
        let mut deadline_exceeded = false;
        if self.phase == Phase::Progressing {
            let idle = since(now, &self.st.last_progress_at);
            if idle >= deadline {
                if spec.progress_deadline_abort == Some(true) && self.st.stable_pod_hash.as_deref() != Some(current) {
                    let stable = self.st.stable_pod_hash.clone().unwrap_or_default();
                    self.abort(format!(
                        "no progress for {}s (progressDeadlineSeconds)",
                        deadline.as_secs()
                    ));
                    self.sizes.clear();
                    self.aborted(&stable, current);
                } else {
                    deadline_exceeded = true;
                    if !conditions::is_true(conds, conditions::PROGRESSING) || self.st.phase != Some(Phase::Degraded) {
                        self.note(
                            Severity::Warning,
                            "ProgressDeadlineExceeded",
                            format!("no progress for {}s: {}", deadline.as_secs(), self.message),
                        );
                    }
                    self.phase = Phase::Degraded;
                    self.reason = "ProgressDeadlineExceeded";
                    self.message = format!("no progress for {}s: {}", deadline.as_secs(), self.message);
                }
            } else {
                self.wake_in(deadline - idle);
            }
        }

        deadline_exceeded
    }

    /// The Progressing, Available, Healthy and Paused conditions.
    fn set_conditions(
        &self,
        conds: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
        deadline_exceeded: bool,
        available: i32,
        generation: Option<i64>,
        now_time: &Time,
    ) {
        let replicas = self.replicas;
        let minimum = replicas - self.unavailable;
        let progressing = match self.phase {
            Phase::Degraded if deadline_exceeded => (false, "ProgressDeadlineExceeded"),
            Phase::Degraded => (false, self.reason),
            Phase::Healthy => (true, "NewReplicaSetAvailable"),
            _ => (true, self.reason),
        };
        conditions::set(
            conds,
            conditions::PROGRESSING,
            progressing.0,
            progressing.1,
            &self.message,
            generation,
            now_time,
        );
        conditions::set(
            conds,
            conditions::AVAILABLE,
            available >= minimum,
            if available >= minimum {
                "MinimumReplicasAvailable"
            } else {
                "MinimumReplicasUnavailable"
            },
            &format!("{available} of {replicas} Pods available (at least {minimum} needed)"),
            generation,
            now_time,
        );
        conditions::set(
            conds,
            conditions::HEALTHY,
            self.phase == Phase::Healthy,
            self.phase.as_str(),
            &self.message,
            generation,
            now_time,
        );
        let paused_reason = if self.phase == Phase::Paused {
            self.reason
        } else {
            "NotPaused"
        };
        conditions::set(
            conds,
            conditions::PAUSED,
            self.phase == Phase::Paused,
            paused_reason,
            if self.phase == Phase::Paused { &self.message } else { "" },
            generation,
            now_time,
        );
    }

    /// ReplicaSets scaled to nothing beyond the history limit, to delete: names and hashes.
    fn old_replica_sets(&self, spec: &crate::crd::rollout::RolloutSpec, current: &str) -> (Vec<String>, Vec<String>) {
        let observed = self.observed;
        let limit = spec.revision_history_limit.unwrap_or(2).max(0) as usize;
        let keep_hashes = [
            Some(current.to_string()),
            self.st.stable_pod_hash.clone(),
            self.st.previous_stable_hash.clone(),
        ];
        let mut old: Vec<&ObservedReplicaSet> = observed
            .replica_sets
            .iter()
            .filter(|r| {
                !keep_hashes.contains(&Some(r.hash.clone()))
                    && self.sizes.get(&r.hash) == Some(&0)
                    && r.spec_replicas == 0
                    && r.replicas == 0
            })
            .collect();
        old.sort_by_key(|r| std::cmp::Reverse(r.created));
        let delete: Vec<String> = old.iter().skip(limit).map(|r| r.name.clone()).collect();
        let deleted_hashes: Vec<String> = old.iter().skip(limit).map(|r| r.hash.clone()).collect();
        (delete, deleted_hashes)
    }

    /// The current version's runs into status; the finished runs beyond the history to delete.
    fn summarise_runs(&mut self, current: &str) -> Vec<String> {
        let observed = self.observed;
        let attempt = self.attempt();
        let mut mine: Vec<&ObservedRun> = observed
            .analysis_runs
            .iter()
            .filter(|r| r.hash == current && r.attempt == attempt)
            .collect();
        mine.sort_by_key(|r| (r.step.is_some(), r.step));
        self.st.analysis = mine
            .iter()
            .map(|r| AnalysisSummary {
                run: r.name.clone(),
                step: match (r.step, self.blue_green.is_some()) {
                    (Some(_), true) => format!("{}-promotion", self.run_label(r.step)),
                    (None, _) => "background".to_string(),
                    (Some(s), false) => (s + 1).to_string(),
                },
                phase: r.phase.as_str().to_string(),
                metrics: r.metrics.clone(),
            })
            .collect();
        let mut finished: Vec<&ObservedRun> = observed
            .analysis_runs
            .iter()
            .filter(|r| r.phase.is_finished() && !(r.hash == current && r.attempt == attempt))
            .collect();
        finished.sort_by_key(|r| std::cmp::Reverse(r.created));
        finished
            .iter()
            .skip(ANALYSIS_RUN_HISTORY)
            .map(|r| r.name.clone())
            .collect()
    }
}

/// The selector as a string, for the scale subresource.
fn selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// Argo's Gateway API plugin block works as it is, and a condition says it is not needed.
fn plugin_condition(
    spec: &crate::crd::rollout::RolloutSpec,
    conds: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    generation: Option<i64>,
    now: &Time,
) {
    let plugin = spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
        .and_then(|r| r.plugins.as_ref())
        .is_some_and(|p| p.contains_key(crate::crd::rollout::GATEWAY_API_PLUGIN));
    if plugin {
        conditions::set(
            conds,
            conditions::ROUTER_PLUGIN,
            false,
            "NativeRouter",
            "trafficRouting.plugins.argoproj-labs/gatewayAPI is read as Serin's own gatewayAPI router: no plugin is needed, and trafficRouting.gatewayAPI says the same",
            generation,
            now,
        );
    } else {
        conditions::remove(conds, conditions::ROUTER_PLUGIN);
    }
}

/// The size for a `workloadRef` Deployment: `onsuccess` scales it to 0 once the Rollout is
/// healthy, `progressively` by as many Pods as the Rollout has available; `never` leaves it.
fn workload_replicas(spec: &crate::crd::rollout::RolloutSpec, phase: Phase, available: i32) -> Option<i32> {
    use crate::crd::rollout::WorkloadScaleDown;
    let mode = spec.workload_ref.as_ref()?.scale_down.unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    match mode {
        WorkloadScaleDown::Never => None,
        WorkloadScaleDown::OnSuccess => (phase == Phase::Healthy).then_some(0),
        WorkloadScaleDown::Progressively => Some((replicas - available).max(0)),
    }
}

#[cfg(test)]
mod tests;
