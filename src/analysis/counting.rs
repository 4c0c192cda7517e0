//! Counts from counters: what each version served between two looks at its counters, with
//! counter resets (a Pod restarted, a series gone) taken as Prometheus' `increase` takes them.

use crate::crd::analysis::EventCounts;

/// What a counter went up by from `before` to `now`: a counter that went down was reset, and
/// counted again from zero.
fn increase(before: f64, now: f64) -> f64 {
    if !now.is_finite() || now <= 0.0 {
        0.0
    } else if !before.is_finite() || now < before {
        now
    } else {
        now - before
    }
}

/// The requests (and bad ones) served between two readings. Bad requests never exceed all of
/// them: the two counters may be scraped a moment apart.
pub fn served(before: EventCounts, now: EventCounts) -> EventCounts {
    let total = increase(before.total, now.total);
    EventCounts {
        bad: increase(before.bad, now.bad).min(total),
        total,
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

    #[test]
    fn increments_survive_resets_and_skew() {
        assert_eq!(served(c(5.0, 100.0), c(7.0, 150.0)), c(2.0, 50.0));
        // A counter that went down was reset: what it shows now was served since.
        assert_eq!(served(c(5.0, 100.0), c(1.0, 20.0)), c(1.0, 20.0));
        // Bad requests read a moment after all of them never outnumber them.
        assert_eq!(served(c(0.0, 100.0), c(9.0, 105.0)), c(5.0, 5.0));
        assert_eq!(served(c(0.0, 0.0), c(f64::NAN, 10.0)), c(0.0, 10.0));
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
