//! Notifications and webhook gates, end to end: the real controller on `serin sim`, posting to
//! real HTTP receivers that answer as the test scripts them.

mod common;

use common::{Cluster, ControllerProc, WEB_SERVICES, eventually, web_rollout};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use serin::crd::rollout::{Phase, Rollout, RolloutStatus};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

/// An HTTP receiver: records every POST and answers with the codes scripted for its path
/// (the last code repeats; 200 when none is scripted).
#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    script: Arc<Mutex<HashMap<String, Vec<u16>>>>,
    port: u16,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut r = Receiver {
            port: listener.local_addr().expect("addr").port(),
            ..Default::default()
        };
        let state = r.clone();
        let app = axum::Router::new()
            .route(
                "/{*path}",
                axum::routing::post(
                    |axum::extract::State(s): axum::extract::State<Receiver>,
                     axum::extract::Path(path): axum::extract::Path<String>,
                     body: String| async move {
                        let path = format!("/{path}");
                        let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
                        s.calls.lock().unwrap().push((path.clone(), body));
                        let mut script = s.script.lock().unwrap();
                        let codes = script.entry(path).or_default();
                        let code = if codes.len() > 1 {
                            codes.remove(0)
                        } else {
                            codes.first().copied().unwrap_or(200)
                        };
                        axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::OK)
                    },
                ),
            )
            .with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r.script = r.script.clone();
        r
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn answer(&self, path: &str, codes: &[u16]) {
        self.script.lock().unwrap().insert(path.to_string(), codes.to_vec());
    }

    fn bodies(&self, path: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    fn paths(&self) -> Vec<String> {
        self.calls.lock().unwrap().iter().map(|(p, _)| p.clone()).collect()
    }
}

fn rollout_yaml(image: &str, steps: &str, extra_spec: &str, extra_canary: &str) -> String {
    let canary = format!("      steps: {steps}\n{extra_canary}");
    web_rollout(2, image, &[], extra_spec, &canary) + WEB_SERVICES
}

struct Env {
    sim: Cluster,
    client: kube::Client,
}

impl Env {
    async fn start() -> Env {
        let sim = Cluster::start();
        sim.install_crds();
        let client = sim.client().await;
        Env { sim, client }
    }

    async fn status(&self) -> RolloutStatus {
        let api: Api<Rollout> = Api::default_namespaced(self.client.clone());
        api.get("web").await.ok().and_then(|r| r.status).unwrap_or_default()
    }

    async fn wait_for(&self, what: &str, check: impl Fn(&RolloutStatus) -> bool) -> RolloutStatus {
        eventually(what, WAIT, || async {
            let st = self.status().await;
            check(&st).then_some(st)
        })
        .await
    }

    async fn events(&self, reason: &str) -> Vec<String> {
        let api: Api<Event> = Api::default_namespaced(self.client.clone());
        api.list(&ListParams::default().fields("involvedObject.name=web"))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.message.unwrap_or_default())
            .collect()
    }

    /// The first version, healthy, then the second released.
    async fn release(&self, yaml: impl Fn(&str) -> String) -> (String, String) {
        self.sim.apply_yaml(&yaml("example/web:1"));
        let v1 = self
            .wait_for("the first version is healthy", |s| s.phase == Some(Phase::Healthy))
            .await
            .stable_pod_hash
            .unwrap_or_default();
        self.sim.apply_yaml(&yaml("example/web:2"));
        let v2 = self
            .wait_for("the second version rolls out", |s| {
                s.current_pod_hash.is_some() && s.current_pod_hash != s.stable_pod_hash
            })
            .await
            .current_pod_hash
            .unwrap_or_default();
        (v1, v2)
    }
}

