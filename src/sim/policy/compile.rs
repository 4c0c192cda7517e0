//! A ValidatingAdmissionPolicy as the API server takes it in: defaulted, validated (an
//! expression that does not compile is a 422 naming its field), and compiled once for every
//! request it will judge.

use super::cel::{self, Compiled, Declared};
use super::matching::MatchResources;
use serde_json::{Value, json};

pub type Causes = Vec<(String, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    Fail,
    Ignore,
}

#[derive(Debug)]
pub struct Validation {
    pub expr: Compiled,
    pub message: Option<String>,
    pub message_expr: Option<Compiled>,
    pub reason: Option<&'static str>,
}

#[derive(Debug)]
pub struct Named {
    pub name: String,
    pub expr: Compiled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamKind {
    pub api_version: String,
    pub kind: String,
}

#[derive(Debug)]
pub struct CompiledPolicy {
    pub name: String,
    pub failure_policy: FailurePolicy,
    pub param_kind: Option<ParamKind>,
    pub constraints: MatchResources,
    pub match_conditions: Vec<Named>,
    pub variables: Vec<Named>,
    pub validations: Vec<Validation>,
}

/// The reasons a validation may give, each with its HTTP code.
pub const REASONS: &[(&str, u16)] = &[
    ("Unauthorized", 401),
    ("Forbidden", 403),
    ("Invalid", 422),
    ("RequestEntityTooLarge", 413),
];

const OPERATIONS: &[&str] = &["*", "CREATE", "UPDATE", "DELETE", "CONNECT"];

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), value);
    }
}

/// Defaults of a `MatchResources`, shared by policies and bindings.
pub fn default_match_resources(m: &mut Value) {
    set_default(m, "matchPolicy", json!("Equivalent"));
    set_default(m, "namespaceSelector", json!({}));
    set_default(m, "objectSelector", json!({}));
    for key in ["resourceRules", "excludeResourceRules"] {
        if let Some(rules) = m.get_mut(key).and_then(Value::as_array_mut) {
            rules.iter_mut().for_each(|r| set_default(r, "scope", json!("*")));
        }
    }
}

pub fn default_policy(obj: &mut Value) {
    if obj["spec"].is_object() {
        set_default(&mut obj["spec"], "failurePolicy", json!("Fail"));
        if obj["spec"]["matchConstraints"].is_object() {
            default_match_resources(&mut obj["spec"]["matchConstraints"]);
        }
    }
}

pub fn required(causes: &mut Causes, field: String) {
    causes.push((field, "Required value".into()));
}

pub fn unsupported(causes: &mut Causes, field: String, value: &Value, supported: &[&str]) {
    let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    causes.push((
        field,
        format!("Unsupported value: {value}: supported values: {}", list.join(", ")),
    ));
}

fn invalid(causes: &mut Causes, field: String, value: &str, detail: &str) {
    causes.push((field, format!("Invalid value: {value:?}: {detail}")));
}

/// Validates a `MatchResources` at `path` (rules, their operations and scope, the policy).
pub fn check_match_resources(m: &Value, path: &str, causes: &mut Causes) {
    if let Some(p) = m.get("matchPolicy").filter(|p| !p.is_null())
        && !matches!(p.as_str(), Some("Exact" | "Equivalent"))
    {
        unsupported(causes, format!("{path}.matchPolicy"), p, &["Equivalent", "Exact"]);
    }
    for key in ["resourceRules", "excludeResourceRules"] {
        for (i, rule) in m[key].as_array().into_iter().flatten().enumerate() {
            let at = format!("{path}.{key}[{i}]");
            for list in ["apiGroups", "apiVersions", "resources", "operations"] {
                if rule[list].as_array().is_none_or(|a| a.is_empty()) {
                    required(causes, format!("{at}.{list}"));
                }
            }
            for (j, op) in rule["operations"].as_array().into_iter().flatten().enumerate() {
                if !op.as_str().is_some_and(|o| OPERATIONS.contains(&o)) {
                    unsupported(causes, format!("{at}.operations[{j}]"), op, OPERATIONS);
                }
            }
            if let Some(scope) = rule.get("scope").filter(|s| !s.is_null())
                && !matches!(scope.as_str(), Some("*" | "Cluster" | "Namespaced"))
            {
                unsupported(causes, format!("{at}.scope"), scope, &["*", "Cluster", "Namespaced"]);
            }
        }
    }
}

