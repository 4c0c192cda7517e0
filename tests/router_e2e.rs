//! Traffic routers end to end: `serin sim` with an HTTPRoute CRD applied by kubectl, the real
//! controller, and a real Prometheus measuring what the route sends where.

mod common;

use common::{Cluster, ControllerProc, Prometheus, WEB_SERVICES, eventually, web_rollout};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use serin::crd::rollout::{Phase, Rollout, RolloutStatus};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A CRD of the simulated cluster's (`src/sim/crds/`).
fn sim_crd(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/sim/crds")
        .join(file)
}

const ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, annotations: {sim.serin.dev/rps: "200"}}
spec:
  parentRefs: [{name: gateway}]
  hostnames: [web.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-team, value: web}]}}]
    backendRefs:
    - {name: web-stable, port: 80, weight: 100}
    - {name: web-canary, port: 80, weight: 0}
"#;

fn rollout(image: &str) -> String {
    let canary = "      abortScaleDownDelaySeconds: 2
      scaleDownDelaySeconds: 2
      trafficRouting:
        gatewayAPI: {httpRoute: web}
      steps: [{setWeight: 5}, {pause: {}}, {setWeight: 50}]";
    web_rollout(4, image, &[], "", canary) + WEB_SERVICES
}

async fn route(client: &kube::Client) -> Value {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    let api: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &ar);
    serde_json::to_value(api.get("web").await.expect("route")).expect("json")
}

fn weights(route: &Value) -> (i64, i64) {
    let refs = &route["spec"]["rules"][0]["backendRefs"];
    (
        refs[0]["weight"].as_i64().unwrap_or(-1),
        refs[1]["weight"].as_i64().unwrap_or(-1),
    )
}

