//! One query for both versions. A `compare` or `sloBurnRate` metric reads the same counter for
//! the canary and for stable, each with its hash in a label matcher; where the query is a plain
//! `sum(...)` over one series selector, asking `sum by (LABEL)` over both hashes at once gives the
//! same two numbers for half the queries. Anything else is asked once per version, as written.

/// A query that answers for both versions, and the label its series are split by.
#[derive(Debug, Clone, PartialEq)]
pub struct Batched {
    pub query: String,
    pub label: String,
}

/// Functions that keep their argument's labels: the only ones a batched query may wrap its
/// selector in.
const KEEPS_LABELS: [&str; 14] = [
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "resets",
    "changes",
    "sum_over_time",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "count_over_time",
    "last_over_time",
    "offset",
];

/// `query` (with `{{version}}` not yet filled in) asked once for `hashes`, when it allows it:
/// `sum(EXPR)` where EXPR is one selector, perhaps inside functions that keep labels, and
/// `{{version}}` is the whole value of one of its `LABEL="..."` matchers.
pub fn by_version(query: &str, hashes: [&str; 2]) -> Option<Batched> {
    if hashes
        .iter()
        .any(|h| h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return None;
    }
    let inner = outer_sum(query.trim())?;
    let (before, after) = split_version(inner)?;
    let label = matcher_label(before)?;
    let after = after.strip_prefix('"')?;
    if !one_selector(before, after) {
        return None;
    }
    // `matcher_label` saw `LABEL="` (not `!=`, `=~`): the `=` becomes `=~` for both hashes.
    let before = before.strip_suffix('"')?.trim_end().strip_suffix('=')?;
    let query = format!("sum by ({label}) ({before}=~\"{}|{}\"{after})", hashes[0], hashes[1]);
    Some(Batched {
        query,
        label: label.to_string(),
    })
}

/// What is inside `sum( ... )` when the whole query is one such call (no `by`, no `without`).
fn outer_sum(q: &str) -> Option<&str> {
    let rest = q.strip_prefix("sum")?.trim_start();
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    // The parenthesis that opens must be the one that closes at the end.
    let mut depth = 0i32;
    for c in inner.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    (depth == 0).then_some(inner)
}

/// The text around the one `{{version}}` (spaces inside the braces allowed); `None` unless there
/// is exactly one placeholder and it is that.
fn split_version(inner: &str) -> Option<(&str, &str)> {
    let start = inner.find("{{")?;
    let end = start + inner[start..].find("}}")? + 2;
    if inner[start + 2..end - 2].trim() != "version" || inner[end..].contains("{{") {
        return None;
    }
    Some((&inner[..start], &inner[end..]))
}

/// The label of the matcher `LABEL="` that `before` ends with.
fn matcher_label(before: &str) -> Option<&str> {
    let b = before.strip_suffix('"')?.trim_end().strip_suffix('=')?.trim_end();
    let start = b
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let label = &b[start..];
    let delimited = b[..start].trim_end().ends_with(['{', ',']);
    (!label.is_empty() && !label.starts_with(|c: char| c.is_ascii_digit()) && delimited).then_some(label)
}

/// One series selector, inside functions that keep labels: one `{...}`, no other words but
/// those functions and the metric's name, no operators between vectors.
fn one_selector(before: &str, after: &str) -> bool {
    let open = before.rfind('{');
    let close = after.find('}');
    let (Some(open), Some(close)) = (open, close) else {
        return false;
    };
    let outside_before = &before[..open];
    let outside_after = &after[close + 1..];
    if outside_before.contains(['{', '}']) || outside_after.contains(['{', '}']) {
        return false;
    }
    // Inside the braces, only more matchers: no placeholder, no selector.
    let matchers = format!("{}{}", &before[open + 1..], &after[..close]);
    if matchers.contains(['(', ')', '[', ']']) {
        return false;
    }
    let outside = format!("{outside_before} {outside_after}");
    // Durations in `[5m]` and `offset 1h` are the only other text allowed.
    let without_ranges = strip_brackets(&outside);
    let words: Vec<&str> = without_ranges
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| !w.is_empty())
        .collect();
    let metric = outside_before
        .trim_end()
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .next()
        .unwrap_or_default();
    let symbols_ok = without_ranges
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_:() ,\t\n".contains(c));
    symbols_ok
        && words
            .iter()
            .all(|w| KEEPS_LABELS.contains(w) || *w == metric || is_duration(w))
}

