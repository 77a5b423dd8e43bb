//! Explanations: heatmaps that say which input pixels drove a model's output.
//!
//! One API for every method ([`Explainer`]); a [`Target`] reduces the model output to one scalar per
//! batch item (a class logit, the sum of a class's logits over a region, or the whole output); methods
//! return a signed [`Heatmap`] on the model's input grid. Each method is one file: the CAM family shares
//! one recipe (activations and gradients at a layer, channel weights, weighted sum, ReLU), the
//! perturbation methods share one superpixel-and-batch engine.

pub mod integrated_gradients;
pub mod kernelshap;
pub mod lime;
pub mod lrp;
pub mod methods;
pub mod occlusion;
pub mod perturb;
pub mod rise;
pub mod saliency;
pub mod smoothgrad;
pub mod superpixels;

use candle_core::{Tensor, D};

use crate::model::{Network, Task};

pub mod ablationcam;
pub mod cam;
pub mod eigencam;
pub mod gradcam;
pub mod gradcam_pp;
pub mod hirescam;
pub mod layercam;
pub mod scorecam;
pub mod xgradcam;

/// What to explain: a scalar per batch item derived from the logits.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Classification: the logit of this class (one label of a multi-label model too).
    Class(usize),
    /// Segmentation: the sum of this class's logits over the pixels of `mask` (model input grid, H×W,
    /// row-major), as pytorch-grad-cam's `SemanticSegmentationTarget`.
    Region { class: usize, mask: Vec<bool> },
    /// The sum of the whole output.
    Sum,
}

impl Target {
    /// The target's value for each batch item: logits (N, C) or (N, C, H, W) → (N,).
    pub fn score(&self, logits: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Target::Sum => logits.flatten_from(1)?.sum(D::Minus1),
            Target::Class(c) => match logits.rank() {
                2 => logits.narrow(1, *c, 1)?.squeeze(1),
                _ => logits.narrow(1, *c, 1)?.flatten_from(1)?.sum(D::Minus1),
            },
            Target::Region { class, mask } => {
                let (_, _, h, w) = logits.dims4()?;
                if mask.len() != h * w {
                    candle_core::bail!("target mask has {} pixels, the model output {h}×{w}", mask.len());
                }
                let m: Vec<f32> = mask.iter().map(|&b| b as u8 as f32).collect();
                let m = Tensor::from_vec(m, (1, h * w), logits.device())?.to_dtype(logits.dtype())?;
                let plane = logits.narrow(1, *class, 1)?.flatten_from(1)?; // (N, H*W)
                plane.broadcast_mul(&m)?.sum(D::Minus1)
            }
        }
    }

    /// The default target: the predicted region of class 0 for segmentation (probability >
    /// `threshold` after the model's activation; the whole output when nothing is predicted), the top
    /// class for classification.
    pub fn default_for(
        net: &dyn Network,
        input: &Tensor,
        activation: crate::model::manifest::Activation,
        threshold: f32,
    ) -> candle_core::Result<Target> {
        let logits = net.forward(input)?;
        match net.task() {
            Task::Classification => {
                let row: Vec<f32> = logits.narrow(0, 0, 1)?.flatten_all()?.to_vec1()?;
                let best =
                    row.iter()
                        .enumerate()
                        .fold((0, f32::NEG_INFINITY), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
                Ok(Target::Class(best.0))
            }
            Task::Segmentation => {
                let probs = crate::model::preprocess::activation(&logits, activation)?;
                let plane: Vec<f32> = probs.narrow(0, 0, 1)?.narrow(1, 0, 1)?.flatten_all()?.to_vec1()?;
                let mask: Vec<bool> = plane.iter().map(|&p| p > threshold).collect();
                if mask.iter().any(|&b| b) {
                    Ok(Target::Region { class: 0, mask })
                } else {
                    Ok(Target::Sum)
                }
            }
        }
    }
}

/// A signed map on the model's input grid (H×W, row-major), raw values (not min-max scaled), plus what
/// some methods know besides the map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Heatmap {
    pub values: Vec<f32>,
    pub height: usize,
    pub width: usize,
    pub extras: Extras,
}

/// Method-specific results shown next to the map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    /// Perturbation methods: the superpixel label of each pixel (H×W).
    pub superpixels: Option<Vec<u32>>,
    /// LIME / KernelSHAP: the weight of each superpixel.
    pub superpixel_weights: Option<Vec<f32>>,
    /// LIME: R² of the weighted ridge surrogate on its samples.
    pub surrogate_r2: Option<f32>,
    /// Score-CAM / Ablation-CAM: the score of each channel.
    pub channel_scores: Option<Vec<f32>>,
    /// LIME: the perturbed samples it scored (adaptive LIME stops before its cap once the weights
    /// settle).
    pub samples_used: Option<usize>,
}

/// Parameters shared by the methods; each reads what it needs and documents its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// CAM layer (PyTorch module path); default: the manifest's `cam_layer`.
    pub layer: Option<String>,
    pub seed: u64,
    /// Perturbation samples (LIME 1000, KernelSHAP 1000 by default when `None`).
    pub samples: Option<usize>,
    /// Forward batch size for batched methods.
    pub batch: usize,
    /// Integrated Gradients steps, SmoothGrad samples.
    pub steps: Option<usize>,
    /// Superpixels for LIME and KernelSHAP; `None`: the method's own (quickshift, as lime_image).
    pub segmentation: Option<superpixels::Segmentation>,
}

impl Default for Params {
    fn default() -> Self {
        Params { layer: None, seed: 0, samples: None, batch: 16, steps: None, segmentation: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum XaiError {
    #[error("layer '{layer}' is not a layer of this model (layers: {available})")]
    UnknownLayer { layer: String, available: String },
    #[error("{0}")]
    BadParams(String),
    #[error("cancelled")]
    Cancelled,
    #[error("explanation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Everything an explainer gets besides its parameters.
pub struct ExplainInput<'a> {
    pub net: &'a dyn Network,
    /// (1, C, H, W), normalised as the model expects.
    pub input: &'a Tensor,
    /// The 8-bit grey image at the input size (H×W), for superpixels.
    pub grey: &'a [f32],
    pub target: &'a Target,
    /// The manifest's default CAM layer.
    pub default_layer: Option<&'a str>,
}

/// Called with (done, total); returning false cancels.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize) -> bool;

pub trait Explainer: Send + Sync {
    /// The CLI name (`gradcam`, `gradcam++`, `lime`, ...).
    fn name(&self) -> &'static str;
    /// True when the map depends on a seed (shown with a stability figure).
    fn stochastic(&self) -> bool {
        false
    }
    fn explain(&self, input: &ExplainInput, params: &Params, progress: Progress)
        -> Result<Heatmap, XaiError>;
}
