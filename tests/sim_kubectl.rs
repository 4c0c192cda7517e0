//! The simulated cluster driven by the real kubectl, started as its own `serin sim` process.

mod common;

use common::Cluster;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: example/web:1.0
        env: [{name: SERIN_SIM_READY_SECONDS, value: "0.2"}]
      - name: sidecar
        image: example/proxy:1.0
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"#;

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.serin.dev}
spec:
  group: test.serin.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Weight, type: integer, jsonPath: .spec.weight}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              weight: {type: integer, minimum: 0, maximum: 100}
          status:
            type: object
            properties:
              phase: {type: string}
"#;

#[test]
fn kubectl_applies_gets_patches_scales_and_deletes() {
    let sim = Cluster::sim();
    let out = sim.kubectl_stdin(&["apply", "--server-side", "-f", "-"], APP);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("deployment.apps/web serverside-applied"), "{printed}");

    sim.kubectl_ok(&["wait", "--for=condition=Available", "deployment/web", "--timeout=20s"]);
    let table = sim.kubectl_ok(&["get", "deployment", "web"]);
    assert!(table.contains("READY") && table.contains("2/2"), "{table}");
    let pods = sim.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].status.phase}",
    ]);
    assert_eq!(pods.split_whitespace().collect::<Vec<_>>(), vec!["Running", "Running"]);

    // Strategic merge keeps the other container; merge and JSON patches work too.
    sim.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"example/web:2.0"}]}}}}"#,
    ]);
    let images = sim.kubectl_ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(images, "example/web:2.0 example/proxy:1.0");
    sim.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"tier":"front"}}}"#,
    ]);
    sim.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
    ]);
    let generation = sim.kubectl_ok(&["get", "deployment", "web", "-o", "jsonpath={.metadata.generation}"]);
    assert_eq!(
        generation, "3",
        "two spec changes after creation; the label change did not count"
    );

    sim.kubectl_ok(&["scale", "deployment", "web", "--replicas=1"]);
    sim.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.status.readyReplicas}=1",
        "deployment/web",
        "--timeout=20s",
    ]);

    // A second field manager conflicts with the applier until it forces.
    let bumped = APP.replace("replicas: 2", "replicas: 5");
    let out = sim.kubectl_stdin(&["apply", "--server-side", "--field-manager=ops", "-f", "-"], &bumped);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("conflict") && err.contains(".spec.replicas"), "{err}");
    let out = sim.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=ops",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &bumped,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    sim.kubectl_ok(&["delete", "deployment", "web", "--timeout=20s"]);
    let left = sim.kubectl_ok(&["get", "deployments,replicasets", "-o", "name"]);
    assert_eq!(left.trim(), "");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !sim.kubectl_ok(&["get", "pods", "-o", "name"]).trim().is_empty() {
        assert!(Instant::now() < deadline, "pods were not collected");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = sim.kubectl(&["get", "deployment", "web"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

#[test]
fn kubectl_watch_streams_changes() {
    let sim = Cluster::sim();
    let child = std::process::Command::new(common::kubectl_path())
        .env("KUBECONFIG", &sim.kubeconfig)
        .args(["get", "configmaps", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let mut watch = common::Proc {
        child,
        name: "kubectl get -w",
    };
    std::thread::sleep(Duration::from_millis(500));
    sim.kubectl_ok(&["create", "configmap", "first", "--from-literal=a=1"]);
    sim.kubectl_ok(&["label", "configmap", "first", "x=y"]);
    sim.kubectl_ok(&["delete", "configmap", "first"]);
    std::thread::sleep(Duration::from_millis(800));
    let _ = watch.child.kill();
    let mut out = String::new();
    watch
        .child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    let events: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("first"))
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(events, vec!["ADDED", "MODIFIED", "DELETED"], "{out}");
}

#[test]
fn kubectl_serves_custom_resources_from_applied_crds() {
    let sim = Cluster::sim();
    let out = sim.kubectl_stdin(&["apply", "--server-side", "-f", "-"], WIDGET_CRD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sim.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.test.serin.dev",
        "--timeout=10s",
    ]);
    let widget = "apiVersion: test.serin.dev/v1\nkind: Widget\nmetadata: {name: w}\nspec: {weight: 30}\n";
    let out = sim.kubectl_stdin(&["apply", "--server-side", "-f", "-"], widget);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = sim.kubectl_ok(&["get", "wd"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "WEIGHT", "PHASE"], "{table}");
    assert!(lines.next().unwrap_or("").starts_with("w "), "{table}");

    let bad = sim.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &widget.replace("30", "300"));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("spec.weight") && err.contains("less than or equal to 100"),
        "{err}"
    );
    let unknown = sim.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &widget.replace("weight: 30", "weight: 30, colour: red"),
    );
    assert!(!unknown.status.success());
    assert!(
        // As kube-apiserver answers a server-side apply it cannot type: a 500, whatever
        // fieldValidation says.
        String::from_utf8_lossy(&unknown.stderr).contains(".spec.colour: field not declared in schema"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );

    sim.kubectl_ok(&[
        "patch",
        "widget",
        "w",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Ready"}}"#,
    ]);
    assert_eq!(
        sim.kubectl_ok(&["get", "widget", "w", "-o", "jsonpath={.status.phase}"]),
        "Ready"
    );
    sim.kubectl_ok(&["delete", "widget", "w"]);
}

/// The published Gateway API CRDs, when the shared test data is beside the project.
#[test]
fn kubectl_applies_published_gateway_api_crds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/crds");
    if !dir.exists() {
        eprintln!("skipping: {} is absent", dir.display());
        return;
    }
    let sim = Cluster::sim();
    for f in [
        "gateway.networking.k8s.io_httproutes.yaml",
        "gateway.networking.k8s.io_grpcroutes.yaml",
    ] {
        let path = dir.join(f);
        sim.kubectl_ok(&["apply", "--server-side", "-f", path.to_str().unwrap_or_default()]);
    }
    sim.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/httproutes.gateway.networking.k8s.io",
        "--timeout=10s",
    ]);
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs:
    - {name: web-stable, port: 80, weight: 90}
    - {name: web-canary, port: 80, weight: 10}
