//! ServiceAccount tokens the sim issues (TokenRequest) and recognises (TokenReview, bearer
//! authentication). JWT-shaped so a reader can decode the claims, but opaque to the sim itself:
//! a token is valid because it is remembered, until it expires.

use super::users::UserInfo;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;

/// The API server's own audience (`--api-audiences` defaults to the issuer).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// One issued token: whose it is, for whom, until when.
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    pub user: UserInfo,
    pub namespace: String,
    pub service_account: String,
    pub audiences: Vec<String>,
    pub expires: jiff::Timestamp,
    /// The token's `jti`, which the API server reports as the credential id.
    pub id: String,
}

/// What a token request asks for.
pub struct Request<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub service_account_uid: &'a str,
    pub audiences: Vec<String>,
    pub lifetime: jiff::SignedDuration,
}

#[derive(Debug, Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, Issued>>,
}

impl Tokens {
    /// Issues a token valid from `now` for the requested lifetime. Tokens expired for an hour are
    /// forgotten (until then a review can say they expired), so memory stays bounded.
    pub fn issue(&self, req: &Request, now: jiff::Timestamp) -> (String, Issued) {
        let expires = now.saturating_add(req.lifetime).unwrap_or(now);
        let id = super::meta::new_uid();
        let claims = json!({
            "aud": req.audiences,
            "exp": expires.as_second(),
            "iat": now.as_second(),
            "nbf": now.as_second(),
            "iss": API_AUDIENCE,
            "jti": id,
            "sub": format!("system:serviceaccount:{}:{}", req.namespace, req.service_account),
            "kubernetes.io": {
                "namespace": req.namespace,
                "serviceaccount": {"name": req.service_account, "uid": req.service_account_uid},
            },
        });
        let header = json!({"alg": "RS256", "kid": "serin-sim"});
        let signature: [u8; 32] = rand::rng().random();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        );
        let issued = Issued {
            user: UserInfo::service_account(req.namespace, req.service_account, req.service_account_uid),
            namespace: req.namespace.to_string(),
            service_account: req.service_account.to_string(),
            audiences: req.audiences.clone(),
            expires,
            id,
        };
        let mut map = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        let forget_before = now.saturating_sub(jiff::SignedDuration::from_hours(1)).unwrap_or(now);
        map.retain(|_, t| t.expires > forget_before);
        map.insert(token.clone(), issued.clone());
        (token, issued)
    }

    /// The token as issued, expired or not.
    pub fn lookup(&self, token: &str) -> Option<Issued> {
        self.issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_are_remembered_with_their_subject_and_expiry() {
        let tokens = Tokens::default();
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let req = Request {
            namespace: "shop",
            service_account: "dashboard",
            service_account_uid: "u-1",
            audiences: vec![API_AUDIENCE.into()],
            lifetime: jiff::SignedDuration::from_secs(600),
        };
        let (token, issued) = tokens.issue(&req, now);
        assert_eq!(token.split('.').count(), 3, "JWT-shaped");
        assert_eq!(issued.user.username, "system:serviceaccount:shop:dashboard");
        assert_eq!(issued.expires.as_second(), 1_800_000_600);
        assert_eq!(tokens.lookup(&token), Some(issued));
        assert_eq!(tokens.lookup("nope"), None);
        let claims = URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(claims["sub"], "system:serviceaccount:shop:dashboard");
        // An hour after it expired, the next issue forgets it.
        let soon = now.saturating_add(jiff::SignedDuration::from_secs(700)).unwrap();
        tokens.issue(&req, soon);
        assert!(tokens.lookup(&token).is_some_and(|t| t.expires < soon));
        let later = now.saturating_add(jiff::SignedDuration::from_secs(600 + 3601)).unwrap();
        tokens.issue(&req, later);
        assert_eq!(tokens.lookup(&token), None);
    }
}
