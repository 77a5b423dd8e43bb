//! Image → network input, and network output → study grid.
//!
//! The pipeline and its order are those of the manifest (see [`super::manifest`]): 8-bit grey value
//! ([`to_u8_grey`]) → bilinear resize to `input_size` ([`resize_bilinear`]) → normalisation
//! ([`normalize`]) → tensor ([`prepare_input`], [`prepare_batch`]). The arithmetic is plain Rust on
//! slices so that it can be checked against PyTorch values without candle.

use candle_core::{Device, Tensor};

use super::manifest::{Activation, Manifest, Normalize};
use crate::imaging::WindowLevel;

/// ImageNet channel means and standard deviations (torchvision's).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Bilinear resize of one `h × w` plane (row-major) to `oh × ow`, exactly as PyTorch's
/// `F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)` without antialiasing: the
/// source coordinate of output pixel `d` is `(d + 0.5)·(in/out) − 0.5`, clamped at 0, and the right /
/// bottom neighbour is clamped to the last pixel. Arithmetic in f32 like PyTorch's CPU kernel.
pub fn resize_bilinear(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    assert_eq!(src.len(), h * w, "resize_bilinear: {} values for {h}×{w}", src.len());
    if oh == 0 || ow == 0 || h == 0 || w == 0 {
        return vec![0.0; oh * ow];
    }
    if oh == h && ow == w {
        return src.to_vec();
    }
    let ys = axis_weights(h, oh);
    let xs = axis_weights(w, ow);
    let mut out = Vec::with_capacity(oh * ow);
    for &(y0, y1, ly) in &ys {
        let (r0, r1) = (&src[y0 * w..(y0 + 1) * w], &src[y1 * w..(y1 + 1) * w]);
        for &(x0, x1, lx) in &xs {
            let top = (1.0 - lx) * r0[x0] + lx * r0[x1];
            let bottom = (1.0 - lx) * r1[x0] + lx * r1[x1];
            out.push((1.0 - ly) * top + ly * bottom);
        }
    }
    out
}

/// For each output index: (lower source index, upper source index, weight of the upper one).
fn axis_weights(input: usize, output: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|d| {
            let s = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s as usize).min(input - 1);
            let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
            (i0, i1, s - i0 as f32)
        })
        .collect()
}

/// The 8-bit grey value (0..=255, as f32) the model was trained on:
/// - HU input (`unit_is_hu`) with a window: DICOM linear window/level, rounded — the grey level the
///   viewer shows and an 8-bit export would store.
/// - Otherwise (raw values, or HU with no window in the manifest): values as they are when every finite
///   value lies in 0..=255 (already 8-bit), else min-max scaled to 0..=255 and rounded; a constant image
///   maps to 0.
///
/// Non-finite values become 0.
pub fn to_u8_grey(slice: &[f32], unit_is_hu: bool, window: Option<WindowLevel>) -> Vec<f32> {
    if let (true, Some(w)) = (unit_is_hu, window) {
        return slice.iter().map(|&v| if v.is_finite() { w.to_u8(v) as f32 } else { 0.0 }).collect();
    }
    let (lo, hi) = slice
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return vec![0.0; slice.len()];
    }
    if lo >= 0.0 && hi <= 255.0 {
        return slice.iter().map(|&v| if v.is_finite() { v } else { 0.0 }).collect();
    }
    let range = hi - lo;
    slice
        .iter()
        .map(|&v| if !v.is_finite() || range <= 0.0 { 0.0 } else { (((v - lo) / range) * 255.0).round() })
        .collect()
}

/// Normalises 8-bit grey values `v` into `in_channels` planes (CHW, grey copied to every channel):
/// `Imagenet` → `(v/255 − mean[c]) / std[c]`; `Unit` → `v/255`; `Xrv` → `(v/255)·2048 − 1024`.
/// `Imagenet` with one channel (refused by manifest validation) uses the first channel's statistics.
pub fn normalize(v: &[f32], mode: Normalize, in_channels: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(v.len() * in_channels);
    for c in 0..in_channels {
        match mode {
            Normalize::Imagenet => {
                let (m, s) = (IMAGENET_MEAN[c.min(2)], IMAGENET_STD[c.min(2)]);
                out.extend(v.iter().map(|&x| (x / 255.0 - m) / s));
            }
            Normalize::Unit => out.extend(v.iter().map(|&x| x / 255.0)),
            Normalize::Xrv => out.extend(v.iter().map(|&x| (x / 255.0) * 2048.0 - 1024.0)),
        }
    }
    out
}

/// The CHW input values of one slice (`h × w`, row-major) for `manifest`: grey value → resize to
/// `input_size` → normalisation.
pub fn input_values(slice: &[f32], h: usize, w: usize, manifest: &Manifest, unit_is_hu: bool) -> Vec<f32> {
    let grey = to_u8_grey(slice, unit_is_hu, manifest.window);
    let [ih, iw] = manifest.input_size;
    let resized = resize_bilinear(&grey, h, w, ih, iw);
    normalize(&resized, manifest.normalize, manifest.in_channels)
}