"#;
    let out = sim.kubectl_stdin(&["apply", "--server-side", "-f", "-"], route);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let weights = sim.kubectl_ok(&[
        "get",
        "httproute",
        "web",
        "-o",
        "jsonpath={.spec.rules[0].backendRefs[*].weight}",
    ]);
    assert_eq!(weights, "90 10");
    // Defaults from the published schema are applied (path match defaults to PathPrefix /).
    let path_type = sim.kubectl_ok(&[
        "get",
        "httproute",
        "web",
        "-o",
        "jsonpath={.spec.rules[0].matches[0].path.type}",
    ]);
    assert_eq!(path_type, "PathPrefix");
}

#[test]
fn kubectl_typed_create_commands_work() {
    let sim = Cluster::sim();
    sim.kubectl_ok(&["create", "namespace", "shop"]);
    sim.kubectl_ok(&[
        "-n",
        "shop",
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=token=s3cret",
    ]);
    sim.kubectl_ok(&[
        "-n",
        "shop",
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ]);
    let token = sim.kubectl_ok(&["-n", "shop", "get", "secret", "creds", "-o", "jsonpath={.data.token}"]);
    assert_eq!(token, "czNjcmV0", "base64 of s3cret");
    assert_eq!(
        sim.kubectl_ok(&[
            "-n",
            "shop",
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.mode}"
        ]),
        "fast"
    );
    let phase = sim.kubectl_ok(&["get", "namespace", "shop", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Active");
}

#[test]
fn kubectl_round_trips_leases_ingresses_and_autoscalers() {
    let sim = Cluster::sim();
    let objects = r#"
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: serin-controller, namespace: kube-system}
spec: {holderIdentity: pod-a, leaseDurationSeconds: 15}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, annotations: {kubernetes.io/ingress.class: nginx}}
spec:
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: serin.dev/v1alpha1, kind: Rollout, name: web}
  minReplicas: 2
  maxReplicas: 10
