//! Argo Rollouts manifests, as their users write them, converted.

use super::*;

/// A file of the repository, read when the test runs (the image embeds no test data).
fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path)
}

fn argo() -> Vec<Value> {
    serde_saphyr::from_multiple(&read("tests/data/argo/rollouts.yaml")).expect("the Argo manifests parse")
}

fn lost(notes: &[Note]) -> Vec<String> {
    notes.iter().filter(|n| n.lost).map(|n| n.to_string()).collect()
}

#[test]
fn a_rollout_becomes_serins_with_what_it_left_out_said() {
    let (docs, notes) = convert(argo());
    let r = &docs[0];
    assert_eq!(r["apiVersion"], SERIN_API_VERSION);
    let rollout: crate::crd::rollout::Rollout = serde_json::from_value(r.clone()).expect("a Serin Rollout");
    let canary = rollout.spec.strategy.canary.expect("canary");
    let routing = canary.traffic_routing.expect("a router");
    assert_eq!(routing.gateway_api.and_then(|g| g.http_route).as_deref(), Some("shop"));
    assert!(routing.plugins.is_none(), "the plugin block became the native router");
    assert_eq!(
        canary.steps.as_ref().map(Vec::len),
        Some(5),
        "the experiment step is left out"
    );
    assert_eq!(rollout.spec.min_ready_seconds, Some(1));
    let lost = lost(&notes);
    for expected in [
        "document 1 (Rollout shop): .spec.strategy.canary.steps[2]: a `experiment` step",
        "document 1 (Rollout shop): .spec.strategy.canary.antiAffinity: has no Serin equivalent",
        "on-rollout-updated.slack: Serin sends no event like on-rollout-updated",
    ] {
        assert!(
            lost.iter().any(|l| l.contains(expected)),
            "{expected:?} not in {lost:#?}"
        );
    }
}

#[test]
fn notification_subscriptions_become_targets() {
    let (docs, _) = convert(argo());
    let targets = &docs[0]["spec"]["notifications"]["targets"];
    assert_eq!(targets.as_array().map(Vec::len), Some(1), "{targets}");
    assert_eq!(targets[0]["type"], "slack");
    assert_eq!(targets[0]["channel"], "deploys");
    let events: Vec<&str> = targets[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        events.contains(&"Promoted") && events.contains(&"Aborted"),
        "{events:?}"
    );
    assert!(
        docs[0]["metadata"]["annotations"].is_null(),
        "the subscriptions are gone from annotations"
    );
}

#[test]
fn template_conditions_become_cel_and_unknown_providers_go() {
    let (docs, notes) = convert(argo());
    let t: crate::crd::analysis::AnalysisTemplate = serde_json::from_value(docs[1].clone()).expect("a Serin template");
    assert_eq!(t.spec.metrics.len(), 1, "the Datadog metric is left out");
    assert_eq!(
        t.spec.metrics[0].success_condition.as_deref(),
        Some("size(result) == 0 || result[0] >= 0.95")
    );
    let lost = lost(&notes);
    assert!(
        lost.iter()
            .any(|l| l.contains(".spec.metrics[1]") && l.contains("latency")),
        "{lost:#?}"
    );
    assert_eq!(docs[2], argo()[2], "a Service passes through");
}

#[test]
fn serin_documents_pass_through_untouched() {
    let mine: Vec<Value> = serde_saphyr::from_multiple(&read("deploy/examples/rollout-blue-green.yaml")).unwrap();
    let (docs, notes) = convert(mine.clone());
    assert_eq!(docs, mine);
    assert!(notes.is_empty());
}

/// Every null anywhere in a converted document, by path.
fn nulls(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Null => out.push(at.to_string()),
        Value::Object(m) => m.iter().for_each(|(k, v)| nulls(v, &format!("{at}.{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| nulls(v, &format!("{at}[{i}]"), out)),
        _ => {}
    }
}

#[test]
fn a_blue_green_rollout_and_a_canary_without_steps_convert_without_nulls() {
    let argo: Vec<Value> = serde_saphyr::from_multiple(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: bg}
spec:
  replicas: 2
  selector: {matchLabels: {app: bg}}
  template:
    metadata: {labels: {app: bg}}
    spec: {containers: [{name: bg, image: "argoproj/rollouts-demo:blue"}]}
  strategy:
    blueGreen: {activeService: bg-active, previewService: bg-preview, autoPromotionEnabled: false}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: rolling}
spec:
  replicas: 4
  selector: {matchLabels: {app: rolling}}
  template:
    metadata: {labels: {app: rolling}}
    spec: {containers: [{name: rolling, image: "argoproj/rollouts-demo:blue"}]}
  strategy:
    canary: {maxSurge: 1, maxUnavailable: 0}
"#,
    )
    .unwrap();
    let (docs, notes) = convert(argo);
    for doc in &docs {
        let mut found = Vec::new();
        nulls(doc, "", &mut found);
        assert!(found.is_empty(), "nulls at {found:?} in {doc}");
        let _: crate::crd::rollout::Rollout = serde_json::from_value(doc.clone()).expect("a Serin Rollout");
    }
    assert!(docs[0]["spec"]["strategy"].get("canary").is_none());
    assert!(docs[0]["metadata"].get("annotations").is_none());
    assert_eq!(docs[1]["spec"]["strategy"]["canary"]["steps"], json!([]));
    assert!(
        notes.iter().any(|n| !n.lost
            && n.to_string()
                .contains("document 2 (Rollout rolling): .spec.strategy.canary.steps")),
        "{notes:?}"
    );
}
