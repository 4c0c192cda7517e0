//! The chart's admission policies for platform teams, end to end: rendered by the real helm with
//! `policies.enabled=true`, applied with the real kubectl to a running simulated cluster, and
//! judging Rollouts as users write them, in a namespace labelled
//! `serin.dev/require-analysis: "true"` and in one that is not.

mod common;

use common::{Cluster, helm_ok};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/serin");
const GUARDED: &str = "payments";
const FREE: &str = "sandbox";

fn render_policies(extra: &[&str]) -> String {
    let mut args = vec![
        "template",
        "serin",
        CHART,
        "--namespace",
        "serin-system",
        "--set",
        "policies.enabled=true",
        "--show-only",
        "templates/policies.yaml",
    ];
    for v in extra {
        args.extend(["--set", v]);
    }
    helm_ok(None, &args)
}

/// Waits until the API server refuses `manifest` in a server-side dry run, and returns what it
/// said. A real kube-apiserver puts a new ValidatingAdmissionPolicy, binding or namespace label
/// in force a moment after the write that made it, from its informers.
fn until_refused(sim: &Cluster, manifest: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = sim.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], manifest);
        if !out.status.success() {
            return String::from_utf8_lossy(&out.stderr).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still accepted after 30 s: {manifest}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn cluster() -> Cluster {
    // Its own control plane: the policies and namespaces are cluster-wide.
    let sim = Cluster::start_alone();
    sim.install_crds();
    let namespaces = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {GUARDED}, labels: {{serin.dev/require-analysis: \"true\"}}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {FREE}}}\n"
    );
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], &namespaces);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], &render_policies(&[]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let applied = String::from_utf8_lossy(&out.stdout);
    for name in [
        "serin-require-analysis",
        "serin-max-step-increase",
        "serin-require-pre-promotion-analysis",
    ] {
        assert!(
            applied.contains(&format!(
                "validatingadmissionpolicy.admissionregistration.k8s.io/{name} created"
            )) && applied.contains(&format!(
                "validatingadmissionpolicybinding.admissionregistration.k8s.io/{name} created"
            )),
            "{applied}"
        );
    }
    let (_, first, says) = breaking(GUARDED).remove(0);
    let err = until_refused(&sim, &first);
    assert!(err.contains(says), "{err}");
    sim
}

/// A Rollout of version 1.0 with `strategy` lines under `spec.strategy:` (4-space indent).
fn rollout(name: &str, namespace: &str, strategy: &str) -> String {
    format!(
        r#"apiVersion: serin.dev/v1alpha1
kind: Rollout
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: 4
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: example/web:1.0
  strategy:
{strategy}"#
    )
}

/// A canary Rollout with `strategy` lines under `strategy.canary:` (6-space indent).
fn canary(name: &str, namespace: &str, strategy: &str) -> String {
    let lines =
        format!("    canary:\n      stableService: {name}-stable\n      canaryService: {name}-canary\n{strategy}");
    rollout(name, namespace, &lines)
}

fn blue_green(name: &str, namespace: &str, analysis: &str) -> String {
    let lines = format!(
        "    blueGreen:\n      activeService: {name}-active\n      previewService: {name}-preview\n      autoPromotionEnabled: true\n{analysis}"
    );
    rollout(name, namespace, &lines)
}

const BACKGROUND_ANALYSIS: &str = r#"      analysis:
        templates:
        - templateName: error-rate
        args:
        - name: canary-hash
          valueFrom: {podTemplateHashValue: Latest}
"#;

const PRE_PROMOTION: &str = r#"      prePromotionAnalysis:
        templates:
        - templateName: latency-p99
"#;

const POST_PROMOTION_ONLY: &str = r#"      postPromotionAnalysis:
        templates:
        - templateName: error-rate
"#;

/// (name, Rollout, what its refusal says) for each rule a Rollout can break.
fn breaking(namespace: &str) -> Vec<(&'static str, String, &'static str)> {
    let no_analysis_steps = "      steps:\n      - setWeight: 20\n      - pause: {duration: 1m}\n      - setWeight: 50\n      - pause: {}\n";
    let jump = format!(
        "{BACKGROUND_ANALYSIS}      steps:\n      - setWeight: 10\n      - analysis: {{templates: [{{templateName: error-rate}}]}}\n      - setWeight: 80\n      - pause: {{}}\n"
    );
    let first_too_big = format!("{BACKGROUND_ANALYSIS}      steps:\n      - setWeight: 60\n      - pause: {{}}\n");
    let analysis = "ValidatingAdmissionPolicy 'serin-require-analysis' with binding 'serin-require-analysis' denied request: Rollouts in namespaces labelled serin.dev/require-analysis=true must run an analysis: add strategy.canary.analysis";
    let steps = "ValidatingAdmissionPolicy 'serin-max-step-increase' with binding 'serin-max-step-increase' denied request: Rollouts in namespaces labelled serin.dev/require-analysis=true may raise the canary weight by at most 50 points per setWeight step (the first from 0): add setWeight steps in between";
    let pre = "ValidatingAdmissionPolicy 'serin-require-pre-promotion-analysis' with binding 'serin-require-pre-promotion-analysis' denied request: Blue-green Rollouts in namespaces labelled serin.dev/require-analysis=true must check the new version before it takes traffic: add strategy.blueGreen.prePromotionAnalysis";
    vec![
        (
            "steps-without-analysis",
            canary("steps-without-analysis", namespace, no_analysis_steps),
            analysis,
        ),
        ("default-steps", canary("default-steps", namespace, ""), analysis),
        (
            "rolling-update",
            canary("rolling-update", namespace, "      steps: []\n"),
            analysis,
        ),
        ("big-jump", canary("big-jump", namespace, &jump), steps),
        (
            "big-first-step",
            canary("big-first-step", namespace, &first_too_big),
            steps,
        ),
        (
            "bg-unchecked",
            blue_green("bg-unchecked", namespace, POST_PROMOTION_ONLY),
            pre,
        ),
    ]
}

