//! Resilience: rollouts end right with the API server failing, throttling, delaying and cutting
//! watches; a controller killed at seeded random moments ends where an undisturbed one does,
//! with traffic never above the current step's weight; a broken Prometheus never promotes.
//! Sizes grow with SERIN_SOAK_N (`make soak`); SERIN_SOAK_SEED picks the kill moments.

mod common;

use common::{Cluster, ControllerProc, eventually, named_rollout, services_of};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use serin::crd::rollout::{Phase, RolloutStatus};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn soak_n(small: usize) -> usize {
    std::env::var("SERIN_SOAK_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(small)
}

fn wait() -> Duration {
    Duration::from_secs(60 + 2 * soak_n(0) as u64)
}

const STEP_WEIGHTS: [(i32, i32); 4] = [(0, 20), (1, 20), (2, 60), (3, 60)];
const STEPS: &str = "      steps: [{setWeight: 20}, {pause: {duration: 1s}}, {setWeight: 60}, {pause: {duration: 1s}}]";

/// The weight the rollout may send to its canary at a step (the last setWeight at or before it).
fn allowed_weight(step: i32) -> i32 {
    STEP_WEIGHTS
        .iter()
        .filter(|(s, _)| *s <= step)
        .map(|(_, w)| *w)
        .next_back()
        .unwrap_or(100)
        .max(if step >= 4 { 100 } else { 0 })
}

fn route(name: &str) -> String {
    format!(
        r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  rules:
  - backendRefs:
    - {{name: {name}-stable, port: 80, weight: 100}}
    - {{name: {name}-canary, port: 80, weight: 0}}
"#
    )
}

fn rollout(name: &str, image: &str, routed: bool) -> String {
    let canary = if routed {
        format!("      scaleDownDelaySeconds: 0\n      trafficRouting: {{gatewayAPI: {{httpRoute: {name}}}}}\n{STEPS}")
    } else {
        STEPS.to_string()
    };
    named_rollout(name, 2, image, &[], "", &canary)
        + &services_of(name)
        + &if routed { route(name) } else { String::new() }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("app{i}")).collect()
}

async fn statuses(client: &kube::Client) -> BTreeMap<String, RolloutStatus> {
    common::rollout_statuses(client).await
}

fn promoted(st: &RolloutStatus, v1: Option<&String>) -> bool {
    st.phase == Some(Phase::Healthy)
        && st.stable_pod_hash.is_some()
        && st.stable_pod_hash == st.current_pod_hash
        && st.stable_pod_hash.as_ref() != v1
}

/// Applies version 1 of every rollout and waits until all are healthy; returns their v1 hashes.
async fn healthy_v1(sim: &Cluster, client: &kube::Client, names: &[String], routed: bool) -> BTreeMap<String, String> {
    let yaml: String = names
        .iter()
        .map(|n| rollout(n, "example/web:1", routed) + "\n---\n")
        .collect();
    sim.apply_yaml(&yaml);
    eventually("every rollout healthy on version 1", wait(), || async {
        let all = statuses(client).await;
        (all.len() == names.len() && all.values().all(|s| s.phase == Some(Phase::Healthy))).then(|| {
            all.into_iter()
                .map(|(n, s)| (n, s.stable_pod_hash.unwrap_or_default()))
                .collect()
        })
    })
    .await
}

fn release(sim: &Cluster, names: &[String], routed: bool) {
    let yaml: String = names
        .iter()
        .map(|n| rollout(n, "example/web:2", routed) + "\n---\n")
        .collect();
    sim.apply_yaml(&yaml);
}

async fn injected(sim: &Cluster) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (k, n) in sim
        .requests()
        .await
        .into_iter()
        .filter(|(k, _)| k.client == "serin-controller")
    {
        *out.entry(k.code.to_string()).or_default() += n;
    }
    out
}

