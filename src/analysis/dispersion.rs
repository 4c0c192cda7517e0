//! How much more the canary's share of bad events varies from interval to interval than
//! independent requests would make it vary. Pure functions, no I/O.
//!
//! The comparison's evidence counts bad events as if each were independent. Real ones are not:
//! a client retries a failed call, a downstream blip fails a batch, so they come in clusters, and
//! a cluster of `c` errors is one piece of evidence, not `c`. For each interval, given `n` bad
//! events of which `k` are the canary's and the share `θ` expected of it, the Pearson term
//! `(k - nθ)² / (nθ(1 - θ))` averages 1 for independent events and `c` for clusters of `c`
//! (more generally `E[c²]/E[c]`). Their mean over the intervals so far, less the noise it has for
//! independent events, is the dispersion `φ`;
//! the evidence is then weighed as `1/φ` of what it would be: raising a likelihood ratio to
//! `1/c` makes it the ratio of the clusters, and so a supermartingale again.
//!
//! This statistic looks only at how bad events split between the two versions within an
//! interval, so a blip failing both versions alike, or an error rate drifting for both, leaves
//! it at 1: only the clustering the comparison is sensitive to counts. `θ` comes from the ratio
//! seen *before* the interval (predictable), so an interval does not explain itself away.

use super::evidence::{Counts, ratio, share};
use crate::crd::analysis::EvidenceState;

/// Bad events the expected split of the first intervals is taken to rest on.
const PRIOR_EVENTS: f64 = 10.0;

/// The Pearson terms so far and the intervals they came from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dispersion {
    pub sum: f64,
    pub intervals: f64,
}

impl Dispersion {
    /// The dispersion an evidence state carries.
    pub fn of(state: &EvidenceState) -> Dispersion {
        Dispersion {
            sum: state.dispersion_sum,
            intervals: state.dispersion_intervals,
        }
    }

    /// Adds an interval's counts of both versions, held against the ratio their counts `before`
    /// it show. Before both versions had bad events, the split is held against equal rates, as if
    /// [`PRIOR_EVENTS`] had shown them: the first clusters are then seen for what they are.
    pub fn add_split(&mut self, canary: Counts, stable: Counts, before: (Counts, Counts)) {
        if canary.total <= 0.0 || stable.total <= 0.0 {
            return;
        }
        let seen = ratio(before.0, before.1).filter(|r| *r > 0.0).unwrap_or(1.0);
        let events = (before.0.bad + before.1.bad).max(PRIOR_EVENTS);
        let n = canary.bad + stable.bad;
        self.add(canary.bad, n, share(canary, stable, seen), events);
    }

    /// Adds an interval in which `k` of `n` bad events were the canary's, where `theta` of them
    /// were expected to be from the `before` bad events seen earlier. `theta` is itself an
    /// estimate, which adds `n/before` to the term's expected value; it is divided out. Intervals
    /// without bad events, without earlier ones, or where one side cannot have any, say nothing.
    pub fn add(&mut self, k: f64, n: f64, theta: f64, before: f64) {
        if n <= 0.0 || before <= 0.0 || !(theta > 0.0 && theta < 1.0) || !k.is_finite() {
            return;
        }
        let expected = n * theta;
        self.sum += (k - expected).powi(2) / (expected * (1.0 - theta) * (1.0 + n / before));
        self.intervals += 1.0;
    }

    /// The dispersion: the mean term less its noise, at least 1 (independent events), since
    /// evidence is never counted as more than the events themselves.
    pub fn factor(&self) -> f64 {
        if self.intervals <= 0.0 {
            return 1.0;
        }
        // Less one standard error of the mean of m terms when events are independent (each
        // term then about χ²₁: variance 2), so that noise alone does not weigh evidence down.
        (self.sum / self.intervals - (2.0 / self.intervals).sqrt()).max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_by_hand() {
        let mut d = Dispersion::default();
        assert_eq!(d.factor(), 1.0);
        // 10 bad events, 1 expected of the canary (θ = 0.1 from 40 earlier ones), 4 seen:
        // (4 - 1)² / (1 · 0.9 · (1 + 10/40)) = 9 / 1.125 = 8.
        d.add(4.0, 10.0, 0.1, 40.0);
        assert!((d.sum - 8.0).abs() < 1e-12, "{}", d.sum);
        // As expected: (1 - 1)² = 0; the mean over two intervals is 4, less sqrt(2/2) = 1.
        d.add(1.0, 10.0, 0.1, 50.0);
        assert!((d.factor() - 3.0).abs() < 1e-12, "{}", d.factor());
        // Nothing bad, nothing to expect from, or a share that cannot be: no interval.
        d.add(0.0, 0.0, 0.1, 60.0);
        d.add(5.0, 10.0, 0.1, 0.0);
        d.add(1.0, 10.0, 0.0, 60.0);
        assert_eq!(d.intervals, 2.0);
        // Fewer surprises than independent events give is still 1.
        let mut calm = Dispersion::default();
        calm.add(1.0, 10.0, 0.1, 100.0);
        assert_eq!(calm.factor(), 1.0);
    }

    /// Bad events in clusters of `c`, each the canary's with probability `theta`: the mean
    /// Pearson term comes out near `c`.
    #[test]
    fn clusters_of_c_give_c() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for c in [1.0, 5.0, 20.0] {
            let mut d = Dispersion::default();
            for _ in 0..20_000 {
                let clusters = 4;
                let k = (0..clusters).filter(|_| rng.random::<f64>() < 0.2).count() as f64 * c;
                d.add(k, clusters as f64 * c, 0.2, f64::INFINITY);
            }
            let mean = d.sum / d.intervals;
            assert!((mean - c).abs() < 0.05 * c + 0.05, "c = {c}: {mean}");
            assert!(d.factor() <= mean.max(1.0));
        }
    }
}
