//! Request counts from the real API server's audit log (`cluster/up` writes one JSON line per
//! request): what a client asked of one namespace, as the simulated cluster counts it.

use serin::sim::requests::RequestKey;
use std::collections::BTreeMap;
use std::path::Path;

/// The requests made in `namespace`, by client (the User-Agent's product), verb, group,
/// resource (with its subresource) and code.
pub fn requests_in(log: &Path, namespace: &str) -> Vec<(RequestKey, u64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut counts: BTreeMap<RequestKey, u64> = BTreeMap::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let object = &event["objectRef"];
        if object["namespace"] != namespace {
            continue;
        }
        let str_of = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        let resource = match object["subresource"].as_str() {
            Some(sub) => format!("{}/{sub}", str_of(&object["resource"])),
            None => str_of(&object["resource"]),
        };
        let agent = str_of(&event["userAgent"]);
        let key = RequestKey {
            client: agent.split('/').next().unwrap_or("").to_string(),
            verb: str_of(&event["verb"]),
            group: str_of(&object["apiGroup"]),
            resource,
            code: event["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
        };
        *counts.entry(key).or_default() += 1;
    }
    counts.into_iter().collect()
}
