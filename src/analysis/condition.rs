//! A measurement's verdict: CEL conditions or a threshold range over `result`, and the no-data rule.

use crate::crd::analysis::{AnalysisPhase, Metric};
use cel::{Context, Program, Value};

/// What a provider returned: one number, several, none, or (from a web endpoint) any JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    Scalar(f64),
    Vector(Vec<f64>),
    Empty,
    Json(serde_json::Value),
}

/// At most this much of a value (a JSON answer, a range of samples) is shown in status.
const SHOWN_TEXT: usize = 256;

impl QueryResult {
    /// How it reads in status: `0.012`, `[0.1, 0.3]`, `no data`, `{"ok":true}` (cut to length).
    pub fn display(&self) -> String {
        self.display_with(&|t| t)
    }

    /// `display`, with `clean` applied to the whole text before it is cut to length.
    pub fn display_with(&self, clean: &dyn Fn(String) -> String) -> String {
        let num = |v: f64| {
            if v.is_nan() {
                "NaN".into()
            } else {
                format!("{}", (v * 1e6).round() / 1e6)
            }
        };
        let text = match self {
            QueryResult::Scalar(v) => num(*v),
            QueryResult::Vector(vs) => format!("[{}]", vs.iter().map(|v| num(*v)).collect::<Vec<_>>().join(", ")),
            QueryResult::Empty => "no data".into(),
            QueryResult::Json(v) => v.to_string(),
        };
        let text = clean(text);
        match text.char_indices().nth(SHOWN_TEXT) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text,
        }
    }

    /// The numbers in it; `None` for JSON that is not a number or a list of numbers.
    fn numbers(&self) -> Option<Vec<f64>> {
        match self {
            QueryResult::Scalar(v) => Some(vec![*v]),
            QueryResult::Vector(vs) => Some(vs.clone()),
            QueryResult::Empty => Some(Vec::new()),
            QueryResult::Json(serde_json::Value::Number(n)) => n.as_f64().map(|v| vec![v]),
            QueryResult::Json(serde_json::Value::Array(items)) => items.iter().map(serde_json::Value::as_f64).collect(),
            QueryResult::Json(_) => None,
        }
    }

    /// The sum of the numbers (the series of a counter); `None` without any. A NaN among them
    /// makes it NaN: a counter cannot read NaN, and the look refuses it rather than leave it out.
    pub fn sum(&self) -> Option<f64> {
        let numbers = self.numbers().unwrap_or_default();
        (!numbers.is_empty()).then(|| numbers.iter().sum())
    }

    /// Empty, only NaN (a ratio of zero requests), or JSON null: nothing to judge.
    pub fn is_no_data(&self) -> bool {
        match self {
            QueryResult::Json(v) => v.is_null(),
            other => other.numbers().unwrap_or_default().iter().all(|v| v.is_nan()),
        }
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
    #[error("thresholdRange needs numbers, and {0} is not")]
    NotNumbers(String),
}

/// Whether a condition reads `result` as a list (`result[0]`, `result.all(...)`, `size(result)`),
/// as Argo Rollouts' conditions do: then one sample is passed as a list of one.
fn wants_list(condition: &str) -> bool {
    static LIST_USE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\bresult\s*\[|\bresult\s*\.\s*(all|exists|exists_one|map|filter)\s*\(|size\s*\(\s*result\s*\)|\bresult\s*\.\s*size\s*\(")
            .expect("a constant regular expression")
    });
    LIST_USE.is_match(condition)
}

fn json_to_cel(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(std::sync::Arc::new(s.clone())),
        J::Array(items) => Value::List(std::sync::Arc::new(items.iter().map(json_to_cel).collect())),
        J::Object(map) => {
            let entries: std::collections::HashMap<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), json_to_cel(v))).collect();
            Value::from(entries)
        }
    }
}

/// Whether a condition parses, to refuse a wrong one before anything is measured.
pub fn check(condition: &str) -> Result<(), ConditionError> {
    Program::compile(condition)
        .map(|_| ())
        .map_err(|e| ConditionError::Parse {
            condition: condition.into(),
            message: e.to_string(),
        })
}

