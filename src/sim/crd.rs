//! CustomResourceDefinitions: checking them, and turning one into the kinds it serves.

use super::meta;
use super::resources::{ALL_VERBS, PrinterColumn, ResourceType, ScalePaths};
use serde_json::{Value, json};
use std::sync::Arc;

pub fn admit_crd(crd: &Value, causes: &mut Vec<(String, String)>) {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    if group.is_empty() {
        causes.push(("spec.group".into(), "Required value".into()));
    }
    if plural.is_empty() {
        causes.push(("spec.names.plural".into(), "Required value".into()));
    }
    if spec["names"]["kind"].as_str().unwrap_or("").is_empty() {
        causes.push(("spec.names.kind".into(), "Required value".into()));
    }
    let want = format!("{plural}.{group}");
    if meta::name(crd) != want {
        causes.push((
            "metadata.name".into(),
            format!(
                "Invalid value: {:?}: must be spec.names.plural+\".\"+spec.group",
                meta::name(crd)
            ),
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced") | Some("Cluster")) {
        causes.push((
            "spec.scope".into(),
            "Unsupported value: supported values: \"Cluster\", \"Namespaced\"".into(),
        ));
    }
    // Groups of the Kubernetes project are protected (KEP 1111): a CRD of one must say where its API
    // was approved.
    let protected = [".k8s.io", ".kubernetes.io"]
        .iter()
        .any(|g| group.ends_with(g) || group == &g[1..]);
    if protected && crd["metadata"]["annotations"]["api-approved.kubernetes.io"].is_null() {
        causes.push((
            "metadata.annotations[api-approved.kubernetes.io]".into(),
            "Required value: protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111".into(),
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push((
            "spec.versions".into(),
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    let storage = versions.iter().filter(|v| v["storage"] == true).count();
    if !versions.is_empty() && storage != 1 {
        causes.push(("spec.versions".into(), format!("Invalid value: must have exactly one version marked as storage version, status.storedVersions: found {storage}")));
    }
    for (i, v) in versions.iter().enumerate() {
        if v["schema"]["openAPIV3Schema"].is_null() {
            causes.push((
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Required value: schemas are required".into(),
            ));
        }
    }
}

/// The status the API server gives an accepted CRD, so `kubectl wait --for condition=established` works.
pub fn accepted_status(crd: &Value, old: Option<&Value>) -> Value {
    // Conditions keep their transition time across updates: they did not transition.
    let now = old
        .and_then(|o| o["status"]["conditions"][0]["lastTransitionTime"].as_str())
        .map(String::from)
        .unwrap_or_else(meta::now_rfc3339);
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    let mut names = crd["spec"]["names"].clone();
    if names["singular"].is_null() {
        names["singular"] = json!(names["kind"].as_str().unwrap_or("").to_lowercase());
    }
    if names["listKind"].is_null() {
        names["listKind"] = json!(format!("{}List", names["kind"].as_str().unwrap_or("")));
    }
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
        ],
        "storedVersions": storage,
    })
}

/// The served kinds of a CRD, one per served version.
pub fn crd_types(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let crd_name = meta::name(crd).to_string();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
        .unwrap_or("")
        .to_string();
    versions
        .iter()
        .filter(|v| v["served"] != false)
        .map(|v| {
            let sub = &v["subresources"];
            ResourceType {
                group: spec["group"].as_str().unwrap_or("").to_string(),
                version: v["name"].as_str().unwrap_or("").to_string(),
                kind: kind.clone(),
                plural: names["plural"].as_str().unwrap_or("").to_string(),
                singular: names["singular"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| kind.to_lowercase()),
                namespaced: spec["scope"] == "Namespaced",
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status_subresource: sub.get("status").is_some_and(|s| !s.is_null()),
                scale: sub.get("scale").filter(|s| !s.is_null()).map(|s| ScalePaths {
                    spec_replicas: s["specReplicasPath"].as_str().unwrap_or(".spec.replicas").to_string(),
                    status_replicas: s["statusReplicasPath"]
                        .as_str()
                        .unwrap_or(".status.replicas")
                        .to_string(),
                    label_selector: s["labelSelectorPath"].as_str().map(String::from),
                }),
                has_generation: true,
                storage_version: storage_version.clone(),
                schema: Some(Arc::new(v["schema"]["openAPIV3Schema"].clone())),
                cel_rules: has_cel_rules(&v["schema"]["openAPIV3Schema"])
                    .then(|| Arc::new(kube::core::cel::compile_schema(&v["schema"]["openAPIV3Schema"]))),
                printer_columns: v["additionalPrinterColumns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| PrinterColumn {
                        name: c["name"].as_str().unwrap_or("").to_string(),
                        type_: c["type"].as_str().unwrap_or("string").to_string(),
                        json_path: c["jsonPath"].as_str().unwrap_or("").to_string(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                        format: c["format"].as_str().map(String::from),
                        description: c["description"].as_str().unwrap_or("").to_string(),
                    })
                    .collect(),
                verbs: ALL_VERBS,
                crd: Some(crd_name.clone()),
            }
        })
        .collect()
}

fn has_cel_rules(schema: &Value) -> bool {
    schema.get("x-kubernetes-validations").is_some()
        || super::schema::schema_children(schema).into_iter().any(has_cel_rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(group: &str, annotations: Value) -> Value {
        json!({"metadata": {"name": format!("things.{group}"), "annotations": annotations},
               "spec": {"group": group, "scope": "Namespaced",
                        "names": {"plural": "things", "kind": "Thing"},
                        "versions": [{"name": "v1", "served": true, "storage": true,
                                      "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
    }

    #[test]
    fn a_protected_group_needs_its_approval_annotation() {
        let causes = |c: &Value| {
            let mut out = Vec::new();
            admit_crd(c, &mut out);
            out.into_iter().map(|(field, _)| field).collect::<Vec<_>>()
        };
        let approval = "metadata.annotations[api-approved.kubernetes.io]";
        assert_eq!(causes(&crd("gateway.networking.k8s.io", json!({}))), vec![approval]);
        assert_eq!(causes(&crd("x.kubernetes.io", json!(null))), vec![approval]);
        assert!(
            causes(&crd(
                "gateway.networking.k8s.io",
                json!({"api-approved.kubernetes.io": "https://example/pr/1"})
            ))
            .is_empty()
        );
        assert!(causes(&crd("serin.dev", json!({}))).is_empty());
        assert!(causes(&crd("k8s.io.example.com", json!({}))).is_empty());
    }
}
