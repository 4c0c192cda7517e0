//! The releases `make decisions` simulates: what each version's traffic looks like, and what a
//! good judge does with its canary.

pub const BASE_ERRORS: f64 = 0.01;
pub const BASE_SLOW: f64 = 0.05;
/// The release's length through the default schedule, for drifting rates.
const RELEASE_SECONDS: f64 = 20.0 * 60.0;

/// What a good judge does with a scenario's canary.
#[derive(Clone, Copy, PartialEq)]
pub enum Right {
    Promote,
    RollBack,
    /// Nothing to gain either way (both versions broken, or too little traffic to tell).
    Either,
}

#[derive(Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub right: Right,
    pub canary_errors: f64,
    pub stable_errors: f64,
    pub canary_slow: f64,
    pub rps: f64,
    /// The service's usual error rate: what people tune thresholds to.
    pub normal_errors: f64,
    /// The request rate swings 10x, minute by minute.
    pub swings: bool,
    /// Errors come in clusters of this many, at the same error rate: a client retrying.
    pub cluster: f64,
    /// A 10-second blip fails 30% of both versions' requests, two minutes in.
    pub blip: bool,
    /// The canary fails twice as often in its first minute.
    pub warm_up: bool,
    /// Both versions' error rates grow by this factor over the release.
    pub drift: f64,
    /// One of the canary's four Pods fails this share of its requests.
    pub bad_pod: Option<f64>,
}

impl Scenario {
    fn healthy(name: &'static str, rps: f64) -> Scenario {
        Scenario {
            name,
            right: Right::Promote,
            canary_errors: BASE_ERRORS,
            stable_errors: BASE_ERRORS,
            canary_slow: BASE_SLOW,
            rps,
            normal_errors: BASE_ERRORS,
            swings: false,
            cluster: 1.0,
            blip: false,
            warm_up: false,
            drift: 1.0,
            bad_pod: None,
        }
    }

    fn worse(name: &'static str, rps: f64, times: f64) -> Scenario {
        Scenario {
            right: Right::RollBack,
            canary_errors: times * BASE_ERRORS,
            ..Scenario::healthy(name, rps)
        }
    }

    /// Both versions' error rates `t` seconds into the release: canary, stable.
    pub fn error_rates(&self, t: i64) -> (f64, f64) {
        if self.blip && (120..130).contains(&t) {
            return (0.3, 0.3);
        }
        let grown = 1.0 + (self.drift - 1.0) * (t as f64 / RELEASE_SECONDS).min(1.0);
        let warming = if self.warm_up && t < 60 { 2.0 } else { 1.0 };
        (self.canary_errors * grown * warming, self.stable_errors * grown)
    }
}

pub fn scenarios(rps: f64) -> Vec<Scenario> {
    let healthy = |name| Scenario::healthy(name, rps);
    let worse = |name, times| Scenario::worse(name, rps, times);
    vec![
        healthy("healthy (A/A, 1% errors)"),
        worse("2x errors (2% vs 1%)", 2.0),
        Scenario {
            right: Right::Promote,
            ..worse("1.2x errors (inside the margin)", 1.2)
        },
        worse("1.5x errors", 1.5),
        Scenario {
            right: Right::RollBack,
            canary_slow: BASE_SLOW + 0.2,
            ..healthy("slow requests +20 points (5% -> 25%)")
        },
        Scenario {
            canary_errors: 1.0,
            ..worse("canary fails every request", 1.0)
        },
        Scenario {
            right: Right::Either,
            canary_errors: 0.05,
            stable_errors: 0.05,
            ..healthy("both versions at 5% errors")
        },
        Scenario {
            right: Right::Either,
            ..Scenario::healthy("healthy at 1 request/s", 1.0)
        },
        Scenario {
            right: Right::Either,
            ..Scenario::worse("2x errors at 1 request/s", 1.0, 2.0)
        },
        Scenario {
            swings: true,
            ..healthy("healthy, traffic swinging 10x")
        },
        Scenario {
            swings: true,
            ..worse("2x errors, traffic swinging 10x", 2.0)
        },
        Scenario::worse("2x errors at twice the traffic", 2.0 * rps, 2.0),
        Scenario {
            cluster: 5.0,
            ..healthy("healthy, each error retried 4 times")
        },
        Scenario {
            cluster: 5.0,
            ..worse("2x errors, each retried 4 times", 2.0)
        },
        Scenario {
            cluster: 20.0,
            ..healthy("healthy, errors in clusters of 20")
        },
        Scenario {
            blip: true,
            ..healthy("healthy, a 10 s blip failing 30% of both")
        },
        Scenario {
            warm_up: true,
            ..healthy("healthy after a minute at 2x (warm-up)")
        },
        Scenario {
            drift: 3.0,
            ..healthy("healthy, both drifting to 3x errors")
        },
        Scenario {
            canary_errors: 0.001,
            stable_errors: 0.001,
            normal_errors: 0.001,
            ..Scenario::healthy("healthy at 1,000 requests/s, 0.1% errors", 1000.0)
        },
        Scenario {
            canary_errors: 0.002,
            stable_errors: 0.001,
            normal_errors: 0.001,
            ..Scenario::worse("2x at 1,000 requests/s, 0.1% errors", 1000.0, 2.0)
        },
        Scenario {
            bad_pod: Some(0.1),
            ..worse("one of 4 canary Pods failing 10%", 1.0)
        },
    ]
}

/// Where in [`scenarios`] the figures of the summary line are.
pub const HEALTHY: usize = 0;
pub const TWICE: usize = 1;
pub const INSIDE_MARGIN: usize = 2;
pub const HEALTHY_1RPS: usize = 7;
pub const RETRIED: usize = 12;
pub const TWICE_RETRIED: usize = 13;
