//! Serin's outgoing HTTP: webhook gates, which the plan waits on, and notifications, which it
//! never waits for. URLs may come from Secrets, so no error message carries one.

pub mod format;
pub mod gates;
pub mod notify;

use crate::crd::hooks::Endpoint;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{0}")]
    Secret(String),
    #[error("the endpoint has neither url nor urlFrom")]
    NoUrl,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("HTTP {code}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status { code: u16, body: String },
    #[error("cannot reach the endpoint: {0}")]
    Connect(String),
}

/// The endpoint's URL: given in place, or read from a Secret in `namespace`.
pub async fn resolve_url(client: &kube::Client, namespace: &str, endpoint: &Endpoint) -> Result<String, HookError> {
    match (&endpoint.url, &endpoint.url_from) {
        (Some(url), _) => Ok(url.clone()),
        (None, Some(from)) => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
            crate::reconcile::secrets::secret_value(&secrets, &from.secret_key_ref)
                .await
                .map(|u| u.trim().to_string())
                .map_err(HookError::Secret)
        }
        (None, None) => Err(HookError::NoUrl),
    }
}

/// POSTs JSON; a 2xx answer is success, anything else an error that says what came back.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<u16, HookError> {
    let sent = http.post(url).json(body).timeout(timeout).send().await;
    let response = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Err(HookError::Timeout(timeout)),
        // reqwest's message names the URL, which may be a secret.
        Err(e) => return Err(HookError::Connect(e.without_url().to_string())),
    };
    let code = response.status().as_u16();
    if response.status().is_success() {
        return Ok(code);
    }
    let text = response.text().await.unwrap_or_default();
    let body: String = text.trim().chars().take(200).collect();
    Err(HookError::Status { code, body })
}
