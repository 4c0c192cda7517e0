//! The patch types: JSON merge patch, JSON patch, and strategic merge patch for built-in kinds.

use super::lists::{ListType, Shape, item_key};
use super::status::ApiError;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

pub fn json_patch(target: &Value, body: &Value) -> Result<Value, ApiError> {
    let ops: json_patch::Patch =
        serde_json::from_value(body.clone()).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    let mut out = target.clone();
    json_patch::patch(&mut out, &ops)
        .map_err(|e| ApiError::invalid_patch(format!("the JSON patch could not be applied: {e}")))?;
    Ok(out)
}

pub fn merge_patch(target: &Value, body: &Value) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("a merge patch must be a JSON object"));
    }
    let mut out = target.clone();
    json_patch::merge(&mut out, body);
    Ok(out)
}

/// Strategic merge patch: lists with a merge key merge item by item, `$patch` directives apply.
pub fn strategic_merge_patch(target: &Value, body: &Value, shape: &Shape) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("a strategic merge patch must be a JSON object"));
    }
    let mut out = target.clone();
    smp_map(&mut out, body, shape)?;
    Ok(out)
}

fn smp_map(target: &mut Value, patch: &Value, shape: &Shape) -> Result<(), ApiError> {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = Value::Object(strip_directives(patch_map));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!("unknown patch directive {other:?}")));
        }
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(target_map) = target.as_object_mut() else {
        return Ok(());
    };
    for (k, v) in patch_map {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (target_map.get_mut(field).and_then(Value::as_array_mut), v.as_array())
            {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            target_map.remove(k);
            continue;
        }
        let child = shape.field(k);
        match v {
            Value::Object(_) => {
                let entry = target_map.entry(k.clone()).or_insert(Value::Null);
                smp_map(entry, v, &child)?;
                if entry.is_null() {
                    target_map.remove(k);
                }
            }
            Value::Array(items) => {
                let entry = target_map.entry(k.clone()).or_insert_with(|| Value::Array(Vec::new()));
                smp_list(entry, items, &child)?;
            }
            _ => {
                target_map.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

fn smp_list(target: &mut Value, items: &[Value], shape: &Shape) -> Result<(), ApiError> {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *target = Value::Array(items.iter().filter(|i| i.get("$patch").is_none()).cloned().collect());
        return Ok(());
    }
    match shape.list_type() {
        ListType::Map(keys) => {
            // Strategic merge keys on the first key only (`patchMergeKey`).
            let keys = vec![keys[0].clone()];
            if !target.is_array() {
                *target = Value::Array(Vec::new());
            }
            let item_shape = shape.item();
            let Some(list) = target.as_array_mut() else {
                return Ok(());
            };
            for item in items {
                let key = item_key(item, &keys).ok_or_else(|| {
                    ApiError::bad_request(format!("map: {item} does not contain declared merge key: {}", keys[0]))
                })?;
                let pos = list.iter().position(|l| item_key(l, &keys).as_ref() == Some(&key));
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(pos) = pos {
                        list.remove(pos);
                    }
                    continue;
                }
                match pos {
                    Some(pos) => smp_map(&mut list[pos], item, &item_shape)?,
                    None => {
                        let mut fresh = Value::Object(Map::new());
                        smp_map(&mut fresh, item, &item_shape)?;
                        list.push(fresh);
                    }
                }
            }
        }
        ListType::Set => {
            if !target.is_array() {
                *target = Value::Array(Vec::new());
            }
            if let Some(list) = target.as_array_mut() {
                for item in items {
                    if !list.contains(item) {
                        list.push(item.clone());
                    }
                }
            }
        }
        ListType::Atomic => *target = Value::Array(items.to_vec()),
    }
    Ok(())
}

fn strip_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let target = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "a:1"}, {"name": "sidecar", "image": "s:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "a:2"}]}}}});
        let out = strategic_merge_patch(&target, &patch, &Shape::root(None)).unwrap();
        let containers = out["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0]["image"], "a:2");
        let delete = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}});
        let out = strategic_merge_patch(&out, &delete, &Shape::root(None)).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn merge_patch_null_deletes() {
        let out = merge_patch(&json!({"a": 1, "b": 2}), &json!({"a": null})).unwrap();
        assert_eq!(out, json!({"b": 2}));
    }
}