"#;
    let out = sim.kubectl_stdin(&["apply", "--server-side", "-f", "-"], objects);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let holder = sim.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "lease",
        "serin-controller",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder, "pod-a");
    let host = sim.kubectl_ok(&["get", "ingress", "web", "-o", "jsonpath={.spec.rules[0].host}"]);
    assert_eq!(host, "web.example.com");
    let target = sim.kubectl_ok(&["get", "hpa", "web", "-o", "jsonpath={.spec.scaleTargetRef.kind}"]);
    assert_eq!(target, "Rollout");
    let bad = sim.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &objects.replace("leaseDurationSeconds: 15", "leaseDurationSeconds: 0"),
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("spec.leaseDurationSeconds"));
}

/// kubectl's generators (`create deployment`, `expose`, `autoscale`...) send protobuf; what is
/// stored is what a real API server stores: zeros a typed client sends for unset fields left out,
/// a zero it set on purpose kept, and the API server's defaults added.
#[test]
fn kubectl_create_generators_make_what_the_api_server_stores() {
    let sim = Cluster::sim();
    let k = |args: &[&str]| sim.kubectl_ok(&[&["-n", "default"], args].concat());
    let get = |what: &str, path: &str| k(&["get", what, "-o", &format!("jsonpath={path}")]);
    k(&[
        "create",
        "deployment",
        "web",
        "--image=example/web:1.0",
        "--replicas=0",
        "--port=8080",
    ]);
    assert_eq!(
        get("deployment/web", "{.spec.replicas}"),
        "0",
        "a replicas of 0 is kept"
    );
    assert_eq!(get("deployment/web", "{.spec.strategy.rollingUpdate.maxSurge}"), "25%");
    let template = get("deployment/web", "{.spec.template.spec}");
    let template: serde_json::Value = serde_json::from_str(&template).expect("template is JSON");
    assert_eq!(template["dnsPolicy"], "ClusterFirst", "{template}");
    assert_eq!(template["restartPolicy"], "Always");
    assert_eq!(template["terminationGracePeriodSeconds"], 30);
    let container = &template["containers"][0];
    assert_eq!(container["imagePullPolicy"], "IfNotPresent", "{container}");
    assert_eq!(
        container["ports"][0],
        serde_json::json!({"containerPort": 8080, "protocol": "TCP"})
    );
    assert!(
        container.get("workingDir").is_none() && container.get("tty").is_none(),
        "{container}"
    );
    assert!(template.get("initContainers").is_none(), "{template}");
    let meta = get("deployment/web", "{.metadata}");
    assert!(
        !meta.contains("generateName") && !meta.contains("\"generation\":0"),
        "{meta}"
    );

    k(&["create", "service", "nodeport", "edge", "--tcp=80:8080"]);
    let port = get("service/edge", "{.spec.ports[0]}");
    let port: serde_json::Value = serde_json::from_str(&port).expect("port is JSON");
    assert_eq!(port["targetPort"], 8080, "{port}");
    assert!(
        (30000..=32767).contains(&port["nodePort"].as_i64().unwrap_or(0)),
        "{port}"
    );
    assert_eq!(get("service/edge", "{.spec.externalTrafficPolicy}"), "Cluster");
    k(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
        "--name=web",
    ]);
    assert_eq!(get("service/web", "{.spec.selector.app}"), "web");
    assert_eq!(get("service/web", "{.spec.ports[0].targetPort}"), "8080");

    k(&["create", "job", "once", "--image=busybox", "--", "echo", "hi"]);
    assert_eq!(
        get("job/once", "{.spec.template.spec.containers[0].command}"),
        r#"["echo","hi"]"#
    );
    assert_eq!(get("job/once", "{.spec.template.spec.restartPolicy}"), "Never");
    assert_eq!(get("job/once", "{.spec.backoffLimit}"), "6");

    k(&["create", "role", "reader", "--verb=get,list", "--resource=pods"]);
    assert_eq!(get("role/reader", "{.rules[0].verbs}"), r#"["get","list"]"#);
    k(&[
        "create",
        "rolebinding",
        "readers",
        "--role=reader",
        "--user=alice",
        "--serviceaccount=default:default",
    ]);
    assert_eq!(get("rolebinding/readers", "{.subjects[*].kind}"), "User ServiceAccount");
    assert_eq!(get("rolebinding/readers", "{.roleRef.name}"), "reader");
    sim.kubectl_ok(&["create", "clusterrole", "node-reader", "--verb=get", "--resource=nodes"]);
    sim.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "node-readers",
        "--clusterrole=node-reader",
        "--group=ops",
    ]);
    let can = sim.kubectl(&["auth", "can-i", "get", "nodes", "--as=bob", "--as-group=ops"]);
    assert_eq!(String::from_utf8_lossy(&can.stdout).trim(), "yes");

    k(&["create", "pdb", "web", "--selector=app=web", "--min-available=1"]);
    assert_eq!(get("pdb/web", "{.spec.minAvailable}"), "1");
    k(&[
        "create",
        "ingress",
        "web",
        "--class=nginx",
        "--rule=shop.example.com/api*=web:80,tls=shop-cert",
    ]);
    assert_eq!(get("ingress/web", "{.spec.rules[0].http.paths[0].pathType}"), "Prefix");
    assert_eq!(
        get(
            "ingress/web",
            "{.spec.rules[0].http.paths[0].backend.service.port.number}"
        ),
        "80"
    );
    assert_eq!(get("ingress/web", "{.spec.tls[0].secretName}"), "shop-cert");
    k(&["autoscale", "deployment", "web", "--max=5", "--cpu=70%"]);
    assert_eq!(get("hpa/web", "{.spec.minReplicas}"), "1", "defaulted");
    assert_eq!(
        get("hpa/web", "{.spec.metrics[0].resource.target.averageUtilization}"),
        "70"
    );
    k(&["create", "secret", "generic", "creds", "--from-literal=a=b"]);
    assert_eq!(get("secret/creds", "{.type}"), "Opaque");

    // Defaults come before checks, as in the API server: a Job template without a restartPolicy
    // is refused for the `Always` it was given.
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: bare}\nspec: {template: {spec: {containers: [{name: c, image: busybox}]}}}\n";
    let out = sim.kubectl_stdin(&["create", "-f", "-"], job);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"spec.template.spec.restartPolicy: Unsupported value: "Always""#),
        "{err}"
    );
}

