//! Sharded controllers through the real binary: `--shard I/N` reconciles the Rollouts that hash
//! to I, each shard leads on a Lease of its own, and a new shard count waits until the
//! controllers of the old one have stopped.

mod common;

use common::{Cluster, ControllerProc, eventually, named_rollout, serin_cmd, services_of};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};
use serin::crd::rollout::{Phase, RolloutStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// Eight Rollout names, four on each of two shards in `namespace` (which shard a Rollout is on
/// depends on its namespace, and every test has a namespace of its own).
fn names(namespace: &str) -> Vec<String> {
    let mut per_shard = [0; 2];
    (0..)
        .map(|i| format!("app{i}"))
        .filter(|n| {
            let shard = serin::shard::of(namespace, n, 2) as usize;
            per_shard[shard] += 1;
            per_shard[shard] <= 4
        })
        .take(8)
        .collect()
}

/// The Rollouts, and with `services` their Services (once: their selectors are Serin's to point).
fn rollouts(namespace: &str, image: &str, services: bool) -> String {
    names(namespace)
        .iter()
        .map(|n| {
            named_rollout(
                n,
                1,
                image,
                &[],
                "",
                "      steps: [{setWeight: 50}, {pause: {duration: 1s}}]",
            ) + &(if services { services_of(n) } else { String::new() })
                + "\n---\n"
        })
        .collect()
}

fn shard(sim: &Cluster, spec: &str, log: &str) -> ControllerProc {
    ControllerProc::start_with(
        sim,
        log,
        &["--leader-election-lease-duration=2", &format!("--shard={spec}")],
    )
}

async fn statuses(client: &kube::Client) -> BTreeMap<String, RolloutStatus> {
    common::rollout_statuses(client).await
}

/// Waits until every Rollout is Healthy on the version `image` makes; its hashes by Rollout.
async fn all_healthy(client: &kube::Client, differs_from: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    eventually("every Rollout healthy on the new version", WAIT, || async {
        let all = statuses(client).await;
        let done = all.len() == 8
            && all.iter().all(|(n, s)| {
                s.phase == Some(Phase::Healthy)
                    && s.stable_pod_hash.is_some()
                    && s.stable_pod_hash == s.current_pod_hash
                    && s.stable_pod_hash.as_ref() != differs_from.get(n)
            });
        done.then(|| {
            all.into_iter()
                .map(|(n, s)| (n, s.stable_pod_hash.unwrap_or_default()))
                .collect()
        })
    })
    .await
}

/// The Rollouts a controller's /metrics reports on.
async fn reported(c: &ControllerProc) -> BTreeSet<String> {
    let body = reqwest::get(format!("http://127.0.0.1:{}/metrics", c.metrics_port))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with("serin_rollout_info{"))
        .filter_map(|l| l.split("rollout=\"").nth(1)?.split('"').next().map(String::from))
        .collect()
}

#[tokio::test]
async fn shards_split_the_rollouts_and_each_leads_on_a_lease_of_its_own() {
    let sim = Cluster::start();
    sim.install_crds();
    let client = sim.client().await;
    let shards = [shard(&sim, "0/2", "shard-0.log"), shard(&sim, "1/2", "shard-1.log")];
    sim.apply_yaml(&rollouts(&sim.namespace, "example/web:1", true));
    let v1 = all_healthy(&client, &BTreeMap::new()).await;
    sim.apply_yaml(&rollouts(&sim.namespace, "example/web:2", false));
    all_healthy(&client, &v1).await;

    // Each reports on, and so reconciled, exactly the Rollouts that hash to it.
    let mut seen = BTreeSet::new();
    for (i, c) in shards.iter().enumerate() {
        let want: BTreeSet<String> = names(&sim.namespace)
            .into_iter()
            .filter(|n| serin::shard::of(&sim.namespace, n, 2) == i as u32)
            .collect();
        let got = eventually("a shard's metrics name its Rollouts", WAIT, || async {
            let got = reported(c).await;
            (got == want).then_some(got)
        })
        .await;
        seen.extend(got);
    }
    assert_eq!(
        seen,
        names(&sim.namespace).into_iter().collect::<BTreeSet<_>>(),
        "every Rollout has a shard"
    );

    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    for i in 0..2 {
        let lease = leases
            .get(&format!("serin-controller-{i}"))
            .await
            .expect("the shard's Lease");
        let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
        assert!(
            holder.ends_with(&format!("@{i}/2")),
            "serin-controller-{i} held by {holder}"
        );
    }
    assert!(
        leases.get_opt("serin-controller").await.ok().flatten().is_none(),
        "no unsharded Lease"
    );

    let (code, _, err) = serin_cmd("controller", &["--shard", "2/2"], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("I/N") && err.contains("2/2"), "{err}");
}

#[tokio::test]
async fn a_new_shard_count_waits_until_the_controllers_of_the_old_one_stop() {
    let sim = Cluster::start();
    sim.install_crds();
    let client = sim.client().await;
    let old = vec![shard(&sim, "0/2", "old-0.log"), shard(&sim, "1/2", "old-1.log")];
    sim.apply_yaml(&rollouts(&sim.namespace, "example/web:1", true));
    let v1 = all_healthy(&client, &BTreeMap::new()).await;

    // One controller of the new count starts beside the old ones, as a rolling update starts the
    // new Pods first: from then on nobody acts, since two could each take a Rollout as theirs.
    let mut new = vec![shard(&sim, "2/3", "new-2.log")];
    eventually("the old shards see the new count", WAIT, || async {
        old.iter()
            .all(|c| c.log().contains("controllers with another shard count hold Leases"))
            .then_some(())
    })
    .await;
    let before = statuses(&client).await;
    sim.apply_yaml(&rollouts(&sim.namespace, "example/web:2", false));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = statuses(&client).await;
    assert_eq!(before, during, "no controller acted while two shard counts ran");

    // The old ones stop, the rest of the new count starts: every Rollout is released once.
    for mut c in old {
        c.terminate();
    }
    new.push(shard(&sim, "0/3", "new-0.log"));
    new.push(shard(&sim, "1/3", "new-1.log"));
    all_healthy(&client, &v1).await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(client.clone());
    let list = events.list(&ListParams::default()).await.expect("events");
    for n in names(&sim.namespace) {
        let steps = list
            .items
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(n.as_str()))
            .filter(|e| e.reason.as_deref() == Some("StepCompleted"))
            .count();
        assert_eq!(steps, 2, "{n}: each of its 2 steps done once");
    }
    drop(new);
}
