//! The blue-green strategy: the new version comes up at full size (or `previewReplicaCount`)
//! beside the active one, reachable only through the preview Service; its pre-promotion analysis
//! runs; then the active Service switches to it in one write. The old version stays up while the
//! post-promotion analysis runs and for `scaleDownDelaySeconds`, so going back is one write too.

use super::{Planner, RunVerdict, Severity, since};
use crate::crd::rollout::{BlueGreenStatus, BlueGreenStrategy, ControlRequests, Phase, RolloutAnalysis};
use std::time::Duration;

/// The stages a blue-green release goes through; `status.currentStepIndex` names the one it is at.
pub const PREVIEW: usize = 0;
pub const SWITCH: usize = 1;
pub const SWITCHED: usize = 2;
pub const STAGES: usize = 3;

/// What a stage came to.
enum StageEnd {
    Next,
    /// Paused: (condition reason, message).
    Wait(&'static str, String),
    /// Still going: Pods coming up, an analysis measuring.
    Running(String),
    Abort(String),
    /// The post-promotion analysis passed: the new version becomes stable.
    Promote,
}

/// The stage's name, for status and `kubectl serin get`.
pub fn describe(stage: usize) -> &'static str {
    match stage {
        PREVIEW => "preview (pre-promotion analysis, pause)",
        SWITCH => "switch the active Service",
        _ => "switched (post-promotion analysis)",
    }
}

/// Whether a promoted blue-green version can still be switched away from: the version before it
/// is within its scale-down delay. `kubectl serin abort` asks this before it writes.
pub fn can_switch_back(
    spec: &crate::crd::rollout::RolloutSpec,
    status: &crate::crd::rollout::RolloutStatus,
    now: jiff::Timestamp,
) -> bool {
    let Some(bg) = &spec.strategy.blue_green else {
        return false;
    };
    status.previous_stable_hash.is_some()
        && status.previous_stable_hash != status.stable_pod_hash
        && since(now, &status.promoted_at) < scale_down_delay(bg)
}

/// How long the version switched away from keeps its Pods: `scaleDownDelaySeconds` (30), none
/// when `scaleDownDelayRevisionLimit` is 0.
pub fn scale_down_delay(bg: &BlueGreenStrategy) -> Duration {
    let seconds = match bg.scale_down_delay_revision_limit {
        Some(0) => 0,
        _ => bg.scale_down_delay_seconds.unwrap_or(30),
    };
    Duration::from_secs(seconds.max(0) as u64)
}

