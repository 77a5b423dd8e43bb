//! The engine the perturbation methods share (LIME, KernelSHAP, occlusion, RISE): a fill image, masks
//! that mix input and fill, batched forwards, target scores, progress and cancellation.
//!
//! Perturbations happen in the normalised input space: a perturbed input is `x·m + fill·(1−m)` on the
//! normalised (C, H, W) tensor. The explainer does not know the manifest's normalisation, and it needs
//! not: normalisation is affine per channel, so the normalised per-superpixel mean (lime's
//! `hide_color=None`) and the normalised blurred image equal the normalisation of the grey mean and of
//! the grey blur — the same inputs as building the perturbed grey image and normalising it. A constant
//! fill is given in normalised units (0 = the dataset mean for ImageNet normalisation).

use candle_core::{DType, Device, Tensor};

use super::{ExplainInput, Heatmap, Target, XaiError};
use crate::model::Network;

/// The most input values one batched forward of [`Engine::score_batched`] takes.
pub const MAX_BATCH_VALUES: usize = 8 * 3 * 224 * 224;

pub use crate::imaging::SplitMix64;

/// What replaces a hidden region.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fill {
    /// Each superpixel's mean, per channel (lime's `hide_color=None`). Without superpixels: the image
    /// mean.
    SuperpixelMean,
    /// One value in normalised units on every channel (0: the normalisation's mean).
    Constant(f32),
    /// A Gaussian-blurred copy of the input (σ in pixels).
    Blur(f32),
}

/// The input, the fill, and the network, ready to score perturbed copies.
pub struct Engine<'a> {
    net: &'a dyn Network,
    target: &'a Target,
    device: Device,
    dtype: DType,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Normalised input, CHW.
    pub x: Vec<f32>,
    /// Normalised fill, CHW.
    pub fill: Vec<f32>,
}

/// Progress over a whole explanation made of several engine calls.
pub struct Counter<'p, 'q> {
    pub done: usize,
    pub total: usize,
    pub progress: &'p mut (dyn FnMut(usize, usize) -> bool + 'q),
}

impl<'p, 'q> Counter<'p, 'q> {
    pub fn step(&mut self, n: usize) -> Result<(), XaiError> {
        self.done += n;
        if (self.progress)(self.done.min(self.total), self.total) {
            Ok(())
        } else {
            Err(XaiError::Cancelled)
        }
    }
}

impl<'a> Engine<'a> {
    /// `labels`: superpixels (H×W) for [`Fill::SuperpixelMean`]; `None` uses the image mean there.
    pub fn new(input: &ExplainInput<'a>, labels: Option<&[u32]>, fill: &Fill) -> Result<Self, XaiError> {
        let (n, channels, height, width) = input.input.dims4()?;
        if n != 1 {
            return Err(XaiError::BadParams(format!(
                "perturbation methods explain one image, got a batch of {n}"
            )));
        }
        let plane = height * width;
        let x: Vec<f32> = input.input.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        let fill = match fill {
            Fill::Constant(v) => vec![*v; x.len()],
            Fill::SuperpixelMean => {
                let default = vec![0u32; plane];
                let labels = labels.unwrap_or(&default);
                if labels.len() != plane {
                    return Err(XaiError::BadParams(format!(
                        "{} superpixel labels for a {height}×{width} input",
                        labels.len()
                    )));
                }
                let n = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
                let mut out = vec![0.0f32; x.len()];
                for c in 0..channels {
                    let xs = &x[c * plane..(c + 1) * plane];
                    let mut sum = vec![0.0f64; n];
                    let mut count = vec![0usize; n];
                    for (&l, &v) in labels.iter().zip(xs) {
                        sum[l as usize] += v as f64;
                        count[l as usize] += 1;
                    }
                    for (o, &l) in out[c * plane..(c + 1) * plane].iter_mut().zip(labels) {
                        *o = (sum[l as usize] / count[l as usize].max(1) as f64) as f32;
                    }
                }
                out
            }
            Fill::Blur(sigma) => {
                let mut out = Vec::with_capacity(x.len());
                for c in 0..channels {
                    let p: Vec<f64> = x[c * plane..(c + 1) * plane].iter().map(|&v| v as f64).collect();
                    out.extend(
                        super::superpixels::gaussian_blur(&p, height, width, *sigma as f64)
                            .iter()
                            .map(|&v| v as f32),
                    );
                }
                out
            }
        };
        Ok(Engine {
            net: input.net,
            target: input.target,
            device: input.input.device().clone(),
            dtype: input.input.dtype(),
            channels,
            height,
            width,
            x,
            fill,
        })
    }

