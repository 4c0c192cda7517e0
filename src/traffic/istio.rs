//! Istio: the destination weights of the stable and canary hosts (or DestinationRule subsets) in
//! the named HTTP routes of a VirtualService the user owns, and the subsets' pod-template hashes.

use super::{Desired, RouterError, TrafficRouter, set_spec_fields};
use crate::crd::rollout::{IstioRouting, ManagedRoute, StringMatch};

impl TrafficRouter for IstioRouting {
    /// With a DestinationRule, its subsets select the versions' hashes and the VirtualService weighs
    /// the subsets; without one, the VirtualService weighs the two Services' hosts.
    async fn apply(&self, client: &kube::Client, d: &Desired<'_>) -> Result<(), RouterError> {
        let (stable, canary) = match &self.destination_rule {
            Some(dr) => {
                let kind = ("networking.istio.io", "v1beta1", "DestinationRule", "destinationrules");
                set_spec_fields(client, d.namespace, kind, &dr.name, |current| {
                    let s = subsets(
                        current,
                        &dr.stable_subset_name,
                        &dr.canary_subset_name,
                        d.stable_hash,
                        d.canary_hash,
                    )?;
                    Ok(s.map(|s| json!({"subsets": s})))
                })
                .await?;
                (dr.stable_subset_name.as_str(), dr.canary_subset_name.as_str())
            }
            None => (d.stable_service, d.canary_service),
        };
        let by_subset = self.destination_rule.is_some();
        let kind = ("networking.istio.io", "v1beta1", "VirtualService", "virtualservices");
        for vs in self.services() {
            let names = vs.routes.clone().unwrap_or_default();
            set_spec_fields(client, d.namespace, kind, &vs.name, |current| {
                let http = routed_http(
                    current, &names, stable, canary, d.weight, by_subset, d.headers, d.mirrors,
                )?;
                Ok(http.map(|http| json!({"http": http})))
            })
            .await?;
        }
        Ok(())
    }
}
use serde_json::{Value, json};

/// The Service a destination host names (`web-stable`, `web-stable.shop.svc.cluster.local`).
pub fn host_service(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// The `http` routes with the canary at `weight` percent, or `None` when they already say so.
/// `routes` picks routes by name; empty means every route that sends to the stable host.
pub fn weighted_http(
    vs: &Value,
    routes: &[String],
    stable: &str,
    canary: &str,
    weight: i32,
    by_subset: bool,
) -> Result<Option<Value>, RouterError> {
    let name = vs["metadata"]["name"].as_str().unwrap_or("");
    let http = vs["spec"]["http"]
        .as_array()
        .ok_or_else(|| RouterError::Invalid(format!("VirtualService {name} has no spec.http routes")))?;
    for wanted in routes {
        if !http.iter().any(|r| r["name"] == wanted.as_str()) {
            return Err(RouterError::Invalid(format!(
                "VirtualService {name} has no http route named {wanted:?}"
            )));
        }
    }
    // Host based: `stable`/`canary` name Services; subset based: DestinationRule subsets.
    let sends_to = |d: &Value, to: &str| {
        if by_subset {
            d["destination"]["subset"] == to
        } else {
            d["destination"]["host"].as_str().is_some_and(|h| host_service(h) == to)
        }
    };
    let mut out = Vec::with_capacity(http.len());
    let mut matched = 0;
    for (i, route) in http.iter().enumerate() {
        let picked = if routes.is_empty() {
            route["route"]
                .as_array()
                .is_some_and(|ds| ds.iter().any(|d| sends_to(d, stable)))
        } else {
            route["name"].as_str().is_some_and(|n| routes.iter().any(|r| r == n))
        };
        if !picked {
            out.push(route.clone());
            continue;
        }
        let dests = route["route"].as_array().cloned().unwrap_or_default();
        if !dests.iter().any(|d| sends_to(d, stable)) || !dests.iter().any(|d| sends_to(d, canary)) {
            return Err(RouterError::Invalid(format!(
                "http route {i} of VirtualService {name} must have destinations {stable:?} and {canary:?}"
            )));
        }
        matched += 1;
        let mut route = route.clone();
        for d in route["route"].as_array_mut().into_iter().flatten() {
            if sends_to(d, stable) {
                d["weight"] = json!(100 - weight);
            } else if sends_to(d, canary) {
                d["weight"] = json!(weight);
            }
        }
        out.push(route);
    }
    if matched == 0 {
        return Err(RouterError::Invalid(format!(
            "VirtualService {name} has no http route to the stable Service {stable:?}"
        )));
    }
    Ok(if out == *http { None } else { Some(Value::Array(out)) })
}

const MANAGED_PREFIX: &str = "serin-";

/// A string match as Istio writes one.
fn istio_string(v: &StringMatch) -> Value {
    match (&v.exact, &v.prefix, &v.regex) {
        (Some(e), _, _) => json!({"exact": e}),
        (_, Some(p), _) => json!({"prefix": p}),
        (_, _, Some(r)) => json!({"regex": r}),
        _ => json!({"regex": ".*"}),
    }
}

/// A managed route's matches: its headers (all of them), or Argo's mirror form (any entry, each
/// by uri, method and headers).
fn istio_match(route: &ManagedRoute) -> Value {
    if !route.requests.is_empty() {
        let entries: Vec<Value> = route
            .requests
            .iter()
            .map(|r| {
                let mut m = json!({});
                if let Some(p) = &r.path {
                    m["uri"] = istio_string(p);
                }
                if let Some(method) = &r.method {
                    m["method"] = istio_string(method);
                }
                if !r.headers.is_empty() {
                    let headers: serde_json::Map<String, Value> = r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_lowercase(), istio_string(v)))
                        .collect();
                    m["headers"] = Value::Object(headers);
                }
                m
            })
            .collect();
        return json!(entries);
    }
    let mut headers = serde_json::Map::new();
    for h in &route.match_ {
        headers.insert(
            h.header_name.to_lowercase(),
            istio_string(&h.header_value.clone().unwrap_or_default()),
        );
    }
    json!([{"headers": headers}])
}

