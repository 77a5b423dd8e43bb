//! The class-activation-map recipe shared by the CAM family (pytorch-grad-cam's `BaseCAM`):
//!
//! 1. activations `A` (1, K, h, w) at a named layer and, for the gradient methods, `dA = ∂score/∂A`
//!    ([`activations_and_gradients`]);
//! 2. weights `W` from them — per channel (K) or per element (K, h, w) — the one thing each variant
//!    defines ([`CamWeights`], pytorch-grad-cam's `get_cam_weights`);
//! 3. `relu(Σ_k W_k·A_k)` ([`weighted_map`]), resized bilinearly (PyTorch `align_corners=False`
//!    convention, [`resize_bilinear`]) from (h, w) to the input grid ([`cam_from_weights`]).
//!
//! Unlike pytorch-grad-cam the map is NOT min-max scaled: values are raw, the viewer scales.

use candle_core::{DType, Device, Tensor, D};

use super::{ExplainInput, Heatmap, Params, Progress, Target, XaiError};
use crate::model::preprocess::resize_bilinear;
use crate::model::{Network, Tap};

/// A gradient CAM variant: channel (K) or element (K, h, w) weights from the activations `a` and their
/// gradients `g`, both (1, K, h, w).
pub trait CamWeights {
    fn weights(&self, a: &Tensor, g: &Tensor) -> candle_core::Result<Tensor>;
}

/// The layer to explain: `params.layer`, else the manifest's default.
pub fn layer_name(input: &ExplainInput, params: &Params) -> Result<String, XaiError> {
    params
        .layer
        .clone()
        .or_else(|| input.default_layer.map(str::to_string))
        .ok_or_else(|| XaiError::BadParams("no CAM layer: give one (the model's manifest names none)".into()))
}

fn unknown_layer(layer: &str, tap: &Tap) -> XaiError {
    XaiError::UnknownLayer { layer: layer.to_string(), available: tap.visited().join(", ") }
}

/// The activations at `layer` for `input` (one forward pass), with the network's output.
pub fn activations(net: &dyn Network, input: &Tensor, layer: &str) -> Result<(Tensor, Tensor), XaiError> {
    let mut tap = Tap::recording([layer]);
    let logits = net.forward_tap(input, &mut tap)?;
    match tap.take(layer) {
        Some(a) => Ok((a.detach(), logits)),
        None => Err(unknown_layer(layer, &tap)),
    }
}

/// Activations `A` (N, K, h, w) at `layer` and the gradient of the summed target score with respect to
/// them, from one forward pass: the tap turns `A` into a `Var` where the network produces it and the
/// rest of the network runs from that `Var` (candle 0.11 gives no gradient for an intermediate tensor).
/// A target that does not depend on the layer gets zero gradients.
pub fn activations_and_gradients(
    net: &dyn Network,
    input: &Tensor,
    layer: &str,
    target: &Target,
) -> Result<(Tensor, Tensor), XaiError> {
    let mut tap = Tap::tracking(layer);
    let logits = net.forward_tap(input, &mut tap)?;
    if let Some(e) = tap.error() {
        return Err(XaiError::Candle(candle_core::Error::Msg(format!("tracking layer {layer}: {e}"))));
    }
    let Some(a) = tap.take(layer) else { return Err(unknown_layer(layer, &tap)) };
    let grads = target.score(&logits)?.sum_all()?.backward()?;
    let g = match grads.get(&a) {
        Some(g) => g.detach(),
        None => a.zeros_like()?,
    };
    Ok((a.detach(), g))
}

/// `relu(Σ_k W_k·A_k)` for the first batch item: `a` (N, K, h, w) or (K, h, w); `w` (K) per channel
/// or (K, h, w) per element (a leading batch axis of 1 allowed). Returns (h, w), f32.
pub fn weighted_map(a: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let a = first_item(a)?.to_dtype(DType::F32)?; // (K, h, w)
    let (k, h, wd) = a.dims3()?;
    let w = w.to_dtype(DType::F32)?;
    let w = if w.rank() == 4 || (w.rank() == 2 && w.dim(0)? == 1) { w.get(0)? } else { w };
    let weighted = match w.rank() {
        1 => a.broadcast_mul(&w.reshape((k, 1, 1))?)?,
        3 => a.mul(&w)?,
        r => candle_core::bail!("CAM weights must be (K) or (K, h, w), got rank {r}"),
    };
    weighted.sum(0)?.relu()?.reshape((h, wd))
}

fn first_item(a: &Tensor) -> candle_core::Result<Tensor> {
    match a.rank() {
        4 => a.get(0),
        3 => Ok(a.clone()),
        r => candle_core::bail!("CAM activations must be (N, K, h, w), got rank {r}"),
    }
}

/// The fixed recipe: [`weighted_map`] resized bilinearly to `out_h × out_w` (raw values, not scaled).
pub fn cam_from_weights(a: &Tensor, w: &Tensor, out_h: usize, out_w: usize) -> candle_core::Result<Heatmap> {
    let map = weighted_map(a, w)?;
    resize_map(&map, out_h, out_w)
}

/// A (h, w) map resized to the input grid as a [`Heatmap`].
pub fn resize_map(map: &Tensor, out_h: usize, out_w: usize) -> candle_core::Result<Heatmap> {
    let (h, w) = map.dims2()?;
    let flat: Vec<f32> = map.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?;
    let values = resize_bilinear(&flat, h, w, out_h, out_w);
    Ok(Heatmap { values, height: out_h, width: out_w, ..Heatmap::default() })
}

/// The input's (H, W).
pub fn input_hw(input: &Tensor) -> Result<(usize, usize), XaiError> {
    let (_, _, h, w) = input.dims4()?;
    Ok((h, w))
}

/// A whole gradient CAM: activations and gradients at the layer, `method`'s weights, the recipe.
pub fn explain_gradient_cam(
    method: &dyn CamWeights,
    input: &ExplainInput,
    params: &Params,
    progress: Progress,
) -> Result<Heatmap, XaiError> {
    let layer = layer_name(input, params)?;
    let x = input.input.narrow(0, 0, 1)?;
    if !progress(0, 1) {
        return Err(XaiError::Cancelled);
    }
    let (a, g) = activations_and_gradients(input.net, &x, &layer, input.target)?;
    let w = method.weights(&a, &g)?;
    let (h, wd) = input_hw(&x)?;
    let map = cam_from_weights(&a, &w, h, wd)?;
    progress(1, 1);
    Ok(map)
}

/// Sum over the spatial axes keeping them: (N, K, h, w) → (N, K, 1, 1).
pub fn spatial_sum(t: &Tensor) -> candle_core::Result<Tensor> {
    t.sum_keepdim(D::Minus1)?.sum_keepdim(D::Minus2)
}

/// Numerically safe softmax over a slice (max subtracted; never NaN for finite input).
pub fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    let max = if max.is_finite() { max } else { 0.0 };
    let e: Vec<f64> =
        scores.iter().map(|&s| if s.is_nan() { 0.0 } else { ((s - max) as f64).exp() }).collect();
    let total: f64 = e.iter().sum();
    if total > 0.0 && total.is_finite() {
        e.iter().map(|v| (v / total) as f32).collect()
    } else {
        vec![1.0 / scores.len().max(1) as f32; scores.len()]
    }
}
