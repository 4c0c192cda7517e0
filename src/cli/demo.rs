//! `serin demo`: the whole story on an embedded simulated cluster, with the real controller, told
//! through the same Kubernetes API that kubectl uses. Exits 0 at the end.

use super::rollouts::{self, Action};
use crate::crd::rollout::{Phase, Rollout};
use crate::sim::{self, SimArgs};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Keep the simulated cluster and controller running after the story, for kubectl.
    #[arg(long)]
    pub hold: bool,
    /// Where to write the kubeconfig of the demo cluster.
    #[arg(long, default_value = "serin-demo.kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// Where the controller's log goes (the story alone goes to the terminal).
    #[arg(long, default_value = "serin-demo.log")]
    pub log: PathBuf,
    /// Tell the story on the cluster of this kubeconfig (a real control plane from `cluster/up`,
    /// say) instead of an embedded simulated one; the traffic simulator reads it through its API.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    #[error("talking to the cluster: {0}")]
    Kube(#[from] kube::Error),
    #[error("loading the demo kubeconfig: {0}")]
    Config(String),
    #[error("the demo did not reach {what} within {limit:?}")]
    Timeout { what: String, limit: Duration },
    #[error(transparent)]
    Rollout(#[from] rollouts::RolloutCmdError),
    #[error(transparent)]
    Traffic(#[from] sim::traffic::from_api::TrafficError),
}

/// Where the story is told: the embedded simulated cluster, or a cluster of the user's.
struct Stage {
    /// How the first line names the cluster.
    told_as: String,
    kubeconfig: PathBuf,
    traffic_addr: std::net::SocketAddr,
    /// The embedded cluster's servers, or the traffic simulator for the user's cluster.
    serving: tokio::task::JoinHandle<()>,
    embedded: bool,
}

async fn stage(args: &DemoArgs) -> Result<Stage, DemoError> {
    let any_port = || "127.0.0.1:0".parse().map_err(|e| DemoError::Config(format!("{e}")));
    if let Some(path) = &args.kubeconfig {
        let client = sim::traffic::from_api::client(path).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| DemoError::Config(format!("the traffic simulator's port: {e}")))?;
        let traffic_addr = listener
            .local_addr()
            .map_err(|e| DemoError::Config(format!("the traffic simulator's port: {e}")))?;
        let serving = sim::traffic::from_api::serve(client, Some("default"), listener, Duration::from_millis(250));
        return Ok(Stage {
            told_as: format!("the Kubernetes cluster of {}", path.display()),
            kubeconfig: path.clone(),
            traffic_addr,
            serving: tokio::spawn(async move {
                let _ = serving.await;
            }),
            embedded: false,
        });
    }
    let sim_args = SimArgs {
        command: None,
        listen: any_port()?,
        traffic_listen: any_port()?,
        kubeconfig_out: Some(args.kubeconfig_out.clone()),
        watch_history: 20_000,
        bookmark_seconds: 5.0,
        traffic_tick_seconds: 0.25,
        faults: None,
    };
    let (cluster, serving) = sim::start(sim_args).await?;
    Ok(Stage {
        told_as: format!("a simulated Kubernetes cluster on http://{}", cluster.api_addr),
        kubeconfig: args.kubeconfig_out.clone(),
        traffic_addr: cluster.traffic_addr,
        serving: tokio::spawn(async move {
            let _ = serving.await;
        }),
        embedded: true,
    })
}

const MANAGER: &str = "serin-demo";
const REPLICAS: i32 = 20;

/// The Rollout at `image`; `judged` names the shipped `serin-http` template, which then runs at
/// each default step.
fn rollout(image: &str, error_rate: &str, steps: Option<serde_json::Value>, judged: bool) -> serde_json::Value {
    let mut canary = json!({"stableService": "web-stable", "canaryService": "web-canary",
                            "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
                            // Quick for the demo; a real gateway wants time to drain connections.
                            "abortScaleDownDelaySeconds": 3, "scaleDownDelaySeconds": 3});
    if let Some(steps) = steps {
        canary["steps"] = steps;
    }
    if judged {
        canary["analysis"] = json!({"templates": [{"templateName": "serin-http", "clusterScope": true}]});
    }
    json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": image, "env": [
                             {"name": "SERIN_SIM_ERROR_RATE", "value": error_rate},
                             {"name": "SERIN_SIM_READY_SECONDS", "value": "0.5"}]}]}},
            "strategy": {"canary": canary}
        }
    })
}

