//! What the API server does to a built-in object before storing it: defaults and validation.

use super::meta;
use super::resources::ResourceType;
use super::selector::LabelSelector;
use super::status::ApiError;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT_CLUSTER_IP: AtomicU32 = AtomicU32::new(10);
/// Node ports are handed out in turn from 30000, as a cluster's allocator hands out free ones.
static NEXT_NODE_PORT: AtomicU32 = AtomicU32::new(0);

fn set_default(obj: &mut Value, path: &str, value: Value) {
    if meta::lookup(obj, path).is_none_or(Value::is_null) {
        meta::set_path(obj, path, value);
    }
}

/// Defaults and validates a built-in object; `old` is the stored object on updates.
pub fn admit_builtin(rt: &ResourceType, old: Option<&Value>, obj: &mut Value) -> Result<(), ApiError> {
    let name = meta::name(obj).to_string();
    let mut causes: Vec<(String, String)> = Vec::new();
    // Defaults come before checks: a Job's template without a restartPolicy is refused for the
    // `Always` it was given.
    let has_template = matches!(
        (rt.group.as_str(), rt.plural.as_str()),
        ("apps", "deployments" | "replicasets" | "daemonsets") | ("", "replicationcontrollers") | ("batch", "jobs")
    );
    if has_template && let Some(spec) = obj.pointer_mut("/spec/template/spec") {
        default_template_spec(spec);
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            set_default(obj, "spec.finalizers", json!(["kubernetes"]));
            if !meta::is_deleting(obj) {
                meta::set_path(obj, "status.phase", json!("Active"));
            }
            let labels = obj["metadata"]["labels"].as_object().cloned().unwrap_or_default();
            let mut labels = labels;
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            meta::set_meta(obj, "labels", Value::Object(labels));
            if !meta::is_dns_label(&name) {
                causes.push(("metadata.name".into(), format!("Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")));
            }
        }
        ("", "services") => {
            set_default(obj, "spec.type", json!("ClusterIP"));
            set_default(obj, "spec.sessionAffinity", json!("None"));
            if matches!(obj["spec"]["type"].as_str(), Some("NodePort" | "LoadBalancer")) {
                set_default(obj, "spec.externalTrafficPolicy", json!("Cluster"));
            }
            if obj["spec"]["type"] == "LoadBalancer" {
                set_default(obj, "spec.allocateLoadBalancerNodePorts", json!(true));
            }
            if obj["spec"]["type"] != "ExternalName" {
                set_default(obj, "spec.ipFamilies", json!(["IPv4"]));
                set_default(obj, "spec.ipFamilyPolicy", json!("SingleStack"));
                set_default(obj, "spec.internalTrafficPolicy", json!("Cluster"));
            }
            // A Service is created with an empty load-balancer status (whatever the body says, as
            // the API server resets it), and keeps the one it has.
            match old {
                None => obj["status"] = json!({"loadBalancer": {}}),
                Some(o) => set_default(obj, "status", o["status"].clone()),
            }
            let kept = old.and_then(|o| o["spec"]["clusterIP"].as_str().map(String::from));
            if obj["spec"]["type"] != "ExternalName" && obj["spec"]["clusterIP"].is_null() {
                let ip = kept.unwrap_or_else(|| {
                    let n = NEXT_CLUSTER_IP.fetch_add(1, Ordering::Relaxed);
                    format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
                });
                meta::set_path(obj, "spec.clusterIP", json!(ip));
                meta::set_path(obj, "spec.clusterIPs", json!([ip]));
            }
            default_service_ports(obj, old);
            if !meta::is_dns_label(&name) {
                causes.push(("metadata.name".into(), format!("Invalid value: {name:?}: a DNS-1035 label must consist of lower case alphanumeric characters or '-'")));
            }
        }
        ("autoscaling", "horizontalpodautoscalers") => {
            set_default(obj, "spec.minReplicas", json!(1));
            if obj["spec"]["metrics"].as_array().is_none_or(|m| m.is_empty()) {
                meta::set_path(
                    obj,
                    "spec.metrics",
                    json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
                );
            }
        }
        ("", "secrets") => set_default(obj, "type", json!("Opaque")),
        ("", "pods") => {
            default_pod_spec(obj);
            if old.is_none() {
                // A new Pod is Pending, whatever the body says, until the scheduler and kubelet act.
                let qos = super::kubelet::qos_class(&obj["spec"]);
                obj["status"] = json!({"phase": "Pending", "qosClass": qos});
            }
            if obj["spec"]["containers"].as_array().is_none_or(|c| c.is_empty()) {
                causes.push(("spec.containers".into(), "Required value".into()));
            }
        }
        ("apps", "deployments") | ("apps", "replicasets") => {
            set_default(obj, "spec.replicas", json!(1));
            if rt.plural == "deployments" {
                set_default(obj, "spec.revisionHistoryLimit", json!(10));
                set_default(obj, "spec.progressDeadlineSeconds", json!(600));
                if obj["spec"]["strategy"]["type"].is_null() {
                    meta::set_path(
                        obj,
                        "spec.strategy",
                        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                    );
                }
            }
            check_selector(obj, &mut causes);
            if obj["spec"]["replicas"].as_i64().is_some_and(|r| r < 0) {
                causes.push((
                    "spec.replicas".into(),
                    "Invalid value: must be greater than or equal to 0".into(),
                ));
            }
        }
        ("", "replicationcontrollers") => {
            // An RC without a selector selects its template's labels, and wears them.
            let template_labels = obj["spec"]["template"]["metadata"]["labels"].clone();
            set_default(obj, "spec.replicas", json!(1));
            set_default(obj, "spec.selector", template_labels.clone());
            if meta::labels(obj).is_none_or(|l| l.is_empty()) && template_labels.is_object() {
                meta::set_meta(obj, "labels", template_labels);
            }
            if obj["spec"]["template"].is_null() {
                causes.push(("spec.template".into(), "Required value".into()));
            }
        }
        ("apps", "daemonsets") => {
            set_default(obj, "spec.revisionHistoryLimit", json!(10));
            if obj["spec"]["updateStrategy"]["type"].is_null() {
                meta::set_path(
                    obj,
                    "spec.updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
            }
            check_selector(obj, &mut causes);
        }
        ("apiregistration.k8s.io", "apiservices") => super::apiservices::admit(obj, old, &mut causes),
        ("coordination.k8s.io", "leases") if obj["spec"]["leaseDurationSeconds"].as_i64().is_some_and(|d| d <= 0) => {
            causes.push((
                "spec.leaseDurationSeconds".into(),
                "Invalid value: must be greater than 0".into(),
            ));
        }
        ("batch", "jobs") => super::jobs::admit(obj, old, &mut causes),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            super::crd::admit_crd(obj, &mut causes);
        }
        (super::policy::GROUP, plural) => super::policy::admit_object(plural, obj, &mut causes),
        _ => {}
    }
    if old.is_none() {
        set_initial_status(rt, obj);
    }
    let check_name = !matches!(rt.plural.as_str(), "namespaces" | "services");
    if check_name && !meta::is_dns_subdomain(&name) && rt.plural != "events" {
        causes.push(("metadata.name".into(), format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'")));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            format!("{}.{}", rt.kind, rt.group).trim_end_matches('.'),
            &name,
            causes,
        ))
    }
}