/// A sync as ArgoCD makes it with the documented settings (`ignoreDifferences` on backendRef
/// weights, `RespectIgnoreDifferences=true`, server-side apply): the Git manifest, with the ignored
/// fields taken from the live object, applied by ArgoCD's field manager with force.
async fn argocd_sync(sim: &Cluster, client: &kube::Client, git: &str) {
    let mut desired: Value = serde_saphyr::from_str(git).expect("yaml");
    let live = route(client).await;
    let live_refs = live["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for rule in desired["spec"]["rules"].as_array_mut().into_iter().flatten() {
        for b in rule["backendRefs"].as_array_mut().into_iter().flatten() {
            if let Some(w) = live_refs
                .iter()
                .find(|l| l["name"] == b["name"])
                .map(|l| l["weight"].clone())
            {
                b["weight"] = w;
            }
        }
    }
    let out = sim.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=argocd-controller",
            "-f",
            "-",
        ],
        &desired.to_string(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn status(api: &Api<Rollout>) -> RolloutStatus {
    api.get("web").await.ok().and_then(|r| r.status).unwrap_or_default()
}

async fn healthy(rollouts: &Api<Rollout>) {
    eventually("healthy", WAIT, || async {
        (status(rollouts).await.phase == Some(Phase::Healthy)).then_some(())
    })
    .await;
}

/// Releases version 2 and waits for the rollout to pause at its first pause step.
async fn release_to_first_pause(sim: &Cluster, rollouts: &Api<Rollout>) -> RolloutStatus {
    sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2"]);
    eventually("paused at 5%", WAIT, || async {
        let st = status(rollouts).await;
        (st.phase == Some(Phase::Paused) && st.current_step_index == Some(1)).then_some(st)
    })
    .await
}

/// Prometheus sees about 5% of all requests answered by the canary version.
async fn five_percent_measured(prom: &Prometheus, canary: &str, what: &str) {
    let client = prometheus_http_query::Client::try_from(prom.url().as_str()).expect("client");
    let share = eventually("about 5% of requests on the canary", WAIT, || {
        let (p, c) = (client.clone(), canary.to_string());
        async move { share_of_canary(&p, &c).await.filter(|s| (s - 0.05).abs() < 0.02) }
    })
    .await;
    eprintln!("{what}: {share:.4}");
}

async fn share_of_canary(prom: &prometheus_http_query::Client, canary_hash: &str) -> Option<f64> {
    let q = format!(
        "sum(rate(http_requests_total{{pod_template_hash=\"{canary_hash}\"}}[6s])) / sum(rate(http_requests_total[6s]))"
    );
    let r = prom.query(q).get().await.ok()?;
    r.data().as_vector()?.first().map(|s| s.sample().value())
}

#[tokio::test]
async fn five_percent_through_an_httproute_and_back_on_abort() {
    let sim = Cluster::start();
    sim.install_crds();
    sim.install_crd_file(&common::httproute_crd());
    let prom = Prometheus::start(&[sim.traffic_target()]);
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    // The route comes from "Git", applied by ArgoCD's field manager.
    let out = sim.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=argocd-controller", "-f", "-"],
        ROUTE,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _controller = ControllerProc::start(&sim, "controller.log");
    sim.apply_yaml(&rollout("example/web:1"));
    healthy(&rollouts).await;
    assert_eq!(weights(&route(&client).await), (100, 0));

    let st = release_to_first_pause(&sim, &rollouts).await;
    assert_eq!(st.canary_weight, Some(5));
    assert_eq!(weights(&route(&client).await), (95, 5));
    let canary = st.current_pod_hash.clone().unwrap_or_default();
    five_percent_measured(&prom, &canary, "canary share of requests at weight 5").await;

    // "ArgoCD" syncs the unchanged manifest again: Serin's weights and the user's fields both stay.
    argocd_sync(&sim, &client, ROUTE).await;
    let after = route(&client).await;
    assert_eq!(weights(&after), (95, 5));
    assert_eq!(after["spec"]["hostnames"][0], "web.example.com");
    assert_eq!(after["spec"]["rules"][0]["filters"][0]["type"], "RequestHeaderModifier");
    // A change in Git elsewhere in the route is applied and still leaves the weights alone.
    argocd_sync(&sim, &client, &ROUTE.replace("web.example.com", "www.example.com")).await;
    let after = route(&client).await;
    assert_eq!(
        (weights(&after), after["spec"]["hostnames"][0].as_str()),
        ((95, 5), Some("www.example.com"))
    );
    // And no write loop: with nothing changing, the controller leaves the route alone.
    let rv = after["metadata"]["resourceVersion"].clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(route(&client).await["metadata"]["resourceVersion"], rv);

    sim.kubectl_serin_ok(&["abort", "web"]);
    eventually("route back on stable", WAIT, || async {
        (weights(&route(&client).await) == (100, 0)).then_some(())
    })
    .await;
    // The status is written after the route moves: wait for it too.
    eventually("aborted", WAIT, || async {
        (status(&rollouts).await.phase == Some(Phase::Degraded)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_missing_route_is_a_condition_and_the_rollout_waits() {
    let sim = Cluster::start();
    sim.install_crds();
    sim.install_crd_file(&common::httproute_crd());
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let _controller = ControllerProc::start(&sim, "controller.log");
    sim.apply_yaml(&rollout("example/web:1"));
    let st = eventually("a TrafficRouting condition", WAIT, || async {
        let st = status(&rollouts).await;
        st.conditions
            .clone()?
            .into_iter()
            .find(|c| c.type_ == "TrafficRouting" && c.status == "False")
            .map(|c| (st, c))
    })
    .await;
    assert!(st.1.message.contains("HTTPRoute web not found"), "{}", st.1.message);
    let out = sim.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("TrafficRoutingError"));
    // Once the route exists, the rollout goes on.
    sim.apply_yaml(ROUTE);
    healthy(&rollouts).await;
}

#[tokio::test]
async fn the_shipped_gateway_api_example_runs() {
    let sim = Cluster::start();
    sim.install_crds();
    sim.install_crd_file(&common::httproute_crd());
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let _controller = ControllerProc::start(&sim, "controller.log");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/rollout-gateway-api.yaml");
    sim.kubectl_ok(&["apply", "--server-side", "-f", example.to_str().unwrap_or_default()]);
    healthy(&rollouts).await;
    sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2.0"]);
    eventually("5% on the route", WAIT, || async {
        (weights(&route(&client).await) == (95, 5)).then_some(())
    })
    .await;
}

/// The published Gateway API CRDs work too, when the shared test data is beside the project.
#[tokio::test]
async fn the_published_httproute_crd_works_with_the_router() {
    let published = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/crds/gateway.networking.k8s.io_httproutes.yaml");
    if !published.exists() {
        eprintln!("skipping: {} is absent", published.display());
        return;
    }
    let sim = Cluster::start();
    sim.install_crds();
    sim.install_crd_file(&published);
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let _controller = ControllerProc::start(&sim, "controller.log");
    sim.apply_yaml(ROUTE);
    sim.apply_yaml(&rollout("example/web:1"));
    healthy(&rollouts).await;
    sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2"]);
    eventually("5% on the published route", WAIT, || async {
        (weights(&route(&client).await) == (95, 5)).then_some(())
    })
    .await;
    let live = route(&client).await;
    assert_eq!(
        live["spec"]["rules"][0]["matches"][0]["path"]["value"], "/",
        "the published schema's fields stay"
    );
}

const INGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, annotations: {sim.serin.dev/rps: "200"}}
spec:
  ingressClassName: nginx
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web-stable, port: {number: 80}}}}
"#;

