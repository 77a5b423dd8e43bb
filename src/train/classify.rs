//! The classification side of `radlens train` (the CXR study's COVID-19 / Non-COVID / Normal set-up):
//! class-index targets, cross-entropy, validation and test scores (accuracy, per-class precision and
//! recall, macro-AUC), staged unfreezing (head → head + last stage → everything) and initial weights
//! from a PyTorch checkpoint.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};

use super::data::Item;
use super::TrainError;
use crate::io::dataset::Sample;
use crate::metrics::classification::{classification_scores, ClassificationScores};
use crate::model::manifest::Arch;
use crate::model::weights::StateDict;
use crate::model::Network;

/// Classifier architectures `radlens train --task classification` builds (torchvision ResNets and
/// DenseNets; VGG, ConvNeXt and torchxrayvision's DenseNet are loaded for inference only).
pub const TRAINABLE: &[Arch] =
    &[Arch::Resnet18, Arch::Resnet34, Arch::Resnet50, Arch::Densenet121, Arch::Densenet201];

/// The head's parameter prefixes (torchvision ResNet `fc`, DenseNet `classifier`).
const HEAD: &[&str] = &["fc.", "classifier."];
/// The last stage's (ResNet `layer4`; DenseNet's last dense block and the norm after it).
const LAST_STAGE: &[&str] = &["layer4.", "features.denseblock4.", "features.norm5."];

/// Which parameters an epoch trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The classifier head only (`fc`, `classifier`).
    Head,
    /// The head and the last stage (`layer4`, `features.denseblock4` + `features.norm5`).
    Partial,
    /// Everything.
    Full,
}

impl Stage {
    /// The stage of 1-based `epoch` for `stages = [head epochs, partial epochs]`.
    pub fn of_epoch(epoch: usize, stages: [usize; 2]) -> Stage {
        if epoch <= stages[0] {
            Stage::Head
        } else if epoch <= stages[0] + stages[1] {
            Stage::Partial
        } else {
            Stage::Full
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Head => "head",
            Stage::Partial => "head + last stage",
            Stage::Full => "all layers",
        }
    }

    /// True when the parameter `name` (a PyTorch state-dict name) trains in this stage.
    pub fn trains(self, name: &str) -> bool {
        let any = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
        match self {
            Stage::Head => any(HEAD),
            Stage::Partial => any(HEAD) || any(LAST_STAGE),
            Stage::Full => true,
        }
    }
}

/// The (N,) u32 class indices of `items`; an item without a label is an error naming it.
pub fn labels_tensor(items: &[&Item], device: &Device) -> Result<Tensor, TrainError> {
    let mut v = Vec::with_capacity(items.len());
    for it in items {
        let l = it.label.ok_or_else(|| TrainError::BadInput(format!("{}: no class label", it.id)))?;
        v.push(l as u32);
    }
    let n = v.len();
    Tensor::from_vec(v, n, device).map_err(super::failed)
}

/// Softmax probabilities of a (N, K) logit tensor as rows.
pub fn probability_rows(logits: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    candle_nn::ops::softmax(logits, D::Minus1)?.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec2()
}

/// Mean cross-entropy and the scores of `net` over `items` (inference mode), in batches of `batch`.
/// `inputs` turns a batch of items into the network input.
pub fn validate(
    net: &dyn Network,
    items: &[Item],
    classes: usize,
    batch: usize,
    mut inputs: impl FnMut(&[&Item]) -> candle_core::Result<Tensor>,
) -> Result<(f64, ClassificationScores), TrainError> {
    let _mode = crate::model::train_mode::TrainMode::enter(false);
    let mut loss_sum = 0.0;
    let mut probs = Vec::with_capacity(items.len());
    let mut truth = Vec::with_capacity(items.len());
    for chunk in items.chunks(batch.max(1)) {
        let refs: Vec<&Item> = chunk.iter().collect();
        let x = inputs(&refs).map_err(super::failed)?;
        let labels = labels_tensor(&refs, x.device())?;
        let logits = net.forward(&x).map_err(super::failed)?.detach();
        let l = super::loss::cross_entropy(&logits, &labels)
            .and_then(|t| t.to_scalar::<f32>())
            .map_err(super::failed)?;
        loss_sum += l as f64 * chunk.len() as f64;
        probs.extend(probability_rows(&logits).map_err(super::failed)?);
        truth.extend(refs.iter().filter_map(|it| it.label));
    }
    Ok((loss_sum / items.len().max(1) as f64, classification_scores(&probs, &truth, classes)))
}