#[tokio::test]
async fn rollouts_end_right_while_the_api_server_fails() {
    let sim = Cluster::start_with_faults();
    sim.install_crds();
    let client = sim.client().await;
    let names = names(soak_n(4));
    let controller = ControllerProc::start(&sim, "controller.log");
    let v1 = healthy_v1(&sim, &client, &names, false).await;
    sim.set_faults(json!({
        "client": "serin-controller",
        "conflict": 0.1, "throttle": 0.05, "error": 0.05,
        "delay": 0.1, "delayMs": 100,
        "cutWatchesAfterMs": 1500, "expire": 0.2,
        "seed": 7
    }))
    .await;
    release(&sim, &names, false);
    let released = Instant::now();
    loop {
        let all = statuses(&client).await;
        if all.iter().all(|(n, s)| promoted(s, v1.get(n))) {
            break;
        }
        // Cut watches back off up to 30 s each (client-go's and kube-rs' reflectors alike), and a
        // restart told 410 backs off again: under these faults a watch may stay down that long.
        if released.elapsed() > wait() + Duration::from_secs(60) {
            let log = controller.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            panic!(
                "not every rollout was promoted despite the faults: {all:#?}\ncontroller log, last lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Watches are cut every 1.5s; a fifth of the restarts are told their resourceVersion expired.
    let codes = eventually("every kind of fault was injected", wait(), || async {
        let codes = injected(&sim).await;
        ["409", "429", "500", "410"]
            .iter()
            .all(|c| codes.get(*c).copied().unwrap_or(0) > 0)
            .then_some(codes)
    })
    .await;
    eprintln!("answers to the controller under faults: {codes:?}");
    // Still right after the controller relisted through the faults.
    let all = statuses(&client).await;
    assert!(all.iter().all(|(n, s)| promoted(s, v1.get(n))), "{all:?}");
    assert_eq!(sim.faults().await["conflict"], 0.1);
}

/// What a run ends with, without names that differ between clusters (uids, times).
async fn final_state(client: &kube::Client) -> Value {
    let mut out = serde_json::Map::new();
    for (name, st) in statuses(client).await {
        out.insert(
            name,
            json!({
                "phase": st.phase,
                "stable": st.stable_pod_hash,
                "current": st.current_pod_hash,
                "step": st.current_step_index,
                "weight": st.canary_weight,
                "abort": st.abort,
            }),
        );
    }
    let rs: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::default_namespaced(client.clone());
    let mut sizes: Vec<(String, i32)> = rs
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            (
                r.metadata.name.unwrap_or_default(),
                r.spec.and_then(|s| s.replicas).unwrap_or(0),
            )
        })
        .collect();
    sizes.sort();
    out.insert("replicaSets".into(), json!(sizes));
    out.insert("routes".into(), json!(route_weights(client).await));
    Value::Object(out)
}

async fn route_weights(client: &kube::Client) -> BTreeMap<String, i64> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let routes: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &ApiResource::from_gvk(&gvk));
    routes
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let name = r.metadata.name.clone().unwrap_or_default();
            let weight = r.data["spec"]["rules"][0]["backendRefs"]
                .as_array()
                .and_then(|b| b.iter().find(|b| b["name"] == format!("{name}-canary")))
                .and_then(|b| b["weight"].as_i64())
                .unwrap_or(0);
            (name, weight)
        })
        .collect()
}

/// What happens to the controllers during a release.
#[derive(Clone, Debug, Default)]
struct Schedule {
    /// Shards at the start; 1 is one unsharded controller.
    shards: u32,
    /// Moments after the release to kill a controller (the shards by turns) and start it again.
    kills: Vec<Duration>,
    /// A moment to change the shard count, and the new count. As a rolling update does it, the
    /// new controllers start first, then the old ones get SIGTERM.
    reshard: Option<(Duration, u32)>,
}

fn start_shard(sim: &Cluster, shard: u32, of: u32, log: &str) -> ControllerProc {
    let spec = format!("--shard={shard}/{of}");
    let mut args = vec!["--leader-election-lease-duration=2"];
    if of > 1 {
        args.push(&spec);
    }
    ControllerProc::start_with(sim, log, &args)
}

