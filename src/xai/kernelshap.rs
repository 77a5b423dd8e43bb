//! KernelSHAP (Lundberg & Lee 2017) over superpixels, as shap's `KernelExplainer`: players are the
//! superpixels (quickshift as LIME), a missing player is filled with its superpixel mean (the baseline is
//! the all-filled image), coalitions are weighted by the Shapley kernel
//! `π(z) = (M−1) / (C(M,|z|)·|z|·(M−|z|))`, and the empty and full coalitions are constraints:
//! `φ₀ = f(baseline)` and `Σφ = f(x) − f(baseline)` (efficiency), enforced by eliminating the last
//! player as shap does, then weighted least squares for the rest.
//!
//! Coalitions: when all 2^M − 2 proper coalitions fit in `params.samples` (default 1,000) they are
//! enumerated with their exact weights (the result is then the exact Shapley value of the superpixel
//! game); otherwise sizes are drawn with probability ∝ the kernel's mass at that size, members uniformly,
//! each with its complement (paired sampling), every sample weighted equally.

use super::perturb::{solve_spd, superpixel_map, Counter, Engine, Fill, SplitMix64};
use super::superpixels::Segmentation;
use super::{ExplainInput, Explainer, Extras, Heatmap, Params, Progress, XaiError};

#[derive(Debug, Clone, PartialEq)]
pub struct KernelShap {
    pub segmentation: Segmentation,
    pub fill: Fill,
}

impl Default for KernelShap {
    fn default() -> Self {
        KernelShap { segmentation: Segmentation::default(), fill: Fill::SuperpixelMean }
    }
}

fn ln_choose(n: usize, k: usize) -> f64 {
    (1..=k).map(|i| ((n - k + i) as f64).ln() - (i as f64).ln()).sum()
}

/// Shapley values from scored coalitions: `z` (n × m), their scores `y`, weights `sw`, and the scores
/// of the full (`fx`) and empty (`f0`) coalitions. Σφ = fx − f0 exactly.
pub fn constrained_wls(z: &[bool], m: usize, y: &[f64], sw: &[f64], fx: f64, f0: f64) -> Vec<f64> {
    if m == 0 {
        return Vec::new();
    }
    if m == 1 {
        return vec![fx - f0];
    }
    let delta = fx - f0;
    let k = m - 1;
    let mut a = vec![0.0; k * k];
    let mut b = vec![0.0; k];
    let mut row = vec![0.0; k];
    for i in 0..y.len() {
        let zl = z[i * m + k] as u8 as f64;
        for j in 0..k {
            row[j] = z[i * m + j] as u8 as f64 - zl;
        }
        let t = y[i] - f0 - zl * delta;
        for j in 0..k {
            let wj = sw[i] * row[j];
            b[j] += wj * t;
            for l in 0..=j {
                a[j * k + l] += wj * row[l];
            }
        }
    }
    for j in 0..k {
        for l in 0..j {
            a[l * k + j] = a[j * k + l];
        }
    }
    let mut phi = solve_spd(&a, &b, k);
    let last = delta - phi.iter().sum::<f64>();
    phi.push(last);
    phi
}

impl Explainer for KernelShap {
    fn name(&self) -> &'static str {
        "kernelshap"
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
        let (_, _, h, w) = input.input.dims4()?;
        if input.grey.len() != h * w {
            return Err(XaiError::BadParams(format!(
                "grey image has {} pixels, the input {h}×{w}",
                input.grey.len()
            )));
        }
        let (labels, m) = params.segmentation.as_ref().unwrap_or(&self.segmentation).labels(input.grey, h, w);
        let engine = Engine::new(input, Some(&labels), &self.fill)?;
        let budget = params.samples.unwrap_or(1000).max(2);
        let mut z: Vec<bool> = Vec::new();
        let mut sw: Vec<f64> = Vec::new();
        let enumerate = m < 31 && (1usize << m).saturating_sub(2) <= budget;
        if enumerate {
            for mask in 1..(1usize << m) - 1 {
                let s = mask.count_ones() as usize;
                z.extend((0..m).map(|j| mask >> j & 1 == 1));
                sw.push(((m - 1) as f64).ln().exp() / (ln_choose(m, s).exp() * (s * (m - s)) as f64));
            }
        } else if m >= 2 {
            let mut rng = SplitMix64::new(params.seed);
            let mass: Vec<f64> = (1..m).map(|s| 1.0 / (s * (m - s)) as f64).collect();
            let total: f64 = mass.iter().sum();
            let pairs = budget / 2;
            for _ in 0..pairs {
                let mut u = rng.next_f64() * total;
                let mut s = m - 1;
                for (i, &p) in mass.iter().enumerate() {
                    if u < p {
                        s = i + 1;
                        break;
                    }
                    u -= p;
                }
                // Partial Fisher–Yates: the first s of a random permutation are the members.
                let mut perm: Vec<usize> = (0..m).collect();
                for i in 0..s {
                    let j = i + rng.below(m - i);
                    perm.swap(i, j);
                }
                let mut row = vec![false; m];
                perm[..s].iter().for_each(|&j| row[j] = true);
                z.extend(row.iter().copied());
                z.extend(row.iter().map(|b| !b));
                sw.push(1.0);
                sw.push(1.0);
            }
        }
        let n = sw.len();
        let mut counter = Counter { done: 0, total: n + 2, progress };
        let mut ends = vec![true; m];
        ends.extend(std::iter::repeat(false).take(m));
        let fends = engine.score_superpixel_masks(&labels, &ends, m, 2, Some(&mut counter))?;
        let (fx, f0) = (fends[0] as f64, fends[1] as f64);
        let y: Vec<f64> = engine
            .score_superpixel_masks(&labels, &z, m, params.batch, Some(&mut counter))?
            .iter()
            .map(|&v| v as f64)
            .collect();
        let phi = constrained_wls(&z, m, &y, &sw, fx, f0);
        Ok(Heatmap {
            values: superpixel_map(&labels, &phi),
            height: h,
            width: w,
            extras: Extras {
                superpixel_weights: Some(phi.iter().map(|&v| v as f32).collect()),
                superpixels: Some(labels),
                ..Extras::default()
            },
        })
    }
}

/// f(x) and f(baseline) for a KernelSHAP setup (for checking efficiency).
pub fn full_and_baseline(ks: &KernelShap, input: &ExplainInput) -> Result<(f32, f32), XaiError> {
    let (_, _, h, w) = input.input.dims4()?;
    let (labels, m) = ks.segmentation.labels(input.grey, h, w);
    let engine = Engine::new(input, Some(&labels), &ks.fill)?;
    let mut ends = vec![true; m];
    ends.extend(std::iter::repeat(false).take(m));
    let f = engine.score_superpixel_masks(&labels, &ends, m, 2, None)?;
    Ok((f[0], f[1]))
}
