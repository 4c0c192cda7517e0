//! The state machine, step by step, against a small model of the cluster.

use super::*;
use crate::crd::analysis::AnalysisPhase;
use crate::crd::rollout::{ControlRequests, Rollout};
use serde_json::json;

const T0: i64 = 1_800_000_000;

fn rollout(spec_extra: serde_json::Value) -> Rollout {
    let mut spec = json!({
        "replicas": 10,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
        "strategy": {"canary": {}}
    });
    merge(&mut spec, spec_extra);
    serde_json::from_value(json!({"apiVersion": "serin.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop", "generation": 1}, "spec": spec}))
    .unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// The cluster as the plan sees it: ReplicaSets whose Pods appear at once and become ready on `ready`.
struct World {
    rollout: Rollout,
    rss: Vec<ObservedReplicaSet>,
    runs: Vec<ObservedRun>,
    now: Timestamp,
    last: Option<Plan>,
}

impl World {
    fn new(r: Rollout) -> Self {
        World {
            rollout: r,
            rss: Vec::new(),
            runs: Vec::new(),
            now: Timestamp::from_second(T0).unwrap(),
            last: None,
        }
    }

    fn observed(&self) -> Observed {
        Observed {
            replica_sets: self.rss.clone(),
            analysis_runs: self.runs.clone(),
            workload_template: None,
            workload_selector: None,
            workload_replicas: None,
            workload_generation: None,
            pods_to_restart: Vec::new(),
            ready_pods: None,
            pointed_services: Vec::new(),
            missing_templates: Vec::new(),
        }
    }

    /// One reconcile: plan, then carry it out.
    fn tick(&mut self) -> Plan {
        let p = plan(&self.rollout, &self.observed(), self.now);
        for d in &p.replica_sets {
            match self.rss.iter_mut().find(|r| r.hash == d.hash) {
                Some(rs) => {
                    rs.spec_replicas = d.replicas;
                    rs.replicas = d.replicas;
                    rs.ready = rs.ready.min(d.replicas);
                    rs.available = rs.available.min(d.replicas);
                }
                None => self.rss.push(ObservedReplicaSet {
                    name: format!("web-{}", d.hash),
                    hash: d.hash.clone(),
                    spec_replicas: d.replicas,
                    replicas: d.replicas,
                    ready: 0,
                    available: 0,
                    created: self.now,
                    pod_metadata: None,
                }),
            }
        }
        self.rss.retain(|r| !p.delete.contains(&r.name));
        for req in &p.create_runs {
            self.runs.push(ObservedRun {
                name: req.name.clone(),
                hash: p.status.current_pod_hash.clone().unwrap_or_default(),
                step: req.step,
                attempt: req.attempt,
                phase: AnalysisPhase::Running,
                abort_on_error: false,
                terminating: false,
                message: "error-rate: 0.01 (Running)".into(),
                metrics: Vec::new(),
                created: self.now,
            });
        }
        for name in &p.terminate_runs {
            for r in self.runs.iter_mut().filter(|r| &r.name == name) {
                r.terminating = true;
                r.phase = AnalysisPhase::Successful;
            }
        }
        self.runs.retain(|r| !p.delete_runs.contains(&r.name));
        self.rollout.status = Some(p.status.clone());
        self.last = Some(p.clone());
        p
    }

    fn ready(&mut self) {
        for rs in &mut self.rss {
            rs.ready = rs.replicas;
            rs.available = rs.replicas;
        }
    }

    fn advance(&mut self, secs: i64) {
        self.now = Timestamp::from_second(self.now.as_second() + secs).unwrap();
    }

    /// Reconciles with Pods becoming ready until nothing changes.
    fn settle(&mut self) -> Plan {
        let mut prev: Option<Plan> = None;
        for _ in 0..100 {
            let p = self.tick();
            self.ready();
            if prev.as_ref().is_some_and(|q| {
                q.replica_sets == p.replica_sets
                    && q.status.current_step_index == p.status.current_step_index
                    && q.status.phase == p.status.phase
                    && q.status.stable_pod_hash == p.status.stable_pod_hash
            }) {
                return p;
            }
            prev = Some(p);
        }
        panic!("the plan never settled");
    }

    fn release(&mut self, image: &str) {
        let t = self.rollout.spec.template.as_mut().unwrap();
        let mut typed = t.typed();
        typed.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        *t = typed.into();
    }

    fn request(&mut self, c: ControlRequests) {
        self.rollout.status.get_or_insert_default().control = Some(c);
    }

    fn size(&self, hash: &str) -> i32 {
        self.rss.iter().find(|r| r.hash == hash).map_or(0, |r| r.spec_replicas)
    }

    fn status(&self) -> &RolloutStatus {
        self.rollout.status.as_ref().unwrap()
    }

    fn stable(&self) -> String {
        self.status().stable_pod_hash.clone().unwrap()
    }

    fn current(&self) -> String {
        self.status().current_pod_hash.clone().unwrap()
    }

    fn reasons(&self) -> Vec<&'static str> {
        self.last
            .as_ref()
            .map(|p| p.decisions.iter().map(|d| d.reason).collect())
            .unwrap_or_default()
    }
}

fn healthy_world(extra: serde_json::Value) -> World {
    let mut w = World::new(rollout(extra));
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    w
}

#[test]
fn the_first_revision_goes_to_all_pods_without_steps() {
    let mut w = World::new(rollout(json!({})));
    let p = w.tick();
    assert_eq!(p.replica_sets.len(), 1);
    assert_eq!(p.replica_sets[0].replicas, 10);
    assert_eq!(p.decisions[0].reason, "FirstRevision");
    assert_eq!(p.status.phase, Some(Phase::Progressing));
    w.ready();
    let p = w.tick();
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    assert!(conditions::is_true(
        p.status.conditions.as_ref().unwrap(),
        conditions::HEALTHY
    ));
    assert_eq!(p.stable_service_hash, p.status.stable_pod_hash);
}

#[test]
fn default_steps_walk_5_25_50_100_and_promote() {
    let mut w = healthy_world(json!({"replicas": 20}));
    let stable = w.stable();
    w.release("web:2");
    let mut canary_sizes = Vec::new();
    for _ in 0..60 {
        let p = w.tick();
        let current = w.current();
        let size = w.size(&current);
        if canary_sizes.last() != Some(&size) && p.status.stable_pod_hash.as_deref() == Some(stable.as_str()) {
            canary_sizes.push(size);
        }
        w.ready();
        if p.status.phase == Some(Phase::Healthy) {
            break;
        }
    }
    // The canary grows through 1 (5%), 5 (25%), 10 (50%) and 20 (100%) Pods, in surge-bounded moves.
    for want in [1, 5, 10, 20] {
        assert!(canary_sizes.contains(&want), "{canary_sizes:?}");
    }
    assert!(
        canary_sizes.windows(2).all(|p| p[0] <= p[1]),
        "the canary only grows: {canary_sizes:?}"
    );
    assert_ne!(w.stable(), stable, "the new version became stable");
    assert_eq!(w.size(&stable), 0, "the old version is scaled down");
    assert_eq!(w.status().phase, Some(Phase::Healthy));
}

