//! Setting the canary weight on the router a Rollout names, through the Kubernetes API.

use super::MANAGER;
use crate::crd::rollout::{ManagedRoute, Rollout};
use crate::traffic::{RouterError, gateway_api, istio, nginx, smi};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// Routes of the Gateway API a Rollout names, as (kind, plural, name).
fn gateway_routes(rollout: &Rollout) -> Vec<(&'static str, &'static str, String)> {
    let Some(g) = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
        .and_then(|t| t.gateway_api.as_ref())
    else {
        return Vec::new();
    };
    let mut out: Vec<(&'static str, &'static str, String)> = Vec::new();
    for name in g.http_route.iter().chain(g.http_routes.iter().flatten()) {
        out.push(("HTTPRoute", "httproutes", name.clone()));
    }
    if let Some(name) = &g.grpc_route {
        out.push(("GRPCRoute", "grpcroutes", name.clone()));
    }
    out
}

/// Puts `weight` percent of traffic on the canary. Writes only what differs; `Ok` once the
/// router says so. `canary_running` is false once there is no canary left to route to.
pub async fn set_weight(
    client: &Client,
    rollout: &Rollout,
    weight: i32,
    canary_running: bool,
    headers: &[ManagedRoute],
    mirrors: &[ManagedRoute],
    hashes: (&str, &str),
) -> Result<(), RouterError> {
    let ns = rollout.namespace().unwrap_or_default();
    let Some(canary) = rollout.spec.strategy.canary.as_ref() else {
        return Ok(());
    };
    let (Some(stable_svc), Some(canary_svc)) = (&canary.stable_service, &canary.canary_service) else {
        return Err(RouterError::Invalid(
            "a traffic router needs stableService and canaryService".into(),
        ));
    };
    if let Some(istio_routing) = canary.traffic_routing.as_ref().and_then(|t| t.istio.as_ref()) {
        return set_istio(
            client,
            rollout,
            istio_routing,
            (stable_svc, canary_svc),
            weight,
            hashes,
            (headers, mirrors),
        )
        .await;
    }
    if let Some(smi) = canary.traffic_routing.as_ref().and_then(|t| t.smi.as_ref()) {
        return set_smi(client, rollout, smi, stable_svc, canary_svc, weight).await;
    }
    if let Some(nginx) = canary.traffic_routing.as_ref().and_then(|t| t.nginx.as_ref()) {
        return set_nginx(
            client,
            rollout,
            nginx,
            stable_svc,
            canary_svc,
            weight,
            canary_running,
            headers.first(),
        )
        .await;
    }
    for (kind, plural, name) in gateway_routes(rollout) {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let route = api
            .get_opt(&name)
            .await
            .map_err(|e| RouterError::Api(e.to_string()))?
            .ok_or_else(|| RouterError::NotFound {
                kind: kind.into(),
                name: name.clone(),
                namespace: ns.clone(),
            })?;
        let value = serde_json::to_value(&route).map_err(|e| RouterError::Api(e.to_string()))?;
        if let Some(rules) = gateway_api::routed_rules(&value, kind, stable_svc, canary_svc, weight, headers, mirrors)?
        {
            // Only the rules: the user's other fields stay theirs.
            let patch = json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": name, "namespace": ns},
                "spec": {"rules": rules},
            });
            api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
                .await
                .map_err(|e| RouterError::Api(e.to_string()))?;
        }
    }
    Ok(())
}

