//! The pure side of an AnalysisRun: when each metric measures next, how a measurement changes
//! its metric's counts and phase, and the run's verdict from its metrics.

use super::condition::QueryResult;
use crate::crd::analysis::{AnalysisPhase, AnalysisRunSpec, AnalysisRunStatus, Measurement, Metric, MetricResult};
use crate::plan::steps::parse_duration;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

/// Measurements kept per metric in status.
pub const MEASUREMENT_LIMIT: usize = 10;
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

fn duration(v: &Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>) -> Option<Duration> {
    v.as_ref().and_then(|d| parse_duration(d).ok())
}

/// How many measurements a metric takes: `count`, else 1 — or without end for background analysis
/// with an interval.
pub fn count_of(metric: &Metric, background: bool) -> Option<i32> {
    match metric.count {
        Some(0) | None if background && metric.interval.is_some() => None,
        Some(n) if n > 0 => Some(n),
        _ => Some(1),
    }
}

/// What one measurement came to: a value judged, or an error.
pub enum Outcome {
    Judged {
        result: QueryResult,
        phase: AnalysisPhase,
        reason: String,
    },
    Error(String),
}

/// Adds a measurement to a metric's result and works out the metric's phase.
pub fn record(
    result: &mut MetricResult,
    metric: &Metric,
    background: bool,
    started: Timestamp,
    now: Timestamp,
    outcome: Outcome,
) {
    let (phase, value, message) = match outcome {
        Outcome::Judged {
            result: r,
            phase,
            reason,
        } => (phase, Some(r.display()), Some(reason)),
        Outcome::Error(e) => (AnalysisPhase::Error, None, Some(e)),
    };
    result.count += 1;
    match phase {
        AnalysisPhase::Successful => result.successful += 1,
        AnalysisPhase::Failed => result.failed += 1,
        AnalysisPhase::Inconclusive => result.inconclusive += 1,
        AnalysisPhase::Error => result.error += 1,
        _ => {}
    }
    result.consecutive_error = if phase == AnalysisPhase::Error {
        result.consecutive_error + 1
    } else {
        0
    };
    result.measurements.push(Measurement {
        started_at: Time(started),
        finished_at: Some(Time(now)),
        phase,
        value,
        message: message.clone(),
    });
    if result.measurements.len() > MEASUREMENT_LIMIT {
        let excess = result.measurements.len() - MEASUREMENT_LIMIT;
        result.measurements.drain(..excess);
    }
    result.phase = metric_phase(result, metric, background);
    result.message = match result.phase {
        AnalysisPhase::Running => message,
        AnalysisPhase::Successful => Some(format!("{} of {} measurements passed", result.successful, result.count)),
        AnalysisPhase::Failed => Some(format!(
            "{} measurements failed (failureLimit {}): {}",
            result.failed,
            metric.failure_limit.unwrap_or(0),
            message.unwrap_or_default()
        )),
        AnalysisPhase::Inconclusive => Some(format!(
            "{} measurements inconclusive (inconclusiveLimit {}): {}",
            result.inconclusive,
            metric.inconclusive_limit.unwrap_or(0),
            message.unwrap_or_default()
        )),
        AnalysisPhase::Error => Some(format!(
            "{} errors in a row (consecutiveErrorLimit {}): {}",
            result.consecutive_error,
            metric
                .consecutive_error_limit
                .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT),
            message.unwrap_or_default()
        )),
        AnalysisPhase::Pending => None,
    };
}

pub fn metric_phase(result: &MetricResult, metric: &Metric, background: bool) -> AnalysisPhase {
    if result.failed > metric.failure_limit.unwrap_or(0) {
        AnalysisPhase::Failed
    } else if result.inconclusive > metric.inconclusive_limit.unwrap_or(0) {
        AnalysisPhase::Inconclusive
    } else if result.consecutive_error
        > metric
            .consecutive_error_limit
            .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT)
    {
        AnalysisPhase::Error
    } else if count_of(metric, background).is_some_and(|n| result.successful + result.failed >= n) {
        // Only judged values count towards `count`: errors and no-data are retried (within their
        // limits), never taken for data. A run passes on `count` real values or not at all.
        AnalysisPhase::Successful
    } else {
        AnalysisPhase::Running
    }
}

/// The run's verdict: any failure fails it; then errors, then inconclusive; successful when all are.
pub fn run_phase(results: &[MetricResult], metrics: usize) -> AnalysisPhase {
    let has = |p: AnalysisPhase| results.iter().any(|r| r.phase == p);
    if has(AnalysisPhase::Failed) {
        AnalysisPhase::Failed
    } else if has(AnalysisPhase::Error) {
        AnalysisPhase::Error
    } else if has(AnalysisPhase::Inconclusive) {
        AnalysisPhase::Inconclusive
    } else if results.len() == metrics && results.iter().all(|r| r.phase == AnalysisPhase::Successful) {
        AnalysisPhase::Successful
    } else {
        AnalysisPhase::Running
    }
}

/// When a metric measures next; `None` when it is done.
pub fn next_due(
    metric: &Metric,
    result: Option<&MetricResult>,
    run_started: Timestamp,
    background: bool,
) -> Option<Timestamp> {
    let result_phase = result.map_or(AnalysisPhase::Pending, |r| r.phase);
    if result_phase.is_finished() {
        return None;
    }
    let last = result.and_then(|r| r.measurements.last());
    match last {
        None => run_started
            .checked_add(duration(&metric.initial_delay).unwrap_or_default())
            .ok(),
        Some(m) => {
            let from = m.finished_at.as_ref().map(|t| t.0).unwrap_or(m.started_at.0);
            let count = count_of(metric, background);
            let interval = duration(&metric.interval).unwrap_or(if count == Some(1) {
                Duration::from_secs(5)
            } else {
                DEFAULT_INTERVAL
            });
            from.checked_add(interval).ok()
        }
    }
}

