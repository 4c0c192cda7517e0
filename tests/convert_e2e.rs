//! `serin convert` through the real binary, on Argo Rollouts manifests written the way their
//! users write them (`tests/data/argo/`): the output applies to the simulated cluster and the
//! Rollout behaves: a release walks its steps through the HTTPRoute, its analysis asks a real
//! Prometheus, and it is promoted.

mod common;

use common::{Cluster, ControllerProc, Prometheus, eventually};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use serin::crd::rollout::{Phase, Rollout};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

fn argo_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/argo/rollouts.yaml")
}

fn convert(args: &[&str], input: Option<&str>) -> (i32, String, String) {
    common::serin_cmd("convert", args, input)
}

fn weights(route: &serde_json::Value) -> (i64, i64) {
    let refs = &route["spec"]["rules"][0]["backendRefs"];
    (
        refs[0]["weight"].as_i64().unwrap_or(-1),
        refs[1]["weight"].as_i64().unwrap_or(-1),
    )
}

#[test]
fn convert_says_what_it_left_out_and_fails_only_when_strict() {
    let file = argo_file();
    let file = file.to_str().expect("a path");
    let (code, out, err) = convert(&[file], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("apiVersion: serin.dev/v1alpha1"), "{out}");
    assert!(!out.contains("argoproj.io/v1alpha1"), "{out}");
    assert!(
        err.contains("document 1 (Rollout shop): .spec.strategy.canary.steps[2]"),
        "{err}"
    );
    assert!(
        err.contains("document 2 (AnalysisTemplate success-rate): .spec.metrics[1]"),
        "{err}"
    );
    let (code, _, err) = convert(&["--strict", file], None);
    assert_ne!(code, 0, "--strict fails on what was left out");
    assert!(err.contains("could not be carried over"), "{err}");
    // stdin, as in `kubectl get rollout -o yaml | serin convert`.
    let text = std::fs::read_to_string(argo_file()).expect("the file");
    let (code, from_stdin, _) = convert(&[], Some(&text));
    assert_eq!(code, 0);
    assert_eq!(from_stdin, out);
    let (code, _, err) = convert(&[], Some("a: [unclosed"));
    assert_ne!(code, 0);
    assert!(err.contains("stdin is not YAML"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converted_manifests_apply_and_the_rollout_behaves() {
    let sim = Cluster::start();
    sim.install_crds();
    sim.install_crd_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/sim/crds/httproutes.gateway.networking.k8s.io.yaml"),
    );
    let prometheus = Prometheus::start(&[sim.traffic_target()]);
    let (code, converted, err) = convert(&[argo_file().to_str().expect("a path")], None);
    assert_eq!(code, 0, "{err}");
    let converted = converted
        .replace("http://prometheus.example:9090", &prometheus.url())
        .replace(
            "name: shop\n  namespace: default\nspec:\n  parentRefs",
            "name: shop\n  namespace: default\n  annotations: {sim.serin.dev/rps: \"200\"}\nspec:\n  parentRefs",
        )
        // Argo's file names the default namespace; this test has one of its own.
        .replace("namespace: default", &format!("namespace: {}", sim.namespace));
    sim.apply_yaml(&converted);
    let mut controller = ControllerProc::start(&sim, "convert-controller.log");
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let status = || async { common::rollout_status(&rollouts, "shop").await };
    let v1 = eventually("version 1 healthy", WAIT, || async {
        let st = status().await;
        (st.phase == Some(Phase::Healthy)).then_some(st.stable_pod_hash?)
    })
    .await;

    sim.kubectl_serin_ok(&["set", "image", "shop", "shop=example/shop:2"]);
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    let routes: Api<DynamicObject> = Api::default_namespaced_with(client, &ar);
    eventually("the HTTPRoute at 25%", WAIT, || async {
        let route = serde_json::to_value(routes.get("shop").await.ok()?).ok()?;
        (weights(&route) == (75, 25)).then_some(())
    })
    .await;
    let st = eventually("version 2 promoted", WAIT, || async {
        let st = status().await;
        (st.phase == Some(Phase::Healthy) && st.stable_pod_hash.as_deref() != Some(&v1)).then_some(st)
    })
    .await;
    let events = sim.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=shop"]);
    assert!(
        events.contains("analysis passed"),
        "the converted analysis ran: {events}\n{st:?}"
    );
    controller.terminate();
}
