//! Argo Rollouts' own end-to-end scenarios (`test/e2e/*_test.go` in argoproj/argo-rollouts), on
//! Serin and the real control plane: each test applies Argo's published manifests through
//! `serin convert`, makes the Argo test's moves with kubectl and `kubectl serin`, and asserts what
//! the Argo test asserts. Each test names the Argo test it ports.

mod common;

use common::argo::{Role, RunKind, Scenario, data, service, with_steps};
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

/// TestEphemeralMetadata, both strategies: the metadata of the live version's role (`stable`,
/// `active`) and of the new one's (`canary`, `preview`) label each version's Pods, and a change to
/// them relabels the Pods in place.
async fn ephemeral_metadata(name: &str, dir: &str, live: &str, new: &str) {
    let mut s = Scenario::start(name).await;
    s.healthy(&data(&format!("{dir}/01-RolloutObjects.yaml"))).await;
    s.expect_pods_labelled(None, "role", Some(live)).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    let (v1, v2) = (s.revision(1).to_string(), s.revision(2).to_string());
    s.expect_pods_labelled(Some(&v2), "role", Some(new)).await;
    s.expect_pods_labelled(Some(&v1), "role", Some(live)).await;
    s.patch_spec(&data(&format!("{dir}/02-PatchSpec.yaml"))).await;
    s.expect_pods_labelled(Some(&v2), "role", None).await;
    s.expect_pods_labelled(Some(&v2), "role2", Some(&format!("{new}2")))
        .await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    s.expect_pods_labelled(Some(&v2), "role", Some(live)).await;
    s.patch_spec(&data(&format!("{dir}/03-PatchSpec.yaml"))).await;
    s.expect_pods_labelled(Some(&v2), "role", None).await;
    s.expect_pods_labelled(Some(&v2), "role2", Some(&format!("{live}2")))
        .await;
}

/// canary_test.go TestEphemeralMetadata: canaryMetadata and stableMetadata.
#[tokio::test]
async fn canary_ephemeral_metadata() {
    ephemeral_metadata(
        "ephemeral-metadata-canary",
        "inline/canary/TestEphemeralMetadata",
        "stable",
        "canary",
    )
    .await;
}

/// canary_test.go TestCanaryProgressDeadlineExceededWithPause: Pods slower to be ready than the
/// progress deadline make the Rollout Degraded, and it heals once they are, across a pause.
#[tokio::test]
async fn canary_progress_deadline_exceeded_with_pause() {
    let mut s = Scenario::start("rollout-canary-with-pause").await;
    s.apply(&data(
        "inline/canary/TestCanaryProgressDeadlineExceededWithPause/01-RolloutObjects.yaml",
    ));
    s.wait_phase(Phase::Degraded).await;
    s.wait_phase(Phase::Healthy).await;
    s.wait_until("3 Pods", |st| st.replicas == Some(3)).await;
    s.update_spec().await;
    s.wait_phase(Phase::Degraded).await;
    s.wait_phase(Phase::Paused).await;
    s.expect_canary_stable_pods(1, 3).await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Degraded).await;
    s.wait_phase(Phase::Healthy).await;
}

/// canary_test.go TestCanaryScaleDownOnAbortNoTrafficRouting: an abort points the canary Service
/// back at stable and the canary's Pods go.
#[tokio::test]
async fn canary_scale_down_on_abort_no_traffic_routing() {
    let mut s = Scenario::start("canary-scaledownd-on-abort").await;
    s.healthy(&data(
        "fixtures/functional/canary-scaledownonabortnotrafficrouting.yaml",
    ))
    .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.serin("abort", &[]);
    s.wait_phase(Phase::Degraded).await;
    let v1 = s.revision(1).to_string();
    let selector = s.selector("canary-scaledowndelay-canary").await;
    assert_eq!(
        selector,
        [
            ("app".to_string(), "canary-scaledowndelay".to_string()),
            ("serin.dev/pod-template-hash".to_string(), v1),
        ]
        .into()
    );
    let v2 = s.revision(2).to_string();
    common::eventually("the canary's Pods gone", common::argo::WAIT, || async {
        (s.pods_of(&v2).await == 0).then_some(())
    })
    .await;
}

/// canary_test.go TestCanaryWithPausedRollout: a second version while the first is paused at its
/// step takes its place; the one in between keeps no Pods.
#[tokio::test]
async fn canary_with_paused_rollout() {
    let mut s = Scenario::start("rollout-canary-with-pause").await;
    s.healthy(&data("fixtures/functional/rollout-canary-with-pause.yaml"))
        .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    let (v1, v2, v3) = (
        s.revision(1).to_string(),
        s.revision(2).to_string(),
        s.revision(3).to_string(),
    );
    common::eventually("3, 0 and 1 Pods", common::argo::WAIT, || async {
        let counts = (s.pods_of(&v1).await, s.pods_of(&v2).await, s.pods_of(&v3).await);
        (counts == (3, 0, 1)).then_some(())
    })
    .await;
}

/// canary_test.go TestCanaryWithSpecPause: `spec.paused` on a Healthy Rollout pauses it, saying
/// so, and nothing else changes.
#[tokio::test]
async fn canary_with_spec_pause() {
    let s = Scenario::start("rollout-canary-with-pause").await;
    let dir = "inline/canary/TestCanaryWithSpecPause";
    s.apply(&data(&format!("{dir}/01-RolloutObjects.yaml")));
    s.wait_phase(Phase::Degraded).await;
    s.wait_phase(Phase::Healthy).await;
    s.wait_until("3 Pods", |st| st.replicas == Some(3)).await;
    let before = s.status().await.stable_pod_hash;
    s.merge_patch(&data(&format!("{dir}/02-UpdateSpec.yaml")));
    let st = s.wait_phase(Phase::Paused).await;
    assert_eq!(st.stable_pod_hash, before);
    assert_eq!(st.current_pod_hash, before, "no new version");
}

/// Argo's AnalysisSuite applies its job templates first.
async fn analysis_scenario(name: &str) -> Scenario {
    let s = Scenario::start(name).await;
    for t in ["sleep-job", "multiple-job", "fail-multiple-job"] {
        s.apply(&data(&format!("fixtures/functional/analysistemplate-{t}.yaml")));
    }
    s
}

/// analysis_test.go TestCanaryInlineAnalysis: step analyses by Job, each run once.
#[tokio::test]
async fn canary_inline_analysis() {
    let mut s = analysis_scenario("rollout-inline-analysis").await;
    s.healthy(&data("fixtures/functional/rollout-inline-analysis.yaml"))
        .await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    assert_eq!(s.analysis_runs().await, 1);
    s.wait_run_phase(RunKind::Step, "Successful").await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    assert_eq!(s.analysis_runs().await, 3);
}

/// analysis_test.go TestCanaryInlineMultipleAnalysis: a run of two Job metrics, one of them
/// waiting out its initialDelay, passes once both have.
#[tokio::test]
async fn canary_inline_multiple_analysis() {
    let mut s = analysis_scenario("rollout-inline-analysis").await;
    s.healthy(&data("fixtures/functional/rollout-inline-multiple-analysis.yaml"))
        .await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.serin("promote", &[]);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(s.analysis_runs().await, 1);
    assert_eq!(s.run_phase(RunKind::Step).await.as_deref(), Some("Running"));
    s.wait_run_phase(RunKind::Step, "Successful").await;
    s.wait_phase(Phase::Healthy).await;
    assert_eq!(s.analysis_runs().await, 1);
}

