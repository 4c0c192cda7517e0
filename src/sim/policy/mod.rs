//! ValidatingAdmissionPolicy (`admissionregistration.k8s.io/v1`), as the API server runs it on
//! every create, update and delete: each binding whose policy exists and matches judges the
//! request, with its params; `Deny` refuses it with the policy's message, `Warn` adds a
//! `Warning` header, `Audit` is recorded nowhere (the sim keeps no audit log).

pub mod binding;
pub mod cel;
pub mod compile;
pub mod matching;
pub mod validate;

use super::convert::from_storage;
use super::meta;
use super::resources::ResourceType;
use super::status::ApiError;
use super::users::UserInfo;
use compile::{CompiledPolicy, REASONS};
use matching::MatchResources;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use validate::{Decision, Inputs};

pub const GROUP: &str = "admissionregistration.k8s.io";
pub const POLICIES: &str = "validatingadmissionpolicies";
pub const BINDINGS: &str = "validatingadmissionpolicybindings";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
        }
    }
}

/// One admission request. Objects are in storage form; `namespace` of a Namespace is its name.
pub struct Request<'a> {
    pub operation: Operation,
    pub rt: &'a ResourceType,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub object: Option<&'a Value>,
    pub old_object: Option<&'a Value>,
    pub user: &'a UserInfo,
    pub dry_run: bool,
}

/// What admission reads from the cluster (storage-form objects).
pub trait Cluster {
    fn bindings(&self) -> Vec<Arc<Value>>;
    fn policy(&self, name: &str) -> Option<Arc<CompiledPolicy>>;
    fn namespace(&self, name: &str) -> Option<Arc<Value>>;
    /// Every served version of the resource `rt` is a version of.
    fn equivalents(&self, rt: &ResourceType) -> Vec<Arc<ResourceType>>;
    fn type_by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>>;
    fn object(&self, rt: &ResourceType, namespace: &str, name: &str) -> Option<Value>;
    fn objects(&self, rt: &ResourceType, namespace: Option<&str>) -> Vec<Value>;
}

/// Defaults and validates a policy or binding being written; `causes` collects what is wrong.
pub fn admit_object(plural: &str, obj: &mut Value, causes: &mut Vec<(String, String)>) {
    match plural {
        POLICIES => {
            compile::default_policy(obj);
            match compile::compile_policy(obj) {
                Ok(_) => obj["status"] = compile::policy_status(obj),
                Err(found) => causes.extend(found),
            }
        }
        BINDINGS => {
            binding::default_binding(obj);
            causes.extend(binding::check_binding(obj));
        }
        _ => {}
    }
}

/// A denial waiting to be reported: the first one decides the response.
struct Denial {
    policy: String,
    binding: String,
    message: String,
    reason: Option<&'static str>,
}

/// What the bindings decided so far: refusals (the first one answers) and warnings.
#[derive(Default)]
struct Outcome {
    denials: Vec<Denial>,
    warnings: Vec<String>,
}

/// The namespace-dependent parts of matching and evaluation, looked up once per request.
struct Scope<'a> {
    namespace: Option<&'a Value>,
    labels: Option<&'a serde_json::Map<String, Value>>,
    equivalents: Vec<Arc<ResourceType>>,
}

/// Judges a request by every binding; `Ok` carries the warnings for the response.
pub fn admit(cluster: &dyn Cluster, req: &Request) -> Result<Vec<String>, ApiError> {
    // Policies never judge the admission configuration itself, so none can lock it.
    if req.rt.group == GROUP {
        return Ok(Vec::new());
    }
    let bindings = cluster.bindings();
    if bindings.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_policy: BTreeMap<String, Vec<Arc<Value>>> = BTreeMap::new();
    for b in bindings {
        let name = b["spec"]["policyName"].as_str().unwrap_or("").to_string();
        by_policy.entry(name).or_default().push(b);
    }
    let is_namespace = req.rt.group.is_empty() && req.rt.plural == "namespaces";
    let namespace = if req.namespace.is_empty() || is_namespace {
        None
    } else {
        cluster.namespace(req.namespace)
    };
    let scope = Scope {
        labels: if is_namespace {
            req.old_object.and_then(meta::labels)
        } else {
            namespace.as_deref().and_then(meta::labels)
        },
        namespace: namespace.as_deref(),
        equivalents: cluster.equivalents(req.rt),
    };
    let mut outcome = Outcome::default();
    for (name, bindings) in by_policy {
        // A binding naming a missing policy does nothing.
        if let Some(policy) = cluster.policy(&name) {
            judge(cluster, req, &scope, &policy, &bindings, &mut outcome);
        }
    }
    match outcome.denials.into_iter().next() {
        Some(d) => Err(refusal(req, &d)),
        None => Ok(outcome.warnings),
    }
}