fn eval(condition: &str, result: &QueryResult) -> Result<bool, ConditionError> {
    let program = Program::compile(condition).map_err(|e| ConditionError::Parse {
        condition: condition.into(),
        message: e.to_string(),
    })?;
    let mut ctx = Context::default();
    let list = |vs: &[f64]| Value::List(std::sync::Arc::new(vs.iter().copied().map(Value::Float).collect()));
    let value = match result {
        QueryResult::Scalar(v) if wants_list(condition) => list(&[*v]),
        QueryResult::Scalar(v) => Value::Float(*v),
        QueryResult::Vector(vs) => list(vs),
        QueryResult::Empty => list(&[]),
        QueryResult::Json(v) => json_to_cel(v),
    };
    ctx.add_variable_from_value("result", value);
    // Argo Rollouts' conditions use these; CEL has no such functions of its own. Should one not
    // register, a condition using it fails to evaluate and says so: an error, never a verdict.
    let _ = ctx.add_function("isNaN", |v: f64| v.is_nan());
    let _ = ctx.add_function("isInf", |v: f64| v.is_infinite());
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

/// What decided a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    NoData,
    FailureTrue,
    OutsideRange,
    SuccessTrue,
    Neither,
    SuccessFalse,
    WithinRange,
    FailureFalse,
    NoCondition,
}

impl Why {
    /// In words, with the conditions as `metric` writes them: the metric as shown, so that a
    /// Secret's value in a condition never reaches a message.
    pub fn describe(self, metric: &Metric) -> String {
        let success = metric.success_condition.as_deref().unwrap_or_default();
        let failure = metric.failure_condition.as_deref().unwrap_or_default();
        let range = metric.threshold_range.clone().unwrap_or_default();
        match self {
            Why::NoData => "the query returned no data".into(),
            Why::FailureTrue => format!("failureCondition {failure:?} is true"),
            Why::OutsideRange => format!("outside thresholdRange [{:?}, {:?}]", range.min, range.max),
            Why::SuccessTrue => format!("successCondition {success:?} is true"),
            Why::Neither => format!("neither successCondition {success:?} nor failureCondition {failure:?} is true"),
            Why::SuccessFalse => format!("successCondition {success:?} is false"),
            Why::WithinRange => "within thresholdRange".into(),
            Why::FailureFalse => format!("failureCondition {failure:?} is false"),
            Why::NoCondition => "no condition to judge by: an answer passes".into(),
        }
    }
}

/// The verdict on one measurement with data, and what decided it. As in Argo Rollouts: with both
/// conditions, a value that meets neither is inconclusive; with none, an answer passes (a web
/// check that only needs the endpoint to answer).
pub fn verdict(metric: &Metric, result: &QueryResult) -> Result<(AnalysisPhase, Why), ConditionError> {
    if result.is_no_data() {
        // The caller records no data as such; should it get here, it decides nothing.
        return Ok((AnalysisPhase::Inconclusive, Why::NoData));
    }
    if let Some(failure) = &metric.failure_condition
        && eval(failure, result)?
    {
        return Ok((AnalysisPhase::Failed, Why::FailureTrue));
    }
    if let Some(range) = &metric.threshold_range {
        let values = result
            .numbers()
            .ok_or_else(|| ConditionError::NotNumbers(result.display()))?;
        let outside = values
            .iter()
            .any(|v| v.is_nan() || range.min.is_some_and(|m| *v < m) || range.max.is_some_and(|m| *v > m));
        if outside {
            return Ok((AnalysisPhase::Failed, Why::OutsideRange));
        }
    }
    if let Some(success) = &metric.success_condition {
        return Ok(if eval(success, result)? {
            (AnalysisPhase::Successful, Why::SuccessTrue)
        } else if metric.failure_condition.is_some() {
            (AnalysisPhase::Inconclusive, Why::Neither)
        } else {
            (AnalysisPhase::Failed, Why::SuccessFalse)
        });
    }
    if metric.threshold_range.is_some() {
        return Ok((AnalysisPhase::Successful, Why::WithinRange));
    }
    if metric.failure_condition.is_some() {
        return Ok((AnalysisPhase::Successful, Why::FailureFalse));
    }
    Ok((AnalysisPhase::Successful, Why::NoCondition))
}

