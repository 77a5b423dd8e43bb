//! Grad-CAM++ (Chattopadhyay et al. 2018), the closed form of pytorch-grad-cam's `grad_cam_plusplus.py`
//! (eq. 19 with exponentials): `α = g² / (2g² + Σ_ij A · g³ + ε)` (0 where `g = 0`), ε = 1e-6, channel
//! weight `Σ_ij α · relu(g)`.

use candle_core::Tensor;

use super::cam::{explain_gradient_cam, spatial_sum, CamWeights};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, XaiError};

#[derive(Debug, Clone, Copy, Default)]
pub struct GradCamPlusPlus;

const EPS: f64 = 1e-6;

impl CamWeights for GradCamPlusPlus {
    fn weights(&self, a: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let g2 = g.sqr()?;
        let g3 = g2.mul(g)?;
        let sum_a = spatial_sum(a)?; // (N, K, 1, 1)
        let denom = ((g2.affine(2.0, EPS)?) + g3.broadcast_mul(&sum_a)?)?;
        let alpha = g2.div(&denom)?;
        let alpha = g.ne(0.0)?.where_cond(&alpha, &alpha.zeros_like()?)?;
        let w = alpha.mul(&g.relu()?)?;
        spatial_sum(&w)?.flatten_from(1)?.get(0) // (K)
    }
}

impl Explainer for GradCamPlusPlus {
    fn name(&self) -> &'static str {
        "gradcam++"
    }
    fn explain(
        &self,
        input: &ExplainInput,
        params: &Params,
        progress: Progress,
    ) -> Result<Heatmap, XaiError> {
        explain_gradient_cam(self, input, params, progress)
    }
}