/// `web-stable` and `web-canary` address one version each; Serin points their selectors.
fn service(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
}

/// Users reach the app through this HTTPRoute (3,000 requests/s: at 25% the canary serves 750 of
/// them, enough to tell 2% errors from 1% within the demo's 10-second steps); Serin sets its weights.
fn http_route() -> serde_json::Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "web", "namespace": "default", "annotations": {"sim.serin.dev/rps": "3000"}},
           "spec": {"parentRefs": [{"name": "gateway"}], "hostnames": ["web.example.com"],
                    "rules": [{"backendRefs": [{"name": "web-stable", "port": 80, "weight": 100},
                                               {"name": "web-canary", "port": 80, "weight": 0}]}]}})
}

/// The HTTPRoute CRD the simulated cluster ships (a compact one, written for it).
const HTTPROUTE_CRD: &str = include_str!("../sim/crds/httproutes.gateway.networking.k8s.io.yaml");

/// Requests and errors per pod-template hash, from the traffic simulator's counters.
async fn traffic(addr: std::net::SocketAddr) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let Ok(body) = fetch_metrics(addr).await else {
        return out;
    };
    for line in body.lines().filter(|l| l.starts_with("http_requests_total{")) {
        let hash = line
            .split("pod_template_hash=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string();
        let count: u64 = line.rsplit(' ').next().and_then(|c| c.parse().ok()).unwrap_or(0);
        let e = out.entry(hash).or_default();
        e.0 += count;
        if line.contains("code=\"500\"") {
            e.1 += count;
        }
    }
    out
}

/// Share of requests each version served between two readings.
fn shares(before: &BTreeMap<String, (u64, u64)>, after: &BTreeMap<String, (u64, u64)>) -> BTreeMap<String, (u64, u64)> {
    after
        .iter()
        .map(|(h, (n, e))| {
            let (n0, e0) = before.get(h).copied().unwrap_or_default();
            (h.clone(), (n.saturating_sub(n0), e.saturating_sub(e0)))
        })
        .filter(|(_, (n, _))| *n > 0)
        .collect()
}

async fn fetch_metrics(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: sim\r\n\r\n").await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// A Prometheus server of the demo's own, scraping the traffic simulator; stopped when dropped.
struct DemoPrometheus {
    child: std::process::Child,
    url: String,
    _dir: PathBuf,
}

impl Drop for DemoPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// Starts Debian's `prometheus` when it is installed; `None` otherwise.
async fn start_prometheus(traffic: std::net::SocketAddr) -> Option<DemoPrometheus> {
    let bin = std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join("prometheus"))
        .find(|p| p.is_file())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = std::env::temp_dir().join(format!("serin-demo-prometheus-{port}"));
    std::fs::create_dir_all(&dir).ok()?;
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n- job_name: sim\n  static_configs: [{{targets: ['{traffic}']}}]\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).ok()?;
    let child = std::process::Command::new(bin)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let prom = DemoPrometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(prom);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The ClusterAnalysisTemplates Serin ships, measuring quickly for the demo: a look every 2 s, five
/// per step.
const SHIPPED_TEMPLATES: &str = include_str!("../../charts/serin/files/analysis-templates.yaml");

fn quick_templates() -> Result<Vec<serde_json::Value>, DemoError> {
    let text = SHIPPED_TEMPLATES
        .replace("interval: 10s", "interval: 2s")
        .replace("count: 30", "count: 5")
        .replace("consecutiveNoDataLimit: 6", "consecutiveNoDataLimit: 15");
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str(doc).map_err(|e| DemoError::Config(format!("a shipped template: {e}"))))
        .collect()
}