fn compliant(namespace: &str) -> Vec<(&'static str, String)> {
    let analysis_steps = "      steps:\n      - setWeight: 10\n      - analysis: {templates: [{templateName: error-rate}]}\n      - setWeight: 30\n      - pause: {duration: 2m}\n      - setWeight: 60\n      - analysis: {templates: [{templateName: error-rate}, {templateName: latency-p99}]}\n      - setWeight: 100\n";
    vec![
        ("background", canary("background", namespace, BACKGROUND_ANALYSIS)),
        ("stepwise", canary("stepwise", namespace, analysis_steps)),
        (
            "rolling-with-analysis",
            canary(
                "rolling-with-analysis",
                namespace,
                &format!("{BACKGROUND_ANALYSIS}      steps: []\n"),
            ),
        ),
        ("bg-checked", blue_green("bg-checked", namespace, PRE_PROMOTION)),
    ]
}

#[test]
fn the_charts_policies_refuse_rollouts_without_analysis_only_where_required() {
    let sim = cluster();
    for (name, rollout, says) in breaking(GUARDED) {
        let out = sim.kubectl_stdin(&["apply", "-f", "-"], &rollout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was accepted in {GUARDED}");
        assert!(err.contains(says), "{name}: {err}");
        let got = sim.kubectl(&["get", "rollout", name, "-n", GUARDED]);
        assert!(!got.status.success(), "{name} was stored");
    }
    for (name, rollout, _) in breaking(FREE) {
        let out = sim.kubectl_stdin(&["apply", "-f", "-"], &rollout);
        assert!(
            out.status.success(),
            "{name} refused in {FREE}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (name, rollout) in compliant(GUARDED) {
        let out = sim.kubectl_stdin(&["apply", "-f", "-"], &rollout);
        assert!(
            out.status.success(),
            "{name} refused in {GUARDED}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // An update that takes the analysis away is refused; the stored Rollout keeps it.
    let out = sim.kubectl_stdin(
        &["apply", "-f", "-"],
        &blue_green("bg-checked", GUARDED, POST_PROMOTION_ONLY),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("add strategy.blueGreen.prePromotionAnalysis"), "{err}");
    let kept = sim.kubectl_ok(&[
        "get",
        "rollout",
        "bg-checked",
        "-n",
        GUARDED,
        "-o",
        "jsonpath={.spec.strategy.blueGreen.prePromotionAnalysis.templates[0].templateName}",
    ]);
    assert_eq!(kept, "latency-p99");
    let out = sim.kubectl_stdin(
        &["apply", "-f", "-"],
        &canary("background", GUARDED, "      steps: []\n"),
    );
    assert!(
        !out.status.success(),
        "dropping the background analysis of a rolling update"
    );

    // A namespace labelled later: its Rollouts stand, writes that leave their spec alone pass,
    // and the next change to a spec must comply.
    sim.kubectl_ok(&["label", "namespace", FREE, "serin.dev/require-analysis=true"]);
    sim.kubectl_ok(&["label", "rollout", "steps-without-analysis", "-n", FREE, "team=sandbox"]);
    let (_, rollout, says) = breaking(FREE).remove(0);
    let changed = rollout.replace("replicas: 4", "replicas: 6");
    until_refused(&sim, &changed);
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], &changed);
    assert!(!out.status.success(), "a spec change in a newly labelled namespace");
    assert!(String::from_utf8_lossy(&out.stderr).contains(says));
}

#[test]
fn the_step_limit_follows_the_chart_value() {
    let sim = Cluster::start();
    sim.install_crds();
    let ns = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {GUARDED}, labels: {{serin.dev/require-analysis: \"true\"}}}}\n"
    );
    assert!(sim.kubectl_stdin(&["apply", "-f", "-"], &ns).status.success());
    let out = sim.kubectl_stdin(
        &["apply", "-f", "-"],
        &render_policies(&["policies.maxStepIncrease=20"]),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let steps = |weights: &[u32]| {
        let mut s = format!("{BACKGROUND_ANALYSIS}      steps:\n");
        for w in weights {
            s.push_str(&format!("      - setWeight: {w}\n      - pause: {{duration: 1m}}\n"));
        }
        canary("stepped", GUARDED, &s)
    };
    until_refused(&sim, &steps(&[10, 30, 60, 100]));
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], &steps(&[10, 30, 50, 70, 90, 100]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], &steps(&[10, 30, 60, 100]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("at most 20 points per setWeight step"), "{err}");
    // Lowering the weight, and steps between the setWeight ones, are fine.
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], &steps(&[20, 40, 10, 30]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let too_many: Vec<u32> = (0..101).map(|i| i % 20 + 1).collect();
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], &steps(&too_many));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most 100 setWeight steps"), "{err}");
}
