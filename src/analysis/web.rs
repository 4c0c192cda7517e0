//! The web provider: an HTTP request whose JSON answer, or the part of it `jsonPath` picks, is
//! the value the metric's conditions judge. Anything but a 2xx JSON answer is an error, never a
//! pass.

use super::condition::QueryResult;
use super::http::{ClientKey, HttpClients, request_error};
use super::prometheus::build_headers;
use super::provider::{Credentials, Measured, MetricProvider, ProviderError, redact_address};
use crate::crd::analysis::WebProvider;
use jsonpath_rust::JsonPath;
use reqwest::header::{HeaderName, HeaderValue};
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers larger than this are refused rather than read whole.
const MAX_BODY: usize = 1 << 20;

pub struct Web {
    http: reqwest::Client,
    method: reqwest::Method,
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<(String, bool)>,
    json_path: Option<String>,
    timeout: Duration,
}

/// A JSONPath as Argo Rollouts writes it (`{$.data.ok}`, `{.data.ok}`), or as the standard does
/// (`$.data.ok`), in the standard's form.
pub fn normalize_path(path: &str) -> String {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(p)
        .trim();
    if p.starts_with('$') {
        p.to_string()
    } else if p.starts_with('.') || p.starts_with('[') {
        format!("${p}")
    } else {
        format!("$.{p}")
    }
}

/// What `jsonPath` picks from an answer: its first match.
pub fn pick(answer: &serde_json::Value, path: &str) -> Result<serde_json::Value, ProviderError> {
    let normal = normalize_path(path);
    let found = answer
        .query(&normal)
        .map_err(|e| ProviderError::Config(format!("jsonPath {path:?} is not a JSONPath: {e}")))?;
    found
        .first()
        .map(|v| (*v).clone())
        .ok_or_else(|| ProviderError::Answer(format!("jsonPath {path:?} found nothing in the answer")))
}

/// `timeoutSeconds`, or 10s when it is absent or not positive.
pub fn timeout_of(spec: &WebProvider) -> Duration {
    spec.timeout_seconds
        .filter(|s| *s > 0)
        .map_or(DEFAULT_TIMEOUT, |s| Duration::from_secs(s as u64))
}

/// A plain-text answer is the value itself (`result == "I am OK"`), as in Argo Rollouts — when it
/// says it is plain text, no jsonPath wants JSON, and it does not look like JSON gone wrong.
fn plain_text_answer(body: &[u8], plain_text: bool, json_path: bool) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?.trim();
    (plain_text && !json_path && !text.starts_with(['{', '[', '"'])).then(|| text.to_string())
}

impl Web {
    pub fn new(spec: &WebProvider, creds: &Credentials, clients: &HttpClients) -> Result<Self, ProviderError> {
        let timeout = timeout_of(spec);
        let http = clients.get(ClientKey {
            ca_pem: None,
            insecure: spec.insecure == Some(true),
            timeout,
        })?;
        let method = match spec.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("GET") => reqwest::Method::GET,
            Some("POST") => reqwest::Method::POST,
            Some("PUT") => reqwest::Method::PUT,
            Some(other) => {
                return Err(ProviderError::Config(format!("method {other:?}: GET, POST or PUT")));
            }
        };
        let body = match (&spec.body, &spec.json_body) {
            (Some(_), Some(_)) => return Err(ProviderError::Config("give body or jsonBody, not both".into())),
            (Some(b), None) => Some((b.clone(), false)),
            (None, Some(j)) => Some((j.to_string(), true)),
            (None, None) => None,
        };
        if body.is_some() && method == reqwest::Method::GET {
            return Err(ProviderError::Config(
                "a GET request carries no body: use POST or PUT".into(),
            ));
        }
        reqwest::Url::parse(&spec.url)
            .map_err(|e| ProviderError::Config(format!("url {:?}: {e}", redact_address(&spec.url))))?;
        Ok(Web {
            http,
            method,
            url: spec.url.clone(),
            headers: build_headers(&spec.headers, creds)?,
            body,
            json_path: spec.json_path.clone(),
            timeout,
        })
    }

    async fn fetch(&self) -> Result<serde_json::Value, ProviderError> {
        let mut request = self.http.request(self.method.clone(), &self.url);
        for (k, v) in &self.headers {
            request = request.header(k.clone(), v.clone());
        }
        if let Some((body, json)) = &self.body {
            if *json {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
            }
            request = request.body(body.clone());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| request_error(e, &self.url, self.timeout))?;
        let status = response.status();
        let plain_text = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/plain"));
        if !status.is_success() {
            return Err(ProviderError::Answer(format!(
                "{} answered HTTP {}",
                redact_address(&self.url),
                status.as_u16()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| request_error(e, &self.url, self.timeout))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(ProviderError::Answer(format!(
                    "the answer is larger than {MAX_BODY} bytes"
                )));
            }
        }
        match serde_json::from_slice(&body) {
            Ok(answer) => Ok(answer),
            Err(e) => match plain_text_answer(&body, plain_text, self.json_path.is_some()) {
                Some(text) => Ok(serde_json::Value::String(text)),
                None => Err(ProviderError::Answer(format!("the answer is not JSON: {e}"))),
            },
        }
    }
}

