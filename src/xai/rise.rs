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

/// One RISE mask before upsampling: the coarse grid (cells×cells, 0/1) and the crop shift.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskDraw {
    pub grid: Vec<f32>,
    pub shift: (usize, usize),
}

impl Rise {
    /// The `n` mask draws, all from `seed` (kept coarse: N full-size masks would not fit in memory at
    /// 224² with N in the thousands).
    pub fn draws(&self, n: usize, h: usize, w: usize, seed: u64) -> Vec<MaskDraw> {
        let s = self.cells.max(1);
        let (ch, cw) = (h.div_ceil(s), w.div_ceil(s));
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let grid: Vec<f32> = (0..s * s).map(|_| rng.coin(self.p) as u8 as f32).collect();
                let shift = (rng.below(ch), rng.below(cw));
                MaskDraw { grid, shift }
            })
            .collect()
    }

    /// The smooth H×W mask of one draw, written into `out`.
    pub fn mask(&self, draw: &MaskDraw, h: usize, w: usize, out: &mut [f32]) {
        let s = self.cells.max(1);
        let (ch, cw) = (h.div_ceil(s), w.div_ceil(s));
        let (uh, uw) = ((s + 1) * ch, (s + 1) * cw);
        let up = resize_bilinear(&draw.grid, s, s, uh, uw);
        let (dy, dx) = draw.shift;
        for y in 0..h {
            out[y * w..(y + 1) * w].copy_from_slice(&up[(y + dy) * uw + dx..(y + dy) * uw + dx + w]);
        }
    }
}

impl Explainer for Rise {
    fn name(&self) -> &'static str {
        "rise"
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
        if !(self.p > 0.0 && self.p <= 1.0) {
            return Err(XaiError::BadParams(format!("RISE p must be in (0, 1], got {}", self.p)));
        }
        let (_, _, h, w) = input.input.dims4()?;
        let n = params.samples.unwrap_or(2000).max(1);
        let engine = Engine::new(input, None, &self.fill)?;
        let draws = self.draws(n, h, w, params.seed);
        let mut counter = Counter { done: 0, total: n, progress };
        let scores = engine.score_pixel_masks(
            n,
            params.batch,
            |i, m| self.mask(&draws[i], h, w, m),
            Some(&mut counter),
        )?;
        let mut sal = vec![0.0f64; h * w];
        let mut m = vec![0.0f32; h * w];
        for (d, &s) in draws.iter().zip(&scores) {
            self.mask(d, h, w, &mut m);
            for (a, &v) in sal.iter_mut().zip(&m) {
                *a += s as f64 * v as f64;
            }
        }
        let norm = n as f64 * self.p;
        Ok(Heatmap {
            values: sal.iter().map(|&v| (v / norm) as f32).collect(),
            height: h,
            width: w,
            extras: Extras::default(),
        })
    }
}
