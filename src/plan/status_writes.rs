//! Which status writes can wait. A status that only mirrors the cluster (Pod counts, measured
//! values, the messages that say them) is written with the next decision, or once
//! [`MIRROR_HOLD`] has passed since the last write, so users still see current figures; every
//! decision (a step, a weight, a phase, a condition's status, a request taken) is written at once.

use crate::crd::rollout::RolloutStatus;
use jiff::Timestamp;
use std::time::Duration;

/// The longest a status that only mirrors the cluster waits to be written.
pub const MIRROR_HOLD: Duration = Duration::from_secs(10);

/// The status without what merely mirrors the cluster. Without a router the weight is the new
/// version's share of the Pods, a mirror too.
fn decisions_of(s: &RolloutStatus, weight_by_pods: bool) -> RolloutStatus {
    let mut s = s.clone();
    if weight_by_pods {
        s.canary_weight = None;
    }
    s.replicas = None;
    s.updated_replicas = None;
    s.updated_available_replicas = None;
    s.ready_replicas = None;
    s.available_replicas = None;
    s.last_progress_at = None;
    for a in &mut s.analysis {
        a.metrics.clear();
    }
    if let Some(conds) = &mut s.conditions {
        for c in conds.iter_mut() {
            c.message = String::new();
        }
    }
    s
}

/// Whether `next` differs from `written` only in what mirrors the cluster. The message counts
/// as a mirror only while the phase stays.
pub fn only_mirrors(written: &RolloutStatus, next: &RolloutStatus, weight_by_pods: bool) -> bool {
    let (mut a, mut b) = (
        decisions_of(written, weight_by_pods),
        decisions_of(next, weight_by_pods),
    );
    if a.phase == b.phase {
        a.message = None;
        b.message = None;
    }
    a == b
}

/// What a status write is about, for [`hold`].
pub struct Write<'a> {
    pub written: Option<&'a RolloutStatus>,
    pub next: &'a RolloutStatus,
    /// The plan made a decision (an Event).
    pub decided: bool,
    /// The weight is the new version's share of the Pods (no router, not blue-green).
    pub weight_by_pods: bool,
}

/// How long the write may wait: `None` to write now (a decision, a first status, or the hold has
/// passed since `last_write`).
pub fn hold(w: &Write, last_write: Option<Timestamp>, now: Timestamp) -> Option<Duration> {
    let (written, next) = (w.written?, w.next);
    if w.decided || written == next || !only_mirrors(written, next, w.weight_by_pods) {
        return None;
    }
    let since = now.duration_since(last_write?).unsigned_abs();
    MIRROR_HOLD.checked_sub(since).filter(|left| !left.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::rollout::Phase;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn status(available: i32, message: &str) -> RolloutStatus {
        RolloutStatus {
            phase: Some(Phase::Progressing),
            message: Some(message.into()),
            current_step_index: Some(0),
            canary_weight: Some(10),
            available_replicas: Some(available),
            ..Default::default()
        }
    }

    fn write<'a>(written: Option<&'a RolloutStatus>, next: &'a RolloutStatus, decided: bool) -> Write<'a> {
        Write {
            written,
            next,
            decided,
            weight_by_pods: false,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn counts_and_their_message_wait_until_the_hold_has_passed() {
        let before = status(3, "canary 0/1 Pods available");
        let after = status(4, "canary 1/1 Pods available");
        assert!(only_mirrors(&before, &after, false));
        let w = write(Some(&before), &after, false);
        assert_eq!(hold(&w, Some(at(0)), at(4)), Some(Duration::from_secs(6)));
        assert_eq!(hold(&w, Some(at(0)), at(10)), None, "the hold is over");
        assert_eq!(hold(&w, None, at(4)), None, "no write remembered");
        assert_eq!(
            hold(&write(Some(&before), &after, true), Some(at(0)), at(4)),
            None,
            "a decision writes"
        );
        assert_eq!(
            hold(&write(None, &after, false), Some(at(0)), at(4)),
            None,
            "a first status writes"
        );
    }

    #[test]
    fn a_step_a_weight_a_phase_or_a_request_taken_is_written_at_once() {
        let before = status(3, "step 1");
        let mut step = before.clone();
        step.current_step_index = Some(1);
        let mut weight = before.clone();
        weight.canary_weight = Some(20);
        let mut phase = before.clone();
        phase.phase = Some(Phase::Paused);
        let mut taken = before.clone();
        taken.control = Some(Default::default());
        assert!(
            only_mirrors(&before, &weight, true),
            "without a router the weight follows the Pods"
        );
        for next in [step, weight, phase, taken] {
            assert!(!only_mirrors(&before, &next, false), "{next:?}");
            assert_eq!(hold(&write(Some(&before), &next, false), Some(at(0)), at(1)), None);
        }
    }

    #[test]
    fn a_condition_that_turns_is_a_decision_its_message_is_not() {
        let cond = |status: &str, message: &str| Condition {
            type_: "Available".into(),
            status: status.into(),
            reason: "MinimumReplicasAvailable".into(),
            message: message.into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)),
            observed_generation: None,
        };
        let mut before = status(3, "m");
        before.conditions = Some(vec![cond("True", "3 available")]);
        let mut counted = before.clone();
        counted.conditions = Some(vec![cond("True", "4 available")]);
        assert!(only_mirrors(&before, &counted, false));
        let mut turned = before.clone();
        turned.conditions = Some(vec![cond("False", "3 available")]);
        assert!(!only_mirrors(&before, &turned, false));
    }
}
