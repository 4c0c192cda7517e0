//! The canary strategy: a new version walks its steps (weights, pauses, analyses, header and
//! mirror routes) next to the stable one, held back by the background analysis, pauses and gates.

use super::replicas::{Targets, targets};
use super::{ManagedRoute, Planner, RunVerdict, Severity, since, steps, upsert};
use crate::crd::hooks::WebhookType;
use crate::crd::rollout::{CanaryStep, ControlRequests, Phase};

/// What one step came to.
enum StepEnd {
    /// Done, with what it found for its StepCompleted Event.
    Done(Option<String>),
    /// Paused: (condition reason, message).
    Wait(&'static str, String),
    /// Still going (an analysis running, a gate answering).
    Running(String),
    /// Not there yet (the Pods for a weight are coming): the progress message tells.
    NotYet,
    Abort(String),
}

/// Why the steps stopped where they did.
#[derive(Default)]
struct Halt {
    waiting: Option<(&'static str, String)>,
    running: Option<String>,
    /// Pre-rollout gates hold traffic at 0 until they pass.
    before_traffic: bool,
}

impl Planner<'_> {
    pub(super) fn canary(&mut self, stable: &str, current: &str, control: &ControlRequests, spec_paused: bool) {
        let n = self.steps.len();
        if self.st.current_pod_hash.as_deref() != Some(current) {
            self.start_revision(stable, current);
        }
        self.apply_controls(current, control);
        if self.st.abort == Some(true) {
            return self.aborted(stable, current);
        }
        if self.step_index() < n
            && let Some(why) = self.rollback_requested()
        {
            self.abort(why);
            return self.aborted(stable, current);
        }
        let analysis_block = match self.background_verdict(current, control) {
            Ok(block) => block,
            Err(why) => {
                self.abort(why);
                return self.aborted(stable, current);
            }
        };
        let paused_by = self.paused_by(spec_paused);
        let mut halt = Halt {
            waiting: analysis_block,
            ..Default::default()
        };
        if paused_by.is_none()
            && halt.waiting.is_none()
            && let Err(why) = self.walk_steps(stable, current, control, &mut halt)
        {
            self.abort(why);
            return self.aborted(stable, current);
        }
        let held = paused_by.is_some() || halt.waiting.is_some();
        if self.step_index() >= n && n == 0 && held {
            // A rolling update held by a pause or an inconclusive background analysis stays as it is.
            self.hold_sizes(stable, current);
            let t = Targets {
                canary: self.sizes_of(current).spec,
                stable: self.sizes_of(stable).spec,
            };
            return self.report(current, stable, paused_by, halt, t);
        }
        if self.step_index() >= n && paused_by.is_none() {
            match self.confirm_promotion() {
                RunVerdict::Pass => return self.promote(stable, current),
                RunVerdict::Abort(why) => {
                    self.abort(why);
                    return self.aborted(stable, current);
                }
                RunVerdict::Running(m) => halt.running = Some(m),
                RunVerdict::Hold(reason, m) => halt.waiting = Some((reason, m)),
            }
        } else if self.step_index() >= n {
            return self.promote(stable, current);
        }
        let t = self.hold_at_step(stable, current, halt.before_traffic);
        self.report(current, stable, paused_by, halt, t);
    }

    /// A new version starts from step 1, with nothing of the last one's abort or answers.
    fn start_revision(&mut self, stable: &str, current: &str) {
        let n = self.steps.len();
        let message = if n == 0 {
            format!("version {current} replaces stable {stable} by a rolling update, without steps")
        } else {
            format!("version {current} rolls out next to stable {stable}, from step 1 of {n}")
        };
        self.note(Severity::Normal, "NewRevision", message);
        self.st.current_pod_hash = Some(current.to_string());
        self.clear_abort();
        self.st.canary_weight = Some(0);
        self.st.attempt = self.fresh_attempt(current);
        self.st.acknowledged_run = None;
        // Answers for this very version can only come from a reconcile whose status write the
        // cache has not shown yet; dropping them would call those gates a second time.
        self.st.webhooks.retain(|r| r.revision == current);
        self.clear_routes();
        self.set_step(0);
        if self.in_rollback_window(current) {
            self.note_rollback_window(current);
            self.set_step(n);
            self.confirm_by_hand();
        }
    }

