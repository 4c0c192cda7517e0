//! OAuth2 client credentials (RFC 6749 §4.4): a token fetched from `tokenUrl` and kept until
//! shortly before it expires, sent as a bearer token.

use super::http::request_error;
use super::provider::ProviderError;
use crate::crd::analysis::OAuth2;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token is fetched again this long before it expires.
const EARLY: Duration = Duration::from_secs(30);
/// A token whose answer gives no lifetime is kept this long.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    token_url: String,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
}

/// Tokens shared by the measurements of a process.
#[derive(Default)]
pub struct Tokens(Mutex<HashMap<TokenKey, (String, Instant)>>);

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Tokens {
    const MAX: usize = 256;

    /// A valid access token for these client credentials.
    pub async fn token(
        &self,
        spec: &OAuth2,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<String, ProviderError> {
        let key = TokenKey {
            token_url: spec.token_url.clone(),
            client_id: spec.client_id.clone(),
            client_secret: spec.client_secret.clone(),
            scopes: spec.scopes.clone(),
        };
        {
            let tokens = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((token, until)) = tokens.get(&key)
                && Instant::now() < *until
            {
                return Ok(token.clone());
            }
        }
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", spec.client_id.clone()),
            ("client_secret", spec.client_secret.clone()),
        ];
        if !spec.scopes.is_empty() {
            form.push(("scope", spec.scopes.join(" ")));
        }
        let body = serde_urlencoded::to_string(&form).map_err(|e| ProviderError::Config(e.to_string()))?;
        let response = http
            .post(&spec.token_url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| request_error(e, &spec.token_url, timeout))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ProviderError::Answer(format!(
                "oauth2: the token endpoint answered HTTP {}",
                status.as_u16()
            )));
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|_| ProviderError::Answer("oauth2: the token endpoint's answer has no access_token".into()))?;
        let lifetime = answer.expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let until = Instant::now() + lifetime.saturating_sub(EARLY);
        let mut tokens = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= Self::MAX {
            tokens.clear();
        }
        tokens.insert(key, (answer.access_token.clone(), until));
        Ok(answer.access_token)
    }
}
