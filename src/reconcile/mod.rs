//! The reconcile shell: observes a Rollout's ReplicaSets from a label-selected cache, calls the
//! pure plan, and applies the result (server-side apply as `serin`, status through /status).

pub mod analysis_run;
pub mod analysis_templates;
mod apply;
mod cached;
mod caches;
pub(crate) use caches::{lean, managed_by, only_mine};
mod compare_look;
pub mod events;
mod index;
mod measure;
mod observe;
pub use observe::{ATTEMPT_LABEL, REVISION_LABEL, STEP_LABEL};
mod own_writes;
mod router;
pub mod secrets;
mod template_names;
pub mod urgent;
mod workload_refs;

use crate::crd::rollout::Rollout;
use crate::plan;
use cached::{CachedReplicaSet, CachedRun, CachedService};
use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// The field manager of every write Serin makes.
pub const MANAGER: &str = "serin";
/// Reconciles in flight at once, per controller.
pub const DEFAULT_WORKERS: u16 = 32;
/// Marks the objects Serin manages for a Rollout; watches select on it.
pub const ROLLOUT_LABEL: &str = "serin.dev/rollout";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Rollout has no {0}")]
    MissingField(&'static str),
    #[error("traffic router: {0}")]
    Router(#[from] crate::traffic::RouterError),
    #[error("a reconcile stopped on a bug: {0}")]
    Panicked(String),
}

/// Runs a reconcile so that a bug in it is an error for that object, not the end of every
/// controller in the process.
pub async fn guarded<F: std::future::Future<Output = Result<Action, Error>>>(reconcile: F) -> Result<Action, Error> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(reconcile).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "a reconcile panicked");
            Err(Error::Panicked(what))
        }
    }
}

impl Error {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(_) => "kube",
            Error::MissingField(_) => "missing_field",
            Error::Router(_) => "router",
            Error::Panicked(_) => "panic",
        }
    }
}

pub struct Context {
    pub client: Client,
    /// For evictions (see [`Settings::evictions`]).
    pub evictions: Client,
    /// Who this controller process is, in the Events it records.
    pub instance: String,
    pub replica_sets: index::ByRollout<CachedReplicaSet>,
    pub services: index::ByRollout<CachedService>,
    /// The Rollouts as the cache has them, for a reconcile to read once it has its turn.
    pub rollouts: reflector::Store<Rollout>,
    /// The AnalysisTemplates (and ClusterAnalysisTemplates) there are, by name.
    pub templates: template_names::TemplateNames,
    pub runs: index::ByRollout<CachedRun>,
    pub admin: Arc<crate::admin::Admin>,
    /// For webhook gates.
    pub http: reqwest::Client,
    pub notifier: crate::hooks::notify::Notifier,
    pub answers: crate::hooks::gates::RecentAnswers,
    /// What this process wrote and its caches do not show yet.
    pub written: Arc<OwnWritten>,
    /// Rollbacks waiting to go ahead of the routine queue.
    pub lane: Arc<urgent::Lane>,
    /// One reconcile per Rollout at a time, across the lane and the queue.
    pub turns: urgent::Turns,
}

#[derive(Default)]
pub struct OwnWritten {
    pub rollouts: Arc<own_writes::OwnWrites<Rollout>>,
    pub replica_sets: Arc<own_writes::OwnWrites<CachedReplicaSet>>,
    pub runs: Arc<own_writes::OwnWrites<CachedRun>>,
    pub services: Arc<own_writes::OwnWrites<CachedService>>,
    /// When each Rollout's status was last written, for the statuses that may wait.
    pub statuses: own_writes::LastWrites<Rollout>,
}

/// How the controllers run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Reconciles in flight at once, per controller.
    pub workers: u16,
    /// The share of the Rollouts this process reconciles.
    pub shard: crate::shard::Shard,
    pub analysis: AnalysisSettings,
    /// A client that does not retry 429s itself, for evictions: a PodDisruptionBudget's refusal
    /// is an answer to act on, not a failure to retry within the reconcile. The main client when
    /// absent.
    pub evictions: Option<NoRetry>,
}

/// A client whose requests are not retried on 429, 503 or 504.
#[derive(Clone)]
pub struct NoRetry(pub Client);

impl std::fmt::Debug for NoRetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoRetry")
    }
}

/// How analysis measures.
#[derive(Debug, Clone, Default)]
pub struct AnalysisSettings {
    pub secret_access: secrets::SecretAccess,
    /// The Prometheus of metrics whose template gives no address.
    pub prometheus_address: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: DEFAULT_WORKERS,
            shard: Default::default(),
            analysis: AnalysisSettings::default(),
            evictions: None,
        }
    }
}