/// Runs the routed release to the end with the controllers as `schedule` says, sampling route
/// weights against the steps throughout: a route never runs ahead of the step the status shows,
/// and never goes back to a lower weight of a step already passed.
async fn routed_run(schedule: &Schedule, label: &str) -> (Value, usize) {
    let sim = Cluster::start();
    sim.install_crds();
    sim.install_crd_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/sim/crds/httproutes.gateway.networking.k8s.io.yaml"),
    );
    let client = sim.client().await;
    let names = names(soak_n(4));
    let mut count = schedule.shards.max(1);
    let mut controllers: Vec<ControllerProc> = (0..count)
        .map(|i| start_shard(&sim, i, count, &format!("{label}-{i}-of-{count}-0.log")))
        .collect();
    let v1 = healthy_v1(&sim, &client, &names, true).await;
    release(&sim, &names, true);
    let released = Instant::now();
    let mut pending: Vec<Duration> = schedule.kills.clone();
    let mut reshard = schedule.reshard;
    let (mut samples, mut restarts) = (0, 0);
    let mut highest: BTreeMap<String, i64> = BTreeMap::new();
    loop {
        if pending.first().is_some_and(|k| released.elapsed() >= *k) {
            pending.remove(0);
            let which = restarts % controllers.len();
            controllers[which].kill();
            restarts += 1;
            controllers[which] = start_shard(
                &sim,
                which as u32,
                count,
                &format!("{label}-{which}-of-{count}-{restarts}.log"),
            );
        }
        if let Some((_, to)) = reshard.filter(|(at, _)| released.elapsed() >= *at) {
            reshard = None;
            let old = std::mem::replace(
                &mut controllers,
                (0..to)
                    .map(|i| start_shard(&sim, i, to, &format!("{label}-{i}-of-{to}-0.log")))
                    .collect(),
            );
            count = to;
            tokio::time::sleep(Duration::from_millis(300)).await;
            for mut c in old {
                c.terminate();
            }
        }
        // Routes first, then status. The controller moves traffic before it records the step it
        // moved to (traffic first, status last), so a route may be one step ahead of the status
        // read after it, never more: a controller that jumps ahead after a restart is caught.
        let weights = route_weights(&client).await;
        let all = statuses(&client).await;
        for (name, w) in &weights {
            let Some(st) = all.get(name) else { continue };
            if st.current_pod_hash == st.stable_pod_hash || st.abort == Some(true) {
                continue;
            }
            let step = st.current_step_index.unwrap_or(0);
            assert!(
                *w as i32 <= allowed_weight(step + 1),
                "{label}: {name} sends {w}% to its canary at step {step}"
            );
            // A step taken again would send less than a step before it did. (A route at 0 is the
            // promotion's switch, written just before the status that says so.)
            let before = highest.entry(name.clone()).or_default();
            assert!(
                *w == 0 || *w >= *before,
                "{label}: {name} went back from {before}% to {w}% at step {step}"
            );
            *before = (*before).max(*w);
            samples += 1;
        }
        let done = all.len() == names.len() && all.iter().all(|(n, s)| promoted(s, v1.get(n)));
        if pending.is_empty() && reshard.is_none() && done {
            break;
        }
        assert!(
            released.elapsed() < wait(),
            "{label}: the release did not finish: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // Let the last writes (old ReplicaSets to 0) land.
    let state = eventually("the final state settles", wait(), || async {
        let a = final_state(&client).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let b = final_state(&client).await;
        (a == b).then_some(a)
    })
    .await;
    drop(controllers);
    (state, samples)
}

fn seeded_kills(rng: &mut rand::rngs::StdRng) -> Vec<Duration> {
    let mut kills: Vec<Duration> = (0..3 + soak_n(0) / 10)
        .map(|_| Duration::from_millis(rng.random_range(100..4000)))
        .collect();
    kills.sort();
    kills
}

fn seed() -> u64 {
    std::env::var("SERIN_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42)
}

#[tokio::test]
async fn seeded_kills_end_where_an_undisturbed_run_ends() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let kills = seeded_kills(&mut rng);
    let calm = Schedule {
        shards: 1,
        ..Default::default()
    };
    let (calm, calm_samples) = routed_run(&calm, "calm").await;
    let killed = Schedule {
        shards: 1,
        kills: kills.clone(),
        ..Default::default()
    };
    let (killed, killed_samples) = routed_run(&killed, "killed").await;
    eprintln!("seed {seed}: kills at {kills:?}; {calm_samples} and {killed_samples} weight samples");
    // Hashes are of the templates, so both clusters name the versions alike.
    assert_eq!(calm, killed, "seed {seed}, kills at {kills:?}");
    assert!(killed_samples > 10, "the weights were sampled during the release");
}

#[tokio::test]
async fn shards_killed_and_resharded_mid_release_end_where_one_calm_controller_ends() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(1));
    let kills = seeded_kills(&mut rng);
    let reshard_at = Duration::from_millis(rng.random_range(500..3000));
    let calm = Schedule {
        shards: 1,
        ..Default::default()
    };
    let (calm, _) = routed_run(&calm, "calm").await;
    let sharded = Schedule {
        shards: 2,
        kills: kills.clone(),
        reshard: Some((reshard_at, 3)),
    };
    let (ended, samples) = routed_run(&sharded, "sharded").await;
    eprintln!("seed {seed}: kills at {kills:?}, 2 → 3 shards at {reshard_at:?}; {samples} weight samples");
    assert_eq!(calm, ended, "seed {seed}: {sharded:?}");
    assert!(samples > 10, "the weights were sampled during the release");
}

