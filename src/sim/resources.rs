//! The kinds the simulated cluster serves: the built-in ones, and those that CRDs add.

use serde_json::Value;
use std::sync::Arc;

/// Where the scale subresource reads and writes replica counts (paths as in a CRD, `.spec.replicas`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// A printer column of `kubectl get` (a CRD's `additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub json_path: String,
    pub priority: i64,
    pub format: Option<String>,
    pub description: String,
}

/// One served group/version/resource.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    pub scale: Option<ScalePaths>,
    /// `spec` changes bump `metadata.generation` (and only they do).
    pub has_generation: bool,
    /// The version objects are stored in; other versions are converted on the way in and out.
    pub storage_version: String,
    /// The CRD's structural schema for this version, when the kind comes from a CRD.
    pub schema: Option<Arc<Value>>,
    /// The schema's `x-kubernetes-validations` rules, compiled once, when it has any.
    pub cel_rules: Option<Arc<kube::core::cel::CompiledSchema>>,
    pub printer_columns: Vec<PrinterColumn>,
    /// Which verbs are served (`pods/log` and friends are out of scope).
    pub verbs: &'static [&'static str],
    /// Set for kinds defined by a CustomResourceDefinition: the CRD's name.
    pub crd: Option<String>,
}

pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn storage_api_version(&self) -> String {
        if self.group.is_empty() {
            self.storage_version.clone()
        } else {
            format!("{}/{}", self.group, self.storage_version)
        }
    }

    /// The key objects of this kind are stored under, shared by all versions.
    pub fn storage_key(&self) -> StorageKey {
        // events.k8s.io/v1 is another view of core events: one storage for both.
        let group = if self.group == "events.k8s.io" {
            String::new()
        } else {
            self.group.clone()
        };
        StorageKey {
            group,
            plural: self.plural.clone(),
        }
    }

    /// `group/resource`, as the API server names a resource in messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Identifies the storage of one resource across all of its served versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey {
    pub group: String,
    pub plural: String,
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    status: bool,
    scale: bool,
    generation: bool,
    categories: &'static [&'static str],
    verbs: &'static [&'static str],
}

const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short_names,
        status: false,
        scale: false,
        generation: false,
        categories: &[],
        verbs: ALL_VERBS,
    }
}

impl Builtin {
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.scale = true;
        self
    }
    const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
    const fn all(mut self) -> Self {
        self.categories = &["all"];
        self
    }
    const fn api_extensions(mut self) -> Self {
        self.categories = &["api-extensions"];
        self
    }
    /// A review: answered on create, never stored.
    const fn create_only(mut self) -> Self {
        self.verbs = &["create"];
        self
    }
}

/// The built-in kinds: what Serin, its chart and kubectl touch.
const BUILTINS: &[Builtin] = &[
    b("", "v1", "Namespace", "namespaces", false, &["ns"]).status(),
    b("", "v1", "Node", "nodes", false, &["no"]).status(),
    b("", "v1", "Pod", "pods", true, &["po"]).status().all(),
    b("", "v1", "Service", "services", true, &["svc"]).status().all(),
    b("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
    b("", "v1", "Secret", "secrets", true, &[]),
    b("", "v1", "Event", "events", true, &["ev"]),
    b("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
    b(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
        &["rc"],
    )
    .status()
    .scale()
    .generation()
    .all(),
    b("", "v1", "Endpoints", "endpoints", true, &["ep"]),
    b("events.k8s.io", "v1", "Event", "events", true, &["ev"]),
    b("apps", "v1", "Deployment", "deployments", true, &["deploy"])
        .status()
        .scale()
        .generation()
        .all(),
    b("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"])
        .status()
        .scale()
        .generation()
        .all(),
    b("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"])
        .status()
        .generation()
        .all(),
    b("batch", "v1", "Job", "jobs", true, &[]).status().generation().all(),
    b("apiregistration.k8s.io", "v1", "APIService", "apiservices", false, &[])
        .status()
        .api_extensions(),
    b("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
    b("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"])
        .status()
        .generation(),
    b(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
    )
    .generation(),
    b(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
    )
    .status()
    .generation()
    .all(),
    b(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
    )
    .status()
    .generation(),
    b("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", false, &[]).create_only(),
    b(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        false,
        &[],
    )
    .create_only(),
    b(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        false,
        &[],
    )
    .create_only(),
    b(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
        &[],
    )
    .create_only(),
    b(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        true,
        &[],
    )
    .create_only(),
    b(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        false,
        &[],
    )
    .create_only(),
    b("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[]),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        false,
        &[],
    )
    .status()
    .generation()
    .api_extensions(),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        false,
        &[],
    )
    .generation()
    .api_extensions(),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
    )
    .status()
    .generation(),
];

/// The preferred order of groups in discovery, as a real API server lists them.
pub const BUILTIN_GROUP_ORDER: &[&str] = &[
    "",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "coordination.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
];

pub fn builtin_types() -> Vec<ResourceType> {
    BUILTINS
        .iter()
        .map(|b| ResourceType {
            group: b.group.to_string(),
            version: b.version.to_string(),
            kind: b.kind.to_string(),
            plural: b.plural.to_string(),
            singular: b.kind.to_lowercase(),
            namespaced: b.namespaced,
            short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
            categories: b.categories.iter().map(|s| s.to_string()).collect(),
            status_subresource: b.status,
            scale: b.scale.then(|| ScalePaths {
                spec_replicas: ".spec.replicas".into(),
                status_replicas: ".status.replicas".into(),
                label_selector: Some(".status.selector".into()),
            }),
            has_generation: b.generation,
            storage_version: b.version.to_string(),
            schema: None,
            cel_rules: None,
            printer_columns: Vec::new(),
            verbs: b.verbs,
            crd: None,
        })
        .collect()
}
