//! Counts from counters: what each version served between two looks at its counters. A counter
//! that restarts (its Pod did) falls to near zero, and what it reads then was served since, as
//! Prometheus' `increase` takes it. Anything else a counter cannot do is refused, never counted:
//! a value that is not a number or is negative, or a fall that is not a restart (a series leaving
//! a sum, or a wrong answer). A fall that holds, and from which the counters count on, is counted
//! from there, the interval of the fall not at all.

use crate::crd::analysis::{EventCounts, EvidenceState};

/// A counter that restarted reads at most this share of what it read before.
const RESTARTED: f64 = 0.1;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CounterError {
    #[error(
        "the {version}'s {counter} counter reads {value}, which no counter can: not counted (check the query and the exporter)"
    )]
    Impossible {
        version: &'static str,
        counter: &'static str,
        value: f64,
    },
    #[error(
        "the {version}'s {counter} counter went down from {from} to {to} without restarting: not counted, nor taken as a restart (a series left the sum, or Prometheus answered wrong); counting goes on once it passes {from}, or from {to} if it counts on from there"
    )]
    WentDown {
        version: &'static str,
        counter: &'static str,
        from: String,
        to: String,
    },
}

const VERSIONS: [&str; 2] = ["canary", "stable"];

fn check(version: &'static str, counter: &'static str, value: f64) -> Result<f64, CounterError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(CounterError::Impossible {
            version,
            counter,
            value,
        })
    }
}

/// Both counters of `version` as read, refused if either cannot be a counter's.
pub fn checked(version: &'static str, now: EventCounts) -> Result<EventCounts, CounterError> {
    Ok(EventCounts {
        bad: check(version, "bad", now.bad)?,
        total: check(version, "total", now.total)?,
    })
}

/// Bad requests never exceed all of them: the two counters may be scraped a moment apart.
fn bounded(bad: f64, total: f64) -> EventCounts {
    EventCounts {
        bad: bad.min(total),
        total,
    }
}

/// The requests (and bad ones) `version` served from the reading `before` to `now`. `dropped` is
/// the reading at an earlier look that found a counter gone down: once both counters count on
/// from it, they are counted from there.
pub fn served(
    version: &'static str,
    before: EventCounts,
    now: EventCounts,
    dropped: Option<EventCounts>,
) -> Result<EventCounts, CounterError> {
    let now = checked(version, now)?;
    if now.total >= before.total && now.bad >= before.bad {
        return Ok(bounded(now.bad - before.bad, now.total - before.total));
    }
    if now.total < before.total && now.total <= RESTARTED * before.total {
        return Ok(bounded(now.bad, now.total));
    }
    if let Some(d) = dropped {
        let counted_on = |was: f64, was_before: f64, is: f64| if was < was_before { is > was } else { is >= was };
        if counted_on(d.total, before.total, now.total) && counted_on(d.bad, before.bad, now.bad) {
            return Ok(bounded(now.bad - d.bad, now.total - d.total));
        }
    }
    let (counter, from, to) = if now.total < before.total {
        ("total", before.total, now.total)
    } else {
        ("bad", before.bad, now.bad)
    };
    Err(CounterError::WentDown {
        version,
        counter,
        from: count_text(from),
        to: count_text(to),
    })
}

/// What both versions served since the reading in `state` (canary, then stable).
pub fn served_since(
    state: &EvidenceState,
    canary: EventCounts,
    stable: EventCounts,
) -> Result<(EventCounts, EventCounts), CounterError> {
    let side = |i: usize, now: EventCounts| {
        let before = state.reading.get(i).copied().unwrap_or_default();
        served(VERSIONS[i], before, now, state.dropped.get(i).copied())
    };
    Ok((side(0, canary)?, side(1, stable)?))
}

/// Both versions' counters as a run's first look reads them (it counts nothing yet), refused if
/// they cannot be a counter's.
pub fn first_reading(canary: EventCounts, stable: EventCounts) -> Result<(), CounterError> {
    checked(VERSIONS[0], canary)?;
    checked(VERSIONS[1], stable)?;
    Ok(())
}

/// The state to go on from after a look refused for `error`: the last good reading kept, and
/// a fall remembered, to count on from if the counters do.
pub fn refused_state(
    previous: &EvidenceState,
    error: &CounterError,
    canary: EventCounts,
    stable: EventCounts,
) -> EvidenceState {
    EvidenceState {
        dropped: match error {
            CounterError::WentDown { .. } => vec![canary, stable],
            CounterError::Impossible { .. } => previous.dropped.clone(),
        },
        ..previous.clone()
    }
}

pub fn add(a: EventCounts, b: EventCounts) -> EventCounts {
    EventCounts {
        bad: a.bad + b.bad,
        total: a.total + b.total,
    }
}

