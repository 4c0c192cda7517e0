//! The shared harness of the end-to-end tests: the real `serin` binary, real kubectl, a real
//! Prometheus, each started on free loopback ports and stopped by PID when the test ends.

#![allow(dead_code)]

pub mod argo;
pub mod argocd;
pub mod audit;
pub mod cluster;
pub mod lying;

pub use cluster::Cluster;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A child process killed (by PID) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serin_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_serin"))
}

/// A tool from the project's tools (installed by `make test`), else from PATH.
pub fn tool_path(name: &str) -> PathBuf {
    let tools = std::env::var("SERIN_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    let local = tools.join("bin").join(name);
    if local.exists() { local } else { PathBuf::from(name) }
}

pub fn kubectl_path() -> PathBuf {
    tool_path("kubectl")
}

/// Runs helm (with the cluster's kubeconfig when given) and fails the test with its words if it fails.
pub fn helm_ok(kubeconfig: Option<&Path>, args: &[&str]) -> String {
    let home = tempfile::tempdir().expect("helm home");
    let mut c = Command::new(tool_path("helm"));
    c.args(args).env("HOME", home.path());
    if let Some(k) = kubeconfig {
        c.env("KUBECONFIG", k);
    }
    cluster::succeeded(&format!("helm {args:?}"), c.output().expect("helm runs"))
}

/// helm's error output for a command that must fail.
pub fn helm_err(args: &[&str]) -> String {
    let home = tempfile::tempdir().expect("helm home");
    let out = Command::new(tool_path("helm"))
        .args(args)
        .env("HOME", home.path())
        .output()
        .expect("helm runs");
    assert!(!out.status.success(), "helm {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn kubectl_cmd(kubeconfig: &Path) -> Command {
    let mut c = Command::new(kubectl_path());
    c.env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")));
    c
}

/// A real Prometheus server scraping the given targets every second.
pub struct Prometheus {
    pub proc: Proc,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Prometheus {
    pub fn start(targets: &[String]) -> Prometheus {
        Self::start_with_data(targets, None)
    }

    /// Prometheus over a TSDB made beforehand (`promtool tsdb create-blocks-from`).
    pub fn start_with_data(targets: &[String], data: Option<&Path>) -> Prometheus {
        Self::start_full(targets, data, None)
    }

    /// Prometheus with a web config (TLS), serving HTTPS.
    pub fn start_full(targets: &[String], data: Option<&Path>, web_config: Option<&Path>) -> Prometheus {
        let bin = which("prometheus").expect(
            "the prometheus server is not installed: run `make test`, which installs Debian's prometheus package",
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: sim\n  static_configs:\n  - targets: [{}]\n",
            list.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.map(Path::to_path_buf)
                    .unwrap_or_else(|| dir.path().join("data"))
                    .display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(web_config.map(|w| format!("--web.config.file={}", w.display())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let proc = Proc {
            child,
            name: "prometheus",
        };
        let p = Prometheus { proc, dir, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "prometheus did not start: {}", p.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Polls until `check` returns Some, or fails the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `serin controller` against a cluster, as its own process; `kill` is SIGKILL.
pub struct ControllerProc {
    pub proc: Proc,
    pub log: PathBuf,
    /// Port of /metrics, /healthz and /readyz.
    pub metrics_port: u16,
}

impl ControllerProc {
    /// A controller with a short Lease, so that a successor takes over within two seconds.
    pub fn start(sim: &Cluster, log_name: &str) -> ControllerProc {
        Self::start_with(sim, log_name, &["--leader-election-lease-duration=2"])
    }

    /// On the shared real control plane the controller acts in the test's namespace only (`-n`), as
    /// other tests share the cluster, unless `extra` names namespaces itself.
    pub fn start_with(sim: &Cluster, log_name: &str, extra: &[&str]) -> ControllerProc {
        let log = sim.dir.path().join(log_name);
        let file = std::fs::File::create(&log).expect("controller log");
        let metrics_port = free_port();
        let child = Command::new(serin_bin())
            .args(["controller", "--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(if extra.contains(&"--kubeconfig") {
                Vec::new()
            } else {
                vec![
                    std::ffi::OsString::from("--kubeconfig"),
                    sim.controller_kubeconfig().as_os_str().to_owned(),
                ]
            })
            .args(extra)
            .args(namespace_flag(sim, extra))
            .env("RUST_LOG", "info,serin=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("serin controller starts");
        ControllerProc {
            proc: Proc {
                child,
                name: "serin controller",
            },
            log,
            metrics_port,
        }
    }

    /// SIGTERM, as the kubelet stops a Pod, and waits for the process to exit; after 30s (the
    /// kubelet's default grace) it is killed and the test fails.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.proc.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.proc.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("the controller did not stop within 30s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn namespace_flag(cluster: &Cluster, extra: &[&str]) -> Vec<String> {
    let named = extra
        .iter()
        .any(|a| *a == "-n" || a.starts_with("--namespace") || a.starts_with("-n="));
    if cluster.shares_its_plane() && !named {
        vec!["-n".into(), cluster.namespace.clone()]
    } else {
        Vec::new()
    }
}

impl Drop for ControllerProc {
    /// A failing test shows what the controller said last.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- {} (last lines) ---", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A proxy in front of Prometheus's query API that demands an Authorization header and an
/// `X-Scope-OrgID: team-a` header, and can answer slowly.
#[derive(Clone)]
pub struct Proxy {
    pub upstream: String,
    pub authorization: String,
    pub delay: Duration,
}

async fn forward(
    axum::extract::State(p): axum::extract::State<Proxy>,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    tokio::time::sleep(p.delay).await;
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let tenant = headers.get("x-scope-orgid").and_then(|v| v.to_str().ok()).unwrap_or("");
    if auth != p.authorization || tenant != "team-a" {
        return (StatusCode::UNAUTHORIZED, "unauthorized".to_string()).into_response();
    }
    let url = format!("{}/api/v1/query?{}", p.upstream, q.unwrap_or_default());
    match reqwest::get(url).await {
        Ok(r) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            r.text().await.unwrap_or_default(),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Starts a proxy on a free loopback port; returns its URL.
pub async fn start_proxy(p: Proxy) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route("/api/v1/query", axum::routing::get(forward).post(forward))
        .with_state(p);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A `web` Rollout (in the kubeconfig's namespace) whose Pods are ready 0.2s after they start. `env` adds container
/// variables; `spec` adds lines under `spec:` (2-space indent) and `canary` lines under
/// `strategy.canary:` (6-space indent), after its stable and canary Services.
pub fn web_rollout(replicas: u32, image: &str, env: &[(&str, &str)], spec: &str, canary: &str) -> String {
    named_rollout("web", replicas, image, env, spec, canary)
}

/// `web_rollout` under another name, with Services `NAME-stable` and `NAME-canary`.
pub fn named_rollout(name: &str, replicas: u32, image: &str, env: &[(&str, &str)], spec: &str, canary: &str) -> String {
    let env: String = env
        .iter()
        .map(|(k, v)| format!("        - {{name: {k}, value: \"{v}\"}}\n"))
        .collect();
    format!(
        r#"apiVersion: serin.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: web
        image: {image}
        env:
        - {{name: SERIN_SIM_READY_SECONDS, value: "0.2"}}
{env}{spec}
  strategy:
    canary:
      stableService: {name}-stable
      canaryService: {name}-canary
{canary}
"#
    )
}

/// The stable and canary Services of `named_rollout`, as a YAML stream to append.
pub fn services_of(name: &str) -> String {
    WEB_SERVICES
        .replace("web-", &format!("{name}-"))
        .replace("app: web", &format!("app: {name}"))
}

/// The `web-stable` and `web-canary` Services of `web_rollout`, as a YAML stream to append.
pub const WEB_SERVICES: &str = r#"
---
apiVersion: v1
kind: Service
metadata: {name: web-stable}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-canary}
spec: {selector: {app: web}, ports: [{port: 80}]}
"#;

/// `web_rollout`'s Services when traffic goes through a `web` Service of its own, 100 requests/s,
/// and the stable and canary Services carry none: the Pods' share of it follows their count.
pub const TRAFFIC_SERVICES: &str = r#"
---
apiVersion: v1
kind: Service
metadata: {name: web, annotations: {sim.serin.dev/rps: "100"}}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-stable, annotations: {sim.serin.dev/rps: "0"}}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-canary, annotations: {sim.serin.dev/rps: "0"}}
spec: {selector: {app: web}, ports: [{port: 80}]}
"#;

/// Every Rollout's status in the client's namespace, by name (empty while one has none).
pub async fn rollout_statuses(
    client: &kube::Client,
) -> std::collections::BTreeMap<String, serin::crd::rollout::RolloutStatus> {
    let api: kube::Api<serin::crd::rollout::Rollout> = kube::Api::default_namespaced(client.clone());
    api.list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            (
                r.metadata.name.clone().unwrap_or_default(),
                r.status.unwrap_or_default(),
            )
        })
        .collect()
}

/// The status of Rollout `name`, or an empty one while it has none.
pub async fn rollout_status(
    api: &kube::Api<serin::crd::rollout::Rollout>,
    name: &str,
) -> serin::crd::rollout::RolloutStatus {
    api.get(name).await.ok().and_then(|r| r.status).unwrap_or_default()
}

/// Route weights seen by a watch on the HTTPRoute `name` in the client's namespace: each (stable, canary)
/// pair of its first rule's backendRefs once, when it was first seen.
pub type SeenWeights = std::sync::Arc<std::sync::Mutex<Vec<((i64, i64), Instant)>>>;

pub fn watch_route_weights(client: &kube::Client, name: &str) -> SeenWeights {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let seen: SeenWeights = Default::default();
    let out = seen.clone();
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    let routes: kube::Api<kube::api::DynamicObject> = kube::Api::default_namespaced_with(client.clone(), &ar);
    let config = kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
    tokio::spawn(async move {
        let mut stream = kube::runtime::watcher(routes, config).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            let Ok(kube::runtime::watcher::Event::Apply(r) | kube::runtime::watcher::Event::InitApply(r)) = event
            else {
                continue;
            };
            let route = serde_json::to_value(r).unwrap_or_default();
            let refs = &route["spec"]["rules"][0]["backendRefs"];
            let w = (
                refs[0]["weight"].as_i64().unwrap_or(-1),
                refs[1]["weight"].as_i64().unwrap_or(-1),
            );
            let mut seen = out.lock().unwrap_or_else(|e| e.into_inner());
            if seen.last().map(|s| s.0) != Some(w) {
                seen.push((w, Instant::now()));
            }
        }
    });
    seen
}

/// `serin SUBCOMMAND ARGS` with `input` on stdin: (exit code, stdout, stderr).
pub fn serin_cmd(subcommand: &str, args: &[&str], input: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(serin_bin())
        .arg(subcommand)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serin runs");
    if let Some(text) = input {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("written");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("serin ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The simulated cluster's HTTPRoute CRD (`src/sim/crds/`).
pub fn httproute_crd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sim/crds/httproutes.gateway.networking.k8s.io.yaml")
}
