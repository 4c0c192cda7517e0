//! Which requests a policy's `matchConstraints` or a binding's `matchResources` select:
//! resource rules (with `*` and subresources), names, exclusions, namespace and object
//! selectors, and `matchPolicy: Equivalent` across a resource's versions.

use super::{Operation, Request};
use crate::sim::resources::ResourceType;
use crate::sim::selector::LabelSelector;
use serde_json::{Map, Value};
use std::sync::Arc;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// One `NamedRuleWithOperations`.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    operations: Vec<String>,
    api_groups: Vec<String>,
    api_versions: Vec<String>,
    resources: Vec<String>,
    scope: String,
    resource_names: Vec<String>,
}

/// The request as a rule sees it: possibly under an equivalent resource's name.
struct Target<'a> {
    group: &'a str,
    version: &'a str,
    resource: &'a str,
    subresource: &'a str,
    namespace: &'a str,
    name: &'a str,
    operation: Operation,
}

fn listed(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == "*" || x == value)
}

impl Rule {
    pub fn from_json(v: &Value) -> Rule {
        Rule {
            operations: strings(&v["operations"]),
            api_groups: strings(&v["apiGroups"]),
            api_versions: strings(&v["apiVersions"]),
            resources: strings(&v["resources"]),
            scope: v["scope"].as_str().unwrap_or("*").to_string(),
            resource_names: strings(&v["resourceNames"]),
        }
    }

    fn matches(&self, t: &Target) -> bool {
        let is_namespace = t.group.is_empty() && t.resource == "namespaces";
        let scope = match self.scope.as_str() {
            "Cluster" => t.namespace.is_empty() || is_namespace,
            "Namespaced" => !t.namespace.is_empty() && !is_namespace,
            _ => true,
        };
        let resource = self.resources.iter().any(|r| {
            let (res, sub) = r.split_once('/').unwrap_or((r, ""));
            (res == "*" || res == t.resource) && (sub == "*" || sub == t.subresource)
        });
        let name = self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == t.name);
        scope
            && listed(&self.operations, t.operation.as_str())
            && listed(&self.api_groups, t.group)
            && listed(&self.api_versions, t.version)
            && resource
            && name
    }
}

/// A parsed `MatchResources`.
#[derive(Debug, Clone, Default)]
pub struct MatchResources {
    namespace_selector: LabelSelector,
    object_selector: LabelSelector,
    rules: Vec<Rule>,
    exclude: Vec<Rule>,
    equivalent: bool,
}

impl MatchResources {
    pub fn from_json(v: &Value) -> MatchResources {
        let rules = |key: &str| {
            v[key]
                .as_array()
                .map(|a| a.iter().map(Rule::from_json).collect())
                .unwrap_or_default()
        };
        MatchResources {
            namespace_selector: LabelSelector::from_object(&v["namespaceSelector"]),
            object_selector: LabelSelector::from_object(&v["objectSelector"]),
            rules: rules("resourceRules"),
            exclude: rules("excludeResourceRules"),
            equivalent: v["matchPolicy"].as_str() != Some("Exact"),
        }
    }

    /// The resource type the request matched as (itself or an equivalent version), or `None`.
    /// `namespace_labels` are those of the request's namespace; `equivalents` the other served
    /// versions of the same resource.
    pub fn matches(
        &self,
        req: &Request,
        namespace_labels: Option<&Map<String, Value>>,
        equivalents: &[Arc<ResourceType>],
    ) -> Option<Arc<ResourceType>> {
        if !self.namespace_matches(req, namespace_labels) || !self.object_matches(req) {
            return None;
        }
        fn target<'t>(rt: &'t ResourceType, req: &'t Request) -> Target<'t> {
            Target {
                group: &rt.group,
                version: &rt.version,
                resource: &rt.plural,
                subresource: req.subresource,
                namespace: req.namespace,
                name: req.name,
                operation: req.operation,
            }
        }
        let own = target(req.rt, req);
        let any = |rules: &[Rule], t: &Target| rules.iter().any(|r| r.matches(t));
        let others = || {
            equivalents
                .iter()
                .filter(|e| e.version != req.rt.version || e.group != req.rt.group)
        };
        let excluded =
            any(&self.exclude, &own) || (self.equivalent && others().any(|e| any(&self.exclude, &target(e, req))));
        if excluded {
            return None;
        }
        // No rules selects everything: how a binding's matchResources narrows nothing.
        if self.rules.is_empty() || any(&self.rules, &own) {
            return Some(Arc::new(req.rt.clone()));
        }
        if !self.equivalent {
            return None;
        }
        others().find(|e| any(&self.rules, &target(e, req))).cloned()
    }

