//! Summary statistics for per-image scores: mean, sample standard deviation, and a seeded 95%
//! percentile bootstrap confidence interval of the mean.
//!
//! Bootstrap ([`bootstrap_ci`]): B resamples ([`BOOTSTRAP_RESAMPLES`] = 2000 by default) of n values
//! drawn with replacement ([`SplitMix64`], so the same seed gives the same interval bit for bit); the
//! interval is the 2.5th and 97.5th percentiles of the B resample means (linear interpolation between
//! order statistics, NumPy's default). Non-finite values are dropped before any statistic.

use serde::Serialize;

use crate::imaging::SplitMix64;

/// Resamples used by [`summarize`].
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Mean, spread and bootstrap interval of some values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Finite values counted.
    pub n: usize,
    /// `None` when n = 0.
    pub mean: Option<f64>,
    /// Sample standard deviation (n − 1); `None` when n < 2.
    pub sd: Option<f64>,
    /// 95% percentile bootstrap interval of the mean; `None` when n = 0.
    pub ci95: Option<[f64; 2]>,
}

fn finite(values: &[f64]) -> Vec<f64> {
    values.iter().copied().filter(|v| v.is_finite()).collect()
}

/// Arithmetic mean of the finite values; `None` when there are none.
pub fn mean(values: &[f64]) -> Option<f64> {
    let v = finite(values);
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Sample standard deviation (denominator n − 1) of the finite values; `None` when fewer than two.
pub fn sd(values: &[f64]) -> Option<f64> {
    let v = finite(values);
    if v.len() < 2 {
        return None;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    Some((v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

/// The percentile bootstrap interval of the mean at `level` (0.95 for 95%) from `resamples` resamples
/// drawn with `seed`; `None` when there is no finite value.
pub fn bootstrap_ci(values: &[f64], resamples: usize, level: f64, seed: u64) -> Option<[f64; 2]> {
    let v = finite(values);
    if v.is_empty() {
        return None;
    }
    let b = resamples.max(1);
    let mut rng = SplitMix64::new(seed);
    let mut means: Vec<f64> =
        (0..b).map(|_| (0..v.len()).map(|_| v[rng.below(v.len())]).sum::<f64>() / v.len() as f64).collect();
    let alpha = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
    let lo = crate::metrics::percentile_linear(&mut means, 100.0 * alpha)?;
    let hi = crate::metrics::percentile_linear(&mut means, 100.0 * (1.0 - alpha))?;
    Some([lo, hi])
}

/// Mean, sd and the 95% bootstrap interval ([`BOOTSTRAP_RESAMPLES`] resamples, `seed`).
pub fn summarize(values: &[f64], seed: u64) -> Summary {
    Summary {
        n: finite(values).len(),
        mean: mean(values),
        sd: sd(values),
        ci95: bootstrap_ci(values, BOOTSTRAP_RESAMPLES, 0.95, seed),
    }
}
