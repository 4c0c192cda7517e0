//! SMI: a TrafficSplit Serin creates and owns, splitting the root Service's traffic between the
//! stable and canary Services by weight.

use super::{Desired, RouterError, TrafficRouter, apply_json, dynamic_api};
use crate::crd::rollout::SmiRouting;
use serde_json::{Map, Value, json};

impl TrafficRouter for SmiRouting {
    async fn apply(&self, client: &kube::Client, d: &Desired<'_>) -> Result<(), RouterError> {
        let name = self
            .traffic_split
            .clone()
            .or(self.traffic_split_name.clone())
            .unwrap_or_else(|| d.rollout.to_string());
        let root = self
            .root_service
            .clone()
            .unwrap_or_else(|| d.stable_service.to_string());
        let api = dynamic_api(
            client,
            d.namespace,
            "split.smi-spec.io",
            "v1alpha2",
            "TrafficSplit",
            "trafficsplits",
        );
        let mut labels = Map::new();
        labels.insert(crate::reconcile::ROLLOUT_LABEL.into(), json!(d.rollout));
        let mut desired = traffic_split(
            &name,
            d.namespace,
            &root,
            d.stable_service,
            d.canary_service,
            d.weight,
            labels,
        );
        if let Some(owner) = &d.owner {
            desired["metadata"]["ownerReferences"] = json!([owner]);
        }
        let current = api.get_opt(&name).await.map_err(|e| RouterError::Api(e.to_string()))?;
        if current
            .and_then(|c| serde_json::to_value(c).ok())
            .is_some_and(|c| c["spec"] == desired["spec"])
        {
            return Ok(());
        }
        apply_json(&api, &name, &desired).await.map_err(|e| match e {
            RouterError::Api(m) if m.contains("404") || m.contains("not found") => RouterError::Invalid(
                "the TrafficSplit kind (split.smi-spec.io/v1alpha2) is not installed in the cluster".into(),
            ),
            other => other,
        })
    }
}

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
