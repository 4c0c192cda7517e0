//! Which status writes can wait. A status that only mirrors the cluster (Pod counts, measured
//! values, the messages that say them) is written with the next decision, or once
//! [`MIRROR_HOLD`] has passed since the last write, so users still see current figures; every
//! decision (a step, a weight, a phase, a condition's status, a request taken) is written at once.
//! Where the weight follows the Pods (no router), the shares on the way to a step's weight are
//! mirrors too; the step's weight reached, and 0 after an abort, are written at once: users and
//! alerts watch them.

use crate::crd::rollout::{Rollout, RolloutStatus};
use jiff::Timestamp;
use std::time::Duration;

/// The longest a status that only mirrors the cluster waits to be written.
pub const MIRROR_HOLD: Duration = Duration::from_secs(10);

/// The status without what merely mirrors the cluster.
fn decisions_of(s: &RolloutStatus) -> RolloutStatus {
    let mut s = s.clone();
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
/// as a mirror only while the phase stays. `landings` are the weights that are news when reached
/// (see [`landings`]); `None` makes every weight news.
pub fn only_mirrors(written: &RolloutStatus, next: &RolloutStatus, landings: Option<&[i32]>) -> bool {
    let (mut a, mut b) = (decisions_of(written), decisions_of(next));
    if a.canary_weight != b.canary_weight {
        let landed = |w: Option<i32>| landings.is_none_or(|l| l.contains(&w.unwrap_or(0)));
        if landed(b.canary_weight) {
            return false;
        }
        a.canary_weight = None;
        b.canary_weight = None;
    }
    if a.phase == b.phase {
        a.message = None;
        b.message = None;
    }
    a == b
}

/// The weights a canary without a router is headed for at `next`'s step: its setWeight, 0 and
/// 100. Its weight is the new version's share of the Pods, and the shares on the way are mirrors.
/// `None` (a router, blue-green) makes every weight a decision.
pub fn landings(rollout: &Rollout, next: &RolloutStatus) -> Option<[i32; 3]> {
    let strategy = &rollout.spec.strategy;
    let canary = strategy
        .canary
        .as_ref()
        .filter(|_| strategy.traffic_routing().is_none())?;
    let step = usize::try_from(next.current_step_index.unwrap_or(0)).unwrap_or(0);
    Some([
        0,
        100,
        super::steps::weight_at(&super::steps::effective_steps(canary), step),
    ])
}

/// What a status write is about, for [`hold`].
pub struct Write<'a> {
    pub written: Option<&'a RolloutStatus>,
    pub next: &'a RolloutStatus,
    /// The plan made a decision (an Event).
    pub decided: bool,
    /// See [`landings`].
    pub landings: Option<[i32; 3]>,
}

/// How long the write may wait: `None` to write now (a decision, a first status, or the hold has
/// passed since `last_write`).
pub fn hold(w: &Write, last_write: Option<Timestamp>, now: Timestamp) -> Option<Duration> {
    let (written, next) = (w.written?, w.next);
    if w.decided || written == next || !only_mirrors(written, next, w.landings.as_ref().map(|l| &l[..])) {
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
            landings: None,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn counts_and_their_message_wait_until_the_hold_has_passed() {
        let before = status(3, "canary 0/1 Pods available");
        let after = status(4, "canary 1/1 Pods available");
        assert!(only_mirrors(&before, &after, None));
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
        for next in [step, weight, phase, taken] {
            assert!(!only_mirrors(&before, &next, None), "{next:?}");
            assert_eq!(hold(&write(Some(&before), &next, false), Some(at(0)), at(1)), None);
        }
    }

    #[test]
    fn without_a_router_the_shares_on_the_way_wait_the_step_weight_and_zero_do_not() {
        let at = |weight: i32| RolloutStatus {
            canary_weight: Some(weight),
            ..status(3, "m")
        };
        let to_50 = [0, 100, 50];
        assert!(only_mirrors(&at(0), &at(33), Some(&to_50)), "a share on the way");
        assert!(
            !only_mirrors(&at(33), &at(50), Some(&to_50)),
            "the step's weight reached"
        );
        assert!(!only_mirrors(&at(33), &at(0), Some(&to_50)), "traffic back on stable");
        assert!(!only_mirrors(&at(0), &at(33), None), "a router's weight is a decision");
        let rollout: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
            "spec": {"selector": {}, "template": {},
                     "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]}}}
        }))
        .unwrap();
        let mut next = at(10);
        next.current_step_index = Some(1);
        assert_eq!(landings(&rollout, &next), Some([0, 100, 20]));
        next.current_step_index = Some(2);
        assert_eq!(landings(&rollout, &next), Some([0, 100, 60]));
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
        assert!(only_mirrors(&before, &counted, None));
        let mut turned = before.clone();
        turned.conditions = Some(vec![cond("False", "3 available")]);
        assert!(!only_mirrors(&before, &turned, None));
    }
}
