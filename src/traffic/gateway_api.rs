//! Gateway API: the weights of the stable and canary Service backendRefs in the rules of an
//! HTTPRoute (or GRPCRoute) the user owns. Only the rules that send to the stable Service change.

use super::RouterError;
use serde_json::{Value, json};

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
