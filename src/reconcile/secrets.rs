//! Values kept in Secrets: credentials and webhook URLs, read when needed and never logged.

use crate::crd::analysis::SecretKeyRef;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

/// The text under a key of a Secret, or what is wrong in words that name the Secret but not its value.
pub async fn secret_value(api: &Api<Secret>, r: &SecretKeyRef) -> Result<String, String> {
    let secret = api
        .get_opt(&r.name)
        .await
        .map_err(|e| format!("reading Secret {}: {e}", r.name))?;
    let secret = secret.ok_or_else(|| format!("Secret {} not found", r.name))?;
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
