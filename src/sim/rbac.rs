//! Kubernetes authorization over stored RBAC objects, as a pure function: the privileged
//! `system:masters` group first, then every ClusterRoleBinding and the namespace's RoleBindings,
//! with Kubernetes' rule matching (`*`, `resource/subresource`, `*/subresource`, resource names,
//! non-resource URLs) and its reasons. RBAC only allows: a request no rule allows has no opinion.

use super::selector::LabelSelector;
use super::users::{MASTERS_GROUP, UserInfo};
use serde_json::{Value, json};
use std::sync::Arc;

/// The RBAC objects to judge by.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub roles: Vec<Arc<Value>>,
    pub cluster_roles: Vec<Arc<Value>>,
    pub role_bindings: Vec<Arc<Value>>,
    pub cluster_role_bindings: Vec<Arc<Value>>,
}

/// What is being done: to a resource, or to a non-resource URL.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Resource {
        group: String,
        resource: String,
        subresource: String,
        name: String,
    },
    NonResource {
        path: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    /// Empty for cluster-scoped requests (and "all namespaces").
    pub namespace: String,
    pub target: Target,
}

/// What one applicable binding grants: its description and its role's rules, or why its role
/// could not be read.
type Grant = Result<(String, Vec<Value>), String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == "*" || x == value)
}

/// Whether one PolicyRule allows the request.
pub fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    if !has(&strings(&rule["verbs"]), &attrs.verb) {
        return false;
    }
    match &attrs.target {
        Target::Resource {
            group,
            resource,
            subresource,
            name,
        } => {
            let combined = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let resources = strings(&rule["resources"]);
            let resource_ok = resources.iter().any(|r| {
                r == "*"
                    || *r == combined
                    || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource.as_str()))
            });
            let names = strings(&rule["resourceNames"]);
            has(&strings(&rule["apiGroups"]), group) && resource_ok && (names.is_empty() || names.contains(name))
        }
        Target::NonResource { path } => strings(&rule["nonResourceURLs"])
            .iter()
            .any(|u| u == "*" || u == path || u.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))),
    }
}

