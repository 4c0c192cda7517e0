//! The `compare` judge: one look at both versions' counters, added to the evidence so far, and
//! what it comes to. Pure: the caller reads the counters and keeps the state.
//!
//! The first look of a run only reads the counters: requests are counted from there, so that each
//! interval is served at one step's weight (an interval spanning a weight change would mix two
//! request splits). The evidence itself (the e-process) carries from run to run for one version.

use super::counting::{
    CounterError, add, count_text, first_reading, percent_text, ratio_text, refused_state, served_since, significant,
};
use super::dispersion::Dispersion;
use super::evidence::{Counts, Evidence, ratio};
use super::verdict::{Outcome, count_of};
use crate::crd::analysis::{
    AnalysisPhase, AnalysisRunSpec, CompareProvider, Comparison, EventCounts, EvidenceState, Metric, MetricResult,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use statrs::distribution::{ContinuousCDF, Normal};

pub const DEFAULT_MAX_INCREASE: f64 = 1.2;
pub const DEFAULT_CONFIDENCE: f64 = 0.99;
pub const DEFAULT_MIN_EVENTS: i64 = 100;

/// How a `compare` metric decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub max_increase: f64,
    /// The chance of a false rollback this metric may take: `1 - confidence`, shared out among the
    /// run's deciding `compare` metrics (e-Bonferroni), so that the run's bound is `1 - confidence`.
    pub alpha: f64,
    pub min_events: f64,
}

impl Settings {
    /// The settings of `spec`, one of `deciding` comparisons in its run.
    pub fn of(spec: &CompareProvider, deciding: usize) -> Settings {
        let confidence = spec.confidence.unwrap_or(DEFAULT_CONFIDENCE).clamp(0.5, 0.999_999);
        Settings {
            max_increase: spec.max_increase.unwrap_or(DEFAULT_MAX_INCREASE).max(1.0),
            alpha: (1.0 - confidence) / deciding.max(1) as f64,
            min_events: spec.min_events.unwrap_or(DEFAULT_MIN_EVENTS).max(0) as f64,
        }
    }

    /// The e-value at which the evidence decides.
    pub fn threshold(&self) -> f64 {
        1.0 / self.alpha
    }
}

/// One look: the counters of the canary and of stable as read now.
#[derive(Debug, Clone, Copy)]
pub struct Look<'a> {
    /// The evidence so far: this run's, or carried from an earlier run for the same version.
    pub state: Option<&'a EvidenceState>,
    /// Whether `state` is from an earlier run (its counters are not this run's to count from).
    pub carried: bool,
    pub canary: EventCounts,
    pub stable: EventCounts,
    pub now: Timestamp,
    /// Whether this look uses up the metric's `count`.
    pub last: bool,
}

/// What a look came to (of `compare` or `sloBurnRate`).
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// `NoData` while nothing new was served to the canary (a look that only reads the counters).
    pub phase: AnalysisPhase,
    pub value: String,
    pub message: String,
    pub comparison: Comparison,
    pub state: EvidenceState,
}

fn counts(c: EventCounts) -> Counts {
    c.into()
}

fn evidence_of(state: &EvidenceState) -> Evidence {
    let mut e = Evidence::default();
    // Evidence written by another version of Serin, with another grid, starts again.
    if state.log_worse.len() == e.worse.len() && state.log_not_worse.len() == e.not_worse.len() {
        e.worse = state.log_worse.clone();
        e.not_worse = state.log_not_worse.clone();
        e.dispersion = Dispersion::of(state);
    }
    e
}

/// The canary's rate over stable's, with an interval at `confidence` on each side: a Wilson
/// interval on the canary's share of bad requests, mapped back through its share of requests.
/// Bad events clustered by `dispersion` count as that many times fewer.
pub fn ratio_interval(
    canary: EventCounts,
    stable: EventCounts,
    alpha: f64,
    dispersion: f64,
) -> (Option<f64>, Option<f64>) {
    let n = (canary.bad + stable.bad) / dispersion.max(1.0);
    let all = canary.total + stable.total;
    if n <= 0.0 || canary.total <= 0.0 || stable.total <= 0.0 {
        return (None, None);
    }
    let rho = canary.total / all;
    let z = Normal::standard().inverse_cdf(1.0 - alpha.clamp(1e-12, 0.5));
    let p = canary.bad / (canary.bad + stable.bad);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    let to_ratio =
        |theta: f64| -> Option<f64> { (theta < 1.0).then(|| (theta * (1.0 - rho) / (rho * (1.0 - theta))).max(0.0)) };
    (to_ratio((centre - half).max(0.0)), to_ratio(centre + half))
}

