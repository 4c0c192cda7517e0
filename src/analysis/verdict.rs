//! The pure side of an AnalysisRun: when each metric measures next, how a measurement changes
//! its metric's counts and phase, and the run's verdict from its metrics.

use crate::crd::analysis::{
    AnalysisPhase, AnalysisRunSpec, AnalysisRunStatus, Comparison, EvidenceState, Measurement, Metric, MetricResult,
    NoData, RunSummary,
};
use crate::plan::steps::parse_duration;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;
use std::time::Duration;

/// Measurements kept per metric in status, unless `measurementRetention` says otherwise.
pub const MEASUREMENT_LIMIT: usize = 10;
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
pub const DEFAULT_CONSECUTIVE_NO_DATA_LIMIT: i32 = 4;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// How often a measurement in progress (a Job) is looked at.
pub const POLL: Duration = Duration::from_secs(1);

fn duration(v: &Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>) -> Option<Duration> {
    v.as_ref().and_then(|d| parse_duration(d).ok())
}

/// How many measurements with data a metric takes: `count`, else 1 — or without end for
/// background analysis with an interval, and for a metric that ends on `consecutiveSuccessLimit`.
pub fn count_of(metric: &Metric, background: bool) -> Option<i32> {
    let until_successes = metric.limits().consecutive_success_limit.is_some_and(|n| n > 0);
    match metric.limits().count {
        Some(n) if n > 0 => Some(n),
        _ if until_successes && metric.interval.is_some() => None,
        _ if background && metric.interval.is_some() => None,
        _ => Some(1),
    }
}

/// What one measurement came to.
#[derive(Debug)]
pub enum Outcome {
    /// A value (or, for a Job, none) and its verdict.
    Judged {
        value: Option<String>,
        phase: AnalysisPhase,
        reason: String,
    },
    /// The provider answered with nothing to judge: `what` names the query that found nothing.
    NoData {
        what: String,
    },
    Error(String),
    /// A `compare` or `sloBurnRate` look: its verdict (`NoData` while counting has only begun),
    /// the evidence it shows and the state the next look goes on from.
    Compared {
        phase: AnalysisPhase,
        value: String,
        reason: String,
        comparison: Box<Comparison>,
        state: Box<EvidenceState>,
    },
    /// Still going (a Job running): looked at again after [`POLL`].
    InProgress {
        message: String,
        metadata: BTreeMap<String, String>,
    },
}

/// How a run treats one of its metrics.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub background: bool,
    /// Measurements kept in status.
    pub retention: usize,
    /// Measured and shown, never deciding.
    pub dry_run: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            background: false,
            retention: MEASUREMENT_LIMIT,
            dry_run: false,
        }
    }
}

/// Whether the last measurement is still going (a Job that has not finished).
pub fn in_progress(result: &MetricResult) -> bool {
    result
        .measurements
        .last()
        .is_some_and(|m| m.finished_at.is_none() && m.phase == AnalysisPhase::Running)
}

/// Adds a measurement to a metric's result and works out the metric's phase.
pub fn record(
    result: &mut MetricResult,
    metric: &Metric,
    rules: Rules,
    started: Timestamp,
    now: Timestamp,
    outcome: Outcome,
) {
    // A measurement in progress is replaced by what it came to, keeping when it began.
    let started = if in_progress(result) {
        let begun = result.measurements.pop().map_or(started, |m| m.started_at.0);
        begun.min(started)
    } else {
        started
    };
    let mut comparison = None;
    let (phase, value, message, metadata, finished) = match outcome {
        Outcome::Judged { value, phase, reason } => (phase, value, reason, BTreeMap::new(), Some(Time(now))),
        Outcome::Compared {
            phase,
            value,
            reason,
            comparison: shown,
            state,
        } => {
            comparison = Some(*shown);
            result.evidence = Some(*state);
            (phase, Some(value), reason, BTreeMap::new(), Some(Time(now)))
        }
        Outcome::NoData { what } => (
            AnalysisPhase::NoData,
            Some("no data".to_string()),
            format!("no data from {what}"),
            BTreeMap::new(),
            Some(Time(now)),
        ),
        Outcome::Error(e) => (AnalysisPhase::Error, None, e, BTreeMap::new(), Some(Time(now))),
        Outcome::InProgress { message, metadata } => (AnalysisPhase::Running, None, message, metadata, None),
    };
    count(result, phase);
    result.measurements.push(Measurement {
        started_at: Time(started),
        finished_at: finished,
        phase,
        value,
        message: Some(message.clone()),
        metadata,
        comparison,
    });
    if result.measurements.len() > rules.retention.max(1) {
        let excess = result.measurements.len() - rules.retention.max(1);
        result.measurements.drain(..excess);
    }
    result.dry_run = rules.dry_run.then_some(true);
    result.phase = metric_phase(result, metric, rules.background);
    result.message = Some(metric_message(result, metric, rules.background, message));
}

