//! `make bench`: the release `serin controller` against `serin sim` with N Rollouts. Releases a
//! new version across a share of them (a few of which fail their analysis against a fake
//! Prometheus), then idles, and prints per N: controller peak and steady RSS, CPU seconds,
//! reconciles per second, the time from a canary ReplicaSet becoming ready to the next weight
//! change, the time from a failed measurement to traffic on stable, API writes per step, and
//! writes while idle; the simulated cluster's own cost beside it, and the analysis' queries per
//! second and their latency. Then more release waves to the same Rollouts ("churn"), with the
//! controller's RSS after each: memory must stay flat.
//!
//! Two more scenarios per N, release only: the same Rollouts routed by Gateway API HTTPRoutes
//! (writes per step with a router), and the Pod-ratio Rollouts over 3 shards (each shard's RSS and
//! the writes of all three). The last line is `bench: n=N peak_rss_mib=X writes_per_step=Y
//! writes_per_step_routed=R rollback_p99_ms=Z rollback_controller_p99_ms=Z2 idle_writes=W churn_last_wave_mib=C shards=3
//! shard_rss_mib=a,b,c shard_writes_per_step=S prom_qps=Q prom_p99_ms=L`.
//!
//! cargo bench --bench scale -- [--n N]... [--release-share 0.1] [--idle-seconds 300] [--churn-waves 6]
//!     [--write-docs]

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use serin::crd::analysis::AnalysisRun;
use serin::crd::rollout::Rollout;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    sizes: Vec<usize>,
    release_share: f64,
    idle_seconds: u64,
    churn_waves: usize,
    write_docs: bool,
    /// The real control plane (`cluster/up`) instead of `serin sim`.
    real: bool,
}

fn args() -> Args {
    let mut a = Args {
        sizes: Vec::new(),
        release_share: 0.1,
        idle_seconds: 300,
        churn_waves: 6,
        write_docs: false,
        real: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--n" => a.sizes.extend(it.next().and_then(|n| n.parse::<usize>().ok())),
            "--release-share" => a.release_share = it.next().and_then(|n| n.parse().ok()).unwrap_or(0.1),
            "--idle-seconds" => a.idle_seconds = it.next().and_then(|n| n.parse().ok()).unwrap_or(300),
            "--churn-waves" => a.churn_waves = it.next().and_then(|n| n.parse().ok()).unwrap_or(6),
            "--write-docs" => a.write_docs = true,
            "--cluster" => a.real = it.next().is_some_and(|c| c == "real"),
            _ => {} // cargo bench passes --bench
        }
    }
    if a.sizes.is_empty() {
        // The real control plane on 2 cores takes about as long for 1,000 as the simulated one for 10,000.
        a.sizes = if a.real {
            vec![100, 1_000]
        } else {
            vec![100, 1_000, 10_000]
        };
    }
    a
}

fn serin_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/serin")
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory now and at its peak (MiB), and CPU seconds, from /proc.
fn usage(pid: u32) -> (f64, f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0, cpu)
}

/// Every Rollout's latest status, kept by a watch: the waits read it instead of listing all N
/// Rollouts every moment, which at 10,000 loads the API server more than the controller does.
type Statuses = Arc<Mutex<HashMap<String, serin::crd::rollout::RolloutStatus>>>;

fn watch_statuses(api: Api<Rollout>) -> (Statuses, tokio::task::JoinHandle<()>) {
    let statuses: Statuses = Arc::default();
    let s = statuses.clone();
    let handle = watch_each(api, move |r: Rollout| {
        let name = r.metadata.name.clone().unwrap_or_default();
        s.lock().unwrap().insert(name, r.status.unwrap_or_default());
    });
    (statuses, handle)
}

