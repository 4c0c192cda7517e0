//! What the Job controller and the kubelet do for `batch/v1` Jobs: the API server's defaults and
//! checks, Pods made from the template up to `parallelism`, each running `SERIN_SIM_RUN_SECONDS`
//! (first container's env, default 1) and exiting with `SERIN_SIM_EXIT_CODE` (default 0); failed
//! Pods replaced after an exponential back-off until `backoffLimit`, `activeDeadlineSeconds`
//! honoured; the Job's counts and its `Complete` / `Failed` conditions follow, as in Kubernetes.

use super::kubelet::{ContainerState, container_status};
use super::meta;
use super::resources::ResourceType;
use super::selector::LabelSelector;
use super::store::{DeleteOpts, EventType, Store, Subresource, WriteOpts};
use super::workload::{container_env, controller_owner, owned_of, owner_ref, write_status};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

const JOB_MANAGER: &str = "job-controller";
const KUBELET: &str = "kubelet";
/// The Job controller's back-off after a failed Pod: 10s, doubled each time, at most 6 minutes.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

type Key = (String, String);

fn set_default(obj: &mut Value, path: &str, value: Value) {
    if meta::lookup(obj, path).is_none_or(Value::is_null) {
        meta::set_path(obj, path, value);
    }
}

/// The API server's defaults and checks for a Job; `old` is the stored Job on updates.
pub fn admit(obj: &mut Value, old: Option<&Value>, causes: &mut Vec<(String, String)>) {
    let name = meta::name(obj).to_string();
    let uid = meta::uid(obj).to_string();
    if obj["spec"]["parallelism"].is_null() && obj["spec"]["completions"].is_null() {
        meta::set_path(obj, "spec.completions", json!(1));
    }
    set_default(obj, "spec.parallelism", json!(1));
    set_default(obj, "spec.backoffLimit", json!(6));
    set_default(obj, "spec.completionMode", json!("NonIndexed"));
    set_default(obj, "spec.suspend", json!(false));
    set_default(obj, "spec.podReplacementPolicy", json!("TerminatingOrFailed"));
    let manual = obj["spec"]["manualSelector"] == true;
    match old {
        // The selector and the template are fixed at creation.
        Some(o) => {
            if obj["spec"]["selector"].is_null() {
                obj["spec"]["selector"] = o["spec"]["selector"].clone();
            }
            if !manual {
                let labels = o["spec"]["template"]["metadata"]["labels"].clone();
                if obj["spec"]["template"]["metadata"]["labels"].is_null() {
                    meta::set_path(obj, "spec.template.metadata.labels", labels);
                }
            }
            if obj["spec"]["selector"] != o["spec"]["selector"] {
                causes.push(("spec.selector".into(), "Invalid value: field is immutable".into()));
            }
            if obj["spec"]["template"] != o["spec"]["template"] {
                causes.push(("spec.template".into(), "Invalid value: field is immutable".into()));
            }
        }
        None if !manual => {
            if !obj["spec"]["selector"].is_null() {
                causes.push((
                    "spec.selector".into(),
                    "Invalid value: `selector` not auto-generated (set manualSelector: true to give one)".into(),
                ));
            }
            meta::set_path(
                obj,
                "spec.selector",
                json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
            );
            let mut labels = obj["spec"]["template"]["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (k, v) in [
                ("batch.kubernetes.io/controller-uid", &uid),
                ("batch.kubernetes.io/job-name", &name),
                ("controller-uid", &uid),
                ("job-name", &name),
            ] {
                labels.insert(k.to_string(), json!(v));
            }
            meta::set_path(obj, "spec.template.metadata.labels", Value::Object(labels));
        }
        None => {
            let labels = obj["spec"]["template"]["metadata"]["labels"].as_object();
            if !LabelSelector::from_object(&obj["spec"]["selector"]).matches(labels) {
                causes.push((
                    "spec.template.metadata.labels".into(),
                    "Invalid value: `selector` does not match template `labels`".into(),
                ));
            }
        }
    }
    match obj["spec"]["template"]["spec"]["restartPolicy"].as_str() {
        Some("Never" | "OnFailure") => {}
        None => causes.push((
            "spec.template.spec.restartPolicy".into(),
            "Required value: valid values: \"OnFailure\", \"Never\"".into(),
        )),
        Some(other) => causes.push((
            "spec.template.spec.restartPolicy".into(),
            format!("Unsupported value: {other:?}: supported values: \"OnFailure\", \"Never\""),
        )),
    }
    if obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .is_none_or(|c| c.is_empty())
    {
        causes.push(("spec.template.spec.containers".into(), "Required value".into()));
    }
    for field in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"] {
        if obj["spec"][field].as_i64().is_some_and(|n| n < 0) {
            causes.push((
                format!("spec.{field}"),
                "Invalid value: must be greater than or equal to 0".into(),
            ));
        }
    }
}

