//! Authorization against the cluster's stored RBAC objects: reads them from the store and lets
//! the pure `rbac` module decide.

use super::rbac::{Attributes, Decision, Policy};
use super::resources::StorageKey;
use super::store::Store;
use super::users::UserInfo;
use serde_json::Value;
use std::sync::Arc;

fn all(store: &Store, plural: &str) -> Vec<Arc<Value>> {
    let key = StorageKey {
        group: "rbac.authorization.k8s.io".into(),
        plural: plural.into(),
    };
    store.list(&key, None, None, None, &|_| true).items
}

pub fn policy(store: &Store) -> Policy {
    Policy {
        roles: all(store, "roles"),
        cluster_roles: all(store, "clusterroles"),
        role_bindings: all(store, "rolebindings"),
        cluster_role_bindings: all(store, "clusterrolebindings"),
    }
}

pub fn authorize(store: &Store, attrs: &Attributes) -> Decision {
    policy(store).authorize(attrs)
}

/// Resource rules, non-resource rules and whether they may be incomplete, for `user` in `namespace`.
pub fn rules_for(store: &Store, user: &UserInfo, namespace: &str) -> (Vec<Value>, Vec<Value>, bool) {
    policy(store).rules_for(user, namespace)
}
