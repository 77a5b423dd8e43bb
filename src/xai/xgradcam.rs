//! XGrad-CAM (Fu et al. 2020): channel weight `Σ_ij g·A / (Σ_ij A + ε)`, ε = 1e-7 (pytorch-grad-cam).

use candle_core::Tensor;

use super::cam::{explain_gradient_cam, spatial_sum, CamWeights};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, XaiError};

#[derive(Debug, Clone, Copy, Default)]
pub struct XGradCam;

impl CamWeights for XGradCam {
    fn weights(&self, a: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let sum_a = (spatial_sum(a)? + 1e-7)?;
        let w = g.mul(a)?.broadcast_div(&sum_a)?;
        spatial_sum(&w)?.flatten_from(1)?.get(0) // (K)
    }
}

impl Explainer for XGradCam {
    fn name(&self) -> &'static str {
        "xgradcam"
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
