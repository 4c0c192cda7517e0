//! What the controller sees of a Rollout: its ReplicaSets (from the cache) and a workload template.

use super::{Context, Error, ROLLOUT_LABEL};
use crate::crd::rollout::Rollout;
use crate::plan::{HASH_LABEL, Observed, ObservedReplicaSet};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, ResourceExt};

/// Whether the Rollout is this object's controlling owner.
fn owned_by(rs: &k8s_openapi::api::apps::v1::ReplicaSet, rollout: &Rollout) -> bool {
    let uid = rollout.uid();
    rs.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

pub async fn observe(ctx: &Context, rollout: &Rollout, ns: &str) -> Result<Observed, Error> {
    let name = rollout.name_any();
    let replica_sets = ctx
        .replica_sets
        .state()
        .into_iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns) && rs.labels().get(ROLLOUT_LABEL) == Some(&name))
        .filter(|rs| owned_by(rs, rollout) && rs.metadata.deletion_timestamp.is_none())
        .filter_map(|rs| {
            let hash = rs.labels().get(HASH_LABEL)?.clone();
            let spec = rs.spec.clone()?;
            let status = rs.status.clone().unwrap_or_default();
            Some(ObservedReplicaSet {
                name: rs.name_any(),
                hash,
                template: spec.template.unwrap_or_default(),
                spec_replicas: spec.replicas.unwrap_or(1),
                replicas: status.replicas,
                ready: status.ready_replicas.unwrap_or(0),
                available: status.available_replicas.unwrap_or(0),
                created: rs.creation_timestamp().map(|t| t.0).unwrap_or_default(),
            })
        })
        .collect();
    let workload_template = match &rollout.spec.workload_ref {
        Some(w) if w.kind == "Deployment" => {
            let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
            deploys.get_opt(&w.name).await?.and_then(|d| d.spec).map(|s| s.template)
        }
        _ => None,
    };
    Ok(Observed {
        replica_sets,
        workload_template,
    })
}
