//! `serin dashboard` in a real browser: headless Chromium driven over the DevTools protocol,
//! against the real binary, controller and simulated cluster. The page lists the Rollouts,
//! shows a paused one's steps and charts, follows it live without a reload, and steers it with
//! confirmed clicks that do what the CLI does.

mod common;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::page::{Page, ScreenshotParams};
use common::{Cluster, ControllerProc, Proc, eventually, free_port, serin_bin};
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use serin::crd::rollout::{Phase, Rollout};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

struct Dashboard {
    _proc: Proc,
    url: String,
}

fn start_dashboard(sim: &Cluster, extra: &[&str]) -> Dashboard {
    let port = free_port();
    let log = std::fs::File::create(sim.dir.path().join("dashboard.log")).expect("log");
    let child = Command::new(serin_bin())
        .args(["dashboard", "--listen", &format!("127.0.0.1:{port}"), "--kubeconfig"])
        .arg(&sim.kubeconfig)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("serin dashboard starts");
    Dashboard {
        _proc: Proc {
            child,
            name: "serin dashboard",
        },
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_up(url: &str) {
    let http = reqwest::Client::new();
    eventually("the dashboard serving", WAIT, || async {
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .ok()?
            .status()
            .is_success()
            .then_some(())
    })
    .await;
}

/// Headless Chromium with the flags a closed network needs, and its event loop.
async fn browser(dir: &Path) -> (Browser, tokio::task::JoinHandle<()>) {
    let config = BrowserConfig::builder()
        .chrome_executable(common::which("chromium").expect("chromium (make test installs it)"))
        .no_sandbox()
        .new_headless_mode()
        .window_size(1280, 1500)
        .viewport(None)
        .user_data_dir(dir.join("chromium"))
        .args([
            "--disable-gpu",
            "--disable-quic",
            "--disable-component-update",
            "--no-default-browser-check",
        ])
        .build()
        .expect("browser config");
    let (browser, mut handler) = Browser::launch(config).await.expect("chromium starts");
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    (browser, events)
}

/// Evaluates `expr` until it gives something other than null, false or "".
async fn until(page: &Page, what: &str, expr: &str) -> Value {
    until_within(page, what, expr, WAIT).await
}

async fn until_within(page: &Page, what: &str, expr: &str, wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        let v: Value = match page.evaluate(expr).await {
            Ok(r) => r.into_value().unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if !(v.is_null() || v == Value::Bool(false) || v == "") {
            return v;
        }
        let shown: Value = page
            .evaluate("document.getElementById('main').innerText")
            .await
            .ok()
            .and_then(|r| r.into_value().ok())
            .unwrap_or(Value::Null);
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; the page shows:\n{shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A confirmed click, as a person makes it: the button, then Confirm in the dialog.
async fn click_confirmed(page: &Page, action: &str) {
    page.find_element(format!("button[data-action='{action}']"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("clicked");
    until(page, "the confirmation", "!document.getElementById('dialog').hidden").await;
    page.find_element("button[data-confirm]")
        .await
        .expect("Confirm")
        .click()
        .await
        .expect("confirmed");
}

fn route_api(client: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    Api::default_namespaced_with(client.clone(), &ar)
}

async fn canary_weight(routes: &Api<DynamicObject>) -> i64 {
    let r = serde_json::to_value(routes.get("web").await.expect("route")).unwrap_or_default();
    r["spec"]["rules"][0]["backendRefs"][1]["weight"].as_i64().unwrap_or(-1)
}

/// Reads the page's live stream (as a browser's EventSource does) and keeps each event's size.
fn measure_updates(url: String) -> std::sync::Arc<std::sync::Mutex<Vec<usize>>> {
    let sizes: std::sync::Arc<std::sync::Mutex<Vec<usize>>> = Default::default();
    let out = sizes.clone();
    tokio::spawn(async move {
        let Ok(mut resp) = reqwest::get(url).await else { return };
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                if event.contains("data:") {
                    out.lock().unwrap_or_else(|e| e.into_inner()).push(event.len());
                }
            }
        }
    });
    sizes
}

#[tokio::test]
async fn the_dashboard_lists_follows_and_steers_a_rollout() {
    let sim = Cluster::start();
    sim.install_crds();
    sim.install_crd_file(&common::httproute_crd());
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let routes = route_api(&client);
    let _controller = ControllerProc::start(&sim, "controller.log");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/rollout-gateway-api.yaml");
    sim.kubectl_ok(&["apply", "--server-side", "-f", example.to_str().unwrap_or_default()]);
    eventually("version 1 healthy", WAIT, || async {
        (rollouts.get("web").await.ok()?.status?.phase == Some(Phase::Healthy)).then_some(())
    })
    .await;
    let dash = start_dashboard(&sim, &[]);
    wait_up(&dash.url).await;

    // The first load: the page, its script and style, and the list it asks for.
    let http = reqwest::Client::new();
    let mut first_load = 0;
    for path in ["/", "/assets/app.js", "/assets/app.css", "/api/rollouts"] {
        let body = http.get(format!("{}{path}", dash.url)).send().await.expect("served");
        assert!(body.status().is_success(), "{path}");
        first_load += body.bytes().await.expect("body").len();
    }
    println!("dashboard first load: {first_load} bytes");
    assert!(first_load < 200 * 1024, "first load {first_load} bytes");
    // A page of another site whose name was rebound to 127.0.0.1 is refused.
    let rebound = http
        .get(format!("{}/api/rollouts", dash.url))
        .header("host", "attacker.example")
        .send()
        .await
        .expect("answered");
    assert_eq!(rebound.status().as_u16(), 403);
    let updates = measure_updates(format!("{}/api/stream?namespace={}&name=web", dash.url, sim.namespace));

    let (mut browser, events) = browser(sim.dir.path()).await;
    let page = browser.new_page(format!("{}/#/", dash.url)).await.expect("page");
    until(
        &page,
        "the list shows web as Healthy",
        &format!(
            "document.querySelector(\"tr[data-rollout='{}/web']\")?.dataset.phase === 'Healthy'",
            sim.namespace
        ),
    )
    .await;
    page.evaluate("window.loadedOnce = 'yes'").await.expect("marked");

    // A release reaches the open list without a reload.
    sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2.0"]);
    until(
        &page,
        "the list shows the release at 5%",
        &format!(
            "document.querySelector(\"tr[data-rollout='{}/web'] [data-test=weight]\")?.innerText === '5%'",
            sim.namespace
        ),
    )
    .await;
    assert_eq!(until(&page, "no reload", "window.loadedOnce").await, "yes");

    // The paused Rollout's page: its steps with the current one marked, and the weight chart.
    page.find_element(&format!("tr[data-rollout='{}/web']", sim.namespace))
        .await
        .expect("row")
        .click()
        .await
        .expect("clicked");
    let current = until(
        &page,
        "the current step",
        "document.querySelector('[data-test=steps] li.current')?.innerText",
    )
    .await;
    assert_eq!(current, "2. pause 1m");
    until(
        &page,
        "the weight chart",
        "!!document.querySelector(\"svg[data-chart='weight'] path.new\")",
    )
    .await;
    assert_eq!(
        until(&page, "phase", "document.querySelector('[data-test=phase]')?.innerText").await,
        "Paused"
    );
    page.evaluate("window.loadedOnce = 'still'").await.expect("marked");

    // Promote, confirmed: the route moves on, and the open page follows without a reload.
    page.evaluate(
        "new MutationObserver(() => { if (document.querySelector('.big')?.innerText === '25%' && !window.saw25) window.saw25 = Date.now(); }).observe(document.getElementById('main'), {childList: true, subtree: true, characterData: true})",
    )
    .await
    .expect("observer");
    click_confirmed(&page, "promote").await;
    let route_at = eventually("the route at 25%", WAIT, || async {
        (canary_weight(&routes).await == 25).then(std::time::SystemTime::now)
    })
    .await;
    let shown_at = until(&page, "25% on the open page", "window.saw25").await;
    assert_eq!(until(&page, "no reload", "window.loadedOnce").await, "still");
    let route_ms = route_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    println!(
        "route at 25% to the open page showing it: {} ms",
        shown_at.as_i64().unwrap_or(0) - route_ms
    );
    let current = until(
        &page,
        "the next pause",
        "document.querySelector('[data-test=steps] li.current')?.innerText",
    )
    .await;
    assert_eq!(current, "4. pause until promoted");
    // Every metric's chart is drawn from the runs; this example has none, the weight chart is there.
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-rollout.png");
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &shot)
        .await
        .expect("screenshot");
    assert!(
        std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 10_000,
        "a screenshot at {shot:?}"
    );

    // The plan of the next update, from the same page.
    page.find_element(&format!("a[href='#/plan/{}/web']", sim.namespace))
        .await
        .expect("plan link")
        .click()
        .await
        .expect("clicked");
    let plan = until(
        &page,
        "the plan",
        "document.querySelector('[data-test=plan]')?.innerText",
    )
    .await;
    let plan = plan.as_str().unwrap_or_default();
    assert!(
        plan.contains("setWeight 5") && plan.contains("pause 1m") && plan.contains("50%"),
        "{plan}"
    );
    page.find_element(&format!("a[href='#/rollouts/{}/web']", sim.namespace))
        .await
        .expect("back")
        .click()
        .await
        .expect("clicked");
    until(
        &page,
        "the Rollout page again",
        "document.querySelector('[data-test=weight]')?.innerText === '25%'",
    )
    .await;

    // Abort, confirmed: traffic goes back to stable.
    click_confirmed(&page, "abort").await;
    eventually("the route back on stable", WAIT, || async {
        (canary_weight(&routes).await == 0).then_some(())
    })
    .await;
    until(&page, "0% and Degraded on the page", "document.querySelector('.big')?.innerText === '0%' && document.querySelector('[data-test=phase]')?.innerText === 'Degraded'").await;
    let st = rollouts.get("web").await.expect("rollout").status.expect("status");
    assert_eq!(st.abort, Some(true));

    let sizes = updates.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!(
        "live updates: {} events, largest {} bytes",
        sizes.len(),
        sizes.iter().max().unwrap_or(&0)
    );
    assert!(sizes.len() >= 3, "updates reached the stream: {sizes:?}");
    assert!(sizes.iter().all(|s| *s < 2048), "every update under 2 KB: {sizes:?}");
    browser.close().await.ok();
    events.abort();
}

/// The dashboard as the chart runs it: with its own ServiceAccount's token and the chart's RBAC,
/// `--require-token`. Reading needs no token; steering needs one whose user may patch
/// `rollouts/status` of that Rollout.
#[tokio::test]
async fn in_the_cluster_only_a_permitted_token_steers() {
    // Its own control plane: the chart's ClusterRoles are cluster-wide.
    let sim = Cluster::start_alone();
    sim.install_crds();
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let _controller = ControllerProc::start(&sim, "controller.log");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/rollout.yaml");
    sim.kubectl_ok(&["apply", "--server-side", "-f", example.to_str().unwrap_or_default()]);
    eventually("version 1 healthy", WAIT, || async {
        (rollouts.get("web").await.ok()?.status?.phase == Some(Phase::Healthy)).then_some(())
    })
    .await;
    sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2.0"]);
    let paused = || async {
        let st = rollouts.get("web").await.ok()?.status?;
        (st.phase == Some(Phase::Paused)).then_some(st.current_step_index)
    };
    let at = eventually("paused at the first pause", WAIT, paused).await;

    // The chart's dashboard objects, rendered by helm, in the release namespace.
    sim.kubectl_ok(&["create", "namespace", "serin-system"]);
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/serin");
    let rendered = common::helm_ok(
        None,
        &[
            "template",
            "serin",
            chart.to_str().unwrap_or_default(),
            "--namespace",
            "serin-system",
            "--set",
            "dashboard.enabled=true",
            "--show-only",
            "templates/dashboard.yaml",
        ],
    );
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], &rendered);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(rendered.contains("type: ClusterIP") && rendered.contains("- --require-token"));
    // The chart's RBAC gives the dashboard's account what it reads and its one write, no more.
    let sa = "system:serviceaccount:serin-system:serin-dashboard";
    for (verb, what, want) in [
        ("watch", "rollouts.serin.dev", "yes"),
        ("get", "rollouts.serin.dev", "yes"),
        ("patch", "rollouts.serin.dev --subresource=status", "yes"),
        ("list", "analysisruns.serin.dev", "yes"),
        ("watch", "replicasets.apps", "yes"),
        ("watch", "events", "yes"),
        ("list", "clusteranalysistemplates.serin.dev", "yes"),
        ("create", "tokenreviews.authentication.k8s.io", "yes"),
        ("create", "subjectaccessreviews.authorization.k8s.io", "yes"),
        ("patch", "rollouts.serin.dev", "no"),
        ("delete", "rollouts.serin.dev", "no"),
        ("get", "secrets", "no"),
        ("list", "pods", "no"),
    ] {
        let mut args = vec!["auth", "can-i", verb, "-A", "--as", sa];
        args.extend(what.split(' '));
        let out = sim.kubectl(&args);
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(
            said,
            want,
            "may the dashboard {verb} {what}? {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Its own account's token, as the Pod would have it.
    let own = sim.kubectl_ok(&["create", "token", "serin-dashboard", "-n", "serin-system"]);
    let kubeconfig = sim.dir.path().join("dashboard.kubeconfig");
    let text = std::fs::read_to_string(&sim.kubeconfig).expect("kubeconfig");
    let mut kc: serde_json::Value = serde_saphyr::from_str(&text).expect("kubeconfig YAML");
    kc["users"][0]["user"] = serde_json::json!({"token": own.trim()});
    std::fs::write(&kubeconfig, serde_json::to_string(&kc).expect("json")).expect("written");

    // alice may patch rollouts/status in default; bob may only read Rollouts.
    sim.apply_yaml(
        "apiVersion: v1
kind: ServiceAccount
metadata: {name: alice}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bob}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: rollout-operator}
rules:
- {apiGroups: [serin.dev], resources: [rollouts/status], verbs: [patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: rollout-viewer}
rules:
- {apiGroups: [serin.dev], resources: [rollouts], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-operates}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: rollout-operator}
subjects: [{kind: ServiceAccount, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-views}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: rollout-viewer}
subjects: [{kind: ServiceAccount, name: bob}]
",
    );
    let alice = sim.kubectl_ok(&["create", "token", "alice"]);
    let bob = sim.kubectl_ok(&["create", "token", "bob"]);

    let port = free_port();
    let log = std::fs::File::create(sim.dir.path().join("dashboard.log")).expect("log");
    let child = Command::new(serin_bin())
        .args([
            "dashboard",
            "--require-token",
            "--all-namespaces",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("serin dashboard starts");
    let _dash = Proc {
        child,
        name: "serin dashboard",
    };
    let url = format!("http://127.0.0.1:{port}");
    wait_up(&url).await;
    let http = reqwest::Client::new();
    let list: Value = eventually("the list, without a token", WAIT, || async {
        let v: Value = http
            .get(format!("{url}/api/rollouts"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v.as_array()?.len() == 1).then_some(v)
    })
    .await;
    assert_eq!(list[0]["phase"], "Paused");

    let promote = |token: Option<String>| {
        let mut req = http
            .post(format!("{url}/api/rollouts/{}/web/actions/promote", sim.namespace))
            .header("x-serin-action", "1");
        if let Some(t) = token {
            req = req.bearer_auth(t.trim());
        }
        async move {
            let resp = req.send().await.expect("answered");
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or_default();
            (status, body["error"].as_str().unwrap_or_default().to_string())
        }
    };
    let (status, message) = promote(None).await;
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("read-only without a token"), "{message}");
    let (status, message) = promote(Some("not-a-token".into())).await;
    assert_eq!(status, 401, "{message}");
    let (status, message) = promote(Some(bob)).await;
    assert_eq!(status, 403, "{message}");
    assert!(
        message.contains(&format!(
            "system:serviceaccount:{}:bob may not patch rollouts/status of web",
            sim.namespace
        )),
        "{message}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = rollouts.get("web").await.expect("rollout").status.expect("status");
    assert_eq!(st.current_step_index, at, "nothing changed without a permitted token");
    assert!(
        st.control.is_none_or(|c| c.promote_step.is_none()),
        "no request written"
    );

    let (status, message) = promote(Some(alice)).await;
    assert_eq!(status, 200, "{message}");
    eventually("moved past the pause", WAIT, || async {
        let st = rollouts.get("web").await.ok()?.status?;
        (st.current_step_index > at).then_some(())
    })
    .await;
}

/// A threshold metric and the comparison with stable, measured by a real Prometheus: their charts
/// fill in on the open page as measurements come.
#[tokio::test]
async fn each_metric_is_charted_as_it_is_measured() {
    let sim = Cluster::start();
    sim.install_crds();
    let prometheus = common::Prometheus::start(&[sim.traffic_target()]);
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/analysis-templates.yaml"))
        .expect("shipped templates")
        .replace("interval: 10s", "interval: 2s")
        .replace("count: 30", "count: 10")
        .replace("consecutiveNoDataLimit: 6", "consecutiveNoDataLimit: 15");
    sim.apply_yaml(&shipped);
    sim.apply_yaml(&format!(
        "apiVersion: serin.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: error-rate}}
spec:
  args: [{{name: hash}}]
  metrics:
  - name: error-rate
    interval: 2s
    count: 8
    consecutiveNoDataLimit: 15
    successCondition: result < 0.05
    provider:
      prometheus:
        address: {}
        query: sum(rate(http_requests_total{{pod_template_hash=\"{{{{args.hash}}}}\",code=~\"5..\"}}[10s])) / sum(rate(http_requests_total{{pod_template_hash=\"{{{{args.hash}}}}\"}}[10s]))
",
        prometheus.url()
    ));
    let address = format!("--prometheus-address={}", prometheus.url());
    let _controller = ControllerProc::start_with(&sim, "controller.log", &[&address]);
    let client = sim.client().await;
    let rollouts: Api<Rollout> = Api::default_namespaced(client.clone());
    let canary = "      steps:
      - setWeight: 50
      - analysis:
          templates: [{templateName: serin-http, clusterScope: true}, {templateName: error-rate}]
          args: [{name: hash, valueFrom: {podTemplateHashValue: Latest}}]
      - pause: {}";
    let release = |image: &str| {
        common::web_rollout(4, image, &[("SERIN_SIM_ERROR_RATE", "0.01")], "", canary)
            + &common::TRAFFIC_SERVICES.replace("\"100\"", "\"400\"")
    };
    sim.apply_yaml(&release("example/web:1"));
    eventually("version 1 healthy", WAIT, || async {
        (rollouts.get("web").await.ok()?.status?.phase == Some(Phase::Healthy)).then_some(())
    })
    .await;
    let dash = start_dashboard(&sim, &[]);
    wait_up(&dash.url).await;
    let (mut browser, events) = browser(sim.dir.path()).await;
    let page = browser
        .new_page(format!("{}/#/rollouts/{}/web", dash.url, sim.namespace))
        .await
        .expect("page");
    until(
        &page,
        "the page",
        "document.querySelector('[data-test=phase]')?.innerText === 'Healthy'",
    )
    .await;
    sim.apply_yaml(&release("example/web:2"));
    // Points on the threshold chart, with the threshold drawn; the comparison's rates and interval.
    let drawn = "(() => { const t = document.querySelector(\"[data-metric='error-rate'] svg\"); \
        const c = document.querySelector(\"[data-metric='errors-vs-stable']\"); \
        return !!t && t.querySelectorAll('circle').length >= 3 && !!t.querySelector('line.limit') \
        && !!c && c.querySelectorAll('path.stable').length > 0 && c.querySelectorAll('path.band').length > 0 \
        && /e-value \\d/.test(c.innerText) \
        && !!document.querySelector(\"[data-metric='slo-burn-rate'] svg line.limit\"); })()";
    until_within(&page, "the charts drawn", drawn, Duration::from_secs(150)).await;
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-analysis.png");
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &shot)
        .await
        .expect("screenshot");
    browser.close().await.ok();
    events.abort();
}