fn strip_brackets(s: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn is_duration(w: &str) -> bool {
    let units = w.trim_start_matches(|c: char| c.is_ascii_digit());
    units.len() < w.len() && ["ms", "s", "m", "h", "d", "w", "y"].contains(&units)
}

/// From a batched answer (`(labels, value)` per series), the sum of `hash`'s series, by the
/// label's value; a NaN among them kept, for the look to refuse. `None` without any.
pub fn split<'a>(
    series: impl IntoIterator<Item = (&'a std::collections::HashMap<String, String>, f64)>,
    label: &str,
    hash: &str,
) -> Option<f64> {
    let values: Vec<f64> = series
        .into_iter()
        .filter(|(labels, _)| labels.get(label).map(String::as_str) == Some(hash))
        .map(|(_, v)| v)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: [&str; 2] = ["7d9f8b6c5", "5c4b3a291"];

    #[test]
    fn a_sum_over_one_selector_is_asked_once_for_both_versions() {
        let b = by_version(
            r#"sum(rate(http_requests_total{job="web", pod_template_hash="{{version}}", code=~"5.."}[5m]))"#,
            H,
        )
        .unwrap();
        assert_eq!(
            b.query,
            r#"sum by (pod_template_hash) (rate(http_requests_total{job="web", pod_template_hash=~"7d9f8b6c5|5c4b3a291", code=~"5.."}[5m]))"#
        );
        assert_eq!(b.label, "pod_template_hash");
        let plain = by_version(
            r#"sum(requests_total{rollouts_pod_template_hash = "{{ version }}"})"#,
            H,
        )
        .unwrap();
        assert_eq!(
            plain.query,
            r#"sum by (rollouts_pod_template_hash) (requests_total{rollouts_pod_template_hash =~"7d9f8b6c5|5c4b3a291"})"#
        );
        assert!(by_version(r#"sum(increase(x{h="{{version}}"}[1h] offset 5m))"#, H).is_some());
    }

    #[test]
    fn queries_that_would_answer_otherwise_are_asked_per_version() {
        for q in [
            // Already grouped, or not a sum.
            r#"sum by (code) (rate(x{h="{{version}}"}[1m]))"#,
            r#"avg(rate(x{h="{{version}}"}[1m]))"#,
            r#"sum(rate(x{h="{{version}}"}[1m])) / 2"#,
            // Two selectors, or one matched by another operator.
            r#"sum(rate(x{h="{{version}}"}[1m]) / rate(y{h="{{version}}"}[1m]))"#,
            r#"sum(rate(x{h="{{version}}"}[1m]) * on() group_left y)"#,
            r#"sum(rate(x{h!="{{version}}"}[1m]))"#,
            r#"sum(rate(x{h=~"{{version}}"}[1m]))"#,
            // The hash is part of a value, or the Service is named too.
            r#"sum(rate(x{pod=~"web-{{version}}-.*"}[1m]))"#,
            r#"sum(rate(x{h="{{version}}", service="{{service}}"}[1m]))"#,
            // An inner aggregation drops the label.
            r#"sum(sum_by_pod(x{h="{{version}}"}))"#,
            r#"sum(max(x{h="{{version}}"}))"#,
            r#"sum(label_replace(x{h="{{version}}"}, "a", "b", "c", "d"))"#,
            r#"sum(x{h="{{version}}"}) + sum(y)"#,
        ] {
            assert_eq!(by_version(q, H), None, "{q}");
        }
        assert_eq!(by_version(r#"sum(x{h="{{version}}"})"#, ["abc", "a|b"]), None);
    }

    #[test]
    fn the_answer_is_split_by_the_label() {
        let series = |h: &str| std::collections::HashMap::from([("pod_template_hash".to_string(), h.to_string())]);
        let (a, b) = (series(H[0]), series(H[1]));
        let answer = [(&a, 3.0), (&b, 5.0)];
        assert_eq!(split(answer, "pod_template_hash", H[0]), Some(3.0));
        assert_eq!(split(answer, "pod_template_hash", H[1]), Some(5.0));
        assert_eq!(
            split([(&a, 3.0)], "pod_template_hash", H[1]),
            None,
            "no series: no data"
        );
    }
}