struct Types {
    jobs: Arc<ResourceType>,
    pods: Arc<ResourceType>,
}

/// Pods and Jobs to look at again at a time: a Pod's exit or restart, a back-off's end, a
/// deadline. A Pod has one timer at most: a new one replaces it.
#[derive(Default)]
struct Timers {
    at: BTreeMap<Instant, (BTreeSet<Key>, BTreeSet<Key>)>,
    pods: BTreeMap<Key, Instant>,
    jobs: BTreeMap<Key, Instant>,
}

impl Timers {
    fn pod(&mut self, at: Instant, key: Key) {
        if let Some(before) = self.pods.insert(key.clone(), at)
            && let Some((pods, _)) = self.at.get_mut(&before)
        {
            pods.remove(&key);
        }
        self.at.entry(at).or_default().0.insert(key);
    }
    /// A Job is looked at by its earliest timer; later ones for it are not kept.
    fn job(&mut self, at: Instant, key: Key) {
        match self.jobs.get(&key) {
            Some(before) if *before <= at => return,
            Some(before) => {
                if let Some((_, jobs)) = self.at.get_mut(before) {
                    jobs.remove(&key);
                }
            }
            None => {}
        }
        self.jobs.insert(key.clone(), at);
        self.at.entry(at).or_default().1.insert(key);
    }
    fn next(&self) -> Instant {
        self.at
            .keys()
            .next()
            .copied()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }
    fn take_due(&mut self) -> (Vec<Key>, Vec<Key>) {
        let now = Instant::now();
        let due: Vec<Instant> = self.at.range(..=now).map(|(k, _)| *k).collect();
        let (mut pods, mut jobs) = (Vec::new(), Vec::new());
        for at in due {
            if let Some((p, j)) = self.at.remove(&at) {
                for key in &p {
                    self.pods.remove(key);
                }
                for key in &j {
                    self.jobs.remove(key);
                }
                pods.extend(p);
                jobs.extend(j);
            }
        }
        (pods, jobs)
    }
}

pub async fn run(store: Arc<Store>) {
    let Some(types) = (|| {
        let r = store.registry();
        Some(Types {
            jobs: r.find("batch", "v1", "jobs")?,
            pods: r.find("", "v1", "pods")?,
        })
    })() else {
        return;
    };
    let mut rx = store.subscribe();
    let mut dirty: BTreeSet<Key> = BTreeSet::new();
    let mut timers = Timers::default();
    let mut resync = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            received = rx.recv() => {
                let mut batch = Vec::new();
                match received {
                    Ok(e) => batch.push(e),
                    Err(RecvError::Lagged(_)) => dirty.extend(all_jobs(&store, &types)),
                    Err(RecvError::Closed) => return,
                }
                while let Ok(e) = rx.try_recv() {
                    batch.push(e);
                }
                for e in batch {
                    let ns = meta::namespace(&e.object).to_string();
                    match (e.key.group.as_str(), e.key.plural.as_str()) {
                        ("batch", "jobs") => { dirty.insert((ns, meta::name(&e.object).to_string())); }
                        ("", "pods") => {
                            let jobs = controller_owner(&e.object, "Job");
                            if !jobs.is_empty() && e.type_ != EventType::Deleted {
                                schedule_exit(&e.object, &mut timers);
                            }
                            dirty.extend(jobs.into_iter().map(|j| (ns.clone(), j)));
                        }
                        _ => {}
                    }
                }
            }
            _ = tokio::time::sleep_until(timers.next()) => {
                let (pods, jobs) = timers.take_due();
                for pod in pods {
                    exit_pod(&store, &types.pods, &pod, &mut timers);
                }
                dirty.extend(jobs);
            }
            _ = resync.tick() => dirty.extend(all_jobs(&store, &types)),
        }
        for key in std::mem::take(&mut dirty) {
            sync_job(&store, &types, &key, &mut timers);
        }
    }
}