/// Counts a measurement by its phase: errors and no data never use up `count`.
fn count(result: &mut MetricResult, phase: AnalysisPhase) {
    match phase {
        AnalysisPhase::Successful => {
            result.successful += 1;
            result.consecutive_success += 1;
        }
        AnalysisPhase::Failed => result.failed += 1,
        AnalysisPhase::Inconclusive => result.inconclusive += 1,
        AnalysisPhase::Error => result.error += 1,
        AnalysisPhase::NoData => result.no_data += 1,
        AnalysisPhase::Running | AnalysisPhase::Pending => return,
    }
    if matches!(
        phase,
        AnalysisPhase::Successful | AnalysisPhase::Failed | AnalysisPhase::Inconclusive
    ) {
        result.count += 1;
    }
    if matches!(
        phase,
        AnalysisPhase::Failed | AnalysisPhase::Inconclusive | AnalysisPhase::Error
    ) {
        result.consecutive_success = 0;
    }
    result.consecutive_error = if phase == AnalysisPhase::Error {
        result.consecutive_error + 1
    } else {
        0
    };
    if phase == AnalysisPhase::NoData {
        result.consecutive_no_data += 1;
    } else if phase != AnalysisPhase::Error {
        result.consecutive_no_data = 0;
    }
}

fn no_data_limit(metric: &Metric) -> i32 {
    metric
        .limits()
        .consecutive_no_data_limit
        .unwrap_or(DEFAULT_CONSECUTIVE_NO_DATA_LIMIT)
}

fn error_limit(metric: &Metric) -> i32 {
    metric
        .limits()
        .consecutive_error_limit
        .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT)
}

/// The metric's message: what the last measurement said while running, and why it ended once
/// it has.
fn metric_message(result: &MetricResult, metric: &Metric, background: bool, last: String) -> String {
    let policy = metric.no_data.unwrap_or_default();
    let limits = metric.limits();
    match result.phase {
        AnalysisPhase::Running if result.consecutive_no_data > 0 && !in_progress(result) => format!(
            "waiting for data: {} of {} tries found none ({last})",
            result.consecutive_no_data,
            no_data_limit(metric) + 1
        ),
        AnalysisPhase::Successful | AnalysisPhase::Failed | AnalysisPhase::Inconclusive
            if result.consecutive_no_data > no_data_limit(metric) =>
        {
            let times = match result.consecutive_no_data {
                1 => "once".to_string(),
                n => format!("{n} times in a row"),
            };
            format!(
                "no data {times} (consecutiveNoDataLimit {}, noData: {policy:?}): {last}",
                no_data_limit(metric)
            )
        }
        AnalysisPhase::Running => last,
        AnalysisPhase::Successful => match limits.consecutive_success_limit {
            Some(n) if n > 0 && result.consecutive_success >= n => {
                format!(
                    "{} successes in a row (consecutiveSuccessLimit {n})",
                    result.consecutive_success
                )
            }
            _ if metric.provider.job.is_some()
                || metric.provider.compare.is_some()
                || metric.provider.slo_burn_rate.is_some() =>
            {
                last
            }
            _ => format!("{} of {} measurements passed", result.successful, result.count),
        },
        AnalysisPhase::Failed if limits.failure_limit == Some(-1) => format!(
            "{} measurements taken without {} successes in a row (consecutiveSuccessLimit, failureLimit -1)",
            result.count,
            limits.consecutive_success_limit.unwrap_or(0)
        ),
        AnalysisPhase::Failed => format!(
            "{} measurements failed (failureLimit {}): {last}",
            result.failed,
            limits.failure_limit.unwrap_or(0)
        ),
        AnalysisPhase::Inconclusive if result.inconclusive <= limits.inconclusive_limit.unwrap_or(0) => format!(
            "{} measurements taken without {} successes in a row (consecutiveSuccessLimit)",
            count_of(metric, background).unwrap_or(result.count),
            limits.consecutive_success_limit.unwrap_or(0)
        ),
        AnalysisPhase::Inconclusive => format!(
            "{} measurements inconclusive (inconclusiveLimit {}): {last}",
            result.inconclusive,
            limits.inconclusive_limit.unwrap_or(0)
        ),
        AnalysisPhase::Error => format!(
            "{} errors in a row (consecutiveErrorLimit {}): {last}",
            result.consecutive_error,
            error_limit(metric)
        ),
        AnalysisPhase::Pending | AnalysisPhase::NoData => last,
    }
}

