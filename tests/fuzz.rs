//! Fuzzing with proptest (cargo-fuzz needs a nightly toolchain this project does not use):
//! decoding arbitrary and mutated Rollouts and templates, planning whatever decodes, CEL
//! conditions over odd numbers, and arguments templated into PromQL. `make test` runs a bounded
//! number of cases; `make fuzz` many more (SERIN_FUZZ_CASES). Failures proptest finds are kept in
//! `tests/fuzz.proptest-regressions` and replayed first.

use proptest::prelude::*;
use serde_json::{Value, json};
use serin::analysis::args::substitute;
use serin::analysis::condition::{QueryResult, verdict};
use serin::crd::analysis::{AnalysisTemplate, Metric};
use serin::crd::rollout::Rollout;
use serin::plan::{Observed, ObservedReplicaSet, plan};
use std::collections::BTreeMap;

fn config() -> ProptestConfig {
    let cases = std::env::var("SERIN_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000);
    ProptestConfig::with_cases(cases)
}

fn valid_rollout() -> Value {
    json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop", "generation": 3, "uid": "u1"},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:2"}]}},
            "strategy": {"canary": {
                "stableService": "web-stable", "canaryService": "web-canary",
                "maxSurge": "25%", "maxUnavailable": 1,
                "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
                "analysis": {"templates": [{"templateName": "error-rate"}]},
                "webhooks": [{"name": "gate", "type": "confirm-promotion", "url": "http://x", "interval": "5s"}],
                "steps": [{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setCanaryScale": {"weight": 50}},
                          {"setHeaderRoute": {"name": "h", "match": [{"headerName": "x", "headerValue": {"exact": "1"}}]}},
                          {"analysis": {"templates": [{"templateName": "error-rate"}]}}, {"pause": {}}]
            }}
        },
        "status": {
            "phase": "Paused", "currentPodHash": "new", "stablePodHash": "old", "currentStepIndex": 2,
            "canaryWeight": 20, "currentStepStartedAt": "2026-11-27T00:00:00Z", "attempt": 1,
            "control": {"promoteStep": 2}
        }
    })
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z0-9%:./ -]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path to a value in `v`, as keys and indices.
fn paths(v: &Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let mut p = at.clone();
                p.push(k.clone());
                paths(c, p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let mut p = at.clone();
                p.push(i.to_string());
                paths(c, p, out);
            }
        }
        _ => {}
    }
}

fn replace_at(v: &mut Value, path: &[String], with: Value) {
    let Some((first, rest)) = path.split_first() else {
        *v = with;
        return;
    };
    let child = match v {
        Value::Object(m) => m.get_mut(first),
        Value::Array(a) => first.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    };
    if let Some(c) = child {
        replace_at(c, rest, with);
    }
}

fn observed() -> Observed {
    let rs = |hash: &str, n: i32| ObservedReplicaSet {
        name: format!("web-{hash}"),
        hash: hash.into(),
        spec_replicas: n,
        replicas: n,
        ready: n,
        available: n,
        created: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
        pod_metadata: None,
    };
    Observed {
        replica_sets: vec![rs("old", 5), rs("new", 2)],
        analysis_runs: Vec::new(),
        workload_template: None,
        workload_selector: None,
        workload_replicas: None,
        workload_generation: None,
        pods_to_restart: Vec::new(),
        ready_pods: None,
        pointed_services: Vec::new(),
        missing_templates: Vec::new(),
    }
}

