//! `kubectl serin …`: look at a Rollout and steer it. Requests go to the status subresource, so
//! no field a GitOps tool owns in `spec` is touched (except `set image`, which is a spec change).

use super::kube_args::{ConnectError, KubeArgs};
use crate::crd::rollout::{ControlRequests, Rollout};
use crate::plan::{HASH_LABEL, steps};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::fmt::Write;

#[derive(Debug, thiserror::Error)]
pub enum RolloutCmdError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("rollout {name:?} not found in namespace {namespace:?}")]
    NotFound { name: String, namespace: String },
    #[error("{0}")]
    Refused(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

const CLI_MANAGER: &str = "kubectl-serin";

/// A request to the controller, for one Rollout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Promote { full: bool },
    Abort,
    Retry,
    Pause,
    Resume,
}

async fn get(api: &Api<Rollout>, name: &str, ns: &str) -> Result<Rollout, RolloutCmdError> {
    api.get_opt(name).await?.ok_or_else(|| RolloutCmdError::NotFound {
        name: name.into(),
        namespace: ns.into(),
    })
}

/// Writes a request into `status.control`, guarded by the resourceVersion it was based on.
pub async fn request(args: &KubeArgs, name: &str, action: Action) -> Result<String, RolloutCmdError> {
    let (client, ns) = args.connect().await?;
    let api: Api<Rollout> = Api::namespaced(client, &ns);
    request_on(&api, &ns, name, action, CLI_MANAGER).await
}

/// The request written through `api` (the CLI's and the dashboard's), as `manager`.
pub async fn request_on(
    api: &Api<Rollout>,
    ns: &str,
    name: &str,
    action: Action,
    manager: &str,
) -> Result<String, RolloutCmdError> {
    for _ in 0..5 {
        let r = get(api, name, ns).await?;
        let status = r.status.clone().unwrap_or_default();
        let rolling = status.current_pod_hash.is_some() && status.current_pod_hash != status.stable_pod_hash;
        let aborted = status.abort == Some(true);
        let idx = status.current_step_index.unwrap_or(0);
        let (control, said) = match action {
            Action::Promote { full } => {
                if !rolling {
                    return Err(RolloutCmdError::Refused(format!(
                        "nothing to promote: {name} runs one version ({})",
                        status.phase.map(|p| p.as_str()).unwrap_or("unknown")
                    )));
                }
                if aborted && !full {
                    return Err(RolloutCmdError::Refused(format!(
                        "{name} is aborted: `kubectl serin retry {name}` runs its steps again, `kubectl serin promote --full {name}` promotes it anyway"
                    )));
                }
                if full {
                    let said = if aborted {
                        format!("rollout {name}: aborted, now promoted to the end all the same, skipping every step")
                    } else {
                        format!("rollout {name}: promoting to the end, skipping the remaining steps")
                    };
                    (
                        ControlRequests {
                            promote_full: Some(true),
                            ..Default::default()
                        },
                        said,
                    )
                } else {
                    (
                        ControlRequests {
                            promote_step: Some(idx),
                            ..Default::default()
                        },
                        format!(
                            "rollout {name}: moving past step {}",
                            status.step.clone().unwrap_or_default()
                        ),
                    )
                }
            }
            Action::Abort
                if !rolling && crate::plan::bluegreen::can_switch_back(&r.spec, &status, jiff::Timestamp::now()) =>
            {
                (
                    ControlRequests {
                        abort: Some(true),
                        ..Default::default()
                    },
                    format!(
                        "rollout {name}: aborting, the active Service switches back to version {}",
                        status.previous_stable_hash.clone().unwrap_or_default()
                    ),
                )
            }
            Action::Abort => {
                if !rolling || aborted {
                    return Err(RolloutCmdError::Refused(format!(
                        "nothing to abort: {name} is not rolling out a new version"
                    )));
                }
                (
                    ControlRequests {
                        abort: Some(true),
                        ..Default::default()
                    },
                    format!("rollout {name}: aborting, traffic goes back to stable"),
                )
            }
            Action::Retry => {
                if !aborted {
                    return Err(RolloutCmdError::Refused(format!(
                        "nothing to retry: {name} is not aborted"
                    )));
                }
                (
                    ControlRequests {
                        retry: Some(true),
                        ..Default::default()
                    },
                    format!("rollout {name}: retrying from the first step"),
                )
            }
            Action::Pause => (
                ControlRequests {
                    pause: Some(true),
                    ..Default::default()
                },
                format!("rollout {name}: pausing"),
            ),
            Action::Resume => (
                ControlRequests {
                    pause: Some(false),
                    ..Default::default()
                },
                format!("rollout {name}: resuming"),
            ),
        };
        let patch = json!({"metadata": {"resourceVersion": r.resource_version()}, "status": {"control": control}});
        match api
            .patch_status(
                name,
                &PatchParams {
                    field_manager: Some(manager.into()),
                    ..Default::default()
                },
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => return Ok(said),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RolloutCmdError::Refused(format!(
        "rollout {name} kept changing; try again"
    )))
}

/// `set image NAME CONTAINER=IMAGE`: a spec change, as `kubectl set image` makes on a Deployment.
pub async fn set_image(args: &KubeArgs, name: &str, assignment: &str) -> Result<String, RolloutCmdError> {
    let (container, image) = assignment
        .split_once('=')
        .filter(|(c, i)| !c.is_empty() && !i.is_empty())
        .ok_or_else(|| RolloutCmdError::Refused(format!("expected CONTAINER=IMAGE, got {assignment:?}")))?;
    let (client, ns) = args.connect().await?;
    let api: Api<Rollout> = Api::namespaced(client, &ns);
    let r = get(&api, name, &ns).await?;
    let Some(template) = &r.spec.template else {
        return Err(RolloutCmdError::Refused(format!(
            "{name} takes its template from spec.workloadRef: set the image there"
        )));
    };
    let containers = template.typed().spec.map(|s| s.containers).unwrap_or_default();
    let Some(i) = containers.iter().position(|c| c.name == container) else {
        let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
        return Err(RolloutCmdError::Refused(format!(
            "{name} has no container {container:?} (it has {})",
            names.join(", ")
        )));
    };
    let path = format!("/spec/template/spec/containers/{i}");
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": format!("{path}/name"), "value": container},
        {"op": "add", "path": format!("{path}/image"), "value": image},
    ]))
    .map_err(|e| RolloutCmdError::Refused(e.to_string()))?;
    api.patch(
        name,
        &PatchParams {
            field_manager: Some(CLI_MANAGER.into()),
            ..Default::default()
        },
        &Patch::<()>::Json(patch),
    )
    .await?;
    Ok(format!("rollout {name}: container {container} image set to {image}"))
}