pub fn metric_phase(result: &MetricResult, metric: &Metric, background: bool) -> AnalysisPhase {
    let limits = metric.limits();
    let success_limit = limits.consecutive_success_limit.filter(|n| *n > 0);
    // `failureLimit: -1` turns the limit off.
    let failure_limit = limits.failure_limit.unwrap_or(0);
    if failure_limit >= 0 && result.failed > failure_limit {
        AnalysisPhase::Failed
    } else if result.inconclusive > limits.inconclusive_limit.unwrap_or(0) {
        AnalysisPhase::Inconclusive
    } else if result.consecutive_error > error_limit(metric) {
        AnalysisPhase::Error
    } else if result.consecutive_no_data > no_data_limit(metric) {
        // Only past its limit does no data decide, and then as the template says.
        match metric.no_data.unwrap_or_default() {
            NoData::Inconclusive => AnalysisPhase::Inconclusive,
            NoData::Failed => AnalysisPhase::Failed,
            NoData::Successful => AnalysisPhase::Successful,
        }
    } else if success_limit.is_some_and(|n| result.consecutive_success >= n) {
        AnalysisPhase::Successful
    } else if result.evidence.as_ref().is_some_and(|e| e.passed) {
        // The comparison showed the canary no worse than stable: an early pass.
        AnalysisPhase::Successful
    } else if count_of(metric, background).is_some_and(|n| result.count >= n) {
        // Only judged values count towards `count`: errors and no data are retried (within their
        // limits), never taken for data. A run passes on `count` real values or not at all.
        match (success_limit, failure_limit) {
            (Some(_), -1) => AnalysisPhase::Failed,
            (Some(_), _) => AnalysisPhase::Inconclusive,
            (None, _) => AnalysisPhase::Successful,
        }
    } else {
        AnalysisPhase::Running
    }
}

/// The worst of failed, error and inconclusive that `has` finds, in that order.
fn worst(has: impl Fn(AnalysisPhase) -> bool) -> Option<AnalysisPhase> {
    [AnalysisPhase::Failed, AnalysisPhase::Error, AnalysisPhase::Inconclusive]
        .into_iter()
        .find(|p| has(*p))
}

/// The run's verdict from the metrics that decide: any failure fails it; then errors, then
/// inconclusive; successful when all (dry-run ones too) have ended and none of the others failed.
pub fn run_phase(results: &[MetricResult], metrics: usize) -> AnalysisPhase {
    let deciding = || results.iter().filter(|r| r.dry_run != Some(true));
    if let Some(p) = worst(|p| deciding().any(|r| r.phase == p)) {
        p
    } else if results.len() == metrics
        && results.iter().all(|r| r.phase.is_finished())
        && deciding().all(|r| r.phase == AnalysisPhase::Successful)
    {
        AnalysisPhase::Successful
    } else {
        AnalysisPhase::Running
    }
}

/// The phase of a run stopped before it ended (the rollout moved on), as Argo Rollouts gives it:
/// a failure or error stands; a measurement cut short (a Job still running, now Inconclusive)
/// or an inconclusive metric makes it Inconclusive; otherwise Successful, measured or not.
pub fn stopped_phase(results: &[MetricResult]) -> AnalysisPhase {
    let deciding = || results.iter().filter(|r| r.dry_run != Some(true));
    worst(|p| {
        deciding()
            .any(|r| r.phase == p || (!r.phase.is_finished() && r.measurements.last().is_some_and(|m| m.phase == p)))
    })
    .unwrap_or(AnalysisPhase::Successful)
}

