//! Shards: `serin controller --shard I/N` reconciles only the Rollouts whose `namespace/name`
//! hashes to I of N, with the objects that belong to them, and holds a Lease of its own
//! (`serin-controller-I`). Whose a Rollout is depends on nothing but its name and N, so every
//! process agrees without asking the others, and nothing is written to the Rollouts to say it.

use std::fmt;
use std::str::FromStr;

/// One shard of N; `0/1` is the whole cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("--shard wants I/N, the shard's index from 0 and how many there are (as 2/3), not `{0}`")]
pub struct ShardError(String);

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wrong = || ShardError(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(wrong)?;
        let index: u32 = i.trim().parse().map_err(|_| wrong())?;
        let count: u32 = n.trim().parse().map_err(|_| wrong())?;
        if count == 0 || index >= count {
            return Err(wrong());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether the Rollout `namespace/name` is this shard's.
    pub fn owns(&self, namespace: &str, name: &str) -> bool {
        self.count <= 1 || of(namespace, name, self.count) == self.index
    }

    /// The Lease its leader holds: one cluster-wide name for an unsharded controller.
    pub fn lease_name(&self) -> String {
        if self.count <= 1 {
            crate::leader::LEASE_NAME.to_string()
        } else {
            format!("{}-{}", crate::leader::LEASE_NAME, self.index)
        }
    }
}

/// The identity a shard's leader writes in its Lease: who, and which shard of how many, so that
/// the others can tell that the shards are being changed.
pub fn identity(instance: &str, shard: Shard) -> String {
    if shard.count <= 1 {
        instance.to_string()
    } else {
        format!("{instance}@{shard}")
    }
}

/// How many shards a Lease's holder runs with, read from its identity.
fn count_of(identity: &str) -> u32 {
    identity
        .rsplit_once('@')
        .and_then(|(_, s)| s.parse::<Shard>().ok())
        .map_or(1, |s| s.count)
}

/// A Lease as the peer check reads it.
pub struct Held<'a> {
    pub lease: &'a str,
    pub holder: &'a str,
    /// When it lapses unless renewed.
    pub until: Option<jiff::Timestamp>,
}

/// The holders of Serin's controller Leases that run with another shard count than `me` and
/// still hold them at `now`: while there are any, the shards are being changed and none acts.
pub fn other_counts<'a>(held: &[Held<'a>], me: Shard, now: jiff::Timestamp) -> Vec<&'a str> {
    let ours = |lease: &str| {
        lease == crate::leader::LEASE_NAME
            || lease
                .strip_prefix(crate::leader::LEASE_NAME)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
    };
    held.iter()
        .filter(|h| ours(h.lease) && !h.holder.is_empty() && h.until.is_some_and(|t| t > now))
        .filter(|h| count_of(h.holder) != me.count.max(1))
        .map(|h| h.holder)
        .collect()
}

/// The shard of `namespace/name` among `count`: FNV-1a, fixed so that every version of Serin
/// agrees (the standard library's hasher may change between releases).
pub fn of(namespace: &str, name: &str, count: u32) -> u32 {
    let h = fnv1a(namespace.bytes().chain(std::iter::once(b'/')).chain(name.bytes()));
    (h % u64::from(count.max(1))) as u32
}

fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_read_as_index_over_count() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!("0/1".parse(), Ok(Shard::default()));
        for bad in ["3/3", "1/0", "3", "a/b", "-1/2", ""] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("I/N") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn each_rollout_has_exactly_one_shard_and_they_share_the_load() {
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut load = [0; 3];
        for i in 0..3000 {
            let name = format!("app{i:05}");
            let owners: Vec<u32> = shards
                .iter()
                .filter(|s| s.owns("default", &name))
                .map(|s| s.index)
                .collect();
            assert_eq!(owners.len(), 1, "{name}: {owners:?}");
            load[owners[0] as usize] += 1;
        }
        assert!(load.iter().all(|&n| (900..1100).contains(&n)), "{load:?}");
        assert!(Shard::default().owns("any", "thing"));
    }

    #[test]
    fn the_hash_is_fixed_across_versions() {
        // FNV-1a's published test values: a change would move Rollouts between shards on an
        // upgrade.
        assert_eq!(fnv1a("a".bytes()), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar".bytes()), 0x8594_4171_f739_67e8);
        assert_eq!(of("foo", "bar", 1000), (fnv1a("foo/bar".bytes()) % 1000) as u32);
        assert_eq!(of("default", "web", 7), of("default", "web", 7));
        assert_ne!(of("default", "web", 1000), of("web", "default", 1000));
    }

    #[test]
    fn leases_held_by_another_shard_count_mean_the_shards_are_being_changed() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let later = Some(now + jiff::SignedDuration::from_secs(10));
        let earlier = Some(now - jiff::SignedDuration::from_secs(1));
        let three = Shard { index: 2, count: 3 };
        assert_eq!(identity("serin-7f9", three), "serin-7f9@2/3");
        assert_eq!(identity("serin-7f9", Shard::default()), "serin-7f9");
        let held = |lease, holder, until| Held { lease, holder, until };
        let leases = [
            held("serin-controller-0", "a@0/3", later),
            held("serin-controller-1", "b@1/2", later),
            held("serin-controller-2", "c@0/2", earlier),
            held("serin-controller", "d", later),
            held("serin-controller-3", "", later),
            held("other-controller", "e@0/2", later),
            held("serin-controller-x", "f@0/2", later),
        ];
        assert_eq!(
            other_counts(&leases, three, now),
            ["b@1/2", "d"],
            "lapsed, released and others' Leases do not count"
        );
        assert_eq!(other_counts(&leases, Shard::default(), now), ["a@0/3", "b@1/2"]);
    }

    #[test]
    fn a_shard_has_a_lease_of_its_own() {
        assert_eq!(Shard::default().lease_name(), "serin-controller");
        assert_eq!(Shard { index: 2, count: 3 }.lease_name(), "serin-controller-2");
    }
}
