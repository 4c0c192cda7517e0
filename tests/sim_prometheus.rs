//! A real Prometheus scrapes the traffic simulator: error ratios and traffic shares per version
//! come out as configured.

mod common;

use common::{Cluster, Prometheus, eventually};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// A ReplicaSet as Serin makes them: pods labelled with `serin.dev/pod-template-hash`.
fn replicaset(hash: &str, replicas: u32, error_rate: &str, latency_ms: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("web-{hash}"), "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "serin.dev/pod-template-hash": hash}},
            "template": {
                "metadata": {"labels": {"app": "web", "serin.dev/pod-template-hash": hash}},
                "spec": {"containers": [{"name": "web", "image": format!("example/web:{hash}"), "env": [
                    {"name": "SERIN_SIM_ERROR_RATE", "value": error_rate},
                    {"name": "SERIN_SIM_LATENCY_MS", "value": latency_ms},
                    {"name": "SERIN_SIM_READY_SECONDS", "value": "0.1"}
                ]}]}
            }
        }
    })
}

fn service(name: &str, selector: Value, rps: Option<&str>) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                       "spec": {"selector": selector, "ports": [{"port": 80}]}});
    if let Some(rps) = rps {
        s["metadata"]["annotations"] = json!({"sim.serin.dev/rps": rps});
    }
    s
}

async fn apply(client: &kube::Client, obj: &Value) {
    let gvk = GroupVersionKind::try_from(&kube::core::TypeMeta {
        api_version: obj["apiVersion"].as_str().unwrap_or_default().to_string(),
        kind: obj["kind"].as_str().unwrap_or_default().to_string(),
    })
    .expect("gvk");
    let plural = match gvk.kind.as_str() {
        "CustomResourceDefinition" => "customresourcedefinitions".to_string(),
        "HTTPRoute" => "httproutes".to_string(),
        k => format!("{}s", k.to_lowercase()),
    };
    let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(obj))
        .await
        .expect("apply");
}

/// `by` label value → sample value, from an instant query.
async fn query(prom: &prometheus_http_query::Client, promql: &str, by: &str) -> HashMap<String, f64> {
    let Ok(result) = prom.query(promql).get().await else {
        return HashMap::new();
    };
    result
        .data()
        .as_vector()
        .map(|v| {
            v.iter()
                .map(|s| (s.metric().get(by).cloned().unwrap_or_default(), s.sample().value()))
                .collect()
        })
        .unwrap_or_default()
}

fn close(got: Option<&f64>, want: f64, tolerance: f64) -> bool {
    got.is_some_and(|g| (g - want).abs() <= tolerance)
}

#[tokio::test]
async fn prometheus_measures_configured_error_rates_per_version() {
    let sim = Cluster::sim();
    let prom = Prometheus::start(&[sim.traffic_target()]);
    let client = sim.client().await;
    apply(&client, &replicaset("stable1", 3, "0.02", "20")).await;
    apply(&client, &replicaset("canary1", 1, "0.25", "300")).await;
    apply(&client, &service("web", json!({"app": "web"}), Some("200"))).await;

    let prom_client = prometheus_http_query::Client::try_from(prom.url().as_str()).expect("prometheus client");
    let ratio = "sum by (pod_template_hash) (rate(http_requests_total{code=~\"5..\"}[10s])) / sum by (pod_template_hash) (rate(http_requests_total[10s]))";
    let p99 =
        "histogram_quantile(0.99, sum by (pod_template_hash, le) (rate(http_request_duration_seconds_bucket[10s])))";
    let rate = "sum by (pod_template_hash) (rate(http_requests_total[10s]))";
    let (ratios, latencies, rates) = eventually("error ratios measured by prometheus", Duration::from_secs(60), || {
        let prom_client = prom_client.clone();
        async move {
            let ratios = query(&prom_client, ratio, "pod_template_hash").await;
            let latencies = query(&prom_client, p99, "pod_template_hash").await;
            let rates = query(&prom_client, rate, "pod_template_hash").await;
            let ok = close(ratios.get("stable1"), 0.02, 0.01)
                && close(ratios.get("canary1"), 0.25, 0.03)
                // 200 rps spread over 4 ready pods: 3 of them stable.
                && close(rates.get("stable1"), 150.0, 15.0)
                && close(rates.get("canary1"), 50.0, 10.0);
            ok.then_some((ratios, latencies, rates))
        }
    })
    .await;
    eprintln!("error ratios {ratios:?}, p99 latency {latencies:?}, rates {rates:?}");
    assert!(
        latencies.get("canary1").is_some_and(|l| *l > 0.25 && *l <= 0.5),
        "{latencies:?}"
    );
    assert!(
        latencies.get("stable1").is_some_and(|l| *l > 0.01 && *l <= 0.025),
        "{latencies:?}"
    );
}

/// An HTTPRoute CRD of the project's own making: the fields the traffic simulator reads.
fn httproute_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        // A protected group (*.k8s.io) needs the approval annotation, on a real API server as here.
        "metadata": {"name": "httproutes.gateway.networking.k8s.io",
                     "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/4530"}},
        "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
                 "names": {"plural": "httproutes", "singular": "httproute", "kind": "HTTPRoute"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}
    })
}

#[tokio::test]
async fn route_weights_split_traffic_between_services() {
    let sim = Cluster::sim();
    let prom = Prometheus::start(&[sim.traffic_target()]);
    let client = sim.client().await;
    apply(&client, &httproute_crd()).await;
    apply(&client, &replicaset("stable2", 2, "0", "10")).await;
    apply(&client, &replicaset("canary2", 2, "0.5", "10")).await;
    apply(
        &client,
        &service(
            "web-stable",
            json!({"app": "web", "serin.dev/pod-template-hash": "stable2"}),
            None,
        ),
    )
    .await;
    apply(
        &client,
        &service(
            "web-canary",
            json!({"app": "web", "serin.dev/pod-template-hash": "canary2"}),
            None,
        ),
    )
    .await;
    let route = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"sim.serin.dev/rps": "100"}},
        "spec": {"rules": [{"backendRefs": [{"name": "web-stable", "port": 80, "weight": 80}, {"name": "web-canary", "port": 80, "weight": 20}]}]}
    });
    apply(&client, &route).await;

    let prom_client = prometheus_http_query::Client::try_from(prom.url().as_str()).expect("prometheus client");
    let rate = "sum by (service) (rate(http_requests_total[10s]))";
    let rates = eventually("traffic split by the route's weights", Duration::from_secs(60), || {
        let prom_client = prom_client.clone();
        async move {
            let rates = query(&prom_client, rate, "service").await;
            (close(rates.get("web-stable"), 80.0, 8.0) && close(rates.get("web-canary"), 20.0, 4.0)).then_some(rates)
        }
    })
    .await;
    eprintln!("per-service rates {rates:?}");

    // Routed Services get no direct traffic of their own, and a new weight moves the traffic.
    let mut shifted = route.clone();
    shifted["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(50);
    shifted["spec"]["rules"][0]["backendRefs"][1]["weight"] = json!(50);
    apply(&client, &shifted).await;
    let rate_now = "sum by (service) (rate(http_requests_total[4s]))";
    eventually("traffic follows the new weights", Duration::from_secs(60), || {
        let prom_client = prom_client.clone();
        async move {
            let rates = query(&prom_client, rate_now, "service").await;
            (close(rates.get("web-stable"), 50.0, 8.0) && close(rates.get("web-canary"), 50.0, 8.0)).then_some(())
        }
    })
    .await;
}
