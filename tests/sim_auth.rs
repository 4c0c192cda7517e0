//! The simulated cluster's authentication and authorization APIs, as a dashboard checking its
//! users' tokens uses them: TokenRequest (`kubectl create token`), TokenReview, bearer tokens on
//! requests, SubjectAccessReview over stored RBAC, and `kubectl auth can-i|whoami`.

mod common;

use common::Cluster;
use serde_json::{Value, json};

const DASHBOARD_RBAC: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: dashboard, namespace: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: viewer, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: rollout-status, namespace: shop}
rules:
- {apiGroups: [serin.dev], resources: [rollouts/status], verbs: [get, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dashboard-status, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: rollout-status}
subjects: [{kind: ServiceAccount, name: dashboard}]
"#;

fn setup() -> Cluster {
    let sim = Cluster::sim();
    sim.install_crds();
    sim.kubectl_ok(&["create", "namespace", "shop"]);
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], DASHBOARD_RBAC);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sim
}

async fn post(sim: &Cluster, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", sim.api_url()))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let response = req.send().await.expect("the sim answers");
    let code = response.status().as_u16();
    (code, response.json().await.expect("a JSON answer"))
}

async fn token_review(sim: &Cluster, token: &str, audiences: &[&str]) -> Value {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token, "audiences": audiences}});
    let (code, review) = post(sim, "/apis/authentication.k8s.io/v1/tokenreviews", None, body).await;
    assert_eq!(code, 201, "{review}");
    review["status"].clone()
}

