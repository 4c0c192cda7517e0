//! Installing Serin: the Helm chart (lint, every values mode validated strictly against the
//! simulated cluster's schemas, a real `helm install`), the kustomize base, and a controller run
//! exactly as the chart runs it, within the chart's RBAC, read by ArgoCD's Lua health checks and
//! driven by its actions.

mod common;

use common::argocd;
use common::{Cluster, ControllerProc, WEB_SERVICES, eventually, helm_err, helm_ok, web_rollout};
use kube::api::Api;
use serde_json::{Value, json};
use serin::crd::rollout::{Phase, Rollout};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/serin");

fn template(values: &[&str]) -> String {
    let mut args = vec!["template", "serin", CHART, "--namespace", "serin-system"];
    for v in values {
        args.extend(["--set", v]);
    }
    helm_ok(None, &args)
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("helm renders YAML")
        .into_iter()
        .filter(|d| d.is_object())
        .collect()
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("").to_string())
        .collect();
    k.sort();
    k
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// A cluster that knows every kind the chart may render, with the namespaces it uses.
fn cluster_for_validation() -> Cluster {
    // Its own control plane: the chart's cluster-wide objects and namespaces are the test's alone.
    let sim = Cluster::start_alone();
    sim.install_crds();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for crd in [
        "servicemonitors.monitoring.coreos.com.yaml",
        "podmonitors.monitoring.coreos.com.yaml",
    ] {
        sim.install_crd_file(&data.join(crd));
    }
    sim.kubectl_ok(&["create", "namespace", "serin-system"]);
    sim.kubectl_ok(&["create", "namespace", "shop"]);
    sim
}

