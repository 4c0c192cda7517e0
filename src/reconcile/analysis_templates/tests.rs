use super::*;
use serde_json::json;

fn rollout() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop",
                     "labels": {"app.kubernetes.io/name": "web-app"},
                     "annotations": {"team": "payments"}},
        "spec": {"replicas": 3, "selector": {}, "strategy": {"canary": {}},
                 "template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}
    }))
    .unwrap()
}

fn template(v: serde_json::Value) -> AnalysisTemplateSpec {
    serde_json::from_value(v).unwrap()
}

fn id(name: &str) -> TemplateId {
    TemplateId {
        cluster: false,
        name: name.into(),
    }
}

fn refs(names: &[&str]) -> Vec<AnalysisTemplateRef> {
    names
        .iter()
        .map(|n| AnalysisTemplateRef {
            template_name: n.to_string(),
            cluster_scope: None,
        })
        .collect()
}

fn metric(name: &str, query: &str) -> serde_json::Value {
    json!({"name": name, "successCondition": "result < 0.05",
           "provider": {"prometheus": {"address": "{{args.prometheus}}", "query": query}}})
}

fn build_from(
    all: &BTreeMap<TemplateId, AnalysisTemplateSpec>,
    analysis: &RolloutAnalysis,
) -> Result<AnalysisRunSpec, TemplateError> {
    let ordered = order(&analysis.templates, all)?;
    build(&ordered, all, &rollout(), analysis, ("new1", "old1"), false)
}

fn analysis(v: serde_json::Value) -> RolloutAnalysis {
    serde_json::from_value(v).unwrap()
}

#[test]
fn field_refs_read_the_rollout() {
    let r = rollout();
    assert_eq!(field(&r, "metadata.name").as_deref(), Some("web"));
    assert_eq!(field(&r, "metadata.namespace").as_deref(), Some("shop"));
    assert_eq!(
        field(&r, "metadata.labels['app.kubernetes.io/name']").as_deref(),
        Some("web-app")
    );
    assert_eq!(field(&r, "metadata.annotations['team']").as_deref(), Some("payments"));
    assert_eq!(field(&r, "spec.replicas").as_deref(), Some("3"));
    assert_eq!(
        field(&r, "spec.template.spec.containers[0].image").as_deref(),
        Some("web:2")
    );
    assert_eq!(field(&r, "spec.nothing"), None);
    assert_eq!(field(&r, "spec.template"), None, "not a value");
}

