//! The Prometheus provider: an instant query (or a range query) over the HTTP API, with headers,
//! bearer, basic or OAuth2 auth, TLS options and a client-side timeout.

use super::condition::QueryResult;
use super::http::{ClientKey, HttpClients, causes, timed_out};
use super::provider::{Credentials, Measured, MetricProvider, ProviderError, redact_address};
use crate::crd::analysis::{PrometheusProvider, RangeQuery};
use crate::plan::steps::parse_duration;
use base64::Engine;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use prometheus_http_query::response::Data;
use reqwest::header::{HeaderName, HeaderValue};
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Prometheus {
    client: prometheus_http_query::Client,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    address: String,
    query: String,
    range: Option<RangeQuery>,
}

/// Request headers from the metric's list, and an `Authorization` header from the credentials.
pub fn build_headers(
    headers: &[crate::crd::analysis::Header],
    creds: &Credentials,
) -> Result<Vec<(HeaderName, HeaderValue)>, ProviderError> {
    let mut out = Vec::new();
    for h in headers {
        let name = HeaderName::from_bytes(h.key.as_bytes())
            .map_err(|_| ProviderError::Config(format!("header name {:?} is not valid", h.key)))?;
        let value = HeaderValue::from_str(&h.value)
            .map_err(|_| ProviderError::Config(format!("the value of header {:?} is not valid", h.key)))?;
        out.push((name, value));
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
        out.push((reqwest::header::AUTHORIZATION, value));
    }
    Ok(out)
}

/// The timeout of a query: a duration (`10s`) or a number of seconds, as Argo Rollouts writes it.
pub fn timeout_of(t: Option<&IntOrString>) -> Result<Duration, ProviderError> {
    match t {
        None => Ok(DEFAULT_TIMEOUT),
        Some(t) => parse_duration(t).map_err(|e| ProviderError::Config(format!("timeout: {e}"))),
    }
}

impl Prometheus {
    /// A provider for the metric's (resolved) spec.
    pub fn new(spec: &PrometheusProvider, creds: &Credentials, clients: &HttpClients) -> Result<Self, ProviderError> {
        let timeout = timeout_of(spec.timeout.as_ref())?;
        let tls = spec.tls.as_ref();
        let http = clients.get(ClientKey {
            ca_pem: tls.and(creds.ca_pem.clone()),
            insecure: tls.and_then(|t| t.insecure_skip_verify) == Some(true) || spec.insecure == Some(true),
            timeout,
        })?;
        let address = redact_address(&spec.address);
        if spec.address.trim().is_empty() {
            return Err(ProviderError::Config("the address is empty".into()));
        }
        let client = prometheus_http_query::Client::from(http, &spec.address)
            .map_err(|e| ProviderError::Config(format!("address {address:?}: {e}")))?;
        Ok(Prometheus {
            client,
            headers: build_headers(&spec.headers, creds)?,
            timeout,
            address,
            query: spec.query.clone(),
            range: spec.range_query.clone(),
        })
    }

    fn error(&self, e: prometheus_http_query::Error) -> ProviderError {
        match e {
            prometheus_http_query::Error::Prometheus(p) => ProviderError::Query(p.to_string()),
            other if timed_out(&other) => ProviderError::Timeout(self.timeout),
            other => ProviderError::Unreachable {
                address: self.address.clone(),
                message: causes(&other),
            },
        }
    }

    /// One instant query.
    pub async fn query(&self, query: &str) -> Result<QueryResult, ProviderError> {
        self.instant(query, None).await
    }

    /// One instant query, evaluated at `at`.
    pub async fn query_at(&self, query: &str, at: Timestamp) -> Result<QueryResult, ProviderError> {
        self.instant(query, Some(at)).await
    }

    /// The answer to an instant query, with the metric's headers and timeout.
    async fn ask(&self, query: &str, at: Option<Timestamp>) -> Result<Data, ProviderError> {
        let mut request = self.client.query(query).timeout(self.timeout.as_millis() as i64);
        if let Some(at) = at {
            request = request.at(at.as_second());
        }
        for (k, v) in &self.headers {
            request = request.header(k.clone(), v.clone());
        }
        let response = request.get().await.map_err(|e| self.error(e))?;
        Ok(response.into_inner().0)
    }

    async fn instant(&self, query: &str, at: Option<Timestamp>) -> Result<QueryResult, ProviderError> {
        match &self.ask(query, at).await? {
            Data::Scalar(s) => Ok(QueryResult::Scalar(s.value())),
            Data::Vector(v) if v.is_empty() => Ok(QueryResult::Empty),
            Data::Vector(v) if v.len() == 1 => Ok(QueryResult::Scalar(v[0].sample().value())),
            Data::Vector(v) => Ok(QueryResult::Vector(v.iter().map(|s| s.sample().value()).collect())),
            Data::Matrix(_) => Err(ProviderError::Query(
                "the query returned a range vector; write an instant query (no [range] at the top), or use rangeQuery"
                    .into(),
            )),
        }
    }

    /// One instant query (at `at`, or now), each series with its labels; a scalar has none.
    pub async fn query_series(
        &self,
        query: &str,
        at: Option<Timestamp>,
    ) -> Result<Vec<(std::collections::HashMap<String, String>, f64)>, ProviderError> {
        match self.ask(query, at).await? {
            Data::Scalar(s) => Ok(vec![(Default::default(), s.value())]),
            Data::Vector(v) => Ok(v
                .into_iter()
                .map(|s| {
                    let (labels, sample) = s.into_inner();
                    (labels, sample.value())
                })
                .collect()),
            Data::Matrix(_) => Err(ProviderError::Query(
                "the query returned a range vector; write an instant query (no [range] at the top)".into(),
            )),
        }
    }

