//! Argo Rollouts' end-to-end scenarios that go through a traffic router (`istio_test.go`,
//! `header_route_test.go`, `mirror_route_test.go`, `smi_ingress_test.go` in
//! argoproj/argo-rollouts), on Serin and the real control plane. As in Argo's suite only the
//! routers' kinds are installed, no mesh: what is checked is what Serin writes in the user's
//! VirtualServices, DestinationRules, TrafficSplits and Ingresses, and the Pods and Services.

mod common;

use common::argo::{Scenario, alb_to_smi, data, weight_of, weights, with_steps};
use serde_json::Value;
use serin::crd::rollout::Phase;

const VS: &str = "virtualservice";
const DR: &str = "destinationrule";

/// A scenario with the routers' kinds installed.
async fn routed(name: &str) -> Scenario {
    let s = Scenario::start(name).await;
    s.install_router_crds();
    s
}

/// The weights of `spec.<section>[index]`.
fn section_weights(vs: &Value, section: &str, index: usize) -> Vec<i64> {
    weights(&vs["spec"][section][index])
}

/// Waits until the VirtualService's route `section[index]` has `want` as its weights.
async fn expect_weights(s: &Scenario, vs: &str, section: &str, index: usize, want: &[i64]) {
    s.expect_object(VS, vs, &format!("{section}[{index}] weights {want:?}"), |o| {
        section_weights(o, section, index) == want
    })
    .await;
}

/// istio_test.go TestIstioHostSplit, for one fixture: host-split weights in the http route (and
/// the TLS route when there is one), the Services on the versions.
async fn host_split(fixture: &str, tls: bool) {
    let mut s = routed("istio-host-split").await;
    let vs = "istio-host-split-vsvc";
    let (canary, stable) = ("istio-host-split-canary", "istio-host-split-stable");
    s.healthy(&data(fixture)).await;
    expect_weights(&s, vs, "http", 0, &[100, 0]).await;
    if tls {
        expect_weights(&s, vs, "tls", 0, &[100, 0]).await;
    }
    s.expect_selects(canary, 1).await;
    s.expect_selects(stable, 1).await;

    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    expect_weights(&s, vs, "http", 0, &[90, 10]).await;
    if tls {
        expect_weights(&s, vs, "tls", 0, &[90, 10]).await;
    }
    s.expect_selects(canary, 2).await;
    s.expect_selects(stable, 1).await;

    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    expect_weights(&s, vs, "http", 0, &[100, 0]).await;
    if tls {
        expect_weights(&s, vs, "tls", 0, &[100, 0]).await;
    }
    s.expect_selects(canary, 2).await;
    s.expect_selects(stable, 2).await;
    // The old version stays up for the scale-down delay.
    s.expect_pods(&[(1, 1)]).await;
}

#[tokio::test]
async fn istio_host_split() {
    host_split("fixtures/istio/istio-host-split.yaml", false).await;
}

#[tokio::test]
async fn istio_host_split_with_tls() {
    host_split("fixtures/istio/istio-host-http-tls-split.yaml", true).await;
}

/// istio_test.go TestIstioHostSplitOnlyTls: a VirtualService with TLS routes only.
#[tokio::test]
async fn istio_host_split_only_tls() {
    let mut s = routed("istio-host-split-tls").await;
    let vs = "istio-host-split-tls-vsvc";
    let (canary, stable) = ("istio-host-split-tls-canary", "istio-host-split-tls-stable");
    s.healthy(&data("fixtures/istio/istio-host-only-tls-split.yaml")).await;
    expect_weights(&s, vs, "tls", 0, &[100, 0]).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    expect_weights(&s, vs, "tls", 0, &[90, 10]).await;
    s.expect_selects(canary, 2).await;
    s.expect_selects(stable, 1).await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    expect_weights(&s, vs, "tls", 0, &[100, 0]).await;
    s.expect_selects(canary, 2).await;
    s.expect_selects(stable, 2).await;
    s.expect_pods(&[(1, 1)]).await;
}

