//! One measurement of one metric, as the AnalysisRun controller takes it: the arguments (Secrets
//! read now, never stored), the metric resolved, its provider asked, the answer judged — and every
//! Secret's value kept out of what is recorded.

use super::secrets::{SecretAccess, analysis_secret_value};
use crate::analysis::args::{resolve_metric, used_by};
use crate::analysis::condition::{QueryResult, verdict};
use crate::analysis::http::{ClientKey, HttpClients};
use crate::analysis::job::{JOB_NAME, Job, Owner};
use crate::analysis::oauth2::Tokens;
use crate::analysis::prometheus::{Prometheus, timeout_of};
use crate::analysis::provider::{Credentials, Measured, MetricProvider, ProviderError};
use crate::analysis::verdict::{Outcome, in_progress};
use crate::analysis::web::Web;
use crate::crd::analysis::{AnalysisRun, BasicAuthValues, Metric, MetricResult, OAuth2, SecretKeyRef};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use std::collections::BTreeMap;
use std::time::Duration;

/// How a Secret's value shows wherever it would have appeared.
pub const SHOWN_SECRET: &str = "<secret>";

pub struct Measurer<'a> {
    pub client: &'a Client,
    pub http: &'a HttpClients,
    pub tokens: &'a Tokens,
    pub access: SecretAccess,
    /// The Prometheus of metrics that give no address.
    pub default_prometheus: Option<&'a str>,
    pub run: &'a AnalysisRun,
    pub namespace: &'a str,
    /// Evidence earlier runs for the same version left, by metric (`compare`, `sloBurnRate`).
    pub carried: &'a BTreeMap<String, crate::crd::analysis::EvidenceState>,
}

/// A measurement taken: its outcome, and the number it measured, for the controller's metrics.
pub struct Taken {
    pub outcome: Outcome,
    pub number: Option<f64>,
}

/// Secret values read for one measurement, to be kept out of everything it records.
#[derive(Default)]
pub(super) struct Secrets(Vec<String>);

impl Secrets {
    /// Keeps a value to redact, in every form a message may carry it: as it is, escaped into a
    /// PromQL or CEL string, quoted by `{:?}` or JSON, and percent-encoded into a URL.
    fn keep(&mut self, value: &str) {
        if value.is_empty() {
            return;
        }
        let unquote = |q: String| q.trim_matches('"').to_string();
        let mut forms = vec![value.to_string()];
        for quote in ['"', '\''] {
            forms.push(crate::analysis::args::escape_for_quote(value, quote));
        }
        for f in forms.clone() {
            forms.push(unquote(format!("{f:?}")));
            forms.push(unquote(serde_json::to_string(&f).unwrap_or_default()));
            let form = serde_urlencoded::to_string([("", f.as_str())]).unwrap_or_default();
            let form = form.trim_start_matches('=').to_string();
            forms.push(form.replace('+', "%20"));
            forms.push(form);
        }
        self.0.extend(forms.into_iter().filter(|f| !f.is_empty()));
        // The longest first, so that a form holding another is replaced whole.
        self.0.sort_by_key(|f| std::cmp::Reverse(f.len()));
        self.0.dedup();
    }

    fn redact(&self, text: String) -> String {
        self.0.iter().fold(text, |t, s| t.replace(s.as_str(), SHOWN_SECRET))
    }

    fn redact_outcome(&self, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Judged { value, phase, reason } => Outcome::Judged {
                value: value.map(|v| self.redact(v)),
                phase,
                reason: self.redact(reason),
            },
            Outcome::NoData { what } => Outcome::NoData {
                what: self.redact(what),
            },
            Outcome::Error(e) => Outcome::Error(self.redact(e)),
            Outcome::Compared {
                phase,
                value,
                reason,
                comparison,
                state,
            } => Outcome::Compared {
                phase,
                value,
                reason: self.redact(reason),
                comparison,
                state,
            },
            Outcome::InProgress { message, metadata } => Outcome::InProgress {
                message: self.redact(message),
                metadata,
            },
        }
    }
}

