//! The columns `kubectl get` shows for built-in kinds, as the API server's table printers make them.

use crate::sim::meta;
use crate::sim::resources::ResourceType;
use serde_json::{Value, json};

pub struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub cell: fn(&Value) -> Value,
}

fn s(v: &Value) -> Value {
    if v.is_null() { json!("<none>") } else { v.clone() }
}

fn age(obj: &Value) -> Value {
    json!(meta::human_age(
        obj["metadata"]["creationTimestamp"].as_str().unwrap_or("")
    ))
}

fn int_or_zero(v: &Value) -> Value {
    json!(v.as_i64().unwrap_or(0))
}

fn ready_containers(p: &Value) -> Value {
    let total = p["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = p["status"]["containerStatuses"]
        .as_array()
        .map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
    json!(format!("{ready}/{total}"))
}

fn pod_status(p: &Value) -> Value {
    if meta::is_deleting(p) {
        return json!("Terminating");
    }
    let waiting = p["status"]["containerStatuses"].as_array().and_then(|cs| {
        cs.iter().find_map(|c| {
            c["state"]["waiting"]["reason"]
                .as_str()
                .or(c["state"]["terminated"]["reason"].as_str())
        })
    });
    json!(waiting.or(p["status"]["phase"].as_str()).unwrap_or("Pending"))
}

fn ready_of(o: &Value) -> Value {
    json!(format!(
        "{}/{}",
        o["status"]["readyReplicas"].as_i64().unwrap_or(0),
        o["spec"]["replicas"].as_i64().unwrap_or(0)
    ))
}

fn service_ports(o: &Value) -> Value {
    let ports: Vec<String> = o["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let node_port = p["nodePort"].as_i64().map(|n| format!(":{n}")).unwrap_or_default();
            format!("{}{node_port}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP"))
        })
        .collect();
    json!(if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    })
}

/// `Running`, `Complete`, `Failed` or `Suspended`, as kubectl shows a Job.
fn job_status(j: &Value) -> Value {
    let has = |t: &str| {
        j["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == t && c["status"] == "True"))
    };
    json!(if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    })
}

fn event_object(e: &Value) -> Value {
    let o = &e["involvedObject"];
    json!(format!(
        "{}/{}",
        o["kind"].as_str().unwrap_or("").to_lowercase(),
        o["name"].as_str().unwrap_or("")
    ))
}

fn event_last_seen(e: &Value) -> Value {
    let t = e["lastTimestamp"]
        .as_str()
        .or(e["eventTime"].as_str())
        .or(e["metadata"]["creationTimestamp"].as_str());
    json!(meta::human_age(t.unwrap_or("")))
}

/// `apiVersion, Kind=kind` as kubectl prints a policy's paramKind, or `<unset>`.
fn policy_param_kind(o: &Value) -> Value {
    let pk = &o["spec"]["paramKind"];
    json!(match (pk["apiVersion"].as_str(), pk["kind"].as_str()) {
        (Some(v), Some(k)) => format!("{v}, Kind={k}"),
        _ => "<unset>".to_string(),
    })
}

/// A binding's paramRef as `namespace/name`, `name`, or `<unset>`.
fn binding_param_ref(o: &Value) -> Value {
    let pr = &o["spec"]["paramRef"];
    json!(match (pr["namespace"].as_str(), pr["name"].as_str()) {
        (Some(ns), Some(n)) if !ns.is_empty() => format!("{ns}/{n}"),
        (_, Some(n)) => n.to_string(),
        _ if pr.is_object() => "*".to_string(),
        _ => "<unset>".to_string(),
    })
}

fn count_of(v: &Value) -> usize {
    v.as_object().map_or(0, |m| m.len())
}

/// `Ready`, or `Ready,SchedulingDisabled` for a cordoned Node.
fn node_status(n: &Value) -> Value {
    let ready = n["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map_or("Unknown", |c| if c["status"] == "True" { "Ready" } else { "NotReady" });
    json!(if n["spec"]["unschedulable"] == true {
        format!("{ready},SchedulingDisabled")
    } else {
        ready.to_string()
    })
}

fn node_roles(n: &Value) -> Value {
    let roles: Vec<&str> = n["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .collect();
    json!(if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    })
}

fn apiservice_service(a: &Value) -> Value {
    let svc = &a["spec"]["service"];
    json!(match (svc["namespace"].as_str(), svc["name"].as_str()) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        _ => "Local".to_string(),
    })
}

/// `True`, or `False (Reason)`.
fn apiservice_available(a: &Value) -> Value {
    let c = a["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Available"));
    json!(match c {
        Some(c) if c["status"] == "True" => "True".to_string(),
        Some(c) => format!("False ({})", c["reason"].as_str().unwrap_or("")),
        None => "Unknown".to_string(),
    })
}