#[tokio::test]
async fn kubectl_creates_tokens_that_token_reviews_recognise() {
    let sim = setup();
    let resources = sim.kubectl_ok(&["api-resources", "--api-group=authentication.k8s.io", "-o", "wide"]);
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("tokenreviews") && l.contains(" create ")),
        "{resources}"
    );

    let token = sim.kubectl_ok(&["create", "token", "dashboard", "-n", "shop", "--duration", "10m"]);
    let token = token.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "JWT-shaped: {token}");
    let request: Value =
        serde_json::from_str(&sim.kubectl_ok(&["create", "token", "dashboard", "-n", "shop", "-o", "json"]))
            .expect("a TokenRequest");
    assert_eq!(request["kind"], "TokenRequest");
    assert_eq!(request["spec"]["expirationSeconds"], 3600);
    let expires = request["status"]["expirationTimestamp"].as_str().unwrap_or_default();
    let expires: jiff::Timestamp = expires.parse().expect("an RFC 3339 time");
    let left = expires.duration_since(jiff::Timestamp::now()).as_secs();
    assert!((3500..=3600).contains(&left), "{left}s left");

    let missing = sim.kubectl(&["create", "token", "nobody", "-n", "shop"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("serviceaccounts \"nobody\" not found"), "{err}");
    let short = sim.kubectl(&["create", "token", "dashboard", "-n", "shop", "--duration", "1m"]);
    assert!(!short.status.success(), "shorter than ten minutes is refused");

    let good = token_review(&sim, &token, &[]).await;
    assert_eq!(good["authenticated"], true, "{good}");
    assert_eq!(good["user"]["username"], "system:serviceaccount:shop:dashboard");
    assert_eq!(
        good["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:shop",
            "system:authenticated"
        ])
    );
    let uid = sim.kubectl_ok(&["get", "sa", "dashboard", "-n", "shop", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(good["user"]["uid"], uid.as_str());
    assert_eq!(
        good["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );

    let unknown = token_review(&sim, "not-a-token", &[]).await;
    assert_eq!(unknown["authenticated"], false);
    assert!(
        unknown["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid bearer token")),
        "{unknown}"
    );
    let elsewhere = token_review(&sim, &token, &["https://vault.example"]).await;
    assert_eq!(elsewhere["authenticated"], false, "issued for the API server only");
    let admin = token_review(&sim, "serin-sim", &[]).await;
    assert_eq!(
        admin["user"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );

    // The token authenticates requests; a token nobody issued is 401.
    let (code, me) = post(
        &sim,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(&token),
        json!({}),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:shop:dashboard"
    );
    let (code, status) = post(
        &sim,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some("forged"),
        json!({}),
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (401, Some("Unauthorized")));

    // A deleted ServiceAccount's tokens stop authenticating.
    sim.kubectl_ok(&["delete", "sa", "dashboard", "-n", "shop"]);
    let gone = token_review(&sim, &token, &[]).await;
    assert_eq!(gone["authenticated"], false, "{gone}");
}

fn sar(user: &str, groups: &[&str], verb: &str, resource: &str, subresource: &str) -> String {
    format!(
        r#"apiVersion: authorization.k8s.io/v1
kind: SubjectAccessReview
spec:
  user: {user}
  groups: {groups:?}
  resourceAttributes: {{namespace: shop, verb: {verb}, group: serin.dev, resource: {resource}, subresource: "{subresource}", name: web}}
"#
    )
}

fn review_status(sim: &Cluster, yaml: &str) -> Value {
    let out = sim.kubectl_stdin(&["create", "-f", "-", "-o", "json"], yaml);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let review: Value = serde_json::from_slice(&out.stdout).expect("a review");
    review["status"].clone()
}

#[tokio::test]
async fn subject_access_reviews_follow_rbac() {
    let sim = setup();
    let groups = [
        "system:serviceaccounts",
        "system:serviceaccounts:shop",
        "system:authenticated",
    ];
    let dashboard = "system:serviceaccount:shop:dashboard";
    let allowed = review_status(&sim, &sar(dashboard, &groups, "patch", "rollouts", "status"));
    assert_eq!(
        allowed,
        json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"dashboard-status/shop\" of Role \"rollout-status\" to ServiceAccount \"dashboard/shop\""})
    );
    for (user, verb, resource, subresource) in [
        ("system:serviceaccount:shop:viewer", "patch", "rollouts", "status"),
        (dashboard, "patch", "rollouts", ""),
        (dashboard, "delete", "rollouts", "status"),
    ] {
        let denied = review_status(&sim, &sar(user, &groups, verb, resource, subresource));
        assert_eq!(denied["allowed"], false, "{user} {verb} {resource}/{subresource}");
        assert!(
            denied["denied"].is_null() || denied["denied"] == false,
            "RBAC never denies"
        );
    }

    let out = sim.kubectl_stdin(
        &["create", "-f", "-", "-o", "json"],
        "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec: {resourceAttributes: {verb: get, resource: pods}}\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least one of user or group must be specified"), "{err}");

    // The same through HTTP, as a dashboard asks.
    let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": dashboard, "groups": groups,
        "resourceAttributes": {"namespace": "shop", "verb": "get", "group": "serin.dev", "resource": "rollouts", "subresource": "status"},
    }});
    let (code, review) = post(&sim, "/apis/authorization.k8s.io/v1/subjectaccessreviews", None, body).await;
    assert_eq!(code, 201);
    assert_eq!(review["status"]["allowed"], true);

    // kubectl auth can-i: the administrator may do anything; impersonating the ServiceAccount,
    // only what its RoleBinding grants.
    assert_eq!(
        sim.kubectl_ok(&["auth", "can-i", "delete", "rollouts.serin.dev", "-n", "shop"])
            .trim(),
        "yes"
    );
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i", "--as", dashboard, "-n", "shop"];
        all.extend_from_slice(args);
        let out = sim.kubectl(&all);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    assert_eq!(
        can(&["patch", "rollouts.serin.dev", "--subresource=status"]),
        (true, "yes".into())
    );
    assert_eq!(can(&["patch", "rollouts.serin.dev"]), (false, "no".into()));
    let whoami = sim.kubectl_ok(&["auth", "whoami", "--as", dashboard]);
    assert!(whoami.contains(dashboard), "{whoami}");
}
