//! Score-CAM (Wang et al. 2020), as pytorch-grad-cam's `score_cam.py`: each channel of the activations
//! is upsampled to the input size (bilinear, `align_corners=True` as `nn.UpsamplingBilinear2d`),
//! min-max normalised per channel (`(u − min) / (max − min + 1e-8)`: a constant channel gives an all-zero
//! mask, never NaN), multiplies the input, and the target score of each masked input, softmaxed over the
//! channels, weighs the channels. Forward passes are batched `params.batch` masked inputs at a time;
//! `progress(done, channels)` after each batch, returning false cancels.
//!
//! `Extras::channel_scores`: the softmax weight of each channel.

use candle_core::{DType, Device, Tensor};

use super::cam::{activations, cam_from_weights, input_hw, layer_name, softmax};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, XaiError};

#[derive(Debug, Clone, Copy, Default)]
pub struct ScoreCam;

/// Bilinear resize with `align_corners=True` (source coordinate `d·(in−1)/(out−1)`).
pub fn resize_bilinear_align_corners(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let axis = |input: usize, output: usize| -> Vec<(usize, usize, f32)> {
        let scale = if output > 1 { (input as f32 - 1.0) / (output as f32 - 1.0) } else { 0.0 };
        (0..output)
            .map(|d| {
                let s = d as f32 * scale;
                let i0 = (s as usize).min(input - 1);
                let i1 = (i0 + 1).min(input - 1);
                (i0, i1, s - i0 as f32)
            })
            .collect()
    };
    let (ys, xs) = (axis(h, oh), axis(w, ow));
    let mut out = Vec::with_capacity(oh * ow);
    for &(y0, y1, ly) in &ys {
        for &(x0, x1, lx) in &xs {
            let top = (1.0 - lx) * src[y0 * w + x0] + lx * src[y0 * w + x1];
            let bottom = (1.0 - lx) * src[y1 * w + x0] + lx * src[y1 * w + x1];
            out.push((1.0 - ly) * top + ly * bottom);
        }
    }
    out
}

/// The K input masks (K, 1, H, W) from activations (1, K, h, w): upsampled, min-max normalised.
pub fn channel_masks(a: &Tensor, out_h: usize, out_w: usize) -> candle_core::Result<Tensor> {
    let (_, k, h, w) = a.dims4()?;
    let flat: Vec<f32> =
        a.narrow(0, 0, 1)?.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?;
    let mut masks = Vec::with_capacity(k * out_h * out_w);
    for c in 0..k {
        let mut up = resize_bilinear_align_corners(&flat[c * h * w..(c + 1) * h * w], h, w, out_h, out_w);
        let (lo, hi) = up.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let range = hi - lo + 1e-8;
        for v in &mut up {
            let m = (*v - lo) / range;
            *v = if m.is_finite() { m } else { 0.0 };
        }
        masks.extend(up);
    }
    Tensor::from_vec(masks, (k, 1, out_h, out_w), a.device())
}

impl Explainer for ScoreCam {
    fn name(&self) -> &'static str {
        "scorecam"
    }
    fn explain(
        &self,
        input: &ExplainInput,
        params: &Params,
        progress: Progress,
    ) -> Result<Heatmap, XaiError> {
        if params.batch == 0 {
            return Err(XaiError::BadParams("batch must be at least 1".into()));
        }
        let layer = layer_name(input, params)?;
        let x = input.input.narrow(0, 0, 1)?;
        let (a, _) = activations(input.net, &x, &layer)?;
        let k = a.dim(1)?;
        let (h, w) = input_hw(&x)?;
        let masks = channel_masks(&a, h, w)?.to_dtype(x.dtype())?;
        let mut scores = Vec::with_capacity(k);
        if !progress(0, k) {
            return Err(XaiError::Cancelled);
        }
        let mut start = 0;
        while start < k {
            let n = params.batch.min(k - start);
            let batch = masks.narrow(0, start, n)?.broadcast_mul(&x)?; // (n, C, H, W)
            let logits = input.net.forward(&batch)?;
            let s: Vec<f32> = input.target.score(&logits)?.to_dtype(DType::F32)?.to_vec1()?;
            scores.extend(s);
            start += n;
            if !progress(start, k) {
                return Err(XaiError::Cancelled);
            }
        }
        let weights = softmax(&scores);
        let wt = Tensor::from_vec(weights.clone(), k, a.device())?;
        let mut map = cam_from_weights(&a, &wt, h, w)?;
        map.extras.channel_scores = Some(weights);
        Ok(map)
    }
}
