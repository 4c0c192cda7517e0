//! Blue-green: preview, pre-promotion analysis, the pause, the one-write switch, the
//! post-promotion analysis and the switch back.

use super::*;

fn bg(extra: serde_json::Value) -> serde_json::Value {
    let mut strategy = json!({"activeService": "web-active", "previewService": "web-preview"});
    merge(&mut strategy, extra);
    json!({"replicas": 4, "strategy": {"canary": null, "blueGreen": strategy}})
}

/// A healthy blue-green Rollout with `web:2` just released.
fn released(extra: serde_json::Value) -> World {
    let mut w = healthy_world(bg(extra));
    w.release("web:2");
    w
}

fn set_run(w: &mut World, stage: i32, phase: AnalysisPhase, message: &str) {
    let current = w.current();
    let run = w
        .runs
        .iter_mut()
        .rev()
        .find(|r| r.step == Some(stage) && r.hash == current)
        .expect("a run was requested");
    run.phase = phase;
    run.message = message.into();
}

const ANALYSIS: &str = r#"{"templates": [{"templateName": "smoke"}]}"#;

fn analysis() -> serde_json::Value {
    serde_json::from_str(ANALYSIS).unwrap()
}

#[test]
fn the_first_version_is_active_at_once() {
    let w = healthy_world(bg(json!({})));
    let bgs = w.status().blue_green.clone().unwrap();
    assert_eq!(bgs.active_selector, w.status().stable_pod_hash);
    assert_eq!(w.last.as_ref().unwrap().stable_service_hash, w.status().stable_pod_hash);
}

#[test]
fn a_new_version_comes_up_in_preview_then_the_active_service_switches_in_one_write() {
    let mut w = released(json!({"scaleDownDelaySeconds": 30}));
    let stable = w.stable();
    let p = w.tick();
    let current = w.current();
    assert_ne!(current, stable);
    assert_eq!(w.size(&current), 4, "the preview comes up at full size");
    assert_eq!(w.size(&stable), 4, "the active version keeps all its Pods");
    assert_eq!(p.stable_service_hash.as_deref(), Some(stable.as_str()), "active stays");
    assert_eq!(
        p.canary_service_hash.as_deref(),
        Some(current.as_str()),
        "preview selects the new version"
    );
    assert_eq!(p.weight, 0);
    assert!(p.status.message.unwrap().contains("preview version"));
    w.ready();
    let p = w.tick();
    assert!(w.reasons().contains(&"Switched"), "{:?}", w.reasons());
    assert_eq!(
        p.stable_service_hash.as_deref(),
        Some(current.as_str()),
        "active switched"
    );
    assert!(
        w.reasons().contains(&"Promoted"),
        "no post-promotion analysis: promoted at once"
    );
    assert_eq!(w.size(&stable), 4, "the old version stays up for the scale-down delay");
    // All traffic is on the new version: Healthy, the old Pods' wait said beside it.
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    let message = p.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("4 Pods of the old version wait out the scale-down delay"),
        "{message}"
    );
    assert!(p.requeue_after.unwrap() <= Duration::from_secs(30));
    w.advance(31);
    let p = w.settle();
    assert_eq!(w.size(&stable), 0);
    assert_eq!(p.status.phase, Some(Phase::Healthy));
    assert_eq!(p.status.step.as_deref(), Some("3/3"));
}

#[test]
fn without_auto_promotion_the_preview_waits_for_promote() {
    let mut w = released(json!({"autoPromotionEnabled": false}));
    let stable = w.stable();
    let p = w.settle();
    assert_eq!(p.status.phase, Some(Phase::Paused));
    assert!(conditions::is_true(
        p.status.conditions.as_ref().unwrap(),
        conditions::PAUSED
    ));
    assert!(p.status.message.unwrap().contains("kubectl serin promote web"));
    assert_eq!(p.stable_service_hash.as_deref(), Some(stable.as_str()));
    w.advance(3600);
    assert_eq!(w.tick().status.phase, Some(Phase::Paused), "no time limit");
    w.request(ControlRequests {
        promote_step: Some(0),
        ..Default::default()
    });
    let p = w.tick();
    assert_eq!(p.stable_service_hash, p.status.current_pod_hash, "switched on promote");
}

#[test]
fn auto_promotion_seconds_switch_on_their_own_after_the_preview_is_ready() {
    let mut w = released(json!({"autoPromotionSeconds": 60}));
    w.tick();
    w.advance(50);
    w.ready();
    let p = w.tick();
    assert_eq!(p.status.phase, Some(Phase::Paused), "the wait counts from readiness");
    assert!(p.requeue_after.unwrap() <= Duration::from_secs(60));
    w.advance(59);
    assert_eq!(w.tick().status.phase, Some(Phase::Paused));
    w.advance(1);
    let p = w.tick();
    assert_eq!(p.stable_service_hash, p.status.current_pod_hash);
}

