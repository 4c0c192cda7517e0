//! The steps a canary walks, and the durations of its pauses.

use crate::crd::rollout::{CanaryStep, CanaryStrategy, PauseStep};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::time::Duration;

/// The weights of the default steps; an analysis stop follows each when analysis is configured.
pub const DEFAULT_WEIGHTS: [i32; 4] = [5, 25, 50, 100];

/// The steps as written, or the default 5/25/50/100 with analysis after each when there is a
/// background analysis to run at those stops.
pub fn effective_steps(canary: &CanaryStrategy) -> Vec<CanaryStep> {
    if let Some(steps) = &canary.steps {
        return steps.clone();
    }
    let mut out = Vec::new();
    for w in DEFAULT_WEIGHTS {
        out.push(CanaryStep {
            set_weight: Some(w),
            ..Default::default()
        });
        if let Some(analysis) = &canary.analysis {
            out.push(CanaryStep {
                analysis: Some(Box::new(analysis.clone())),
                ..Default::default()
            });
        }
    }
    out
}

/// What each step (or blue-green stage) does, in order, as `kubectl serin get` lists them.
pub fn names(strategy: &crate::crd::rollout::RolloutStrategy) -> Vec<String> {
    match (&strategy.blue_green, &strategy.canary) {
        (Some(_), _) => (0..super::bluegreen::STAGES)
            .map(|i| super::bluegreen::describe(i).to_string())
            .collect(),
        (None, Some(c)) => effective_steps(c).iter().map(describe).collect(),
        (None, None) => Vec::new(),
    }
}

/// The traffic weight in force at a step: the last `setWeight` at or before it.
pub fn weight_at(steps: &[CanaryStep], index: usize) -> i32 {
    steps
        .iter()
        .take(index + 1)
        .rev()
        .find_map(|s| s.set_weight)
        .unwrap_or(0)
}

/// Parses `30s`, `5m`, `1h30m`, `250ms`, `90` (seconds).
pub fn parse_duration(v: &IntOrString) -> Result<Duration, String> {
    match v {
        IntOrString::Int(n) if *n >= 0 => Ok(Duration::from_secs(*n as u64)),
        IntOrString::Int(n) => Err(format!("duration {n} is negative")),
        IntOrString::String(s) => parse_duration_text(s),
    }
}

fn parse_duration_text(s: &str) -> Result<Duration, String> {
    let bad = || format!("duration {s:?} is not like 30s, 5m, 1h30m or 30d");
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            // Prometheus' units too, for an SLO's period.
            "d" => 86_400.0,
            "w" => 604_800.0,
            _ => return Err(bad()),
        };
        total += value * factor;
        rest = &rest[unit_end..];
    }
    // A number too large for a Duration is refused, not a panic.
    Duration::try_from_secs_f64(total).map_err(|_| format!("duration {s:?} is too long"))
}

/// A pause's length, `None` for a pause until promoted.
pub fn pause_length(p: &PauseStep) -> Result<Option<Duration>, String> {
    p.duration.as_ref().map(parse_duration).transpose()
}

/// What a step does, in a few words for status and `kubectl serin get`.
pub fn describe(step: &CanaryStep) -> String {
    if let Some(w) = step.set_weight {
        return format!("setWeight {w}");
    }
    if let Some(p) = &step.pause {
        return match &p.duration {
            Some(IntOrString::String(d)) => format!("pause {d}"),
            Some(IntOrString::Int(n)) => format!("pause {n}s"),
            None => "pause until promoted".into(),
        };
    }
    if step.analysis.is_some() {
        return "analysis".into();
    }
    if let Some(s) = &step.set_canary_scale {
        return match (s.replicas, s.weight, s.match_traffic_weight) {
            (Some(r), _, _) => format!("setCanaryScale {r} pods"),
            (_, Some(w), _) => format!("setCanaryScale {w}%"),
            _ => "setCanaryScale matchTrafficWeight".into(),
        };
    }
    if let Some(h) = &step.set_header_route {
        return format!("setHeaderRoute {}", h.name);
    }
    if let Some(m) = &step.set_mirror_route {
        return format!("setMirrorRoute {}", m.name);
    }
    "empty step".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let s = |t: &str| parse_duration(&IntOrString::String(t.into()));
        assert_eq!(s("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(s("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(s("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(s("90"), Ok(Duration::from_secs(90)));
        assert_eq!(s("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(s("4w"), Ok(Duration::from_secs(28 * 86_400)));
        assert_eq!(parse_duration(&IntOrString::Int(5)), Ok(Duration::from_secs(5)));
        assert!(s("5 minutes").is_err());
        assert!(s("").is_err());
        assert!(s("99999999999999999999h").is_err(), "too long, and no panic");
        assert!(s("6000000000000000h").is_err());
    }

    #[test]
    fn default_steps_are_5_25_50_100() {
        let steps = effective_steps(&CanaryStrategy::default());
        let weights: Vec<i32> = steps.iter().filter_map(|s| s.set_weight).collect();
        assert_eq!(weights, vec![5, 25, 50, 100]);
        assert_eq!(steps.len(), 4, "no analysis stops without analysis");
        assert_eq!(weight_at(&steps, 2), 50);
    }
}