/// analysis_test.go TestCanaryFailInlineMultipleAnalysis: one failed metric fails the run while
/// the other still waits, and the Rollout is aborted.
#[tokio::test]
async fn canary_fail_inline_multiple_analysis() {
    let mut s = analysis_scenario("rollout-inline-analysis").await;
    s.healthy(&data(
        "fixtures/functional/rollout-degraded-inline-multiple-analysis.yaml",
    ))
    .await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.serin("promote", &[]);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(s.status().await.phase, Some(Phase::Progressing));
    s.wait_run_phase(RunKind::Step, "Failed").await;
    s.wait_phase(Phase::Degraded).await;
}

/// A blue-green scenario of Argo's AnalysisSuite: its two Services, then its Rollout Healthy.
async fn blue_green_start(name: &str, dir: &str, rollout: &str) -> Scenario {
    let mut s = analysis_scenario(name).await;
    s.apply(&data(&format!("{dir}/01-RolloutObjects-newService.yaml")));
    s.apply(&data(&format!("{dir}/02-RolloutObjects-newService.yaml")));
    s.healthy(&data(&format!("{dir}/{rollout}"))).await;
    assert_eq!(s.analysis_runs().await, 0);
    s
}

/// analysis_test.go TestBlueGreenAnalysis: pre- and post-promotion analyses around a manual
/// promotion; Progressing while the post-promotion analysis runs, then Healthy.
#[tokio::test]
async fn blue_green_analysis() {
    let dir = "inline/analysis/TestBlueGreenAnalysis";
    let mut s = analysis_scenario("bluegreen-analysis").await;
    s.apply(&data(&format!("{dir}/02-RolloutObjects-newService.yaml")));
    s.apply(&data(&format!("{dir}/03-RolloutObjects-newService.yaml")));
    s.healthy(&data(&format!("{dir}/01-var-original.yaml"))).await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec_with(&data(&format!("{dir}/04-UpdateSpec.yaml"))).await;
    s.wait_phase(Phase::Paused).await;
    assert_eq!(s.analysis_runs().await, 1, "the pre-promotion analysis");
    s.expect_on(Role::Active, 1).await;
    s.expect_on(Role::Preview, 2).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    s.serin("promote", &[]);
    s.expect_on(Role::Active, 2).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(s.analysis_runs().await, 2, "the post-promotion analysis");
    s.expect_replica_counts((1, 2, 1, 1, 1)).await;
    assert_eq!(s.status().await.phase, Some(Phase::Progressing));
    s.wait_phase(Phase::Healthy).await;
}

/// analysis_test.go TestBlueGreenPrePromotionFail: a failed pre-promotion analysis aborts before
/// any switch; fixed and retried, the version goes live.
#[tokio::test]
async fn blue_green_pre_promotion_fail() {
    let dir = "inline/analysis/TestBlueGreenPrePromotionFail";
    let mut s = blue_green_start("pre-promotion-fail", dir, "03-RolloutObjects.yaml").await;
    s.update_spec().await;
    s.wait_phase(Phase::Degraded).await;
    assert_eq!(s.analysis_runs().await, 1);
    s.expect_on(Role::Stable, 1).await;
    s.expect_on(Role::Active, 1).await;
    s.expect_on(Role::Preview, 2).await;
    s.patch_spec(&data(&format!("{dir}/04-PatchSpec.yaml"))).await;
    s.serin("retry", &[]);
    s.wait_phase(Phase::Healthy).await;
    assert_eq!(s.analysis_runs().await, 2);
    s.expect_on(Role::Stable, 2).await;
    s.expect_on(Role::Active, 2).await;
    s.expect_on(Role::Preview, 2).await;
}

/// analysis_test.go TestBlueGreenPostPromotionFail: a failed post-promotion analysis switches
/// the active Service back; the preview stays on the new version.
#[tokio::test]
async fn blue_green_post_promotion_fail() {
    let dir = "inline/analysis/TestBlueGreenPostPromotionFail";
    let mut s = blue_green_start("post-promotion-fail", dir, "03-RolloutObjects.yaml").await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.expect_on(Role::Stable, 1).await;
    s.expect_on(Role::Active, 1).await;
    s.expect_on(Role::Preview, 2).await;
    s.serin("promote", &[]);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    s.expect_on(Role::Stable, 1).await;
    s.expect_on(Role::Active, 2).await;
    s.expect_on(Role::Preview, 2).await;
    s.wait_phase(Phase::Degraded).await;
    assert_eq!(s.analysis_runs().await, 1);
    s.expect_on(Role::Stable, 1).await;
    s.expect_on(Role::Active, 1).await;
    s.expect_on(Role::Preview, 2).await;
}

/// analysis_test.go TestBlueGreenAbortAndUpdate: after a failed post-promotion analysis a new
/// version comes up in preview beside the old active one, and is promoted.
#[tokio::test]
async fn blue_green_abort_and_update() {
    let dir = "inline/analysis/TestBlueGreenAbortAndUpdate";
    let mut s = blue_green_start("bluegreen-abort-and-update", dir, "03-RolloutObjects.yaml").await;
    s.update_spec().await;
    s.wait_phase(Phase::Degraded).await;
    assert_eq!(s.analysis_runs().await, 1);
    s.expect_on(Role::Active, 1).await;
    s.expect_on(Role::Preview, 2).await;
    s.update_spec_with(&data(&format!("{dir}/04-UpdateSpec.yaml"))).await;
    s.wait_phase(Phase::Paused).await;
    let (v1, v2, v3) = (
        s.revision(1).to_string(),
        s.revision(2).to_string(),
        s.revision(3).to_string(),
    );
    common::eventually("1, 0 and 1 Pods", common::argo::WAIT, || async {
        let counts = (s.pods_of(&v1).await, s.pods_of(&v2).await, s.pods_of(&v3).await);
        (counts == (1, 0, 1)).then_some(())
    })
    .await;
    s.expect_on(Role::Active, 1).await;
    s.expect_on(Role::Preview, 3).await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    s.expect_on(Role::Active, 3).await;
    assert_eq!(s.pods_of(&v3).await, 1);
}

