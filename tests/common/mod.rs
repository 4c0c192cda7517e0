//! The shared harness of the end-to-end tests: the real `serin` binary, real kubectl, a real
//! Prometheus, each started on free loopback ports and stopped by PID when the test ends.

#![allow(dead_code)]

pub mod argocd;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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

/// `serin sim` running as its own process.
pub struct SimCluster {
    pub proc: Proc,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub api_port: u16,
    pub traffic_port: u16,
}

pub fn serin_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_serin"))
}

impl SimCluster {
    pub fn start() -> SimCluster {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> SimCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let api_port = free_port();
        let traffic_port = free_port();
        let log = std::fs::File::create(dir.path().join("sim.log")).expect("sim log");
        let child = Command::new(serin_bin())
            .args([
                "sim",
                "--listen",
                &format!("127.0.0.1:{api_port}"),
                "--traffic-listen",
                &format!("127.0.0.1:{traffic_port}"),
            ])
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("serin sim starts");
        let proc = Proc {
            child,
            name: "serin sim",
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !kubeconfig.exists() {
            assert!(Instant::now() < deadline, "serin sim wrote no kubeconfig within 20s");
            std::thread::sleep(Duration::from_millis(20));
        }
        SimCluster {
            proc,
            dir,
            kubeconfig,
            api_port,
            traffic_port,
        }
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig parses");
        let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("kubeconfig loads");
        kube::Client::try_from(config).expect("client builds")
    }

    /// Runs the real kubectl against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl_cmd(&self.kubeconfig).args(args).output().expect("kubectl runs")
    }

    /// Runs kubectl and fails the test with its output when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = kubectl_cmd(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("kubectl finishes")
    }
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
    let out = c.output().expect("helm runs");
    assert!(
        out.status.success(),
        "helm {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

fn kubectl_cmd(kubeconfig: &Path) -> Command {
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
    pub fn start(sim: &SimCluster, log_name: &str) -> ControllerProc {
        Self::start_with(sim, log_name, &["--leader-election-lease-duration=2"])
    }

    pub fn start_with(sim: &SimCluster, log_name: &str, extra: &[&str]) -> ControllerProc {
        let log = sim.dir.path().join(log_name);
        let file = std::fs::File::create(&log).expect("controller log");
        let metrics_port = free_port();
        let child = Command::new(serin_bin())
            .args([
                "controller",
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--kubeconfig",
            ])
            .arg(&sim.kubeconfig)
            .args(extra)
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

impl SimCluster {
    /// The requests the API server answered, by client, verb, group, resource and code.
    pub async fn requests(&self) -> Vec<(serin::sim::requests::RequestKey, u64)> {
        let body = reqwest::get(format!("{}/metrics", self.api_url()))
            .await
            .expect("the sim answers")
            .text()
            .await
            .expect("its metrics");
        serin::sim::requests::parse(&body)
    }

    /// Sets the faults the cluster injects (`PUT /sim/faults`).
    pub async fn set_faults(&self, spec: serde_json::Value) {
        let r = reqwest::Client::new()
            .put(format!("{}/sim/faults", self.api_url()))
            .json(&spec)
            .send()
            .await
            .expect("the sim answers");
        assert!(
            r.status().is_success(),
            "faults refused: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// `kubectl apply --server-side` of YAML; fails the test with kubectl's words if refused.
    pub fn apply_yaml(&self, yaml: &str) {
        let out = self.kubectl_stdin(&["apply", "--server-side", "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Applies a CRD file named `<crd name>.yaml` and waits until it is Established.
    pub fn install_crd_file(&self, path: &Path) {
        self.kubectl_ok(&["apply", "--server-side", "-f", path.to_str().unwrap_or_default()]);
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .trim_start_matches("gateway.networking.k8s.io_");
        let name = if name == "httproutes" {
            "httproutes.gateway.networking.k8s.io"
        } else {
            name
        };
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{name}"),
            "--timeout=10s",
        ]);
    }

    /// Installs Serin's CRDs from `crds/` with kubectl, as a user would.
    pub fn install_crds(&self) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds");
        self.kubectl_ok(&["apply", "--server-side", "-f", dir.to_str().unwrap_or_default()]);
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd/rollouts.serin.dev",
            "--timeout=10s",
        ]);
    }

    /// A directory holding `kubectl-serin` (a link to the binary), for kubectl's plugin lookup.
    pub fn plugin_path(&self) -> String {
        let bin = self.dir.path().join("plugins");
        let _ = std::fs::create_dir_all(&bin);
        let link = bin.join("kubectl-serin");
        if !link.exists() {
            let _ = std::os::unix::fs::symlink(serin_bin(), &link);
        }
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
    }

    /// `kubectl serin …` through kubectl's plugin mechanism.
    pub fn kubectl_serin(&self, args: &[&str]) -> Output {
        let mut all = vec!["serin"];
        all.extend_from_slice(args);
        kubectl_cmd(&self.kubeconfig)
            .env("PATH", self.plugin_path())
            .args(&all)
            .output()
            .expect("kubectl serin runs")
    }

    pub fn kubectl_serin_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl_serin(args);
        assert!(
            out.status.success(),
            "kubectl serin {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
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

/// A `web` Rollout in `default` whose Pods are ready 0.2s after they start. `env` adds container
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
metadata: {{name: {name}, namespace: default}}
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
metadata: {name: web-stable, namespace: default}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-canary, namespace: default}
spec: {selector: {app: web}, ports: [{port: 80}]}
"#;

/// `web_rollout`'s Services when traffic goes through a `web` Service of its own, 100 requests/s,
/// and the stable and canary Services carry none: the Pods' share of it follows their count.
pub const TRAFFIC_SERVICES: &str = r#"
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {sim.serin.dev/rps: "100"}}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-stable, namespace: default, annotations: {sim.serin.dev/rps: "0"}}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-canary, namespace: default, annotations: {sim.serin.dev/rps: "0"}}
spec: {selector: {app: web}, ports: [{port: 80}]}
"#;

/// Every Rollout's status in `default`, by name (empty while one has none).
pub async fn rollout_statuses(
    client: &kube::Client,
) -> std::collections::BTreeMap<String, serin::crd::rollout::RolloutStatus> {
    let api: kube::Api<serin::crd::rollout::Rollout> = kube::Api::namespaced(client.clone(), "default");
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

/// Route weights seen by a watch on the HTTPRoute `name` in `default`: each (stable, canary)
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
    let routes: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(client.clone(), "default", &ar);
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
