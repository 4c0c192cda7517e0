//! Carrying out a plan: ReplicaSets and Service selectors by server-side apply, only where they
//! differ from what is observed, then one status write.

use super::cached::{CachedReplicaSet, CachedService};
use super::{Context, Error, MANAGER, ROLLOUT_LABEL};
use crate::crd::rollout::{Rollout, RolloutStatus};
use crate::plan::{HASH_LABEL, Observed, Plan};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

/// ReplicaSets, Services and the workload: everything but the Rollout's own status.
/// Whether a PodDisruptionBudget refused an eviction (the restart waits and tries again).
pub async fn apply_objects(ctx: &Context, rollout: &Rollout, observed: &Observed, plan: &Plan) -> Result<bool, Error> {
    let ns = rollout.namespace().ok_or(Error::MissingField(".metadata.namespace"))?;
    let name = rollout.name_any();
    let owner = rollout
        .controller_owner_ref(&())
        .ok_or(Error::MissingField(".metadata.uid"))?;
    let rs_api: Api<CachedReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PatchParams::apply(MANAGER).force();

    // Shrink before growing: the plan only takes Pods that are unavailable or beyond the
    // availability floor, so shrinking first never costs capacity, and growing second keeps the
    // total within maxSurge at every moment (grown first, both sizes would stand at once).
    let mut changes: Vec<_> = plan
        .replica_sets
        .iter()
        .filter(|d| {
            observed
                .replica_sets
                .iter()
                .find(|o| o.hash == d.hash)
                .is_none_or(|o| o.spec_replicas != d.replicas)
        })
        .collect();
    changes.sort_by_key(|d| {
        let now = observed
            .replica_sets
            .iter()
            .find(|o| o.hash == d.hash)
            .map_or(0, |o| o.spec_replicas);
        d.replicas > now
    });
    for d in changes {
        let rs_name = format!("{name}-{}", d.hash);
        // An existing ReplicaSet only changes size: the cache keeps no Pod templates.
        if observed.replica_sets.iter().any(|o| o.hash == d.hash) {
            let size = json!({"spec": {"replicas": d.replicas}});
            let seen = ctx
                .replica_sets
                .get(&ns, &rs_name)
                .map(|rs| ctx.written.replica_sets.freshest(rs))
                .and_then(|rs| rs.metadata.resource_version.clone());
            let mut resized = rs_api
                .patch(
                    &rs_name,
                    &PatchParams {
                        field_manager: Some(MANAGER.into()),
                        ..Default::default()
                    },
                    &Patch::Merge(&size),
                )
                .await?;
            super::lean(&mut resized);
            ctx.written.replica_sets.remember(seen, resized);
            continue;
        }
        let Some(template) = &d.template else {
            continue;
        };
        let mut template = template.clone();
        let mut annotations = std::collections::BTreeMap::new();
        if let Some(m) = &d.pod_metadata {
            let meta = template.metadata.get_or_insert_default();
            meta.labels.get_or_insert_default().extend(m.labels.clone());
            meta.annotations.get_or_insert_default().extend(m.annotations.clone());
            annotations.insert(APPLIED.to_string(), serde_json::to_string(m).unwrap_or_default());
        }
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(HASH_LABEL.into(), d.hash.clone());
        labels.insert(ROLLOUT_LABEL.into(), name.clone());
        let mut selector = plan.selector.clone();
        selector
            .match_labels
            .get_or_insert_default()
            .insert(HASH_LABEL.into(), d.hash.clone());
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": ns, "labels": labels, "annotations": annotations, "ownerReferences": [owner]},
            "spec": {"replicas": d.replicas, "selector": selector, "template": template,
                     "minReadySeconds": rollout.spec.min_ready_seconds.unwrap_or(0).max(0)},
        });
        let mut created = rs_api.patch(&rs_name, &pp, &Patch::Apply(&rs)).await?;
        super::lean(&mut created);
        ctx.written.replica_sets.remember(None, created);
    }
    relabel(ctx, &ns, observed, plan).await?;
    let refused = evict(ctx, rollout, &ns, &plan.restart_pods).await?;
    for rs_name in &plan.delete {
        ctx.written
            .replica_sets
            .forget(&kube::runtime::reflector::ObjectRef::new(rs_name).within(&ns));
        match rs_api.delete(rs_name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }

    let svc_api: Api<CachedService> = Api::namespaced(ctx.client.clone(), &ns);
    let (stable_svc, canary_svc) = service_names(rollout, Some(&plan.status));
    // The stable (active) Service first: a switch back is one write, and it comes first.
    for (svc, hash) in [
        (stable_svc, &plan.stable_service_hash),
        (canary_svc, &plan.canary_service_hash),
    ] {
        if let (Some(svc), Some(hash)) = (svc, hash) {
            point_service(ctx, &svc_api, &ns, svc, &name, hash).await?;
        }
    }
    for svc in &plan.release_services {
        release_service(ctx, &svc_api, &ns, svc).await?;
    }

    apply_runs(ctx, rollout, plan, &ns, &owner).await?;

    if let (Some(size), Some(w)) = (plan.workload_replicas, &rollout.spec.workload_ref)
        && observed.workload_replicas != Some(size)
    {
        let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
        deploys
            .patch_scale(
                &w.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": size}})),
            )
            .await?;
    }

    Ok(refused)
}