/// Calls `seen` with each object as a watch of `api` sees it, until aborted.
fn watch_each<K>(api: Api<K>, mut seen: impl FnMut(K) + Send + 'static) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::spawn(async move {
        let mut s = watcher(api, Default::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        // An error (a watch begun before its CRD is served, a cut connection) is retried after
        // the backoff; ending here would leave the figures waiting for events never seen.
        while let Some(event) = s.next().await {
            if let Ok(obj) = event {
                seen(obj);
            }
        }
    })
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn metric_sum(url: &str, prefix: &str, filter: impl Fn(&str) -> bool) -> f64 {
    let body = match reqwest::get(url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0.0,
    };
    body.lines()
        .filter(|l| l.starts_with(prefix) && filter(l))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// The cluster the controllers run against: `serin sim`, or the real control plane started by
/// `cluster/up` (stopped by `cluster/down` when dropped).
enum Cluster {
    Sim { proc: Proc, api: String },
    Real { dir: tempfile::TempDir },
}

impl Cluster {
    /// Starts one; its kubeconfig is written to `kubeconfig`.
    async fn start(real: bool, kubeconfig: &Path) -> Cluster {
        if real {
            let dir = tempfile::tempdir().expect("tempdir");
            let up = Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/up");
            let out = Command::new(up)
                .arg(dir.path())
                .args(["--owner-pid", &std::process::id().to_string()])
                .stdin(Stdio::null())
                .output()
                .expect("cluster/up runs");
            assert!(
                out.status.success(),
                "cluster/up failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::copy(dir.path().join("kubeconfig"), kubeconfig).expect("kubeconfig");
            return Cluster::Real { dir };
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let proc = Proc(
            Command::new(serin_bin())
                .args([
                    "sim",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--traffic-listen",
                    "127.0.0.1:0",
                ])
                // Nothing here reads the simulated traffic (analysis asks a fake Prometheus): a slow
                // tick keeps the traffic simulator's cost out of the figures.
                .args(["--traffic-tick-seconds", "5"])
                .args(["--watch-history", "200000", "--kubeconfig-out"])
                .arg(kubeconfig)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("serin sim"),
        );
        while !kubeconfig.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Cluster::Sim {
            proc,
            api: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The controller's requests the API server answered (Lease renewals aside): the simulated
    /// cluster's counts, or the real API server's audit log.
    async fn controller_requests(&self) -> Vec<(serin::sim::requests::RequestKey, u64)> {
        let all = match self {
            Cluster::Sim { api, .. } => {
                let body = match reqwest::get(format!("{api}/metrics")).await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                serin::sim::requests::parse(&body)
            }
            Cluster::Real { dir } => {
                // The audit log is written in batches at most a second apart.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                audited(&dir.path().join("audit.log"))
            }
        };
        all.into_iter()
            .filter(|(k, _)| k.client == "serin-controller" && k.resource != "leases")
            .collect()
    }

    /// Peak RSS (MiB) and CPU seconds of the cluster's own processes, by name.
    fn usage(&self) -> Vec<(String, f64, f64)> {
        match self {
            Cluster::Sim { proc, .. } => {
                let (_, peak, cpu) = usage(proc.0.id());
                vec![("sim".into(), peak, cpu)]
            }
            Cluster::Real { dir } => std::fs::read_to_string(dir.path().join("pids"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let (name, pid) = l.split_once(' ')?;
                    let (_, peak, cpu) = usage(pid.trim().parse().ok()?);
                    ["kube-apiserver", "etcd"]
                        .contains(&name)
                        .then(|| (name.to_string(), peak, cpu))
                })
                .collect(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Cluster::Real { dir } = self {
            let down = Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/down");
            let _ = Command::new(down).arg(dir.path()).status();
        }
    }
}

/// Requests by client, verb, group, resource and code, from an audit log of kube-apiserver.
fn audited(log: &Path) -> Vec<(serin::sim::requests::RequestKey, u64)> {
    let mut counts: std::collections::BTreeMap<serin::sim::requests::RequestKey, u64> = Default::default();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let field = |v: &Value| v.as_str().unwrap_or("").to_string();
        let resource = match e["objectRef"]["subresource"].as_str() {
            Some(sub) => format!("{}/{sub}", field(&e["objectRef"]["resource"])),
            None => field(&e["objectRef"]["resource"]),
        };
        let key = serin::sim::requests::RequestKey {
            client: field(&e["userAgent"]).split('/').next().unwrap_or("").to_string(),
            verb: field(&e["verb"]),
            group: field(&e["objectRef"]["apiGroup"]),
            resource,
            code: e["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
        };
        *counts.entry(key).or_default() += 1;
    }
    counts.into_iter().collect()
}

async fn writes(cluster: &Cluster) -> f64 {
    let all = cluster.controller_requests().await;
    all.iter().filter(|(k, _)| k.is_write()).map(|(_, n)| *n as f64).sum()
}

async fn requests(cluster: &Cluster) -> f64 {
    let all = cluster.controller_requests().await;
    all.iter()
        .filter(|(k, _)| k.verb != "watch")
        .map(|(_, n)| *n as f64)
        .sum()
}

/// The controller's writes by verb and resource, to say what an idle write was.
async fn writes_by_kind(cluster: &Cluster) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for (k, n) in cluster
        .controller_requests()
        .await
        .into_iter()
        .filter(|(k, _)| k.is_write())
    {
        *out.entry(format!("{} {} {}", k.verb, k.resource, k.code)).or_default() += n as f64;
    }
    out
}

/// What grew between two counts by kind, as "kind: increase".
fn grown(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(k, v)| **v > before.get(*k).copied().unwrap_or(0.0))
        .map(|(k, v)| format!("{k}: {}", v - before.get(k).copied().unwrap_or(0.0)))
        .collect()
}

fn template(name: &str, image: &str) -> Value {
    json!({"metadata": {"labels": {"app": name}},
           "spec": {"containers": [{"name": "app", "image": image,
                    "env": [{"name": "SERIN_SIM_READY_SECONDS", "value": "0.5"}]}]}})
}

fn rollout(name: &str, image: &str, routed: bool) -> Value {
    let mut r = json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, image),
            "strategy": {"canary": {
                "stableService": format!("{name}-stable"), "canaryService": format!("{name}-canary"),
                "steps": [{"setWeight": 50}, {"pause": {"duration": "2s"}},
                          {"analysis": {"templates": [{"templateName": "error-rate"}],
                                        "args": [{"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]}},
                          {"setWeight": 100}]
            }}
        }
    });
    if routed {
        r["spec"]["strategy"]["canary"]["trafficRouting"] = json!({"gatewayAPI": {"httpRoute": name}});
    }
    r
}

fn route(name: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"rules": [{"backendRefs": [
               {"name": format!("{name}-stable"), "port": 80, "weight": 100},
               {"name": format!("{name}-canary"), "port": 80, "weight": 0}]}]}})
}

/// How the Rollouts are routed and how many controllers share them.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Scenario {
    routed: bool,
    shards: u32,
}

impl Scenario {
    /// The main one: Pod ratio, one controller, with idle and churn runs.
    const MAIN: Scenario = Scenario {
        routed: false,
        shards: 1,
    };
}

fn service(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
           "spec": {"selector": {"app": name.trim_end_matches("-stable").trim_end_matches("-canary")}, "ports": [{"port": 80}]}})
}

