//! CEL as admission policies use it: compiled once with the policy's variables declared (so an
//! expression naming an unknown variable is refused when the policy is written, as the API
//! server's type check refuses it), and evaluated over JSON objects.

use kube::core::cel::KubeCelExt;
use kube::core::cel::cel::common::ast::{EntryExpr, Expr, IdedExpr};
use kube::core::cel::cel::objects::{Key, Map};
use kube::core::cel::cel::{Context, Program, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Which of the optional variables an expression may name.
#[derive(Debug, Clone, Copy, Default)]
pub struct Declared {
    pub params: bool,
    pub authorizer: bool,
    pub variables: bool,
}

/// One expression, parsed and checked.
pub struct Compiled {
    pub source: String,
    program: Program,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("source", &self.source).finish()
    }
}

/// Names CEL itself provides: type names and the namespaces of extension functions.
const BUILTIN_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "type",
    "null_type",
    "dyn",
    "timestamp",
    "duration",
    "math",
    "sets",
    "strings",
    "base64",
    "optional",
];

/// Parses `source` and checks every free name is declared. The error is the detail the API
/// server puts after the field and value: `compilation failed: ERROR: <input>:1:1: ...`.
pub fn compile(source: &str, declared: Declared) -> Result<Compiled, String> {
    // cel-go indents the source snippet under an error by one space more.
    let program = Program::compile(source)
        .map_err(|e| format!("compilation failed: {}", e.to_string().replace("\n| ", "\n | ")))?;
    let mut known: Vec<&str> = vec!["object", "oldObject", "request", "namespaceObject"];
    known.extend(BUILTIN_NAMES);
    if declared.params {
        known.push("params");
    }
    if declared.authorizer {
        known.push("authorizer");
    }
    if declared.variables {
        known.push("variables");
    }
    let mut free = Vec::new();
    free_names(program.expression(), &mut Vec::new(), &mut free);
    if let Some(name) = free.into_iter().find(|n| !known.contains(&n.as_str())) {
        let (line, col, text) = locate(source, &name);
        return Err(format!(
            "compilation failed: ERROR: <input>:{line}:{col}: undeclared reference to '{name}' (in container '')\n | {text}\n | {:.>col$}",
            "^"
        ));
    }
    Ok(Compiled {
        source: source.to_string(),
        program,
    })
}

/// Line, column (both from 1) and line text of a name's first whole-word use.
fn locate(source: &str, name: &str) -> (usize, usize, String) {
    for (i, line) in source.lines().enumerate() {
        let mut from = 0;
        while let Some(pos) = line[from..].find(name).map(|p| p + from) {
            let before = line[..pos].chars().next_back();
            let after = line[pos + name.len()..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
            if !word(before) && !after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                return (i + 1, pos + 1, line.to_string());
            }
            from = pos + name.len();
        }
    }
    (1, 1, source.lines().next().unwrap_or("").to_string())
}

/// Collects identifiers not bound by an enclosing comprehension (`all`, `map`, `filter`...).
fn free_names(e: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<String>) {
    match &e.expr {
        Expr::Ident(name) => {
            if !bound.contains(name) && !out.contains(name) {
                out.push(name.clone());
            }
        }
        Expr::Select(s) => free_names(&s.operand, bound, out),
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                free_names(t, bound, out);
            }
            for a in &c.args {
                free_names(a, bound, out);
            }
        }
        Expr::List(l) => l.elements.iter().for_each(|x| free_names(x, bound, out)),
        Expr::Map(m) => m.entries.iter().for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(me) => {
                free_names(&me.key, bound, out);
                free_names(&me.value, bound, out);
            }
            EntryExpr::StructField(sf) => free_names(&sf.value, bound, out),
        }),
        Expr::Struct(s) => s.entries.iter().for_each(|entry| {
            if let EntryExpr::StructField(sf) = &entry.expr {
                free_names(&sf.value, bound, out);
            }
        }),
        Expr::Comprehension(c) => {
            free_names(&c.iter_range, bound, out);
            free_names(&c.accu_init, bound, out);
            let depth = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                free_names(part, bound, out);
            }
            bound.truncate(depth);
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// A JSON value as CEL sees it: objects are maps, integers stay integers.
pub fn to_cel(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(Arc::new(s.clone())),
        J::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        J::Object(map) => {
            let entries: HashMap<Key, Value> = map
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Value::Map(Map { map: Arc::new(entries) })
        }
    }
}