    /// One range query: every sample of every series, in one list.
    pub async fn query_range(
        &self,
        query: &str,
        range: &RangeQuery,
        now: Timestamp,
    ) -> Result<QueryResult, ProviderError> {
        let (start, end, step) = range_bounds(range, now).map_err(ProviderError::Config)?;
        let mut request = self
            .client
            .query_range(query, start, end, step)
            .timeout(self.timeout.as_millis() as i64);
        for (k, v) in &self.headers {
            request = request.header(k.clone(), v.clone());
        }
        let response = request.get().await.map_err(|e| self.error(e))?;
        let values: Vec<f64> = match response.data() {
            Data::Matrix(series) => series
                .iter()
                .flat_map(|s| s.samples().iter().map(|x| x.value()))
                .collect(),
            Data::Vector(v) => v.iter().map(|s| s.sample().value()).collect(),
            Data::Scalar(s) => vec![s.value()],
        };
        Ok(if values.is_empty() {
            QueryResult::Empty
        } else {
            QueryResult::Vector(values)
        })
    }
}

/// A point in time given relative to `now`: `now`, `-10m`, `now-10m`, Argo Rollouts'
/// `now() - duration("10m")`, or an RFC 3339 time.
pub fn relative_time(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let t = text.trim();
    let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    let bad =
        || format!("{text:?} is not a time: write \"now\", a duration before now (\"-10m\"), or an RFC 3339 time");
    if compact == "now" || compact == "now()" {
        return Ok(now);
    }
    let before = compact
        .strip_prefix("now()-")
        .or_else(|| compact.strip_prefix("now-"))
        .or_else(|| compact.strip_prefix('-'));
    if let Some(d) = before {
        let d = d
            .strip_prefix("duration(")
            .and_then(|r| r.strip_suffix(')'))
            .map(|r| r.trim_matches(|c| c == '"' || c == '\''))
            .unwrap_or(d);
        let d = parse_duration(&IntOrString::String(d.to_string())).map_err(|_| bad())?;
        let d = jiff::SignedDuration::try_from(d).map_err(|_| bad())?;
        return now.checked_sub(d).map_err(|_| bad());
    }
    t.parse::<Timestamp>().map_err(|_| bad())
}

/// The start, end (Unix seconds) and step (seconds) of a range query.
pub fn range_bounds(range: &RangeQuery, now: Timestamp) -> Result<(i64, i64, f64), String> {
    let start = relative_time(&range.start, now).map_err(|e| format!("rangeQuery.start: {e}"))?;
    let end = match &range.end {
        Some(e) => relative_time(e, now).map_err(|e| format!("rangeQuery.end: {e}"))?,
        None => now,
    };
    if start > end {
        return Err(format!("rangeQuery.start {} is after its end {}", start, end));
    }
    let step = parse_duration(&IntOrString::String(range.step.clone())).map_err(|e| format!("rangeQuery.step: {e}"))?;
    if step.is_zero() {
        return Err("rangeQuery.step must be more than 0".into());
    }
    Ok((start.as_second(), end.as_second(), step.as_secs_f64()))
}

impl MetricProvider for Prometheus {
    async fn measure(&self) -> Result<Measured, ProviderError> {
        let result = match &self.range {
            Some(range) => self.query_range(&self.query, range, Timestamp::now()).await?,
            None => self.query(&self.query).await?,
        };
        Ok(Measured::Value(result))
    }

    fn describe(&self) -> String {
        format!("query `{}`", self.query.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn times_relative_to_now() {
        let now = at("2026-12-01T10:00:00Z");
        for (text, want) in [
            ("now", "2026-12-01T10:00:00Z"),
            ("now()", "2026-12-01T10:00:00Z"),
            ("-10m", "2026-12-01T09:50:00Z"),
            ("now-1h30m", "2026-12-01T08:30:00Z"),
            ("now() - duration(\"5m\")", "2026-12-01T09:55:00Z"),
            ("now() - duration('30s')", "2026-12-01T09:59:30Z"),
            ("2026-12-01T09:00:00Z", "2026-12-01T09:00:00Z"),
        ] {
            assert_eq!(relative_time(text, now), Ok(at(want)), "{text}");
        }
        assert!(relative_time("yesterday", now).unwrap_err().contains("\"-10m\""));
        assert!(relative_time("-10 parsecs", now).is_err());
    }

    #[test]
    fn range_bounds_check_their_order_and_step() {
        let now = at("2026-12-01T10:00:00Z");
        let r = |start: &str, end: Option<&str>, step: &str| RangeQuery {
            start: start.into(),
            end: end.map(String::from),
            step: step.into(),
        };
        assert_eq!(
            range_bounds(&r("-10m", None, "1m"), now),
            Ok((now.as_second() - 600, now.as_second(), 60.0))
        );
        assert!(
            range_bounds(&r("now", Some("-5m"), "1m"), now)
                .unwrap_err()
                .contains("after")
        );
        assert!(range_bounds(&r("-5m", Some("now"), "0s"), now).is_err());
        assert!(
            range_bounds(&r("-5m", None, "soon"), now)
                .unwrap_err()
                .starts_with("rangeQuery.step")
        );
    }

    #[test]
    fn timeouts_are_durations_or_seconds() {
        assert_eq!(timeout_of(None), Ok(DEFAULT_TIMEOUT));
        assert_eq!(timeout_of(Some(&IntOrString::Int(30))), Ok(Duration::from_secs(30)));
        assert_eq!(
            timeout_of(Some(&IntOrString::String("2s".into()))),
            Ok(Duration::from_secs(2))
        );
        assert_eq!(
            timeout_of(Some(&IntOrString::String("7".into()))),
            Ok(Duration::from_secs(7))
        );
        assert!(timeout_of(Some(&IntOrString::String("soon".into()))).is_err());
    }
}
