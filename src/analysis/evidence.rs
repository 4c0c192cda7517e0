//! Anytime-valid evidence on the canary's bad-event rate against the stable version's, from the
//! counts both versions served at the same time. Pure functions, no I/O.
//!
//! Given how many requests each version served in an interval, each bad event of that interval is
//! the canary's with probability `θ = n_c·λ_c / (n_c·λ_c + n_s·λ_s)`. "The canary is at most `m`
//! times worse" (`λ_c <= m·λ_s`) is `θ <= θ₀ = n_c·m / (n_c·m + n_s)`. For an alternative ratio
//! `r > m`, the product over intervals of the binomial likelihood ratios `θ₁(r)` against `θ₀` is
//! a non-negative supermartingale under that hypothesis (the ratio grows with the canary's share,
//! so any `θ <= θ₀` only shrinks it); the mean over a fixed grid of `r` is one too. By Ville's
//! inequality, it ever reaching `1/α` has probability at most `α`, however often it is looked at:
//! a regression is declared then. The mirror image (alternatives `r < m`) is evidence that the
//! canary is *not* worse than `m`, for an early promotion. Traffic swings and uneven weights cancel
//! out, since each interval is weighed by its own request split.
//!
//! Bad events that come in clusters (retries, batches) would make that evidence too strong: each
//! log-likelihood ratio is divided by the dispersion measured so far (`super::dispersion`).

use super::dispersion::Dispersion;

/// Requests a version served in an interval, and how many of them were bad.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub bad: f64,
    pub total: f64,
}

impl From<crate::crd::analysis::EventCounts> for Counts {
    fn from(c: crate::crd::analysis::EventCounts) -> Counts {
        Counts {
            bad: c.bad,
            total: c.total,
        }
    }
}

/// Alternative ratios (as multiples of the margin) the evidence of a regression mixes over.
const WORSE: [f64; 6] = [1.25, 1.5, 2.0, 3.0, 5.0, 10.0];
/// The same for the evidence that the canary is no worse than the margin.
const NOT_WORSE: [f64; 5] = [0.8, 0.65, 0.5, 0.3, 0.1];

/// The evidence so far: the log of each grid point's likelihood-ratio product, for both questions,
/// as if bad events were independent, and how clustered they turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub worse: Vec<f64>,
    pub not_worse: Vec<f64>,
    pub dispersion: Dispersion,
}

impl Default for Evidence {
    fn default() -> Self {
        Evidence {
            worse: vec![0.0; WORSE.len()],
            not_worse: vec![0.0; NOT_WORSE.len()],
            dispersion: Dispersion::default(),
        }
    }
}

/// `ln` of the binomial likelihood ratio of `k` canary events among `n` under `θ₁` against `θ₀`.
fn log_ratio(k: f64, n: f64, theta1: f64, theta0: f64) -> f64 {
    let term = |count: f64, p1: f64, p0: f64| if count == 0.0 { 0.0 } else { count * (p1 / p0).ln() };
    term(k, theta1, theta0) + term(n - k, 1.0 - theta1, 1.0 - theta0)
}

/// `ln` of one interval's likelihood ratio: the canary's rate `ratio` times stable's against
/// `margin` times, from how the interval's bad events split between the versions.
pub fn interval_log_ratio(canary: Counts, stable: Counts, ratio: f64, margin: f64) -> f64 {
    let n = canary.bad + stable.bad;
    if canary.total <= 0.0 || stable.total <= 0.0 || n <= 0.0 {
        return 0.0;
    }
    log_ratio(
        canary.bad,
        n,
        share(canary, stable, ratio),
        share(canary, stable, margin),
    )
}

/// The canary's share of bad events if its rate were `ratio` times stable's.
pub fn share(canary: Counts, stable: Counts, ratio: f64) -> f64 {
    let c = canary.total * ratio;
    c / (c + stable.total)
}

/// ln of the mean of exp(x), without overflow.
fn log_mean_exp(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + (xs.iter().map(|x| (x - max).exp()).sum::<f64>() / xs.len() as f64).ln()
}