#[test]
fn arguments_come_from_values_fields_hashes_and_secrets() {
    let all: BTreeMap<_, _> = [(
        id("errors"),
        template(json!({
            "args": [{"name": "prometheus", "value": "http://prom:9090"}, {"name": "hash"},
                     {"name": "app"}, {"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            "metrics": [{"name": "e", "successCondition": "result < 0.05", "provider": {"prometheus": {
                "address": "{{args.prometheus}}", "query": "x{h=\"{{args.hash}}\",app=\"{{args.app}}\"}",
                "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}]}}}]
        })),
    )]
    .into();
    let spec = build_from(
        &all,
        &analysis(json!({"templates": [{"templateName": "errors"}], "args": [
            {"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
            {"name": "app", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app.kubernetes.io/name']"}}}
        ]})),
    )
    .unwrap();
    let value = |n: &str| spec.args.iter().find(|a| a.name == n).and_then(|a| a.value.clone());
    assert_eq!(value("hash").as_deref(), Some("new1"));
    assert_eq!(value("app").as_deref(), Some("web-app"));
    assert_eq!(value("prometheus").as_deref(), Some("http://prom:9090"));
    let token = spec.args.iter().find(|a| a.name == "token").unwrap();
    assert_eq!(token.value, None, "a Secret's value is never stored");
    assert!(token.value_from.as_ref().unwrap().secret_key_ref.is_some());
    // Values are in the run's metrics; a Secret's stays a placeholder until each measurement.
    let p = spec.metrics[0].provider.prometheus.as_ref().unwrap();
    assert_eq!(p.address, "http://prom:9090");
    assert_eq!(p.query, "x{h=\"new1\",app=\"web-app\"}");
    assert_eq!(p.headers[0].value, "Bearer {{args.token}}");
    let stable = build(
        &[id("errors")],
        &all,
        &rollout(),
        &analysis(json!({"templates": [{"templateName": "errors"}], "args": [
            {"name": "hash", "valueFrom": {"podTemplateHashValue": "Stable"}}, {"name": "app", "value": "a"}]})),
        ("new1", "old1"),
        false,
    )
    .unwrap();
    assert_eq!(
        stable
            .args
            .iter()
            .find(|a| a.name == "hash")
            .and_then(|a| a.value.as_deref()),
        Some("old1")
    );
}

#[test]
fn an_argument_without_a_value_names_itself_and_its_template() {
    let all: BTreeMap<_, _> = [(
        id("errors"),
        template(json!({"args": [{"name": "prometheus"}], "metrics": [metric("error-rate", "up")]})),
    )]
    .into();
    let err = build_from(&all, &analysis(json!({"templates": [{"templateName": "errors"}]}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "AnalysisTemplate \"errors\": metric \"error-rate\" uses {{args.prometheus}}, which has no value: give it one in the template's args or in the Rollout's analysis args"
    );
    assert!(!err.may_pass());
    // An undeclared one too, and an unknown placeholder.
    let all: BTreeMap<_, _> = [(id("errors"), template(json!({"metrics": [metric("e", "up")]})))].into();
    let err = build_from(&all, &analysis(json!({"templates": [{"templateName": "errors"}]}))).unwrap_err();
    assert!(
        matches!(err, TemplateError::MissingArg { ref arg, .. } if arg == "prometheus"),
        "{err}"
    );
    let all: BTreeMap<_, _> = [(
        id("errors"),
        template(json!({"args": [{"name": "prometheus", "value": "http://p"}],
                        "metrics": [metric("e", "up{job=\"{{workflow.name}}\"}")]})),
    )]
    .into();
    let err = build_from(&all, &analysis(json!({"templates": [{"templateName": "errors"}]}))).unwrap_err();
    assert!(
        err.to_string().contains("{{workflow.name}} is not an argument"),
        "{err}"
    );
}

#[test]
fn templates_include_templates() {
    let all: BTreeMap<_, _> = [
        (
            id("all"),
            template(
                json!({"templates": [{"templateName": "errors"}, {"templateName": "latency"}],
                            "args": [{"name": "prometheus", "value": "http://prom"}]}),
            ),
        ),
        (
            id("errors"),
            template(
                json!({"args": [{"name": "prometheus"}], "metrics": [metric("errors", "e")],
                            "templates": [{"templateName": "base"}]}),
            ),
        ),
        (
            id("latency"),
            template(
                json!({"metrics": [metric("latency", "l")], "templates": [{"templateName": "base"}],
                            "dryRun": [{"metricName": "latency"}]}),
            ),
        ),
        (id("base"), template(json!({"metrics": [metric("up", "up")]}))),
    ]
    .into();
    let spec = build_from(&all, &analysis(json!({"templates": [{"templateName": "all"}]}))).unwrap();
    let names: Vec<&str> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["errors", "up", "latency"], "each template once, in order");
    assert_eq!(spec.dry_run.len(), 1);
    assert_eq!(spec.args.len(), 1);
}

#[test]
fn cycles_duplicates_and_conflicts_are_errors() {
    let cyclic: BTreeMap<_, _> = [
        (
            id("a"),
            template(json!({"templates": [{"templateName": "b"}], "metrics": [metric("x", "x")]})),
        ),
        (id("b"), template(json!({"templates": [{"templateName": "a"}]}))),
    ]
    .into();
    let err = order(&refs(&["a"]), &cyclic).unwrap_err();
    assert_eq!(
        err.to_string(),
        "templates include each other: AnalysisTemplate \"a\" -> AnalysisTemplate \"b\" -> AnalysisTemplate \"a\""
    );
    let dup: BTreeMap<_, _> = [
        (id("a"), template(json!({"metrics": [metric("x", "x")]}))),
        (id("b"), template(json!({"metrics": [metric("x", "y")]}))),
    ]
    .into();
    let err = build_from(
        &dup,
        &analysis(json!({"templates": [{"templateName": "a"}, {"templateName": "b"}]})),
    )
    .unwrap_err();
    assert!(matches!(err, TemplateError::DuplicateMetric { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("both AnalysisTemplate \"a\" and AnalysisTemplate \"b\"")
    );
    let conflict: BTreeMap<_, _> = [
        (
            id("a"),
            template(json!({"args": [{"name": "prometheus", "value": "http://one"}], "metrics": [metric("x", "x")]})),
        ),
        (
            id("b"),
            template(json!({"args": [{"name": "prometheus", "value": "http://two"}], "metrics": [metric("y", "y")]})),
        ),
    ]
    .into();
    let err = build_from(
        &conflict,
        &analysis(json!({"templates": [{"templateName": "a"}, {"templateName": "b"}]})),
    )
    .unwrap_err();
    assert!(matches!(err, TemplateError::ConflictingArg { .. }), "{err}");
    // The Rollout's value settles it.
    let settled = build_from(
        &conflict,
        &analysis(json!({"templates": [{"templateName": "a"}, {"templateName": "b"}],
                         "args": [{"name": "prometheus", "value": "http://three"}]})),
    );
    assert!(settled.is_err(), "the templates still disagree between themselves");
}

#[test]
fn dry_run_rules_must_match_a_metric() {
    let all: BTreeMap<_, _> = [(
        id("a"),
        template(json!({"args": [{"name": "prometheus", "value": "http://p"}], "metrics": [metric("errors", "x")]})),
    )]
    .into();
    let ok = build_from(
        &all,
        &analysis(json!({"templates": [{"templateName": "a"}], "dryRun": [{"metricName": ".*"}]})),
    )
    .unwrap();
    assert_eq!(ok.dry_run[0].metric_name, ".*");
    let err = build_from(
        &all,
        &analysis(json!({"templates": [{"templateName": "a"}], "dryRun": [{"metricName": "latency"}]})),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "dryRun \"latency\": matches no metric (the metrics are errors)"
    );
}

#[test]
fn a_wrong_metric_is_refused_before_it_measures() {
    let with = |m: serde_json::Value| -> BTreeMap<TemplateId, AnalysisTemplateSpec> {
        [(
            id("a"),
            template(json!({"args": [{"name": "prometheus", "value": "http://p"}], "metrics": [m]})),
        )]
        .into()
    };
    let a = analysis(json!({"templates": [{"templateName": "a"}]}));
    let mut broken = metric("e", "up");
    broken["successCondition"] = json!("result <");
    let err = build_from(&with(broken), &a).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("AnalysisTemplate \"a\": metric \"e\": condition \"result <\" does not parse"),
        "{err}"
    );
    let mut range = metric("e", "up");
    range["provider"]["prometheus"]["rangeQuery"] = json!({"start": "yesterday", "step": "1m"});
    let err = build_from(&with(range), &a).unwrap_err();
    assert!(err.to_string().contains("rangeQuery.start"), "{err}");
    let mut interval = metric("e", "up");
    interval["interval"] = json!("{{args.every}}");
    let err = build_from(
        &with(interval.clone()),
        &analysis(json!({"templates": [{"templateName": "a"}], "args": [{"name": "every", "value": "soon"}]})),
    )
    .unwrap_err();
    assert!(err.to_string().contains("\"soon\""), "{err}");
    let ok = build_from(
        &with(interval),
        &analysis(json!({"templates": [{"templateName": "a"}], "args": [{"name": "every", "value": "5s"}]})),
    )
    .unwrap();
    assert_eq!(
        ok.metrics[0].interval,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
            "5s".into()
        )),
        "the schedule reads its arguments too"
    );
    let err = build_from(
        &with(metric("e", "up{job=\"{{args.job}}\"}")),
        &analysis(
            json!({"templates": [{"templateName": "a"}], "args": [{"name": "job", "value": "{{args.prometheus}}"}]}),
        ),
    )
    .unwrap_err();
    assert!(matches!(err, TemplateError::BadValueFrom { .. }), "{err}");
}

#[test]
fn counts_and_limits_take_arguments_as_argo_templates_write_them() {
    let mut m = metric("e", "up");
    for field in [
        "count",
        "failureLimit",
        "inconclusiveLimit",
        "consecutiveErrorLimit",
        "consecutiveSuccessLimit",
        "consecutiveNoDataLimit",
    ] {
        m[field] = json!(format!("{{{{args.{field}}}}}"));
    }
    let all: BTreeMap<TemplateId, AnalysisTemplateSpec> = [(
        id("a"),
        template(
            json!({"args": [{"name": "prometheus", "value": "http://p"}, {"name": "count"},
            {"name": "failureLimit", "value": "-1"}, {"name": "inconclusiveLimit", "value": "2"},
            {"name": "consecutiveErrorLimit", "value": "3"}, {"name": "consecutiveSuccessLimit", "value": "4"},
            {"name": "consecutiveNoDataLimit", "value": "0"}], "metrics": [m]}),
        ),
    )]
    .into();
    let with_count = |count: &str| {
        analysis(json!({"templates": [{"templateName": "a"}], "args": [{"name": "count", "value": count}]}))
    };
    let run = build_from(&all, &with_count("5")).unwrap();
    assert_eq!(
        run.metrics[0].limits(),
        crate::crd::analysis::Limits {
            count: Some(5),
            failure_limit: Some(-1),
            inconclusive_limit: Some(2),
            consecutive_error_limit: Some(3),
            consecutive_no_data_limit: Some(0),
            consecutive_success_limit: Some(4),
        }
    );
    let err = build_from(&all, &with_count("five")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "AnalysisTemplate \"a\": metric \"e\": count must be a whole number of at least 0, as a number or a string holding one (with its arguments put in)"
    );
    let err = build_from(&all, &with_count("-2")).unwrap_err();
    assert!(
        err.to_string().contains("count must be a whole number of at least 0"),
        "{err}"
    );
}

#[test]
fn a_job_never_gets_a_secret_as_text() {
    let all: BTreeMap<_, _> = [(
        id("smoke"),
        template(json!({
            "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            "metrics": [{"name": "smoke", "provider": {"job": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "curl", "args": ["-H", "Authorization: {{args.token}}"]}]}}}}}}]
        })),
    )]
    .into();
    let err = build_from(&all, &analysis(json!({"templates": [{"templateName": "smoke"}]}))).unwrap_err();
    assert!(err.to_string().contains("secretKeyRef"), "{err}");
}

#[test]
fn every_shipped_template_makes_a_run_that_compares_both_versions() {
    let text = include_str!("../../../charts/serin/files/analysis-templates.yaml");
    let mut rollout = rollout();
    rollout.spec.strategy.canary = Some(
        serde_json::from_value(json!({
            "stableService": "web-stable", "canaryService": "web-canary"
        }))
        .unwrap(),
    );
    let mut names = Vec::new();
    for doc in text.split("\n---\n") {
        let t: crate::crd::analysis::ClusterAnalysisTemplate = serde_saphyr::from_str(doc).unwrap();
        let name = t.metadata.name.clone().unwrap_or_default();
        let id = TemplateId {
            cluster: true,
            name: name.clone(),
        };
        let spec: AnalysisTemplateSpec = serde_json::from_value(serde_json::to_value(&t.spec).unwrap()).unwrap();
        let all = BTreeMap::from([(id.clone(), spec)]);
        let analysis = analysis(json!({"templates": [{"templateName": name, "clusterScope": true}]}));
        let run =
            build(&[id], &all, &rollout, &analysis, ("new1", "old1"), false).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kinds: Vec<&str> = run.metrics.iter().map(|m| m.provider.kind()).collect();
        assert_eq!(kinds, ["compare", "compare", "sloBurnRate"], "{name}");
        for m in &run.metrics {
            let (bad, versions) = match (&m.provider.compare, &m.provider.slo_burn_rate) {
                (Some(c), _) => (c.bad.clone(), c.versions.clone()),
                (_, Some(b)) => (b.bad.clone(), b.versions.clone()),
                _ => unreachable!(),
            };
            // Arguments are in; the versions stay for each look, and Serin wrote down which.
            assert!(
                bad.contains("namespace=\"shop\"") || bad.contains("\"shop_"),
                "{name}: {bad}"
            );
            assert!(!bad.contains("{{args."), "{name}: {bad}");
            assert!(
                bad.contains("{{version}}") || bad.contains("{{service}}"),
                "{name}: {bad}"
            );
            let v = versions.unwrap();
            assert_eq!((v.canary.as_str(), v.stable.as_str()), ("new1", "old1"));
            assert_eq!(v.canary_service.as_deref(), Some("web-canary"));
        }
        names.push(name);
    }
    assert_eq!(
        names,
        [
            "serin-http",
            "serin-istio",
            "serin-linkerd",
            "serin-nginx",
            "serin-envoy"
        ]
    );
}

#[test]
fn a_comparison_must_tell_the_versions_apart() {
    let all = BTreeMap::from([(
        id("same"),
        template(json!({"metrics": [{"name": "errors", "provider": {"compare": {
            "bad": "sum(x{code=~\"5..\"})", "total": "sum(x)"}}}]})),
    )]);
    let err = build_from(&all, &analysis(json!({"templates": [{"templateName": "same"}]}))).unwrap_err();
    assert!(
        err.to_string().contains("must select each version by {{version}}"),
        "{err}"
    );
    let elsewhere = BTreeMap::from([(
        id("elsewhere"),
        template(json!({"metrics": [metric("errors", "up{h=\"{{version}}\"}")]})),
    )]);
    let given =
        json!({"templates": [{"templateName": "elsewhere"}], "args": [{"name": "prometheus", "value": "http://p"}]});
    let err = build_from(&elsewhere, &analysis(given)).unwrap_err();
    assert!(err.to_string().contains("only for the bad and total queries"), "{err}");
}

#[test]
fn the_compare_example_makes_a_run() {
    let text = &example("analysis-compare.yaml");
    let t: crate::crd::analysis::AnalysisTemplate = serde_saphyr::from_str(text).unwrap();
    let all = BTreeMap::from([(id("compare-with-stable"), t.spec)]);
    let run = build_from(
        &all,
        &analysis(json!({"templates": [{"templateName": "compare-with-stable"}]})),
    )
    .unwrap();
    let kinds: Vec<&str> = run.metrics.iter().map(|m| m.provider.kind()).collect();
    assert_eq!(kinds, ["compare", "compare", "sloBurnRate"]);
}

#[test]
fn with_default_steps_the_comparisons_run_at_the_steps_only() {
    let text = &example("analysis-compare.yaml");
    let t: crate::crd::analysis::AnalysisTemplate = serde_saphyr::from_str(text).unwrap();
    let mut spec = t.spec;
    spec.metrics
        .push(serde_json::from_value(metric("plain", "up")).unwrap());
    let all = BTreeMap::from([(id("t"), spec)]);
    let a =
        analysis(json!({"templates": [{"templateName": "t"}], "args": [{"name": "prometheus", "value": "http://p"}]}));
    let ordered = order(&a.templates, &all).unwrap();
    let names = |run: AnalysisRunSpec| run.metrics.into_iter().map(|m| m.name).collect::<Vec<_>>();
    let background = build(&ordered, &all, &rollout(), &a, ("new1", "old1"), true).unwrap();
    assert_eq!(names(background), ["plain"]);
    let step = build(&ordered, &all, &rollout(), &a, ("new1", "old1"), false).unwrap();
    assert_eq!(names(step).len(), 4);
    // Steps written out: the background analysis is the user's to shape, and keeps them.
    let mut written = rollout();
    written.spec.strategy.canary = Some(serde_json::from_value(json!({"steps": [{"setWeight": 50}]})).unwrap());
    let background = build(&ordered, &all, &written, &a, ("new1", "old1"), true).unwrap();
    assert_eq!(names(background).len(), 4);
}

/// An example as users copy it (read, not embedded: the image needs no examples).
fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}
