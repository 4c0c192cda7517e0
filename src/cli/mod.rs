//! The `serin` command line.

pub mod demo;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "serin",
    version,
    about = "Progressive delivery for Kubernetes: canary rollouts checked by Prometheus"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a simulated Kubernetes cluster (API server, workloads, traffic) for tests and demos.
    Sim(crate::sim::SimArgs),
    /// Tell the demo story on an embedded simulated cluster.
    Demo(demo::DemoArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    #[error(transparent)]
    Demo(#[from] demo::DemoError),
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Sim(args) => crate::sim::run(args).await?,
        Command::Demo(args) => demo::run(args).await?,
    }
    Ok(())
}
