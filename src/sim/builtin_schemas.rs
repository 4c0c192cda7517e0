//! The field schemas of the built-in kinds, from the Kubernetes API types Serin builds on
//! (`k8s-openapi`). The API server decodes a built-in object into its Go type, so it drops fields
//! the type does not have, and refuses them when the client asks for strict field validation, as
//! kubectl does ("strict decoding error: unknown field "spec.replica""). The simulated cluster does
//! the same with these schemas, and publishes them in its OpenAPI documents (`kubectl explain`).

use super::resources::ResourceType;
use k8s_openapi::api;
use schemars::JsonSchema;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Group, version and kind.
type KindKey = (String, String, String);
type Made = Mutex<HashMap<KindKey, Option<Arc<Value>>>>;

/// The schema of a built-in kind with every reference written out in place, made once per kind.
pub fn of(rt: &ResourceType) -> Option<Arc<Value>> {
    if rt.crd.is_some() {
        return None;
    }
    static MADE: OnceLock<Made> = OnceLock::new();
    let key = (rt.group.clone(), rt.version.clone(), rt.kind.clone());
    let made = MADE.get_or_init(Default::default);
    if let Some(s) = made.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return s.clone();
    }
    let schema = generate(&rt.group, &rt.version, &rt.kind).map(Arc::new);
    made.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, schema.clone());
    schema
}

fn root<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>()).unwrap_or_default()
}

fn generate(group: &str, version: &str, kind: &str) -> Option<Value> {
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
    let root = match (group, version, kind) {
        ("", "v1", "Namespace") => root::<api::core::v1::Namespace>(),
        ("", "v1", "Node") => root::<api::core::v1::Node>(),
        ("", "v1", "Pod") => root::<api::core::v1::Pod>(),
        ("", "v1", "Service") => root::<api::core::v1::Service>(),
        ("", "v1", "ConfigMap") => root::<api::core::v1::ConfigMap>(),
        ("", "v1", "Secret") => root::<api::core::v1::Secret>(),
        ("", "v1", "Event") => root::<api::core::v1::Event>(),
        ("", "v1", "ServiceAccount") => root::<api::core::v1::ServiceAccount>(),
        ("", "v1", "ReplicationController") => root::<api::core::v1::ReplicationController>(),
        ("", "v1", "Endpoints") => root::<api::core::v1::Endpoints>(),
        ("events.k8s.io", "v1", "Event") => root::<api::events::v1::Event>(),
        ("apps", "v1", "Deployment") => root::<api::apps::v1::Deployment>(),
        ("apps", "v1", "ReplicaSet") => root::<api::apps::v1::ReplicaSet>(),
        ("apps", "v1", "DaemonSet") => root::<api::apps::v1::DaemonSet>(),
        ("batch", "v1", "Job") => root::<api::batch::v1::Job>(),
        ("apiregistration.k8s.io", "v1", "APIService") => root::<apiregistration::APIService>(),
        ("coordination.k8s.io", "v1", "Lease") => root::<api::coordination::v1::Lease>(),
        ("networking.k8s.io", "v1", "Ingress") => root::<api::networking::v1::Ingress>(),
        ("networking.k8s.io", "v1", "NetworkPolicy") => root::<api::networking::v1::NetworkPolicy>(),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => root::<api::autoscaling::v2::HorizontalPodAutoscaler>(),
        ("policy", "v1", "PodDisruptionBudget") => root::<api::policy::v1::PodDisruptionBudget>(),
        ("rbac.authorization.k8s.io", "v1", "Role") => root::<api::rbac::v1::Role>(),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => root::<api::rbac::v1::ClusterRole>(),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => root::<api::rbac::v1::RoleBinding>(),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => root::<api::rbac::v1::ClusterRoleBinding>(),
        ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy") => {
            root::<api::admissionregistration::v1::ValidatingAdmissionPolicy>()
        }
        ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding") => {
            root::<api::admissionregistration::v1::ValidatingAdmissionPolicyBinding>()
        }
        // CustomResourceDefinitions (whose schema type nests itself) and the reviews, which are
        // answered and never stored, keep every field they are given.
        _ => return None,
    };
    let defs = root
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut schema = root;
    if let Some(m) = schema.as_object_mut() {
        m.remove("components");
        m.remove("$schema");
    }
    Some(inline(&schema, &defs, 0))
}

/// Writes each `$ref` (alone or as a one-element `allOf`, schemars' way of giving a reference a
/// description) out in place. An object with neither properties nor a value schema (`FieldsV1`)
/// keeps whatever it holds, as its Go type does.
fn inline(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    let Some(fields) = schema.as_object() else {
        return schema.clone();
    };
    let referenced = fields
        .get("$ref")
        .or_else(|| {
            fields
                .get("allOf")?
                .as_array()
                .filter(|a| a.len() == 1)?
                .first()?
                .get("$ref")
        })
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| defs.get(name));
    let mut out = match referenced {
        // A type that nests itself is cut off deep down, where no object reaches.
        Some(_) if depth > 40 => Map::new(),
        Some(target) => {
            let mut resolved = inline(target, defs, depth + 1).as_object().cloned().unwrap_or_default();
            if let Some(d) = fields.get("description") {
                resolved.insert("description".into(), d.clone());
            }
            return Value::Object(resolved);
        }
        None => fields.clone(),
    };
    if let Some(Value::Object(props)) = out.get_mut("properties") {
        for s in props.values_mut() {
            *s = inline(s, defs, depth + 1);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(s) = out.get_mut(key).filter(|s| s.is_object()) {
            *s = inline(s, defs, depth + 1);
        }
    }
    let open_object = out.get("type").and_then(Value::as_str) == Some("object")
        && !out.contains_key("properties")
        && !out.contains_key("additionalProperties");
    if open_object {
        out.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::registry::Registry;

    #[test]
    fn a_deployment_knows_its_fields_down_to_the_containers() {
        let registry = Registry::default();
        let rt = registry.find("apps", "v1", "deployments").unwrap();
        let s = of(&rt).unwrap();
        let container = &s["properties"]["spec"]["properties"]["template"]["properties"]["spec"]["properties"]["containers"]
            ["items"];
        assert_eq!(container["properties"]["imagePullPolicy"]["type"], "string");
        assert!(container["properties"]["resources"]["properties"]["limits"]["additionalProperties"].is_object());
        assert_eq!(s["properties"]["spec"]["properties"]["replicas"]["type"], "integer");
        let unknown = crate::sim::schema::unknown_fields(
            &serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                                "spec": {"replica": 2, "template": {"spec": {"containers": [{"name": "c", "imagePullPolcy": "Always"}]}}}}),
            &s,
        );
        assert_eq!(
            unknown,
            [".spec.replica", ".spec.template.spec.containers[0].imagePullPolcy"]
        );
    }

    #[test]
    fn every_stored_builtin_kind_has_one() {
        for rt in Registry::default().all() {
            let stored = rt.verbs.contains(&"get");
            let expected = stored && rt.group != "apiextensions.k8s.io";
            assert_eq!(of(rt).is_some(), expected, "{}/{} {}", rt.group, rt.version, rt.kind);
        }
    }
}
