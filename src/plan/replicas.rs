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

/// Pods for a weight. By Pod ratio the two sizes add up to `replicas`; with a traffic router the
/// canary is sized by the weight and the stable stays full unless `dynamic_stable`.
pub fn targets(replicas: i32, weight: i32, routed: bool, dynamic_stable: bool, canary_scale: Option<i32>) -> Targets {
    let by_weight = |w: i32| -> i32 {
        if w <= 0 {
            0
        } else if w >= 100 {
            replicas
        } else {
            // Rounded up: a canary that should get traffic gets at least one Pod.
            ((i64::from(replicas) * i64::from(w) + 99) / 100).clamp(1, i64::from(replicas.max(1))) as i32
        }
    };
    let canary = canary_scale
        .map(|c| c.clamp(0, replicas))
        .unwrap_or_else(|| by_weight(weight));
    let stable = if routed {
        if dynamic_stable {
            replicas - by_weight(weight)
        } else {
            replicas
        }
    } else {
        replicas - canary
    };
    Targets {
        canary,
        stable: stable.max(0),
    }
}

/// What each ReplicaSet has now: desired size, Pods that exist, Pods that are available.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    pub spec: i32,
    pub available: i32,
}

/// The next sizes towards the targets. Whatever is above its target shrinks first: its unavailable
/// Pods may always go, its available ones only while availability stays at `replicas − unavailable`.
/// Then whatever is below grows, within `replicas + surge` Pods. Neither passes its target.
pub fn step_towards(replicas: i32, t: Targets, canary: Sizes, stable: Sizes, surge: i32, unavailable: i32) -> Targets {
    let unavailable = if surge == 0 && unavailable == 0 { 1 } else { unavailable };
    let floor = replicas - unavailable;
    let mut available = canary.available + stable.available;
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
    let mut s = shrink(stable, t.stable);
    let mut c = shrink(canary, t.canary);
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
    fn resolves_counts_and_percents() {
        assert_eq!(resolve(Some(&IntOrString::String("25%".into())), 10, true, 25), 3);
        assert_eq!(resolve(Some(&IntOrString::String("25%".into())), 10, false, 25), 2);
        assert_eq!(resolve(Some(&IntOrString::Int(2)), 10, false, 25), 2);
        assert_eq!(resolve(None, 4, true, 25), 1);
    }

    #[test]
    fn targets_by_ratio_and_by_router() {
        assert_eq!(targets(10, 25, false, false, None), Targets { canary: 3, stable: 7 });
        assert_eq!(targets(4, 5, false, false, None), Targets { canary: 1, stable: 3 });
        assert_eq!(targets(10, 0, false, false, None), Targets { canary: 0, stable: 10 });
        assert_eq!(targets(10, 100, false, false, None), Targets { canary: 10, stable: 0 });
        assert_eq!(targets(10, 25, true, false, None), Targets { canary: 3, stable: 10 });
        assert_eq!(targets(10, 25, true, true, None), Targets { canary: 3, stable: 7 });
        assert_eq!(targets(10, 25, true, false, Some(1)), Targets { canary: 1, stable: 10 });
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
        assert_eq!(next.stable, 2, "unavailable stable Pods may go at once");
    }
}
