//! OpenAPI v3 documents, as far as clients use them: kubectl reads them to learn that the server
//! validates fields itself (`fieldValidation` on PATCH), and `kubectl explain` reads CRD schemas.

use super::registry::Registry;
use super::resources::ResourceType;
use serde_json::{Map, Value, json};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub fn root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, versions) in registry.groups() {
        for v in versions {
            let p = gv_path(&group, &v);
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}")}));
        }
    }
    json!({"paths": paths})
}

/// The name the API server gives a kind's schema: its Go package for built-in kinds
/// (`io.k8s.api.apps.v1.Deployment`), the reversed group for CRDs (`dev.serin.v1alpha1.Rollout`).
pub fn schema_name(rt: &ResourceType) -> String {
    let package = match rt.group.as_str() {
        _ if rt.crd.is_some() => rt.group.split('.').rev().collect::<Vec<_>>().join("."),
        "" => "io.k8s.api.core".to_string(),
        "apiextensions.k8s.io" => "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions".to_string(),
        "apiregistration.k8s.io" => "io.k8s.kube-aggregator.pkg.apis.apiregistration".to_string(),
        g => format!("io.k8s.api.{}", g.split('.').next().unwrap_or(g)),
    };
    format!("{package}.{}.{}", rt.version, rt.kind)
}

/// The item and collection paths of a kind, each with its operations as `operation` writes them
/// (`operation(kind, action, writes)`): OpenAPI v3 and v2 differ only there.
pub fn kind_paths(rt: &ResourceType, operation: impl Fn(&ResourceType, &str, bool) -> Value) -> [(String, Value); 2] {
    let base = format!("/{}", gv_path(&rt.group, &rt.version));
    let collection = if rt.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", rt.plural)
    } else {
        format!("{base}/{}", rt.plural)
    };
    [
        (
            collection.clone(),
            json!({"get": operation(rt, "list", false), "post": operation(rt, "post", true)}),
        ),
        (
            format!("{collection}/{{name}}"),
            json!({"get": operation(rt, "get", false), "put": operation(rt, "put", true), "patch": operation(rt, "patch", true), "delete": operation(rt, "delete", false)}),
        ),
    ]
}

/// The query parameters of an operation; `writes` adds those of create, update and patch.
pub fn query_parameters(writes: bool) -> Vec<&'static str> {
    let mut params = vec!["pretty"];
    if writes {
        params.extend(["dryRun", "fieldManager", "fieldValidation", "force"]);
    }
    params
}

fn operation(rt: &ResourceType, action: &str, writes: bool) -> Value {
    let params: Vec<Value> = query_parameters(writes)
        .into_iter()
        .map(|p| json!({"name": p, "in": "query", "schema": {"type": "string"}}))
        .collect();
    json!({
        "operationId": format!("{action}{}", rt.kind),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", schema_name(rt))}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
    })
}

/// The document of one group/version: item paths with their operations, and CRD schemas.
pub fn group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = registry.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for rt in &types {
        paths.extend(kind_paths(rt, operation));
        let mut schema = rt
            .schema
            .clone()
            .or_else(|| super::builtin_schemas::of(rt))
            .map(|s| (*s).clone())
            .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]);
        schemas.insert(schema_name(rt), schema);
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": super::nodes::KUBE_VERSION}, "paths": paths, "components": {"schemas": schemas}}),
    )
}
