//! Serin: a progressive-delivery operator for Kubernetes.

pub mod admin;
pub mod analysis;
pub mod cli;
pub mod convert;
pub mod crd;
pub mod dashboard;
pub mod hash;
pub mod hooks;
pub mod leader;
pub mod plan;
pub mod reconcile;
pub mod shard;
pub mod sim;
pub mod timeline;
pub mod traffic;