/// The http routes, weighted, with Serin's header and mirror routes first (Istio takes the first
/// route that matches). `None` when the VirtualService already says all that.
#[allow(clippy::too_many_arguments)]
pub fn routed_http(
    vs: &Value,
    routes: &[String],
    stable: &str,
    canary: &str,
    weight: i32,
    by_subset: bool,
    headers: &[ManagedRoute],
    mirrors: &[ManagedRoute],
) -> Result<Option<Value>, RouterError> {
    let current = vs["spec"]["http"].clone();
    let mut user = vs.clone();
    if let Some(http) = user["spec"]["http"].as_array_mut() {
        http.retain(|r| !r["name"].as_str().is_some_and(|n| n.starts_with(MANAGED_PREFIX)));
    }
    let weighted = weighted_http(&user, routes, stable, canary, weight, by_subset)?
        .unwrap_or_else(|| user["spec"]["http"].clone());
    // Destinations as the user wrote them (short or fully qualified hosts; subsets of a host).
    let all_dests: Vec<Value> = weighted
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["route"].as_array().cloned().unwrap_or_default())
        .map(|d| d["destination"].clone())
        .collect();
    let dest_of = |to: &str| -> Value {
        if by_subset {
            let host = all_dests.iter().find_map(|d| d["host"].as_str()).unwrap_or(to);
            json!({"host": host, "subset": to})
        } else {
            let host = all_dests
                .iter()
                .find_map(|d| d["host"].as_str().filter(|h| host_service(h) == to))
                .unwrap_or(to);
            json!({"host": host})
        }
    };
    let mut out = Vec::new();
    for h in headers {
        out.push(
            json!({"name": format!("{MANAGED_PREFIX}{}", h.name), "match": istio_match(h),
                        "route": [{"destination": dest_of(canary), "weight": 100}]}),
        );
    }
    for m in mirrors {
        let mut r = json!({"name": format!("{MANAGED_PREFIX}{}", m.name), "match": istio_match(m),
                           "route": [{"destination": dest_of(stable), "weight": 100}],
                           "mirror": dest_of(canary)});
        if let Some(p) = m.percentage {
            r["mirrorPercentage"] = json!({"value": p});
        }
        out.push(r);
    }
    out.extend(weighted.as_array().cloned().unwrap_or_default());
    let out = Value::Array(out);
    Ok(if out == current { None } else { Some(out) })
}