    /// What a person asked through the status subresource: retry, abort, promote to the end.
    fn apply_controls(&mut self, current: &str, control: &ControlRequests) {
        let n = self.steps.len();
        if self.retry_or_abort(
            control,
            0,
            format!("version {current} rolls out again from step 1 of {n}"),
        ) {
            self.note(
                Severity::Normal,
                "PromotedFull",
                format!("remaining steps skipped: version {current} is promoted"),
            );
            self.set_step(n);
            self.confirm_by_hand();
        }
    }

    /// The background analysis watches the whole rollout: its verdict stops every step. `Err` is
    /// a reason to abort; `Ok(Some(..))` a reason to pause.
    fn background_verdict(
        &mut self,
        current: &str,
        control: &ControlRequests,
    ) -> Result<Option<(&'static str, String)>, String> {
        let Some(background) = self.canary.analysis.clone() else {
            return Ok(None);
        };
        // `startingStep` holds the background analysis back until that step. A rolling update
        // (no steps) is watched until it is promoted.
        let started = self.step_index() >= background.starting_step.unwrap_or(0).max(0) as usize;
        let rolling = self.steps.is_empty() && !self.in_rollback_window(current);
        if (self.step_index() >= self.steps.len() && !rolling) || !started {
            return Ok(None);
        }
        let Some(run) = self.run_for(current, None) else {
            self.request_run(current, None, background);
            return Ok(None);
        };
        if Some(&run.name) == self.st.acknowledged_run.as_ref() {
            return Ok(None);
        }
        match self.judge_run(run, "background analysis") {
            RunVerdict::Abort(why) => Err(why),
            RunVerdict::Hold(..) if control.promote_step == Some(self.step_index() as i32) => {
                self.st.acknowledged_run = Some(run.name.clone());
                let what = run.phase.as_str().to_lowercase();
                self.note(
                    Severity::Normal,
                    "AnalysisAcknowledged",
                    format!("going past the {what} background analysis on request"),
                );
                Ok(None)
            }
            RunVerdict::Hold(reason, message) => Ok(Some((reason, message))),
            RunVerdict::Pass | RunVerdict::Running(_) => Ok(None),
        }
    }

    /// Takes the steps that are done, one after another, until one waits; `Err` to abort.
    fn walk_steps(
        &mut self,
        stable: &str,
        current: &str,
        control: &ControlRequests,
        halt: &mut Halt,
    ) -> Result<(), String> {
        let n = self.steps.len();
        while self.step_index() < n {
            let idx = self.step_index();
            let step = self.steps[idx].clone();
            // `kubectl serin promote` moves past the current step, whatever it waits for.
            let promoted = control.promote_step == Some(idx as i32);
            if idx == 0 && !promoted {
                match self.check_gates(WebhookType::PreRollout, None, "pre-rollout") {
                    RunVerdict::Pass => {}
                    RunVerdict::Abort(why) => return Err(why),
                    RunVerdict::Running(m) | RunVerdict::Hold(_, m) => {
                        halt.before_traffic = true;
                        halt.running = Some(m);
                        return Ok(());
                    }
                }
            }
            let found = match if promoted {
                StepEnd::Done(None)
            } else {
                self.run_step(stable, current, idx, &step)
            } {
                StepEnd::Done(found) => found,
                StepEnd::Wait(reason, message) => {
                    halt.waiting = Some((reason, message));
                    return Ok(());
                }
                StepEnd::Running(message) => {
                    halt.running = Some(message);
                    return Ok(());
                }
                StepEnd::NotYet => return Ok(()),
                StepEnd::Abort(why) => return Err(why),
            };
            if !promoted {
                match self.check_gates(WebhookType::Rollout, Some(idx as i32), &format!("step {}/{n}", idx + 1)) {
                    RunVerdict::Pass => {}
                    RunVerdict::Abort(why) => return Err(why),
                    RunVerdict::Running(m) | RunVerdict::Hold(_, m) => {
                        halt.running = Some(m);
                        return Ok(());
                    }
                }
            }
            let done = format!("step {}/{n} done: {}", idx + 1, steps::describe(&step));
            let message = match found {
                Some(f) => format!("{done}; {f}"),
                None => done,
            };
            self.note(Severity::Normal, "StepCompleted", message);
            self.set_step(idx + 1);
        }
        Ok(())
    }