/// analysis_test.go TestBlueGreenKitchenSink: preview Pods, automatic promotion after a wait,
/// pre-promotion analysis and a failing post-promotion analysis together.
#[tokio::test]
async fn blue_green_kitchen_sink() {
    let dir = "inline/analysis/TestBlueGreenKitchenSink";
    let mut s = blue_green_start("bluegreen-kitchensink", dir, "03-RolloutObjects.yaml").await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    let (v1, v2) = (s.revision(1).to_string(), s.revision(2).to_string());
    s.expect_on(Role::Active, 1).await;
    s.expect_on(Role::Preview, 2).await;
    s.expect_on(Role::Stable, 1).await;
    assert_eq!((s.pods_of(&v1).await, s.pods_of(&v2).await), (2, 1));
    s.expect_replica_counts((2, 3, 1, 2, 2)).await;
    assert_eq!(s.analysis_runs().await, 1);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    s.expect_on(Role::Active, 1).await;
    s.expect_on(Role::Stable, 1).await;
    assert_eq!((s.pods_of(&v1).await, s.pods_of(&v2).await), (2, 1));
    s.expect_replica_counts((2, 3, 1, 2, 2)).await;
    common::eventually("the switch", common::argo::WAIT, || async {
        (s.status().await.blue_green?.active_selector? == v2).then_some(())
    })
    .await;
    assert_eq!((s.pods_of(&v2).await, s.pods_of(&v1).await), (2, 2));
    s.expect_replica_counts((2, 4, 2, 2, 2)).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(s.analysis_runs().await, 2);
    s.wait_phase(Phase::Degraded).await;
    s.expect_on(Role::Active, 1).await;
    s.expect_on(Role::Preview, 2).await;
    s.expect_on(Role::Stable, 1).await;
    assert_eq!((s.pods_of(&v2).await, s.pods_of(&v1).await), (2, 2));
}

/// functional_test.go TestBlueGreenPromoteFull: promote --full during the pre-promotion analysis
/// switches at once and skips the post-promotion analysis.
#[tokio::test]
async fn blue_green_promote_full() {
    let dir = "inline/functional/TestBlueGreenPromoteFull";
    let mut s = Scenario::start("bluegreen-promote-full").await;
    s.apply(&data("fixtures/functional/analysistemplate-sleep-job.yaml"));
    s.apply(&data(&format!("{dir}/01-RolloutObjects-newService.yaml")));
    s.healthy(&data(&format!("{dir}/02-RolloutObjects.yaml"))).await;
    s.update_spec().await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    s.wait_run_phase(RunKind::Step, "Running").await;
    s.serin("promote", &["--full"]);
    s.wait_phase(Phase::Healthy).await;
    assert_eq!(s.analysis_runs().await, 1, "the post-promotion analysis is skipped");
    s.expect_on(Role::Active, 2).await;
}

/// functional_test.go TestBlueGreenScaleDownOnAbort: an aborted preview's Pods go after
/// abortScaleDownDelaySeconds.
#[tokio::test]
async fn blue_green_scale_down_on_abort() {
    let dir = "inline/functional/TestBlueGreenScaleDownOnAbort";
    let mut s = Scenario::start("bluegreen-scaledown-on-abort").await;
    s.apply(&data(&format!("{dir}/01-RolloutObjects-newService.yaml")));
    s.apply(&data(&format!("{dir}/02-RolloutObjects-newService.yaml")));
    s.healthy(&data(&format!("{dir}/03-RolloutObjects.yaml"))).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    let (v1, v2) = (s.revision(1).to_string(), s.revision(2).to_string());
    assert_eq!((s.pods_of(&v2).await, s.pods_of(&v1).await), (1, 2));
    s.serin("abort", &[]);
    s.wait_phase(Phase::Degraded).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    common::eventually(
        "the preview's Pods gone",
        std::time::Duration::from_secs(10),
        || async { (s.pods_of(&v2).await == 0).then_some(()) },
    )
    .await;
}

/// bluegreen_test.go TestBlueGreenPreviewReplicaCountPromoteFull: paused longer than the progress
/// deadline is not Degraded; promote --full brings the preview to full size and switches.
#[tokio::test]
async fn blue_green_preview_replica_count_promote_full() {
    let dir = "inline/bluegreen/TestBlueGreenPreviewReplicaCountPromoteFull";
    let mut s = Scenario::start("bluegreen-preview-replicas-promote-full").await;
    s.apply(&data("fixtures/functional/analysistemplate-sleep-job.yaml"));
    s.apply(&data(&format!("{dir}/01-RolloutObjects-newService.yaml")));
    s.healthy(&data(&format!("{dir}/02-RolloutObjects.yaml"))).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(s.status().await.phase, Some(Phase::Paused), "a pause is not a stall");
    s.expect_replica_counts((2, 3, 1, 2, 2)).await;
    s.serin("promote", &["--full"]);
    s.wait_phase(Phase::Healthy).await;
    s.expect_replica_counts((2, 4, 2, 2, 2)).await;
}

/// bluegreen_test.go TestBlueGreenProgressDeadlineExceededWithPause: Pods slower than the progress
/// deadline make it Degraded until they are ready; a manual promotion then switches.
#[tokio::test]
async fn blue_green_progress_deadline_exceeded_with_pause() {
    let mut s = Scenario::start("rollout-bluegreen-with-pause").await;
    let manifest = data("inline/bluegreen/TestBlueGreenProgressDeadlineExceededWithPause/01-RolloutObjects.yaml");
    s.apply(&manifest);
    s.note_revision().await;
    s.wait_until("1 Pod", |st| st.replicas == Some(1)).await;
    s.wait_phase(Phase::Degraded).await;
    s.wait_phase(Phase::Healthy).await;
    s.update_spec().await;
    s.wait_phase(Phase::Degraded).await;
    s.wait_phase(Phase::Paused).await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    s.expect_on(Role::Active, 2).await;
}

/// bluegreen_test.go TestBlueGreenProgressDeadlineExceededWithoutPause: the same with automatic
/// promotion.
#[tokio::test]
async fn blue_green_progress_deadline_exceeded_without_pause() {
    let mut s = Scenario::start("rollout-bluegreen-without-pause").await;
    let manifest = data("inline/bluegreen/TestBlueGreenProgressDeadlineExceededWithoutPause/01-RolloutObjects.yaml");
    s.apply(&manifest);
    s.note_revision().await;
    s.wait_until("1 Pod", |st| st.replicas == Some(1)).await;
    s.wait_phase(Phase::Degraded).await;
    s.wait_phase(Phase::Healthy).await;
    s.update_spec().await;
    s.wait_phase(Phase::Degraded).await;
    s.wait_phase(Phase::Healthy).await;
    s.expect_on(Role::Active, 2).await;
}

/// bluegreen_test.go TestEphemeralMetadata: activeMetadata and previewMetadata.
#[tokio::test]
async fn blue_green_ephemeral_metadata() {
    ephemeral_metadata(
        "ephemeral-metadata-bg",
        "inline/bluegreen/TestEphemeralMetadata",
        "active",
        "preview",
    )
    .await;
}

/// functional_test.go TestBlueGreenUpdate: automatic promotion; the old version keeps its Pods
/// for the scale-down delay while the Rollout is Healthy. (Argo's exact Event reasons are its
/// own: Serin's are listed in docs/migration.md.)
#[tokio::test]
async fn blue_green_update() {
    let mut s = Scenario::start("bluegreen").await;
    s.healthy(&data("fixtures/functional/rollout-bluegreen.yaml")).await;
    s.expect_replica_counts((3, 3, 3, 3, 3)).await;
    s.update_spec().await;
    common::eventually("the switch", common::argo::WAIT, || async {
        (s.status().await.blue_green?.active_selector? == s.revision(2)).then_some(())
    })
    .await;
    s.expect_replica_counts((3, 6, 3, 3, 3)).await;
    s.wait_phase(Phase::Healthy).await;
    s.expect_replica_counts((3, 6, 3, 3, 3)).await;
}

