//! A Kayenta-style judge, as Argo Rollouts users get it through its Kayenta provider: each metric's
//! per-interval values of the canary against stable's, classified by a Mann-Whitney test (the
//! Hodges-Lehmann shift and its confidence interval at 98%, a tolerance of 25% of the shift, and the
//! canary's mean at least stable's), and the share of metrics that pass as the score: 95 or more
//! passes, under 75 fails, in between is inconclusive (Kayenta's defaults).

use statrs::distribution::{ContinuousCDF, Normal};

pub const CONFIDENCE: f64 = 0.98;
const TOLERANCE: f64 = 0.25;
pub const PASS: f64 = 95.0;
pub const MARGINAL: f64 = 75.0;

/// The Hodges-Lehmann shift of `x` over `y` (the median of all differences) and its confidence
/// interval at `confidence`: order statistics of the differences, their rank from the normal
/// approximation of the Mann-Whitney statistic. `(estimate, low, high)`.
pub fn shift(x: &[f64], y: &[f64], confidence: f64) -> Option<(f64, f64, f64)> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let mut d: Vec<f64> = x.iter().flat_map(|a| y.iter().map(move |b| a - b)).collect();
    d.sort_by(f64::total_cmp);
    let count = d.len();
    let median = if count % 2 == 1 {
        d[count / 2]
    } else {
        (d[count / 2 - 1] + d[count / 2]) / 2.0
    };
    let (m, n) = (x.len() as f64, y.len() as f64);
    let z = Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    let c = m * n / 2.0 - z * (m * n * (m + n + 1.0) / 12.0).sqrt();
    let k = (c.floor().max(0.0) as usize).min(count - 1);
    Some((median, d[k], d[count - 1 - k]))
}

/// Whether a metric's canary values are high against stable's (only an increase fails: errors
/// and slow requests).
pub fn high(canary: &[f64], stable: &[f64]) -> bool {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut a = canary.to_vec();
    let mut b = stable.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    if a == b {
        return false;
    }
    let Some((estimate, low, _)) = shift(canary, stable, CONFIDENCE) else {
        return false;
    };
    let deviation = if mean(stable) == 0.0 {
        1.0
    } else {
        mean(canary) / mean(stable)
    };
    low > TOLERANCE * estimate.abs() && deviation >= 1.0
}

/// The score of metrics given as (canary values, stable values): the percentage not high.
pub fn score(metrics: &[(Vec<f64>, Vec<f64>)]) -> f64 {
    let passed = metrics.iter().filter(|(c, s)| !high(c, s)).count();
    100.0 * passed as f64 / metrics.len().max(1) as f64
}

/// Worked values, checked whenever the benchmark runs (and so by `cargo test --all-targets`).
pub fn check() {
    // 3, 4, 5 over 1, 2: differences 1 2 2 3 3 4, median 2.5; with so few, the interval is all
    // of them.
    assert_eq!(shift(&[3.0, 4.0, 5.0], &[1.0, 2.0], 0.98), Some((2.5, 1.0, 4.0)));
    // 11..=20 over 1..=10: differences 1..=19, v occurring 10 - |v - 10| times, median 10.
    // c = 50 - 2.326 * sqrt(100 * 21 / 12) = 19.2: the 20th and the 81st differences, 6 and 14.
    let x: Vec<f64> = (11..=20).map(f64::from).collect();
    let y: Vec<f64> = (1..=10).map(f64::from).collect();
    assert_eq!(shift(&x, &y, 0.98), Some((10.0, 6.0, 14.0)));
    assert!(high(&x, &y));
    assert!(!high(&y, &x), "only an increase fails");
    assert!(!high(&x, &x));
    assert_eq!(score(&[(x.clone(), y.clone()), (y.clone(), y.clone())]), 50.0);
}
