//! How each list in an object merges: atomic, a set, or a map keyed by some of its items' fields.
//! Server-side apply, managed fields and strategic merge patch all need this. CRDs say it in their
//! schema (`x-kubernetes-list-type`); built-in kinds say it in their Go types, mirrored here.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// A position in an object's schema while walking it.
#[derive(Debug, Clone)]
pub enum Shape<'a> {
    /// A CRD schema node (or none when the schema does not describe this part).
    Schema(Option<&'a Value>),
    /// A built-in kind, identified by the field names on the way here.
    Builtin(Vec<&'a str>),
}

impl<'a> Shape<'a> {
    pub fn root(schema: Option<&'a Value>) -> Self {
        match schema {
            Some(s) => Shape::Schema(Some(s)),
            None => Shape::Builtin(Vec::new()),
        }
    }

    /// The shape of a map's field.
    pub fn field(&self, name: &'a str) -> Shape<'a> {
        match self {
            Shape::Schema(s) => {
                // metadata of a custom resource is the built-in ObjectMeta, whatever the schema says.
                if let Some(node) = s
                    && node.get("properties").and_then(|p| p.get("apiVersion")).is_some()
                    && name == "metadata"
                {
                    return Shape::Builtin(vec!["metadata"]);
                }
                let next = s.and_then(|node| {
                    node.get("properties")
                        .and_then(|p| p.get(name))
                        .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
                });
                Shape::Schema(next)
            }
            Shape::Builtin(path) => {
                let mut p = path.clone();
                p.push(name);
                Shape::Builtin(p)
            }
        }
    }

    /// The shape of a list's items.
    pub fn item(&self) -> Shape<'a> {
        match self {
            Shape::Schema(s) => Shape::Schema(s.and_then(|node| node.get("items"))),
            Shape::Builtin(path) => {
                let mut p = path.clone();
                p.push("[]");
                Shape::Builtin(p)
            }
        }
    }

    /// A map the schema declares atomic (`x-kubernetes-map-type: atomic`): replaced whole. Of the
    /// built-in kinds, a Service's or ReplicationController's selector and every LabelSelector a
    /// workload selects its Pods with are atomic: one manager owns the whole selector.
    pub fn atomic_map(&self) -> bool {
        match self {
            Shape::Schema(Some(node)) => node["x-kubernetes-map-type"] == "atomic",
            Shape::Builtin(path) => matches!(path.as_slice(), ["spec", "selector"] | ["spec", "podSelector"]),
            Shape::Schema(None) => false,
        }
    }

    pub fn list_type(&self) -> ListType {
        match self {
            Shape::Schema(Some(node)) => match node["x-kubernetes-list-type"].as_str() {
                Some("set") => ListType::Set,
                Some("map") => ListType::Map(
                    node["x-kubernetes-list-map-keys"]
                        .as_array()
                        .map(|keys| keys.iter().filter_map(|k| k.as_str().map(String::from)).collect())
                        .unwrap_or_default(),
                ),
                _ => ListType::Atomic,
            },
            Shape::Schema(None) => ListType::Atomic,
            Shape::Builtin(path) => builtin_list_type(path),
        }
    }
}

fn builtin_list_type(path: &[&str]) -> ListType {
    let keys = |ks: &[&str]| ListType::Map(ks.iter().map(|s| s.to_string()).collect());
    let Some(last) = path.last() else {
        return ListType::Atomic;
    };
    let in_container = path
        .iter()
        .any(|p| matches!(*p, "containers" | "initContainers" | "ephemeralContainers"));
    match *last {
        "finalizers" => ListType::Set,
        "ownerReferences" => keys(&["uid"]),
        "containers" | "initContainers" | "ephemeralContainers" => keys(&["name"]),
        "ports" if in_container => keys(&["containerPort", "protocol"]),
        "ports" if path.first() == Some(&"spec") => keys(&["port", "protocol"]),
        "env" => keys(&["name"]),
        "volumeMounts" => keys(&["mountPath"]),
        "volumes" | "imagePullSecrets" => keys(&["name"]),
        "conditions" => keys(&["type"]),
        "hostAliases" => keys(&["ip"]),
        "topologySpreadConstraints" => keys(&["topologyKey", "whenUnsatisfiable"]),
        _ => ListType::Atomic,
    }
}

/// The value identifying a map-list item: its key fields, as `k:{...}` in managed fields.
pub fn item_key(item: &Value, keys: &[String]) -> Option<Value> {
    let mut map = serde_json::Map::new();
    for k in keys {
        match item.get(k) {
            Some(v) if !v.is_null() => {
                map.insert(k.clone(), v.clone());
            }
            // Protocol defaults to TCP: an item without it is keyed as if it said so.
            _ if k == "protocol" => {
                map.insert(k.clone(), Value::String("TCP".into()));
            }
            _ => {}
        }
    }
    if map.is_empty() { None } else { Some(Value::Object(map)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_lists() {
        let root = Shape::root(None);
        let containers = root.field("spec").field("template").field("spec").field("containers");
        assert_eq!(containers.list_type(), ListType::Map(vec!["name".into()]));
        assert_eq!(
            containers.item().field("ports").list_type(),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(
            root.field("spec").field("ports").list_type(),
            ListType::Map(vec!["port".into(), "protocol".into()])
        );
        assert_eq!(root.field("spec").field("tolerations").list_type(), ListType::Atomic);
    }

    #[test]
    fn schema_lists() {
        let schema = json!({"type": "object", "properties": {
            "apiVersion": {"type": "string"},
            "spec": {"type": "object", "properties": {
                "rules": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object"}},
                "tags": {"type": "array", "x-kubernetes-list-type": "set"},
                "plain": {"type": "array"}
            }}
        }});
        let root = Shape::root(Some(&schema));
        assert_eq!(
            root.field("spec").field("rules").list_type(),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(root.field("spec").field("tags").list_type(), ListType::Set);
        assert_eq!(root.field("spec").field("plain").list_type(), ListType::Atomic);
        assert_eq!(root.field("metadata").field("finalizers").list_type(), ListType::Set);
    }
}