/// `restart NAME`: `spec.restartAt` set to now, so every Pod created before it is replaced, no
/// more unavailable at once than `maxUnavailable` allows (as `kubectl rollout restart` does for a
/// Deployment).
pub async fn restart(args: &KubeArgs, name: &str) -> Result<String, RolloutCmdError> {
    let (client, ns) = args.connect().await?;
    let api: Api<Rollout> = Api::namespaced(client, &ns);
    get(&api, name, &ns).await?;
    // Whole seconds: the API server keeps a Time to the second, and a later `now` in the same
    // second must not look like the past.
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .map_err(|e| RolloutCmdError::Refused(e.to_string()))?;
    let patch = json!({"spec": {"restartAt": now.to_string()}});
    api.patch(
        name,
        &PatchParams {
            field_manager: Some(CLI_MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(format!(
        "rollout {name}: restarting the Pods created before {now}, within maxUnavailable"
    ))
}

/// The view of `get rollout NAME`.
pub async fn describe(args: &KubeArgs, name: &str) -> Result<String, RolloutCmdError> {
    let (client, ns) = args.connect().await?;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns);
    let r = get(&api, name, &ns).await?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let rss = rs_api
        .list(&ListParams::default().labels(&format!("{}={name}", crate::reconcile::ROLLOUT_LABEL)))
        .await?
        .items;
    let events: Api<CoreEvent> = Api::namespaced(client, &ns);
    let last = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("Rollout"))
        .max_by_key(|e| {
            e.event_time
                .as_ref()
                .map(|t| t.0)
                .or(e.last_timestamp.as_ref().map(|t| t.0))
        });
    Ok(render(&r, &rss, last.as_ref()))
}

/// What a version is to its Rollout: `stable`, `canary`, `active`, `preview` or `old`.
pub fn role_of(r: &Rollout, hash: &str) -> &'static str {
    let st = r.status.clone().unwrap_or_default();
    let hash = Some(hash.to_string());
    let blue_green = r.spec.strategy.blue_green.is_some();
    let active = st.blue_green.as_ref().and_then(|b| b.active_selector.clone());
    match blue_green {
        true if hash == active => "active",
        true if hash == st.current_pod_hash => "preview",
        _ if hash == st.stable_pod_hash => "stable",
        false if hash == st.current_pod_hash => "canary",
        _ => "old",
    }
}