/// Metrics due at `now`, by index.
pub fn due(spec: &AnalysisRunSpec, status: &AnalysisRunStatus, now: Timestamp) -> Vec<usize> {
    let started = status.started_at.as_ref().map_or(now, |t| t.0);
    let background = spec.background == Some(true);
    spec.metrics
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            let result = status.metric_results.iter().find(|r| r.name == m.name);
            next_due(m, result, started, background).is_some_and(|t| t <= now)
        })
        .map(|(i, _)| i)
        .collect()
}

/// Time until the next measurement of any metric.
pub fn wait(spec: &AnalysisRunSpec, status: &AnalysisRunStatus, now: Timestamp) -> Option<Duration> {
    let started = status.started_at.as_ref().map_or(now, |t| t.0);
    let background = spec.background == Some(true);
    spec.metrics
        .iter()
        .filter_map(|m| {
            next_due(
                m,
                status.metric_results.iter().find(|r| r.name == m.name),
                started,
                background,
            )
        })
        .map(|t| t.duration_since(now).unsigned_abs())
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn judged(phase: AnalysisPhase) -> Outcome {
        Outcome::Judged {
            result: QueryResult::Scalar(0.5),
            phase,
            reason: "r".into(),
        }
    }

    #[test]
    fn failure_limit_counts_failures() {
        let m = Metric {
            count: Some(5),
            failure_limit: Some(1),
            ..Default::default()
        };
        let mut r = MetricResult {
            name: "m".into(),
            ..Default::default()
        };
        record(&mut r, &m, false, t(0), t(1), judged(AnalysisPhase::Failed));
        assert_eq!(r.phase, AnalysisPhase::Running, "one failure is within the limit");
        record(&mut r, &m, false, t(2), t(3), judged(AnalysisPhase::Failed));
        assert_eq!(r.phase, AnalysisPhase::Failed);
    }

    #[test]
    fn errors_are_retried_until_the_limit() {
        let m = Metric {
            consecutive_error_limit: Some(2),
            ..Default::default()
        };
        let mut r = MetricResult::default();
        for i in 0..2 {
            record(&mut r, &m, false, t(i), t(i), Outcome::Error("unreachable".into()));
            assert_eq!(r.phase, AnalysisPhase::Running);
        }
        record(&mut r, &m, false, t(3), t(3), Outcome::Error("unreachable".into()));
        assert_eq!(r.phase, AnalysisPhase::Error);
        assert!(r.message.unwrap().contains("3 errors in a row"));
        let mut ok = MetricResult::default();
        record(&mut ok, &m, false, t(0), t(0), Outcome::Error("x".into()));
        record(&mut ok, &m, false, t(1), t(1), judged(AnalysisPhase::Successful));
        assert_eq!(
            ok.phase,
            AnalysisPhase::Successful,
            "an error does not use up the count"
        );
        assert_eq!(ok.consecutive_error, 0);
    }

    #[test]
    fn inconclusive_beyond_its_limit() {
        let m = Metric {
            count: Some(3),
            inconclusive_limit: Some(0),
            ..Default::default()
        };
        let mut r = MetricResult::default();
        record(&mut r, &m, false, t(0), t(0), judged(AnalysisPhase::Inconclusive));
        assert_eq!(r.phase, AnalysisPhase::Inconclusive);
    }

    #[test]
    fn measurements_are_bounded() {
        let m = Metric {
            count: Some(100),
            ..Default::default()
        };
        let mut r = MetricResult::default();
        for i in 0..25 {
            record(&mut r, &m, false, t(i), t(i), judged(AnalysisPhase::Successful));
        }
        assert_eq!(r.measurements.len(), MEASUREMENT_LIMIT);
        assert_eq!(r.measurements[0].started_at, Time(t(15)), "the latest are kept");
        assert_eq!(r.count, 25);
    }

    #[test]
    fn run_phase_precedence() {
        let r = |p| MetricResult {
            phase: p,
            ..Default::default()
        };
        assert_eq!(
            run_phase(&[r(AnalysisPhase::Successful), r(AnalysisPhase::Failed)], 2),
            AnalysisPhase::Failed
        );
        assert_eq!(
            run_phase(&[r(AnalysisPhase::Inconclusive), r(AnalysisPhase::Error)], 2),
            AnalysisPhase::Error
        );
        assert_eq!(
            run_phase(&[r(AnalysisPhase::Successful)], 2),
            AnalysisPhase::Running,
            "a metric not yet measured"
        );
        assert_eq!(
            run_phase(&[r(AnalysisPhase::Successful), r(AnalysisPhase::Successful)], 2),
            AnalysisPhase::Successful
        );
    }

    #[test]
    fn schedule_follows_delay_and_interval() {
        let m = Metric {
            interval: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                "10s".into(),
            )),
            initial_delay: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                "5s".into(),
            )),
            count: Some(3),
            ..Default::default()
        };
        assert_eq!(next_due(&m, None, t(0), false), Some(t(5)));
        let mut r = MetricResult::default();
        record(&mut r, &m, false, t(5), t(6), judged(AnalysisPhase::Successful));
        assert_eq!(next_due(&m, Some(&r), t(0), false), Some(t(16)));
        assert_eq!(
            count_of(
                &Metric {
                    interval: m.interval.clone(),
                    ..Default::default()
                },
                true
            ),
            None,
            "background runs until stopped"
        );
    }
}