/// Runs the controllers (Rollouts and AnalysisRuns) until the process is asked to stop.
/// `home` is the controller's own namespace, where the default notification targets live.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    instance: String,
    admin: Arc<crate::admin::Admin>,
    home: String,
    settings: Settings,
) {
    let config = kube::runtime::controller::Config::default().concurrency(settings.workers);
    let runs = analysis_run::run(
        client.clone(),
        namespace.clone(),
        instance.clone(),
        admin.clone(),
        config.clone(),
        settings.shard,
        settings.analysis,
    );
    let clients = Clients {
        evictions: settings.evictions.map_or_else(|| client.clone(), |c| c.0),
        main: client,
    };
    let rollouts = run_rollouts(clients, namespace, instance, admin, home, config, settings.shard);
    futures::join!(runs, rollouts);
}

/// The controller's clients: the main one, and the one for evictions.
struct Clients {
    main: Client,
    evictions: Client,
}

async fn run_rollouts(
    clients: Clients,
    namespace: Option<String>,
    instance: String,
    admin: Arc<crate::admin::Admin>,
    home: String,
    config: kube::runtime::controller::Config,
    shard: crate::shard::Shard,
) {
    let client = clients.main;
    fn api<K>(c: &Client, namespace: &Option<String>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(c.clone(), ns),
            None => Api::all(c.clone()),
        }
    }
    let rollouts: Api<Rollout> = api(&client, &namespace);
    let replica_sets: Api<CachedReplicaSet> = api(&client, &namespace);
    let services: Api<CachedService> = api(&client, &namespace);
    let run_api: Api<CachedRun> = api(&client, &namespace);
    let managed = watcher::Config::default().labels(ROLLOUT_LABEL);
    let template_watches = template_names::WATCHES + usize::from(namespace.is_none());
    let lists = caches::InitialLists::new(4 + template_watches, admin.clone());
    let (templates, template_stream, cluster_template_stream) = template_names::watch(&client, &namespace, &lists);
    let workload_stream = workload_refs::watch(&client, &namespace);
    let written = Arc::new(OwnWritten::default());
    let (lane, lane_rx) = urgent::Lane::new();
    let lane = Arc::new(lane);
    let (rollout_reader, rollout_writer) = reflector::store();
    let mine = move |r: &Rollout| shard.owns(&r.namespace().unwrap_or_default(), &r.name_any());
    let rollout_stream = own_writes::forget_seen(
        lists
            .watch(rollouts, watcher::Config::default(), mine)
            .reflect(rollout_writer),
        written.rollouts.clone(),
    )
    // After the cache has it, so the lane's reconcile sees what it was woken for.
    .inspect(urgent::on_rollout(lane.clone()))
    .touched_objects();
    let (rs_reader, rs_writer) = reflector::store();
    let rs_index = index::ByRollout::new(rs_reader);
    let rs_stream = own_writes::forget_seen(
        rs_index
            .track(lists.watch(replica_sets, managed.clone(), managed_by(shard)))
            .reflect(rs_writer),
        written.replica_sets.clone(),
    )
    .inspect(urgent::on_replica_set(lane.clone(), rollout_reader.clone()))
    .touched_objects();
    let (run_reader, run_writer) = reflector::store();
    let run_index = index::ByRollout::new(run_reader);
    let run_stream = own_writes::forget_seen(
        run_index
            .track(lists.watch(run_api, managed.clone(), managed_by(shard)))
            .reflect(run_writer),
        written.runs.clone(),
    )
    .inspect(urgent::on_run(lane.clone()))
    .touched_objects();
    let (svc_reader, svc_writer) = reflector::store();
    let svc_index = index::ByRollout::new(svc_reader);
    let svc_stream = own_writes::forget_seen(
        svc_index
            .track(lists.watch(services, managed, managed_by(shard)))
            .reflect(svc_writer),
        written.services.clone(),
    )
    .touched_objects();
    let http = reqwest::Client::new();
    let notifier =
        crate::hooks::notify::Notifier::start(client.clone(), http.clone(), instance.clone(), admin.clone(), home);
    let ctx = Arc::new(Context {
        evictions: clients.evictions,
        http,
        notifier,
        answers: Default::default(),
        written,
        lane: lane.clone(),
        turns: Default::default(),
        client,
        instance,
        replica_sets: rs_index,
        services: svc_index,
        rollouts: rollout_reader.clone(),
        templates,
        runs: run_index,
        admin: admin.clone(),
    });
    let controller = Controller::for_stream(rollout_stream, rollout_reader.clone()).with_config(config);
    start_lane(lane_rx, rollout_reader.clone(), ctx.clone());
    sweep_series(rollout_reader.clone(), ctx.clone());
    let activations = ctx.admin.gate.activations();
    controller
        .owns_stream(rs_stream)
        .owns_stream(run_stream)
        .watches_stream(svc_stream, |svc: CachedService| {
            let name = svc.labels().get(ROLLOUT_LABEL)?.clone();
            Some(ObjectRef::<Rollout>::new(&name).within(&svc.namespace()?))
        })
        .watches_stream(template_stream, naming(rollout_reader.clone(), false))
        .watches_stream(cluster_template_stream, naming(rollout_reader.clone(), true))
        .watches_stream(workload_stream, workload_refs::naming(rollout_reader.clone()))
        .reconcile_all_on(activations)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile failed");
            }
        })
        .await;
}

