//! Argo Rollouts' own end-to-end scenarios (`test/e2e/*_test.go` in argoproj/argo-rollouts), on
//! Serin and the real control plane: each test applies Argo's published manifests through
//! `serin convert`, makes the Argo test's moves with kubectl and `kubectl serin`, and asserts what
//! the Argo test asserts. Each test names the Argo test it ports.

mod common;

use common::argo::{Scenario, data, service, with_steps};
use serin::crd::rollout::Phase;

/// canary_test.go TestRolloutScalingWhenPaused: a canary by Pod ratio at 25%, scaled while paused.
#[tokio::test]
async fn rollout_scaling_when_paused() {
    let mut s = Scenario::start("basic").await;
    let rollout = with_steps(
        &data("fixtures/functional/rollout-basic.yaml"),
        &data("inline/canary/TestRolloutScalingWhenPaused/01-SetSteps.yaml"),
    );
    s.healthy(&rollout).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    // One replica at 25%: the canary surges beside the stable Pod.
    s.expect_canary_stable_pods(1, 1).await;
    s.scale(8);
    s.wait_until("8 available", |st| st.available_replicas == Some(8)).await;
    s.expect_canary_stable_pods(2, 6).await;
    s.scale(4);
    s.wait_until("4 available", |st| st.available_replicas == Some(4)).await;
    s.expect_canary_stable_pods(1, 3).await;
}

/// functional_test.go TestBlueGreenToCanary: a blue-green Rollout becomes a canary; the Service it
/// had as active selects the app's Pods again.
#[tokio::test]
async fn blue_green_to_canary() {
    let mut s = Scenario::start("bluegreen-to-canary").await;
    let dir = "inline/functional/TestBlueGreenToCanary";
    s.apply(&data(&format!("{dir}/01-RolloutObjects-newService.yaml")));
    s.healthy(&data(&format!("{dir}/02-HealthyRollout.yaml"))).await;
    s.update_spec_with(&data(&format!("{dir}/03-UpdateSpec.yaml"))).await;
    s.wait_phase(Phase::Paused).await;
    s.wait_until("2 available", |st| st.available_replicas == Some(2)).await;
    s.expect_replica_counts((2, 2, 1, 2, 2)).await;
    let selector = s.selector("bluegreen-to-canary").await;
    assert_eq!(
        selector,
        [("app".to_string(), "bluegreen-to-canary".to_string())].into(),
        "the old active Service is given back"
    );
}

/// bluegreen_test.go TestBlueGreenPreviewReplicaCount: one preview Pod beside two active ones;
/// after promotion the old version keeps its Pods for the scale-down delay, and the Rollout is
/// Healthy meanwhile.
#[tokio::test]
async fn blue_green_preview_replica_count() {
    let mut s = Scenario::start("bluegreen-preview-replicas").await;
    let dir = "inline/bluegreen/TestBlueGreenPreviewReplicaCount";
    s.apply(&data(&format!("{dir}/01-RolloutObjects-newService.yaml")));
    s.apply(&data(&format!("{dir}/02-RolloutObjects-newService.yaml")));
    s.healthy(&data(&format!("{dir}/03-RolloutObjects.yaml"))).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    let (v1, v2) = (s.revision(1).to_string(), s.revision(2).to_string());
    assert_eq!((s.pods_of(&v2).await, s.pods_of(&v1).await), (1, 2));
    s.expect_replica_counts((2, 3, 1, 2, 2)).await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    s.expect_replica_counts((2, 4, 2, 2, 2)).await;
}

/// functional_test.go TestFixInvalidSpec: a Rollout naming an AnalysisTemplate that does not exist
/// yet is Degraded until the template is applied.
#[tokio::test]
async fn fix_invalid_spec() {
    let s = Scenario::start("fix-invalid-spec").await;
    let dir = "inline/functional/TestFixInvalidSpec";
    s.apply(&data(&format!("{dir}/01-RolloutObjects.yaml")));
    let st = s.wait_phase(Phase::Degraded).await;
    let message = st.message.unwrap_or_default();
    assert!(message.contains("doesnt-exist-yet"), "{message}");
    s.apply(&data(&format!("{dir}/02-RolloutObjects.yaml")));
    s.apply(&data(&format!("{dir}/01-RolloutObjects.yaml")));
    s.wait_phase(Phase::Healthy).await;
}

/// The rollback-window scenarios' start: the sleep-job template and the `window` Rollout.
async fn window() -> Scenario {
    let mut s = Scenario::start("window").await;
    s.apply(&data("fixtures/functional/analysistemplate-sleep-job.yaml"));
    s.healthy(&data("fixtures/functional/rollout-rollback-window.yaml"))
        .await;
    s
}

/// Each update of the rollback-window tests, then Healthy, then the runs counted.
async fn update_and_count(s: &mut Scenario, patch: &str, runs: usize) {
    s.update_spec_with(&data(patch)).await;
    s.wait_phase(Phase::Healthy).await;
    assert_eq!(s.analysis_runs().await, runs, "after {patch}");
}

/// rollback_window_test.go TestRollbackAnalysisWithinWindow: back to a version two releases old,
/// within `rollbackWindow.revisions: 2`, no analysis runs.
#[tokio::test]
async fn rollback_analysis_within_window() {
    let mut s = window().await;
    let dir = "inline/rollback_window/TestRollbackAnalysisWithinWindow";
    update_and_count(&mut s, &format!("{dir}/01-UpdateSpec.yaml"), 1).await;
    update_and_count(&mut s, &format!("{dir}/02-UpdateSpec.yaml"), 2).await;
    update_and_count(&mut s, &format!("{dir}/03-UpdateSpec.yaml"), 3).await;
    update_and_count(&mut s, &format!("{dir}/04-UpdateSpec.yaml"), 3).await;
    assert_eq!(s.status().await.stable_pod_hash.as_deref(), Some(s.revision(2)));
}

/// rollback_window_test.go TestRollbackAnalysisOutsideWindow: back to a version three releases
/// old is a release like any other, and its analysis runs again.
#[tokio::test]
async fn rollback_analysis_outside_window() {
    let mut s = window().await;
    let dir = "inline/rollback_window/TestRollbackAnalysisOutsideWindow";
    update_and_count(&mut s, &format!("{dir}/01-UpdateSpec.yaml"), 1).await;
    update_and_count(&mut s, &format!("{dir}/02-UpdateSpec.yaml"), 2).await;
    update_and_count(&mut s, &format!("{dir}/03-UpdateSpec.yaml"), 3).await;
    update_and_count(&mut s, &format!("{dir}/04-UpdateSpec.yaml"), 4).await;
    update_and_count(&mut s, &format!("{dir}/05-UpdateSpec.yaml"), 5).await;
    assert_eq!(s.status().await.stable_pod_hash.as_deref(), Some(s.revision(2)));
}

/// The helper's own check: Argo's `newService` is what its tests apply.
#[test]
fn new_service_renders_as_argos() {
    assert_eq!(
        service("bluegreen-to-canary", "bluegreen-to-canary"),
        data("inline/functional/TestBlueGreenToCanary/01-RolloutObjects-newService.yaml")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
}
