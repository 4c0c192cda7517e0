//! The rollback lane: a failed analysis, an abort asked for, or a failed gate is reconciled by
//! workers of its own, ahead of the routine queue, and so is every change to an aborted Rollout
//! until its traffic is back on stable. When a thousand Rollouts release at once, the
//! controller's queue holds a thousand step changes; a rollback waiting behind them keeps users on a
//! broken version for seconds.
//!
//! The lane and the controller may reach for the same Rollout at once, so every reconcile holds
//! that Rollout's turn ([`Turns`]); the controller's own queue still looks at it afterwards and
//! finds nothing left to do.

use super::cached::{CachedReplicaSet, CachedRun};
use crate::crd::analysis::AnalysisPhase;
use crate::crd::rollout::Rollout;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Reconciles the lane runs at once: a rollback is a few writes, and the routine workers keep
/// theirs.
pub const LANE_WORKERS: usize = 4;

/// Whether a Rollout asks for an abort it has not taken yet.
pub fn abort_asked(rollout: &Rollout) -> bool {
    let status = rollout.status.as_ref();
    let asked = status.and_then(|s| s.control.as_ref()).and_then(|c| c.abort) == Some(true);
    asked && status.and_then(|s| s.abort) != Some(true)
}

/// Whether a Rollout is aborted but its traffic is not yet all on stable: without a router the
/// canary's Pods take their share until they are gone, and the reconcile that sees them go (woken
/// by the ReplicaSet's status) is what puts the weight at 0.
pub fn rolling_back(rollout: &Rollout) -> bool {
    let status = rollout.status.as_ref();
    status.and_then(|s| s.abort) == Some(true) && status.and_then(|s| s.canary_weight).unwrap_or(0) > 0
}

/// Whether a run's verdict calls for a rollback: it failed or erred.
pub fn run_failed(run: &CachedRun) -> bool {
    let phase = run.status.as_ref().and_then(|s| s.phase.as_ref());
    matches!(phase, Some(AnalysisPhase::Failed | AnalysisPhase::Error))
}

type Event<K> = Result<watcher::Event<K>, watcher::Error>;

/// Puts a Rollout in the lane when it asks for an abort, or while it is going back to stable.
pub fn on_rollout(lane: Arc<Lane>) -> impl Fn(&Event<Rollout>) {
    move |event| {
        if let Ok(watcher::Event::Apply(r)) = event
            && (abort_asked(r) || rolling_back(r))
        {
            lane.push(ObjectRef::from_obj(r));
        }
    }
}

/// Puts a Rollout in the lane when one of its ReplicaSets changes while it goes back to stable: a
/// canary's Pods going is what brings its traffic back without a router.
pub fn on_replica_set(lane: Arc<Lane>, rollouts: Store<Rollout>) -> impl Fn(&Event<CachedReplicaSet>) {
    move |event| {
        if let Ok(watcher::Event::Apply(rs)) = event
            && let Some(key) = owner(rs)
            && rollouts.get(&key).is_some_and(|r| rolling_back(&r))
        {
            lane.push(key);
        }
    }
}

/// Puts a Rollout in the lane when one of its runs failed or erred.
pub fn on_run(lane: Arc<Lane>) -> impl Fn(&Event<CachedRun>) {
    move |event| {
        if let Ok(watcher::Event::Apply(run)) = event
            && run_failed(run)
            && let Some(key) = owner(run)
        {
            lane.push(key);
        }
    }
}

/// The Rollout an object is labelled with.
fn owner<K: kube::Resource>(obj: &K) -> Option<ObjectRef<Rollout>> {
    let name = obj.meta().labels.as_ref()?.get(super::ROLLOUT_LABEL)?;
    Some(ObjectRef::new(name).within(obj.meta().namespace.as_deref()?))
}

/// One reconcile of a Rollout at a time, across the lane and the controller's workers.
#[derive(Default)]
pub struct Turns {
    held: Mutex<HashMap<ObjectRef<Rollout>, Arc<tokio::sync::Mutex<()>>>>,
}