fn subject_matches(subject: &Value, user: &UserInfo, binding_namespace: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str() {
        Some("User") => user.username == name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            // The subject's namespace defaults to the binding's.
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            !ns.is_empty() && user.username == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

/// How the API server names a subject in a reason.
fn describe_subject(subject: &Value, binding_namespace: &str) -> String {
    let kind = subject["kind"].as_str().unwrap_or("");
    let name = subject["name"].as_str().unwrap_or("");
    if kind == "ServiceAccount" {
        let ns = subject["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(binding_namespace);
        return format!("{kind} \"{name}/{ns}\"");
    }
    format!("{kind} \"{name}\"")
}

impl Policy {
    fn cluster_role(&self, name: &str) -> Option<&Arc<Value>> {
        self.cluster_roles.iter().find(|r| r["metadata"]["name"] == name)
    }

    /// A ClusterRole's rules, with those of the ClusterRoles its aggregationRule selects.
    fn cluster_role_rules(&self, role: &Value) -> Vec<Value> {
        let mut rules: Vec<Value> = role["rules"].as_array().cloned().unwrap_or_default();
        for sel in role["aggregationRule"]["clusterRoleSelectors"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let selector = LabelSelector::from_object(sel);
            for other in &self.cluster_roles {
                if other["metadata"]["name"] != role["metadata"]["name"]
                    && selector.matches(other["metadata"]["labels"].as_object())
                {
                    rules.extend(other["rules"].as_array().cloned().unwrap_or_default());
                }
            }
        }
        rules
    }

    /// The rules a binding's roleRef grants, or the error a missing role gives.
    fn role_rules(&self, binding: &Value, namespace: &str) -> Result<Vec<Value>, String> {
        let role_ref = &binding["roleRef"];
        let name = role_ref["name"].as_str().unwrap_or("");
        match role_ref["kind"].as_str() {
            Some("ClusterRole") => self
                .cluster_role(name)
                .map(|r| self.cluster_role_rules(r))
                .ok_or_else(|| format!("clusterrole.rbac.authorization.k8s.io \"{name}\" not found")),
            Some("Role") => self
                .roles
                .iter()
                .find(|r| r["metadata"]["name"] == name && r["metadata"]["namespace"] == namespace)
                .map(|r| r["rules"].as_array().cloned().unwrap_or_default())
                .ok_or_else(|| format!("role.rbac.authorization.k8s.io \"{name}\" not found")),
            _ => Err(format!("unknown roleRef kind {:?}", role_ref["kind"])),
        }
    }

    /// Visits (source, rules) for every binding that applies to `user` in `namespace`: cluster
    /// bindings first, then the namespace's. `visit` returns false to stop.
    fn visit(&self, user: &UserInfo, namespace: &str, visit: &mut dyn FnMut(Grant) -> bool) {
        for b in &self.cluster_role_bindings {
            for subject in b["subjects"].as_array().into_iter().flatten() {
                if !subject_matches(subject, user, "") {
                    continue;
                }
                let source = format!(
                    "ClusterRoleBinding \"{}\" of {} \"{}\" to {}",
                    b["metadata"]["name"].as_str().unwrap_or(""),
                    b["roleRef"]["kind"].as_str().unwrap_or(""),
                    b["roleRef"]["name"].as_str().unwrap_or(""),
                    describe_subject(subject, "")
                );
                if !visit(self.role_rules(b, "").map(|rules| (source, rules))) {
                    return;
                }
            }
        }
        if namespace.is_empty() {
            return;
        }
        for b in self
            .role_bindings
            .iter()
            .filter(|b| b["metadata"]["namespace"] == namespace)
        {
            for subject in b["subjects"].as_array().into_iter().flatten() {
                if !subject_matches(subject, user, namespace) {
                    continue;
                }
                let source = format!(
                    "RoleBinding \"{}/{namespace}\" of {} \"{}\" to {}",
                    b["metadata"]["name"].as_str().unwrap_or(""),
                    b["roleRef"]["kind"].as_str().unwrap_or(""),
                    b["roleRef"]["name"].as_str().unwrap_or(""),
                    describe_subject(subject, namespace)
                );
                if !visit(self.role_rules(b, namespace).map(|rules| (source, rules))) {
                    return;
                }
            }
        }
    }

    /// Decides a request as the API server's authorizer chain does (privileged group, then RBAC).
    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        if attrs.user.groups.iter().any(|g| g == MASTERS_GROUP) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let mut allowed_by = None;
        let mut errors = Vec::new();
        self.visit(&attrs.user, &attrs.namespace, &mut |found| match found {
            Ok((source, rules)) => {
                if rules.iter().any(|r| rule_allows(r, attrs)) {
                    allowed_by = Some(source);
                    return false;
                }
                true
            }
            Err(e) => {
                errors.push(e);
                true
            }
        });
        match allowed_by {
            Some(source) => Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {source}"),
            },
            None => Decision {
                allowed: false,
                reason: match errors.len() {
                    0 => String::new(),
                    1 => format!("RBAC: {}", errors[0]),
                    _ => format!("RBAC: [{}]", errors.join(", ")),
                },
            },
        }
    }

    /// The rules `user` holds in `namespace` (a SelfSubjectRulesReview's status): resource
    /// rules, non-resource rules, and whether some binding's role was missing.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<Value>, Vec<Value>, bool) {
        let (mut resource, mut non_resource) = (Vec::new(), Vec::new());
        if user.groups.iter().any(|g| g == MASTERS_GROUP) {
            resource.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
            non_resource.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
        }
        let mut incomplete = false;
        self.visit(user, namespace, &mut |found| {
            match found {
                Ok((_, rules)) => {
                    for r in rules {
                        if r.get("nonResourceURLs").is_some_and(|u| !u.is_null()) {
                            non_resource.push(json!({"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}));
                        } else {
                            let mut rule =
                                json!({"verbs": r["verbs"], "apiGroups": r["apiGroups"], "resources": r["resources"]});
                            if r.get("resourceNames").is_some_and(|n| !n.is_null()) {
                                rule["resourceNames"] = r["resourceNames"].clone();
                            }
                            resource.push(rule);
                        }
                    }
                }
                Err(_) => incomplete = true,
            }
            true
        });
        (resource, non_resource, incomplete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Arc<Value> {
        Arc::new(v)
    }

    fn sa(ns: &str, name: &str) -> UserInfo {
        UserInfo::service_account(ns, name, "uid")
    }

    fn resource(user: UserInfo, verb: &str, ns: &str, group: &str, res: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            user,
            verb: verb.into(),
            namespace: ns.into(),
            target: Target::Resource {
                group: group.into(),
                resource: res.into(),
                subresource: sub.into(),
                name: name.into(),
            },
        }
    }

    fn policy() -> Policy {
        Policy {
            roles: vec![obj(
                json!({"metadata": {"name": "status-writer", "namespace": "shop"}, "rules": [
                    {"apiGroups": ["serin.dev"], "resources": ["rollouts/status"], "verbs": ["patch", "update"]},
                ]}),
            )],
            cluster_roles: vec![
                obj(json!({"metadata": {"name": "viewer"}, "rules": [
                    {"apiGroups": ["", "apps"], "resources": ["*"], "verbs": ["get", "list"]},
                    {"nonResourceURLs": ["/healthz", "/metrics/*"], "verbs": ["get"]},
                ]})),
                obj(json!({"metadata": {"name": "named"}, "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"], "verbs": ["*"]},
                    {"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["update"]},
                ]})),
                obj(
                    json!({"metadata": {"name": "aggregate"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example/aggregate": "true"}}]}, "rules": []}),
                ),
                obj(
                    json!({"metadata": {"name": "leases", "labels": {"rbac.example/aggregate": "true"}}, "rules": [
                        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
                    ]}),
                ),
            ],
            role_bindings: vec![
                obj(
                    json!({"metadata": {"name": "ci", "namespace": "shop"}, "roleRef": {"kind": "Role", "name": "status-writer"}, "subjects": [{"kind": "ServiceAccount", "name": "ci"}]}),
                ),
                obj(
                    json!({"metadata": {"name": "named", "namespace": "shop"}, "roleRef": {"kind": "ClusterRole", "name": "named"}, "subjects": [{"kind": "User", "name": "jane"}]}),
                ),
                obj(
                    json!({"metadata": {"name": "ghost", "namespace": "shop"}, "roleRef": {"kind": "Role", "name": "missing"}, "subjects": [{"kind": "User", "name": "joe"}]}),
                ),
            ],
            cluster_role_bindings: vec![
                obj(
                    json!({"metadata": {"name": "view-all"}, "roleRef": {"kind": "ClusterRole", "name": "viewer"}, "subjects": [{"kind": "Group", "name": "viewers"}]}),
                ),
                obj(
                    json!({"metadata": {"name": "agg"}, "roleRef": {"kind": "ClusterRole", "name": "aggregate"}, "subjects": [{"kind": "ServiceAccount", "name": "leader", "namespace": "ops"}]}),
                ),
            ],
        }
    }

    #[test]
    fn a_role_binding_to_a_service_account_allows_its_rules_only() {
        let p = policy();
        let d = p.authorize(&resource(
            sa("shop", "ci"),
            "patch",
            "shop",
            "serin.dev",
            "rollouts",
            "status",
            "web",
        ));
        assert_eq!(
            d,
            Decision {
                allowed: true,
                reason:
                    "RBAC: allowed by RoleBinding \"ci/shop\" of Role \"status-writer\" to ServiceAccount \"ci/shop\""
                        .into()
            }
        );
        for denied in [
            resource(sa("shop", "ci"), "patch", "shop", "serin.dev", "rollouts", "", "web"),
            resource(
                sa("shop", "ci"),
                "delete",
                "shop",
                "serin.dev",
                "rollouts",
                "status",
                "web",
            ),
            resource(
                sa("other", "ci"),
                "patch",
                "shop",
                "serin.dev",
                "rollouts",
                "status",
                "web",
            ),
            resource(
                sa("shop", "ci"),
                "patch",
                "other",
                "serin.dev",
                "rollouts",
                "status",
                "web",
            ),
            resource(sa("shop", "ci"), "patch", "", "serin.dev", "rollouts", "status", "web"),
        ] {
            let d = p.authorize(&denied);
            assert!(!d.allowed, "{denied:?}");
            assert_eq!(d.reason, "");
        }
    }

    #[test]
    fn wildcards_names_subresources_and_non_resource_urls() {
        let p = policy();
        let viewer = UserInfo {
            username: "v".into(),
            uid: String::new(),
            groups: vec!["viewers".into()],
        };
        assert!(
            p.authorize(&resource(
                viewer.clone(),
                "get",
                "",
                "apps",
                "deployments",
                "status",
                ""
            ))
            .allowed,
            "* covers subresources"
        );
        assert!(
            !p.authorize(&resource(viewer.clone(), "get", "", "batch", "jobs", "", ""))
                .allowed
        );
        let url = |path: &str| Attributes {
            user: viewer.clone(),
            verb: "get".into(),
            namespace: String::new(),
            target: Target::NonResource { path: path.into() },
        };
        assert!(p.authorize(&url("/healthz")).allowed);
        assert!(p.authorize(&url("/metrics/cadvisor")).allowed);
        assert!(!p.authorize(&url("/readyz")).allowed);
        let jane = UserInfo {
            username: "jane".into(),
            ..Default::default()
        };
        assert!(
            p.authorize(&resource(
                jane.clone(),
                "delete",
                "shop",
                "",
                "configmaps",
                "",
                "settings"
            ))
            .allowed
        );
        assert!(
            !p.authorize(&resource(jane.clone(), "delete", "shop", "", "configmaps", "", "other"))
                .allowed
        );
        assert!(
            p.authorize(&resource(
                jane.clone(),
                "update",
                "shop",
                "apps",
                "deployments",
                "scale",
                "web"
            ))
            .allowed,
            "*/scale"
        );
        assert!(
            !p.authorize(&resource(
                jane.clone(),
                "update",
                "shop",
                "apps",
                "deployments",
                "",
                "web"
            ))
            .allowed
        );
        assert!(
            !p.authorize(&resource(jane, "delete", "other", "", "configmaps", "", "settings"))
                .allowed,
            "a RoleBinding to a ClusterRole is scoped to its namespace"
        );
    }

    #[test]
    fn masters_aggregation_and_missing_roles() {
        let p = policy();
        let admin = p.authorize(&resource(UserInfo::admin(), "delete", "", "", "nodes", "", ""));
        assert!(admin.allowed);
        let leader = p.authorize(&resource(
            sa("ops", "leader"),
            "create",
            "ops",
            "coordination.k8s.io",
            "leases",
            "",
            "",
        ));
        assert_eq!(
            leader.reason,
            "RBAC: allowed by ClusterRoleBinding \"agg\" of ClusterRole \"aggregate\" to ServiceAccount \"leader/ops\""
        );
        let joe = UserInfo {
            username: "joe".into(),
            ..Default::default()
        };
        let d = p.authorize(&resource(joe.clone(), "get", "shop", "", "pods", "", ""));
        assert_eq!(
            d,
            Decision {
                allowed: false,
                reason: "RBAC: role.rbac.authorization.k8s.io \"missing\" not found".into()
            }
        );
        let (rules, _, incomplete) = p.rules_for(&joe, "shop");
        assert!(rules.is_empty() && incomplete);
        let (rules, _, _) = p.rules_for(&sa("shop", "ci"), "shop");
        assert_eq!(rules[0]["resources"], json!(["rollouts/status"]));
    }
}