/// The one line that explains a look: `canary 2.1% (84/4,000) vs stable 1.0% (790/79,000):
/// ratio 2.1 [1.6, 2.7], e-value 310 >= 100: regression`.
fn explain(c: &Comparison, settings: &Settings, verdict: &str) -> String {
    let side = |x: EventCounts| {
        format!(
            "{} ({}/{})",
            percent_text(x.bad, x.total),
            count_text(x.bad),
            count_text(x.total)
        )
    };
    let stable = c.stable.unwrap_or_default();
    let ratio = match (c.ratio, c.ratio_low, c.ratio_high) {
        (Some(r), lo, hi) => format!(
            "ratio {} [{}, {}]",
            ratio_text(r),
            lo.map_or("0".into(), ratio_text),
            hi.map_or("inf".into(), ratio_text)
        ),
        (None, ..) => "ratio -".to_string(),
    };
    let clustered = match c.dispersion {
        Some(d) => {
            let d = significant(d, 2);
            format!(", bad events come in clusters (dispersion {d}: each counts as 1/{d})")
        }
        None => String::new(),
    };
    let e = c.e_value.unwrap_or(1.0);
    let relation = if e >= settings.threshold() { ">=" } else { "<" };
    format!(
        "canary {} vs stable {}: {ratio}{clustered}, e-value {} {relation} {}: {verdict}",
        side(c.canary),
        side(stable),
        significant(e, 2),
        significant(settings.threshold(), 3)
    )
}

/// A look at both versions' counters, and the evidence it leaves.
pub fn judge(settings: &Settings, look: Look) -> Judgement {
    let now = Time(look.now);
    let reading = vec![look.canary, look.stable];
    let before = look.state.filter(|s| s.reading.len() == 2);
    let counted_before = before.map_or_else(|| vec![EventCounts::default(); 2], |s| s.counted.clone());
    let mut evidence = before.map(evidence_of).unwrap_or_default();
    let since = before.map_or_else(|| now.clone(), |s| s.since.clone());
    let fresh = match before {
        Some(s) if !look.carried => Some(s),
        _ => None,
    };
    // The first look of a run only reads the counters: nothing is counted yet.
    let (canary, stable) = match fresh {
        Some(p) => match served_since(p, look.canary, look.stable) {
            Ok(served) => served,
            Err(e) => return refused(p, &e, look.canary, look.stable),
        },
        None => Default::default(),
    };
    let before = (counts(counted_before[0]), counts(counted_before[1]));
    evidence.add(counts(canary), counts(stable), settings.max_increase, before);
    let mut state = EvidenceState {
        reading,
        counted: vec![add(counted_before[0], canary), add(counted_before[1], stable)],
        counted_in_run: fresh.map_or(0.0, |p| p.counted_in_run) + canary.total,
        log_worse: evidence.worse.clone(),
        log_not_worse: evidence.not_worse.clone(),
        dispersion_sum: evidence.dispersion.sum,
        dispersion_intervals: evidence.dispersion.intervals,
        dropped: Vec::new(),
        since,
        read_at: now,
        passed: false,
    };
    let comparison = comparison_of(&state, &evidence, settings);
    let Some(previous) = fresh else {
        let message = format!(
            "counting requests from now: {}",
            explain(&comparison, settings, "no evidence yet")
        );
        return Judgement {
            phase: AnalysisPhase::NoData,
            value: "no data".into(),
            message,
            comparison,
            state,
        };
    };
    let enough = |c: &EventCounts| c.total >= settings.min_events;
    let enough_both = state.counted.iter().all(enough);
    let threshold = settings.threshold();
    let (phase, verdict) = if evidence.e_worse() >= threshold {
        (AnalysisPhase::Failed, "regression".to_string())
    } else if canary.total <= 0.0 {
        (
            AnalysisPhase::NoData,
            format!("no new requests to the canary since {}", previous.read_at.0),
        )
    } else if evidence.e_not_worse() >= threshold && enough_both && state.counted_in_run >= settings.min_events {
        state.passed = true;
        (
            AnalysisPhase::Successful,
            format!(
                "no worse than {}x stable (evidence {} >= {})",
                significant(settings.max_increase, 3),
                significant(evidence.e_not_worse(), 2),
                significant(threshold, 3)
            ),
        )
    } else if stable.total <= 0.0 && enough_both {
        // The canary takes all the traffic (the 100% step): nothing is left to compare.
        state.passed = true;
        (
            AnalysisPhase::Successful,
            "stable serves no requests now: no evidence of a regression while it did".to_string(),
        )
    } else if stable.total <= 0.0 {
        (
            AnalysisPhase::Inconclusive,
            format!(
                "stable serves no requests, and too few were compared (minEvents {} per version)",
                count_text(settings.min_events)
            ),
        )
    } else if look.last && !enough_both {
        (
            AnalysisPhase::Inconclusive,
            format!(
                "too few requests to tell (minEvents {} per version)",
                count_text(settings.min_events)
            ),
        )
    } else if look.last {
        (AnalysisPhase::Successful, "no evidence of a regression".to_string())
    } else {
        (AnalysisPhase::Successful, "no evidence of a regression yet".to_string())
    };
    let value = comparison.ratio.map_or_else(|| "-".to_string(), |r| significant(r, 3));
    Judgement {
        phase,
        value,
        message: explain(&comparison, settings, &verdict),
        comparison,
        state,
    }
}