#[test]
fn preview_replica_count_sizes_the_preview_and_full_size_comes_before_the_switch() {
    let mut w = released(json!({"previewReplicaCount": 1, "autoPromotionEnabled": false}));
    let p = w.settle();
    let current = w.current();
    assert_eq!(w.size(&current), 1);
    // 5 Pods run, 1 of them the preview's: what serves is the active version's 4, as Argo counts.
    assert_eq!(p.status.replicas, Some(5));
    assert_eq!(
        (p.status.ready_replicas, p.status.available_replicas),
        (Some(4), Some(4))
    );
    assert_eq!(p.status.updated_replicas, Some(1));
    w.request(ControlRequests {
        promote_step: Some(0),
        ..Default::default()
    });
    let p = w.tick();
    assert_eq!(w.size(&current), 4, "grows to full size");
    assert_ne!(
        p.stable_service_hash.as_deref(),
        Some(current.as_str()),
        "not before its Pods are up"
    );
    w.ready();
    let p = w.tick();
    assert_eq!(p.stable_service_hash.as_deref(), Some(current.as_str()));
}

#[test]
fn a_failed_pre_promotion_analysis_aborts_before_any_traffic() {
    let mut w = released(json!({"prePromotionAnalysis": analysis()}));
    let stable = w.stable();
    let p = w.settle();
    assert_eq!(w.runs.len(), 1, "the pre-promotion run");
    assert!(w.runs[0].name.ends_with("-pre-0"), "{}", w.runs[0].name);
    assert!(p.status.message.unwrap().contains("pre-promotion analysis"));
    assert_eq!(p.stable_service_hash.as_deref(), Some(stable.as_str()));
    set_run(&mut w, 0, AnalysisPhase::Failed, "smoke: 0 (Failed)");
    let p = w.tick();
    assert!(w.reasons().contains(&"Aborted"));
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    assert_eq!(p.stable_service_hash.as_deref(), Some(stable.as_str()));
    let current = w.current();
    assert_eq!(
        p.canary_service_hash.as_deref(),
        Some(current.as_str()),
        "the preview stays on the new version, as in Argo Rollouts"
    );
    assert_eq!(
        p.status.blue_green.as_ref().and_then(|b| b.preview_selector.as_deref()),
        Some(current.as_str())
    );
    assert!(!w.reasons().contains(&"Switched"));
}

#[test]
fn a_passed_pre_promotion_analysis_lets_the_switch_happen() {
    let mut w = released(json!({"prePromotionAnalysis": analysis()}));
    w.settle();
    set_run(&mut w, 0, AnalysisPhase::Successful, "smoke: 1 (Successful)");
    let p = w.tick();
    assert!(w.reasons().contains(&"Switched"));
    assert_eq!(p.stable_service_hash, p.status.current_pod_hash);
}

#[test]
fn a_failed_post_promotion_analysis_switches_back_in_one_write() {
    let mut w = released(json!({"postPromotionAnalysis": analysis(), "abortScaleDownDelaySeconds": 30}));
    let stable = w.stable();
    let p = w.settle();
    let current = w.current();
    assert_eq!(p.stable_service_hash.as_deref(), Some(current.as_str()), "switched");
    assert_eq!(
        p.status.stable_pod_hash.as_deref(),
        Some(stable.as_str()),
        "not stable yet"
    );
    assert_eq!(p.weight, 100, "all traffic on the new version");
    assert!(w.runs.iter().any(|r| r.name.ends_with("-post-0")));
    assert_eq!(w.size(&stable), 4, "the old version stays up while the analysis runs");
    w.advance(120);
    let p = w.tick();
    assert_eq!(w.size(&stable), 4, "even past the scale-down delay");
    assert_eq!(p.stable_service_hash.as_deref(), Some(current.as_str()));
    set_run(&mut w, 2, AnalysisPhase::Failed, "errors: 0.2 (Failed)");
    let p = w.tick();
    assert!(w.reasons().contains(&"Aborted"));
    assert_eq!(p.stable_service_hash.as_deref(), Some(stable.as_str()), "switched back");
    assert_eq!(p.weight, 0);
    assert!(p.status.message.unwrap().contains("traffic is back on stable"));
    assert_eq!(
        w.size(&current),
        4,
        "the new version keeps its Pods for the abort delay"
    );
    w.advance(31);
    w.tick();
    assert_eq!(w.size(&current), 0);
}