/// `12,345` for a count, `12.5` for a fraction of one.
pub fn count_text(n: f64) -> String {
    if n.fract().abs() > 1e-9 && n < 1000.0 {
        return format!("{n:.1}");
    }
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate in percent with enough digits to tell small ones apart: `2.1%`, `0.05%`.
pub fn percent_text(bad: f64, total: f64) -> String {
    if total <= 0.0 {
        return "-".into();
    }
    let p = 100.0 * bad / total;
    // What rounds to 1.0% or more reads with one decimal.
    if p == 0.0 || p >= 0.95 {
        format!("{p:.1}%")
    } else {
        format!("{}%", significant(p, 2))
    }
}

/// A ratio as people read one: `2.1`, `1.0`, `0.85`, `12`.
pub fn ratio_text(r: f64) -> String {
    if r.is_finite() && (0.95..99.5).contains(&r) {
        format!("{r:.1}")
    } else {
        significant(r, 2)
    }
}

/// A number to `digits` significant digits, without trailing zeros: `310`, `2.1`, `0.052`, `1.2e6`.
pub fn significant(x: f64, digits: i32) -> String {
    if !x.is_finite() {
        return if x > 0.0 { "inf".into() } else { "-".into() };
    }
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{:.*e}", (digits - 1).max(0) as usize, x);
    }
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(bad: f64, total: f64) -> EventCounts {
        EventCounts { bad, total }
    }

    fn served_(before: EventCounts, now: EventCounts) -> Result<EventCounts, CounterError> {
        served("canary", before, now, None)
    }

    #[test]
    fn increments_survive_restarts_and_skew() {
        assert_eq!(served_(c(5.0, 100.0), c(7.0, 150.0)), Ok(c(2.0, 50.0)));
        // A counter that fell to near zero restarted: what it shows now was served since.
        assert_eq!(served_(c(5.0, 100.0), c(1.0, 10.0)), Ok(c(1.0, 10.0)));
        // Bad requests read a moment after all of them never outnumber them.
        assert_eq!(served_(c(0.0, 100.0), c(9.0, 105.0)), Ok(c(5.0, 5.0)));
    }

    #[test]
    fn what_no_counter_can_do_is_refused() {
        let impossible = |now: EventCounts| served_(c(5.0, 100.0), now).unwrap_err();
        assert_eq!(
            impossible(c(f64::NAN, 150.0)).to_string(),
            "the canary's bad counter reads NaN, which no counter can: not counted (check the query and the exporter)"
        );
        assert!(matches!(
            impossible(c(-1.0, 150.0)),
            CounterError::Impossible { counter: "bad", .. }
        ));
        assert!(matches!(
            impossible(c(6.0, f64::INFINITY)),
            CounterError::Impossible { counter: "total", .. }
        ));
        // A fall that is not to near zero: neither counted nor taken for a restart.
        let fell = served("stable", c(50.0, 10_000.0), c(40.0, 6_000.0), None).unwrap_err();
        assert_eq!(
            fell.to_string(),
            "the stable's total counter went down from 10,000 to 6,000 without restarting: not counted, nor taken as a restart (a series left the sum, or Prometheus answered wrong); counting goes on once it passes 10,000, or from 6,000 if it counts on from there"
        );
        // Bad requests falling while the total counts on (their series vanished) is no restart.
        assert!(matches!(
            served_(c(50.0, 10_000.0), c(0.0, 10_500.0)),
            Err(CounterError::WentDown { counter: "bad", .. })
        ));
    }

    #[test]
    fn after_a_fall_counting_goes_on_from_the_last_good_reading_or_from_the_fall_if_it_holds() {
        let good = c(50.0, 10_000.0);
        let fall = c(40.0, 6_000.0);
        // Back above the last good reading: counted from it, the fall a passing wrong answer.
        assert_eq!(served("canary", good, c(52.0, 10_200.0), Some(fall)), Ok(c(2.0, 200.0)));
        // Still below it, but counting on from the fall: counted from the fall.
        assert_eq!(served("canary", good, c(41.0, 6_100.0), Some(fall)), Ok(c(1.0, 100.0)));
        // Stuck at the fall: not counting on, still refused.
        assert!(served("canary", good, fall, Some(fall)).is_err());
        // Falling further: refused.
        assert!(served("canary", good, c(45.0, 5_000.0), Some(fall)).is_err());
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(count_text(79_000.0), "79,000");
        assert_eq!(count_text(84.0), "84");
        assert_eq!(count_text(1_234_567.0), "1,234,567");
        assert_eq!(percent_text(84.0, 4000.0), "2.1%");
        assert_eq!(percent_text(2.0, 4000.0), "0.05%");
        assert_eq!(percent_text(0.0, 10.0), "0.0%");
        assert_eq!(percent_text(222.0, 22_216.0), "1.0%");
        assert_eq!(ratio_text(2.0), "2.0");
        assert_eq!(ratio_text(0.853), "0.85");
        assert_eq!(ratio_text(310.0), "310");
        assert_eq!(significant(310.4, 2), "310");
        assert_eq!(significant(2.14, 2), "2.1");
        assert_eq!(significant(0.0523, 2), "0.052");
        assert_eq!(significant(1.23e7, 2), "1.2e7");
    }
}
