//! A look for a `compare` or `sloBurnRate` metric: each version's counters read from Prometheus
//! (`{{version}}` filled in with its hash), then judged by the pure code in `analysis`.

use super::measure::{Measurer, Secrets};
use crate::analysis::args::{Version, substitute};
use crate::analysis::prometheus::Prometheus;
use crate::analysis::provider::ProviderError;
use crate::analysis::verdict::{Outcome, count_of};
use crate::analysis::{burn_rate, compare};
use crate::crd::analysis::{EventCounts, EvidenceState, Metric, MetricResult, PrometheusServer, Versions};
use jiff::Timestamp;

/// The two counters of one version, at `at` (now when `None`); `None` when `total` found nothing.
async fn counters(
    prometheus: &Prometheus,
    (bad, total): (&str, &str),
    hash: &str,
    at: Option<Timestamp>,
) -> Result<Option<EventCounts>, String> {
    let fill = |q: &str, name: &str| substitute(q, &Version(hash)).map_err(|e| format!("{name}: {e}"));
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
    async fn server(&self, server: &PrometheusServer, secrets: &mut Secrets) -> Result<Prometheus, String> {
        let mut spec = server.asking(String::new());
        if spec.address.trim().is_empty() {
            spec.address = self.default_prometheus.map(String::from).ok_or(
                "the metric gives no Prometheus address, and the controller has none (--prometheus-address)",
            )?;
        }
        let creds = self.prometheus_credentials(&spec, secrets).await?;
        Prometheus::new(&spec, &creds, self.http).map_err(|e| e.to_string())
    }

    /// The evidence a look goes on from: this run's, else what an earlier run for the same
    /// version left.
    fn evidence<'s>(&'s self, metric: &Metric, previous: Option<&'s MetricResult>) -> (Option<&'s EvidenceState>, bool) {
        match previous.and_then(|r| r.evidence.as_ref()) {
            Some(own) => (Some(own), false),
            None => (self.carried.get(&metric.name), true),
        }
    }

    /// The run's `compare` metrics that decide: their false-rollback bounds add up.
    fn deciding_comparisons(&self) -> usize {
        let dry = |name: &str| crate::analysis::rules::rules_for(&self.run.spec, name).dry_run;
        self.run
            .spec
            .metrics
            .iter()
            .filter(|m| m.provider.compare.is_some() && !dry(&m.name))
            .count()
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
        let canary = counters(&prometheus, queries, &versions.canary, None).await?;
        let stable = counters(&prometheus, queries, &versions.stable, None).await?;
        let (Some(canary), Some(stable)) = (canary, stable) else {
            let which = if canary.is_none() { "canary" } else { "stable" };
            return Ok(Outcome::NoData {
                what: format!("the {which}'s total `{}`", spec.total.trim()),
            });
        };
        let (state, carried) = self.evidence(resolved, previous);
        let counted = previous.map_or(0, |r| r.count);
        let last = count_of(resolved, self.run.spec.background == Some(true)).is_some_and(|n| counted + 1 >= n);
        let settings = compare::Settings::of(spec, self.deciding_comparisons());
        let j = compare::judge(
            &settings,
            compare::Look {
                state,
                carried,
                canary,
                stable,
                now: Timestamp::now(),
                last,
            },
        );
        Ok(Outcome::Compared {
            phase: j.phase,
            value: j.value,
            reason: j.message,
            comparison: Box::new(j.comparison),
            state: Box::new(j.state),
        })
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
        let settings = burn_rate::Settings::of(spec).map_err(|e| e.to_string())?;
        let versions = versions_of(spec.versions.as_ref())?;
        let prometheus = self.server(&spec.prometheus, secrets).await?;
        let queries = (spec.bad.as_str(), spec.total.as_str());
        let now = Timestamp::now();
        let canary = counters(&prometheus, queries, &versions.canary, None).await?;
        let stable = counters(&prometheus, queries, &versions.stable, None).await?;
        let Some(canary) = canary else {
            return Ok(Outcome::NoData {
                what: format!("the canary's total `{}`", spec.total.trim()),
            });
        };
        let (state, carried) = self.evidence(resolved, previous);
        let since = state.map_or(now, |s| s.since.0);
        let window = jiff::SignedDuration::try_from(burn_rate::short_window(since, now)).unwrap_or_default();
        let before = match now.checked_sub(window) {
            Ok(t) => counters(&prometheus, queries, &versions.canary, Some(t)).await?,
            Err(_) => None,
        };
        let j = burn_rate::judge(
            &settings,
            burn_rate::Look {
                state,
                carried,
                canary,
                stable: stable.unwrap_or_default(),
                canary_before: before,
                now,
            },
        );
        Ok(Outcome::Compared {
            phase: j.phase,
            value: j.value,
            reason: j.message,
            comparison: Box::new(j.comparison),
            state: Box::new(j.state),
        })
    }
}