#[test]
fn a_promotion_without_a_router_is_healthy_in_the_same_status_write() {
    let mut w = healthy_world(json!({"replicas": 2, "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}));
    w.release("web:2");
    for _ in 0..20 {
        let p = w.tick();
        w.ready();
        if p.decisions.iter().any(|d| d.reason == "Promoted") {
            // The old version's Pods went with the last step: nothing is left to wait for.
            assert_eq!(p.status.phase, Some(Phase::Healthy), "{:?}", p.status.message);
            assert_eq!(p.status.canary_weight, Some(0));
            assert_eq!(p.status.stable_pod_hash, p.status.current_pod_hash);
            return;
        }
    }
    panic!("never promoted: {:?}", w.status().message);
}

#[test]
fn weight_rises_only_once_canary_pods_are_available() {
    let mut w = healthy_world(
        json!({"replicas": 4, "strategy": {"canary": {"steps": [{"setWeight": 25}, {"setWeight": 50}]}}}),
    );
    w.release("web:2");
    for _ in 0..5 {
        let p = w.tick(); // no Pod ever becomes ready
        assert_eq!(p.status.current_step_index, Some(0));
        assert_eq!(p.weight, 0);
    }
    let current = w.current();
    assert_eq!(w.size(&current), 1);
    w.ready();
    let p = w.tick();
    assert_eq!(p.status.current_step_index, Some(1), "25% reached, on to 50%");
    assert_eq!(p.weight, 25);
}

#[test]
fn a_timed_pause_waits_its_duration() {
    let mut w = healthy_world(
        json!({"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {"duration": "1m"}}, {"setWeight": 40}]}}}),
    );
    w.release("web:2");
    let p = w.settle();
    assert_eq!(p.status.current_step_index, Some(1));
    assert_eq!(p.status.phase, Some(Phase::Paused));
    let wait = p.requeue_after.unwrap();
    assert!(
        wait <= Duration::from_secs(60) && wait > Duration::from_secs(50),
        "{wait:?}"
    );
    w.advance(30);
    assert_eq!(w.tick().status.current_step_index, Some(1));
    w.advance(31);
    let p = w.tick();
    assert_eq!(p.status.current_step_index, Some(2));
    assert!(w.reasons().contains(&"StepCompleted"));
}

#[test]
fn an_open_pause_waits_for_promote_of_that_step() {
    let mut w = healthy_world(
        json!({"strategy": {"canary": {"steps": [{"setWeight": 30}, {"pause": {}}, {"setWeight": 60}]}}}),
    );
    w.release("web:2");
    let p = w.settle();
    assert_eq!(
        (p.status.current_step_index, p.status.phase),
        (Some(1), Some(Phase::Paused))
    );
    assert!(
        p.status
            .message
            .as_deref()
            .unwrap()
            .contains("kubectl serin promote web")
    );
    assert_eq!(p.requeue_after, None, "nothing to wait for but a person");
    // A promote of another step is stale and ignored.
    w.request(ControlRequests {
        promote_step: Some(0),
        ..Default::default()
    });
    assert_eq!(w.tick().status.current_step_index, Some(1));
    w.request(ControlRequests {
        promote_step: Some(1),
        ..Default::default()
    });
    let p = w.tick();
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(p.status.control, None, "the request is consumed");
}

#[test]
fn set_canary_scale_sizes_the_canary_apart_from_the_weight() {
    let mut w = healthy_world(
        json!({"strategy": {"canary": {"steps": [{"setCanaryScale": {"replicas": 3}}, {"setWeight": 10}, {"pause": {}}]}}}),
    );
    w.release("web:2");
    w.settle();
    let current = w.current();
    assert_eq!(w.size(&current), 3);
    assert_eq!(w.size(&w.stable()), 7);
}

#[test]
fn a_new_template_mid_rollout_restarts_the_steps() {
    let mut w = healthy_world(json!({"strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}));
    let stable = w.stable();
    w.release("web:2");
    w.settle();
    let v2 = w.current();
    assert_eq!(w.size(&v2), 5);
    w.release("web:3");
    let p = w.tick();
    assert!(w.reasons().contains(&"NewRevision"));
    assert_eq!(p.status.current_step_index, Some(0));
    assert_eq!(w.size(&v2), 0, "the in-between version is scaled down");
    w.ready();
    w.settle();
    assert_eq!(w.size(&w.current()), 5);
    assert_eq!(w.stable(), stable);
}

#[test]
fn going_back_to_the_stable_template_skips_the_steps() {
    let mut w = healthy_world(json!({"strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}));
    let stable = w.stable();
    w.release("web:2");
    w.settle();
    let v2 = w.current();
    w.release("web:1");
    let p = w.tick();
    assert!(w.reasons().contains(&"BackToStable"));
    assert_eq!(p.status.current_pod_hash.as_deref(), Some(stable.as_str()));
    w.ready();
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    assert_eq!(w.size(&v2), 0);
    assert_eq!(w.size(&stable), 10);
}

#[test]
fn abort_puts_traffic_on_stable_until_retry() {
    let mut w = healthy_world(json!({"strategy": {"canary": {"steps": [{"setWeight": 40}, {"pause": {}}]}}}));
    let stable = w.stable();
    w.release("web:2");
    w.settle();
    let v2 = w.current();
    w.request(ControlRequests {
        abort: Some(true),
        ..Default::default()
    });
    let p = w.tick();
    assert!(w.reasons().contains(&"Aborted"));
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    assert_eq!(
        p.canary_service_hash.as_deref(),
        Some(stable.as_str()),
        "canary Service back on stable"
    );
    // 4 canary + 6 stable: 2 available canary Pods may go at once (maxUnavailable 2 of 10), and
    // the stable grows into the room maxSurge leaves (3 of 10, rounded up).
    assert_eq!((w.size(&v2), w.size(&stable)), (2, 10), "stable grows within maxSurge");
    w.ready();
    let p = w.settle();
    assert_eq!(w.size(&v2), 0, "canary gone once the stable is full");
    assert_eq!(p.weight, 0);
    assert_eq!(p.status.phase, Some(Phase::Degraded), "stays aborted");
    assert!(p.status.message.unwrap().contains("kubectl serin retry web"));
    w.request(ControlRequests {
        retry: Some(true),
        ..Default::default()
    });
    let p = w.tick();
    assert!(w.reasons().contains(&"Retried"));
    assert_eq!(p.status.current_step_index, Some(0));
    w.ready();
    w.settle();
    assert_eq!(w.size(&v2), 4);
}

#[test]
fn after_a_failed_analysis_the_stable_comes_back_within_max_surge() {
    let mut w = healthy_world(
        json!({"replicas": 3, "strategy": {"canary": {"maxSurge": 2, "maxUnavailable": 0,
        "steps": [{"setWeight": 90}, {"analysis": {"templates": [{"templateName": "error-rate"}]}}]}}}),
    );
    let stable = w.stable();
    w.release("web:2");
    w.settle();
    let v2 = w.current();
    // 3 of 4 Pods (75%) is nearest 90% within a surge of 2.
    assert_eq!((w.size(&v2), w.size(&stable)), (3, 1));
    for r in w.runs.iter_mut() {
        r.phase = AnalysisPhase::Failed;
        r.message = "error-rate: 0.3 (Failed)".into();
    }
    w.tick();
    // Without a router the canary's ready Pods still take their share: the message says so, and
    // says traffic is back on stable only once they are gone.
    let message = w.tick().status.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "traffic is going back to stable version {stable}: the canary's 2 ready Pods take 67%"
        )),
        "{message}"
    );
    let mut seen = vec![(w.size(&v2), w.size(&stable))];
    for _ in 0..20 {
        w.ready();
        let p = w.tick();
        seen.push((w.size(&v2), w.size(&stable)));
        assert_eq!(p.status.phase, Some(Phase::Degraded));
    }
    let message = w.status().message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("traffic is back on stable version {stable}")),
        "{message}"
    );
    // One available canary Pod may go at once (4 available, 3 needed), and the stable grows
    // into the room maxSurge leaves: 2 + 3, never the 3 + 3 of a stable brought back whole.
    assert_eq!(seen[0], (2, 3));
    assert!(seen.iter().all(|(c, s)| c + s <= 5), "{seen:?}");
    assert_eq!(seen.last(), Some(&(0, 3)), "{seen:?}");
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let mut w = healthy_world(
        json!({"strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]}}}),
    );
    w.release("web:2");
    w.settle();
    let v2 = w.current();
    w.request(ControlRequests {
        promote_full: Some(true),
        ..Default::default()
    });
    w.tick();
    assert!(w.reasons().contains(&"PromotedFull"));
    w.ready();
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    assert_eq!(w.stable(), v2);
}

#[test]
fn a_steady_rollout_paused_by_hand_says_paused() {
    let mut w = healthy_world(json!({"strategy": {"canary": {"steps": [{"setWeight": 10}]}}}));
    w.rollout.spec.paused = Some(true);
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Paused));
    let message = p.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("spec.paused is true") && message.contains("spec.paused to false"),
        "{message}"
    );
    assert!(p.replica_sets.iter().all(|r| r.replicas == 10), "nothing else changes");
    w.rollout.spec.paused = None;
    w.request(ControlRequests {
        pause: Some(true),
        ..Default::default()
    });
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Paused));
    assert!(p.status.message.unwrap().contains("kubectl serin resume web"));
    w.request(ControlRequests {
        pause: Some(false),
        ..Default::default()
    });
    assert_eq!(w.settle().status.phase, Some(Phase::Healthy));
}

#[test]
fn spec_paused_and_user_pause_hold_the_rollout() {
    let mut w = healthy_world(json!({"strategy": {"canary": {"steps": [{"setWeight": 10}, {"setWeight": 50}]}}}));
    w.rollout.spec.paused = Some(true);
    w.release("web:2");
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Paused));
    assert_eq!(p.status.current_step_index, Some(0));
    w.rollout.spec.paused = None;
    w.request(ControlRequests {
        pause: Some(true),
        ..Default::default()
    });
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Paused));
    assert!(p.status.message.unwrap().contains("kubectl serin resume"));
    w.request(ControlRequests {
        pause: Some(false),
        ..Default::default()
    });
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Healthy));
}

