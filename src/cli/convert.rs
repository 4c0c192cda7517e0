//! `serin convert FILE...`: reads Argo Rollouts manifests (files, or stdin with none or `-`),
//! prints them as Serin's on stdout, and says on stderr what it could not carry over.

use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Manifest files; none, or `-`, reads stdin.
    pub files: Vec<PathBuf>,
    /// Exit non-zero when anything could not be carried over.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Manifest(#[from] super::manifests::ManifestError),
    #[error("cannot print the result as YAML: {0}")]
    Print(String),
    #[error("{0} thing(s) could not be carried over (--strict)")]
    Strict(usize),
}

pub fn run(args: ConvertArgs) -> Result<(), ConvertError> {
    let documents: Vec<Value> = super::manifests::read_documents(&args.files)?
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let (converted, notes) = crate::convert::convert(documents);
    let yaml = serde_saphyr::to_string_multiple(&converted).map_err(|e| ConvertError::Print(e.to_string()))?;
    super::out(&yaml);
    for n in &notes {
        let mark = if n.lost { "warning" } else { "note" };
        eprintln!("serin convert: {mark}: {n}");
    }
    let lost = notes.iter().filter(|n| n.lost).count();
    if args.strict && lost > 0 {
        return Err(ConvertError::Strict(lost));
    }
    Ok(())
}