/// A fake Prometheus: answers every query with `body` after `delay`.
async fn fake_prometheus(body: &'static str, delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let answer = move || async move {
        tokio::time::sleep(delay).await;
        ([("content-type", "application/json")], body)
    };
    let app = axum::Router::new()
        .route("/api/v1/query", axum::routing::get(answer).post(answer))
        .fallback(answer);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_garbled_or_slow_prometheus_never_promotes() {
    let sim = Cluster::start();
    sim.install_crds();
    let client = sim.client().await;
    let garbage = fake_prometheus("<html>502 Bad Gateway</html>", Duration::ZERO).await;
    let wrong = fake_prometheus(
        r#"{"status":"success","data":{"resultType":"string","result":[1,"up"]}}"#,
        Duration::ZERO,
    )
    .await;
    let slow = fake_prometheus(
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0"]}]}}"#,
        Duration::from_secs(5),
    )
    .await;
    let _controller = ControllerProc::start(&sim, "controller.log");
    let cases = [("garbage", garbage), ("wrong", wrong), ("slow", slow)];
    let mut yaml = String::new();
    for (name, address) in &cases {
        yaml += &format!(
            r#"
apiVersion: serin.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}}}
spec:
  metrics:
  - name: error-rate
    interval: 1s
    count: 3
    consecutiveErrorLimit: 1
    successCondition: "result < 0.05"
    provider:
      prometheus: {{address: "{address}", query: "vector(0)", timeout: 1s}}
---
"#
        );
        let steps =
            format!("      steps: [{{setWeight: 50}}, {{analysis: {{templates: [{{templateName: {name}}}]}}}}]");
        yaml += &(named_rollout(name, 2, "example/web:1", &[], "", &steps) + &services_of(name) + "\n---\n");
    }
    sim.apply_yaml(&yaml);
    eventually("version 1 everywhere", wait(), || async {
        let all = statuses(&client).await;
        (all.len() == 3 && all.values().all(|s| s.phase == Some(Phase::Healthy))).then_some(())
    })
    .await;
    let v1: BTreeMap<String, String> = statuses(&client)
        .await
        .into_iter()
        .map(|(n, s)| (n, s.stable_pod_hash.unwrap_or_default()))
        .collect();
    sim.apply_yaml(&yaml.replace("example/web:1", "example/web:2"));
    let held = eventually("each analysis errs and holds its rollout", wait(), || async {
        let all = statuses(&client).await;
        all.values()
            .all(|s| s.phase == Some(Phase::Paused) && s.current_pod_hash != s.stable_pod_hash)
            .then_some(all)
    })
    .await;
    for (name, st) in &held {
        let message = st.message.clone().unwrap_or_default();
        assert!(message.contains("error"), "{name}: {message}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (name, st) in statuses(&client).await {
        assert_eq!(st.stable_pod_hash.as_ref(), v1.get(&name), "{name} was never promoted");
        assert_ne!(st.phase, Some(Phase::Healthy), "{name}");
    }
}