async fn metrics(c: &ControllerProc) -> String {
    reqwest::get(format!("http://127.0.0.1:{}/metrics", c.metrics_port))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

#[tokio::test]
async fn notifications_reach_slack_teams_and_webhooks_and_failures_show() {
    let e = Env::start().await;
    let ns = e.sim.namespace.clone();
    let rx = Receiver::start().await;
    rx.answer("/slack", &[500, 500, 200]);
    rx.answer("/broken", &[500]);
    // The Slack URL is a credential: it lives in a Secret. Teams is a default for every Rollout.
    e.sim.apply_yaml(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: slack-webhook}}
stringData: {{url: "{slack}"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: serin-notifications}}
data:
  targets.yaml: |
    - name: ops
      type: teams
      url: {teams}
      events: [Promoted]
"#,
        slack = rx.url("/slack"),
        teams = rx.url("/teams"),
    ));
    let notifications = format!(
        r##"  notifications:
    targets:
    - {{name: releases, type: slack, channel: "#releases", urlFrom: {{secretKeyRef: {{name: slack-webhook, key: url}}}}, events: [Promoted, Aborted]}}
    - {{name: audit, type: webhook, url: "{audit}"}}
    - {{name: dead, type: webhook, url: "{dead}", events: [Promoted]}}"##,
        audit = rx.url("/audit"),
        dead = rx.url("/broken"),
    );
    let controller = ControllerProc::start(&e.sim, "controller.log");
    let (_, v2) = e
        .release(|image| rollout_yaml(image, "[{setWeight: 50}, {pause: {duration: 1s}}]", &notifications, ""))
        .await;
    e.wait_for("promoted", |s| {
        s.phase == Some(Phase::Healthy) && s.stable_pod_hash.as_deref() == Some(v2.as_str())
    })
    .await;
    // A receiver that keeps failing did not hold the rollout: its retries are still going.
    assert!(e.events("NotificationFailed").await.is_empty());

    let audit = eventually("the audit webhook hears every step and the promotion", WAIT, || async {
        let b = rx.bodies("/audit");
        let events: Vec<&str> = b.iter().filter_map(|b| b["event"].as_str()).collect();
        (events.last() == Some(&"Promoted")).then_some(b)
    })
    .await;
    let events: Vec<&str> = audit.iter().filter_map(|b| b["event"].as_str()).collect();
    // In order: step 1, the timed pause of step 2, step 2, the promotion.
    assert_eq!(
        events,
        ["StepCompleted", "Paused", "StepCompleted", "Promoted"],
        "{audit:?}"
    );
    let promoted = &audit[3];
    assert_eq!(promoted["rollout"], json!({"namespace": ns, "name": "web"}));
    assert_eq!(promoted["revision"], v2.as_str());
    assert!(
        audit[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("step 1/2 done"),
        "{audit:?}"
    );

    // Slack answered 500 twice: the third try got through, and only Promoted was sent.
    let slack = eventually("Slack gets the promotion after two failures", WAIT, || async {
        let b = rx.bodies("/slack");
        (b.len() == 3).then_some(b)
    })
    .await;
    assert!(slack.iter().all(|b| b == &slack[0]), "the same message, retried");
    assert_eq!(slack[0]["channel"], "#releases");
    assert!(
        slack[0]["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("{ns}/web: Promoted"))
    );

    let teams = eventually("Teams, a default target, gets an Adaptive Card", WAIT, || async {
        rx.bodies("/teams").into_iter().next()
    })
    .await;
    let card = &teams["attachments"][0];
    assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(card["content"]["body"][0]["text"], format!("{ns}/web: Promoted"));

    let failed = eventually("the dead target is an Event", WAIT, || async {
        e.events("NotificationFailed").await.into_iter().next()
    })
    .await;
    assert!(
        failed.contains("could not notify dead (webhook) of Promoted after 4 attempts: HTTP 500"),
        "{failed}"
    );
    assert_eq!(rx.bodies("/broken").len(), 4);
    let text = metrics(&controller).await;
    for line in [
        r#"serin_notifications_total{type="webhook",outcome="failed"} 1"#,
        r#"serin_notifications_total{type="slack",outcome="sent"} 1"#,
        r#"serin_notifications_total{type="teams",outcome="sent"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    assert!(
        !controller.log().contains(&rx.url("/slack")),
        "a URL from a Secret is never logged"
    );
}

#[tokio::test]
async fn webhook_gates_hold_test_and_confirm_a_rollout() {
    let e = Env::start().await;
    let ns = e.sim.namespace.clone();
    let rx = Receiver::start().await;
    rx.answer("/approve", &[403]);
    let hooks = format!(
        r#"      webhooks:
      - {{name: smoke, type: pre-rollout, url: "{pre}", metadata: {{cmd: "curl -s http://web-canary/"}}}}
      - {{name: load, type: rollout, url: "{load}"}}
      - {{name: approval, type: confirm-promotion, url: "{approve}", interval: 1s}}
      - {{name: report, type: post-rollout, url: "{post}"}}"#,
        pre = rx.url("/pre"),
        load = rx.url("/load"),
        approve = rx.url("/approve"),
        post = rx.url("/post"),
    );
    let _controller = ControllerProc::start(&e.sim, "controller.log");
    let (v1, v2) = e
        .release(|image| rollout_yaml(image, "[{setWeight: 50}, {pause: {duration: 1s}}]", "", &hooks))
        .await;
    let waiting = e
        .wait_for("paused for the confirmation", |s| {
            s.phase == Some(Phase::Paused) && s.webhooks.iter().any(|w| w.name == "approval")
        })
        .await;
    assert!(
        waiting
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("waiting for webhook approval to confirm promotion (HTTP 403)"),
        "{:?}",
        waiting.message
    );
    assert_eq!(
        waiting.stable_pod_hash.as_deref(),
        Some(v1.as_str()),
        "not promoted yet"
    );
    let approval = waiting.webhooks.iter().find(|w| w.name == "approval").cloned().unwrap();
    assert_eq!(
        (approval.verdict.as_str(), approval.message.as_str()),
        ("Failed", "HTTP 403")
    );

    // Flagger's payload, with the version's hash as the checksum; pre-rollout came first.
    let pre = rx.bodies("/pre");
    assert_eq!(
        pre,
        vec![
            json!({"name": "web", "namespace": ns, "phase": "Progressing", "checksum": v2,
                    "metadata": {"cmd": "curl -s http://web-canary/"}})
        ]
    );
    assert_eq!(rx.paths().first().map(String::as_str), Some("/pre"));
    assert_eq!(rx.bodies("/load").len(), 2, "the rollout gate is asked once per step");
    let asked = rx.bodies("/approve");
    assert!(
        !asked.is_empty() && asked.iter().all(|b| b["phase"] == "Promoting"),
        "{asked:?}"
    );

    rx.answer("/approve", &[200]);
    e.wait_for("promoted once approved", |s| {
        s.phase == Some(Phase::Healthy) && s.stable_pod_hash.as_deref() == Some(v2.as_str())
    })
    .await;
    let post = eventually("post-rollout hears of the promotion", WAIT, || async {
        rx.bodies("/post").into_iter().next()
    })
    .await;
    assert_eq!(post["phase"], "Succeeded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.bodies("/post").len(), 1, "once");
}

#[tokio::test]
async fn failing_gates_and_rollback_gates_abort() {
    let e = Env::start().await;
    let rx = Receiver::start().await;
    rx.answer("/load", &[500]);
    let hooks = format!(
        r#"      webhooks:
      - {{name: load, type: rollout, url: "{load}", failureLimit: 1, interval: 1s, timeout: 2s}}"#,
        load = rx.url("/load"),
    );
    let controller = ControllerProc::start(&e.sim, "controller.log");
    let (v1, _) = e
        .release(|image| rollout_yaml(image, "[{setWeight: 50}, {pause: {}}]", "", &hooks))
        .await;
    let aborted = e
        .wait_for("aborted by the failing gate", |s| s.abort == Some(true))
        .await;
    assert_eq!(aborted.stable_pod_hash.as_deref(), Some(v1.as_str()));
    let why = e.events("Aborted").await;
    assert!(
        why.iter().any(|m| m.contains("webhook load failed 2 times (HTTP 500)")),
        "{why:?}"
    );
    assert_eq!(
        rx.bodies("/load").len(),
        2,
        "one failure allowed, the second aborts: {:#?}\n{}",
        rx.bodies("/load"),
        controller.log()
    );
    assert_eq!(e.events("WebhookFailed").await.len(), 2);

    // A rollback gate that says yes takes the next version back.
    let hooks = format!(
        r#"      webhooks:
      - {{name: panic-button, type: rollback, url: "{stop}", interval: 1s}}"#,
        stop = rx.url("/stop"),
    );
    rx.answer("/stop", &[404, 404, 200]);
    e.sim.apply_yaml(&rollout_yaml(
        "example/web:3",
        "[{setWeight: 50}, {pause: {}}]",
        "",
        &hooks,
    ));
    e.wait_for("aborted by the rollback gate", |s| {
        s.abort == Some(true) && s.current_pod_hash.as_deref() != aborted.current_pod_hash.as_deref()
    })
    .await;
    let why = e.events("Aborted").await;
    assert!(
        why.iter()
            .any(|m| m.contains("webhook panic-button asked for a rollback")),
        "{why:?}"
    );
    assert_eq!(rx.bodies("/stop").len(), 3);
}

#[tokio::test]
async fn the_shipped_hook_examples_are_accepted() {
    let e = Env::start().await;
    e.sim.kubectl_ok(&["create", "namespace", "serin-system"]);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    for file in ["rollout-with-hooks.yaml", "notifications-defaults.yaml"] {
        let path = dir.join(file);
        e.sim
            .kubectl_ok(&["apply", "--server-side", "-f", path.to_str().unwrap_or_default()]);
    }
    let api: Api<Rollout> = Api::default_namespaced(e.client.clone());
    let r = api.get("web").await.expect("the example Rollout");
    let canary = r.spec.strategy.canary.expect("canary");
    assert_eq!(canary.webhooks.len(), 4);
    let targets = r.spec.notifications.expect("notifications").targets;
    assert_eq!(targets[0].events.as_ref().map(Vec::len), Some(4));
}
