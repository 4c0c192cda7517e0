//! Notifications: what the plan decided, sent to Slack, Teams or a JSON webhook from queues of
//! their own (one per target), so that a slow or broken receiver never holds a reconcile. Each delivery is tried a
//! few times with growing pauses; one that still fails is an Event on the Rollout and a metric.

use super::format::{Notice, notification};
use super::{post_json, resolve_url};
use crate::admin::Admin;
use crate::crd::hooks::{NotificationEvent, NotificationTarget};
use crate::crd::rollout::Rollout;
use crate::plan::{Decision, Severity};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The ConfigMap of default targets, in the controller's namespace, and its key.
pub const DEFAULTS_CONFIGMAP: &str = "serin-notifications";
pub const DEFAULTS_KEY: &str = "targets.yaml";

const QUEUE: usize = 1024;
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(10);

/// The defaults ConfigMap, read again when its copy is older than DEFAULTS_TTL: edits apply
/// without a restart, and a burst of decisions costs one read.
#[derive(Default)]
struct DefaultTargets {
    read: Option<(std::time::Instant, Vec<NotificationTarget>)>,
}

const DEFAULTS_TTL: Duration = Duration::from_secs(10);

impl DefaultTargets {
    async fn get(&mut self, sender: &Sender) -> Result<Vec<NotificationTarget>, String> {
        if let Some((at, targets)) = &self.read
            && at.elapsed() < DEFAULTS_TTL
        {
            return Ok(targets.clone());
        }
        let targets = sender.read_defaults().await?;
        self.read = Some((std::time::Instant::now(), targets.clone()));
        Ok(targets)
    }
}

struct Delivery {
    target: NotificationTarget,
    secret_ns: String,
    rollout: Arc<Rollout>,
    action: String,
    notice: Notice,
}

struct Job {
    rollout: Arc<Rollout>,
    event: NotificationEvent,
    /// The decision's own action, to name the failure Event after it.
    action: String,
    notice: Notice,
}

#[derive(Clone)]
struct Sender {
    client: kube::Client,
    http: reqwest::Client,
    instance: String,
    admin: Arc<Admin>,
    /// Where the defaults ConfigMap and the Secrets of its targets live.
    home: String,
}

pub struct Notifier {
    queue: mpsc::Sender<Job>,
    admin: Arc<Admin>,
}

impl Notifier {
    /// Starts the delivery task; `home` is the controller's namespace.
    pub fn start(
        client: kube::Client,
        http: reqwest::Client,
        instance: String,
        admin: Arc<Admin>,
        home: String,
    ) -> Notifier {
        let (queue, mut jobs) = mpsc::channel::<Job>(QUEUE);
        let sender = Sender {
            client,
            http,
            instance,
            admin: admin.clone(),
            home,
        };
        tokio::spawn(async move {
            let mut defaults = DefaultTargets::default();
            // One queue per target: its messages arrive in order, and a broken one delays no other.
            let mut lanes: HashMap<String, mpsc::Sender<Delivery>> = HashMap::new();
            while let Some(job) = jobs.recv().await {
                let targets = sender.targets_for(&job, &mut defaults).await;
                for (target, secret_ns) in targets {
                    let key = format!("{secret_ns}/{}/{}", target.name, target.type_.as_str());
                    let lane = lanes.entry(key).or_insert_with(|| sender.lane());
                    let delivery = Delivery {
                        target,
                        secret_ns,
                        rollout: job.rollout.clone(),
                        action: job.action.clone(),
                        notice: job.notice.clone(),
                    };
                    if lane.try_send(delivery).is_err() {
                        tracing::warn!("a notification target's queue is full; a notification was dropped");
                        sender.admin.metrics.notified("queue", "dropped");
                    }
                }
            }
        });
        Notifier { queue, admin }
    }

