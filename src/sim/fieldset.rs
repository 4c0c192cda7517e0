//! Sets of field paths, the unit of ownership in managed fields (`fieldsV1`).

use super::lists::{ListType, Shape, item_key};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    Field(String),
    /// A map-list item, by the compact JSON of its key fields.
    Key(String),
    /// A set-list item, by its compact JSON value.
    Value(String),
}

pub type FieldPath = Vec<PathElement>;

/// Metadata fields the server owns; they are never part of anyone's field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSet(pub BTreeSet<FieldPath>);

impl FieldSet {
    /// The leaf fields an object sets (a map-list item also counts as a member itself).
    pub fn of_object(obj: &Value, shape: &Shape) -> FieldSet {
        let mut set = BTreeSet::new();
        if let Some(map) = obj.as_object() {
            for (k, v) in map {
                if k == "apiVersion" || k == "kind" {
                    continue;
                }
                let child = shape.field(k);
                if k == "metadata" {
                    if let Some(meta) = v.as_object() {
                        for (mk, mv) in meta {
                            if SERVER_METADATA.contains(&mk.as_str()) {
                                continue;
                            }
                            let path = vec![PathElement::Field("metadata".into()), PathElement::Field(mk.clone())];
                            walk(mv, path, &child.field(mk), &mut set);
                        }
                    }
                    continue;
                }
                walk(v, vec![PathElement::Field(k.clone())], &child, &mut set);
            }
        }
        FieldSet(set)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, path: &FieldPath) -> bool {
        self.0.contains(path)
    }

    /// True when the set holds the path or anything under it.
    pub fn touches(&self, path: &FieldPath) -> bool {
        self.0.range(path.clone()..).next().is_some_and(|p| p.starts_with(path))
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    pub fn remove_all(&mut self, other: &FieldSet) {
        self.0.retain(|p| !other.0.contains(p));
    }

    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let mut set = BTreeSet::new();
        decode(v, Vec::new(), &mut set);
        FieldSet(set)
    }

    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut cur = &mut root;
            for el in path {
                let entry = cur
                    .entry(encode_element(el))
                    .or_insert_with(|| Value::Object(Map::new()));
                let Some(next) = entry.as_object_mut() else {
                    break;
                };
                cur = next;
            }
        }
        // A member that has children too is marked with ".".
        mark_self(&mut root, &self.0, &mut Vec::new());
        Value::Object(root)
    }
}

fn walk(v: &Value, path: FieldPath, shape: &Shape, set: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(map) if !map.is_empty() && !shape.atomic_map() => {
            for (k, child) in map {
                let mut p = path.clone();
                p.push(PathElement::Field(k.clone()));
                walk(child, p, &shape.field(k), set);
            }
        }
        Value::Array(items) => match shape.list_type() {
            ListType::Map(keys) => {
                let item_shape = shape.item();
                for item in items {
                    match item_key(item, &keys) {
                        Some(key) => {
                            let mut p = path.clone();
                            p.push(PathElement::Key(key.to_string()));
                            set.insert(p.clone());
                            if let Some(fields) = item.as_object() {
                                for (k, child) in fields {
                                    let mut q = p.clone();
                                    q.push(PathElement::Field(k.clone()));
                                    walk(child, q, &item_shape.field(k), set);
                                }
                            }
                        }
                        None => {
                            set.insert(path.clone());
                        }
                    }
                }
                if items.is_empty() {
                    set.insert(path);
                }
            }
            ListType::Set => {
                for item in items {
                    let mut p = path.clone();
                    p.push(PathElement::Value(item.to_string()));
                    set.insert(p);
                }
                if items.is_empty() {
                    set.insert(path);
                }
            }
            ListType::Atomic => {
                set.insert(path);
            }
        },
        _ => {
            set.insert(path);
        }
    }
}

fn encode_element(el: &PathElement) -> String {
    match el {
        PathElement::Field(f) => format!("f:{f}"),
        PathElement::Key(k) => format!("k:{k}"),
        PathElement::Value(v) => format!("v:{v}"),
    }
}

fn decode_element(s: &str) -> Option<PathElement> {
    let (prefix, rest) = s.split_at_checked(2)?;
    match prefix {
        "f:" => Some(PathElement::Field(rest.to_string())),
        // Keys and values are re-serialised so that equal JSON compares equal.
        "k:" => serde_json::from_str::<Value>(rest)
            .ok()
            .map(|v| PathElement::Key(v.to_string())),
        "v:" => serde_json::from_str::<Value>(rest)
            .ok()
            .map(|v| PathElement::Value(v.to_string())),
        _ => None,
    }
}