    /// The target score of the unperturbed input.
    pub fn score_input(&self) -> Result<f32, XaiError> {
        Ok(self.score_batched(1, 1, |_, out| out.copy_from_slice(&self.x), None)?[0])
    }

    /// Scores `n` inputs built by `build(i, chw_out)`, `batch` at a time (at most [`MAX_BATCH_VALUES`]
    /// input values a forward); `counter` is stepped after every
    /// batch (and may cancel).
    pub fn score_batched(
        &self,
        n: usize,
        batch: usize,
        build: impl Fn(usize, &mut [f32]),
        mut counter: Option<&mut Counter>,
    ) -> Result<Vec<f32>, XaiError> {
        let size = self.x.len();
        // Capped at about 1.2 M input values a forward (8 chest X-rays at 3×224²): a larger batch's
        // activations outgrow the 32 MiB blocks that glibc serves from its heap, so every forward maps and
        // faults them in afresh (DenseNet-121 LIME: 62 ms a sample at batch 16, 52 ms at 8). Each image's
        // scores do not depend on the batch it is in.
        let batch = batch.min(MAX_BATCH_VALUES / size.max(1)).max(1);
        let mut scores = Vec::with_capacity(n);
        let mut buf = Vec::new();
        let mut start = 0;
        while start < n {
            let b = batch.min(n - start);
            buf.clear();
            buf.resize(b * size, 0.0);
            for (k, chunk) in buf.chunks_mut(size).enumerate() {
                build(start + k, chunk);
            }
            let t = Tensor::from_slice(&buf, (b, self.channels, self.height, self.width), &self.device)?
                .to_dtype(self.dtype)?;
            let logits = self.net.forward(&t)?;
            let s: Vec<f32> = self.target.score(&logits)?.to_dtype(DType::F32)?.to_vec1()?;
            scores.extend(s);
            start += b;
            if let Some(c) = counter.as_deref_mut() {
                c.step(b)?;
            }
        }
        Ok(scores)
    }

    /// Scores superpixel masks: row `i` of `z` (n × m, row-major) keeps superpixel `j` when `z[i·m + j]`.
    pub fn score_superpixel_masks(
        &self,
        labels: &[u32],
        z: &[bool],
        m: usize,
        batch: usize,
        counter: Option<&mut Counter>,
    ) -> Result<Vec<f32>, XaiError> {
        let plane = self.height * self.width;
        let n = if m == 0 { 0 } else { z.len() / m };
        self.score_batched(
            n,
            batch,
            |i, out| {
                let row = &z[i * m..(i + 1) * m];
                for c in 0..self.channels {
                    let (xs, fs) =
                        (&self.x[c * plane..(c + 1) * plane], &self.fill[c * plane..(c + 1) * plane]);
                    for (p, o) in out[c * plane..(c + 1) * plane].iter_mut().enumerate() {
                        *o = if row[labels[p] as usize] { xs[p] } else { fs[p] };
                    }
                }
            },
            counter,
        )
    }