struct Story {
    api: Api<Rollout>,
    traffic: std::net::SocketAddr,
    started: Instant,
    last_line: String,
    /// Analysis runs whose verdict was told.
    told: std::collections::BTreeSet<String>,
    /// The weight each step's run was judging at.
    judging_at: BTreeMap<String, i32>,
}

impl Story {
    fn say(&self, text: &str) {
        println!("[{:>5.1}s] {text}", self.started.elapsed().as_secs_f64());
    }

    /// Each step's comparison with stable, once it has decided: the evidence it decided on.
    fn tell_verdicts(&mut self, st: &crate::crd::rollout::RolloutStatus) {
        for a in st.analysis.iter().filter(|a| a.step != "background") {
            let decided = ["Successful", "Failed", "Inconclusive"].contains(&a.phase.as_str());
            if !decided {
                self.judging_at.insert(a.run.clone(), st.canary_weight.unwrap_or(0));
            }
            if !decided || !self.told.insert(a.run.clone()) {
                continue;
            }
            let weight = self.judging_at.get(&a.run).copied().unwrap_or(0);
            for m in a.metrics.iter().filter(|m| m.name == "errors-vs-stable") {
                self.say(&format!(
                    "   judged at {weight}%: {} ({})",
                    m.value.clone().unwrap_or_default(),
                    m.phase
                ));
            }
        }
    }

