//! Fault injection, as a real cluster under stress behaves: a share of one client's requests is
//! answered 409 Conflict, 429 Too Many Requests (with Retry-After) or 500, or delayed; its watch
//! streams are cut after a while; its watches are told their resourceVersion expired (410 Gone).
//! Set at start (`serin sim --faults JSON`) or at any time (`PUT /sim/faults`, `GET` reads them).
//! Draws come from a seeded generator, so a run repeats.

use super::status::ApiError;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FaultSpec {
    /// Only requests whose User-Agent starts with this are touched; all when empty.
    pub client: String,
    /// Share of writes answered 409 Conflict.
    pub conflict: f64,
    /// Share of requests answered 429 with `Retry-After: 1`.
    pub throttle: f64,
    /// Share of requests answered 500.
    pub error: f64,
    /// Share of requests held for `delayMs` before they are served.
    pub delay: f64,
    pub delay_ms: u64,
    /// Watch streams end after this many milliseconds (0: never).
    pub cut_watches_after_ms: u64,
    /// Share of watch starts answered 410 Gone (the resourceVersion expired).
    pub expire: f64,
    pub seed: u64,
}

impl FaultSpec {
    pub fn validate(&self) -> Result<(), String> {
        for (name, share) in [
            ("conflict", self.conflict),
            ("throttle", self.throttle),
            ("error", self.error),
            ("delay", self.delay),
            ("expire", self.expire),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} is a share of requests, between 0 and 1, not {share}"));
            }
        }
        Ok(())
    }

    fn applies_to(&self, agent: &str) -> bool {
        self.client.is_empty() || agent.starts_with(&self.client)
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Conflict,
    Throttle,
    Error,
    Expired,
    Delay(Duration),
}

impl Fault {
    /// The answer that takes the place of the API server's, for all but a delay.
    pub fn refusal(self) -> Option<ApiError> {
        match self {
            Fault::Conflict => Some(ApiError::conflict(
                "",
                "objects",
                "injected",
                "the object has been modified (injected fault); please apply your changes to the latest version and try again",
            )),
            Fault::Throttle => Some(ApiError::too_many_requests(1)),
            Fault::Error => Some(ApiError::internal("injected fault: the server could not answer")),
            Fault::Expired => Some(ApiError::gone("too old resource version (injected fault)")),
            Fault::Delay(_) => None,
        }
    }
}

/// `GET /sim/faults` shows the faults in force; `PUT` replaces them (JSON, see `FaultSpec`).
pub fn endpoint(faults: &Faults, method: &Method, body: &[u8]) -> Response {
    let json = |code: StatusCode, v: &FaultSpec| {
        let text = serde_json::to_string(v).unwrap_or_default();
        (code, [(header::CONTENT_TYPE, "application/json")], text).into_response()
    };
    match *method {
        Method::GET => json(StatusCode::OK, &faults.spec()),
        Method::PUT => {
            let spec: Result<FaultSpec, String> =
                serde_json::from_slice(body).map_err(|e| format!("not a fault spec: {e}"));
            match spec.and_then(|s| faults.set(s.clone()).map(|_| s)) {
                Ok(s) => json(StatusCode::OK, &s),
                Err(e) => ApiError::bad_request(e).into_response(),
            }
        }
        _ => ApiError::method_not_allowed("GET or PUT /sim/faults").into_response(),
    }
}

pub struct Faults {
    spec: Mutex<FaultSpec>,
    rng: Mutex<StdRng>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(FaultSpec::default())
    }
}

impl Faults {
    pub fn new(spec: FaultSpec) -> Faults {
        let rng = StdRng::seed_from_u64(spec.seed);
        Faults {
            spec: Mutex::new(spec),
            rng: Mutex::new(rng),
        }
    }

    pub fn spec(&self) -> FaultSpec {
        self.spec.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, spec: FaultSpec) -> Result<(), String> {
        spec.validate()?;
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = StdRng::seed_from_u64(spec.seed);
        *self.spec.lock().unwrap_or_else(|e| e.into_inner()) = spec;
        Ok(())
    }

    /// The fault, if any, for a request from `agent`.
    pub fn draw(&self, agent: &str, write: bool, watch: bool) -> Option<Fault> {
        let spec = self.spec();
        if !spec.applies_to(agent) {
            return None;
        }
        let roll: f64 = self.rng.lock().unwrap_or_else(|e| e.into_inner()).random();
        let mut edge = 0.0;
        let mut hit = |share: f64, applies: bool| {
            if !applies {
                return false;
            }
            edge += share;
            roll < edge
        };
        if hit(spec.conflict, write) {
            Some(Fault::Conflict)
        } else if hit(spec.throttle, true) {
            Some(Fault::Throttle)
        } else if hit(spec.error, true) {
            Some(Fault::Error)
        } else if hit(spec.expire, watch) {
            Some(Fault::Expired)
        } else if hit(spec.delay, true) {
            Some(Fault::Delay(Duration::from_millis(spec.delay_ms)))
        } else {
            None
        }
    }

    /// How long a watch of `agent` may stream before it is cut.
    pub fn watch_cut(&self, agent: &str) -> Option<Duration> {
        let spec = self.spec();
        (spec.applies_to(agent) && spec.cut_watches_after_ms > 0)
            .then(|| Duration::from_millis(spec.cut_watches_after_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_drawn_as_set_and_repeat_with_the_seed() {
        let spec = FaultSpec {
            client: "serin-controller".into(),
            conflict: 0.2,
            error: 0.1,
            seed: 7,
            ..Default::default()
        };
        let faults = Faults::new(spec.clone());
        let draws: Vec<Option<Fault>> = (0..2000)
            .map(|_| faults.draw("serin-controller/0.1", true, false))
            .collect();
        let share = |f: Fault| draws.iter().filter(|d| **d == Some(f)).count() as f64 / 2000.0;
        assert!(
            (share(Fault::Conflict) - 0.2).abs() < 0.04,
            "{}",
            share(Fault::Conflict)
        );
        assert!((share(Fault::Error) - 0.1).abs() < 0.03, "{}", share(Fault::Error));
        // Reads are never conflicts; other clients are never touched.
        assert!((0..200).all(|_| faults.draw("serin-controller/0.1", false, false) != Some(Fault::Conflict)));
        assert!((0..200).all(|_| faults.draw("kubectl/v1.37", true, false).is_none()));
        let again = Faults::new(spec);
        let replay: Vec<Option<Fault>> = (0..2000)
            .map(|_| again.draw("serin-controller/0.1", true, false))
            .collect();
        assert_eq!(draws, replay, "seeded: the same draws");
        assert!(
            again
                .set(FaultSpec {
                    error: 1.5,
                    ..Default::default()
                })
                .is_err()
        );
    }
}
