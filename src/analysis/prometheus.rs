//! The Prometheus provider: an instant query over the HTTP API, with headers, bearer or basic
//! auth, TLS options and a client-side timeout.

use super::condition::QueryResult;
use super::provider::{Credentials, MetricProvider, ProviderError, redact_address};
use crate::crd::analysis::PrometheusProvider;
use base64::Engine;
use prometheus_http_query::response::Data;
use reqwest::header::{HeaderName, HeaderValue};
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Prometheus {
    client: prometheus_http_query::Client,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    address: String,
}

impl Prometheus {
    pub fn new(spec: &PrometheusProvider, creds: &Credentials, timeout: Duration) -> Result<Self, ProviderError> {
        let mut builder = reqwest::Client::builder().timeout(timeout);
        if let Some(tls) = &spec.tls {
            if let Some(pem) = &creds.ca_pem {
                let cert = reqwest::Certificate::from_pem(pem)
                    .map_err(|e| ProviderError::Config(format!("tls.ca is not a PEM certificate: {e}")))?;
                builder = builder.add_root_certificate(cert);
            }
            if tls.insecure_skip_verify == Some(true) {
                builder = builder.danger_accept_invalid_certs(true);
            }
        }
        let http = builder.build().map_err(|e| ProviderError::Config(e.to_string()))?;
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

impl MetricProvider for Prometheus {
    async fn measure(&self, query: &str) -> Result<QueryResult, ProviderError> {
        let mut request = self.client.query(query).timeout(self.timeout.as_millis() as i64);
        for (k, v) in &self.headers {
            request = request.header(k.clone(), v.clone());
        }
        let response = request.get().await.map_err(|e| match e {
            prometheus_http_query::Error::Prometheus(p) => ProviderError::Query(p.to_string()),
            other => {
                let message = other.to_string();
                if message.contains("timed out") || message.contains("timeout") {
                    ProviderError::Timeout(self.timeout)
                } else {
                    ProviderError::Unreachable {
                        address: self.address.clone(),
                        message: message.replace(&self.address, ""),
                    }
                }
            }
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
