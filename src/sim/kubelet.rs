//! What kubelet reports of a Pod and its containers: every field it always sets, so that typed
//! clients (which refuse a Pod without `imageID`, say) can read the simulated cluster's Pods.

use super::meta;
use serde_json::{Value, json};

/// What kubelet reports of one container: every field it always sets, in its order, so typed
/// clients that require `imageID` or `containerID` can read the Pod.
pub struct ContainerState {
    pub state: Value,
    pub last_state: Value,
    pub ready: bool,
    pub started: bool,
    pub restarts: i64,
}

pub fn container_status(pod: &Value, index: usize, container: &Value, s: ContainerState) -> Value {
    let image = container["image"].as_str().unwrap_or_default();
    json!({
        "name": container["name"],
        "state": s.state,
        "lastState": s.last_state,
        "ready": s.ready,
        "restartCount": s.restarts,
        "image": image_name(image),
        "imageID": image_id(image),
        "containerID": format!("containerd://{}", made_up_digest(&format!("{}/{index}/{}", meta::uid(pod), s.restarts))),
        "started": s.started,
    })
}

/// An image as the container runtime names it: registry and repository in full, `latest` when no
/// tag or digest was given.
fn image_name(image: &str) -> String {
    let full = qualified_repository(image);
    if full.contains('@') || image_tag(&full).is_some() {
        full
    } else {
        format!("{full}:latest")
    }
}

/// The image's digest reference, as kubelet reports it: a simulated cluster pulls nothing, so the
/// digest is made up from the name (the same image, the same digest).
fn image_id(image: &str) -> String {
    let full = qualified_repository(image);
    if full.contains('@') {
        return full;
    }
    let untagged = match image_tag(&full) {
        Some(tag) => &full[..full.len() - tag.len() - 1],
        None => full.as_str(),
    };
    format!("{untagged}@sha256:{}", made_up_digest(image))
}

/// The tag of an image reference, if it names one (`web:1.2` → `1.2`; a registry's port is not a tag).
pub fn image_tag(image: &str) -> Option<&str> {
    let last = image.rsplit('/').next().unwrap_or_default();
    last.split('@')
        .next()
        .unwrap_or_default()
        .split_once(':')
        .map(|(_, tag)| tag)
}

/// `nginx` is `docker.io/library/nginx`; `ghcr.io/org/app:1` stays as it is.
fn qualified_repository(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let has_registry = image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    match (has_registry, image.contains('/')) {
        (true, _) => image.to_string(),
        (false, true) => format!("docker.io/{image}"),
        (false, false) => format!("docker.io/library/{image}"),
    }
}

/// 64 hex digits that depend only on `seed`.
fn made_up_digest(seed: &str) -> String {
    use std::hash::{Hash, Hasher};
    (0..4u8)
        .map(|round| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (round, seed).hash(&mut h);
            format!("{:016x}", h.finish())
        })
        .collect()
}

/// What kubelet reports of a Pod besides its conditions and containers: the node's address and
/// the Pod's, its start and its QoS class.
pub fn pod_status_base(pod: &Value, phase: &str, pod_ip: &str) -> Value {
    let host_ip = super::nodes::address_of(pod["spec"]["nodeName"].as_str().unwrap_or_default());
    let mut status = json!({
        "phase": phase,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": pod["metadata"]["creationTimestamp"],
        "qosClass": qos_class(&pod["spec"]),
    });
    if !pod_ip.is_empty() {
        status["podIP"] = json!(pod_ip);
        status["podIPs"] = json!([{"ip": pod_ip}]);
    }
    status
}

/// Guaranteed when every container's requests equal its limits for CPU and memory, BestEffort when
/// none asks for any, Burstable otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = spec["containers"].as_array().into_iter().flatten().collect();
    let asks = |c: &Value, what: &str| !c["resources"][what].as_object().is_none_or(|m| m.is_empty());
    if containers.iter().all(|c| !asks(c, "requests") && !asks(c, "limits")) {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = &c["resources"]["limits"][r];
            let request = &c["resources"]["requests"][r];
            !limit.is_null() && (request.is_null() || request == limit)
        })
    });
    if guaranteed { "Guaranteed" } else { "Burstable" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_named_as_the_container_runtime_names_them() {
        assert_eq!(image_name("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(image_name("example/web:2"), "docker.io/example/web:2");
        assert_eq!(image_name("localhost:5000/web"), "localhost:5000/web:latest");
        assert_eq!(image_tag("localhost:5000/web"), None, "a port is not a tag");
        let id = image_id("ghcr.io/org/app:1.2");
        assert!(
            id.starts_with("ghcr.io/org/app@sha256:") && id.len() == "ghcr.io/org/app@sha256:".len() + 64,
            "{id}"
        );
        assert_eq!(id, image_id("ghcr.io/org/app:1.2"), "the same image, the same digest");
        assert_eq!(image_id("web@sha256:abc"), "docker.io/library/web@sha256:abc");
    }
}
