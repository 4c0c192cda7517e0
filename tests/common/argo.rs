//! Argo Rollouts' end-to-end scenarios, driven the way its suite drives a cluster (given objects,
//! actions, expectations), on Serin: each published manifest goes through the real
//! `serin convert` and the real kubectl, the Rollout is driven with `kubectl serin`, and what is
//! checked is Serin's status and the cluster's objects. The manifests are in `tests/data/argo-e2e`.

use super::{Cluster, ControllerProc, eventually};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use serin::crd::rollout::{Phase, Rollout, RolloutStatus};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a wait lasts before the test fails (the scenario's Pods start in about a second).
pub const WAIT: Duration = Duration::from_secs(90);

/// The pod-template hash label Serin puts on a version's Pods.
const HASH: &str = "serin.dev/pod-template-hash";

/// A published manifest, or one written inline in Argo's test code (`inline/<file>/<Test>/...`).
pub fn data(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/argo-e2e")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The YAML documents of a manifest as JSON values.
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("the manifest parses")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The documents as one YAML stream (JSON is YAML).
pub fn stream(docs: &[Value]) -> String {
    docs.iter().map(Value::to_string).collect::<Vec<_>>().join("\n---\n")
}

/// The manifest with the Rollout's canary steps replaced (Argo's `SetSteps`).
pub fn with_steps(yaml: &str, steps: &str) -> String {
    let steps: Value = serde_saphyr::from_str(steps).expect("the steps parse");
    let mut docs = documents(yaml);
    for d in docs.iter_mut().filter(|d| d["kind"] == "Rollout") {
        d["spec"]["strategy"]["canary"]["steps"] = steps.clone();
    }
    stream(&docs)
}

/// A Service selecting `app: LABEL` (Argo's `newService`).
pub fn service(name: &str, app: &str) -> String {
    format!(
        "kind: Service\napiVersion: v1\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - port: 80\n    targetPort: 80\n  selector:\n    app: {app}\n"
    )
}

/// Merges `patch` into `target` as a strategic merge patch of the Rollout's Go type does: maps
/// recursively, lists of named items (containers, env) item by item by name, other lists whole,
/// and `null` deletes.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (Value::Array(t), Value::Array(p)) if p.iter().all(|i| i.get("name").is_some()) => {
            for item in p {
                match t.iter_mut().find(|x| x.get("name") == item.get("name")) {
                    Some(existing) => strategic_merge(existing, item),
                    None => {
                        let mut added = Value::Null;
                        strategic_merge(&mut added, item);
                        t.push(added);
                    }
                }
            }
        }
        // Something new: its nulls say "absent", as a merge patch's do.
        (t, Value::Object(p)) => {
            *t = Value::Object(Default::default());
            strategic_merge(t, &Value::Object(p.clone()));
        }
        (t, p) => *t = p.clone(),
    }
}

pub struct Scenario {
    pub cluster: Cluster,
    pub rollouts: Api<Rollout>,
    pub client: kube::Client,
    /// The Rollout the scenario is about.
    pub name: String,
    pub controller: ControllerProc,
    /// Pod-template hashes in the order the versions appeared: revision N is `revisions[N-1]`.
    revisions: Vec<String>,
}

impl Scenario {
    /// A namespace on the real control plane with Serin's CRDs and a controller.
    pub async fn start(name: &str) -> Scenario {
        let cluster = Cluster::start();
        cluster.install_crds();
        let client = cluster.client().await;
        let controller = ControllerProc::start(&cluster, "controller.log");
        Scenario {
            rollouts: Api::default_namespaced(client.clone()),
            client,
            name: name.to_string(),
            controller,
            cluster,
            revisions: Vec::new(),
        }
    }