    /// Scores soft pixel masks (`x·m + fill·(1−m)`): `mask(i, plane_out)` writes mask `i` (H×W).
    pub fn score_pixel_masks(
        &self,
        n: usize,
        batch: usize,
        mask: impl Fn(usize, &mut [f32]),
        counter: Option<&mut Counter>,
    ) -> Result<Vec<f32>, XaiError> {
        let plane = self.height * self.width;
        self.score_batched(
            n,
            batch,
            |i, out| {
                let mut m = vec![0.0f32; plane];
                mask(i, &mut m);
                for c in 0..self.channels {
                    let (xs, fs) =
                        (&self.x[c * plane..(c + 1) * plane], &self.fill[c * plane..(c + 1) * plane]);
                    for (p, o) in out[c * plane..(c + 1) * plane].iter_mut().enumerate() {
                        *o = xs[p] * m[p] + fs[p] * (1.0 - m[p]);
                    }
                }
            },
            counter,
        )
    }
}

/// A map from per-superpixel weights.
pub fn superpixel_map(labels: &[u32], weights: &[f64]) -> Vec<f32> {
    labels.iter().map(|&l| weights[l as usize] as f32).collect()
}

/// The positive part of a signed map (lime's `positive_only=True`).
pub fn positive_only(map: &Heatmap) -> Heatmap {
    Heatmap { values: map.values.iter().map(|&v| v.max(0.0)).collect(), ..map.clone() }
}

/// Ranks with ties averaged (1-based).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

/// Pearson correlation; 1 when both are constant, 0 when one is.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 && sbb == 0.0 {
        1.0
    } else if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Spearman rank correlation (ties averaged).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Stability of a stochastic method over several runs: (mean pairwise IoU of the top `top_k_percent` %
/// pixels, mean pairwise Spearman of the maps). One map gives (1, 1).
pub fn stability(maps: &[Heatmap], top_k_percent: f64) -> (f64, f64) {
    let tops: Vec<Vec<bool>> = maps
        .iter()
        .map(|m| {
            let k = ((m.values.len() as f64 * top_k_percent / 100.0).round() as usize)
                .clamp(1, m.values.len().max(1));
            let mut idx: Vec<usize> = (0..m.values.len()).collect();
            // Ties broken by pixel index so that the mask is deterministic.
            idx.sort_by(|&a, &b| m.values[b].total_cmp(&m.values[a]).then(a.cmp(&b)));
            let mut mask = vec![false; m.values.len()];
            idx.iter().take(k).for_each(|&i| mask[i] = true);
            mask
        })
        .collect();
    let vals: Vec<Vec<f64>> = maps.iter().map(|m| m.values.iter().map(|&v| v as f64).collect()).collect();
    let (mut iou, mut rho, mut pairs) = (0.0, 0.0, 0usize);
    for i in 0..maps.len() {
        for j in i + 1..maps.len() {
            let inter = tops[i].iter().zip(&tops[j]).filter(|(a, b)| **a && **b).count();
            let union = tops[i].iter().zip(&tops[j]).filter(|(a, b)| **a || **b).count();
            iou += if union == 0 { 1.0 } else { inter as f64 / union as f64 };
            rho += spearman(&vals[i], &vals[j]);
            pairs += 1;
        }
    }
    if pairs == 0 {
        (1.0, 1.0)
    } else {
        (iou / pairs as f64, rho / pairs as f64)
    }
}

/// Solves the symmetric positive definite system `a·x = b` (n×n, row-major) by Cholesky in f64. A
/// tiny ridge is added (and grown) when the matrix is singular to working precision.
pub fn solve_spd(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let scale = (0..n).map(|i| a[i * n + i].abs()).fold(0.0f64, f64::max).max(1e-300);
    let mut jitter = 0.0;
    loop {
        if let Some(l) = cholesky(a, n, jitter) {
            let mut y = vec![0.0; n];
            for i in 0..n {
                let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
                y[i] = (b[i] - s) / l[i * n + i];
            }
            let mut x = vec![0.0; n];
            for i in (0..n).rev() {
                let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
                x[i] = (y[i] - s) / l[i * n + i];
            }
            return x;
        }
        jitter = if jitter == 0.0 { scale * 1e-12 } else { jitter * 10.0 };
    }
}

fn cholesky(a: &[f64], n: usize, jitter: f64) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] + jitter - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Some(l)
}
