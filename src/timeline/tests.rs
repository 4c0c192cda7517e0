//! Timelines worked out by hand, against what the simulation of the controller gives.

use super::*;
use crate::crd::analysis::AnalysisTemplate;
use serde_json::json;

fn rollout(strategy: serde_json::Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "web:2"}]}},
            "strategy": strategy
        }
    }))
    .unwrap()
}

/// An error-rate template as the docs write it: three measurements 30s apart, no initial delay.
fn templates() -> Templates {
    let t: AnalysisTemplate = serde_json::from_value(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate"},
        "spec": {"metrics": [{
            "name": "error-rate", "interval": "30s", "count": 3,
            "successCondition": "result < 0.05",
            "provider": {"prometheus": {"address": "http://prometheus:9090", "query": "vector(0)"}}
        }]}
    }))
    .unwrap();
    [(
        TemplateId {
            cluster: false,
            name: "error-rate".into(),
        },
        t.spec,
    )]
    .into()
}

fn routed(steps: serde_json::Value) -> Rollout {
    rollout(json!({"canary": {
        "stableService": "web-stable", "canaryService": "web-canary",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
        "steps": steps
    }}))
}

fn opts(rps: Option<f64>) -> Options {
    Options {
        rps,
        pod_startup: Duration::ZERO,
    }
}

fn traffic(t: &Timeline) -> Vec<f64> {
    t.steps.iter().map(|s| s.traffic).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.1
}

#[test]
fn a_routed_canary_walks_its_weights_and_times() {
    let r = routed(json!([
        {"setWeight": 5}, {"pause": {"duration": "1m"}},
        {"setWeight": 25}, {"analysis": {"templates": [{"templateName": "error-rate"}]}},
        {"setWeight": 100}
    ]));
    let t = timeline(&r, &templates(), &opts(Some(100.0))).unwrap();
    assert_eq!(traffic(&t), vec![5.0, 5.0, 25.0, 25.0, 100.0]);
    let pause = &t.steps[1];
    assert!(close(pause.lasts[0], 60.0), "{pause:?}");
    assert!(
        close(pause.requests.unwrap(), 60.0 * 100.0 * 0.05),
        "5% of 100 rps for a minute"
    );
    // Three measurements 30s apart: the third at 60s. The latest finds no data 4 times first
    // (the default consecutiveNoDataLimit), 30s apart: 2 minutes more.
    let analysis = &t.steps[3];
    assert!(close(analysis.lasts[0], 60.0), "{analysis:?}");
    assert!(close(analysis.lasts[1], 180.0), "{analysis:?}");
    let [earliest, latest] = t.promoted_after.unwrap();
    assert!(close(earliest, 120.0) && close(latest, 240.0), "{earliest} {latest}");
    assert!(t.waits_for_people.is_empty());
    assert_eq!(t.steps[4].new_pods, 4);
}

#[test]
fn a_failed_analysis_sends_traffic_back_in_one_write_and_pods_after_the_delay() {
    let r = routed(json!([
        {"setWeight": 20}, {"analysis": {"templates": [{"templateName": "error-rate"}]}}
    ]));
    let t = timeline(&r, &templates(), &opts(Some(10.0))).unwrap();
    assert_eq!(t.failures.len(), 1, "{:?}", t.failures);
    let f = &t.failures[0];
    assert_eq!(f.step, Some(1));
    assert!(close(f.traffic, 20.0));
    assert!(
        close(f.detected_after.unwrap(), 0.0),
        "failureLimit 0: the first measurement decides"
    );
    assert!(
        f.traffic_back_after.unwrap() < 0.01,
        "the route goes back in the same reconcile"
    );
    assert!(close(f.pods_gone_after.unwrap(), 30.0), "abortScaleDownDelaySeconds");
    assert!(f.how.contains("HTTPRoute"), "{}", f.how);
}

#[test]
fn a_pause_without_duration_waits_for_a_person() {
    let r = routed(json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 60}]));
    let t = timeline(&r, &templates(), &opts(None)).unwrap();
    assert_eq!(t.waits_for_people, vec![1]);
    assert!(t.steps[1].waits_for_person);
    assert_eq!(traffic(&t), vec![10.0, 10.0, 60.0, 100.0]);
}

