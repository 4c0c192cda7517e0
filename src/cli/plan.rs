//! `serin plan FILE...`: the whole timeline of each Rollout's next update, read from the
//! manifests (with the analysis templates they name), without a cluster.

use crate::crd::analysis::{AnalysisTemplate, ClusterAnalysisTemplate};
use crate::crd::rollout::Rollout;
use crate::reconcile::analysis_templates::TemplateId;
use crate::timeline::{self, Options, Templates};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Manifest files with the Rollout and the analysis templates it names; none, or `-`, reads stdin.
    pub files: Vec<PathBuf>,
    /// Requests per second the Rollout's Service takes: shows how many reach the new version.
    #[arg(long)]
    pub rps: Option<f64>,
    /// How long a new Pod takes to become ready (`30s`, `2m`).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub pod_startup: Duration,
    /// `text` for people, `json` for programs.
    #[arg(short, long, value_enum, default_value_t = PlanOutput::Text)]
    pub output: PlanOutput,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanOutput {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::plan::steps::parse_duration(&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
        s.into(),
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Manifest(#[from] super::manifests::ManifestError),
    #[error("no Rollout (apiVersion serin.dev/v1alpha1) in the files given")]
    NoRollout,
    #[error("{what}: {kind} {name:?} is not valid: {message}")]
    Document {
        what: String,
        kind: String,
        name: String,
        message: String,
    },
    #[error("{what}: an Argo Rollouts manifest: `serin convert {what}` turns it into Serin's")]
    Argo { what: String },
    #[error("rollout {name}: {message}")]
    Invalid { name: String, message: String },
    #[error("--rps must be a positive number of requests per second, not {0}")]
    Rps(f64),
    #[error("cannot print JSON: {0}")]
    Json(String),
}

/// The Rollouts and templates among the documents; other kinds are left alone.
pub fn sort_documents(documents: Vec<(String, Value)>) -> Result<(Vec<Rollout>, Templates), PlanError> {
    let mut rollouts = Vec::new();
    let mut templates = Templates::new();
    for (what, doc) in documents {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        let name = doc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if api.starts_with("argoproj.io/") && matches!(kind.as_str(), "Rollout" | "AnalysisTemplate") {
            return Err(PlanError::Argo { what });
        }
        if !api.starts_with("serin.dev/") {
            continue;
        }
        let bad = |message: String| PlanError::Document {
            what: what.clone(),
            kind: kind.clone(),
            name: name.clone(),
            message,
        };
        match kind.as_str() {
            "Rollout" => rollouts.push(serde_json::from_value::<Rollout>(doc).map_err(|e| bad(e.to_string()))?),
            "AnalysisTemplate" => {
                let t: AnalysisTemplate = serde_json::from_value(doc).map_err(|e| bad(e.to_string()))?;
                templates.insert(TemplateId { cluster: false, name }, t.spec);
            }
            "ClusterAnalysisTemplate" => {
                let t: ClusterAnalysisTemplate = serde_json::from_value(doc).map_err(|e| bad(e.to_string()))?;
                templates.insert(TemplateId { cluster: true, name }, t.spec.into());
            }
            _ => {}
        }
    }
    Ok((rollouts, templates))
}

pub fn run(args: PlanArgs) -> Result<(), PlanError> {
    if let Some(rps) = args.rps
        && !(rps.is_finite() && rps > 0.0)
    {
        return Err(PlanError::Rps(rps));
    }
    let (rollouts, templates) = sort_documents(super::manifests::read_documents(&args.files)?)?;
    if rollouts.is_empty() {
        return Err(PlanError::NoRollout);
    }
    let opts = Options {
        rps: args.rps,
        pod_startup: args.pod_startup,
    };
    let mut timelines = Vec::new();
    for r in &rollouts {
        let name = r.metadata.name.clone().unwrap_or_default();
        let t = timeline::timeline(r, &templates, &opts).map_err(|e| PlanError::Invalid {
            name,
            message: e.to_string(),
        })?;
        timelines.push(t);
    }
    match args.output {
        PlanOutput::Text => {
            let texts: Vec<String> = timelines.iter().map(timeline::render::text).collect();
            super::out(&texts.join("\n"));
        }
        PlanOutput::Json => {
            let json = if timelines.len() == 1 {
                serde_json::to_string_pretty(&timelines[0])
            } else {
                serde_json::to_string_pretty(&timelines)
            };
            super::out(&format!("{}\n", json.map_err(|e| PlanError::Json(e.to_string()))?));
        }
    }
    Ok(())
}