/// functional_test.go TestRolloutRestart: a restart while paused at 25% replaces at most
/// maxUnavailable (75% of 4) Pods at once; their replacements wait out a 5 s postStart.
#[tokio::test]
async fn rollout_restart() {
    let dir = "inline/functional/TestRolloutRestart";
    let mut s = Scenario::start("rollout-restart").await;
    s.healthy(&data(&format!("{dir}/01-HealthyRollout.yaml"))).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    s.serin("restart", &[]);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    s.expect_replica_counts((4, 4, 1, 1, 1)).await;
}

/// A Rollout whose update crashes: one new Pod beside every old one (maxSurge 1, maxUnavailable
/// 0), Degraded at the progress deadline; `revs` are each revision's Pods at the end.
async fn bad_update(s: &mut Scenario, patch: &str, revs: &[(usize, usize)]) {
    s.patch_spec(patch).await;
    s.wait_phase(Phase::Progressing).await;
    s.wait_phase(Phase::Degraded).await;
    for &(rev, pods) in revs {
        let hash = s.revision(rev).to_string();
        common::eventually(
            &format!("revision {rev} with {pods} Pods"),
            std::time::Duration::from_secs(20),
            || async { (s.pods_of(&hash).await == pods).then_some(()) },
        )
        .await;
    }
}

/// functional_test.go TestRolloutGoodToBadUpdate: a crashing update keeps every stable Pod and
/// one new Pod; a second crashing update replaces that one.
#[tokio::test]
async fn rollout_good_to_bad_update() {
    let dir = "inline/functional/TestRolloutGoodToBadUpdate";
    let mut s = Scenario::start("good2bad").await;
    s.healthy(&data(&format!("{dir}/01-HealthyRollout.yaml"))).await;
    s.patch_spec(&data(&format!("{dir}/02-PatchSpec.yaml"))).await;
    s.wait_phase(Phase::Degraded).await;
    s.expect_canary_stable_pods(1, 4).await;
    bad_update(
        &mut s,
        &data(&format!("{dir}/03-PatchSpec.yaml")),
        &[(1, 4), (2, 0), (3, 1)],
    )
    .await;
}

/// A first version that crashes, Degraded at its progress deadline.
async fn bad_start(name: &str, manifest: &str) -> Scenario {
    let mut s = Scenario::start(name).await;
    s.apply(&data(manifest));
    s.note_revision().await;
    s.wait_phase(Phase::Degraded).await;
    s
}

/// functional_test.go TestRolloutBadToGoodUpdate: a crashing first version, fixed, rolls out whole.
#[tokio::test]
async fn rollout_bad_to_good_update() {
    let dir = "inline/functional/TestRolloutBadToGoodUpdate";
    let mut s = bad_start("bad2good", &format!("{dir}/01-RolloutObjects.yaml")).await;
    s.patch_spec(&data(&format!("{dir}/02-PatchSpec.yaml"))).await;
    s.wait_phase(Phase::Healthy).await;
    let (v1, v2) = (s.revision(1).to_string(), s.revision(2).to_string());
    s.expect_replica_counts((4, 4, 4, 4, 4)).await;
    assert_eq!((s.pods_of(&v2).await, s.pods_of(&v1).await), (4, 0));
}

/// functional_test.go TestRolloutBadToBadUpdate: a crashing first version replaced by another
/// crashing one: the first keeps its Pods, the second gets one.
#[tokio::test]
async fn rollout_bad_to_bad_update() {
    let dir = "inline/functional/TestRolloutBadToBadUpdate";
    let mut s = bad_start("bad2bad", &format!("{dir}/01-RolloutObjects.yaml")).await;
    bad_update(&mut s, &data(&format!("{dir}/02-PatchSpec.yaml")), &[(1, 4), (2, 1)]).await;
}

/// functional_test.go TestRolloutBadToGoodSetWeightUpdate: the same with steps; the fixed version
/// rolls out whole.
#[tokio::test]
async fn rollout_bad_to_good_set_weight_update() {
    let dir = "inline/functional/TestRolloutBadToGoodSetWeightUpdate";
    let mut s = bad_start("bad2good-setweight", &format!("{dir}/01-RolloutObjects.yaml")).await;
    s.patch_spec(&data(&format!("{dir}/02-PatchSpec.yaml"))).await;
    s.wait_phase(Phase::Healthy).await;
    let (v1, v2) = (s.revision(1).to_string(), s.revision(2).to_string());
    s.expect_replica_counts((4, 4, 4, 4, 4)).await;
    assert_eq!((s.pods_of(&v2).await, s.pods_of(&v1).await), (4, 0));
}

/// functional_test.go TestSpecAndReplicaChangeSameTime: the template and replicas changed
/// together, twice; the last version ends with every Pod.
#[tokio::test]
async fn spec_and_replica_change_same_time() {
    let dir = "inline/functional/TestSpecAndReplicaChangeSameTime";
    let mut s = Scenario::start("canary-change-same-time").await;
    s.healthy(&data(&format!("{dir}/01-HealthyRollout.yaml"))).await;
    s.patch_spec(&data(&format!("{dir}/02-PatchSpec.yaml"))).await;
    s.wait_phase(Phase::Paused).await;
    s.patch_spec(&data(&format!("{dir}/03-PatchSpec.yaml"))).await;
    s.wait_phase(Phase::Healthy).await;
    s.expect_replica_counts((4, 4, 4, 4, 4)).await;
}

/// functional_test.go TestBlueGreenScaleDownDelay: with a day's scale-down delay, each old
/// version keeps its Pod, at most `scaleDownDelayRevisionLimit` of them; lowering the limit
/// scales the oldest down at once.
#[tokio::test]
async fn blue_green_scale_down_delay() {
    let dir = "inline/functional/TestBlueGreenScaleDownDelay";
    let mut s = Scenario::start("bluegreen-scaledowndelay").await;
    s.apply(&data(&format!("{dir}/01-RolloutObjects-newService.yaml")));
    s.healthy(&data(&format!("{dir}/02-RolloutObjects.yaml"))).await;
    for _ in 0..3 {
        s.update_spec().await;
        s.wait_phase(Phase::Healthy).await;
        if s.revisions() == 2 {
            s.expect_pods(&[(2, 1), (1, 1)]).await;
            s.expect_replica_counts((1, 2, 1, 1, 1)).await;
        }
    }
    s.expect_pods(&[(4, 1), (3, 1), (2, 1), (1, 0)]).await;
    s.expect_replica_counts((1, 3, 1, 1, 1)).await;
    s.patch_spec(&data(&format!("{dir}/03-PatchSpec.yaml"))).await;
    s.expect_pods(&[(4, 1), (3, 1), (2, 0), (1, 0)]).await;
    s.expect_replica_counts((1, 2, 1, 1, 1)).await;
}