proptest! {
    #![proptest_config(config())]

    /// Text that is not a Rollout is an error, never a panic.
    #[test]
    fn arbitrary_text_never_panics_the_decoders(text in "\\PC{0,200}", yamlish in "([a-zA-Z]{1,6}: ?[\\[\\]{}0-9a-z\"'|>-]{0,8}\n {0,4}){0,12}") {
        for t in [&text, &yamlish] {
            let _ = serde_json::from_str::<Rollout>(t);
            let _ = serde_saphyr::from_str::<Rollout>(t);
            let _ = serde_saphyr::from_str::<AnalysisTemplate>(t);
        }
    }

    /// A valid Rollout with any one value replaced: it decodes or is refused, and whatever
    /// decodes is planned without a panic, within bounds.
    #[test]
    fn mutated_rollouts_decode_or_are_refused_and_plan_safely(pick in any::<prop::sample::Index>(), with in any_json(), secs in 0i64..100_000) {
        let mut v = valid_rollout();
        let mut all = Vec::new();
        paths(&v, Vec::new(), &mut all);
        let path = pick.get(&all).clone();
        replace_at(&mut v, &path, with);
        if let Ok(rollout) = serde_json::from_value::<Rollout>(v.clone()) {
            let now = jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap();
            let p = plan(&rollout, &observed(), now);
            prop_assert!((0..=100).contains(&p.weight), "weight {} at {path:?}", p.weight);
            prop_assert!(p.replica_sets.iter().all(|r| r.replicas >= 0), "{path:?}");
            // The plan's status is itself a status that decodes back.
            let back = serde_json::to_value(&p.status).unwrap();
            prop_assert!(serde_json::from_value::<serin::crd::rollout::RolloutStatus>(back).is_ok());
        }
    }

    /// Any condition over any numbers is a verdict or an error that says why.
    #[test]
    fn cel_conditions_never_panic(
        expr in prop_oneof![
            "[a-z0-9 <>=!&|()+*/.,\\[\\]\"?:-]{0,40}",
            "result ?(<|>|==|<=|!=) ?-?[0-9]{1,3}(\\.[0-9]{1,3})?",
            "(all|exists|size|map)\\(result(, ?x, ?x ?< ?[0-9])?\\)",
        ],
        failure in prop::option::of("result ?> ?[0-9.]{1,5}"),
        values in prop::collection::vec(prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY)], 0..4),
        scalar in any::<bool>(),
    ) {
        let metric: Metric = serde_json::from_value(json!({
            "name": "m",
            "successCondition": expr,
            "failureCondition": failure,
            "provider": {"prometheus": {"address": "http://p", "query": "q"}}
        })).unwrap();
        let result = match (scalar, values.first()) {
            (true, Some(v)) => QueryResult::Scalar(*v),
            (_, None) => QueryResult::Empty,
            _ => QueryResult::Vector(values.clone()),
        };
        let _ = verdict(&metric, &result).map(|(_, why)| why.describe(&metric));
    }

    /// An argument inside a quoted string is that string's whole content, whatever it holds;
    /// outside quotes only a plain token gets in.
    #[test]
    fn arguments_never_change_a_query(value in "\\PC{0,40}") {
        let args = BTreeMap::from([("x".to_string(), value.clone())]);
        let query = substitute(r#"sum(rate(http_requests_total{pod_template_hash="{{args.x}}"}[1m]))"#, &args).unwrap();
        let inner = query
            .strip_prefix(r#"sum(rate(http_requests_total{pod_template_hash=""#)
            .and_then(|r| r.strip_suffix(r#""}[1m]))"#))
            .expect("the query's shape is unchanged");
        // The content reads back as the value: no quote ends the string early.
        let mut chars = inner.chars();
        let mut read = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => prop_assert!(false, "an unescaped quote in {inner:?}"),
                '\\' => match chars.next() {
                    Some('n') => read.push('\n'),
                    Some('r') => read.push('\r'),
                    Some('t') => read.push('\t'),
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        read.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                    }
                    Some(c) => read.push(c),
                    None => prop_assert!(false, "a dangling backslash in {inner:?}"),
                },
                c => read.push(c),
            }
        }
        prop_assert_eq!(read, value.clone());
        // In single quotes the same holds for a single quote.
        let single = substitute("up{job='{{args.x}}'}", &args).unwrap();
        let inner = single
            .strip_prefix("up{job='")
            .and_then(|r| r.strip_suffix("'}"))
            .expect("the query's shape is unchanged");
        let mut escaped = false;
        for c in inner.chars() {
            prop_assert!(escaped || c != '\'', "an unescaped quote in {inner:?}");
            escaped = !escaped && c == '\\';
        }
        prop_assert!(!escaped, "a dangling backslash in {inner:?}");
        // A raw string takes the value as it is, or refuses it.
        match substitute("up{job=`{{args.x}}`}", &args) {
            Ok(q) => prop_assert_eq!(q, format!("up{{job=`{value}`}}")),
            Err(_) => prop_assert!(value.contains(['`', '\n', '\r'])),
        }
        match substitute("topk({{args.x}}, up)", &args) {
            Ok(q) => prop_assert!(value.chars().all(|c| c.is_ascii_alphanumeric() || "_:.".contains(c)), "{q}"),
            Err(e) => prop_assert!(e.to_string().contains("outside a quoted string")),
        }
    }
}