#[test]
fn no_progress_past_the_deadline_is_degraded_or_aborted() {
    let mut w =
        healthy_world(json!({"progressDeadlineSeconds": 60, "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}));
    w.release("web:2");
    let p = w.tick(); // canary Pods never become ready
    assert!(p.requeue_after.unwrap() <= Duration::from_secs(60));
    w.advance(61);
    let p = w.tick();
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    let progressing = p
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "ProgressDeadlineExceeded")
    );
    assert!(w.reasons().contains(&"ProgressDeadlineExceeded"));

    let mut w = healthy_world(
        json!({"progressDeadlineSeconds": 60, "progressDeadlineAbort": true, "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}),
    );
    let stable = w.stable();
    w.release("web:2");
    w.tick();
    w.advance(61);
    let p = w.tick();
    assert_eq!(p.status.abort, Some(true));
    assert_eq!(w.size(&stable), 10);
}

#[test]
fn a_broken_stable_does_not_block_a_healthy_canary() {
    let mut w = healthy_world(
        json!({"replicas": 4, "strategy": {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}}}),
    );
    let stable = w.stable();
    for rs in &mut w.rss {
        rs.ready = 0;
        rs.available = 0;
    }
    w.release("web:2");
    for _ in 0..30 {
        w.tick();
        // Only the canary's Pods ever become ready.
        let current = w.current();
        for rs in w.rss.iter_mut().filter(|r| r.hash == current) {
            rs.ready = rs.replicas;
            rs.available = rs.replicas;
        }
    }
    assert_ne!(w.stable(), stable, "promoted despite the broken stable");
}

#[test]
fn old_replicasets_beyond_the_history_limit_are_deleted() {
    let mut w =
        healthy_world(json!({"revisionHistoryLimit": 1, "strategy": {"canary": {"steps": [{"setWeight": 100}]}}}));
    let v1 = w.stable();
    for (i, image) in ["web:2", "web:3", "web:4"].iter().enumerate() {
        w.advance(10 + i as i64);
        w.release(image);
        w.settle();
    }
    let hashes: Vec<String> = w.rss.iter().map(|r| r.hash.clone()).collect();
    assert!(!hashes.contains(&v1), "the oldest is gone");
    assert!(
        w.rss.len() <= 3,
        "stable, the previous stable, and one more: {hashes:?}"
    );
}

#[test]
fn an_invalid_spec_is_a_condition_and_an_event_not_a_change() {
    let mut w = healthy_world(json!({}));
    w.rollout.spec.selector.match_labels = Some([("app".to_string(), "other".to_string())].into());
    let p = w.tick();
    assert!(p.replica_sets.is_empty());
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    assert!(conditions::is_true(
        p.status.conditions.as_ref().unwrap(),
        conditions::INVALID_SPEC
    ));
    assert_eq!(p.decisions[0].reason, "InvalidSpec");
    assert!(w.tick().decisions.is_empty(), "the same problem is told once");
}

mod invariants {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever the sizes, weights and timing of Pods becoming ready: the canary never grows
        /// past the current step's size nor the stable shrinks below it (so the canary's share of
        /// traffic never exceeds what the step plans; when a step lowers the weight the canary
        /// shrinks as the stable refills), and availability never drops below
        /// replicas − maxUnavailable once it was there.
        #[test]
        fn traffic_and_availability_hold(
            replicas in 1i32..24,
            weights in proptest::collection::vec(1i32..=100, 1..4),
            surge in 0i32..4,
            unavailable in 0i32..4,
            readiness in proptest::collection::vec(0u8..4, 60),
        ) {
            let steps: Vec<serde_json::Value> = weights.iter().map(|w| json!({"setWeight": w})).collect();
            let mut w = World::new(rollout(json!({"replicas": replicas, "strategy": {"canary": {
                "steps": steps, "maxSurge": surge, "maxUnavailable": unavailable}}})));
            w.settle();
            let stable = w.stable();
            w.release("web:2");
            let floor = replicas - if surge == 0 && unavailable == 0 { 1 } else { unavailable };
            for r in readiness {
                let before: i32 = w.rss.iter().map(|r| r.available).sum();
                let spec_of = |w: &World, h: &str| w.rss.iter().find(|r| r.hash == h).map_or(0, |r| r.spec_replicas);
                let canary_before = spec_of(&w, &w.status().current_pod_hash.clone().unwrap_or_default());
                let stable_before = spec_of(&w, &stable);
                let p = w.tick();
                let after: i32 = w.rss.iter().map(|r| r.available).sum();
                prop_assert!(after >= before.min(floor), "availability {before} -> {after} below {floor}");
                if p.status.stable_pod_hash.as_deref() == Some(stable.as_str()) {
                    let idx = p.status.current_step_index.unwrap_or(0) as usize;
                    if idx < weights.len() {
                        let t = replicas::targets(replicas, weights[idx], surge, false, false, None);
                        let current = w.current();
                        let c = spec_of(&w, &current);
                        let s = spec_of(&w, &stable);
                        prop_assert!(c <= t.canary.max(canary_before), "canary grew to {c}, past its target {}", t.canary);
                        prop_assert!(s >= t.stable.min(stable_before), "stable shrank to {s}, below its target {}", t.stable);
                    }
                }
                // Some Pods become ready between looks, at random.
                for rs in &mut w.rss {
                    let gain = i32::from(r).min(rs.replicas - rs.available);
                    rs.available += gain;
                    rs.ready = rs.available;
                }
            }
            // And it always gets there once Pods become ready.
            let p = w.settle();
            prop_assert_eq!(p.status.phase, Some(Phase::Healthy));
            prop_assert_ne!(w.stable(), stable);
        }
    }
}

mod analysis {
    use super::*;

    fn set_run(w: &mut World, step: Option<i32>, phase: AnalysisPhase, message: &str) {
        let current = w.current();
        let run = w
            .runs
            .iter_mut()
            .rev()
            .find(|r| r.step == step && r.hash == current)
            .expect("a run was requested");
        run.phase = phase;
        run.message = message.into();
    }

    const STEPS: &str =
        r#"[{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "error-rate"}]}}, {"setWeight": 60}]"#;

    fn world() -> World {
        let steps: serde_json::Value = serde_json::from_str(STEPS).unwrap();
        let mut w = healthy_world(json!({"strategy": {"canary": {"steps": steps}}}));
        w.release("web:2");
        w
    }

    #[test]
    fn an_analysis_step_waits_for_its_run_and_goes_on_when_it_passes() {
        let mut w = world();
        let p = w.settle();
        assert_eq!(p.status.current_step_index, Some(1));
        assert_eq!(p.status.phase, Some(Phase::Progressing));
        assert!(p.status.message.unwrap().contains("analysis at step 2/3 running"));
        assert_eq!(w.runs.len(), 1, "one run for the step");
        assert_eq!(p.status.analysis.len(), 1);
        set_run(
            &mut w,
            Some(1),
            AnalysisPhase::Successful,
            "error-rate: 0.002 (Successful)",
        );
        let p = w.tick();
        let completed: Vec<&str> = p
            .decisions
            .iter()
            .filter(|d| d.reason == "StepCompleted")
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            completed,
            ["step 2/3 done: analysis; analysis passed: error-rate: 0.002 (Successful)"],
            "one Event for the step, with what its analysis found"
        );
        assert_eq!(p.status.current_step_index, Some(2));
        w.ready();
        assert_eq!(w.settle().status.phase, Some(Phase::Healthy));
    }

    #[test]
    fn a_failed_analysis_aborts_at_once() {
        let mut w = world();
        let stable = w.stable();
        w.settle();
        set_run(&mut w, Some(1), AnalysisPhase::Failed, "error-rate: 0.3 (Failed)");
        let p = w.tick();
        assert_eq!(p.status.abort, Some(true));
        assert_eq!(p.status.phase, Some(Phase::Degraded));
        assert!(
            p.decisions
                .iter()
                .any(|d| d.reason == "Aborted" && d.message.contains("error-rate: 0.3")),
            "{:?}",
            p.decisions
        );
        assert_eq!(p.canary_service_hash.as_deref(), Some(stable.as_str()));
        assert_eq!(w.size(&stable), 10);
        // The reason stays in the message of every later reconcile, until a retry.
        let later = w.tick();
        let message = later.status.message.clone().unwrap_or_default();
        assert!(
            message.starts_with("aborted: analysis at step 2/") && message.contains("error-rate: 0.3 (Failed)"),
            "{message}"
        );
        w.settle();
        let gone = w.tick().status.message.clone().unwrap_or_default();
        assert!(
            gone.starts_with("aborted: analysis at step 2/")
                && gone.contains(&format!("traffic is back on stable version {stable}")),
            "{gone}"
        );
    }

    #[test]
    fn an_inconclusive_analysis_pauses_with_a_way_forward() {
        let mut w = world();
        w.settle();
        set_run(
            &mut w,
            Some(1),
            AnalysisPhase::Inconclusive,
            "error-rate: no data (Inconclusive)",
        );
        let p = w.tick();
        assert_eq!(p.status.phase, Some(Phase::Paused));
        let message = p.status.message.unwrap();
        assert!(
            message.contains("inconclusive")
                && message.contains("kubectl serin promote web")
                && message.contains("kubectl serin abort web"),
            "{message}"
        );
        let paused = p
            .status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Paused")
            .unwrap();
        assert_eq!(paused.reason, "InconclusiveAnalysis");
        w.request(ControlRequests {
            promote_step: Some(1),
            ..Default::default()
        });
        assert_eq!(w.tick().status.current_step_index, Some(2), "promote goes past it");
    }

    #[test]
    fn an_erroring_analysis_pauses_never_promotes() {
        let mut w = world();
        w.settle();
        set_run(
            &mut w,
            Some(1),
            AnalysisPhase::Error,
            "error-rate: cannot reach http://prometheus:9090 (Error)",
        );
        for _ in 0..5 {
            let p = w.tick();
            assert_eq!(p.status.phase, Some(Phase::Paused));
            assert_eq!(p.status.current_step_index, Some(1));
            w.advance(60);
        }
    }

    #[test]
    fn background_analysis_runs_until_promotion_and_aborts_on_failure() {
        let mut w = healthy_world(json!({"strategy": {"canary": {
            "analysis": {"templates": [{"templateName": "error-rate"}]},
            "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]}}}));
        w.release("web:2");
        let p = w.settle();
        assert_eq!(p.status.phase, Some(Phase::Paused));
        let background: Vec<&ObservedRun> = w.runs.iter().filter(|r| r.step.is_none()).collect();
        assert_eq!(background.len(), 1);
        w.request(ControlRequests {
            promote_step: Some(1),
            ..Default::default()
        });
        w.tick();
        w.ready();
        let p = w.settle();
        assert_eq!(p.status.phase, Some(Phase::Healthy));
        assert!(
            w.runs.iter().all(|r| r.terminating),
            "promotion stops the background run"
        );

        w.release("web:3");
        w.settle();
        set_run(&mut w, None, AnalysisPhase::Failed, "error-rate: 0.4 (Failed)");
        let p = w.tick();
        assert_eq!(p.status.abort, Some(true));
        w.request(ControlRequests {
            retry: Some(true),
            ..Default::default()
        });
        let p = w.tick();
        assert_eq!(p.status.attempt, Some(1));
        assert!(
            p.create_runs.iter().any(|r| r.attempt == 1 && r.step.is_none()),
            "a retry gets a new background run"
        );
    }

    #[test]
    fn background_analysis_waits_for_its_starting_step() {
        let mut w = healthy_world(json!({"strategy": {"canary": {
            "analysis": {"templates": [{"templateName": "error-rate"}], "startingStep": 2},
            "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]}}}));
        w.release("web:2");
        let p = w.settle();
        assert_eq!(p.status.current_step_index, Some(1));
        assert!(
            w.runs.iter().all(|r| r.step.is_some()),
            "no background run before step 2"
        );
        w.request(ControlRequests {
            promote_step: Some(1),
            ..Default::default()
        });
        w.tick();
        w.ready();
        let p = w.settle();
        assert_eq!(p.status.current_step_index, Some(3));
        assert_eq!(
            w.runs.iter().filter(|r| r.step.is_none()).count(),
            1,
            "it started at step 2"
        );
    }

    #[test]
    fn default_steps_stop_for_analysis_after_each_weight() {
        let mut w = healthy_world(
            json!({"strategy": {"canary": {"analysis": {"templates": [{"templateName": "error-rate"}]}}}}),
        );
        w.release("web:2");
        let mut passed = 0;
        for _ in 0..200 {
            let p = w.tick();
            w.ready();
            if p.status.phase == Some(Phase::Healthy) {
                break;
            }
            let current = w.current();
            for r in w
                .runs
                .iter_mut()
                .filter(|r| r.step.is_some() && r.hash == current && r.phase == AnalysisPhase::Running)
            {
                r.phase = AnalysisPhase::Successful;
                passed += 1;
            }
        }
        assert_eq!(passed, 4, "one analysis stop after each of 5, 25, 50, 100");
        assert_eq!(w.status().phase, Some(Phase::Healthy));
    }
}

#[test]
fn finished_analysis_runs_beyond_the_history_are_deleted() {
    let steps: serde_json::Value =
        serde_json::from_str(r#"[{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "t"}]}}]"#).unwrap();
    let mut w = healthy_world(json!({"strategy": {"canary": {"steps": steps}}}));
    for i in 0..8 {
        w.advance(10);
        w.release(&format!("web:{}", i + 2));
        w.settle();
        let current = w.current();
        for r in w.runs.iter_mut().filter(|r| r.hash == current) {
            r.phase = AnalysisPhase::Successful;
        }
        w.settle();
    }
    assert!(w.runs.len() <= ANALYSIS_RUN_HISTORY + 1, "{} runs kept", w.runs.len());
    let current = w.current();
    assert!(
        w.runs.iter().any(|r| r.hash == current),
        "the current version's run stays"
    );
}

#[test]
fn an_erroring_analysis_aborts_when_the_metric_says_so() {
    let steps: serde_json::Value =
        serde_json::from_str(r#"[{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "t"}]}}]"#).unwrap();
    let mut w = healthy_world(json!({"strategy": {"canary": {"steps": steps}}}));
    w.release("web:2");
    w.settle();
    let current = w.current();
    for r in w.runs.iter_mut().filter(|r| r.hash == current) {
        r.phase = AnalysisPhase::Error;
        r.abort_on_error = true;
        r.message = "error-rate: cannot reach prometheus (Error)".into();
    }
    let p = w.tick();
    assert_eq!(p.status.abort, Some(true));
    assert!(
        p.decisions
            .iter()
            .any(|d| d.reason == "Aborted" && d.message.contains("kept erroring"))
    );
}

mod routed {
    use super::*;

    fn routed_world(extra: serde_json::Value) -> World {
        let mut spec = json!({"replicas": 4, "strategy": {"canary": {
            "stableService": "web-stable", "canaryService": "web-canary",
            "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
            "steps": [{"setWeight": 5}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]}}});
        merge(&mut spec, extra);
        let mut w = World::new(rollout(spec));
        w.settle();
        w.release("web:2");
        w
    }

    #[test]
    fn the_router_takes_the_exact_weight_and_the_stable_stays_full() {
        let mut w = routed_world(json!({}));
        let stable = w.stable();
        let p = w.tick();
        assert_eq!(p.weight, 0, "no weight before a canary Pod is available");
        w.ready();
        let p = w.settle();
        assert_eq!(
            (p.status.current_step_index, p.weight),
            (Some(1), 5),
            "5% exactly, with 4 replicas"
        );
        let current = w.current();
        assert_eq!(
            (w.size(&current), w.size(&stable)),
            (1, 4),
            "one canary Pod; the stable stays full"
        );
        w.request(ControlRequests {
            promote_step: Some(1),
            ..Default::default()
        });
        w.tick();
        w.ready();
        let p = w.settle();
        assert_eq!(p.weight, 50);
        assert_eq!((w.size(&current), w.size(&stable)), (2, 4));
    }

    #[test]
    fn a_promoted_version_with_all_traffic_is_healthy_while_the_old_one_waits_out_its_delay() {
        let mut w = routed_world(json!({"strategy": {"canary": {"scaleDownDelaySeconds": 86400}}}));
        let stable = w.stable();
        w.settle();
        w.request(ControlRequests {
            promote_full: Some(true),
            ..Default::default()
        });
        let mut p = w.tick();
        for _ in 0..10 {
            w.ready();
            p = w.tick();
        }
        let current = w.current();
        assert_eq!(w.stable(), current);
        assert_eq!(p.stable_service_hash.as_deref(), Some(current.as_str()));
        assert_eq!(w.size(&stable), 4, "the old version keeps its Pods for a day");
        assert_eq!(p.status.phase, Some(Phase::Healthy), "{:?}", p.status.message);
        let message = p.status.message.clone().unwrap_or_default();
        assert!(
            message.contains("4 Pods of the old version wait out the scale-down delay"),
            "{message}"
        );
    }

    #[test]
    fn dynamic_stable_scale_shrinks_the_stable_as_the_weight_grows() {
        let mut w = routed_world(json!({"strategy": {"canary": {"dynamicStableScale": true}}}));
        let stable = w.stable();
        w.tick();
        w.ready();
        w.settle();
        w.request(ControlRequests {
            promote_step: Some(1),
            ..Default::default()
        });
        w.tick();
        w.ready();
        w.settle();
        assert_eq!(w.size(&stable), 2, "50% of 4");
    }

    #[test]
    fn abort_moves_traffic_at_once_and_pods_after_the_delay() {
        let mut w = routed_world(json!({"strategy": {"canary": {"abortScaleDownDelaySeconds": 30}}}));
        w.tick();
        w.ready();
        w.settle();
        let current = w.current();
        w.request(ControlRequests {
            abort: Some(true),
            ..Default::default()
        });
        let p = w.tick();
        assert_eq!(p.weight, 0, "traffic back on stable first");
        assert_eq!(w.size(&current), 1, "the canary keeps its Pods for the delay");
        assert!(p.requeue_after.unwrap() <= Duration::from_secs(30));
        w.advance(31);
        w.tick();
        assert_eq!(w.size(&current), 0);
    }

    #[test]
    fn an_aborted_canary_shows_when_its_pods_go() {
        let mut w = routed_world(json!({"strategy": {"canary": {"abortScaleDownDelaySeconds": 30}}}));
        w.tick();
        w.ready();
        w.settle();
        let current = w.current();
        w.request(ControlRequests {
            abort: Some(true),
            ..Default::default()
        });
        let p = w.tick();
        let deadline = p.status.scale_down_deadlines.iter().find(|d| d.pod_hash == current);
        assert_eq!(
            deadline.map(|d| d.at.0.as_second()),
            Some(w.now.as_second() + 30),
            "the status says when the canary's Pods go"
        );
        w.advance(31);
        let p = w.tick();
        assert!(p.status.scale_down_deadlines.iter().all(|d| d.pod_hash != current));
    }

    /// A world at the second pause (50%) with the stable shrunk by dynamic scaling.
    fn dynamic_at_half(extra: serde_json::Value) -> World {
        let mut spec = json!({"strategy": {"canary": {"dynamicStableScale": true}}});
        merge(&mut spec, extra);
        let mut w = routed_world(spec);
        w.tick();
        w.ready();
        w.settle();
        w.request(ControlRequests {
            promote_step: Some(1),
            ..Default::default()
        });
        w.tick();
        w.ready();
        w.settle();
        w
    }

    #[test]
    fn a_dynamic_abort_moves_traffic_only_as_the_stable_comes_back() {
        let mut w = dynamic_at_half(json!({}));
        let (stable, current) = (w.stable(), w.current());
        assert_eq!((w.size(&stable), w.size(&current)), (2, 2));
        w.request(ControlRequests {
            abort: Some(true),
            ..Default::default()
        });
        let p = w.tick();
        assert_eq!(w.size(&stable), 4, "the stable is asked back whole");
        assert_eq!(p.weight, 50, "two of four stable Pods take only half the traffic");
        assert!(p.status.message.as_deref().unwrap_or("").contains("going back"));
        assert_eq!(w.size(&current), 2);
        // One more stable Pod available: a quarter moves back, and the canary needs one Pod.
        w.rss.iter_mut().find(|r| r.hash == stable).unwrap().available = 3;
        let p = w.tick();
        assert_eq!(p.weight, 25);
        assert_eq!(w.size(&current), 1);
        w.ready();
        let p = w.tick();
        assert_eq!(p.weight, 0);
        assert_eq!(w.size(&current), 0, "no delay asked: the canary goes with its traffic");
    }

    #[test]
    fn a_dynamic_abort_with_a_delay_counts_it_from_when_traffic_is_back() {
        let mut w = dynamic_at_half(json!({"strategy": {"canary": {"abortScaleDownDelaySeconds": 10}}}));
        let (stable, current) = (w.stable(), w.current());
        w.request(ControlRequests {
            abort: Some(true),
            ..Default::default()
        });
        let p = w.tick();
        assert_eq!(p.weight, 50);
        assert!(
            p.status.scale_down_deadlines.is_empty(),
            "no deadline while traffic is on the canary"
        );
        w.advance(60);
        let p = w.tick();
        assert_eq!(w.size(&current), 2, "the delay has not started");
        assert!(p.status.scale_down_deadlines.is_empty());
        w.rss.iter_mut().find(|r| r.hash == stable).unwrap().available = 4;
        let p = w.tick();
        assert_eq!(p.weight, 0);
        let at = p.status.scale_down_deadlines[0].at.0.as_second();
        assert_eq!(at, w.now.as_second() + 10, "the delay counts from now");
        w.advance(5);
        let p = w.tick();
        assert_eq!(
            p.status.scale_down_deadlines[0].at.0.as_second(),
            at,
            "the deadline holds"
        );
        assert_eq!(w.size(&current), 2);
        w.advance(6);
        w.tick();
        assert_eq!(w.size(&current), 0);
    }

    #[test]
    fn an_abort_delay_of_zero_keeps_the_canary() {
        // As in Argo Rollouts: 0 means the aborted canary is never scaled down.
        let mut w = routed_world(json!({"strategy": {"canary": {"abortScaleDownDelaySeconds": 0}}}));
        w.tick();
        w.ready();
        w.settle();
        let current = w.current();
        w.request(ControlRequests {
            abort: Some(true),
            ..Default::default()
        });
        let p = w.tick();
        assert_eq!(p.weight, 0);
        w.advance(3600);
        let p = w.tick();
        assert_eq!(w.size(&current), 1, "the canary keeps its Pod");
        assert!(p.status.scale_down_deadlines.is_empty(), "and no deadline is shown");
    }

    #[test]
    fn ping_pong_services_take_turns_as_stable() {
        let mut w = World::new(rollout(json!({"replicas": 2, "strategy": {"canary": {
            "pingPong": {"pingService": "ping", "pongService": "pong"},
            "trafficRouting": {"istio": {"virtualService": {"name": "web"}}},
            "steps": [{"setWeight": 25}, {"pause": {}}]}}})));
        w.settle();
        assert_eq!(
            w.status().stable_ping_pong,
            Some(crate::crd::rollout::PingPongSide::Ping)
        );
        let services = |w: &World| {
            let (s, c) = w.rollout.spec.strategy.service_names(w.status().stable_ping_pong);
            (s.cloned().unwrap(), c.cloned().unwrap())
        };
        assert_eq!(services(&w), ("ping".into(), "pong".into()));
        w.release("web:2");
        w.settle();
        assert_eq!(
            services(&w),
            ("ping".into(), "pong".into()),
            "the canary runs behind pong"
        );
        w.request(ControlRequests {
            promote_step: Some(1),
            ..Default::default()
        });
        w.settle();
        assert_eq!(w.stable(), w.current());
        assert_eq!(services(&w), ("pong".into(), "ping".into()), "pong is stable now");
        assert_eq!(w.last.as_ref().unwrap().canary_service_hash, Some(w.current()));
    }

    #[test]
    fn a_destination_rule_no_longer_routed_through_is_released() {
        let mut w = World::new(rollout(json!({"replicas": 2, "strategy": {"canary": {
            "trafficRouting": {"istio": {"virtualService": {"name": "web"},
                "destinationRule": {"name": "web", "stableSubsetName": "stable", "canarySubsetName": "canary"}}},
            "steps": [{"setWeight": 25}, {"pause": {}}]}}})));
        let p = w.settle();
        assert_eq!(p.status.labelled_destination_rules, vec!["web".to_string()]);
        assert!(p.release_destination_rules.is_empty());
        w.rollout.spec.strategy.canary.as_mut().unwrap().traffic_routing = None;
        let p = w.tick();
        assert_eq!(p.release_destination_rules, vec!["web".to_string()]);
        assert!(p.status.labelled_destination_rules.is_empty());
        assert!(w.tick().release_destination_rules.is_empty(), "released once");
    }

    #[test]
    fn removing_the_router_ends_the_scale_down_delay() {
        let mut w = routed_world(json!({}));
        let old = w.stable();
        w.tick();
        w.ready();
        w.settle();
        w.request(ControlRequests {
            promote_full: Some(true),
            ..Default::default()
        });
        w.settle();
        assert_eq!(w.size(&old), 4, "the old version waits out its delay");
        w.rollout.spec.strategy.canary.as_mut().unwrap().traffic_routing = None;
        w.tick();
        assert_eq!(w.size(&old), 0, "without a router, Pods are the traffic: no delay");
    }

    #[test]
    fn a_last_step_met_in_one_look_keeps_its_weight_while_the_canary_grows() {
        // The step to 50% is done in the look that moves on to the promotion: 50% is what the
        // route carries while the canary grows to full size, not the 5% written before.
        let mut w = routed_world(
            json!({"strategy": {"canary": {"steps": [{"setWeight": 5}, {"pause": {}}, {"setWeight": 50}]}}}),
        );
        w.tick();
        w.ready();
        w.settle();
        w.request(ControlRequests {
            promote_step: Some(1),
            ..Default::default()
        });
        let mut weights = Vec::new();
        for _ in 0..10 {
            let p = w.tick();
            weights.push(p.weight);
            w.ready();
            if p.status.stable_pod_hash == p.status.current_pod_hash {
                break;
            }
        }
        assert!(weights.contains(&50), "weights written: {weights:?}");
        let first_50 = weights.iter().position(|x| *x == 50).unwrap();
        assert!(
            weights[first_50..].iter().all(|x| *x >= 50),
            "the weight never falls back below 50 before promotion: {weights:?}"
        );
    }

    #[test]
    fn promotion_gives_the_canary_all_traffic_before_the_old_version_goes() {
        let mut w = routed_world(json!({"strategy": {"canary": {"steps": [{"setWeight": 50}]}}}));
        let stable = w.stable();
        w.tick();
        w.ready();
        let mut promoted = None;
        for _ in 0..20 {
            let p = w.tick();
            w.ready();
            if p.decisions.iter().any(|d| d.reason == "Promoted") {
                promoted = Some(p);
                break;
            }
        }
        let p = promoted.expect("promoted");
        assert_eq!(p.weight, 100, "all traffic on the new version at promotion");
        assert_eq!(
            w.size(&stable),
            4,
            "the old version keeps its Pods while traffic drains"
        );
        w.advance(31);
        w.settle();
        assert_eq!(w.size(&stable), 0);
    }
}

#[test]
fn header_and_mirror_routes_live_from_their_step_until_promotion_or_abort() {
    let steps: serde_json::Value = serde_json::from_str(
        r#"[{"setWeight": 10},
            {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
            {"setMirrorRoute": {"name": "shadow", "match": [{"headerName": "x-any"}], "percentage": 20}},
            {"pause": {}},
            {"setHeaderRoute": {"name": "beta"}},
            {"pause": {}}]"#,
    )
    .unwrap();
    let mut w = healthy_world(
        json!({"strategy": {"canary": {"stableService": "s", "canaryService": "c",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}}, "steps": steps}}}),
    );
    w.release("web:2");
    w.tick();
    w.ready();
    let p = w.settle();
    assert_eq!(p.status.current_step_index, Some(3));
    assert_eq!(p.status.header_routes.len(), 1);
    assert_eq!(p.status.mirror_routes[0].percentage, Some(20));
    w.request(ControlRequests {
        promote_step: Some(3),
        ..Default::default()
    });
    let p = w.settle();
    assert!(
        p.status.header_routes.is_empty(),
        "a setHeaderRoute without match removes it"
    );
    assert_eq!(p.status.mirror_routes.len(), 1);
    w.request(ControlRequests {
        abort: Some(true),
        ..Default::default()
    });
    let p = w.tick();
    assert!(p.status.mirror_routes.is_empty(), "abort removes managed routes");
}

// Webhook gates: the plan asks for calls; the answers come back through status.

fn gated_world(hooks: serde_json::Value) -> World {
    healthy_world(json!({"strategy": {"canary": {
        "stableService": "web-stable", "canaryService": "web-canary",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
        "scaleDownDelaySeconds": 0,
        "steps": [{"setWeight": 20}, {"pause": {"duration": "10s"}}, {"setWeight": 50}],
        "webhooks": hooks
    }}}))
}

impl World {
    /// Answers every call of the last plan as `answer` says, as the shell would.
    fn answer(&mut self, answer: impl Fn(&gates::GateCall) -> Result<u16, String>) -> Vec<gates::GateCall> {
        let calls = self.last.as_ref().map(|p| p.call_webhooks.clone()).unwrap_or_default();
        let status = self.rollout.status.get_or_insert_default();
        for c in &calls {
            let rec = gates::answer_record(status, c, answer(c), self.now);
            gates::record(&mut status.webhooks, rec);
        }
        calls
    }
}

#[test]
fn pre_rollout_gates_hold_traffic_until_they_pass() {
    let mut w = gated_world(
        json!([{"name": "smoke", "type": "pre-rollout", "url": "http://t/s", "failureLimit": 1, "interval": "5s"}]),
    );
    w.release("web:2");
    let p = w.tick();
    w.ready();
    assert_eq!(p.call_webhooks.len(), 1);
    assert_eq!(p.call_webhooks[0].phase, "Progressing");
    assert_eq!(p.weight, 0, "no traffic before the pre-rollout gate passes");
    // One failure is allowed: no call again before the interval, no traffic, no abort.
    w.answer(|_| Err("HTTP 500".into()));
    let p = w.tick();
    assert!(p.call_webhooks.is_empty(), "the interval has not passed");
    assert_eq!((p.weight, p.status.abort), (0, None));
    assert!(p.status.message.as_deref().unwrap_or_default().contains("smoke failed"));
    w.advance(5);
    let p = w.tick();
    assert_eq!(p.call_webhooks.len(), 1, "called again after the interval");
    w.answer(|_| Ok(200));
    w.ready();
    w.tick();
    w.ready();
    let p = w.tick();
    assert_eq!(p.weight, 20, "traffic flows once the gate passed");
    assert_eq!(p.status.current_step_index, Some(1));
}

#[test]
fn a_stale_copy_with_the_new_versions_answer_does_not_call_the_gate_again() {
    let mut w = gated_world(json!([{"name": "smoke", "type": "pre-rollout", "url": "http://t/s"}]));
    let before = w.rollout.status.clone();
    w.release("web:2");
    let p = w.tick();
    assert_eq!(p.call_webhooks.len(), 1);
    let new = p.status.current_pod_hash.clone().unwrap();
    // The answer is known, but the copy read next still predates the new version.
    w.answer(|_| Ok(200));
    let answered = w.rollout.status.as_ref().unwrap().webhooks.clone();
    w.rollout.status = before;
    w.rollout.status.get_or_insert_default().webhooks = answered;
    let p = w.tick();
    assert_eq!(p.status.current_pod_hash.as_deref(), Some(new.as_str()));
    assert!(p.call_webhooks.is_empty(), "{:?}", p.call_webhooks);
    assert_eq!(p.status.webhooks.len(), 1, "the answer is kept");
}

#[test]
fn a_pre_rollout_gate_failing_past_its_limit_aborts() {
    let mut w = gated_world(json!([{"name": "smoke", "type": "pre-rollout", "url": "http://t/s"}]));
    w.release("web:2");
    w.tick();
    w.answer(|_| Err("HTTP 503: not ready".into()));
    let p = w.tick();
    assert_eq!(p.status.abort, Some(true));
    assert!(w.reasons().contains(&"Aborted"));
    assert!(
        p.status.message.as_deref().unwrap_or_default().contains("aborted"),
        "{:?}",
        p.status.message
    );
}

#[test]
fn rollout_gates_are_asked_at_every_step_and_count_failures() {
    let mut w = gated_world(
        json!([{"name": "load", "type": "rollout", "url": "http://t/l", "failureLimit": 1, "interval": "1s"}]),
    );
    w.release("web:2");
    let mut asked = Vec::new();
    for _ in 0..40 {
        let p = w.tick();
        w.ready();
        let calls = w.answer(|_| Ok(200));
        asked.extend(calls.iter().map(|c| c.step));
        w.advance(1);
        if p.status.phase == Some(Phase::Healthy) {
            break;
        }
    }
    assert_eq!(asked, vec![Some(0), Some(1), Some(2)], "once per step");
    assert_eq!(w.status().phase, Some(Phase::Healthy));

    // Two failures at one step (limit 1): abort.
    w.release("web:3");
    w.tick();
    w.ready();
    for _ in 0..6 {
        w.tick();
        w.ready();
        w.answer(|_| Err("HTTP 500".into()));
        w.advance(1);
    }
    assert_eq!(w.status().abort, Some(true));
}

#[test]
fn confirm_promotion_waits_paused_until_it_says_yes() {
    let mut w =
        gated_world(json!([{"name": "approval", "type": "confirm-promotion", "url": "http://t/a", "interval": "2s"}]));
    w.release("web:2");
    let stable = w.stable();
    for _ in 0..20 {
        w.tick();
        w.ready();
        w.answer(|_| Err("HTTP 403".into()));
        w.advance(1);
    }
    let st = w.status().clone();
    assert_eq!(st.phase, Some(Phase::Paused));
    assert_eq!(st.stable_pod_hash.as_deref(), Some(stable.as_str()), "not promoted");
    assert!(
        st.message
            .as_deref()
            .unwrap_or_default()
            .contains("waiting for webhook approval"),
        "{:?}",
        st.message
    );
    assert_eq!(w.last.as_ref().unwrap().weight, 50, "the last step's weight holds");
    w.advance(2);
    w.tick();
    w.answer(|_| Ok(200));
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    assert_ne!(w.stable(), stable);
}

#[test]
fn promote_full_stands_in_for_a_confirmation() {
    let mut w = gated_world(json!([{"name": "approval", "type": "confirm-promotion", "url": "http://t/a"}]));
    w.release("web:2");
    let stable = w.stable();
    w.tick();
    w.request(ControlRequests {
        promote_full: Some(true),
        ..Default::default()
    });
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    assert_ne!(w.stable(), stable);
}

#[test]
fn a_rollback_gate_saying_yes_aborts_and_post_rollout_hears_of_it() {
    let mut w = gated_world(json!([
        {"name": "panic-button", "type": "rollback", "url": "http://t/r", "interval": "1s"},
        {"name": "report", "type": "post-rollout", "url": "http://t/p"}
    ]));
    w.release("web:2");
    let p = w.tick();
    w.ready();
    assert_eq!(
        p.call_webhooks.len(),
        1,
        "the rollback gate is asked while the canary runs"
    );
    w.answer(|_| Err("HTTP 404".into()));
    w.advance(1);
    let p = w.tick();
    assert_eq!(p.status.abort, None, "a no is no rollback");
    w.answer(|_| Ok(200));
    let p = w.tick();
    assert_eq!(p.status.abort, Some(true));
    let post: Vec<_> = p.call_webhooks.iter().filter(|c| c.webhook.name == "report").collect();
    assert_eq!(post.len(), 1);
    assert_eq!(post[0].phase, "Failed");
    w.answer(|_| Ok(200));
    let p = w.tick();
    assert!(p.call_webhooks.is_empty(), "post-rollout is told once");
}

#[test]
fn post_rollout_hears_of_a_promotion_once() {
    let mut w = gated_world(json!([{"name": "report", "type": "post-rollout", "url": "http://t/p"}]));
    w.release("web:2");
    let mut told = Vec::new();
    for _ in 0..40 {
        let p = w.tick();
        w.ready();
        told.extend(w.answer(|_| Ok(200)).into_iter().map(|c| c.phase));
        w.advance(10);
        if p.status.phase == Some(Phase::Healthy) {
            break;
        }
    }
    assert_eq!(told, vec!["Succeeded"]);
}

mod bluegreen;

mod rolling_update {
    use super::*;

    fn world(extra: serde_json::Value) -> World {
        let mut spec = json!({"strategy": {"canary": {"steps": [], "maxSurge": 1, "maxUnavailable": 0}}});
        merge(&mut spec, extra);
        let mut w = healthy_world(spec);
        w.release("web:2");
        w
    }

    #[test]
    fn empty_steps_are_a_rolling_update_within_surge() {
        let mut w = world(json!({}));
        let stable = w.stable();
        let p = w.tick();
        let current = w.current();
        assert!(p.decisions[0].message.contains("rolling update"), "{:?}", p.decisions);
        assert_eq!(w.size(&current), 1, "one Pod above replicas (maxSurge 1)");
        assert_eq!(w.size(&stable), 10, "none below (maxUnavailable 0)");
        assert!(p.status.message.unwrap().contains("rolling update: 0/10"));
        let mut most = 0;
        for _ in 0..60 {
            let p = w.tick();
            most = most.max(w.size(&current) + w.size(&stable));
            w.ready();
            if p.status.phase == Some(Phase::Healthy) {
                break;
            }
        }
        assert!(most <= 11, "never more than replicas + maxSurge Pods: {most}");
        assert_eq!(w.stable(), current);
        assert_eq!(w.size(&stable), 0);
        assert!(w.runs.is_empty(), "no analysis without one configured");
    }

    #[test]
    fn a_background_analysis_watches_the_rolling_update_and_its_failure_rolls_back() {
        let mut w = world(json!({"strategy": {"canary": {"analysis": {"templates": [{"templateName": "errors"}]}}}}));
        let stable = w.stable();
        w.tick();
        assert_eq!(w.runs.len(), 1, "the background run");
        assert_eq!(w.runs[0].step, None);
        w.ready();
        w.tick();
        let run = w.runs[0].name.clone();
        for r in w.runs.iter_mut().filter(|r| r.name == run) {
            r.phase = AnalysisPhase::Failed;
            r.message = "errors: 0.3 (Failed)".into();
        }
        let p = w.tick();
        assert!(w.reasons().contains(&"Aborted"), "{:?}", w.reasons());
        assert_eq!(p.status.stable_pod_hash.as_deref(), Some(stable.as_str()));
        let p = w.settle();
        assert_eq!(w.size(&stable), 10);
        assert_eq!(w.size(&w.current()), 0);
        assert_eq!(p.status.phase, Some(Phase::Degraded));
    }

    #[test]
    fn an_inconclusive_background_analysis_holds_the_rolling_update_where_it_is() {
        let mut w = world(json!({"strategy": {"canary": {"analysis": {"templates": [{"templateName": "errors"}]}}}}));
        let stable = w.stable();
        w.tick();
        w.ready();
        w.tick();
        w.ready();
        for r in w.runs.iter_mut() {
            r.phase = AnalysisPhase::Inconclusive;
        }
        let current = w.current();
        let before = (w.size(&current), w.size(&stable));
        let p = w.tick();
        w.ready();
        let p2 = w.tick();
        assert_eq!(p.status.phase, Some(Phase::Paused));
        assert_eq!((w.size(&current), w.size(&stable)), before, "{:?}", p2.status.message);
    }

    #[test]
    fn omitted_steps_keep_the_default_canary() {
        let mut w = healthy_world(json!({}));
        w.release("web:2");
        let p = w.tick();
        assert_eq!(p.status.step.as_deref(), Some("1/4"));
    }
}

mod rollback_window {
    use super::*;

    fn world(revisions: i32) -> World {
        let steps = json!([{"setWeight": 20}, {"pause": {}}]);
        healthy_world(json!({"rollbackWindow": {"revisions": revisions}, "strategy": {"canary": {"steps": steps}}}))
    }

    fn promote_through(w: &mut World) {
        w.settle();
        w.request(ControlRequests {
            promote_full: Some(true),
            ..Default::default()
        });
        let p = w.settle();
        assert_eq!(p.status.phase, Some(Phase::Healthy));
    }

    #[test]
    fn going_back_to_a_recent_stable_version_skips_the_steps() {
        let mut w = world(2);
        let v1 = w.stable();
        w.release("web:2");
        promote_through(&mut w);
        assert_ne!(w.stable(), v1);
        // A revert in Git: version 1 again.
        w.release("web:1");
        let p = w.tick();
        assert!(w.reasons().contains(&"RollbackWithinWindow"), "{:?}", w.reasons());
        assert_eq!(w.current(), v1);
        assert!(p.status.message.unwrap().contains("rolling back within the window"));
        let p = w.settle();
        assert_eq!(p.status.phase, Some(Phase::Healthy), "no pause waited for");
        assert_eq!(w.stable(), v1);
    }

    #[test]
    fn a_version_outside_the_window_walks_the_steps() {
        let mut w = world(1);
        let v1 = w.stable();
        w.release("web:2");
        promote_through(&mut w);
        w.release("web:3");
        promote_through(&mut w);
        w.release("web:1");
        let p = w.settle();
        assert_eq!(w.current(), v1);
        assert!(!w.reasons().contains(&"RollbackWithinWindow"));
        assert_eq!(p.status.phase, Some(Phase::Paused), "the pause step waits");
    }

    #[test]
    fn a_version_outside_the_window_gets_new_analysis_runs() {
        let mut w = healthy_world(json!({"rollbackWindow": {"revisions": 1}, "strategy": {"canary": {
            "steps": [{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "error-rate"}]}}]}}}));
        let finish_runs = |w: &mut World| {
            for _ in 0..20 {
                w.settle();
                for r in w.runs.iter_mut() {
                    r.phase = AnalysisPhase::Successful;
                }
                if w.tick().status.phase == Some(Phase::Healthy) {
                    return;
                }
            }
            panic!("the release never ended");
        };
        w.release("web:2");
        finish_runs(&mut w);
        let v2 = w.stable();
        let first: Vec<String> = w.runs.iter().filter(|r| r.hash == v2).map(|r| r.name.clone()).collect();
        assert_eq!(first.len(), 1);
        w.release("web:3");
        finish_runs(&mut w);
        w.release("web:4");
        finish_runs(&mut w);
        // Back to version 2, outside the window: its step analyses again, under a name of its own.
        w.release("web:2");
        let p = w.settle();
        assert_eq!(w.current(), v2);
        assert_eq!(p.status.phase, Some(Phase::Progressing), "{:?}", p.status.message);
        let again: Vec<&ObservedRun> = w
            .runs
            .iter()
            .filter(|r| r.hash == v2 && !first.contains(&r.name))
            .collect();
        assert_eq!(
            again.len(),
            1,
            "{:?}",
            w.runs.iter().map(|r| &r.name).collect::<Vec<_>>()
        );
        assert_eq!(again[0].phase, AnalysisPhase::Running);
        assert!(p.status.message.unwrap().contains("running"));
    }

    #[test]
    fn a_blue_green_rollback_within_the_window_switches_without_analysis() {
        let mut w = healthy_world(json!({
            "replicas": 4,
            "rollbackWindow": {"revisions": 3},
            "strategy": {"canary": null, "blueGreen": {"activeService": "web-active",
                "prePromotionAnalysis": {"templates": [{"templateName": "smoke"}]}}}
        }));
        let v1 = w.stable();
        w.release("web:2");
        w.settle();
        let run = w.runs[0].name.clone();
        for r in w.runs.iter_mut().filter(|r| r.name == run) {
            r.phase = AnalysisPhase::Successful;
        }
        w.advance(60);
        w.settle();
        assert_ne!(w.stable(), v1);
        let runs = w.runs.len();
        w.release("web:1");
        w.advance(60);
        let p = w.settle();
        assert!(w.last.is_some());
        assert_eq!(w.stable(), v1);
        assert_eq!(p.stable_service_hash.as_deref(), Some(v1.as_str()));
        assert_eq!(w.runs.len(), runs, "no new analysis");
    }
}

mod workload_ref {
    use super::*;

    /// A Rollout with neither selector nor template, taking both from Deployment `web`.
    fn world(scale_down: Option<&str>) -> World {
        let mut r = rollout(json!({}));
        r.spec.template = None;
        r.spec.selector = Default::default();
        r.spec.workload_ref = Some(crate::crd::rollout::WorkloadRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            scale_down: scale_down.map(|m| serde_json::from_value(json!(m)).unwrap()),
        });
        World::new(r)
    }

    fn observed(w: &World) -> Observed {
        let template = rollout(json!({})).spec.template;
        Observed {
            workload_template: template.map(|t| t.typed()),
            workload_selector: Some(serde_json::from_value(json!({"matchLabels": {"app": "web"}})).unwrap()),
            workload_replicas: Some(10),
            ..w.observed()
        }
    }

    /// One reconcile against the Deployment; Pods ready after.
    fn tick(w: &mut World) -> Plan {
        let p = plan(&w.rollout, &observed(w), w.now);
        for d in &p.replica_sets {
            match w.rss.iter_mut().find(|r| r.hash == d.hash) {
                Some(rs) => rs.spec_replicas = d.replicas,
                None => w.rss.push(ObservedReplicaSet {
                    name: format!("web-{}", d.hash),
                    hash: d.hash.clone(),
                    spec_replicas: d.replicas,
                    replicas: d.replicas,
                    ready: 0,
                    available: 0,
                    created: w.now,
                    pod_metadata: None,
                }),
            }
        }
        w.rollout.status = Some(p.status.clone());
        p
    }

    #[test]
    fn selector_and_template_come_from_the_deployment() {
        let mut w = world(None);
        let p = tick(&mut w);
        assert_ne!(p.status.phase, Some(Phase::Degraded), "{:?}", p.status.message);
        assert_eq!(p.selector.match_labels.as_ref().unwrap()["app"], "web");
        assert_eq!(p.status.selector.as_deref(), Some("app=web"));
        assert_eq!(p.replica_sets[0].replicas, 10);
    }

    #[test]
    fn never_leaves_the_deployment_alone() {
        let mut w = world(None);
        tick(&mut w);
        w.ready();
        let p = tick(&mut w);
        assert_eq!(p.status.phase, Some(Phase::Healthy));
        assert_eq!(p.workload_replicas, None);
        let mut w = world(Some("never"));
        tick(&mut w);
        w.ready();
        assert_eq!(tick(&mut w).workload_replicas, None);
    }

    #[test]
    fn onsuccess_scales_it_to_zero_once_healthy() {
        let mut w = world(Some("onsuccess"));
        let p = tick(&mut w);
        assert_eq!(p.workload_replicas, None, "not before the Rollout is healthy");
        w.ready();
        let p = tick(&mut w);
        assert_eq!(p.status.phase, Some(Phase::Healthy));
        assert_eq!(p.workload_replicas, Some(0));
    }

    #[test]
    fn progressively_gives_up_a_pod_for_each_available_one() {
        let mut w = world(Some("progressively"));
        let p = tick(&mut w);
        assert_eq!(p.workload_replicas, Some(10), "nothing available yet");
        w.rss[0].ready = 4;
        w.rss[0].available = 4;
        let p = tick(&mut w);
        assert_eq!(p.workload_replicas, Some(6));
        w.ready();
        let p = tick(&mut w);
        assert_eq!(p.workload_replicas, Some(0));
    }

    #[test]
    fn no_selector_and_no_workload_is_an_invalid_spec() {
        let mut r = rollout(json!({}));
        r.spec.selector = Default::default();
        let mut w = World::new(r);
        let p = w.tick();
        assert_eq!(p.status.phase, Some(Phase::Degraded));
        assert!(p.status.message.unwrap().contains("spec.selector is required"));
    }
}

mod argo_router_settings {
    use super::*;

    fn routed(routing: serde_json::Value, steps: serde_json::Value) -> World {
        World::new(rollout(json!({"strategy": {"canary": {
            "stableService": "s", "canaryService": "c", "trafficRouting": routing, "steps": steps}}})))
    }

    fn condition(p: &Plan, type_: &str) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        p.status.conditions.iter().flatten().find(|c| c.type_ == type_).cloned()
    }

    #[test]
    fn the_gateway_api_plugin_block_is_the_native_router_with_a_condition_saying_so() {
        let plugin = json!({"plugins": {"argoproj-labs/gatewayAPI": {"httpRoutes": [{"name": "web", "useHeaderRoutes": true}], "namespace": "edge"}}});
        let mut w = routed(plugin.clone(), json!([{"setWeight": 10}]));
        let p = w.tick();
        assert_ne!(p.status.phase, Some(Phase::Degraded), "{:?}", p.status.message);
        let c = condition(&p, conditions::ROUTER_PLUGIN).expect("the plugin condition");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "NativeRouter"));
        let routing: crate::crd::rollout::TrafficRouting = serde_json::from_value(plugin).unwrap();
        let g = routing.gateway_api().expect("read as gatewayAPI");
        assert_eq!(g.http_routes, Some(vec!["web".to_string()]));
        assert_eq!(g.namespace.as_deref(), Some("edge"));
    }

    #[test]
    fn other_plugins_are_an_invalid_spec() {
        let mut w = routed(
            json!({"plugins": {"example.com/router": {}}}),
            json!([{"setWeight": 10}]),
        );
        let p = w.tick();
        assert_eq!(p.status.phase, Some(Phase::Degraded));
        assert!(p.status.message.unwrap().contains("Serin runs no plugins"));
    }

    #[test]
    fn several_istio_virtual_services_and_nginx_ingresses_are_accepted() {
        for routing in [
            json!({"istio": {"virtualServices": [{"name": "a", "routes": ["primary"]}, {"name": "b"}]}}),
            json!({"nginx": {"stableIngresses": ["a", "b"], "additionalIngressAnnotations": {"x": "y"}}}),
            json!({"smi": {"trafficSplitName": "web-split"}}),
        ] {
            let p = routed(routing.clone(), json!([{"setWeight": 10}])).tick();
            assert_ne!(
                p.status.phase,
                Some(Phase::Degraded),
                "{routing}: {:?}",
                p.status.message
            );
        }
        let p = routed(json!({"istio": {}}), json!([{"setWeight": 10}])).tick();
        assert!(p.status.message.unwrap().contains("names no virtualService"));
    }

    #[test]
    fn managed_routes_order_the_header_and_mirror_routes() {
        let steps = json!([{"setWeight": 10},
            {"setHeaderRoute": {"name": "second", "match": [{"headerName": "b"}]}},
            {"setHeaderRoute": {"name": "first", "match": [{"headerName": "a"}]}},
            {"pause": {}}]);
        let routing =
            json!({"gatewayAPI": {"httpRoute": "web"}, "managedRoutes": [{"name": "first"}, {"name": "second"}]});
        let mut w = World::new(rollout(json!({"strategy": {"canary": {
            "stableService": "s", "canaryService": "c", "trafficRouting": routing, "steps": steps}}})));
        w.settle();
        w.release("web:2");
        w.tick();
        w.ready();
        let p = w.settle();
        let names: Vec<&str> = p.status.header_routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["first", "second"]);
        let steps = json!([{"setHeaderRoute": {"name": "unlisted", "match": [{"headerName": "a"}]}}]);
        let p = routed(
            json!({"gatewayAPI": {"httpRoute": "web"}, "managedRoutes": [{"name": "first"}]}),
            steps,
        )
        .tick();
        assert!(
            p.status
                .message
                .unwrap()
                .contains("not listed in trafficRouting.managedRoutes")
        );
    }
}

#[test]
fn canary_and_stable_metadata_follow_the_role() {
    let mut w = healthy_world(json!({"strategy": {"canary": {
        "steps": [{"setWeight": 50}, {"pause": {}}],
        "canaryMetadata": {"labels": {"role": "canary"}},
        "stableMetadata": {"labels": {"role": "stable"}, "annotations": {"team": "web"}}}}}));
    let v1 = w.stable();
    let role = |p: &Plan, h: &str| {
        p.replica_sets
            .iter()
            .find(|d| d.hash == h)
            .and_then(|d| d.pod_metadata.clone())
    };
    assert_eq!(role(w.last.as_ref().unwrap(), &v1).unwrap().labels["role"], "stable");
    w.release("web:2");
    let p = w.settle();
    let v2 = w.current();
    assert_eq!(role(&p, &v2).unwrap().labels["role"], "canary");
    assert!(role(&p, &v2).unwrap().annotations.is_empty());
    w.request(ControlRequests {
        promote_full: Some(true),
        ..Default::default()
    });
    let p = w.settle();
    assert_eq!(w.stable(), v2);
    assert_eq!(role(&p, &v2).unwrap().labels["role"], "stable");
    assert_eq!(role(&p, &v2).unwrap().annotations["team"], "web");
    // Without any role metadata nothing is asked.
    let w = healthy_world(json!({}));
    assert!(
        w.last
            .as_ref()
            .unwrap()
            .replica_sets
            .iter()
            .all(|d| d.pod_metadata.is_none())
    );
}

#[test]
fn restart_at_deletes_old_pods_within_max_unavailable_then_says_done() {
    let mut w = healthy_world(json!({"strategy": {"canary": {"maxUnavailable": 2}}}));
    let at = Time(w.now);
    w.rollout.spec.restart_at = Some(at.clone());
    w.advance(1);
    let with = |w: &World, pods: &[&str]| Observed {
        pods_to_restart: pods.iter().map(|p| p.to_string()).collect(),
        ..w.observed()
    };
    let p = plan(&w.rollout, &with(&w, &["a", "b", "c"]), w.now);
    assert_eq!(p.restart_pods, ["a", "b"], "two at a time (maxUnavailable 2)");
    assert_eq!(p.status.phase, Some(Phase::Progressing));
    assert!(p.status.message.unwrap().contains("restarting"));
    assert!(p.status.restarted_at.is_none());
    // Two Pods down: no more go until they are back.
    w.rss[0].available = 8;
    let p = plan(&w.rollout, &with(&w, &["c"]), w.now);
    assert!(p.restart_pods.is_empty());
    // Nor while the Pods say so and the ReplicaSet's status does not yet.
    w.rss[0].available = 10;
    let listed = Observed {
        ready_pods: Some(8),
        ..with(&w, &["c"])
    };
    assert!(plan(&w.rollout, &listed, w.now).restart_pods.is_empty());
    w.ready();
    let p = plan(&w.rollout, &with(&w, &["c"]), w.now);
    assert_eq!(p.restart_pods, ["c"]);
    let p = plan(&w.rollout, &with(&w, &[]), w.now);
    assert_eq!(p.status.restarted_at, Some(at));
    assert!(p.decisions.iter().any(|d| d.reason == "Restarted"));
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    w.rollout.status = Some(p.status);
    assert!(!restart_pending(&w.rollout), "done once");
}

#[test]
fn mirror_routes_in_argos_form_keep_method_path_and_headers() {
    let steps: serde_json::Value = serde_json::from_str(
        r#"[{"setWeight": 10},
            {"setMirrorRoute": {"name": "shadow", "percentage": 35, "match": [
                {"method": {"exact": "GET"}, "path": {"prefix": "/"}},
                {"method": {"exact": "GET"}, "path": {"prefix": "/"}, "headers": {"agent-1b": {"exact": "firefox"}}}]}},
            {"pause": {}}]"#,
    )
    .unwrap();
    let mut w = healthy_world(
        json!({"strategy": {"canary": {"stableService": "s", "canaryService": "c",
        "trafficRouting": {"istio": {"virtualService": {"name": "web"}}}, "steps": steps}}}),
    );
    w.release("web:2");
    w.tick();
    w.ready();
    let p = w.settle();
    let m = &p.status.mirror_routes[0];
    assert_eq!(m.requests.len(), 2, "{m:?}");
    assert_eq!(m.requests[1].headers["agent-1b"].exact.as_deref(), Some("firefox"));
    assert_eq!(m.percentage, Some(35));
}

#[test]
fn a_pod_ready_but_not_yet_available_holds_the_step() {
    // minReadySeconds: the ReplicaSet counts Ready Pods as available only after a while.
    let mut w = healthy_world(
        json!({"minReadySeconds": 30, "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}}),
    );
    w.release("web:2");
    w.tick();
    let current = w.current();
    for rs in w.rss.iter_mut().filter(|r| r.hash == current) {
        rs.ready = rs.replicas;
        rs.available = 0;
    }
    let p = w.tick();
    assert_eq!(p.status.current_step_index, Some(0), "ready is not available");
    w.ready();
    let p = w.tick();
    assert_eq!(p.status.current_step_index, Some(1));
}

#[test]
fn services_the_rollout_no_longer_names_are_given_back() {
    // Blue-green before, canary now: the active and preview Services carry Serin's label still.
    let w =
        healthy_world(json!({"strategy": {"canary": {"stableService": "web-stable", "canaryService": "web-canary"}}}));
    let observed = Observed {
        pointed_services: vec!["web-active".into(), "web-preview".into(), "web-stable".into()],
        ..w.observed()
    };
    let p = plan(&w.rollout, &observed, w.now);
    assert_eq!(p.release_services, ["web-active", "web-preview"]);
    assert_eq!(p.stable_service_hash.as_deref(), Some(w.stable().as_str()));
}

#[test]
fn a_missing_analysis_template_is_an_invalid_spec_until_it_appears() {
    let mut w = World::new(rollout(json!({"strategy": {"canary": {
        "analysis": {"templates": [{"templateName": "doesnt-exist-yet"}]}}}})));
    let observed = Observed {
        missing_templates: vec!["AnalysisTemplate \"doesnt-exist-yet\"".into()],
        ..w.observed()
    };
    let p = plan(&w.rollout, &observed, w.now);
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    assert!(conditions::is_true(
        p.status.conditions.as_ref().unwrap(),
        conditions::INVALID_SPEC
    ));
    let message = p.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("AnalysisTemplate \"doesnt-exist-yet\" not found"),
        "{message}"
    );
    assert!(p.replica_sets.is_empty(), "nothing is changed");
    // Once it exists, the Rollout goes on.
    w.rollout.status = Some(p.status);
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    assert!(!conditions::is_true(
        p.status.conditions.as_ref().unwrap(),
        conditions::INVALID_SPEC
    ));
}

#[test]
fn promote_full_takes_an_aborted_version_to_the_end() {
    let mut w = healthy_world(json!({"strategy": {"canary": {"steps": [{"setWeight": 40}, {"pause": {}}]}}}));
    w.release("web:2");
    w.settle();
    let v2 = w.current();
    w.request(ControlRequests {
        abort: Some(true),
        ..Default::default()
    });
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    w.request(ControlRequests {
        promote_full: Some(true),
        ..Default::default()
    });
    w.tick();
    assert!(w.reasons().contains(&"PromotedAfterAbort"), "{:?}", w.reasons());
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    assert_eq!(w.stable(), v2);
    assert_eq!(p.status.abort, None);
}

#[test]
fn promote_full_takes_an_aborted_blue_green_version_to_the_end() {
    let mut w = healthy_world(json!({"replicas": 2, "strategy": {"canary": null, "blueGreen": {
        "activeService": "web-active", "autoPromotionEnabled": false}}}));
    w.release("web:2");
    w.settle();
    let v2 = w.current();
    w.request(ControlRequests {
        abort: Some(true),
        ..Default::default()
    });
    assert_eq!(w.settle().status.phase, Some(Phase::Degraded));
    w.request(ControlRequests {
        promote_full: Some(true),
        ..Default::default()
    });
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Healthy), "{:?}", p.status.message);
    assert_eq!(w.stable(), v2);
    assert_eq!(p.stable_service_hash.as_deref(), Some(v2.as_str()));
}