fn decode(v: &Value, path: FieldPath, set: &mut BTreeSet<FieldPath>) {
    let Some(map) = v.as_object() else { return };
    if (map.is_empty() || map.contains_key(".")) && !path.is_empty() {
        set.insert(path.clone());
    }
    for (k, child) in map {
        if k == "." {
            continue;
        }
        if let Some(el) = decode_element(k) {
            let mut p = path.clone();
            p.push(el);
            decode(child, p, set);
        }
    }
}

fn mark_self(node: &mut Map<String, Value>, set: &BTreeSet<FieldPath>, path: &mut FieldPath) {
    let keys: Vec<String> = node.keys().cloned().collect();
    for key in keys {
        let Some(el) = decode_element(&key) else {
            continue;
        };
        path.push(el);
        if let Some(Value::Object(child)) = node.get_mut(&key)
            && !child.is_empty()
        {
            if set.contains(path) {
                child.insert(".".into(), Value::Object(Map::new()));
            }
            mark_self(child, set, path);
        }
        path.pop();
    }
}

/// The value at a path, if the object has it.
pub fn value_at<'a>(obj: &'a Value, path: &[PathElement]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        cur = match el {
            PathElement::Field(f) => cur.get(f)?,
            PathElement::Key(k) => {
                let key: Value = serde_json::from_str(k).ok()?;
                let keys: Vec<String> = key.as_object()?.keys().cloned().collect();
                cur.as_array()?
                    .iter()
                    .find(|item| item_key(item, &keys).as_ref() == Some(&key))?
            }
            PathElement::Value(v) => {
                let want: Value = serde_json::from_str(v).ok()?;
                cur.as_array()?.iter().find(|item| **item == want)?
            }
        };
    }
    Some(cur)
}

/// Removes the field, list item or set member at a path.
pub fn remove_at(obj: &mut Value, path: &[PathElement]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parent_path {
        let next = match el {
            PathElement::Field(f) => cur.get_mut(f),
            PathElement::Key(k) => {
                let Ok(key) = serde_json::from_str::<Value>(k) else {
                    return;
                };
                let keys: Vec<String> = key.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
                cur.as_array_mut()
                    .and_then(|a| a.iter_mut().find(|item| item_key(item, &keys).as_ref() == Some(&key)))
            }
            PathElement::Value(_) => None,
        };
        let Some(next) = next else { return };
        cur = next;
    }
    match last {
        PathElement::Field(f) => {
            if let Some(map) = cur.as_object_mut() {
                map.remove(f);
            }
        }
        PathElement::Key(k) => {
            let Ok(key) = serde_json::from_str::<Value>(k) else {
                return;
            };
            let keys: Vec<String> = key.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
            if let Some(items) = cur.as_array_mut() {
                items.retain(|item| item_key(item, &keys).as_ref() != Some(&key));
            }
        }
        PathElement::Value(v) => {
            let Ok(want) = serde_json::from_str::<Value>(v) else {
                return;
            };
            if let Some(items) = cur.as_array_mut() {
                items.retain(|item| *item != want);
            }
        }
    }
}

/// A path as the API server prints it in conflict messages: `.spec.containers[name="web"].image`.
pub fn display_path(path: &[PathElement]) -> String {
    let mut out = String::new();
    for el in path {
        match el {
            PathElement::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            PathElement::Key(k) => {
                let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            PathElement::Value(v) => out.push_str(&format!("[={v}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_fields_v1() {
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web", "image": "a:1"}]}}}
        });
        let set = FieldSet::of_object(&obj, &Shape::root(None));
        let v1 = set.to_fields_v1();
        assert_eq!(v1["f:metadata"]["f:labels"]["f:app"], json!({}));
        assert_eq!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["."],
            json!({})
        );
        assert_eq!(FieldSet::from_fields_v1(&v1), set);
        let image = set
            .0
            .iter()
            .find(|p| p.last() == Some(&PathElement::Field("image".into())))
            .unwrap();
        assert_eq!(value_at(&obj, image), Some(&json!("a:1")));
        assert_eq!(
            display_path(image),
            ".spec.template.spec.containers[name=\"web\"].image"
        );
    }
}
