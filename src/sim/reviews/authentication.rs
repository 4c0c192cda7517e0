//! TokenRequest (`POST .../serviceaccounts/NAME/token`) and TokenReview.

use super::{Context, Request, strings, typed};
use crate::sim::meta;
use crate::sim::status::ApiError;
use crate::sim::tokens::{self, API_AUDIENCE};
use serde_json::{Value, json};

/// The API server's bounds on a requested token lifetime.
const MIN_SECONDS: i64 = 600;
const MAX_SECONDS: i64 = 1 << 32;
const DEFAULT_SECONDS: i64 = 3600;

fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Issues a token for an existing ServiceAccount; 404 when it does not exist.
pub fn token_request(ctx: &Context, req: Request) -> Result<Value, ApiError> {
    let (ns, name) = (req.namespace.unwrap_or(""), req.name.unwrap_or(""));
    let mut body = typed(req.body, "authentication.k8s.io/v1", "TokenRequest")?;
    let sa_type = ctx
        .store
        .find_type("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts are not served"))?;
    let sa = ctx.store.get(&sa_type, ns, name)?;
    let seconds = body["spec"]["expirationSeconds"].as_i64().unwrap_or(DEFAULT_SECONDS);
    let too = if seconds < MIN_SECONDS {
        Some("may not specify a duration less than 10 minutes")
    } else if seconds > MAX_SECONDS {
        Some("may not specify a duration larger than 2^32 seconds")
    } else {
        None
    };
    if let Some(why) = too {
        return Err(ApiError::invalid(
            "TokenRequest.authentication.k8s.io",
            name,
            vec![(
                "spec.expirationSeconds".into(),
                format!("Invalid value: {seconds}: {why}"),
            )],
        ));
    }
    let mut audiences = strings(&body["spec"]["audiences"]);
    if audiences.is_empty() {
        audiences = vec![API_AUDIENCE.to_string()];
    }
    let now = jiff::Timestamp::now();
    let (token, issued) = ctx.tokens.issue(
        &tokens::Request {
            namespace: ns,
            service_account: name,
            service_account_uid: meta::uid(&sa),
            audiences: audiences.clone(),
            lifetime: jiff::SignedDuration::from_secs(seconds),
        },
        now,
    );
    body["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": rfc3339(now)});
    body["spec"]["audiences"] = json!(audiences);
    body["spec"]["expirationSeconds"] = json!(seconds);
    if body["spec"].get("boundObjectRef").is_none() {
        body["spec"]["boundObjectRef"] = Value::Null;
    }
    body["status"] = json!({"token": token, "expirationTimestamp": rfc3339(issued.expires)});
    Ok(body)
}

/// A TokenReview's status: the token's user and audiences, or why it does not authenticate.
pub fn token_review(ctx: &Context, body: &Value) -> Result<Value, ApiError> {
    let token = body["spec"]["token"].as_str().unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let audiences = strings(&body["spec"]["audiences"]);
    Ok(
        match crate::sim::authn::review(ctx.store, ctx.tokens, token, &audiences, jiff::Timestamp::now()) {
            Ok(reviewed) => {
                let mut user = reviewed.user.to_json();
                if let Some(issued) = ctx.tokens.lookup(token) {
                    user["extra"] =
                        json!({"authentication.kubernetes.io/credential-id": [format!("JTI={}", issued.id)]});
                }
                json!({"authenticated": true, "user": user, "audiences": reviewed.audiences})
            }
            Err(error) => json!({"authenticated": false, "user": {}, "error": error}),
        },
    )
}
