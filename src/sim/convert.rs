//! Version conversion between what a client sends or asks for and what is stored.
//! Custom resources convert by apiVersion alone (conversion strategy None); events.k8s.io/v1
//! Events are another view of core v1 Events, with renamed fields.

use super::resources::ResourceType;
use serde_json::{Map, Value};

/// events.k8s.io/v1 name ↔ core v1 name.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &mut Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    if let Some(map) = obj.as_object_mut() {
        for (from, to) in pairs {
            if let Some(v) = map.remove(from) {
                map.insert(to.to_string(), v);
            }
        }
    }
}

fn set_type(obj: &mut Value, api_version: String, kind: &str) {
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind.to_string()));
    }
}

/// The stored form of an object sent for this resource type.
pub fn to_storage(rt: &ResourceType, mut obj: Value) -> Value {
    if rt.group == "events.k8s.io" {
        rename(&mut obj, EVENT_FIELDS.iter().copied());
        set_type(&mut obj, "v1".into(), "Event");
        return obj;
    }
    set_type(&mut obj, rt.storage_api_version(), &rt.kind);
    obj
}

/// The stored object as this resource type serves it.
pub fn from_storage(rt: &ResourceType, obj: &Value) -> Value {
    let mut out = obj.clone();
    if rt.group == "events.k8s.io" {
        rename(&mut out, EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)));
    }
    set_type(&mut out, rt.api_version(), &rt.kind);
    out
}

/// An empty map, for building objects.
pub fn empty() -> Value {
    Value::Object(Map::new())
}
