//! How commands reach a cluster: `--kubeconfig`, `--context`, `-n`, as kubectl does.

use std::path::PathBuf;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeArgs {
    /// Path to a kubeconfig; defaults to $KUBECONFIG, ~/.kube/config, then the in-cluster account.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace; defaults to the context's.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read the kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("cannot find a cluster to talk to ({0}); set KUBECONFIG or pass --kubeconfig")]
    NoConfig(String),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

impl KubeArgs {
    /// A client and the namespace commands act in, identified by `agent` in its User-Agent.
    pub async fn connect(&self) -> Result<(kube::Client, String), ConnectError> {
        self.connect_as("kubectl-serin").await
    }

    pub async fn connect_as(&self, agent: &str) -> Result<(kube::Client, String), ConnectError> {
        let (config, namespace) = self.config_as(agent).await?;
        Ok((kube::Client::try_from(config)?, namespace))
    }

    /// The client configuration, for callers that add layers to the client.
    pub async fn config_as(&self, agent: &str) -> Result<(kube::Config, String), ConnectError> {
        let options = kube::config::KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let mut config = match &self.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| ConnectError::Kubeconfig {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| ConnectError::Kubeconfig {
                        path: path.clone(),
                        message: e.to_string(),
                    })?
            }
            None if self.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| ConnectError::NoConfig(e.to_string()))?,
            None => kube::Config::infer()
                .await
                .map_err(|e| ConnectError::NoConfig(e.to_string()))?,
        };
        if let Ok(value) = format!("{agent}/{}", env!("CARGO_PKG_VERSION")).parse() {
            config.headers.push((http::header::USER_AGENT, value));
        }
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        Ok((config, namespace))
    }
}
