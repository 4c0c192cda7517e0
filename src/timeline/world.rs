//! An ideal cluster for the timeline: the controller's own plan function decides, ReplicaSets get
//! their Pods at once (ready after `podStartup`, available `minReadySeconds` later), webhook
//! gates answer 200, and each AnalysisRun measures on the schedule of the analysis code with the
//! outcomes the scenario gives.

use crate::analysis::rules::rules_for;
use crate::analysis::verdict::{self, Outcome};
use crate::crd::analysis::{AnalysisPhase, AnalysisRunSpec, AnalysisRunStatus, Metric, MetricResult};
use crate::crd::rollout::{ControlRequests, Phase, Rollout};
use crate::plan::{Observed, ObservedReplicaSet, ObservedRun, Plan, gates, plan};
use crate::reconcile::analysis_templates::resolve_from;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use std::time::Duration;

use super::Templates;

/// How every measurement of a scenario turns out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measuring {
    /// Data from the first look, every value good: an analysis ends as soon as its rules allow.
    Passing,
    /// No data at first, as many times in a row as the metric tolerates, then good values: the
    /// longest an analysis can take and still pass.
    SlowPassing,
}

/// Which run fails, every measurement of it: the one made for this step (`None`: background).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing {
    pub step: Option<i32>,
}

struct Run {
    observed: ObservedRun,
    /// `None` when the templates could not be resolved: the run is in error from the start.
    spec: Option<AnalysisRunSpec>,
    status: AnalysisRunStatus,
    fails: bool,
}

struct Versions {
    observed: ObservedReplicaSet,
    /// When each Pod is (or was) ready.
    ready_at: Vec<Timestamp>,
}

/// What one reconcile decided, as the timeline needs it.
#[derive(Debug, Clone)]
pub struct Look {
    pub now: Timestamp,
    pub plan: Plan,
    /// Ready Pods of the version being released, and of every other version.
    pub new_ready: i32,
    pub old_ready: i32,
    /// The Pods each version is asked to have.
    pub new_pods: i32,
    pub old_pods: i32,
}

pub struct World<'a> {
    pub rollout: Rollout,
    templates: &'a Templates,
    pub now: Timestamp,
    pod_startup: Duration,
    measuring: Measuring,
    failing: Option<Failing>,
    versions: Vec<Versions>,
    runs: Vec<Run>,
    /// Problems with the analysis templates, once each.
    pub problems: Vec<String>,
    /// The version before the one planned is running: its template differs.
    pub previous: bool,
    /// ReplicaSets changed since the plan last looked: their watch events bring another look.
    changed: bool,
}

impl<'a> World<'a> {
    pub fn new(rollout: Rollout, templates: &'a Templates, start: Timestamp, pod_startup: Duration) -> Self {
        World {
            rollout,
            templates,
            now: start,
            pod_startup,
            measuring: Measuring::Passing,
            failing: None,
            versions: Vec::new(),
            runs: Vec::new(),
            problems: Vec::new(),
            previous: false,
            changed: false,
        }
    }

    pub fn set_scenario(&mut self, measuring: Measuring, failing: Option<Failing>) {
        self.measuring = measuring;
        self.failing = failing;
    }

    fn min_ready(&self) -> Duration {
        Duration::from_secs(self.rollout.spec.min_ready_seconds.unwrap_or(0).max(0) as u64)
    }

    fn observed(&mut self) -> Observed {
        self.changed = false;
        let min_ready = self.min_ready();
        let now = self.now;
        for v in &mut self.versions {
            let ready = v.ready_at.iter().filter(|t| **t <= now).count() as i32;
            let available = v
                .ready_at
                .iter()
                .filter(|t| t.checked_add(min_ready).is_ok_and(|a| a <= now))
                .count() as i32;
            v.observed.ready = ready;
            v.observed.available = available;
        }
        let mut workload = workload_of(&self.rollout);
        if self.previous
            && let Some(t) = &mut workload.workload_template
        {
            mark_previous(t);
        }
        Observed {
            replica_sets: self.versions.iter().map(|v| v.observed.clone()).collect(),
            analysis_runs: self.runs.iter().map(|r| r.observed.clone()).collect(),
            ..workload
        }
    }

