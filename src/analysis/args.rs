//! `{{args.NAME}}` in every field of a metric. In a PromQL query (and a CEL condition) a value
//! inside a quoted string is escaped as such; outside quotes only a plain token (a name or a
//! number) is allowed: no argument can ever change what the query means. Elsewhere (an address,
//! a header, a Job's spec) the value goes in as it is, into an already-parsed string.

use crate::crd::analysis::Metric;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArgError {
    #[error("{{{{args.{0}}}}} has no value")]
    Missing(String),
    /// The value is kept for callers that may show it; the message never shows it (it may be a
    /// Secret's).
    #[error(
        "argument {name} is used where its value could change what the expression means (outside a quoted string only names and numbers are allowed; inside a raw string no quote or backslash)"
    )]
    Unsafe { name: String },
    #[error("the query has an unclosed {{{{args. placeholder")]
    Unclosed,
    #[error("{{{{{0}}}}} is not an argument: write {{{{args.NAME}}}}")]
    Unknown(String),
    #[error("{field}: {source}")]
    In {
        field: String,
        #[source]
        source: Box<ArgError>,
    },
    #[error("the metric does not read back after its arguments were put in: {0}")]
    Shape(String),
}

/// What a placeholder becomes: a value, or itself, to be filled later (a Secret's, read only
/// when measuring).
pub enum Fill<'a> {
    Value(&'a str),
    Later,
}

/// Where placeholders find their values.
pub trait Lookup {
    fn fill(&self, name: &str) -> Option<Fill<'_>>;
    /// What `{{version}}` (in a `compare` or `sloBurnRate` query) becomes: left for each
    /// measurement to fill in, unless this says.
    fn version(&self) -> Option<&str> {
        None
    }
    /// What `{{service}}` becomes: the version's Service (`stableService`, `canaryService`).
    fn service(&self) -> Option<&str> {
        None
    }
}

/// The placeholder a `compare` or `sloBurnRate` query writes for each version's hash.
pub const VERSION_TAG: &str = "version";
/// The same for each version's Service, for metrics labelled by Service rather than Pod (NGINX).
pub const SERVICE_TAG: &str = "service";

/// `{{version}}` and `{{service}}` filled in for one version, and arguments left as they are.
pub struct Version<'a> {
    pub hash: &'a str,
    pub service: Option<&'a str>,
}

impl Lookup for Version<'_> {
    fn fill(&self, _: &str) -> Option<Fill<'_>> {
        Some(Fill::Later)
    }
    fn version(&self) -> Option<&str> {
        Some(self.hash)
    }
    fn service(&self) -> Option<&str> {
        self.service
    }
}

/// What a `{{ ... }}` tag names.
enum Tag<'a> {
    Arg(&'a str),
    Version,
    Service,
}

fn tag(inner: &str) -> Result<Tag<'_>, ArgError> {
    match inner.trim() {
        VERSION_TAG => Ok(Tag::Version),
        SERVICE_TAG => Ok(Tag::Service),
        _ => tag_name(inner).map(Tag::Arg),
    }
}

impl Lookup for BTreeMap<String, String> {
    fn fill(&self, name: &str) -> Option<Fill<'_>> {
        self.get(name).map(|v| Fill::Value(v))
    }
}

/// Values for some arguments; the others named in `later` stay as placeholders.
pub struct Partial<'a> {
    pub values: &'a BTreeMap<String, String>,
    pub later: &'a BTreeSet<String>,
}

impl Lookup for Partial<'_> {
    fn fill(&self, name: &str) -> Option<Fill<'_>> {
        match self.values.get(name) {
            Some(v) => Some(Fill::Value(v)),
            None => self.later.contains(name).then_some(Fill::Later),
        }
    }
}

/// The name of the argument in a `{{ ... }}` tag, trimmed as Argo Rollouts trims it.
fn tag_name(inner: &str) -> Result<&str, ArgError> {
    let inner = inner.trim();
    inner
        .strip_prefix("args.")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ArgError::Unknown(inner.to_string()))
}

