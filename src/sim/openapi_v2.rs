//! The OpenAPI v2 document, `/openapi/v2`. kubectl checks a `kind: List` file against it on the
//! client before `apply` or `create` (the server's own field validation does not cover Lists), so
//! without it such a file fails with "the server could not find the requested resource". Each kind
//! is a definition tagged with its group/version/kind, with its schema: a CRD's as the API server
//! publishes it for v2, a built-in kind's from its API type (`builtin_schemas`).

use super::openapi::{kind_paths, query_parameters, schema_name};
use super::registry::Registry;
use super::resources::ResourceType;
use serde_json::{Map, Value, json};

pub fn document(registry: &Registry) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for rt in registry.all() {
        paths.extend(kind_paths(rt, operation));
        definitions.insert(schema_name(rt), definition(rt));
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": super::nodes::KUBE_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

fn operation(rt: &ResourceType, action: &str, writes: bool) -> Value {
    let params: Vec<Value> = query_parameters(writes)
        .into_iter()
        .map(|p| json!({"name": p, "in": "query", "type": "string", "uniqueItems": true}))
        .collect();
    json!({
        "operationId": format!("{action}{}", rt.kind),
        "consumes": ["*/*"],
        "produces": ["application/json", "application/yaml"],
        "schemes": ["https"],
        "parameters": params,
        "responses": {"200": {"description": "OK", "schema": {"$ref": format!("#/definitions/{}", schema_name(rt))}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
    })
}

fn definition(rt: &ResourceType) -> Value {
    let mut schema = match rt.schema.as_deref() {
        None => match super::builtin_schemas::of(rt) {
            Some(builtin) => structural_to_v2(&builtin),
            None => json!({"type": "object"}),
        },
        Some(crd_schema) => {
            let mut s = structural_to_v2(crd_schema);
            // The API server describes the object's envelope itself, whatever the CRD says of it.
            if !s["properties"].is_object() {
                s["properties"] = json!({});
            }
            s["properties"]["apiVersion"] = json!({"type": "string"});
            s["properties"]["kind"] = json!({"type": "string"});
            s["properties"]["metadata"] = json!({"type": "object"});
            s["type"] = json!("object");
            s
        }
    };
    schema["x-kubernetes-group-version-kind"] = json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]);
    schema
}

/// A structural schema as the API server publishes it for OpenAPI v2, whose clients (kubectl's
/// validation among them) cannot read all of v3: no `allOf`/`oneOf`/`anyOf`/`not`; a nullable
/// value is untyped and a nullable property not required; a value that keeps unknown fields lists
/// none; an array without an item schema is untyped.
pub fn structural_to_v2(schema: &Value) -> Value {
    let Some(fields) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = fields.clone();
    for junctor in ["allOf", "oneOf", "anyOf", "not"] {
        out.remove(junctor);
    }
    let nullable = out.remove("nullable") == Some(Value::Bool(true));
    if nullable {
        out.remove("type");
    }
    if nullable || out.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        out.remove("items");
        out.remove("properties");
    }
    if out.get("type").and_then(Value::as_str) == Some("array") && !out.contains_key("items") {
        out.remove("type");
    }
    let is_nullable = |s: &Value| s.get("nullable") == Some(&Value::Bool(true));
    if let Some(Value::Object(properties)) = out.get("properties") {
        let nullable_props: Vec<String> = properties
            .iter()
            .filter(|(_, s)| is_nullable(s))
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(Value::Array(required)) = out.get_mut("required") {
            required.retain(|r| r.as_str().is_none_or(|r| !nullable_props.iter().any(|n| n == r)));
        }
    }
    if out.get("additionalProperties").is_some_and(is_nullable) {
        out.remove("required");
    }
    if out.get("required").and_then(Value::as_array).is_some_and(Vec::is_empty) {
        out.remove("required");
    }
    if let Some(Value::Object(properties)) = out.get_mut("properties") {
        for s in properties.values_mut() {
            *s = structural_to_v2(s);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(s) = out.get_mut(key).filter(|s| s.is_object()) {
            *s = structural_to_v2(s);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_schemas_drop_what_v2_clients_cannot_read() {
        let v3 = json!({
            "type": "object",
            "required": ["spec", "note"],
            "properties": {
                "spec": {"type": "object", "properties": {
                    "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {"type": "string"}}},
                    "list": {"type": "array", "x-kubernetes-preserve-unknown-fields": true, "items": {"type": "string"}},
                    "steps": {"type": "array", "items": {"type": "object", "oneOf": [{"required": ["pause"]}], "properties": {"pause": {"type": "object"}}}},
                }},
                "note": {"type": "string", "nullable": true},
            },
        });
        let v2 = structural_to_v2(&v3);
        assert_eq!(v2["required"], json!(["spec"]), "a nullable property is not required");
        assert_eq!(v2["properties"]["note"], json!({}), "a nullable value is untyped");
        let spec = &v2["properties"]["spec"]["properties"];
        assert_eq!(spec["port"], json!({"x-kubernetes-int-or-string": true}));
        assert_eq!(
            spec["extra"],
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(spec["list"], json!({"x-kubernetes-preserve-unknown-fields": true}));
        assert_eq!(
            spec["steps"]["items"],
            json!({"type": "object", "properties": {"pause": {"type": "object"}}})
        );
    }
}
