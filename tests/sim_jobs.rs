//! Jobs in the simulated cluster, driven by the real kubectl as a user drives a cluster's: Pods
//! that run and exit as their env says, the Job's counts and conditions, `backoffLimit` with the
//! Job controller's back-off, and what the API server refuses.

mod common;

use common::Cluster;
use std::time::Instant;

fn job(name: &str, exit_code: u8, backoff_limit: u8, restart: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata: {{name: {name}, namespace: default}}
spec:
  backoffLimit: {backoff_limit}
  template:
    spec:
      restartPolicy: {restart}
      containers:
      - name: check
        image: busybox
        command: [sh, -c, "exit {exit_code}"]
        env:
        - {{name: SERIN_SIM_READY_SECONDS, value: "0.2"}}
        - {{name: SERIN_SIM_RUN_SECONDS, value: "0.5"}}
        - {{name: SERIN_SIM_EXIT_CODE, value: "{exit_code}"}}
"#
    )
}

/// A JSONPath over the Pods of a Job.
fn job_pods(sim: &Cluster, job: &str, path: &str) -> String {
    sim.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("job-name={job}"),
        "-o",
        &format!("jsonpath={path}"),
    ])
}

fn field(sim: &Cluster, what: &str, path: &str) -> String {
    sim.kubectl_ok(&["get", what, "-o", &format!("jsonpath={path}")])
}

#[test]
fn a_job_runs_its_pod_to_completion() {
    let sim = Cluster::sim();
    sim.apply_yaml(&job("ok", 0, 6, "Never"));
    sim.kubectl_ok(&["wait", "--for=condition=complete", "job/ok", "--timeout=30s"]);
    assert_eq!(field(&sim, "job/ok", "{.status.succeeded}"), "1");
    assert!(!field(&sim, "job/ok", "{.status.completionTime}").is_empty());
    // Defaults the API server sets, and the labels that tie Pods to their Job.
    assert_eq!(field(&sim, "job/ok", "{.spec.completions}/{.spec.parallelism}"), "1/1");
    let uid = field(&sim, "job/ok", "{.metadata.uid}");
    assert_eq!(
        field(
            &sim,
            "job/ok",
            "{.spec.selector.matchLabels.batch\\.kubernetes\\.io/controller-uid}"
        ),
        uid
    );
    let pods = job_pods(&sim, "ok", "{.items[*].status.phase}");
    assert_eq!(pods, "Succeeded");
    let code = job_pods(
        &sim,
        "ok",
        "{.items[0].status.containerStatuses[0].state.terminated.reason}",
    );
    assert_eq!(code, "Completed");
    let table = sim.kubectl_ok(&["get", "jobs"]);
    assert!(table.contains("Complete") && table.contains("1/1"), "{table}");
}

#[test]
fn a_failing_job_is_retried_until_its_backoff_limit() {
    let sim = Cluster::sim();
    let started = Instant::now();
    sim.apply_yaml(&job("bad", 2, 1, "Never"));
    sim.kubectl_ok(&["wait", "--for=condition=failed", "job/bad", "--timeout=60s"]);
    let took = started.elapsed();
    assert_eq!(field(&sim, "job/bad", "{.status.failed}"), "2", "one try and one retry");
    assert_eq!(
        field(&sim, "job/bad", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
        "BackoffLimitExceeded"
    );
    let pods = job_pods(&sim, "bad", "{.items[*].status.phase}");
    assert_eq!(pods, "Failed Failed");
    let exit = job_pods(
        &sim,
        "bad",
        "{.items[0].status.containerStatuses[0].state.terminated.exitCode}",
    );
    assert_eq!(exit, "2");
    // Pod times are kept to the second, so the 10s back-off may end up to a second early.
    assert!(
        took.as_secs_f64() >= 9.0,
        "the retry waits the Job controller's 10s back-off ({took:?})"
    );
    let table = sim.kubectl_ok(&["get", "jobs"]);
    assert!(table.contains("Failed") && table.contains("0/1"), "{table}");
}

#[test]
fn the_api_server_refuses_what_kubernetes_refuses() {
    let sim = Cluster::sim();
    let out = sim.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &job("always", 0, 6, "Always"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.template.spec.restartPolicy"), "{err}");
    sim.apply_yaml(&job("fixed", 0, 6, "Never"));
    let changed = job("fixed", 0, 6, "Never").replace("image: busybox", "image: alpine");
    let out = sim.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &changed);
    assert!(!out.status.success(), "a Job's template cannot change");
    assert!(String::from_utf8_lossy(&out.stderr).contains("field is immutable"));
}

#[test]
fn on_failure_restarts_count_against_the_backoff_limit() {
    let sim = Cluster::sim();
    sim.apply_yaml(&job("flaky", 1, 1, "OnFailure"));
    sim.kubectl_ok(&["wait", "--for=condition=failed", "job/flaky", "--timeout=30s"]);
    assert_eq!(
        field(&sim, "job/flaky", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
        "BackoffLimitExceeded"
    );
    assert_eq!(
        field(&sim, "job/flaky", "{.status.failed}"),
        "1",
        "the stopped Pod counts as failed"
    );
}

#[test]
fn a_suspended_job_waits_and_runs_when_resumed() {
    let sim = Cluster::sim();
    sim.apply_yaml(&job("later", 0, 6, "Never").replace("  backoffLimit: 6", "  backoffLimit: 6\n  suspend: true"));
    sim.kubectl_ok(&["wait", "--for=condition=suspended", "job/later", "--timeout=30s"]);
    assert_eq!(field(&sim, "job/later", "{.status.startTime}"), "", "not started");
    let pods = sim.kubectl_ok(&["get", "pods", "-l", "job-name=later", "-o", "name"]);
    assert_eq!(pods.trim(), "", "no Pods while suspended");
    sim.kubectl_ok(&[
        "patch",
        "job",
        "later",
        "--type=merge",
        "-p",
        "{\"spec\":{\"suspend\":false}}",
    ]);
    sim.kubectl_ok(&["wait", "--for=condition=complete", "job/later", "--timeout=30s"]);
    assert_eq!(
        field(
            &sim,
            "job/later",
            "{.status.conditions[?(@.type==\"Suspended\")].reason}"
        ),
        "JobResumed"
    );
}