/// Scores the written model folder on `samples` as `radlens predict` runs it (each image at its own
/// size through the manifest's pipeline). `classes` are the manifest's, in order.
pub fn score_model_folder(
    manifest: &Path,
    samples: &[Sample],
    device: &Device,
) -> Result<ClassificationScores, TrainError> {
    let model = crate::model::load_model(manifest, device).map_err(|e| TrainError::Failed(e.to_string()))?;
    let classes = &model.manifest.classes;
    let mut probs = Vec::with_capacity(samples.len());
    let mut truth = Vec::with_capacity(samples.len());
    for s in samples {
        let label = s
            .label
            .as_ref()
            .ok_or_else(|| TrainError::BadInput(format!("{}: no class label", s.image.display())))?;
        let t = classes.iter().position(|c| c == label).ok_or_else(|| {
            TrainError::BadInput(format!("{}: label '{label}' is not one of the classes", s.image.display()))
        })?;
        let vol = super::data::load_volume(&s.image).map_err(|e| TrainError::BadInput(e.to_string()))?;
        let p = model
            .predict_slices(&vol, &[0], |_, _| true)
            .map_err(|e| TrainError::Failed(e.to_string()))?
            .and_then(|v| v.into_iter().next())
            .ok_or_else(|| TrainError::Failed("prediction returned nothing".into()))?;
        probs.push(p);
        truth.push(t);
    }
    Ok(classification_scores(&probs, &truth, classes.len()))
}

/// One line: accuracy, macro precision, macro-AUC.
pub fn scores_line(s: &ClassificationScores) -> String {
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    format!(
        "accuracy {:.4}  macro precision {}  macro recall {}  macro-AUC {}",
        s.accuracy,
        f(s.macro_precision),
        f(s.macro_recall),
        f(s.macro_auc)
    )
}

/// Copies initial weights from a PyTorch checkpoint (`.safetensors` / `.pth`, state-dict names) into
/// the network's parameters `vars`. Every parameter must be in the file with its shape, except:
/// the head (`fc.*`, `classifier.*`) is kept freshly initialised when its shape differs (another number of classes),
/// and a 3-channel first convolution is summed over its input channels for a 1-channel model (the
/// usual way to start a grey model from ImageNet weights). Returns notes for what was adapted.
pub fn load_initial_weights(
    path: &Path,
    vars: &[(String, candle_core::Var)],
) -> Result<Vec<String>, TrainError> {
    let mut sd: StateDict =
        crate::model::weights::load_state_dict(path).map_err(|e| TrainError::BadInput(e.to_string()))?;
    crate::model::weights::normalize_names(&mut sd);
    let bad = |reason: String| TrainError::BadInput(format!("{}: {reason}", path.display()));
    let mut notes = Vec::new();
    for (name, var) in vars {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let Some(t) = sd.get(name) else {
            return Err(bad(format!("tensor '{name}' missing (the --init checkpoint must match --arch)")));
        };
        let want = var.dims().to_vec();
        let t = t.to_dtype(DType::F32).and_then(|t| t.to_device(var.device())).map_err(super::failed)?;
        let t = if t.dims() == want.as_slice() {
            t
        } else if HEAD.iter().any(|p| name.starts_with(p)) {
            notes.push(format!(
                "{name}: {:?} in the checkpoint, {want:?} here: trained from scratch",
                t.dims()
            ));
            continue;
        } else if want.len() == 4
            && t.rank() == 4
            && want[1] == 1
            && t.dims()[1] == 3
            && t.dims()[0] == want[0]
        {
            notes.push(format!("{name}: 3 input channels summed into 1"));
            t.sum_keepdim(1).map_err(super::failed)?
        } else {
            return Err(bad(format!("tensor '{name}' has shape {:?}, expected {want:?}", t.dims())));
        };
        var.set(&t).map_err(|e| bad(format!("tensor '{name}': {e}")))?;
    }
    Ok(notes)
}