/// A root context with CEL's and Kubernetes' functions and the given variables.
pub fn context(variables: Vec<(&str, Value)>) -> Context<'static> {
    let mut ctx = Context::default();
    ctx.register_all();
    for (name, value) in variables {
        ctx.add_variable_from_value(name, value);
    }
    ctx
}

/// Runs an expression; an error reads as the API server words it.
pub fn run(expr: &Compiled, ctx: &Context) -> Result<Value, String> {
    expr.program
        .execute(ctx)
        .map_err(|e| format!("expression '{}' resulted in error: {e}", expr.source))
}

/// Runs an expression that must give a bool.
pub fn run_bool(expr: &Compiled, ctx: &Context) -> Result<bool, String> {
    match run(expr, ctx)? {
        Value::Bool(b) => Ok(b),
        other => Err(format!(
            "expression '{}' resulted in error: must evaluate to bool, got {}",
            expr.source,
            other.type_of()
        )),
    }
}

/// A map value from named values, for `variables`.
pub fn map_of(entries: &[(String, Value)]) -> Value {
    let map: HashMap<Key, Value> = entries
        .iter()
        .map(|(k, v)| (Key::String(Arc::new(k.clone())), v.clone()))
        .collect();
    Value::Map(Map { map: Arc::new(map) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared() -> Declared {
        Declared {
            params: true,
            authorizer: true,
            variables: true,
        }
    }

    #[test]
    fn unknown_names_are_refused_and_bound_ones_are_not() {
        assert!(compile("object.spec.steps.all(s, has(s.setWeight))", declared()).is_ok());
        assert!(compile("[1, 2].map(i, i * 2).exists(x, x == 4)", declared()).is_ok());
        assert!(compile("sets.contains([1], [1]) && math.greatest(1, 2) == 2", declared()).is_ok());
        let err = compile("objekt.spec == null", declared()).unwrap_err();
        assert!(
            err.starts_with("compilation failed: ERROR: <input>:1:1: undeclared reference to 'objekt'"),
            "{err}"
        );
        let no_params = compile("params.data.max == '1'", Declared::default()).unwrap_err();
        assert!(no_params.contains("undeclared reference to 'params'"), "{no_params}");
        let syntax = compile("object.spec ==", declared()).unwrap_err();
        assert!(syntax.starts_with("compilation failed: ERROR: <input>:1:"), "{syntax}");
    }

    #[test]
    fn runs_over_json_with_kubernetes_functions() {
        let obj = json!({"spec": {"steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 60}]}, "metadata": {"name": "Web"}});
        let ctx = context(vec![("object", to_cel(&obj))]);
        let w = compile(
            "object.spec.steps.filter(s, has(s.setWeight)).map(s, s.setWeight) == [10, 60]",
            declared(),
        )
        .unwrap();
        assert_eq!(run_bool(&w, &ctx), Ok(true));
        let lower = compile("object.metadata.name.lowerAscii() == 'web'", declared()).unwrap();
        assert_eq!(run_bool(&lower, &ctx), Ok(true));
        let missing = compile("object.spec.strategy.canary == null", declared()).unwrap();
        let err = run_bool(&missing, &ctx).unwrap_err();
        assert!(
            err.starts_with("expression 'object.spec.strategy.canary == null' resulted in error"),
            "{err}"
        );
        let not_bool = compile("1 + 1", declared()).unwrap();
        assert!(run_bool(&not_bool, &ctx).is_err());
    }
}