/// A restart's Pods go through the Eviction API, so the application's PodDisruptionBudgets hold
/// (as `kubectl drain` and Argo Rollouts do). A refused eviction is retried on a later look; an
/// Event names the budget. Whether any was refused.
async fn evict(ctx: &Context, rollout: &Rollout, ns: &str, names: &[String]) -> Result<bool, Error> {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.evictions.clone(), ns);
    let mut refused = None;
    for pod in names {
        match pods.evict(pod, &kube::api::EvictParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(kube::Error::Api(s)) if s.code == 429 => {
                // The budget's own words ("The disruption budget web needs 4 healthy pods...").
                let why = s
                    .details
                    .as_ref()
                    .and_then(|d| {
                        d.causes
                            .iter()
                            .find_map(|c| (!c.message.is_empty()).then(|| c.message.clone()))
                    })
                    .unwrap_or_else(|| s.message.clone());
                refused = Some(format!(
                    "restart: evicting Pod {pod} is refused by a PodDisruptionBudget ({why}); tried again in {}s",
                    EVICTION_RETRY.as_secs()
                ));
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some(message) = refused else {
        return Ok(false);
    };
    warn(ctx, rollout, "EvictionRefused", "Evict", message).await;
    Ok(true)
}

/// How soon a refused eviction is tried again.
pub const EVICTION_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

const APPLIED: &str = crate::plan::pod_metadata::APPLIED_ANNOTATION;

/// Versions whose role changed get their role's labels and annotations: on the ReplicaSet's
/// template (for Pods to come) and on the Pods it has, in place.
async fn relabel(ctx: &Context, ns: &str, observed: &Observed, plan: &Plan) -> Result<(), Error> {
    use k8s_openapi::api::core::v1::Pod;
    let rs_api: Api<CachedReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    for d in &plan.replica_sets {
        let Some(now) = &d.pod_metadata else { continue };
        let Some(seen) = observed.replica_sets.iter().find(|o| o.hash == d.hash) else {
            continue;
        };
        if seen.pod_metadata.as_ref() == Some(now) {
            continue;
        }
        let change = crate::plan::pod_metadata::patch(seen.pod_metadata.as_ref(), now);
        let record = serde_json::to_string(now).unwrap_or_default();
        let rs_patch = json!({
            "metadata": {"annotations": {APPLIED: record}},
            "spec": {"template": {"metadata": change}},
        });
        let replaced = ctx
            .replica_sets
            .get(ns, &seen.name)
            .map(|rs| ctx.written.replica_sets.freshest(rs))
            .and_then(|rs| rs.metadata.resource_version.clone());
        let mut written = rs_api
            .patch(&seen.name, &PatchParams::default(), &Patch::Merge(&rs_patch))
            .await?;
        super::lean(&mut written);
        ctx.written.replica_sets.remember(replaced, written);
        // The version's Pods: its hash within the Rollout's selector.
        let mut selector = vec![format!("{HASH_LABEL}={}", d.hash)];
        selector.extend(
            plan.selector
                .match_labels
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}")),
        );
        let selector = selector.join(",");
        for pod in pods
            .list(&kube::api::ListParams::default().labels(&selector))
            .await?
            .items
        {
            let name = pod.name_any();
            match pods
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": change})),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The Services Serin points at versions (see [`crate::crd::rollout::RolloutStrategy::service_names`]).
pub fn service_names<'a>(
    rollout: &'a Rollout,
    status: Option<&RolloutStatus>,
) -> (Option<&'a String>, Option<&'a String>) {
    rollout
        .spec
        .strategy
        .service_names(status.and_then(|s| s.stable_ping_pong))
}

/// The one status write of a reconcile, when anything changed.
/// Writes the status when it changed; whether it wrote.
pub async fn apply_status(ctx: &Context, rollout: &Rollout, status: &RolloutStatus) -> Result<bool, Error> {
    let ns = rollout.namespace().ok_or(Error::MissingField(".metadata.namespace"))?;
    let name = rollout.name_any();
    if rollout.status.as_ref() != Some(status) {
        let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), &ns);
        let mut next = rollout.clone();
        next.status = Some(status.clone());
        next.metadata.managed_fields = None;
        // resourceVersion stays: a request written since we read makes this a 409, and we look again.
        let mut written = api.replace_status(&name, &PostParams::default(), &next).await?;
        super::lean(&mut written);
        ctx.written
            .rollouts
            .remember(rollout.metadata.resource_version.clone(), written);
        return Ok(true);
    }
    Ok(false)
}

/// Points a Service of the user's at one version by adding the hash to its selector.
async fn point_service(
    ctx: &Context,
    api: &Api<CachedService>,
    ns: &str,
    svc: &str,
    rollout: &str,
    hash: &str,
) -> Result<(), Error> {
    let cached = ctx.services.get(ns, svc).map(|s| ctx.written.services.freshest(s));
    let current = match cached {
        Some(s) => (*s).clone(),
        None => match api.get_opt(svc).await? {
            Some(s) => s,
            // A missing Service is the user's to create; the plan goes on without it.
            None => return Ok(()),
        },
    };
    let mut selector = current
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let labelled = current.labels().get(ROLLOUT_LABEL).map(String::as_str) == Some(rollout);
    if selector.get(HASH_LABEL).map(String::as_str) == Some(hash) && labelled {
        return Ok(());
    }
    selector.insert(HASH_LABEL.into(), hash.into());
    let metadata = json!({"name": svc, "namespace": ns, "labels": {ROLLOUT_LABEL: rollout}});
    apply_selector(ctx, api, &current, metadata, selector).await
}

/// Applies a Service's selector (and the metadata Serin owns on it) as Serin's field manager,
/// and remembers the write until the cache shows it.
async fn apply_selector(
    ctx: &Context,
    api: &Api<CachedService>,
    current: &CachedService,
    metadata: serde_json::Value,
    selector: std::collections::BTreeMap<String, String>,
) -> Result<(), Error> {
    let name = current.name_any();
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"selector": selector},
    });
    let mut written = api
        .patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    super::lean(&mut written);
    ctx.written
        .services
        .remember(current.metadata.resource_version.clone(), written);
    Ok(())
}

