//! ValidatingAdmissionPolicies in the simulated cluster, driven by the real kubectl: refusals with
//! the API server's words, warnings, params from a ConfigMap, match conditions, failure policies,
//! and policies that do not compile refused when written.

mod common;

use common::Cluster;
use std::process::Output;

fn apply(sim: &Cluster, yaml: &str) -> Output {
    sim.kubectl_stdin(&["apply", "-f", "-"], yaml)
}

fn apply_ok(sim: &Cluster, yaml: &str) -> String {
    let out = apply(sim, yaml);
    assert!(
        out.status.success(),
        "apply failed:\n{}\n{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn apply_refused(sim: &Cluster, yaml: &str) -> String {
    let out = apply(sim, yaml);
    assert!(!out.status.success(), "apply should be refused:\n{yaml}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default, labels: {{app: {name}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: web, image: example/web:1.0}}]}}
"#
    )
}

/// A policy on Deployments with the given extra spec lines, bound with `actions`.
fn deployment_policy(name: &str, spec: &str, actions: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
{spec}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}-binding}}
spec:
  policyName: {name}
  validationActions: {actions}
"#
    )
}

#[test]
fn deny_refuses_with_the_policy_message_and_warn_warns() {
    let sim = Cluster::sim();
    let out = sim.kubectl_ok(&["api-resources", "--api-group=admissionregistration.k8s.io"]);
    assert!(
        out.contains("validatingadmissionpolicies") && out.contains("validatingadmissionpolicybindings"),
        "{out}"
    );
    apply_ok(
        &sim,
        &deployment_policy(
            "max-replicas",
            r#"  validations:
  - expression: "object.spec.replicas <= 5"
    message: "at most 5 replicas"
    reason: Forbidden"#,
            "[Deny]",
        ),
    );
    let table = sim.kubectl_ok(&["get", "validatingadmissionpolicies,validatingadmissionpolicybindings"]);
    assert!(
        table.contains("VALIDATIONS") && table.contains("POLICYNAME") && table.contains("max-replicas-binding"),
        "{table}"
    );
    let err = apply_refused(&sim, &deployment("web", 6));
    assert!(
        err.contains("ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-binding' denied request: at most 5 replicas"),
        "{err}"
    );
    assert!(err.contains("Forbidden") || err.contains("forbidden"), "{err}");
    apply_ok(&sim, &deployment("web", 3));
    // An update is judged too; the stored object is left as it was.
    apply_refused(&sim, &deployment("web", 8));
    let replicas = sim.kubectl_ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "3");
    // Scaling goes through /scale, which a rule on `deployments` does not cover.
    sim.kubectl_ok(&["scale", "deployment", "web", "--replicas=7"]);

    apply_ok(
        &sim,
        &deployment_policy(
            "has-team",
            r#"  validations:
  - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
    messageExpression: "'deployment ' + object.metadata.name + ' has no team label'""#,
            "[Warn]",
        ),
    );
    let warned = apply_ok(&sim, &deployment("worker", 1));
    assert!(
        warned.contains(
            "Warning: Validation failed for ValidatingAdmissionPolicy 'has-team' with binding 'has-team-binding': deployment worker has no team label"
        ),
        "{warned}"
    );
    // A binding whose policy is missing does nothing.
    apply_ok(
        &sim,
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: orphan}
spec: {policyName: not-there, validationActions: [Deny]}
"#,
    );
    apply_ok(&sim, &deployment("worker", 2));
}

#[tokio::test]
async fn the_refusal_is_the_api_servers_status() {
    let sim = Cluster::sim();
    apply_ok(
        &sim,
        &deployment_policy(
            "max-replicas",
            "  validations:\n  - expression: \"object.spec.replicas <= 5\"",
            "[Deny]",
        ),
    );
    let body: serde_json::Value = serde_saphyr::from_str(&deployment("web", 6)).expect("yaml");
    let response = reqwest::Client::new()
        .post(format!("{}/apis/apps/v1/namespaces/default/deployments", sim.api_url()))
        .json(&body)
        .send()
        .await
        .expect("the sim answers");
    assert_eq!(response.status().as_u16(), 422, "no reason given: Invalid");
    let status: serde_json::Value = response.json().await.expect("a Status");
    let message = "ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-binding' denied request: failed expression: object.spec.replicas <= 5";
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        format!("deployments.apps \"web\" is forbidden: {message}")
    );
    assert_eq!(status["details"]["causes"][0]["message"], message);
    assert_eq!(status["details"]["kind"], "deployments");
}

