//! LIME (Ribeiro et al. 2016) as `lime_image.LimeImageExplainer` does it: superpixels (quickshift
//! 4/200/0.2), samples switching superpixels on/off uniformly at random (the first sample all on), hidden
//! superpixels filled with their mean, cosine distance to the all-on sample, kernel
//! `sqrt(exp(−d²/0.25²))`, weighted ridge (α = 1, intercept) on the target score. The map gives each
//! pixel its superpixel's weight (signed; [`super::perturb::positive_only`] for lime's positive map).
//!
//! Speed: a 1,000-sample LIME costs 1,000 forwards, which no kernel tuning removes; the only way to be
//! much faster at equal quality is to need fewer samples. With `adaptive` (the default):
//! - samples come in complementary pairs (`z`, `1 − z`; the first sample all on). Each sample is still
//!   uniform over the on/off patterns, as lime's, so the surrogate estimates the same weights; the pairs
//!   balance every superpixel's on/off count and cancel the intercept's noise, which lowers the
//!   variance of the weights (antithetic sampling, as KernelSHAP's paired sampling);
//! - every `round` samples (rounded up to whole batches) from `min_samples` (and 3 per superpixel) on,
//!   the surrogate is refitted and the precision of its weights estimated by a wild bootstrap: the
//!   weighted residuals get random signs (Rademacher) and are refitted 24 times, and the mean Spearman
//!   correlation between the weights and these replicates predicts how well a fresh sample set would
//!   reproduce the weights' ranking. Sampling stops when that is ≥ `tolerance` (0.95) at two checks in
//!   a row. `params.samples` (default 1,000) is the cap.
//!
//! The bootstrap draws from its own seeded stream: the same seed gives the same samples, the same stop
//! and the same map, bit for bit. [`Lime::fixed`] draws all the samples independently, as lime does.
//! `tests/xai_perturb.rs` checks the adaptive map against the 1,000-sample one (Spearman of the
//! superpixel weights, top-k IoU) next to the agreement of two 1,000-sample runs with different seeds.
//!
//! Explained value: the target score (a logit), where lime explains the classifier's probability.

pub use super::perturb::positive_only;
use super::perturb::{solve_spd, spearman, superpixel_map, Counter, Engine, Fill, SplitMix64};
use super::superpixels::Segmentation;
use super::{ExplainInput, Explainer, Extras, Heatmap, Params, Progress, XaiError};

#[derive(Debug, Clone, PartialEq)]
pub struct Lime {
    pub segmentation: Segmentation,
    pub fill: Fill,
    pub kernel_width: f64,
    /// Stop sampling once the weights are precise enough (see the module docs); false: lime's fixed
    /// count.
    pub adaptive: bool,
    /// Adaptive: samples between checks (rounded up to whole batches).
    pub round: usize,
    /// Adaptive: the bootstrap-predicted rank agreement at which sampling stops.
    pub tolerance: f64,
    /// Adaptive: no stop before this many samples (nor before 3 per superpixel).
    pub min_samples: usize,
    /// Draw samples in complementary pairs (adaptive runs; lime draws them independently).
    pub paired: bool,
}

impl Default for Lime {
    fn default() -> Self {
        Lime {
            segmentation: Segmentation::default(),
            fill: Fill::SuperpixelMean,
            kernel_width: 0.25,
            adaptive: true,
            round: 32,
            tolerance: 0.95,
            min_samples: 96,
            paired: true,
        }
    }
}

impl Lime {
    /// lime's behaviour: every one of `params.samples` samples.
    pub fn fixed() -> Self {
        Lime { adaptive: false, paired: false, ..Lime::default() }
    }
}

/// The surrogate: weights per feature, intercept and weighted R².
#[derive(Debug, Clone)]
pub struct RidgeFit {
    pub coef: Vec<f64>,
    pub intercept: f64,
    pub r2: f64,
}

