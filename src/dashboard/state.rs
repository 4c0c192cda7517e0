//! What the dashboard knows: caches fed by watches (Rollouts, their ReplicaSets and
//! AnalysisRuns, their Events), the history it has seen since it started (weights, measurements),
//! and a channel that tells every open page which Rollout changed. Pages never cause API calls
//! to read; only the watches do.

use crate::crd::analysis::{AnalysisRun, Measurement};
use crate::crd::rollout::Rollout;
use crate::reconcile::ROLLOUT_LABEL;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Event;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Points of weight history kept per Rollout, and measurements per metric.
const WEIGHT_POINTS: usize = 720;
const MEASUREMENT_POINTS: usize = 240;
const EVENTS_KEPT: usize = 30;

/// A Rollout, by namespace and name.
pub type Key = (String, String);

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WeightPoint {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    pub weight: i32,
    pub step: i32,
    pub phase: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub name: String,
    pub t: i64,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
}

#[derive(Default)]
pub struct History {
    pub weights: HashMap<Key, VecDeque<WeightPoint>>,
    /// By run (namespace, name), then metric: every measurement seen, oldest first.
    pub measurements: HashMap<Key, BTreeMap<String, Vec<Measurement>>>,
    pub events: HashMap<Key, Vec<EventView>>,
}

pub struct State {
    pub client: Client,
    pub namespace: Option<String>,
    pub rollouts: Store<Rollout>,
    pub replica_sets: Store<ReplicaSet>,
    pub runs: Store<AnalysisRun>,
    pub history: Mutex<History>,
    pub changes: broadcast::Sender<Key>,
}

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl State {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self, key: Key) {
        // No page open: nobody to tell.
        let _ = self.changes.send(key);
    }

    fn saw_rollout(&self, r: &Rollout) {
        let key = (r.namespace().unwrap_or_default(), r.name_any());
        let st = r.status.clone().unwrap_or_default();
        let point = WeightPoint {
            t: now_ms(),
            weight: st.canary_weight.unwrap_or(0),
            step: st.current_step_index.unwrap_or(0),
            phase: st.phase.map(|p| p.as_str().to_string()).unwrap_or_default(),
        };
        {
            let mut h = self.lock();
            let points = h.weights.entry(key.clone()).or_default();
            let same = points
                .back()
                .is_some_and(|p| p.weight == point.weight && p.step == point.step && p.phase == point.phase);
            if !same {
                points.push_back(point);
                if points.len() > WEIGHT_POINTS {
                    points.pop_front();
                }
            }
        }
        self.changed(key);
    }

    fn forget_rollout(&self, r: &Rollout) {
        let key = (r.namespace().unwrap_or_default(), r.name_any());
        let mut h = self.lock();
        h.weights.remove(&key);
        h.events.remove(&key);
        drop(h);
        self.changed(key);
    }

    fn saw_run(&self, run: &AnalysisRun) {
        let ns = run.namespace().unwrap_or_default();
        let key = (ns.clone(), run.name_any());
        {
            let mut h = self.lock();
            let metrics = h.measurements.entry(key).or_default();
            for result in run.status.iter().flat_map(|s| s.metric_results.iter()) {
                let seen = metrics.entry(result.name.clone()).or_default();
                for m in &result.measurements {
                    match seen.iter_mut().rev().find(|s| s.started_at == m.started_at) {
                        // A measurement in progress, now finished.
                        Some(s) => *s = m.clone(),
                        None => seen.push(m.clone()),
                    }
                }
                seen.sort_by_key(|m| m.started_at.0);
                if seen.len() > MEASUREMENT_POINTS {
                    let excess = seen.len() - MEASUREMENT_POINTS;
                    seen.drain(..excess);
                }
            }
        }
        if let Some(rollout) = run.labels().get(ROLLOUT_LABEL) {
            self.changed((ns, rollout.clone()));
        }
    }

    fn saw_event(&self, e: &Event) {
        let o = &e.involved_object;
        if o.kind.as_deref() != Some("Rollout") {
            return;
        }
        let key = (
            o.namespace.clone().unwrap_or_default(),
            o.name.clone().unwrap_or_default(),
        );
        let t = e
            .event_time
            .as_ref()
            .map(|t| t.0)
            .or(e.last_timestamp.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .map_or(0, |t| t.as_millisecond());
        let view = EventView {
            name: e.name_any(),
            t,
            type_: e.type_.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e.count.unwrap_or(1),
        };
        {
            let mut h = self.lock();
            let events = h.events.entry(key.clone()).or_default();
            events.retain(|v| v.name != view.name);
            events.push(view);
            events.sort_by_key(|v| v.t);
            if events.len() > EVENTS_KEPT {
                let excess = events.len() - EVENTS_KEPT;
                events.drain(..excess);
            }
        }
        self.changed(key);
    }
}

/// Starts the watches; the caches fill as they list.
pub fn start(client: Client, namespace: Option<String>) -> Arc<State> {
    let (rollouts, rollouts_w) = reflector::store();
    let (replica_sets, rs_w) = reflector::store();
    let (runs, runs_w) = reflector::store();
    let (changes, _) = broadcast::channel(1024);
    let state = Arc::new(State {
        client: client.clone(),
        namespace: namespace.clone(),
        rollouts,
        replica_sets,
        runs,
        history: Mutex::new(History::default()),
        changes,
    });
    let s = state.clone();
    let api_r: Api<Rollout> = api(&client, &namespace);
    tokio::spawn(async move {
        let mut stream = watcher(api_r, watcher::Config::default())
            .default_backoff()
            .reflect(rollouts_w)
            .boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(r) | watcher::Event::InitApply(r)) => s.saw_rollout(&r),
                Ok(watcher::Event::Delete(r)) => s.forget_rollout(&r),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "watching Rollouts"),
            }
        }
    });
    let s = state.clone();
    let api_rs: Api<ReplicaSet> = api(&client, &namespace);
    tokio::spawn(async move {
        let cfg = watcher::Config::default().labels(ROLLOUT_LABEL);
        let mut stream = watcher(api_rs, cfg).default_backoff().reflect(rs_w).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(rs) | watcher::Event::InitApply(rs) | watcher::Event::Delete(rs)) => {
                    if let Some(rollout) = rs.labels().get(ROLLOUT_LABEL) {
                        s.changed((rs.namespace().unwrap_or_default(), rollout.clone()));
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "watching ReplicaSets"),
            }
        }
    });
    let s = state.clone();
    let api_runs: Api<AnalysisRun> = api(&client, &namespace);
    tokio::spawn(async move {
        let mut stream = watcher(api_runs, watcher::Config::default())
            .default_backoff()
            .reflect(runs_w)
            .boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(run) | watcher::Event::InitApply(run)) => s.saw_run(&run),
                Ok(watcher::Event::Delete(run)) => {
                    let key = (run.namespace().unwrap_or_default(), run.name_any());
                    s.lock().measurements.remove(&key);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "watching AnalysisRuns"),
            }
        }
    });
    let s = state.clone();
    let api_ev: Api<Event> = api(&client, &namespace);
    tokio::spawn(async move {
        let cfg = watcher::Config::default().fields("involvedObject.kind=Rollout");
        let mut stream = watcher(api_ev, cfg).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => s.saw_event(&e),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "watching Events"),
            }
        }
    });
    state
}
