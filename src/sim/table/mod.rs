//! `Table` responses, which `kubectl get` asks for: columns per kind, CRD printer columns.

mod columns;

use super::meta;
use super::resources::ResourceType;
use columns::builtin_columns;
use serde_json::{Value, json};

/// A Table of objects (already in the served version), with the row objects `includeObject` asks for.
pub fn table(rt: &ResourceType, objects: &[Value], include: &str, list_meta: Value) -> Value {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    let row_object = |o: &Value| match include {
        "None" => Value::Null,
        "Object" => o.clone(),
        _ => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
        }
    };
    let rows: Vec<Value> = match builtin_columns(rt) {
        Some(columns) => {
            for col in &columns {
                defs.push(json!({"name": col.name, "type": col.type_, "format": "", "description": "", "priority": 0}));
            }
            objects
                .iter()
                .map(|o| {
                    let mut cells = vec![json!(meta::name(o))];
                    cells.extend(columns.iter().map(|c| (c.cell)(o)));
                    json!({"cells": cells, "object": row_object(o)})
                })
                .collect()
        }
        None => {
            for col in &rt.printer_columns {
                defs.push(json!({"name": col.name, "type": col.type_, "format": col.format.clone().unwrap_or_default(), "description": col.description, "priority": col.priority}));
            }
            objects
                .iter()
                .map(|o| {
                    let mut cells = vec![json!(meta::name(o))];
                    for col in &rt.printer_columns {
                        let v = jsonpath(o, &col.json_path);
                        cells.push(match (col.type_.as_str(), v) {
                            ("date", Some(Value::String(t))) => json!(meta::human_age(&t)),
                            (_, Some(v)) => v,
                            (_, None) => Value::Null,
                        });
                    }
                    json!({"cells": cells, "object": row_object(o)})
                })
                .collect()
        }
    };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": defs, "rows": rows})
}

/// The JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b`, `.a[?(@.k=="v")].b`.
pub fn jsonpath(obj: &Value, path: &str) -> Option<Value> {
    let mut current = vec![obj.clone()];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            current = current.iter().filter_map(|v| v.get(field).cloned()).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let sel = &r[..end];
            rest = &r[end + 1..];
            let mut next = Vec::new();
            for v in &current {
                let Some(items) = v.as_array() else { continue };
                if sel == "*" {
                    next.extend(items.iter().cloned());
                } else if let Ok(i) = sel.parse::<usize>() {
                    next.extend(items.get(i).cloned());
                } else if let Some(filter) = sel.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                    let (key, want) = filter.split_once("==")?;
                    let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                    next.extend(
                        items
                            .iter()
                            .filter(|i| i.get(key.trim()).and_then(Value::as_str) == Some(want))
                            .cloned(),
                    );
                }
            }
            current = next;
        } else {
            return None;
        }
    }
    match current.len() {
        0 => None,
        1 => current.pop(),
        _ => Some(json!(
            current
                .iter()
                .map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_forms() {
        let o = json!({"status": {"phase": "Healthy", "conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}, "spec": {"r": [1, 2]}});
        assert_eq!(jsonpath(&o, ".status.phase"), Some(json!("Healthy")));
        assert_eq!(
            jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(jsonpath(&o, ".spec.r[1]"), Some(json!(2)));
        assert_eq!(jsonpath(&o, ".spec.missing"), None);
    }
}
