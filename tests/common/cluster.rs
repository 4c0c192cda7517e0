//! The clusters the tests run on. `Cluster::start()` is a namespace of its own on the real control
//! plane (kube-apiserver, etcd, kube-controller-manager, kube-scheduler and kwok, built from source
//! by `cluster/build` and started by `cluster/up` once per test binary); `Cluster::sim()` is a
//! `serin sim` process of its own, for the simulated cluster's tests and the demo.

use super::{Proc, free_port, kubectl_cmd, serin_bin};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The real control plane this test binary shares: stopped (by PID) when the binary exits.
pub struct ControlPlane {
    pub dir: PathBuf,
    /// cluster-admin.
    pub kubeconfig: PathBuf,
    /// serin-test-user, with no rights until a test grants some.
    pub user_kubeconfig: PathBuf,
    pub audit_log: PathBuf,
}

static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();

/// Starts the control plane on first use; every test of the binary shares it.
pub fn control_plane() -> &'static ControlPlane {
    CONTROL_PLANE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("serin-cluster-{}", std::process::id()));
        ControlPlane::up(dir)
    })
}

impl ControlPlane {
    /// `cluster/up DIR`, stopped when this process ends (or by `down`).
    fn up(dir: PathBuf) -> ControlPlane {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let _ = std::fs::remove_dir_all(&dir);
        let started = Instant::now();
        let out = Command::new(root.join("cluster/up"))
            .arg(&dir)
            .args(["--owner-pid", &std::process::id().to_string(), "--remove"])
            .stdin(Stdio::null())
            .output()
            .expect("cluster/up runs");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "cluster/up failed (run `make cluster`, then `cluster/up DIR` to see it yourself):\n{said}"
        );
        eprintln!(
            "real control plane up in {:.1} s at {} ({})",
            started.elapsed().as_secs_f64(),
            dir.display(),
            said.trim()
        );
        ControlPlane {
            kubeconfig: dir.join("kubeconfig"),
            user_kubeconfig: dir.join("user.kubeconfig"),
            audit_log: dir.join("audit.log"),
            dir,
        }
    }

    fn down(&self) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let _ = Command::new(root.join("cluster/down")).arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The control plane a test runs on: the binary's shared one, or one of its own.