/// A cluster with the router's CRDs and objects (`setup`), a Prometheus on its traffic, the
/// controller, and the `web` Rollout routed by `routing`, healthy on its first version.
struct Routed {
    _controller: ControllerProc,
    prom: Prometheus,
    rollouts: Api<Rollout>,
    sim: Cluster,
}

async fn routed(crds: &[&str], setup: &str, routing: &str) -> Routed {
    let sim = Cluster::start();
    sim.install_crds();
    for f in crds {
        sim.install_crd_file(&sim_crd(f));
    }
    let prom = Prometheus::start(&[sim.traffic_target()]);
    let rollouts: Api<Rollout> = Api::default_namespaced(sim.client().await);
    sim.apply_yaml(setup);
    let controller = ControllerProc::start(&sim, "controller.log");
    sim.apply_yaml(&rollout("example/web:1").replace("gatewayAPI: {httpRoute: web}", routing));
    healthy(&rollouts).await;
    Routed {
        _controller: controller,
        prom,
        rollouts,
        sim,
    }
}

/// `kubectl get KIND NAME -o jsonpath=PATH`.
fn jsonpath(sim: &Cluster, kind: &str, name: &str, path: &str) -> String {
    sim.kubectl_ok(&["get", kind, name, "-o", &format!("jsonpath={path}")])
}

