//! `Table` responses, which `kubectl get` asks for: columns per kind, CRD printer columns.

use super::meta;
use super::resources::ResourceType;
use serde_json::{Value, json};

struct Column {
    name: &'static str,
    type_: &'static str,
    cell: fn(&Value) -> Value,
}

fn s(v: &Value) -> Value {
    if v.is_null() { json!("<none>") } else { v.clone() }
}

fn age(obj: &Value) -> Value {
    json!(meta::human_age(
        obj["metadata"]["creationTimestamp"].as_str().unwrap_or("")
    ))
}

fn int_or_zero(v: &Value) -> Value {
    json!(v.as_i64().unwrap_or(0))
}

fn ready_containers(p: &Value) -> Value {
    let total = p["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = p["status"]["containerStatuses"]
        .as_array()
        .map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
    json!(format!("{ready}/{total}"))
}

fn pod_status(p: &Value) -> Value {
    if meta::is_deleting(p) {
        return json!("Terminating");
    }
    let waiting = p["status"]["containerStatuses"].as_array().and_then(|cs| {
        cs.iter().find_map(|c| {
            c["state"]["waiting"]["reason"]
                .as_str()
                .or(c["state"]["terminated"]["reason"].as_str())
        })
    });
    json!(waiting.or(p["status"]["phase"].as_str()).unwrap_or("Pending"))
}

fn ready_of(o: &Value) -> Value {
    json!(format!(
        "{}/{}",
        o["status"]["readyReplicas"].as_i64().unwrap_or(0),
        o["spec"]["replicas"].as_i64().unwrap_or(0)
    ))
}

fn service_ports(o: &Value) -> Value {
    let ports: Vec<String> = o["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
        .collect();
    json!(if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    })
}

/// `Running`, `Complete`, `Failed` or `Suspended`, as kubectl shows a Job.
fn job_status(j: &Value) -> Value {
    let has = |t: &str| {
        j["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == t && c["status"] == "True"))
    };
    json!(if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    })
}

fn event_object(e: &Value) -> Value {
    let o = &e["involvedObject"];
    json!(format!(
        "{}/{}",
        o["kind"].as_str().unwrap_or("").to_lowercase(),
        o["name"].as_str().unwrap_or("")
    ))
}

fn event_last_seen(e: &Value) -> Value {
    let t = e["lastTimestamp"]
        .as_str()
        .or(e["eventTime"].as_str())
        .or(e["metadata"]["creationTimestamp"].as_str());
    json!(meta::human_age(t.unwrap_or("")))
}

/// `apiVersion, Kind=kind` as kubectl prints a policy's paramKind, or `<unset>`.
fn policy_param_kind(o: &Value) -> Value {
    let pk = &o["spec"]["paramKind"];
    json!(match (pk["apiVersion"].as_str(), pk["kind"].as_str()) {
        (Some(v), Some(k)) => format!("{v}, Kind={k}"),
        _ => "<unset>".to_string(),
    })
}

/// A binding's paramRef as `namespace/name`, `name`, or `<unset>`.
fn binding_param_ref(o: &Value) -> Value {
    let pr = &o["spec"]["paramRef"];
    json!(match (pr["namespace"].as_str(), pr["name"].as_str()) {
        (Some(ns), Some(n)) if !ns.is_empty() => format!("{ns}/{n}"),
        (_, Some(n)) => n.to_string(),
        _ if pr.is_object() => "*".to_string(),
        _ => "<unset>".to_string(),
    })
}

fn builtin_columns(rt: &ResourceType) -> Option<Vec<Column>> {
    let c = |name, type_, cell| Column { name, type_, cell };
    Some(match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => vec![
            c("Ready", "string", ready_containers),
            c("Status", "string", pod_status),
            c("Restarts", "string", |_| json!("0")),
            c("Age", "string", age),
        ],
        ("apps", "deployments") => vec![
            c("Ready", "string", ready_of),
            c("Up-to-date", "integer", |o| {
                int_or_zero(&o["status"]["updatedReplicas"])
            }),
            c("Available", "integer", |o| {
                int_or_zero(&o["status"]["availableReplicas"])
            }),
            c("Age", "string", age),
        ],
        ("apps", "replicasets") => vec![
            c("Desired", "integer", |o| int_or_zero(&o["spec"]["replicas"])),
            c("Current", "integer", |o| int_or_zero(&o["status"]["replicas"])),
            c("Ready", "integer", |o| int_or_zero(&o["status"]["readyReplicas"])),
            c("Age", "string", age),
        ],
        ("batch", "jobs") => vec![
            c("Status", "string", job_status),
            c("Completions", "string", |o| {
                json!(format!(
                    "{}/{}",
                    o["status"]["succeeded"].as_i64().unwrap_or(0),
                    o["spec"]["completions"].as_i64().unwrap_or(1)
                ))
            }),
            c("Age", "string", age),
        ],
        ("", "services") => vec![
            c("Type", "string", |o| s(&o["spec"]["type"])),
            c("Cluster-IP", "string", |o| s(&o["spec"]["clusterIP"])),
            c("External-IP", "string", |_| json!("<none>")),
            c("Port(s)", "string", service_ports),
            c("Age", "string", age),
        ],
        ("", "namespaces") => vec![
            c("Status", "string", |o| s(&o["status"]["phase"])),
            c("Age", "string", age),
        ],
        ("", "events") => vec![
            c("Last Seen", "string", event_last_seen),
            c("Type", "string", |o| s(&o["type"])),
            c("Reason", "string", |o| s(&o["reason"])),
            c("Object", "string", event_object),
            c("Message", "string", |o| s(&o["message"])),
        ],
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => vec![
            c("Validations", "integer", |o| {
                json!(o["spec"]["validations"].as_array().map_or(0, Vec::len))
            }),
            c("ParamKind", "string", policy_param_kind),
            c("Age", "string", age),
        ],
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => vec![
            c("PolicyName", "string", |o| s(&o["spec"]["policyName"])),
            c("ParamRef", "string", binding_param_ref),
            c("Age", "string", age),
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![c("Created At", "date", |o| s(&o["metadata"]["creationTimestamp"]))]
        }
        _ if rt.printer_columns.is_empty() => vec![c("Age", "string", age)],
        _ => return None,
    })
}

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