    fn namespace_matches(&self, req: &Request, labels: Option<&Map<String, Value>>) -> bool {
        let is_namespace = req.rt.group.is_empty() && req.rt.plural == "namespaces";
        // Cluster-scoped objects other than namespaces are never exempted by a namespace selector.
        if (req.namespace.is_empty() && !is_namespace) || self.namespace_selector.is_empty() {
            return true;
        }
        let own = if is_namespace && req.subresource.is_empty() && req.operation != Operation::Delete {
            req.object.and_then(crate::sim::meta::labels)
        } else {
            labels
        };
        self.namespace_selector.matches(own)
    }

    fn object_matches(&self, req: &Request) -> bool {
        self.object_selector.is_empty()
            || [req.object, req.old_object]
                .into_iter()
                .flatten()
                .any(|o| self.object_selector.matches(crate::sim::meta::labels(o)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::registry::Registry;
    use crate::sim::users::UserInfo;
    use serde_json::json;

    fn request<'a>(
        rt: &'a ResourceType,
        op: Operation,
        sub: &'a str,
        obj: &'a Value,
        user: &'a UserInfo,
    ) -> Request<'a> {
        Request {
            operation: op,
            rt,
            subresource: sub,
            namespace: "shop",
            name: "web",
            object: Some(obj),
            old_object: None,
            user,
            dry_run: false,
        }
    }

    #[test]
    fn rules_select_by_operation_resource_subresource_and_name() {
        let registry = Registry::default();
        let deploy = registry.find("apps", "v1", "deployments").unwrap();
        let user = UserInfo::admin();
        let obj = json!({"metadata": {"name": "web", "labels": {"tier": "front"}}});
        let m = |rules: Value| MatchResources::from_json(&json!({"resourceRules": rules}));
        let create = request(&deploy, Operation::Create, "", &obj, &user);
        let status = request(&deploy, Operation::Update, "status", &obj, &user);
        let all = m(json!([{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]}]));
        assert!(all.matches(&create, None, &[]).is_some());
        assert!(all.matches(&status, None, &[]).is_none(), "* leaves subresources out");
        let subs = m(
            json!([{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["*/status"]}]),
        );
        assert!(subs.matches(&status, None, &[]).is_some());
        assert!(subs.matches(&create, None, &[]).is_none());
        let named = m(
            json!([{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"], "resourceNames": ["api"]}]),
        );
        assert!(named.matches(&create, None, &[]).is_none());
        let excluded = MatchResources::from_json(&json!({
            "resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]}],
            "excludeResourceRules": [{"apiGroups": ["apps"], "apiVersions": ["*"], "operations": ["*"], "resources": ["deployments"]}],
        }));
        assert!(excluded.matches(&create, None, &[]).is_none());
        let cluster_only = m(
            json!([{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"], "scope": "Cluster"}]),
        );
        assert!(cluster_only.matches(&create, None, &[]).is_none());
    }

    #[test]
    fn selectors_read_namespace_and_object_labels() {
        let registry = Registry::default();
        let deploy = registry.find("apps", "v1", "deployments").unwrap();
        let user = UserInfo::admin();
        let obj = json!({"metadata": {"name": "web", "labels": {"tier": "front"}}});
        let req = request(&deploy, Operation::Create, "", &obj, &user);
        let ns = MatchResources::from_json(&json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}));
        let prod = json!({"env": "prod"});
        assert!(ns.matches(&req, prod.as_object(), &[]).is_some());
        assert!(ns.matches(&req, None, &[]).is_none());
        let by_object = MatchResources::from_json(
            &json!({"objectSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}}),
        );
        assert!(by_object.matches(&req, None, &[]).is_none());
    }

    #[test]
    fn equivalent_versions_match_unless_exact() {
        let registry = Registry::default();
        let core = registry.find("", "v1", "events").unwrap();
        let new = registry.find("events.k8s.io", "v1", "events").unwrap();
        let user = UserInfo::admin();
        let obj = json!({"metadata": {"name": "e"}});
        let req = request(&core, Operation::Create, "", &obj, &user);
        let rules = json!([{"apiGroups": ["events.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["events"]}]);
        let equivalent = MatchResources::from_json(&json!({"resourceRules": rules}));
        let matched = equivalent.matches(&req, None, std::slice::from_ref(&new)).unwrap();
        assert_eq!(matched.group, "events.k8s.io");
        let exact = MatchResources::from_json(&json!({"resourceRules": rules, "matchPolicy": "Exact"}));
        assert!(exact.matches(&req, None, &[new]).is_none());
    }
}