    /// One reconcile at `now`: plan, then carry the plan out.
    pub fn look(&mut self) -> Look {
        let observed = self.observed();
        let mut p = plan(&self.rollout, &observed, self.now);
        self.resize(&p);
        self.start_runs(&p);
        for name in &p.terminate_runs {
            for r in self.runs.iter_mut().filter(|r| &r.observed.name == name) {
                r.observed.terminating = true;
                if !r.observed.phase.is_finished() {
                    r.observed.phase = AnalysisPhase::Successful;
                }
            }
        }
        self.runs.retain(|r| !p.delete_runs.contains(&r.observed.name));
        for call in &p.call_webhooks {
            let answer = gates::answer_record(&p.status, call, Ok(200), self.now);
            gates::record(&mut p.status.webhooks, answer);
        }
        self.rollout.status = Some(p.status.clone());
        let current = p.status.current_pod_hash.clone().unwrap_or_default();
        let count = |new: bool, f: &dyn Fn(&Versions) -> i32| {
            self.versions
                .iter()
                .filter(|v| (v.observed.hash == current) == new)
                .map(f)
                .sum::<i32>()
        };
        let ready = |v: &Versions| v.ready_at.iter().filter(|t| **t <= self.now).count() as i32;
        let asked = |v: &Versions| v.observed.spec_replicas;
        Look {
            now: self.now,
            new_ready: count(true, &ready),
            old_ready: count(false, &ready),
            new_pods: count(true, &asked),
            old_pods: count(false, &asked),
            plan: p,
        }
    }

    fn resize(&mut self, p: &Plan) {
        let ready_at = self.now.checked_add(self.pod_startup).unwrap_or(self.now);
        for d in &p.replica_sets {
            let v = match self.versions.iter_mut().position(|v| v.observed.hash == d.hash) {
                Some(i) => &mut self.versions[i],
                None => {
                    self.versions.push(Versions {
                        observed: ObservedReplicaSet {
                            name: format!("rs-{}", d.hash),
                            hash: d.hash.clone(),
                            spec_replicas: 0,
                            replicas: 0,
                            ready: 0,
                            available: 0,
                            created: self.now,
                            pod_metadata: d.pod_metadata.clone(),
                        },
                        ready_at: Vec::new(),
                    });
                    let last = self.versions.len() - 1;
                    &mut self.versions[last]
                }
            };
            let want = d.replicas.max(0) as usize;
            // Pods not yet ready go first, as a ReplicaSet controller removes them.
            v.ready_at.sort();
            v.ready_at.resize(want.min(v.ready_at.len()), ready_at);
            while v.ready_at.len() < want {
                v.ready_at.push(ready_at);
            }
            self.changed |= v.observed.spec_replicas != d.replicas;
            v.observed.spec_replicas = d.replicas;
            v.observed.replicas = d.replicas;
            v.observed.pod_metadata = d.pod_metadata.clone();
        }
        let before = self.versions.len();
        self.versions.retain(|v| !p.delete.contains(&v.observed.name));
        self.changed |= self.versions.len() != before;
    }

    fn start_runs(&mut self, p: &Plan) {
        let current = p.status.current_pod_hash.clone().unwrap_or_default();
        let stable = p.status.stable_pod_hash.clone().unwrap_or_default();
        for req in &p.create_runs {
            let background = req.step.is_none();
            let resolved = resolve_from(
                self.templates,
                &self.rollout,
                &req.analysis,
                (&current, &stable),
                background,
            );
            let (spec, phase, message) = match resolved {
                Ok(spec) => (Some(spec), AnalysisPhase::Running, String::new()),
                Err(e) => {
                    let problem = e.to_string();
                    if !self.problems.contains(&problem) {
                        self.problems.push(problem.clone());
                    }
                    (None, AnalysisPhase::Error, problem)
                }
            };
            self.runs.push(Run {
                observed: ObservedRun {
                    name: req.name.clone(),
                    hash: current.clone(),
                    step: req.step,
                    attempt: req.attempt,
                    phase,
                    abort_on_error: false,
                    terminating: false,
                    message,
                    metrics: Vec::new(),
                    created: self.now,
                },
                spec,
                status: AnalysisRunStatus {
                    started_at: Some(Time(self.now)),
                    ..Default::default()
                },
                fails: self.failing.is_some_and(|f| f.step == req.step),
            });
        }
    }