/// One policy with its bindings: each binding that matches, with each of its params.
fn judge(
    cluster: &dyn Cluster,
    req: &Request,
    scope: &Scope,
    policy: &CompiledPolicy,
    bindings: &[Arc<Value>],
    outcome: &mut Outcome,
) {
    let Some(matched) = policy.constraints.matches(req, scope.labels, &scope.equivalents) else {
        return;
    };
    let mut inputs = Inputs {
        object: req.object.map_or(Value::Null, |o| from_storage(&matched, o)),
        old_object: req.old_object.map_or(Value::Null, |o| from_storage(&matched, o)),
        request: request_object(req, &matched),
        params: Value::Null,
        namespace_object: scope.namespace.map_or(Value::Null, namespace_object),
    };
    for b in bindings {
        let narrowed = MatchResources::from_json(&b["spec"]["matchResources"]);
        if narrowed.matches(req, scope.labels, &scope.equivalents).is_none() {
            continue;
        }
        let denial = |message: String, reason: Option<&'static str>| Denial {
            policy: policy.name.clone(),
            binding: meta::name(b).to_string(),
            message,
            reason,
        };
        let params = match binding::collect_params(policy, b, req.namespace, cluster) {
            Ok(p) => p,
            Err(e) => {
                // A configuration error is subject to the failure policy, not to the actions.
                if policy.failure_policy == compile::FailurePolicy::Fail {
                    outcome
                        .denials
                        .push(denial(format!("failed to configure binding: {e}"), None));
                }
                continue;
            }
        };
        for p in params {
            inputs.params = p;
            for decision in validate::evaluate(policy, &inputs) {
                let (message, reason) = match decision {
                    Decision::Deny { message, reason } => (message, reason),
                    Decision::Error(message) => (message, None),
                };
                for action in b["spec"]["validationActions"].as_array().into_iter().flatten() {
                    match action.as_str() {
                        Some("Deny") => outcome.denials.push(denial(message.clone(), reason)),
                        Some("Warn") => outcome.warnings.push(format!(
                            "Validation failed for ValidatingAdmissionPolicy '{}' with binding '{}': {message}",
                            policy.name,
                            meta::name(b)
                        )),
                        _ => {}
                    }
                }
            }
        }
    }
}

/// The API server's refusal: a Forbidden-shaped Status whose reason and code are the policy's.
fn refusal(req: &Request, d: &Denial) -> ApiError {
    let reason = d.reason.unwrap_or("Invalid");
    let code = REASONS.iter().find(|(r, _)| *r == reason).map_or(422, |(_, c)| *c);
    let message = format!(
        "ValidatingAdmissionPolicy '{}' with binding '{}' denied request: {}",
        d.policy, d.binding, d.message
    );
    let name = if req.name.is_empty() { "Unknown" } else { req.name };
    ApiError::admission_denied(&req.rt.group, &req.rt.plural, name, reason, code, &message)
}

/// The `request` variable: an AdmissionRequest without the objects.
fn request_object(req: &Request, matched: &ResourceType) -> Value {
    let mut r = json!({
        "uid": meta::new_uid(),
        "kind": {"group": matched.group, "version": matched.version, "kind": matched.kind},
        "resource": {"group": matched.group, "version": matched.version, "resource": matched.plural},
        "requestKind": {"group": req.rt.group, "version": req.rt.version, "kind": req.rt.kind},
        "requestResource": {"group": req.rt.group, "version": req.rt.version, "resource": req.rt.plural},
        "name": req.name,
        "namespace": req.namespace,
        "operation": req.operation.as_str(),
        "userInfo": req.user.to_json(),
        "dryRun": req.dry_run,
        "options": {"kind": req.operation.options_kind(), "apiVersion": "meta.k8s.io/v1"},
    });
    if !req.subresource.is_empty() {
        r["subResource"] = json!(req.subresource);
        r["requestSubResource"] = json!(req.subresource);
    }
    r
}

/// `namespaceObject`: the namespace without its managed fields.
fn namespace_object(ns: &Value) -> Value {
    let mut out = ns.clone();
    meta::remove_meta(&mut out, "managedFields");
    out
}
