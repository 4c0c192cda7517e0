//! Argo Rollouts' end-to-end scenarios that go through a traffic router (`istio_test.go`,
//! `header_route_test.go`, `mirror_route_test.go`, `smi_ingress_test.go` in
//! argoproj/argo-rollouts), on Serin and the real control plane. As in Argo's suite only the
//! routers' kinds are installed, no mesh: what is checked is what Serin writes in the user's
//! VirtualServices, DestinationRules, TrafficSplits and Ingresses, and the Pods and Services.

mod common;

use common::argo::{Scenario, data, weight_of, weights};
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