impl Evidence {
    /// Adds one interval's counts, judged against `margin` (`maxIncrease`). `before` are both
    /// versions' counts before this interval: the ratio they show is what the interval's split of
    /// bad events is held against, to measure their dispersion. An interval in which either
    /// version served nothing, or nothing was bad, carries no evidence.
    pub fn add(&mut self, canary: Counts, stable: Counts, margin: f64, before: (Counts, Counts)) {
        let n = canary.bad + stable.bad;
        if canary.total <= 0.0 || stable.total <= 0.0 || n <= 0.0 || margin <= 0.0 {
            return;
        }
        self.dispersion.add_split(canary, stable, before);
        for (log_e, r) in self.worse.iter_mut().zip(WORSE) {
            *log_e += interval_log_ratio(canary, stable, margin * r, margin);
        }
        for (log_e, r) in self.not_worse.iter_mut().zip(NOT_WORSE) {
            *log_e += interval_log_ratio(canary, stable, margin * r, margin);
        }
    }

    /// The e-value that the canary is worse than the margin.
    pub fn e_worse(&self) -> f64 {
        self.tempered(&self.worse)
    }

    /// The e-value that it is not.
    pub fn e_not_worse(&self) -> f64 {
        self.tempered(&self.not_worse)
    }

    /// The mixture of `logs`, each weighed down by the dispersion.
    fn tempered(&self, logs: &[f64]) -> f64 {
        let phi = self.dispersion.factor();
        let scaled: Vec<f64> = logs.iter().map(|l| l / phi).collect();
        log_mean_exp(&scaled).exp()
    }
}

