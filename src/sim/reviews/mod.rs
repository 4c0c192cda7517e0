//! The create-only kinds the API server answers without storing: TokenRequest (the
//! `serviceaccounts/token` subresource), TokenReview and SelfSubjectReview, and the access
//! reviews. Each answer is the request object with its `status` filled in.

mod authentication;
mod authorization;

use super::resources::ResourceType;
use super::status::ApiError;
use super::store::Store;
use super::tokens::Tokens;
use super::users::UserInfo;
use serde_json::{Value, json};

/// What a review needs: the cluster, the issued tokens, and who asks.
pub struct Context<'a> {
    pub store: &'a Store,
    pub tokens: &'a Tokens,
    pub user: &'a UserInfo,
}

/// The request: its path's namespace and name, and the decoded body.
pub struct Request<'a> {
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub body: Value,
}

/// Whether this resource (and subresource) is a review rather than a stored kind.
pub fn handles(rt: &ResourceType, sub: Option<&str>) -> bool {
    match (rt.group.as_str(), rt.plural.as_str(), sub) {
        ("", "serviceaccounts", Some("token")) => true,
        ("authentication.k8s.io" | "authorization.k8s.io", _, None) => rt.verbs == ["create"],
        _ => false,
    }
}

/// Answers a POST to a review resource (201 with the filled-in object).
pub fn serve(ctx: &Context, rt: &ResourceType, req: Request) -> Result<Value, ApiError> {
    match rt.plural.as_str() {
        "serviceaccounts" => authentication::token_request(ctx, req),
        _ => {
            let mut body = typed(req.body, &rt.api_version(), &rt.kind)?;
            body["status"] = match rt.plural.as_str() {
                "tokenreviews" => authentication::token_review(ctx, &body)?,
                "selfsubjectreviews" => json!({"userInfo": ctx.user.to_json()}),
                "subjectaccessreviews" => authorization::subject_access_review(ctx, &body)?,
                "selfsubjectaccessreviews" => authorization::self_subject_access_review(ctx, &body)?,
                "localsubjectaccessreviews" => {
                    authorization::local_subject_access_review(ctx, &mut body, req.namespace)?
                }
                "selfsubjectrulesreviews" => authorization::self_subject_rules_review(ctx, &body)?,
                other => return Err(ApiError::path_not_found(other)),
            };
            Ok(body)
        }
    }
}

/// Checks the body's type and fills it in when left out, as the API server decodes it.
fn typed(mut body: Value, api_version: &str, kind: &str) -> Result<Value, ApiError> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    };
    for (field, want) in [("apiVersion", api_version), ("kind", kind)] {
        match map.get(field).and_then(Value::as_str) {
            Some(got) if got != want => {
                return Err(ApiError::bad_request(format!(
                    "the {field} in the data ({got}) does not match the expected {field} ({want})"
                )));
            }
            _ => {
                map.insert(field.into(), json!(want));
            }
        }
    }
    if !map.get("metadata").is_some_and(Value::is_object) {
        map.insert("metadata".into(), json!({}));
    }
    Ok(body)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}