/// The hash each DestinationRule subset selects, in order.
fn subset_hashes(dr: &Value) -> Vec<Option<String>> {
    dr["spec"]["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["labels"]["serin.dev/pod-template-hash"].as_str().map(String::from))
        .collect()
}

/// Waits until the DestinationRule's subsets select revisions `revs` (stable, canary).
async fn expect_subsets(s: &Scenario, dr: &str, revs: [usize; 2]) {
    let want = revs.map(|r| Some(s.revision(r).to_string())).to_vec();
    s.expect_object(DR, dr, &format!("subsets on revisions {revs:?}"), |o| {
        subset_hashes(o) == want
    })
    .await;
}

/// The first three phases of TestIstioSubsetSplit and TestIstioSubsetSplitSingleRoute.
async fn subset_split(name: &str) -> Scenario {
    let mut s = routed(name).await;
    let (vs, dr) = (&format!("{name}-vsvc"), &format!("{name}-destrule"));
    s.healthy(&data(&format!("fixtures/istio/{name}.yaml"))).await;
    expect_weights(&s, vs, "http", 0, &[100, 0]).await;
    expect_subsets(&s, dr, [1, 1]).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    expect_weights(&s, vs, "http", 0, &[90, 10]).await;
    expect_subsets(&s, dr, [1, 2]).await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    expect_weights(&s, vs, "http", 0, &[100, 0]).await;
    expect_subsets(&s, dr, [2, 2]).await;
    s.expect_pods(&[(1, 1)]).await;
    s
}

/// istio_test.go TestIstioSubsetSplit: subsets follow the versions; once the Rollout no longer
/// routes, the DestinationRule is given back without Serin's labels and the old version goes.
#[tokio::test]
async fn istio_subset_split() {
    let s = subset_split("istio-subset-split").await;
    s.merge_patch("spec: {strategy: {canary: {trafficRouting: null}}}");
    let dr = s
        .expect_object(DR, "istio-subset-split-destrule", "no hash labels", |o| {
            subset_hashes(o) == [None, None]
        })
        .await;
    let annotations = dr["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
    assert!(
        !annotations.keys().any(|k| k.starts_with("serin.dev/")),
        "no annotation of Serin's is left: {annotations:?}"
    );
    s.expect_pods(&[(1, 0)]).await;
}

/// istio_test.go TestIstioSubsetSplitSingleRoute: one unnamed http route, no `routes` list.
#[tokio::test]
async fn istio_subset_split_single_route() {
    subset_split("istio-subset-split-single-route").await;
}

/// istio_test.go TestIstioAbortUpdate: aborting a fully promoted Rollout changes nothing. Argo
/// accepts the request and ignores it; `kubectl serin abort` says there is nothing to abort and
/// exits non-zero (docs/migration.md).
#[tokio::test]
async fn istio_abort_update() {
    let mut s = routed("istio-host-split").await;
    let refused = |s: &Scenario| {
        let out = s.cluster.kubectl_serin(&["abort", &s.name]);
        assert!(!out.status.success(), "abort of a steady Rollout is refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("nothing to abort"), "{err}");
    };
    s.healthy(&data("fixtures/istio/istio-host-split.yaml")).await;
    refused(&s);
    s.wait_phase(Phase::Healthy).await;
    s.expect_pods(&[(1, 1)]).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    refused(&s);
    s.wait_phase(Phase::Healthy).await;
    s.expect_pods(&[(2, 1)]).await;
}

/// istio_test.go TestIstioUpdateInMiddleZeroCanaryReplicas: weight 0 with a canary of one Pod,
/// updated again in the middle.
#[tokio::test]
async fn istio_update_in_middle_zero_canary_replicas() {
    let mut s = routed("istio-host-split").await;
    s.healthy(&data("fixtures/istio/istio-host-split-update-in-middle.yaml"))
        .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.expect_pods(&[(2, 1)]).await;
    s.update_spec().await;
    s.expect_pods(&[(3, 1)]).await;
    s.wait_phase(Phase::Paused).await;
    s.expect_pods(&[(3, 1)]).await;
}

/// istio_test.go TestIstioAbortUpdateDeleteAllCanaryPods: an abort keeps the canary's Pods for
/// the abort delay, with their scale-down deadline set.
#[tokio::test]
async fn istio_abort_update_delete_all_canary_pods() {
    let mut s = routed("istio-host-split").await;
    s.healthy(&data("fixtures/istio/istio-rollout-abort-delete-all-canary-pods.yaml"))
        .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.expect_pods(&[(2, 2)]).await;
    s.serin("promote", &[]);
    s.wait_step(5).await;
    s.expect_pods(&[(2, 4)]).await;
    s.serin("abort", &[]);
    s.wait_phase(Phase::Degraded).await;
    s.expect_pods(&[(1, 5), (2, 4)]).await;
    let canary = s.revision(2).to_string();
    s.wait_until("a scale-down deadline for the aborted canary", |st| {
        st.scale_down_deadlines.iter().any(|d| d.pod_hash == canary)
    })
    .await;
}

/// istio_test.go TestIstioPingPongUpdate: two Services take turns as stable, so no selector
/// changes at promotion; the weights go to whichever is stable.
#[tokio::test]
async fn istio_ping_pong_update() {
    let mut s = routed("istio-host-split").await;
    let vs = "istio-host-split-vsvc";
    s.healthy(&data("fixtures/istio/istio-host-split-ping-pong.yaml")).await;
    expect_weights(&s, vs, "http", 0, &[100, 0]).await;
    s.update_spec().await;
    s.wait_step(1).await;
    expect_weights(&s, vs, "http", 0, &[75, 25]).await;
    s.expect_selects("pong", 2).await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    expect_weights(&s, vs, "http", 0, &[0, 100]).await;
    s.expect_selects("pong", 2).await;
    s.update_spec().await;
    s.wait_step(1).await;
    expect_weights(&s, vs, "http", 0, &[25, 75]).await;
    s.expect_selects("ping", 3).await;
    s.expect_selects("pong", 2).await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    expect_weights(&s, vs, "http", 0, &[100, 0]).await;
}

/// istio_test.go TestIstioSubsetSplitInStableDownscaleAfterCanaryAbort: with dynamic stable
/// scaling, an aborted Rollout scaled to one replica keeps all traffic on stable.
#[tokio::test]
async fn istio_subset_split_in_stable_downscale_after_canary_abort() {
    let name = "istio-subset-split-in-stable-downscale-after-canary-abort";
    let mut s = routed(name).await;
    s.healthy(&data(&format!("fixtures/istio/{name}.yaml"))).await;
    // Argo ignores a full promotion of a steady Rollout; Serin says there is nothing to promote.
    let out = s.cluster.kubectl_serin(&["promote", "--full", name]);
    assert!(!out.status.success(), "nothing to promote");
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.serin("abort", &[]);
    s.wait_phase(Phase::Degraded).await;
    s.scale(1);
    s.wait_until("1 replica", |st| st.replicas == Some(1)).await;
    let vs = format!("{name}-vsvc");
    expect_weights(&s, &vs, "http", 0, &[100, 0]).await;
}

/// header_route_test.go TestIstioHostHeaderRoute: a header route goes first while a step sets
/// it, and goes when a step names it without a match.
#[tokio::test]
async fn istio_host_header_route() {
    let mut s = routed("rollouts-demo").await;
    let vs = "rollouts-demo-vsvc";
    s.healthy(&data("fixtures/header-routing/istio-hr-host.yaml")).await;
    s.expect_object(VS, vs, "primary first", |o| o["spec"]["http"][0]["name"] == "primary")
        .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.expect_object(VS, vs, "the header route first, then primary at 80/20", |o| {
        let http = &o["spec"]["http"];
        http[0]["name"] == "set-header-1"
            && weight_of(&http[0], "canary-service") == Some(100)
            && weight_of(&http[1], "stable-service") == Some(80)
            && weight_of(&http[1], "canary-service") == Some(20)
    })
    .await;
    s.serin("promote", &[]);
    s.wait_step(4).await;
    s.serin("promote", &[]);
    s.wait_step(7).await;
    s.expect_object(VS, vs, "primary first again at 60/40", |o| {
        let http = &o["spec"]["http"];
        http[0]["name"] == "primary"
            && weight_of(&http[0], "stable-service") == Some(60)
            && weight_of(&http[0], "canary-service") == Some(40)
    })
    .await;
    s.serin("promote", &["--full"]);
    s.wait_phase(Phase::Healthy).await;
    s.expect_object(VS, vs, "primary at 100/0", |o| {
        let http = &o["spec"]["http"];
        weight_of(&http[0], "stable-service") == Some(100) && weight_of(&http[0], "canary-service") == Some(0)
    })
    .await;
}

/// mirror_route_test.go TestIstioHostMirrorRoute: mirror routes in the managed routes' order,
/// each weighted as the primary route is, and removed one by one.
#[tokio::test]
async fn istio_host_mirror_route() {
    let mut s = routed("rollouts-demo").await;
    let vs = "rollouts-demo-vsvc";
    s.healthy(&data("fixtures/mirror-route/istio-mirror-host.yaml")).await;
    s.expect_object(VS, vs, "primary first", |o| o["spec"]["http"][0]["name"] == "primary")
        .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    let weighted = |r: &Value, stable: i64, canary: i64| {
        weight_of(r, "stable-service") == Some(stable) && weight_of(r, "canary-service") == Some(canary)
    };
    s.expect_object(VS, vs, "two mirror routes, then primary, all at 80/20", |o| {
        let http = &o["spec"]["http"];
        http[0]["name"] == "mirror-route-1"
            && http[0]["mirrorPercentage"]["value"].as_f64() == Some(100.0)
            && http[1]["name"] == "mirror-route-2"
            && http[1]["mirrorPercentage"]["value"].as_f64() == Some(80.0)
            && (0..3).all(|i| weighted(&http[i], 80, 20))
    })
    .await;
    s.serin("promote", &[]);
    s.wait_step(5).await;
    s.serin("promote", &[]);
    s.wait_step(8).await;
    s.expect_object(VS, vs, "mirror-route-2, then primary, at 60/40", |o| {
        let http = &o["spec"]["http"];
        http[0]["name"] == "mirror-route-2"
            && weighted(&http[0], 60, 40)
            && http[1]["name"] == "primary"
            && weighted(&http[1], 60, 40)
    })
    .await;
    s.serin("promote", &["--full"]);
    s.wait_phase(Phase::Healthy).await;
    s.expect_object(VS, vs, "primary alone at 100/0", |o| {
        let http = &o["spec"]["http"];
        http.as_array().map(Vec::len) == Some(1) && weighted(&http[0], 100, 0)
    })
    .await;
}

/// The TrafficSplit's backends as (service, weight).
fn backends(ts: &Value) -> Vec<(String, i64)> {
    ts["spec"]["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["service"].as_str().unwrap_or_default().to_string(),
                b["weight"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

/// smi_ingress_test.go TestSMIIngressCanaryStep: SMI and NGINX routers together, each with the
/// step's weight.
#[tokio::test]
async fn smi_ingress_canary_step() {
    let name = "rollout-smi-ingress-canary";
    let mut s = routed(name).await;
    let (canary, stable) = (format!("{name}-canary"), format!("{name}-stable"));
    let split = format!("{name}-trafficsplit");
    let weight_of_backend = |ts: &Value, svc: &str| backends(ts).into_iter().find(|(s, _)| s == svc).map(|(_, w)| w);
    s.healthy(&data("fixtures/smi_ingress/rollout-smi-ingress-canary.yaml"))
        .await;
    s.expect_object("trafficsplit", &split, "canary 0, stable 100", |o| {
        weight_of_backend(o, &canary) == Some(0) && weight_of_backend(o, &stable) == Some(100)
    })
    .await;
    let no_canary_annotation = |o: &Value| o["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"].is_null();
    assert!(no_canary_annotation(&s.object("ingress", &stable)));
    s.expect_selects(&canary, 1).await;
    s.expect_selects(&stable, 1).await;

    s.update_spec().await;
    s.wait_step(1).await;
    s.expect_object("trafficsplit", &split, "canary 5, stable 95", |o| {
        weight_of_backend(o, &canary) == Some(5) && weight_of_backend(o, &stable) == Some(95)
    })
    .await;
    let canary_ingress = serin_canary_ingress(&s, &stable);
    s.expect_object("ingress", &canary_ingress, "canary-weight 5", |o| {
        o["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"] == "true"
            && o["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] == "5"
    })
    .await;
    assert!(no_canary_annotation(&s.object("ingress", &stable)));
    s.expect_selects(&canary, 2).await;
    s.expect_selects(&stable, 1).await;

    s.wait_step(3).await;
    s.expect_object("trafficsplit", &split, "canary 50, stable 50", |o| {
        weight_of_backend(o, &canary) == Some(50) && weight_of_backend(o, &stable) == Some(50)
    })
    .await;
    s.expect_object("ingress", &canary_ingress, "canary-weight 50", |o| {
        o["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] == "50"
    })
    .await;
    assert!(no_canary_annotation(&s.object("ingress", &stable)));

    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    s.expect_object("trafficsplit", &split, "canary 0, stable 100", |o| {
        weight_of_backend(o, &canary) == Some(0) && weight_of_backend(o, &stable) == Some(100)
    })
    .await;
    s.expect_selects(&canary, 2).await;
    s.expect_selects(&stable, 2).await;
    s.expect_pods(&[(1, 1)]).await;
    // Serin removes its canary Ingress once no canary runs (Argo leaves it at weight 0).
    s.expect_object("ingress", &canary_ingress, "gone", Value::is_null)
        .await;
}

/// The canary Ingress Serin writes beside the user's (Argo names it `<rollout>-<ingress>-canary`).
fn serin_canary_ingress(s: &Scenario, stable_ingress: &str) -> String {
    format!("{}-{stable_ingress}-canary", s.name)
}

// canary_test.go's scenarios that need a traffic router. Argo runs them on NGINX (which Serin has)
// or on AWS ALB (which it has not: there the same Rollouts go through SMI with ALB's root Service).

/// canary_test.go TestCanarySetCanaryScale: the canary's size by replicas, by weight and matching
/// the traffic weight, while the stable stays full.
#[tokio::test]
async fn canary_set_canary_scale() {
    let mut s = routed("set-canary-scale").await;
    let manifest = data("fixtures/functional/nginx-template.yaml").replace("REPLACEME", "set-canary-scale");
    let manifest = with_steps(
        &manifest,
        &data("inline/canary/TestCanarySetCanaryScale/01-var-canarySteps.yaml"),
    );
    s.healthy(&manifest).await;
    s.update_spec().await;
    s.wait_step(0).await;
    s.expect_canary_stable_pods(0, 4).await;
    s.serin("promote", &[]);
    s.wait_step(2).await;
    s.expect_canary_stable_pods(1, 4).await;
    s.serin("promote", &[]);
    s.wait_step(4).await;
    s.expect_canary_stable_pods(1, 4).await;
    s.serin("promote", &[]);
    s.wait_step(6).await;
    s.expect_canary_stable_pods(3, 4).await;
    s.serin("promote", &[]);
    s.wait_step(8).await;
    s.expect_canary_stable_pods(2, 4).await;
    s.serin("promote", &[]);
    s.wait_phase(Phase::Healthy).await;
    s.expect_pods(&[(2, 4)]).await;
}

/// canary_test.go TestCanaryScaleDownDelay: the old stable waits out its delay; with
/// `scaleDownDelayRevisionLimit: 1` only the newest old version does; going back to a version
/// makes it stable without a deadline.
#[tokio::test]
async fn canary_scale_down_delay() {
    let mut s = routed("canary-scaledowndelay").await;
    let dir = "inline/canary/TestCanaryScaleDownDelay";
    s.healthy(&alb_to_smi(&data("fixtures/functional/canary-scaledowndelay.yaml")))
        .await;
    s.update_spec_with(&data(&format!("{dir}/01-UpdateSpec.yaml"))).await;
    s.wait_phase(Phase::Healthy).await;
    s.expect_scale_down(&[(1, 1, true)]).await;
    s.update_spec_with(&data(&format!("{dir}/02-UpdateSpec.yaml"))).await;
    s.wait_phase(Phase::Healthy).await;
    s.expect_scale_down(&[(1, 0, false), (2, 1, true)]).await;
    // Back to the second template: its ReplicaSet is the new stable (Argo's revision 4).
    s.update_spec_with(&data(&format!("{dir}/03-UpdateSpec.yaml"))).await;
    assert_eq!(s.revision(4), s.revision(2));
    s.wait_phase(Phase::Healthy).await;
    s.expect_scale_down(&[(1, 0, false), (4, 1, false), (3, 1, true)]).await;
}

/// canary_test.go TestCanaryScaleDownDelayWithProgressDeadline: an old version waiting out its
/// delay is not progress the deadline counts.
#[tokio::test]
async fn canary_scale_down_delay_with_progress_deadline() {
    let mut s = routed("canary-scaledowndelay").await;
    let dir = "inline/canary/TestCanaryScaleDownDelayWithProgressDeadline";
    s.healthy(&alb_to_smi(&data("fixtures/functional/canary-scaledowndelay.yaml")))
        .await;
    s.merge_patch(&data(&format!("{dir}/01-UpdateSpec.yaml")));
    s.update_spec_with(&data(&format!("{dir}/02-UpdateSpec.yaml"))).await;
    s.wait_phase(Phase::Healthy).await;
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let st = s.status().await;
    assert_eq!(st.phase, Some(Phase::Healthy), "{st:#?}");
}

/// canary_test.go TestCanaryScaleDownOnAbort: after an abort the canary Service selects stable,
/// and the canary's Pods go after `abortScaleDownDelaySeconds: 1`.
#[tokio::test]
async fn canary_scale_down_on_abort() {
    let mut s = routed("canary-scaledownd-on-abort").await;
    s.healthy(&alb_to_smi(&data("fixtures/functional/canary-scaledownonabort.yaml")))
        .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.serin("abort", &[]);
    s.wait_phase(Phase::Degraded).await;
    s.expect_selects("canary-scaledowndelay-canary", 1).await;
    s.expect_pods(&[(2, 0)]).await;
}

/// canary_test.go TestCanaryUnScaleDownOnAbort: `abortScaleDownDelaySeconds: 0` keeps the aborted
/// canary's Pods, with no deadline.
#[tokio::test]
async fn canary_unscale_down_on_abort() {
    let mut s = routed("canary-unscaledown-on-abort").await;
    let manifest = data("fixtures/functional/canary-unscaledownonabort.yaml");
    let name = common::argo::documents(&manifest)
        .into_iter()
        .find(|d| d["kind"] == "Rollout")
        .and_then(|d| d["metadata"]["name"].as_str().map(String::from))
        .expect("a Rollout");
    s.name = name;
    s.healthy(&alb_to_smi(&manifest)).await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.serin("abort", &[]);
    s.wait_phase(Phase::Degraded).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    s.expect_pods(&[(2, 1)]).await;
    s.expect_scale_down(&[(2, 1, false)]).await;
}

/// canary_test.go TestCanaryDynamicStableScale: the stable shrinks as the canary's weight grows,
/// and after an abort comes back whole before the canary goes. Argo holds Pods unready with a
/// readiness gate to look at the states in between; the test cluster marks gates ready at once,
/// so those are not looked at here (the plan's unit tests are).
#[tokio::test]
async fn canary_dynamic_stable_scale() {
    let mut s = routed("dynamic-stable-scale").await;
    s.healthy(&alb_to_smi(&data(
        "fixtures/functional/canary-dynamic-stable-scale.yaml",
    )))
    .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.expect_pods(&[(1, 3), (2, 1)]).await;
    s.serin("promote", &[]);
    s.wait_step(3).await;
    s.expect_pods(&[(1, 1), (2, 3)]).await;
    s.serin("abort", &[]);
    s.expect_pods(&[(2, 0), (1, 4)]).await;
    s.expect_selects("dynamic-stable-scale-canary", 1).await;
    s.expect_selects("dynamic-stable-scale-stable", 1).await;
}

/// canary_test.go TestCanaryDynamicStableScaleAbortScaleDownDelay: with dynamic stable scaling
/// the abort delay counts from when traffic is all back on stable, which needs the stable whole.
#[tokio::test]
async fn canary_dynamic_stable_scale_abort_scale_down_delay() {
    let mut s = routed("dynamic-stable-scale-abort").await;
    s.healthy(&alb_to_smi(&data(
        "fixtures/functional/canary-dynamic-stable-scale-abort-delay.yaml",
    )))
    .await;
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.serin("promote", &[]);
    s.wait_step(3).await;
    s.expect_pods(&[(1, 1), (2, 3)]).await;
    s.serin("abort", &[]);
    let canary = s.revision(2).to_string();
    let st = s
        .wait_until("traffic back on stable, the canary's deadline set", |st| {
            st.canary_weight == Some(0) && st.scale_down_deadlines.iter().any(|d| d.pod_hash == canary)
        })
        .await;
    assert_eq!(st.abort, Some(true));
    s.expect_pods(&[(1, 4)]).await;
    s.expect_pods(&[(2, 0)]).await;
    s.expect_selects("dynamic-stable-scale-abort-canary", 1).await;
    s.expect_selects("dynamic-stable-scale-abort-stable", 1).await;
}

/// canary_test.go TestCanaryDynamicStableScaleRollbackToStable: going back to the stable template
/// mid-release (Argo's `undo`) brings the stable back whole, then moves traffic, then drops the
/// canary.
#[tokio::test]
async fn canary_dynamic_stable_scale_rollback_to_stable() {
    let mut s = routed("dynamic-stable-scale").await;
    s.healthy(&alb_to_smi(&data(
        "fixtures/functional/canary-dynamic-stable-scale.yaml",
    )))
    .await;
    let first = s.object("rollout", "dynamic-stable-scale")["spec"]["template"].clone();
    s.update_spec().await;
    s.wait_phase(Phase::Paused).await;
    s.expect_pods(&[(1, 3), (2, 1)]).await;
    let undo = serde_json::json!({"spec": {"template": {"metadata": {"annotations": null}}}});
    assert!(
        first["metadata"]["annotations"].is_null(),
        "the first template has no annotations"
    );
    s.update_spec_with(&undo.to_string()).await;
    assert_eq!(s.revision(3), s.revision(1));
    s.expect_pods(&[(3, 4), (2, 0)]).await;
    s.expect_selects("dynamic-stable-scale-canary", 3).await;
    s.expect_selects("dynamic-stable-scale-stable", 3).await;
    s.wait_phase(Phase::Healthy).await;
}
