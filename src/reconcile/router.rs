//! The router a Rollout names, told what to say: each router is a module of `traffic` behind the
//! `TrafficRouter` trait.

use crate::crd::rollout::{ManagedRoute, Rollout};
use crate::traffic::{Desired, RouterError, TrafficRouter};
use kube::{Client, Resource, ResourceExt};

/// Puts `weight` percent of traffic on the canary, with the header and mirror routes of the steps
/// so far. `canary_running` is false once there is no canary left to route to.
pub async fn set_weight(
    client: &Client,
    rollout: &Rollout,
    weight: i32,
    canary_running: bool,
    headers: &[ManagedRoute],
    mirrors: &[ManagedRoute],
    hashes: (&str, &str),
) -> Result<(), RouterError> {
    let Some(routing) = rollout.spec.strategy.traffic_routing() else {
        return Ok(());
    };
    // A canary's stable and canary Services; blue-green's active and preview ones.
    let (Some(stable_service), Some(canary_service)) = super::apply::service_names(rollout) else {
        return Err(RouterError::Invalid(
            "a traffic router needs two Services: stableService and canaryService, or activeService and previewService"
                .into(),
        ));
    };
    let namespace = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    let d = Desired {
        namespace: &namespace,
        rollout: &name,
        stable_service,
        canary_service,
        weight,
        canary_running,
        headers,
        mirrors,
        stable_hash: hashes.0,
        canary_hash: hashes.1,
        owner: rollout.controller_owner_ref(&()),
    };
    if let Some(r) = routing.gateway_api() {
        r.apply(client, &d).await
    } else if let Some(r) = &routing.nginx {
        r.apply(client, &d).await
    } else if let Some(r) = &routing.istio {
        r.apply(client, &d).await
    } else if let Some(r) = &routing.smi {
        r.apply(client, &d).await
    } else {
        Ok(())
    }
}