/// The Rollouts that name a template (of its namespace, or a cluster one): woken when it comes or
/// goes.
fn naming<K: kube::Resource>(
    rollouts: reflector::Store<Rollout>,
    cluster: bool,
) -> impl Fn(kube::core::PartialObjectMeta<K>) -> Vec<ObjectRef<Rollout>> {
    move |t| {
        let name = t.metadata.name.clone().unwrap_or_default();
        let ns = t.metadata.namespace.clone();
        rollouts
            .state()
            .iter()
            .filter(|r| cluster || r.namespace() == ns)
            .filter(|r| {
                r.spec
                    .strategy
                    .template_refs()
                    .iter()
                    .any(|t| t.template_name == name && (t.cluster_scope == Some(true)) == cluster)
            })
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect()
    }
}

/// The metrics of deleted Rollouts go, every 10 s.
fn sweep_series(rollouts: reflector::Store<Rollout>, ctx: Arc<Context>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            let live: std::collections::HashSet<(String, String)> = rollouts
                .state()
                .iter()
                .map(|r| (r.namespace().unwrap_or_default(), r.name_any()))
                .collect();
            ctx.admin.metrics.forget_all_but(&live);
        }
    });
}

/// Runs the rollback lane's reconciles, [`urgent::LANE_WORKERS`] at a time, beside the queue.
fn start_lane(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<ObjectRef<Rollout>>,
    rollouts: reflector::Store<Rollout>,
    ctx: Arc<Context>,
) {
    tokio::spawn(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(urgent::LANE_WORKERS));
        while let Some(key) = rx.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (rollouts, ctx) = (rollouts.clone(), ctx.clone());
            tokio::spawn(async move {
                ctx.lane.started(&key);
                if let Some(rollout) = rollouts.get(&key) {
                    ctx.admin.metrics.rollback_lane_took_one();
                    if let Err(e) = reconcile(rollout, ctx.clone()).await {
                        // The queue looks at it again: every write wakes it.
                        tracing::debug!(error = %e, "a rollback lane reconcile failed");
                    }
                }
                drop(permit);
            });
        }
    });
}

async fn reconcile(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(rollout.as_ref());
    let _turn = ctx.turns.take(key.clone()).await;
    // The copy in hand was read before waiting for the turn; the reconcile that held it may have
    // written since, and once the cache shows that write the copy is no longer recognised as
    // stale. The cache's copy now is at least as fresh.
    let rollout = ctx.rollouts.get(&key).unwrap_or(rollout);
    // A plan made from a half-filled cache would see no ReplicaSets and start over; a standby
    // must not write. Both are looked at again when the gate opens.
    if !ctx.admin.gate.may_act() {
        return Ok(Action::await_change());
    }
    let started = std::time::Instant::now();
    // Every line logged while reconciling names the Rollout and the revision it is rolling out.
    let span = tracing::info_span!(
        "rollout",
        namespace = rollout.namespace().unwrap_or_default(),
        rollout = rollout.name_any(),
        revision = tracing::field::Empty,
    );
    let result = guarded(reconcile_rollout(rollout, &ctx).instrument(span)).await;
    ctx.admin.metrics.reconcile_took(started.elapsed().as_secs_f64());
    result
}

