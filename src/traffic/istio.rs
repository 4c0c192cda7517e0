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
        let sides = Sides {
            stable,
            canary,
            by_subset: self.destination_rule.is_some(),
        };
        let managed = Managed {
            names: d.managed,
            headers: d.headers,
            mirrors: d.mirrors,
        };
        let kind = ("networking.istio.io", "v1beta1", "VirtualService", "virtualservices");
        for vs in self.services() {
            set_spec_fields(client, d.namespace, kind, &vs.name, |current| {
                routed_spec(current, &vs, &sides, d.weight, &managed)
            })
            .await?;
        }
        Ok(())
    }
}
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The Service a destination host names (`web-stable`, `web-stable.shop.svc.cluster.local`).
pub fn host_service(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// How a route's destinations are told apart: by Service host, or by DestinationRule subset.
pub struct Sides<'a> {
    pub stable: &'a str,
    pub canary: &'a str,
    pub by_subset: bool,
}

impl Sides<'_> {
    fn sends_to(&self, d: &Value, to: &str) -> bool {
        if self.by_subset {
            d["destination"]["subset"] == to
        } else {
            d["destination"]["host"].as_str().is_some_and(|h| host_service(h) == to)
        }
    }

    fn sends_to_stable(&self, route: &Value) -> bool {
        route["route"]
            .as_array()
            .is_some_and(|ds| ds.iter().any(|d| self.sends_to(d, self.stable)))
    }
}

/// The header and mirror routes the steps set so far, and the order the Rollout gives them.
pub struct Managed<'a> {
    /// `trafficRouting.managedRoutes`: the routes Serin may add, first matching first.
    pub names: &'a [String],
    pub headers: &'a [ManagedRoute],
    pub mirrors: &'a [ManagedRoute],
}

/// Routes of one section (`http`, `tls`, `tcp`) with the picked ones weighted: the canary at
/// `weight` percent, the stable at the rest. Each picked route must send to both versions.
fn weigh_section(
    vs: &str,
    section: &str,
    routes: &[Value],
    picked: &[bool],
    sides: &Sides<'_>,
    weight: i32,
) -> Result<Vec<Value>, RouterError> {
    if !picked.contains(&true) {
        return Err(RouterError::Invalid(format!(
            "VirtualService {vs} has no {section} route to the stable {:?}",
            sides.stable
        )));
    }
    let mut out = Vec::with_capacity(routes.len());
    for (i, (route, picked)) in routes.iter().zip(picked).enumerate() {
        let mut route = route.clone();
        if *picked {
            let dests = route["route"].as_array().cloned().unwrap_or_default();
            if !dests.iter().any(|d| sides.sends_to(d, sides.stable))
                || !dests.iter().any(|d| sides.sends_to(d, sides.canary))
            {
                return Err(RouterError::Invalid(format!(
                    "{section} route {i} of VirtualService {vs} must have destinations {:?} and {:?}",
                    sides.stable, sides.canary
                )));
            }
            for d in route["route"].as_array_mut().into_iter().flatten() {
                if sides.sends_to(d, sides.stable) {
                    d["weight"] = json!(100 - weight);
                } else if sides.sends_to(d, sides.canary) {
                    d["weight"] = json!(weight);
                }
            }
        }
        out.push(route);
    }
    Ok(out)
}

/// Whether Serin weighs this `http` route: one `routes` names, or without names one that sends to
/// the stable host.
fn weighs_http(route: &Value, routes: &[String], sides: &Sides<'_>) -> bool {
    if routes.is_empty() {
        sides.sends_to_stable(route)
    } else {
        route["name"].as_str().is_some_and(|n| routes.iter().any(|w| w == n))
    }
}

/// The `http` routes with the canary at `weight` percent. `routes` picks routes by name; empty
/// means every route that sends to the stable host.
pub fn weighted_http(vs: &Value, routes: &[String], sides: &Sides<'_>, weight: i32) -> Result<Vec<Value>, RouterError> {
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
    let picked: Vec<bool> = http.iter().map(|r| weighs_http(r, routes, sides)).collect();
    weigh_section(name, "http", http, &picked, sides, weight)
}

/// The ports and SNI hosts a `tls` or `tcp` route matches on.
fn route_matches(route: &Value) -> (BTreeSet<i64>, BTreeSet<String>) {
    let mut ports = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for m in route["match"].as_array().into_iter().flatten() {
        ports.insert(m["port"].as_i64().unwrap_or(0));
        for h in m["sniHosts"].as_array().into_iter().flatten() {
            hosts.extend(h.as_str().map(String::from));
        }
    }
    (ports, hosts)
}

