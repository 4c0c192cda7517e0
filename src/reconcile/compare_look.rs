//! A look for a `compare` or `sloBurnRate` metric: each version's counters read from Prometheus
//! (`{{version}}` filled in with its hash), then judged by the pure code in `analysis`.

use super::cached::CachedReplicaSet;
use super::measure::{Measurer, Secrets};
use crate::analysis::args::{Version, substitute};
use crate::analysis::prometheus::Prometheus;
use crate::analysis::provider::ProviderError;
use crate::analysis::verdict::Outcome;
use crate::analysis::{batch, burn_rate, compare};
use crate::crd::analysis::{EventCounts, EvidenceState, Metric, MetricResult, PrometheusServer, Versions};
use crate::plan::HASH_LABEL;
use jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;

/// The two counters of one version, at `at` (now when `None`); `None` when `total` found nothing.
async fn counters(
    prometheus: &Prometheus,
    (bad, total): (&str, &str),
    version: &Version<'_>,
    at: Option<Timestamp>,
) -> Result<Option<EventCounts>, String> {
    let fill = |q: &str, name: &str| -> Result<String, String> {
        let filled = substitute(q, version).map_err(|e| format!("{name}: {e}"))?;
        if filled.contains("{{") {
            return Err(format!(
                "{name} names {{{{service}}}}, but the Rollout gives no stableService and canaryService"
            ));
        }
        Ok(filled)
    };
    let (bad, total) = (fill(bad, "bad")?, fill(total, "total")?);
    let read = |q: String| async move {
        let r = match at {
            Some(t) => prometheus.query_at(&q, t).await,
            None => prometheus.query(&q).await,
        };
        r.map(|r| r.sum()).map_err(|e: ProviderError| e.to_string())
    };
    let Some(total) = read(total).await? else {
        return Ok(None);
    };
    // No series of bad requests yet (no error so far) is none of them.
    let bad = read(bad).await?.unwrap_or(0.0);
    Ok(Some(EventCounts { bad, total }))
}

/// Both versions' counters (canary, then stable): two queries where the queries allow asking for
/// both at once (`analysis::batch`), else two per version.
async fn both_counters(
    prometheus: &Prometheus,
    queries: (&str, &str),
    versions: &Versions,
) -> Result<(Option<EventCounts>, Option<EventCounts>), String> {
    let hashes = [versions.canary.as_str(), versions.stable.as_str()];
    let batched = (
        batch::by_version(queries.0, hashes),
        batch::by_version(queries.1, hashes),
    );
    let (Some(bad), Some(total)) = batched else {
        let canary = counters(prometheus, queries, &canary_of(versions), None).await?;
        let stable = counters(prometheus, queries, &stable_of(versions), None).await?;
        return Ok((canary, stable));
    };
    let read = |q: String| async move { prometheus.query_series(&q, None).await.map_err(|e| e.to_string()) };
    let totals = read(total.query).await?;
    let bads = read(bad.query).await?;
    let of = |hash: &str| {
        let total = batch::split(totals.iter().map(|(l, v)| (l, *v)), &total.label, hash)?;
        // No series of bad requests yet (no error so far) is none of them.
        let bad = batch::split(bads.iter().map(|(l, v)| (l, *v)), &bad.label, hash).unwrap_or(0.0);
        Some(EventCounts { bad, total })
    };
    Ok((of(hashes[0]), of(hashes[1])))
}

/// A query as it was asked of one version.
fn shown_for(query: &str, version: &Version<'_>) -> String {
    substitute(query, version)
        .unwrap_or_else(|_| query.to_string())
        .trim()
        .to_string()
}

fn canary_of(v: &Versions) -> Version<'_> {
    Version {
        hash: &v.canary,
        service: v.canary_service.as_deref(),
    }
}

fn stable_of(v: &Versions) -> Version<'_> {
    Version {
        hash: &v.stable,
        service: v.stable_service.as_deref(),
    }
}

/// The versions a look compares: as Serin wrote them into the run.
fn versions_of(versions: Option<&Versions>) -> Result<&Versions, String> {
    let v = versions.ok_or(
        "the metric has no versions to compare: Serin fills them in for the runs it makes; a run written by hand sets provider.<compare|sloBurnRate>.versions",
    )?;
    if v.stable.is_empty() || v.canary == v.stable {
        return Err("there is no stable version to compare the canary with".into());
    }
    Ok(v)
}

