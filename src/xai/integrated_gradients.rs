//! Integrated Gradients (Sundararajan et al. 2017): `(x − x₀) ⊙ ∫₀¹ ∇f(x₀ + α(x − x₀)) dα`.
//!
//! The integral is a quadrature over `steps` points (default 50, `Params::steps`), by default
//! Gauss–Legendre as captum's default `method="gausslegendre"` (nodes and weights of
//! `numpy.polynomial.legendre.leggauss` mapped to [0, 1]); captum's `riemann_trapezoid` is the other
//! option (captum's step sizes, kept for parity: 1/n each, halved at both ends, so they sum to (n−1)/n and
//! the map is that much smaller than Gauss–Legendre's on a linear model). The interpolated images are run
//! `Params::batch` at a time; each item's score is multiplied by its quadrature weight before the one
//! backward of the batch, so the gradients come back already weighted. Progress is reported after each
//! batch, and a `false` from the callback cancels.
//!
//! The map is the attribution summed over input channels, signed. Completeness: the sum of all
//! attributions is close to `f(x) − f(x₀)` ([`IntegratedGradients::attributions`] returns both).

use candle_core::{DType, Tensor};

use super::saliency::{reduce_channels, weighted_input_gradient, ChannelReduce};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, Target, XaiError};
use crate::model::manifest::Normalize;
use crate::model::Network;

/// Default number of quadrature points.
pub const DEFAULT_STEPS: usize = 50;

/// The reference image x₀.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Baseline {
    /// Zeros in normalised space: the dataset's mean image for mean/std normalisation (default, and
    /// captum's default).
    #[default]
    Zeros,
    /// A given (1, C, H, W) image in normalised space; see [`Baseline::black`].
    Image(Tensor),
}

impl Baseline {
    /// A black image (grey value 0) after the model's normalisation.
    pub fn black(
        normalize: Normalize,
        in_channels: usize,
        h: usize,
        w: usize,
        device: &candle_core::Device,
    ) -> candle_core::Result<Self> {
        let v = crate::model::preprocess::normalize(&vec![0.0; h * w], normalize, in_channels);
        Ok(Baseline::Image(Tensor::from_vec(v, (1, in_channels, h, w), device)?))
    }

    fn tensor(&self, like: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Baseline::Zeros => like.zeros_like(),
            Baseline::Image(t) => {
                if t.dims() != like.dims() {
                    candle_core::bail!("IG baseline has shape {:?}, the input {:?}", t.dims(), like.dims());
                }
                t.to_dtype(like.dtype())?.to_device(like.device())
            }
        }
    }
}

/// The quadrature rule over α ∈ [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Quadrature {
    #[default]
    GaussLegendre,
    RiemannTrapezoid,
}

impl Quadrature {
    /// (alphas, weights) for `n` points, exactly as captum's `approximation_parameters`.
    pub fn points(self, n: usize) -> (Vec<f64>, Vec<f64>) {
        match self {
            Quadrature::GaussLegendre => {
                let (x, w) = gauss_legendre(n);
                (x.iter().map(|v| 0.5 * (v + 1.0)).collect(), w.iter().map(|v| 0.5 * v).collect())
            }
            Quadrature::RiemannTrapezoid => {
                if n < 2 {
                    return (vec![1.0], vec![1.0]);
                }
                let alphas = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
                let mut w = vec![1.0 / n as f64; n];
                w[0] /= 2.0;
                w[n - 1] /= 2.0;
                (alphas, w)
            }
        }
    }
}

/// Gauss–Legendre nodes (ascending) and weights on [−1, 1], by Newton's method on Pₙ.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    for i in 0..n {
        // Chebyshev-like first guess of the i-th largest root, then Newton.
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, z);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * z * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            let pn = if n == 0 {
                1.0
            } else if n == 1 {
                z
            } else {
                p1
            };
            let pn1 = if n <= 1 { 1.0 } else { p0 };
            dp = n as f64 * (z * pn - pn1) / (z * z - 1.0);
            let dz = pn / dp;
            z -= dz;
            if dz.abs() < 1e-15 {
                break;
            }
        }
        x[n - 1 - i] = z;
        w[n - 1 - i] = 2.0 / ((1.0 - z * z) * dp * dp);
    }
    (x, w)
}

/// Attributions on the input grid and the completeness check.
#[derive(Debug, Clone)]
pub struct IgResult {
    /// (1, C, H, W).
    pub attributions: Tensor,
    /// f(x) and f(x₀) for the target.
    pub score_input: f32,
    pub score_baseline: f32,
}

/// Integrated Gradients ("ig").
#[derive(Debug, Clone, Default)]
pub struct IntegratedGradients {
    pub baseline: Baseline,
    pub method: Quadrature,
}

impl IntegratedGradients {
    /// The per-channel attributions of `x` (1, C, H, W) with `steps` points, `batch` at a time.
    pub fn attributions(
        &self,
        net: &dyn Network,
        x: &Tensor,
        target: &Target,
        steps: usize,
        batch: usize,
        progress: Progress,
    ) -> Result<IgResult, XaiError> {
        if steps == 0 || batch == 0 {
            return Err(XaiError::BadParams("IG needs steps ≥ 1 and batch ≥ 1".into()));
        }
        let x = x.narrow(0, 0, 1)?.detach();
        let base = self.baseline.tensor(&x)?;
        let delta = (&x - &base)?;
        let (alphas, weights) = self.method.points(steps);
        let mut total: Option<Tensor> = None;
        let mut done = 0;
        for (a_chunk, w_chunk) in alphas.chunks(batch).zip(weights.chunks(batch)) {
            let k = a_chunk.len();
            let a: Vec<f32> = a_chunk.iter().map(|&v| v as f32).collect();
            let a = Tensor::from_vec(a, (k, 1, 1, 1), x.device())?.to_dtype(x.dtype())?;
            let xs = base.broadcast_add(&a.broadcast_mul(&delta)?)?;
            let w: Vec<f32> = w_chunk.iter().map(|&v| v as f32).collect();
            let w = Tensor::from_vec(w, k, x.device())?.to_dtype(x.dtype())?;
            let g = weighted_input_gradient(net, &xs, target, Some(&w))?.sum_keepdim(0)?;
            total = Some(match total {
                None => g,
                Some(t) => (t + g)?,
            });
            done += k;
            if !progress(done, steps) {
                return Err(XaiError::Cancelled);
            }
        }
        let grad = total.ok_or_else(|| XaiError::BadParams("IG got no steps".into()))?;
        let attributions = (grad * delta)?;
        let both = Tensor::cat(&[&x, &base], 0)?;
        let scores: Vec<f32> = target.score(&net.forward(&both)?)?.to_dtype(DType::F32)?.to_vec1()?;
        Ok(IgResult { attributions, score_input: scores[0], score_baseline: scores[1] })
    }
}

impl Explainer for IntegratedGradients {
    fn name(&self) -> &'static str {
        "ig"
    }

    fn explain(
        &self,
        input: &ExplainInput,
        params: &Params,
        progress: Progress,
    ) -> Result<Heatmap, XaiError> {
        let steps = params.steps.unwrap_or(DEFAULT_STEPS);
        let r = self.attributions(input.net, input.input, input.target, steps, params.batch, progress)?;
        Ok(reduce_channels(&r.attributions, ChannelReduce::Sum)?)
    }
}
