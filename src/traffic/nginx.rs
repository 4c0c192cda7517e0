//! NGINX Ingress: a generated `<rollout>-<stableIngress>-canary` Ingress (Argo Rollouts' name, so
//! that a migrated Rollout takes over the one Argo left), a copy of the user's pointing at
//! the canary Service, with the canary annotations NGINX reads. Serin owns it and deletes it when
//! no canary runs; the user's Ingress is never touched.

use super::{Desired, RouterError, TrafficRouter};
use crate::crd::rollout::NginxRouting;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use serde_json::{Map, Value, json};

impl TrafficRouter for NginxRouting {
    /// Each stable Ingress gets its canary twin.
    async fn apply(&self, client: &kube::Client, d: &Desired<'_>) -> Result<(), RouterError> {
        for ingress in self.ingresses() {
            self.apply_one(client, d, &ingress).await?;
        }
        Ok(())
    }
}

impl NginxRouting {
    /// The generated canary Ingress carries the weight while a canary runs, and goes after.
    async fn apply_one(&self, client: &kube::Client, d: &Desired<'_>, stable_ingress: &str) -> Result<(), RouterError> {
        let api: kube::Api<Ingress> = kube::Api::namespaced(client.clone(), d.namespace);
        let canary_name = canary_name(d.rollout, stable_ingress);
        let existing = api
            .get_opt(&canary_name)
            .await
            .map_err(|e| RouterError::Api(e.to_string()))?;
        if !d.canary_running {
            if existing.is_some() {
                match api.delete(&canary_name, &Default::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(RouterError::Api(e.to_string())),
                }
            }
            return Ok(());
        }
        let stable = api
            .get_opt(stable_ingress)
            .await
            .map_err(|e| RouterError::Api(e.to_string()))?
            .ok_or_else(|| RouterError::NotFound {
                kind: "Ingress".into(),
                name: stable_ingress.to_string(),
                namespace: d.namespace.into(),
            })?;
        let stable = serde_json::to_value(&stable).map_err(|e| RouterError::Api(e.to_string()))?;
        let prefix = self.annotation_prefix.as_deref().unwrap_or(DEFAULT_PREFIX);
        let mut labels = Map::new();
        labels.insert(crate::reconcile::ROLLOUT_LABEL.into(), json!(d.rollout));
        let mut desired = canary_ingress(
            &stable,
            d.stable_service,
            d.canary_service,
            prefix,
            d.weight,
            d.headers.first(),
            labels,
        )?;
        desired["metadata"]["name"] = json!(canary_name);
        if let Some(owner) = &d.owner {
            desired["metadata"]["ownerReferences"] = json!([owner]);
        }
        // The user's extra annotations; Serin's canary annotations win.
        for (k, v) in &self.additional_ingress_annotations {
            let annotations = &mut desired["metadata"]["annotations"];
            if annotations.get(k).is_none() {
                annotations[k] = json!(v);
            }
        }
        if let Some(current) = existing.and_then(|e| serde_json::to_value(e).ok()) {
            let annotations = desired["metadata"]["annotations"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let same = current["spec"] == desired["spec"]
                && annotations
                    .iter()
                    .all(|(k, v)| current["metadata"]["annotations"][k] == *v);
            if same {
                return Ok(());
            }
        }
        api.patch(
            &canary_name,
            &PatchParams::apply(super::MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map(|_| ())
        .map_err(|e| RouterError::Api(e.to_string()))
    }
}

pub const DEFAULT_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// `<rollout>-<stableIngress>-canary`, cut to the 253 characters a name may have.
pub fn canary_name(rollout: &str, stable_ingress: &str) -> String {
    const SUFFIX: &str = "-canary";
    let mut prefix = format!("{rollout}-{stable_ingress}");
    let mut cut = 253 - SUFFIX.len();
    while !prefix.is_char_boundary(cut.min(prefix.len())) {
        cut -= 1;
    }
    prefix.truncate(cut.min(prefix.len()));
    prefix + SUFFIX
}

/// Replaces backends that name `stable` with `canary`; the number replaced.
fn swap_backends(v: &mut Value, stable: &str, canary: &str) -> usize {
    match v {
        Value::Object(map) => {
            let mut n = 0;
            if let Some(svc) = map.get_mut("service")
                && svc["name"] == stable
            {
                svc["name"] = json!(canary);
                n += 1;
            }
            for (k, child) in map.iter_mut() {
                if k != "service" {
                    n += swap_backends(child, stable, canary);
                }
            }
            n
        }
        Value::Array(items) => items.iter_mut().map(|i| swap_backends(i, stable, canary)).sum(),
        _ => 0,
    }
}

/// The canary Ingress (without its name) for `weight` percent, from the user's stable Ingress; with a header route,
/// requests carrying that header go to the canary whatever the weight (NGINX takes one header).
pub fn canary_ingress(
    stable_ingress: &Value,
    stable: &str,
    canary: &str,
    prefix: &str,
    weight: i32,
    header: Option<&crate::crd::rollout::ManagedRoute>,
    labels: Map<String, Value>,
) -> Result<Value, RouterError> {
    let name = stable_ingress["metadata"]["name"].as_str().unwrap_or("");
    let mut spec = stable_ingress["spec"].clone();
    if swap_backends(&mut spec, stable, canary) == 0 {
        return Err(RouterError::Invalid(format!(
            "Ingress {name} has no backend that sends to the stable Service {stable:?}"
        )));
    }
    // NGINX takes the canary's rules from the stable Ingress: a default backend is not allowed.
    if let Some(m) = spec.as_object_mut() {
        m.remove("defaultBackend");
    }
    let mut annotations = Map::new();
    annotations.insert(format!("{prefix}/canary"), json!("true"));
    annotations.insert(format!("{prefix}/canary-weight"), json!(weight.to_string()));
    if let Some(h) = header.and_then(|r| r.match_.first()) {
        annotations.insert(format!("{prefix}/canary-by-header"), json!(h.header_name));
        let v = h.header_value.clone().unwrap_or_default();
        match (v.exact, v.prefix, v.regex) {
            (Some(e), _, _) => annotations.insert(format!("{prefix}/canary-by-header-value"), json!(e)),
            (_, Some(p), _) => annotations.insert(
                format!("{prefix}/canary-by-header-pattern"),
                json!(format!("^{}.*", regex::escape(&p))),
            ),
            (_, _, Some(r)) => annotations.insert(format!("{prefix}/canary-by-header-pattern"), json!(r)),
            _ => None,
        };
    }
    Ok(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "namespace": stable_ingress["metadata"]["namespace"],
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress() -> Value {
        json!({"metadata": {"name": "web", "namespace": "shop", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "web.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-stable", "port": {"number": 80}}}},
            {"path": "/static", "pathType": "Prefix", "backend": {"service": {"name": "cdn", "port": {"number": 80}}}}
        ]}}]}})
    }

    #[test]
    fn copies_the_ingress_towards_the_canary_with_its_weight() {
        let c = canary_ingress(
            &ingress(),
            "web-stable",
            "web-canary",
            DEFAULT_PREFIX,
            5,
            None,
            Map::new(),
        )
        .unwrap();
        assert_eq!(
            c["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"],
            "true"
        );
        assert_eq!(
            c["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"],
            "5"
        );
        let paths = &c["spec"]["rules"][0]["http"]["paths"];
        assert_eq!(paths[0]["backend"]["service"]["name"], "web-canary");
        assert_eq!(paths[1]["backend"]["service"]["name"], "cdn", "other backends stay");
        assert_eq!(c["spec"]["ingressClassName"], "nginx");
        let beta = crate::crd::rollout::ManagedRoute {
            name: "beta".into(),
            match_: vec![crate::crd::rollout::HeaderMatch {
                header_name: "X-Beta".into(),
                header_value: Some(crate::crd::rollout::StringMatch {
                    exact: Some("on".into()),
                    ..Default::default()
                }),
            }],
            requests: Vec::new(),
            percentage: None,
        };
        let by_header = canary_ingress(
            &ingress(),
            "web-stable",
            "web-canary",
            DEFAULT_PREFIX,
            0,
            Some(&beta),
            Map::new(),
        )
        .unwrap();
        assert_eq!(
            by_header["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header"],
            "X-Beta"
        );
        assert_eq!(
            by_header["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header-value"],
            "on"
        );
        let custom = canary_ingress(&ingress(), "web-stable", "web-canary", "custom.io", 5, None, Map::new()).unwrap();
        assert_eq!(custom["metadata"]["annotations"]["custom.io/canary-weight"], "5");
    }

    #[test]
    fn the_canary_ingress_has_argos_name_within_the_length_allowed() {
        assert_eq!(canary_name("shop", "web"), "shop-web-canary");
        let long = canary_name(&"r".repeat(200), &"i".repeat(100));
        assert_eq!(long.len(), 253);
        assert!(long.ends_with("i-canary"));
    }

    #[test]
    fn an_ingress_without_the_stable_service_is_an_error() {
        assert!(canary_ingress(&ingress(), "other", "web-canary", DEFAULT_PREFIX, 5, None, Map::new()).is_err());
    }
}
