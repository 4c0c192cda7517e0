//! Counts of the requests the API server answered, as `apiserver_request_total` on `/metrics`:
//! what each client costs (the controller's writes per step, its idle traffic).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestKey {
    pub client: String,
    pub verb: String,
    /// The API group (`""` for the core group), so that RBAC rules can be checked against it.
    pub group: String,
    pub resource: String,
    pub code: u16,
}

#[derive(Default)]
pub struct RequestCounts(Mutex<BTreeMap<RequestKey, u64>>);

impl RequestCounts {
    pub fn record(&self, key: RequestKey) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(key).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from(
            "# HELP apiserver_request_total Requests answered, by client, verb, group, resource and code.\n# TYPE apiserver_request_total counter\n",
        );
        for (k, n) in m.iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{client=\"{}\",verb=\"{}\",group=\"{}\",resource=\"{}\",code=\"{}\"}} {n}",
                k.client, k.verb, k.group, k.resource, k.code
            );
        }
        out
    }
}

/// Reads `render`'s text back (a client of the simulated cluster asking what it was sent).
pub fn parse(text: &str) -> Vec<(RequestKey, u64)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("apiserver_request_total{"))
        .filter_map(|rest| {
            let (labels, count) = rest.rsplit_once("} ")?;
            let field = |name: &str| {
                labels
                    .split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("")
                    .to_string()
            };
            let key = RequestKey {
                client: field("client"),
                verb: field("verb"),
                group: field("group"),
                resource: field("resource"),
                code: field("code").parse().ok()?,
            };
            Some((key, count.trim().parse().ok()?))
        })
        .collect()
}

impl RequestKey {
    /// A request that changes something (server-side apply included).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "apply" | "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// The Kubernetes verb of a request, from its method and query, as audit logs name them.
pub fn verb(method: &str, named: bool, watch: bool, content_type: &str) -> &'static str {
    match (method, named) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) if content_type.starts_with("application/apply-patch") => "apply",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_back_as_they_were_rendered() {
        let counts = RequestCounts::default();
        let key = RequestKey {
            client: "serin-controller".into(),
            verb: "apply".into(),
            group: "apps".into(),
            resource: "replicasets".into(),
            code: 200,
        };
        counts.record(key.clone());
        counts.record(key.clone());
        assert_eq!(parse(&counts.render()), vec![(key.clone(), 2)]);
        assert!(key.is_write());
    }
}
