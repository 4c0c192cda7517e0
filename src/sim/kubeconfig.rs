//! The kubeconfig that points kubectl and kube-rs at the simulated cluster.

use std::net::SocketAddr;
use std::path::Path;

/// The bearer token of the kubeconfig's user, the cluster's administrator.
pub const ADMIN_TOKEN: &str = "serin-sim";

pub fn render(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: serin-sim
  cluster:
    server: http://{addr}
users:
- name: serin-sim
  user:
    token: {ADMIN_TOKEN}
contexts:
- name: serin-sim
  context:
    cluster: serin-sim
    user: serin-sim
    namespace: default
current-context: serin-sim
"
    )
}

/// Written to a temporary file and renamed, so a reader never sees half a file.
pub fn write(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, render(addr))?;
    std::fs::rename(&tmp, path)
}
