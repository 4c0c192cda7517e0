//! `serin plan` through the real binary: timelines of the shipped examples, the controller's
//! messages for a bad spec, and a release on the simulated cluster that walks the weights and
//! pauses its plan printed.

mod common;

use common::{Cluster, ControllerProc, eventually};
use kube::api::Api;
use serde_json::Value;
use serin::crd::rollout::{Phase, Rollout};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);

fn example(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn plan(args: &[&str], input: Option<&str>) -> (i32, String, String) {
    common::serin_cmd("plan", args, input)
}

#[test]
fn every_shipped_rollout_has_a_timeline() {
    let templates: Vec<String> = [
        "analysis-error-rate.yaml",
        "analysis-latency-p99.yaml",
        "analysis-compare.yaml",
        "analysis-job.yaml",
        "analysis-web.yaml",
    ]
    .iter()
    .map(|t| example(t))
    .collect();
    for file in [
        "rollout.yaml",
        "rollout-with-analysis.yaml",
        "rollout-gateway-api.yaml",
        "rollout-nginx.yaml",
        "rollout-istio.yaml",
        "rollout-smi.yaml",
        "rollout-blue-green.yaml",
        "rollout-with-hooks.yaml",
    ] {
        let mut args = vec![example(file)];
        args.extend(templates.iter().cloned());
        args.extend(["--rps".to_string(), "50".to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = plan(&args, None);
        assert_eq!(code, 0, "{file}: {err}");
        assert!(out.contains("Full promotion: earliest"), "{file}:\n{out}");
        assert!(out.contains("REQUESTS TO NEW (at 50 rps)"), "{file}:\n{out}");
        assert!(!out.contains("cannot start"), "{file}: every template is given:\n{out}");
    }
}

#[test]
fn the_gateway_example_reads_as_its_steps() {
    let (code, out, err) = plan(&[&example("rollout-gateway-api.yaml"), "--rps", "100"], None);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    let what_and_traffic: Vec<(&str, &str)> = rows.iter().map(|r| (r[1], r[2])).collect();
    assert_eq!(
        &what_and_traffic[..5],
        [
            ("setWeight 5", "5%"),
            ("pause 1m", "5%"),
            ("setWeight 25", "25%"),
            ("pause until promoted", "25%"),
            ("setWeight 50", "50%"),
        ],
        "{out}"
    );
    assert!(
        rows[1].contains(&"1m") && rows[1].contains(&"300"),
        "5% of 100 rps for 1m: {out}"
    );
    assert!(out.contains("`kubectl serin promote` is needed at step 4"), "{out}");
}

#[test]
fn json_output_and_stdin() {
    let text = std::fs::read_to_string(example("rollout-gateway-api.yaml")).expect("example");
    let (code, out, err) = plan(&["-o", "json"], Some(&text));
    assert_eq!(code, 0, "{err}");
    let t: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(t["name"], "web");
    assert_eq!(t["strategy"], "canary");
    assert_eq!(t["steps"][1]["lasts"][0], 60.0);
    assert_eq!(t["waitsForPeople"], serde_json::json!([3]));
}

#[test]
fn a_bad_spec_gets_the_controllers_words_and_a_non_zero_exit() {
    let bad = "apiVersion: serin.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: web, image: web:1}]}
  strategy: {canary: {steps: [{setWeight: 20}]}}
";
    let (code, _, err) = plan(&[], Some(bad));
    assert_ne!(code, 0);
    assert!(
        err.contains("rollout web: spec.selector does not select the template's labels"),
        "{err}"
    );
    let argo = bad.replace("serin.dev/v1alpha1", "argoproj.io/v1alpha1");
    let (code, _, err) = plan(&[], Some(&argo));
    assert_ne!(code, 0);
    assert!(err.contains("serin convert"), "{err}");
    let (code, _, err) = plan(&["/no/such/file.yaml"], None);
    assert_ne!(code, 0);
    assert!(err.contains("cannot read /no/such/file.yaml"), "{err}");
    let (code, _, err) = plan(&[], Some("kind: [unclosed"));
    assert_ne!(code, 0);
    assert!(err.contains("stdin is not YAML"), "{err}");
    let (code, _, err) = plan(&["--rps=-3", &example("rollout.yaml")], None);
    assert_ne!(code, 0);
    assert!(err.contains("--rps"), "{err}");
}

/// The plan's weights, then a release of the same example on the simulated cluster: the route
/// walks those weights in that order, and the timed pause lasts what the plan says.
#[tokio::test]
async fn the_gateway_example_follows_its_plan() {
    let file = example("rollout-gateway-api.yaml");
    let (code, out, err) = plan(&[&file, "-o", "json"], None);
    assert_eq!(code, 0, "{err}");
    let t: Value = serde_json::from_str(&out).expect("JSON");
    let mut planned: Vec<i64> = Vec::new();
    for s in t["steps"].as_array().expect("steps") {
        let w = s["traffic"].as_f64().expect("traffic").round() as i64;
        if planned.last() != Some(&w) {
            planned.push(w);
        }
    }
    let pause_planned = t["steps"][1]["lasts"][0].as_f64().expect("pause");

    let sim = Cluster::start();
    sim.install_crds();
    sim.install_crd_file(&common::httproute_crd());
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let _controller = ControllerProc::start(&sim, "controller.log");
    sim.kubectl_ok(&["apply", "--server-side", "-f", &file]);
    eventually("version 1 healthy", WAIT, || async {
        let r = rollouts.get("web").await.ok()?;
        (r.status?.phase == Some(Phase::Healthy)).then_some(())
    })
    .await;
    let seen = common::watch_route_weights(&client, "web");
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2.0"]);
    eventually("paused until promoted", WAIT, || async {
        let st = rollouts.get("web").await.ok()?.status?;
        (st.phase == Some(Phase::Paused) && st.current_step_index == Some(3)).then_some(())
    })
    .await;
    sim.kubectl_serin_ok(&["promote", "web"]);
    eventually("version 2 healthy", WAIT, || async {
        let st = rollouts.get("web").await.ok()?.status?;
        (st.phase == Some(Phase::Healthy) && st.stable_pod_hash == st.current_pod_hash).then_some(())
    })
    .await;
    let seen: Vec<(i64, Instant)> = seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(w, at)| (w.1, *at))
        .collect();
    let weights: Vec<i64> = seen.iter().map(|s| s.0).collect();
    // The update starts from 0 and the route is reset once the new version is stable.
    let walked: Vec<i64> = weights
        .iter()
        .copied()
        .skip_while(|w| *w == 0)
        .take_while(|w| *w != 0)
        .collect();
    assert_eq!(walked, planned, "planned {planned:?}, the route showed {weights:?}");
    let at = |w: i64| seen.iter().find(|s| s.0 == w).map(|s| s.1).expect("seen");
    let pause = at(25).duration_since(at(5)).as_secs_f64();
    // Status times are whole seconds: a pause may end up to a second early.
    assert!(
        pause >= pause_planned - 1.0 && pause < pause_planned + 10.0,
        "the 1m pause lasted {pause:.1}s, planned {pause_planned}s"
    );
}

/// Without a router the plan is in Pods: the quick-start example holds the planned Pods of each
/// version at each pause, and its timed pause lasts what the plan says.
#[tokio::test]
async fn the_quick_start_example_holds_the_planned_pods() {
    let file = example("rollout.yaml");
    let (code, out, err) = plan(&[&file, "-o", "json"], None);
    assert_eq!(code, 0, "{err}");
    let t: Value = serde_json::from_str(&out).expect("JSON");
    let pods = |i: usize| {
        (
            t["steps"][i]["newPods"].as_i64().unwrap_or(-1),
            t["steps"][i]["oldPods"].as_i64().unwrap_or(-1),
        )
    };
    let pause_planned = t["steps"][3]["lasts"][0].as_f64().expect("pause");

    let sim = Cluster::start();
    sim.install_crds();
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let replica_sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::default_namespaced(client.clone());
    let _controller = ControllerProc::start(&sim, "controller.log");
    sim.kubectl_ok(&["apply", "--server-side", "-f", &file]);
    eventually("version 1 healthy", WAIT, || async {
        let r = rollouts.get("web").await.ok()?;
        (r.status?.phase == Some(Phase::Healthy)).then_some(())
    })
    .await;
    let sizes = || async {
        let st = rollouts.get("web").await.ok()?.status?;
        let (new, old) = (st.current_pod_hash?, st.stable_pod_hash?);
        let mut n = (0, 0);
        for rs in replica_sets.list(&Default::default()).await.ok()? {
            let hash = rs.metadata.labels.as_ref()?.get(serin::plan::HASH_LABEL)?.clone();
            let size = i64::from(rs.spec.as_ref()?.replicas.unwrap_or(0));
            if hash == new {
                n.0 += size;
            } else if hash == old {
                n.1 += size;
            }
        }
        Some((st.current_step_index, st.phase, n))
    };
    sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2.0"]);
    eventually("the planned Pods at the first pause", WAIT, || async {
        let (idx, phase, n) = sizes().await?;
        (idx == Some(1) && phase == Some(Phase::Paused) && n == pods(1)).then_some(())
    })
    .await;
    sim.kubectl_serin_ok(&["promote", "web"]);
    let paused_at = eventually("the planned Pods at the timed pause", WAIT, || async {
        let (idx, _, n) = sizes().await?;
        (idx == Some(3) && n == pods(3)).then(Instant::now)
    })
    .await;
    eventually("version 2 stable", WAIT, || async {
        let st = rollouts.get("web").await.ok()?.status?;
        (st.stable_pod_hash == st.current_pod_hash).then_some(())
    })
    .await;
    let pause = paused_at.elapsed().as_secs_f64();
    assert!(
        pause >= pause_planned - 1.0 && pause < pause_planned + 10.0,
        "the 30s pause lasted {pause:.1}s, planned {pause_planned}s"
    );
}

/// A reader that stops early (`serin crds | head`) ends the output quietly, without a panic.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    for args in [vec!["crds"], vec!["plan", "-o", "json", "deploy/examples/rollout.yaml"]] {
        let mut child = std::process::Command::new(common::serin_bin())
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("serin runs");
        let mut first = [0u8; 16];
        let mut stdout = child.stdout.take().expect("stdout");
        stdout.read_exact(&mut first).expect("some output");
        drop(stdout);
        let out = child.wait_with_output().expect("ends");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "serin {args:?}: {err}");
        assert!(out.status.success(), "serin {args:?}: {err}");
    }
}