/// sklearn's `Ridge(alpha, fit_intercept=True).fit(x, y, sample_weight)` and its `score` (weighted R²):
/// centre by the weighted means, solve `(XcᵀWXc + αI)β = XcᵀW yc`.
pub fn weighted_ridge(x: &[bool], m: usize, y: &[f64], sw: &[f64], alpha: f64) -> RidgeFit {
    let n = y.len();
    let wsum: f64 = sw.iter().sum::<f64>().max(1e-300);
    let mut xm = vec![0.0; m];
    for i in 0..n {
        for j in 0..m {
            if x[i * m + j] {
                xm[j] += sw[i];
            }
        }
    }
    xm.iter_mut().for_each(|v| *v /= wsum);
    let ym = (0..n).map(|i| sw[i] * y[i]).sum::<f64>() / wsum;
    let mut a = vec![0.0; m * m];
    let mut b = vec![0.0; m];
    let mut xc = vec![0.0; m];
    for i in 0..n {
        for j in 0..m {
            xc[j] = x[i * m + j] as u8 as f64 - xm[j];
        }
        let (wi, yc) = (sw[i], y[i] - ym);
        for j in 0..m {
            let wj = wi * xc[j];
            b[j] += wj * yc;
            for k in 0..=j {
                a[j * m + k] += wj * xc[k];
            }
        }
    }
    for j in 0..m {
        for k in 0..j {
            a[k * m + j] = a[j * m + k];
        }
        a[j * m + j] += alpha;
    }
    let coef = solve_spd(&a, &b, m);
    let intercept = ym - coef.iter().zip(&xm).map(|(c, x)| c * x).sum::<f64>();
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for i in 0..n {
        let pred = intercept + (0..m).filter(|&j| x[i * m + j]).map(|j| coef[j]).sum::<f64>();
        ss_res += sw[i] * (y[i] - pred).powi(2);
        ss_tot += sw[i] * (y[i] - ym).powi(2);
    }
    let r2 = if ss_tot > 0.0 { 1.0 - ss_res / ss_tot } else { 1.0 };
    RidgeFit { coef, intercept, r2 }
}

/// The mean Spearman correlation between `fit.coef` and `draws` wild-bootstrap replicates of the
/// weighted ridge fit: `β* = β + A⁻¹ Xcᵀ W (g ⊙ r)` with residuals `r`, random signs `g` and
/// `A = XcᵀWXc + αI` — how firmly the samples so far pin down the weights' ranking.
#[allow(clippy::too_many_arguments)]
pub fn bootstrap_agreement(
    x: &[bool],
    m: usize,
    y: &[f64],
    sw: &[f64],
    fit: &RidgeFit,
    alpha: f64,
    draws: usize,
    rng: &mut SplitMix64,
) -> f64 {
    let n = y.len();
    if m < 2 || n == 0 || draws == 0 {
        return 1.0;
    }
    let wsum: f64 = sw.iter().sum::<f64>().max(1e-300);
    let mut xm = vec![0.0; m];
    for i in 0..n {
        for j in 0..m {
            if x[i * m + j] {
                xm[j] += sw[i];
            }
        }
    }
    xm.iter_mut().for_each(|v| *v /= wsum);
    let mut a = vec![0.0; m * m];
    // Per sample: w_i·r_i (the weighted residual) and the centred row.
    let mut wr = vec![0.0; n];
    for i in 0..n {
        let row = &x[i * m..(i + 1) * m];
        let pred = fit.intercept + (0..m).filter(|&j| row[j]).map(|j| fit.coef[j]).sum::<f64>();
        wr[i] = sw[i] * (y[i] - pred);
        for j in 0..m {
            let xj = row[j] as u8 as f64 - xm[j];
            for k in 0..=j {
                a[j * m + k] += sw[i] * xj * (row[k] as u8 as f64 - xm[k]);
            }
        }
    }
    for j in 0..m {
        for k in 0..j {
            a[k * m + j] = a[j * m + k];
        }
        a[j * m + j] += alpha;
    }
    let mut total = 0.0;
    let mut v = vec![0.0; m];
    for _ in 0..draws {
        v.iter_mut().for_each(|e| *e = 0.0);
        for i in 0..n {
            let g = if rng.next_u64() >> 63 == 1 { wr[i] } else { -wr[i] };
            for j in 0..m {
                v[j] += g * (x[i * m + j] as u8 as f64 - xm[j]);
            }
        }
        let delta = solve_spd(&a, &v, m);
        let replicate: Vec<f64> = fit.coef.iter().zip(&delta).map(|(c, d)| c + d).collect();
        total += spearman(&fit.coef, &replicate);
    }
    total / draws as f64
}