#[test]
fn a_passed_post_promotion_analysis_promotes_and_the_delay_counts_from_the_switch() {
    let mut w = released(json!({"postPromotionAnalysis": analysis(), "scaleDownDelaySeconds": 30}));
    let stable = w.stable();
    w.settle();
    w.advance(20);
    set_run(&mut w, 2, AnalysisPhase::Successful, "errors: 0 (Successful)");
    let p = w.tick();
    assert!(w.reasons().contains(&"Promoted"));
    assert_eq!(p.status.stable_pod_hash, p.status.current_pod_hash);
    assert_eq!(w.size(&stable), 4);
    assert!(p.requeue_after.unwrap() <= Duration::from_secs(10));
    w.advance(10);
    w.tick();
    assert_eq!(w.size(&stable), 0);
}

#[test]
fn abort_within_the_scale_down_delay_switches_back() {
    let mut w = released(json!({"scaleDownDelaySeconds": 60}));
    let stable = w.stable();
    w.settle();
    let current = w.current();
    assert_eq!(w.stable(), current, "promoted");
    w.advance(10);
    w.request(ControlRequests {
        abort: Some(true),
        ..Default::default()
    });
    let p = w.tick();
    assert!(w.reasons().contains(&"Aborted"), "{:?}", w.reasons());
    assert_eq!(
        p.stable_service_hash.as_deref(),
        Some(stable.as_str()),
        "back in one write"
    );
    assert_eq!(p.status.stable_pod_hash.as_deref(), Some(stable.as_str()));
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    // Past the delay there is nothing up to go back to: abort does nothing.
    let mut w = released(json!({"scaleDownDelaySeconds": 60}));
    w.settle();
    w.advance(61);
    w.settle();
    w.request(ControlRequests {
        abort: Some(true),
        ..Default::default()
    });
    let p = w.tick();
    assert_eq!(p.status.phase, Some(Phase::Healthy));
}

#[test]
fn a_new_version_while_switched_keeps_the_live_one_active_until_its_own_switch() {
    let mut w = released(json!({"postPromotionAnalysis": analysis(), "autoPromotionEnabled": false}));
    let first = w.stable();
    w.settle();
    w.request(ControlRequests {
        promote_step: Some(0),
        ..Default::default()
    });
    w.tick();
    w.ready();
    let p = w.settle();
    let second = w.current();
    assert_eq!(p.stable_service_hash.as_deref(), Some(second.as_str()), "v2 live");
    w.release("web:3");
    let p = w.settle();
    let third = w.current();
    assert_ne!(third, second);
    assert_eq!(
        p.stable_service_hash.as_deref(),
        Some(second.as_str()),
        "v2 stays active"
    );
    assert_eq!(w.size(&second), 4);
    assert_eq!(w.size(&first), 4, "the stable stays whole");
    assert_eq!(p.status.phase, Some(Phase::Paused));
    // An abort now goes back to the last stable version.
    w.request(ControlRequests {
        abort: Some(true),
        ..Default::default()
    });
    let p = w.tick();
    assert_eq!(p.stable_service_hash.as_deref(), Some(first.as_str()));
}

#[test]
fn promote_full_skips_the_analyses() {
    let mut w = released(json!({"prePromotionAnalysis": analysis(), "postPromotionAnalysis": analysis()}));
    w.settle();
    w.request(ControlRequests {
        promote_full: Some(true),
        ..Default::default()
    });
    let p = w.settle();
    assert_eq!(p.status.stable_pod_hash, p.status.current_pod_hash);
    assert!(w.runs.iter().all(|r| !r.name.contains("-post-")));
}

#[test]
fn a_blue_green_spec_without_an_active_service_is_invalid() {
    let mut w = World::new(rollout(bg(json!({"activeService": "", "previewService": ""}))));
    let p = w.tick();
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    assert!(p.status.message.unwrap().contains("activeService is required"));
}

#[test]
fn active_and_preview_metadata_follow_the_role() {
    let mut w = released(json!({
        "autoPromotionEnabled": false,
        "activeMetadata": {"labels": {"role": "active"}},
        "previewMetadata": {"labels": {"role": "preview"}}
    }));
    let stable = w.stable();
    let p = w.settle();
    let current = w.current();
    let of = |p: &Plan, h: &str| {
        p.replica_sets
            .iter()
            .find(|d| d.hash == h)
            .and_then(|d| d.pod_metadata.clone())
            .map(|m| m.labels.get("role").cloned().unwrap_or_default())
    };
    assert_eq!(of(&p, &current).as_deref(), Some("preview"));
    assert_eq!(of(&p, &stable).as_deref(), Some("active"));
    w.request(ControlRequests {
        promote_step: Some(0),
        ..Default::default()
    });
    let p = w.tick();
    assert_eq!(of(&p, &current).as_deref(), Some("active"), "switched");
    assert_eq!(of(&p, &stable).as_deref(), Some(""), "the old version loses its role");
}