fn all_jobs(store: &Store, types: &Types) -> Vec<Key> {
    store
        .list(&types.jobs.storage_key(), None, None, None, &|_| true)
        .items
        .iter()
        .map(|o| (meta::namespace(o).to_string(), meta::name(o).to_string()))
        .collect()
}

/// The longest any timer of the simulated Job controller waits at once; past it, it looks again.
const MAX_WAIT: f64 = 86_400.0;

fn env_f64(pod: &Value, name: &str, default: f64) -> f64 {
    container_env(&pod["spec"], name)
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .unwrap_or(default)
        .clamp(0.0, MAX_WAIT)
}

/// The moment `secs` from now, for any number of seconds (negative, huge or not a number).
fn after(secs: f64) -> Instant {
    let secs = if secs.is_finite() {
        secs.clamp(0.0, MAX_WAIT)
    } else {
        MAX_WAIT
    };
    Instant::now() + Duration::from_secs_f64(secs)
}

/// A Pod that has begun running exits `SERIN_SIM_RUN_SECONDS` after it started.
fn schedule_exit(pod: &Value, timers: &mut Timers) {
    if pod["status"]["phase"] != "Running" {
        return;
    }
    let running = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].as_str();
    let Some(started) = running.and_then(|s| s.parse::<jiff::Timestamp>().ok()) else {
        return;
    };
    let run = Duration::from_secs_f64(env_f64(pod, "SERIN_SIM_RUN_SECONDS", 1.0));
    let ran = jiff::Timestamp::now().duration_since(started).unsigned_abs();
    let at = Instant::now() + run.saturating_sub(ran);
    timers.pod(at, (meta::namespace(pod).to_string(), meta::name(pod).to_string()));
}

fn kubelet() -> WriteOpts<'static> {
    WriteOpts {
        manager: KUBELET,
        dry_run: false,
        force: false,
        subresource: Subresource::Status,
        caller: None,
    }
}

