//! What the controller sees of a Rollout: its ReplicaSets (from the cache) and a workload template.

use super::cached::CachedRun;
use super::{Context, Error};
use crate::crd::analysis::OnError;
use crate::crd::rollout::MetricSummary;
use crate::crd::rollout::Rollout;
use crate::plan::{HASH_LABEL, Observed, ObservedReplicaSet, ObservedRun};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, ResourceExt};

/// Whether the Rollout is this object's controlling owner.
fn owned_by(rs: &super::cached::CachedReplicaSet, rollout: &Rollout) -> bool {
    let uid = rollout.uid();
    rs.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

pub async fn observe(ctx: &Context, rollout: &Rollout, ns: &str) -> Result<Observed, Error> {
    let name = rollout.name_any();
    let belongs = |meta: &kube::api::ObjectMeta| {
        meta.namespace.as_deref() == Some(ns)
            && meta.labels.as_ref().and_then(|l| l.get(super::ROLLOUT_LABEL)) == Some(&name)
    };
    let replica_sets = ctx
        .written
        .replica_sets
        .merged(ctx.replica_sets.of(ns, &name), |rs| belongs(&rs.metadata))
        .into_iter()
        .filter(|rs| owned_by(rs, rollout) && rs.metadata.deletion_timestamp.is_none())
        .filter_map(|rs| {
            let hash = rs.labels().get(HASH_LABEL)?.clone();
            let spec = rs.spec.clone()?;
            let status = rs.status.clone().unwrap_or_default();
            Some(ObservedReplicaSet {
                name: rs.name_any(),
                hash,
                spec_replicas: spec.replicas.unwrap_or(1),
                replicas: status.replicas,
                ready: status.ready_replicas.unwrap_or(0),
                available: status.available_replicas.unwrap_or(0),
                created: rs.creation_timestamp().map(|t| t.0).unwrap_or_default(),
                pod_metadata: rs
                    .annotations()
                    .get(crate::plan::pod_metadata::APPLIED_ANNOTATION)
                    .and_then(|a| serde_json::from_str(a).ok()),
            })
        })
        .collect();
    let workload = match &rollout.spec.workload_ref {
        Some(w) if w.kind == "Deployment" => {
            let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
            deploys
                .get_opt(&w.name)
                .await?
                .and_then(|d| Some((d.metadata.generation, d.spec?)))
        }
        _ => None,
    };
    let analysis_runs = ctx
        .written
        .runs
        .merged(ctx.runs.of(ns, &name), |r| belongs(&r.metadata))
        .into_iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .map(|r| observe_run(&r))
        .collect();
    let (pods_to_restart, ready_pods) = if crate::plan::restart_pending(rollout) {
        let selector = crate::plan::selector_of(rollout, workload.as_ref().map(|(_, d)| &d.selector));
        let (old, ready) = pods_created_before(ctx, rollout, &selector, ns).await?;
        (old, Some(ready))
    } else {
        (Vec::new(), None)
    };
    let pointed_services = ctx
        .written
        .services
        .merged(ctx.services.of(ns, &name), |s| belongs(&s.metadata))
        .into_iter()
        .filter(|s| belongs(&s.metadata))
        .map(|s| s.name_any())
        .collect();
    Ok(Observed {
        missing_templates: ctx.templates.missing(ns, rollout),
        pointed_services,
        pods_to_restart,
        ready_pods,
        replica_sets,
        analysis_runs,
        workload_generation: workload.as_ref().and_then(|(g, _)| *g),
        workload_selector: workload.as_ref().map(|(_, d)| d.selector.clone()),
        workload_replicas: workload.as_ref().map(|(_, d)| d.replicas.unwrap_or(1)),
        workload_template: workload.map(|(_, d)| d.template),
    })
}

/// The Rollout's Pods created before `spec.restartAt`, unready first (they serve nothing), and
/// how many of its Pods are ready now (those being deleted are not).
async fn pods_created_before(
    ctx: &Context,
    rollout: &Rollout,
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    ns: &str,
) -> Result<(Vec<String>, i32), Error> {
    use k8s_openapi::api::core::v1::Pod;
    let Some(at) = rollout.spec.restart_at.as_ref() else {
        return Ok((Vec::new(), 0));
    };
    let selector: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .chain(std::iter::once(HASH_LABEL.to_string()))
        .collect();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods
        .list(&kube::api::ListParams::default().labels(&selector.join(",")))
        .await?;
    let live = list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none());
    let is_ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let ready = i32::try_from(live.clone().filter(|p| is_ready(p)).count()).unwrap_or(i32::MAX);
    let mut old: Vec<(bool, String)> = live
        .filter(|p| p.creation_timestamp().is_some_and(|t| t.0 < at.0))
        .map(|p| (is_ready(p), p.name_any()))
        .collect();
    old.sort();
    Ok((old.into_iter().map(|(_, name)| name).collect(), ready))
}

pub const REVISION_LABEL: &str = "serin.dev/revision";
pub const STEP_LABEL: &str = "serin.dev/step";
pub const ATTEMPT_LABEL: &str = "serin.dev/attempt";

fn observe_run(r: &CachedRun) -> ObservedRun {
    let label = |k: &str| r.labels().get(k).cloned().unwrap_or_default();
    let status = r.status.clone().unwrap_or_default();
    let metrics = status
        .metric_results
        .iter()
        .map(|m| MetricSummary {
            name: m.name.clone(),
            phase: m.phase.as_str().to_string(),
            // A comparison's value is its evidence line.
            value: m.latest.as_ref().and_then(|x| match x.compared {
                true => x.message.clone().or(x.value.clone()),
                false => x.value.clone().or(x.message.clone()),
            }),
        })
        .collect();
    ObservedRun {
        name: r.name_any(),
        hash: label(REVISION_LABEL),
        step: label(STEP_LABEL).parse().ok(),
        attempt: label(ATTEMPT_LABEL).parse().unwrap_or(0),
        phase: status.phase.unwrap_or_default(),
        abort_on_error: r.spec.metrics.iter().any(|m| m.on_error == Some(OnError::Abort)),
        terminating: r.spec.terminate == Some(true),
        message: status.message.unwrap_or_default(),
        metrics,
        created: r.creation_timestamp().map(|t| t.0).unwrap_or_default(),
    }
}