/// functional_test.go TestBlueGreenExceedProgressDeadlineAbort: past the progress deadline a
/// preview that cannot start stays up while `progressDeadlineAbort` is false; set to true, the
/// Rollout aborts and the preview goes after `abortScaleDownDelaySeconds` (2 s).
#[tokio::test]
async fn blue_green_exceed_progress_deadline_abort() {
    let dir = "inline/functional/TestBlueGreenExceedProgressDeadlineAbort";
    let mut s = Scenario::start("bluegreen-scaledowndelay").await;
    s.apply(&data(&format!("{dir}/01-RolloutObjects-newService.yaml")));
    s.healthy(&data(&format!("{dir}/02-RolloutObjects.yaml"))).await;
    // Argo's patch merges by container name: it adds a second container that cannot start.
    s.patch_spec(&data(&format!("{dir}/03-PatchSpec.yaml"))).await;
    s.wait_phase(Phase::Degraded).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let v2 = s.revision(2).to_string();
    assert_eq!(s.pods_of(&v2).await, 1);
    assert_ne!(s.status().await.abort, Some(true));
    s.patch_spec(&data(&format!("{dir}/04-PatchSpec.yaml"))).await;
    s.wait_phase(Phase::Degraded).await;
    s.wait_until("aborted", |st| st.abort == Some(true)).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    common::eventually("the preview's Pod gone", std::time::Duration::from_secs(10), || async {
        (s.pods_of(&v2).await == 0).then_some(())
    })
    .await;
    let conditions = s.status().await.conditions.unwrap_or_default();
    assert_eq!(conditions.len(), 4, "{conditions:#?}");
}

/// canary_test.go TestReduceWeightAndHonorMaxUnavailable: from 100% back to 0% the stable comes
/// back within maxSurge (2) while the canary keeps its Pods until the stable's are available, and
/// the same after a failed analysis aborts at 100%.
#[tokio::test]
async fn reduce_weight_and_honor_max_unavailable() {
    let mut s = Scenario::start("reduceweight-maxunavailable").await;
    s.apply(&data("fixtures/functional/analysistemplate-sleep-job.yaml"));
    s.healthy(&data(
        "inline/canary/TestReduceWeightAndHonorMaxUnavailable/01-HealthyRollout.yaml",
    ))
    .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.expect_canary_stable_pods(3, 0).await;
    s.serin("promote", &[]);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    s.expect_canary_stable_pods(3, 2).await;
    s.wait_until("step 3", |st| st.current_step_index == Some(3)).await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Degraded).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(s.analysis_runs().await, 1);
    s.expect_canary_stable_pods(3, 2).await;
}

/// canary_test.go TestRolloutWithMaxSurgeScalingDuringUpdate: no steps and maxSurge 100%, scaled
/// up and down mid-update. Argo's snapshots are taken while the new Pods are still starting
/// (pulling nginx there); here a readiness probe's 60 s initial delay holds them, longer than the
/// three waits for Serin's status, whose mere counts may trail by up to 10 s each.
#[tokio::test]
async fn rollout_with_max_surge_scaling_during_update() {
    let dir = "inline/canary/TestRolloutWithMaxSurgeScalingDuringUpdate";
    let mut s = Scenario::start("updatescaling").await;
    s.healthy(&data(&format!("{dir}/01-HealthyRollout.yaml"))).await;
    let mut patch: serde_json::Value =
        serde_saphyr::from_str(&data(&format!("{dir}/02-PatchSpec.yaml"))).expect("the patch parses");
    patch["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
        serde_json::json!({"tcpSocket": {"port": 80}, "initialDelaySeconds": 60});
    s.patch_spec(&patch.to_string()).await;
    s.wait_until("7 Pods", |st| st.replicas == Some(7)).await;
    s.expect_canary_stable_pods(4, 3).await;
    s.scale(8);
    s.wait_until("11 Pods", |st| st.replicas == Some(11)).await;
    s.expect_canary_stable_pods(8, 3).await;
    s.scale(4);
    s.wait_until("7 Pods after scaling back to 4", |st| st.replicas == Some(7))
        .await;
    s.expect_canary_stable_pods(4, 3).await;
}

/// functional_test.go TestWorkloadRefTemplate: a Rollout with both a workloadRef and a template.
/// Argo accepts it and reports it Degraded; Serin's schema refuses it at apply time, with the
/// reason (docs/migration.md).
#[tokio::test]
async fn workload_ref_template() {
    let s = Scenario::start("rollout-ref-deployment").await;
    let refused = s
        .try_apply(&data(
            "inline/functional/TestWorkloadRefTemplate/01-RolloutObjects.yaml",
        ))
        .expect_err("a template beside a workloadRef is refused");
    assert!(
        refused.contains("exactly one of template and workloadRef must be set"),
        "{refused}"
    );
}

/// functional_test.go TestWorkloadRef: a Rollout waiting for its Deployment, then following its
/// template (a broken one Degraded, a fixed one Healthy), its name changed away and back, and
/// finally an inline template taking over.
#[tokio::test]
async fn workload_ref() {
    let dir = "inline/functional/TestWorkloadRef";
    let mut s = Scenario::start("rollout-ref-deployment").await;
    let active = "rollout-bluegreen-active";
    let app = [("app".to_string(), "rollout-ref-deployment".to_string())];
    s.apply(&data(&format!("{dir}/01-RolloutObjects.yaml")));
    s.wait_phase(Phase::Degraded).await;
    assert_eq!(s.selector(active).await, app.clone().into(), "not switched");
    s.apply(&data(&format!("{dir}/02-ApplyManifests.yaml")));
    s.note_revision().await;
    let st = s.wait_phase(Phase::Healthy).await;
    assert_eq!(st.workload_observed_generation.as_deref(), Some("1"));
    s.expect_on(Role::Active, 1).await;
    let image = |image: &str| {
        serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "rollouts-demo", "image": image}]}}}})
    };
    s.patch_deployment("rollout-ref-deployment", &image("argoproj/rollouts-demo:error"));
    s.note_revision().await;
    let st = s.wait_phase(Phase::Degraded).await;
    assert_eq!(st.workload_observed_generation.as_deref(), Some("2"));
    s.patch_deployment("rollout-ref-deployment", &image("argoproj/rollouts-demo:blue"));
    s.note_revision().await;
    s.wait_phase(Phase::Healthy).await;
    s.merge_patch(&data(&format!("{dir}/03-UpdateSpec.yaml")));
    s.wait_phase(Phase::Degraded).await;
    s.merge_patch(&data(&format!("{dir}/04-UpdateSpec.yaml")));
    s.wait_phase(Phase::Healthy).await;
    s.expect_on(Role::Active, 3).await;
    let rollout = s.rollouts.get("rollout-ref-deployment").await.expect("the Rollout");
    assert_eq!(
        rollout.spec.selector,
        Default::default(),
        "the Deployment's selector is not written back"
    );
    assert!(rollout.spec.template.is_none(), "nor its template");
    s.apply(&data(&format!("{dir}/05-ApplyManifests.yaml")));
    common::eventually("workloadRef gone", common::argo::WAIT, || async {
        let st = s.status().await;
        (st.phase == Some(Phase::Healthy) && st.workload_observed_generation.is_none()).then_some(())
    })
    .await;
}

