//! `make decisions`: how often each judge is right. A seeded simulation of releases through the
//! default 5 → 25 → 50 → 100 schedule, no cluster: per 10 s, each version's requests (Poisson, at a
//! total of R requests/s split by the step's weight), its errors and its slow requests (binomial).
//! Three judges see the same data, through Serin's own analysis code (the functions the
//! AnalysisRun controller calls):
//! - `judge`: `compare` on errors and on slow requests against stable, plus `sloBurnRate`;
//! - `threshold`: an Argo-docs style template, `result < 0.01` on the error rate (and slow share
//!   under 10%) over each minute, `failureLimit` 0;
//! - `flagger`: success rate >= 99% (slow share <= 10%) per minute, rolled back after 5 failed
//!   checks over the release.
//!
//! Each step's analysis may take up to 5 minutes. Per scenario and judge it prints the share rolled
//! back, promoted and left inconclusive, with the median and p95 time to a decision; with
//! `--write-docs` the table goes to docs/decisions.md. The last line is
//! `decisions: judge_fp=… judge_detect_2x=… judge_promote_1_2x=… threshold_fp=… threshold_detect_2x=… flagger_fp=… flagger_detect_2x=…`.
//!
//! cargo bench --bench decisions -- [--releases 1000] [--seed 1] [--write-docs]

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Binomial, Distribution, Poisson};
use serin::analysis::condition::{QueryResult, verdict};
use serin::analysis::verdict::{Outcome, Rules, record, run_phase};
use serin::analysis::{burn_rate, compare};
use serin::crd::analysis::{
    AnalysisPhase, AnalysisRunSpec, CompareProvider, EventCounts, EvidenceState, Metric, MetricProvider, MetricResult,
    SloBurnRateProvider,
};
use std::fmt::Write;

const TICK: i64 = 10;
const STEP_SECONDS: i64 = 300;
const WEIGHTS: [f64; 4] = [0.05, 0.25, 0.5, 1.0];
const BASE_ERRORS: f64 = 0.01;
const BASE_SLOW: f64 = 0.05;

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    canary_errors: f64,
    stable_errors: f64,
    canary_slow: f64,
    rps: f64,
    /// The request rate swings 10x, minute by minute.
    bursty: bool,
}

fn scenarios(rps: f64) -> Vec<Scenario> {
    let s = |name, canary_errors, stable_errors, canary_slow, rps, bursty| Scenario {
        name,
        canary_errors,
        stable_errors,
        canary_slow,
        rps,
        bursty,
    };
    vec![
        s(
            "healthy (A/A, 1% errors)",
            BASE_ERRORS,
            BASE_ERRORS,
            BASE_SLOW,
            rps,
            false,
        ),
        s(
            "2x errors (2% vs 1%)",
            2.0 * BASE_ERRORS,
            BASE_ERRORS,
            BASE_SLOW,
            rps,
            false,
        ),
        s(
            "1.2x errors (inside the margin)",
            1.2 * BASE_ERRORS,
            BASE_ERRORS,
            BASE_SLOW,
            rps,
            false,
        ),
        s("1.5x errors", 1.5 * BASE_ERRORS, BASE_ERRORS, BASE_SLOW, rps, false),
        s(
            "slow requests +20 points (5% -> 25%)",
            BASE_ERRORS,
            BASE_ERRORS,
            BASE_SLOW + 0.2,
            rps,
            false,
        ),
        s("canary fails every request", 1.0, BASE_ERRORS, BASE_SLOW, rps, false),
        s("both versions at 5% errors", 0.05, 0.05, BASE_SLOW, rps, false),
        s(
            "healthy at 1 request/s",
            BASE_ERRORS,
            BASE_ERRORS,
            BASE_SLOW,
            1.0,
            false,
        ),
        s(
            "2x errors at 1 request/s",
            2.0 * BASE_ERRORS,
            BASE_ERRORS,
            BASE_SLOW,
            1.0,
            false,
        ),
        s(
            "healthy, bursty (10x swings)",
            BASE_ERRORS,
            BASE_ERRORS,
            BASE_SLOW,
            rps,
            true,
        ),
        s(
            "2x errors, bursty",
            2.0 * BASE_ERRORS,
            BASE_ERRORS,
            BASE_SLOW,
            rps,
            true,
        ),
        s(
            "2x errors at twice the traffic",
            2.0 * BASE_ERRORS,
            BASE_ERRORS,
            BASE_SLOW,
            2.0 * rps,
            false,
        ),
    ]
}

