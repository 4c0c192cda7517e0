//! Gateway API: the weights of the stable and canary Service backendRefs in the rules of an
//! HTTPRoute (or GRPCRoute) the user owns. Only the rules that send to the stable Service change.

use super::{Desired, RouterError, TrafficRouter, set_spec_fields};
use crate::crd::rollout::{GatewayApiRouting, HeaderMatch, ManagedRoute, RequestMatch};
use serde_json::{Value, json};

impl TrafficRouter for GatewayApiRouting {
    async fn apply(&self, client: &kube::Client, d: &Desired<'_>) -> Result<(), RouterError> {
        let http = self
            .http_route
            .iter()
            .chain(self.http_routes.iter().flatten())
            .map(|n| ("HTTPRoute", "httproutes", n));
        for (kind, plural, name) in http.chain(self.grpc_route.iter().map(|n| ("GRPCRoute", "grpcroutes", n))) {
            let route_kind = ("gateway.networking.k8s.io", "v1", kind, plural);
            let ns = self.namespace.as_deref().unwrap_or(d.namespace);
            set_spec_fields(client, ns, route_kind, name, |route| {
                let rules = routed_rules(
                    route,
                    kind,
                    d.stable_service,
                    d.canary_service,
                    d.weight,
                    d.headers,
                    d.mirrors,
                )?;
                Ok(rules.map(|rules| json!({"rules": rules})))
            })
            .await?;
        }
        Ok(())
    }
}

/// Rules Serin adds for header and mirror routes are named with this prefix.
pub const MANAGED_PREFIX: &str = "serin-";

fn managed(rule: &Value) -> bool {
    rule["name"].as_str().is_some_and(|n| n.starts_with(MANAGED_PREFIX))
}

/// Header matches in the Gateway API's form; a prefix becomes a regular expression.
fn header_matches(m: &[HeaderMatch]) -> Vec<Value> {
    m.iter()
        .map(|h| {
            let v = h.header_value.clone().unwrap_or_default();
            match (v.exact, v.prefix, v.regex) {
                (Some(e), _, _) => json!({"type": "Exact", "name": h.header_name, "value": e}),
                (_, Some(p), _) => json!({"type": "RegularExpression", "name": h.header_name, "value": format!("^{}.*", regex::escape(&p))}),
                (_, _, Some(r)) => json!({"type": "RegularExpression", "name": h.header_name, "value": r}),
                _ => json!({"type": "RegularExpression", "name": h.header_name, "value": ".*"}),
            }
        })
        .collect()
}

/// One of Argo's mirror matches as an HTTPRouteMatch: a path (exact, prefix or regex), a method
/// (the Gateway API matches methods exactly) and headers.
fn request_match(m: &RequestMatch) -> Value {
    let mut out = json!({});
    if let Some(p) = &m.path {
        out["path"] = match (&p.exact, &p.prefix, &p.regex) {
            (Some(e), _, _) => json!({"type": "Exact", "value": e}),
            (_, Some(v), _) => json!({"type": "PathPrefix", "value": v}),
            (_, _, Some(r)) => json!({"type": "RegularExpression", "value": r}),
            _ => json!({"type": "PathPrefix", "value": "/"}),
        };
    }
    if let Some(method) = m.method.as_ref().and_then(|v| v.exact.clone()) {
        out["method"] = json!(method.to_uppercase());
    }
    if !m.headers.is_empty() {
        let headers: Vec<HeaderMatch> = m
            .headers
            .iter()
            .map(|(name, v)| HeaderMatch {
                header_name: name.clone(),
                header_value: Some(v.clone()),
            })
            .collect();
        out["headers"] = json!(header_matches(&headers));
    }
    out
}