/// functional_test.go TestScaleDownOnSuccess, TestScaleDownProgressively and TestNeverScaleDown:
/// the Deployment a Rollout took over ends at 0 replicas, or keeps them with `never`.
async fn workload_scale_down(dir: &str, deployment_ends_at: i32) {
    let mut s = Scenario::start("rollout-ref-deployment").await;
    s.apply(&data(&format!("inline/functional/{dir}/01-RolloutObjects.yaml")));
    s.note_revision().await;
    s.wait_phase(Phase::Healthy).await;
    s.expect_deployment_replicas("rollout-ref-deployment", deployment_ends_at)
        .await;
}

#[tokio::test]
async fn scale_down_on_success() {
    workload_scale_down("TestScaleDownOnSuccess", 0).await;
}

#[tokio::test]
async fn scale_down_progressively() {
    workload_scale_down("TestScaleDownProgressively", 0).await;
}

#[tokio::test]
async fn never_scale_down() {
    workload_scale_down("TestNeverScaleDown", 2).await;
}

/// functional_test.go TestScaleDownProgressivelyCompleted: once scaled down, the Deployment stays
/// at 0 while the Rollout is scaled up and down and its template changes (blue-green).
#[tokio::test]
async fn scale_down_progressively_completed() {
    let mut s = Scenario::start("rollout-ref-deployment").await;
    s.apply(&data(
        "inline/functional/TestScaleDownProgressivelyCompleted/01-RolloutObjects.yaml",
    ));
    s.note_revision().await;
    s.wait_phase(Phase::Healthy).await;
    let deployment = "rollout-ref-deployment";
    s.expect_deployment_replicas(deployment, 0).await;
    for n in [6, 2] {
        s.scale(n);
        s.wait_until(&format!("{n} available"), |st| st.available_replicas == Some(n))
            .await;
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        s.expect_deployment_replicas(deployment, 0).await;
        s.expect_replica_counts((n, n, n, n, n)).await;
    }
    update_workload(&mut s, deployment).await;
    s.wait_phase(Phase::Healthy).await;
    s.expect_deployment_replicas(deployment, 0).await;
}

/// Argo's `UpdateWorkloadRef`: a template annotation on the Deployment, a new version.
async fn update_workload(s: &mut Scenario, deployment: &str) {
    let at = jiff::Timestamp::now().to_string();
    s.patch_deployment(
        deployment,
        &serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"update": at}}}}}),
    );
    s.note_revision().await;
}

/// functional_test.go TestScaleDownProgressivelyCompletedCanary: the same with a canary whose
/// steps are timed pauses.
#[tokio::test]
async fn scale_down_progressively_completed_canary() {
    let mut s = Scenario::start("rollout-ref-canary").await;
    s.apply(&data(
        "inline/functional/TestScaleDownProgressivelyCompletedCanary/01-RolloutObjects.yaml",
    ));
    s.note_revision().await;
    s.wait_phase(Phase::Healthy).await;
    let deployment = "rollout-ref-canary";
    s.expect_deployment_replicas(deployment, 0).await;
    s.scale(8);
    s.wait_until("8 available", |st| st.available_replicas == Some(8)).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    s.expect_deployment_replicas(deployment, 0).await;
    s.expect_replica_counts((8, 8, 8, 8, 8)).await;
    update_workload(&mut s, deployment).await;
    // Argo waits for each timed pause and promotes it, racing the pause's own end: promoted
    // when seen paused, and a promote that finds nothing to promote is no failure.
    common::eventually("through the pauses to Healthy", common::argo::WAIT, || async {
        match s.status().await.phase {
            Some(Phase::Paused) => {
                let _ = s.cluster.kubectl_serin(&["promote", &s.name]);
                None
            }
            Some(Phase::Healthy) => Some(()),
            _ => None,
        }
    })
    .await;
    s.expect_deployment_replicas(deployment, 0).await;
}

/// functional_test.go TestRolloutPodVolumesItemsSpec: a configMap volume with `items` deploys.
#[tokio::test]
async fn rollout_pod_volumes_items_spec() {
    let mut s = Scenario::start("rollout-items").await;
    s.healthy(&data(
        "inline/functional/TestRolloutPodVolumesItemsSpec/01-HealthyRollout.yaml",
    ))
    .await;
}

/// functional_test.go TestContainerResourceFormats: cpu written `0.001`, `'0.001'` and `1m` is
/// the same request on the Pod.
#[tokio::test]
async fn container_resource_formats() {
    let mut s = Scenario::start("rollout-containers").await;
    let manifest = data("inline/functional/TestContainerResourceFormats/01-HealthyRollout.yaml");
    s.name = common::argo::documents(&manifest)
        .iter()
        .find(|d| d["kind"] == "Rollout")
        .and_then(|d| d["metadata"]["name"].as_str().map(str::to_string))
        .expect("a Rollout");
    s.healthy(&manifest).await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::default_namespaced(s.client.clone());
    let pods = pods.list(&Default::default()).await.expect("the Pods").items;
    let cpu = pods[0].spec.as_ref().and_then(|p| {
        let requests = p.containers[0].resources.as_ref()?.requests.as_ref()?;
        Some(requests.get("cpu")?.0.clone())
    });
    assert_eq!(cpu.as_deref(), Some("1m"));
}

/// functional_test.go TestRolloutPauseDurationGreaterThanProgressDeadlineSeconds: a 30 s pause
/// with a 5 s progress deadline is no stall: Healthy without passing through Degraded.
#[tokio::test]
async fn rollout_pause_duration_greater_than_progress_deadline_seconds() {
    let mut s = Scenario::start("rollout-canary").await;
    s.healthy(&data(
        "inline/functional/TestRolloutPauseDurationGreaterThanProgressDeadlineSeconds/01-HealthyRollout.yaml",
    ))
    .await;
    s.update_spec().await;
    s.watch_until_healthy().await;
}

/// functional_test.go TestCompleteRolloutRestart: a restart long after the progress deadline
/// (with progressDeadlineAbort) is no stall either.
#[tokio::test]
async fn complete_rollout_restart() {
    let mut s = Scenario::start("rollout-restart").await;
    s.healthy(&data(
        "inline/functional/TestCompleteRolloutRestart/01-HealthyRollout.yaml",
    ))
    .await;
    s.watch_until_healthy().await;
    tokio::time::sleep(std::time::Duration::from_secs(16)).await;
    s.serin("restart", &[]);
    s.watch_until_healthy().await;
    common::eventually("every Pod restarted", common::argo::WAIT, || async {
        s.status().await.restarted_at.is_some().then_some(())
    })
    .await;
}

/// analysis_test.go TestCanaryInlineAnalysisLongRunningJobWithDeadline: a step analysis whose
/// Job passes its `activeDeadlineSeconds` fails, and the Rollout is Degraded.
#[tokio::test]
async fn canary_inline_analysis_long_running_job_with_deadline() {
    let mut s = Scenario::start("rollout-inline-long-running-job-deadline").await;
    s.apply(&data(
        "fixtures/functional/analysistemplate-long-running-job-deadline.yaml",
    ));
    s.healthy(&data(
        "fixtures/functional/rollout-inline-long-running-job-deadline.yaml",
    ))
    .await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec().await;
    s.wait_phase(Phase::Degraded).await;
    assert_eq!(s.analysis_runs().await, 1);
    s.wait_run_phase(RunKind::Step, "Failed").await;
}