/// A Pod's timer: a running container exits — the Pod ends Succeeded or Failed, or
/// (restartPolicy OnFailure) the container waits out the kubelet's back-off — and a container
/// that waited starts again.
fn exit_pod(store: &Store, pods: &ResourceType, key: &Key, timers: &mut Timers) {
    let Ok(pod) = store.get(pods, &key.0, &key.1) else {
        return;
    };
    if meta::is_deleting(&pod) || pod["status"]["phase"] != "Running" {
        return;
    }
    let now = meta::now_rfc3339();
    let first = &pod["status"]["containerStatuses"][0];
    let restarts = first["restartCount"].as_i64().unwrap_or(0);
    if !first["state"]["waiting"].is_null() {
        let _ = store.modify(pods, &key.0, &key.1, &kubelet(), &move |o| {
            if let Some(cs) = o["status"]["containerStatuses"].as_array_mut() {
                for c in cs {
                    c["state"] = json!({"running": {"startedAt": now}});
                    c["started"] = json!(true);
                }
            }
        });
        return;
    }
    let code = env_f64(&pod, "SERIN_SIM_EXIT_CODE", 0.0) as i64;
    let started = first["state"]["running"]["startedAt"].clone();
    let restart = code != 0 && pod["spec"]["restartPolicy"] == "OnFailure";
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let mut status = container_status(
                &pod,
                i,
                c,
                ContainerState {
                    state: json!({}),
                    last_state: json!({}),
                    ready: false,
                    started: false,
                    restarts: if restart { restarts + 1 } else { restarts },
                },
            );
            let terminated = json!({"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                                    "startedAt": started, "finishedAt": now, "containerID": status["containerID"]});
            if restart {
                status["lastState"] = json!({"terminated": terminated});
                status["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off restarting failed container {}", c["name"].as_str().unwrap_or(""))}});
            } else {
                status["state"] = json!({"terminated": terminated});
            }
            status
        })
        .collect();
    let phase = match (restart, code) {
        (true, _) => "Running",
        (false, 0) => "Succeeded",
        _ => "Failed",
    };
    let ready = if restart { "ContainersNotReady" } else { "PodCompleted" };
    let _ = store.modify(pods, &key.0, &key.1, &kubelet(), &move |o| {
        o["status"]["phase"] = json!(phase);
        o["status"]["containerStatuses"] = json!(statuses);
        o["status"]["conditions"] = json!([
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "False", "lastTransitionTime": now, "reason": ready},
            {"type": "ContainersReady", "status": "False", "lastTransitionTime": now, "reason": ready},
        ]);
    });
    if restart {
        timers.pod(Instant::now() + backoff(restarts as u32 + 1), key.clone());
    }
}

/// The back-off after the n-th failure.
fn backoff(n: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(n.saturating_sub(1)))
        .min(BACKOFF_MAX)
}

fn condition(job: &Value, type_: &str) -> bool {
    job["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == type_ && c["status"] == "True"))
}

fn seconds_since(time: &Value) -> Option<f64> {
    let t: jiff::Timestamp = time.as_str()?.parse().ok()?;
    Some(jiff::Timestamp::now().duration_since(t).as_secs_f64())
}

/// The Job's Pods counted: active, succeeded, failed (OnFailure restarts count as failures).
struct Counts {
    active: Vec<Arc<Value>>,
    /// Container restarts (restartPolicy OnFailure), which count against backoffLimit.
    restarts: i64,
    ready: usize,
    succeeded: i64,
    failed: i64,
    last_failure: Option<String>,
}

fn count_pods(pods: &[Arc<Value>]) -> Counts {
    let mut c = Counts {
        active: Vec::new(),
        restarts: 0,
        ready: 0,
        succeeded: 0,
        failed: 0,
        last_failure: None,
    };
    for p in pods {
        let restarts = p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0);
        c.restarts += restarts;
        match p["status"]["phase"].as_str() {
            Some("Succeeded") => c.succeeded += 1,
            Some("Failed") => {
                c.failed += 1;
                let at = p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
                    .as_str()
                    .map(String::from);
                c.last_failure = c.last_failure.max(at);
            }
            _ if meta::is_deleting(p) => {}
            _ => {
                if meta::pod_ready(p) {
                    c.ready += 1;
                }
                c.active.push(p.clone());
            }
        }
        if restarts > 0 {
            let at = p["status"]["containerStatuses"][0]["lastState"]["terminated"]["finishedAt"]
                .as_str()
                .map(String::from);
            c.last_failure = c.last_failure.clone().max(at);
        }
    }
    c
}

fn finished(job: &Value) -> bool {
    condition(job, "Complete") || condition(job, "Failed")
}

/// Where a Job stands.
#[derive(Debug, PartialEq)]
enum State {
    Running,
    Suspended,
    Complete,
    Failed(&'static str, &'static str),
}