impl Measurer<'_> {
    /// Stable's counters when its series are gone. Its series go with its Pods (the 100% step
    /// scales it down): once counting has begun and its ReplicaSet has no ready Pod left, that is
    /// stable serving nothing more, its last reading kept. While it still has ready Pods, its
    /// series vanishing is missing data (the `Err` outcome, saying why), never "stable serves
    /// nothing". `total` is the metric's query, for the message.
    async fn stable_or_gone(
        &self,
        stable: Option<EventCounts>,
        known: Option<&EvidenceState>,
        versions: &Versions,
        total: &str,
    ) -> Result<Result<Option<EventCounts>, Outcome>, String> {
        let last = known.and_then(|s| s.reading.get(1).copied());
        let (None, Some(last)) = (stable, last) else {
            return Ok(Ok(stable));
        };
        let ready = self.ready_pods(&versions.stable).await?;
        if ready > 0 {
            return Ok(Err(Outcome::NoData {
                what: format!(
                    "the stable's total `{}`: its series are gone while its ReplicaSet still has {ready} ready Pod{}",
                    shown_for(total, &stable_of(versions)),
                    if ready == 1 { "" } else { "s" }
                ),
            }));
        }
        Ok(Ok(Some(last)))
    }

    /// Ready Pods of the ReplicaSets of the version with pod-template hash `hash`.
    async fn ready_pods(&self, hash: &str) -> Result<i32, String> {
        let api: Api<CachedReplicaSet> = Api::namespaced(self.client.clone(), self.namespace);
        let selector = format!("{HASH_LABEL}={hash}");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| format!("cannot list the stable ReplicaSet to tell whether it still serves: {e}"))?;
        Ok(list
            .items
            .iter()
            .filter_map(|rs| rs.status.as_ref().and_then(|s| s.ready_replicas))
            .sum())
    }

    async fn server(&self, server: &PrometheusServer, secrets: &mut Secrets) -> Result<Prometheus, String> {
        let mut spec = server.asking(String::new());
        self.default_address(&mut spec)?;
        let creds = self.prometheus_credentials(&spec, secrets).await?;
        Prometheus::new(&spec, &creds, self.http).map_err(|e| e.to_string())
    }

    pub(super) async fn compare_look(
        &self,
        resolved: &Metric,
        previous: Option<&MetricResult>,
        secrets: &mut Secrets,
    ) -> Result<Outcome, String> {
        let Some(spec) = &resolved.provider.compare else {
            return Err("not a compare metric".into());
        };
        let versions = versions_of(spec.versions.as_ref())?;
        let prometheus = self.server(&spec.prometheus, secrets).await?;
        let queries = (spec.bad.as_str(), spec.total.as_str());
        let (canary, stable) = both_counters(&prometheus, queries, versions).await?;
        let evidence = (previous, self.carried.get(&resolved.name));
        let known = compare::evidence_for(evidence.0, evidence.1).0;
        let stable = match self.stable_or_gone(stable, known, versions, &spec.total).await? {
            Ok(stable) => stable,
            Err(no_data) => return Ok(no_data),
        };
        let (Some(canary), Some(stable)) = (canary, stable) else {
            let (which, hash) = match canary {
                None => ("canary", canary_of(versions)),
                Some(_) => ("stable", stable_of(versions)),
            };
            return Ok(Outcome::NoData {
                what: format!("the {which}'s total `{}`", shown_for(&spec.total, &hash)),
            });
        };
        Ok(compare::look_outcome(
            resolved,
            &self.run.spec,
            evidence,
            canary,
            stable,
            Timestamp::now(),
        ))
    }

    pub(super) async fn burn_rate_look(
        &self,
        resolved: &Metric,
        previous: Option<&MetricResult>,
        secrets: &mut Secrets,
    ) -> Result<Outcome, String> {
        let Some(spec) = &resolved.provider.slo_burn_rate else {
            return Err("not a sloBurnRate metric".into());
        };
        // Settings that do not read are an error before anything is asked.
        burn_rate::Settings::of(spec).map_err(|e| e.to_string())?;
        let versions = versions_of(spec.versions.as_ref())?;
        let prometheus = self.server(&spec.prometheus, secrets).await?;
        let queries = (spec.bad.as_str(), spec.total.as_str());
        let now = Timestamp::now();
        let (canary, stable) = both_counters(&prometheus, queries, versions).await?;
        let Some(canary) = canary else {
            return Ok(Outcome::NoData {
                what: format!("the canary's total `{}`", shown_for(&spec.total, &canary_of(versions))),
            });
        };
        let evidence = (previous, self.carried.get(&resolved.name));
        let known = compare::evidence_for(evidence.0, evidence.1).0;
        let stable = match self.stable_or_gone(stable, known, versions, &spec.total).await? {
            Ok(stable) => stable,
            Err(no_data) => return Ok(no_data),
        };
        let since = burn_rate::evidence_since(evidence, now);
        let window = jiff::SignedDuration::try_from(burn_rate::short_window(since, now)).unwrap_or_default();
        let before = match now.checked_sub(window) {
            Ok(t) => counters(&prometheus, queries, &canary_of(versions), Some(t)).await?,
            Err(_) => None,
        };
        Ok(burn_rate::look_outcome(
            resolved,
            evidence,
            (canary, stable.unwrap_or_default()),
            before,
            now,
        ))
    }
}
