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
    /// Print Serin's CustomResourceDefinitions as YAML (or write one file each with --write DIR).
    Crds(CrdsArgs),
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
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Sim(args) => crate::sim::run(args).await?,
        Command::Demo(args) => demo::run(args).await?,
        Command::Crds(args) => crds(args)?,
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
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}