    /// Works on one step; what it comes to.
    fn run_step(&mut self, stable: &str, current: &str, idx: usize, step: &CanaryStep) -> StepEnd {
        if step.set_weight.is_some() {
            return match self.weight_reached(stable, current, idx) {
                true => StepEnd::Done(None),
                false => StepEnd::NotYet,
            };
        }
        if let Some(pause) = &step.pause {
            return self.pause_step(idx, step, pause);
        }
        if let Some(analysis) = &step.analysis {
            return self.analysis_step(current, idx, (**analysis).clone());
        }
        if let Some(h) = &step.set_header_route {
            let route = ManagedRoute {
                name: h.name.clone(),
                match_: h.match_.clone().unwrap_or_default(),
                requests: Vec::new(),
                percentage: None,
            };
            upsert(&mut self.st.header_routes, route);
            self.order_routes();
        } else if let Some(m) = &step.set_mirror_route {
            let entries = m.match_.clone().unwrap_or_default();
            let route = ManagedRoute {
                name: m.name.clone(),
                match_: entries
                    .iter()
                    .filter_map(|e| {
                        Some(crate::crd::rollout::HeaderMatch {
                            header_name: e.header_name.clone()?,
                            header_value: e.header_value.clone(),
                        })
                    })
                    .collect(),
                requests: entries
                    .iter()
                    .filter(|e| e.header_name.is_none())
                    .map(|e| crate::crd::rollout::RequestMatch {
                        method: e.method.clone(),
                        path: e.path.clone(),
                        headers: e.headers.clone(),
                    })
                    .collect(),
                percentage: m.percentage,
            };
            upsert(&mut self.st.mirror_routes, route);
            self.order_routes();
        } else if let Some(scale) = &step.set_canary_scale {
            self.st.canary_scale = match (scale.replicas, scale.weight) {
                (Some(r), _) => Some(r),
                (_, Some(w)) => Some(targets(self.replicas, w, 0, true, false, None).canary),
                _ => None,
            };
        }
        StepEnd::Done(None)
    }

    /// Header and mirror routes in the order `managedRoutes` gives (the first matches first).
    fn order_routes(&mut self) {
        let Some(managed) = self.canary.traffic_routing.as_ref().map(|r| r.managed_routes.clone()) else {
            return;
        };
        let rank = |r: &ManagedRoute| managed.iter().position(|m| m.name == r.name).unwrap_or(usize::MAX);
        self.st.header_routes.sort_by_key(rank);
        self.st.mirror_routes.sort_by_key(rank);
    }

    /// A pause for a while (an end time, woken then) or until promoted.
    fn pause_step(&mut self, idx: usize, step: &CanaryStep, pause: &crate::crd::rollout::PauseStep) -> StepEnd {
        let n = self.steps.len();
        let Some(length) = steps::pause_length(pause).ok().flatten() else {
            return StepEnd::Wait(
                "PausedStep",
                format!(
                    "paused at step {}/{n} until promoted: `kubectl serin promote {}` goes on, `kubectl serin abort {}` goes back",
                    idx + 1,
                    self.name,
                    self.name
                ),
            );
        };
        let left = length.saturating_sub(since(self.now, &self.st.current_step_started_at));
        if left.is_zero() {
            return StepEnd::Done(None);
        }
        self.wake_in(left);
        // An end time, not a countdown: status must not change while nothing happens.
        let until = self
            .st
            .current_step_started_at
            .as_ref()
            .and_then(|t| t.0.checked_add(length).ok())
            .map(|t| t.strftime("%H:%M:%SZ").to_string())
            .unwrap_or_default();
        StepEnd::Wait(
            "PausedStep",
            format!(
                "pausing at step {}/{n} ({}) until {until}",
                idx + 1,
                steps::describe(step)
            ),
        )
    }

