//! Serin's custom resource definitions and their YAML.

pub mod analysis;
pub mod hooks;
pub mod rollout;
pub mod template;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD Serin serves, in the order they are printed and installed.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        rollout::Rollout::crd(),
        analysis::AnalysisTemplate::crd(),
        analysis::ClusterAnalysisTemplate::crd(),
        analysis::AnalysisRun::crd(),
    ]
}

/// A CEL rule that exactly one of `fields` is set, with `message` when not. Written as a sum of
/// constants, not a filter over a list: kube-apiserver refuses a CRD whose rules it estimates too
/// costly, and inside arrays a comprehension's cost is multiplied by every item the array could hold.
pub fn exactly_one_of(fields: &[&str], message: &str) -> kube::core::Rule {
    let terms: Vec<String> = fields.iter().map(|f| format!("(has(self.{f}) ? 1 : 0)")).collect();
    kube::core::Rule::new(format!("{} == 1", terms.join(" + "))).message(message)
}

/// A CEL rule: at least one of `fields` is set.
pub fn at_least_one_of(fields: &[&str], message: &str) -> kube::core::Rule {
    let terms: Vec<String> = fields.iter().map(|f| format!("has(self.{f})")).collect();
    kube::core::Rule::new(terms.join(" || ")).message(message)
}

/// The file name a CRD is kept under in `crds/`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// One CRD as a YAML document.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(crd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `crds/` and the chart's `crds/` hold exactly what `serin crds --write DIR` produces.
    #[test]
    fn checked_in_crds_are_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (dir, crd) in ["crds", "charts/serin/crds"]
            .iter()
            .flat_map(|d| all().into_iter().map(move |c| (root.join(d), c)))
        {
            let path = dir.join(file_name(&crd));
            let want = to_yaml(&crd).unwrap();
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(have == want, "{} is stale: run `make manifests`", path.display());
        }
    }
}