fn is_cel_identifier(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&name)
}

/// Compiles one expression field, recording a cause when it is empty or does not compile.
fn expression(v: &Value, path: String, declared: Declared, causes: &mut Causes) -> Option<Compiled> {
    let source = v.as_str().unwrap_or("");
    if source.trim().is_empty() {
        required(causes, path);
        return None;
    }
    match cel::compile(source, declared) {
        Ok(c) => Some(c),
        Err(detail) => {
            invalid(causes, path, source, &detail);
            None
        }
    }
}

fn named_list(spec: &Value, key: &str, declared: Declared, causes: &mut Causes) -> Vec<Named> {
    let mut out = Vec::new();
    for (i, item) in spec[key].as_array().into_iter().flatten().enumerate() {
        let at = format!("spec.{key}[{i}]");
        let name = item["name"].as_str().unwrap_or("").to_string();
        if name.trim().is_empty() {
            required(causes, format!("{at}.name"));
        } else if key == "variables" && !is_cel_identifier(&name) {
            invalid(
                causes,
                format!("{at}.name"),
                &name,
                "name is not a valid CEL identifier",
            );
        }
        if let Some(expr) = expression(&item["expression"], format!("{at}.expression"), declared, causes) {
            out.push(Named { name, expr });
        }
    }
    out
}

fn validations(spec: &Value, declared: Declared, causes: &mut Causes) -> Vec<Validation> {
    let mut out = Vec::new();
    let message_declared = Declared {
        authorizer: false,
        ..declared
    };
    for (i, v) in spec["validations"].as_array().into_iter().flatten().enumerate() {
        let at = format!("spec.validations[{i}]");
        let expr = expression(&v["expression"], format!("{at}.expression"), declared, causes);
        let message_expr = match v["messageExpression"].as_str() {
            Some(m) if !m.is_empty() => expression(
                &v["messageExpression"],
                format!("{at}.messageExpression"),
                message_declared,
                causes,
            ),
            _ => None,
        };
        let message = v["message"].as_str().map(String::from);
        if message.as_deref().is_some_and(|m| m.contains(['\n', '\r'])) {
            let m = message.clone().unwrap_or_default();
            invalid(
                causes,
                format!("{at}.message"),
                &m,
                "message must not contain line breaks",
            );
        }
        let reason = match v.get("reason").filter(|r| !r.is_null()) {
            None => None,
            Some(r) => match REASONS.iter().find(|(name, _)| Some(*name) == r.as_str()) {
                Some((name, _)) => Some(*name),
                None => {
                    let names: Vec<&str> = REASONS.iter().map(|(n, _)| *n).collect();
                    unsupported(causes, format!("{at}.reason"), r, &names);
                    None
                }
            },
        };
        if let Some(expr) = expr {
            out.push(Validation {
                expr,
                message,
                message_expr,
                reason,
            });
        }
    }
    out
}

fn param_kind(spec: &Value, causes: &mut Causes) -> Option<ParamKind> {
    let pk = spec.get("paramKind").filter(|p| !p.is_null())?;
    let api_version = pk["apiVersion"].as_str().unwrap_or("").to_string();
    let kind = pk["kind"].as_str().unwrap_or("").to_string();
    if api_version.is_empty() {
        required(causes, "spec.paramKind.apiVersion".into());
    }
    if kind.is_empty() {
        required(causes, "spec.paramKind.kind".into());
    }
    Some(ParamKind { api_version, kind })
}

