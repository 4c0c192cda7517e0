//! What a metric provider does: turn a query into numbers. One module per provider.

use super::condition::QueryResult;
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

pub trait MetricProvider {
    fn measure(&self, query: &str) -> impl Future<Output = Result<QueryResult, ProviderError>> + Send;
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