/// The rules, weighted, with Serin's header and mirror rules after the user's (copying the path
/// matches of the rule they stand beside). `None` when the route already says all that.
pub fn routed_rules(
    route: &Value,
    kind: &str,
    stable: &str,
    canary: &str,
    weight: i32,
    headers: &[ManagedRoute],
    mirrors: &[ManagedRoute],
) -> Result<Option<Value>, RouterError> {
    let current = route["spec"]["rules"].clone();
    let mut user = route.clone();
    if let Some(rules) = user["spec"]["rules"].as_array_mut() {
        rules.retain(|r| !managed(r));
    }
    let mut rules =
        weighted_rules(&user, kind, stable, canary, weight)?.unwrap_or_else(|| user["spec"]["rules"].clone());
    let first = rules
        .as_array()
        .and_then(|rs| {
            rs.iter().find(|r| {
                r["backendRefs"]
                    .as_array()
                    .is_some_and(|b| b.iter().any(|b| b["name"] == stable))
            })
        })
        .cloned()
        .unwrap_or_default();
    let base_matches: Vec<Value> = first["matches"]
        .as_array()
        .cloned()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| vec![json!({})]);
    let backend = |svc: &str| {
        let mut b = first["backendRefs"]
            .as_array()
            .and_then(|bs| bs.iter().find(|b| b["name"] == stable))
            .cloned()
            .unwrap_or_default();
        b["name"] = json!(svc);
        if let Some(m) = b.as_object_mut() {
            m.remove("weight");
        }
        b
    };
    let matches = |r: &ManagedRoute| -> Vec<Value> {
        // Argo's form: each entry its own match, by path, method and headers.
        if !r.requests.is_empty() {
            return r.requests.iter().map(request_match).collect();
        }
        base_matches
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m["headers"] = json!(header_matches(&r.match_));
                m
            })
            .collect()
    };
    if let Some(list) = rules.as_array_mut() {
        for h in headers {
            list.push(json!({"name": format!("{MANAGED_PREFIX}{}", h.name), "matches": matches(h), "backendRefs": [backend(canary)]}));
        }
        for m in mirrors {
            let mut mirror = json!({"backendRef": backend(canary)});
            if let Some(p) = m.percentage {
                mirror["percent"] = json!(p);
            }
            list.push(json!({
                "name": format!("{MANAGED_PREFIX}{}", m.name),
                "matches": matches(m),
                "filters": [{"type": "RequestMirror", "requestMirror": mirror}],
                "backendRefs": [backend(stable)],
            }));
        }
    }
    Ok(if rules == current { None } else { Some(rules) })
}

/// The rules with the canary at `weight` percent, or `None` when they already say so.
pub fn weighted_rules(
    route: &Value,
    kind: &str,
    stable: &str,
    canary: &str,
    weight: i32,
) -> Result<Option<Value>, RouterError> {
    let name = route["metadata"]["name"].as_str().unwrap_or("");
    let rules = route["spec"]["rules"]
        .as_array()
        .ok_or_else(|| RouterError::Invalid(format!("{kind} {name} has no spec.rules")))?;
    let refers = |b: &Value, svc: &str| {
        b["name"] == svc
            && b["kind"].as_str().unwrap_or("Service") == "Service"
            && b["group"].as_str().unwrap_or("").is_empty()
    };
    let mut out = Vec::with_capacity(rules.len());
    let mut matched = 0;
    for (i, rule) in rules.iter().enumerate() {
        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
        let has_stable = refs.iter().any(|b| refers(b, stable));
        if !has_stable {
            out.push(rule.clone());
            continue;
        }
        if !refs.iter().any(|b| refers(b, canary)) {
            return Err(RouterError::Invalid(format!(
                "rule {i} of {kind} {name} sends to {stable:?} but has no backendRef to the canary Service {canary:?}: add one (weight 0)"
            )));
        }
        matched += 1;
        let mut rule = rule.clone();
        if let Some(list) = rule["backendRefs"].as_array_mut() {
            for b in list {
                if refers(b, stable) {
                    b["weight"] = json!(100 - weight);
                } else if refers(b, canary) {
                    b["weight"] = json!(weight);
                }
            }
        }
        out.push(rule);
    }
    if matched == 0 {
        return Err(RouterError::Invalid(format!(
            "{kind} {name} has no rule with a backendRef to the stable Service {stable:?}"
        )));
    }
    Ok(if out == *rules { None } else { Some(Value::Array(out)) })
}

