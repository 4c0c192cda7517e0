//! The `serin` command line.

pub mod argocd;
pub mod convert;
pub mod demo;
pub mod kube_args;
pub mod manifests;
pub mod plan;
pub mod rollouts;

use clap::{Parser, Subcommand};

/// Writes a command's output to stdout. A reader that has gone (`serin crds | head`) ends the
/// output quietly, as for other Unix tools, rather than in a panic.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("serin: cannot write the output: {e}");
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "serin",
    version,
    about = "Progressive delivery for Kubernetes: canary rollouts checked by Prometheus"
)]
pub struct Cli {
    /// How log lines are written to stderr: `text` for people, `json` for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    /// Logs to stderr at the level RUST_LOG says (info by default). In JSON, each line carries
    /// the fields of the span it was written in: the Rollout's namespace, name and revision.
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
        // The demo tells its story on stdout; the controller inside it logs to a file.
        if let Command::Demo(demo) = &self.command {
            match std::fs::File::create(&demo.log) {
                Ok(file) => {
                    let logs = tracing_subscriber::fmt()
                        .with_env_filter(filter)
                        .with_ansi(false)
                        .with_writer(std::sync::Mutex::new(file));
                    logs.init();
                }
                Err(e) => eprintln!("cannot write the controller's log to {}: {e}", demo.log.display()),
            }
            return;
        }
        let logs = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        match self.log_format {
            LogFormat::Text => logs.init(),
            LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a simulated Kubernetes cluster (API server, workloads, traffic) for tests and demos.
    Sim(crate::sim::SimArgs),
    /// Tell the demo story on an embedded simulated cluster.
    Demo(demo::DemoArgs),
    /// Print Serin's CustomResourceDefinitions as YAML (or write one file each with --write DIR).
    Crds(CrdsArgs),
    /// Print the argocd-cm entries that give ArgoCD Serin's health checks and actions.
    ArgocdCm,
    /// Print Argo Rollouts manifests (Rollouts, AnalysisTemplates) as Serin's; say on stderr what
    /// could not be carried over.
    Convert(convert::ConvertArgs),
    /// Show the whole timeline of a Rollout's next update without applying anything: each step's
    /// traffic, Pods and time, the earliest and latest promotion, and what a failed analysis does.
    Plan(plan::PlanArgs),
    /// Serve a web UI of the Rollouts on --listen (127.0.0.1:3100): their steps, weights and
    /// measurements live, and promote, abort, retry, pause and resume with your credentials.
    Dashboard(crate::dashboard::DashboardArgs),
    /// Run the controller: reconcile Rollouts (all namespaces, or the one given with -n).
    Controller(ControllerArgs),
    /// Show a Rollout: phase, steps, weight, ReplicaSets, last decision.
    Get {
        #[command(subcommand)]
        what: GetWhat,
    },
    /// Move past the current step (a pause), or with --full skip every remaining step.
    Promote {
        name: String,
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        kube: kube_args::KubeArgs,
    },
    /// Send traffic back to the stable version and stop the rollout.
    Abort {
        name: String,
        #[command(flatten)]
        kube: kube_args::KubeArgs,
    },
    /// Run an aborted rollout's steps again.
    Retry {
        name: String,
        #[command(flatten)]
        kube: kube_args::KubeArgs,
    },
    /// Hold a rollout where it is.
    Pause {
        name: String,
        #[command(flatten)]
        kube: kube_args::KubeArgs,
    },
    /// Let a paused rollout go on.
    Resume {
        name: String,
        #[command(flatten)]
        kube: kube_args::KubeArgs,
    },
    /// Replace every Pod of a Rollout, a few at a time (sets spec.restartAt to now).
    Restart {
        name: String,
        #[command(flatten)]
        kube: kube_args::KubeArgs,
    },
    /// Change a Rollout's spec.
    Set {
        #[command(subcommand)]
        what: SetWhat,
    },
}

#[derive(Debug, Subcommand)]
pub enum GetWhat {
    /// One Rollout in detail.
    #[command(alias = "rollouts", alias = "ro")]
    Rollout {
        name: String,
        /// Print again whenever it changes.
        #[arg(short, long)]
        watch: bool,
        #[command(flatten)]
        kube: kube_args::KubeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SetWhat {
    /// `set image NAME CONTAINER=IMAGE`: release a new image.
    Image {
        name: String,
        assignment: String,
        #[command(flatten)]
        kube: kube_args::KubeArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub kube: kube_args::KubeArgs,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Run only while holding the `serin-controller` Lease (`serin-controller-I` with `--shard`),
    /// so that several replicas can run.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub leader_elect: bool,
    /// The controller's namespace, for its Lease and the `serin-notifications` ConfigMap of default
    /// notification targets; defaults to $POD_NAMESPACE, then the kubeconfig's namespace.
    #[arg(long, value_name = "NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Seconds a standby waits for a silent leader before it takes over.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub leader_election_lease_duration: u64,
    /// Rollouts reconciled at once, and as many AnalysisRuns. Each one in flight holds an API
    /// connection and its buffers; more than a few dozen only adds memory.
    #[arg(long, default_value_t = crate::reconcile::DEFAULT_WORKERS, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Which Secrets analysis may read (arguments, credentials): only those labelled
    /// `serin.dev/analysis-access: "true"` by their owner, or any in the Rollout's namespace.
    #[arg(long, value_enum, default_value_t = crate::reconcile::secrets::SecretAccess::Labelled)]
    pub secret_access: crate::reconcile::secrets::SecretAccess,
    /// The Prometheus a metric asks when its template gives no address.
    #[arg(long, env = "SERIN_PROMETHEUS_ADDRESS", value_name = "URL")]
    pub prometheus_address: Option<String>,
    /// Reconcile only shard I of N: the Rollouts whose namespace/name hashes to I, with their
    /// ReplicaSets, Services and AnalysisRuns. Run one controller for each I from 0 to N-1.
    #[arg(long, value_name = "I/N", default_value = "0/1")]
    pub shard: crate::shard::Shard,
}

#[derive(Debug, clap::Args)]
pub struct CrdsArgs {
    /// Write each CRD to DIR/<name>.yaml instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub write: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    #[error(transparent)]
    Demo(#[from] demo::DemoError),
    #[error("cannot render the CRDs as YAML: {0}")]
    Yaml(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Rollout(#[from] rollouts::RolloutCmdError),
    #[error(transparent)]
    Connect(#[from] kube_args::ConnectError),
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Leader(#[from] crate::leader::LeaderError),
    #[error("lost the leader Lease to another process; stopping so that only one acts")]
    LostLease,
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Dashboard(#[from] crate::dashboard::DashboardError),
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Sim(args) => crate::sim::run(args).await?,
        Command::Demo(args) => demo::run(args).await?,
        Command::Crds(args) => crds(args)?,
        Command::Convert(args) => convert::run(args)?,
        Command::Plan(args) => plan::run(args)?,
        Command::Dashboard(args) => crate::dashboard::run(args).await?,
        Command::ArgocdCm => out(&argocd::config_map().map_err(|e| CliError::Yaml(e.to_string()))?),
        Command::Controller(args) => controller(args).await?,
        Command::Get {
            what: GetWhat::Rollout { name, watch, kube },
        } => get_rollout(&kube, &name, watch).await?,
        Command::Promote { name, full, kube } => println!(
            "{}",
            rollouts::request(&kube, &name, rollouts::Action::Promote { full }).await?
        ),
        Command::Abort { name, kube } => {
            println!("{}", rollouts::request(&kube, &name, rollouts::Action::Abort).await?)
        }
        Command::Retry { name, kube } => {
            println!("{}", rollouts::request(&kube, &name, rollouts::Action::Retry).await?)
        }
        Command::Pause { name, kube } => {
            println!("{}", rollouts::request(&kube, &name, rollouts::Action::Pause).await?)
        }
        Command::Resume { name, kube } => {
            println!("{}", rollouts::request(&kube, &name, rollouts::Action::Resume).await?)
        }
        Command::Restart { name, kube } => println!("{}", rollouts::restart(&kube, &name).await?),
        Command::Set {
            what: SetWhat::Image { name, assignment, kube },
        } => println!("{}", rollouts::set_image(&kube, &name, &assignment).await?),
    }
    Ok(())
}

fn crds(args: CrdsArgs) -> Result<(), CliError> {
    for crd in crate::crd::all() {
        let yaml = crate::crd::to_yaml(&crd).map_err(|e| CliError::Yaml(e.to_string()))?;
        match &args.write {
            Some(dir) => {
                let path = dir.join(crate::crd::file_name(&crd));
                std::fs::write(&path, &yaml).map_err(|source| CliError::Write { path, source })?;
            }
            None => out(&format!("---\n{yaml}")),
        }
    }
    Ok(())
}

async fn controller(args: ControllerArgs) -> Result<(), CliError> {
    let namespace = args.kube.namespace.clone();
    let (config, kube_namespace) = args.kube.config_as("serin-controller").await?;
    let admin = std::sync::Arc::new(crate::admin::Admin::default());
    let counted = crate::admin::kube_requests::CountRequests(admin.metrics.kube_requests.clone());
    let mut no_retry = config.clone();
    no_retry.default_retry = false;
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(kube_args::ConnectError::from)?
        .with_layer(&counted)
        .build();
    let evictions = kube::client::ClientBuilder::try_from(no_retry)
        .map_err(kube_args::ConnectError::from)?
        .with_layer(&counted)
        .build();
    let pod = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "serin".into());
    let instance = format!(
        "{pod}-{}",
        crate::hash::hash_text(&format!("{pod}{:?}", std::time::SystemTime::now()))
            .get(..5)
            .unwrap_or("x")
    );
    tracing::info!(namespace = namespace.as_deref().unwrap_or("(all)"), instance = %instance, "serin controller starting");
    let addr = args.metrics_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Bind { addr, source })?;
    let server = axum::serve(listener, crate::admin::router(admin.clone()));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the admin server stopped");
        }
    });
    // The controller's own namespace: its Lease and its default notification targets.
    let home = args
        .leader_election_namespace
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or(kube_namespace);
    let stop = listen_for_stop();
    let election = if args.leader_elect {
        let campaign = async {
            // Before the Lease: a process that leads acts at once, and must know first whether
            // controllers of another shard count still run.
            let _peers = crate::leader::watch_peers(
                client.clone(),
                &home,
                args.shard,
                std::time::Duration::from_secs((args.leader_election_lease_duration / 3).max(1)),
                admin.clone(),
            )
            .await;
            crate::leader::campaign(
                client.clone(),
                &args.shard.lease_name(),
                &home,
                &crate::shard::identity(&instance, args.shard),
                args.leader_election_lease_duration,
                admin.clone(),
            )
            .await
        };
        // A stop while waiting for the Lease (held by another, or not ours to take) ends cleanly.
        tokio::select! {
            election = campaign => Some(election?),
            _ = stopped(stop.clone()) => {
                tracing::info!("serin controller stopped before it led");
                return Ok(());
            }
        }
    } else {
        admin.gate.set_leader(true);
        None
    };
    let controllers = crate::reconcile::run(
        client,
        namespace,
        instance,
        admin,
        home,
        crate::reconcile::Settings {
            workers: args.workers,
            shard: args.shard,
            analysis: crate::reconcile::AnalysisSettings {
                secret_access: args.secret_access,
                prometheus_address: args.prometheus_address.clone(),
            },
            evictions: Some(crate::reconcile::NoRetry(evictions)),
        },
    );
    // The controllers stop on SIGTERM once their running reconciles finish; one still waiting for a
    // first list (its CRD not installed, the API server gone) would never finish, so the wait is bounded.
    let bounded = async {
        tokio::select! {
            _ = controllers => {}
            _ = async { stopped(stop.clone()).await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "stopping without waiting longer for the controllers");
            }
        }
    };
    let Some(mut election) = election else {
        bounded.await;
        tracing::info!("serin controller stopped");
        return Ok(());
    };
    tokio::select! {
        _ = bounded => {}
        _ = election.lost() => return Err(CliError::LostLease),
    }
    // Stopped by a signal: hand the Lease over now rather than after it expires.
    election.release().await;
    tracing::info!("serin controller stopped");
    Ok(())
}

/// How long a stopping controller waits for its reconciles before it exits anyway.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Listens for SIGTERM and SIGINT from the start: a signal that came before anything else listened
/// would kill the process mid-way instead of stopping it.
fn listen_for_stop() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    tokio::spawn(async move {
        let term = async {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = tx.send(true);
    });
    rx
}

/// Resolves once a stop was asked for.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|asked| *asked).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn get_rollout(kube: &kube_args::KubeArgs, name: &str, watch: bool) -> Result<(), CliError> {
    let mut last = String::new();
    loop {
        let view = rollouts::describe(kube, name).await?;
        if view != last {
            if watch && !last.is_empty() {
                println!();
            }
            print!("{view}");
            last = view;
        }
        if !watch {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
