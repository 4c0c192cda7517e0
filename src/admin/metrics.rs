//! The controller's own metrics (prometheus-client, OpenMetrics text): what each Rollout is doing,
//! and how reconciling goes. A deleted Rollout's series are removed.

use crate::crd::rollout::{Phase, RolloutStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutLabels {
    pub namespace: String,
    pub rollout: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub namespace: String,
    pub rollout: String,
    pub strategy: String,
    pub revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub namespace: String,
    pub rollout: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MeasurementLabels {
    pub namespace: String,
    pub rollout: String,
    pub metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThresholdLabels {
    pub namespace: String,
    pub rollout: String,
    pub metric: String,
    pub bound: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub r#type: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

const PHASES: [Phase; 4] = [Phase::Progressing, Phase::Paused, Phase::Healthy, Phase::Degraded];

pub struct Metrics {
    registry: Registry,
    info: Family<InfoLabels, Gauge>,
    phase: Family<PhaseLabels, Gauge>,
    weight: Family<RolloutLabels, Gauge>,
    step: Family<RolloutLabels, Gauge>,
    aborts: Family<RolloutLabels, Counter>,
    promotions: Family<RolloutLabels, Counter>,
    reconcile_duration: Histogram,
    measurement_duration: Histogram,
    reconcile_errors: Family<ErrorLabels, Counter>,
    rollback_lane: Counter,
    measurement: Family<MeasurementLabels, Gauge<f64, AtomicU64>>,
    threshold: Family<ThresholdLabels, Gauge<f64, AtomicU64>>,
    evalue: Family<MeasurementLabels, Gauge<f64, AtomicU64>>,
    ratio: Family<MeasurementLabels, Gauge<f64, AtomicU64>>,
    /// Analysis metrics measured per Rollout, to remove them with it.
    measured: Mutex<std::collections::HashSet<MeasurementLabels>>,
    notifications: Family<NotificationLabels, Counter>,
    /// Requests to the Kubernetes API, counted by the client's layer.
    pub kube_requests: super::kube_requests::RequestCounter,
    /// The info labels last set per Rollout, to remove them when the revision changes.
    last_info: Mutex<std::collections::HashMap<(String, String), InfoLabels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("serin");
        let info = Family::<InfoLabels, Gauge>::default();
        let phase = Family::<PhaseLabels, Gauge>::default();
        let weight = Family::<RolloutLabels, Gauge>::default();
        let step = Family::<RolloutLabels, Gauge>::default();
        let aborts = Family::<RolloutLabels, Counter>::default();
        let promotions = Family::<RolloutLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let measurement = Family::<MeasurementLabels, Gauge<f64, AtomicU64>>::default();
        let threshold = Family::<ThresholdLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "analysis_measurement_value",
            "The last value an analysis metric measured",
            measurement.clone(),
        );
        let evalue = Family::<MeasurementLabels, Gauge<f64, AtomicU64>>::default();
        let ratio = Family::<MeasurementLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "analysis_evalue",
            "The evidence of a regression a compare metric has (it decides at 1/(1-confidence))",
            evalue.clone(),
        );
        registry.register(
            "analysis_ratio",
            "The canary's bad-request rate over stable's, as a compare metric measured it",
            ratio.clone(),
        );
        registry.register(
            "analysis_threshold",
            "The thresholdRange bound of an analysis metric",
            threshold.clone(),
        );
        registry.register(
            "rollout_info",
            "A Rollout, its strategy and current revision (always 1)",
            info.clone(),
        );
        registry.register(
            "rollout_phase",
            "1 for the Rollout's current phase, 0 for the others",
            phase.clone(),
        );
        registry.register(
            "rollout_canary_weight",
            "Percent of traffic on the new version",
            weight.clone(),
        );
        registry.register("rollout_step", "Index of the step being worked on", step.clone());
        registry.register(
            "rollout_aborts",
            "Rollouts aborted (by analysis, deadline or a person)",
            aborts.clone(),
        );
        registry.register(
            "rollout_promotions",
            "New versions promoted to stable",
            promotions.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile of a Rollout took",
            reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by kind of error",
            reconcile_errors.clone(),
        );
        let measurement_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "analysis_measurement_duration_seconds",
            "Time one measurement took: its provider's queries and their answers",
            measurement_duration.clone(),
        );
        let rollback_lane = Counter::default();
        registry.register(
            "rollback_lane_reconciles",
            "Reconciles of failed analyses, aborts and failed gates, taken ahead of the routine queue",
            rollback_lane.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notifications by target type and outcome (sent, failed after retries, dropped)",
            notifications.clone(),
        );
        let kube_requests = super::kube_requests::RequestCounter::default();
        registry.register(
            "kube_requests",
            "Requests to the Kubernetes API by verb, resource and response code",
            kube_requests.clone(),
        );
        Metrics {
            registry,
            notifications,
            kube_requests,
            info,
            phase,
            weight,
            step,
            aborts,
            promotions,
            reconcile_duration,
            measurement_duration,
            reconcile_errors,
            rollback_lane,
            measurement,
            threshold,
            evalue,
            ratio,
            measured: Mutex::new(Default::default()),
            last_info: Mutex::new(Default::default()),
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Publishes a Rollout's state after a reconcile.
    pub fn observe(&self, namespace: &str, rollout: &str, strategy: &str, status: &RolloutStatus) {
        let key = RolloutLabels {
            namespace: namespace.into(),
            rollout: rollout.into(),
        };
        let info = InfoLabels {
            namespace: namespace.into(),
            rollout: rollout.into(),
            strategy: strategy.into(),
            revision: status.current_pod_hash.clone().unwrap_or_default(),
        };
        let mut last = self.last_info.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = last.insert((namespace.into(), rollout.into()), info.clone())
            && old != info
        {
            self.info.remove(&old);
        }
        self.info.get_or_create(&info).set(1);
        for p in PHASES {
            let labels = PhaseLabels {
                namespace: namespace.into(),
                rollout: rollout.into(),
                phase: p.as_str().into(),
            };
            self.phase
                .get_or_create(&labels)
                .set(i64::from(status.phase == Some(p)));
        }
        self.weight
            .get_or_create(&key)
            .set(i64::from(status.canary_weight.unwrap_or(0)));
        self.step
            .get_or_create(&key)
            .set(i64::from(status.current_step_index.unwrap_or(0)));
    }

    pub fn aborted(&self, namespace: &str, rollout: &str) {
        self.aborts
            .get_or_create(&RolloutLabels {
                namespace: namespace.into(),
                rollout: rollout.into(),
            })
            .inc();
    }

    pub fn promoted(&self, namespace: &str, rollout: &str) {
        self.promotions
            .get_or_create(&RolloutLabels {
                namespace: namespace.into(),
                rollout: rollout.into(),
            })
            .inc();
    }

    /// The evidence a `compare` metric has for a Rollout: its e-value and the rates' ratio.
    pub fn compared(&self, namespace: &str, rollout: &str, metric: &str, e_value: Option<f64>, ratio: Option<f64>) {
        let labels = MeasurementLabels {
            namespace: namespace.into(),
            rollout: rollout.into(),
            metric: metric.into(),
        };
        if let Some(e) = e_value {
            self.evalue.get_or_create(&labels).set(e);
        }
        if let Some(r) = ratio {
            self.ratio.get_or_create(&labels).set(r);
        }
        self.measured.lock().unwrap_or_else(|e| e.into_inner()).insert(labels);
    }

    /// The last value an analysis metric measured for a Rollout, with its threshold bounds.
    pub fn measured(
        &self,
        namespace: &str,
        rollout: &str,
        metric: &str,
        value: f64,
        min: Option<f64>,
        max: Option<f64>,
    ) {
        let labels = MeasurementLabels {
            namespace: namespace.into(),
            rollout: rollout.into(),
            metric: metric.into(),
        };
        self.measurement.get_or_create(&labels).set(value);
        self.measured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(labels.clone());
        for (bound, v) in [("min", min), ("max", max)] {
            if let Some(v) = v {
                let l = ThresholdLabels {
                    namespace: namespace.into(),
                    rollout: rollout.into(),
                    metric: metric.into(),
                    bound: bound.into(),
                };
                self.threshold.get_or_create(&l).set(v);
            }
        }
    }

    pub fn reconcile_took(&self, seconds: f64) {
        self.reconcile_duration.observe(seconds);
    }

    /// A notification's fate: `sent`, `failed` (after its retries) or `dropped` (queue full).
    pub fn notified(&self, kind: &str, outcome: &str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                r#type: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn measurement_took(&self, seconds: f64) {
        self.measurement_duration.observe(seconds);
    }

    pub fn rollback_lane_took_one(&self) {
        self.rollback_lane.inc();
    }

    pub fn reconcile_failed(&self, error: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels { error: error.into() })
            .inc();
    }

    /// Series of Rollouts not in `live` go.
    pub fn forget_all_but(&self, live: &std::collections::HashSet<(String, String)>) {
        let known: Vec<(String, String)> = self
            .last_info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for (ns, name) in known.into_iter().filter(|k| !live.contains(k)) {
            self.forget(&ns, &name);
        }
    }

    /// A deleted Rollout's series go.
    pub fn forget(&self, namespace: &str, rollout: &str) {
        let key = RolloutLabels {
            namespace: namespace.into(),
            rollout: rollout.into(),
        };
        if let Some(info) = self
            .last_info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.into(), rollout.into()))
        {
            self.info.remove(&info);
        }
        for p in PHASES {
            self.phase.remove(&PhaseLabels {
                namespace: namespace.into(),
                rollout: rollout.into(),
                phase: p.as_str().into(),
            });
        }
        self.weight.remove(&key);
        self.step.remove(&key);
        self.aborts.remove(&key);
        self.promotions.remove(&key);
        let mut measured = self.measured.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<MeasurementLabels> = measured
            .iter()
            .filter(|m| m.namespace == namespace && m.rollout == rollout)
            .cloned()
            .collect();
        for m in gone {
            self.measurement.remove(&m);
            self.evalue.remove(&m);
            self.ratio.remove(&m);
            for bound in ["min", "max"] {
                self.threshold.remove(&ThresholdLabels {
                    namespace: m.namespace.clone(),
                    rollout: m.rollout.clone(),
                    metric: m.metric.clone(),
                    bound: bound.into(),
                });
            }
            measured.remove(&m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_follow_a_rollout_and_go_with_it() {
        let m = Metrics::default();
        let st = RolloutStatus {
            phase: Some(Phase::Paused),
            canary_weight: Some(25),
            current_step_index: Some(2),
            current_pod_hash: Some("abc".into()),
            ..Default::default()
        };
        m.observe("shop", "web", "canary", &st);
        m.aborted("shop", "web");
        let text = m.render();
        assert!(
            text.contains(r#"serin_rollout_phase{namespace="shop",rollout="web",phase="Paused"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"serin_rollout_phase{namespace="shop",rollout="web",phase="Healthy"} 0"#));
        assert!(text.contains(r#"serin_rollout_canary_weight{namespace="shop",rollout="web"} 25"#));
        assert!(
            text.contains(r#"serin_rollout_info{namespace="shop",rollout="web",strategy="canary",revision="abc"} 1"#)
        );
        assert!(text.contains(r#"serin_rollout_aborts_total{namespace="shop",rollout="web"} 1"#));
        m.measured("shop", "web", "error-rate", 0.25, None, Some(0.05));
        let text = m.render();
        assert!(
            text.contains(
                r#"serin_analysis_measurement_value{namespace="shop",rollout="web",metric="error-rate"} 0.25"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"serin_analysis_threshold{namespace="shop",rollout="web",metric="error-rate",bound="max"} 0.05"#
            ),
            "{text}"
        );
        m.notified("slack", "failed");
        assert!(
            m.render()
                .contains(r#"serin_notifications_total{type="slack",outcome="failed"} 1"#)
        );
        m.forget("shop", "web");
        assert!(
            !m.render().contains(r#"rollout="web""#),
            "a deleted Rollout's series go"
        );
    }
}
