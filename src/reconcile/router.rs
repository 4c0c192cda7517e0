//! Setting the canary weight on the router a Rollout names, through the Kubernetes API.

use super::MANAGER;
use crate::crd::rollout::Rollout;
use crate::traffic::{RouterError, gateway_api};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// Routes of the Gateway API a Rollout names, as (kind, plural, name).
fn gateway_routes(rollout: &Rollout) -> Vec<(&'static str, &'static str, String)> {
    let Some(g) = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
        .and_then(|t| t.gateway_api.as_ref())
    else {
        return Vec::new();
    };
    let mut out: Vec<(&'static str, &'static str, String)> = Vec::new();
    for name in g.http_route.iter().chain(g.http_routes.iter().flatten()) {
        out.push(("HTTPRoute", "httproutes", name.clone()));
    }
    if let Some(name) = &g.grpc_route {
        out.push(("GRPCRoute", "grpcroutes", name.clone()));
    }
    out
}

/// Puts `weight` percent of traffic on the canary. Writes only what differs; `Ok` once the
/// router says so.
pub async fn set_weight(client: &Client, rollout: &Rollout, weight: i32) -> Result<(), RouterError> {
    let ns = rollout.namespace().unwrap_or_default();
    let Some(canary) = rollout.spec.strategy.canary.as_ref() else {
        return Ok(());
    };
    let (Some(stable_svc), Some(canary_svc)) = (&canary.stable_service, &canary.canary_service) else {
        return Err(RouterError::Invalid(
            "a traffic router needs stableService and canaryService".into(),
        ));
    };
    for (kind, plural, name) in gateway_routes(rollout) {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let route = api
            .get_opt(&name)
            .await
            .map_err(|e| RouterError::Api(e.to_string()))?
            .ok_or_else(|| RouterError::NotFound {
                kind: kind.into(),
                name: name.clone(),
                namespace: ns.clone(),
            })?;
        let value = serde_json::to_value(&route).map_err(|e| RouterError::Api(e.to_string()))?;
        if let Some(rules) = gateway_api::weighted_rules(&value, kind, stable_svc, canary_svc, weight)? {
            // Only the rules: the user's other fields stay theirs.
            let patch = json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": name, "namespace": ns},
                "spec": {"rules": rules},
            });
            api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
                .await
                .map_err(|e| RouterError::Api(e.to_string()))?;
        }
    }
    Ok(())
}