/// The API server's defaults for a Pod (`SetDefaults_Pod` and `SetDefaults_PodSpec`), and the
/// admission plugins' that every cluster runs (the ServiceAccount, priority and the default
/// tolerations).
fn default_pod_spec(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec") {
        default_template_spec(spec);
    }
    for (path, value) in [
        ("spec.enableServiceLinks", json!(true)),
        ("spec.priority", json!(0)),
        ("spec.preemptionPolicy", json!("PreemptLowerPriority")),
        ("spec.serviceAccountName", json!("default")),
    ] {
        set_default(obj, path, value);
    }
    let account = obj["spec"]["serviceAccountName"].clone();
    set_default(obj, "spec.serviceAccount", account);
    set_default(
        obj,
        "spec.tolerations",
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ]),
    );
    // A limit without a request asks for as much as it limits.
    for list in ["containers", "initContainers"] {
        let containers = obj.pointer_mut(&format!("/spec/{list}")).and_then(Value::as_array_mut);
        for resources in containers.into_iter().flatten().filter_map(|c| c.get_mut("resources")) {
            let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
                continue;
            };
            let Some(fields) = resources.as_object_mut() else {
                continue;
            };
            let requests = fields.entry("requests").or_insert_with(|| json!({}));
            if let Some(requests) = requests.as_object_mut() {
                for (resource, limit) in limits {
                    requests.entry(resource).or_insert(limit);
                }
            }
        }
    }
}