/// The `tls` and `tcp` routes picked: those named by port (and SNI hosts), as Argo Rollouts
/// finds them (one port only, the same hosts), or without names those that send to the stable.
fn picked_by_port(
    vs: &str,
    section: &str,
    routes: &[Value],
    wanted: &[(Option<i64>, Option<BTreeSet<String>>)],
    sides: &Sides<'_>,
) -> Result<Vec<bool>, RouterError> {
    if wanted.is_empty() {
        return Ok(routes.iter().map(|r| sides.sends_to_stable(r)).collect());
    }
    let mut picked = vec![false; routes.len()];
    for (port, hosts) in wanted {
        let mut found = false;
        for (i, r) in routes.iter().enumerate() {
            let (ports, sni) = route_matches(r);
            let port_matches = ports.len() <= 1 && ports.iter().next().copied().unwrap_or(0) == port.unwrap_or(0);
            if port_matches && hosts.as_ref().is_none_or(|h| *h == sni) {
                picked[i] = true;
                found = true;
            }
        }
        if !found {
            return Err(RouterError::Invalid(format!(
                "VirtualService {vs} has no {section} route on port {}{}",
                port.unwrap_or(0),
                hosts
                    .as_ref()
                    .map(|h| format!(" for SNI hosts {h:?}"))
                    .unwrap_or_default()
            )));
        }
    }
    Ok(picked)
}

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

/// Names Serin gave its routes before it used the managed routes' own names.
const OLD_PREFIX: &str = "serin-";

/// Whether an `http` route is one of Serin's header or mirror routes.
fn is_managed(route: &Value, names: &[String]) -> bool {
    route["name"]
        .as_str()
        .is_some_and(|n| n.starts_with(OLD_PREFIX) || names.iter().any(|m| m == n))
}

