//! RISE (Petsiuk et al. 2018): `N` random binary grids of `cells`×`cells` (each cell on with
//! probability `p`), upsampled bilinearly to `(cells+1)·⌈H/cells⌉` and cropped at a random shift in
//! `[0, ⌈H/cells⌉)` per axis (the paper's smooth masks), applied as `x·m + fill·(1−m)` (fill 0 in
//! normalised units, the paper multiplying the normalised image by the mask); saliency
//! `Σᵢ score(x⊙mᵢ)·mᵢ / (N·p)`. Defaults: N = `params.samples` or 2,000, cells 8, p 0.5.

use super::perturb::{Counter, Engine, Fill, SplitMix64};
use super::{ExplainInput, Explainer, Extras, Heatmap, Params, Progress, XaiError};
use crate::model::preprocess::resize_bilinear;

#[derive(Debug, Clone, PartialEq)]
pub struct Rise {
    pub cells: usize,
    pub p: f64,
    pub fill: Fill,
}

impl Default for Rise {
    fn default() -> Self {
        Rise { cells: 8, p: 0.5, fill: Fill::Constant(0.0) }
    }
}

impl Rise {
    /// The `n` masks (H×W each), all drawn from `seed`.
    pub fn masks(&self, n: usize, h: usize, w: usize, seed: u64) -> Vec<Vec<f32>> {
        let s = self.cells.max(1);
        let (ch, cw) = (h.div_ceil(s), w.div_ceil(s));
        let (uh, uw) = ((s + 1) * ch, (s + 1) * cw);
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let grid: Vec<f32> = (0..s * s).map(|_| rng.coin(self.p) as u8 as f32).collect();
                let (dy, dx) = (rng.below(ch), rng.below(cw));
                let up = resize_bilinear(&grid, s, s, uh, uw);
                let mut m = Vec::with_capacity(h * w);
                for y in 0..h {
                    m.extend_from_slice(&up[(y + dy) * uw + dx..(y + dy) * uw + dx + w]);
                }
                m
            })
            .collect()
    }
}

impl Explainer for Rise {
    fn name(&self) -> &'static str {
        "rise"
    }
    fn stochastic(&self) -> bool {
        true
    }
    fn explain(&self, input: &ExplainInput, params: &Params, progress: Progress) -> Result<Heatmap, XaiError> {
        if !(self.p > 0.0 && self.p <= 1.0) {
            return Err(XaiError::BadParams(format!("RISE p must be in (0, 1], got {}", self.p)));
        }
        let (_, _, h, w) = input.input.dims4()?;
        let n = params.samples.unwrap_or(2000).max(1);
        let engine = Engine::new(input, None, &self.fill)?;
        let masks = self.masks(n, h, w, params.seed);
        let mut counter = Counter { done: 0, total: n, progress };
        let scores = engine.score_pixel_masks(n, params.batch, |i, m| m.copy_from_slice(&masks[i]), Some(&mut counter))?;
        let mut sal = vec![0.0f64; h * w];
        for (m, &s) in masks.iter().zip(&scores) {
            for (a, &v) in sal.iter_mut().zip(m) {
                *a += s as f64 * v as f64;
            }
        }
        let norm = n as f64 * self.p;
        Ok(Heatmap { values: sal.iter().map(|&v| (v / norm) as f32).collect(), height: h, width: w, extras: Extras::default() })
    }
}
