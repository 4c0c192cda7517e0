//! The `serin` command line.

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
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Sim(args) => crate::sim::run(args).await?,
    }
    Ok(())
}
