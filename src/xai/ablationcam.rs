//! Ablation-CAM (Desai & Ramaswamy 2020): channel weight = the relative drop of the target score when
//! that channel of the layer's activations is set to zero, `(score − ablated) / score`. The ablated
//! activations replace the layer's output ([`Tap::replacing`]), `params.batch` channels per forward pass
//! (the input repeated, so skip connections keep the batch size); `progress(done, channels)` after each
//! batch, returning false cancels. When the score is 0 the drop is not divided (`score − ablated`).
//!
//! Differs from pytorch-grad-cam's default `AblationLayer`, which writes `min(A) − 1e7` instead of 0 when
//! the layer's minimum is not 0: here the channel is always zeroed, as in the paper.
//!
//! `Extras::channel_scores`: the weight (relative drop) of each channel.

use candle_core::{DType, Tensor};

use super::cam::{activations, cam_from_weights, input_hw, layer_name};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, XaiError};
use crate::model::Tap;

#[derive(Debug, Clone, Copy, Default)]
pub struct AblationCam;

impl Explainer for AblationCam {
    fn name(&self) -> &'static str {
        "ablationcam"
    }
    fn explain(
        &self,
        input: &ExplainInput,
        params: &Params,
        progress: Progress,
    ) -> Result<Heatmap, XaiError> {
        if params.batch == 0 {
            return Err(XaiError::BadParams("batch must be at least 1".into()));
        }
        let layer = layer_name(input, params)?;
        let x = input.input.narrow(0, 0, 1)?;
        let (a, logits) = activations(input.net, &x, &layer)?;
        let score: f32 = input.target.score(&logits)?.to_dtype(DType::F32)?.to_vec1::<f32>()?[0];
        let (_, k, _, _) = a.dims4()?;
        if !progress(0, k) {
            return Err(XaiError::Cancelled);
        }
        let mut ablated_scores = Vec::with_capacity(k);
        let mut start = 0;
        while start < k {
            let n = params.batch.min(k - start);
            // keep[j, c] = 0 where c = start + j, else 1.
            let keep: Vec<f32> =
                (0..n).flat_map(|j| (0..k).map(move |c| if c == start + j { 0.0 } else { 1.0 })).collect();
            let keep = Tensor::from_vec(keep, (n, k, 1, 1), a.device())?.to_dtype(a.dtype())?;
            let ablated = a.broadcast_mul(&keep)?;
            let xs = x.repeat((n, 1, 1, 1))?;
            let mut tap = Tap::none().replacing(layer.as_str(), ablated);
            let out = input.net.forward_tap(&xs, &mut tap)?;
            let s: Vec<f32> = input.target.score(&out)?.to_dtype(DType::F32)?.to_vec1()?;
            ablated_scores.extend(s);
            start += n;
            if !progress(start, k) {
                return Err(XaiError::Cancelled);
            }
        }
        let weights: Vec<f32> = ablated_scores
            .iter()
            .map(|&s| if score != 0.0 { (score - s) / score } else { score - s })
            .collect();
        let wt = Tensor::from_vec(weights.clone(), k, a.device())?;
        let (h, w) = input_hw(&x)?;
        let mut map = cam_from_weights(&a, &wt, h, w)?;
        map.extras.channel_scores = Some(weights);
        Ok(map)
    }
}
