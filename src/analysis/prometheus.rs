//! The Prometheus provider: an instant query over the HTTP API, with headers, bearer or basic
//! auth, TLS options and a client-side timeout.

use super::condition::QueryResult;
use super::provider::{Credentials, MetricProvider, ProviderError, redact_address};
use crate::crd::analysis::PrometheusProvider;
use base64::Engine;
use prometheus_http_query::response::Data;
use reqwest::header::{HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Prometheus {
    client: prometheus_http_query::Client,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    address: String,
}

/// What an HTTP client is built from: measurements that agree on it share one client, with its
/// connection pool and its parsed root certificates, rather than building both for every query.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    ca_pem: Option<Vec<u8>>,
    insecure: bool,
    timeout: Duration,
}

/// HTTP clients shared by every measurement of a process.
#[derive(Default)]
pub struct HttpClients(Mutex<HashMap<ClientKey, reqwest::Client>>);

impl HttpClients {
    /// Distinct TLS settings are few; past this many the cache starts afresh rather than grow.
    const MAX: usize = 64;

    fn get(&self, key: ClientKey) -> Result<reqwest::Client, ProviderError> {
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

impl Prometheus {
    pub fn new(
        spec: &PrometheusProvider,
        creds: &Credentials,
        timeout: Duration,
        clients: &HttpClients,
    ) -> Result<Self, ProviderError> {
        let tls = spec.tls.as_ref();
        let http = clients.get(ClientKey {
            ca_pem: tls.and(creds.ca_pem.clone()),
            insecure: tls.and_then(|t| t.insecure_skip_verify) == Some(true),
            timeout,
        })?;
        let address = redact_address(&spec.address);
        let client = prometheus_http_query::Client::from(http, &spec.address)
            .map_err(|e| ProviderError::Config(format!("address {address:?}: {e}")))?;
        let mut headers = Vec::new();
        for h in &spec.headers {
            let name = HeaderName::from_bytes(h.key.as_bytes())
                .map_err(|_| ProviderError::Config(format!("header name {:?} is not valid", h.key)))?;
            let value = HeaderValue::from_str(&h.value)
                .map_err(|_| ProviderError::Config(format!("the value of header {:?} is not valid", h.key)))?;
            headers.push((name, value));
        }
        let auth = match (&creds.bearer_token, &creds.basic) {
            (Some(token), _) => Some(format!("Bearer {}", token.trim())),
            (None, Some((user, password))) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            (None, None) => None,
        };
        if let Some(auth) = auth {
            let mut value = HeaderValue::from_str(&auth)
                .map_err(|_| ProviderError::Config("the credentials hold characters a header cannot carry".into()))?;
            value.set_sensitive(true);
            headers.push((reqwest::header::AUTHORIZATION, value));
        }
        Ok(Prometheus {
            client,
            headers,
            timeout,
            address,
        })
    }
}

/// Whether any cause in the chain is the HTTP client's timeout.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<reqwest::Error>().is_some_and(|r| r.is_timeout()) {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The error and its causes in one line (`failed to send request: connection refused`).
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

impl MetricProvider for Prometheus {
    async fn measure(&self, query: &str) -> Result<QueryResult, ProviderError> {
        let mut request = self.client.query(query).timeout(self.timeout.as_millis() as i64);
        for (k, v) in &self.headers {
            request = request.header(k.clone(), v.clone());
        }
        let response = request.get().await.map_err(|e| match e {
            prometheus_http_query::Error::Prometheus(p) => ProviderError::Query(p.to_string()),
            other if timed_out(&other) => ProviderError::Timeout(self.timeout),
            other => ProviderError::Unreachable {
                address: self.address.clone(),
                message: causes(&other),
            },
        })?;
        match response.data() {
            Data::Scalar(s) => Ok(QueryResult::Scalar(s.value())),
            Data::Vector(v) if v.is_empty() => Ok(QueryResult::Empty),
            Data::Vector(v) if v.len() == 1 => Ok(QueryResult::Scalar(v[0].sample().value())),
            Data::Vector(v) => Ok(QueryResult::Vector(v.iter().map(|s| s.sample().value()).collect())),
            Data::Matrix(_) => Err(ProviderError::Query(
                "the query returned a range vector; write an instant query (no [range] at the top)".into(),
            )),
        }
    }
}
