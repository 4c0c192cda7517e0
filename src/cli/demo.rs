//! `serin demo`: a short story on the embedded simulated cluster, told through the same
//! Kubernetes API that kubectl and the controller use.

use crate::sim::{self, SimArgs};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Keep the simulated cluster running after the story, for kubectl.
    #[arg(long)]
    pub hold: bool,
    /// Where to write the kubeconfig of the demo cluster.
    #[arg(long, default_value = "serin-demo.kubeconfig")]
    pub kubeconfig_out: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    #[error("talking to the simulated cluster: {0}")]
    Kube(#[from] kube::Error),
    #[error("loading the demo kubeconfig: {0}")]
    Config(String),
    #[error("the demo Deployment did not become ready within {0:?}")]
    NotReady(Duration),
}

const MANAGER: &str = "serin-demo";

fn app(image: &str, error_rate: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": image,
                                       "env": [{"name": "SERIN_SIM_ERROR_RATE", "value": error_rate}]}]}}}
    })
}

async fn wait_ready(deploys: &Api<Deployment>, image: &str) -> Result<(), DemoError> {
    let limit = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let d = deploys.get("web").await?;
        let status = d.status.unwrap_or_default();
        let updated = d
            .spec
            .and_then(|s| s.template.spec)
            .is_some_and(|s| s.containers.iter().any(|c| c.image.as_deref() == Some(image)));
        if updated
            && status.updated_replicas == Some(4)
            && status.available_replicas == Some(4)
            && status.replicas == Some(4)
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::NotReady(limit));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn show_pods(client: &Client) -> Result<(), DemoError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for p in pods.list(&ListParams::default().labels("app=web")).await? {
        let image = p
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        println!("    {:<24} {:<10} {}", p.name_any(), phase, image);
    }
    Ok(())
}

async fn show_traffic(traffic: std::net::SocketAddr) {
    let Ok(body) = fetch_metrics(traffic).await else { return };
    let mut per_pod: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for line in body.lines().filter(|l| l.starts_with("http_requests_total{")) {
        let pod = line
            .split("pod=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string();
        let count: u64 = line.rsplit(' ').next().and_then(|c| c.parse().ok()).unwrap_or(0);
        let e = per_pod.entry(pod).or_default();
        e.0 += count;
        if line.contains("code=\"500\"") {
            e.1 += count;
        }
    }
    for (pod, (total, errors)) in per_pod {
        println!("    {pod:<24} {total:>6} requests  {errors:>5} errors");
    }
}

/// A plain HTTP/1.0 GET of the traffic simulator's /metrics.
async fn fetch_metrics(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: sim\r\n\r\n").await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let sim_args = SimArgs {
        listen: "127.0.0.1:0".parse().map_err(|e| DemoError::Config(format!("{e}")))?,
        traffic_listen: "127.0.0.1:0".parse().map_err(|e| DemoError::Config(format!("{e}")))?,
        kubeconfig_out: Some(args.kubeconfig_out.clone()),
        watch_history: 20_000,
        bookmark_seconds: 5.0,
        traffic_tick_seconds: 0.25,
    };
    let (cluster, serving) = sim::start(sim_args).await?;
    let server = tokio::spawn(serving);
    println!(
        "Serin demo — a simulated Kubernetes cluster is serving on http://{}",
        cluster.api_addr
    );
    println!(
        "  kubeconfig: {}   traffic metrics: http://{}/metrics\n",
        args.kubeconfig_out.display(),
        cluster.traffic_addr
    );

    let kc = kube::config::Kubeconfig::read_from(&args.kubeconfig_out).map_err(|e| DemoError::Config(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| DemoError::Config(e.to_string()))?;
    let client = Client::try_from(config)?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply(MANAGER).force();

    println!("1. Version 1.0 of `web` is deployed (4 replicas, 1% errors) behind a Service:");
    deploys
        .patch("web", &pp, &Patch::Apply(app("example/web:1.0", "0.01")))
        .await?;
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    services.patch("web", &pp, &Patch::Apply(svc)).await?;
    wait_ready(&deploys, "example/web:1.0").await?;
    show_pods(&client).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("\n2. The traffic simulator sends 50 requests/s through the Service:");
    show_traffic(cluster.traffic_addr).await;

    println!("\n3. Version 2.0 (10% errors) rolls out as a plain Deployment update would:");
    deploys
        .patch("web", &pp, &Patch::Apply(app("example/web:2.0", "0.10")))
        .await?;
    wait_ready(&deploys, "example/web:2.0").await?;
    show_pods(&client).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    show_traffic(cluster.traffic_addr).await;
    println!("\nA plain rolling update moved every user to the faulty version. Serin's canary engine (next)");
    println!("moves traffic in steps and asks Prometheus before each one.");

    if args.hold {
        println!(
            "\nThe cluster keeps running: KUBECONFIG={} kubectl get pods. Ctrl-C stops it.",
            args.kubeconfig_out.display()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    server.abort();
    let _ = std::fs::remove_file(&args.kubeconfig_out);
    Ok(())
}
