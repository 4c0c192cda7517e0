//! From a traffic weight to ReplicaSet sizes, moving no faster than `maxSurge` and
//! `maxUnavailable` allow, and never past the step's targets.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Resolves a count-or-percent against `total`; percentages round up for surge, down otherwise.
pub fn resolve(v: Option<&IntOrString>, total: i32, round_up: bool, default_percent: i32) -> i32 {
    let percent = |p: i32| {
        let exact = f64::from(total) * f64::from(p) / 100.0;
        (if round_up { exact.ceil() } else { exact.floor() }) as i32
    };
    match v {
        Some(IntOrString::Int(n)) => (*n).max(0),
        Some(IntOrString::String(s)) => s
            .trim_end_matches('%')
            .parse::<i32>()
            .map(|p| percent(p.max(0)))
            .unwrap_or_else(|_| percent(default_percent)),
        None => percent(default_percent),
    }
}

/// Canary and stable Pods a step aims for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub canary: i32,
    pub stable: i32,
}

/// Pods of `replicas` a version with `weight` percent of the traffic needs, rounded up: a
/// version that gets traffic gets at least one Pod.
pub fn for_weight(replicas: i32, weight: i32) -> i32 {
    if weight <= 0 {
        0
    } else if weight >= 100 {
        replicas
    } else {
        ((i64::from(replicas) * i64::from(weight) + 99) / 100).clamp(1, i64::from(replicas.max(1))) as i32
    }
}

/// Pods for a weight. By Pod ratio the canary's share of the Pods comes as close to the weight as
/// `replicas` (or one more, when `surge` allows) can, as Argo Rollouts sizes it; with a traffic
/// router the canary is sized by the weight and the stable stays full unless `dynamic_stable`.
pub fn targets(
    replicas: i32,
    weight: i32,
    surge: i32,
    routed: bool,
    dynamic_stable: bool,
    canary_scale: Option<i32>,
) -> Targets {
    if !routed && canary_scale.is_none() {
        return by_pod_ratio(replicas, weight, surge);
    }
    let by_weight = |w: i32| for_weight(replicas, w);
    let canary = canary_scale
        .map(|c| c.clamp(0, replicas))
        .unwrap_or_else(|| by_weight(weight));
    let stable = if !routed {
        replicas - canary
    } else if dynamic_stable {
        replicas - by_weight(weight)
    } else {
        replicas
    };
    Targets {
        canary,
        stable: stable.max(0),
    }
}

/// Without a router the Pods are the traffic split. Between 1% and 99% neither version drops to
/// no Pods (a single replica surges a canary beside its stable Pod rather than replace it), and
/// of the canary counts rounded down and up, over `replicas` Pods or, when `surge` allows, one
/// more, the one whose share is nearest the weight wins; the first considered wins a tie.
pub fn by_pod_ratio(replicas: i32, weight: i32, surge: i32) -> Targets {
    if replicas <= 0 {
        return Targets { canary: 0, stable: 0 };
    }
    let weight = weight.clamp(0, 100);
    let exact = i64::from(replicas) * i64::from(weight);
    let floor = (exact / 100) as i32;
    let ceil = ((exact + 99) / 100) as i32;
    let halfway = |total: i32| (i64::from(total) * i64::from(weight)) % 100 == 50;
    let zero_allowed = weight == 0 || weight == 100 || (replicas == 1 && surge == 0);
    let mut options: Vec<(i32, i32)> = Vec::with_capacity(4);
    if ceil < replicas || zero_allowed {
        options.push((ceil, replicas));
    }
    if !halfway(replicas) && (floor != 0 || zero_allowed) {
        options.push((floor, replicas));
    }
    if surge > 0 {
        options.push((ceil, replicas + 1));
        if !halfway(replicas + 1) && (floor != 0 || zero_allowed) {
            options.push((floor, replicas + 1));
        }
    }
    // |canary / total − weight|, compared without division: canary·100 − weight·total over total.
    let off = |(canary, total): (i32, i32)| {
        let gap = (i64::from(canary) * 100 - i64::from(weight) * i64::from(total)).abs();
        (gap, i64::from(total))
    };
    let nearer = |a: (i64, i64), b: (i64, i64)| a.0 * b.1 < b.0 * a.1;
    let mut best = options.first().copied().unwrap_or((0, replicas));
    for &option in options.iter().skip(1) {
        if nearer(off(option), off(best)) {
            best = option;
        }
    }
    Targets {
        canary: best.0,
        stable: best.1 - best.0,
    }
}

/// What each ReplicaSet has now: desired size, Pods that exist, Pods that are available.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    pub spec: i32,
    pub available: i32,
}

