//! Layer-CAM (Jiang et al. 2021): element weights `relu(g)`, so the map is `relu(Σ_k relu(g_k)·A_k)`.

use candle_core::Tensor;

use super::cam::{explain_gradient_cam, CamWeights};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, XaiError};

#[derive(Debug, Clone, Copy, Default)]
pub struct LayerCam;

impl CamWeights for LayerCam {
    fn weights(&self, _a: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        g.relu()?.get(0) // (K, h, w)
    }
}

impl Explainer for LayerCam {
    fn name(&self) -> &'static str {
        "layercam"
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