#[tokio::test]
async fn nginx_gets_a_canary_ingress_with_the_weight_and_loses_it_at_the_end() {
    let Routed {
        _controller,
        sim,
        prom,
        rollouts,
    } = routed(&[], INGRESS, "nginx: {stableIngress: web}").await;
    assert!(
        !sim.kubectl_ok(&["get", "ingress", "-o", "name"])
            .contains("web-web-canary"),
        "no canary Ingress without a canary"
    );

    let st = release_to_first_pause(&sim, &rollouts).await;
    let weight = jsonpath(
        &sim,
        "ingress",
        "web-web-canary",
        "{.metadata.annotations.nginx\\.ingress\\.kubernetes\\.io/canary-weight}",
    );
    assert_eq!(weight, "5");
    let backend = jsonpath(
        &sim,
        "ingress",
        "web-web-canary",
        "{.spec.rules[0].http.paths[0].backend.service.name}",
    );
    assert_eq!(backend, "web-canary");
    let user = jsonpath(
        &sim,
        "ingress",
        "web",
        "{.spec.rules[0].http.paths[0].backend.service.name}",
    );
    assert_eq!(user, "web-stable", "the user's Ingress is not touched");
    let canary = st.current_pod_hash.clone().unwrap_or_default();
    five_percent_measured(&prom, &canary, "canary share through NGINX at weight 5").await;

    sim.kubectl_serin_ok(&["promote", "web", "--full"]);
    eventually("promoted", WAIT, || async {
        let st = status(&rollouts).await;
        (st.phase == Some(Phase::Healthy) && st.stable_pod_hash == st.current_pod_hash).then_some(())
    })
    .await;
    eventually("canary Ingress gone", WAIT, || async {
        (!sim
            .kubectl_ok(&["get", "ingress", "-o", "name"])
            .contains("web-web-canary"))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_shipped_nginx_example_runs() {
    let sim = Cluster::start();
    sim.install_crds();
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let _controller = ControllerProc::start(&sim, "controller.log");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/rollout-nginx.yaml");
    sim.kubectl_ok(&["apply", "--server-side", "-f", example.to_str().unwrap_or_default()]);
    healthy(&rollouts).await;
    sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2.0"]);
    eventually("a canary Ingress at 5%", WAIT, || async {
        let w = sim.kubectl(&[
            "get",
            "ingress",
            "web-web-canary",
            "-o",
            "jsonpath={.metadata.annotations.nginx\\.ingress\\.kubernetes\\.io/canary-weight}",
        ]);
        (String::from_utf8_lossy(&w.stdout) == "5").then_some(())
    })
    .await;
}

#[tokio::test]
async fn smi_gets_a_traffic_split_with_the_weight() {
    let root = "apiVersion: v1\nkind: Service\nmetadata: {name: web, annotations: {sim.serin.dev/rps: \"200\"}}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n";
    let Routed {
        _controller,
        sim,
        prom,
        rollouts,
    } = routed(
        &["trafficsplits.split.smi-spec.io.yaml"],
        root,
        "smi: {rootService: web}",
    )
    .await;
    let st = release_to_first_pause(&sim, &rollouts).await;
    let weights = jsonpath(&sim, "trafficsplit", "web", "{.spec.backends[*].weight}");
    assert_eq!(weights, "95 5");
    let canary = st.current_pod_hash.clone().unwrap_or_default();
    five_percent_measured(&prom, &canary, "canary share through SMI at weight 5").await;
}

const VIRTUAL_SERVICE: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web, annotations: {sim.serin.dev/rps: "200"}}
spec:
  hosts: [web]
  http:
  - name: primary
    route:
    - {destination: {host: web-stable}, weight: 100}
    - {destination: {host: web-canary}, weight: 0}
"#;

#[tokio::test]
async fn istio_virtual_service_weights_follow_the_steps() {
    let Routed {
        _controller,
        sim,
        prom,
        rollouts,
    } = routed(
        &["virtualservices.networking.istio.io.yaml"],
        VIRTUAL_SERVICE,
        "istio: {virtualService: {name: web, routes: [primary]}}",
    )
    .await;
    let st = release_to_first_pause(&sim, &rollouts).await;
    let weights = jsonpath(&sim, "virtualservice", "web", "{.spec.http[0].route[*].weight}");
    assert_eq!(weights, "95 5");
    let canary = st.current_pod_hash.clone().unwrap_or_default();
    five_percent_measured(&prom, &canary, "canary share through Istio at weight 5").await;
    sim.kubectl_serin_ok(&["abort", "web"]);
    eventually("back on stable", WAIT, || async {
        let w = jsonpath(&sim, "virtualservice", "web", "{.spec.http[0].route[*].weight}");
        (w == "100 0").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_header_route_is_added_to_the_httproute_and_removed_on_promotion() {
    let sim = Cluster::start();
    sim.install_crds();
    sim.install_crd_file(&common::httproute_crd());
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    sim.apply_yaml(ROUTE);
    let _controller = ControllerProc::start(&sim, "controller.log");
    let steps = "[{setWeight: 5}, {setHeaderRoute: {name: beta, match: [{headerName: x-beta, headerValue: {exact: \"1\"}}]}}, {pause: {}}]";
    sim.apply_yaml(&rollout("example/web:1").replace("[{setWeight: 5}, {pause: {}}, {setWeight: 50}]", steps));
    healthy(&rollouts).await;
    sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2"]);
    let live = eventually("a header rule", WAIT, || async {
        let r = route(&client).await;
        (r["spec"]["rules"].as_array().map_or(0, |a| a.len()) == 2).then_some(r)
    })
    .await;
    let rule = &live["spec"]["rules"][1];
    assert_eq!(rule["name"], "serin-beta");
    assert_eq!(rule["matches"][0]["headers"][0]["name"], "x-beta");
    assert_eq!(
        rule["matches"][0]["path"]["value"], "/",
        "it keeps the path of the user's rule"
    );
    assert_eq!(rule["backendRefs"][0]["name"], "web-canary");
    sim.kubectl_serin_ok(&["promote", "web", "--full"]);
    eventually("header rule removed", WAIT, || async {
        let r = route(&client).await;
        (r["spec"]["rules"].as_array().map_or(0, |a| a.len()) == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn istio_subsets_follow_the_versions_hashes() {
    let sim = Cluster::start();
    sim.install_crds();
    for f in [
        "virtualservices.networking.istio.io.yaml",
        "destinationrules.networking.istio.io.yaml",
    ] {
        sim.install_crd_file(&sim_crd(f));
    }
    let prom = Prometheus::start(&[sim.traffic_target()]);
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    sim.apply_yaml(
        r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web, annotations: {sim.serin.dev/rps: "200"}}
spec:
  hosts: [web]
  http:
  - name: primary
    route:
    - {destination: {host: web, subset: stable}, weight: 100}
    - {destination: {host: web, subset: canary}, weight: 0}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  subsets:
  - {name: stable, labels: {app: web}}
  - {name: canary, labels: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
"#,
    );
    let _controller = ControllerProc::start(&sim, "controller.log");
    let routing = "istio: {virtualService: {name: web, routes: [primary]}, destinationRule: {name: web, stableSubsetName: stable, canarySubsetName: canary}}";
    sim.apply_yaml(&rollout("example/web:1").replace("gatewayAPI: {httpRoute: web}", routing));
    // Here users reach the app through the `web` host alone: the two version Services carry none.
    sim.kubectl_ok(&[
        "annotate",
        "service",
        "web-stable",
        "web-canary",
        "sim.serin.dev/rps=0",
        "--overwrite",
    ]);
    let v1 = eventually("healthy", WAIT, || async {
        let st = status(&rollouts).await;
        (st.phase == Some(Phase::Healthy)).then_some(st.stable_pod_hash?)
    })
    .await;
    let st = release_to_first_pause(&sim, &rollouts).await;
    let v2 = st.current_pod_hash.clone().unwrap_or_default();
    let labels = jsonpath(
        &sim,
        "destinationrule",
        "web",
        "{.spec.subsets[*].labels.serin\\.dev/pod-template-hash}",
    );
    assert_eq!(labels, format!("{v1} {v2}"));
    let weights = jsonpath(&sim, "virtualservice", "web", "{.spec.http[0].route[*].weight}");
    assert_eq!(weights, "95 5");
    five_percent_measured(&prom, &v2, "canary share through Istio subsets at weight 5").await;
}

/// Blue-green through the HTTPRoute: the route sends 0% to the preview Service until the switch,
/// then 100%; `kubectl serin abort` in the scale-down window puts it back in one write.
#[tokio::test]
async fn blue_green_switches_the_route_and_an_abort_switches_it_back() {
    let sim = Cluster::start();
    sim.install_crds();
    sim.install_crd_file(&common::httproute_crd());
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    sim.apply_yaml(
        &ROUTE
            .replace("web-stable", "web-active")
            .replace("web-canary", "web-preview"),
    );
    let controller = ControllerProc::start(&sim, "controller.log");
    let bg = |image: &str| {
        web_rollout(4, image, &[], "", "")
            .replace(
                "    canary:\n      stableService: web-stable\n      canaryService: web-canary\n",
                "    blueGreen:\n      activeService: web-active\n      previewService: web-preview\n      autoPromotionEnabled: false\n      scaleDownDelaySeconds: 60\n      trafficRouting:\n        gatewayAPI: {httpRoute: web}\n",
            )
            + &WEB_SERVICES.replace("web-stable", "web-active").replace("web-canary", "web-preview")
    };
    sim.apply_yaml(&bg("example/web:1"));
    healthy(&rollouts).await;
    assert_eq!(weights(&route(&client).await), (100, 0));
    sim.apply_yaml(&bg("example/web:2"));
    eventually("version 2 waiting in preview", WAIT, || async {
        (status(&rollouts).await.phase == Some(Phase::Paused)).then_some(())
    })
    .await;
    assert_eq!(weights(&route(&client).await), (100, 0), "no user traffic in preview");
    // Every weight the route shows, as a watch sees it: without a post-promotion analysis the
    // switch and the promotion are one reconcile, and 100% lasts only until the active Service
    // selects the new version.
    let seen = common::watch_route_weights(&client, "web");
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim.kubectl_serin_ok(&["promote", "web"]);
    let switched = tokio::time::timeout(WAIT, async {
        loop {
            let now: Vec<(i64, i64)> = seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|s| s.0)
                .collect();
            if now == [(100, 0), (0, 100), (100, 0)] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let shown = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let st = status(&rollouts).await;
    assert!(
        switched.is_ok(),
        "the route showed {shown:?}; {st:?}\n{}",
        controller.log()
    );
    // Promoted; the old version stays up for its scale-down delay, so the rollout is not yet Healthy.
    eventually("version 2 promoted", WAIT, || async {
        let st = status(&rollouts).await;
        (st.stable_pod_hash == st.current_pod_hash && st.previous_stable_hash.is_some()).then_some(())
    })
    .await;
    eventually("the route back on the active Service, now version 2", WAIT, || async {
        (weights(&route(&client).await) == (100, 0)).then_some(())
    })
    .await;
    sim.kubectl_serin_ok(&["abort", "web"]);
    let st = eventually("aborted back to version 1", WAIT, || async {
        let st = status(&rollouts).await;
        (st.abort == Some(true)).then_some(st)
    })
    .await;
    assert_eq!(st.phase, Some(Phase::Degraded));
    let active = sim.kubectl_ok(&[
        "get",
        "service",
        "web-active",
        "-o",
        "jsonpath={.spec.selector.serin\\.dev/pod-template-hash}",
    ]);
    assert_eq!(Some(active), st.stable_pod_hash, "the active Service back on version 1");
}
