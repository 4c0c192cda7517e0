//! `serin convert FILE...`: reads Argo Rollouts manifests (files, or stdin with none or `-`),
//! prints them as Serin's on stdout, and says on stderr what it could not carry over.

use serde_json::Value;
use std::io::Read;
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
    #[error("cannot read {what}: {source}")]
    Read { what: String, source: std::io::Error },
    #[error("{what} is not YAML: {message}")]
    Parse { what: String, message: String },
    #[error("cannot print the result as YAML: {0}")]
    Print(String),
    #[error("{0} thing(s) could not be carried over (--strict)")]
    Strict(usize),
}

fn read(path: &PathBuf) -> Result<(String, String), ConvertError> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| ConvertError::Read {
                what: "stdin".into(),
                source,
            })?;
        return Ok(("stdin".into(), text));
    }
    let what = path.display().to_string();
    std::fs::read_to_string(path)
        .map(|text| (what.clone(), text))
        .map_err(|source| ConvertError::Read { what, source })
}

pub fn run(args: ConvertArgs) -> Result<(), ConvertError> {
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files
    };
    let mut documents: Vec<Value> = Vec::new();
    for path in &files {
        let (what, text) = read(path)?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| ConvertError::Parse {
            what: what.clone(),
            message: e.to_string(),
        })?;
        documents.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    let (converted, notes) = crate::convert::convert(documents);
    let yaml = serde_saphyr::to_string_multiple(&converted).map_err(|e| ConvertError::Print(e.to_string()))?;
    print!("{yaml}");
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
