//! The explain job: one slice, one method, optionally repeated over seeds for a stability figure;
//! the map comes back on the study's grid.

use std::path::PathBuf;
use std::sync::Arc;

use crate::imaging::{Unit, Volume};
use crate::model::preprocess::{prepare_input, resize_bilinear, to_u8_grey};
use crate::model::weights::DeviceChoice;
use crate::model::Task;
use crate::xai::methods::method;
use crate::xai::perturb::stability;
use crate::xai::{ExplainInput, Heatmap, Params, Target, XaiError};

use super::{Context, PipelineError};

/// What to explain.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetSpec {
    /// The predicted mask (segmentation) or the top class (classification).
    Default,
    /// A class by name or index: its logit (classification) or its predicted region (segmentation).
    Class(String),
    /// A region of interest on the study's grid (H×W of the slice): the sum of class 0's logits over it.
    Mask(Vec<bool>),
}

#[derive(Debug, Clone)]
pub struct ExplainJob {
    pub model: PathBuf,
    pub device: DeviceChoice,
    pub volume: Arc<Volume>,
    pub slice: usize,
    pub method: String,
    pub params: Params,
    pub target: TargetSpec,
    /// Runs with seeds seed, seed+1, …; more than one gives a stability figure (stochastic methods).
    pub repeats: usize,
}

/// Run-to-run agreement of a stochastic method over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stability {
    pub repeats: usize,
    /// Mean pairwise IoU of the top-10% masks.
    pub top10_iou: f64,
    /// Mean pairwise Spearman rank correlation.
    pub spearman: f64,
}

/// A heatmap on the study's grid.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub method: String,
    pub model_name: String,
    pub slice: usize,
    /// H×W of the study slice, raw values (signed where the method is).
    pub values: Vec<f32>,
    pub height: usize,
    pub width: usize,
    /// The map as the method made it, on the model's input grid, with its extras.
    pub input_grid: Heatmap,
    /// Superpixel labels resized (nearest) to the study grid, for perturbation methods.
    pub superpixels: Option<Vec<u32>>,
    pub stability: Option<Stability>,
    pub target: Target,
}

/// Nearest-neighbour resize of labels (pixel centres), for superpixels and masks.
pub fn resize_nearest_labels<T: Copy>(src: &[T], h: usize, w: usize, oh: usize, ow: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(oh * ow);
    for y in 0..oh {
        let sy = (((y as f64 + 0.5) * h as f64 / oh as f64) as usize).min(h - 1);
        for x in 0..ow {
            let sx = (((x as f64 + 0.5) * w as f64 / ow as f64) as usize).min(w - 1);
            out.push(src[sy * w + sx]);
        }
    }
    out
}

pub(super) fn explain(job: &ExplainJob, ctx: &mut Context) -> Result<Explanation, PipelineError> {
    (ctx.progress)(0, 1, "loading model");
    let (model, _note) = ctx.cache.get(&job.model, job.device)?;
    let m = &model.manifest;
    let vol = &job.volume;
    let [depth, h, w] = vol.dims();
    if job.slice >= depth {
        return Err(XaiError::BadParams(format!(
            "slice {} is out of range: the study has {depth} slices",
            job.slice
        ))
        .into());
    }
    let hu = vol.unit == Unit::Hu;
    let plane = vol.slice(job.slice);
    let input = prepare_input(plane, h, w, m, hu, &model.device).map_err(XaiError::from)?;
    let [ih, iw] = m.input_size;
    let grey = resize_bilinear(&to_u8_grey(plane, hu, m.window), h, w, ih, iw);
    let class_index = |name: &str| -> Result<usize, XaiError> {
        m.classes
            .iter()
            .position(|c| c == name)
            .or_else(|| name.parse::<usize>().ok().filter(|&i| i < m.classes.len()))
            .ok_or_else(|| {
                XaiError::BadParams(format!("unknown class '{name}' (classes: {})", m.classes.join(", ")))
            })
    };
    let target = match &job.target {
        TargetSpec::Default => Target::default_for(model.net.as_ref(), &input, m.activation, m.threshold)
            .map_err(XaiError::from)?,
        TargetSpec::Class(name) => {
            let c = class_index(name)?;
            match m.task {
                Task::Classification => Target::Class(c),
                Task::Segmentation => {
                    let logits = model.net.forward(&input).map_err(XaiError::from)?;
                    let probs = crate::model::preprocess::activation(&logits, m.activation)
                        .map_err(XaiError::from)?;
                    let plane: Vec<f32> = probs
                        .narrow(1, c, 1)
                        .and_then(|p| p.flatten_all())
                        .and_then(|p| p.to_vec1())
                        .map_err(XaiError::from)?;
                    let mask: Vec<bool> = plane.iter().map(|&p| p > m.threshold).collect();
                    if mask.iter().any(|&b| b) {
                        Target::Region { class: c, mask }
                    } else {
                        Target::Class(c)
                    }
                }
            }
        }
        TargetSpec::Mask(mask) => {
            if mask.len() != h * w {
                return Err(XaiError::BadParams(format!(
                    "target mask has {} pixels, the slice {h}×{w}",
                    mask.len()
                ))
                .into());
            }
            if m.task != Task::Segmentation {
                return Err(XaiError::BadParams("a mask target needs a segmentation model".into()).into());
            }
            Target::Region { class: 0, mask: resize_nearest_labels(mask, h, w, ih, iw) }
        }
    };
    let explainer = method(&job.method, &job.model, &model.device)?;
    let repeats = if explainer.stochastic() { job.repeats.max(1) } else { 1 };
    let mut maps = Vec::with_capacity(repeats);
    for r in 0..repeats {
        let params = Params { seed: job.params.seed.wrapping_add(r as u64), ..job.params.clone() };
        let ex = ExplainInput {
            net: model.net.as_ref(),
            input: &input,
            grey: &grey,
            target: &target,
            default_layer: m.cam_layer.as_deref(),
        };
        let cancel = ctx.cancel;
        let progress = &mut *ctx.progress;
        let mut report = |done: usize, total: usize| {
            progress(r * total + done, repeats * total, &job.method);
            !cancel.is_cancelled()
        };
        match explainer.explain(&ex, &params, &mut report) {
            Ok(map) => maps.push(map),
            Err(XaiError::Cancelled) => return Err(PipelineError::Cancelled),
            Err(e) => return Err(e.into()),
        }
        if ctx.cancel.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
    }
    let stability = (maps.len() > 1).then(|| {
        let (iou, rho) = stability(&maps, 10.0);
        Stability { repeats: maps.len(), top10_iou: iou, spearman: rho }
    });
    let first = maps.swap_remove(0);
    let values = resize_bilinear(&first.values, first.height, first.width, h, w);
    let superpixels =
        first.extras.superpixels.as_ref().map(|s| resize_nearest_labels(s, first.height, first.width, h, w));
    Ok(Explanation {
        method: job.method.clone(),
        model_name: m.name.clone(),
        slice: job.slice,
        values,
        height: h,
        width: w,
        input_grid: first,
        superpixels,
        stability,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_label_resize_keeps_blocks() {
        let src = [1u32, 2, 3, 4];
        assert_eq!(
            resize_nearest_labels(&src, 2, 2, 4, 4),
            vec![1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]
        );
        assert_eq!(resize_nearest_labels(&[1u32, 2, 3, 4, 5, 6, 7, 8, 9], 3, 3, 1, 1), vec![5]);
    }
}
