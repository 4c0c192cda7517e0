//! The `sloBurnRate` judge: Google's multi-window burn-rate alert scaled to an analysis, and the
//! error budget the canary has spent. It catches what a comparison with stable cannot: both
//! versions broken. Pure: the caller reads the counters.
//!
//! burn rate = error ratio / (1 - objective). The long window is the time since the evidence for
//! this version began, the short one a twelfth of it (at least [`MIN_SHORT`]). The metric fails
//! when the short window burns faster than `factor` and the long one does so beyond doubt: an
//! anytime-valid e-value (a likelihood-ratio mixture over error ratios above `factor·(1 -
//! objective)`) reaches `1/(1 - confidence)`. A single error on a thin slice of traffic is then no
//! outage. The canary's exposure spends `bad / ((1 - objective) · rate of all requests · period)`
//! of the period's budget.

use super::compare::Judgement;
use super::counting::{add, count_text, first_reading, percent_text, served, served_since, significant};
use super::dispersion::Dispersion;
use super::verdict::Outcome;
use crate::crd::analysis::{
    AnalysisPhase, Comparison, EventCounts, EvidenceState, Metric, MetricResult, SloBurnRateProvider,
};
use crate::plan::steps::parse_duration;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::time::Duration;

/// Four scrapes at Prometheus' usual 15 s: a shorter window holds too few samples.
pub const MIN_SHORT: Duration = Duration::from_secs(60);
pub const DEFAULT_FACTOR: f64 = 14.4;
pub const DEFAULT_BUDGET_PERCENT: f64 = 1.0;
pub const DEFAULT_CONFIDENCE: f64 = 0.999;
/// Error ratios, as multiples of the burn limit, the evidence of burning too fast mixes over.
const FASTER: [f64; 6] = [1.25, 1.5, 2.0, 3.0, 5.0, 10.0];
const DEFAULT_PERIOD: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BurnRateError {
    #[error("objective must be a percentage below 100 (99.9 for 99.9% good requests), not {0}")]
    Objective(f64),
    #[error("period: {0}")]
    Period(String),
    #[error("maxBudgetSpent must be a percentage (\"1%\" or 1), not {0:?}")]
    Budget(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// The share of requests that may be bad: 0.001 for 99.9%.
    pub allowed: f64,
    pub period: Duration,
    pub factor: f64,
    /// Percent of the period's budget.
    pub max_budget: f64,
    /// The e-value at which the evidence of burning too fast decides.
    pub threshold: f64,
}

impl Settings {
    pub fn of(spec: &SloBurnRateProvider) -> Result<Settings, BurnRateError> {
        if !(spec.objective > 0.0 && spec.objective < 100.0) {
            return Err(BurnRateError::Objective(spec.objective));
        }
        let period = match &spec.period {
            Some(p) => {
                parse_duration(&IntOrString::String(p.clone())).map_err(|e| BurnRateError::Period(e.to_string()))?
            }
            None => DEFAULT_PERIOD,
        };
        if period.is_zero() {
            return Err(BurnRateError::Period("must be more than 0".into()));
        }
        let max_budget = match &spec.max_budget_spent {
            None => DEFAULT_BUDGET_PERCENT,
            Some(IntOrString::Int(n)) => *n as f64,
            Some(IntOrString::String(s)) => s
                .trim()
                .trim_end_matches('%')
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0)
                .ok_or_else(|| BurnRateError::Budget(s.clone()))?,
        };
        Ok(Settings {
            allowed: 1.0 - spec.objective / 100.0,
            period,
            factor: spec.factor.unwrap_or(DEFAULT_FACTOR),
            max_budget,
            threshold: 1.0 / (1.0 - spec.confidence.unwrap_or(DEFAULT_CONFIDENCE).clamp(0.5, 0.999_999)),
        })
    }
}

/// The short window for evidence that began at `since`: a twelfth of the time so far, at least
/// [`MIN_SHORT`].
pub fn short_window(since: Timestamp, now: Timestamp) -> Duration {
    let long = now.duration_since(since).unsigned_abs();
    (long / 12).max(MIN_SHORT)
}

