//! The request options a client gives in the query string, checked as the API server checks them
//! before it does anything: a number that is not one is a 400, and a `dryRun`, `fieldValidation`,
//! `fieldManager`, `propagationPolicy` or `resourceVersionMatch` it does not accept is a 422 on
//! the options kind (`CreateOptions.meta.k8s.io "" is invalid: ...`). Nothing is written when
//! they are wrong: a misspelt `dryRun` must not turn into a real write.

use super::status::ApiError;

/// The options kind a request's query string is read into.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Options {
    List,
    Get,
    Create,
    Update,
    Patch,
    Delete,
}

impl Options {
    fn kind(self) -> &'static str {
        match self {
            Options::List => "ListOptions",
            Options::Get => "GetOptions",
            Options::Create => "CreateOptions",
            Options::Update => "UpdateOptions",
            Options::Patch => "PatchOptions",
            Options::Delete => "DeleteOptions",
        }
    }

    fn writes(self) -> bool {
        matches!(
            self,
            Options::Create | Options::Update | Options::Patch | Options::Delete
        )
    }
}

const FIELD_MANAGER_MAX: usize = 128;

/// Checks the query parameters `all` (every key and value, repeats included) of a request read
/// into `options`.
pub fn check(options: Options, all: &[(String, String)]) -> Result<(), ApiError> {
    let get = |key: &str| all.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    for key in ["limit", "timeoutSeconds", "gracePeriodSeconds"] {
        if let Some(v) = get(key)
            && v.parse::<i64>().is_err()
        {
            return Err(ApiError::bad_request(format!(
                "strconv.ParseInt: parsing {v:?}: invalid syntax"
            )));
        }
    }
    let mut causes: Vec<(String, String)> = Vec::new();
    if options.writes() {
        let dry_run: Vec<&str> = all
            .iter()
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v.as_str())
            .collect();
        if dry_run.iter().any(|v| *v != "All") {
            let given: Vec<String> = dry_run.iter().map(|v| format!("{v:?}")).collect();
            causes.push((
                "dryRun".into(),
                format!(
                    "Unsupported value: []string{{{}}}: supported values: \"All\"",
                    given.join(", ")
                ),
            ));
        }
    }
    if matches!(options, Options::Create | Options::Update | Options::Patch) {
        if let Some(v) = get("fieldValidation")
            && !matches!(v, "" | "Ignore" | "Strict" | "Warn")
        {
            causes.push((
                "fieldValidation".into(),
                format!("Unsupported value: {v:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""),
            ));
        }
        if let Some(manager) = get("fieldManager") {
            if manager.len() > FIELD_MANAGER_MAX {
                causes.push((
                    "fieldManager".into(),
                    format!("Too long: may not be more than {FIELD_MANAGER_MAX} bytes"),
                ));
            }
            if let Some((at, c)) = manager.char_indices().find(|(_, c)| c.is_control()) {
                causes.push((
                    "fieldManager".into(),
                    format!(
                        "Invalid value: {manager:?}: invalid character U+{:04X} (at position {at})",
                        u32::from(c)
                    ),
                ));
            }
        }
    }
    if options == Options::Delete
        && let Some(p) = get("propagationPolicy")
        && !matches!(p, "Foreground" | "Background" | "Orphan")
    {
        causes.push((
            "propagationPolicy".into(),
            format!("Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""),
        ));
    }
    if options == Options::List
        && let Some(m) = get("resourceVersionMatch").filter(|m| !m.is_empty())
    {
        if !matches!(m, "Exact" | "NotOlderThan") {
            causes.push((
                "resourceVersionMatch".into(),
                format!("Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""),
            ));
        } else if get("resourceVersion").is_none_or(str::is_empty) {
            causes.push((
                "resourceVersionMatch".into(),
                "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &format!("{}.meta.k8s.io", options.kind()),
            "",
            causes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn accepts_what_clients_send() {
        assert!(
            check(
                Options::Create,
                &q(&[
                    ("dryRun", "All"),
                    ("fieldManager", "kubectl-client-side-apply"),
                    ("fieldValidation", "Strict")
                ])
            )
            .is_ok()
        );
        assert!(
            check(
                Options::List,
                &q(&[
                    ("limit", "500"),
                    ("resourceVersion", "0"),
                    ("resourceVersionMatch", "NotOlderThan")
                ])
            )
            .is_ok()
        );
        assert!(
            check(
                Options::Delete,
                &q(&[("propagationPolicy", "Foreground"), ("gracePeriodSeconds", "0")])
            )
            .is_ok()
        );
        // What a read ignores is not checked.
        assert!(check(Options::Get, &q(&[("dryRun", "foo")])).is_ok());
    }

    #[test]
    fn refuses_as_the_api_server_does() {
        let err = check(Options::Create, &q(&[("dryRun", "foo")])).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"foo"}: supported values: "All""#
        );
        let err = check(Options::Patch, &q(&[("fieldValidation", "strict")])).unwrap_err();
        assert!(
            err.message
                .starts_with(r#"PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict""#),
            "{}",
            err.message
        );
        let long = "m".repeat(129);
        let err = check(Options::Update, &q(&[("fieldManager", &long)])).unwrap_err();
        assert!(
            err.message
                .ends_with("fieldManager: Too long: may not be more than 128 bytes"),
            "{}",
            err.message
        );
        let err = check(Options::Delete, &q(&[("propagationPolicy", "Bogus")])).unwrap_err();
        assert!(
            err.message
                .contains(r#"supported values: "Foreground", "Background", "Orphan", "nil""#),
            "{}",
            err.message
        );
        let err = check(Options::List, &q(&[("resourceVersionMatch", "NotOlderThan")])).unwrap_err();
        assert!(
            err.message.contains("forbidden unless resourceVersion is provided"),
            "{}",
            err.message
        );
        let err = check(Options::List, &q(&[("limit", "ten")])).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (400, r#"strconv.ParseInt: parsing "ten": invalid syntax"#)
        );
    }
}