/// The weight the route gives the canary now (the first matching rule's), if it has one.
pub fn current_weight(route: &Value, canary: &str) -> Option<i32> {
    route["spec"]["rules"].as_array()?.iter().find_map(|r| {
        r["backendRefs"]
            .as_array()?
            .iter()
            .find(|b| b["name"] == canary)
            .and_then(|b| b["weight"].as_i64())
            .map(|w| w as i32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"hostnames": ["web.example"], "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": [{"name": "api", "port": 80}]},
            {"filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x", "value": "1"}]}}],
             "backendRefs": [{"name": "web-stable", "port": 80, "weight": 100}, {"name": "web-canary", "port": 80, "weight": 0}]}
        ]}})
    }

    #[test]
    fn sets_only_the_weights_of_the_rollouts_rules() {
        let rules = weighted_rules(&route(), "HTTPRoute", "web-stable", "web-canary", 5)
            .unwrap()
            .unwrap();
        assert_eq!(rules[0], route()["spec"]["rules"][0], "other rules untouched");
        assert_eq!(rules[1]["backendRefs"][0]["weight"], 95);
        assert_eq!(rules[1]["backendRefs"][1]["weight"], 5);
        assert_eq!(
            rules[1]["filters"],
            route()["spec"]["rules"][1]["filters"],
            "the user's filters stay"
        );
        let mut at5 = route();
        at5["spec"]["rules"] = rules;
        assert_eq!(
            weighted_rules(&at5, "HTTPRoute", "web-stable", "web-canary", 5).unwrap(),
            None,
            "nothing to write"
        );
        assert_eq!(current_weight(&at5, "web-canary"), Some(5));
    }

    #[test]
    fn argo_mirror_matches_become_httproute_matches() {
        use crate::crd::rollout::{RequestMatch, StringMatch};
        let m = RequestMatch {
            method: Some(StringMatch {
                exact: Some("get".into()),
                ..Default::default()
            }),
            path: Some(StringMatch {
                prefix: Some("/api".into()),
                ..Default::default()
            }),
            headers: [(
                "agent".to_string(),
                StringMatch {
                    exact: Some("firefox".into()),
                    ..Default::default()
                },
            )]
            .into(),
        };
        assert_eq!(
            request_match(&m),
            json!({"path": {"type": "PathPrefix", "value": "/api"}, "method": "GET",
                   "headers": [{"type": "Exact", "name": "agent", "value": "firefox"}]})
        );
    }

    #[test]
    fn header_and_mirror_rules_are_added_and_taken_away() {
        use crate::crd::rollout::StringMatch;
        let header = ManagedRoute {
            name: "beta".into(),
            match_: vec![HeaderMatch {
                header_name: "x-beta".into(),
                header_value: Some(StringMatch {
                    exact: Some("1".into()),
                    ..Default::default()
                }),
            }],
            requests: Vec::new(),
            percentage: None,
        };
        let mirror = ManagedRoute {
            name: "shadow".into(),
            match_: header.match_.clone(),
            requests: Vec::new(),
            percentage: Some(20),
        };
        let rules = routed_rules(
            &route(),
            "HTTPRoute",
            "web-stable",
            "web-canary",
            5,
            &[header],
            &[mirror],
        )
        .unwrap()
        .unwrap();
        let rules = rules.as_array().unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[2]["name"], "serin-beta");
        assert_eq!(
            rules[2]["matches"][0]["headers"][0],
            json!({"type": "Exact", "name": "x-beta", "value": "1"})
        );
        assert_eq!(rules[2]["backendRefs"][0]["name"], "web-canary");
        assert_eq!(
            rules[3]["filters"][0]["requestMirror"]["backendRef"]["name"],
            "web-canary"
        );
        assert_eq!(rules[3]["filters"][0]["requestMirror"]["percent"], 20);
        assert_eq!(rules[3]["backendRefs"][0]["name"], "web-stable");
        // Without managed routes they go again, and the weights stay.
        let mut with = route();
        with["spec"]["rules"] = Value::Array(rules.clone());
        let back = routed_rules(&with, "HTTPRoute", "web-stable", "web-canary", 5, &[], &[])
            .unwrap()
            .unwrap();
        assert_eq!(back.as_array().unwrap().len(), 2);
        assert_eq!(back[1]["backendRefs"][1]["weight"], 5);
    }

    #[test]
    fn a_route_that_does_not_fit_is_an_error() {
        let err = weighted_rules(&route(), "HTTPRoute", "other-stable", "web-canary", 5).unwrap_err();
        assert!(
            err.to_string()
                .contains("no rule with a backendRef to the stable Service"),
            "{err}"
        );
        let mut no_canary = route();
        no_canary["spec"]["rules"][1]["backendRefs"]
            .as_array_mut()
            .unwrap()
            .pop();
        let err = weighted_rules(&no_canary, "HTTPRoute", "web-stable", "web-canary", 5).unwrap_err();
        assert!(err.to_string().contains("no backendRef to the canary Service"), "{err}");
        assert!(
            weighted_rules(
                &json!({"metadata": {"name": "x"}, "spec": {}}),
                "HTTPRoute",
                "a",
                "b",
                1
            )
            .is_err()
        );
    }
}
