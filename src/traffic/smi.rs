//! SMI: a TrafficSplit Serin creates and owns, splitting the root Service's traffic between the
//! stable and canary Services by weight.

use serde_json::{Map, Value, json};

pub const API_VERSION: &str = "split.smi-spec.io/v1alpha2";

/// The TrafficSplit for `weight` percent.
pub fn traffic_split(
    name: &str,
    namespace: &str,
    root: &str,
    stable: &str,
    canary: &str,
    weight: i32,
    labels: Map<String, Value>,
) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "service": root,
            "backends": [
                {"service": stable, "weight": 100 - weight},
                {"service": canary, "weight": weight},
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_root_service_by_weight() {
        let t = traffic_split("web", "shop", "web", "web-stable", "web-canary", 5, Map::new());
        assert_eq!(t["spec"]["service"], "web");
        assert_eq!(t["spec"]["backends"][0], json!({"service": "web-stable", "weight": 95}));
        assert_eq!(t["spec"]["backends"][1], json!({"service": "web-canary", "weight": 5}));
    }
}