impl Planner<'_> {
    fn strategy(&self) -> BlueGreenStrategy {
        self.blue_green.clone().unwrap_or_default()
    }

    fn bg_status(&mut self) -> &mut BlueGreenStatus {
        self.st.blue_green.get_or_insert_default()
    }

    /// The version the active Service selects: the stable one unless a switch said otherwise.
    pub(super) fn active_version(&self, stable: &str) -> String {
        self.st
            .blue_green
            .as_ref()
            .and_then(|b| b.active_selector.clone())
            .filter(|a| *a == stable || self.rs(a).is_some_and(|r| r.spec_replicas > 0))
            .unwrap_or_else(|| stable.to_string())
    }

    pub(super) fn blue_green(&mut self, stable: &str, current: &str, control: &ControlRequests, spec_paused: bool) {
        if self.st.current_pod_hash.as_deref() != Some(current) {
            self.start_preview(stable, current);
        }
        self.apply_bg_controls(current, control);
        if self.st.abort == Some(true) {
            return self.bg_aborted(stable, current);
        }
        let active = self.active_version(stable);
        self.bg_status().active_selector = Some(active.clone());
        self.bg_status().preview_selector = Some(current.to_string());
        // The stable version stays whole until the new one is promoted; a version still active
        // from a release that a newer template interrupted keeps serving until the switch.
        self.want(stable, self.replicas);
        if active != stable && active != current {
            self.want(&active, self.replicas);
        }
        let paused_by = self.paused_by(spec_paused);
        let end = loop {
            let stage = self.step_index();
            let end = match stage {
                PREVIEW => self.preview(current, control, paused_by),
                SWITCH => self.switch(current, &active, paused_by),
                _ => self.switched(current, control),
            };
            match end {
                StageEnd::Next if stage < SWITCHED => self.set_step(stage + 1),
                StageEnd::Next => break StageEnd::Promote,
                other => break other,
            }
        };
        match end {
            StageEnd::Abort(why) => {
                self.abort(why);
                return self.bg_aborted(stable, current);
            }
            StageEnd::Promote => return self.bg_promote(stable, current),
            StageEnd::Wait(reason, message) => {
                self.phase = Phase::Paused;
                self.reason = reason;
                self.message = message;
            }
            StageEnd::Running(message) => {
                self.phase = Phase::Progressing;
                self.reason = "RolloutProgressing";
                self.message = message;
            }
            StageEnd::Next => {}
        }
        self.scale_down_others();
        self.weight = self.bg_weight(current);
    }

    /// Traffic on the new version: all of it once the active Service selects it.
    fn bg_weight(&self, current: &str) -> i32 {
        let active = self.st.blue_green.as_ref().and_then(|b| b.active_selector.as_deref());
        if active == Some(current) { 100 } else { 0 }
    }

    /// A new version starts in preview, with nothing of the last one's abort or answers.
    fn start_preview(&mut self, stable: &str, current: &str) {
        let preview = self
            .strategy()
            .preview_service
            .unwrap_or_else(|| "no preview Service".into());
        self.note(
            Severity::Normal,
            "NewRevision",
            format!("version {current} comes up in preview ({preview}) beside active version {stable}"),
        );
        self.st.current_pod_hash = Some(current.to_string());
        self.clear_abort();
        self.st.attempt = self.fresh_attempt(current);
        self.st.acknowledged_run = None;
        let bg = self.bg_status();
        bg.ready_at = None;
        bg.promoted_full = None;
        self.set_step(PREVIEW);
        if self.in_rollback_window(current) {
            self.note_rollback_window(current);
            self.bg_status().promoted_full = Some(true);
            self.set_step(SWITCH);
        }
    }

    /// Retry, abort and promote to the end, as for a canary.
    fn apply_bg_controls(&mut self, current: &str, control: &ControlRequests) {
        if self.retry_or_abort(control, PREVIEW, format!("version {current} comes up in preview again")) {
            self.note(
                Severity::Normal,
                "PromotedFull",
                format!("analysis and pause skipped: version {current} is switched to and promoted"),
            );
            self.bg_status().promoted_full = Some(true);
            if self.step_index() < SWITCH {
                self.set_step(SWITCH);
            }
        }
    }

    /// `kubectl serin promote --full` (or a rollback within the window) skips every analysis.
    fn promoted_full(&self) -> bool {
        self.st.blue_green.as_ref().and_then(|b| b.promoted_full) == Some(true)
    }

    fn bg_paused(&self, why: &str) -> String {
        format!(
            "paused at {}/{STAGES} ({}): {why}; `kubectl serin resume {}` goes on",
            self.step_index() + 1,
            describe(self.step_index()),
            self.name
        )
    }

    /// The preview: Pods up, pre-promotion analysis passed, then the pause (by hand or timed).
    fn preview(
        &mut self,
        current: &str,
        control: &ControlRequests,
        paused_by: Option<(&'static str, &str)>,
    ) -> StageEnd {
        let bg = self.strategy();
        if control.promote_step == Some(PREVIEW as i32) {
            self.note(
                Severity::Normal,
                "StepCompleted",
                format!("preview of version {current} promoted by hand"),
            );
            return StageEnd::Next;
        }
        let size = bg
            .preview_replica_count
            .map_or(self.replicas, |n| n.clamp(0, self.replicas));
        self.want(current, size);
        let available = self.sizes_of(current).available;
        if available < size {
            return StageEnd::Running(format!("preview version {current}: {available}/{size} Pods available"));
        }
        if let Some((reason, why)) = paused_by {
            return StageEnd::Wait(reason, self.bg_paused(why));
        }
        if let Some(analysis) = bg.pre_promotion_analysis.clone().filter(|_| !self.promoted_full()) {
            match self.stage_analysis(current, PREVIEW, analysis, "pre-promotion analysis") {
                RunVerdict::Pass => {}
                RunVerdict::Abort(why) => return StageEnd::Abort(why),
                RunVerdict::Hold(reason, message) => return StageEnd::Wait(reason, message),
                RunVerdict::Running(message) => return StageEnd::Running(message),
            }
        }
        let ready_at = match self.st.blue_green.as_ref().and_then(|b| b.ready_at.clone()) {
            Some(t) => t,
            None => {
                let t = self.now_time();
                self.bg_status().ready_at = Some(t.clone());
                t
            }
        };
        let active = bg.active_service.clone();
        let ways = format!(
            "`kubectl serin promote {}` switches {active} to it, `kubectl serin abort {}` drops it",
            self.name, self.name
        );
        if bg.auto_promotion_enabled == Some(false) {
            return StageEnd::Wait(
                "BlueGreenPause",
                format!("version {current} is ready in preview: {ways}"),
            );
        }
        let wait = Duration::from_secs(bg.auto_promotion_seconds.unwrap_or(0).max(0) as u64);
        let left = wait.saturating_sub(since(self.now, &Some(ready_at.clone())));
        if !left.is_zero() {
            self.wake_in(left);
            let until = ready_at
                .0
                .checked_add(wait)
                .map(|t| t.strftime("%H:%M:%SZ").to_string())
                .unwrap_or_default();
            return StageEnd::Wait(
                "BlueGreenPause",
                format!("version {current} is ready in preview and switches on its own at {until}; {ways}"),
            );
        }
        StageEnd::Next
    }

    /// The new version grows to full size, then the active Service selects it: one write.
    fn switch(&mut self, current: &str, active: &str, paused_by: Option<(&'static str, &str)>) -> StageEnd {
        self.want(current, self.replicas);
        let available = self.sizes_of(current).available;
        if available < self.replicas {
            return StageEnd::Running(format!(
                "version {current}: {available}/{} Pods available before the switch",
                self.replicas
            ));
        }
        if let Some((reason, why)) = paused_by {
            return StageEnd::Wait(reason, self.bg_paused(why));
        }
        let bg = self.strategy();
        let delay = self.scale_down_delay().as_secs();
        let switched = if self.routed {
            let preview = bg.preview_service.unwrap_or_default();
            format!("the route sends all traffic to {preview}, version {current} (was {active})")
        } else {
            format!("{} now selects version {current} (was {active})", bg.active_service)
        };
        self.note(
            Severity::Normal,
            "Switched",
            format!(
                "{switched}; {active} stays up for at least {delay}s: `kubectl serin abort {}` switches back",
                self.name
            ),
        );
        let now = self.now_time();
        let bg = self.bg_status();
        bg.active_selector = Some(current.to_string());
        bg.switched_at = Some(now);
        bg.switched_from = Some(active.to_string());
        self.st.last_progress_at = Some(self.now_time());
        StageEnd::Next
    }

    /// After the switch: the post-promotion analysis decides; the old version is still up.
    fn switched(&mut self, current: &str, control: &ControlRequests) -> StageEnd {
        self.want(current, self.replicas);
        let by_hand = control.promote_step == Some(SWITCHED as i32) || self.promoted_full();
        let Some(analysis) = self.strategy().post_promotion_analysis.filter(|_| !by_hand) else {
            return StageEnd::Promote;
        };
        match self.stage_analysis(current, SWITCHED, analysis, "post-promotion analysis") {
            RunVerdict::Pass => StageEnd::Promote,
            RunVerdict::Abort(why) => StageEnd::Abort(why),
            RunVerdict::Hold(reason, message) => StageEnd::Wait(reason, message),
            RunVerdict::Running(message) => StageEnd::Running(message),
        }
    }

    /// An analysis of one stage: its run made, then judged.
    fn stage_analysis(&mut self, current: &str, stage: usize, analysis: RolloutAnalysis, what: &str) -> RunVerdict {
        let at = Some(stage as i32);
        let Some(run) = self.run_for(current, at) else {
            self.request_run(current, at, analysis);
            return RunVerdict::Running(format!("{what}: starting"));
        };
        match self.judge_run(run, what) {
            RunVerdict::Pass => {
                self.note(
                    Severity::Normal,
                    "StepCompleted",
                    format!("{what} passed: {}", run.message),
                );
                RunVerdict::Pass
            }
            other => other,
        }
    }

    /// The new version is stable; the one switched away from goes after the scale-down delay,
    /// counted from the switch.
    fn bg_promote(&mut self, stable: &str, current: &str) {
        let bg = self.st.blue_green.clone().unwrap_or_default();
        let previous = bg.switched_from.unwrap_or_else(|| stable.to_string());
        let switched_at = bg.switched_at.unwrap_or_else(|| self.now_time());
        self.become_stable(current, &previous, switched_at);
        if self.phase != Phase::Healthy {
            self.reason = "RolloutPromoted";
            let left = self
                .scale_down_delay()
                .saturating_sub(since(self.now, &self.st.promoted_at));
            self.message = format!(
                "version {current} promoted; the old version's Pods go in {}s",
                left.as_secs()
            );
        }
    }

    /// Aborted: the active Service back on stable in one write; the new version's Pods go after
    /// `abortScaleDownDelaySeconds`. The preview Service stays on the new version, as in Argo
    /// Rollouts: it carries no production traffic, and what failed can still be looked at there.
    fn bg_aborted(&mut self, stable: &str, current: &str) {
        let bg = self.bg_status();
        bg.active_selector = Some(stable.to_string());
        bg.preview_selector = Some(current.to_string());
        bg.ready_at = None;
        self.aborted(stable, current);
    }

    /// `kubectl serin abort` while the version switched away from is still up: the active
    /// Service goes back to it, and the rollout is aborted as if the switch had never held.
    /// The version to treat as stable again, when that happened.
    pub(super) fn switch_back_after_promotion(&mut self, current: &str, control: &ControlRequests) -> Option<String> {
        let previous = self.st.previous_stable_hash.clone()?;
        let within = self
            .blue_green
            .as_ref()
            .is_some_and(|bg| since(self.now, &self.st.promoted_at) < scale_down_delay(bg));
        let up = self.rs(&previous).is_some_and(|r| r.spec_replicas > 0);
        if control.abort != Some(true) || !within || !up || previous == current {
            return None;
        }
        self.st.stable_pod_hash = Some(previous.clone());
        self.st.previous_stable_hash = None;
        self.st.stable_history.retain(|h| h != current);
        self.set_step(SWITCHED);
        Some(previous)
    }
}