fn ingress_hosts(i: &Value) -> Value {
    let hosts: Vec<&str> = i["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["host"].as_str().unwrap_or("*"))
        .collect();
    json!(if hosts.is_empty() {
        "*".to_string()
    } else {
        hosts.join(",")
    })
}

/// `Kind/name` of what an autoscaler scales.
fn hpa_reference(h: &Value) -> Value {
    let r = &h["spec"]["scaleTargetRef"];
    json!(format!(
        "{}/{}",
        r["kind"].as_str().unwrap_or(""),
        r["name"].as_str().unwrap_or("")
    ))
}

/// Each metric's current value against its target, `<unknown>` while nothing measures it.
fn hpa_targets(h: &Value) -> Value {
    let targets: Vec<String> = h["spec"]["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let r = &m["resource"];
            let target = &r["target"];
            let want = match target["averageUtilization"].as_i64() {
                Some(u) => format!("{u}%"),
                None => target["averageValue"]
                    .as_str()
                    .or(target["value"].as_str())
                    .unwrap_or("")
                    .to_string(),
            };
            format!(
                "{}: <unknown>/{want}",
                r["name"].as_str().unwrap_or(m["type"].as_str().unwrap_or(""))
            )
        })
        .collect();
    json!(if targets.is_empty() {
        "<none>".to_string()
    } else {
        targets.join(", ")
    })
}

fn or_na(v: &Value) -> Value {
    if v.is_null() {
        json!("N/A")
    } else {
        json!(v.to_string().trim_matches('"'))
    }
}

fn role_ref(b: &Value) -> Value {
    let r = &b["roleRef"];
    json!(format!(
        "{}/{}",
        r["kind"].as_str().unwrap_or(""),
        r["name"].as_str().unwrap_or("")
    ))
}

fn pod_restarts(p: &Value) -> Value {
    json!(
        p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["restartCount"].as_i64().unwrap_or(0))
            .sum::<i64>()
            .to_string()
    )
}

