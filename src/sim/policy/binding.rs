//! A ValidatingAdmissionPolicyBinding: defaulted and validated as the API server does, and the
//! parameters its `paramRef` selects for one request.

use super::Cluster;
use super::compile::{self, Causes, CompiledPolicy, ParamKind};
use crate::sim::convert::from_storage;
use crate::sim::meta;
use crate::sim::selector::LabelSelector;
use serde_json::Value;

pub fn default_binding(obj: &mut Value) {
    if obj["spec"]["matchResources"].is_object() {
        compile::default_match_resources(&mut obj["spec"]["matchResources"]);
    }
}

const ACTIONS: &[&str] = &["Audit", "Deny", "Warn"];

fn check_param_ref(pr: &Value, causes: &mut Causes) {
    let has_name = pr["name"].as_str().is_some_and(|n| !n.is_empty());
    let has_selector = pr["selector"].is_object();
    if has_name && has_selector {
        causes.push((
            "spec.paramRef.name".into(),
            "Forbidden: name and selector are mutually exclusive".into(),
        ));
    }
    if !has_name && !has_selector {
        causes.push((
            "spec.paramRef".into(),
            "Required value: one of name or selector must be specified".into(),
        ));
    }
    match pr["parameterNotFoundAction"].as_str() {
        None | Some("") => compile::required(causes, "spec.paramRef.parameterNotFoundAction".into()),
        Some("Allow" | "Deny") => {}
        Some(_) => compile::unsupported(
            causes,
            "spec.paramRef.parameterNotFoundAction".into(),
            &pr["parameterNotFoundAction"],
            &["Deny", "Allow"],
        ),
    }
}

/// The field causes of an invalid (defaulted) binding; empty when it is valid.
pub fn check_binding(obj: &Value) -> Causes {
    let spec = &obj["spec"];
    let mut causes = Causes::new();
    match spec["policyName"].as_str() {
        None | Some("") => compile::required(&mut causes, "spec.policyName".into()),
        Some(p) if !meta::is_dns_subdomain(p) => causes.push((
            "spec.policyName".into(),
            format!("Invalid value: {p:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"),
        )),
        Some(_) => {}
    }
    if spec["paramRef"].is_object() {
        check_param_ref(&spec["paramRef"], &mut causes);
    }
    if spec["matchResources"].is_object() {
        compile::check_match_resources(&spec["matchResources"], "spec.matchResources", &mut causes);
    }
    let actions = spec["validationActions"].as_array().cloned().unwrap_or_default();
    if actions.is_empty() {
        causes.push((
            "spec.validationActions".into(),
            "Required value: at least one validation action is required".into(),
        ));
    }
    for (i, a) in actions.iter().enumerate() {
        if !a.as_str().is_some_and(|a| ACTIONS.contains(&a)) {
            compile::unsupported(&mut causes, format!("spec.validationActions[{i}]"), a, ACTIONS);
        } else if actions[..i].contains(a) {
            causes.push((format!("spec.validationActions[{i}]"), format!("Duplicate value: {a}")));
        }
    }
    if actions.iter().any(|a| a == "Deny") && actions.iter().any(|a| a == "Warn") {
        causes.push((
            "spec.validationActions".into(),
            "Invalid value: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)".into(),
        ));
    }
    causes
}

/// The params to evaluate the policy with for this binding and request: `[null]` when the
/// policy takes none, nothing when none are found and that is allowed, or a configuration error.
pub fn collect_params(
    policy: &CompiledPolicy,
    binding: &Value,
    request_namespace: &str,
    cluster: &dyn Cluster,
) -> Result<Vec<Value>, String> {
    let param_ref = &binding["spec"]["paramRef"];
    let (Some(ParamKind { api_version, kind }), true) = (&policy.param_kind, param_ref.is_object()) else {
        return Ok(vec![Value::Null]);
    };
    let rt = cluster
        .type_by_kind(api_version, kind)
        .ok_or_else(|| format!("paramKind kind `{api_version}, Kind={kind}` not known"))?;
    let ref_namespace = param_ref["namespace"].as_str().unwrap_or("");
    let namespace = if !rt.namespaced {
        if !ref_namespace.is_empty() {
            return Err("paramRef.namespace must not be provided for a cluster-scoped `paramKind`".into());
        }
        None
    } else if !ref_namespace.is_empty() {
        Some(ref_namespace)
    } else if !request_namespace.is_empty() {
        Some(request_namespace)
    } else {
        return Err("cannot use namespaced paramRef in policy binding that matches cluster-scoped resources".into());
    };
    let found: Vec<Value> = match param_ref["name"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => cluster.object(&rt, namespace.unwrap_or(""), name).into_iter().collect(),
        None => {
            let selector = LabelSelector::from_object(&param_ref["selector"]);
            cluster
                .objects(&rt, namespace)
                .into_iter()
                .filter(|o| selector.matches(meta::labels(o)))
                .collect()
        }
    };
    if found.is_empty() && param_ref["parameterNotFoundAction"] == "Deny" {
        return Err("no params found for policy binding with `Deny` parameterNotFoundAction".into());
    }
    Ok(found.iter().map(|o| from_storage(&rt, o)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bindings_are_checked_as_the_api_server_checks_them() {
        let ok = json!({"metadata": {"name": "b"}, "spec": {"policyName": "p", "validationActions": ["Deny"]}});
        assert!(check_binding(&ok).is_empty());
        let bad = json!({"metadata": {"name": "b"}, "spec": {
            "policyName": "p",
            "validationActions": ["Deny", "Warn"],
            "paramRef": {"name": "limits"},
        }});
        let fields: Vec<String> = check_binding(&bad).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            ["spec.paramRef.parameterNotFoundAction", "spec.validationActions"]
        );
        let none = json!({"metadata": {"name": "b"}, "spec": {"policyName": "p", "validationActions": ["Block"]}});
        let causes = check_binding(&none);
        assert!(causes[0].1.starts_with("Unsupported value: \"Block\""), "{causes:?}");
    }
}