/// NGINX: the generated canary Ingress carries the weight while a canary runs, and goes after.
#[allow(clippy::too_many_arguments)]
async fn set_nginx(
    client: &Client,
    rollout: &Rollout,
    nginx: &crate::crd::rollout::NginxRouting,
    stable_svc: &str,
    canary_svc: &str,
    weight: i32,
    canary_running: bool,
    header: Option<&ManagedRoute>,
) -> Result<(), RouterError> {
    use k8s_openapi::api::networking::v1::Ingress;
    let ns = rollout.namespace().unwrap_or_default();
    let api: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    let canary_name = nginx::canary_name(&nginx.stable_ingress);
    let existing = api
        .get_opt(&canary_name)
        .await
        .map_err(|e| RouterError::Api(e.to_string()))?;
    if !canary_running {
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
        .get_opt(&nginx.stable_ingress)
        .await
        .map_err(|e| RouterError::Api(e.to_string()))?
        .ok_or_else(|| RouterError::NotFound {
            kind: "Ingress".into(),
            name: nginx.stable_ingress.clone(),
            namespace: ns.clone(),
        })?;
    let stable = serde_json::to_value(&stable).map_err(|e| RouterError::Api(e.to_string()))?;
    let prefix = nginx.annotation_prefix.as_deref().unwrap_or(nginx::DEFAULT_PREFIX);
    let mut labels = serde_json::Map::new();
    labels.insert(super::ROLLOUT_LABEL.into(), json!(rollout.name_any()));
    let mut desired = nginx::canary_ingress(&stable, stable_svc, canary_svc, prefix, weight, header, labels)?;
    if let Some(owner) = kube::Resource::controller_owner_ref(rollout, &()) {
        desired["metadata"]["ownerReferences"] = json!([owner]);
    }
    if let Some(current) = existing.and_then(|e| serde_json::to_value(e).ok()) {
        let same = current["spec"] == desired["spec"]
            && desired["metadata"]["annotations"]
                .as_object()
                .into_iter()
                .flatten()
                .all(|(k, v)| current["metadata"]["annotations"][k] == *v);
        if same {
            return Ok(());
        }
    }
    api.patch(
        &canary_name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await
    .map_err(|e| RouterError::Api(e.to_string()))?;
    Ok(())
}

/// SMI: the TrafficSplit (named by `trafficSplit`, else after the Rollout) takes the weight.
async fn set_smi(
    client: &Client,
    rollout: &Rollout,
    smi: &crate::crd::rollout::SmiRouting,
    stable_svc: &str,
    canary_svc: &str,
    weight: i32,
) -> Result<(), RouterError> {
    let ns = rollout.namespace().unwrap_or_default();
    let name = smi.traffic_split.clone().unwrap_or_else(|| rollout.name_any());
    let root = smi.root_service.clone().unwrap_or_else(|| stable_svc.to_string());
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("split.smi-spec.io", "v1alpha2", "TrafficSplit"),
        "trafficsplits",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let mut labels = serde_json::Map::new();
    labels.insert(super::ROLLOUT_LABEL.into(), json!(rollout.name_any()));
    let mut desired = smi::traffic_split(&name, &ns, &root, stable_svc, canary_svc, weight, labels);
    if let Some(owner) = kube::Resource::controller_owner_ref(rollout, &()) {
        desired["metadata"]["ownerReferences"] = json!([owner]);
    }
    let current = api.get_opt(&name).await.map_err(|e| RouterError::Api(e.to_string()))?;
    if current
        .and_then(|c| serde_json::to_value(c).ok())
        .is_some_and(|c| c["spec"] == desired["spec"])
    {
        return Ok(());
    }
    api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&desired))
        .await
        .map_err(|e| {
            if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                RouterError::Invalid(
                    "the TrafficSplit kind (split.smi-spec.io/v1alpha2) is not installed in the cluster".into(),
                )
            } else {
                RouterError::Api(e.to_string())
            }
        })?;
    Ok(())
}

fn istio_api(client: &Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("networking.istio.io", "v1beta1", kind), plural);
    Api::namespaced_with(client.clone(), ns, &ar)
}

async fn get_dynamic(
    api: &Api<DynamicObject>,
    kind: &str,
    name: &str,
    ns: &str,
) -> Result<serde_json::Value, RouterError> {
    let obj = api
        .get_opt(name)
        .await
        .map_err(|e| RouterError::Api(e.to_string()))?
        .ok_or_else(|| RouterError::NotFound {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.into(),
        })?;
    serde_json::to_value(&obj).map_err(|e| RouterError::Api(e.to_string()))
}

/// Istio: with a DestinationRule, its subsets select the versions' hashes and the VirtualService
/// weighs the subsets; without one, the VirtualService weighs the two Services' hosts.
async fn set_istio(
    client: &Client,
    rollout: &Rollout,
    routing: &crate::crd::rollout::IstioRouting,
    services: (&str, &str),
    weight: i32,
    hashes: (&str, &str),
    routes: (&[ManagedRoute], &[ManagedRoute]),
) -> Result<(), RouterError> {
    let ns = rollout.namespace().unwrap_or_default();
    let apply = |kind: &'static str, name: String, spec: serde_json::Value| json!({"apiVersion": "networking.istio.io/v1beta1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec});
    let (stable, canary) = match &routing.destination_rule {
        Some(dr) => {
            let api = istio_api(client, &ns, "DestinationRule", "destinationrules");
            let current = get_dynamic(&api, "DestinationRule", &dr.name, &ns).await?;
            if let Some(subsets) = istio::subsets(
                &current,
                &dr.stable_subset_name,
                &dr.canary_subset_name,
                hashes.0,
                hashes.1,
            )? {
                let patch = apply("DestinationRule", dr.name.clone(), json!({"subsets": subsets}));
                api.patch(&dr.name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
                    .await
                    .map_err(|e| RouterError::Api(e.to_string()))?;
            }
            (dr.stable_subset_name.as_str(), dr.canary_subset_name.as_str())
        }
        None => services,
    };
    let vs = &routing.virtual_service;
    let api = istio_api(client, &ns, "VirtualService", "virtualservices");
    let current = get_dynamic(&api, "VirtualService", &vs.name, &ns).await?;
    let names = vs.routes.clone().unwrap_or_default();
    let by_subset = routing.destination_rule.is_some();
    if let Some(http) = istio::routed_http(&current, &names, stable, canary, weight, by_subset, routes.0, routes.1)? {
        let patch = apply("VirtualService", vs.name.clone(), json!({"http": http}));
        api.patch(&vs.name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map_err(|e| RouterError::Api(e.to_string()))?;
    }
    Ok(())
}