#[test]
fn with_a_router_the_route_switches_and_the_active_service_follows_on_promotion() {
    let mut w = released(json!({
        "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
        "postPromotionAnalysis": analysis(),
        "scaleDownDelaySeconds": 10
    }));
    let stable = w.stable();
    let p = w.tick();
    let current = w.current();
    assert_eq!(p.weight, 0, "no traffic to the preview");
    w.ready();
    let p = w.tick();
    assert!(w.reasons().contains(&"Switched"));
    assert_eq!(p.weight, 100, "the route switched");
    assert_eq!(
        p.stable_service_hash.as_deref(),
        Some(stable.as_str()),
        "the active Service stays"
    );
    set_run(&mut w, 2, AnalysisPhase::Successful, "ok");
    let p = w.tick();
    assert!(w.reasons().contains(&"Promoted"));
    assert_eq!(p.weight, 100, "all traffic stays on the preview Service this write");
    assert_eq!(
        p.stable_service_hash.as_deref(),
        Some(current.as_str()),
        "the active Service follows"
    );
    let p = w.tick();
    assert_eq!(p.weight, 0, "then the route goes back to the active Service");
}

#[test]
fn with_a_router_an_abort_is_one_route_write() {
    let mut w = released(json!({
        "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
        "postPromotionAnalysis": analysis()
    }));
    let stable = w.stable();
    w.settle();
    set_run(&mut w, 2, AnalysisPhase::Failed, "errors");
    let p = w.tick();
    assert_eq!(p.weight, 0);
    assert_eq!(p.stable_service_hash.as_deref(), Some(stable.as_str()));
}

#[test]
fn a_new_version_during_the_scale_down_delay_keeps_the_old_one_until_the_delay_ends() {
    let mut w = released(json!({"scaleDownDelaySeconds": 30, "autoPromotionEnabled": false}));
    let v1 = w.stable();
    w.settle();
    w.request(ControlRequests {
        promote_step: Some(0),
        ..Default::default()
    });
    w.tick();
    let v2 = w.stable();
    assert_ne!(v1, v2, "promoted");
    w.advance(10);
    w.release("web:3");
    let p = w.settle();
    let v3 = w.current();
    assert_eq!(w.size(&v1), 4, "version 1 keeps its Pods for the rest of its delay");
    assert_eq!(w.size(&v3), 4, "version 3 in preview");
    assert_eq!(p.stable_service_hash.as_deref(), Some(v2.as_str()));
    assert!(p.requeue_after.unwrap() <= Duration::from_secs(20));
    w.advance(21);
    w.tick();
    assert_eq!(w.size(&v1), 0, "gone once the delay from its switch has passed");
    assert_eq!(w.size(&v2), 4);
}

#[test]
fn each_old_version_keeps_its_pods_for_its_own_delay_within_the_revision_limit() {
    let promote = |w: &mut World| {
        w.settle();
        w.request(ControlRequests {
            promote_step: Some(0),
            ..Default::default()
        });
        w.tick();
        w.settle();
    };
    let mut w = released(json!({"scaleDownDelaySeconds": 100, "scaleDownDelayRevisionLimit": 2,
        "autoPromotionEnabled": false}));
    let v1 = w.stable();
    promote(&mut w);
    let v2 = w.stable();
    w.advance(10);
    w.release("web:3");
    promote(&mut w);
    let v3 = w.stable();
    assert_eq!(
        (w.size(&v1), w.size(&v2), w.size(&v3)),
        (4, 4, 4),
        "two old versions wait"
    );
    w.advance(10);
    w.release("web:4");
    promote(&mut w);
    let v4 = w.stable();
    assert_eq!(
        (w.size(&v1), w.size(&v2), w.size(&v3), w.size(&v4)),
        (0, 4, 4, 4),
        "the oldest goes beyond the limit of 2"
    );
    let deadlines: Vec<&str> = w
        .status()
        .scale_down_deadlines
        .iter()
        .map(|d| d.pod_hash.as_str())
        .collect();
    assert_eq!(deadlines.len(), 2);
    assert!(deadlines.contains(&v2.as_str()) && deadlines.contains(&v3.as_str()));
    // A lower limit applies at once, the newest old version staying.
    w.rollout
        .spec
        .strategy
        .blue_green
        .as_mut()
        .unwrap()
        .scale_down_delay_revision_limit = Some(1);
    w.tick();
    assert_eq!((w.size(&v2), w.size(&v3)), (0, 4));
    // Each goes when its own delay ends: version 3's, 100 s after its switch.
    w.advance(100);
    w.tick();
    assert_eq!((w.size(&v3), w.size(&v4)), (0, 4));
    assert!(w.status().scale_down_deadlines.is_empty(), "forgotten once passed");
}