/// Gives back a Service the Rollout no longer names (its strategy changed): the version hash
/// leaves its selector and Serin's label goes, so it selects all the app's Pods again.
async fn release_service(ctx: &Context, api: &Api<CachedService>, ns: &str, svc: &str) -> Result<(), Error> {
    let Some(current) = api.get_opt(svc).await? else {
        return Ok(());
    };
    let mut selector = current
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    selector.remove(HASH_LABEL);
    // Applied without Serin's label, which it owns and so removes; the selector, atomic and
    // owned by Serin since it pointed it, keeps the user's own keys.
    apply_selector(ctx, api, &current, json!({"name": svc, "namespace": ns}), selector).await
}

/// AnalysisRuns: create the ones the plan asks for (resolving their templates), stop the ones it
/// is done with, delete the old ones beyond the history.
async fn apply_runs(
    ctx: &Context,
    rollout: &Rollout,
    plan: &Plan,
    ns: &str,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<(), Error> {
    use super::analysis_templates::resolve;
    use super::observe::{ATTEMPT_LABEL, REVISION_LABEL, STEP_LABEL};
    use crate::crd::analysis::{AnalysisPhase, AnalysisRun, AnalysisRunSpec, AnalysisRunStatus};
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), ns);
    let current = plan.status.current_pod_hash.clone().unwrap_or_default();
    let stable = plan.status.stable_pod_hash.clone().unwrap_or_default();
    for req in &plan.create_runs {
        let resolved = resolve(
            &ctx.client,
            ns,
            rollout,
            &req.analysis,
            &current,
            &stable,
            req.step.is_none(),
        )
        .await;
        let (spec, problem) = match resolved {
            Ok(spec) => (spec, None),
            Err(e) => (AnalysisRunSpec::default(), Some(e)),
        };
        let labels: std::collections::BTreeMap<String, String> = [
            (ROLLOUT_LABEL.to_string(), rollout.name_any()),
            (REVISION_LABEL.to_string(), current.clone()),
            (
                STEP_LABEL.to_string(),
                req.step.map_or("bg".to_string(), |s| s.to_string()),
            ),
            (ATTEMPT_LABEL.to_string(), req.attempt.to_string()),
        ]
        .into();
        // The user's labels and annotations go on too; Serin's own labels win.
        let extra = req.analysis.analysis_run_metadata.clone().unwrap_or_default();
        let mut all_labels = extra.labels;
        all_labels.extend(labels);
        let run = AnalysisRun {
            metadata: kube::api::ObjectMeta {
                name: Some(req.name.clone()),
                namespace: Some(ns.to_string()),
                labels: Some(all_labels),
                annotations: (!extra.annotations.is_empty()).then_some(extra.annotations),
                owner_references: Some(vec![owner.clone()]),
                ..Default::default()
            },
            spec,
            status: None,
        };
        let created = match api.create(&PostParams::default(), &run).await {
            Ok(created) => created,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        };
        ctx.written.runs.remember(None, (&created).into());
        if let Some(problem) = problem {
            let mut failed = created;
            let replaced = failed.metadata.resource_version.clone();
            // A template not there (yet) waits for a person; one that is wrong fails the run.
            failed.status = Some(AnalysisRunStatus {
                phase: Some(if problem.may_pass() {
                    AnalysisPhase::Error
                } else {
                    AnalysisPhase::Failed
                }),
                message: Some(problem.to_string()),
                ..Default::default()
            });
            let written = api.replace_status(&req.name, &PostParams::default(), &failed).await?;
            ctx.written.runs.remember(replaced, (&written).into());
        }
    }
    for name in &plan.terminate_runs {
        let patch = json!({"spec": {"terminate": true}});
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for name in &plan.delete_runs {
        ctx.written
            .runs
            .forget(&kube::runtime::reflector::ObjectRef::new(name).within(ns));
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether the API server refused an object for what it says (invalid, or a server-side apply
/// that cannot be made into the kind: a 500 that names the object), not for a passing reason.
pub fn refused_as_invalid(s: &kube::core::Status) -> bool {
    match s.code {
        400 | 422 => true,
        500 => [
            "failed to convert new object",
            "failed to create typed",
            "field not declared in schema",
        ]
        .iter()
        .any(|m| s.message.contains(m)),
        _ => false,
    }
}

/// A Warning Event about what the cluster refused, named by its message so that a repeat of the
/// same refusal is not recorded twice.
async fn warn(ctx: &Context, rollout: &Rollout, reason: &'static str, action: &str, message: String) {
    let d = crate::plan::Decision {
        severity: crate::plan::Severity::Warning,
        reason,
        action: format!("{action}-{}", crate::hash::hash_text(&message)),
        message,
    };
    if let Err(e) = super::events::record(&ctx.client, rollout, &ctx.instance, &d).await {
        tracing::warn!(error = %e, "could not record an Event");
    }
}

/// An object made from the spec that the API server refused (an invalid Pod template): the
/// Rollout is Degraded with the server's words, and an Event says so once.
pub async fn report_refused(ctx: &Context, rollout: &Rollout, refusal: &str) -> Result<(), Error> {
    use crate::plan::conditions;
    let message = format!("Kubernetes refused an object made from the spec: {refusal}; fix the spec");
    let mut status = rollout.status.clone().unwrap_or_default();
    let mut conds = status.conditions.take().unwrap_or_default();
    let already = status.message.as_deref() == Some(message.as_str());
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    for type_ in [conditions::PROGRESSING, conditions::HEALTHY] {
        conditions::set(
            &mut conds,
            type_,
            false,
            "ObjectRefused",
            &message,
            rollout.metadata.generation,
            &now,
        );
    }
    status.conditions = Some(conds);
    status.phase = Some(crate::crd::rollout::Phase::Degraded);
    status.message = Some(message.clone());
    status.observed_generation = rollout.metadata.generation;
    if !already {
        warn(ctx, rollout, "ObjectRefused", "Refused", message).await;
    }
    apply_status(ctx, rollout, &status).await.map(|_| ())
}

/// A router that cannot be set stops the rollout where it is: a condition and an Event say why.
pub async fn report_router_error(
    ctx: &Context,
    rollout: &Rollout,
    error: &crate::traffic::RouterError,
) -> Result<(), Error> {
    use crate::plan::conditions;
    let message = error.to_string();
    let mut status = rollout.status.clone().unwrap_or_default();
    let mut conds = status.conditions.take().unwrap_or_default();
    let already = conds
        .iter()
        .any(|c| c.type_ == "TrafficRouting" && c.message == message);
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    conditions::set(
        &mut conds,
        "TrafficRouting",
        false,
        "RouterError",
        &message,
        rollout.metadata.generation,
        &now,
    );
    status.conditions = Some(conds);
    status.message = Some(format!("traffic router: {message}"));
    if !already {
        warn(ctx, rollout, "TrafficRoutingError", "Route", message.clone()).await;
    }
    apply_status(ctx, rollout, &status).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::refused_as_invalid;

    fn status(code: u16, message: &str) -> kube::core::Status {
        kube::core::Status::failure(message, "").with_code(code)
    }

    #[test]
    fn an_invalid_object_is_told_from_a_passing_failure() {
        assert!(refused_as_invalid(&status(422, "spec.template: Invalid value")));
        assert!(refused_as_invalid(&status(
            500,
            "failed to convert new object (ns/web-1; apps/v1, Kind=ReplicaSet) to smd typed: quantities must match"
        )));
        assert!(!refused_as_invalid(&status(500, "etcdserver: request timed out")));
        assert!(!refused_as_invalid(&status(409, "the object has been modified")));
        assert!(!refused_as_invalid(&status(429, "too many requests")));
    }
}