/// Cumulative counters of one version: requests, errors, slow requests.
#[derive(Clone, Copy, Default)]
struct Counters {
    total: f64,
    errors: f64,
    slow: f64,
}

impl Counters {
    fn errors(&self) -> EventCounts {
        EventCounts {
            bad: self.errors,
            total: self.total,
        }
    }
    fn slow(&self) -> EventCounts {
        EventCounts {
            bad: self.slow,
            total: self.total,
        }
    }
}

/// The traffic of one release, drawn tick by tick.
struct Traffic<'a> {
    rng: &'a mut StdRng,
    scenario: Scenario,
    canary: Counters,
    stable: Counters,
    /// The canary's counters at every tick, for windows.
    canary_history: Vec<Counters>,
    stable_history: Vec<Counters>,
    tick: i64,
}

fn poisson(rng: &mut StdRng, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    Poisson::new(mean).map_or(0.0, |p| p.sample(rng))
}

fn binomial(rng: &mut StdRng, n: f64, p: f64) -> f64 {
    Binomial::new(n as u64, p.clamp(0.0, 1.0)).map_or(0.0, |b| b.sample(rng) as f64)
}

impl<'a> Traffic<'a> {
    fn new(rng: &'a mut StdRng, scenario: Scenario) -> Self {
        Traffic {
            rng,
            scenario,
            canary: Counters::default(),
            stable: Counters::default(),
            canary_history: Vec::new(),
            stable_history: Vec::new(),
            tick: 0,
        }
    }

    fn advance(&mut self, weight: f64) {
        let s = self.scenario;
        let rps = if s.bursty {
            // 10x between the busy and the quiet minute, the same mean.
            if (self.tick * TICK / 60) % 2 == 0 {
                s.rps * 20.0 / 11.0
            } else {
                s.rps * 2.0 / 11.0
            }
        } else {
            s.rps
        };
        let n = (TICK as f64) * rps;
        let canary_n = poisson(self.rng, n * weight);
        let stable_n = poisson(self.rng, n * (1.0 - weight));
        let ce = binomial(self.rng, canary_n, s.canary_errors);
        let cs = binomial(self.rng, canary_n, s.canary_slow);
        let se = binomial(self.rng, stable_n, s.stable_errors);
        let ss = binomial(self.rng, stable_n, BASE_SLOW);
        self.canary.total += canary_n;
        self.canary.errors += ce;
        self.canary.slow += cs;
        self.stable.total += stable_n;
        self.stable.errors += se;
        self.stable.slow += ss;
        self.tick += 1;
        self.canary_history.push(self.canary);
        self.stable_history.push(self.stable);
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + self.tick * TICK).unwrap_or_default()
    }

    /// Counters `seconds` ago (zero before the release).
    fn ago(&self, seconds: i64, stable: bool) -> Counters {
        let back = (seconds / TICK) as usize;
        let history = if stable {
            &self.stable_history
        } else {
            &self.canary_history
        };
        history
            .len()
            .checked_sub(back + 1)
            .map_or_else(Counters::default, |i| history[i])
    }
}

#[derive(Clone, Copy, PartialEq)]
enum End {
    RolledBack { step: usize },
    Promoted,
    Inconclusive,
}