#[test]
fn params_come_from_a_config_map_and_match_conditions_gate() {
    let sim = Cluster::sim();
    apply_ok(
        &sim,
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replica-limit}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  matchConditions:
  - name: not-exempt
    expression: "!has(object.metadata.labels) || !('exempt' in object.metadata.labels)"
  variables:
  - name: limit
    expression: "int(params.data.maxReplicas)"
  validations:
  - expression: "object.spec.replicas <= variables.limit"
    messageExpression: "'replicas must be at most ' + string(variables.limit)"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: replica-limit}
spec:
  policyName: replica-limit
  validationActions: [Deny]
  paramRef: {name: limits, namespace: default, parameterNotFoundAction: Deny}
"#,
    );
    // The param is missing and the binding says Deny: refused, subject to the failure policy.
    let err = apply_refused(&sim, &deployment("web", 1));
    assert!(
        err.contains(
            "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
        ),
        "{err}"
    );
    sim.kubectl_ok(&["create", "configmap", "limits", "--from-literal=maxReplicas=4"]);
    apply_ok(&sim, &deployment("web", 4));
    let err = apply_refused(&sim, &deployment("web", 5));
    assert!(err.contains("denied request: replicas must be at most 4"), "{err}");
    sim.kubectl_ok(&["patch", "configmap", "limits", "-p", r#"{"data":{"maxReplicas":"10"}}"#]);
    apply_ok(&sim, &deployment("web", 5));
    // A match condition that is false leaves the request to others.
    let exempt = deployment("batch", 50).replace("labels: {app: batch}}", "labels: {app: batch, exempt: \"yes\"}}");
    apply_ok(&sim, &exempt);
}

#[test]
fn failure_policy_decides_what_an_evaluation_error_does() {
    let sim = Cluster::sim();
    let broken = |name: &str, failure: &str| {
        deployment_policy(
            name,
            &format!(
                "  failurePolicy: {failure}\n  validations:\n  - expression: \"object.spec.template.metadata.annotations['owner'] != ''\""
            ),
            "[Deny]",
        )
    };
    apply_ok(&sim, &broken("lenient", "Ignore"));
    apply_ok(&sim, &deployment("web", 1));
    apply_ok(&sim, &broken("strict", "Fail"));
    let err = apply_refused(&sim, &deployment("api", 1));
    assert!(
        err.contains("ValidatingAdmissionPolicy 'strict' with binding 'strict-binding' denied request: expression 'object.spec.template.metadata.annotations['owner'] != ''' resulted in error"),
        "{err}"
    );
    // DELETE is judged when the rules name it: oldObject is the stored object.
    apply_ok(
        &sim,
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: keep-protected}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: ["v1"], operations: ["DELETE"], resources: ["configmaps"]}
  validations:
  - expression: "object == null && !(has(oldObject.metadata.labels) && 'protected' in oldObject.metadata.labels)"
    message: "protected ConfigMaps cannot be deleted"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: keep-protected}
spec: {policyName: keep-protected, validationActions: [Deny]}
"#,
    );
    sim.kubectl_ok(&["create", "configmap", "plain"]);
    sim.kubectl_ok(&["create", "configmap", "precious"]);
    sim.kubectl_ok(&["label", "configmap", "precious", "protected=true"]);
    sim.kubectl_ok(&["delete", "configmap", "plain"]);
    let out = sim.kubectl(&["delete", "configmap", "precious"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("protected ConfigMaps cannot be deleted"), "{err}");
}

#[test]
fn a_policy_that_does_not_compile_is_refused_when_written() {
    let sim = Cluster::sim();
    let err = apply_refused(
        &sim,
        &deployment_policy(
            "broken",
            "  validations:\n  - expression: \"object.spec.replicas <=\"\n  - expression: \"objekt.spec.replicas < 3\"",
            "[Deny]",
        ),
    );
    assert!(
        err.contains("ValidatingAdmissionPolicy.admissionregistration.k8s.io \"broken\" is invalid"),
        "{err}"
    );
    assert!(
        err.contains("spec.validations[0].expression: Invalid value: \"object.spec.replicas <=\": compilation failed: ERROR: <input>:1:24: Syntax error"),
        "{err}"
    );
    assert!(
        err.contains("spec.validations[1].expression: Invalid value: \"objekt.spec.replicas < 3\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'objekt'"),
        "{err}"
    );
    let out = sim.kubectl(&["get", "validatingadmissionpolicy", "broken"]);
    assert!(!out.status.success(), "nothing was stored");
    let err = apply_refused(
        &sim,
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: b}
spec: {policyName: p, validationActions: [Deny, Warn]}
"#,
    );
    assert!(err.contains("must not contain both Deny and Warn"), "{err}");
}
