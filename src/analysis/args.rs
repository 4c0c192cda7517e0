//! `{{args.NAME}}` in a query. Inside a quoted PromQL string the value is escaped as a label
//! value; outside quotes only a plain token (a name or a number) is allowed: no argument can ever
//! change what the query means.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArgError {
    #[error("the query uses {{{{args.{0}}}}} but no value was given for it")]
    Missing(String),
    #[error(
        "argument {name} is used outside a quoted string, where only names and numbers are allowed, and its value {value:?} is neither"
    )]
    Unsafe { name: String, value: String },
    #[error("the query has an unclosed {{{{args. placeholder")]
    Unclosed,
}

/// Escapes a value for a double-quoted PromQL string.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn plain_token(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.'))
}

/// Replaces every `{{args.NAME}}` of `query` with its value.
pub fn substitute(query: &str, args: &BTreeMap<String, String>) -> Result<String, ArgError> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    // Which quote we are inside, as PromQL strings go: "…", '…' or `…`.
    let mut quote: Option<char> = None;
    let mut escaped = false;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("{{") {
            let Some(end) = after.find("}}") else {
                return Err(ArgError::Unclosed);
            };
            let inner = after[..end].trim();
            if let Some(name) = inner.strip_prefix("args.") {
                let value = args.get(name).ok_or_else(|| ArgError::Missing(name.to_string()))?;
                match quote {
                    Some('`') if !value.contains('`') => out.push_str(value),
                    Some(_) => out.push_str(&escape_label_value(value)),
                    None if plain_token(value) => out.push_str(value),
                    None => {
                        return Err(ArgError::Unsafe {
                            name: name.to_string(),
                            value: value.clone(),
                        });
                    }
                }
                rest = &after[end + 2..];
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        match (quote, c) {
            (Some(q), '\\') if q != '`' && !escaped => escaped = true,
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'' | '`') => quote = Some(c),
            _ => escaped = false,
        }
        if c != '\\' {
            escaped = false;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn substitutes_inside_quotes_with_escaping() {
        let q = r#"sum(rate(http_requests_total{pod_template_hash="{{args.hash}}"}[1m]))"#;
        assert_eq!(
            substitute(q, &args(&[("hash", "abc")])).unwrap(),
            r#"sum(rate(http_requests_total{pod_template_hash="abc"}[1m]))"#
        );
    }

    #[test]
    fn an_injection_stays_inside_its_string() {
        let q = r#"up{job="{{args.job}}"}"#;
        let evil = r#"x"} or vector(1) or up{job="y"#;
        let out = substitute(q, &args(&[("job", evil)])).unwrap();
        assert_eq!(out, r#"up{job="x\"} or vector(1) or up{job=\"y"}"#);
        // The result is one selector: its only unescaped quotes are the template's own.
        let unescaped = out
            .match_indices('"')
            .filter(|(i, _)| !out[..*i].ends_with('\\'))
            .count();
        assert_eq!(unescaped, 2);
        let backslash = substitute(q, &args(&[("job", "a\\\"b")])).unwrap();
        assert_eq!(backslash, r#"up{job="a\\\"b"}"#);
    }

    #[test]
    fn outside_quotes_only_plain_tokens() {
        assert_eq!(
            substitute("rate(x[{{args.w}}])", &args(&[("w", "5m")])).unwrap(),
            "rate(x[5m])"
        );
        assert!(matches!(
            substitute("x > {{args.t}}", &args(&[("t", "1 or vector(1)")])),
            Err(ArgError::Unsafe { .. })
        ));
        assert_eq!(substitute("x", &args(&[])).unwrap(), "x");
        assert_eq!(
            substitute("{{args.nope}}", &args(&[])),
            Err(ArgError::Missing("nope".into()))
        );
    }
}