    /// `serin convert` of Argo manifests, then `kubectl apply` of what it wrote (Argo's
    /// `ApplyManifests`). Fails the test if either refuses.
    pub fn apply(&self, argo_yaml: &str) {
        let (code, out, err) = super::serin_cmd("convert", &[], Some(argo_yaml));
        assert_eq!(code, 0, "serin convert refused: {err}");
        let applied = self.cluster.kubectl_stdin(&["apply", "-f", "-"], &out);
        assert!(
            applied.status.success(),
            "kubectl apply refused the converted manifest: {}\n{out}",
            String::from_utf8_lossy(&applied.stderr)
        );
    }

    /// The same, for manifests the cluster should refuse: what `serin convert` or kubectl said.
    pub fn try_apply(&self, argo_yaml: &str) -> Result<(), String> {
        let (code, out, err) = super::serin_cmd("convert", &[], Some(argo_yaml));
        if code != 0 {
            return Err(err);
        }
        let applied = self.cluster.kubectl_stdin(&["apply", "-f", "-"], &out);
        if applied.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&applied.stderr).into_owned())
        }
    }

    /// A Deployment's `spec.replicas` (Argo's `ExpectDeploymentReplicasCount`), waited for.
    pub async fn expect_deployment_replicas(&self, name: &str, want: i32) {
        let mut last = String::new();
        for _ in 0..50 {
            last = self
                .cluster
                .kubectl_ok(&["get", "deployment", name, "-o", "jsonpath={.spec.replicas}"]);
            if last.trim() == want.to_string() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("Deployment {name} has {last} replicas, expected {want}");
    }

    /// A merge patch of a Deployment (Argo's `UpdateResource` and `UpdateWorkloadRef`).
    pub fn patch_deployment(&self, name: &str, patch: &Value) {
        self.cluster
            .kubectl_ok(&["patch", "deployment", name, "--type", "merge", "-p", &patch.to_string()]);
    }

    pub async fn status(&self) -> RolloutStatus {
        super::rollout_status(&self.rollouts, &self.name).await
    }

    /// Waits for the phase (Argo's `WaitForRolloutStatus`), with the controller's log on failure.
    pub async fn wait_phase(&self, phase: Phase) -> RolloutStatus {
        self.wait_for(&format!("{phase:?}"), |r| {
            let seen = r.status.as_ref().and_then(|s| s.observed_generation) == r.metadata.generation;
            seen && r.status.as_ref().and_then(|s| s.phase) == Some(phase)
        })
        .await
    }

    /// Waits until `check` holds of the status; the status and the controller's log on failure.
    pub async fn wait_until(&self, what: &str, check: impl Fn(&RolloutStatus) -> bool) -> RolloutStatus {
        self.wait_for(what, |r| check(r.status.as_ref().unwrap_or(&RolloutStatus::default())))
            .await
    }

    /// Waits until `check` holds of the Rollout; its status then, or the status and the
    /// controller's log on failure.
    async fn wait_for(&self, what: &str, check: impl Fn(&Rollout) -> bool) -> RolloutStatus {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(r) = self.rollouts.get(&self.name).await
                    && check(&r)
                {
                    return r.status.unwrap_or_default();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        match found {
            Ok(st) => st,
            Err(_) => panic!(
                "{}: {what} not seen in {WAIT:?}; status {:#?}\n{}",
                self.name,
                self.status().await,
                self.controller.log()
            ),
        }
    }

    /// Records the hash of the version now being rolled out as the next revision.
    pub async fn note_revision(&mut self) {
        let before = self.revisions.last().cloned();
        let st = self
            .wait_until("a new pod-template hash", |st| {
                st.current_pod_hash.is_some() && st.current_pod_hash != before
            })
            .await;
        self.revisions.push(st.current_pod_hash.unwrap_or_default());
    }

    /// Applies the first version and waits for it to be Healthy (Argo's `HealthyRollout`).
    pub async fn healthy(&mut self, argo_yaml: &str) {
        self.apply(argo_yaml);
        self.note_revision().await;
        self.wait_phase(Phase::Healthy).await;
    }

    /// A merge patch of the Rollout (Argo's `UpdateSpec(yaml)`).
    pub async fn update_spec_with(&mut self, yaml: &str) {
        self.merge_patch(yaml);
        self.note_revision().await;
    }

    /// A JSON merge patch of the Rollout, from YAML (or JSON), with kubectl.
    pub fn merge_patch(&self, yaml: &str) {
        let patch: Value = serde_saphyr::from_str(yaml).expect("the patch parses");
        self.cluster.kubectl_ok(&[
            "patch",
            "rollout",
            &self.name,
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ]);
    }

    /// A new template by a changed annotation (Argo's `UpdateSpec()`).
    pub async fn update_spec(&mut self) {
        let at = jiff::Timestamp::now().to_string();
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {"update": at}}}}});
        self.update_spec_with(&patch.to_string()).await;
    }

    /// A strategic merge of the Rollout's spec, written back whole (Argo's `PatchSpec`).
    pub async fn patch_spec(&mut self, yaml: &str) {
        let mut patch: Value = serde_saphyr::from_str(yaml).expect("the patch parses");
        // The patch names Argo's kind; it merges into the Rollout as it is.
        if let Some(p) = patch.as_object_mut() {
            p.remove("apiVersion");
            p.remove("kind");
        }
        let live = self.cluster.kubectl_ok(&["get", "rollout", &self.name, "-o", "json"]);
        let mut live: Value = serde_json::from_str(&live).expect("the Rollout as JSON");
        let template = live.pointer("/spec/template").cloned();
        strategic_merge(&mut live, &patch);
        let new_template = live.pointer("/spec/template") != template.as_ref();
        let out = self.cluster.kubectl_stdin(&["replace", "-f", "-"], &live.to_string());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        if new_template {
            self.note_revision().await;
        }
    }

    /// `spec.replicas` by a merge patch (Argo's `ScaleRollout`).
    pub fn scale(&self, replicas: i32) {
        self.merge_patch(&json!({"spec": {"replicas": replicas}}).to_string());
    }

    /// `kubectl serin ACTION NAME [flags]`, which must succeed.
    pub fn serin(&self, action: &str, flags: &[&str]) -> String {
        let mut args = vec![action];
        args.extend(flags);
        args.push(&self.name);
        self.cluster.kubectl_serin_ok(&args)
    }

    /// How many revisions were noted.
    pub fn revisions(&self) -> usize {
        self.revisions.len()
    }

    /// The hash of revision `rev` (1 for the first version).
    pub fn revision(&self, rev: usize) -> &str {
        &self.revisions[rev - 1]
    }

    /// Pods of a version that are not being deleted, whatever their readiness.
    pub async fn pods_of(&self, hash: &str) -> usize {
        let pods: Api<Pod> = Api::default_namespaced(self.client.clone());
        pods.list(&ListParams::default().labels(&format!("{HASH}={hash}")))
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .count()
            })
            .unwrap_or(0)
    }

    /// Watches the phase until Healthy, failing at the first Degraded (Argo's `WatchRolloutStatus`,
    /// which the `kubectl argo rollouts status` watcher ends on either).
    pub async fn watch_until_healthy(&self) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let st = self.status().await;
            match st.phase {
                Some(Phase::Healthy) => return,
                Some(Phase::Degraded) => panic!("Degraded on the way to Healthy: {st:#?}"),
                _ if std::time::Instant::now() > deadline => panic!("not Healthy in {WAIT:?}: {st:#?}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits until each `(revision, Pods)` holds (Argo's `ExpectRevisionPodCount`s in a row).
    pub async fn expect_pods(&self, want: &[(usize, usize)]) {
        let mut last = Vec::new();
        for _ in 0..100 {
            last.clear();
            for &(rev, _) in want {
                last.push((rev, self.pods_of(self.revision(rev)).await));
            }
            if last == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("Pods by revision: {last:?}, expected {want:?}");
    }

    /// The labels of each Pod of a version (every Pod of the Rollout's namespace for `None`) that
    /// is not being deleted.
    pub async fn pod_labels(&self, hash: Option<&str>) -> Vec<BTreeMap<String, String>> {
        let pods: Api<Pod> = Api::default_namespaced(self.client.clone());
        let params = match hash {
            Some(h) => ListParams::default().labels(&format!("{HASH}={h}")),
            None => ListParams::default(),
        };
        pods.list(&params)
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.metadata.labels.unwrap_or_default())
            .collect()
    }

    /// Waits until every Pod of a version (at least one) has `label` as `value` (`None`: lacks it).
    pub async fn expect_pods_labelled(&self, hash: Option<&str>, label: &str, value: Option<&str>) {
        let mut last = Vec::new();
        for _ in 0..100 {
            last = self.pod_labels(hash).await;
            if !last.is_empty() && last.iter().all(|l| l.get(label).map(String::as_str) == value) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("Pods of {hash:?}: {label} should be {value:?}; their labels: {last:#?}");
    }

    /// (canary, stable) Pods by the status's current and stable hashes (Argo's
    /// `ExpectCanaryStablePodCount`).
    pub async fn canary_stable_pods(&self) -> (usize, usize) {
        let st = self.status().await;
        (
            self.pods_of(&st.current_pod_hash.unwrap_or_default()).await,
            self.pods_of(&st.stable_pod_hash.unwrap_or_default()).await,
        )
    }

    /// Waits until the (canary, stable) Pods are as given: Argo's one look after its wait, made
    /// patient, since Pods come and go a moment after the status says so.
    pub async fn expect_canary_stable_pods(&self, canary: usize, stable: usize) {
        let mut last = (0, 0);
        for _ in 0..50 {
            last = self.canary_stable_pods().await;
            if last == (canary, stable) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "canary and stable Pods: {last:?}, expected {:?}; status {:#?}",
            (canary, stable),
            self.status().await
        );
    }

    /// (spec.replicas, status.replicas, updated, ready, available), Argo's `ExpectReplicaCounts`.
    pub async fn replica_counts(&self) -> (i32, i32, i32, i32, i32) {
        let r = self.rollouts.get(&self.name).await.expect("the Rollout");
        let st = r.status.unwrap_or_default();
        (
            r.spec.replicas.unwrap_or(1),
            st.replicas.unwrap_or(0),
            st.updated_replicas.unwrap_or(0),
            st.ready_replicas.unwrap_or(0),
            st.available_replicas.unwrap_or(0),
        )
    }

    /// Waits for the counts: status counts trail the Pods by a write that may wait a few seconds.
    pub async fn expect_replica_counts(&self, want: (i32, i32, i32, i32, i32)) {
        let mut last = (0, 0, 0, 0, 0);
        for _ in 0..100 {
            last = self.replica_counts().await;
            if last == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("replica counts {last:?}, expected {want:?}");
    }

    /// A Service's selector.
    pub async fn selector(&self, service: &str) -> BTreeMap<String, String> {
        let svcs: Api<Service> = Api::default_namespaced(self.client.clone());
        svcs.get(service)
            .await
            .ok()
            .and_then(|s| s.spec?.selector)
            .unwrap_or_default()
    }

    /// AnalysisRuns of this Rollout, finished ones included (Argo's `ExpectAnalysisRunCount`).
    pub async fn analysis_runs(&self) -> usize {
        let runs: Api<serin::crd::analysis::AnalysisRun> = Api::default_namespaced(self.client.clone());
        runs.list(&ListParams::default().labels(&format!("serin.dev/rollout={}", self.name)))
            .await
            .map(|l| l.items.len())
            .unwrap_or(0)
    }

    /// The phase of the newest step run (`step`), or of the background run (`bg`); Argo's
    /// `Expect…AnalysisRunPhase`.
    pub async fn run_phase(&self, which: RunKind) -> Option<String> {
        let runs: Api<serin::crd::analysis::AnalysisRun> = Api::default_namespaced(self.client.clone());
        let mut list = runs
            .list(&ListParams::default().labels(&format!("serin.dev/rollout={}", self.name)))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.retain(|r| {
            let step = r.metadata.labels.as_ref().and_then(|l| l.get("serin.dev/step"));
            (step.map(String::as_str) == Some("bg")) == (which == RunKind::Background)
        });
        list.sort_by_key(|r| r.metadata.creation_timestamp.clone().map(|t| t.0));
        let run = list.pop()?;
        run.status?.phase.map(|p| p.as_str().to_string())
    }

    /// Waits until the newest run of that kind is in `phase` (Argo's `Wait…AnalysisRunPhase`).
    pub async fn wait_run_phase(&self, which: RunKind, phase: &str) {
        eventually(&format!("{which:?} run {phase}"), WAIT, || async {
            (self.run_phase(which).await.as_deref() == Some(phase)).then_some(())
        })
        .await;
    }
}

/// Which version a blue-green Service (or the stable record) is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Active,
    Preview,
    Stable,
}

impl Scenario {
    /// The hash the role is on: blue-green's status selector, which the Service's selector must
    /// agree with (Argo's `ExpectActiveRevision`, `ExpectPreviewRevision`, `ExpectStableRevision`).
    async fn on(&self, role: Role) -> Option<String> {
        let r = self.rollouts.get(&self.name).await.ok()?;
        let st = r.status.unwrap_or_default();
        let bg = r.spec.strategy.blue_green.as_deref();
        let (recorded, service) = match role {
            Role::Stable => return st.stable_pod_hash,
            Role::Active => (
                st.blue_green.as_ref().and_then(|b| b.active_selector.clone()),
                bg.map(|b| b.active_service.clone()),
            ),
            Role::Preview => (
                st.blue_green.as_ref().and_then(|b| b.preview_selector.clone()),
                bg.and_then(|b| b.preview_service.clone()),
            ),
        };
        let selected = self.selector(&service?).await.get(HASH).cloned();
        (recorded == selected).then_some(recorded?)
    }

    /// Waits until the role is on revision `rev`.
    pub async fn expect_on(&self, role: Role, rev: usize) {
        let want = self.revision(rev).to_string();
        let mut last = None;
        for _ in 0..50 {
            last = self.on(role).await;
            if last.as_deref() == Some(want.as_str()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{role:?} is on {last:?}, not revision {rev} ({want})");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Step,
    Background,
}

/// What the public URLs of Argo's web-analysis tests answer (a gist's `{"message": "It worked!"}`,
/// GitHub's repository, dns.google's `Status`), served on a free loopback port for any path:
/// the tests must not depend on the Internet. Its `http://127.0.0.1:PORT` address.
pub async fn web_stub() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let answer = || async {
        (
            [("content-type", "application/json")],
            r#"{"message": "It worked!", "full_name": "argoproj/argo-rollouts", "Status": 0}"#,
        )
    };
    let app = axum::Router::new().fallback(answer);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// `manifest` with the Secret's `secretUrl` pointing at `url` instead of Argo's gist, and the
/// Secret opened to analysis by its owner's label, as Serin asks (docs/migration.md).
pub fn with_secret_url(manifest: &str, url: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{url}/example.json"));
    let mut docs = documents(manifest);
    for d in docs.iter_mut().filter(|d| d["kind"] == "Secret") {
        d["data"]["secretUrl"] = json!(encoded);
        d["metadata"]["labels"]["serin.dev/analysis-access"] = json!("true");
    }
    stream(&docs)
}

impl Scenario {
    /// The CRDs of Istio's networking API and SMI's TrafficSplit, as Argo's suite installs them
    /// (the kinds only: no mesh runs; what is checked is what Serin writes in them).
    pub fn install_router_crds(&self) {
        for crd in [
            "virtualservices.networking.istio.io",
            "destinationrules.networking.istio.io",
            "trafficsplits.split.smi-spec.io",
        ] {
            self.cluster
                .install_crd_file(std::path::Path::new(&format!("{crd}.yaml")));
        }
    }

    /// An object of any kind as JSON (`kubectl get KIND NAME -o json`), `Null` when absent.
    pub fn object(&self, kind: &str, name: &str) -> Value {
        let out = self.cluster.kubectl(&["get", kind, name, "-o", "json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Waits until `check` holds of the object; the object as last seen on failure.
    pub async fn expect_object(&self, kind: &str, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let obj = self.object(kind, name);
            if check(&obj) {
                return obj;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{kind} {name}: {what} not seen in {WAIT:?}; last {:#}",
                obj["spec"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the step index is `index` and, when that step is a pause, the Rollout is Paused
    /// (Argo's `WaitForRolloutCanaryStepIndex`).
    pub async fn wait_step(&self, index: i32) -> RolloutStatus {
        let r = self.rollouts.get(&self.name).await.expect("the Rollout");
        let steps = r
            .spec
            .strategy
            .canary
            .as_ref()
            .and_then(|c| c.steps.clone())
            .unwrap_or_default();
        let pause = steps
            .get(index as usize)
            .is_some_and(|s| s.pause.as_ref().is_some_and(|p| p.duration.is_none()));
        self.wait_until(&format!("step {index}"), |st| {
            st.current_step_index == Some(index) && (!pause || st.phase == Some(Phase::Paused))
        })
        .await
    }

    /// The hash label a Service selects, if any.
    pub async fn selected_hash(&self, service: &str) -> Option<String> {
        self.selector(service).await.get(HASH).cloned()
    }

    /// Waits until the Service selects revision `rev` (Argo's `ExpectServiceSelector`).
    pub async fn expect_selects(&self, service: &str, rev: usize) {
        let want = self.revision(rev).to_string();
        let mut last = None;
        for _ in 0..100 {
            last = self.selected_hash(service).await;
            if last.as_deref() == Some(want.as_str()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("Service {service} selects {last:?}, not revision {rev} ({want})");
    }
}

/// The weights of an Istio route's destinations, in order.
pub fn weights(route: &Value) -> Vec<i64> {
    route["route"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["weight"].as_i64().unwrap_or(0))
        .collect()
}

/// The weight of the destination whose host is `host` (Argo's `assertDestination`).
pub fn weight_of(route: &Value, host: &str) -> Option<i64> {
    route["route"]
        .as_array()?
        .iter()
        .find(|d| d["destination"]["host"] == host)
        .map(|d| d["weight"].as_i64().unwrap_or(0))
}

impl Scenario {
    /// `spec.replicas` of the version's ReplicaSet (0 when there is none).
    pub async fn rs_replicas(&self, hash: &str) -> i32 {
        let rss: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::default_namespaced(self.client.clone());
        rss.list(&ListParams::default().labels(&format!("{HASH}={hash}")))
            .await
            .map(|l| l.items.iter().filter_map(|rs| rs.spec.as_ref()?.replicas).sum())
            .unwrap_or(0)
    }

    /// Waits until each `(revision, spec.replicas, scale-down deadline shown)` holds (Argo's
    /// `ExpectRevisionScaleDown` reads its annotation; Serin shows deadlines in its status).
    pub async fn expect_scale_down(&self, want: &[(usize, i32, bool)]) {
        let mut last = Vec::new();
        for _ in 0..100 {
            let st = self.status().await;
            last.clear();
            for (rev, _, _) in want {
                let hash = self.revision(*rev);
                let deadline = st.scale_down_deadlines.iter().any(|d| d.pod_hash == hash);
                last.push((*rev, self.rs_replicas(hash).await, deadline));
            }
            if last == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("(revision, replicas, deadline) {last:?}, expected {want:?}");
    }
}

/// Argo's ALB routing (`trafficRouting.alb` with its `rootService`) put on SMI with the same root
/// Service: the scenarios that need some router, on one Serin has.
pub fn alb_to_smi(yaml: &str) -> String {
    let mut docs = documents(yaml);
    for d in docs.iter_mut().filter(|d| d["kind"] == "Rollout") {
        let routing = &mut d["spec"]["strategy"]["canary"]["trafficRouting"];
        let root = routing["alb"]["rootService"].clone();
        *routing = json!({"smi": {"rootService": root}});
    }
    stream(&docs)
}