impl ConditionError {
    /// The same error naming the condition as `shown` writes it rather than as it was evaluated.
    pub fn shown_as(self, evaluated: &Metric, shown: &Metric) -> ConditionError {
        let swap = |c: String| {
            if evaluated.success_condition.as_ref() == Some(&c) {
                shown.success_condition.clone().unwrap_or(c)
            } else if evaluated.failure_condition.as_ref() == Some(&c) {
                shown.failure_condition.clone().unwrap_or(c)
            } else {
                c
            }
        };
        match self {
            ConditionError::Parse { condition, message } => ConditionError::Parse {
                condition: swap(condition),
                message,
            },
            ConditionError::Evaluate {
                condition,
                value,
                message,
            } => ConditionError::Evaluate {
                condition: swap(condition),
                value,
                message,
            },
            ConditionError::NotBool { condition, got } => ConditionError::NotBool {
                condition: swap(condition),
                got,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(metric: &Metric, result: &QueryResult) -> Result<(AnalysisPhase, String), ConditionError> {
        verdict(metric, result).map(|(phase, why)| (phase, why.describe(metric)))
    }
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
    fn what_counts_as_no_data() {
        assert!(QueryResult::Empty.is_no_data());
        assert!(QueryResult::Scalar(f64::NAN).is_no_data());
        assert!(QueryResult::Vector(vec![f64::NAN, f64::NAN]).is_no_data());
        assert!(QueryResult::Json(serde_json::Value::Null).is_no_data());
        assert!(!QueryResult::Scalar(0.0).is_no_data());
        assert!(!QueryResult::Json(serde_json::json!({"ok": false})).is_no_data());
        // Should no data reach the judge, it is never a pass.
        let m = metric(Some("result < 0.01"), None);
        assert_eq!(judge(&m, &QueryResult::Empty).unwrap().0, AnalysisPhase::Inconclusive);
    }

    #[test]
    fn argo_style_conditions_read_one_sample_as_a_list() {
        let m = metric(Some("result[0] < 0.05"), None);
        assert_eq!(
            judge(&m, &QueryResult::Scalar(0.01)).unwrap().0,
            AnalysisPhase::Successful
        );
        assert_eq!(judge(&m, &QueryResult::Scalar(0.4)).unwrap().0, AnalysisPhase::Failed);
        let sized = metric(Some("size(result) == 1 && result.all(x, x < 0.05)"), None);
        assert_eq!(
            judge(&sized, &QueryResult::Scalar(0.01)).unwrap().0,
            AnalysisPhase::Successful
        );
        let int = metric(Some("result[0] == 1"), None);
        assert_eq!(
            judge(&int, &QueryResult::Scalar(1.0)).unwrap().0,
            AnalysisPhase::Successful,
            "a float sample equals an integer literal"
        );
        let nan = metric(Some("!isNaN(result) && result < 0.05"), None);
        assert_eq!(
            judge(&nan, &QueryResult::Scalar(0.01)).unwrap().0,
            AnalysisPhase::Successful
        );
    }

    #[test]
    fn without_a_condition_every_answer_passes_as_in_argo() {
        let m = metric(None, None);
        for v in [0.0, 1.0, f64::INFINITY] {
            assert_eq!(judge(&m, &QueryResult::Scalar(v)).unwrap().0, AnalysisPhase::Successful);
        }
    }

    #[test]
    fn between_both_conditions_is_inconclusive() {
        let m = metric(Some("result < 0.01"), Some("result > 0.05"));
        assert_eq!(
            judge(&m, &QueryResult::Scalar(0.005)).unwrap().0,
            AnalysisPhase::Successful
        );
        assert_eq!(judge(&m, &QueryResult::Scalar(0.2)).unwrap().0, AnalysisPhase::Failed);
        assert_eq!(
            judge(&m, &QueryResult::Scalar(0.03)).unwrap().0,
            AnalysisPhase::Inconclusive
        );
    }

    #[test]
    fn json_answers_are_judged_as_cel_values() {
        let j = |v: serde_json::Value| QueryResult::Json(v);
        let ok = metric(Some("result.status == 'ok' && result.errors < 3"), None);
        assert_eq!(
            judge(&ok, &j(serde_json::json!({"status": "ok", "errors": 1})))
                .unwrap()
                .0,
            AnalysisPhase::Successful
        );
        assert_eq!(
            judge(&ok, &j(serde_json::json!({"status": "down", "errors": 1})))
                .unwrap()
                .0,
            AnalysisPhase::Failed
        );
        let flag = metric(Some("result == true"), None);
        assert_eq!(
            judge(&flag, &j(serde_json::json!(true))).unwrap().0,
            AnalysisPhase::Successful
        );
        let number = metric(Some("result < 0.5"), None);
        assert_eq!(
            judge(&number, &j(serde_json::json!(0.25))).unwrap().0,
            AnalysisPhase::Successful
        );
        let range = Metric {
            threshold_range: Some(ThresholdRange {
                min: None,
                max: Some(1.0),
            }),
            ..Default::default()
        };
        assert!(matches!(
            judge(&range, &j(serde_json::json!("high"))),
            Err(ConditionError::NotNumbers(_))
        ));
        assert_eq!(
            judge(&range, &j(serde_json::json!([0.5, 0.9]))).unwrap().0,
            AnalysisPhase::Successful
        );
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
