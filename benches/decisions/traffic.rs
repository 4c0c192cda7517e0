//! The traffic of one simulated release, drawn ten seconds at a time: each version's requests
//! (Poisson, split by the step's weight), its errors and its slow requests.

use crate::scenarios::{BASE_SLOW, Scenario};
use jiff::Timestamp;
use rand::rngs::StdRng;
use rand_distr::{Binomial, Distribution, Poisson};
use serin::crd::analysis::EventCounts;

pub const TICK: i64 = 10;

/// Cumulative counters of one version: requests, errors, slow requests.
#[derive(Clone, Copy, Default)]
pub struct Counters {
    pub total: f64,
    pub errors: f64,
    pub slow: f64,
}

impl Counters {
    pub fn errors(&self) -> EventCounts {
        EventCounts {
            bad: self.errors,
            total: self.total,
        }
    }

    pub fn slow(&self) -> EventCounts {
        EventCounts {
            bad: self.slow,
            total: self.total,
        }
    }

    /// What was served from `before` to these counters.
    pub fn since(&self, before: Counters) -> Counters {
        Counters {
            total: self.total - before.total,
            errors: self.errors - before.errors,
            slow: self.slow - before.slow,
        }
    }
}

pub struct Traffic<'a> {
    rng: &'a mut StdRng,
    scenario: Scenario,
    pub canary: Counters,
    pub stable: Counters,
    /// Both versions' counters after every tick, for windows.
    canary_history: Vec<Counters>,
    stable_history: Vec<Counters>,
    pub tick: i64,
}

fn poisson(rng: &mut StdRng, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    Poisson::new(mean).map_or(0.0, |p| p.sample(rng))
}

fn binomial(rng: &mut StdRng, n: f64, p: f64) -> f64 {
    Binomial::new(n.max(0.0) as u64, p.clamp(0.0, 1.0)).map_or(0.0, |b| b.sample(rng) as f64)
}

/// Errors among `n` requests failing at `rate`, arriving in clusters of `cluster`: the same rate,
/// `cluster` times fewer independent events.
fn errors(rng: &mut StdRng, n: f64, rate: f64, cluster: f64) -> f64 {
    (cluster * binomial(rng, n, rate / cluster)).min(n)
}

impl<'a> Traffic<'a> {
    pub fn new(rng: &'a mut StdRng, scenario: Scenario) -> Self {
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

    /// Ten more seconds at `weight`.
    pub fn advance(&mut self, weight: f64) {
        let s = self.scenario;
        let rps = if s.swings {
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
        let (canary_rate, stable_rate) = s.error_rates(self.tick * TICK);
        let ce = match s.bad_pod {
            Some(bad) => {
                let on_bad_pod = binomial(self.rng, canary_n, 0.25);
                errors(self.rng, on_bad_pod, bad, s.cluster)
                    + errors(self.rng, canary_n - on_bad_pod, canary_rate, s.cluster)
            }
            None => errors(self.rng, canary_n, canary_rate, s.cluster),
        };
        let cs = binomial(self.rng, canary_n, s.canary_slow);
        let se = errors(self.rng, stable_n, stable_rate, s.cluster);
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

    pub fn now(&self) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + self.tick * TICK).unwrap_or_default()
    }

    /// Counters `seconds` ago (zero before the release).
    pub fn ago(&self, seconds: i64, stable: bool) -> Counters {
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

    /// What each tick since tick `from` served: canary's, then stable's.
    pub fn ticks_since(&self, from: i64) -> Vec<(Counters, Counters)> {
        let at = |h: &[Counters], i: i64| {
            usize::try_from(i - 1)
                .ok()
                .and_then(|i| h.get(i).copied())
                .unwrap_or_default()
        };
        (from.max(0) + 1..=self.tick)
            .map(|i| {
                (
                    at(&self.canary_history, i).since(at(&self.canary_history, i - 1)),
                    at(&self.stable_history, i).since(at(&self.stable_history, i - 1)),
                )
            })
            .collect()
    }
}
