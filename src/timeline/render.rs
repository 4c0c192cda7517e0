//! The timeline as `serin plan` prints it.

use super::Timeline;
use std::fmt::Write;

/// `0s`, `45s`, `5m`, `1h30m`, `2d3h`: the largest two units, as durations are written in specs.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "-".into();
    }
    let s = seconds.round().max(0.0) as u64;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let parts = [(d, "d"), (h, "h"), (m, "m"), (sec, "s")];
    let Some(first) = parts.iter().position(|(n, _)| *n > 0) else {
        return "0s".into();
    };
    let mut out = String::new();
    for (n, unit) in parts.iter().skip(first).take(2) {
        if *n > 0 {
            let _ = write!(out, "{n}{unit}");
        }
    }
    out
}

/// `5m`, or `5m–9m` when the earliest and latest differ.
fn span(range: [f64; 2]) -> String {
    let (a, b) = (duration(range[0]), duration(range[1]));
    if a == b || range[1].is_nan() {
        a
    } else {
        format!("{a}–{b}")
    }
}

fn percent(p: f64) -> String {
    if (p - p.round()).abs() < 0.05 {
        format!("{}%", p.round())
    } else {
        format!("{p:.1}%")
    }
}

fn count(n: f64) -> String {
    let n = n.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

pub fn text(t: &Timeline) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Rollout {}/{}: {}, {} replicas, traffic by {}",
        t.namespace, t.name, t.strategy, t.replicas, t.traffic
    );
    let _ = writeln!(
        out,
        "\nThe next update, step by step (times from the update; earliest–latest):"
    );
    let rps = t.rps;
    let mut rows = vec![
        ["STEP", "WHAT", "TRAFFIC TO NEW", "PODS NEW/OLD", "STARTS", "LASTS"]
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    ];
    if let Some(r) = rps {
        rows[0].push(format!("REQUESTS TO NEW (at {} rps)", count(r)));
    }
    for s in &t.steps {
        let lasts = if s.waits_for_person {
            format!("{} + until promoted", span(s.lasts))
        } else {
            span(s.lasts)
        };
        let mut row = vec![
            (s.index + 1).to_string(),
            s.step.clone(),
            percent(s.traffic),
            format!("{}/{}", s.new_pods, s.old_pods),
            span(s.starts),
            lasts,
        ];
        if let (Some(r), Some(n)) = (rps, s.requests) {
            let waiting = if s.waits_for_person {
                format!(" + {}/min while waiting", count(r * s.traffic / 100.0 * 60.0))
            } else {
                String::new()
            };
            row.push(format!("{}{waiting}", count(n)));
        }
        rows.push(row);
    }
    out.push_str(&table(&rows));
    match t.promoted_after {
        Some([a, b]) => {
            let _ = write!(
                out,
                "\nFull promotion: earliest {}, latest {}",
                duration(a),
                duration(b)
            );
            if b > a {
                out.push_str(" (the latest: each metric finds no data at first, as often as it tolerates)");
            }
            out.push('\n');
        }
        None => out.push_str("\nFull promotion: not reached (see the notes)\n"),
    }
    if !t.waits_for_people.is_empty() {
        let steps: Vec<String> = t.waits_for_people.iter().map(|i| (i + 1).to_string()).collect();
        let _ = writeln!(
            out,
            "  plus the time people take: `kubectl serin promote` is needed at step {}",
            steps.join(", ")
        );
    }
    if !t.failures.is_empty() {
        out.push_str("\nIf an analysis fails (each metric failing at its first measurement):\n");
        let mut rows = vec![
            [
                "FAILING",
                "TRAFFIC TO NEW",
                "FOUND AFTER",
                "TRAFFIC BACK",
                "NEW PODS GONE",
            ]
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ];
        if rps.is_some() {
            rows[0].push("REQUESTS TO NEW (FROM THE START)".into());
        }
        for f in &t.failures {
            let mut row = vec![
                f.what.clone(),
                percent(f.traffic),
                f.detected_after.map_or("not before promotion".into(), duration),
                f.traffic_back_after
                    .map_or("never".into(), |s| format!("{} later", duration(s))),
                f.pods_gone_after
                    .map_or("-".into(), |s| format!("{} later", duration(s))),
            ];
            if let Some(n) = f.requests {
                row.push(count(n));
            }
            rows.push(row);
        }
        out.push_str(&table(&rows));
        if let Some(f) = t.failures.iter().find(|f| f.detected_after.is_some()) {
            let _ = writeln!(out, "  Traffic goes back as {}.", f.how);
        }
        for f in t.failures.iter().filter(|f| f.detected_after.is_none()) {
            let _ = writeln!(
                out,
                "  Warning: {}: {}; lower its failureLimit or interval, or add a pause.",
                f.what, f.how
            );
        }
    }
    for n in &t.notes {
        let _ = writeln!(out, "\nNote: {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_specs_write_them() {
        assert_eq!(duration(0.0), "0s");
        assert_eq!(duration(45.2), "45s");
        assert_eq!(duration(300.0), "5m");
        assert_eq!(duration(5400.0), "1h30m");
        assert_eq!(duration(90061.0), "1d1h");
        assert_eq!(duration(f64::NAN), "-");
        assert_eq!(count(1234567.4), "1,234,567");
        assert_eq!(count(999.0), "999");
        assert_eq!(percent(33.333), "33.3%");
        assert_eq!(percent(25.0), "25%");
    }
}
