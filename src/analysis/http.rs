//! HTTP clients shared by every measurement of a process, and plain words for HTTP errors.

use super::provider::ProviderError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// What an HTTP client is built from: measurements that agree on it share one client, with its
/// connection pool and its parsed root certificates, rather than building both for every query.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub ca_pem: Option<Vec<u8>>,
    pub insecure: bool,
    pub timeout: Duration,
}

#[derive(Default)]
pub struct HttpClients(Mutex<HashMap<ClientKey, reqwest::Client>>);

impl HttpClients {
    /// Distinct TLS settings are few; past this many the cache starts afresh rather than grow.
    const MAX: usize = 64;

    pub fn get(&self, key: ClientKey) -> Result<reqwest::Client, ProviderError> {
        let mut clients = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let mut builder = reqwest::Client::builder().timeout(key.timeout);
        if let Some(pem) = &key.ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ProviderError::Config(format!("tls.ca is not a PEM certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        if key.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| ProviderError::Config(e.to_string()))?;
        if clients.len() >= Self::MAX {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// Whether any cause in the chain is the HTTP client's timeout.
pub fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<reqwest::Error>().is_some_and(|r| r.is_timeout()) {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The error and its causes in one line (`failed to send request: connection refused`), without
/// the request's URL: its query may carry what an argument put there.
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    static URL: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r" for url \(\S*\)").expect("a constant regular expression"));
    let mut parts: Vec<String> = vec![URL.replace_all(&e.to_string(), "").into_owned()];
    let mut cur = e.source();
    while let Some(err) = cur {
        let text = URL.replace_all(&err.to_string(), "").into_owned();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// A request's failure in words: a timeout, or what could not be reached and why.
pub fn request_error(e: reqwest::Error, address: &str, timeout: Duration) -> ProviderError {
    if timed_out(&e) {
        ProviderError::Timeout(timeout)
    } else {
        ProviderError::Unreachable {
            address: super::provider::redact_address(address),
            message: causes(&e.without_url()),
        }
    }
}
