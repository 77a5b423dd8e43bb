//! Method names (the CLI's `--method`, the viewer's menu) → explainers.

use std::path::Path;

use candle_core::Device;

use super::{Explainer, XaiError};

/// Every method, in the order menus show them.
pub const METHODS: [&str; 16] = [
    "gradcam",
    "gradcam++",
    "xgradcam",
    "layercam",
    "hirescam",
    "eigencam",
    "scorecam",
    "ablationcam",
    "lime",
    "kernelshap",
    "occlusion",
    "rise",
    "lrp",
    "ig",
    "saliency",
    "smoothgrad",
];

/// The explainer called `name`. LRP rebuilds the network from the checkpoint with its propagation
/// rules, so it needs the model's manifest; the other methods work on any `Network`.
pub fn method(name: &str, manifest: &Path, device: &Device) -> Result<Box<dyn Explainer>, XaiError> {
    use super::*;
    Ok(match name {
        "gradcam" => Box::new(gradcam::GradCam),
        "gradcam++" => Box::new(gradcam_pp::GradCamPlusPlus),
        "xgradcam" => Box::new(xgradcam::XGradCam),
        "layercam" => Box::new(layercam::LayerCam),
        "hirescam" => Box::new(hirescam::HiResCam),
        "eigencam" => Box::new(eigencam::EigenCam),
        "scorecam" => Box::new(scorecam::ScoreCam),
        "ablationcam" => Box::new(ablationcam::AblationCam),
        "lime" => Box::new(lime::Lime::default()),
        "kernelshap" => Box::new(kernelshap::KernelShap::default()),
        "occlusion" => Box::new(occlusion::Occlusion::default()),
        "rise" => Box::new(rise::Rise::default()),
        "lrp" => Box::new(lrp::Lrp::from_manifest(manifest, device)?),
        "ig" => Box::new(integrated_gradients::IntegratedGradients::default()),
        "saliency" => Box::new(saliency::Saliency::default()),
        "smoothgrad" => Box::new(smoothgrad::SmoothGrad::default()),
        other => {
            return Err(XaiError::BadParams(format!(
                "unknown method '{other}' (one of: {})",
                METHODS.join(", ")
            )))
        }
    })
}