    /// Queues a decision worth a notification; returns at once.
    pub fn decided(&self, rollout: &Arc<Rollout>, d: &Decision, status: &crate::crd::rollout::RolloutStatus) {
        let Some(event) = NotificationEvent::of_reason(d.reason) else {
            return;
        };
        let wanted = rollout
            .spec
            .notifications
            .as_ref()
            .is_none_or(|n| !n.targets.is_empty() || n.use_defaults != Some(false));
        if !wanted {
            return;
        }
        let notice = Notice {
            namespace: rollout.namespace().unwrap_or_default(),
            rollout: rollout.name_any(),
            event: event.as_str().into(),
            message: d.message.clone(),
            revision: status.current_pod_hash.clone().unwrap_or_default(),
            phase: status.phase.map(|p| p.as_str()).unwrap_or_default().into(),
            step: status.step.clone().unwrap_or_default(),
            weight: status.canary_weight.unwrap_or(0),
            time: jiff::Timestamp::now().to_string(),
            warning: d.severity == Severity::Warning,
        };
        let job = Job {
            rollout: rollout.clone(),
            event,
            action: d.action.clone(),
            notice,
        };
        if self.queue.try_send(job).is_err() {
            tracing::warn!("the notification queue is full; a notification was dropped");
            self.admin.metrics.notified("queue", "dropped");
        }
    }
}

impl Sender {
    /// The Rollout's own targets (Secrets in its namespace) and, unless it opts out, the
    /// controller's defaults (Secrets in the controller's namespace), each wanting this event.
    async fn targets_for(&self, job: &Job, defaults: &mut DefaultTargets) -> Vec<(NotificationTarget, String)> {
        let ns = job.rollout.namespace().unwrap_or_default();
        let spec = job.rollout.spec.notifications.clone().unwrap_or_default();
        let mut targets: Vec<(NotificationTarget, String)> =
            spec.targets.into_iter().map(|t| (t, ns.clone())).collect();
        if spec.use_defaults != Some(false) {
            match defaults.get(self).await {
                Ok(defaults) => targets.extend(defaults.into_iter().map(|t| (t, self.home.clone()))),
                Err(e) => {
                    tracing::warn!(configmap = DEFAULTS_CONFIGMAP, namespace = %self.home, error = %e, "cannot read the default notification targets");
                    self.admin.metrics.notified("defaults", "failed");
                }
            }
        }
        targets.retain(|(t, _)| t.wants(job.event));
        targets
    }

    async fn read_defaults(&self) -> Result<Vec<NotificationTarget>, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.home);
        let cm = api.get_opt(DEFAULTS_CONFIGMAP).await.map_err(|e| e.to_string())?;
        let Some(text) = cm.and_then(|c| c.data).and_then(|mut d| d.remove(DEFAULTS_KEY)) else {
            return Ok(Vec::new());
        };
        serde_saphyr::from_str(&text).map_err(|e| format!("{DEFAULTS_KEY} is not a list of targets: {e}"))
    }

    /// A target's own delivery task, sending one message after the other.
    fn lane(&self) -> mpsc::Sender<Delivery> {
        let (tx, mut rx) = mpsc::channel::<Delivery>(QUEUE);
        let sender = self.clone();
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                sender.deliver(d).await;
            }
        });
        tx
    }

    async fn deliver(&self, d: Delivery) {
        let Delivery {
            target,
            secret_ns,
            rollout,
            action,
            notice,
        } = d;
        let kind = target.type_.as_str();
        let body = notification(target.type_, &notice, target.channel.as_deref());
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(FIRST_RETRY * 2u32.pow(attempt - 1)).await;
            }
            let sent = match resolve_url(&self.client, &secret_ns, &target.endpoint).await {
                Ok(url) => post_json(&self.http, &url, &body, TIMEOUT).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(_) => {
                    self.admin.metrics.notified(kind, "sent");
                    tracing::info!(target = %target.name, kind, event = %notice.event, "notification sent");
                    return;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        self.admin.metrics.notified(kind, "failed");
        let message = format!(
            "could not notify {} ({kind}) of {} after {ATTEMPTS} attempts: {last_error}",
            target.name, notice.event
        );
        tracing::warn!(target = %target.name, kind, "{message}");
        let failure = Decision {
            severity: Severity::Warning,
            reason: "NotificationFailed",
            action: format!("NotificationFailed-{}-{action}", target.name),
            message,
        };
        if let Err(e) = crate::reconcile::events::record(&self.client, rollout.as_ref(), &self.instance, &failure).await
        {
            tracing::warn!(error = %e, "could not record an Event");
        }
    }
}