/// The dry-run metrics counted by how they ended.
pub fn dry_run_summary(results: &[MetricResult]) -> Option<RunSummary> {
    let dry: Vec<&MetricResult> = results.iter().filter(|r| r.dry_run == Some(true)).collect();
    if dry.is_empty() {
        return None;
    }
    let n = |p: AnalysisPhase| dry.iter().filter(|r| r.phase == p).count() as i32;
    Some(RunSummary {
        count: dry.len() as i32,
        successful: n(AnalysisPhase::Successful),
        failed: n(AnalysisPhase::Failed),
        inconclusive: n(AnalysisPhase::Inconclusive),
        error: n(AnalysisPhase::Error),
    })
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
        Some(m) if m.finished_at.is_none() => m.started_at.0.checked_add(POLL).ok(),
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

/// Time until the next measurement of any metric; a measurement in progress is looked at every
/// [`POLL`].
pub fn wait(spec: &AnalysisRunSpec, status: &AnalysisRunStatus, now: Timestamp) -> Option<Duration> {
    let started = status.started_at.as_ref().map_or(now, |t| t.0);
    let background = spec.background == Some(true);
    spec.metrics
        .iter()
        .filter_map(|m| {
            let result = status.metric_results.iter().find(|r| r.name == m.name);
            let due = next_due(m, result, started, background)?;
            // Overdue is due now, not as long again from now.
            let left = if due <= now {
                Duration::ZERO
            } else {
                due.duration_since(now).unsigned_abs()
            };
            Some(if result.is_some_and(in_progress) {
                left.max(POLL)
            } else {
                left
            })
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn judged(phase: AnalysisPhase) -> Outcome {
        Outcome::Judged {
            value: Some("0.5".into()),
            phase,
            reason: "r".into(),
        }
    }

    const R: Rules = Rules {
        background: false,
        retention: MEASUREMENT_LIMIT,
        dry_run: false,
    };

    fn no_data() -> Outcome {
        Outcome::NoData {
            what: "query `up{job=\"x\"}`".into(),
        }
    }

    #[test]
    fn failure_limit_counts_failures() {
        let m = Metric {
            count: Some(IntOrString::Int(5)),
            failure_limit: Some(IntOrString::Int(1)),
            ..Default::default()
        };
        let mut r = MetricResult {
            name: "m".into(),
            ..Default::default()
        };
        record(&mut r, &m, R, t(0), t(1), judged(AnalysisPhase::Failed));
        assert_eq!(r.phase, AnalysisPhase::Running, "one failure is within the limit");
        record(&mut r, &m, R, t(2), t(3), judged(AnalysisPhase::Failed));
        assert_eq!(r.phase, AnalysisPhase::Failed);
    }

    #[test]
    fn errors_are_retried_until_the_limit() {
        let m = Metric {
            consecutive_error_limit: Some(IntOrString::Int(2)),
            ..Default::default()
        };
        let mut r = MetricResult::default();
        for i in 0..2 {
            record(&mut r, &m, R, t(i), t(i), Outcome::Error("unreachable".into()));
            assert_eq!(r.phase, AnalysisPhase::Running);
        }
        record(&mut r, &m, R, t(3), t(3), Outcome::Error("unreachable".into()));
        assert_eq!(r.phase, AnalysisPhase::Error);
        assert!(r.message.unwrap().contains("3 errors in a row"));
        let mut ok = MetricResult::default();
        record(&mut ok, &m, R, t(0), t(0), Outcome::Error("x".into()));
        record(&mut ok, &m, R, t(1), t(1), judged(AnalysisPhase::Successful));
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
            count: Some(IntOrString::Int(3)),
            inconclusive_limit: Some(IntOrString::Int(0)),
            ..Default::default()
        };
        let mut r = MetricResult::default();
        record(&mut r, &m, R, t(0), t(0), judged(AnalysisPhase::Inconclusive));
        assert_eq!(r.phase, AnalysisPhase::Inconclusive);
    }

    #[test]
    fn measurements_are_bounded() {
        let m = Metric {
            count: Some(IntOrString::Int(100)),
            ..Default::default()
        };
        let mut r = MetricResult::default();
        for i in 0..25 {
            record(&mut r, &m, R, t(i), t(i), judged(AnalysisPhase::Successful));
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
            count: Some(IntOrString::Int(3)),
            ..Default::default()
        };
        assert_eq!(next_due(&m, None, t(0), false), Some(t(5)));
        let mut r = MetricResult::default();
        record(&mut r, &m, R, t(5), t(6), judged(AnalysisPhase::Successful));
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

    fn every(secs: &str, count: Option<i32>) -> Metric {
        Metric {
            name: "m".into(),
            interval: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                secs.into(),
            )),
            count: count.map(IntOrString::Int),
            ..Default::default()
        }
    }

    #[test]
    fn no_data_waits_without_using_up_the_count() {
        let m = every("3s", Some(3));
        let mut r = MetricResult::default();
        for i in 0..4 {
            record(&mut r, &m, R, t(i * 3), t(i * 3), no_data());
            assert_eq!(r.phase, AnalysisPhase::Running, "no data #{i} is no evidence yet");
        }
        assert_eq!((r.count, r.no_data, r.consecutive_no_data), (0, 4, 4));
        assert!(
            r.message.as_deref().unwrap().contains("waiting for data: 4 of 5 tries"),
            "{:?}",
            r.message
        );
        assert_eq!(r.measurements.last().map(|m| m.phase), Some(AnalysisPhase::NoData));
        assert!(r.measurements[0].message.as_deref().unwrap().contains("up{job="));
        // Data comes: three judged values decide, and the no-data tries did not count.
        for i in 0..2 {
            record(&mut r, &m, R, t(20 + i), t(20 + i), judged(AnalysisPhase::Successful));
            assert_eq!(r.phase, AnalysisPhase::Running);
        }
        assert_eq!(r.consecutive_no_data, 0);
        record(&mut r, &m, R, t(30), t(30), judged(AnalysisPhase::Successful));
        assert_eq!(r.phase, AnalysisPhase::Successful);
        assert_eq!(r.count, 3);
    }

    #[test]
    fn past_the_no_data_limit_the_policy_decides() {
        for (policy, want) in [
            (None, AnalysisPhase::Inconclusive),
            (Some(NoData::Failed), AnalysisPhase::Failed),
            (Some(NoData::Successful), AnalysisPhase::Successful),
        ] {
            let m = Metric {
                consecutive_no_data_limit: Some(IntOrString::Int(2)),
                no_data: policy,
                ..every("3s", Some(3))
            };
            let mut r = MetricResult::default();
            for i in 0..2 {
                record(&mut r, &m, R, t(i), t(i), no_data());
                assert_eq!(r.phase, AnalysisPhase::Running);
            }
            record(&mut r, &m, R, t(5), t(5), no_data());
            assert_eq!(r.phase, want, "{policy:?}");
            let message = r.message.clone().unwrap();
            assert!(message.contains("no data 3 times in a row"), "{message}");
            assert!(message.contains("up{job="), "the message names the query: {message}");
        }
        // A limit of 0 lets the first no data decide.
        let m = Metric {
            consecutive_no_data_limit: Some(IntOrString::Int(0)),
            ..every("3s", Some(3))
        };
        let mut r = MetricResult::default();
        record(&mut r, &m, R, t(0), t(0), no_data());
        assert_eq!(r.phase, AnalysisPhase::Inconclusive);
    }

    #[test]
    fn data_between_no_data_starts_the_count_of_tries_again() {
        let m = Metric {
            consecutive_no_data_limit: Some(IntOrString::Int(1)),
            ..every("3s", Some(5))
        };
        let mut r = MetricResult::default();
        for i in 0..4 {
            record(&mut r, &m, R, t(i), t(i), no_data());
            record(&mut r, &m, R, t(i), t(i), judged(AnalysisPhase::Successful));
        }
        assert_eq!(r.phase, AnalysisPhase::Running);
        assert_eq!(r.no_data, 4);
    }

    #[test]
    fn consecutive_successes_end_a_metric_early() {
        let m = Metric {
            consecutive_success_limit: Some(IntOrString::Int(2)),
            failure_limit: Some(IntOrString::Int(3)),
            ..every("3s", Some(10))
        };
        let mut r = MetricResult::default();
        record(&mut r, &m, R, t(0), t(0), judged(AnalysisPhase::Successful));
        record(&mut r, &m, R, t(1), t(1), judged(AnalysisPhase::Failed));
        record(&mut r, &m, R, t(2), t(2), judged(AnalysisPhase::Successful));
        assert_eq!(r.phase, AnalysisPhase::Running, "a failure broke the run of successes");
        record(&mut r, &m, R, t(3), t(3), no_data());
        record(&mut r, &m, R, t(4), t(4), judged(AnalysisPhase::Successful));
        assert_eq!(r.phase, AnalysisPhase::Successful);
        assert!(r.message.unwrap().contains("2 successes in a row"));
        // Without a count it measures until the successes come.
        assert_eq!(count_of(&every("3s", None), false), Some(1));
        let open = Metric {
            consecutive_success_limit: Some(IntOrString::Int(3)),
            ..every("3s", None)
        };
        assert_eq!(count_of(&open, false), None);
        // With a count that runs out first, it is inconclusive.
        let short = Metric {
            consecutive_success_limit: Some(IntOrString::Int(3)),
            failure_limit: Some(IntOrString::Int(2)),
            ..every("3s", Some(3))
        };
        let mut r = MetricResult::default();
        for (i, p) in [
            AnalysisPhase::Successful,
            AnalysisPhase::Failed,
            AnalysisPhase::Successful,
        ]
        .into_iter()
        .enumerate()
        {
            record(&mut r, &short, R, t(i as i64), t(i as i64), judged(p));
        }
        assert_eq!(r.phase, AnalysisPhase::Inconclusive);
    }

    #[test]
    fn dry_run_metrics_are_shown_and_never_decide() {
        let m = every("3s", Some(1));
        let dry = Rules { dry_run: true, ..R };
        let mut failing = MetricResult {
            name: "dry".into(),
            ..Default::default()
        };
        record(&mut failing, &m, dry, t(0), t(0), judged(AnalysisPhase::Failed));
        assert_eq!(failing.phase, AnalysisPhase::Failed);
        assert_eq!(failing.dry_run, Some(true));
        let mut passing = MetricResult {
            name: "real".into(),
            ..Default::default()
        };
        record(&mut passing, &m, R, t(0), t(0), judged(AnalysisPhase::Successful));
        assert_eq!(
            run_phase(&[failing.clone(), passing.clone()], 2),
            AnalysisPhase::Successful
        );
        let summary = dry_run_summary(&[failing.clone(), passing]).unwrap();
        assert_eq!((summary.count, summary.failed), (1, 1));
        // The run waits for a dry-run metric still measuring.
        let mut running = failing;
        running.phase = AnalysisPhase::Running;
        let ok = MetricResult {
            phase: AnalysisPhase::Successful,
            ..Default::default()
        };
        assert_eq!(run_phase(&[running, ok], 2), AnalysisPhase::Running);
    }

    #[test]
    fn retention_keeps_the_latest_measurements() {
        let m = every("1s", Some(100));
        let keep = Rules { retention: 3, ..R };
        let mut r = MetricResult::default();
        for i in 0..7 {
            record(&mut r, &m, keep, t(i), t(i), judged(AnalysisPhase::Successful));
        }
        assert_eq!(r.measurements.len(), 3);
        assert_eq!(r.measurements[0].started_at, Time(t(4)));
        assert_eq!(r.count, 7, "counts are kept whole");
    }

    #[test]
    fn a_measurement_in_progress_is_polled_then_replaced() {
        let m = Metric {
            provider: crate::crd::analysis::MetricProvider {
                job: Some(Default::default()),
                ..Default::default()
            },
            ..every("10s", Some(1))
        };
        let mut r = MetricResult::default();
        let going = || Outcome::InProgress {
            message: "job x running".into(),
            metadata: [("job-name".to_string(), "x".to_string())].into(),
        };
        record(&mut r, &m, R, t(0), t(0), going());
        assert!(in_progress(&r));
        assert_eq!(next_due(&m, Some(&r), t(0), false), Some(t(1)), "polled every second");
        record(&mut r, &m, R, t(1), t(1), going());
        assert_eq!(r.measurements.len(), 1, "the same measurement, still going");
        record(
            &mut r,
            &m,
            R,
            t(4),
            t(4),
            Outcome::Judged {
                value: None,
                phase: AnalysisPhase::Successful,
                reason: "job x completed".into(),
            },
        );
        assert_eq!(r.measurements.len(), 1);
        assert_eq!(
            r.measurements[0].started_at,
            Time(t(0)),
            "it began when the Job was made"
        );
        assert_eq!(r.phase, AnalysisPhase::Successful);
        assert_eq!(r.message.as_deref(), Some("job x completed"));
    }

    #[test]
    fn a_failure_limit_of_minus_one_waits_for_successes() {
        let m = Metric {
            consecutive_success_limit: Some(IntOrString::Int(2)),
            failure_limit: Some(IntOrString::Int(-1)),
            ..every("3s", Some(4))
        };
        let mut r = MetricResult::default();
        for (i, p) in [AnalysisPhase::Failed, AnalysisPhase::Failed, AnalysisPhase::Successful]
            .into_iter()
            .enumerate()
        {
            record(&mut r, &m, R, t(i as i64), t(i as i64), judged(p));
            assert_eq!(r.phase, AnalysisPhase::Running, "failures alone never end it");
        }
        record(&mut r, &m, R, t(5), t(5), judged(AnalysisPhase::Failed));
        assert_eq!(r.phase, AnalysisPhase::Failed, "count ran out without the successes");
        let mut ok = MetricResult::default();
        for i in 0..2 {
            record(&mut ok, &m, R, t(i), t(i), judged(AnalysisPhase::Successful));
        }
        assert_eq!(ok.phase, AnalysisPhase::Successful);
    }

    #[test]
    fn an_overdue_measurement_is_due_now_and_one_in_progress_every_second() {
        let m = every("10s", Some(3));
        let spec = AnalysisRunSpec {
            metrics: vec![m.clone()],
            ..Default::default()
        };
        let mut status = AnalysisRunStatus {
            started_at: Some(Time(t(0))),
            ..Default::default()
        };
        let mut r = MetricResult {
            name: "m".into(),
            ..Default::default()
        };
        record(&mut r, &m, R, t(0), t(0), judged(AnalysisPhase::Successful));
        status.metric_results = vec![r.clone()];
        assert_eq!(wait(&spec, &status, t(4)), Some(Duration::from_secs(6)));
        assert_eq!(wait(&spec, &status, t(60)), Some(Duration::ZERO), "overdue");
        let job = Metric {
            provider: crate::crd::analysis::MetricProvider {
                job: Some(Default::default()),
                ..Default::default()
            },
            ..m
        };
        let spec = AnalysisRunSpec {
            metrics: vec![job.clone()],
            ..Default::default()
        };
        let mut going = MetricResult {
            name: "m".into(),
            ..Default::default()
        };
        let progress = || Outcome::InProgress {
            message: "running".into(),
            metadata: Default::default(),
        };
        record(&mut going, &job, R, t(0), t(0), progress());
        status.metric_results = vec![going];
        for at in [1, 30, 600] {
            assert_eq!(
                wait(&spec, &status, t(at)),
                Some(POLL),
                "looked at every second, at {at}s"
            );
        }
    }
}

#[cfg(test)]
mod stopped_tests {
    use super::*;

    fn result(name: &str, phase: AnalysisPhase, successful: i32) -> MetricResult {
        MetricResult {
            name: name.into(),
            phase,
            successful,
            ..Default::default()
        }
    }

    #[test]
    fn a_run_stopped_says_only_what_it_found() {
        use AnalysisPhase::*;
        let cut_short = MetricResult {
            measurements: vec![
                serde_json::from_value(
                    serde_json::json!({"startedAt": "2026-01-01T00:00:00Z", "phase": "Inconclusive"}),
                )
                .unwrap(),
            ],
            ..result("job", Running, 0)
        };
        // A Job stopped before it finished: its measurement Inconclusive, and so the run.
        assert_eq!(stopped_phase(std::slice::from_ref(&cut_short)), Inconclusive);
        // Nothing measured yet, or passes so far: Successful, as Argo Rollouts says.
        assert_eq!(stopped_phase(&[]), Successful);
        assert_eq!(
            stopped_phase(&[result("a", Running, 3), result("b", Running, 0)]),
            Successful
        );
        // A failure stands, whatever else was stopped.
        assert_eq!(stopped_phase(&[result("a", Failed, 0), cut_short.clone()]), Failed);
        // A dry-run metric never decides.
        let dry = MetricResult {
            dry_run: Some(true),
            ..cut_short
        };
        assert_eq!(stopped_phase(&[result("a", Running, 1), dry]), Successful);
    }
}