impl Measurer<'_> {
    pub async fn measure(&self, metric: &Metric, previous: Option<&MetricResult>) -> Taken {
        let mut secrets = Secrets::default();
        let (outcome, number) = match self.take(metric, previous, &mut secrets).await {
            Ok(taken) => taken,
            Err(e) => (Outcome::Error(e), None),
        };
        Taken {
            outcome: secrets.redact_outcome(outcome),
            number,
        }
    }

    async fn secret(&self, r: &SecretKeyRef, secrets: &mut Secrets) -> Result<String, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
        let value = analysis_secret_value(&api, r, self.access).await?;
        secrets.keep(&value);
        Ok(value)
    }

    /// The arguments the metric uses: their values, and the same with Secrets shown as such.
    async fn arguments(
        &self,
        metric: &Metric,
        secrets: &mut Secrets,
    ) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), String> {
        let used = used_by(metric).map_err(|e| e.to_string())?;
        let mut values = BTreeMap::new();
        let mut shown = BTreeMap::new();
        for arg in self.run.spec.args.iter().filter(|a| used.contains(&a.name)) {
            let secret_ref = arg.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref());
            match (&arg.value, secret_ref) {
                (Some(v), _) => {
                    values.insert(arg.name.clone(), v.clone());
                    shown.insert(arg.name.clone(), v.clone());
                }
                (None, Some(r)) => {
                    let v = self
                        .secret(r, secrets)
                        .await
                        .map_err(|e| format!("argument {}: {e}", arg.name))?;
                    values.insert(arg.name.clone(), v);
                    shown.insert(arg.name.clone(), SHOWN_SECRET.to_string());
                }
                (None, None) => {}
            }
        }
        Ok((values, shown))
    }

    async fn oauth2_token(
        &self,
        spec: &OAuth2,
        insecure: bool,
        timeout: Duration,
        secrets: &mut Secrets,
    ) -> Result<String, String> {
        let http = self
            .http
            .get(ClientKey {
                ca_pem: None,
                insecure,
                timeout,
            })
            .map_err(|e| e.to_string())?;
        secrets.keep(&spec.client_secret);
        let token = self
            .tokens
            .token(spec, &http, timeout)
            .await
            .map_err(|e| e.to_string())?;
        secrets.keep(&token);
        Ok(token)
    }

    /// Credentials of a Prometheus metric, from Secrets and resolved arguments.
    /// A Prometheus metric that gives no address asks the controller's `--prometheus-address`.
    pub(super) fn default_address(&self, spec: &mut crate::crd::analysis::PrometheusProvider) -> Result<(), String> {
        if spec.address.trim().is_empty() {
            spec.address = self
                .default_prometheus
                .map(String::from)
                .ok_or("the metric gives no Prometheus address, and the controller has none (--prometheus-address)")?;
        }
        Ok(())
    }

    pub(super) async fn prometheus_credentials(
        &self,
        spec: &crate::crd::analysis::PrometheusProvider,
        secrets: &mut Secrets,
    ) -> Result<Credentials, String> {
        let mut creds = Credentials::default();
        let insecure =
            spec.insecure == Some(true) || spec.tls.as_ref().and_then(|t| t.insecure_skip_verify) == Some(true);
        if let Some(auth) = &spec.authentication {
            if let Some(token) = &auth.bearer_token {
                creds.bearer_token = Some(
                    self.secret(token, secrets)
                        .await
                        .map_err(|e| format!("bearer token: {e}"))?,
                );
            }
            if let Some(basic) = &auth.basic {
                let user = self.secret(&basic.username, secrets).await;
                let password = self.secret(&basic.password, secrets).await;
                match (user, password) {
                    (Ok(u), Ok(p)) => creds.basic = Some((u, p)),
                    (Err(e), _) | (_, Err(e)) => return Err(format!("basic auth: {e}")),
                }
            }
            let timeout = timeout_of(spec.timeout.as_ref()).map_err(|e| e.to_string())?;
            let given = (auth.basic_auth.as_ref(), auth.oauth2.as_ref());
            self.written_auth(given, insecure, timeout, &mut creds, secrets).await?;
        }
        if let Some(ca) = spec.tls.as_ref().and_then(|t| t.ca.as_ref()) {
            creds.ca_pem = Some(
                self.secret(ca, secrets)
                    .await
                    .map_err(|e| format!("tls.ca: {e}"))?
                    .into_bytes(),
            );
        }
        Ok(creds)
    }

    async fn web_credentials(
        &self,
        spec: &crate::crd::analysis::WebProvider,
        secrets: &mut Secrets,
    ) -> Result<Credentials, String> {
        let mut creds = Credentials::default();
        if let Some(auth) = &spec.authentication {
            let given = (auth.basic_auth.as_ref(), auth.oauth2.as_ref());
            let timeout = crate::analysis::web::timeout_of(spec);
            self.written_auth(given, spec.insecure == Some(true), timeout, &mut creds, secrets)
                .await?;
        }
        Ok(creds)
    }

    /// Credentials written in the metric (usually `{{args.NAME}}` from Secrets): basic auth, or an
    /// OAuth2 token fetched with client credentials.
    async fn written_auth(
        &self,
        (basic, oauth2): (Option<&BasicAuthValues>, Option<&OAuth2>),
        insecure: bool,
        timeout: Duration,
        creds: &mut Credentials,
        secrets: &mut Secrets,
    ) -> Result<(), String> {
        if let Some(BasicAuthValues { username, password }) = basic {
            secrets.keep(password);
            creds.basic = Some((username.clone(), password.clone()));
        }
        if let Some(oauth2) = oauth2 {
            creds.bearer_token = Some(self.oauth2_token(oauth2, insecure, timeout, secrets).await?);
        }
        Ok(())
    }

    async fn take(
        &self,
        metric: &Metric,
        previous: Option<&MetricResult>,
        secrets: &mut Secrets,
    ) -> Result<(Outcome, Option<f64>), String> {
        let (values, shown) = self.arguments(metric, secrets).await?;
        let resolved = resolve_metric(metric, &values).map_err(|e| e.to_string())?;
        // What messages show: the same metric with every Secret as `<secret>`.
        let shown_metric = resolve_metric(metric, &shown).unwrap_or_else(|_| metric.clone());
        let p = &resolved.provider;
        if p.compare.is_some() {
            return Ok((self.compare_look(&resolved, previous, secrets).await?, None));
        }
        if p.slo_burn_rate.is_some() {
            return Ok((self.burn_rate_look(&resolved, previous, secrets).await?, None));
        }
        let (measured, what) = if let Some(spec) = &p.prometheus {
            let mut spec = spec.clone();
            self.default_address(&mut spec)?;
            let spec = &spec;
            let creds = self.prometheus_credentials(spec, secrets).await?;
            let provider = Prometheus::new(spec, &creds, self.http).map_err(|e| e.to_string())?;
            let what = shown_metric
                .provider
                .prometheus
                .as_ref()
                .map_or_else(|| provider.describe(), |s| format!("query `{}`", s.query.trim()));
            (provider.measure().await, what)
        } else if let Some(spec) = &p.web {
            let creds = self.web_credentials(spec, secrets).await?;
            let provider = Web::new(spec, &creds, self.http).map_err(|e| e.to_string())?;
            (provider.measure().await, provider.describe())
        } else if let Some(spec) = &p.job {
            let running = previous
                .filter(|r| in_progress(r))
                .and_then(|r| r.measurements.last())
                .and_then(|m| m.metadata.get(JOB_NAME).cloned());
            let provider = Job {
                api: Api::namespaced(self.client.clone(), self.namespace),
                spec: spec.clone(),
                owner: Owner {
                    namespace: self.namespace.to_string(),
                    run: self.run.name_any(),
                    uid: self.run.uid().unwrap_or_default(),
                },
                metric: metric.name.clone(),
                number: previous.map_or(1, |r| r.count + r.error + 1),
                running,
            };
            (provider.measure().await, provider.describe())
        } else {
            return Err("the metric names no provider (prometheus, web or job)".into());
        };
        let judged = Judged {
            evaluated: &resolved,
            shown: &shown_metric,
            secrets,
        };
        Ok(judged.outcome(measured, what))
    }
}

