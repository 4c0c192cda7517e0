//! Who makes a request: the user the API server authenticated, as admission and authorization
//! see it (`request.userInfo` in CEL, `spec.user` in a SubjectAccessReview).

use serde_json::{Value, json};

/// An authenticated user: name, uid and groups, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// The user of the sim's own kubeconfig, a cluster administrator as kubeadm names it.
pub const ADMIN_USER: &str = "kubernetes-admin";

/// The group every request in it is allowed, as in a real cluster.
pub const MASTERS_GROUP: &str = "system:masters";

pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

impl UserInfo {
    pub fn admin() -> Self {
        UserInfo {
            username: ADMIN_USER.into(),
            uid: String::new(),
            groups: vec![MASTERS_GROUP.into(), AUTHENTICATED_GROUP.into()],
        }
    }

    /// The identity of the sim's own controllers (garbage collector, workload, jobs), whose
    /// writes go through admission as a kube-controller-manager's do.
    pub fn controller_manager() -> Self {
        UserInfo {
            username: "system:kube-controller-manager".into(),
            uid: String::new(),
            groups: vec![AUTHENTICATED_GROUP.into()],
        }
    }

    /// A ServiceAccount's user: `system:serviceaccount:NS:NAME` with its groups.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        UserInfo {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.into(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED_GROUP.into(),
            ],
        }
    }

    /// The `userInfo` object of an admission request or a review's status.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.username, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        v
    }
}