fn state_of(job: &Value, counts: &Counts, start: Option<&Value>) -> State {
    let complete = match job["spec"]["completions"].as_i64() {
        Some(n) => counts.succeeded >= n,
        None => counts.succeeded > 0 && counts.active.is_empty(),
    };
    let limit = job["spec"]["backoffLimit"].as_i64().unwrap_or(6);
    // With restartPolicy OnFailure the restarts count, and reaching the limit is enough.
    let restarts_spent = job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
        && if limit == 0 {
            counts.restarts > 0
        } else {
            counts.restarts >= limit
        };
    let deadline = job["spec"]["activeDeadlineSeconds"].as_f64();
    if complete {
        State::Complete
    } else if counts.failed > limit || restarts_spent {
        State::Failed("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    } else if job["spec"]["suspend"] == true {
        State::Suspended
    } else if deadline.is_some_and(|d| start.and_then(seconds_since).unwrap_or(0.0) >= d) {
        State::Failed("DeadlineExceeded", "Job was active longer than specified deadline")
    } else {
        State::Running
    }
}

/// The Job's status as the Job controller writes it: counts (zeros left out) and conditions,
/// which keep their probe times while they hold.
fn status_of(state: &State, counts: &Counts, start: Option<Value>, now: &str, before: &Value) -> Value {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        let probed = before["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == type_ && c["status"] == status))
            .map_or_else(|| json!(now), |c| c["lastProbeTime"].clone());
        json!({"type": type_, "status": status, "reason": reason, "message": message, "lastProbeTime": probed})
    };
    let was_suspended = before["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Suspended" && c["status"] == "True"));
    // The Pods stopped when the Job fails count as failed.
    let failed = counts.failed
        + match state {
            State::Failed(..) => counts.active.len() as i64,
            _ => 0,
        };
    let mut status = json!({"succeeded": counts.succeeded, "failed": failed,
                            "ready": counts.ready, "terminating": 0, "uncountedTerminatedPods": {}});
    if let Some(start) = start {
        status["startTime"] = start;
    }
    let conditions = match state {
        State::Complete => {
            status["completionTime"] = before.get("completionTime").cloned().unwrap_or_else(|| json!(now));
            let done = "Reached expected number of succeeded pods";
            vec![
                condition("SuccessCriteriaMet", "True", "CompletionsReached", done),
                condition("Complete", "True", "CompletionsReached", done),
            ]
        }
        State::Failed(reason, message) => vec![
            condition("FailureTarget", "True", reason, message),
            condition("Failed", "True", reason, message),
        ],
        State::Suspended => vec![condition("Suspended", "True", "JobSuspended", "Job suspended")],
        State::Running if was_suspended => vec![condition("Suspended", "False", "JobResumed", "Job resumed")],
        State::Running => Vec::new(),
    };
    // Conditions of other types stay, as the Job controller keeps them.
    let mut all: Vec<Value> = before["conditions"].as_array().cloned().unwrap_or_default();
    for c in conditions {
        match all.iter_mut().find(|o| o["type"] == c["type"]) {
            Some(o) => *o = c,
            None => all.push(c),
        }
    }
    let conditions = all;
    let active = if *state == State::Running {
        counts.active.len()
    } else {
        0
    };
    status["active"] = json!(active);
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    if let Some(m) = status.as_object_mut() {
        m.retain(|k, v| !(matches!(k.as_str(), "active" | "succeeded" | "failed") && *v == json!(0)));
    }
    status
}

