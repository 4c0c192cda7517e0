//! The simulated Kubernetes cluster: an API server, the workload and garbage-collection
//! controllers, and a traffic simulator, in one process on loopback. Test and demo
//! infrastructure, faithful to what Serin, kubectl and kube-rs can observe.

pub mod admission;
pub mod api;
pub mod apiservices;
pub mod authn;
pub mod authz;
pub mod builtin_schemas;
pub mod cluster_client;
pub mod convert;
pub mod crd;
pub mod daemonsets;
pub mod discovery;
pub mod faults;
pub mod faults_proxy;
pub mod fieldset;
pub mod gc;
pub mod jobs;
pub mod kubeconfig;
pub mod kubelet;
pub mod lists;
pub mod managed;
pub mod meta;
pub mod nodes;
pub mod openapi;
pub mod openapi_v2;
pub mod options;
pub mod patch;
pub mod policy;
pub mod protobuf;
pub mod rbac;
pub mod registry;
pub mod requests;
pub mod resources;
pub mod reviews;
pub mod schema;
pub mod selector;
pub mod status;
pub mod store;
pub mod table;
pub mod tokens;
pub mod traffic;
pub mod users;
pub mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot write the kubeconfig to {path}: {source}")]
    Kubeconfig { path: PathBuf, source: std::io::Error },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Traffic(#[from] traffic::from_api::TrafficError),
    #[error(transparent)]
    FaultsProxy(#[from] faults_proxy::ProxyError),
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SimCommand {
    /// Serve the traffic simulator's series for any cluster, read through its API (Services, Pods,
    /// HTTPRoutes, VirtualServices, TrafficSplits, canary Ingresses).
    Traffic(traffic::from_api::TrafficArgs),
    /// Stand in front of any cluster's API server with the simulated cluster's faults (conflicts,
    /// throttling, errors, expired and cut watches, delays), set with `PUT /sim/faults`.
    FaultsProxy(faults_proxy::FaultsProxyArgs),
}

#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: Option<SimCommand>,
    /// Address of the Kubernetes API.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Address of the traffic simulator's /metrics.
    #[arg(long, default_value = "127.0.0.1:9101")]
    pub traffic_listen: SocketAddr,
    /// Where to write a kubeconfig for this cluster, once it serves.
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
    /// Changes kept for watches; a watch from an older resourceVersion gets 410 Gone.
    #[arg(long, default_value_t = 20_000)]
    pub watch_history: usize,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 5.0)]
    pub bookmark_seconds: f64,
    /// Seconds between traffic simulation steps.
    #[arg(long, default_value_t = 0.25)]
    pub traffic_tick_seconds: f64,
    /// Faults to inject from the start, as JSON (`{"client":"serin-controller","conflict":0.1,...}`);
    /// `PUT /sim/faults` changes them later.
    #[arg(long, value_name = "JSON", value_parser = parse_faults)]
    pub faults: Option<faults::FaultSpec>,
}

fn parse_faults(s: &str) -> Result<faults::FaultSpec, String> {
    let spec: faults::FaultSpec = serde_json::from_str(s).map_err(|e| format!("not a fault spec: {e}"))?;
    spec.validate()?;
    Ok(spec)
}

/// A running simulated cluster, for tests and the demo in this process.
pub struct Sim {
    pub api_addr: SocketAddr,
    pub traffic_addr: SocketAddr,
    pub store: Arc<store::Store>,
}

/// Starts the cluster's servers and controllers on the current runtime.
pub async fn start(args: SimArgs) -> Result<(Sim, impl std::future::Future<Output = Result<(), SimError>>), SimError> {
    let store = store::Store::new(args.watch_history);
    let api_listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| SimError::Listen {
            addr: args.listen,
            source,
        })?;
    let traffic_listener = tokio::net::TcpListener::bind(args.traffic_listen)
        .await
        .map_err(|source| SimError::Listen {
            addr: args.traffic_listen,
            source,
        })?;
    let api_addr = api_listener.local_addr().map_err(SimError::Serve)?;
    let traffic_addr = traffic_listener.local_addr().map_err(SimError::Serve)?;
    let state = api::ApiState {
        store: store.clone(),
        server_address: api_addr.to_string(),
        bookmark_interval: Duration::from_secs_f64(args.bookmark_seconds.max(0.1)),
        requests: Arc::new(requests::RequestCounts::default()),
        faults: Arc::new(faults::Faults::new(args.faults.clone().unwrap_or_default())),
        tokens: Arc::new(tokens::Tokens::default()),
    };
    let traffic = Arc::new(Mutex::new(traffic::Traffic::default()));
    nodes::register(&store);
    apiservices::register_local(&store);
    tokio::spawn(nodes::run(store.clone()));
    tokio::spawn(apiservices::run(store.clone()));
    tokio::spawn(gc::run(store.clone()));
    tokio::spawn(workload::run(store.clone()));
    tokio::spawn(jobs::run(store.clone()));
    tokio::spawn(traffic::run(
        store.clone(),
        traffic.clone(),
        Duration::from_secs_f64(args.traffic_tick_seconds.max(0.01)),
    ));
    let api = axum::serve(api_listener, api::router(state));
    let metrics = axum::serve(traffic_listener, traffic::router(traffic));
    let serving = async move {
        tokio::select! {
            r = api => r.map_err(SimError::Serve),
            r = metrics => r.map_err(SimError::Serve),
        }
    };
    if let Some(path) = &args.kubeconfig_out {
        kubeconfig::write(path, api_addr).map_err(|source| SimError::Kubeconfig {
            path: path.clone(),
            source,
        })?;
    }
    Ok((
        Sim {
            api_addr,
            traffic_addr,
            store,
        },
        serving,
    ))
}

/// `serin sim`: serves until stopped.
pub async fn run(args: SimArgs) -> Result<(), SimError> {
    match args.command {
        Some(SimCommand::Traffic(traffic)) => return Ok(traffic::from_api::run(traffic).await?),
        Some(SimCommand::FaultsProxy(proxy)) => return Ok(faults_proxy::run(proxy).await?),
        None => {}
    }
    let (sim, serving) = start(args.clone()).await?;
    tracing::info!(api = %sim.api_addr, traffic = %sim.traffic_addr, "simulated cluster serving");
    eprintln!(
        "serin sim: Kubernetes API on http://{}  traffic metrics on http://{}/metrics",
        sim.api_addr, sim.traffic_addr
    );
    if let Some(path) = &args.kubeconfig_out {
        eprintln!("serin sim: kubeconfig written to {}", path.display());
    }
    tokio::select! {
        r = serving => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