/// `SetDefaults_PodSpec` and its containers' defaults: what a Pod and every workload's Pod
/// template get.
fn default_template_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    for (key, value) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
        ("terminationGracePeriodSeconds", json!(30)),
    ] {
        if spec[key].is_null() {
            spec[key] = value;
        }
    }
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter(|c| c.is_object()) {
            let image = c["image"].as_str().unwrap_or_default();
            let tag = super::kubelet::image_tag(image);
            let latest = !image.contains('@') && tag.is_none_or(|t| t == "latest");
            for (key, value) in [
                ("imagePullPolicy", json!(if latest { "Always" } else { "IfNotPresent" })),
                ("resources", json!({})),
                ("terminationMessagePath", json!("/dev/termination-log")),
                ("terminationMessagePolicy", json!("File")),
            ] {
                if c[key].is_null() {
                    c[key] = value;
                }
            }
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter(|p| p.is_object()) {
                    if p["protocol"].is_null() {
                        p["protocol"] = json!("TCP");
                    }
                }
            }
        }
    }
}

/// The status a new object is stored with: kube-apiserver resets it to the Go type's zero value,
/// whose counters without `omitempty` show as 0 before any controller has written one.
fn set_initial_status(rt: &ResourceType, obj: &mut Value) {
    let counters: &[&str] = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["replicas"],
        ("apps", "daemonsets") => &[
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
        ],
        _ => &[],
    };
    for counter in counters {
        set_default(obj, &format!("status.{counter}"), json!(0));
    }
}

/// A Service's ports: protocol and target port, and a node port from 30000–32767 for each port of
/// a NodePort or LoadBalancer Service that has none (kept across updates, as the allocator does).
fn default_service_ports(obj: &mut Value, old: Option<&Value>) {
    let wants_node_ports = match obj["spec"]["type"].as_str() {
        Some("NodePort") => true,
        Some("LoadBalancer") => obj["spec"]["allocateLoadBalancerNodePorts"] != false,
        _ => false,
    };
    let kept = |port: &Value| -> Option<Value> {
        old?["spec"]["ports"]
            .as_array()?
            .iter()
            .find(|o| o["port"] == port["port"] && o["protocol"] == port["protocol"])
            .map(|o| o["nodePort"].clone())
            .filter(|n| !n.is_null())
    };
    let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
        return;
    };
    for p in ports.iter_mut().filter(|p| p.is_object()) {
        if p["protocol"].is_null() {
            p["protocol"] = json!("TCP");
        }
        // An absent target port, 0 or "" (what a typed client sends for none) means the port.
        if p["targetPort"].is_null() || p["targetPort"] == 0 || p["targetPort"] == "" {
            p["targetPort"] = p["port"].clone();
        }
        if wants_node_ports && p["nodePort"].is_null() {
            p["nodePort"] = kept(p).unwrap_or_else(|| {
                let n = NEXT_NODE_PORT.fetch_add(1, Ordering::Relaxed);
                json!(30000 + n % 2768)
            });
        }
    }
}

fn check_selector(obj: &Value, causes: &mut Vec<(String, String)>) {
    let selector = &obj["spec"]["selector"];
    if selector.is_null() || (selector["matchLabels"].is_null() && selector["matchExpressions"].is_null()) {
        causes.push(("spec.selector".into(), "Required value".into()));
        return;
    }
    let labels = obj["spec"]["template"]["metadata"]["labels"].as_object();
    if !LabelSelector::from_object(selector).matches(labels) {
        causes.push((
            "spec.template.metadata.labels".into(),
            "Invalid value: `selector` does not match template `labels`".into(),
        ));
    }
}
