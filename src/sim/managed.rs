//! Managed fields: who owns which field, server-side apply with conflicts, and ownership moves on
//! updates, as the API server's structured merge does it (the parts clients can observe).

use super::fieldset::{FieldSet, display_path, remove_at, value_at};
use super::lists::{ListType, Shape, item_key};
use super::meta;
use super::status::ApiError;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    fn same_slot(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or("").to_string(),
                    operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                    api_version: e["apiVersion"].as_str().unwrap_or("").to_string(),
                    time: e["time"].as_str().unwrap_or("").to_string(),
                    subresource: e["subresource"].as_str().unwrap_or("").to_string(),
                    fields: FieldSet::from_fields_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.fields.to_fields_v1(),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = Value::String(e.subresource.clone());
            }
            v
        })
        .collect();
    if list.is_empty() {
        meta::remove_meta(obj, "managedFields");
    } else {
        meta::set_meta(obj, "managedFields", Value::Array(list));
    }
}

/// Who is writing, and through which endpoint.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
}

/// Records an update (create, PUT, non-apply patch): the writer takes the fields whose values it
/// changed, and fields that disappeared leave every owner.
pub fn record_update(old: Option<&Value>, new: &mut Value, shape: &Shape, writer: &Writer) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let new_fields = FieldSet::of_object(new, shape);
    let changed: FieldSet = match old {
        Some(old) => FieldSet(
            new_fields
                .0
                .iter()
                .filter(|p| value_at(old, p) != value_at(new, p))
                .cloned()
                .collect(),
        ),
        None => new_fields.clone(),
    };
    for e in entries.iter_mut() {
        e.fields.remove_all(&changed);
        e.fields.0.retain(|p| new_fields.contains(p));
    }
    if !changed.is_empty() {
        let now = meta::now_rfc3339();
        match entries
            .iter_mut()
            .find(|e| e.same_slot(writer.manager, "Update", writer.subresource))
        {
            Some(e) => {
                e.fields = e.fields.union(&changed);
                e.time = now;
                e.api_version = writer.api_version.to_string();
            }
            None => entries.push(Entry {
                manager: writer.manager.to_string(),
                operation: "Update".into(),
                api_version: writer.api_version.to_string(),
                time: now,
                subresource: writer.subresource.to_string(),
                fields: changed,
            }),
        }
    }
    write_entries(new, &entries);
}

