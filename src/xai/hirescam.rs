//! HiResCAM (Draelos & Carin 2020): element weights `g`, so the map is `relu(Σ_k g_k·A_k)`.

use candle_core::Tensor;

use super::cam::{explain_gradient_cam, CamWeights};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, XaiError};

#[derive(Debug, Clone, Copy, Default)]
pub struct HiResCam;

impl CamWeights for HiResCam {
    fn weights(&self, _a: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        g.get(0) // (K, h, w)
    }
}

impl Explainer for HiResCam {
    fn name(&self) -> &'static str {
        "hirescam"
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