/// One look: the canary's and stable's counters now, and the canary's a short window ago.
#[derive(Debug, Clone, Copy)]
pub struct Look<'a> {
    pub state: Option<&'a EvidenceState>,
    pub carried: bool,
    pub canary: EventCounts,
    pub stable: EventCounts,
    /// The canary's counters at `now - short_window(...)`; `None` before it had any.
    pub canary_before: Option<EventCounts>,
    pub now: Timestamp,
}

/// When the evidence a look at `metric` goes on from began (now, for the first): the short
/// window ends there.
pub fn evidence_since(
    (previous, carried): (Option<&MetricResult>, Option<&EvidenceState>),
    now: Timestamp,
) -> Timestamp {
    let (state, _) = super::compare::evidence_for(previous, carried);
    state.map_or(now, |s| s.since.0)
}

/// A look for `metric`, as the AnalysisRun controller records it.
pub fn look_outcome(
    metric: &Metric,
    (previous, carried): (Option<&MetricResult>, Option<&EvidenceState>),
    (canary, stable): (EventCounts, EventCounts),
    canary_before: Option<EventCounts>,
    now: Timestamp,
) -> Outcome {
    let Some(spec) = &metric.provider.slo_burn_rate else {
        return Outcome::Error("not a sloBurnRate metric".into());
    };
    let settings = match Settings::of(spec) {
        Ok(s) => s,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let (state, carried) = super::compare::evidence_for(previous, carried);
    if (state.is_none() || carried)
        && let Err(e) = first_reading(canary, stable)
    {
        return Outcome::Error(e.to_string());
    }
    judge(
        &settings,
        Look {
            state,
            carried,
            canary,
            stable,
            canary_before,
            now,
        },
    )
    .into_outcome()
}

/// The e-value that `c` came from an error ratio above `limit`: the mean over [`FASTER`] of the
/// binomial likelihood ratios, each weighed down by the `dispersion` of bad events (clusters of
/// them are fewer independent events). A product over intervals of the same ratios is the ratio
/// of the sums, so the counts so far are all it needs.
pub fn e_faster(c: EventCounts, limit: f64, dispersion: f64) -> f64 {
    if c.total <= 0.0 || limit <= 0.0 || limit >= 1.0 {
        return 1.0;
    }
    let log_ratio = |p1: f64| {
        let good = c.total - c.bad;
        let bad_term = if c.bad > 0.0 { c.bad * (p1 / limit).ln() } else { 0.0 };
        let good_term = if good > 0.0 {
            good * ((1.0 - p1) / (1.0 - limit)).ln()
        } else {
            0.0
        };
        bad_term + good_term
    };
    let logs: Vec<f64> = FASTER
        .iter()
        .map(|r| log_ratio((limit * r).min(0.999_999)) / dispersion.max(1.0))
        .collect();
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (max + (logs.iter().map(|l| (l - max).exp()).sum::<f64>() / logs.len() as f64).ln()).exp()
}

fn burn(c: EventCounts, allowed: f64) -> Option<f64> {
    (c.total > 0.0).then(|| c.bad / c.total / allowed)
}

pub fn judge(settings: &Settings, look: Look) -> Judgement {
    let now = Time(look.now);
    let before = look.state.filter(|s| s.reading.len() == 2 && s.counted.len() == 2);
    let counted_before = before.map_or_else(|| vec![EventCounts::default(); 2], |s| s.counted.clone());
    let since = before.map_or_else(|| now.clone(), |s| s.since.clone());
    let fresh = before.filter(|_| !look.carried);
    let (canary, stable) = match fresh {
        Some(p) => match served_since(p, look.canary, look.stable) {
            Ok(served) => served,
            Err(e) => return super::compare::refused(p, &e, look.canary, look.stable),
        },
        None => Default::default(),
    };
    // How clustered bad events are, from how they split between the versions (as `compare`).
    let mut dispersion = before.map_or_else(Dispersion::default, Dispersion::of);
    if fresh.is_some() {
        let earlier = (counted_before[0].into(), counted_before[1].into());
        dispersion.add_split(canary.into(), stable.into(), earlier);
    }
    let state = EvidenceState {
        reading: vec![look.canary, look.stable],
        counted: vec![add(counted_before[0], canary), add(counted_before[1], stable)],
        counted_in_run: fresh.map_or(0.0, |p| p.counted_in_run) + canary.total,
        log_worse: Vec::new(),
        log_not_worse: Vec::new(),
        dispersion_sum: dispersion.sum,
        dispersion_intervals: dispersion.intervals,
        dropped: Vec::new(),
        since: since.clone(),
        read_at: now,
        passed: false,
    };
    let long = state.counted[0];
    // The short window's requests: since `canary_before`, never more than the long window's.
    // A short window whose counters cannot be counted is no evidence of burning fast.
    let short = match look.canary_before {
        Some(b) => served("canary", b, look.canary, None).unwrap_or_default(),
        None => long,
    };
    let short = EventCounts {
        bad: short.bad.min(long.bad),
        total: short.total.min(long.total),
    };
    let elapsed = look.now.duration_since(since.0).as_secs_f64();
    let all_requests = long.total + state.counted[1].total;
    let spent = (elapsed > 0.0 && all_requests > 0.0).then(|| {
        let rate = all_requests / elapsed;
        100.0 * long.bad / (settings.allowed * rate * settings.period.as_secs_f64())
    });
    let e = e_faster(long, settings.factor * settings.allowed, dispersion.factor());
    let comparison = Comparison {
        canary: long,
        e_value: Some(e),
        threshold: Some(settings.threshold),
        burn_rate_short: burn(short, settings.allowed),
        burn_rate_long: burn(long, settings.allowed),
        budget_spent: spent,
        ..Default::default()
    };
    let rates = format!(
        "canary {} ({}/{}), burn rate {} short, {} long (factor {}, e-value {} {} {}), {}% of the budget spent (max {}%)",
        percent_text(long.bad, long.total),
        count_text(long.bad),
        count_text(long.total),
        comparison.burn_rate_short.map_or("-".into(), |b| significant(b, 2)),
        comparison.burn_rate_long.map_or("-".into(), |b| significant(b, 2)),
        significant(settings.factor, 3),
        significant(e, 2),
        if e >= settings.threshold { ">=" } else { "<" },
        significant(settings.threshold, 3),
        spent.map_or("0".into(), |s| significant(s, 2)),
        significant(settings.max_budget, 3),
    );
    let short_burning = burn(short, settings.allowed).is_some_and(|b| b > settings.factor);
    let (phase, verdict) = if fresh.is_none() {
        (AnalysisPhase::NoData, "counting requests from now")
    } else if spent.is_some_and(|s| s > settings.max_budget) {
        (
            AnalysisPhase::Failed,
            "the canary spent more of the error budget than allowed",
        )
    } else if short_burning && e >= settings.threshold {
        (AnalysisPhase::Failed, "burning the error budget too fast")
    } else if canary.total <= 0.0 {
        (AnalysisPhase::NoData, "no new requests to the canary")
    } else {
        (AnalysisPhase::Successful, "within the objective")
    };
    let value = comparison
        .burn_rate_long
        .map_or_else(|| "-".to_string(), |b| significant(b, 3));
    Judgement {
        phase,
        value,
        message: format!("{rates}: {verdict}"),
        comparison,
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(bad: f64, total: f64) -> EventCounts {
        EventCounts { bad, total }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap_or_default()
    }

    fn settings(objective: f64, factor: f64) -> Settings {
        Settings::of(&SloBurnRateProvider {
            objective,
            factor: Some(factor),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn start() -> EvidenceState {
        judge(
            &settings(99.9, 14.4),
            Look {
                state: None,
                carried: false,
                canary: c(0.0, 0.0),
                stable: c(0.0, 0.0),
                canary_before: None,
                now: at(0),
            },
        )
        .state
    }

    #[test]
    fn an_outage_of_both_versions_fails_on_both_windows() {
        // 5% errors against 99.9%: a burn rate of 50.
        let j = judge(
            &settings(99.9, 14.4),
            Look {
                state: Some(&start()),
                carried: false,
                canary: c(50.0, 1000.0),
                stable: c(950.0, 19_000.0),
                canary_before: Some(c(20.0, 400.0)),
                now: at(120),
            },
        );
        assert_eq!(j.phase, AnalysisPhase::Failed, "{}", j.message);
        assert!((j.comparison.burn_rate_long.unwrap_or_default() - 50.0).abs() < 1e-9);
        assert!((j.comparison.burn_rate_short.unwrap_or_default() - 50.0).abs() < 1e-9);
        assert!(j.message.contains("burn rate 50 short, 50 long"), "{}", j.message);
        assert!(j.comparison.e_value.unwrap_or_default() >= 1000.0, "{}", j.message);
    }

    #[test]
    fn a_healthy_canary_and_a_lone_error_pass() {
        let healthy = judge(
            &settings(99.9, 14.4),
            Look {
                state: Some(&start()),
                carried: false,
                canary: c(1.0, 10_000.0),
                stable: c(10.0, 100_000.0),
                canary_before: Some(c(0.0, 9_000.0)),
                now: at(600),
            },
        );
        assert_eq!(healthy.phase, AnalysisPhase::Successful, "{}", healthy.message);
        // One error in three requests burns at 333x, but one error is not an outage.
        let lone = judge(
            &settings(99.9, 14.4),
            Look {
                state: Some(&start()),
                carried: false,
                canary: c(1.0, 3.0),
                stable: c(0.0, 60.0),
                canary_before: None,
                now: at(10),
            },
        );
        assert_eq!(lone.phase, AnalysisPhase::Successful, "{}", lone.message);
    }

    #[test]
    fn the_budget_caps_a_bad_canary_exposure() {
        // 99.9% over 30 days at 100 rps: a budget of 259,200 bad requests; 1% is 2,592.
        let s = settings(99.9, 1e9);
        let j = judge(
            &s,
            Look {
                state: Some(&start()),
                carried: false,
                canary: c(3000.0, 3000.0),
                stable: c(0.0, 57_000.0),
                canary_before: Some(c(2900.0, 2900.0)),
                now: at(600),
            },
        );
        let spent = j.comparison.budget_spent.unwrap_or_default();
        assert!((spent - 100.0 * 3000.0 / 259_200.0).abs() < 1e-6, "{spent}");
        assert_eq!(j.phase, AnalysisPhase::Failed, "{}", j.message);
    }

    #[test]
    fn the_evidence_of_burning_too_fast_worked_by_hand() {
        // 10 bad of 100 against a limit of 5%: for 2x (10%), ln LR = 10 ln 2 + 90 ln(0.9/0.95).
        let one = |r: f64| {
            let p1 = 0.05 * r;
            (10.0 * (p1 / 0.05).ln() + 90.0 * ((1.0 - p1) / 0.95).ln()).exp()
        };
        let expected = FASTER.iter().map(|r| one(*r)).sum::<f64>() / FASTER.len() as f64;
        let e = e_faster(
            EventCounts {
                bad: 10.0,
                total: 100.0,
            },
            0.05,
            1.0,
        );
        assert!((e - expected).abs() < 1e-9 * expected, "{e} vs {expected}");
        // Bad events in clusters of 5: each log-likelihood ratio a fifth.
        let clustered = FASTER.iter().map(|r| one(*r).ln() / 5.0).map(f64::exp).sum::<f64>() / FASTER.len() as f64;
        let e5 = e_faster(c(10.0, 100.0), 0.05, 5.0);
        assert!((e5 - clustered).abs() < 1e-9 * clustered, "{e5} vs {clustered}");
        // At the limit exactly, no evidence builds up.
        assert!(
            e_faster(
                EventCounts {
                    bad: 50.0,
                    total: 1000.0
                },
                0.05,
                1.0
            ) < 1.0
        );
    }

    #[test]
    fn windows_and_settings() {
        assert_eq!(short_window(at(0), at(30)), MIN_SHORT);
        assert_eq!(short_window(at(0), at(3600)), Duration::from_secs(300));
        assert!(matches!(
            Settings::of(&SloBurnRateProvider {
                objective: 100.0,
                ..Default::default()
            }),
            Err(BurnRateError::Objective(_))
        ));
        let s = Settings::of(&SloBurnRateProvider {
            objective: 99.0,
            max_budget_spent: Some(IntOrString::String("2.5%".into())),
            ..Default::default()
        });
        assert_eq!(s.map(|s| s.max_budget), Ok(2.5));
    }
}