#[tokio::test]
async fn the_chart_lints_and_validates_strictly_in_every_mode() {
    helm_ok(None, &["lint", "--strict", CHART]);
    helm_ok(
        None,
        &[
            "lint",
            "--strict",
            CHART,
            "--set",
            "watchNamespace=shop,metrics.serviceMonitor.enabled=true,policies.enabled=true",
        ],
    );
    let sim = cluster_for_validation();
    let modes: [&[&str]; 5] = [
        &[],
        &["watchNamespace=shop"],
        &["shards=3"],
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.podMonitor.enabled=true",
            "networkPolicy.enabled=true",
            "dashboards.enabled=true",
            "policies.enabled=true",
            "notifications.defaultTargets[0].name=ops",
            "notifications.defaultTargets[0].type=slack",
            "notifications.defaultTargets[0].url=https://hooks.example/x",
        ],
        &[
            "leaderElection.enabled=false",
            "replicaCount=1",
            "rbac.create=false",
            "serviceAccount.create=false",
            "podDisruptionBudget.enabled=false",
        ],
    ];
    for values in modes {
        let yaml = template(values);
        // Strict: an unknown or misspelt field anywhere is an error, checked by the API server.
        let out = sim.kubectl_stdin(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--validate=strict",
                "-f",
                "-",
            ],
            &yaml,
        );
        assert!(
            out.status.success(),
            "{values:?}: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rendered = docs(&yaml);
        for role in rendered
            .iter()
            .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        {
            let text = role["rules"].to_string();
            assert!(!text.contains("\"*\""), "no wildcard in RBAC: {text}");
        }
    }

    // Defaults: two replicas electing a leader, locked down, probed; the shipped templates.
    let defaults = docs(&template(&[]));
    assert_eq!(
        kinds(&defaults),
        [
            "ClusterAnalysisTemplate",
            "ClusterAnalysisTemplate",
            "ClusterAnalysisTemplate",
            "ClusterAnalysisTemplate",
            "ClusterAnalysisTemplate",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let deploy = find(&defaults, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let without = docs(&template(&["analysisTemplates.enabled=false"]));
    assert!(!kinds(&without).iter().any(|k| k == "ClusterAnalysisTemplate"));
    let pod = &deploy["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert!(c["args"].as_array().unwrap().contains(&json!("--leader-elect=true")));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["limits"]["memory"].is_string());

    // One namespace: a Role is all it needs.
    let single = docs(&template(&["watchNamespace=shop"]));
    assert!(
        !kinds(&single).iter().any(|k| k.starts_with("Cluster")),
        "{:?}",
        kinds(&single)
    );
    let role = single
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == "shop")
        .expect("a Role in the watched namespace");
    assert!(!role["rules"].to_string().contains("clusteranalysistemplates"));
    let args = find(&single, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--namespace=shop"), "{args}");

    // Shards: a Deployment, a budget and a Lease each, selectors that never overlap.
    let sharded = docs(&template(&["shards=3"]));
    let deployments: Vec<&Value> = sharded.iter().filter(|d| d["kind"] == "Deployment").collect();
    assert_eq!(deployments.len(), 3);
    for (i, d) in deployments.iter().enumerate() {
        assert_eq!(d["metadata"]["name"], format!("serin-shard-{i}"));
        assert_eq!(d["spec"]["selector"]["matchLabels"]["serin.dev/shard"], i.to_string());
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["serin.dev/shard"],
            i.to_string()
        );
        let args = d["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains(&format!("--shard={i}/3")), "{args}");
    }
    let budgets: Vec<&Value> = sharded.iter().filter(|d| d["kind"] == "PodDisruptionBudget").collect();
    assert_eq!(budgets.len(), 3);
    let leader = sharded
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "serin-leader")
        .expect("the leader Role");
    let rules = leader["rules"].to_string();
    for i in 0..3 {
        assert!(rules.contains(&format!("serin-controller-{i}")), "{rules}");
    }
    assert!(allowed(
        leader["rules"].as_array().unwrap(),
        "coordination.k8s.io",
        "leases",
        "list"
    ));
    let unsharded = find(&defaults, "Deployment");
    assert!(
        !unsharded["spec"]["template"]["spec"]["containers"][0]["args"]
            .to_string()
            .contains("--shard")
    );

    // The dashboard ships in a ConfigMap the Grafana sidecar finds by its label.
    let extras = docs(&template(&["dashboards.enabled=true"]));
    let cm = extras
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("dashboard ConfigMap");
    let dashboard: Value = serde_json::from_str(cm["data"]["serin.json"].as_str().unwrap()).expect("dashboard JSON");
    assert_eq!(dashboard["uid"], "serin-rollouts");

    // Values are checked against values.schema.json.
    let err = helm_err(&["template", "serin", CHART, "--set", "logFormat=xml"]);
    assert!(err.contains("logFormat"), "{err}");
    let err = helm_err(&["template", "serin", CHART, "--set", "secretAccess=all"]);
    assert!(err.contains("secretAccess"), "{err}");

    // Which Secrets analysis reads: only those opened to it, unless told any.
    let args = |values: &[&str]| -> Vec<String> {
        let rendered = docs(&template(values));
        let deploy = rendered
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("the Deployment")
            .clone();
        deploy["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(String::from))
            .collect()
    };
    assert!(args(&[]).contains(&"--secret-access=labelled".to_string()));
    assert!(args(&["secretAccess=any"]).contains(&"--secret-access=any".to_string()));
    assert!(!args(&[]).iter().any(|a| a.starts_with("--prometheus-address")));
    assert!(
        args(&["prometheusAddress=http://prometheus.monitoring:9090"])
            .contains(&"--prometheus-address=http://prometheus.monitoring:9090".to_string())
    );
}

#[tokio::test]
async fn the_kustomize_base_is_the_chart_and_applies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let want = helm_ok(
        None,
        &[
            "template",
            "serin",
            CHART,
            "--namespace",
            "serin-system",
            "--include-crds",
            "--set",
            "analysisTemplates.enabled=false",
        ],
    );
    let have = std::fs::read_to_string(root.join("deploy/serin.yaml")).unwrap_or_default();
    assert!(have == want, "deploy/serin.yaml is stale: run `make manifests`");
    let shipped = std::fs::read_to_string(root.join("charts/serin/files/analysis-templates.yaml")).unwrap_or_default();
    let copy = std::fs::read_to_string(root.join("deploy/analysis-templates.yaml")).unwrap_or_default();
    assert!(
        !shipped.is_empty() && shipped == copy,
        "deploy/analysis-templates.yaml is stale: run `make manifests`"
    );

    let sim = Cluster::start_alone();
    let base = root.join("deploy");
    let rendered = sim.kubectl_ok(&["kustomize", base.to_str().unwrap_or_default()]);
    assert!(rendered.contains("kind: Namespace") && rendered.contains("kind: Deployment"));
    // As a user types it: client-side apply of the whole base, CRDs included.
    sim.kubectl_ok(&["apply", "-k", base.to_str().unwrap_or_default()]);
    sim.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/rollouts.serin.dev",
        "--timeout=20s",
    ]);
    // Then the shipped templates, as the README says; the API takes them as they are.
    let templates = root.join("deploy/analysis-templates.yaml");
    sim.kubectl_ok(&["apply", "-f", templates.to_str().unwrap_or_default()]);
    let names = sim.kubectl_ok(&["get", "clusteranalysistemplates", "-o", "name"]);
    for t in [
        "serin-http",
        "serin-istio",
        "serin-linkerd",
        "serin-nginx",
        "serin-envoy",
    ] {
        assert!(names.contains(t), "{names}");
    }
    let ready = eventually("the controller Deployment is available", WAIT, || async {
        let out = sim.kubectl(&[
            "-n",
            "serin-system",
            "get",
            "deployment",
            "serin",
            "-o",
            "jsonpath={.status.availableReplicas}",
        ]);
        let n = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (n == "2").then_some(n)
    })
    .await;
    assert_eq!(ready, "2");
}

