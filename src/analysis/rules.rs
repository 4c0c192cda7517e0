//! The run-wide rules that pick metrics by name: `dryRun` and `measurementRetention`. A rule's
//! `metricName` is a regular expression, matched anywhere in the name as in Argo Rollouts; a bare
//! `*` means every metric.

use super::verdict::{MEASUREMENT_LIMIT, Rules};
use crate::crd::analysis::AnalysisRunSpec;
use regex::Regex;

pub fn metric_pattern(rule: &str) -> Result<Regex, String> {
    let rule = if rule.trim() == "*" { ".*" } else { rule };
    Regex::new(rule).map_err(|e| format!("not a regular expression: {e}"))
}

fn matches(rule: &str, metric: &str) -> bool {
    metric_pattern(rule).is_ok_and(|re| re.is_match(metric))
}

/// How the run treats the metric of this name.
pub fn rules_for(spec: &AnalysisRunSpec, metric: &str) -> Rules {
    Rules {
        background: spec.background == Some(true),
        // The last rule that matches wins.
        retention: spec
            .measurement_retention
            .iter()
            .rev()
            .find(|r| r.limit > 0 && matches(&r.metric_name, metric))
            .map_or(MEASUREMENT_LIMIT, |r| r.limit as usize),
        dry_run: spec.dry_run.iter().any(|r| matches(&r.metric_name, metric)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::analysis::{DryRun, MeasurementRetention};

    #[test]
    fn rules_pick_metrics_by_pattern() {
        let spec = AnalysisRunSpec {
            dry_run: vec![DryRun {
                metric_name: "^latency".into(),
            }],
            measurement_retention: vec![
                MeasurementRetention {
                    metric_name: "*".into(),
                    limit: 20,
                },
                MeasurementRetention {
                    metric_name: "error-rate".into(),
                    limit: 3,
                },
            ],
            ..Default::default()
        };
        let latency = rules_for(&spec, "latency-p99");
        assert!(latency.dry_run);
        assert_eq!(latency.retention, 20);
        let errors = rules_for(&spec, "error-rate");
        assert!(!errors.dry_run);
        assert_eq!(errors.retention, 3);
        assert_eq!(rules_for(&AnalysisRunSpec::default(), "x").retention, MEASUREMENT_LIMIT);
        assert!(metric_pattern("(").is_err());
    }
}