impl Lime {
    /// The explanation and the number of samples used.
    pub fn explain_counted(
        &self,
        input: &ExplainInput,
        params: &Params,
        progress: Progress,
    ) -> Result<(Heatmap, usize), XaiError> {
        let (_, _, h, w) = input.input.dims4()?;
        if input.grey.len() != h * w {
            return Err(XaiError::BadParams(format!(
                "grey image has {} pixels, the input {h}×{w}",
                input.grey.len()
            )));
        }
        let (labels, m) = params.segmentation.as_ref().unwrap_or(&self.segmentation).labels(input.grey, h, w);
        let engine = Engine::new(input, Some(&labels), &self.fill)?;
        let cap = params.samples.unwrap_or(1000).max(2);
        let mut rng = SplitMix64::new(params.seed);
        let mut boot_rng = SplitMix64::new(params.seed ^ 0x5EED_B007_5EED_B007);
        let mut z: Vec<bool> = Vec::with_capacity(cap * m);
        let mut y: Vec<f64> = Vec::with_capacity(cap);
        let mut counter = Counter { done: 0, total: cap, progress };
        // Rounds are whole batches: a ragged last batch in every round would waste forwards.
        let b = params.batch.max(1);
        let round = if self.adaptive { self.round.max(1).div_ceil(b) * b } else { cap };
        let min_samples = self.min_samples.max(3 * m).min(cap);
        let mut settled = 0usize;
        let mut fit;
        loop {
            let start = y.len();
            let n = round.min(cap - start);
            for i in start..start + n {
                if i == 0 {
                    z.extend(std::iter::repeat_n(true, m));
                } else if self.paired && i % 2 == 0 {
                    // The complement of the previous sample.
                    for j in 0..m {
                        let v = !z[(i - 1) * m + j];
                        z.push(v);
                    }
                } else {
                    for _ in 0..m {
                        z.push(rng.next_u64() >> 63 == 1);
                    }
                }
            }
            let s = engine.score_superpixel_masks(
                &labels,
                &z[start * m..],
                m,
                params.batch,
                Some(&mut counter),
            )?;
            y.extend(s.iter().map(|&v| v as f64));
            let weights: Vec<f64> = (0..y.len())
                .map(|i| {
                    let on = z[i * m..(i + 1) * m].iter().filter(|&&b| b).count() as f64;
                    let d = if on == 0.0 { 1.0 } else { 1.0 - (on / m as f64).sqrt() };
                    (-(d * d) / (self.kernel_width * self.kernel_width)).exp().sqrt()
                })
                .collect();
            fit = weighted_ridge(&z, m, &y, &weights, 1.0);
            if y.len() >= cap {
                break;
            }
            if self.adaptive && y.len() >= min_samples {
                let agreement = bootstrap_agreement(&z, m, &y, &weights, &fit, 1.0, 24, &mut boot_rng);
                settled = if agreement >= self.tolerance { settled + 1 } else { 0 };
                if settled >= 2 {
                    break;
                }
            }
        }
        let used = y.len();
        let map = Heatmap {
            values: superpixel_map(&labels, &fit.coef),
            height: h,
            width: w,
            extras: Extras {
                superpixel_weights: Some(fit.coef.iter().map(|&v| v as f32).collect()),
                surrogate_r2: Some(fit.r2 as f32),
                superpixels: Some(labels),
                samples_used: Some(used),
                ..Extras::default()
            },
        };
        Ok((map, used))
    }
}

impl Explainer for Lime {
    fn name(&self) -> &'static str {
        "lime"
    }
    fn stochastic(&self) -> bool {
        true
    }
    fn explain(
        &self,
        input: &ExplainInput,
        params: &Params,
        progress: Progress,
    ) -> Result<Heatmap, XaiError> {
        self.explain_counted(input, params, progress).map(|r| r.0)
    }
}