async fn reconcile_rollout(rollout: Arc<Rollout>, ctx: &Context) -> Result<Action, Error> {
    let rollout = ctx.written.rollouts.freshest(rollout);
    let ns = rollout.namespace().ok_or(Error::MissingField(".metadata.namespace"))?;
    let name = rollout.name_any();
    let observed = observe::observe(ctx, &rollout, &ns).await?;
    let now = jiff::Timestamp::now();
    let overlaid = ctx.answers.overlay(&rollout);
    let mut plan = plan::plan(overlaid.as_ref().unwrap_or(&rollout), &observed, now);
    tracing::Span::current().record("revision", plan.status.current_pod_hash.as_deref().unwrap_or(""));
    // Objects first, then the decisions' Events, then status: a crash anywhere in between
    // recomputes the same decisions, and their Events are named by them, so none is lost or doubled.
    // Traffic first: abort and promotion put it on the right version before any Pod goes.
    if let Err(e) = router::release(&ctx.client, &ns, &plan.release_destination_rules).await {
        apply::report_router_error(ctx, &rollout, &e).await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    }
    let routed = rollout.spec.strategy.traffic_routing().is_some();
    let canary_running = plan.status.current_pod_hash != plan.status.stable_pod_hash && plan.status.abort != Some(true);
    if routed && let Err(e) = router::set_weight(&ctx.client, &rollout, &plan.status, plan.weight, canary_running).await
    {
        apply::report_router_error(ctx, &rollout, &e).await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    }
    let evictions_refused = match apply::apply_objects(ctx, &rollout, &observed, &plan).await {
        Ok(refused) => refused,
        // The API server refuses an object made from the spec (a Pod template it finds invalid):
        // only a new spec helps, so the status says so rather than the reconcile retrying in silence.
        Err(Error::Kube(kube::Error::Api(s))) if apply::refused_as_invalid(&s) => {
            apply::report_refused(ctx, &rollout, &s.message).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
        Err(e) => return Err(e),
    };
    if evictions_refused {
        let retry = apply::EVICTION_RETRY;
        plan.requeue_after = Some(plan.requeue_after.map_or(retry, |d| d.min(retry)));
    }
    if !plan.call_webhooks.is_empty() {
        let failed = crate::hooks::gates::call(
            &ctx.client,
            &ctx.http,
            &rollout,
            &plan.call_webhooks,
            &mut plan.status,
            now,
            &ctx.answers,
        )
        .await;
        if failed.iter().any(|d| d.severity == plan::Severity::Warning) {
            ctx.lane.push(ObjectRef::from_obj(rollout.as_ref()));
        }
        plan.decisions.extend(failed);
        // The answers are in the status about to be written; the next plan acts on them.
        let soon = Duration::from_millis(100);
        plan.requeue_after = Some(plan.requeue_after.map_or(soon, |d| d.min(soon)));
    }
    for d in &plan.decisions {
        tracing::info!(reason = d.reason, "{}", d.message);
        // A decision recorded before (a restart in between) was notified before.
        match events::record(&ctx.client, rollout.as_ref(), &ctx.instance, d).await {
            Ok(true) => ctx.notifier.decided(&rollout, d, &plan.status),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not record an Event");
                ctx.notifier.decided(&rollout, d, &plan.status);
            }
        }
    }
    // A status that only mirrors Pod counts or measured values waits for the next decision.
    let key = kube::runtime::reflector::ObjectRef::from_obj(rollout.as_ref());
    let last_write = ctx.written.statuses.ago(&key).and_then(|ago| now.checked_sub(ago).ok());
    let write = crate::plan::status_writes::Write {
        written: rollout.status.as_ref(),
        next: &plan.status,
        // A restart is watched Pod by Pod: its counts are the news while it lasts.
        decided: !plan.decisions.is_empty() || crate::plan::restart_pending(&rollout),
        landings: crate::plan::status_writes::landings(&rollout, &plan.status),
    };
    match crate::plan::status_writes::hold(&write, last_write, now) {
        Some(wait) => plan.requeue_after = Some(plan.requeue_after.map_or(wait, |d| d.min(wait))),
        None => {
            if apply::apply_status(ctx, &rollout, &plan.status).await? {
                ctx.written.statuses.wrote(key);
            }
        }
    }
    let metrics = &ctx.admin.metrics;
    metrics.observe(&ns, &name, rollout.spec.strategy.kind(), &plan.status);
    for d in &plan.decisions {
        match d.reason {
            "Aborted" => metrics.aborted(&ns, &name),
            "Promoted" => metrics.promoted(&ns, &name),
            _ => {}
        }
    }
    Ok(match plan.requeue_after {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

fn error_policy(rollout: Arc<Rollout>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = rollout.name_any();
    ctx.admin.metrics.reconcile_failed(error.label());
    match error.label() {
        // Someone wrote in between (a `kubectl serin` request): look again at once.
        "conflict" => Action::requeue(Duration::from_millis(200)),
        label => {
            tracing::warn!(rollout = %name, error = %error, kind = label, "reconcile failed; retrying");
            Action::requeue(Duration::from_secs(5))
        }
    }
}