    /// Takes the measurements due at `now`, as the AnalysisRun controller would.
    pub fn measure(&mut self) {
        let now = self.now;
        let measuring = self.measuring;
        for run in &mut self.runs {
            let Some(spec) = &run.spec else { continue };
            if run.observed.phase.is_finished() {
                continue;
            }
            for i in verdict::due(spec, &run.status, now) {
                let metric = &spec.metrics[i];
                let results = &mut run.status.metric_results;
                let at = match results.iter().position(|r| r.name == metric.name) {
                    Some(at) => at,
                    None => {
                        results.push(MetricResult {
                            name: metric.name.clone(),
                            ..Default::default()
                        });
                        results.len() - 1
                    }
                };
                let outcome = outcome(metric, &results[at], measuring, run.fails);
                let rules = rules_for(spec, &metric.name);
                verdict::record(&mut results[at], metric, rules, now, now, outcome);
            }
            let phase = verdict::run_phase(&run.status.metric_results, spec.metrics.len());
            run.observed.phase = phase;
            run.observed.message = crate::reconcile::analysis_run::summary(&run.status.metric_results, phase);
        }
    }

    /// When anything changes next without a person: a requeue, a measurement, a Pod getting
    /// ready or available.
    pub fn next_change(&self, requeue: Option<Duration>) -> Option<Timestamp> {
        let now = self.now;
        let later = |t: Timestamp| (t > now).then_some(t);
        let min_ready = self.min_ready();
        let pods = self.versions.iter().flat_map(|v| {
            v.ready_at
                .iter()
                .flat_map(move |t| [Some(*t), t.checked_add(min_ready).ok()])
                .flatten()
        });
        let measurements = self.runs.iter().filter_map(|r| {
            let spec = r.spec.as_ref()?;
            if r.observed.phase.is_finished() {
                return None;
            }
            verdict::wait(spec, &r.status, now).and_then(|d| now.checked_add(d).ok())
        });
        let requeue = requeue.and_then(|d| now.checked_add(d).ok());
        let soon = now.checked_add(Duration::from_millis(1)).ok();
        let watched = soon.filter(|_| self.changed);
        pods.filter_map(later)
            .chain(measurements.map(|t| t.max(now.checked_add(Duration::from_millis(1)).unwrap_or(t))))
            .chain(requeue.map(|t| t.max(now.checked_add(Duration::from_millis(1)).unwrap_or(t))))
            .chain(watched)
            .min()
    }

    /// A person moves the rollout past where it waits, as `kubectl serin promote` does.
    pub fn promote(&mut self) {
        let status = self.rollout.status.get_or_insert_default();
        let idx = status.current_step_index.unwrap_or(0);
        status.control = Some(ControlRequests {
            promote_step: Some(idx),
            ..Default::default()
        });
    }

    pub fn phase(&self) -> Option<Phase> {
        self.rollout.status.as_ref().and_then(|s| s.phase)
    }
}

/// What one measurement shows in the scenario.
fn outcome(metric: &Metric, result: &MetricResult, measuring: Measuring, fails: bool) -> Outcome {
    if measuring == Measuring::SlowPassing && !fails && result.count == 0 {
        let limit = metric
            .limits()
            .consecutive_no_data_limit
            .unwrap_or(verdict::DEFAULT_CONSECUTIVE_NO_DATA_LIMIT);
        if result.consecutive_no_data < limit {
            return Outcome::NoData {
                what: metric.name.clone(),
            };
        }
    }
    // A metric with nothing to judge by passes with every answer, as in Argo Rollouts.
    let phase = if fails {
        AnalysisPhase::Failed
    } else {
        AnalysisPhase::Successful
    };
    Outcome::Judged {
        value: None,
        phase,
        reason: String::new(),
    }
}

/// What the controller would read of a `workloadRef` Deployment: not at hand without a cluster, so
/// a Deployment matching the Rollout, with `spec.template` standing in for its template when given.
pub fn workload_of(rollout: &Rollout) -> Observed {
    let Some(wr) = &rollout.spec.workload_ref else {
        return Observed::default();
    };
    let name = rollout.metadata.name.clone().unwrap_or_default();
    let labels: std::collections::BTreeMap<String, String> = rollout
        .spec
        .selector
        .match_labels
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| [("app".to_string(), name.clone())].into());
    let template = rollout
        .spec
        .template
        .as_ref()
        .map(|t| t.typed())
        .unwrap_or_else(|| PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels.clone()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: wr.name.clone(),
                    image: Some(format!("{}:next", wr.name)),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        });
    Observed {
        workload_template: Some(template),
        workload_selector: Some(LabelSelector {
            match_labels: Some(labels),
            ..Default::default()
        }),
        workload_replicas: rollout.spec.replicas,
        ..Default::default()
    }
}

/// Makes a template the one of the version before: another pod-template hash.
pub fn mark_previous(t: &mut PodTemplateSpec) {
    t.metadata
        .get_or_insert_default()
        .annotations
        .get_or_insert_default()
        .insert("serin.dev/plan".into(), "previous version".into());
}
