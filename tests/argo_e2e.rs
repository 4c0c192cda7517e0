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

/// functional_test.go TestRolloutAbortRetryPromote: abort, retry, then the timed pause promotes.
#[tokio::test]
async fn rollout_abort_retry_promote() {
    let mut s = Scenario::start("abort-retry-promote").await;
    s.healthy(&data(
        "inline/functional/TestRolloutAbortRetryPromote/01-HealthyRollout.yaml",
    ))
    .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    let (v1, v2) = (s.revision(1).to_string(), s.revision(2).to_string());
    assert_eq!((s.pods_of(&v1).await, s.pods_of(&v2).await), (1, 1));
    s.serin("abort", &[]);
    s.wait_phase(Phase::Degraded).await;
    s.serin("retry", &[]);
    s.wait_phase(Phase::Paused).await;
    assert_eq!((s.pods_of(&v1).await, s.pods_of(&v2).await), (1, 1));
    s.wait_phase(Phase::Healthy).await;
    s.expect_canary_stable_pods(1, 1).await;
    assert_eq!(s.pods_of(&v1).await, 0);
}

/// canary_test.go TestRolloutScalingDuringUpdate: a release whose Pods crash, scaled up and down
/// mid-update, stays within maxSurge and keeps every stable Pod (maxUnavailable 0).
#[tokio::test]
async fn rollout_scaling_during_update() {
    let mut s = Scenario::start("updatescaling").await;
    let dir = "inline/canary/TestRolloutScalingDuringUpdate";
    s.healthy(&data(&format!("{dir}/01-HealthyRollout.yaml"))).await;
    s.patch_spec(&data(&format!("{dir}/02-PatchSpec.yaml"))).await;
    s.wait_until("6 Pods", |st| st.replicas == Some(6)).await;
    s.expect_canary_stable_pods(2, 4).await;
    s.scale(8);
    s.wait_until("10 Pods", |st| st.replicas == Some(10)).await;
    s.expect_canary_stable_pods(6, 4).await;
    s.scale(4);
    s.wait_until("6 Pods", |st| st.replicas == Some(6)).await;
    s.expect_canary_stable_pods(2, 4).await;
}

/// functional_test.go TestCanaryPromoteFull: promote past a timed pause, past a running step
/// analysis, then abort and promote to the end all the same; no other analysis ever runs.
#[tokio::test]
async fn canary_promote_full() {
    let mut s = Scenario::start("canary-promote-full").await;
    s.apply(&data("fixtures/functional/analysistemplate-sleep-job.yaml"));
    s.healthy(&data("inline/functional/TestCanaryPromoteFull/01-HealthyRollout.yaml"))
        .await;
    s.update_spec().await;
    s.wait_until("paused at step 1", |st| {
        st.phase == Some(Phase::Paused) && st.current_step_index == Some(0)
    })
    .await;
    s.serin("promote", &[]);
    let st = s
        .wait_until("the step's analysis running", |st| st.current_step_index == Some(1))
        .await;
    assert_eq!(st.phase, Some(Phase::Progressing), "{:?}", st.message);
    common::eventually("one run", common::argo::WAIT, || async {
        (s.analysis_runs().await == 1).then_some(())
    })
    .await;
    s.serin("promote", &[]);
    s.wait_until("paused at step 3", |st| {
        st.phase == Some(Phase::Paused) && st.current_step_index == Some(2)
    })
    .await;
    s.serin("abort", &[]);
    s.wait_phase(Phase::Degraded).await;
    s.serin("promote", &["--full"]);
    let st = s.wait_phase(Phase::Healthy).await;
    assert_eq!(st.stable_pod_hash.as_deref(), Some(s.revision(2)));
    assert_eq!(s.analysis_runs().await, 1, "no analysis ran but the step's");
}
