//! The simulated cluster as a client Serin did not write sees it: the official Kubernetes Python
//! client (installed by `make test` under `.tools/python`) runs `tests/python/official_client.py`
//! against a fresh `serin sim`. Typed models refuse a Pod without the fields kubelet always sets,
//! `watch=True` must stream, error bodies must match the API server's byte for byte.

mod common;

use common::Cluster;
use std::process::Command;

fn run_checks() -> (bool, String) {
    let sim = Cluster::sim();
    let tools = std::env::var("SERIN_TOOLS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/official_client.py");
    let out = Command::new("python3")
        .arg(&script)
        .env("KUBECONFIG", &sim.kubeconfig)
        .env("PYTHONPATH", tools.join("python"))
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_official_python_client_reads_and_writes_the_simulated_cluster() {
    let (passed, text) = run_checks();
    assert!(
        passed,
        "the Python client's checks failed (run `make tools` first):\n{text}"
    );
    for check in [
        "typed_pods",
        "boolean_watch",
        "services",
        "conflicts",
        "nodes",
        "workloads",
        "api_services",
        "metadata_only",
    ] {
        assert!(
            text.lines().any(|l| l == format!("ok {check}")),
            "{check} did not pass:\n{text}"
        );
    }
}
