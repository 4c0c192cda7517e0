//! Values kept in Secrets: credentials, arguments and webhook URLs, read when needed and never
//! logged.

use crate::crd::analysis::SecretKeyRef;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

/// The label a Secret's owner sets to let analysis read it.
pub const ANALYSIS_ACCESS_LABEL: &str = "serin.dev/analysis-access";

/// Which Secrets analysis may read. Whoever may write a Rollout or a template chooses where a
/// measurement goes, so by default only Secrets their owners opened to analysis are read: no one
/// can have Serin send a Secret they could not read themselves to an address of their choosing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretAccess {
    /// Only Secrets labelled `serin.dev/analysis-access: "true"`.
    #[default]
    Labelled,
    /// Any Secret in the Rollout's namespace.
    Any,
}

/// The text under a key of a Secret, or what is wrong in words that name the Secret but not its value.
pub async fn secret_value(api: &Api<Secret>, r: &SecretKeyRef) -> Result<String, String> {
    let secret = read(api, r).await?;
    value_of(&secret, r)
}

/// The same for analysis: the Secret must be open to it unless `access` is `Any`.
pub async fn analysis_secret_value(
    api: &Api<Secret>,
    r: &SecretKeyRef,
    access: SecretAccess,
) -> Result<String, String> {
    let secret = read(api, r).await?;
    let open = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ANALYSIS_ACCESS_LABEL))
        .is_some_and(|v| v == "true");
    if access == SecretAccess::Labelled && !open {
        return Err(format!(
            "Secret {} is not open to analysis: its owner labels it with `kubectl label secret {} {ANALYSIS_ACCESS_LABEL}=true` (or the controller runs with --secret-access=any)",
            r.name, r.name
        ));
    }
    value_of(&secret, r)
}

async fn read(api: &Api<Secret>, r: &SecretKeyRef) -> Result<Secret, String> {
    let secret = api
        .get_opt(&r.name)
        .await
        .map_err(|e| format!("reading Secret {}: {e}", r.name))?;
    secret.ok_or_else(|| format!("Secret {} not found", r.name))
}

fn value_of(secret: &Secret, r: &SecretKeyRef) -> Result<String, String> {
    let bytes = secret.data.as_ref().and_then(|d| d.get(&r.key)).map(|b| b.0.clone());
    let bytes = bytes.or_else(|| {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|s| s.as_bytes().to_vec())
    });
    let bytes = bytes.ok_or_else(|| format!("Secret {} has no key {}", r.name, r.key))?;
    String::from_utf8(bytes).map_err(|_| format!("Secret {} key {} is not text", r.name, r.key))
}
