//! The set of served resources: built-in kinds plus those registered by CRDs.

use super::resources::{BUILTIN_GROUP_ORDER, ResourceType, StorageKey, builtin_types};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<Arc<ResourceType>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            types: builtin_types().into_iter().map(Arc::new).collect(),
        }
    }
}

impl Registry {
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The type objects of this storage key are stored as.
    pub fn storage_type(&self, key: &StorageKey) -> Option<Arc<ResourceType>> {
        // Events of events.k8s.io are stored as core events.
        self.types
            .iter()
            .find(|t| t.storage_key() == *key && t.version == t.storage_version && t.group != "events.k8s.io")
            .cloned()
    }

    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
            .cloned()
    }

    pub fn all(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// Groups with their versions, in discovery order (built-in groups first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out.sort_by_key(|(g, _)| BUILTIN_GROUP_ORDER.iter().position(|b| b == g).unwrap_or(usize::MAX));
        out
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .cloned()
            .collect()
    }

    /// Replaces the kinds a CRD serves.
    pub fn set_crd(&mut self, crd: &str, types: Vec<ResourceType>) {
        self.types.retain(|t| t.crd.as_deref() != Some(crd));
        self.types.extend(types.into_iter().map(Arc::new));
    }

    pub fn remove_crd(&mut self, crd: &str) {
        self.types.retain(|t| t.crd.as_deref() != Some(crd));
    }
}
