//! The router a Rollout names, told what to say: each router is a module of `traffic` behind the
//! `TrafficRouter` trait.

use crate::crd::rollout::{Rollout, RolloutStatus};
use crate::traffic::{Desired, RouterError, TrafficRouter};
use kube::{Client, Resource, ResourceExt};

/// Puts `weight` percent of traffic on the canary, with the header and mirror routes of the steps
/// so far, as the planned `status` has them. `canary_running` is false once there is no canary
/// left to route to.
pub async fn set_weight(
    client: &Client,
    rollout: &Rollout,
    status: &RolloutStatus,
    weight: i32,
    canary_running: bool,
) -> Result<(), RouterError> {
    let Some(routing) = rollout.spec.strategy.traffic_routing() else {
        return Ok(());
    };
    // A canary's stable and canary Services; blue-green's active and preview ones.
    let (stable_service, canary_service) = match super::apply::service_names(rollout, Some(status)) {
        (Some(s), Some(c)) => (s.as_str(), c.as_str()),
        // DestinationRule subsets select the versions themselves.
        _ if routing.by_subsets_only() => ("", ""),
        _ => {
            return Err(RouterError::Invalid(
                "a traffic router needs two Services: stableService and canaryService, or activeService and previewService"
                    .into(),
            ));
        }
    };
    let managed: Vec<String> = routing.managed_routes.iter().map(|m| m.name.clone()).collect();
    let namespace = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    let d = Desired {
        namespace: &namespace,
        rollout: &name,
        stable_service,
        canary_service,
        weight,
        canary_running,
        headers: &status.header_routes,
        mirrors: &status.mirror_routes,
        managed: &managed,
        stable_hash: status.stable_pod_hash.as_deref().unwrap_or_default(),
        canary_hash: status.current_pod_hash.as_deref().unwrap_or_default(),
        owner: rollout.controller_owner_ref(&()),
    };
    // Several routers may be named (an ingress in front of a mesh): each is told the same.
    if let Some(r) = routing.gateway_api() {
        r.apply(client, &d).await?;
    }
    if let Some(r) = &routing.nginx {
        r.apply(client, &d).await?;
    }
    if let Some(r) = &routing.istio {
        r.apply(client, &d).await?;
    }
    if let Some(r) = &routing.smi {
        r.apply(client, &d).await?;
    }
    Ok(())
}

/// Gives back what the router set in objects the Rollout no longer routes through.
pub async fn release(client: &Client, namespace: &str, destination_rules: &[String]) -> Result<(), RouterError> {
    for dr in destination_rules {
        crate::traffic::istio::release_subsets(client, namespace, dr).await?;
    }
    Ok(())
}
