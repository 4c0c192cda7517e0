//! The pod-template hash that names a version: the same template always gives the same hash.

use k8s_openapi::api::core::v1::PodTemplateSpec;

const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a over the template's JSON, spelled in the alphabet Kubernetes uses for name suffixes
/// (no vowels, so no words), at most 10 characters.
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_string(template).unwrap_or_default();
    hash_text(&json)
}

/// FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub fn hash_text(text: &str) -> String {
    let mut h = fnv1a(text.as_bytes());
    let mut out = String::new();
    for _ in 0..10 {
        out.push(ALPHABET[(h % 27) as usize] as char);
        h /= 27;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        assert_eq!(hash_text("a"), hash_text("a"));
        assert_ne!(hash_text("a"), hash_text("b"));
        assert_eq!(hash_text("a").len(), 10);
    }
}