/// A Rollout's turn; the next waiting reconcile of it goes when this drops.
pub struct Turn<'a> {
    turns: &'a Turns,
    key: ObjectRef<Rollout>,
    lock: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Turns {
    pub async fn take(&self, key: ObjectRef<Rollout>) -> Turn<'_> {
        let lock = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            held.entry(key.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        Turn {
            turns: self,
            key,
            lock: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or_default()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.lock.take());
        let mut held = self.turns.held.lock().unwrap_or_else(|e| e.into_inner());
        // Nobody else holds or waits for it: the entry goes, so deleted Rollouts leave nothing.
        if held.get(&self.key).is_some_and(|m| Arc::strong_count(m) == 1) {
            held.remove(&self.key);
        }
    }
}

/// The Rollouts waiting in the lane, each once.
pub struct Lane {
    queued: Mutex<HashSet<ObjectRef<Rollout>>>,
    tx: tokio::sync::mpsc::UnboundedSender<ObjectRef<Rollout>>,
}

impl Lane {
    pub fn new() -> (Self, tokio::sync::mpsc::UnboundedReceiver<ObjectRef<Rollout>>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Lane {
                queued: Default::default(),
                tx,
            },
            rx,
        )
    }

    /// Puts a Rollout in the lane unless it waits there already.
    pub fn push(&self, key: ObjectRef<Rollout>) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if queued.insert(key.clone()) && self.tx.send(key.clone()).is_err() {
            queued.remove(&key);
        }
    }

    /// Takes a Rollout out of the lane as its reconcile starts: what happens after is news again.
    pub fn started(&self, key: &ObjectRef<Rollout>) {
        self.queued.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::rollout::{ControlRequests, RolloutStatus};

    fn rollout(asked: Option<bool>, taken: Option<bool>) -> Rollout {
        let mut r: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {}, "strategy": {"canary": {}}}
        }))
        .unwrap();
        r.status = Some(RolloutStatus {
            control: Some(ControlRequests {
                abort: asked,
                ..Default::default()
            }),
            abort: taken,
            ..Default::default()
        });
        r
    }

    #[test]
    fn an_abort_is_urgent_until_it_is_taken() {
        assert!(abort_asked(&rollout(Some(true), None)));
        assert!(!abort_asked(&rollout(Some(true), Some(true))), "already aborted");
        assert!(!abort_asked(&rollout(None, None)));
    }

    #[test]
    fn an_aborted_rollout_is_urgent_until_its_weight_is_back_at_zero() {
        let mut r = rollout(Some(true), Some(true));
        assert!(!rolling_back(&r), "no weight: nothing left to move");
        r.status.as_mut().unwrap().canary_weight = Some(33);
        assert!(rolling_back(&r));
        r.status.as_mut().unwrap().canary_weight = Some(0);
        assert!(!rolling_back(&r));
        let mut releasing = rollout(None, None);
        releasing.status.as_mut().unwrap().canary_weight = Some(50);
        assert!(!rolling_back(&releasing), "a canary on its way up is routine");
    }

    #[test]
    fn failed_and_erred_runs_are_urgent_the_others_not() {
        let run = |phase: &str| -> CachedRun {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "r"}, "status": {"phase": phase}})).unwrap()
        };
        assert!(run_failed(&run("Failed")));
        assert!(run_failed(&run("Error")));
        for phase in ["Running", "Successful", "Inconclusive", "Pending"] {
            assert!(!run_failed(&run(phase)), "{phase}");
        }
    }

    #[tokio::test]
    async fn a_rollout_is_reconciled_by_one_side_at_a_time_and_its_turn_is_forgotten_after() {
        let turns = Arc::new(Turns::default());
        let key = ObjectRef::<Rollout>::new("web").within("default");
        let first = turns.take(key.clone()).await;
        let (t, k) = (turns.clone(), key.clone());
        let second = tokio::spawn(async move {
            let _turn = t.take(k).await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the second waits for the first");
        let other = turns.take(ObjectRef::new("api").within("default")).await;
        drop(other);
        drop(first);
        second.await.unwrap();
        assert_eq!(turns.len(), 0);
    }

    #[test]
    fn a_rollout_waits_in_the_lane_once() {
        let (lane, mut rx) = Lane::new();
        let key = ObjectRef::<Rollout>::new("web").within("default");
        lane.push(key.clone());
        lane.push(key.clone());
        assert_eq!(rx.try_recv().ok(), Some(key.clone()));
        assert!(rx.try_recv().is_err());
        lane.started(&key);
        lane.push(key.clone());
        assert_eq!(rx.try_recv().ok(), Some(key));
    }
}