/// A fake Prometheus: the error rate of a version is 0.5 for the bad hashes, 0 for the others.
/// `asked` counts its queries.
async fn fake_prometheus(bad: Arc<Mutex<HashSet<String>>>, asked: Arc<std::sync::atomic::AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let answer = move |uri: axum::http::Uri, body: String| {
        let bad = bad.clone();
        asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let query = format!("{} {}", uri.query().unwrap_or(""), body);
            let query = urlencoding_decode(&query);
            let is_bad = bad.lock().unwrap().iter().any(|h| query.contains(h.as_str()));
            let value = if is_bad { "0.5" } else { "0" };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            axum::Json(json!({"status": "success", "data": {"resultType": "vector",
                "result": [{"metric": {}, "value": [now, value]}]}}))
        }
    };
    let app = axum::Router::new().route("/api/v1/query", axum::routing::get(answer.clone()).post(answer));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn urlencoding_decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = std::str::from_utf8(&bytes[(i + 1).min(bytes.len())..(i + 3).min(bytes.len())])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Default)]
struct Timeline {
    /// Per rollout: when its canary ReplicaSet last became ready.
    canary_ready: HashMap<String, Instant>,
    ready_to_weight_ms: Vec<f64>,
    weights: HashMap<String, i32>,
    steps: HashMap<String, i32>,
    step_changes: u64,
    failed_at: HashMap<String, Instant>,
    rollback_ms: Vec<f64>,
    /// Per failed rollout: when its canary was seen scaled to 0, and when its Pods were gone; the
    /// time in between is the cluster's (the ReplicaSet controller and kubelet), the rest the
    /// controller's.
    canary_scaled_at: HashMap<String, Instant>,
    canary_gone_at: HashMap<String, Instant>,
    rollback_controller_ms: Vec<f64>,
    released: HashSet<String>,
    /// Runs measuring now, and the most at once.
    running: HashSet<String>,
    peak_running: usize,
}

struct Row {
    n: usize,
    setup_s: f64,
    peak_rss: f64,
    steady_rss: f64,
    cpu_s: f64,
    reconciles_per_s: f64,
    ready_p50: f64,
    ready_p99: f64,
    rollback_p99: f64,
    /// failed→stable less the time the cluster took to remove the canary's Pods.
    rollback_controller_p99: f64,
    requests_per_step: f64,
    writes_per_step: f64,
    idle_writes: f64,
    idle_seconds: u64,
    /// The cluster's own processes: peak RSS and CPU seconds by name (the simulated cluster, or
    /// kube-apiserver and etcd).
    cluster_usage: Vec<(String, f64, f64)>,
    /// Controller RSS before the churn waves and after each.
    churn_rss: Vec<f64>,
    /// Prometheus queries per second over the release, and the controller's measurement
    /// latency (p50, p99, from its histogram).
    prom_qps: f64,
    measure_p50_ms: f64,
    measure_p99_ms: f64,
    /// Analyses in flight at the release's peak.
    analyses_in_flight: usize,
    /// Each controller's peak RSS (one, or one per shard).
    shard_rss: Vec<f64>,
}

/// What the side scenarios add to a size's row.
#[derive(Default)]
struct Extra {
    writes_per_step_routed: f64,
    sharded: Option<Row>,
}