/// The `http` routes: the header and mirror routes the steps set, in the order of
/// `managedRoutes` (Istio takes the first route that matches), then the user's routes weighted.
/// A mirror route sends as the weighted route does and copies requests to the canary.
fn routed_http(
    vs: &Value,
    routes: &[String],
    sides: &Sides<'_>,
    weight: i32,
    managed: &Managed<'_>,
) -> Result<Vec<Value>, RouterError> {
    let mut user = vs.clone();
    if let Some(http) = user["spec"]["http"].as_array_mut() {
        http.retain(|r| !is_managed(r, managed.names));
    }
    let weighted = weighted_http(&user, routes, sides, weight)?;
    // Destinations as the user wrote them (short or fully qualified hosts; subsets of a host).
    let all_dests: Vec<Value> = weighted
        .iter()
        .flat_map(|r| r["route"].as_array().cloned().unwrap_or_default())
        .map(|d| d["destination"].clone())
        .collect();
    let dest_of = |to: &str| -> Value {
        if sides.by_subset {
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
    // The destinations of the first weighted route, which mirror routes send as.
    let first_weighted = weighted
        .iter()
        .find(|r| weighs_http(r, routes, sides))
        .map(|r| r["route"].clone())
        .unwrap_or_else(|| json!([{"destination": dest_of(sides.stable), "weight": 100}]));
    let mut added: Vec<(&str, Value)> = Vec::new();
    for h in managed.headers {
        added.push((
            &h.name,
            json!({"name": h.name, "match": istio_match(h),
                   "route": [{"destination": dest_of(sides.canary), "weight": 100}]}),
        ));
    }
    for m in managed.mirrors {
        added.push((
            &m.name,
            json!({"name": m.name, "match": istio_match(m), "route": first_weighted,
                   "mirror": dest_of(sides.canary),
                   "mirrorPercentage": {"value": m.percentage.unwrap_or(100)}}),
        ));
    }
    // In `managedRoutes` order; a name it does not list comes after those it does.
    added.sort_by_key(|(name, _)| managed.names.iter().position(|n| n == name).unwrap_or(usize::MAX));
    let mut out: Vec<Value> = added.into_iter().map(|(_, r)| r).collect();
    out.extend(weighted);
    Ok(out)
}

/// The VirtualService's `spec` fields Serin sets: its `http`, `tls` and `tcp` routes (those it
/// has) weighted, with the header and mirror routes. `None` when they already say so. All the
/// sections it has are given together: a server-side apply that left one out would remove it.
pub fn routed_spec(
    vs: &Value,
    named: &crate::crd::rollout::IstioVirtualService,
    sides: &Sides<'_>,
    weight: i32,
    managed: &Managed<'_>,
) -> Result<Option<Value>, RouterError> {
    let name = vs["metadata"]["name"].as_str().unwrap_or("");
    let spec = &vs["spec"];
    let mut out = serde_json::Map::new();
    if spec["http"].is_array() {
        let routes = named.routes.clone().unwrap_or_default();
        out.insert(
            "http".into(),
            Value::Array(routed_http(vs, &routes, sides, weight, managed)?),
        );
    }
    if let Some(tls) = spec["tls"].as_array() {
        let wanted: Vec<_> = named
            .tls_routes
            .iter()
            .map(|t| (t.port, Some(t.sni_hosts.iter().cloned().collect())))
            .collect();
        let picked = picked_by_port(name, "tls", tls, &wanted, sides)?;
        out.insert(
            "tls".into(),
            Value::Array(weigh_section(name, "tls", tls, &picked, sides, weight)?),
        );
    }
    if let Some(tcp) = spec["tcp"].as_array() {
        let wanted: Vec<_> = named.tcp_routes.iter().map(|t| (t.port, None)).collect();
        let picked = picked_by_port(name, "tcp", tcp, &wanted, sides)?;
        out.insert(
            "tcp".into(),
            Value::Array(weigh_section(name, "tcp", tcp, &picked, sides, weight)?),
        );
    }
    if out.is_empty() {
        return Err(RouterError::Invalid(format!(
            "VirtualService {name} has no http, tls or tcp routes"
        )));
    }
    let same = out.iter().all(|(k, v)| spec[k] == *v);
    Ok(if same { None } else { Some(Value::Object(out)) })
}

/// A DestinationRule the Rollout no longer routes through: its subsets lose Serin's hash labels.
/// Gone already is fine.
pub async fn release_subsets(client: &kube::Client, ns: &str, name: &str) -> Result<(), RouterError> {
    let kind = ("networking.istio.io", "v1beta1", "DestinationRule", "destinationrules");
    let released = set_spec_fields(client, ns, kind, name, |current| {
        let Some(subsets) = current["spec"]["subsets"].as_array() else {
            return Ok(None);
        };
        let mut out = subsets.clone();
        for s in &mut out {
            if let Some(labels) = s["labels"].as_object_mut() {
                labels.remove(crate::plan::HASH_LABEL);
            }
        }
        Ok((out != *subsets).then(|| json!({"subsets": out})))
    })
    .await;
    match released {
        Err(RouterError::NotFound { .. }) => Ok(()),
        other => other,
    }
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
    use crate::crd::rollout::{HeaderMatch, IstioTlsRoute, IstioVirtualService, RequestMatch};

    fn vs() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"hosts": ["web"], "http": [
            {"name": "primary", "route": [
                {"destination": {"host": "web-stable.shop.svc.cluster.local"}, "weight": 100},
                {"destination": {"host": "web-canary"}, "weight": 0}]},
            {"name": "other", "route": [{"destination": {"host": "api"}}]}
        ]}})
    }

    const HOSTS: Sides<'static> = Sides {
        stable: "web-stable",
        canary: "web-canary",
        by_subset: false,
    };

    fn named(routes: &[&str]) -> IstioVirtualService {
        IstioVirtualService {
            name: "web".into(),
            routes: Some(routes.iter().map(|r| r.to_string()).collect()),
            ..Default::default()
        }
    }

    const NONE: Managed<'static> = Managed {
        names: &[],
        headers: &[],
        mirrors: &[],
    };

    #[test]
    fn sets_destination_weights_of_the_named_routes() {
        let http = weighted_http(&vs(), &["primary".into()], &HOSTS, 10).unwrap();
        assert_eq!(http[0]["route"][0]["weight"], 90);
        assert_eq!(http[0]["route"][1]["weight"], 10);
        assert_eq!(http[1], vs()["spec"]["http"][1]);
        let all = weighted_http(&vs(), &[], &HOSTS, 10).unwrap();
        assert_eq!(all, http, "without names, the routes to the stable host");
    }

    #[test]
    fn an_unchanged_virtual_service_is_not_written() {
        let spec = routed_spec(&vs(), &named(&["primary"]), &HOSTS, 0, &NONE).unwrap();
        assert_eq!(spec, None);
        let spec = routed_spec(&vs(), &named(&["primary"]), &HOSTS, 5, &NONE)
            .unwrap()
            .unwrap();
        assert_eq!(spec["http"][0]["route"][1]["weight"], 5);
    }

    #[test]
    fn tls_routes_are_found_by_port_and_sni_hosts() {
        let mut v = vs();
        v["spec"]["tls"] = json!([
            {"match": [{"port": 3000, "sniHosts": ["web"]}], "route": [
                {"destination": {"host": "web-stable"}, "weight": 100},
                {"destination": {"host": "web-canary"}, "weight": 0}]},
            {"match": [{"port": 4000, "sniHosts": ["web"]}], "route": [{"destination": {"host": "db"}}]}
        ]);
        let mut n = named(&["primary"]);
        n.tls_routes = vec![IstioTlsRoute {
            port: Some(3000),
            sni_hosts: vec!["web".into()],
        }];
        let spec = routed_spec(&v, &n, &HOSTS, 10, &NONE).unwrap().unwrap();
        assert_eq!(weights_of(&spec["tls"][0]), vec![90, 10]);
        assert_eq!(spec["tls"][1], v["spec"]["tls"][1]);
        assert_eq!(weights_of(&spec["http"][0]), vec![90, 10], "http and tls go together");
        n.tls_routes[0].sni_hosts = vec!["other".into()];
        let err = routed_spec(&v, &n, &HOSTS, 10, &NONE).unwrap_err();
        assert!(err.to_string().contains("no tls route on port 3000"), "{err}");
    }

    #[test]
    fn a_virtual_service_with_tls_routes_only_needs_no_http() {
        let v = json!({"metadata": {"name": "web"}, "spec": {"tls": [
            {"match": [{"port": 3000, "sniHosts": ["web"]}], "route": [
                {"destination": {"host": "web-stable"}, "weight": 100},
                {"destination": {"host": "web-canary"}, "weight": 0}]}]}});
        let spec = routed_spec(&v, &named(&["primary"]), &HOSTS, 25, &NONE)
            .unwrap()
            .unwrap();
        assert_eq!(weights_of(&spec["tls"][0]), vec![75, 25]);
        assert!(spec.get("http").is_none());
        let empty = json!({"metadata": {"name": "web"}, "spec": {"hosts": ["web"]}});
        assert!(routed_spec(&empty, &named(&[]), &HOSTS, 25, &NONE).is_err());
    }

    fn weights_of(route: &Value) -> Vec<i64> {
        route["route"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["weight"].as_i64().unwrap_or(0))
            .collect()
    }

    #[test]
    fn argo_mirror_matches_become_istio_matches() {
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
    fn managed_routes_go_first_in_their_order_and_go_away() {
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
        // The mirror route is listed first, so it matches first.
        let names = ["shadow".to_string(), "beta".to_string()];
        let managed = Managed {
            names: &names,
            headers: std::slice::from_ref(&header),
            mirrors: std::slice::from_ref(&mirror),
        };
        let spec = routed_spec(&vs(), &named(&["primary"]), &HOSTS, 10, &managed)
            .unwrap()
            .unwrap();
        let http = &spec["http"];
        assert_eq!(http[0]["name"], "shadow");
        assert_eq!(http[0]["mirror"]["host"], "web-canary");
        assert_eq!(http[0]["mirrorPercentage"]["value"], 10);
        assert_eq!(
            weights_of(&http[0]),
            vec![90, 10],
            "a mirror route sends as primary does"
        );
        assert_eq!(http[1]["name"], "beta");
        assert_eq!(http[1]["match"][0]["headers"]["x-beta"], json!({"prefix": "yes"}));
        assert_eq!(http[1]["route"][0]["destination"]["host"], "web-canary");
        assert_eq!(http[2]["name"], "primary");
        assert_eq!(weights_of(&http[2]), vec![90, 10]);
        let mut with = vs();
        with["spec"]["http"] = http.clone();
        let only_mirror = Managed {
            names: &names,
            headers: &[],
            mirrors: std::slice::from_ref(&mirror),
        };
        let back = routed_spec(&with, &named(&["primary"]), &HOSTS, 10, &only_mirror)
            .unwrap()
            .unwrap();
        let names_left: Vec<_> = back["http"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].clone())
            .collect();
        assert_eq!(names_left, vec![json!("shadow"), json!("primary"), json!("other")]);
    }

    #[test]
    fn subset_based_routes_weigh_subsets() {
        let subsets = json!({"metadata": {"name": "web"}, "spec": {"http": [{"name": "primary", "route": [
            {"destination": {"host": "web", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "web", "subset": "canary"}, "weight": 0}]}]}});
        let sides = Sides {
            stable: "stable",
            canary: "canary",
            by_subset: true,
        };
        let http = weighted_http(&subsets, &[], &sides, 30).unwrap();
        assert_eq!(weights_of(&http[0]), vec![70, 30]);
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
        assert!(weighted_http(&vs(), &["nope".into()], &HOSTS, 10).is_err());
        assert!(weighted_http(&vs(), &["other".into()], &HOSTS, 10).is_err());
    }
}