/// Checks and compiles a (defaulted) policy; the errors are field causes for a 422.
pub fn compile_policy(obj: &Value) -> Result<CompiledPolicy, Causes> {
    let spec = &obj["spec"];
    let mut causes = Causes::new();
    let failure_policy = match spec["failurePolicy"].as_str() {
        Some("Ignore") => FailurePolicy::Ignore,
        Some("Fail") | None => FailurePolicy::Fail,
        Some(_) => {
            unsupported(
                &mut causes,
                "spec.failurePolicy".into(),
                &spec["failurePolicy"],
                &["Fail", "Ignore"],
            );
            FailurePolicy::Fail
        }
    };
    let param_kind = param_kind(spec, &mut causes);
    let constraints = &spec["matchConstraints"];
    if !constraints.is_object() {
        required(&mut causes, "spec.matchConstraints".into());
    } else {
        check_match_resources(constraints, "spec.matchConstraints", &mut causes);
        if constraints["resourceRules"].as_array().is_none_or(|r| r.is_empty()) {
            required(&mut causes, "spec.matchConstraints.resourceRules".into());
        }
    }
    let declared = Declared {
        params: param_kind.is_some(),
        authorizer: true,
        variables: false,
    };
    let match_conditions = named_list(spec, "matchConditions", declared, &mut causes);
    let with_variables = Declared {
        variables: true,
        ..declared
    };
    let variables = named_list(spec, "variables", with_variables, &mut causes);
    let validations = validations(spec, with_variables, &mut causes);
    let audits = spec["auditAnnotations"].as_array().map_or(0, Vec::len);
    if spec["validations"].as_array().is_none_or(|v| v.is_empty()) && audits == 0 {
        let why = "Required value: validations or auditAnnotations must contain at least one item";
        causes.push(("spec.validations".into(), why.into()));
        causes.push(("spec.auditAnnotations".into(), why.into()));
    }
    for (i, a) in spec["auditAnnotations"].as_array().into_iter().flatten().enumerate() {
        let at = format!("spec.auditAnnotations[{i}].valueExpression");
        let _ = expression(&a["valueExpression"], at, with_variables, &mut causes);
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    Ok(CompiledPolicy {
        name: crate::sim::meta::name(obj).to_string(),
        failure_policy,
        param_kind,
        constraints: MatchResources::from_json(constraints),
        match_conditions,
        variables,
        validations,
    })
}

/// The status the API server's type checker leaves on an accepted policy.
pub fn policy_status(obj: &Value) -> Value {
    json!({"observedGeneration": obj["metadata"]["generation"].as_i64().unwrap_or(1), "typeChecking": {}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(spec: Value) -> Value {
        let mut obj = json!({"metadata": {"name": "p"}, "spec": spec});
        default_policy(&mut obj);
        obj
    }

    fn rules() -> Value {
        json!({"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"]}]})
    }

    #[test]
    fn compiles_a_policy_and_defaults_it() {
        let obj = policy(json!({
            "matchConstraints": rules(),
            "variables": [{"name": "replicas", "expression": "object.spec.replicas"}],
            "validations": [{"expression": "variables.replicas <= 5", "messageExpression": "'too many: ' + string(variables.replicas)", "reason": "Forbidden"}],
        }));
        assert_eq!(obj["spec"]["failurePolicy"], "Fail");
        assert_eq!(obj["spec"]["matchConstraints"]["matchPolicy"], "Equivalent");
        assert_eq!(obj["spec"]["matchConstraints"]["resourceRules"][0]["scope"], "*");
        let p = compile_policy(&obj).unwrap();
        assert_eq!((p.variables.len(), p.validations.len()), (1, 1));
        assert_eq!(p.validations[0].reason, Some("Forbidden"));
    }

    #[test]
    fn refuses_what_the_api_server_refuses() {
        let bad = policy(json!({
            "matchConstraints": rules(),
            "validations": [{"expression": "object.spec.replicas <="}, {"expression": "params.max > 1"}],
            "failurePolicy": "Sometimes",
        }));
        let causes = compile_policy(&bad).unwrap_err();
        let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.failurePolicy",
                "spec.validations[0].expression",
                "spec.validations[1].expression"
            ]
        );
        assert!(
            causes[1]
                .1
                .starts_with("Invalid value: \"object.spec.replicas <=\": compilation failed: ERROR: <input>:1:"),
            "{}",
            causes[1].1
        );
        assert!(
            causes[2].1.contains("undeclared reference to 'params'"),
            "{}",
            causes[2].1
        );
        let empty = compile_policy(&policy(json!({"matchConstraints": {}}))).unwrap_err();
        let fields: Vec<&str> = empty.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.matchConstraints.resourceRules",
                "spec.validations",
                "spec.auditAnnotations"
            ]
        );
    }
}