/// The (group, resource, verb) requests a client made anywhere in the cluster, from the API
/// server's audit log.
async fn requests_of(sim: &Cluster, client: &str) -> Vec<(String, String, String)> {
    let field = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut out: Vec<(String, String, String)> = sim
        .audited()
        .iter()
        .filter(|e| e["userAgent"].as_str().unwrap_or("").starts_with(&format!("{client}/")))
        .map(|e| {
            let resource = match e["objectRef"]["subresource"].as_str() {
                Some(sub) => format!("{}/{sub}", field(&e["objectRef"]["resource"])),
                None => field(&e["objectRef"]["resource"]),
            };
            (field(&e["objectRef"]["apiGroup"]), resource, field(&e["verb"]))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn allowed(rules: &[Value], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        let has = |key: &str, v: &str| r[key].as_array().is_some_and(|a| a.iter().any(|x| x == v));
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

async fn rollout_json(client: &kube::Client) -> Value {
    let api: Api<Rollout> = Api::default_namespaced(client.clone());
    serde_json::to_value(api.get("web").await.expect("the Rollout")).expect("JSON")
}

async fn wait_health(client: &kube::Client, want: &str) -> (Value, String) {
    eventually(&format!("ArgoCD health {want}"), WAIT, || async {
        let obj = rollout_json(client).await;
        let (status, message) = argocd::health("Rollout", &obj);
        (status == want).then_some((obj, message))
    })
    .await
}

/// What ArgoCD does when a person clicks an action: run its Lua, patch the status it changed.
fn run_action(sim: &Cluster, action: &str, obj: &Value) {
    let patch = argocd::action_status_patch(action, obj).unwrap_or_else(|| panic!("{action} changes the status"));
    sim.kubectl_ok(&[
        "patch",
        "rollout",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
}

#[tokio::test]
async fn the_installed_controller_keeps_to_its_rbac_and_argocd_can_drive_it() {
    let sim = Cluster::start_alone();
    // A real `helm install`: CRDs, RBAC, Deployment, NOTES.
    let notes = helm_ok(
        Some(&sim.kubeconfig),
        &[
            "install",
            "serin",
            CHART,
            "--namespace",
            "serin-system",
            "--create-namespace",
        ],
    );
    assert!(notes.contains("kubectl serin get rollout web --watch"), "{notes}");
    sim.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/rollouts.serin.dev",
        "--timeout=20s",
    ]);
    let rendered = docs(&template(&[]));
    let deploy = find(&rendered, "Deployment");
    let args: Vec<String> = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(String::from))
        .filter(|a| a != "controller" && !a.starts_with("--metrics-addr"))
        .collect();
    // The controller as the chart runs it: the chart's flags, the chart's ServiceAccount, whose
    // RBAC the API server enforces.
    let account = sim.service_account_kubeconfig("serin-system", "serin");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--kubeconfig", account.to_str().unwrap_or_default()]);
    let controller = ControllerProc::start_with(&sim, "controller.log", &args);
    let client = sim.client().await;
    sim.apply_yaml(
        &(web_rollout(
            2,
            "example/web:1",
            &[],
            "",
            "      steps: [{setWeight: 50}, {pause: {}}]",
        ) + WEB_SERVICES),
    );

    let (_, message) = wait_health(&client, "Healthy").await;
    assert!(message.contains("available"), "{message}");
    sim.kubectl_serin_ok(&["set", "image", "web", "web=example/web:2"]);
    let (paused, message) = wait_health(&client, "Suspended").await;
    assert!(message.contains("paused at step 2/2 until promoted"), "{message}");
    assert_eq!(
        argocd::enabled_actions(&paused),
        ["abort", "pause", "promote", "promote-full"]
    );

    // Abort from ArgoCD: Degraded, with the controller's words.
    run_action(&sim, "abort", &paused);
    let (aborted, message) = wait_health(&client, "Degraded").await;
    // Without a router the canary's Pods take their share until they are gone, and it says so.
    assert!(
        message.contains("aborted on request: traffic is back on stable")
            || message.contains("aborted on request: traffic is going back to stable"),
        "{message}"
    );
    assert_eq!(argocd::enabled_actions(&aborted), ["pause", "retry"]);
    run_action(&sim, "retry", &aborted);
    let (paused, _) = wait_health(&client, "Suspended").await;

    // Pause and resume hold and release it; promote moves past the pause.
    run_action(&sim, "pause", &paused);
    let paused = eventually("paused by request", WAIT, || async {
        let obj = rollout_json(&client).await;
        (obj["status"]["userPaused"] == true).then_some(obj)
    })
    .await;
    assert!(argocd::enabled_actions(&paused).contains(&"resume".to_string()));
    run_action(&sim, "resume", &paused);
    let resumed = eventually("resumed", WAIT, || async {
        let obj = rollout_json(&client).await;
        (obj["status"]["userPaused"].is_null() && obj["status"]["phase"] == "Paused").then_some(obj)
    })
    .await;
    run_action(&sim, "promote", &resumed);
    let (done, _) = wait_health(&client, "Healthy").await;
    assert_eq!(done["status"]["stablePodHash"], done["status"]["currentPodHash"]);
    assert_eq!(argocd::enabled_actions(&done), ["pause"]);
    let st: Rollout = serde_json::from_value(done).expect("a Rollout");
    assert_eq!(st.status.and_then(|s| s.phase), Some(Phase::Healthy));

    // Every request the controller made is allowed by the chart's RBAC.
    let cluster_rules = find(&rendered, "ClusterRole")["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let leader_rules = find(&rendered, "Role")["rules"].as_array().cloned().unwrap_or_default();
    let made = requests_of(&sim, "serin-controller").await;
    assert!(made.iter().any(|(_, r, _)| r == "leases"), "{made:?}");
    let refused: Vec<String> = sim
        .audited()
        .iter()
        .filter(|e| e["user"]["username"] == "system:serviceaccount:serin-system:serin")
        .filter(|e| e["responseStatus"]["code"] == 403)
        .map(|e| {
            format!(
                "{} {} {}",
                e["verb"], e["objectRef"]["resource"], e["objectRef"]["namespace"]
            )
        })
        .collect();
    assert!(
        refused.is_empty(),
        "the API server refused the chart's ServiceAccount: {refused:?}"
    );
    for (group, resource, verb) in &made {
        let ok = allowed(&cluster_rules, group, resource, verb)
            || (resource == "leases" || resource == "configmaps" || resource == "secrets")
                && (allowed(&leader_rules, group, resource, verb));
        assert!(ok, "the chart's RBAC does not allow {verb} {group}/{resource}");
    }
    drop(controller);
}

/// The image builds from what the Dockerfile copies: every file the binary embeds is copied in,
/// and the final stage is distroless, static and non-root.
#[test]
fn the_dockerfile_copies_what_the_binary_embeds_and_runs_as_non_root() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            parts[..parts.len().saturating_sub(1)].to_vec()
        })
        .collect();
    for path in &copied {
        assert!(
            root.join(path).exists(),
            "the Dockerfile copies {path}, which is missing"
        );
    }
    // Every include_str! in src/ points under a copied path.
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for embedded in text
                .split("include_str!(\"")
                .skip(1)
                .filter_map(|t| t.split('"').next())
            {
                let file = path.parent().unwrap().join(embedded);
                let file = file
                    .canonicalize()
                    .unwrap_or_else(|_| panic!("{} embeds a missing {embedded}", path.display()));
                let rel = file
                    .strip_prefix(root.canonicalize().unwrap())
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                assert!(
                    copied.iter().any(|c| rel.starts_with(c.trim_end_matches('/'))),
                    "{rel} (embedded by {}) is not copied into the image",
                    path.display()
                );
            }
        }
    }
    let last_from = dockerfile.lines().rfind(|l| l.starts_with("FROM ")).unwrap_or_default();
    assert!(
        last_from.contains("distroless/static") && last_from.contains("nonroot"),
        "{last_from}"
    );
    assert_eq!(
        dockerfile.lines().filter(|l| l.starts_with("FROM ")).count(),
        2,
        "multi-stage"
    );
    let user = dockerfile.lines().rfind(|l| l.starts_with("USER ")).unwrap_or_default();
    assert!(!user.contains("root") && !user.ends_with(" 0"), "{user}");
    assert!(dockerfile.contains("x86_64-unknown-linux-musl"), "a static binary");
}

/// Every example is YAML with an apiVersion and kind in each document.
#[test]
fn every_example_is_well_formed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("example");
        for doc in docs(&text) {
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "{}: {doc}",
                entry.path().display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 10, "{seen} documents");
}