/// A look whose counters no counter could show: an Error, nothing counted, the evidence kept.
pub fn refused(previous: &EvidenceState, error: &CounterError, canary: EventCounts, stable: EventCounts) -> Judgement {
    Judgement {
        phase: AnalysisPhase::Error,
        value: "-".into(),
        message: error.to_string(),
        comparison: Comparison {
            canary: previous.counted.first().copied().unwrap_or_default(),
            stable: previous.counted.get(1).copied(),
            ..Default::default()
        },
        state: refused_state(previous, error, canary, stable),
    }
}

/// The evidence a look goes on from: the metric's own in this run, else what an earlier run for
/// the same version left (`carried`), and which of the two it is.
pub fn evidence_for<'a>(
    previous: Option<&'a MetricResult>,
    carried: Option<&'a EvidenceState>,
) -> (Option<&'a EvidenceState>, bool) {
    match previous.and_then(|r| r.evidence.as_ref()) {
        Some(own) => (Some(own), false),
        None => (carried, carried.is_some()),
    }
}

/// The run's `compare` metrics that decide: their false-rollback bounds add up.
pub fn deciding_comparisons(spec: &AnalysisRunSpec) -> usize {
    spec.metrics
        .iter()
        .filter(|m| m.provider.compare.is_some() && !super::rules::rules_for(spec, &m.name).dry_run)
        .count()
}

/// A look for `metric` of the run `spec`, as the AnalysisRun controller records it: the counters
/// it read, judged with the evidence so far.
pub fn look_outcome(
    metric: &Metric,
    spec: &AnalysisRunSpec,
    (previous, carried): (Option<&MetricResult>, Option<&EvidenceState>),
    canary: EventCounts,
    stable: EventCounts,
    now: Timestamp,
) -> Outcome {
    let Some(provider) = &metric.provider.compare else {
        return Outcome::Error("not a compare metric".into());
    };
    let (state, carried) = evidence_for(previous, carried);
    if (state.is_none() || carried)
        && let Err(e) = first_reading(canary, stable)
    {
        return Outcome::Error(e.to_string());
    }
    let counted = previous.map_or(0, |r| r.count);
    let last = count_of(metric, spec.background == Some(true)).is_some_and(|n| counted + 1 >= n);
    let settings = Settings::of(provider, deciding_comparisons(spec));
    let j = judge(
        &settings,
        Look {
            state,
            carried,
            canary,
            stable,
            now,
            last,
        },
    );
    j.into_outcome()
}

impl Judgement {
    pub fn into_outcome(self) -> Outcome {
        Outcome::Compared {
            phase: self.phase,
            value: self.value,
            reason: self.message,
            comparison: Box::new(self.comparison),
            state: Box::new(self.state),
        }
    }
}