    /// Prints a line whenever the rollout's state changes, until `done` says stop.
    async fn follow(&mut self, what: &str, done: impl Fn(&Rollout) -> bool) -> Result<Rollout, DemoError> {
        let limit = Duration::from_secs(90);
        let until = Instant::now() + limit;
        let mut window = (Instant::now(), traffic(self.traffic).await);
        loop {
            let r = self.api.get("web").await?;
            let Some(st) = r.status.clone() else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let line = format!(
                "{:<11} step {:<5} weight {:>3}%  pods: canary {:>2}, all {:>2}/{:<2}  {}",
                st.phase.map(|p| p.as_str()).unwrap_or("-"),
                st.step.clone().unwrap_or_default(),
                st.canary_weight.unwrap_or(0),
                st.updated_available_replicas.unwrap_or(0),
                st.available_replicas.unwrap_or(0),
                REPLICAS,
                st.message.clone().unwrap_or_default()
            );
            if line != self.last_line {
                self.say(&line);
                self.last_line = line;
            }
            self.tell_verdicts(&st);
            if window.0.elapsed() >= Duration::from_secs(2) {
                let now = traffic(self.traffic).await;
                let moved = shares(&window.1, &now);
                let total: u64 = moved.values().map(|(n, _)| n).sum();
                if total > 0 {
                    let parts: Vec<String> = moved
                        .iter()
                        .map(|(h, (n, e))| {
                            let role = if Some(h) == st.stable_pod_hash.as_ref() {
                                "stable"
                            } else {
                                "canary"
                            };
                            format!(
                                "{role} {h}: {:>3}% of requests, {:>4.1}% errors",
                                100 * n / total,
                                100.0 * *e as f64 / (*n).max(1) as f64
                            )
                        })
                        .collect();
                    self.say(&format!("            traffic  {}", parts.join("  |  ")));
                }
                window = (Instant::now(), now);
            }
            if done(&r) {
                return Ok(r);
            }
            if Instant::now() > until {
                return Err(DemoError::Timeout {
                    what: what.into(),
                    limit,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn phase(r: &Rollout) -> Option<Phase> {
    r.status.as_ref().and_then(|s| s.phase)
}

/// The controller has seen the latest spec.
fn observed(r: &Rollout) -> bool {
    r.status.as_ref().and_then(|s| s.observed_generation) == r.metadata.generation
}

fn promoted_to(r: &Rollout, image: &str) -> bool {
    let runs = r
        .spec
        .template
        .as_ref()
        .and_then(|t| t.typed().spec)
        .is_some_and(|s| s.containers.first().and_then(|c| c.image.as_deref()) == Some(image));
    let st = r.status.clone().unwrap_or_default();
    runs && observed(r)
        && phase(r) == Some(Phase::Healthy)
        && st.current_pod_hash == st.stable_pod_hash
        && st.current_pod_hash.is_some()
}

pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let cluster = stage(&args).await?;
    println!("Serin demo: {} runs the Serin controller.", cluster.told_as);
    println!(
        "  (KUBECONFIG={} kubectl get rollouts,rs,pods shows the same objects;",
        cluster.kubeconfig.display()
    );
    println!("   the controller's log goes to {})\n", args.log.display());

    let kc = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).map_err(|e| DemoError::Config(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| DemoError::Config(e.to_string()))?;
    let client = Client::try_from(config)?;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let pp = PatchParams::apply(MANAGER).force();
    for crd in crate::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &pp, &Patch::Apply(crd)).await?;
    }
    let prometheus = start_prometheus(cluster.traffic_addr).await;
    if let Some(p) = &prometheus {
        let templates: Api<crate::crd::analysis::ClusterAnalysisTemplate> = Api::all(client.clone());
        for t in quick_templates()? {
            let name = t["metadata"]["name"].as_str().unwrap_or_default().to_string();
            templates.patch(&name, &pp, &Patch::Apply(t)).await?;
        }
        println!(
            "  Prometheus ({}) scrapes the simulated traffic. The ClusterAnalysisTemplate serin-http, shipped",
            p.url
        );
        println!("  with Serin, compares the canary's error rate with stable's at each step.\n");
    } else {
        println!("  Prometheus is not installed here, so no analysis: a person looks and aborts instead.");
        println!("  (apt-get install prometheus, or `make demo`, and the demo rolls back by itself.)\n");
    }
    let route_crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_saphyr::from_str(HTTPROUTE_CRD).map_err(|e| DemoError::Config(format!("the HTTPRoute CRD: {e}")))?;
    crds.patch("httproutes.gateway.networking.k8s.io", &pp, &Patch::Apply(route_crd))
        .await?;
    // One controller and no rival: it leads from the start.
    let admin = std::sync::Arc::new(crate::admin::Admin::default());
    admin.gate.set_leader(true);
    let controller = tokio::spawn(crate::reconcile::run(
        client.clone(),
        None,
        "serin-demo".into(),
        admin,
        "default".into(),
        crate::reconcile::Settings {
            analysis: crate::reconcile::AnalysisSettings {
                prometheus_address: prometheus.as_ref().map(|p| p.url.clone()),
                ..Default::default()
            },
            ..Default::default()
        },
    ));
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "default");
    for name in ["web-stable", "web-canary"] {
        services.patch(name, &pp, &Patch::Apply(service(name))).await?;
    }
    let gvk = kube::core::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let routes: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &kube::core::ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    );
    routes.patch("web", &pp, &Patch::Apply(http_route())).await?;
    let api: Api<Rollout> = Api::namespaced(client.clone(), "default");
    let mut story = Story {
        api: api.clone(),
        traffic: cluster.traffic_addr,
        started: Instant::now(),
        last_line: String::new(),
        told: Default::default(),
        judging_at: Default::default(),
    };
    let kube_args = super::kube_args::KubeArgs {
        kubeconfig: Some(cluster.kubeconfig.clone()),
        ..Default::default()
    };

    story.say("1. Rollout `web` (20 Pods) is created at version 1.0, behind the Gateway API HTTPRoute `web`:");
    let judged = prometheus.is_some();
    api.patch(
        "web",
        &pp,
        &Patch::Apply(rollout("example/web:1.0", "0.01", None, judged)),
    )
    .await?;
    story
        .follow("version 1.0 healthy", |r| promoted_to(r, "example/web:1.0"))
        .await?;

    println!();
    if judged {
        story.say("2. Version 2.0 (as healthy as 1.0: 1% errors) is released. At 5%, 25%, 50% and 100% of the");
        story.say("   traffic, Serin compares its errors with stable's by a sequential test, and goes on:");
    } else {
        story.say("2. Version 2.0 is released. With no steps written, the route walks 5% -> 25% -> 50% -> 100%:");
    }
    api.patch(
        "web",
        &pp,
        &Patch::Apply(rollout("example/web:2.0", "0.01", None, judged)),
    )
    .await?;
    story
        .follow("version 2.0 promoted", |r| promoted_to(r, "example/web:2.0"))
        .await?;

    println!();
    let stable = api
        .get("web")
        .await?
        .status
        .and_then(|s| s.stable_pod_hash)
        .unwrap_or_default();
    if judged {
        story.say("3. Version 3.0 is released. It fails 2% of its requests: twice stable's 1%, a regression a");
        story.say("   threshold at 5% of the traffic would miss. Nobody watches:");
        api.patch(
            "web",
            &pp,
            &Patch::Apply(rollout("example/web:3.0", "0.02", None, judged)),
        )
        .await?;
        story
            .follow("version 3.0 rolled back", |r| {
                observed(r) && r.status.as_ref().and_then(|s| s.abort) == Some(true)
            })
            .await?;
    } else {
        story.say("3. Version 3.0 is released, with a pause at 5% for a look. It fails 30% of its requests:");
        let steps = json!([{"setWeight": 5}, {"pause": {}}, {"setWeight": 50}, {"setWeight": 100}]);
        api.patch(
            "web",
            &pp,
            &Patch::Apply(rollout("example/web:3.0", "0.30", Some(steps), false)),
        )
        .await?;
        story
            .follow("version 3.0 paused at 25%", |r| {
                observed(r) && phase(r) == Some(Phase::Paused)
            })
            .await?;
        let before = traffic(cluster.traffic_addr).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        for (hash, (n, e)) in shares(&before, &traffic(cluster.traffic_addr).await) {
            let version = if hash == stable { "stable 2.0" } else { "canary 3.0" };
            story.say(&format!(
                "   {version} ({hash}): {n:>3} requests in 3s, {:>4.1}% errors",
                100.0 * e as f64 / n.max(1) as f64
            ));
        }
        story.say(&format!(
            "   $ kubectl serin abort web   -> {}",
            rollouts::request(&kube_args, "web", Action::Abort).await?
        ));
    }
    story
        .follow("traffic back on stable", |r| {
            let st = r.status.clone().unwrap_or_default();
            phase(r) == Some(Phase::Degraded) && st.canary_weight == Some(0) && st.available_replicas == Some(REPLICAS)
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = traffic(cluster.traffic_addr).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = shares(&before, &traffic(cluster.traffic_addr).await);
    let total: u64 = after.values().map(|(n, _)| n).sum();
    let on_stable = after.get(&stable).map_or(0, |(n, _)| *n);
    story.say(&format!(
        "   traffic now: {on_stable} of {total} requests in 2s went to stable version 2.0 ({stable})"
    ));
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let mut recorded: Vec<_> = events
        .list(&kube::api::ListParams::default().fields("involvedObject.name=web"))
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("Rollout"))
        .map(|e| {
            (
                e.event_time.map(|t| t.0),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect();
    recorded.sort_by_key(|(t, _, _)| *t);
    println!("\nEvents Serin recorded on rollout/web (kubectl get events):");
    for (_, reason, message) in recorded {
        println!("  {reason:<15} {message}");
    }
    if judged {
        println!(
            "\nDone: 2.0 was judged no worse than stable and promoted; 3.0 was found worse and rolled back by itself."
        );
    } else {
        println!("\nDone: 2.0 was promoted step by step; 3.0 was stopped at 5% and every request is back on 2.0.");
        println!("With Prometheus installed, Serin's analysis makes that abort by itself.");
    }

    if args.hold {
        println!(
            "\nStill running: KUBECONFIG={} kubectl get rollouts. Ctrl-C stops it.",
            cluster.kubeconfig.display()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    controller.abort();
    cluster.serving.abort();
    if cluster.embedded {
        let _ = std::fs::remove_file(&cluster.kubeconfig);
    }
    Ok(())
}
