//! A CRD's structural schema at admission: pruning of unknown fields, defaulting, and the OpenAPI
//! validation rules, with the error messages the API server gives.

use serde_json::Value;

/// Root fields every object keeps whatever its schema says.
const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

/// Drops fields the schema does not know and fills in `default`s, as a CRD's API does on write.
pub fn prune_and_default(obj: &mut Value, schema: &Value) {
    walk_prune(obj, schema, true, "", &mut None);
}

/// The fields a write would lose to pruning, as `.spec.foo` paths (for `fieldValidation`).
pub fn unknown_fields(obj: &Value, schema: &Value) -> Vec<String> {
    let mut found = Some(Vec::new());
    let mut copy = obj.clone();
    walk_prune(&mut copy, schema, true, "", &mut found);
    found.unwrap_or_default()
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == true
}

fn walk_prune(obj: &mut Value, schema: &Value, root: bool, path: &str, found: &mut Option<Vec<String>>) {
    if schema["x-kubernetes-embedded-resource"] == true {
        // Embedded objects keep apiVersion/kind/metadata like a root object does.
        prune_object(obj, schema, true, path, found);
        return;
    }
    match obj {
        Value::Object(_) => prune_object(obj, schema, root, path, found),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk_prune(item, item_schema, false, &format!("{path}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(obj: &mut Value, schema: &Value, root: bool, path: &str, found: &mut Option<Vec<String>>) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    if !preserves_unknown(schema) {
        let known = |k: &str| {
            (root && ROOT_FIELDS.contains(&k))
                || props.is_some_and(|p| p.contains_key(k))
                || (props.is_none() && additional.is_some())
                || (props.is_none()
                    && additional.is_none()
                    && schema.get("type").and_then(Value::as_str) != Some("object"))
        };
        if let Some(found) = found.as_mut() {
            found.extend(map.keys().filter(|k| !known(k)).map(|k| format!("{path}.{k}")));
        }
        map.retain(|k, _| known(k));
    }
    if let Some(props) = props {
        for (k, prop) in props {
            if root && k == "metadata" {
                continue;
            }
            if !map.contains_key(k)
                && let Some(default) = prop.get("default")
            {
                map.insert(k.clone(), default.clone());
            }
            if let Some(v) = map.get_mut(k) {
                walk_prune(v, prop, false, &format!("{path}.{k}"), found);
            }
        }
    } else if let Some(additional) = additional {
        for (k, v) in map.iter_mut() {
            walk_prune(v, additional, false, &format!("{path}.{k}"), found);
        }
    }
}

/// Validates against the OpenAPI rules of a structural schema. Each error is (field, message).
pub fn validate(obj: &Value, schema: &Value) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    check(obj, schema, "", &mut errors, true);
    errors
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn check(v: &Value, s: &Value, path: &str, errors: &mut Vec<(String, String)>, root: bool) {
    let shown = if path.is_empty() { "<root>" } else { path };
    if v.is_null() {
        if s["nullable"] != true && !path.is_empty() && s.get("type").is_some() {
            errors.push((
                path.into(),
                format!(
                    "Invalid value: \"null\": {shown} in body must be of type {}: \"null\"",
                    s["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    let int_or_string = s["x-kubernetes-int-or-string"] == true;
    if let Some(want) = s.get("type").and_then(Value::as_str) {
        let got = type_name(v);
        let ok = got == want
            || (want == "number" && got == "integer")
            || (int_or_string && matches!(got, "integer" | "string"));
        if !ok {
            errors.push((
                path.into(),
                format!("Invalid value: \"{got}\": {shown} in body must be of type {want}: \"{got}\""),
            ));
            return;
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        let list: Vec<String> = options.iter().map(show).collect();
        errors.push((
            path.into(),
            format!("Unsupported value: {}: supported values: {}", show(v), list.join(", ")),
        ));
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
                let exclusive = s["exclusiveMinimum"] == true;
                if x < min || (exclusive && x == min) {
                    let op = if exclusive {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    errors.push((
                        path.into(),
                        format!("Invalid value: {n}: {shown} in body should be {op} {}", s["minimum"]),
                    ));
                }
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
                let exclusive = s["exclusiveMaximum"] == true;
                if x > max || (exclusive && x == max) {
                    let op = if exclusive {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    errors.push((
                        path.into(),
                        format!("Invalid value: {n}: {shown} in body should be {op} {}", s["maximum"]),
                    ));
                }
            }
        }
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                errors.push((
                    path.into(),
                    format!(
                        "Invalid value: {}: {shown} in body should be at least {min} chars long",
                        show(v)
                    ),
                ));
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                errors.push((path.into(), format!("Too long: may not be more than {max} bytes")));
            }
            if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(pattern)
                && !re.is_match(text)
            {
                errors.push((
                    path.into(),
                    format!("Invalid value: {}: {shown} in body should match '{pattern}'", show(v)),
                ));
            }
        }
        Value::Array(items) => {
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push((
                    path.into(),
                    format!(
                        "Invalid value: {}: {shown} in body should have at least {min} items",
                        items.len()
                    ),
                ));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                errors.push((
                    path.into(),
                    format!("Too many: {}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, item_schema, &format!("{path}[{i}]"), errors, false);
                }
            }
            if let Some(keys) = s["x-kubernetes-list-map-keys"].as_array()
                && s["x-kubernetes-list-type"] == "map"
            {
                let mut seen = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let key: Vec<&Value> = keys.iter().filter_map(|k| k.as_str()).map(|k| &item[k]).collect();
                    if seen.contains(&key) {
                        errors.push((format!("{path}[{i}]"), format!("Duplicate value: {}", show(item))));
                    }
                    seen.push(key);
                }
            }
        }
        Value::Object(map) => {
            for req in s.get("required").and_then(Value::as_array).into_iter().flatten() {
                if let Some(field) = req.as_str()
                    && !map.contains_key(field)
                {
                    errors.push((join(path, field), "Required value".into()));
                }
            }
            if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
                && map.len() as u64 > max
            {
                errors.push((
                    path.into(),
                    format!("Too many: {}: must have at most {max} items", map.len()),
                ));
            }
            if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
                && (map.len() as u64) < min
            {
                errors.push((
                    path.into(),
                    format!(
                        "Invalid value: {}: {shown} in body should have at least {min} properties",
                        map.len()
                    ),
                ));
            }
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                if root && ROOT_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(prop) = props.and_then(|p| p.get(k)) {
                    check(child, prop, &join(path, k), errors, false);
                } else if let Some(additional) = additional {
                    check(child, additional, &join(path, k), errors, false);
                }
            }
        }
        _ => {}
    }
    check_combinators(v, s, path, errors);
}

fn check_combinators(v: &Value, s: &Value, path: &str, errors: &mut Vec<(String, String)>) {
    let shown = if path.is_empty() { "<root>" } else { path };
    let passes = |sub: &Value| {
        let mut e = Vec::new();
        check(v, sub, path, &mut e, false);
        e.is_empty()
    };
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(v, sub, path, errors, false);
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(passes)
    {
        errors.push((
            path.into(),
            format!(
                "Invalid value: {}: {shown} in body must match at least one schema in anyOf",
                show_short(v)
            ),
        ));
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array)
        && one.iter().filter(|sub| passes(sub)).count() != 1
    {
        errors.push((
            path.into(),
            format!(
                "Invalid value: {}: {shown} in body must validate one and only one schema (oneOf)",
                show_short(v)
            ),
        ));
    }
    if let Some(not) = s.get("not")
        && passes(not)
    {
        errors.push((
            path.into(),
            format!(
                "Invalid value: {}: {shown} in body must not validate the schema (not)",
                show_short(v)
            ),
        ));
    }
}

fn show_short(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => show(other),
    }
}

/// Fields of a CRD schema that hold schemas, for walking every node.
pub fn schema_children(schema: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        out.extend(props.values());
    }
    for k in ["items", "additionalProperties", "not"] {
        if let Some(v) = schema.get(k).filter(|v| v.is_object()) {
            out.push(v);
        }
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = schema.get(k).and_then(Value::as_array) {
            out.extend(list.iter());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["replicas"], "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "weight": {"type": "integer", "minimum": 0, "maximum": 100},
                "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }}
        }})
    }

    #[test]
    fn prunes_unknown_and_defaults() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"replicas": 1, "junk": true, "free": {"any": 1}}, "other": 1});
        prune_and_default(&mut obj, &schema());
        assert_eq!(obj["spec"], json!({"replicas": 1, "mode": "a", "free": {"any": 1}}));
        assert!(obj.get("other").is_none());
        assert_eq!(obj["metadata"]["name"], "a");
        let unknown = unknown_fields(&json!({"spec": {"replicas": 1, "junk": true}, "other": 1}), &schema());
        assert_eq!(unknown, vec![".other", ".spec.junk"]);
    }

    #[test]
    fn reports_rule_violations() {
        let errors = validate(&json!({"spec": {"weight": 200, "mode": "c"}}), &schema());
        let mut fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        fields.sort();
        assert_eq!(fields, vec!["spec.mode", "spec.replicas", "spec.weight"], "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|(f, m)| f == "spec.weight" && m.contains("less than or equal to 100"))
        );
    }
}
