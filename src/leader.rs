//! Leader election on the `serin-controller` Lease (`serin-controller-I` for shard I), and the gate every reconcile passes: a
//! process acts only when its caches are synced and it holds the Lease. Standbys keep warm
//! caches, so a handover costs one Lease expiry and no relist.

use futures::{Stream, StreamExt};
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::WatchStream;

pub const LEASE_NAME: &str = "serin-controller";

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cannot set up the leader Lease {namespace}/{lease}: {source}")]
    Setup {
        namespace: String,
        lease: String,
        source: LeaseManagerError,
    },
    #[error("the lease duration must be at least 2 seconds, not {0}")]
    Duration(u64),
}

/// What this process may do right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Role {
    /// Every cache has its first full list: a plan made now sees the whole world.
    pub synced: bool,
    /// This process holds the Lease (or election is off).
    pub leader: bool,
    /// Controllers of another shard count hold Leases: the shards are being changed, and until
    /// the old ones stop, two processes could each take a Rollout as theirs.
    pub resharding: bool,
}

impl Role {
    pub fn may_act(self) -> bool {
        self.synced && self.leader && !self.resharding
    }
}

pub struct Gate {
    role: watch::Sender<Role>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            role: watch::channel(Role::default()).0,
        }
    }
}

impl Gate {
    pub fn set_synced(&self) {
        self.role.send_if_modified(|r| !std::mem::replace(&mut r.synced, true));
    }

    pub fn set_leader(&self, leader: bool) {
        self.role
            .send_if_modified(|r| std::mem::replace(&mut r.leader, leader) != leader);
    }

    pub fn set_resharding(&self, resharding: bool) {
        self.role
            .send_if_modified(|r| std::mem::replace(&mut r.resharding, resharding) != resharding);
    }

    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    pub fn may_act(&self) -> bool {
        self.role().may_act()
    }

    /// Yields each time this process becomes able to act, so that every object is looked at
    /// then: reconciles skipped while standing by are not lost.
    pub fn activations(&self) -> impl Stream<Item = ()> + Send + 'static {
        WatchStream::new(self.role.subscribe())
            .filter(|r| futures::future::ready(r.may_act()))
            .map(|_| ())
    }
}

/// A running election. Dropping it without `release` leaves the Lease to expire.
pub struct Election {
    forward: JoinHandle<()>,
    manager: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    lost: watch::Receiver<bool>,
    lease: String,
}

/// Campaigns for the Lease `lease` in `namespace` as `identity`; the gate follows the outcome.
/// The holder renews a third of the duration before it ends.
pub async fn campaign(
    client: Client,
    lease: &str,
    namespace: &str,
    identity: &str,
    lease_seconds: u64,
    admin: std::sync::Arc<crate::admin::Admin>,
) -> Result<Election, LeaderError> {
    if lease_seconds < 2 {
        return Err(LeaderError::Duration(lease_seconds));
    }
    let setup = |source| LeaderError::Setup {
        namespace: namespace.to_string(),
        lease: lease.to_string(),
        source,
    };
    let manager = LeaseManagerBuilder::new(client, lease)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(lease_seconds)
        .with_grace((lease_seconds / 3).max(1))
        .with_field_manager(format!("serin-leader-{identity}"))
        .build()
        .await
        .map_err(setup)?;
    let (mut held, manager) = manager.watch().await;
    let (lost_tx, lost) = watch::channel(false);
    let name = lease.to_string();
    let forward = tokio::spawn(async move {
        let mut was_leader = false;
        loop {
            let leader = *held.borrow_and_update();
            if leader != was_leader {
                tracing::info!(lease = %name, leader, "leadership changed");
            }
            admin.gate.set_leader(leader);
            if was_leader && !leader {
                // Another process may act from now on: stop at once rather than race it.
                let _ = lost_tx.send(true);
            }
            was_leader = leader;
            if held.changed().await.is_err() {
                break;
            }
        }
    });
    Ok(Election {
        forward,
        manager,
        lost,
        lease: lease.to_string(),
    })
}

/// Follows the controller Leases in `namespace` through a watch: while controllers of another shard
/// count hold any, this one does not act (see [`Role::resharding`]). The first list is waited for
/// (at most `every` × 3) before this returns, so a process never acts before it has looked.
pub async fn watch_peers(
    client: Client,
    namespace: &str,
    me: crate::shard::Shard,
    every: Duration,
    admin: std::sync::Arc<crate::admin::Admin>,
) -> JoinHandle<()> {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let api: kube::Api<Lease> = kube::Api::namespaced(client, namespace);
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    // Told by the task when the first list is in (a store keeps one waker: one waiter only).
    let (listed_tx, mut listed) = watch::channel(false);
    let (leases, judged) = (store.clone(), admin.clone());
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        // A held Lease lapses with no event: the ticks look again.
        let mut tick = tokio::time::interval(every);
        let mut warned = false;
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(watcher::Event::InitDone)) => {
                        let _ = listed_tx.send(true);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) if !warned => {
                        warned = true;
                        tracing::warn!(error = %e, "cannot watch the controller Leases to see whether the shards are being changed");
                    }
                    Some(Err(e)) => tracing::debug!(error = %e, "the controller Leases' watch failed"),
                    None => break,
                },
                _ = tick.tick() => {}
            }
            if *listed_tx.borrow() {
                judge_peers(&leases.state(), me, &judged);
            }
        }
    });
    if tokio::time::timeout(every * 3, listed.wait_for(|l| *l)).await.is_err() {
        tracing::warn!(
            "the controller Leases could not be listed; acting without knowing whether the shards are being changed"
        );
    }
    judge_peers(&store.state(), me, &admin);
    task
}

/// Closes or opens the gate on the Leases as they stand.
fn judge_peers(
    leases: &[std::sync::Arc<k8s_openapi::api::coordination::v1::Lease>],
    me: crate::shard::Shard,
    admin: &crate::admin::Admin,
) {
    let held: Vec<crate::shard::Held> = leases
        .iter()
        .map(|l| {
            let spec = l.spec.as_ref();
            let renewed = spec
                .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
                .map(|t| t.0);
            let length = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(0);
            crate::shard::Held {
                lease: l.metadata.name.as_deref().unwrap_or_default(),
                holder: spec.and_then(|s| s.holder_identity.as_deref()).unwrap_or_default(),
                until: renewed.and_then(|t| t.checked_add(jiff::SignedDuration::from_secs(length.into())).ok()),
            }
        })
        .collect();
    let others = crate::shard::other_counts(&held, me, jiff::Timestamp::now());
    if !others.is_empty() && !admin.gate.role().resharding {
        tracing::warn!(
            shard = %me,
            others = ?others,
            "controllers with another shard count hold Leases: none acts until they stop"
        );
    }
    admin.gate.set_resharding(!others.is_empty());
}

impl Election {
    /// Resolves if this process held the Lease and lost it.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Gives the Lease up, so that a standby takes over without waiting for it to expire.
    pub async fn release(self) {
        let lease = self.lease;
        self.forward.abort();
        // The manager releases the Lease once the last receiver of its state is gone.
        let _ = self.forward.await;
        match tokio::time::timeout(Duration::from_secs(5), self.manager).await {
            Ok(Ok(Ok(_))) => tracing::info!(lease = %lease, "released the Lease"),
            Ok(Ok(Err(e))) => tracing::warn!(lease = %lease, error = %e, "could not release the Lease"),
            Ok(Err(e)) => tracing::warn!(lease = %lease, error = %e, "the Lease task failed"),
            Err(_) => tracing::warn!(lease = %lease, "gave up releasing the Lease after 5s"),
        }
    }
}
