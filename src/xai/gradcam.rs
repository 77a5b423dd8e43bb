//! Grad-CAM (Selvaraju et al. 2017): channel weight = the spatial mean of the gradient.

use candle_core::Tensor;

use super::cam::{explain_gradient_cam, CamWeights};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, XaiError};

#[derive(Debug, Clone, Copy, Default)]
pub struct GradCam;

impl CamWeights for GradCam {
    fn weights(&self, _a: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        g.flatten_from(2)?.mean(2)?.get(0) // (K)
    }
}

impl Explainer for GradCam {
    fn name(&self) -> &'static str {
        "gradcam"
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
