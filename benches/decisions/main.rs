//! `make decisions`: how often each judge is right. A seeded simulation of releases through the
//! default 5 → 25 → 50 → 100 schedule, no cluster (`scenarios`, `traffic`): per 10 s, each
//! version's requests (Poisson, at a total of R requests/s split by the step's weight), its errors
//! and its slow requests. The judges (`judges`) see the same kind of traffic:
//! - `serin`: `compare` on errors and on slow requests against stable, plus `sloBurnRate`, through
//!   Serin's own analysis code;
//! - `threshold`: an Argo-docs style template, `result < 0.01` on the error ratio over each minute;
//!   `tuned` at halfway between the service's usual rate and twice it, `best` at the threshold a
//!   search finds best on the healthy and 2x scenarios together;
//! - `flagger`: success rate >= 99% per minute, rolled back after 5 failed checks; tuned and best
//!   the same way;
//! - `kayenta`: Mann-Whitney on 10-second ratios, scored with Kayenta's defaults;
//! - `oracle`: the likelihood-ratio test that knows a regression is exactly 2x, the ceiling.
//!
//! Per scenario and judge it prints the share rolled back, promoted and left inconclusive, with the
//! median and p95 time to a decision; with `--write-docs` the tables go to docs/decisions.md. The
//! last line is `decisions: judge_fp=… … judge_fp_bursty=…`.
//!
//! cargo bench --bench decisions -- [--releases 1000] [--seed 1] [--rps 100] [--only N] [--write-docs]

mod judges;
mod kayenta;
mod scenarios;
mod traffic;

use judges::{End, Release};
use rand::SeedableRng;
use rand::rngs::StdRng;
use scenarios::{Right, Scenario};
use serin::crd::analysis::AnalysisRunSpec;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Default)]
pub struct Tally {
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

/// A threshold as people set it: as written, or as a multiple of the service's usual error rate.
#[derive(Clone, Copy)]
enum Limit {
    Absolute(f64),
    TimesNormal(f64),
}

impl Limit {
    fn of(self, s: &Scenario) -> f64 {
        match self {
            Limit::Absolute(x) => x,
            Limit::TimesNormal(m) => m * s.normal_errors,
        }
    }
}

#[derive(Clone, Copy)]
enum Judge {
    Serin,
    Threshold(Limit),
    Flagger(Limit),
    Kayenta,
    /// Knows the ratio; knows how errors cluster when `true`.
    Oracle(bool),
}

fn release(rng: &mut StdRng, judge: Judge, s: Scenario, serin: &AnalysisRunSpec) -> Release {
    match judge {
        Judge::Serin => judges::release_with_runs(rng, s, serin),
        Judge::Threshold(limit) => judges::release_with_runs(rng, s, &judges::threshold_spec(limit.of(&s))),
        Judge::Flagger(limit) => judges::release_flagger(rng, s, limit.of(&s)),
        Judge::Kayenta => judges::release_kayenta(rng, s),
        Judge::Oracle(clusters) => judges::release_oracle(rng, s, clusters),
    }
}

struct Run {
    releases: usize,
    seed: u64,
    serin: AnalysisRunSpec,
}

impl Run {
    /// `releases` releases of scenario number `k`; the same seed for every judge of a scenario,
    /// so that they see the same kind of traffic.
    fn tally(&self, judge: Judge, k: usize, s: Scenario) -> Tally {
        let mut rng = StdRng::seed_from_u64(self.seed.wrapping_mul(10_000).wrapping_add(k as u64));
        let mut tally = Tally::default();
        for _ in 0..self.releases {
            tally.add(release(&mut rng, judge, s, &self.serin));
        }
        tally
    }

