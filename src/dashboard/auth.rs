//! Who may steer a Rollout from the dashboard. Run by a person (`serin dashboard`), it acts with
//! that person's kubeconfig, so the API server decides. Run in the cluster (`--require-token`),
//! it is read-only unless a request carries a bearer token: the token's user is found with a
//! TokenReview, and a SubjectAccessReview asks whether that user may patch `rollouts/status` of
//! that Rollout. The person's own RBAC decides, never the dashboard's ServiceAccount.

use axum::http::{HeaderMap, StatusCode};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The kubeconfig's own credentials: whatever they may do.
    Kubeconfig,
    /// Bearer tokens, checked by the API server.
    Token,
}

/// A refusal: the HTTP status and what the person should know.
pub type Refusal = (StatusCode, String);

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// Whether the request may write `rollouts/status` of this Rollout; `Ok` names who acts.
pub async fn may_steer(
    client: &Client,
    mode: Mode,
    headers: &HeaderMap,
    namespace: &str,
    name: &str,
) -> Result<String, Refusal> {
    if mode == Mode::Kubeconfig {
        return Ok("the kubeconfig's user".into());
    }
    let Some(token) = bearer(headers) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "this dashboard is read-only without a token: sign in with a token from `kubectl create token`".into(),
        ));
    };
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let unavailable = |what: &str, e: kube::Error| {
        tracing::warn!(error = %e, "{what} failed");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot check the token now ({what}): {e}"),
        )
    };
    let reviewed = reviews
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| unavailable("TokenReview", e))?;
    let status = reviewed.status.unwrap_or_default();
    let user = status.user.unwrap_or_default();
    let Some(username) = user.username.clone().filter(|_| status.authenticated == Some(true)) else {
        let why = status.error.unwrap_or_else(|| "the token is not valid".into());
        return Err((StatusCode::UNAUTHORIZED, format!("the token was refused: {why}")));
    };
    let access = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(username.clone()),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some("patch".into()),
                group: Some("serin.dev".into()),
                resource: Some("rollouts".into()),
                subresource: Some("status".into()),
                name: Some(name.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let sars: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = sars
        .create(&PostParams::default(), &access)
        .await
        .map_err(|e| unavailable("SubjectAccessReview", e))?;
    let verdict = answer.status.unwrap_or_default();
    if verdict.allowed {
        Ok(username)
    } else {
        let why = verdict
            .reason
            .filter(|r| !r.is_empty())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        Err((
            StatusCode::FORBIDDEN,
            format!(
                "{username} may not patch rollouts/status of {name} in namespace {namespace}{why}: ask for a Role that allows it"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_token_counts() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(axum::http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(axum::http::header::AUTHORIZATION, "Bearer  ".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(axum::http::header::AUTHORIZATION, "bearer t0k3n".parse().unwrap());
        assert_eq!(bearer(&h), Some("t0k3n"));
    }
}
