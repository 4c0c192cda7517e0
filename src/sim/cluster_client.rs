//! How the simulated cluster's tools that work on any cluster (`serin sim traffic`, `serin sim
//! faults-proxy`) reach it: a kubeconfig file's current context.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ClusterClientError {
    #[error("cannot read the kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// The client configuration of `path`'s current context.
pub async fn config(path: &Path) -> Result<kube::Config, ClusterClientError> {
    let bad = |e: &dyn std::fmt::Display| ClusterClientError::Kubeconfig {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(&e))?;
    kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| bad(&e))
}

/// A client of `path`'s cluster that names itself `agent` in its User-Agent.
pub async fn client(path: &Path, agent: &str) -> Result<kube::Client, ClusterClientError> {
    let mut config = config(path).await?;
    if let Ok(value) = format!("{agent}/{}", env!("CARGO_PKG_VERSION")).parse() {
        config.headers.push((http::header::USER_AGENT, value));
    }
    Ok(kube::Client::try_from(config)?)
}