fn sync_job(store: &Store, t: &Types, key: &Key, timers: &mut Timers) {
    let Ok(job) = store.get(&t.jobs, &key.0, &key.1) else {
        return;
    };
    if meta::is_deleting(&job) {
        return;
    }
    let ttl = job["spec"]["ttlSecondsAfterFinished"].as_f64();
    if finished(&job) {
        if let Some(ttl) = ttl {
            let done = seconds_since(&job["status"]["completionTime"])
                .or_else(|| seconds_since(&job["status"]["conditions"][0]["lastTransitionTime"]))
                .unwrap_or(0.0);
            if done >= ttl {
                let _ = store.delete(&t.jobs, &key.0, &key.1, &DeleteOpts::default());
            } else {
                timers.job(after(ttl - done), key.clone());
            }
        }
        return;
    }
    let selector = LabelSelector::from_object(&job["spec"]["selector"]);
    let pods = owned_of(store, &job, &t.pods, |p| selector.matches(meta::labels(p)));
    let counts = count_pods(&pods);
    let now = meta::now_rfc3339();
    // A Job starts when it is not suspended; suspending it clears its start.
    let start = match (&job["status"]["startTime"], job["spec"]["suspend"] == true) {
        (_, true) => None,
        (Value::Null, false) => Some(json!(now)),
        (t, false) => Some(t.clone()),
    };
    let completions = job["spec"]["completions"].as_i64();
    let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1);
    let deadline = job["spec"]["activeDeadlineSeconds"].as_f64();
    let state = state_of(&job, &counts, start.as_ref());
    if state == State::Running {
        create_pods(store, t, &job, &counts, completions, parallelism, timers, key);
        if let Some(d) = deadline {
            let left = d - start.as_ref().and_then(seconds_since).unwrap_or(0.0);
            timers.job(after(left), key.clone());
        }
    } else {
        for p in &counts.active {
            let _ = store.delete(&t.pods, &key.0, meta::name(p), &DeleteOpts::default());
        }
    }
    let status = status_of(&state, &counts, start, &now, &job["status"]);
    write_status(store, &t.jobs, &job, status, JOB_MANAGER);
}

/// New Pods up to `parallelism` (and the completions still wanted), once a failure's back-off
/// has passed.
#[allow(clippy::too_many_arguments)]
fn create_pods(
    store: &Store,
    t: &Types,
    job: &Value,
    counts: &Counts,
    completions: Option<i64>,
    parallelism: i64,
    timers: &mut Timers,
    key: &Key,
) {
    let remaining = completions.map_or(parallelism, |n| n - counts.succeeded);
    let want = parallelism.min(remaining).max(0) - counts.active.len() as i64;
    if want <= 0 {
        return;
    }
    if counts.failed > 0
        && let Some(last) = &counts.last_failure
    {
        let wait = backoff(counts.failed as u32).as_secs_f64() - seconds_since(&json!(last)).unwrap_or(f64::MAX);
        if wait > 0.0 {
            timers.job(after(wait), key.clone());
            return;
        }
    }
    let tpl = &job["spec"]["template"];
    for _ in 0..want {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": format!("{}-", key.1), "namespace": key.0, "labels": tpl["metadata"]["labels"],
                         "annotations": tpl["metadata"]["annotations"], "ownerReferences": owner_ref(job, "batch/v1", "Job")},
            "spec": tpl["spec"],
        });
        if pod["metadata"]["annotations"].is_null() {
            meta::remove_meta(&mut pod, "annotations");
        }
        let _ = store.create(&t.pods, Some(&key.0), pod, &WriteOpts::by(JOB_MANAGER));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_server_defaults_and_checks_jobs() {
        let mut job = json!({"metadata": {"name": "smoke", "uid": "u-1"},
                             "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "busybox"}]}}}});
        let mut causes = Vec::new();
        admit(&mut job, None, &mut causes);
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(job["spec"]["completions"], 1);
        assert_eq!(job["spec"]["parallelism"], 1);
        assert_eq!(job["spec"]["backoffLimit"], 6);
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u-1"
        );
        assert_eq!(job["spec"]["template"]["metadata"]["labels"]["job-name"], "smoke");
        let mut always = json!({"metadata": {"name": "x", "uid": "u"},
                                "spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "t"}]}}}});
        let mut causes = Vec::new();
        admit(&mut always, None, &mut causes);
        assert_eq!(causes[0].0, "spec.template.spec.restartPolicy");
        let mut changed = job.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("alpine");
        let mut causes = Vec::new();
        admit(&mut changed, Some(&job), &mut causes);
        assert_eq!(causes[0].0, "spec.template", "{causes:?}");
    }

    #[test]
    fn backoff_doubles_up_to_six_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(12), BACKOFF_MAX);
    }
}
