//! Eigen-CAM (Muhammad & Yeasin 2020): the activations' first principal component, no gradients and no
//! target. As pytorch-grad-cam's `get_2d_projection`: the (h·w × K) activation matrix `M` is centred per
//! channel, projected on its first right singular vector `v` (`M·v`), then ReLU'd by the recipe. The
//! singular vector's sign is arbitrary (LAPACK's choice in pytorch-grad-cam); here it is fixed as
//! `get_2d_projection_with_sign_correction` does: flipped when |min| of the projection exceeds its max,
//! so the salient side is positive.
//!
//! `v` comes from a Jacobi eigen-decomposition (f64) of the smaller Gram matrix: `MᵀM` (K×K) or, when
//! h·w < K, `MMᵀ` with `v = Mᵀu / |Mᵀu|`.

use candle_core::{DType, Device, Tensor};

use super::cam::{activations, cam_from_weights, input_hw, layer_name};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, XaiError};

#[derive(Debug, Clone, Copy, Default)]
pub struct EigenCam;

/// The eigenvector of the largest eigenvalue of the symmetric `n × n` matrix `s` (row-major), by cyclic
/// Jacobi rotations.
pub fn top_eigenvector(s: &[f64], n: usize) -> Vec<f64> {
    let mut a = s.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|p| (0..n).filter(move |&q| q != p).map(move |q| (p, q)))
            .map(|(p, q)| a[p * n + q].powi(2))
            .sum();
        if off.sqrt() <= 1e-15 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let sn = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - sn * akq;
                    a[k * n + q] = sn * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - sn * aqk;
                    a[q * n + k] = sn * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - sn * vkq;
                    v[k * n + q] = sn * vkp + c * vkq;
                }
            }
        }
    }
    let best = (0..n).fold(0, |b, i| if a[i * n + i] > a[b * n + b] { i } else { b });
    (0..n).map(|k| v[k * n + best]).collect()
}

/// Per-channel weights `v` (K) and the centred activations (1, K, h, w) whose weighted sum is the
/// sign-corrected first-component projection.
pub fn principal_weights(a: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let a = a.narrow(0, 0, 1)?.to_dtype(DType::F32)?;
    let (_, k, h, w) = a.dims4()?;
    let n = h * w;
    let flat: Vec<f32> = a.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?;
    // m[i][c]: pixel i, channel c, centred per channel (NaN → 0 as pytorch-grad-cam).
    let mut m = vec![0f64; n * k];
    for c in 0..k {
        let col: Vec<f64> =
            flat[c * n..(c + 1) * n].iter().map(|&x| if x.is_nan() { 0.0 } else { x as f64 }).collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        for i in 0..n {
            m[i * k + c] = col[i] - mean;
        }
    }
    let mut v = if k <= n {
        let mut g = vec![0f64; k * k];
        for i in 0..n {
            let row = &m[i * k..(i + 1) * k];
            for p in 0..k {
                for q in 0..k {
                    g[p * k + q] += row[p] * row[q];
                }
            }
        }
        top_eigenvector(&g, k)
    } else {
        let mut g = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                g[i * n + j] = (0..k).map(|c| m[i * k + c] * m[j * k + c]).sum();
            }
        }
        let u = top_eigenvector(&g, n);
        let v: Vec<f64> = (0..k).map(|c| (0..n).map(|i| m[i * k + c] * u[i]).sum()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.iter().map(|x| x / norm).collect()
        } else {
            v
        }
    };
    let proj: Vec<f64> = (0..n).map(|i| (0..k).map(|c| m[i * k + c] * v[c]).sum()).collect();
    let (lo, hi) = proj.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &p| (l.min(p), h.max(p)));
    if lo.abs() > hi.abs() {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    let centred: Vec<f32> =
        (0..k).flat_map(|c| (0..n).map(move |i| (c, i))).map(|(c, i)| m[i * k + c] as f32).collect();
    let centred = Tensor::from_vec(centred, (1, k, h, w), a.device())?;
    let v = Tensor::from_vec(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), k, a.device())?;
    Ok((v, centred))
}

impl Explainer for EigenCam {
    fn name(&self) -> &'static str {
        "eigencam"
    }
    fn explain(
        &self,
        input: &ExplainInput,
        params: &Params,
        progress: Progress,
    ) -> Result<Heatmap, XaiError> {
        let layer = layer_name(input, params)?;
        let x = input.input.narrow(0, 0, 1)?;
        if !progress(0, 1) {
            return Err(XaiError::Cancelled);
        }
        let (a, _) = activations(input.net, &x, &layer)?;
        let (v, centred) = principal_weights(&a)?;
        let (h, w) = input_hw(&x)?;
        let map = cam_from_weights(&centred, &v, h, w)?;
        progress(1, 1);
        Ok(map)
    }
}
