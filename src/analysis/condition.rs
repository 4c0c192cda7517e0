//! A measurement's verdict: CEL conditions or a threshold range over `result`, and the no-data rule.

use crate::crd::analysis::{AnalysisPhase, Metric, NoData};
use cel::{Context, Program, Value};

/// What a provider returned: one number, several, or none.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    Scalar(f64),
    Vector(Vec<f64>),
    Empty,
}

impl QueryResult {
    /// How it reads in status: `0.012`, `[0.1, 0.3]`, `no data`.
    pub fn display(&self) -> String {
        let num = |v: f64| {
            if v.is_nan() {
                "NaN".into()
            } else {
                format!("{}", (v * 1e6).round() / 1e6)
            }
        };
        match self {
            QueryResult::Scalar(v) => num(*v),
            QueryResult::Vector(vs) => format!("[{}]", vs.iter().map(|v| num(*v)).collect::<Vec<_>>().join(", ")),
            QueryResult::Empty => "no data".into(),
        }
    }

    fn values(&self) -> Vec<f64> {
        match self {
            QueryResult::Scalar(v) => vec![*v],
            QueryResult::Vector(vs) => vs.clone(),
            QueryResult::Empty => Vec::new(),
        }
    }

    /// Empty, or only NaN (a ratio of zero requests): nothing to judge.
    pub fn is_no_data(&self) -> bool {
        self.values().iter().all(|v| v.is_nan())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConditionError {
    #[error("condition {condition:?} does not parse: {message}")]
    Parse { condition: String, message: String },
    #[error("condition {condition:?} failed to evaluate on {value}: {message}")]
    Evaluate {
        condition: String,
        value: String,
        message: String,
    },
    #[error("condition {condition:?} gave {got}, not true or false")]
    NotBool { condition: String, got: String },
}

fn eval(condition: &str, result: &QueryResult) -> Result<bool, ConditionError> {
    let program = Program::compile(condition).map_err(|e| ConditionError::Parse {
        condition: condition.into(),
        message: e.to_string(),
    })?;
    let mut ctx = Context::default();
    let value = match result {
        QueryResult::Scalar(v) => Value::Float(*v),
        other => Value::List(std::sync::Arc::new(
            other.values().into_iter().map(Value::Float).collect(),
        )),
    };
    ctx.add_variable_from_value("result", value);
    match program.execute(&ctx) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(ConditionError::NotBool {
            condition: condition.into(),
            got: format!("{other:?}"),
        }),
        Err(e) => Err(ConditionError::Evaluate {
            condition: condition.into(),
            value: result.display(),
            message: e.to_string(),
        }),
    }
}

/// The verdict on one measurement, and the reason in words.
pub fn judge(metric: &Metric, result: &QueryResult) -> Result<(AnalysisPhase, String), ConditionError> {
    if result.is_no_data() {
        let policy = metric.no_data.unwrap_or_default();
        let phase = match policy {
            NoData::Inconclusive => AnalysisPhase::Inconclusive,
            NoData::Failed => AnalysisPhase::Failed,
            NoData::Successful => AnalysisPhase::Successful,
        };
        return Ok((phase, format!("the query returned no data (noData: {policy:?})")));
    }
    if let Some(failure) = &metric.failure_condition
        && eval(failure, result)?
    {
        return Ok((AnalysisPhase::Failed, format!("failureCondition {failure:?} is true")));
    }
    if let Some(range) = &metric.threshold_range {
        let outside: Vec<f64> = result
            .values()
            .into_iter()
            .filter(|v| v.is_nan() || range.min.is_some_and(|m| *v < m) || range.max.is_some_and(|m| *v > m))
            .collect();
        if !outside.is_empty() {
            return Ok((
                AnalysisPhase::Failed,
                format!("outside thresholdRange [{:?}, {:?}]", range.min, range.max),
            ));
        }
    }
    if let Some(success) = &metric.success_condition {
        return Ok(if eval(success, result)? {
            (
                AnalysisPhase::Successful,
                format!("successCondition {success:?} is true"),
            )
        } else {
            (AnalysisPhase::Failed, format!("successCondition {success:?} is false"))
        });
    }
    if metric.threshold_range.is_some() {
        return Ok((AnalysisPhase::Successful, "within thresholdRange".into()));
    }
    if let Some(failure) = &metric.failure_condition {
        return Ok((
            AnalysisPhase::Successful,
            format!("failureCondition {failure:?} is false"),
        ));
    }
    // The schema refuses a metric without a condition; should one get here, it passes nothing.
    Ok((
        AnalysisPhase::Inconclusive,
        "the metric has no condition to judge by".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::analysis::ThresholdRange;

    fn metric(success: Option<&str>, failure: Option<&str>) -> Metric {
        Metric {
            name: "m".into(),
            success_condition: success.map(String::from),
            failure_condition: failure.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn cel_conditions_over_scalars_and_lists() {
        let m = metric(Some("result < 0.01"), None);
        assert_eq!(
            judge(&m, &QueryResult::Scalar(0.005)).unwrap().0,
            AnalysisPhase::Successful
        );
        let int_literal = metric(Some("result < 1"), None);
        assert_eq!(
            judge(&int_literal, &QueryResult::Scalar(0.5)).unwrap().0,
            AnalysisPhase::Successful
        );
        assert_eq!(judge(&m, &QueryResult::Scalar(0.2)).unwrap().0, AnalysisPhase::Failed);
        let all = metric(Some("result.all(x, x < 0.5)"), None);
        assert_eq!(
            judge(&all, &QueryResult::Vector(vec![0.1, 0.2])).unwrap().0,
            AnalysisPhase::Successful
        );
        assert_eq!(
            judge(&all, &QueryResult::Vector(vec![0.1, 0.9])).unwrap().0,
            AnalysisPhase::Failed
        );
        let fail_only = metric(None, Some("result > 0.1"));
        assert_eq!(
            judge(&fail_only, &QueryResult::Scalar(0.05)).unwrap().0,
            AnalysisPhase::Successful
        );
        assert_eq!(
            judge(&fail_only, &QueryResult::Scalar(0.5)).unwrap().0,
            AnalysisPhase::Failed
        );
    }

    #[test]
    fn no_data_is_never_a_silent_pass() {
        let m = metric(Some("result < 0.01"), None);
        assert_eq!(judge(&m, &QueryResult::Empty).unwrap().0, AnalysisPhase::Inconclusive);
        assert_eq!(
            judge(&m, &QueryResult::Scalar(f64::NAN)).unwrap().0,
            AnalysisPhase::Inconclusive
        );
        let failed = Metric {
            no_data: Some(NoData::Failed),
            ..m.clone()
        };
        assert_eq!(judge(&failed, &QueryResult::Empty).unwrap().0, AnalysisPhase::Failed);
        let ok = Metric {
            no_data: Some(NoData::Successful),
            ..m
        };
        assert_eq!(judge(&ok, &QueryResult::Empty).unwrap().0, AnalysisPhase::Successful);
    }

    #[test]
    fn threshold_ranges() {
        let m = Metric {
            threshold_range: Some(ThresholdRange {
                min: None,
                max: Some(0.5),
            }),
            ..Default::default()
        };
        assert_eq!(
            judge(&m, &QueryResult::Scalar(0.4)).unwrap().0,
            AnalysisPhase::Successful
        );
        assert_eq!(
            judge(&m, &QueryResult::Vector(vec![0.4, 0.6])).unwrap().0,
            AnalysisPhase::Failed
        );
    }

    #[test]
    fn broken_conditions_are_errors_not_verdicts() {
        assert!(matches!(
            judge(&metric(Some("result <"), None), &QueryResult::Scalar(1.0)),
            Err(ConditionError::Parse { .. })
        ));
        assert!(matches!(
            judge(&metric(Some("result * 2.0"), None), &QueryResult::Scalar(1.0)),
            Err(ConditionError::NotBool { .. })
        ));
        assert!(judge(&metric(Some("result.foo > 1"), None), &QueryResult::Scalar(1.0)).is_err());
    }
}