/// A metric as it is evaluated (every value in) and as it is shown (Secrets as `<secret>`).
struct Judged<'a> {
    evaluated: &'a Metric,
    shown: &'a Metric,
    secrets: &'a Secrets,
}

impl Judged<'_> {
    /// What the provider's answer comes to for the metric, in words that name the metric as shown.
    fn outcome(&self, measured: Result<Measured, ProviderError>, what: String) -> (Outcome, Option<f64>) {
        let r = match measured {
            Err(e) => return (Outcome::Error(e.to_string()), None),
            Ok(Measured::Value(r)) if r.is_no_data() => return (Outcome::NoData { what }, None),
            Ok(Measured::Value(r)) => r,
            Ok(Measured::Verdict { phase, message }) => {
                return (
                    Outcome::Judged {
                        value: None,
                        phase,
                        reason: message,
                    },
                    None,
                );
            }
            Ok(Measured::InProgress { message, metadata }) => {
                return (Outcome::InProgress { message, metadata }, None);
            }
        };
        let number = match &r {
            QueryResult::Scalar(v) => Some(*v),
            QueryResult::Json(serde_json::Value::Number(n)) => n.as_f64(),
            _ => None,
        };
        match verdict(self.evaluated, &r) {
            Ok((phase, why)) => (
                Outcome::Judged {
                    // Redacted whole before it is cut to length, so no part of a Secret is left.
                    value: Some(r.display_with(&|t| self.secrets.redact(t))),
                    phase,
                    reason: why.describe(self.shown),
                },
                number,
            ),
            Err(e) => (Outcome::Error(e.shown_as(self.evaluated, self.shown).to_string()), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_every_form_they_take() {
        let mut s = Secrets::default();
        s.keep("p@ss w\"rd/+=");
        for text in [
            "p@ss w\"rd/+=".to_string(),
            format!("{:?}", "p@ss w\"rd/+="),
            crate::analysis::args::escape_label_value("p@ss w\"rd/+="),
            format!("{:?}", crate::analysis::args::escape_label_value("p@ss w\"rd/+=")),
            "p%40ss%20w%22rd%2F%2B%3D".to_string(),
            "p%40ss+w%22rd%2F%2B%3D".to_string(),
            serde_json::to_string("p@ss w\"rd/+=").unwrap_or_default(),
        ] {
            let out = s.redact(format!("before {text} after"));
            assert!(
                !out.contains("ss w") && !out.contains("ss%20w") && !out.contains("ss+w"),
                "{out}"
            );
            assert!(out.contains(SHOWN_SECRET), "{out}");
        }
    }
}
