//! LIME (Ribeiro et al. 2016) as `lime_image.LimeImageExplainer` does it: superpixels (quickshift
//! 4/200/0.2), samples switching superpixels on/off uniformly at random (the first sample all on), hidden
//! superpixels filled with their mean, cosine distance to the all-on sample, kernel
//! `sqrt(exp(−d²/0.25²))`, weighted ridge (α = 1, intercept) on the target score. The map gives each
//! pixel its superpixel's weight (signed; [`super::perturb::positive_only`] for lime's positive map).
//!
//! Speed: a 1,000-sample LIME costs 1,000 forwards, which no kernel tuning removes. With `adaptive`
//! (the default) samples are drawn in rounds of `round` (100); after each round from 200 samples on the
//! surrogate is refitted and sampling stops once the Spearman correlation of the superpixel weights
//! with the previous round's has stayed ≥ `tolerance` (0.99) for two rounds in a row. The samples are
//! the same stream as the fixed run's, so an adaptive map is the fixed map fitted on a prefix.
//! `params.samples` (default 1,000) is the cap; [`Lime::fixed`] always draws all of them.
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
    pub adaptive: bool,
    pub round: usize,
    pub tolerance: f64,
    pub min_samples: usize,
}

impl Default for Lime {
    fn default() -> Self {
        Lime {
            segmentation: Segmentation::default(),
            fill: Fill::SuperpixelMean,
            kernel_width: 0.25,
            adaptive: true,
            round: 100,
            tolerance: 0.99,
            min_samples: 200,
        }
    }
}

impl Lime {
    /// lime's behaviour: every one of `params.samples` samples.
    pub fn fixed() -> Self {
        Lime { adaptive: false, ..Lime::default() }
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
        let (labels, m) = self.segmentation.labels(input.grey, h, w);
        let engine = Engine::new(input, Some(&labels), &self.fill)?;
        let cap = params.samples.unwrap_or(1000).max(2);
        let mut rng = SplitMix64::new(params.seed);
        // Rows drawn lazily from one stream so that an adaptive run is a prefix of the fixed one.
        let mut z: Vec<bool> = Vec::with_capacity(cap * m);
        let mut y: Vec<f64> = Vec::with_capacity(cap);
        let mut counter = Counter { done: 0, total: cap, progress };
        // Rounds are whole batches: a ragged last batch in every round would waste forwards.
        let b = params.batch.max(1);
        let round = if self.adaptive { self.round.max(1).div_ceil(b) * b } else { cap };
        let (mut prev, mut settled) = (None::<Vec<f64>>, 0usize);
        let mut fit;
        loop {
            let start = y.len();
            let n = round.min(cap - start);
            for i in start..start + n {
                for _ in 0..m {
                    z.push(if i == 0 { true } else { rng.next_u64() >> 63 == 1 });
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
            if self.adaptive && y.len() >= self.min_samples.min(cap) {
                if let Some(p) = &prev {
                    if spearman(p, &fit.coef) >= self.tolerance {
                        settled += 1;
                    } else {
                        settled = 0;
                    }
                }
                if settled >= 2 {
                    break;
                }
            }
            prev = Some(fit.coef.clone());
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
