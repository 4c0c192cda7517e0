//! The judges `make decisions` runs, each through a whole release: Serin's and a threshold
//! template through Serin's own analysis code (the functions the AnalysisRun controller calls),
//! Flagger's checks, a Kayenta-style judge, and the likelihood-ratio test that knows the truth.

use crate::kayenta;
use crate::scenarios::Scenario;
use crate::traffic::{Counters, TICK, Traffic};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rand::rngs::StdRng;
use serin::analysis::condition::{QueryResult, verdict};
use serin::analysis::evidence::{Counts, interval_log_ratio};
use serin::analysis::verdict::{Outcome, Rules, record, run_phase};
use serin::analysis::{burn_rate, compare};
use serin::crd::analysis::{
    AnalysisPhase, AnalysisRunSpec, CompareProvider, EvidenceState, Metric, MetricProvider, MetricResult,
    SloBurnRateProvider,
};

pub const STEP_SECONDS: i64 = 300;
pub const WEIGHTS: [f64; 4] = [0.05, 0.25, 0.5, 1.0];

#[derive(Clone, Copy, PartialEq)]
pub enum End {
    RolledBack { step: usize },
    Promoted,
    Inconclusive,
}

pub struct Release {
    pub end: End,
    pub seconds: i64,
}

fn metric(name: &str, provider: MetricProvider, count: i32, interval: &str) -> Metric {
    Metric {
        name: name.into(),
        interval: Some(IntOrString::String(interval.into())),
        count: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(count)),
        provider,
        ..Default::default()
    }
}