    /// The multiple of the usual error rate at which `judge` does best on the healthy and the 2x
    /// scenarios together (false rollbacks plus 2x canaries not rolled back before 50%).
    fn best(&self, all: &[Scenario], judge: fn(Limit) -> Judge) -> (f64, f64) {
        (10..=30)
            .map(|i| {
                let m = f64::from(i) / 10.0;
                let j = judge(Limit::TimesNormal(m));
                let fp = self.tally(j, scenarios::HEALTHY, all[scenarios::HEALTHY]);
                let twice = self.tally(j, scenarios::TWICE, all[scenarios::TWICE]);
                let score = fp.pct(fp.rolled_back) + 100.0 - twice.pct(twice.rolled_back_early);
                (m, score)
            })
            .fold((1.0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
    }
}

/// What a judge got right on a scenario with a right answer.
fn right(s: &Scenario, t: &Tally) -> Option<f64> {
    match s.right {
        Right::Promote => Some(t.pct(t.promoted)),
        Right::RollBack => Some(t.pct(t.rolled_back)),
        Right::Either => None,
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1).cloned())
    };
    kayenta::check();
    // `cargo test --all-targets` runs benches once without `--bench`: a few releases then, so the
    // code is exercised, and no figures written.
    let measuring = argv.iter().any(|a| a == "--bench");
    let default_releases = if measuring { 1000 } else { 5 };
    let run = Run {
        releases: value("--releases")
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_releases),
        seed: value("--seed").and_then(|v| v.parse().ok()).unwrap_or(1),
        serin: judges::judge_spec(),
    };
    let rps: f64 = value("--rps").and_then(|v| v.parse().ok()).unwrap_or(100.0);
    let write_docs = measuring && argv.iter().any(|a| a == "--write-docs");
    let only: Option<usize> = value("--only").and_then(|v| v.parse().ok());
    let started = std::time::Instant::now();
    let all = scenarios::scenarios(rps);
    let (best_threshold, _) = run.best(&all, Judge::Threshold);
    let (best_flagger, _) = run.best(&all, Judge::Flagger);
    let search = format!(
        "Best thresholds found: `result < {best_threshold} x` the usual error rate (`{}` at 1%), Flagger's success rate at least `{}%`.",
        best_threshold * scenarios::BASE_ERRORS,
        100.0 - 100.0 * best_flagger * scenarios::BASE_ERRORS
    );
    println!("{search}");
    let judges: [(&str, Judge); 10] = [
        ("serin", Judge::Serin),
        ("threshold", Judge::Threshold(Limit::Absolute(0.01))),
        ("threshold tuned", Judge::Threshold(Limit::TimesNormal(1.5))),
        ("threshold best", Judge::Threshold(Limit::TimesNormal(best_threshold))),
        ("flagger", Judge::Flagger(Limit::Absolute(0.01))),
        ("flagger tuned", Judge::Flagger(Limit::TimesNormal(1.5))),
        ("flagger best", Judge::Flagger(Limit::TimesNormal(best_flagger))),
        ("kayenta", Judge::Kayenta),
        ("oracle", Judge::Oracle(true)),
        ("lr, errors independent", Judge::Oracle(false)),
    ];
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| scenario | judge | rolled back | before 50% | promoted | inconclusive | median min | p95 min |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|");
    let mut figures: BTreeMap<(usize, &str), (f64, f64, f64)> = BTreeMap::new();
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "| scenario | right answer | serin | best of the others | threshold tuned |"
    );
    let _ = writeln!(summary, "|---|---|---|---|---|");
    // Per judge, what it got right on the healthy scenarios and on the regressions.
    let mut overall: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for (k, scenario) in all.iter().enumerate() {
        if only.is_some_and(|o| o != k) {
            continue;
        }
        let mut rights: Vec<(&str, f64)> = Vec::new();
        for (name, judge) in judges {
            let mut tally = run.tally(judge, k, *scenario);
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
                (k, name),
                (
                    tally.pct(tally.rolled_back),
                    tally.pct(tally.rolled_back_early),
                    tally.pct(tally.promoted),
                ),
            );
            if let Some(r) = right(scenario, &tally) {
                rights.push((name, r));
                let (healthy, regressions) = overall.entry(name).or_default();
                match scenario.right {
                    Right::Promote => healthy.push(r),
                    _ => regressions.push(r),
                }
            }
        }
        let of = |n: &str| rights.iter().find(|(name, _)| *name == n).map(|(_, r)| *r);
        let best = rights
            .iter()
            .filter(|(n, _)| !matches!(*n, "serin" | "oracle" | "lr, errors independent"))
            .fold(None, |a: Option<(&str, f64)>, b| match a {
                Some(a) if a.1 >= b.1 => Some(a),
                _ => Some(*b),
            });
        if let (Some(serin), Some((who, best)), Some(tuned)) = (of("serin"), best, of("threshold tuned")) {
            let answer = if scenario.right == Right::Promote {
                "promote"
            } else {
                "roll back"
            };
            let _ = writeln!(
                summary,
                "| {} | {answer} | {serin:.1}% | {best:.1}% ({who}) | {tuned:.1}% |",
                scenario.name
            );
        }
    }
    let mut judged = String::new();
    let _ = writeln!(
        judged,
        "| judge | healthy promoted (mean) | worst healthy | regressions rolled back (mean) | worst regression |"
    );
    let _ = writeln!(judged, "|---|---|---|---|---|");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let worst = |v: &[f64]| v.iter().copied().fold(100.0, f64::min);
    for (name, _) in judges {
        if let Some((h, r)) = overall.get(name) {
            let _ = writeln!(
                judged,
                "| {name} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
                mean(h),
                worst(h),
                mean(r),
                worst(r)
            );
        }
    }
    let f = |k: usize, j: &str| figures.get(&(k, j)).copied().unwrap_or_default();
    use scenarios::{HEALTHY, HEALTHY_1RPS, INSIDE_MARGIN, RETRIED, TWICE, TWICE_RETRIED};
    let last = format!(
        "decisions: judge_fp={:.1} judge_detect_2x={:.1} judge_promote_1_2x={:.1} threshold_fp={:.1} threshold_detect_2x={:.1} flagger_fp={:.1} flagger_detect_2x={:.1} judge_fp_1rps={:.1} tuned_threshold_fp={:.1} tuned_threshold_detect_2x={:.1} best_threshold_fp={:.1} best_threshold_detect_2x={:.1} kayenta_fp={:.1} kayenta_detect_2x={:.1} oracle_detect_2x={:.1} judge_detect_2x_retried={:.1} judge_fp_bursty={:.1}",
        f(HEALTHY, "serin").0,
        f(TWICE, "serin").1,
        f(INSIDE_MARGIN, "serin").2,
        f(HEALTHY, "threshold").0,
        f(TWICE, "threshold").1,
        f(HEALTHY, "flagger").0,
        f(TWICE, "flagger").1,
        f(HEALTHY_1RPS, "serin").0,
        f(HEALTHY, "threshold tuned").0,
        f(TWICE, "threshold tuned").1,
        f(HEALTHY, "threshold best").0,
        f(TWICE, "threshold best").1,
        f(HEALTHY, "kayenta").0,
        f(TWICE, "kayenta").1,
        f(TWICE, "oracle").1,
        f(TWICE_RETRIED, "serin").1,
        f(RETRIED, "serin").0,
    );
    if write_docs {
        let doc = format!(
            "{}\n{search}\n\n### Each judge over the scenarios with a right answer\n\n{judged}\n### Scenario by scenario: Serin and the best of the others\n\n{summary}\n### Every judge on every scenario\n\n{table}\n```\n{last}\n```\n\nMeasured with `make decisions` ({} releases per scenario and judge, seed {}, R = {rps} requests/s, {:.0} s on a machine with {} cores, {}).\n",
            include_str!("intro.md"),
            run.releases,
            run.seed,
            started.elapsed().as_secs_f64(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            jiff::Zoned::now().date()
        );
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/decisions.md");
        if let Err(e) = std::fs::write(&path, doc) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    println!("{judged}");
    println!("{summary}");
    println!("{last}");
}