/// The canary's rate over stable's, from the counts so far (`None` without bad events on stable).
pub fn ratio(canary: Counts, stable: Counts) -> Option<f64> {
    if canary.total <= 0.0 || stable.total <= 0.0 || stable.bad <= 0.0 {
        return None;
    }
    Some((canary.bad / canary.total) / (stable.bad / stable.total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn c(bad: f64, total: f64) -> Counts {
        Counts { bad, total }
    }

    const NOTHING_BEFORE: (Counts, Counts) = (Counts { bad: 0.0, total: 0.0 }, Counts { bad: 0.0, total: 0.0 });

    #[test]
    fn one_interval_worked_by_hand() {
        // Equal traffic, margin 1: θ₀ = 1/2. Ten bad events, all the canary's. For r = 2,
        // θ₁ = 2/3 and the ratio is (4/3)^10: ln = 10·ln(4/3) = 2.876821.
        let mut e = Evidence::default();
        e.add(c(10.0, 100.0), c(0.0, 100.0), 1.0, NOTHING_BEFORE);
        assert!((e.worse[2] - 10.0 * (4.0f64 / 3.0).ln()).abs() < 1e-9, "{:?}", e.worse);
        // For r = 0.5, θ₁ = 1/3: (2/3)^10, ln = -4.054651.
        assert!((e.not_worse[2] - 10.0 * (2.0f64 / 3.0).ln()).abs() < 1e-9);
        // Uneven traffic: a canary at 10% of requests with 10% of bad events is as good as stable.
        let mut even = Evidence::default();
        even.add(c(10.0, 1_000.0), c(90.0, 9_000.0), 1.0, NOTHING_BEFORE);
        assert!(even.e_worse() < 1.0, "{}", even.e_worse());
        // As good as stable is evidence of being no worse than 1.5x, given enough events.
        let mut better = Evidence::default();
        better.add(c(100.0, 10_000.0), c(900.0, 90_000.0), 1.5, NOTHING_BEFORE);
        assert!(better.e_not_worse() > 100.0, "{}", better.e_not_worse());
        assert!(better.e_worse() < 0.01);
        // Nothing bad, or no traffic on one side: no evidence either way.
        let mut none = Evidence::default();
        none.add(c(0.0, 100.0), c(0.0, 100.0), 1.0, NOTHING_BEFORE);
        none.add(c(5.0, 0.0), c(5.0, 100.0), 1.0, NOTHING_BEFORE);
        assert_eq!(none, Evidence::default());
        assert_eq!(ratio(c(2.0, 100.0), c(1.0, 100.0)), Some(2.0));
        assert_eq!(ratio(c(2.0, 100.0), c(0.0, 100.0)), None);
    }

    /// Knuth's method: fine for the small means of these tests.
    fn poisson(rng: &mut rand::rngs::StdRng, mean: f64) -> f64 {
        let limit = (-mean).exp();
        let (mut k, mut p) = (0.0, 1.0);
        loop {
            p *= rng.random::<f64>();
            if p <= limit {
                return k;
            }
            k += 1.0;
        }
    }

    /// Simulated releases: per 10 s interval, requests split by `weight`, bad events Poisson at the
    /// versions' rates (in clusters of `cluster`), looked at after every interval. Returns the
    /// share that reached 1/α.
    fn reject_rate(
        seed: u64,
        runs: usize,
        (canary_rate, stable_rate): (f64, f64),
        weight: f64,
        margin: f64,
        cluster: f64,
    ) -> f64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut rejected = 0;
        for _ in 0..runs {
            let mut e = Evidence::default();
            let (mut sum_c, mut sum_s) = (c(0.0, 0.0), c(0.0, 0.0));
            for step in 0..60 {
                // Traffic swings by 10x from one interval to the next.
                let rps = if step % 2 == 0 { 100.0 } else { 10.0 };
                let total = rps * 10.0;
                let (nc, ns) = (total * weight, total * (1.0 - weight));
                let (canary, stable) = (
                    c(cluster * poisson(&mut rng, nc * canary_rate / cluster), nc),
                    c(cluster * poisson(&mut rng, ns * stable_rate / cluster), ns),
                );
                e.add(canary, stable, margin, (sum_c, sum_s));
                sum_c = c(sum_c.bad + canary.bad, sum_c.total + nc);
                sum_s = c(sum_s.bad + stable.bad, sum_s.total + ns);
                if e.e_worse() >= 100.0 {
                    rejected += 1;
                    break;
                }
            }
        }
        rejected as f64 / runs as f64
    }

    #[test]
    fn a_healthy_canary_is_rarely_called_worse_however_often_it_is_looked_at() {
        // α = 1%, looked at 60 times: the bound holds over all the looks.
        let fp = reject_rate(7, 400, (0.01, 0.01), 0.1, 1.0, 1.0);
        assert!(fp <= 0.02, "false regressions: {fp}");
        // Inside the margin (1.2x against maxIncrease 1.2): the same bound.
        let inside = reject_rate(8, 400, (0.012, 0.01), 0.25, 1.2, 1.0);
        assert!(inside <= 0.02, "{inside}");
    }

    #[test]
    fn errors_in_clusters_keep_the_bound() {
        // Each error with 4 more (a client retrying), or in clusters of 20: the same error rate,
        // far fewer independent events. Counted as independent, these reach 1/α in 12% and 47%
        // of releases; weighed by their dispersion, within the bound.
        for (seed, cluster) in [(10, 5.0), (11, 20.0)] {
            let fp = reject_rate(seed, 400, (0.01, 0.01), 0.1, 1.0, cluster);
            assert!(fp <= 0.02, "clusters of {cluster}: false regressions {fp}");
        }
        // A 2x regression in clusters of 5 is still found, less often: five times fewer
        // independent events carry five times less evidence.
        let power = reject_rate(12, 200, (0.02, 0.01), 0.25, 1.0, 5.0);
        assert!(power >= 0.35, "2x in clusters found in {power} of releases");
    }

    #[test]
    fn a_2x_regression_is_found() {
        let power = reject_rate(9, 200, (0.02, 0.01), 0.25, 1.0, 1.0);
        assert!(power >= 0.95, "2x found in {power} of releases");
    }
}
