//! Saliency (Simonyan et al. 2014): the gradient of the target with respect to the input.
//!
//! The map is `max_c |∂score/∂x_c|` (channel reduction [`ChannelReduce::MaxAbs`], the paper's and
//! captum's `Saliency(abs=True)` followed by a max over channels); [`ChannelReduce::SumAbs`] sums the
//! absolute gradients instead. One forward and one backward.

use candle_core::{Tensor, Var};

use super::{ExplainInput, Explainer, Heatmap, Params, Progress, Target, XaiError};
use crate::model::Network;

/// The gradient of `Σ_n target.score(net(x))_n` with respect to `x` (same shape as `x`). Batch items
/// are independent in inference mode, so for a batch this is each item's own gradient.
pub fn input_gradient(net: &dyn Network, x: &Tensor, target: &Target) -> candle_core::Result<Tensor> {
    weighted_input_gradient(net, x, target, None)
}

/// As [`input_gradient`], with item `n`'s score multiplied by `weights[n]` first (IG's quadrature
/// weights), so one backward gives every weighted gradient.
pub(crate) fn weighted_input_gradient(
    net: &dyn Network,
    x: &Tensor,
    target: &Target,
    weights: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let v = Var::from_tensor(&x.detach())?;
    let logits = net.forward(v.as_tensor())?;
    let mut score = target.score(&logits)?;
    if let Some(w) = weights {
        score = (score * w)?;
    }
    let grads = score.sum_all()?.backward()?;
    match grads.get(v.as_tensor()) {
        Some(g) => Ok(g.clone()),
        // The target does not depend on the input at all.
        None => v.as_tensor().zeros_like(),
    }
}

/// How a per-channel map (1, C, H, W) becomes one H×W map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ChannelReduce {
    /// max over channels of |v| (default for saliency).
    #[default]
    MaxAbs,
    /// Σ over channels of |v|.
    SumAbs,
    /// Σ over channels of v, signed (IG, SmoothGrad, LRP).
    Sum,
}

/// Reduces a (1, C, H, W) tensor to a [`Heatmap`].
pub fn reduce_channels(t: &Tensor, how: ChannelReduce) -> candle_core::Result<Heatmap> {
    let (_, _, h, w) = t.dims4()?;
    let t = t.narrow(0, 0, 1)?.squeeze(0)?.to_dtype(candle_core::DType::F32)?;
    let r = match how {
        ChannelReduce::MaxAbs => t.abs()?.max(0)?,
        ChannelReduce::SumAbs => t.abs()?.sum(0)?,
        ChannelReduce::Sum => t.sum(0)?,
    };
    Ok(Heatmap { values: r.flatten_all()?.to_vec1()?, height: h, width: w, extras: Default::default() })
}

/// Plain-gradient saliency ("saliency").
#[derive(Debug, Clone, Default)]
pub struct Saliency {
    pub reduce: ChannelReduce,
}

impl Explainer for Saliency {
    fn name(&self) -> &'static str {
        "saliency"
    }

    fn explain(
        &self,
        input: &ExplainInput,
        _params: &Params,
        progress: Progress,
    ) -> Result<Heatmap, XaiError> {
        let g = input_gradient(input.net, input.input, input.target)?;
        if !progress(1, 1) {
            return Err(XaiError::Cancelled);
        }
        Ok(reduce_channels(&g, self.reduce)?)
    }
}
