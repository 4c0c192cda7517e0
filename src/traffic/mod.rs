//! Traffic routers: where the canary's weight is set when Pods alone are too coarse. One module
//! per router; `reconcile` calls them through [`Router`].

pub mod gateway_api;
pub mod istio;
pub mod nginx;
pub mod smi;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouterError {
    #[error("{0}")]
    Invalid(String),
    #[error("{kind} {name} not found in namespace {namespace}")]
    NotFound {
        kind: String,
        name: String,
        namespace: String,
    },
    #[error("Kubernetes API: {0}")]
    Api(String),
}

use crate::crd::rollout::ManagedRoute;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use std::future::Future;

/// Everything a router needs to say for one reconcile.
pub struct Desired<'a> {
    pub namespace: &'a str,
    pub rollout: &'a str,
    pub stable_service: &'a str,
    pub canary_service: &'a str,
    pub weight: i32,
    /// False once no canary is left to route to (after promotion or abort).
    pub canary_running: bool,
    pub headers: &'a [ManagedRoute],
    pub mirrors: &'a [ManagedRoute],
    /// `trafficRouting.managedRoutes`: the names of the routes Serin may add, in their order.
    pub managed: &'a [String],
    pub stable_hash: &'a str,
    pub canary_hash: &'a str,
    /// Owner of the objects a router creates (so they go with the Rollout).
    pub owner: Option<OwnerReference>,
}

/// A traffic router: makes its objects say `desired`, writing only what differs.
pub trait TrafficRouter {
    fn apply(&self, client: &Client, desired: &Desired<'_>) -> impl Future<Output = Result<(), RouterError>> + Send;
}

/// The field manager of every router write.
pub const MANAGER: &str = "serin";

/// An object of a kind known by group, version, kind and plural, read as JSON.
pub(crate) async fn get_json(
    api: &kube::Api<DynamicObject>,
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

pub(crate) fn dynamic_api(
    client: &Client,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> kube::Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    kube::Api::namespaced_with(client.clone(), ns, &ar)
}

/// A kind of the user's that a router sets fields in: group, version, kind, plural.
pub(crate) type Kind<'a> = (&'a str, &'a str, &'a str, &'a str);

/// Reads the user's object; `change` returns the `spec` fields Serin sets (None when none needs
/// changing), and only those are applied, so the user's other fields stay theirs.
pub(crate) async fn set_spec_fields(
    client: &Client,
    ns: &str,
    (group, version, kind, plural): Kind<'_>,
    name: &str,
    change: impl FnOnce(&serde_json::Value) -> Result<Option<serde_json::Value>, RouterError>,
) -> Result<(), RouterError> {
    let api = dynamic_api(client, ns, group, version, kind, plural);
    let current = get_json(&api, kind, name, ns).await?;
    if let Some(spec) = change(&current)? {
        let patch = serde_json::json!({
            "apiVersion": format!("{group}/{version}"),
            "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        });
        apply_json(&api, name, &patch).await?;
    }
    Ok(())
}

/// Server-side apply of `patch` as Serin, with force: Serin's fields are Serin's.
pub(crate) async fn apply_json(
    api: &kube::Api<DynamicObject>,
    name: &str,
    patch: &serde_json::Value,
) -> Result<(), RouterError> {
    api.patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(patch))
        .await
        .map(|_| ())
        .map_err(|e| RouterError::Api(e.to_string()))
}