impl MetricProvider for Web {
    async fn measure(&self) -> Result<Measured, ProviderError> {
        let answer = self.fetch().await?;
        let value = match &self.json_path {
            Some(path) => pick(&answer, path)?,
            None => answer,
        };
        Ok(Measured::Value(QueryResult::Json(value)))
    }

    fn describe(&self) -> String {
        let path = self
            .json_path
            .as_ref()
            .map(|p| format!(" (jsonPath {p})"))
            .unwrap_or_default();
        format!("{} {}{path}", self.method, redact_address(&self.url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_as_argo_and_the_standard_write_them() {
        assert_eq!(normalize_path("{$.data.ok}"), "$.data.ok");
        assert_eq!(normalize_path("{.data.ok}"), "$.data.ok");
        assert_eq!(normalize_path("$.data[0]"), "$.data[0]");
        assert_eq!(normalize_path("data.ok"), "$.data.ok");
        let answer = json!({"data": {"ok": true, "rates": [0.1, 0.2]}, "count": 3});
        assert_eq!(pick(&answer, "{$.data.ok}").unwrap(), json!(true));
        assert_eq!(pick(&answer, "$.data.rates").unwrap(), json!([0.1, 0.2]));
        assert_eq!(pick(&answer, "$.data.rates[1]").unwrap(), json!(0.2));
        assert_eq!(pick(&answer, "{$}").unwrap(), answer);
        assert!(matches!(pick(&answer, "$.nothing"), Err(ProviderError::Answer(_))));
    }

    #[test]
    fn plain_text_is_a_value_only_when_it_says_so() {
        assert_eq!(plain_text_answer(b"I am OK\n", true, false).as_deref(), Some("I am OK"));
        assert_eq!(plain_text_answer(b"I am OK", false, false), None, "not said to be text");
        assert_eq!(plain_text_answer(b"I am OK", true, true), None, "a jsonPath wants JSON");
        assert_eq!(plain_text_answer(b"{\"ok\": tru", true, false), None, "broken JSON");
    }

    #[test]
    fn requests_are_checked_before_they_go() {
        let spec = |v: serde_json::Value| -> WebProvider { serde_json::from_value(v).unwrap() };
        let c = Credentials::default();
        let h = HttpClients::default();
        assert!(Web::new(&spec(json!({"url": "http://x/a"})), &c, &h).is_ok());
        for bad in [
            json!({"url": "not a url"}),
            json!({"url": "http://x", "method": "DELETE"}),
            json!({"url": "http://x", "body": "a"}),
            json!({"url": "http://x", "method": "POST", "body": "a", "jsonBody": {}}),
        ] {
            assert!(
                matches!(Web::new(&spec(bad.clone()), &c, &h), Err(ProviderError::Config(_))),
                "{bad}"
            );
        }
    }
}