/// The next sizes towards the targets. Whatever is above its target shrinks first, only while
/// availability stays at `replicas − unavailable`: the canary's unavailable Pods may always go,
/// but moving forward the stable's count as if available (as Argo Rollouts counts them), so a
/// stable that is down, or on its way back, gives way only as new Pods become available and
/// is never traded whole for a new version that is no better. Then whatever is below grows,
/// within `replicas + surge` Pods. Neither passes its target.
pub fn step_towards(replicas: i32, t: Targets, canary: Sizes, stable: Sizes, surge: i32, unavailable: i32) -> Targets {
    // A ReplicaSet's status lags its spec: Pods beyond a size just lowered are still counted
    // available, but the ReplicaSet controller is deleting them and they must not be counted
    // on to keep availability up (at most `spec` of its Pods stay).
    let staying = |s: Sizes| Sizes {
        available: s.available.min(s.spec),
        ..s
    };
    let (canary, stable) = (staying(canary), staying(stable));
    let unavailable = if surge == 0 && unavailable == 0 { 1 } else { unavailable };
    let floor = replicas - unavailable;
    let forward = t.canary >= canary.spec;
    let stable_counted = if forward {
        Sizes {
            available: stable.spec,
            ..stable
        }
    } else {
        stable
    };
    let mut available = canary.available + stable_counted.available;
    let mut shrink = |now: Sizes, target: i32| -> i32 {
        if now.spec <= target {
            return now.spec;
        }
        let idle = (now.spec - now.available).max(0);
        let spare = (available - floor).max(0);
        let next = target.max(now.spec - idle - spare);
        available -= (now.spec - next - idle).max(0);
        next
    };
    let mut s = shrink(stable_counted, t.stable);
    let mut c = shrink(canary, t.canary);
    // Still past `replicas + surge` (the Rollout was scaled down mid-update): Pods that serve
    // nothing go too, the canary's first, as Argo Rollouts trims the new ReplicaSet.
    let limit = replicas + surge;
    let trim = |now: i32, available: i32, total: i32| now - (total - limit).max(0).min((now - available).max(0));
    c = trim(c, canary.available, c + s);
    s = trim(s, stable.available, c + s);
    let room = |c: i32, s: i32| (replicas + surge - c - s).max(0);
    if c < t.canary {
        c = t.canary.min(c + room(c, s));
    }
    if s < t.stable {
        s = t.stable.min(s + room(c, s));
    }
    Targets {
        canary: c.max(0),
        stable: s.max(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_still_counted_beyond_a_lowered_size_do_not_pay_for_the_next_step() {
        // maxUnavailable 0: stable was just lowered to 9 while its status still counts 10
        // available; the canary's second Pod is not ready. Nothing more may go yet.
        let next = step_towards(
            10,
            Targets { canary: 10, stable: 0 },
            Sizes { spec: 2, available: 1 },
            Sizes { spec: 9, available: 10 },
            1,
            0,
        );
        assert_eq!(next, Targets { canary: 2, stable: 9 });
        // Once the canary's second Pod is available, one more stable Pod may go.
        let next = step_towards(
            10,
            Targets { canary: 10, stable: 0 },
            Sizes { spec: 2, available: 2 },
            Sizes { spec: 9, available: 10 },
            1,
            0,
        );
        assert_eq!(next, Targets { canary: 3, stable: 8 });
    }

    #[test]
    fn resolves_counts_and_percents() {
        assert_eq!(resolve(Some(&IntOrString::String("25%".into())), 10, true, 25), 3);
        assert_eq!(resolve(Some(&IntOrString::String("25%".into())), 10, false, 25), 2);
        assert_eq!(resolve(Some(&IntOrString::Int(2)), 10, false, 25), 2);
        assert_eq!(resolve(None, 4, true, 25), 1);
    }

    #[test]
    fn targets_by_ratio_and_by_router() {
        assert_eq!(targets(10, 25, 0, false, false, None), Targets { canary: 3, stable: 7 });
        assert_eq!(targets(4, 5, 0, false, false, None), Targets { canary: 1, stable: 3 });
        assert_eq!(targets(10, 0, 3, false, false, None), Targets { canary: 0, stable: 10 });
        assert_eq!(
            targets(10, 100, 3, false, false, None),
            Targets { canary: 10, stable: 0 }
        );
        assert_eq!(targets(10, 25, 3, true, false, None), Targets { canary: 3, stable: 10 });
        assert_eq!(targets(10, 25, 3, true, true, None), Targets { canary: 3, stable: 7 });
        assert_eq!(
            targets(10, 25, 3, true, false, Some(1)),
            Targets { canary: 1, stable: 10 }
        );
    }

    #[test]
    fn pod_ratio_keeps_both_versions_and_comes_nearest_the_weight() {
        let t = |canary, stable| Targets { canary, stable };
        // One replica at 25%: the stable Pod stays and a canary surges beside it (50% by Pods);
        // without surge the nearest is the stable alone (0%), for a canary of one would be 100%.
        assert_eq!(by_pod_ratio(1, 25, 1), t(1, 1));
        assert_eq!(by_pod_ratio(1, 25, 0), t(0, 1));
        // 3 at 20%: 1 of 3 is 33%, 0 of 3 is not allowed, 1 of 4 is 25% — nearest.
        assert_eq!(by_pod_ratio(3, 20, 1), t(1, 3));
        assert_eq!(by_pod_ratio(3, 20, 0), t(1, 2));
        // 10 at 25%: 3 of 10 (30%), 2 of 10 (20%), 3 of 11 (27.3%) — nearest.
        assert_eq!(by_pod_ratio(10, 25, 3), t(3, 8));
        // 4 at 5%: 1 of 4 (25%), 1 of 5 (20%) — nearest.
        assert_eq!(by_pod_ratio(4, 5, 1), t(1, 4));
        // 3 at 50%: 2 of 3 and 1 of 3 tie at 1.5, so the larger; 2 of 4 is exactly 50%.
        assert_eq!(by_pod_ratio(3, 50, 1), t(2, 2));
        assert_eq!(by_pod_ratio(3, 50, 0), t(2, 1));
        // The ends of the range and no replicas at all.
        assert_eq!(by_pod_ratio(5, 0, 1), t(0, 5));
        assert_eq!(by_pod_ratio(5, 100, 1), t(5, 0));
        assert_eq!(by_pod_ratio(0, 50, 1), t(0, 0));
        // Many replicas: the split is the weight's exactly.
        assert_eq!(by_pod_ratio(20, 25, 5), t(5, 15));
    }

    #[test]
    fn scaled_down_mid_update_it_trims_what_serves_nothing_back_within_surge() {
        // 8 replicas with maxSurge 2: 6 crashing canary Pods beside 4 stable ones. Scaled to 4, the
        // limit is 6: the canary keeps 2, the stable (all available, maxUnavailable 0) keeps 4.
        let next = step_towards(
            4,
            Targets { canary: 4, stable: 0 },
            Sizes { spec: 6, available: 0 },
            Sizes { spec: 4, available: 4 },
            2,
            0,
        );
        assert_eq!(next, Targets { canary: 2, stable: 4 });
        // With the stable's Pods unavailable they may go to the limit too, and available ones
        // stay: 3 available canary Pods and 4 stable ones of which 1 is available, limit 6.
        let next = step_towards(
            4,
            Targets { canary: 4, stable: 0 },
            Sizes { spec: 3, available: 3 },
            Sizes { spec: 4, available: 1 },
            2,
            0,
        );
        assert_eq!(next, Targets { canary: 4, stable: 1 });
    }

    #[test]
    fn moves_within_surge_and_availability() {
        let t = Targets { canary: 2, stable: 2 };
        // 4 stable available, no canary yet: one stable Pod may go (maxUnavailable 1), and the
        // surge of 1 lets two canary Pods in.
        let next = step_towards(
            4,
            t,
            Sizes { spec: 0, available: 0 },
            Sizes { spec: 4, available: 4 },
            1,
            1,
        );
        assert_eq!(next, Targets { canary: 2, stable: 3 });
        // With the canary Pods available the stable goes down to its target.
        let next = step_towards(
            4,
            t,
            Sizes { spec: 2, available: 2 },
            Sizes { spec: 3, available: 3 },
            1,
            1,
        );
        assert_eq!(next, Targets { canary: 2, stable: 2 });
        // Going down in weight, the canary waits for the stable to be available again.
        let down = Targets { canary: 1, stable: 3 };
        let next = step_towards(
            4,
            down,
            Sizes { spec: 2, available: 2 },
            Sizes { spec: 2, available: 2 },
            0,
            1,
        );
        assert_eq!(
            next,
            Targets { canary: 1, stable: 3 },
            "one canary Pod may go (maxUnavailable 1), making room"
        );
        let next = step_towards(
            4,
            down,
            Sizes { spec: 2, available: 2 },
            Sizes { spec: 2, available: 2 },
            0,
            0,
        );
        assert_eq!(next.canary + next.stable, 4);
    }

    #[test]
    fn a_broken_stable_does_not_hold_the_canary_back() {
        let t = Targets { canary: 2, stable: 2 };
        let next = step_towards(
            4,
            t,
            Sizes { spec: 2, available: 2 },
            Sizes { spec: 4, available: 0 },
            1,
            1,
        );
        assert_eq!(next.stable, 2, "available canary Pods pay for the stable's");
    }

    #[test]
    fn a_crashing_stable_is_not_traded_whole_for_a_crashing_canary() {
        // 4 stable Pods that never became available, a new version whose surge Pod crashes too
        // (maxSurge 1, maxUnavailable 0): the stable keeps its Pods.
        let next = step_towards(
            4,
            Targets { canary: 4, stable: 0 },
            Sizes { spec: 1, available: 0 },
            Sizes { spec: 4, available: 0 },
            1,
            0,
        );
        assert_eq!(next, Targets { canary: 1, stable: 4 });
        // Each available canary Pod lets one stable Pod go.
        let next = step_towards(
            4,
            Targets { canary: 4, stable: 0 },
            Sizes { spec: 1, available: 1 },
            Sizes { spec: 4, available: 0 },
            1,
            0,
        );
        assert_eq!(next, Targets { canary: 2, stable: 3 });
    }
}