async fn run(n: usize, a: &Args, scenario: Scenario) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let cluster = Cluster::start(a.real, &kubeconfig).await;
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let pp = PatchParams::apply("bench").force();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in serin::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &pp, &Patch::Apply(&crd)).await.expect("CRD");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    if scenario.routed {
        // The real control plane gets the Gateway API's published CRD.
        let routes = Path::new(env!("CARGO_MANIFEST_DIR")).join(if a.real {
            "tests/data/crds/gateway.networking.k8s.io_httproutes.yaml"
        } else {
            "src/sim/crds/httproutes.gateway.networking.k8s.io.yaml"
        });
        let text = std::fs::read_to_string(&routes).expect("the HTTPRoute CRD");
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_saphyr::from_str(&text).expect("the HTTPRoute CRD parses");
        crds.patch("httproutes.gateway.networking.k8s.io", &pp, &Patch::Apply(&crd))
            .await
            .expect("HTTPRoute CRD");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let bad: Arc<Mutex<HashSet<String>>> = Arc::default();
    let asked: Arc<std::sync::atomic::AtomicU64> = Arc::default();
    let prometheus = fake_prometheus(bad.clone(), asked.clone()).await;
    let dynamic = |kind: &str| {
        let (group, version, plural) = match kind {
            "Rollout" => ("serin.dev", "v1alpha1", "rollouts"),
            "AnalysisTemplate" => ("serin.dev", "v1alpha1", "analysistemplates"),
            "HTTPRoute" => ("gateway.networking.k8s.io", "v1", "httproutes"),
            _ => ("", "v1", "services"),
        };
        let ar = kube::core::ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::<kube::core::DynamicObject>::namespaced_with(client.clone(), "default", &ar)
    };
    let template_obj = json!({"apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate", "namespace": "default"},
        "spec": {"args": [{"name": "hash"}], "metrics": [{"name": "error-rate", "interval": "1s", "count": 2,
            "successCondition": "result < 0.05",
            "provider": {"prometheus": {"address": prometheus, "query": "errors{hash=\"{{args.hash}}\"}"}}}]}});
    dynamic("AnalysisTemplate")
        .patch("error-rate", &pp, &Patch::Apply(&template_obj))
        .await
        .expect("template");
    let names: Vec<String> = (0..n).map(|i| format!("app{i:05}")).collect();

    let setup = Instant::now();
    let controllers: Vec<Proc> = (0..scenario.shards)
        .map(|i| {
            let mut cmd = Command::new(serin_bin());
            cmd.args([
                "controller",
                "--metrics-addr",
                "127.0.0.1:0",
                "--leader-elect=false",
                "--kubeconfig",
            ])
            .arg(&kubeconfig);
            if scenario.shards > 1 {
                cmd.arg(format!("--shard={i}/{}", scenario.shards));
            }
            Proc(
                cmd.env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("serin controller"),
            )
        })
        .collect();
    let pids: Vec<u32> = controllers.iter().map(|c| c.0.id()).collect();
    let pid = pids[0];
    let apply_all = |objs: Vec<(String, &'static str, Value)>| {
        let dynamic = &dynamic;
        let pp = &pp;
        async move {
            let failed: Vec<String> = futures::stream::iter(objs)
                .map(|(name, kind, obj)| async move {
                    let api = dynamic(kind);
                    let mut last = String::new();
                    for _ in 0..5 {
                        match api.patch(&name, pp, &Patch::Apply(&obj)).await {
                            Ok(_) => return None,
                            Err(e) => last = e.to_string(),
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Some(format!("{kind} {name}: {last}"))
                })
                .buffer_unordered(32)
                .filter_map(|f| async move { f })
                .collect()
                .await;
            // A workload the cluster refused would measure something else: say so and stop.
            assert!(
                failed.is_empty(),
                "{} objects refused, first: {:?}",
                failed.len(),
                failed.first()
            );
        }
    };
    let (statuses, watch_statuses_task) = watch_statuses(Api::namespaced(client.clone(), "default"));
    let mut objs = Vec::new();
    for name in &names {
        for s in [format!("{name}-stable"), format!("{name}-canary")] {
            objs.push((s.clone(), "Service", service(&s)));
        }
        if scenario.routed {
            objs.push((name.clone(), "HTTPRoute", route(name)));
        }
        objs.push((name.clone(), "Rollout", rollout(name, "example/app:1", scenario.routed)));
    }
    apply_all(objs).await;
    loop {
        let healthy = statuses
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.phase == Some(serin::crd::rollout::Phase::Healthy))
            .count();
        if healthy == n {
            break;
        }
        if setup.elapsed() > Duration::from_secs(1800) {
            eprintln!("n={n}: only {healthy} healthy after 30 min");
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let setup_s = setup.elapsed().as_secs_f64();
    let (_, _, cpu_setup) = usage(pid);

    // Watch what happens from here on.
    let timeline: Arc<Mutex<Timeline>> = Arc::default();
    let released: Vec<String> = names
        .iter()
        .step_by(((1.0 / a.release_share).round() as usize).max(1))
        .cloned()
        .collect();
    let failing: Vec<String> = released.iter().step_by(10).cloned().collect();
    {
        let mut t = timeline.lock().unwrap();
        t.released = released.iter().cloned().collect();
        let mut b = bad.lock().unwrap();
        for name in &failing {
            b.insert(hash_of(name, "example/app:2"));
        }
    }
    let owner_of = |labels: &Option<std::collections::BTreeMap<String, String>>| {
        labels
            .as_ref()
            .and_then(|l| l.get("serin.dev/rollout").cloned())
            .unwrap_or_default()
    };
    let t = timeline.clone();
    let watch_rollouts = watch_each(Api::<Rollout>::namespaced(client.clone(), "default"), move |r| {
        let name = r.metadata.name.clone().unwrap_or_default();
        let st = r.status.clone().unwrap_or_default();
        let mut t = t.lock().unwrap();
        if !t.released.contains(&name) {
            return;
        }
        let weight = st.canary_weight.unwrap_or(0);
        let step = st.current_step_index.unwrap_or(0);
        if let Some(before) = t.steps.get(&name).copied()
            && step > before
        {
            t.step_changes += (step - before) as u64;
        }
        t.steps.insert(name.clone(), step);
        if t.weights.get(&name) != Some(&weight) {
            t.weights.insert(name.clone(), weight);
            if let Some(ready) = t.canary_ready.remove(&name) {
                t.ready_to_weight_ms.push(ready.elapsed().as_secs_f64() * 1000.0);
            }
            if weight == 0
                && st.abort == Some(true)
                && let Some(failed) = t.failed_at.remove(&name)
            {
                t.rollback_ms.push(failed.elapsed().as_secs_f64() * 1000.0);
                let scaled = t.canary_scaled_at.remove(&name);
                let gone = t.canary_gone_at.remove(&name);
                if let (Some(scaled), Some(gone)) = (scaled, gone)
                    && gone >= scaled
                {
                    let total = failed.elapsed();
                    t.rollback_controller_ms
                        .push(total.saturating_sub(gone - scaled).as_secs_f64() * 1000.0);
                }
            }
        }
    });
    let t = timeline.clone();
    let mut was_ready: HashMap<String, i32> = HashMap::new();
    let watch_rs = watch_each(Api::<ReplicaSet>::namespaced(client.clone(), "default"), move |rs| {
        let owner = owner_of(&rs.metadata.labels);
        let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let ready = rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
        let before = was_ready
            .insert(rs.metadata.name.clone().unwrap_or_default(), ready)
            .unwrap_or(0);
        if spec > 0 && ready == spec && before < ready {
            let mut t = t.lock().unwrap();
            if t.released.contains(&owner) {
                t.canary_ready.insert(owner.clone(), Instant::now());
            }
        }
        let mut t = t.lock().unwrap();
        if t.failed_at.contains_key(&owner) && spec == 0 {
            let pods = rs.status.as_ref().map_or(0, |s| s.replicas);
            let now = Instant::now();
            t.canary_scaled_at.entry(owner.clone()).or_insert(now);
            if pods == 0 && t.canary_scaled_at.contains_key(&owner) {
                t.canary_gone_at.entry(owner).or_insert(now);
            }
        }
    });
    let t = timeline.clone();
    let watch_runs = watch_each(Api::<AnalysisRun>::namespaced(client.clone(), "default"), move |run| {
        {
            let mut t = t.lock().unwrap();
            let name = run.metadata.name.clone().unwrap_or_default();
            let phase = run.status.as_ref().and_then(|s| s.phase);
            if phase.is_none_or(|p| !p.is_finished()) {
                t.running.insert(name);
            } else {
                t.running.remove(&name);
            }
            t.peak_running = t.peak_running.max(t.running.len());
        }
        let failed = run
            .status
            .as_ref()
            .is_some_and(|s| s.metric_results.iter().any(|m| m.failed > 0));
        if failed {
            let owner = owner_of(&run.metadata.labels);
            t.lock().unwrap().failed_at.entry(owner).or_insert_with(Instant::now);
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Release.
    let mut metrics_urls = Vec::new();
    for &p in &pids {
        metrics_urls.push(controller_metrics_url(p).await);
    }
    let reconciles_before = reconciles_of(&metrics_urls).await;
    let measured_before = measurement_buckets(&metrics_urls).await;
    let asked_before = asked.load(std::sync::atomic::Ordering::Relaxed);
    let writes_before = writes(&cluster).await;
    let requests_before = requests(&cluster).await;
    let release_kinds_before = writes_by_kind(&cluster).await;
    let release_start = Instant::now();
    let objs: Vec<(String, &'static str, Value)> = released
        .iter()
        .map(|name| (name.clone(), "Rollout", rollout(name, "example/app:2", scenario.routed)))
        .collect();
    apply_all(objs).await;
    // Done: the new version promoted and its old Pods gone, or aborted with traffic on stable.
    wait_for(&statuses, &released, "example/app:2", |st, new| {
        promoted(st, new)
            || st.abort == Some(true) && st.canary_weight == Some(0) && st.current_pod_hash.as_deref() == Some(new)
    })
    .await;
    // Old ReplicaSets go after the promotion; let the last writes land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let release_s = release_start.elapsed().as_secs_f64();
    let reconciles = reconciles_of(&metrics_urls).await - reconciles_before;
    let queries = asked.load(std::sync::atomic::Ordering::Relaxed) - asked_before;
    let measured = measurement_buckets(&metrics_urls).await;
    let measured: Vec<(f64, f64)> = measured
        .iter()
        .map(|(le, c)| {
            (
                *le,
                c - measured_before.iter().find(|(l, _)| l == le).map_or(0.0, |b| b.1),
            )
        })
        .collect();
    let release_writes = writes(&cluster).await - writes_before;
    let release_requests = requests(&cluster).await - requests_before;
    eprintln!(
        "n={n}: release writes: {:?}",
        grown(&release_kinds_before, &writes_by_kind(&cluster).await)
    );

    // Idle (the main scenario only).
    let main = scenario == Scenario::MAIN;
    let idle_seconds = if main { a.idle_seconds } else { 0 };
    let idle_before = writes(&cluster).await;
    let kinds_before = writes_by_kind(&cluster).await;
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let idle_writes = writes(&cluster).await - idle_before;
    if idle_writes > 0.0 {
        eprintln!(
            "n={n}: idle writes: {:?}",
            grown(&kinds_before, &writes_by_kind(&cluster).await)
        );
        if std::env::var("BENCH_DEBUG").is_ok() {
            let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
            for e in events
                .list(&Default::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
            {
                let regarding = e.regarding.and_then(|r| r.name).unwrap_or_default();
                if e.metadata
                    .creation_timestamp
                    .as_ref()
                    .is_some_and(|t| t.0.as_second() + (idle_seconds as i64) + 1 >= jiff::Timestamp::now().as_second())
                {
                    eprintln!(
                        "  {regarding} {:?} {:?} {:?}",
                        e.metadata.creation_timestamp.map(|t| t.0.to_string()),
                        e.reason,
                        e.note
                    );
                }
            }
            eprintln!("  idle began at {}", jiff::Timestamp::now());
        }
    }
    let each: Vec<(f64, f64, f64)> = pids.iter().map(|&p| usage(p)).collect();
    let steady_rss = each.iter().map(|u| u.0).fold(0.0, f64::max);
    let peak_rss = each.iter().map(|u| u.1).fold(0.0, f64::max);
    let cpu_s = each.iter().map(|u| u.2).sum();
    let shard_rss: Vec<f64> = each.iter().map(|u| u.1).collect();
    let cluster_usage = cluster.usage();
    watch_rollouts.abort();
    watch_rs.abort();
    watch_runs.abort();

    // Churn: more waves of new versions to the same Rollouts. Their old ReplicaSets and runs
    // reach the history limits within two waves; from there memory must stay flat.
    let mut churn_rss = vec![usage(pid).0];
    for wave in 0..if main { a.churn_waves } else { 0 } {
        let slice = &released;
        let image = format!("example/app:{}", wave + 3);
        apply_all(
            slice
                .iter()
                .map(|name| (name.clone(), "Rollout", rollout(name, &image, scenario.routed)))
                .collect(),
        )
        .await;
        let waited = wait_for(&statuses, slice, &image, promoted).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        churn_rss.push(usage(pid).0);
        eprintln!(
            "n={n}: churn wave {} of {} Rollouts in {waited:.1}s, controller RSS {:.1} MiB",
            wave + 1,
            slice.len(),
            churn_rss.last().copied().unwrap_or_default()
        );
    }
    let mut t = timeline.lock().unwrap();
    let steps = t.step_changes.max(1) as f64;
    let row = Row {
        n,
        setup_s,
        peak_rss,
        steady_rss,
        cpu_s,
        reconciles_per_s: reconciles / release_s,
        ready_p50: percentile(&mut t.ready_to_weight_ms, 0.5),
        ready_p99: percentile(&mut t.ready_to_weight_ms, 0.99),
        rollback_p99: percentile(&mut t.rollback_ms, 0.99),
        rollback_controller_p99: percentile(&mut t.rollback_controller_ms, 0.99),
        requests_per_step: release_requests / steps,
        writes_per_step: release_writes / steps,
        idle_writes,
        idle_seconds,
        cluster_usage,
        churn_rss,
        prom_qps: queries as f64 / release_s,
        measure_p50_ms: bucket_quantile(&measured, 0.5) * 1000.0,
        measure_p99_ms: bucket_quantile(&measured, 0.99) * 1000.0,
        analyses_in_flight: t.peak_running,
        shard_rss,
    };
    eprintln!(
        "n={n} {scenario:?}: setup {setup_s:.0}s (controller CPU {cpu_setup:.1}s), release of {} ({} failing) in {release_s:.1}s, {} steps",
        released.len(),
        failing.len(),
        t.step_changes
    );
    watch_statuses_task.abort();
    drop(controllers);
    drop(cluster);
    row
}

async fn reconciles_of(urls: &[String]) -> f64 {
    let mut sum = 0.0;
    for url in urls {
        sum += metric_sum(url, "serin_reconcile_duration_seconds_count", |_| true).await;
    }
    sum
}

/// The controllers' measurement-duration histogram, summed: (upper bound, count) per bucket.
async fn measurement_buckets(urls: &[String]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for url in urls {
        let body = match reqwest::get(url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => continue,
        };
        for line in body
            .lines()
            .filter(|l| l.starts_with("serin_analysis_measurement_duration_seconds_bucket"))
        {
            let le = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()).map(|v| {
                if v == "+Inf" {
                    f64::INFINITY
                } else {
                    v.parse().unwrap_or(f64::NAN)
                }
            });
            let count = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
            if let (Some(le), Some(count)) = (le, count) {
                match out.iter_mut().find(|(l, _)| *l == le) {
                    Some(b) => b.1 += count,
                    None => out.push((le, count)),
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The quantile `q` of a cumulative histogram, as the upper bound of the bucket it falls in.
fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total <= 0.0 {
        return f64::NAN;
    }
    buckets
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map_or(f64::NAN, |(le, _)| *le)
}

/// The pod-template hash of `name` running `image`.
fn hash_of(name: &str, image: &str) -> String {
    let tpl: PodTemplateSpec = serde_json::from_value(template(name, image)).expect("template");
    serin::hash::pod_template_hash(&tpl)
}

/// Version `hash` is the promoted stable one.
fn promoted(st: &serin::crd::rollout::RolloutStatus, hash: &str) -> bool {
    st.phase == Some(serin::crd::rollout::Phase::Healthy) && st.stable_pod_hash.as_deref() == Some(hash)
}

/// Waits until `done(status, hash of image)` holds for each of `names` (30 minutes at most); the
/// seconds it took.
async fn wait_for(
    statuses: &Statuses,
    names: &[String],
    image: &str,
    done: impl Fn(&serin::crd::rollout::RolloutStatus, &str) -> bool,
) -> f64 {
    let start = Instant::now();
    let want: HashMap<&str, String> = names.iter().map(|n| (n.as_str(), hash_of(n, image))).collect();
    loop {
        let count = statuses
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, st)| want.get(name.as_str()).is_some_and(|h| done(st, h)))
            .count();
        if count == names.len() || start.elapsed() > Duration::from_secs(1800) {
            return start.elapsed().as_secs_f64();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The controller was started on port 0; its address is in /proc (the one listening socket).
async fn controller_metrics_url(pid: u32) -> String {
    for _ in 0..50 {
        if let Some(port) = listening_port(pid) {
            return format!("http://127.0.0.1:{port}/metrics");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    "http://127.0.0.1:1/metrics".into()
}

fn listening_port(pid: u32) -> Option<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            l.to_string_lossy()
                .strip_prefix("socket:[")
                .map(|s| s.trim_end_matches(']').to_string())
        })
        .collect();
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // State 0A is LISTEN.
        (f.get(3) == Some(&"0A") && f.get(9).is_some_and(|i| inodes.contains(*i)))
            .then(|| {
                f.get(1)?
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            })
            .flatten()
    })
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown CPU")
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |k| k / 1024.0 / 1024.0);
    format!("{cores} cores ({cpu}), {mem:.0} GiB RAM, Linux; release build")
}

fn table(rows: &[&Row]) -> String {
    let mut out = String::from(
        "| N | setup | ctrl peak RSS | ctrl steady RSS | ctrl CPU | reconciles/s | ready→weight p50 / p99 | failed→stable p99 (controller's share) | requests / step | writes / step | idle writes | ctrl RSS over churn waves | cluster peak RSS | cluster CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let each = |r: &Row, f: &dyn Fn(&(String, f64, f64)) -> String| {
        r.cluster_usage.iter().map(f).collect::<Vec<_>>().join(", ")
    };
    for r in rows {
        out += &format!(
            "| {} | {:.0} s | {:.1} MiB | {:.1} MiB | {:.1} s | {:.1} | {:.0} / {:.0} ms | {:.0} ms ({:.0} ms) | {:.1} | {:.1} | {:.0} in {} s | {} MiB | {} | {} |\n",
            r.n,
            r.setup_s,
            r.peak_rss,
            r.steady_rss,
            r.cpu_s,
            r.reconciles_per_s,
            r.ready_p50,
            r.ready_p99,
            r.rollback_p99,
            r.rollback_controller_p99,
            r.requests_per_step,
            r.writes_per_step,
            r.idle_writes,
            r.idle_seconds,
            r.churn_rss
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(" → "),
            each(r, &|(name, rss, _)| format!("{name} {rss:.0} MiB")),
            each(r, &|(name, _, cpu)| format!("{name} {cpu:.1} s")),
        );
    }
    out
}

fn scale_out_table(rows: &[(Row, Extra)]) -> String {
    let mut out = String::from(
        "| N | writes / step, Pod ratio | writes / step, Gateway API | churn, last wave | 3 shards: peak RSS each | 3 shards: writes / step | analyses in flight | Prometheus queries/s | measurement p50 / p99 |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (r, e) in rows {
        let (shard_rss, shard_writes) = e.sharded.as_ref().map_or((String::from("-"), f64::NAN), |s| {
            let rss: Vec<String> = s.shard_rss.iter().map(|m| format!("{m:.1}")).collect();
            (format!("{} MiB", rss.join(" / ")), s.writes_per_step)
        });
        out += &format!(
            "| {} | {:.2} | {:.2} | {:+.1} MiB | {} | {:.2} | {} | {:.0} | {:.1} / {:.1} ms |\n",
            r.n,
            r.writes_per_step,
            e.writes_per_step_routed,
            churn_last_wave(r),
            shard_rss,
            shard_writes,
            r.analyses_in_flight,
            r.prom_qps,
            r.measure_p50_ms,
            r.measure_p99_ms,
        );
    }
    out
}

/// What the last churn wave added to the controller's RSS.
fn churn_last_wave(r: &Row) -> f64 {
    match r.churn_rss.as_slice() {
        [.., a, b] => b - a,
        _ => f64::NAN,
    }
}

/// The heading of the real control plane's figures in `docs/benchmarks.md`.
const REAL_HEADING: &str = "## On the real control plane";

/// Writes the figures to `docs/benchmarks.md`: the simulated cluster's at the top, the real control
/// plane's in a section of their own, each leaving the other and the notes below them as they were.
fn write_docs(a: &Args, main_rows: &[&Row], rows: &[(Row, Extra)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let date = jiff::Timestamp::now().strftime("%Y-%m-%d");
    let tables = format!(
        "{}\nScale-out: writes per step with and without a router, the last churn wave, the same release over 3 shards, and the analysis load.\n\n{}\n",
        table(main_rows),
        scale_out_table(rows)
    );
    // The top (before the first section), the real section, and every other section, in order.
    let (top, rest) = old
        .split_once("\n## ")
        .map_or((old.as_str(), String::new()), |(t, r)| (t, format!("\n## {r}")));
    let mut sections: Vec<String> = Vec::new();
    for part in rest.split("\n## ").filter(|p| !p.trim().is_empty()) {
        sections.push(format!("\n## {}", part.trim_start_matches("## ")));
    }
    let real_at = sections
        .iter()
        .position(|s| s.starts_with(&format!("\n{REAL_HEADING}")));
    let doc = if a.real {
        let section = format!(
            "\n{REAL_HEADING}\n\nMade by `make bench CLUSTER=real` on {}, {date}: the same workload on kube-apiserver v1.37.2, etcd v3.7.3, kube-controller-manager, kube-scheduler and kwok (`cluster/up`), requests counted from the API server's audit log; the cluster columns are kube-apiserver's and etcd's own.\n\n{tables}",
            machine()
        );
        match real_at {
            Some(i) => sections[i] = section,
            None => sections.insert(0, section),
        }
        format!("{}{}", top, sections.concat())
    } else {
        let top = format!(
            "# Benchmarks\n\nMade by `make bench` (`cargo bench --bench scale`) on {}, {date}, against the simulated cluster.\n\n{tables}",
            machine()
        );
        format!("{}{}", top, sections.concat())
    };
    let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
    if let Err(e) = std::fs::write(&path, doc) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs benches once without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("scale: a benchmark; run it with `make bench` (cargo bench --bench scale)");
        return;
    }
    let a = args();
    if !serin_bin().exists() {
        eprintln!("build the release binary first: cargo build --release");
        std::process::exit(2);
    }
    let mut rows: Vec<(Row, Extra)> = Vec::new();
    for &n in &a.sizes {
        let main = run(n, &a, Scenario::MAIN).await;
        let routed = run(
            n,
            &a,
            Scenario {
                routed: true,
                shards: 1,
            },
        )
        .await;
        let sharded = run(
            n,
            &a,
            Scenario {
                routed: false,
                shards: 3,
            },
        )
        .await;
        rows.push((
            main,
            Extra {
                writes_per_step_routed: routed.writes_per_step,
                sharded: Some(sharded),
            },
        ));
        let main_rows: Vec<&Row> = rows.iter().map(|(r, _)| r).collect();
        println!("{}\n{}", table(&main_rows), scale_out_table(&rows));
    }
    if a.write_docs {
        let main_rows: Vec<&Row> = rows.iter().map(|(r, _)| r).collect();
        write_docs(&a, &main_rows, &rows);
    }
    if let Some((r, e)) = rows.last() {
        let (shards, shard_rss, shard_writes) = e.sharded.as_ref().map_or((0, String::new(), f64::NAN), |s| {
            let rss: Vec<String> = s.shard_rss.iter().map(|m| format!("{m:.1}")).collect();
            (s.shard_rss.len(), rss.join(","), s.writes_per_step)
        });
        println!(
            "bench: cluster={} n={} peak_rss_mib={:.1} writes_per_step={:.2} writes_per_step_routed={:.2} rollback_p99_ms={:.0} rollback_controller_p99_ms={:.0} idle_writes={:.0} churn_last_wave_mib={:.1} shards={shards} shard_rss_mib={shard_rss} shard_writes_per_step={shard_writes:.2} analyses_in_flight={} prom_qps={:.0} measure_p99_ms={:.1}",
            if a.real { "real" } else { "sim" },
            r.n,
            r.peak_rss,
            r.writes_per_step,
            e.writes_per_step_routed,
            r.rollback_p99,
            r.rollback_controller_p99,
            r.idle_writes,
            churn_last_wave(r),
            r.analyses_in_flight,
            r.prom_qps,
            r.measure_p99_ms,
        );
    }
}