/// The arguments a text uses.
pub fn used_in(text: &str) -> Result<BTreeSet<String>, ArgError> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(ArgError::Unclosed)?;
        if let Tag::Arg(name) = tag(&after[..end])? {
            out.insert(name.to_string());
        }
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Replaces every `{{args.NAME}}` of a text that is not a query with its value, as it is.
pub fn substitute_plain(text: &str, args: &impl Lookup) -> Result<String, ArgError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(ArgError::Unclosed)?;
        let fill = match tag(&after[..end])? {
            Tag::Arg(name) => args.fill(name).ok_or_else(|| ArgError::Missing(name.to_string()))?,
            Tag::Version => args.version().map_or(Fill::Later, Fill::Value),
            Tag::Service => args.service().map_or(Fill::Later, Fill::Value),
        };
        match fill {
            Fill::Value(v) => out.push_str(v),
            Fill::Later => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Fields whose text is an expression (PromQL or CEL): values go in escaped, as literals.
fn is_expression(path: &[String]) -> bool {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    matches!(
        p.as_slice(),
        ["provider", "prometheus", "query"]
            | ["provider", "compare" | "sloBurnRate", "bad" | "total"]
            | ["successCondition"]
            | ["failureCondition"]
    )
}

/// What to do with one string field of a metric, given its path: its new text.
type FieldFn<'a> = dyn FnMut(&[String], &str) -> Result<String, ArgError> + 'a;

fn walk(value: &mut serde_json::Value, path: &mut Vec<String>, f: &mut FieldFn) -> Result<(), ArgError> {
    match value {
        serde_json::Value::String(s) if s.contains("{{") => {
            let replaced = f(path, s).map_err(|e| ArgError::In {
                field: path.join("."),
                source: Box::new(e),
            })?;
            *s = replaced;
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                walk(item, path, f)?;
                path.pop();
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                path.push(k.clone());
                walk(v, path, f)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// The metric with every `{{args.NAME}}` replaced: escaped in its query and conditions, as it is
/// elsewhere. The metric's name is left as written, since results are kept under it.
pub fn resolve_metric(metric: &Metric, args: &impl Lookup) -> Result<Metric, ArgError> {
    let mut value = serde_json::to_value(metric).map_err(|e| ArgError::Shape(e.to_string()))?;
    let name = metric.name.clone();
    walk(&mut value, &mut Vec::new(), &mut |path, text| {
        if path == ["name"] {
            Ok(text.to_string())
        } else if is_expression(path) {
            substitute(text, args)
        } else {
            substitute_plain(text, args)
        }
    })?;
    let mut out: Metric = serde_json::from_value(value).map_err(|e| ArgError::Shape(e.to_string()))?;
    out.name = name;
    Ok(out)
}

/// The arguments a metric uses anywhere but its name.
pub fn used_by(metric: &Metric) -> Result<BTreeSet<String>, ArgError> {
    let mut value = serde_json::to_value(metric).map_err(|e| ArgError::Shape(e.to_string()))?;
    let mut used = BTreeSet::new();
    walk(&mut value, &mut Vec::new(), &mut |path, text| {
        if path != ["name"] {
            used.extend(used_in(text)?);
        }
        Ok(text.to_string())
    })?;
    Ok(used)
}

/// Escapes a value for a double-quoted PromQL string.
pub fn escape_label_value(v: &str) -> String {
    escape_for(v, '"')
}

/// Escapes a value for a string in `quote` (`"` or `'`), as PromQL and CEL read escapes.
pub fn escape_for_quote(v: &str, quote: char) -> String {
    escape_for(v, quote)
}

fn escape_for(v: &str, quote: char) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
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

/// Where in an expression a placeholder stands.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Code,
    /// A `#` (PromQL) or `//` (CEL) comment, to the end of the line.
    Comment,
    /// A string in this quote; raw strings (PromQL's backticks, CEL's `r"…"`) have no escapes.
    Quoted {
        quote: char,
        raw: bool,
    },
}

/// A value put into an expression where it stands, or `None` when it could change the meaning.
fn fill_in(value: &str, place: Place) -> Option<String> {
    match place {
        Place::Code | Place::Comment => plain_token(value).then(|| value.to_string()),
        Place::Quoted { quote, raw: true } => {
            (!value.contains(quote) && !value.contains(['\n', '\r'])).then(|| value.to_string())
        }
        Place::Quoted { quote, raw: false } => Some(escape_for(value, quote)),
    }
}

/// Replaces every `{{args.NAME}}` of a PromQL query (or a CEL condition) with its value, put in
/// so that it can only be a literal: escaped inside a string, a plain name or number elsewhere.
pub fn substitute(query: &str, args: &impl Lookup) -> Result<String, ArgError> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    let mut place = Place::Code;
    let mut escaped = false;
    // The two characters before this one, to tell a raw string's `r"` from a name ending in r.
    let mut before: (char, char) = (' ', ' ');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("{{") {
            let Some(end) = after.find("}}") else {
                return Err(ArgError::Unclosed);
            };
            let (fill, name) = match tag(&after[..end])? {
                Tag::Arg(name) => (
                    args.fill(name).ok_or_else(|| ArgError::Missing(name.to_string()))?,
                    name,
                ),
                Tag::Version => (args.version().map_or(Fill::Later, Fill::Value), VERSION_TAG),
                Tag::Service => (args.service().map_or(Fill::Later, Fill::Value), SERVICE_TAG),
            };
            match fill {
                Fill::Value(v) => match fill_in(v, place) {
                    Some(text) => out.push_str(&text),
                    None => return Err(ArgError::Unsafe { name: name.to_string() }),
                },
                Fill::Later => out.push_str(&rest[..2 + end + 2]),
            }
            rest = &after[end + 2..];
            before = ('}', '}');
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        place = match place {
            Place::Code if c == '#' || (c == '/' && rest[1..].starts_with('/')) => Place::Comment,
            Place::Code if matches!(c, '"' | '\'' | '`') => {
                let raw =
                    c == '`' || (matches!(before.1, 'r' | 'R') && !(before.0.is_alphanumeric() || before.0 == '_'));
                Place::Quoted { quote: c, raw }
            }
            Place::Comment if c == '\n' => Place::Code,
            Place::Quoted { raw: false, .. } if c == '\\' && !escaped => {
                escaped = true;
                out.push(c);
                rest = &rest[1..];
                before = (before.1, c);
                continue;
            }
            Place::Quoted { quote, .. } if c == quote && !escaped => Place::Code,
            other => other,
        };
        escaped = false;
        out.push(c);
        rest = &rest[c.len_utf8()..];
        before = (before.1, c);
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

    #[test]
    fn each_version_fills_in_its_hash_and_service_and_arguments_wait() {
        let q = r#"sum(x{h="{{version}}",s="{{ service }}",ns="{{args.ns}}"})"#;
        assert_eq!(used_in(q).unwrap(), BTreeSet::from(["ns".to_string()]));
        let v = Version {
            hash: "abc",
            service: Some("web-canary"),
        };
        assert_eq!(
            substitute(q, &v).unwrap(),
            r#"sum(x{h="abc",s="web-canary",ns="{{args.ns}}"})"#
        );
        // Arguments go in first, at the run's making; the versions stay for each measurement.
        let early = substitute(q, &args(&[("ns", "shop")])).unwrap();
        assert_eq!(early, r#"sum(x{h="{{version}}",s="{{ service }}",ns="shop"})"#);
        // A hash is escaped like any value.
        let evil = Version {
            hash: r#"a"} or up{x=""#,
            service: None,
        };
        assert!(substitute(q, &evil).unwrap().contains(r#"a\"} or up{x=\""#));
    }

    #[test]
    fn tags_are_trimmed_and_unknown_ones_refused() {
        assert_eq!(
            substitute_plain("http://{{ args.host }}:9090", &args(&[("host", "prom")])).unwrap(),
            "http://prom:9090"
        );
        assert_eq!(
            substitute_plain("{{args.x}}", &args(&[])),
            Err(ArgError::Missing("x".into()))
        );
        assert!(matches!(
            substitute_plain("{{workflow.name}}", &args(&[])),
            Err(ArgError::Unknown(_))
        ));
        assert_eq!(
            substitute_plain("a {{args.x", &args(&[("x", "1")])),
            Err(ArgError::Unclosed)
        );
        assert_eq!(
            used_in("{{args.a}}-{{ args.b }}-{{args.a}}").unwrap(),
            ["a".to_string(), "b".to_string()].into()
        );
    }

    #[test]
    fn every_field_of_a_metric_takes_arguments() {
        let m: Metric = serde_json::from_value(serde_json::json!({
            "name": "errors-{{args.x}}",
            "successCondition": "result < {{args.limit}}",
            "provider": {"prometheus": {
                "address": "{{args.prometheus}}",
                "query": "up{job=\"{{args.job}}\"}",
                "timeout": "{{args.timeout}}",
                "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}]
            }}
        }))
        .unwrap();
        let values = args(&[
            ("prometheus", "http://prom:9090"),
            ("job", "a\"b"),
            ("timeout", "7"),
            ("token", "t0k"),
            ("limit", "0.05"),
        ]);
        assert_eq!(
            used_by(&m).unwrap(),
            ["job", "limit", "prometheus", "timeout", "token"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
        let r = resolve_metric(&m, &values).unwrap();
        let p = r.provider.prometheus.unwrap();
        assert_eq!(p.address, "http://prom:9090");
        assert_eq!(p.query, r#"up{job="a\"b"}"#, "escaped where it enters PromQL");
        assert_eq!(p.headers[0].value, "Bearer t0k");
        assert_eq!(
            p.timeout,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                "7".into()
            ))
        );
        assert_eq!(r.success_condition.as_deref(), Some("result < 0.05"));
        assert_eq!(r.name, "errors-{{args.x}}", "the name is kept as written");
        // A condition cannot be rewritten by a value.
        let evil = args(&[("limit", "1 || true")]);
        let err = resolve_metric(&m, &values.clone().into_iter().chain(evil).collect::<BTreeMap<_, _>>()).unwrap_err();
        assert!(err.to_string().starts_with("successCondition:"), "{err}");
        let mut missing = values;
        missing.remove("prometheus");
        let err = resolve_metric(&m, &missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "provider.prometheus.address: {{args.prometheus}} has no value"
        );
    }

    #[test]
    fn some_values_now_and_a_secret_later() {
        let values = args(&[("hash", "abc")]);
        let later: BTreeSet<String> = ["token".to_string()].into();
        let partial = Partial {
            values: &values,
            later: &later,
        };
        let q = r#"x{h="{{args.hash}}",t="{{ args.token }}"}"#;
        let now = substitute(q, &partial).unwrap();
        assert_eq!(now, r#"x{h="abc",t="{{ args.token }}"}"#);
        assert_eq!(
            substitute(&now, &args(&[("token", "t\"0")])).unwrap(),
            r#"x{h="abc",t="t\"0"}"#,
            "escaped when it goes in"
        );
        assert_eq!(
            substitute_plain("Bearer {{args.token}} {{args.hash}}", &partial).unwrap(),
            "Bearer {{args.token}} abc"
        );
        assert_eq!(
            substitute_plain("{{args.other}}", &partial),
            Err(ArgError::Missing("other".into()))
        );
    }

    #[test]
    fn no_quote_or_comment_lets_a_value_out() {
        let evil = args(&[("v", "x'} or vector(1) or up{job='y")]);
        let single = substitute("up{job='{{args.v}}'}", &evil).unwrap();
        assert_eq!(single, r"up{job='x\'} or vector(1) or up{job=\'y'}");
        // Inside double quotes a single quote needs no escape (PromQL refuses `\'` there).
        let double = substitute(r#"up{job="{{args.v}}"}"#, &evil).unwrap();
        assert_eq!(double, r#"up{job="x'} or vector(1) or up{job='y"}"#);
        // Raw strings have no escapes: a value holding their quote is refused.
        let tick = args(&[("v", "a` or vector(1) or `b")]);
        assert!(matches!(
            substitute("x{a=`{{args.v}}`}", &tick),
            Err(ArgError::Unsafe { .. })
        ));
        assert_eq!(
            substitute("x{a=`{{args.v}}`}", &args(&[("v", r#"a"b\c"#)])).unwrap(),
            r#"x{a=`a"b\c`}"#
        );
        let raw = args(&[("v", r#"a" || true || ""#)]);
        assert!(matches!(
            substitute(r#"r"{{args.v}}" == 'x'"#, &raw),
            Err(ArgError::Unsafe { .. })
        ));
        assert_eq!(
            substitute(r#"result == "{{args.v}}""#, &raw).unwrap(),
            r#"result == "a\" || true || \"""#,
            "an ordinary string is escaped"
        );
        // A comment ends at a newline: there, as in code, only names and numbers.
        let newline = args(&[("v", "x\nor vector(1)")]);
        assert!(matches!(
            substitute("up # {{args.v}}", &newline),
            Err(ArgError::Unsafe { .. })
        ));
        assert!(matches!(
            substitute("result < 1 // {{args.v}}", &newline),
            Err(ArgError::Unsafe { .. })
        ));
        // An apostrophe in a comment opens no string.
        assert!(matches!(
            substitute("up # it's\n> {{args.v}}", &args(&[("v", "1 or vector(1)")])),
            Err(ArgError::Unsafe { .. })
        ));
        assert_eq!(
            substitute("up # it's\n> {{args.v}}", &args(&[("v", "0.5")])).unwrap(),
            "up # it's\n> 0.5"
        );
        // The message never shows the value: it may be a Secret's.
        let secret = args(&[("v", "hunter2 or 1")]);
        let err = substitute("x > {{args.v}}", &secret).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