/// One slice as a (1, C, H', W') tensor for the network.
pub fn prepare_input(
    slice: &[f32],
    h: usize,
    w: usize,
    manifest: &Manifest,
    unit_is_hu: bool,
    device: &Device,
) -> candle_core::Result<Tensor> {
    prepare_batch(&[slice], h, w, manifest, unit_is_hu, device)
}

/// Several slices of the same size as an (N, C, H', W') tensor.
pub fn prepare_batch(
    slices: &[&[f32]],
    h: usize,
    w: usize,
    manifest: &Manifest,
    unit_is_hu: bool,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let [ih, iw] = manifest.input_size;
    let c = manifest.in_channels;
    let mut data = Vec::with_capacity(slices.len() * c * ih * iw);
    for s in slices {
        if s.len() != h * w {
            candle_core::bail!("slice has {} values, expected {h}×{w}", s.len());
        }
        data.extend(input_values(s, h, w, manifest, unit_is_hu));
    }
    Tensor::from_vec(data, (slices.len(), c, ih, iw), device)
}

/// Logits → probabilities: sigmoid per element, or softmax over dimension 1 (the classes) for both
/// (N, classes) and (N, classes, H, W).
pub fn activation(logits: &Tensor, act: Activation) -> candle_core::Result<Tensor> {
    match act {
        Activation::Sigmoid => candle_nn::ops::sigmoid(logits),
        Activation::Softmax => candle_nn::ops::softmax(logits, 1),
    }
}

/// Resizes `channels` probability planes (CHW, each `h × w`) back to the study grid `grid_h × grid_w`
/// with the same bilinear rule as the input resize.
pub fn resize_to_grid(
    prob: &[f32],
    channels: usize,
    h: usize,
    w: usize,
    grid_h: usize,
    grid_w: usize,
) -> Vec<f32> {
    assert_eq!(prob.len(), channels * h * w, "resize_to_grid: {} values for {channels}×{h}×{w}", prob.len());
    let mut out = Vec::with_capacity(channels * grid_h * grid_w);
    for c in 0..channels {
        out.extend(resize_bilinear(&prob[c * h * w..(c + 1) * h * w], h, w, grid_h, grid_w));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_constant_resizes() {
        let src: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(resize_bilinear(&src, 3, 4, 3, 4), src);
        let c = vec![3.5f32; 6];
        assert!(resize_bilinear(&c, 2, 3, 7, 5).iter().all(|&v| (v - 3.5).abs() < 1e-6));
    }

    #[test]
    fn upsampling_2x_matches_torch_by_hand() {
        // F.interpolate(tensor([[[[0., 1.]]]]), size=(1, 4), mode="bilinear") = [0, 0.25, 0.75, 1]
        assert_eq!(resize_bilinear(&[0.0, 1.0], 1, 2, 1, 4), vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn normalisation_known_answers() {
        let v = [0.0, 255.0];
        let n = normalize(&v, Normalize::Imagenet, 3);
        let want = [
            -0.485 / 0.229,
            (1.0 - 0.485) / 0.229,
            -0.456 / 0.224,
            (1.0 - 0.456) / 0.224,
            -0.406 / 0.225,
            (1.0 - 0.406) / 0.225,
        ];
        for (a, b) in n.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(normalize(&[0.0, 51.0, 255.0], Normalize::Unit, 1), vec![0.0, 0.2, 1.0]);
        assert_eq!(normalize(&[0.0, 255.0], Normalize::Xrv, 1), vec![-1024.0, 1024.0]);
        assert_eq!(normalize(&[0.0, 255.0], Normalize::Unit, 3).len(), 6);
    }

    #[test]
    fn grey_values() {
        // Lung window [-600, 1500]: -1350.5 and below → 0, 149.5 and above → 255, -600 → 128.
        let w = WindowLevel::new(-600.0, 1500.0);
        assert_eq!(
            to_u8_grey(&[-2000.0, -600.0, 500.0, f32::NAN], true, Some(w)),
            vec![0.0, 128.0, 255.0, 0.0]
        );
        // Raw 8-bit values pass through; wider ranges are min-max scaled; constants give 0.
        assert_eq!(to_u8_grey(&[0.0, 17.5, 255.0], false, Some(w)), vec![0.0, 17.5, 255.0]);
        assert_eq!(to_u8_grey(&[100.0, 600.0, 1100.0], false, None), vec![0.0, 128.0, 255.0]);
        assert_eq!(to_u8_grey(&[-5.0, -5.0], false, None), vec![0.0, 0.0]);
        // HU without a window is treated as raw.
        assert_eq!(to_u8_grey(&[-1000.0, 1000.0], true, None), vec![0.0, 255.0]);
    }
}