fn comparison_of(state: &EvidenceState, evidence: &Evidence, settings: &Settings) -> Comparison {
    let (canary, stable) = (state.counted[0], state.counted[1]);
    let dispersion = evidence.dispersion.factor();
    let (low, high) = ratio_interval(canary, stable, settings.alpha, dispersion);
    Comparison {
        canary,
        stable: Some(stable),
        ratio: ratio(counts(canary), counts(stable)),
        ratio_low: low,
        ratio_high: high,
        e_value: Some(evidence.e_worse()),
        e_value_not_worse: Some(evidence.e_not_worse()),
        threshold: Some(settings.threshold()),
        // Shown once it changes what the evidence is worth.
        dispersion: (dispersion >= 1.05).then_some(dispersion),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(bad: f64, total: f64) -> EventCounts {
        EventCounts { bad, total }
    }

    fn settings() -> Settings {
        Settings::of(
            &CompareProvider {
                max_increase: Some(1.0),
                min_events: Some(20),
                ..Default::default()
            },
            1,
        )
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap_or_default()
    }

    fn look(state: Option<&EvidenceState>, canary: EventCounts, stable: EventCounts, t: i64) -> Judgement {
        judge(
            &settings(),
            Look {
                state,
                carried: false,
                canary,
                stable,
                now: at(t),
                last: false,
            },
        )
    }

    #[test]
    fn the_first_look_counts_from_there_and_a_regression_is_called_with_its_evidence() {
        let first = look(None, c(100.0, 1000.0), c(50.0, 5000.0), 0);
        assert_eq!(first.phase, AnalysisPhase::NoData);
        assert!(
            first.message.starts_with("counting requests from now"),
            "{}",
            first.message
        );
        assert_eq!(first.comparison.canary, c(0.0, 0.0));
        // 84 of 4,000 against 790 of 79,000: twice the rate, on many events.
        let second = look(Some(&first.state), c(184.0, 5000.0), c(840.0, 84_000.0), 10);
        assert_eq!(second.phase, AnalysisPhase::Failed, "{}", second.message);
        assert_eq!(second.comparison.canary, c(84.0, 4000.0));
        assert_eq!(second.comparison.stable, Some(c(790.0, 79_000.0)));
        let r = second.comparison.ratio.unwrap_or_default();
        assert!((r - 2.1).abs() < 1e-9, "{r}");
        let (lo, hi) = (
            second.comparison.ratio_low.unwrap_or_default(),
            second.comparison.ratio_high.unwrap_or_default(),
        );
        assert!(lo > 1.4 && lo < 2.1 && hi > 2.1 && hi < 3.0, "[{lo}, {hi}]");
        assert!(
            second
                .message
                .starts_with("canary 2.1% (84/4,000) vs stable 1.0% (790/79,000): ratio 2.1 ["),
            "{}",
            second.message
        );
        assert!(second.message.ends_with(">= 100: regression"), "{}", second.message);
        assert!(second.comparison.e_value.unwrap_or_default() >= 100.0);
    }

    #[test]
    fn the_same_rate_is_no_regression_and_passes_at_the_end_only_with_enough_requests() {
        let first = look(None, c(0.0, 0.0), c(0.0, 0.0), 0);
        let mid = look(Some(&first.state), c(1.0, 100.0), c(10.0, 1000.0), 10);
        assert_eq!(mid.phase, AnalysisPhase::Successful);
        assert!(
            mid.message.ends_with("no evidence of a regression yet"),
            "{}",
            mid.message
        );
        let thin = judge(
            &settings(),
            Look {
                state: Some(&first.state),
                carried: false,
                canary: c(0.0, 10.0),
                stable: c(1.0, 100.0),
                now: at(10),
                last: true,
            },
        );
        assert_eq!(thin.phase, AnalysisPhase::Inconclusive, "{}", thin.message);
        assert!(thin.message.contains("too few requests"), "{}", thin.message);
        // Nothing served to the canary since the last look: no data, not a pass.
        let idle = look(Some(&mid.state), c(1.0, 100.0), c(12.0, 1100.0), 20);
        assert_eq!(idle.phase, AnalysisPhase::NoData, "{}", idle.message);
        assert_eq!(idle.state.counted[1], c(12.0, 1100.0), "stable's requests still count");
    }

    #[test]
    fn evidence_carries_to_the_next_run_but_counting_starts_afresh() {
        let first = look(None, c(0.0, 0.0), c(0.0, 0.0), 0);
        let seen = look(Some(&first.state), c(30.0, 1000.0), c(100.0, 10_000.0), 10);
        let e = seen.comparison.e_value.unwrap_or_default();
        assert!(e > 1.0, "{}", seen.message);
        // The next step's run: its first look keeps the evidence and the counts, and reads only.
        let next = judge(
            &settings(),
            Look {
                state: Some(&seen.state),
                carried: true,
                canary: c(500.0, 9000.0),
                stable: c(900.0, 90_000.0),
                now: at(60),
                last: false,
            },
        );
        assert_eq!(next.phase, AnalysisPhase::NoData);
        assert_eq!(next.comparison.e_value, Some(e));
        assert_eq!(next.state.counted, seen.state.counted);
        assert_eq!(next.state.since, first.state.since);
        assert_eq!(next.state.counted_in_run, 0.0);
    }

    #[test]
    fn early_promotion_needs_evidence_and_requests_in_this_run() {
        let s = Settings::of(
            &CompareProvider {
                max_increase: Some(1.5),
                min_events: Some(100),
                ..Default::default()
            },
            1,
        );
        let mut state = judge(
            &s,
            Look {
                state: None,
                carried: false,
                canary: c(0.0, 0.0),
                stable: c(0.0, 0.0),
                now: at(0),
                last: false,
            },
        )
        .state;
        let mut phase = AnalysisPhase::Running;
        for i in 1..=10 {
            let n = i as f64;
            let j = judge(
                &s,
                Look {
                    state: Some(&state),
                    carried: false,
                    canary: c(10.0 * n, 1000.0 * n),
                    stable: c(90.0 * n, 9000.0 * n),
                    now: at(10 * i),
                    last: false,
                },
            );
            state = j.state;
            phase = j.phase;
            if state.passed {
                break;
            }
        }
        assert!(state.passed, "{state:?}");
        assert_eq!(phase, AnalysisPhase::Successful);
    }

    #[test]
    fn counters_no_counter_could_show_are_errors_and_never_counted() {
        let first = look(None, c(10.0, 1000.0), c(100.0, 10_000.0), 0);
        let good = look(Some(&first.state), c(12.0, 1200.0), c(110.0, 11_000.0), 10);
        assert_eq!(good.phase, AnalysisPhase::Successful, "{}", good.message);
        // The canary's bad counter reads NaN: an Error, the last good reading kept.
        let nan = look(Some(&good.state), c(f64::NAN, 1400.0), c(120.0, 12_000.0), 20);
        assert_eq!(nan.phase, AnalysisPhase::Error);
        assert!(
            nan.message.starts_with("the canary's bad counter reads NaN"),
            "{}",
            nan.message
        );
        assert_eq!(nan.state.reading, good.state.reading);
        assert_eq!(nan.state.counted, good.state.counted);
        // Back, and counted from the last good reading: no restart counted twice.
        let back = look(Some(&nan.state), c(16.0, 1600.0), c(130.0, 13_000.0), 30);
        assert_eq!(back.state.counted[0], c(6.0, 600.0));
        assert_eq!(back.state.counted[1], c(30.0, 3000.0));
        // Stable's bad counter falls, but not to near zero: an Error, not a restart.
        let fell = look(Some(&back.state), c(18.0, 1800.0), c(60.0, 14_000.0), 40);
        assert_eq!(fell.phase, AnalysisPhase::Error);
        assert!(
            fell.message.contains("stable's bad counter went down from 130 to 60"),
            "{}",
            fell.message
        );
        assert_eq!(fell.state.counted, back.state.counted);
        assert_eq!(fell.state.dropped, vec![c(18.0, 1800.0), c(60.0, 14_000.0)]);
        // It holds and counts on from there: counted from the fall, the fall's interval not at all.
        let on = look(Some(&fell.state), c(20.0, 2000.0), c(70.0, 15_000.0), 50);
        assert_ne!(on.phase, AnalysisPhase::Error, "{}", on.message);
        assert_eq!(on.state.counted[1], c(40.0, 4000.0));
        assert!(on.state.dropped.is_empty());
        // The first look of a run refuses what no counter could show, and keeps nothing.
        let spec = AnalysisRunSpec {
            metrics: vec![Metric {
                name: "errors".into(),
                provider: crate::crd::analysis::MetricProvider {
                    compare: Some(CompareProvider::default()),
                    ..Default::default()
                },
                ..Default::default()
            }],
            ..Default::default()
        };
        let outcome = look_outcome(
            &spec.metrics[0],
            &spec,
            (None, None),
            c(-5.0, 100.0),
            c(1.0, 100.0),
            at(0),
        );
        assert!(
            matches!(&outcome, Outcome::Error(m) if m.starts_with("the canary's bad counter reads -5")),
            "{outcome:?}"
        );
    }

    #[test]
    fn shared_out_among_metrics() {
        let spec = CompareProvider::default();
        assert_eq!(Settings::of(&spec, 1).threshold().round(), 100.0);
        assert_eq!(Settings::of(&spec, 2).threshold().round(), 200.0);
        assert_eq!(Settings::of(&spec, 1).max_increase, DEFAULT_MAX_INCREASE);
    }
}
