//! A model ready to run: its manifest, the network built from the checkpoint, the device, and the
//! per-slice prediction the CLI, the worker and the XAI methods share.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::manifest::{load_manifest, Manifest};
use super::preprocess::{activation, prepare_batch, resize_to_grid};
use super::registry::{build_network, unused_ok, BuiltNetwork};
use super::weights::{load_state_dict, normalize_names, CheckedWeights, WeightsReport};
use super::{ModelError, Network, Task};
use crate::imaging::{Unit, Volume};

/// Slices per forward pass when predicting a whole volume: large enough to use both cores well, small
/// enough to keep memory modest at 512².
pub const PREDICT_BATCH: usize = 4;

pub struct LoadedModel {
    pub manifest: Manifest,
    pub net: Box<dyn Network>,
    pub device: Device,
    /// Output recalibration some checkpoints carry (torchxrayvision's `op_threshs`): probabilities →
    /// probabilities.
    pub calibrate: Option<Box<dyn Fn(&Tensor) -> candle_core::Result<Tensor> + Send + Sync>>,
    pub report: WeightsReport,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.manifest.name)
            .field("arch", &self.manifest.arch)
            .finish()
    }
}

/// Loads the manifest at `manifest_path`, its checkpoint (names as PyTorch saved them) and builds the
/// network. Any missing, unexpected or mis-shaped tensor is one error listing them.
pub fn load_model(manifest_path: &Path, device: &Device) -> Result<LoadedModel, ModelError> {
    let manifest = load_manifest(manifest_path)?;
    let mut sd = load_state_dict(&manifest.weights_path())?;
    normalize_names(&mut sd);
    let checked = CheckedWeights::new(sd, manifest.arch.name()).allow_unused(unused_ok(&manifest));
    let vb = checked.var_builder(device);
    let BuiltNetwork { net, calibrate } = build_network(&manifest, vb, checked.state_dict(), device)
        .map_err(|e| ModelError::Weights {
            path: manifest.weights_path(),
            reason: format!("cannot build {}: {e}", manifest.arch),
        })?;
    let report = checked.finish()?;
    Ok(LoadedModel { manifest, net, device: device.clone(), calibrate, report })
}

impl LoadedModel {
    /// Probabilities for the given slices of `volume`, each as (classes, H, W) on the study's grid
    /// (segmentation) or (classes) (classification). `on_batch(done, total)` is called after each batch
    /// and may return false to stop early (cancellation); then `Ok(None)` is returned.
    pub fn predict_slices(
        &self,
        volume: &Volume,
        slices: &[usize],
        mut on_batch: impl FnMut(usize, usize) -> bool,
    ) -> Result<Option<Vec<Vec<f32>>>, ModelError> {
        let [depth, h, w] = volume.dims();
        if let Some(&bad) = slices.iter().find(|&&z| z >= depth) {
            return Err(ModelError::Other(format!(
                "slice {bad} is out of range: the study has {depth} slices"
            )));
        }
        let hu = volume.unit == Unit::Hu;
        let mut out = Vec::with_capacity(slices.len());
        for (b, chunk) in slices.chunks(PREDICT_BATCH).enumerate() {
            let planes: Vec<&[f32]> = chunk.iter().map(|&z| volume.slice(z)).collect();
            let x = prepare_batch(&planes, h, w, &self.manifest, hu, &self.device)?;
            let logits = self.net.forward(&x)?;
            let mut probs = activation(&logits, self.manifest.activation)?;
            if let Some(cal) = &self.calibrate {
                probs = cal(&probs)?;
            }
            let probs = probs.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
            match self.manifest.task {
                Task::Segmentation => {
                    let (n, c, ph, pw) = probs.dims4()?;
                    let flat: Vec<f32> = probs.flatten_all()?.to_vec1()?;
                    for i in 0..n {
                        let plane = &flat[i * c * ph * pw..(i + 1) * c * ph * pw];
                        out.push(resize_to_grid(plane, c, ph, pw, h, w));
                    }
                }
                Task::Classification => {
                    for row in probs.to_vec2::<f32>()? {
                        out.push(row);
                    }
                }
            }
            if !on_batch((b * PREDICT_BATCH + chunk.len()).min(slices.len()), slices.len()) {
                return Ok(None);
            }
        }
        Ok(Some(out))
    }
}

/// The label map of one slice's probabilities (classes, H, W): label `k + 1` where class k is the most
/// probable and its probability exceeds `threshold`, else 0 (background).
pub fn probabilities_to_labels(probs: &[f32], classes: usize, threshold: f32) -> Vec<u16> {
    let n = probs.len() / classes.max(1);
    (0..n)
        .map(|i| {
            let (best, p) = (0..classes)
                .map(|c| (c, probs[c * n + i]))
                .fold((0, f32::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
            if p > threshold {
                best as u16 + 1
            } else {
                0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_take_the_most_probable_class_over_threshold() {
        // 2 classes × 3 pixels
        let probs = [0.9, 0.2, 0.4, 0.1, 0.7, 0.45];
        assert_eq!(probabilities_to_labels(&probs, 2, 0.5), vec![1, 2, 0]);
        assert_eq!(probabilities_to_labels(&[0.51, 0.49], 1, 0.5), vec![1, 0]);
    }
}
