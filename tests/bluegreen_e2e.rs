//! Blue-green end to end: `serin sim` + a real Prometheus scraping its traffic + `serin
//! controller`, with the shipped example (`deploy/examples/rollout-blue-green.yaml`): the preview
//! Service, the pre-promotion analysis, the one-write switch of the active Service, and the switch
//! back when the post-promotion analysis fails, timed from the failed run to the selector change.

mod common;

use kube::runtime::WatchStreamExt;

use common::{Cluster, ControllerProc, Prometheus, eventually};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::watcher;
use serin::crd::analysis::{AnalysisPhase, AnalysisRun};
use serin::crd::rollout::{Phase, Rollout, RolloutStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);
const HASH: &str = "serin.dev/pod-template-hash";

fn examples(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples")
        .join(file);
    std::fs::read_to_string(path).expect("shipped example")
}

/// The example templates, pointed at this test's Prometheus and made quick.
fn templates(prometheus: &str) -> String {
    ["analysis-error-rate.yaml", "analysis-latency-p99.yaml"]
        .iter()
        .map(|f| {
            examples(f)
                .replace("http://prometheus.monitoring:9090", prometheus)
                .replace("interval: 10s", "interval: 2s")
                .replace("initialDelay: 10s", "initialDelay: 4s")
                .replace("[30s]", "[8s]")
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The example Rollout running `image` with `error_rate`; users reach it through web-active
/// (200 requests a second), testers through web-preview (50).
/// The first document of the example: the Rollout without its Services.
fn rollout_only(yaml: String) -> String {
    yaml.split("\n---\n").next().unwrap_or_default().to_string()
}

fn rollout(image: &str, error_rate: &str) -> String {
    rollout_with(image, error_rate, true)
}

fn rollout_with(image: &str, error_rate: &str, auto_promotion: bool) -> String {
    let container = format!(
        "        image: {image}
        env:
        - {{name: SERIN_SIM_READY_SECONDS, value: \"0.2\"}}
        - {{name: SERIN_SIM_ERROR_RATE, value: \"{error_rate}\"}}"
    );
    examples("rollout-blue-green.yaml")
        .replace("        image: example/web:1.0", &container)
        .replace("scaleDownDelaySeconds: 30", "scaleDownDelaySeconds: 10")
        .replace(
            "autoPromotionEnabled: true",
            &format!("autoPromotionEnabled: {auto_promotion}"),
        )
        .replace(
            "  name: web-active\n",
            "  name: web-active\n  annotations: {sim.serin.dev/rps: \"200\"}\n",
        )
        .replace(
            "  name: web-preview\n",
            "  name: web-preview\n  annotations: {sim.serin.dev/rps: \"50\"}\n",
        )
}

/// What a watch saw, and when.
type Seen<T> = Arc<Mutex<Vec<(Instant, T)>>>;

/// Every version web-active selected, in order, with when the change was seen.
fn watch_active(services: Api<Service>) -> Seen<String> {
    let seen: Seen<String> = Arc::default();
    let out = seen.clone();
    tokio::spawn(async move {
        let config = watcher::Config::default().fields("metadata.name=web-active");
        let mut stream = watcher(services, config).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            let (watcher::Event::Apply(svc) | watcher::Event::InitApply(svc)) = event.unwrap_or(watcher::Event::Init)
            else {
                continue;
            };
            let hash = svc
                .spec
                .and_then(|s| s.selector)
                .and_then(|s| s.get(HASH).cloned())
                .unwrap_or_default();
            let mut seen = out.lock().unwrap();
            if seen.last().is_none_or(|(_, h)| *h != hash) {
                seen.push((Instant::now(), hash));
            }
        }
    });
    seen
}

/// When each AnalysisRun of web was first seen Failed.
fn watch_failed_runs(runs: Api<AnalysisRun>) -> Seen<String> {
    let seen: Seen<String> = Arc::default();
    let out = seen.clone();
    tokio::spawn(async move {
        let config = watcher::Config::default().labels("serin.dev/rollout=web");
        let mut stream = watcher(runs, config).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            let (watcher::Event::Apply(run) | watcher::Event::InitApply(run)) = event.unwrap_or(watcher::Event::Init)
            else {
                continue;
            };
            let failed = run.status.as_ref().and_then(|s| s.phase) == Some(AnalysisPhase::Failed);
            let mut seen = out.lock().unwrap();
            if failed && !seen.iter().any(|(_, n)| *n == run.name_any()) {
                seen.push((Instant::now(), run.name_any()));
            }
        }
    });
    seen
}

async fn status(rollouts: &Api<Rollout>) -> RolloutStatus {
    common::rollout_status(rollouts, "web").await
}

fn selector_of(sim: &Cluster, service: &str) -> String {
    sim.kubectl_ok(&[
        "get",
        "service",
        service,
        "-o",
        "jsonpath={.spec.selector.serin\\.dev/pod-template-hash}",
    ])
}

/// The names of the Pods a label selector selects, sorted.
fn pods_labelled(sim: &Cluster, selector: &str) -> Vec<String> {
    let out = sim.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let mut names: Vec<String> = out.split_whitespace().map(String::from).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_then_one_write_switch_then_instant_switch_back() {
    let sim = Cluster::start();
    sim.install_crds();
    let prometheus = Prometheus::start(&[sim.traffic_target()]);
    sim.apply_yaml(&templates(&prometheus.url()));
    let mut controller = ControllerProc::start(&sim, "bluegreen-controller.log");
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let active = watch_active(Api::default_namespaced(client.clone()));
    let failed_runs = watch_failed_runs(Api::default_namespaced(client));

    // Version 1 is active at once.
    sim.apply_yaml(&rollout("example/web:1", "0.01"));
    let v1 = eventually("version 1 healthy", WAIT, || async {
        let st = status(&rollouts).await;
        (st.phase == Some(Phase::Healthy)).then_some(st.stable_pod_hash?)
    })
    .await;
    assert_eq!(selector_of(&sim, "web-active"), v1);

    // Version 2 in preview, waiting for a person: web-preview selects it while web-active stays
    // on version 1, and ArgoCD shows the Rollout suspended.
    // Later versions change the Rollout alone: a forced apply of the Services would take their
    // selectors back from Serin for a moment (see rollout_e2e's forced sync).
    sim.apply_yaml(&rollout_only(rollout_with("example/web:2", "0.01", false)));
    let st = eventually("version 2 ready in preview", WAIT, || async {
        let st = status(&rollouts).await;
        (st.phase == Some(Phase::Paused) && st.current_pod_hash != Some(v1.clone())).then_some(st)
    })
    .await;
    let v2 = st.current_pod_hash.clone().unwrap_or_default();
    assert!(
        st.message
            .as_deref()
            .unwrap_or_default()
            .contains("kubectl serin promote web"),
        "{st:?}"
    );
    assert_eq!(selector_of(&sim, "web-preview"), v2);
    assert_eq!(selector_of(&sim, "web-active"), v1, "no user traffic before the switch");
    let obj = serde_json::to_value(rollouts.get("web").await.expect("the Rollout")).expect("JSON");
    assert_eq!(common::argocd::health("Rollout", &obj).0, "Suspended");
    let shown = sim.kubectl_serin_ok(&["get", "rollout", "web"]);
    assert!(shown.contains("blue-green"), "{shown}");
    assert!(shown.contains(&format!("Active:      {v1}")), "{shown}");
    assert!(shown.contains(&format!("Preview:     {v2}")), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.trim_start().starts_with("pre-promotion") && l.contains("Successful")),
        "{shown}"
    );
    assert_eq!(
        pods_labelled(&sim, "role=preview"),
        pods_labelled(&sim, &format!("{HASH}={v2}"))
    );
    assert_eq!(
        pods_labelled(&sim, "role=active"),
        pods_labelled(&sim, &format!("{HASH}={v1}"))
    );
    sim.kubectl_serin_ok(&["promote", "web"]);
    // web-active switches, the post-promotion analysis passes.
    let promoted = format!("--for=jsonpath={{.status.stablePodHash}}={v2}");
    let out = sim.kubectl(&["wait", &promoted, "rollout/web", "--timeout=120s"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        controller.log()
    );
    sim.kubectl_ok(&["wait", "--for=condition=Healthy", "rollout/web", "--timeout=60s"]);
    assert_eq!(selector_of(&sim, "web-active"), v2);
    // The Pods' role labels moved with the switch, in place.
    eventually("version 2's Pods labelled active", WAIT, || async {
        (pods_labelled(&sim, "role=active") == pods_labelled(&sim, &format!("{HASH}={v2}"))).then_some(())
    })
    .await;
    assert!(pods_labelled(&sim, "role=preview").is_empty());
    let shown = sim.kubectl_serin_ok(&["get", "rollout", "web"]);
    assert!(shown.contains(&format!("Active:      {v2}")), "{shown}");

    // Version 3 passes its preview (its latency is fine) but fails under real traffic: 30% errors.
    sim.apply_yaml(&rollout_only(rollout("example/web:3", "0.3")));
    let st = eventually("version 3 switched back", WAIT, || async {
        let st = status(&rollouts).await;
        (st.abort == Some(true)).then_some(st)
    })
    .await;
    let v3 = st.current_pod_hash.clone().unwrap_or_default();
    assert_eq!(st.phase, Some(Phase::Degraded));
    assert_eq!(st.stable_pod_hash.as_deref(), Some(v2.as_str()));
    let message = st.message.clone().unwrap_or_default();
    assert!(message.contains("post-promotion analysis failed"), "{message}");
    assert!(message.contains("traffic is back on stable"), "{message}");
    eventually("web-active back on version 2", WAIT, || async {
        (selector_of(&sim, "web-active") == v2).then_some(())
    })
    .await;
    // As in Argo Rollouts, the preview Service stays on the version that failed.
    assert_eq!(selector_of(&sim, "web-preview"), v3);

    // web-active went 1 → 2 → 3 → 2 (after the user's own selector), each change one write with
    // no state between.
    let mut history: Vec<(Instant, String)> = active.lock().unwrap().clone();
    history.retain(|(_, h)| !h.is_empty());
    let versions: Vec<&str> = history.iter().map(|(_, h)| h.as_str()).collect();
    assert_eq!(versions, [v1.as_str(), v2.as_str(), v3.as_str(), v2.as_str()]);
    let failed: Vec<(Instant, String)> = failed_runs.lock().unwrap().clone();
    let post = failed
        .iter()
        .find(|(_, name)| name.contains(&format!("-{v3}-post-")))
        .unwrap_or_else(|| panic!("no failed post-promotion run among {failed:?}"));
    let switched_back = history.last().map(|(t, _)| *t).unwrap_or_else(Instant::now);
    let took = switched_back.saturating_duration_since(post.0);
    println!(
        "blue-green: web-active switched back {} ms after the post-promotion run failed",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(5), "switch back took {took:?}");

    let events = sim.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=web"]);
    for reason in ["Switched", "Aborted", "Promoted"] {
        assert!(events.contains(reason), "no {reason} Event:\n{events}");
    }
    controller.terminate();
}
