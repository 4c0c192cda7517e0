//! What a metric provider does: take one measurement — a value to judge, a verdict of its own
//! (a Job's), or "still going". One module per provider.

use super::condition::QueryResult;
use crate::crd::analysis::AnalysisPhase;
use std::collections::BTreeMap;
use std::future::Future;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot reach {address}: {message}")]
    Unreachable { address: String, message: String },
    #[error("the query timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("the query was refused: {0}")]
    Query(String),
    #[error("the provider is misconfigured: {0}")]
    Config(String),
    #[error("{0}")]
    Answer(String),
}

/// Secret values a provider needs, read from Secrets by the caller. Never logged or stored.
#[derive(Default, Clone)]
pub struct Credentials {
    pub bearer_token: Option<String>,
    pub basic: Option<(String, String)>,
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(redacted)")
    }
}

/// What one measurement found.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// A value for the metric's conditions to judge (or no data).
    Value(QueryResult),
    /// The provider's own verdict (a Job that completed or failed).
    Verdict { phase: AnalysisPhase, message: String },
    /// Not finished yet: asked again shortly, with what it keeps meanwhile.
    InProgress {
        message: String,
        metadata: BTreeMap<String, String>,
    },
}

pub trait MetricProvider {
    fn measure(&self) -> impl Future<Output = Result<Measured, ProviderError>> + Send;
    /// What is asked, for messages: "query `up`", "GET http://…".
    fn describe(&self) -> String;
}

/// An address without any `user:password@` in it, for messages.
pub fn redact_address(address: &str) -> String {
    match reqwest::Url::parse(address) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => address.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_lose_their_credentials() {
        assert_eq!(redact_address("http://user:secret@prom:9090/"), "http://prom:9090/");
        assert_eq!(redact_address("http://prom:9090"), "http://prom:9090");
    }
}