/// analysis_test.go TestCanaryBackgroundAnalysisLongRunningJobWithDeadline: the same, in the
/// background.
#[tokio::test]
async fn canary_background_analysis_long_running_job_with_deadline() {
    let mut s = Scenario::start("rollout-background-long-running-job-deadline").await;
    s.apply(&data(
        "fixtures/functional/analysistemplate-long-running-job-deadline.yaml",
    ));
    s.healthy(&data(
        "fixtures/functional/rollout-background-long-running-job-deadline.yaml",
    ))
    .await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec().await;
    s.wait_phase(Phase::Degraded).await;
    assert_eq!(s.analysis_runs().await, 1);
    s.wait_run_phase(RunKind::Background, "Failed").await;
}

/// analysis_test.go TestCanaryBackgroundAnalysisLongRunningJob: a background Job still running
/// when the Rollout is promoted is stopped, and its run is Inconclusive: it never said.
#[tokio::test]
async fn canary_background_analysis_long_running_job() {
    let mut s = Scenario::start("rollout-background-long-running-job").await;
    s.apply(&data("fixtures/functional/analysistemplate-long-running-job.yaml"));
    s.healthy(&data("fixtures/functional/rollout-background-long-running-job.yaml"))
        .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    assert_eq!(s.analysis_runs().await, 1);
    assert_eq!(s.run_phase(RunKind::Background).await.as_deref(), Some("Running"));
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    s.wait_run_phase(RunKind::Background, "Inconclusive").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        s.status().await.phase,
        Some(Phase::Healthy),
        "a run stopped after the promotion changes nothing"
    );
}

/// analysis_test.go TestCanaryInlineAnalysisInvalidImageJob: a step analysis whose Job's image
/// cannot be pulled is Inconclusive, and the Rollout pauses.
#[tokio::test]
async fn canary_inline_analysis_invalid_image_job() {
    let mut s = Scenario::start("rollout-inline-invalid-image-job").await;
    s.apply(&data("fixtures/functional/analysistemplate-invalid-image-job.yaml"));
    s.healthy(&data("fixtures/functional/rollout-inline-invalid-image-job.yaml"))
        .await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    assert_eq!(s.analysis_runs().await, 1);
    assert_eq!(s.run_phase(RunKind::Step).await.as_deref(), Some("Inconclusive"));
}

/// analysis_test.go TestCanaryBackgroundAnalysisInvalidImageJob: the same in the background,
/// while the step analysis (a long Job) still runs.
#[tokio::test]
async fn canary_background_analysis_invalid_image_job() {
    let mut s = Scenario::start("rollout-background-invalid-job").await;
    for t in ["invalid-image-job", "long-running-job"] {
        s.apply(&data(&format!("fixtures/functional/analysistemplate-{t}.yaml")));
    }
    s.healthy(&data("fixtures/functional/rollout-background-invalid-job.yaml"))
        .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    common::eventually("2 runs", common::argo::WAIT, || async {
        (s.analysis_runs().await == 2).then_some(())
    })
    .await;
    s.wait_run_phase(RunKind::Step, "Running").await;
    assert_eq!(s.run_phase(RunKind::Background).await.as_deref(), Some("Inconclusive"));
}

/// analysis_test.go TestCanaryBackgroundAnalysis: a background web analysis of the API server's
/// `/version`, running while paused and Successful once the promotion stops it. Argo's template
/// names the in-cluster address; the controller here runs beside the cluster, so the argument is
/// given the same API server's address from outside.
#[tokio::test]
async fn canary_background_analysis() {
    let mut s = Scenario::start("rollout-background-analysis").await;
    let kubeconfig = std::fs::read_to_string(&s.cluster.kubeconfig).expect("the kubeconfig");
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("a server")
        .to_string();
    let template = data("fixtures/functional/analysistemplate-web-background.yaml")
        .replace("https://kubernetes.default.svc/version", &format!("{server}/version"));
    s.apply(&template);
    s.healthy(&data("fixtures/functional/rollout-background-analysis.yaml"))
        .await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    assert_eq!(s.analysis_runs().await, 1);
    s.wait_run_phase(RunKind::Background, "Running").await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    s.wait_run_phase(RunKind::Background, "Successful").await;
}

/// analysis_test.go TestAnalysisWithSecret: a web analysis whose URL comes from a Secret,
/// measured twice, passes; the promotion then makes revision 2 stable. (The gist it reads is
/// served locally: `common::argo::web_stub`.)
#[tokio::test]
async fn analysis_with_secret() {
    secret_analysis("fixtures/functional/rollout-secret.yaml", 2).await;
}

/// analysis_test.go TestAnalysisWithArgs: the same with the count, interval and condition given
/// as the step's args: three measurements.
#[tokio::test]
async fn analysis_with_args() {
    secret_analysis("fixtures/functional/rollout-secret-withArgs.yaml", 3).await;
}

async fn secret_analysis(fixture: &str, measurements: i32) {
    let url = common::argo::web_stub().await;
    let mut s = Scenario::start("rollout-secret").await;
    s.healthy(&common::argo::with_secret_url(&data(fixture), &url)).await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.wait_run_phase(RunKind::Step, "Successful").await;
    let runs: kube::Api<serin::crd::analysis::AnalysisRun> = kube::Api::default_namespaced(s.client.clone());
    let run = &runs.list(&Default::default()).await.expect("the runs").items[0];
    let count = run.status.as_ref().map(|st| st.metric_results[0].count);
    assert_eq!(count, Some(measurements));
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    assert_eq!(s.status().await.stable_pod_hash.as_deref(), Some(s.revision(2)));
}

/// analysis_test.go TestBackgroundAnalysisWithArgs: a background web analysis with args, from
/// step 1, running while paused and Successful once promoted.
#[tokio::test]
async fn background_analysis_with_args() {
    let url = common::argo::web_stub().await;
    let mut s = Scenario::start("rollout-bg-analysis").await;
    let manifest = data("fixtures/functional/rollout-bg-analysis-withArgs.yaml");
    s.healthy(&common::argo::with_secret_url(&manifest, &url)).await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(s.analysis_runs().await, 1);
    assert_eq!(s.run_phase(RunKind::Background).await.as_deref(), Some("Running"));
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    s.wait_run_phase(RunKind::Background, "Successful").await;
}

/// analysis_test.go TestMultipleAnalysis: two templates in one step make one run, the step's
/// args overriding the templates' defaults. (GitHub's API is served locally.)
#[tokio::test]
async fn multiple_analysis() {
    let url = common::argo::web_stub().await;
    let host = url.trim_start_matches("http://");
    let dir = "inline/analysis/TestMultipleAnalysis";
    let mut s = Scenario::start("multi-analysis").await;
    for f in ["01-RolloutObjects.yaml", "02-RolloutObjects.yaml"] {
        s.apply(&data(&format!("{dir}/{f}")).replace("https://{{args.host}}", "http://{{args.host}}"));
    }
    s.healthy(&data(&format!("{dir}/03-RolloutObjects.yaml")).replace("api.github.com", host))
        .await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec().await;
    s.wait_phase(Phase::Healthy).await;
    assert_eq!(s.analysis_runs().await, 1);
}

