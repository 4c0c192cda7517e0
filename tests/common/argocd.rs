//! ArgoCD's Lua customizations, run as ArgoCD runs them: Lua 5.1, the object as the global `obj`,
//! and an action's changes to `status` written as a merge patch through the status subresource.

use mlua::{Lua, LuaSerdeExt};
use serde_json::{Map, Value};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/argocd/serin.dev");

fn script(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs a script with `obj` set and returns what it returns, as JSON.
pub fn run(path: &str, obj: &Value) -> Value {
    let lua = Lua::new();
    let o = lua.to_value(obj).expect("the object as a Lua table");
    lua.globals().set("obj", o).expect("obj");
    let out: mlua::Value = lua
        .load(script(path))
        .eval()
        .unwrap_or_else(|e| panic!("{path} fails: {e}"));
    integral(lua.from_value(out).expect("the result as JSON"))
}

/// Lua 5.1 has only floats; ArgoCD turns whole numbers back into integers.
fn integral(v: Value) -> Value {
    match v {
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e15) => {
            Value::from(n.as_f64().unwrap_or_default() as i64)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(integral).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, integral(v))).collect()),
        v => v,
    }
}

/// `(status, message)` from `<Kind>/health.lua`.
pub fn health(kind: &str, obj: &Value) -> (String, String) {
    let hs = run(&format!("{kind}/health.lua"), obj);
    (
        hs["status"].as_str().unwrap_or_default().to_string(),
        hs["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// The Rollout actions discovery offers, enabled ones only, sorted.
pub fn enabled_actions(obj: &Value) -> Vec<String> {
    let actions = run("Rollout/actions/discovery.lua", obj);
    let mut names: Vec<String> = actions
        .as_object()
        .expect("discovery returns a table")
        .iter()
        .filter(|(_, a)| a["disabled"] != Value::Bool(true))
        .map(|(n, _)| n.clone())
        .collect();
    names.sort();
    names
}

/// Runs a Rollout action and returns the status merge patch ArgoCD would send, or None when the
/// action changed nothing.
pub fn action_status_patch(action: &str, obj: &Value) -> Option<Value> {
    let new = run(&format!("Rollout/actions/{action}/action.lua"), obj);
    let diff = merge_diff(obj, &new)?;
    let mut patch = Map::new();
    patch.insert("status".into(), diff.get("status")?.clone());
    Some(Value::Object(patch))
}

/// A JSON merge patch that turns `a` into `b`.
fn merge_diff(a: &Value, b: &Value) -> Option<Value> {
    if a == b {
        return None;
    }
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out = Map::new();
            for (k, bv) in b {
                match a.get(k) {
                    Some(av) => {
                        if let Some(d) = merge_diff(av, bv) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), bv.clone());
                    }
                }
            }
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ => Some(b.clone()),
    }
}