pub fn render(r: &Rollout, rss: &[ReplicaSet], last: Option<&CoreEvent>) -> String {
    let st = r.status.clone().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "Name:        {}", r.name_any());
    let _ = writeln!(out, "Namespace:   {}", r.namespace().unwrap_or_default());
    let _ = writeln!(
        out,
        "Phase:       {}",
        st.phase.map(|p| p.as_str()).unwrap_or("Unknown")
    );
    let _ = writeln!(out, "Message:     {}", st.message.clone().unwrap_or_default());
    let canary = r.spec.strategy.canary.clone().unwrap_or_default();
    let blue_green = r.spec.strategy.blue_green.as_ref();
    let strategy = match blue_green {
        Some(bg) => format!(
            "blue-green, active Service {}, preview Service {}",
            bg.active_service,
            bg.preview_service.as_deref().unwrap_or("(none)")
        ),
        None if canary.steps.as_ref().is_some_and(|s| s.is_empty()) => "rolling update (no steps)".into(),
        None if canary.traffic_routing.is_some() => "canary, traffic by traffic router".into(),
        None => "canary, traffic by Pod ratio".into(),
    };
    let _ = writeln!(out, "Strategy:    {strategy}");
    let _ = writeln!(
        out,
        "Step:        {}   Weight: {}%",
        st.step.clone().unwrap_or_default(),
        st.canary_weight.unwrap_or(0)
    );
    let _ = writeln!(out, "Stable:      {}", st.stable_pod_hash.clone().unwrap_or_default());
    let _ = writeln!(out, "Current:     {}", st.current_pod_hash.clone().unwrap_or_default());
    if blue_green.is_some() {
        let bg = st.blue_green.clone().unwrap_or_default();
        let _ = writeln!(out, "Active:      {}", bg.active_selector.unwrap_or_default());
        let _ = writeln!(out, "Preview:     {}", bg.preview_selector.unwrap_or_default());
    }
    let all_steps = steps::names(&r.spec.strategy);
    let idx = st.current_step_index.unwrap_or(0).max(0) as usize;
    let rolling = st.current_pod_hash != st.stable_pod_hash;
    let _ = writeln!(out, "Steps:");
    for (i, s) in all_steps.iter().enumerate() {
        let mark = if !rolling || i < idx {
            "✓"
        } else if i == idx {
            "▶"
        } else {
            "·"
        };
        let _ = writeln!(out, "  {mark} {:>2}  {s}", i + 1);
    }
    let _ = writeln!(out, "ReplicaSets:");
    let _ = writeln!(
        out,
        "  {:<34} {:<8} {:>7} {:>6} {:>9}  IMAGES",
        "NAME", "ROLE", "DESIRED", "READY", "AVAILABLE"
    );
    let mut rss: Vec<&ReplicaSet> = rss.iter().collect();
    rss.sort_by_key(|rs| std::cmp::Reverse(rs.creation_timestamp().map(|t| t.0)));
    for rs in rss {
        let hash = rs.labels().get(HASH_LABEL).cloned().unwrap_or_default();
        let role = role_of(r, &hash);
        let status = rs.status.clone().unwrap_or_default();
        let images: Vec<String> = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref())
            .map(|s| s.containers.iter().filter_map(|c| c.image.clone()).collect())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<34} {:<8} {:>7} {:>6} {:>9}  {}",
            rs.name_any(),
            role,
            rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            status.ready_replicas.unwrap_or(0),
            status.available_replicas.unwrap_or(0),
            images.join(",")
        );
    }
    if !st.analysis.is_empty() {
        let _ = writeln!(out, "Analysis:");
        for a in &st.analysis {
            let at = if a.step == "background" || a.step.ends_with("-promotion") {
                a.step.clone()
            } else {
                format!("step {}", a.step)
            };
            let _ = writeln!(out, "  {:<15} {:<13} {}", at, a.phase, a.run);
            for m in &a.metrics {
                // A metric that has found no data yet is waiting, not judged.
                let value = if m.phase == "Running" && m.value.as_deref() == Some("no data") {
                    format!("waiting for data from {}", m.name)
                } else {
                    m.value.clone().unwrap_or_default()
                };
                let _ = writeln!(out, "    {:<22} {:<13} {value}", m.name, m.phase);
            }
        }
    }
    let conds: Vec<String> = st
        .conditions
        .unwrap_or_default()
        .iter()
        .map(|c| format!("{}={} ({})", c.type_, c.status, c.reason))
        .collect();
    let _ = writeln!(out, "Conditions:  {}", conds.join(", "));
    if let Some(e) = last {
        let _ = writeln!(
            out,
            "Last event:  {} {}: {}",
            e.type_.clone().unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            e.message.clone().unwrap_or_default()
        );
    }
    out
}
