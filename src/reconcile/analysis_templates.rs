//! Building an AnalysisRun for a Rollout: its templates (and the templates they include) merged
//! into one list of metrics, with every argument resolved from the Rollout — values, fields,
//! pod-template hashes — or kept as a reference to a Secret, read only when measuring.

use crate::analysis::args::{ArgError, Partial, resolve_metric, used_by};
use crate::crd::analysis::{
    AnalysisRunSpec, AnalysisTemplate, AnalysisTemplateRef, AnalysisTemplateSpec, ArgValueFrom, Argument,
    ClusterAnalysisTemplate, DryRun, MeasurementRetention, Metric,
};
use crate::crd::rollout::{Rollout, RolloutAnalysis};
use kube::{Api, Client};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("reading {what}: {message}")]
    Read { what: String, message: String },
    #[error("templates include each other: {0}")]
    Cycle(String),
    #[error("metric {metric:?} is defined by both {first} and {second}: metric names must be unique")]
    DuplicateMetric {
        metric: String,
        first: String,
        second: String,
    },
    #[error("argument {name:?} is given two different values by the templates: {first:?} and {second:?}")]
    ConflictingArg {
        name: String,
        first: String,
        second: String,
    },
    #[error(
        "{template}: metric {metric:?} uses {{{{args.{arg}}}}}, which has no value: give it one in the template's args or in the Rollout's analysis args"
    )]
    MissingArg {
        template: String,
        metric: String,
        arg: String,
    },
    #[error("{template}: metric {metric:?}: {error}")]
    BadMetric {
        template: String,
        metric: String,
        error: ArgError,
    },
    #[error("{template}: metric {metric:?}: {message}")]
    Invalid {
        template: String,
        metric: String,
        message: String,
    },
    #[error("argument {name}: {message}")]
    BadValueFrom { name: String, message: String },
    #[error("{field} {rule:?}: {message}")]
    BadRule {
        field: &'static str,
        rule: String,
        message: String,
    },
}

impl TemplateError {
    /// A template that is not there yet may come (a GitOps sync applies it later): the run waits
    /// for a person rather than failing the release. Every other problem is in what was written.
    pub fn may_pass(&self) -> bool {
        matches!(self, TemplateError::NotFound(_) | TemplateError::Read { .. })
    }
}

/// Which template: `AnalysisTemplate "error-rate"` or `ClusterAnalysisTemplate "error-rate"`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TemplateId {
    pub cluster: bool,
    pub name: String,
}

impl TemplateId {
    fn of(r: &AnalysisTemplateRef) -> Self {
        TemplateId {
            cluster: r.cluster_scope == Some(true),
            name: r.template_name.clone(),
        }
    }
}

impl std::fmt::Display for TemplateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.cluster {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        write!(f, "{kind} {:?}", self.name)
    }
}

