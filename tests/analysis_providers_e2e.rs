//! The analysis providers end to end: AnalysisRuns written as a user (or the Rollout controller)
//! writes them, measured by the real `serin controller` against `serin sim` — a web endpoint of
//! this test's own, Jobs run by the simulated cluster, a real Prometheus — and Secrets that must
//! never show.

mod common;

use common::{Cluster, ControllerProc, Prometheus, eventually, web_rollout};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, ListParams};
use serin::crd::analysis::{AnalysisPhase, AnalysisRun, AnalysisRunStatus};
use serin::crd::rollout::{Phase, Rollout};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "s3cr3t-t0ken-42";

/// A GET route answering `body` to requests whose `Authorization` is `auth`, 401 to others.
fn bearer(auth: String, body: &'static str) -> axum::routing::MethodRouter {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    axum::routing::get(move |headers: HeaderMap| async move {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        if given == auth {
            (StatusCode::OK, body).into_response()
        } else {
            (StatusCode::UNAUTHORIZED, "no").into_response()
        }
    })
}

/// A web endpoint with answers to judge: good, bad, not JSON, slow, and one behind a token.
async fn start_web() -> String {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/pass",
            get(|| async { r#"{"data": {"ok": true, "errorRate": 0.01}}"# }),
        )
        .route(
            "/fail",
            get(|| async { r#"{"data": {"ok": false, "errorRate": 0.3}}"# }),
        )
        .route("/bad", get(|| async { "<html>maintenance</html>" }))
        .route("/text", get(|| async { "I am OK\n" }))
        .route(
            "/page",
            get(|| async { ([("content-type", "text/html")], "<html>I am OK</html>") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(4)).await;
                r#"{"data": {"ok": true}}"#
            }),
        )
        .route("/guarded", bearer(format!("Bearer {TOKEN}"), r#"{"ok": true}"#))
        // An OAuth2 token endpoint (client credentials) and an endpoint that wants its token.
        .route(
            "/token",
            axum::routing::post(|body: String| async move {
                if body.contains("grant_type=client_credentials") && body.contains(&format!("client_secret={TOKEN}")) {
                    (
                        StatusCode::OK,
                        r#"{"access_token": "issued-7", "token_type": "Bearer", "expires_in": 60}"#,
                    )
                        .into_response()
                } else {
                    (StatusCode::UNAUTHORIZED, "no").into_response()
                }
            }),
        )
        .route("/oauth", bearer("Bearer issued-7".into(), r#"{"ok": true}"#))
        .route(
            "/api/v1/health",
            bearer(
                format!("Bearer {TOKEN}"),
                r#"{"data": {"healthy": true, "errorRate": 0.01}}"#,
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

struct Env {
    sim: Cluster,
    runs: Api<AnalysisRun>,
    controller: ControllerProc,
}

async fn env() -> Env {
    env_with(&[]).await
}

async fn env_with(extra: &[&str]) -> Env {
    let sim = Cluster::start();
    sim.install_crds();
    let client = sim.client().await;
    let args: Vec<&str> = ["--leader-election-lease-duration=2"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let controller = ControllerProc::start_with(&sim, "controller.log", &args);
    Env {
        runs: Api::default_namespaced(client),
        sim,
        controller,
    }
}

impl Env {
    async fn finished(&self, name: &str) -> AnalysisRunStatus {
        eventually(&format!("run {name} to end"), WAIT, || async {
            let st = self.runs.get(name).await.ok()?.status?;
            st.phase.is_some_and(|p| p.is_finished()).then_some(st)
        })
        .await
    }
}

fn run(name: &str, metrics: &str, args: &str) -> String {
    format!(
        "apiVersion: serin.dev/v1alpha1\nkind: AnalysisRun\nmetadata: {{name: {name}}}\nspec:\n  args: {args}\n  metrics:\n{metrics}"
    )
}

fn web_metric(name: &str, url: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    interval: 1s\n    count: 2\n    consecutiveErrorLimit: 1\n    successCondition: result == true\n    provider:\n      web:\n        url: \"{url}\"\n        jsonPath: \"{{$.data.ok}}\"\n{extra}"
    )
}

#[tokio::test]
async fn web_answers_pass_fail_and_errors_are_never_a_pass() {
    let e = env().await;
    let web = start_web().await;
    e.sim
        .apply_yaml(&run("web-pass", &web_metric("ok", &format!("{web}/pass"), ""), "[]"));
    e.sim
        .apply_yaml(&run("web-fail", &web_metric("ok", &format!("{web}/fail"), ""), "[]"));
    e.sim
        .apply_yaml(&run("web-bad", &web_metric("ok", &format!("{web}/bad"), ""), "[]"));
    e.sim.apply_yaml(&run(
        "web-slow",
        &web_metric("ok", &format!("{web}/slow"), "        timeoutSeconds: 1\n"),
        "[]",
    ));
    // The whole answer, judged with CEL over its fields, when there is no jsonPath.
    e.sim.apply_yaml(&run(
        "web-whole",
        &format!(
            "  - name: rate\n    successCondition: \"result.data.errorRate < 0.05\"\n    provider:\n      web: {{url: \"{web}/fail\", method: GET}}\n"
        ),
        "[]",
    ));
    // A plain-text answer is the value, as Argo Rollouts reads it; an HTML page is not JSON.
    let text = |url: &str| {
        format!(
            "  - name: text\n    consecutiveErrorLimit: 0\n    successCondition: result == \"I am OK\"\n    provider:\n      web: {{url: \"{url}\"}}\n"
        )
    };
    e.sim.apply_yaml(&run("web-text", &text(&format!("{web}/text")), "[]"));
    e.sim.apply_yaml(&run("web-page", &text(&format!("{web}/page")), "[]"));
    let st = e.finished("web-text").await;
    assert_eq!(st.phase, Some(AnalysisPhase::Successful), "{st:?}");
    let st = e.finished("web-page").await;
    assert_eq!(st.phase, Some(AnalysisPhase::Error), "{st:?}");
    // A run written by hand with a ttlStrategy goes once its time is up.
    e.sim.apply_yaml(&format!(
        "{}  ttlStrategy: {{secondsAfterSuccess: 3, secondsAfterFailure: 600}}\n",
        run("web-ttl", &web_metric("ok", &format!("{web}/pass"), ""), "[]")
    ));
    let pass = e.finished("web-pass").await;
    let ttl = e.finished("web-ttl").await;
    assert!(ttl.completed_at.is_some(), "{ttl:?}");
    eventually("the run deleted after its ttl", WAIT, || async {
        e.runs.get_opt("web-ttl").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(pass.phase, Some(AnalysisPhase::Successful), "{pass:?}");
    assert_eq!(pass.metric_results[0].count, 2);
    assert_eq!(pass.metric_results[0].measurements[0].value.as_deref(), Some("true"));
    let fail = e.finished("web-fail").await;
    assert_eq!(fail.phase, Some(AnalysisPhase::Failed), "{fail:?}");
    let bad = e.finished("web-bad").await;
    assert_eq!(bad.phase, Some(AnalysisPhase::Error), "{bad:?}");
    assert!(
        bad.message.clone().unwrap_or_default().contains("not JSON"),
        "{:?}",
        bad.message
    );
    assert_eq!(bad.metric_results[0].successful, 0, "never a pass");
    let slow = e.finished("web-slow").await;
    assert_eq!(slow.phase, Some(AnalysisPhase::Error), "{slow:?}");
    assert!(
        slow.metric_results[0]
            .measurements
            .iter()
            .all(|m| m.message.clone().unwrap_or_default().contains("timed out")),
        "{slow:?}"
    );
    let whole = e.finished("web-whole").await;
    assert_eq!(whole.phase, Some(AnalysisPhase::Failed), "{whole:?}");
    assert!(
        whole.metric_results[0].measurements[0]
            .value
            .clone()
            .unwrap_or_default()
            .contains("\"errorRate\":0.3"),
        "{whole:?}"
    );
}

#[tokio::test]
async fn a_secret_argument_reaches_its_header_and_nowhere_else() {
    let e = env().await;
    let web = start_web().await;
    e.sim.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "web-token",
        &format!("--from-literal=token={TOKEN}"),
    ]);
    e.sim
        .kubectl_ok(&["label", "secret", "web-token", "serin.dev/analysis-access=true"]);
    let guarded = web_metric(
        "guarded",
        &format!("{web}/guarded"),
        "        headers: [{key: Authorization, value: \"Bearer {{args.token}}\"}]\n        jsonPath: \"{$.ok}\"\n",
    )
    .replace("        jsonPath: \"{$.data.ok}\"\n", "");
    // The same Secret in an address that cannot be reached: the error names the address.
    let leaky = "  - name: unreachable\n    consecutiveErrorLimit: 0\n    successCondition: result == true\n    provider:\n      web: {url: \"http://127.0.0.1:1/x?key={{args.token}}\"}\n";
    let args = "[{name: token, valueFrom: {secretKeyRef: {name: web-token, key: token}}}]";
    e.sim.apply_yaml(&run("guarded", &guarded, args));
    e.sim.apply_yaml(&run("leaky", leaky, args));
    let st = e.finished("guarded").await;
    assert_eq!(st.phase, Some(AnalysisPhase::Successful), "{st:?}");
    let st = e.finished("leaky").await;
    assert_eq!(st.phase, Some(AnalysisPhase::Error), "{st:?}");
    let message = st.metric_results[0].measurements[0].message.clone().unwrap_or_default();
    assert!(message.contains("key=<secret>"), "{message}");
    // OAuth2 client credentials from the same Secret: the token is fetched, then sent.
    let oauth = format!(
        "  - name: oauth\n    successCondition: result == true\n    provider:\n      web:\n        url: \"{web}/oauth\"\n        jsonPath: \"{{$.ok}}\"\n        authentication:\n          oauth2: {{tokenUrl: \"{web}/token\", clientId: serin, clientSecret: \"{{{{args.token}}}}\", scopes: [read]}}\n"
    );
    e.sim.apply_yaml(&run("oauth", &oauth, args));
    let st = e.finished("oauth").await;
    assert_eq!(st.phase, Some(AnalysisPhase::Successful), "{st:?}");
    for what in [["get", "analysisruns", "-o", "yaml"], ["get", "events", "-o", "yaml"]] {
        let out = e.sim.kubectl_ok(&what);
        assert!(!out.contains(TOKEN), "the token leaked into {what:?}");
    }
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", e.controller.metrics_port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains(TOKEN), "the token leaked into /metrics");
    assert!(!e.controller.log().contains(TOKEN), "the token leaked into the log");
}

#[tokio::test]
async fn a_secret_not_opened_to_analysis_is_refused_with_what_to_do() {
    let e = env().await;
    let web = start_web().await;
    e.sim.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "db-password",
        &format!("--from-literal=password={TOKEN}"),
    ]);
    let metric = web_metric("exfiltrate", &format!("{web}/pass?p={{{{args.password}}}}"), "")
        .replace("consecutiveErrorLimit: 1", "consecutiveErrorLimit: 0");
    let args = "[{name: password, valueFrom: {secretKeyRef: {name: db-password, key: password}}}]";
    e.sim.apply_yaml(&run("refused", &metric, args));
    let st = e.finished("refused").await;
    assert_eq!(st.phase, Some(AnalysisPhase::Error), "{st:?}");
    let message = st.metric_results[0].message.clone().unwrap_or_default();
    assert!(
        message.contains("Secret db-password is not open to analysis")
            && message.contains("serin.dev/analysis-access=true"),
        "{message}"
    );
    assert_eq!(st.metric_results[0].successful, 0);
}

#[tokio::test]
async fn a_controller_told_any_secret_may_be_read_reads_an_unlabelled_one() {
    let e = env_with(&["--secret-access=any"]).await;
    let web = start_web().await;
    e.sim.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "web-token",
        &format!("--from-literal=token={TOKEN}"),
    ]);
    let metric = web_metric(
        "guarded",
        &format!("{web}/guarded"),
        "        headers: [{key: Authorization, value: \"Bearer {{args.token}}\"}]\n        jsonPath: \"{$.ok}\"\n",
    )
    .replace("        jsonPath: \"{$.data.ok}\"\n", "");
    let args = "[{name: token, valueFrom: {secretKeyRef: {name: web-token, key: token}}}]";
    e.sim.apply_yaml(&run("any", &metric, args));
    let st = e.finished("any").await;
    assert_eq!(st.phase, Some(AnalysisPhase::Successful), "{st:?}");
}

fn job_metric(name: &str, exit_code: u8) -> String {
    format!(
        r#"  - name: {name}
    provider:
      job:
        metadata: {{labels: {{team: checkout}}}}
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers:
              - name: check
                image: busybox
                command: [sh, -c, "exit {exit_code}"]
                env:
                - {{name: SERIN_SIM_READY_SECONDS, value: "0.2"}}
                - {{name: SERIN_SIM_RUN_SECONDS, value: "1"}}
                - {{name: SERIN_SIM_EXIT_CODE, value: "{exit_code}"}}
"#
    )
}

#[tokio::test]
async fn a_job_passes_when_it_completes_and_fails_when_it_fails() {
    let e = env().await;
    e.sim.apply_yaml(&run("smoke-ok", &job_metric("smoke", 0), "[]"));
    e.sim.apply_yaml(&run("smoke-bad", &job_metric("smoke", 3), "[]"));
    let ok = e.finished("smoke-ok").await;
    assert_eq!(ok.phase, Some(AnalysisPhase::Successful), "{ok:?}");
    let bad = e.finished("smoke-bad").await;
    assert_eq!(bad.phase, Some(AnalysisPhase::Failed), "{bad:?}");
    assert!(
        bad.metric_results[0]
            .message
            .clone()
            .unwrap_or_default()
            .contains("BackoffLimitExceeded"),
        "{bad:?}"
    );
    let client = e.sim.client().await;
    let jobs: Api<Job> = Api::default_namespaced(client);
    let listed = jobs
        .list(&ListParams::default().labels("serin.dev/analysis-run=smoke-ok"))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 1, "one Job per measurement");
    let job = &listed[0];
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("AnalysisRun", "smoke-ok"));
    assert_eq!(
        job.metadata.labels.as_ref().unwrap().get("team").map(String::as_str),
        Some("checkout")
    );
    assert_eq!(job.status.as_ref().and_then(|s| s.succeeded), Some(1));
    // The Job goes with its run.
    e.runs.delete("smoke-ok", &DeleteParams::background()).await.unwrap();
    eventually("the run's Job deleted with it", WAIT, || async {
        let left = jobs
            .list(&ListParams::default().labels("serin.dev/analysis-run=smoke-ok"))
            .await
            .ok()?
            .items;
        left.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn range_queries_success_limits_dry_runs_and_retention() {
    let e = env().await;
    let prom = Prometheus::start(&[e.sim.traffic_target()]);
    let address = prom.url();
    let range = r#"  - name: up-lately
    interval: 1s
    count: 1
    consecutiveNoDataLimit: 30
    successCondition: "result.all(x, x == 1)"
    provider:
      prometheus:
        address: "{{args.prometheus}}"
        query: up{job="sim"}
        rangeQuery: {start: "now() - duration('4s')", end: now, step: 1s}
"#;
    e.sim.apply_yaml(&run(
        "range",
        range,
        &format!("[{{name: prometheus, value: \"{address}\"}}]"),
    ));
    let early = format!(
        r#"  - name: low
    interval: 500ms
    count: 10
    failureLimit: 3
    consecutiveSuccessLimit: 2
    successCondition: result < 0.05
    provider:
      prometheus: {{address: "{address}", query: "vector(0.01)"}}
"#
    );
    e.sim.apply_yaml(&run("early", &early, "[]"));
    let dry = format!(
        r#"  - name: errors
    count: 1
    successCondition: result < 0.05
    provider:
      prometheus: {{address: "{address}", query: "vector(0)"}}
  - name: latency
    count: 1
    successCondition: result < 0.5
    provider:
      prometheus: {{address: "{address}", query: "vector(2)"}}
  - name: kept
    interval: 200ms
    count: 5
    successCondition: result < 0.05
    provider:
      prometheus: {{address: "{address}", query: "vector(0)"}}
  dryRun: [{{metricName: latency}}]
  measurementRetention: [{{metricName: kept, limit: 2}}]
"#
    );
    e.sim.apply_yaml(&run("dry", &dry, "[]"));

    let st = e.finished("early").await;
    assert_eq!(st.phase, Some(AnalysisPhase::Successful), "{st:?}");
    assert_eq!(st.metric_results[0].count, 2, "two successes in a row end it: {st:?}");
    assert!(
        st.metric_results[0]
            .message
            .clone()
            .unwrap_or_default()
            .contains("consecutiveSuccessLimit")
    );

    let st = e.finished("dry").await;
    assert_eq!(
        st.phase,
        Some(AnalysisPhase::Successful),
        "a dry run never decides: {st:?}"
    );
    let latency = st.metric_results.iter().find(|m| m.name == "latency").expect("latency");
    assert_eq!(latency.phase, AnalysisPhase::Failed);
    assert_eq!(latency.dry_run, Some(true));
    let summary = st.dry_run_summary.clone().expect("a dry-run summary");
    assert_eq!((summary.count, summary.failed), (1, 1));
    let kept = st.metric_results.iter().find(|m| m.name == "kept").expect("kept");
    assert_eq!((kept.count, kept.measurements.len()), (5, 2), "{kept:?}");

    let st = e.finished("range").await;
    assert_eq!(st.phase, Some(AnalysisPhase::Successful), "{st:?}");
    let last = st.metric_results[0]
        .measurements
        .last()
        .cloned()
        .expect("a measurement");
    assert!(last.value.clone().unwrap_or_default().starts_with("[1"), "{last:?}");
}

/// The shipped web and job templates, as a user applies them, gate a release.
#[tokio::test]
async fn the_shipped_web_and_job_templates_gate_a_release() {
    let e = env().await;
    let web = start_web().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("shipped example");
    e.sim.apply_yaml(
        &read("analysis-web.yaml")
            .replace("http://status-api.default.svc", &web)
            .replace("interval: 10s", "interval: 1s"),
    );
    e.sim.apply_yaml(&read("analysis-job.yaml"));
    e.sim.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "status-api",
        &format!("--from-literal=token={TOKEN}"),
    ]);
    e.sim
        .kubectl_ok(&["label", "secret", "status-api", "serin.dev/analysis-access=true"]);
    let canary = "      steps:
      - setWeight: 50
      - analysis:
          templates: [{templateName: status-api}, {templateName: smoke-test}]
          args: [{name: canary-hash, valueFrom: {podTemplateHashValue: Latest}}]
          analysisRunMetadata: {labels: {team: checkout}, annotations: {owner: payments}}
      - setWeight: 100";
    let rollouts: Api<Rollout> = Api::default_namespaced(e.sim.client().await);
    let healthy = |image: &'static str| {
        let rollouts = rollouts.clone();
        async move {
            eventually(&format!("{image} healthy"), WAIT, || async {
                let st = rollouts.get("web").await.ok()?.status?;
                let current = st.current_pod_hash.clone()?;
                (st.phase == Some(Phase::Healthy) && st.stable_pod_hash.as_deref() == Some(current.as_str()))
                    .then_some(current)
            })
            .await
        }
    };
    e.sim
        .apply_yaml(&(web_rollout(2, "example/web:1", &[], "", canary) + common::WEB_SERVICES));
    let v1 = healthy("example/web:1").await;
    e.sim.apply_yaml(&web_rollout(2, "example/web:2", &[], "", canary));
    let v2 = eventually("version 2 promoted", WAIT, || async {
        let st = rollouts.get("web").await.ok()?.status?;
        let stable = st.stable_pod_hash.clone()?;
        (st.phase == Some(Phase::Healthy) && stable != v1).then_some(stable)
    })
    .await;
    let runs = e
        .runs
        .list(&ListParams::default().labels(&format!("serin.dev/revision={v2}")))
        .await
        .unwrap()
        .items;
    let st = runs[0].status.clone().unwrap_or_default();
    assert_eq!(st.phase, Some(AnalysisPhase::Successful), "{st:?}");
    let meta = &runs[0].metadata;
    assert_eq!(
        meta.labels.as_ref().and_then(|l| l.get("team")).map(String::as_str),
        Some("checkout")
    );
    assert_eq!(
        meta.annotations
            .as_ref()
            .and_then(|a| a.get("owner"))
            .map(String::as_str),
        Some("payments")
    );
    let smoke = st
        .metric_results
        .iter()
        .find(|m| m.name == "smoke-test")
        .expect("smoke-test");
    assert!(
        smoke.measurements[0]
            .message
            .clone()
            .unwrap_or_default()
            .contains("completed"),
        "{smoke:?}"
    );
    let status = st
        .metric_results
        .iter()
        .find(|m| m.name == "status-api")
        .expect("status-api");
    assert_eq!(status.count, 3, "{status:?}");
}

/// A template that gives no address asks the controller's Prometheus, as Argo Rollouts' users
/// set one for the whole installation; without one, it says what is missing.
#[tokio::test]
async fn metrics_without_an_address_ask_the_controllers_prometheus() {
    let sim = Cluster::start();
    sim.install_crds();
    let prom = Prometheus::start(&[]);
    let flag = format!("--prometheus-address={}", prom.url());
    let _controller =
        ControllerProc::start_with(&sim, "controller.log", &["--leader-election-lease-duration=2", &flag]);
    let runs: Api<AnalysisRun> = Api::default_namespaced(sim.client().await);
    let metric =
        "  - name: one\n    successCondition: result == 1\n    provider:\n      prometheus: {query: vector(1)}\n";
    sim.apply_yaml(&run("default-address", metric, "[]"));
    let st = eventually("the run to end", WAIT, || async {
        let st = runs.get("default-address").await.ok()?.status?;
        st.phase.is_some_and(|p| p.is_finished()).then_some(st)
    })
    .await;
    assert_eq!(st.phase, Some(AnalysisPhase::Successful), "{st:?}");

    let e = env().await;
    let refused = metric.replace("result == 1", "result == 1\n    consecutiveErrorLimit: 0");
    e.sim.apply_yaml(&run("no-address", &refused, "[]"));
    let st = e.finished("no-address").await;
    assert_eq!(st.phase, Some(AnalysisPhase::Error), "{st:?}");
    assert!(
        st.metric_results[0]
            .message
            .clone()
            .unwrap_or_default()
            .contains("--prometheus-address"),
        "{st:?}"
    );
}