enum Plane {
    Shared(&'static ControlPlane),
    Own(ControlPlane),
}

impl Plane {
    fn get(&self) -> &ControlPlane {
        match self {
            Plane::Shared(cp) => cp,
            Plane::Own(cp) => cp,
        }
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        if let Plane::Own(cp) = self {
            cp.down();
        }
    }
}

struct FaultsProxy {
    _proc: Proc,
    url: String,
    /// Reaches the API server through the proxy, acting in the test's namespace.
    kubeconfig: PathBuf,
}

enum Backend {
    /// `serin sim`, on these loopback ports.
    Sim {
        proc: Proc,
        api_port: u16,
        traffic_port: u16,
    },
    /// A namespace on the shared real control plane; `serin sim traffic` for it once asked for,
    /// and `serin sim faults-proxy` in front of the API server for a test that injects faults.
    Real {
        plane: Plane,
        traffic: OnceLock<(Proc, u16)>,
        faults: Option<Box<FaultsProxy>>,
    },
}

/// A cluster as one test sees it: kubectl, kube clients and `serin` commands all act in
/// `namespace` unless told otherwise.
pub struct Cluster {
    backend: Backend,
    pub dir: tempfile::TempDir,
    /// Admin credentials, with `namespace` as the context's namespace.
    pub kubeconfig: PathBuf,
    pub namespace: String,
}

/// A namespace name from the running test's name, unique within the binary.
fn namespace_for_test() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test").rsplit("::").next().unwrap_or("test");
    let mut name: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(50)
        .collect();
    name = name.trim_matches('-').to_string();
    if name.is_empty() || name == "main" {
        name = "test".into();
    }
    format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The stdout of a command that must succeed; fails the test with all it said otherwise.
pub(crate) fn succeeded(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `serin ARGS` as a process of the test's, its stderr to `log`.
fn spawn_serin(args: &[&std::ffi::OsStr], log: &Path, name: &'static str) -> Proc {
    let log = std::fs::File::create(log).expect("a log file");
    let child = Command::new(serin_bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    Proc { child, name }
}

/// Waits (20 s at most) until `ready`, or fails the test saying `what` did not happen.
fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within 20s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A copy of a kubeconfig whose context acts in `namespace`.
fn kubeconfig_in(from: &Path, to: &Path, namespace: &str) {
    let text = std::fs::read_to_string(from).expect("a kubeconfig");
    let text = text.replace("namespace: default", &format!("namespace: {namespace}"));
    std::fs::write(to, text).expect("kubeconfig written");
}

/// `serin sim faults-proxy` in front of the real API server, with no faults until some are set.
fn start_faults_proxy(dir: &Path, kubeconfig: &Path, namespace: &str) -> FaultsProxy {
    let port = free_port();
    let written = dir.join("faults-proxy.kubeconfig.tmp");
    let listen = format!("127.0.0.1:{port}");
    let proc = spawn_serin(
        &[
            "sim".as_ref(),
            "faults-proxy".as_ref(),
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
            "--listen".as_ref(),
            listen.as_ref(),
            "--kubeconfig-out".as_ref(),
            written.as_os_str(),
        ],
        &dir.join("faults-proxy.log"),
        "serin sim faults-proxy",
    );
    wait_until("the fault proxy wrote a kubeconfig", || written.exists());
    let proxied = dir.join("faults-proxy.kubeconfig");
    kubeconfig_in(&written, &proxied, namespace);
    FaultsProxy {
        _proc: proc,
        url: format!("http://127.0.0.1:{port}"),
        kubeconfig: proxied,
    }
}

impl Cluster {
    /// A fresh namespace on the real control plane.
    pub fn start() -> Cluster {
        Self::real(Plane::Shared(control_plane()), false)
    }

    /// A control plane of its own, for a test that changes what the whole cluster shares (an
    /// install into serin-system, cluster-wide RBAC, admission policies).
    pub fn start_alone() -> Cluster {
        let dir = std::env::temp_dir().join(format!("serin-cluster-{}-{}", std::process::id(), namespace_for_test()));
        Self::real(Plane::Own(ControlPlane::up(dir)), false)
    }

    /// A fresh namespace on the real control plane, with the controller reaching the API server
    /// through a fault-injecting proxy (`set_faults`, `controller_kubeconfig`).
    pub fn start_with_faults() -> Cluster {
        Self::real(Plane::Shared(control_plane()), true)
    }

    fn real(plane: Plane, with_faults: bool) -> Cluster {
        let cp = plane.get();
        let dir = tempfile::tempdir().expect("temp dir");
        let namespace = namespace_for_test();
        let kubeconfig = dir.path().join("kubeconfig");
        kubeconfig_in(&cp.kubeconfig, &kubeconfig, &namespace);
        let faults = with_faults.then(|| Box::new(start_faults_proxy(dir.path(), &kubeconfig, &namespace)));
        let cluster = Cluster {
            backend: Backend::Real {
                plane,
                traffic: OnceLock::new(),
                faults,
            },
            dir,
            kubeconfig,
            namespace,
        };
        cluster.kubectl_ok(&["create", "namespace", &cluster.namespace]);
        // Pods are refused until the namespace's default ServiceAccount exists.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.kubectl(&["get", "serviceaccount", "default"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "no default ServiceAccount in {}",
                cluster.namespace
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// A `serin sim` of its own.
    pub fn sim() -> Cluster {
        Self::sim_with(&[])
    }

    pub fn sim_with(extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let api_port = free_port();
        let traffic_port = free_port();
        let (listen, traffic) = (format!("127.0.0.1:{api_port}"), format!("127.0.0.1:{traffic_port}"));
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "sim".as_ref(),
            "--listen".as_ref(),
            listen.as_ref(),
            "--traffic-listen".as_ref(),
            traffic.as_ref(),
            "--kubeconfig-out".as_ref(),
            kubeconfig.as_os_str(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let proc = spawn_serin(&args, &dir.path().join("sim.log"), "serin sim");
        wait_until("serin sim wrote a kubeconfig", || kubeconfig.exists());
        Cluster {
            backend: Backend::Sim {
                proc,
                api_port,
                traffic_port,
            },
            dir,
            kubeconfig,
            namespace: "default".into(),
        }
    }

    /// The kubeconfig a controller under test gets: through the fault proxy where there is one.
    pub fn controller_kubeconfig(&self) -> &Path {
        match &self.backend {
            Backend::Real {
                faults: Some(proxy), ..
            } => &proxy.kubeconfig,
            _ => &self.kubeconfig,
        }
    }

    /// Where `/sim/faults` is served: the simulated cluster, or the fault proxy.
    fn faults_url(&self) -> String {
        match &self.backend {
            Backend::Sim { api_port, .. } => format!("http://127.0.0.1:{api_port}/sim/faults"),
            Backend::Real {
                faults: Some(proxy), ..
            } => format!("{}/sim/faults", proxy.url),
            Backend::Real { faults: None, .. } => {
                panic!("faults on the real control plane need Cluster::start_with_faults()")
            }
        }
    }

    /// The faults in force.
    pub async fn faults(&self) -> serde_json::Value {
        reqwest::get(self.faults_url())
            .await
            .expect("faults are served")
            .json()
            .await
            .expect("faults as JSON")
    }

    /// The real control plane under this cluster; only on the real one.
    pub fn plane(&self) -> &ControlPlane {
        match &self.backend {
            Backend::Real { plane, .. } => plane.get(),
            Backend::Sim { .. } => panic!("the simulated cluster has no real control plane"),
        }
    }

    /// On the real control plane other tests of the binary also use.
    pub fn shares_its_plane(&self) -> bool {
        matches!(
            self.backend,
            Backend::Real {
                plane: Plane::Shared(_),
                ..
            }
        )
    }

    /// A kubeconfig acting as a ServiceAccount (its token from the TokenRequest API), in the
    /// ServiceAccount's namespace: as a Pod running under it reaches the API server.
    pub fn service_account_kubeconfig(&self, namespace: &str, account: &str) -> PathBuf {
        let token = self.kubectl_ok(&["create", "token", account, "-n", namespace, "--duration=2h"]);
        let admin = std::fs::read_to_string(&self.kubeconfig).expect("the admin kubeconfig");
        let server = admin
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("a server");
        let ca = admin
            .lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
            .expect("a CA");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: {server}, certificate-authority-data: {ca}}}\nusers:\n- name: {account}\n  user: {{token: {}}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: {account}, namespace: {namespace}}}\ncurrent-context: c\n",
            token.trim()
        );
        let path = self.dir.path().join(format!("{namespace}-{account}.kubeconfig"));
        std::fs::write(&path, text).expect("kubeconfig written");
        path
    }

    /// Every request in the real API server's audit log (any namespace, cluster-wide too).
    pub fn audited(&self) -> Vec<serde_json::Value> {
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::read_to_string(&self.plane().audit_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn is_real(&self) -> bool {
        matches!(self.backend, Backend::Real { .. })
    }

    /// The simulated cluster's plain-HTTP address (its fault and metrics endpoints).
    pub fn api_url(&self) -> String {
        match &self.backend {
            Backend::Sim { api_port, .. } => format!("http://127.0.0.1:{api_port}"),
            Backend::Real { .. } => panic!("api_url is the simulated cluster's; the real one speaks TLS"),
        }
    }

    /// The Prometheus target serving the traffic simulator's series for this cluster.
    pub fn traffic_target(&self) -> String {
        match &self.backend {
            Backend::Sim { traffic_port, .. } => format!("127.0.0.1:{traffic_port}"),
            Backend::Real { traffic, .. } => {
                let (_, port) = traffic.get_or_init(|| self.start_traffic());
                format!("127.0.0.1:{port}")
            }
        }
    }

    fn start_traffic(&self) -> (Proc, u16) {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let proc = spawn_serin(
            &[
                "sim".as_ref(),
                "traffic".as_ref(),
                "--kubeconfig".as_ref(),
                self.kubeconfig.as_os_str(),
                "-n".as_ref(),
                self.namespace.as_ref(),
                "--listen".as_ref(),
                listen.as_ref(),
            ],
            &self.dir.path().join("traffic.log"),
            "serin sim traffic",
        );
        wait_until("serin sim traffic serving", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        (proc, port)
    }

    /// A kubeconfig for an identity with no rights of its own (serin-test-user), acting in this
    /// namespace; only on the real control plane.
    pub fn user_kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("user.kubeconfig");
        if !path.exists() {
            kubeconfig_in(&self.plane().user_kubeconfig, &path, &self.namespace);
        }
        path
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
        succeeded(&format!("kubectl {args:?}"), self.kubectl(args))
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

    /// The requests the API server answered, by client, verb, group, resource and code: the
    /// simulated cluster's counts, or the real API server's audit log of this namespace.
    pub async fn requests(&self) -> Vec<(serin::sim::requests::RequestKey, u64)> {
        match &self.backend {
            Backend::Sim { .. } => {
                let body = reqwest::get(format!("{}/metrics", self.api_url()))
                    .await
                    .expect("the sim answers")
                    .text()
                    .await
                    .expect("its metrics");
                serin::sim::requests::parse(&body)
            }
            Backend::Real {
                faults: Some(proxy), ..
            } => {
                let body = reqwest::get(format!("{}/metrics", proxy.url))
                    .await
                    .expect("the fault proxy answers")
                    .text()
                    .await
                    .expect("its counts");
                serin::sim::requests::parse(&body)
            }
            Backend::Real { faults: None, .. } => {
                // The audit log is written in batches at most a second apart.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                super::audit::requests_in(&self.plane().audit_log, &self.namespace)
            }
        }
    }

    /// Sets the faults injected (`PUT /sim/faults`), by the simulated cluster or the fault proxy.
    pub async fn set_faults(&self, spec: serde_json::Value) {
        let r = reqwest::Client::new()
            .put(self.faults_url())
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

    /// `kubectl apply --server-side --force-conflicts` of YAML, as Argo CD's server-side sync
    /// applies a commit; fails the test with kubectl's words if refused. Forced, because a Service's
    /// selector is atomic and, once Serin points it, also Serin's: a second apply of the Service
    /// conflicts with Serin, and a forced one takes the selector back until Serin points it again.
    pub fn apply_yaml(&self, yaml: &str) {
        let out = self.kubectl_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Applies a CRD file named `<crd name>.yaml` and waits until it is Established. The real
    /// control plane gets the CRD its project publishes (`tests/data/crds/`) instead of the
    /// simulated cluster's compact one.
    pub fn install_crd_file(&self, path: &Path) {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let name = stem.trim_start_matches("gateway.networking.k8s.io_");
        let name = if name == "httproutes" {
            "httproutes.gateway.networking.k8s.io"
        } else {
            name
        };
        let published = |file: &str| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/crds")
                .join(file)
        };
        let file = match (self.is_real(), name) {
            (true, "httproutes.gateway.networking.k8s.io") => published("gateway.networking.k8s.io_httproutes.yaml"),
            (true, "virtualservices.networking.istio.io" | "destinationrules.networking.istio.io") => {
                published("istio-networking.yaml")
            }
            (true, "trafficsplits.split.smi-spec.io") => published("smi-trafficsplits.yaml"),
            _ => path.to_path_buf(),
        };
        self.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap_or_default()]);
        self.wait_established(name);
    }

    /// Installs Serin's CRDs from `crds/` with kubectl, as a user would, and waits until they are
    /// Established; on the shared real control plane once for all the binary's tests.
    pub fn install_crds(&self) {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        let install = || {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds");
            self.kubectl_ok(&["apply", "--server-side", "-f", dir.to_str().unwrap_or_default()]);
            for crd in [
                "rollouts.serin.dev",
                "analysistemplates.serin.dev",
                "clusteranalysistemplates.serin.dev",
                "analysisruns.serin.dev",
            ] {
                self.wait_established(crd);
            }
        };
        if self.shares_its_plane() {
            INSTALLED.get_or_init(install);
        } else {
            install();
        }
    }

    /// Waits until a CRD is Established. `kubectl wait` fails at once on a CRD whose status has
    /// no conditions yet, as a just-created one may not, so it is asked again.
    fn wait_established(&self, crd: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.kubectl(&[
                "wait",
                "--for=condition=Established",
                &format!("crd/{crd}"),
                "--timeout=30s",
            ]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "CRD {crd} not Established: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
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
        succeeded(&format!("kubectl serin {args:?}"), self.kubectl_serin(args))
    }
}

impl Drop for Cluster {
    /// A real test's namespace goes, and the control plane's controllers clean up behind it.
    fn drop(&mut self) {
        if self.is_real() && !std::thread::panicking() {
            let _ = self.kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]);
        }
    }
}
