//! Building an AnalysisRun for a Rollout: its templates' metrics, with every `{{args.NAME}}`
//! resolved from the Rollout (values, pod-template hashes, fields) and safely substituted.

use crate::analysis::args::substitute;
use crate::crd::analysis::{AnalysisRunSpec, AnalysisTemplate, ClusterAnalysisTemplate, Metric, TemplateArg};
use crate::crd::rollout::{Rollout, RolloutAnalysis};
use kube::{Api, Client};
use std::collections::BTreeMap;

/// Looks up a field of the Rollout by a kubectl-style path: `metadata.name`,
/// `metadata.labels['app']`, `spec.replicas`.
fn field(rollout: &Rollout, path: &str) -> Option<String> {
    let value = serde_json::to_value(rollout).ok()?;
    let mut cur = &value;
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        let (key, next) = if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']")?;
            (&r[..end], r[end + 2..].trim_start_matches('.'))
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            (&rest[..end], rest[end..].trim_start_matches('.'))
        };
        cur = cur.get(key)?;
        rest = next;
    }
    match cur {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The spec of the run, or a sentence saying what is wrong (a missing template or argument).
pub async fn resolve(
    client: &Client,
    ns: &str,
    rollout: &Rollout,
    analysis: &RolloutAnalysis,
    current_hash: &str,
    stable_hash: &str,
    background: bool,
) -> Result<AnalysisRunSpec, String> {
    let mut declared: Vec<TemplateArg> = Vec::new();
    let mut metrics: Vec<Metric> = Vec::new();
    for t in &analysis.templates {
        let (args, ms) = if t.cluster_scope == Some(true) {
            let api: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
            let found = api
                .get_opt(&t.template_name)
                .await
                .map_err(|e| format!("reading ClusterAnalysisTemplate {}: {e}", t.template_name))?;
            let found = found.ok_or_else(|| format!("ClusterAnalysisTemplate {:?} not found", t.template_name))?;
            (found.spec.args, found.spec.metrics)
        } else {
            let api: Api<AnalysisTemplate> = Api::namespaced(client.clone(), ns);
            let found = api
                .get_opt(&t.template_name)
                .await
                .map_err(|e| format!("reading AnalysisTemplate {}: {e}", t.template_name))?;
            let found =
                found.ok_or_else(|| format!("AnalysisTemplate {:?} not found in namespace {ns}", t.template_name))?;
            (found.spec.args, found.spec.metrics)
        };
        for a in args {
            if !declared.iter().any(|d| d.name == a.name) {
                declared.push(a);
            }
        }
        for m in ms {
            if metrics.iter().any(|x| x.name == m.name) {
                return Err(format!("metric {:?} is defined by two templates", m.name));
            }
            metrics.push(m);
        }
    }
    let mut values: BTreeMap<String, String> = declared
        .iter()
        .filter_map(|a| Some((a.name.clone(), a.value.clone()?)))
        .collect();
    for a in analysis.args.iter().flatten() {
        let value = match (&a.value, &a.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => match (&from.pod_template_hash_value, &from.field_ref) {
                (Some(which), _) if which == "Stable" => stable_hash.to_string(),
                (Some(which), _) if which == "Latest" => current_hash.to_string(),
                (Some(which), _) => {
                    return Err(format!(
                        "argument {}: podTemplateHashValue must be Stable or Latest, not {which:?}",
                        a.name
                    ));
                }
                (None, Some(f)) => field(rollout, &f.field_path)
                    .ok_or_else(|| format!("argument {}: the Rollout has no field {}", a.name, f.field_path))?,
                (None, None) => return Err(format!("argument {} has an empty valueFrom", a.name)),
            },
            (None, None) => return Err(format!("argument {} has no value", a.name)),
        };
        values.insert(a.name.clone(), value);
    }
    for m in &mut metrics {
        if let Some(p) = &mut m.provider.prometheus {
            p.query = substitute(&p.query, &values).map_err(|e| format!("metric {}: {e}", m.name))?;
        }
    }
    let args = values
        .into_iter()
        .map(|(name, value)| TemplateArg {
            name,
            value: Some(value),
        })
        .collect();
    Ok(AnalysisRunSpec {
        metrics,
        args,
        terminate: None,
        background: background.then_some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_refs_read_the_rollout() {
        let r: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app.kubernetes.io/name": "web-app"}},
            "spec": {"replicas": 3, "selector": {}, "strategy": {"canary": {}}}
        }))
        .unwrap();
        assert_eq!(field(&r, "metadata.name").as_deref(), Some("web"));
        assert_eq!(field(&r, "metadata.namespace").as_deref(), Some("shop"));
        assert_eq!(
            field(&r, "metadata.labels['app.kubernetes.io/name']").as_deref(),
            Some("web-app")
        );
        assert_eq!(field(&r, "spec.replicas").as_deref(), Some("3"));
        assert_eq!(field(&r, "spec.nothing"), None);
    }
}
