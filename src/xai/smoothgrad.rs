//! SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies of the input.
//!
//! `N` copies (default 25, `Params::steps`) of `x + ε`, `ε ~ 𝒩(0, σ²)` with `σ = 0.15 · (max x − min x)`
//! (the paper's 15 % noise level), run `Params::batch` at a time. [`SmoothGradKind::Mean`] (default)
//! averages the gradients and sums them over channels, signed; [`SmoothGradKind::Squared`] averages the
//! squared gradients (SmoothGrad², non-negative). The noise comes from a SplitMix64 stream seeded with
//! `Params::seed` (Box–Muller for the normals), so the same seed gives the same map bit for bit on CPU.

use candle_core::Tensor;

use super::saliency::{input_gradient, reduce_channels, ChannelReduce};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, XaiError};

pub const DEFAULT_SAMPLES: usize = 25;
/// σ as a fraction of the input's value range.
pub const DEFAULT_NOISE: f32 = 0.15;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SmoothGradKind {
    #[default]
    Mean,
    Squared,
}

#[derive(Debug, Clone)]
pub struct SmoothGrad {
    pub kind: SmoothGradKind,
    pub noise_level: f32,
}

impl Default for SmoothGrad {
    fn default() -> Self {
        SmoothGrad { kind: SmoothGradKind::Mean, noise_level: DEFAULT_NOISE }
    }
}

/// The perturbation engine's SplitMix64 → standard normals (Box–Muller): seedable, reproducible everywhere.
pub(crate) struct NormalStream {
    rng: super::perturb::SplitMix64,
    spare: Option<f32>,
}

impl NormalStream {
    pub(crate) fn new(seed: u64) -> Self {
        NormalStream { rng: super::perturb::SplitMix64::new(seed ^ 0x5DEE_CE66_D1CE_4E5B), spare: None }
    }

    /// Uniform in (0, 1] (never 0, so the logarithm below is finite).
    fn uniform(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    pub(crate) fn normal(&mut self) -> f32 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some((r * t.sin()) as f32);
        (r * t.cos()) as f32
    }
}

impl Explainer for SmoothGrad {
    fn name(&self) -> &'static str {
        "smoothgrad"
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
        let n = params.steps.unwrap_or(DEFAULT_SAMPLES);
        if n == 0 || params.batch == 0 {
            return Err(XaiError::BadParams("SmoothGrad needs ≥ 1 sample and batch ≥ 1".into()));
        }
        let x = input.input.narrow(0, 0, 1)?.detach();
        let dims = x.dims().to_vec();
        let len = x.elem_count();
        let flat: Vec<f32> = x.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()?;
        let (lo, hi) = flat.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |a, &v| (a.0.min(v), a.1.max(v)));
        let sigma = self.noise_level * (hi - lo);
        let mut rng = NormalStream::new(params.seed);
        let mut total: Option<Tensor> = None;
        let mut done = 0;
        while done < n {
            let k = params.batch.min(n - done);
            let mut noisy = Vec::with_capacity(k * len);
            for _ in 0..k {
                noisy.extend(flat.iter().map(|&v| v + sigma * rng.normal()));
            }
            let mut shape = dims.clone();
            shape[0] = k;
            let xs = Tensor::from_vec(noisy, shape, x.device())?.to_dtype(x.dtype())?;
            let mut g = input_gradient(input.net, &xs, input.target)?;
            if self.kind == SmoothGradKind::Squared {
                g = g.sqr()?;
            }
            let g = g.sum_keepdim(0)?;
            total = Some(match total {
                None => g,
                Some(t) => (t + g)?,
            });
            done += k;
            if !progress(done, n) {
                return Err(XaiError::Cancelled);
            }
        }
        let mean = (total.ok_or_else(|| XaiError::BadParams("no samples".into()))? / n as f64)?;
        Ok(reduce_channels(&mean, ChannelReduce::Sum)?)
    }
}