#[test]
fn without_a_router_traffic_follows_the_pods() {
    let r = rollout(json!({"canary": {"steps": [{"setWeight": 25}, {"pause": {"duration": "10s"}}]}}));
    let t = timeline(&r, &templates(), &opts(None)).unwrap();
    assert_eq!((t.steps[0].new_pods, t.steps[0].old_pods), (1, 3));
    assert!(close(t.steps[0].traffic, 25.0));
    assert!(t.traffic.contains("Pod counts"));
}

#[test]
fn a_pod_start_up_time_delays_every_step_that_adds_pods() {
    let r = routed(json!([{"setWeight": 50}, {"setWeight": 100}]));
    let slow = Options {
        rps: None,
        pod_startup: Duration::from_secs(20),
    };
    let t = timeline(&r, &templates(), &slow).unwrap();
    let [earliest, _] = t.promoted_after.unwrap();
    assert!(close(earliest, 40.0), "two rounds of new Pods: {earliest}");
}

#[test]
fn blue_green_is_dark_until_the_switch() {
    let r = rollout(json!({"blueGreen": {
        "activeService": "web-active", "previewService": "web-preview",
        "prePromotionAnalysis": {"templates": [{"templateName": "error-rate"}]}
    }}));
    let t = timeline(&r, &templates(), &opts(None)).unwrap();
    assert_eq!(t.strategy, "blueGreen");
    assert_eq!(traffic(&t), vec![0.0, 100.0, 100.0]);
    assert_eq!((t.steps[0].new_pods, t.steps[0].old_pods), (4, 4));
    let f = &t.failures[0];
    assert!(close(f.traffic, 0.0), "a failed preview never had users");
    assert!(f.how.contains("active Service"));
}

#[test]
fn a_missing_template_is_a_note_and_the_spec_is_the_controllers_to_judge() {
    let r = routed(json!([{"setWeight": 10}, {"analysis": {"templates": [{"templateName": "absent"}]}}]));
    let t = timeline(&r, &templates(), &opts(None)).unwrap();
    assert!(
        t.notes.iter().any(|n| n.contains("\"absent\" not found")),
        "{:?}",
        t.notes
    );
    let both = rollout(json!({"canary": {}, "blueGreen": {"activeService": "a"}}));
    let err = timeline(&both, &templates(), &opts(None)).unwrap_err();
    let TimelineError::InvalidSpec(message) = err else {
        panic!("{err:?}")
    };
    let controller = crate::plan::validate::problems(
        &both.spec,
        &both.spec.selector,
        both.spec.template.as_ref().map(|t| t.typed()).as_ref(),
    );
    assert_eq!(message, controller.join("; "), "the controller's own words");
}

#[test]
fn a_rolling_update_is_one_step() {
    let r = rollout(json!({"canary": {"steps": []}}));
    let t = timeline(&r, &templates(), &opts(None)).unwrap();
    assert_eq!(t.strategy, "rollingUpdate");
    assert_eq!(t.steps.len(), 1, "{:?}", t.steps);
    assert_eq!(t.steps[0].step, "rolling update");
}

#[test]
fn a_background_analysis_too_slow_to_stop_the_update_is_called_out() {
    // Failures tolerated 3 times, 5 minutes apart: 15 minutes to fail, and the update is done in 2.
    let mut t = templates();
    if let Some(spec) = t.values_mut().next() {
        spec.metrics[0].interval = Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
            "5m".into(),
        ));
        spec.metrics[0].failure_limit = Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(3));
        spec.metrics[0].count = None;
    }
    let r = rollout(json!({"canary": {
        "analysis": {"templates": [{"templateName": "error-rate"}]},
        "steps": [{"setWeight": 20}, {"pause": {"duration": "2m"}}]
    }}));
    let timeline = timeline(&r, &t, &opts(None)).unwrap();
    let f = timeline
        .failures
        .iter()
        .find(|f| f.step.is_none())
        .expect("the background analysis");
    assert_eq!(f.detected_after, None);
    assert!(f.how.contains("never stops it"), "{}", f.how);
    let text = render::text(&timeline);
    assert!(text.contains("Warning: background analysis"), "{text}");
}
