//! SubjectAccessReview, SelfSubjectAccessReview, LocalSubjectAccessReview and
//! SelfSubjectRulesReview, decided by the cluster's RBAC objects.

use super::{Context, strings};
use crate::sim::authz;
use crate::sim::rbac::{Attributes, Decision, Target};
use crate::sim::status::ApiError;
use crate::sim::users::UserInfo;
use serde_json::{Value, json};

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// The request a spec asks about; the causes say why the spec is not one.
fn attributes(spec: &Value, user: UserInfo, causes: &mut Vec<(String, String)>) -> Option<Attributes> {
    let (res, non) = (&spec["resourceAttributes"], &spec["nonResourceAttributes"]);
    match (res.is_object(), non.is_object()) {
        (true, true) => causes.push((
            "spec.nonResourceAttributes".into(),
            format!("Invalid value: {non}: cannot be specified in combination with resourceAttributes"),
        )),
        (false, false) => causes.push((
            "spec.resourceAttributes".into(),
            "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
                .into(),
        )),
        _ => {}
    }
    if !causes.is_empty() {
        return None;
    }
    Some(if res.is_object() {
        Attributes {
            user,
            verb: text(&res["verb"]),
            namespace: text(&res["namespace"]),
            target: Target::Resource {
                group: text(&res["group"]),
                resource: text(&res["resource"]),
                subresource: text(&res["subresource"]),
                name: text(&res["name"]),
            },
        }
    } else {
        Attributes {
            user,
            verb: text(&non["verb"]),
            namespace: String::new(),
            target: Target::NonResource {
                path: text(&non["path"]),
            },
        }
    })
}

fn status(d: Decision) -> Value {
    let mut s = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        s["reason"] = json!(d.reason);
    }
    s
}

fn invalid(kind: &str, body: &Value, causes: Vec<(String, String)>) -> ApiError {
    let name = body["metadata"]["name"].as_str().unwrap_or("");
    ApiError::invalid(&format!("{kind}.authorization.k8s.io"), name, causes)
}

/// The user a SubjectAccessReview's spec names: user, groups and uid, as given.
fn spec_user(spec: &Value) -> UserInfo {
    UserInfo {
        username: text(&spec["user"]),
        uid: text(&spec["uid"]),
        groups: strings(&spec["groups"]),
    }
}

pub fn subject_access_review(ctx: &Context, body: &Value) -> Result<Value, ApiError> {
    let spec = &body["spec"];
    let user = spec_user(spec);
    let mut causes = Vec::new();
    let attrs = attributes(spec, user.clone(), &mut causes);
    if user.username.is_empty() && user.groups.is_empty() {
        causes.push((
            "spec.user".into(),
            "Invalid value: \"\": at least one of user or group must be specified".into(),
        ));
    }
    match attrs {
        Some(a) if causes.is_empty() => Ok(status(authz::authorize(ctx.store, &a))),
        _ => Err(invalid("SubjectAccessReview", body, causes)),
    }
}

pub fn self_subject_access_review(ctx: &Context, body: &Value) -> Result<Value, ApiError> {
    let mut causes = Vec::new();
    match attributes(&body["spec"], ctx.user.clone(), &mut causes) {
        Some(a) => Ok(status(authz::authorize(ctx.store, &a))),
        None => Err(invalid("SelfSubjectAccessReview", body, causes)),
    }
}

/// A SubjectAccessReview within the namespace of its path, which the spec's namespace must be.
pub fn local_subject_access_review(
    ctx: &Context,
    body: &mut Value,
    namespace: Option<&str>,
) -> Result<Value, ApiError> {
    let namespace = namespace.unwrap_or("");
    if body["spec"]["nonResourceAttributes"].is_object() {
        return Err(invalid(
            "LocalSubjectAccessReview",
            body,
            vec![(
                "spec.nonResourceAttributes".into(),
                "Invalid value: disallowed on this kind of request".into(),
            )],
        ));
    }
    if body["spec"]["resourceAttributes"].is_object() {
        let given = text(&body["spec"]["resourceAttributes"]["namespace"]);
        if given.is_empty() {
            body["spec"]["resourceAttributes"]["namespace"] = json!(namespace);
        } else if given != namespace {
            return Err(ApiError::bad_request(format!(
                "spec.resourceAttributes.namespace must match namespace: {namespace}"
            )));
        }
    }
    subject_access_review(ctx, body)
}

pub fn self_subject_rules_review(ctx: &Context, body: &Value) -> Result<Value, ApiError> {
    let namespace = text(&body["spec"]["namespace"]);
    let (resource_rules, non_resource_rules, incomplete) = authz::rules_for(ctx.store, ctx.user, &namespace);
    Ok(json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": incomplete,
    }))
}
