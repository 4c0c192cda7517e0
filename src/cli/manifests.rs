//! Manifest files as the commands that read them (`convert`, `plan`) take them: several files,
//! each with several YAML documents, or stdin for none or `-`.

use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {what}: {source}")]
    Read { what: String, source: std::io::Error },
    #[error("{what} is not YAML: {message}")]
    Parse { what: String, message: String },
}

fn read(path: &PathBuf) -> Result<(String, String), ManifestError> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| ManifestError::Read {
                what: "stdin".into(),
                source,
            })?;
        return Ok(("stdin".into(), text));
    }
    let what = path.display().to_string();
    std::fs::read_to_string(path)
        .map(|text| (what.clone(), text))
        .map_err(|source| ManifestError::Read { what, source })
}

/// Every document of every file, in order, with the file it came from; empty documents left out.
pub fn read_documents(files: &[PathBuf]) -> Result<Vec<(String, Value)>, ManifestError> {
    let stdin = [PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    let mut documents = Vec::new();
    for path in files {
        let (what, text) = read(path)?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| ManifestError::Parse {
            what: what.clone(),
            message: e.to_string(),
        })?;
        documents.extend(docs.into_iter().filter(|d| !d.is_null()).map(|d| (what.clone(), d)));
    }
    Ok(documents)
}
