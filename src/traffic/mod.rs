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