struct Release {
    end: End,
    seconds: i64,
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
fn judge_spec() -> AnalysisRunSpec {
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

/// Argo Rollouts' documented style: a ratio over the last minute, `result < 0.01`.
fn threshold_spec() -> AnalysisRunSpec {
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
        metrics: vec![m("error-rate", "result < 0.01"), m("slow-share", "result < 0.1")],
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

fn release_with_runs(rng: &mut StdRng, scenario: Scenario, spec: &AnalysisRunSpec) -> Release {
    let mut t = Traffic::new(rng, scenario);
    let mut carried = Vec::new();
    for (step, w) in WEIGHTS.iter().enumerate() {
        // The new weight takes effect; the step's analysis starts with it.
        t.advance(*w);
        let phase = step_run(&mut t, spec, *w, &mut carried);
        let seconds = t.tick * TICK;
        match phase {
            AnalysisPhase::Successful => {}
            AnalysisPhase::Failed => {
                return Release {
                    end: End::RolledBack { step },
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

/// Flagger: one check a minute, five per step; any failed check counts, and five over the
/// release roll it back. No requests in the minute ("no values found") fails the check.
fn release_flagger(rng: &mut StdRng, scenario: Scenario) -> Release {
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
                && (total - (t.canary.errors - before.errors)) / total >= 0.99
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

#[derive(Default)]
struct Tally {
    rolled_back: usize,
    rolled_back_early: usize,
    promoted: usize,
    inconclusive: usize,
    seconds: Vec<i64>,
}

impl Tally {
    fn add(&mut self, r: Release) {
        match r.end {
            End::RolledBack { step } => {
                self.rolled_back += 1;
                if step < 2 {
                    self.rolled_back_early += 1;
                }
            }
            End::Promoted => self.promoted += 1,
            End::Inconclusive => self.inconclusive += 1,
        }
        self.seconds.push(r.seconds);
    }

    fn pct(&self, n: usize) -> f64 {
        100.0 * n as f64 / self.seconds.len().max(1) as f64
    }

    fn quantile(&mut self, q: f64) -> f64 {
        self.seconds.sort_unstable();
        let i = ((self.seconds.len() as f64 - 1.0) * q).round() as usize;
        self.seconds.get(i).copied().unwrap_or(0) as f64 / 60.0
    }
}

const JUDGES: [&str; 3] = ["judge", "threshold", "flagger"];

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1).cloned())
    };
    // `cargo test --all-targets` runs benches once without `--bench`: a few releases then, so the
    // code is exercised, and no figures written.
    let measuring = argv.iter().any(|a| a == "--bench");
    let default_releases = if measuring { 1000 } else { 5 };
    let releases: usize = value("--releases")
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_releases);
    let seed: u64 = value("--seed").and_then(|v| v.parse().ok()).unwrap_or(1);
    let rps: f64 = value("--rps").and_then(|v| v.parse().ok()).unwrap_or(100.0);
    let write_docs = measuring && argv.iter().any(|a| a == "--write-docs");
    let judge = judge_spec();
    let threshold = threshold_spec();
    let started = std::time::Instant::now();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| scenario | judge | rolled back | before 50% | promoted | inconclusive | median min | p95 min |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|");
    let mut figures = std::collections::BTreeMap::new();
    let only: Option<usize> = value("--only").and_then(|v| v.parse().ok());
    for (k, scenario) in scenarios(rps).into_iter().enumerate() {
        if only.is_some_and(|o| o != k) {
            continue;
        }
        for (j, name) in JUDGES.iter().enumerate() {
            // The same seed per scenario: every judge sees the same kind of traffic.
            let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(k as u64 * 10 + j as u64));
            let mut tally = Tally::default();
            for _ in 0..releases {
                let r = match j {
                    0 => release_with_runs(&mut rng, scenario, &judge),
                    1 => release_with_runs(&mut rng, scenario, &threshold),
                    _ => release_flagger(&mut rng, scenario),
                };
                tally.add(r);
            }
            let (median, p95) = (tally.quantile(0.5), tally.quantile(0.95));
            let line = format!(
                "| {} | {name} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {median:.1} | {p95:.1} |",
                scenario.name,
                tally.pct(tally.rolled_back),
                tally.pct(tally.rolled_back_early),
                tally.pct(tally.promoted),
                tally.pct(tally.inconclusive),
            );
            println!("{line}");
            let _ = writeln!(table, "{line}");
            figures.insert(
                (k, *name),
                (
                    tally.pct(tally.rolled_back),
                    tally.pct(tally.rolled_back_early),
                    tally.pct(tally.promoted),
                ),
            );
        }
    }
    let f = |k: usize, j: &str| figures.get(&(k, j)).copied().unwrap_or_default();
    let last = format!(
        "decisions: judge_fp={:.1} judge_detect_2x={:.1} judge_promote_1_2x={:.1} threshold_fp={:.1} threshold_detect_2x={:.1} flagger_fp={:.1} flagger_detect_2x={:.1} judge_fp_1rps={:.1}",
        f(0, "judge").0,
        f(1, "judge").1,
        f(2, "judge").2,
        f(0, "threshold").0,
        f(1, "threshold").1,
        f(0, "flagger").0,
        f(1, "flagger").1,
        f(7, "judge").0,
    );
    if write_docs {
        let doc = format!(
            "{}\n{table}\n```\n{last}\n```\n\nMeasured with `make decisions` ({releases} releases per scenario and judge, seed {seed}, R = {rps} requests/s, {:.0} s on this machine).\n",
            include_str!("decisions_intro.md"),
            started.elapsed().as_secs_f64()
        );
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/decisions.md");
        if let Err(e) = std::fs::write(&path, doc) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    println!("{last}");
}