/// A `kind: List` file (what `kubectl get -o yaml` writes) is checked by kubectl against
/// `/openapi/v2` before it is sent; the CRD's schema there catches an unknown field.
#[test]
fn kubectl_applies_a_list_checked_against_openapi_v2() {
    let sim = Cluster::sim();
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], WIDGET_CRD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sim.kubectl_ok(&["wait", "--for=condition=Established", "crd/widgets.test.serin.dev"]);
    sim.kubectl_ok(&["create", "configmap", "settings", "--from-literal=mode=fast"]);
    let list = sim.kubectl_ok(&["get", "configmap", "settings", "-o", "yaml"]);
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: test.serin.dev/v1\n  kind: Widget\n  metadata: {{name: w, namespace: default}}\n  spec: {{weight: 5}}\n{}",
        list.lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
            .replacen("  apiVersion", "- apiVersion", 1)
    );
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], &list);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("widget.test.serin.dev/w created"), "{printed}");
    assert!(printed.contains("configmap/settings configured"), "{printed}");

    let bad = list.replace("spec: {weight: 5}", "spec: {weight: 5, colour: red}");
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], &bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(r#"unknown field "colour" in dev.serin.test.v1.Widget.spec"#),
        "kubectl checked the item against the v2 document: {err}"
    );
    let doc = sim.kubectl_ok(&["get", "--raw", "/openapi/v2"]);
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("/openapi/v2 is JSON when asked for JSON");
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(
        doc["definitions"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
}

/// Each group/version a CRD serves gets a local APIService, gone with the CRD.
#[test]
fn crd_group_versions_get_apiservices() {
    let sim = Cluster::sim();
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], WIDGET_CRD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(10);
    let available = loop {
        let out = sim.kubectl(&[
            "get",
            "apiservice",
            "v1.test.serin.dev",
            "-o",
            "jsonpath={.spec.group} {.status.conditions[0].reason} {.metadata.labels}",
        ]);
        if out.status.success() || Instant::now() > deadline {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(available.starts_with("test.serin.dev Local"), "{available}");
    assert!(
        available.contains(r#""kube-aggregator.kubernetes.io/automanaged":"true""#),
        "{available}"
    );
    sim.kubectl_ok(&["delete", "crd", "widgets.test.serin.dev"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim
        .kubectl(&["get", "apiservice", "v1.test.serin.dev"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the APIService outlived its CRD");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Deployment controller numbers revisions, so `kubectl rollout history` lists them and
/// `kubectl rollout undo` brings the earlier ReplicaSet back under the next number.
#[test]
fn kubectl_rollout_undo_goes_back_a_revision() {
    let sim = Cluster::sim();
    let k = |args: &[&str]| sim.kubectl_ok(&[&["-n", "default"], args].concat());
    let settle = || k(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    k(&["create", "deployment", "web", "--image=example/web:1.0", "--replicas=2"]);
    settle();
    k(&["set", "image", "deployment/web", "web=example/web:2.0"]);
    k(&["annotate", "deployment", "web", "kubernetes.io/change-cause=web 2.0"]);
    settle();
    let history = k(&["rollout", "history", "deployment/web"]);
    let rows: Vec<&str> = history.lines().skip(2).filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(rows.len(), 2, "{history}");
    assert!(
        rows[0].starts_with("1 ") && rows[1].starts_with("2 ") && rows[1].contains("web 2.0"),
        "{history}"
    );
    assert!(k(&["rollout", "undo", "deployment/web"]).contains("rolled back"));
    settle();
    let image = k(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "example/web:1.0");
    let sets = k(&[
        "get",
        "rs",
        "-o",
        r"jsonpath={range .items[*]}{.spec.template.spec.containers[0].image}={.metadata.annotations.deployment\.kubernetes\.io/revision}/{.spec.replicas} {end}",
    ]);
    let mut sets: Vec<&str> = sets.split_whitespace().collect();
    sets.sort();
    assert_eq!(
        sets,
        ["example/web:1.0=3/2", "example/web:2.0=2/0"],
        "the first ReplicaSet is back, as revision 3"
    );
    let revision = k(&[
        "get",
        "deployment",
        "web",
        "-o",
        r"jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}",
    ]);
    assert_eq!(revision, "3");
}

/// A cordoned Node takes no new Pods; with every Node cordoned a Pod waits, Pending and saying
/// why, until one is uncordoned.
#[test]
fn cordoned_nodes_take_no_new_pods() {
    let sim = Cluster::sim();
    let nodes = sim.kubectl_ok(&["get", "nodes"]);
    assert!(
        nodes.contains("STATUS") && nodes.contains("ROLES") && nodes.contains("VERSION"),
        "{nodes}"
    );
    for n in ["sim-node-1", "sim-node-2", "sim-node-3"] {
        sim.kubectl_ok(&["cordon", n]);
    }
    let nodes = sim.kubectl_ok(&["get", "nodes"]);
    assert_eq!(nodes.matches("Ready,SchedulingDisabled").count(), 3, "{nodes}");
    sim.kubectl_ok(&["create", "deployment", "web", "--image=example/web:1.0", "--replicas=2"]);
    let waiting = |what: &str, check: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = sim.kubectl_ok(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={range .items[*]}{.status.phase}/{.spec.nodeName}/{.status.conditions[?(@.type==\"PodScheduled\")].reason} {end}",
            ]);
            if check(&out) {
                return out;
            }
            assert!(Instant::now() < deadline, "{what}: {out}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let pending = waiting("two Pods unschedulable", &|o| {
        o.matches("Pending//Unschedulable").count() == 2
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        sim.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector=status.phase=Running",
            "-o",
            "name"
        ]),
        "",
        "still nothing runs: {pending}"
    );
    sim.kubectl_ok(&["uncordon", "sim-node-2"]);
    waiting("both Pods on the uncordoned Node", &|o| {
        o.matches("Running/sim-node-2/").count() == 2
    });
}

/// Request options are checked before anything happens, with the API server's answers: a
/// misspelt `dryRun` is refused (and writes nothing), a number that is not one is a 400.
#[test]
fn bad_request_options_are_refused_before_anything_is_written() {
    let sim = Cluster::sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let body = dir.path().join("cm.json");
    std::fs::write(
        &body,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings"}}"#,
    )
    .expect("write");
    let body = body.to_string_lossy().into_owned();
    let out = sim.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps?dryRun=true",
        "-f",
        &body,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"true"}: supported values: "All""#),
        "{err}"
    );
    assert!(
        !sim.kubectl(&["get", "configmap", "settings"]).status.success(),
        "nothing was written"
    );
    let out = sim.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps?fieldValidation=strict",
        "-f",
        &body,
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(r#"fieldValidation: Unsupported value: "strict""#));
    sim.kubectl_ok(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps?dryRun=All",
        "-f",
        &body,
    ]);
    assert!(
        !sim.kubectl(&["get", "configmap", "settings"]).status.success(),
        "a dry run writes nothing"
    );

    let out = sim.kubectl(&["get", "--raw", "/api/v1/pods?limit=ten"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(r#"(BadRequest): strconv.ParseInt: parsing "ten": invalid syntax"#)
    );
    let out = sim.kubectl(&["get", "--raw", "/api/v1/pods?labelSelector=app%3Dweb%20server"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(r#"values[0][app]: Invalid value: "web server""#),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sim.kubectl(&["get", "--raw", "/api/v1/pods?resourceVersionMatch=NotOlderThan"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("resourceVersionMatch is forbidden unless resourceVersion is provided")
    );
}

/// A built-in object is decoded into its API type: a misspelt field is refused with kubectl's
/// strict validation, warned of and dropped without it, and `kubectl explain` knows the fields.
#[test]
fn builtin_kinds_know_their_fields() {
    let sim = Cluster::sim();
    let typo = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: typo}\nspec:\n  replica: 2\n  selector: {matchLabels: {app: typo}}\n  template:\n    metadata: {labels: {app: typo}}\n    spec:\n      containers: [{name: c, image: example/web:1.0, imagePullPolcy: Always}]\n";
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], typo);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica", unknown field "spec.template.spec.containers[0].imagePullPolcy""#),
        "{err}"
    );
    let out = sim.kubectl_stdin(&["apply", "--validate=warn", "-f", "-"], typo);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains(r#"Warning: unknown field "spec.replica""#),
        "{err}"
    );
    let spec = sim.kubectl_ok(&["get", "deployment", "typo", "-o", "jsonpath={.spec}"]);
    assert!(
        !spec.contains("replica\"") && !spec.contains("imagePullPolcy"),
        "dropped, as the API type has no such fields: {spec}"
    );
    // A strategic merge patch is checked too, its directives aside.
    let out = sim.kubectl_stdin(&["apply", "-f", "-"], typo);
    assert!(String::from_utf8_lossy(&out.stderr).contains("strict decoding error"));
    sim.kubectl_ok(&["set", "image", "deployment/typo", "c=example/web:2.0"]);
    let explained = sim.kubectl_ok(&["explain", "deployment.spec.template.spec.containers.imagePullPolicy"]);
    assert!(explained.contains("FIELD: imagePullPolicy <string>"), "{explained}");
    // An events.k8s.io Event keeps its fields: it is stored, and checked, as the core Event it is.
    let event = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: typo.1}\nregarding: {kind: Deployment, name: typo, namespace: default}\nreason: Checked\nnote: all fields kept\ntype: Normal\naction: Check\neventTime: \"2026-12-06T10:00:00.000000Z\"\nreportingController: test\nreportingInstance: test-1\n";
    let out = sim.kubectl_stdin(&["create", "-f", "-"], event);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let core = sim.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=typo",
        "-o",
        "jsonpath={.items[0].message}/{.items[0].reason}",
    ]);
    assert_eq!(core, "all fields kept/Checked");
}
