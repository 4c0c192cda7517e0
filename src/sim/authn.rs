//! Who a request comes from: its bearer token (the kubeconfig's administrator, or a
//! ServiceAccount token the sim issued), then impersonation (`kubectl --as`), as the API
//! server's authentication and impersonation filters decide it.

use super::kubeconfig::ADMIN_TOKEN;
use super::rbac::{Attributes, Target};
use super::status::ApiError;
use super::store::Store;
use super::tokens::{API_AUDIENCE, Tokens};
use super::users::{AUTHENTICATED_GROUP, UserInfo};
use axum::http::HeaderMap;

/// A token that authenticates: its user and the audiences it is good for.
#[derive(Debug, Clone, PartialEq)]
pub struct Reviewed {
    pub user: UserInfo,
    pub audiences: Vec<String>,
}

/// Reviews a bearer token for `audiences` (the API server's own when empty), as a TokenReview
/// does; the error is the review's `status.error`.
pub fn review(
    store: &Store,
    tokens: &Tokens,
    token: &str,
    audiences: &[String],
    now: jiff::Timestamp,
) -> Result<Reviewed, String> {
    let wanted: Vec<String> = if audiences.is_empty() {
        vec![API_AUDIENCE.to_string()]
    } else {
        audiences.to_vec()
    };
    let invalid = |why: &str| format!("[invalid bearer token, {why}]");
    if token == ADMIN_TOKEN {
        // A static token: good for the API server only.
        if !wanted.iter().any(|a| a == API_AUDIENCE) {
            return Err(invalid("token audiences do not match the target audiences"));
        }
        return Ok(Reviewed {
            user: UserInfo::admin(),
            audiences: vec![API_AUDIENCE.to_string()],
        });
    }
    let issued = tokens.lookup(token).ok_or_else(|| invalid("token lookup failed"))?;
    if issued.expires <= now {
        return Err(invalid("service account token has expired"));
    }
    let sa = store
        .find_type("", "v1", "serviceaccounts")
        .and_then(|rt| store.get(&rt, &issued.namespace, &issued.service_account).ok());
    let current = sa.is_some_and(|sa| super::meta::uid(&sa) == issued.user.uid);
    if !current {
        return Err(invalid(&format!(
            "service account {}/{} has been deleted",
            issued.namespace, issued.service_account
        )));
    }
    let matched: Vec<String> = issued
        .audiences
        .iter()
        .filter(|a| wanted.contains(a))
        .cloned()
        .collect();
    if matched.is_empty() {
        return Err(invalid(&format!(
            "token audiences {:?} is invalid for the target audiences {:?}",
            issued.audiences, wanted
        )));
    }
    Ok(Reviewed {
        user: issued.user,
        audiences: matched,
    })
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect()
}

/// The user a request authenticates as: 401 for a bearer token the sim does not know. A request
/// without credentials is the administrator's, as every request to the sim always was.
pub fn authenticate(store: &Store, tokens: &Tokens, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let user = match bearer {
        None => UserInfo::admin(),
        Some(token) => {
            review(store, tokens, token, &[], jiff::Timestamp::now())
                .map_err(|_| ApiError::unauthorized())?
                .user
        }
    };
    impersonate(store, user, headers)
}

/// `Impersonate-User` / `Impersonate-Group`: the requester acts as another user when RBAC (or
/// `system:masters`) lets it impersonate them.
fn impersonate(store: &Store, requester: UserInfo, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
    let Some(username) = header_values(headers, "impersonate-user")
        .first()
        .map(|s| s.to_string())
    else {
        return Ok(requester);
    };
    let mut groups: Vec<String> = header_values(headers, "impersonate-group")
        .into_iter()
        .map(String::from)
        .collect();
    let sa = username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, name)| (ns.to_string(), name.to_string()));
    let mut checks = vec![match &sa {
        Some((ns, name)) => ("serviceaccounts", ns.clone(), name.clone()),
        None => ("users", String::new(), username.clone()),
    }];
    checks.extend(groups.iter().map(|g| ("groups", String::new(), g.clone())));
    for (resource, namespace, name) in checks {
        let attrs = Attributes {
            user: requester.clone(),
            verb: "impersonate".into(),
            namespace: namespace.clone(),
            target: Target::Resource {
                group: String::new(),
                resource: resource.into(),
                subresource: String::new(),
                name: name.clone(),
            },
        };
        if !super::authz::authorize(store, &attrs).allowed {
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{namespace}\"")
            };
            return Err(ApiError::forbidden(format!(
                "{resource} \"{name}\" is forbidden: User \"{}\" cannot impersonate resource \"{resource}\" in API group \"\" {scope}",
                requester.username
            )));
        }
    }
    if groups.is_empty()
        && let Some((ns, _)) = &sa
    {
        groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
    }
    if username != "system:anonymous" && !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.into());
    }
    Ok(UserInfo {
        username,
        uid: header_values(headers, "impersonate-uid")
            .first()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        groups,
    })
}