    /// An analysis step: its run made, then judged.
    fn analysis_step(&mut self, current: &str, idx: usize, analysis: crate::crd::rollout::RolloutAnalysis) -> StepEnd {
        let n = self.steps.len();
        let at = Some(idx as i32);
        let Some(run) = self.run_for(current, at) else {
            self.request_run(current, at, analysis);
            return StepEnd::Running(format!("step {}/{n}: starting analysis", idx + 1));
        };
        match self.judge_run(run, &format!("analysis at step {}/{n}", idx + 1)) {
            RunVerdict::Pass => StepEnd::Done(Some(format!("analysis passed: {}", run.message))),
            RunVerdict::Abort(why) => StepEnd::Abort(why),
            RunVerdict::Hold(reason, message) => StepEnd::Wait(reason, message),
            RunVerdict::Running(message) => StepEnd::Running(message),
        }
    }

    /// The ReplicaSets and weight for the step the rollout stands at.
    fn hold_at_step(&mut self, stable: &str, current: &str, before_traffic: bool) -> Targets {
        let n = self.steps.len();
        let idx = self.step_index().min(n.saturating_sub(1));
        let w = if before_traffic && !self.routed {
            0
        } else {
            steps::weight_at(&self.steps, idx)
        };
        let t = targets(
            self.replicas,
            w,
            self.surge,
            self.routed,
            self.canary.dynamic_stable_scale == Some(true),
            self.st.canary_scale,
        );
        self.move_towards(stable, current, t);
        self.weight = if self.routed {
            if before_traffic {
                0
            } else if self.sizes_of(current).available >= t.canary {
                w
            } else {
                self.st.canary_weight.unwrap_or(0).min(w)
            }
        } else {
            self.pod_share(stable, current)
        };
        t
    }

    /// The phase and message for where the rollout stands.
    fn report(&mut self, current: &str, stable: &str, paused_by: Option<(&'static str, &str)>, halt: Halt, t: Targets) {
        let n = self.steps.len();
        let idx = self.step_index().min(n.saturating_sub(1));
        match (paused_by, halt.waiting) {
            (Some((reason, why)), _) => {
                self.phase = Phase::Paused;
                self.reason = reason;
                let at = if n == 0 {
                    "paused in the rolling update".to_string()
                } else {
                    format!("paused at step {}/{n}", idx + 1)
                };
                self.message = format!("{at}: {why}; `kubectl serin resume {}` goes on", self.name);
            }
            (None, Some((reason, message))) => {
                self.phase = Phase::Paused;
                self.reason = reason;
                self.message = message;
            }
            (None, None) if halt.running.is_some() => {
                self.phase = Phase::Progressing;
                self.reason = "RunningAnalysis";
                self.message = halt.running.unwrap_or_default();
            }
            (None, None) => {
                self.phase = Phase::Progressing;
                self.reason = "RolloutProgressing";
                self.message = format!(
                    "step {}/{n} ({}): canary {}/{} Pods available, stable {}",
                    idx + 1,
                    steps::describe(&self.steps[idx]),
                    self.sizes_of(current).available,
                    t.canary,
                    self.sizes_of(stable).spec
                );
            }
        }
    }

    /// A `setWeight` step is done once the canary Pods for it are available and the stable has its size.
    fn weight_reached(&mut self, stable: &str, current: &str, idx: usize) -> bool {
        let w = steps::weight_at(&self.steps, idx);
        let t = targets(
            self.replicas,
            w,
            self.surge,
            self.routed,
            self.canary.dynamic_stable_scale == Some(true),
            self.st.canary_scale,
        );
        let canary = self.rs(current).cloned();
        let stable_rs = self.rs(stable).cloned();
        let canary_ok = canary.as_ref().map_or(t.canary == 0, |c| {
            c.spec_replicas == t.canary && c.available >= t.canary
        });
        let stable_ok = stable_rs
            .as_ref()
            .map_or(t.stable == 0, |s| s.spec_replicas == t.stable && s.replicas <= t.stable);
        canary_ok && stable_ok
    }
}