/// The DestinationRule's subsets with the stable and canary subsets selecting their versions'
/// pod-template hashes; `None` when they already do.
pub fn subsets(
    dr: &Value,
    stable_subset: &str,
    canary_subset: &str,
    stable_hash: &str,
    canary_hash: &str,
) -> Result<Option<Value>, RouterError> {
    let name = dr["metadata"]["name"].as_str().unwrap_or("");
    let current = dr["spec"]["subsets"]
        .as_array()
        .ok_or_else(|| RouterError::Invalid(format!("DestinationRule {name} has no spec.subsets")))?;
    for wanted in [stable_subset, canary_subset] {
        if !current.iter().any(|s| s["name"] == wanted) {
            return Err(RouterError::Invalid(format!(
                "DestinationRule {name} has no subset named {wanted:?}"
            )));
        }
    }
    let out: Vec<Value> = current
        .iter()
        .map(|s| {
            let mut s = s.clone();
            let hash = if s["name"] == stable_subset {
                Some(stable_hash)
            } else if s["name"] == canary_subset {
                Some(canary_hash)
            } else {
                None
            };
            if let Some(h) = hash {
                s["labels"][crate::plan::HASH_LABEL] = json!(h);
            }
            s
        })
        .collect();
    Ok(if out == *current { None } else { Some(Value::Array(out)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"hosts": ["web"], "http": [
            {"name": "primary", "route": [
                {"destination": {"host": "web-stable.shop.svc.cluster.local"}, "weight": 100},
                {"destination": {"host": "web-canary"}, "weight": 0}]},
            {"name": "other", "route": [{"destination": {"host": "api"}}]}
        ]}})
    }

    #[test]
    fn sets_destination_weights_of_the_named_routes() {
        let http = weighted_http(&vs(), &["primary".into()], "web-stable", "web-canary", 10, false)
            .unwrap()
            .unwrap();
        assert_eq!(http[0]["route"][0]["weight"], 90);
        assert_eq!(http[0]["route"][1]["weight"], 10);
        assert_eq!(http[1], vs()["spec"]["http"][1]);
        let all = weighted_http(&vs(), &[], "web-stable", "web-canary", 10, false)
            .unwrap()
            .unwrap();
        assert_eq!(all, http, "without names, the routes to the stable host");
    }

    #[test]
    fn argo_mirror_matches_become_istio_matches() {
        use crate::crd::rollout::{RequestMatch, StringMatch};
        let exact = |v: &str| StringMatch {
            exact: Some(v.into()),
            ..Default::default()
        };
        let route = ManagedRoute {
            name: "mirror".into(),
            match_: Vec::new(),
            requests: vec![RequestMatch {
                method: Some(exact("GET")),
                path: Some(StringMatch {
                    prefix: Some("/".into()),
                    ..Default::default()
                }),
                headers: [("Agent".to_string(), exact("firefox"))].into(),
            }],
            percentage: Some(35),
        };
        assert_eq!(
            istio_match(&route),
            json!([{"uri": {"prefix": "/"}, "method": {"exact": "GET"}, "headers": {"agent": {"exact": "firefox"}}}])
        );
    }

    #[test]
    fn header_and_mirror_routes_go_first_and_go_away() {
        use crate::crd::rollout::{HeaderMatch, StringMatch};
        let m = vec![HeaderMatch {
            header_name: "X-Beta".into(),
            header_value: Some(StringMatch {
                prefix: Some("yes".into()),
                ..Default::default()
            }),
        }];
        let header = ManagedRoute {
            name: "beta".into(),
            match_: m.clone(),
            requests: Vec::new(),
            percentage: None,
        };
        let mirror = ManagedRoute {
            name: "shadow".into(),
            match_: m,
            requests: Vec::new(),
            percentage: Some(10),
        };
        let http = routed_http(
            &vs(),
            &["primary".into()],
            "web-stable",
            "web-canary",
            10,
            false,
            &[header],
            &[mirror],
        )
        .unwrap()
        .unwrap();
        assert_eq!(http[0]["name"], "serin-beta");
        assert_eq!(http[0]["match"][0]["headers"]["x-beta"], json!({"prefix": "yes"}));
        assert_eq!(http[0]["route"][0]["destination"]["host"], "web-canary");
        assert_eq!(http[1]["mirror"]["host"], "web-canary");
        assert_eq!(
            http[1]["route"][0]["destination"]["host"],
            "web-stable.shop.svc.cluster.local"
        );
        assert_eq!(http[1]["mirrorPercentage"]["value"], 10);
        assert_eq!(http[2]["route"][1]["weight"], 10);
        let mut with = vs();
        with["spec"]["http"] = http;
        let back = routed_http(
            &with,
            &["primary".into()],
            "web-stable",
            "web-canary",
            10,
            false,
            &[],
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(back.as_array().unwrap().len(), 2);
    }

    #[test]
    fn subset_based_routes_weigh_subsets() {
        let subsets = json!({"metadata": {"name": "web"}, "spec": {"http": [{"name": "primary", "route": [
            {"destination": {"host": "web", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "web", "subset": "canary"}, "weight": 0}]}]}});
        let http = weighted_http(&subsets, &[], "stable", "canary", 30, true)
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                http[0]["route"][0]["weight"].as_i64(),
                http[0]["route"][1]["weight"].as_i64()
            ),
            (Some(70), Some(30))
        );
    }

    #[test]
    fn subsets_select_the_versions() {
        let dr = json!({"metadata": {"name": "web"}, "spec": {"host": "web", "subsets": [
            {"name": "stable", "labels": {"app": "web"}}, {"name": "canary", "labels": {"app": "web"}}, {"name": "v0"}]}});
        let s = subsets(&dr, "stable", "canary", "aaa", "bbb").unwrap().unwrap();
        assert_eq!(s[0]["labels"]["serin.dev/pod-template-hash"], "aaa");
        assert_eq!(s[1]["labels"]["serin.dev/pod-template-hash"], "bbb");
        assert_eq!(s[2], json!({"name": "v0"}));
        assert!(subsets(&dr, "stable", "missing", "a", "b").is_err());
    }

    #[test]
    fn unknown_routes_and_missing_destinations_are_errors() {
        assert!(weighted_http(&vs(), &["nope".into()], "web-stable", "web-canary", 10, false).is_err());
        assert!(weighted_http(&vs(), &["other".into()], "web-stable", "web-canary", 10, false).is_err());
    }
}
