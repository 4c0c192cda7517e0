//! `serin dashboard`: a web UI served by the binary itself, every asset embedded. It shows the
//! Rollouts, a page per Rollout with its steps, weight and measurements over time, and steers
//! them with the same status writes as the CLI.

pub mod auth;
pub mod routes;
pub mod state;
pub mod view;

use crate::cli::kube_args::{ConnectError, KubeArgs};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Where to serve the dashboard.
    #[arg(long, default_value = "127.0.0.1:3100")]
    pub listen: SocketAddr,
    /// Read-only unless a request carries a bearer token; the token's user must be allowed to
    /// patch `rollouts/status` (TokenReview and SubjectAccessReview). For running in the cluster.
    #[arg(long)]
    pub require_token: bool,
    /// Show Rollouts of every namespace, not only the context's (or `-n`'s).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("serving the dashboard: {0}")]
    Serve(std::io::Error),
}

pub async fn run(args: DashboardArgs) -> Result<(), DashboardError> {
    let (client, ns) = args.kube.connect_as("serin-dashboard").await?;
    // Without -n, a person sees every namespace their credentials may list.
    let namespace = (!args.all_namespaces && args.kube.namespace.is_some()).then_some(ns);
    let state = state::start(client, namespace.clone());
    let mode = if args.require_token {
        auth::Mode::Token
    } else {
        auth::Mode::Kubeconfig
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| DashboardError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(DashboardError::Serve)?;
    let app = Arc::new(routes::App {
        state,
        mode,
        hosts: routes::own_hosts(addr),
    });
    eprintln!(
        "serin dashboard: http://{addr}/ ({}; {})",
        namespace.map_or("all namespaces".to_string(), |n| format!("namespace {n}")),
        if args.require_token {
            "read-only without a bearer token"
        } else {
            "acting with your kubeconfig's credentials"
        }
    );
    let server = axum::serve(listener, routes::router(app));
    tokio::select! {
        r = server => r.map_err(DashboardError::Serve),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