/// Looks up a field of the Rollout by a kubectl-style path: `metadata.name`,
/// `metadata.labels['app']`, `spec.template.spec.containers[0].image`.
fn field(rollout: &Rollout, path: &str) -> Option<String> {
    let value = serde_json::to_value(rollout).ok()?;
    let mut cur = &value;
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")) {
            let end = r.find(['\'', '"'])?;
            cur = cur.get(&r[..end])?;
            rest = r[end..].strip_prefix("']").or_else(|| r[end..].strip_prefix("\"]"))?;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            cur = cur.get(r[..end].trim().parse::<usize>().ok()?)?;
            rest = &r[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            cur = cur.get(&rest[..end])?;
            rest = &rest[end..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    match cur {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null | serde_json::Value::Object(_) | serde_json::Value::Array(_) => None,
        other => Some(other.to_string()),
    }
}

/// Every template the references reach, read from the API.
async fn load(
    client: &Client,
    ns: &str,
    roots: &[AnalysisTemplateRef],
) -> Result<BTreeMap<TemplateId, AnalysisTemplateSpec>, TemplateError> {
    let mut found: BTreeMap<TemplateId, AnalysisTemplateSpec> = BTreeMap::new();
    let mut queue: Vec<TemplateId> = roots.iter().map(TemplateId::of).collect();
    while let Some(id) = queue.pop() {
        if found.contains_key(&id) {
            continue;
        }
        let read = |e: kube::Error| TemplateError::Read {
            what: id.to_string(),
            message: e.to_string(),
        };
        let spec: Option<AnalysisTemplateSpec> = if id.cluster {
            let api: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
            api.get_opt(&id.name).await.map_err(read)?.map(|t| t.spec.into())
        } else {
            let api: Api<AnalysisTemplate> = Api::namespaced(client.clone(), ns);
            api.get_opt(&id.name).await.map_err(read)?.map(|t| t.spec)
        };
        let spec = spec.ok_or_else(|| {
            TemplateError::NotFound(if id.cluster {
                id.to_string()
            } else {
                format!("{id} in namespace {ns}")
            })
        })?;
        queue.extend(spec.templates.iter().map(TemplateId::of));
        found.insert(id, spec);
    }
    Ok(found)
}

/// The templates in the order their metrics are merged: each before the ones it includes, each
/// once, and a template that includes itself (through others) is an error.
fn order(
    roots: &[AnalysisTemplateRef],
    all: &BTreeMap<TemplateId, AnalysisTemplateSpec>,
) -> Result<Vec<TemplateId>, TemplateError> {
    fn visit(
        id: TemplateId,
        all: &BTreeMap<TemplateId, AnalysisTemplateSpec>,
        path: &mut Vec<TemplateId>,
        out: &mut Vec<TemplateId>,
    ) -> Result<(), TemplateError> {
        if let Some(at) = path.iter().position(|p| *p == id) {
            let mut names: Vec<String> = path[at..].iter().map(ToString::to_string).collect();
            names.push(id.to_string());
            return Err(TemplateError::Cycle(names.join(" -> ")));
        }
        if out.contains(&id) {
            return Ok(());
        }
        let Some(spec) = all.get(&id) else {
            return Err(TemplateError::NotFound(id.to_string()));
        };
        out.push(id.clone());
        path.push(id);
        for child in &spec.templates {
            visit(TemplateId::of(child), all, path, out)?;
        }
        path.pop();
        Ok(())
    }
    let mut out = Vec::new();
    for r in roots {
        visit(TemplateId::of(r), all, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// What the templates come to together.
#[derive(Debug, Default)]
struct Merged {
    /// Each metric with the template it came from.
    metrics: Vec<(TemplateId, Metric)>,
    args: Vec<Argument>,
    dry_run: Vec<DryRun>,
    retention: Vec<MeasurementRetention>,
}

fn merge(
    ordered: &[TemplateId],
    all: &BTreeMap<TemplateId, AnalysisTemplateSpec>,
    analysis: &RolloutAnalysis,
) -> Result<Merged, TemplateError> {
    let mut m = Merged::default();
    for id in ordered {
        let Some(spec) = all.get(id) else { continue };
        for metric in &spec.metrics {
            if let Some((first, _)) = m.metrics.iter().find(|(_, x)| x.name == metric.name) {
                return Err(TemplateError::DuplicateMetric {
                    metric: metric.name.clone(),
                    first: first.to_string(),
                    second: id.to_string(),
                });
            }
            m.metrics.push((id.clone(), metric.clone()));
        }
        for arg in &spec.args {
            match m.args.iter_mut().find(|a| a.name == arg.name) {
                None => m.args.push(arg.clone()),
                Some(have) if have.value.is_none() && have.value_from.is_none() => *have = arg.clone(),
                Some(have) if arg.value.is_some() && have.value.is_some() && have.value != arg.value => {
                    return Err(TemplateError::ConflictingArg {
                        name: arg.name.clone(),
                        first: have.value.clone().unwrap_or_default(),
                        second: arg.value.clone().unwrap_or_default(),
                    });
                }
                Some(_) => {}
            }
        }
        m.dry_run.extend(spec.dry_run.iter().cloned());
        m.retention.extend(spec.measurement_retention.iter().cloned());
    }
    // The Rollout's arguments win over the templates' defaults.
    for arg in analysis.args.iter().flatten() {
        match m.args.iter_mut().find(|a| a.name == arg.name) {
            Some(have) => *have = arg.clone(),
            None => m.args.push(arg.clone()),
        }
    }
    m.dry_run.extend(analysis.dry_run.iter().cloned());
    m.retention.extend(analysis.measurement_retention.iter().cloned());
    Ok(m)
}

/// One argument made concrete: a value, or a Secret to read at measurement time.
fn resolve_arg(arg: &Argument, rollout: &Rollout, current: &str, stable: &str) -> Result<Argument, TemplateError> {
    let bad = |message: String| TemplateError::BadValueFrom {
        name: arg.name.clone(),
        message,
    };
    let value = match (&arg.value, &arg.value_from) {
        (Some(v), _) => Some(v.clone()),
        (None, None) => None,
        (None, Some(from)) => match from {
            ArgValueFrom {
                secret_key_ref: Some(_),
                ..
            } => {
                return Ok(Argument {
                    name: arg.name.clone(),
                    value: None,
                    value_from: Some(ArgValueFrom {
                        secret_key_ref: from.secret_key_ref.clone(),
                        ..Default::default()
                    }),
                });
            }
            ArgValueFrom {
                pod_template_hash_value: Some(which),
                ..
            } => match which.as_str() {
                "Stable" => Some(stable.to_string()),
                "Latest" => Some(current.to_string()),
                other => {
                    return Err(bad(format!(
                        "podTemplateHashValue must be Stable or Latest, not {other:?}"
                    )));
                }
            },
            ArgValueFrom { field_ref: Some(f), .. } => Some(
                field(rollout, &f.field_path)
                    .ok_or_else(|| bad(format!("the Rollout has no field {} with a value", f.field_path)))?,
            ),
            _ => return Err(bad("valueFrom names nothing".into())),
        },
    };
    Ok(Argument {
        name: arg.name.clone(),
        value,
        value_from: None,
    })
}

/// `dryRun` and `measurementRetention` rules: each a regular expression that matches a metric.
fn check_rules(merged: &Merged) -> Result<(), TemplateError> {
    let names: Vec<&str> = merged.metrics.iter().map(|(_, m)| m.name.as_str()).collect();
    let rules = merged.dry_run.iter().map(|r| ("dryRun", &r.metric_name)).chain(
        merged
            .retention
            .iter()
            .map(|r| ("measurementRetention", &r.metric_name)),
    );
    let mut seen: Vec<(&str, &String)> = Vec::new();
    for (field, rule) in rules {
        let bad = |message: String| TemplateError::BadRule {
            field,
            rule: rule.clone(),
            message,
        };
        if seen.contains(&(field, rule)) {
            return Err(bad("the same rule is given twice".into()));
        }
        seen.push((field, rule));
        let re = crate::analysis::rules::metric_pattern(rule).map_err(bad)?;
        if !names.iter().any(|n| re.is_match(n)) {
            return Err(bad(format!("matches no metric (the metrics are {})", names.join(", "))));
        }
    }
    Ok(())
}

/// What can be checked of a metric before it measures: its conditions parse, its timeout and
/// range read.
fn check_metric(metric: &Metric) -> Result<(), String> {
    use crate::analysis::condition::check;
    for c in [&metric.success_condition, &metric.failure_condition]
        .into_iter()
        .flatten()
    {
        check(c).map_err(|e| e.to_string())?;
    }
    for d in [&metric.interval, &metric.initial_delay].into_iter().flatten() {
        crate::plan::steps::parse_duration(d)?;
    }
    metric.checked_limits().map_err(|e| e.to_string())?;
    check_versions(metric)?;
    if let Some(p) = &metric.provider.prometheus {
        crate::analysis::prometheus::timeout_of(p.timeout.as_ref()).map_err(|e| e.to_string())?;
        if let Some(range) = &p.range_query {
            // Any moment will do: the forms are checked, not the times.
            let at = jiff::Timestamp::from_second(2_000_000_000).map_err(|e| e.to_string())?;
            crate::analysis::prometheus::range_bounds(range, at)?;
        }
    }
    Ok(())
}

/// `{{version}}` belongs in the `bad` and `total` queries of `compare` and `sloBurnRate`, and
/// both must have it: without it, both versions would be asked the same question.
fn check_versions(metric: &Metric) -> Result<(), String> {
    let tag = "{{version}}";
    let has = |q: &str| {
        let q = q.replace(' ', "");
        q.contains(tag) || q.contains("{{service}}")
    };
    let mut rest = metric.clone();
    let server = if let Some(c) = rest.provider.compare.as_mut() {
        for (name, q) in [("bad", &c.bad), ("total", &c.total)] {
            if !has(q) {
                return Err(format!(
                    "compare.{name} must select each version by {tag} (as in pod_template_hash=\"{tag}\") or {{{{service}}}}, or both versions would be asked the same"
                ));
            }
        }
        c.bad.clear();
        c.total.clear();
        Some(c.prometheus.timeout.clone())
    } else if let Some(b) = rest.provider.slo_burn_rate.as_mut() {
        for (name, q) in [("bad", &b.bad), ("total", &b.total)] {
            if !has(q) {
                return Err(format!(
                    "sloBurnRate.{name} must select the canary by {tag} (as in pod_template_hash=\"{tag}\") or {{{{service}}}}"
                ));
            }
        }
        crate::analysis::burn_rate::Settings::of(b).map_err(|e| e.to_string())?;
        b.bad.clear();
        b.total.clear();
        Some(b.prometheus.timeout.clone())
    } else {
        None
    };
    if let Some(timeout) = server {
        crate::analysis::prometheus::timeout_of(timeout.as_ref()).map_err(|e| e.to_string())?;
    }
    let text = serde_json::to_string(&rest).map_err(|e| e.to_string())?;
    if text.contains("{{") {
        return Err(format!(
            "{tag} and {{{{service}}}} are only for the bad and total queries of compare and sloBurnRate metrics; elsewhere write {{{{args.NAME}}}} with podTemplateHashValue"
        ));
    }
    Ok(())
}

/// The run's spec from templates already read: pure, so every rule is tested without an API.
fn build(
    ordered: &[TemplateId],
    all: &BTreeMap<TemplateId, AnalysisTemplateSpec>,
    rollout: &Rollout,
    analysis: &RolloutAnalysis,
    (current, stable): (&str, &str),
    background: bool,
) -> Result<AnalysisRunSpec, TemplateError> {
    let merged = merge(ordered, all, analysis)?;
    check_rules(&merged)?;
    let args: Vec<Argument> = merged
        .args
        .iter()
        .map(|a| resolve_arg(a, rollout, current, stable))
        .collect::<Result<_, _>>()?;
    let values: BTreeMap<String, String> = args
        .iter()
        .filter_map(|a| Some((a.name.clone(), a.value.clone()?)))
        .collect();
    let later: std::collections::BTreeSet<String> = args
        .iter()
        .filter(|a| a.value.is_none() && a.value_from.is_some())
        .map(|a| a.name.clone())
        .collect();
    // A value is put in once, here; a placeholder inside one would be read as another.
    if let Some((name, _)) = values.iter().find(|(_, v)| v.contains("{{")) {
        return Err(TemplateError::BadValueFrom {
            name: name.clone(),
            message: "its value holds `{{`, which would be read as a placeholder".into(),
        });
    }
    // Every argument a metric uses must have a value. Values go in now, so the run shows the
    // queries it asks; a Secret's stays a placeholder until each measurement, and stands in as a
    // plain token to check everything else now rather than at the first measurement.
    let trial: BTreeMap<String, String> = later.iter().map(|n| (n.clone(), "secret".to_string())).collect();
    let mut metrics = Vec::with_capacity(merged.metrics.len());
    for (template, metric) in &merged.metrics {
        let bad = |error: ArgError| TemplateError::BadMetric {
            template: template.to_string(),
            metric: metric.name.clone(),
            error,
        };
        let used = used_by(metric).map_err(bad)?;
        if let Some(missing) = used.iter().find(|u| !values.contains_key(*u) && !later.contains(*u)) {
            return Err(TemplateError::MissingArg {
                template: template.to_string(),
                metric: metric.name.clone(),
                arg: missing.clone(),
            });
        }
        // A Job's spec is readable by whoever may read Jobs: a Secret goes in by the Pod's own
        // `env.valueFrom.secretKeyRef`, never as text.
        if metric.provider.job.is_some()
            && let Some(secret) = used.iter().find(|u| later.contains(*u))
        {
            return Err(TemplateError::Invalid {
                template: template.to_string(),
                metric: metric.name.clone(),
                message: format!(
                    "a Job's spec cannot take {{{{args.{secret}}}}} from a Secret, since the Job would show its value: give the container `env: [{{name: ..., valueFrom: {{secretKeyRef: {{name, key}}}}}}]` instead"
                ),
            });
        }
        let resolved = resolve_metric(
            metric,
            &Partial {
                values: &values,
                later: &later,
            },
        )
        .map_err(bad)?;
        let complete = resolve_metric(&resolved, &trial).map_err(bad)?;
        check_metric(&complete).map_err(|message| TemplateError::Invalid {
            template: template.to_string(),
            metric: metric.name.clone(),
            message,
        })?;
        let mut resolved = resolved;
        let (stable_service, canary_service) = super::apply::service_names(rollout, rollout.status.as_ref());
        let versions = Some(crate::crd::analysis::Versions {
            canary: current.to_string(),
            stable: stable.to_string(),
            canary_service: canary_service.cloned(),
            stable_service: stable_service.cloned(),
        });
        if let Some(c) = resolved.provider.compare.as_mut() {
            c.versions = versions.clone();
        }
        if let Some(b) = resolved.provider.slo_burn_rate.as_mut() {
            b.versions = versions;
        }
        metrics.push(resolved);
    }
    // Arguments with no value that nothing uses are left out.
    let args = args
        .into_iter()
        .filter(|a| a.value.is_some() || a.value_from.is_some())
        .collect();
    // With the default steps the same analysis runs at every stop, and there a comparison with
    // stable keeps one e-process per version. A background run measuring alongside would be a
    // second one, doubling the chance of a false rollback: it leaves those metrics to the steps.
    let default_steps = rollout.spec.strategy.canary.as_ref().is_some_and(|c| c.steps.is_none());
    if background && default_steps {
        metrics.retain(|m| m.provider.compare.is_none() && m.provider.slo_burn_rate.is_none());
    }
    Ok(AnalysisRunSpec {
        metrics,
        args,
        terminate: None,
        background: background.then_some(true),
        dry_run: merged.dry_run,
        measurement_retention: merged.retention,
        ttl_strategy: None,
    })
}

/// The spec of the run, or what is wrong with its templates or arguments.
pub async fn resolve(
    client: &Client,
    ns: &str,
    rollout: &Rollout,
    analysis: &RolloutAnalysis,
    current_hash: &str,
    stable_hash: &str,
    background: bool,
) -> Result<AnalysisRunSpec, TemplateError> {
    let all = load(client, ns, &analysis.templates).await?;
    resolve_from(&all, rollout, analysis, (current_hash, stable_hash), background)
}

/// The spec of the run from templates already at hand (`serin plan` reads them from files); a
/// template missing from `all` is [`TemplateError::NotFound`].
pub fn resolve_from(
    all: &BTreeMap<TemplateId, AnalysisTemplateSpec>,
    rollout: &Rollout,
    analysis: &RolloutAnalysis,
    hashes: (&str, &str),
    background: bool,
) -> Result<AnalysisRunSpec, TemplateError> {
    let ordered = order(&analysis.templates, all)?;
    build(&ordered, all, rollout, analysis, hashes, background)
}

#[cfg(test)]
mod tests;
