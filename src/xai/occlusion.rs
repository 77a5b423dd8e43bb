//! Occlusion (Zeiler & Fergus 2014) as captum's `Occlusion`: a `window`×`window` patch slides over the
//! input grid with `stride` (defaults 16 and 8 pixels of the model's input grid, whatever its size);
//! patch positions are `0, stride, …` up to the last that fits (captum's count
//! `⌊(size − window)/stride⌋ + 1`); the patch is replaced by the fill (default: 0 in normalised units,
//! the normalisation's mean, as captum's `baselines=0` on a normalised tensor) and each pixel's
//! attribution is the mean of `score(x) − score(occluded)` over the windows that cover it. Pixels no
//! window covers (when `(size − window)` is not a multiple of `stride`) get 0, where captum divides by
//! zero.

use super::perturb::{Counter, Engine, Fill};
use super::{ExplainInput, Explainer, Extras, Heatmap, Params, Progress, XaiError};

#[derive(Debug, Clone, PartialEq)]
pub struct Occlusion {
    pub window: usize,
    pub stride: usize,
    pub fill: Fill,
}

impl Default for Occlusion {
    fn default() -> Self {
        Occlusion { window: 16, stride: 8, fill: Fill::Constant(0.0) }
    }
}

/// Window start positions along an axis of `size`.
fn starts(size: usize, window: usize, stride: usize) -> Vec<usize> {
    if window >= size {
        return vec![0];
    }
    (0..=(size - window) / stride).map(|i| i * stride).collect()
}

impl Explainer for Occlusion {
    fn name(&self) -> &'static str {
        "occlusion"
    }
    fn explain(
        &self,
        input: &ExplainInput,
        params: &Params,
        progress: Progress,
    ) -> Result<Heatmap, XaiError> {
        if self.window == 0 || self.stride == 0 {
            return Err(XaiError::BadParams("occlusion window and stride must be positive".into()));
        }
        let (_, _, h, w) = input.input.dims4()?;
        let engine = Engine::new(input, None, &self.fill)?;
        let (ys, xs) = (starts(h, self.window, self.stride), starts(w, self.window, self.stride));
        let windows: Vec<(usize, usize)> = ys.iter().flat_map(|&y| xs.iter().map(move |&x| (y, x))).collect();
        let mut counter = Counter { done: 0, total: windows.len() + 1, progress };
        let fx = engine.score_batched(1, 1, |_, o| o.copy_from_slice(&engine.x), Some(&mut counter))?[0];
        let win = self.window;
        let scores = engine.score_pixel_masks(
            windows.len(),
            params.batch,
            |i, m| {
                m.iter_mut().for_each(|v| *v = 1.0);
                let (y0, x0) = windows[i];
                for y in y0..(y0 + win).min(h) {
                    m[y * w + x0..y * w + (x0 + win).min(w)].iter_mut().for_each(|v| *v = 0.0);
                }
            },
            Some(&mut counter),
        )?;
        let mut sum = vec![0.0f64; h * w];
        let mut count = vec![0u32; h * w];
        for (&(y0, x0), &s) in windows.iter().zip(&scores) {
            let d = (fx - s) as f64;
            for y in y0..(y0 + win).min(h) {
                for x in x0..(x0 + win).min(w) {
                    sum[y * w + x] += d;
                    count[y * w + x] += 1;
                }
            }
        }
        let values =
            sum.iter().zip(&count).map(|(&s, &c)| if c == 0 { 0.0 } else { (s / c as f64) as f32 }).collect();
        Ok(Heatmap { values, height: h, width: w, extras: Extras::default() })
    }
}