/// Server-side apply of `applied` onto `live` (an empty object when creating). Returns the merged
/// object with its managed fields, or a 409 listing every conflict when `force` is off.
pub fn apply(live: &Value, applied: &Value, shape: &Shape, writer: &Writer, force: bool) -> Result<Value, ApiError> {
    let mut entries = read_entries(live);
    let applied_fields = FieldSet::of_object(applied, shape);
    let previous = entries
        .iter()
        .find(|e| e.same_slot(writer.manager, "Apply", writer.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();

    let mut merged = live.clone();
    merge_into(&mut merged, applied, shape);

    // Fields this applier set before, no longer sets, and nobody else owns are removed.
    let others_own = |path: &Vec<_>, entries: &[Entry]| {
        entries
            .iter()
            .filter(|e| !e.same_slot(writer.manager, "Apply", writer.subresource))
            .any(|e| e.fields.touches(path))
    };
    let dropped = previous.difference(&applied_fields);
    for path in dropped.0.iter().rev() {
        if !others_own(path, &entries) && !applied_fields.touches(path) {
            remove_at(&mut merged, path);
        }
    }

    let changed: FieldSet = FieldSet(
        applied_fields
            .0
            .iter()
            .filter(|p| value_at(live, p) != value_at(&merged, p))
            .cloned()
            .collect(),
    );
    let mut conflicts = Vec::new();
    for e in &entries {
        if e.same_slot(writer.manager, "Apply", writer.subresource) || e.manager == writer.manager {
            continue;
        }
        for p in e.fields.0.intersection(&changed.0) {
            conflicts.push((e.manager.clone(), display_path(p)));
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApiError::apply_conflict(&conflicts));
    }
    for e in entries.iter_mut() {
        if e.same_slot(writer.manager, "Apply", writer.subresource) {
            continue;
        }
        e.fields.remove_all(&changed);
        // Ownership goes with a changed value; equal values are shared.
        if e.manager == writer.manager {
            e.fields.remove_all(&applied_fields);
        }
    }
    let now = meta::now_rfc3339();
    match entries
        .iter_mut()
        .find(|e| e.same_slot(writer.manager, "Apply", writer.subresource))
    {
        Some(e) => {
            e.fields = applied_fields;
            e.time = now;
            e.api_version = writer.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: writer.manager.to_string(),
            operation: "Apply".into(),
            api_version: writer.api_version.to_string(),
            time: now,
            subresource: writer.subresource.to_string(),
            fields: applied_fields,
        }),
    }
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// Merges an applied configuration into a live object, list by list as the schema says.
pub fn merge_into(live: &mut Value, applied: &Value, shape: &Shape) {
    match (live.as_object_mut(), applied.as_object()) {
        (Some(live_map), Some(applied_map)) if !shape.atomic_map() => {
            for (k, v) in applied_map {
                if k == "managedFields" {
                    continue;
                }
                let child = shape.field(k);
                match live_map.get_mut(k) {
                    Some(existing) => merge_into(existing, v, &child),
                    None => {
                        live_map.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => match (live.as_array_mut(), applied.as_array()) {
            (Some(live_items), Some(applied_items)) => match shape.list_type() {
                ListType::Map(keys) => {
                    let item_shape = shape.item();
                    for item in applied_items {
                        let key = item_key(item, &keys);
                        let found = key
                            .as_ref()
                            .and_then(|key| live_items.iter_mut().find(|l| item_key(l, &keys).as_ref() == Some(key)));
                        match found {
                            Some(existing) => merge_into(existing, item, &item_shape),
                            None => live_items.push(item.clone()),
                        }
                    }
                }
                ListType::Set => {
                    for item in applied_items {
                        if !live_items.contains(item) {
                            live_items.push(item.clone());
                        }
                    }
                }
                ListType::Atomic => *live = applied.clone(),
            },
            _ => *live = applied.clone(),
        },
    }
}

/// Strips what the server owns from an applied configuration before merging it.
pub fn clean_applied(applied: &mut Value) {
    if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "deletionTimestamp",
            "selfLink",
        ] {
            meta.remove(k);
        }
    }
}

/// An empty object of the kind, the starting point when apply creates.
pub fn empty_object(api_version: &str, kind: &str, name: &str, namespace: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), Value::String(name.into()));
    if let Some(ns) = namespace {
        m.insert("namespace".into(), Value::String(ns.into()));
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": m})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(m: &str) -> Writer<'_> {
        Writer {
            manager: m,
            api_version: "apps/v1",
            subresource: "",
        }
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn second_manager_conflicts_then_forces() {
        let shape = Shape::root(None);
        let live = apply(
            &empty_object("apps/v1", "Deployment", "web", None),
            &deploy(3, "a:1"),
            &shape,
            &writer("alice"),
            false,
        )
        .unwrap();
        // Same values: shared ownership, no conflict.
        let shared = apply(&live, &deploy(3, "a:1"), &shape, &writer("bob"), false).unwrap();
        assert_eq!(read_entries(&shared).len(), 2);
        let err = apply(&live, &deploy(5, "a:1"), &shape, &writer("bob"), false).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(err.message.contains(".spec.replicas"), "{}", err.message);
        let forced = apply(&live, &deploy(5, "a:1"), &shape, &writer("bob"), true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 5);
        let alice = read_entries(&forced)
            .into_iter()
            .find(|e| e.manager == "alice")
            .unwrap();
        assert!(!alice.fields.0.iter().any(|p| display_path(p) == ".spec.replicas"));
    }

    #[test]
    fn dropped_fields_are_removed_unless_shared() {
        let shape = Shape::root(None);
        let mut with_label = deploy(3, "a:1");
        with_label["metadata"]["labels"] = json!({"team": "x"});
        let live = apply(
            &empty_object("apps/v1", "Deployment", "web", None),
            &with_label,
            &shape,
            &writer("alice"),
            false,
        )
        .unwrap();
        let again = apply(&live, &deploy(3, "a:1"), &shape, &writer("alice"), false).unwrap();
        assert!(again["metadata"]["labels"].get("team").is_none());
    }

    #[test]
    fn update_takes_changed_fields() {
        let shape = Shape::root(None);
        let live = apply(
            &empty_object("apps/v1", "Deployment", "web", None),
            &deploy(3, "a:1"),
            &shape,
            &writer("alice"),
            false,
        )
        .unwrap();
        let mut edited = live.clone();
        edited["spec"]["replicas"] = json!(4);
        record_update(Some(&live), &mut edited, &shape, &writer("kubectl-edit"));
        let entries = read_entries(&edited);
        let editor = entries.iter().find(|e| e.manager == "kubectl-edit").unwrap();
        assert_eq!(editor.fields.0.len(), 1);
        let err = apply(&edited, &deploy(3, "a:1"), &shape, &writer("alice"), false).unwrap_err();
        assert!(err.message.contains("kubectl-edit"));
    }
}
