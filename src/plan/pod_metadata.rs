//! Labels and annotations a version's Pods carry for as long as they have a role: a canary's
//! `canaryMetadata` and `stableMetadata`, blue-green's `activeMetadata` and `previewMetadata`.
//! A version that loses its role loses them; the version keeps its Pods (no restart).

use crate::crd::rollout::{PodMetadata, RolloutSpec, RolloutStatus};
use serde_json::{Map, Value, json};

/// The annotation on a ReplicaSet that records what Serin last put on its Pods.
pub const APPLIED_ANNOTATION: &str = "serin.dev/pod-metadata";

/// What version `hash`'s Pods should carry now; `None` when the Rollout names no role metadata.
pub fn wanted(spec: &RolloutSpec, status: &RolloutStatus, hash: &str) -> Option<PodMetadata> {
    let is = |h: &Option<String>| h.as_deref() == Some(hash);
    if let Some(bg) = &spec.strategy.blue_green {
        if bg.active_metadata.is_none() && bg.preview_metadata.is_none() {
            return None;
        }
        let selectors = status.blue_green.clone().unwrap_or_default();
        return Some(if is(&selectors.active_selector) {
            bg.active_metadata.clone().unwrap_or_default()
        } else if is(&selectors.preview_selector) || (is(&status.current_pod_hash) && status.abort != Some(true)) {
            bg.preview_metadata.clone().unwrap_or_default()
        } else {
            PodMetadata::default()
        });
    }
    let canary = spec.strategy.canary.as_ref()?;
    if canary.canary_metadata.is_none() && canary.stable_metadata.is_none() {
        return None;
    }
    Some(if is(&status.stable_pod_hash) {
        canary.stable_metadata.clone().unwrap_or_default()
    } else if is(&status.current_pod_hash) && status.abort != Some(true) {
        canary.canary_metadata.clone().unwrap_or_default()
    } else {
        PodMetadata::default()
    })
}

/// The merge patch of `metadata` that takes Pods from `was` to `now`: keys set, keys gone null.
pub fn patch(was: Option<&PodMetadata>, now: &PodMetadata) -> Value {
    let part = |old: Option<&std::collections::BTreeMap<String, String>>,
                new: &std::collections::BTreeMap<String, String>| {
        let mut m = Map::new();
        for k in old
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .filter(|k| !new.contains_key(*k))
        {
            m.insert(k.clone(), Value::Null);
        }
        for (k, v) in new {
            m.insert(k.clone(), json!(v));
        }
        Value::Object(m)
    };
    json!({
        "labels": part(was.map(|w| &w.labels), &now.labels),
        "annotations": part(was.map(|w| &w.annotations), &now.annotations),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(labels: &[(&str, &str)]) -> PodMetadata {
        PodMetadata {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: Default::default(),
        }
    }

    #[test]
    fn a_patch_sets_the_new_keys_and_removes_the_old() {
        let p = patch(
            Some(&meta(&[("role", "canary"), ("canary", "yes")])),
            &meta(&[("role", "stable")]),
        );
        assert_eq!(p["labels"], json!({"role": "stable", "canary": null}));
        assert_eq!(p["annotations"], json!({}));
        assert_eq!(patch(None, &meta(&[("a", "1")]))["labels"], json!({"a": "1"}));
    }
}
