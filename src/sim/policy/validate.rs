//! One policy judged for one request, binding and param: match conditions, variables, then
//! each validation with its message. Failures come back as decisions; the dispatcher applies
//! the binding's actions and the failure policy.

use super::cel::{self, Compiled};
use super::compile::{CompiledPolicy, FailurePolicy, Validation};
use kube::core::cel::cel::{Context, Value};

/// What one validation decided against the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The expression was false: refused with this message and reason (`Invalid` when unset).
    Deny {
        message: String,
        reason: Option<&'static str>,
    },
    /// The expression could not be evaluated (after the failure policy: Fail).
    Error(String),
}

/// The CEL variables of one evaluation, as JSON.
pub struct Inputs {
    pub object: serde_json::Value,
    pub old_object: serde_json::Value,
    pub request: serde_json::Value,
    pub params: serde_json::Value,
    pub namespace_object: serde_json::Value,
}

/// Evaluates the policy; an empty list admits.
pub fn evaluate(policy: &CompiledPolicy, inputs: &Inputs) -> Vec<Decision> {
    let mut base = vec![
        ("object", cel::to_cel(&inputs.object)),
        ("oldObject", cel::to_cel(&inputs.old_object)),
        ("request", cel::to_cel(&inputs.request)),
        ("namespaceObject", cel::to_cel(&inputs.namespace_object)),
    ];
    if policy.param_kind.is_some() {
        base.push(("params", cel::to_cel(&inputs.params)));
    }
    let root = cel::context(base);
    let on_error = |message: String| match policy.failure_policy {
        FailurePolicy::Fail => vec![Decision::Error(message)],
        FailurePolicy::Ignore => Vec::new(),
    };
    match conditions_match(policy, &root) {
        Ok(true) => {}
        Ok(false) => return Vec::new(),
        Err(e) => return on_error(e),
    }
    let variables = variables(policy, &root);
    let mut ctx = root.new_inner_scope();
    ctx.add_variable_from_value("variables", cel::map_of(&variables));
    let mut out = Vec::new();
    for v in &policy.validations {
        match cel::run_bool(&v.expr, &ctx) {
            Ok(true) => {}
            Ok(false) => out.push(Decision::Deny {
                message: message(v, &ctx),
                reason: v.reason,
            }),
            Err(e) => out.extend(on_error(e)),
        }
    }
    out
}

/// All conditions must hold; a false one wins over an error in another, as in the API server.
fn conditions_match(policy: &CompiledPolicy, ctx: &Context) -> Result<bool, String> {
    let mut errors = Vec::new();
    for c in &policy.match_conditions {
        match cel::run_bool(&c.expr, ctx) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(true),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// Each variable in order, seeing those before it; one that fails is left out, so that only an
/// expression using it fails.
fn variables(policy: &CompiledPolicy, root: &Context) -> Vec<(String, Value)> {
    let mut values: Vec<(String, Value)> = Vec::new();
    for v in &policy.variables {
        let mut scope = root.new_inner_scope();
        scope.add_variable_from_value("variables", cel::map_of(&values));
        if let Ok(value) = cel::run(&v.expr, &scope) {
            values.push((v.name.clone(), value));
        }
    }
    values
}

/// `messageExpression` when it gives a usable one-line string, else `message`, else the
/// expression itself.
fn message(v: &Validation, ctx: &Context) -> String {
    let from_expression = v
        .message_expr
        .as_ref()
        .and_then(|m: &Compiled| match cel::run(m, ctx) {
            Ok(Value::String(s)) => Some(s.trim().to_string()),
            _ => None,
        })
        .filter(|m| !m.is_empty() && !m.contains('\n') && m.len() <= 5 * 1024);
    from_expression
        .or_else(|| {
            v.message
                .as_ref()
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
        })
        .unwrap_or_else(|| format!("failed expression: {}", v.expr.source.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::policy::compile::{compile_policy, default_policy};
    use serde_json::json;

    fn policy(extra: serde_json::Value) -> CompiledPolicy {
        let mut spec = json!({"matchConstraints": {"resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]}]}});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        let mut obj = json!({"metadata": {"name": "p"}, "spec": spec});
        default_policy(&mut obj);
        compile_policy(&obj).unwrap()
    }

    fn inputs(object: serde_json::Value) -> Inputs {
        Inputs {
            object,
            old_object: serde_json::Value::Null,
            request: json!({"operation": "CREATE"}),
            params: json!({"data": {"max": "3"}}),
            namespace_object: serde_json::Value::Null,
        }
    }

    #[test]
    fn messages_come_from_the_expression_the_message_or_the_rule() {
        let p = policy(json!({
            "variables": [{"name": "n", "expression": "object.spec.replicas"}],
            "validations": [
                {"expression": "variables.n <= 3", "messageExpression": "'replicas ' + string(variables.n) + ' > 3'"},
                {"expression": "variables.n <= 2", "message": "at most two"},
                {"expression": "variables.n <= 1", "reason": "Forbidden"},
            ],
        }));
        let got = evaluate(&p, &inputs(json!({"spec": {"replicas": 5}})));
        assert_eq!(
            got,
            vec![
                Decision::Deny {
                    message: "replicas 5 > 3".into(),
                    reason: None
                },
                Decision::Deny {
                    message: "at most two".into(),
                    reason: None
                },
                Decision::Deny {
                    message: "failed expression: variables.n <= 1".into(),
                    reason: Some("Forbidden")
                },
            ]
        );
        assert!(evaluate(&p, &inputs(json!({"spec": {"replicas": 1}}))).is_empty());
    }

    #[test]
    fn match_conditions_gate_and_errors_follow_the_failure_policy() {
        let gated = policy(json!({
            "matchConditions": [{"name": "labelled", "expression": "has(object.metadata.labels)"}],
            "validations": [{"expression": "false"}],
        }));
        assert!(evaluate(&gated, &inputs(json!({"metadata": {}}))).is_empty());
        assert_eq!(evaluate(&gated, &inputs(json!({"metadata": {"labels": {}}}))).len(), 1);
        let broken =
            |fp: &str| policy(json!({"failurePolicy": fp, "validations": [{"expression": "object.spec.missing > 1"}]}));
        let got = evaluate(&broken("Fail"), &inputs(json!({"spec": {}})));
        assert!(
            matches!(&got[..], [Decision::Error(e)] if e.starts_with("expression 'object.spec.missing > 1' resulted in error")),
            "{got:?}"
        );
        assert!(evaluate(&broken("Ignore"), &inputs(json!({"spec": {}}))).is_empty());
    }
}
