//! What training writes: the shipped model folder (`model.toml` + f16 `weights.safetensors`, what
//! `--model` accepts) and the resumable checkpoint (`checkpoint.safetensors`, f32 parameters, BatchNorm
//! running statistics and Adam moments; `checkpoint.json`, the loop's state).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::optim::{EarlyStop, Plateau};
use crate::model::weights::save_safetensors_f16;

pub const WEIGHTS_FILE: &str = "weights.safetensors";
pub const CHECKPOINT_TENSORS: &str = "checkpoint.safetensors";
pub const CHECKPOINT_STATE: &str = "checkpoint.json";

/// The loop's state after an epoch: enough to continue exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    pub adam_step: u64,
    pub lr: f64,
    pub plateau: Plateau,
    pub early: EarlyStop,
    /// The seed the run started with; epoch `e` draws from `seed` and `e` (so the RNG state is the pair).
    pub seed: u64,
    /// The command-line settings that must not change on resume (arch, size, batch, loss ...).
    pub fingerprint: String,
}

/// Writes `tensors` (f32) and `state` atomically into `dir`.
pub fn save_checkpoint(
    dir: &Path,
    tensors: &HashMap<String, Tensor>,
    state: &TrainState,
) -> Result<(), String> {
    let path = dir.join(CHECKPOINT_TENSORS);
    let tmp = tempfile::Builder::new()
        .prefix(".radlens-")
        .suffix(".ckpt.tmp")
        .tempfile_in(dir)
        .map_err(|e| format!("{}: cannot write checkpoint ({e})", dir.display()))?;
    let mut cpu = HashMap::with_capacity(tensors.len());
    for (k, t) in tensors {
        cpu.insert(k.clone(), t.to_device(&Device::Cpu).map_err(|e| e.to_string())?);
    }
    candle_core::safetensors::save(&cpu, tmp.path())
        .map_err(|e| format!("{}: cannot write checkpoint ({e})", path.display()))?;
    tmp.as_file().sync_all().map_err(|e| format!("{}: {e}", path.display()))?;
    tmp.persist(&path).map_err(|e| format!("{}: {}", path.display(), e.error))?;
    let json = serde_json::to_string_pretty(state).map_err(|e| e.to_string())?;
    crate::io::write_atomic(&dir.join(CHECKPOINT_STATE), |w| w.write_all(json.as_bytes()))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Reads a checkpoint written by [`save_checkpoint`]; `path` is the folder or either of its files.
pub fn load_checkpoint(
    path: &Path,
    device: &Device,
) -> Result<(HashMap<String, Tensor>, TrainState), String> {
    let dir: PathBuf = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let tp = dir.join(CHECKPOINT_TENSORS);
    let sp = dir.join(CHECKPOINT_STATE);
    for p in [&tp, &sp] {
        if !p.is_file() {
            return Err(format!(
                "{}: no such checkpoint file (resume needs {CHECKPOINT_TENSORS} and {CHECKPOINT_STATE})",
                p.display()
            ));
        }
    }
    let tensors = candle_core::safetensors::load(&tp, device)
        .map_err(|e| format!("{}: cannot read checkpoint ({e})", tp.display()))?;
    let text = std::fs::read_to_string(&sp).map_err(|e| format!("{}: cannot read ({e})", sp.display()))?;
    let state: TrainState =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a training state ({e})", sp.display()))?;
    Ok((tensors, state))
}

/// Writes the shipped model: `weights.safetensors` (f16) then `model.toml` (atomic each).
pub fn save_model_folder(
    dir: &Path,
    manifest_toml: &str,
    tensors: &HashMap<String, Tensor>,
) -> Result<(), String> {
    save_safetensors_f16(&dir.join(WEIGHTS_FILE), tensors).map_err(|e| e.to_string())?;
    crate::io::write_atomic(&dir.join(crate::model::manifest::MANIFEST_FILE), |w| {
        w.write_all(manifest_toml.as_bytes())
    })
    .map_err(|e| e.to_string())
}