/// The judge's run: errors and slow requests against stable, and the burn-rate guardrail.
pub fn judge_spec() -> AnalysisRunSpec {
    let compare = |bad: &str| MetricProvider {
        compare: Some(CompareProvider {
            bad: bad.into(),
            total: "total".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let slo = MetricProvider {
        slo_burn_rate: Some(SloBurnRateProvider {
            bad: "errors".into(),
            total: "total".into(),
            objective: 99.0,
            factor: Some(3.0),
            ..Default::default()
        }),
        ..Default::default()
    };
    AnalysisRunSpec {
        metrics: vec![
            metric("errors-vs-stable", compare("errors"), 30, "10s"),
            metric("latency-vs-stable", compare("slow"), 30, "10s"),
            metric("slo-burn-rate", slo, 30, "10s"),
        ],
        ..Default::default()
    }
}

/// Argo Rollouts' documented style: the error ratio over the last minute, `result < errors_below`
/// (`0.01` in its docs).
pub fn threshold_spec(errors_below: f64) -> AnalysisRunSpec {
    let m = |name: &str, condition: &str| Metric {
        success_condition: Some(condition.into()),
        failure_limit: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0)),
        ..metric(
            name,
            MetricProvider {
                prometheus: Some(Default::default()),
                ..Default::default()
            },
            5,
            "1m",
        )
    };
    AnalysisRunSpec {
        metrics: vec![
            m("error-rate", &format!("result < {errors_below}")),
            m("slow-share", "result < 0.1"),
        ],
        ..Default::default()
    }
}

fn ratio_over(now: Counters, before: Counters, slow: bool) -> QueryResult {
    let total = now.total - before.total;
    let bad = if slow {
        now.slow - before.slow
    } else {
        now.errors - before.errors
    };
    if total <= 0.0 {
        QueryResult::Empty
    } else {
        QueryResult::Scalar(bad / total)
    }
}

fn judged(metric: &Metric, r: QueryResult) -> Outcome {
    if r.is_no_data() {
        return Outcome::NoData { what: "query".into() };
    }
    match verdict(metric, &r) {
        Ok((phase, why)) => Outcome::Judged {
            value: Some(r.display()),
            phase,
            reason: why.describe(metric),
        },
        Err(e) => Outcome::Error(e.to_string()),
    }
}

/// One step's run of the judge or the threshold template; the judge's evidence carries on.
fn step_run(
    t: &mut Traffic,
    spec: &AnalysisRunSpec,
    weight: f64,
    carried: &mut Vec<(String, EvidenceState)>,
) -> AnalysisPhase {
    let mut results: Vec<MetricResult> = spec
        .metrics
        .iter()
        .map(|m| MetricResult {
            name: m.name.clone(),
            phase: AnalysisPhase::Running,
            ..Default::default()
        })
        .collect();
    let interval_ticks = |m: &Metric| match &m.interval {
        Some(IntOrString::String(s)) if s == "1m" => 6,
        _ => 1,
    };
    let start = t.tick;
    // Each metric's first look is at the start of the step, then one per interval.
    loop {
        let elapsed = t.tick - start;
        for (i, m) in spec.metrics.iter().enumerate() {
            if results[i].phase.is_finished() || elapsed % interval_ticks(m) != 0 {
                continue;
            }
            let now = t.now();
            let previous = Some(&results[i]);
            let carry = carried.iter().find(|(n, _)| *n == m.name).map(|(_, e)| e);
            let slow = m.name.contains("latency") || m.name.contains("slow");
            let outcome = if m.provider.compare.is_some() {
                let (c, s) = if slow {
                    (t.canary.slow(), t.stable.slow())
                } else {
                    (t.canary.errors(), t.stable.errors())
                };
                compare::look_outcome(m, spec, (previous, carry), c, s, now)
            } else if m.provider.slo_burn_rate.is_some() {
                let since = burn_rate::evidence_since((previous, carry), now);
                let short = burn_rate::short_window(since, now).as_secs() as i64;
                let before = t.ago(short, false).errors();
                let counts = (t.canary.errors(), t.stable.errors());
                burn_rate::look_outcome(m, (previous, carry), counts, Some(before), now)
            } else {
                judged(m, ratio_over(t.canary, t.ago(60, false), slow))
            };
            record(&mut results[i], m, Rules::default(), now, now, outcome);
        }
        let phase = run_phase(&results, spec.metrics.len());
        if phase == AnalysisPhase::Failed && std::env::var_os("DECISIONS_DEBUG").is_some() {
            for r in results.iter().filter(|r| r.phase == AnalysisPhase::Failed) {
                eprintln!(
                    "{} at weight {weight}: {}",
                    r.name,
                    r.message.clone().unwrap_or_default()
                );
            }
        }
        if phase.is_finished() || t.tick - start > STEP_SECONDS / TICK {
            for r in &results {
                if let Some(e) = &r.evidence {
                    carried.retain(|(n, _)| *n != r.name);
                    carried.push((r.name.clone(), e.clone()));
                }
            }
            return if phase.is_finished() {
                phase
            } else {
                AnalysisPhase::Inconclusive
            };
        }
        t.advance(weight);
    }
}

pub fn release_with_runs(rng: &mut StdRng, scenario: Scenario, spec: &AnalysisRunSpec) -> Release {
    let mut carried = Vec::new();
    release_by_steps(rng, scenario, |t, w| {
        // The new weight takes effect; the step's analysis starts with it.
        t.advance(w);
        step_run(t, spec, w, &mut carried)
    })
}

/// Flagger: one check a minute, five per step; any failed check counts, and five over the
/// release roll it back. No requests in the minute ("no values found") fails the check.
/// `max_errors` is one minus the success-rate threshold (`0.01` for Flagger's 99).
pub fn release_flagger(rng: &mut StdRng, scenario: Scenario, max_errors: f64) -> Release {
    let mut t = Traffic::new(rng, scenario);
    let mut failed = 0;
    for (step, w) in WEIGHTS.iter().enumerate() {
        for _ in 0..5 {
            for _ in 0..6 {
                t.advance(*w);
            }
            let before = t.ago(60, false);
            let total = t.canary.total - before.total;
            let ok = total > 0.0
                && (t.canary.errors - before.errors) / total <= max_errors
                && (t.canary.slow - before.slow) / total <= 0.1;
            if !ok {
                failed += 1;
            }
            if failed >= 5 {
                return Release {
                    end: End::RolledBack { step },
                    seconds: t.tick * TICK,
                };
            }
        }
    }
    Release {
        end: End::Promoted,
        seconds: t.tick * TICK,
    }
}

/// A release judged one step at a time by `step`, which sees the traffic at the step's weight and
/// says how the step ended.
fn release_by_steps(
    rng: &mut StdRng,
    scenario: Scenario,
    mut step: impl FnMut(&mut Traffic, f64) -> AnalysisPhase,
) -> Release {
    let mut t = Traffic::new(rng, scenario);
    for (i, w) in WEIGHTS.iter().enumerate() {
        let phase = step(&mut t, *w);
        let seconds = t.tick * TICK;
        match phase {
            AnalysisPhase::Successful => {}
            AnalysisPhase::Failed => {
                return Release {
                    end: End::RolledBack { step: i },
                    seconds,
                };
            }
            _ => {
                return Release {
                    end: End::Inconclusive,
                    seconds,
                };
            }
        }
    }
    Release {
        end: End::Promoted,
        seconds: t.tick * TICK,
    }
}

/// Kayenta through Argo's provider: one judgement at the end of each step, over the step's
/// 10-second error and slow-request ratios.
pub fn release_kayenta(rng: &mut StdRng, scenario: Scenario) -> Release {
    release_by_steps(rng, scenario, |t, w| {
        let start = t.tick;
        for _ in 0..STEP_SECONDS / TICK {
            t.advance(w);
        }
        let ticks = t.ticks_since(start);
        let ratios = |side: fn(&(Counters, Counters)) -> Counters, slow: bool| -> Vec<f64> {
            ticks
                .iter()
                .map(side)
                .filter(|c| c.total > 0.0)
                .map(|c| if slow { c.slow / c.total } else { c.errors / c.total })
                .collect()
        };
        let canary = |x: &(Counters, Counters)| x.0;
        let stable = |x: &(Counters, Counters)| x.1;
        let metrics = [
            (ratios(canary, false), ratios(stable, false)),
            (ratios(canary, true), ratios(stable, true)),
        ];
        let score = kayenta::score(&metrics);
        if score >= kayenta::PASS {
            AnalysisPhase::Successful
        } else if score < kayenta::MARGINAL {
            AnalysisPhase::Failed
        } else {
            AnalysisPhase::Inconclusive
        }
    })
}

/// The ceiling: the likelihood-ratio test of exactly 2x against `maxIncrease` 1.2 on errors, at
/// 1% and looked at every 10 s. It knows the ratio a 2x regression has and, when `clusters`, how
/// many errors come together (its evidence is then that of the clusters); it promotes whatever
/// it has not rolled back.
pub fn release_oracle(rng: &mut StdRng, scenario: Scenario, clusters: bool) -> Release {
    let per_event = if clusters { 1.0 / scenario.cluster } else { 1.0 };
    let mut log_e = 0.0;
    release_by_steps(rng, scenario, |t, w| {
        for _ in 0..STEP_SECONDS / TICK {
            let before = (t.canary, t.stable);
            t.advance(w);
            let count = |now: Counters, then: Counters| {
                let c = now.since(then);
                Counts {
                    bad: c.errors,
                    total: c.total,
                }
            };
            log_e += per_event * interval_log_ratio(count(t.canary, before.0), count(t.stable, before.1), 2.0, 1.2);
            if log_e >= 100f64.ln() {
                return AnalysisPhase::Failed;
            }
        }
        AnalysisPhase::Successful
    })
}