/// analysis_test.go TestCanaryInconclusiveBackgroundAnalysis: measurements that neither pass nor
/// fail, past inconclusiveLimit, pause the Rollout saying so. (dns.google is served locally.)
#[tokio::test]
async fn canary_inconclusive_background_analysis() {
    let url = common::argo::web_stub().await;
    let mut s = Scenario::start("rollout-background-analysis-inconclusive").await;
    s.apply(
        &data("fixtures/functional/analysistemplate-web-background-inconclusive.yaml")
            .replace("https://dns.google", &url),
    );
    s.healthy(&data(
        "fixtures/functional/rollout-background-analysis-inconclusive.yaml",
    ))
    .await;
    assert_eq!(s.analysis_runs().await, 0);
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.wait_run_phase(RunKind::Background, "Running").await;
    assert_eq!(s.analysis_runs().await, 1);
    s.wait_run_phase(RunKind::Background, "Inconclusive").await;
    s.wait_until("paused, saying the analysis is inconclusive", |st| {
        st.phase == Some(Phase::Paused) && st.message.as_deref().is_some_and(|m| m.contains("inconclusive"))
    })
    .await;
}

/// `kubectl wait --for=condition=…` on the Rollout, as Argo's tests run it; what kubectl printed.
fn kubectl_wait(s: &Scenario, condition: &str) -> String {
    s.cluster.kubectl_ok(&[
        "wait",
        &format!("--for=condition={condition}"),
        &format!("rollout/{}", s.name),
        "--timeout=90s",
    ])
}

/// functional_test.go TestKubectlWaitForPaused: `kubectl wait` on the Paused condition, both ways.
#[tokio::test]
async fn kubectl_wait_for_paused() {
    let mut s = Scenario::start("kubectl-wait-paused").await;
    s.healthy(&data(
        "inline/functional/TestKubectlWaitForPaused/01-HealthyRollout.yaml",
    ))
    .await;
    s.update_spec().await;
    let out = kubectl_wait(&s, "Paused");
    assert!(
        out.contains("rollout.serin.dev/kubectl-wait-paused condition met"),
        "{out}"
    );
    let st = s.status().await;
    assert_eq!(st.phase, Some(Phase::Paused), "{st:#?}");
    s.expect_on(Role::Active, 1).await;
    s.serin("promote", &[]);
    kubectl_wait(&s, "Paused=False");
    s.wait_phase(Phase::Healthy).await;
    s.expect_on(Role::Active, 2).await;
}

/// functional_test.go TestKubectlWaitForCompleted: `kubectl wait` on Healthy, False while the new
/// version comes up (its Pods wait 5 s for their readiness probe), then True.
#[tokio::test]
async fn kubectl_wait_for_completed() {
    let mut s = Scenario::start("kubectl-wait-healthy").await;
    s.healthy(&data(
        "inline/functional/TestKubectlWaitForCompleted/01-HealthyRollout.yaml",
    ))
    .await;
    s.update_spec().await;
    kubectl_wait(&s, "Healthy=False");
    let st = s.status().await;
    assert_eq!(st.phase, Some(Phase::Progressing), "{st:#?}");
    s.expect_on(Role::Active, 1).await;
    kubectl_wait(&s, "Healthy=True");
    s.expect_on(Role::Active, 2).await;
}

/// functional_test.go TestRolloutPDBRestart: a restart evicts, and a PodDisruptionBudget that
/// allows no disruption holds every Pod (an Event names the budget); once the budget is deleted
/// the Pods are replaced, all at once with `maxUnavailable: 100%`.
#[tokio::test]
async fn rollout_pdb_restart() {
    let dir = "inline/functional/TestRolloutPDBRestart";
    let mut s = Scenario::start("rollout-pdb-restart").await;
    s.healthy(&data(&format!("{dir}/01-HealthyRollout.yaml"))).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    s.serin("restart", &[]);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    s.expect_replica_counts((4, 4, 1, 4, 4)).await;
    let deadline = std::time::Instant::now() + common::argo::WAIT;
    loop {
        let events = s.cluster.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=EvictionRefused",
            "-o",
            "json",
        ]);
        if events.contains("disruption budget rollout-pdb-restart") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Event names the budget: {events}\n{}",
            s.controller.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(s.replica_counts().await, (4, 4, 1, 4, 4), "the budget still holds");
    let pod_names = || {
        let out = s.cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=rollout-pdb-restart",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        out.split_whitespace().map(String::from).collect::<Vec<_>>()
    };
    let before = pod_names();
    assert_eq!(before.len(), 4, "no Pod was evicted: {before:?}");
    s.cluster.kubectl_ok(&["delete", "pdb", "rollout-pdb-restart"]);
    // Argo waits for 0 available Pods (all evicted at once with maxUnavailable 100%); here every
    // Pod of before the restart is seen replaced.
    common::eventually("every Pod replaced", common::argo::WAIT, || async {
        let now = pod_names();
        (now.iter().all(|p| !before.contains(p))).then_some(())
    })
    .await;
    s.wait_until("all replaced and available", |st| st.available_replicas == Some(4))
        .await;
}

/// functional_test.go TestMalformedRollout and TestMalformedRolloutEphemeralCtr: a Rollout whose
/// Pod template Kubernetes refuses (a memory request of `invalid`). Argo's informer tolerates the
/// field; here the API server refuses the ReplicaSet, and the Rollout says so (Degraded, with the
/// server's words and an Event) instead of waiting in silence.
async fn malformed(name: &str) {
    let s = Scenario::start(name).await;
    s.apply(&data(&format!("fixtures/expectedfailures/{name}.yaml")));
    let st = s
        .wait_until("a status that says the ReplicaSet is refused", |st| {
            st.message
                .as_deref()
                .is_some_and(|m| m.contains("quantities must match"))
        })
        .await;
    assert_eq!(st.phase, Some(Phase::Degraded), "{st:#?}");
    let events = s.cluster.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=ObjectRefused",
        "-o",
        "json",
    ]);
    assert!(events.contains("quantities must match"), "{events}");
}

#[tokio::test]
async fn malformed_rollout() {
    malformed("malformed-rollout").await;
}

#[tokio::test]
async fn malformed_rollout_ephemeral_container() {
    malformed("malformed-rollout-ephemeral").await;
}

/// functional_test.go TestControllerMetrics: the controller serves its metrics, here with the
/// Rollout it reconciles in them.
#[tokio::test]
async fn controller_metrics() {
    let mut s = Scenario::start("basic").await;
    s.healthy(&data("fixtures/functional/rollout-basic.yaml")).await;
    let url = format!("http://127.0.0.1:{}/metrics", s.controller.metrics_port);
    let metrics = common::eventually("the Rollout in /metrics", common::argo::WAIT, || async {
        let r = reqwest::get(&url).await.ok()?;
        let ok = r.status().is_success();
        let text = r.text().await.ok()?;
        (ok && text.contains(r#"serin_rollout_phase{namespace=""#)
            && text.contains(r#"rollout="basic",phase="Healthy"} 1"#))
        .then_some(text)
    })
    .await;
    assert!(metrics.contains("serin_rollout_info"), "{metrics}");
}