fn service_external_ip(o: &Value) -> Value {
    let ingress: Vec<&str> = o["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
        .collect();
    json!(match o["spec"]["type"].as_str() {
        Some("ExternalName") => o["spec"]["externalName"].as_str().unwrap_or("<none>").to_string(),
        Some("LoadBalancer") if ingress.is_empty() => "<pending>".to_string(),
        _ if !ingress.is_empty() => ingress.join(","),
        _ => "<none>".to_string(),
    })
}

pub fn builtin_columns(rt: &ResourceType) -> Option<Vec<Column>> {
    let c = |name, type_, cell| Column { name, type_, cell };
    Some(match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => vec![
            c("Ready", "string", ready_containers),
            c("Status", "string", pod_status),
            c("Restarts", "string", pod_restarts),
            c("Age", "string", age),
        ],
        ("apps", "deployments") => vec![
            c("Ready", "string", ready_of),
            c("Up-to-date", "integer", |o| {
                int_or_zero(&o["status"]["updatedReplicas"])
            }),
            c("Available", "integer", |o| {
                int_or_zero(&o["status"]["availableReplicas"])
            }),
            c("Age", "string", age),
        ],
        ("apps", "replicasets") => vec![
            c("Desired", "integer", |o| int_or_zero(&o["spec"]["replicas"])),
            c("Current", "integer", |o| int_or_zero(&o["status"]["replicas"])),
            c("Ready", "integer", |o| int_or_zero(&o["status"]["readyReplicas"])),
            c("Age", "string", age),
        ],
        ("batch", "jobs") => vec![
            c("Status", "string", job_status),
            c("Completions", "string", |o| {
                json!(format!(
                    "{}/{}",
                    o["status"]["succeeded"].as_i64().unwrap_or(0),
                    o["spec"]["completions"].as_i64().unwrap_or(1)
                ))
            }),
            c("Age", "string", age),
        ],
        ("", "services") => vec![
            c("Type", "string", |o| s(&o["spec"]["type"])),
            c("Cluster-IP", "string", |o| s(&o["spec"]["clusterIP"])),
            c("External-IP", "string", service_external_ip),
            c("Port(s)", "string", service_ports),
            c("Age", "string", age),
        ],
        ("", "namespaces") => vec![
            c("Status", "string", |o| s(&o["status"]["phase"])),
            c("Age", "string", age),
        ],
        ("", "events") => vec![
            c("Last Seen", "string", event_last_seen),
            c("Type", "string", |o| s(&o["type"])),
            c("Reason", "string", |o| s(&o["reason"])),
            c("Object", "string", event_object),
            c("Message", "string", |o| s(&o["message"])),
        ],
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => vec![
            c("Validations", "integer", |o| {
                json!(o["spec"]["validations"].as_array().map_or(0, Vec::len))
            }),
            c("ParamKind", "string", policy_param_kind),
            c("Age", "string", age),
        ],
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => vec![
            c("PolicyName", "string", |o| s(&o["spec"]["policyName"])),
            c("ParamRef", "string", binding_param_ref),
            c("Age", "string", age),
        ],
        ("", "nodes") => vec![
            c("Status", "string", node_status),
            c("Roles", "string", node_roles),
            c("Age", "string", age),
            c("Version", "string", |o| s(&o["status"]["nodeInfo"]["kubeletVersion"])),
        ],
        ("apiregistration.k8s.io", "apiservices") => vec![
            c("Service", "string", apiservice_service),
            c("Available", "string", apiservice_available),
            c("Age", "string", age),
        ],
        ("apps", "daemonsets") => vec![
            c("Desired", "integer", |o| {
                int_or_zero(&o["status"]["desiredNumberScheduled"])
            }),
            c("Current", "integer", |o| {
                int_or_zero(&o["status"]["currentNumberScheduled"])
            }),
            c("Ready", "integer", |o| int_or_zero(&o["status"]["numberReady"])),
            c("Up-to-date", "integer", |o| {
                int_or_zero(&o["status"]["updatedNumberScheduled"])
            }),
            c("Available", "integer", |o| int_or_zero(&o["status"]["numberAvailable"])),
            c("Node Selector", "string", |o| {
                let sel: Vec<String> = o["spec"]["template"]["spec"]["nodeSelector"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                json!(if sel.is_empty() {
                    "<none>".to_string()
                } else {
                    sel.join(",")
                })
            }),
            c("Age", "string", age),
        ],
        ("", "replicationcontrollers") => vec![
            c("Desired", "integer", |o| int_or_zero(&o["spec"]["replicas"])),
            c("Current", "integer", |o| int_or_zero(&o["status"]["replicas"])),
            c("Ready", "integer", |o| int_or_zero(&o["status"]["readyReplicas"])),
            c("Age", "string", age),
        ],
        ("", "configmaps") => vec![
            c("Data", "integer", |o| {
                json!(count_of(&o["data"]) + count_of(&o["binaryData"]))
            }),
            c("Age", "string", age),
        ],
        ("", "secrets") => vec![
            c("Type", "string", |o| s(&o["type"])),
            c("Data", "integer", |o| json!(count_of(&o["data"]))),
            c("Age", "string", age),
        ],
        ("", "serviceaccounts") => vec![
            c("Secrets", "integer", |o| {
                json!(o["secrets"].as_array().map_or(0, Vec::len))
            }),
            c("Age", "string", age),
        ],
        ("", "endpoints") => vec![
            c("Endpoints", "string", |o| {
                let eps: Vec<String> = o["subsets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|ss| {
                        let ports: Vec<i64> = ss["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|p| p["port"].as_i64())
                            .collect();
                        ss["addresses"].as_array().into_iter().flatten().flat_map(move |a| {
                            let ip = a["ip"].as_str().unwrap_or("").to_string();
                            ports.clone().into_iter().map(move |p| format!("{ip}:{p}"))
                        })
                    })
                    .collect();
                json!(if eps.is_empty() {
                    "<none>".to_string()
                } else {
                    eps.join(",")
                })
            }),
            c("Age", "string", age),
        ],
        ("networking.k8s.io", "ingresses") => vec![
            c("Class", "string", |o| s(&o["spec"]["ingressClassName"])),
            c("Hosts", "string", ingress_hosts),
            c("Address", "string", |_| json!("")),
            c("Ports", "string", |o| {
                json!(if o["spec"]["tls"].as_array().is_some_and(|t| !t.is_empty()) {
                    "80, 443"
                } else {
                    "80"
                })
            }),
            c("Age", "string", age),
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            c("Reference", "string", hpa_reference),
            c("Targets", "string", hpa_targets),
            c("MinPods", "integer", |o| {
                json!(o["spec"]["minReplicas"].as_i64().unwrap_or(1))
            }),
            c("MaxPods", "integer", |o| int_or_zero(&o["spec"]["maxReplicas"])),
            c("Replicas", "integer", |o| int_or_zero(&o["status"]["currentReplicas"])),
            c("Age", "string", age),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            c("Min Available", "string", |o| or_na(&o["spec"]["minAvailable"])),
            c("Max Unavailable", "string", |o| or_na(&o["spec"]["maxUnavailable"])),
            c("Allowed Disruptions", "integer", |o| {
                int_or_zero(&o["status"]["disruptionsAllowed"])
            }),
            c("Age", "string", age),
        ],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            vec![c("Role", "string", role_ref), c("Age", "string", age)]
        }
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => {
            vec![c("Created At", "date", |o| s(&o["metadata"]["creationTimestamp"]))]
        }
        ("coordination.k8s.io", "leases") => vec![
            c("Holder", "string", |o| {
                json!(o["spec"]["holderIdentity"].as_str().unwrap_or(""))
            }),
            c("Age", "string", age),
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![c("Created At", "date", |o| s(&o["metadata"]["creationTimestamp"]))]
        }
        _ if rt.printer_columns.is_empty() => vec![c("Age", "string", age)],
        _ => return None,
    })
}
