//! Training (`radlens train`): a model folder that `--model` accepts, from a dataset folder.
//!
//! - [`data`]: samples loaded once as 8-bit grey planes at the model's input size;
//! - [`augment`]: the seeded random affine applied to image and mask alike;
//! - [`loss`]: Dice, BCE, BCE + Dice, Focal Tversky (+ Dice), cross-entropy;
//! - [`optim`]: Adam with saveable state, ReduceLROnPlateau, early stopping;
//! - [`checkpoint`]: the f16 model folder and the resumable f32 checkpoint.
//!
//! - [`classify`]: class targets, staged unfreezing and classification scores.
//!
//! Segmentation: train on the train split, validate (mean per-image Dice) after every epoch, keep the
//! best epoch's weights as the model folder, stop early after `patience` epochs without a new best, then
//! score the test split with the written model (at each image's own resolution, as `radlens predict`
//! runs it). Classification is the same loop with cross-entropy, validation accuracy as the score that
//! picks the best epoch, and accuracy / per-class precision / macro-AUC on the test split; `stages`
//! trains the head alone, then the head and the last stage, before everything (a new Adam at each stage
//! change, as when an optimiser is rebuilt for the unfrozen parameters). Deterministic on the CPU for a
//! given seed; `--resume` continues exactly.

pub mod augment;
pub mod checkpoint;
pub mod classify;
pub mod data;
pub mod loss;
pub mod optim;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use self::checkpoint::{load_checkpoint, save_checkpoint, save_model_folder, TrainState, WEIGHTS_FILE};
use self::data::{load_item, Item};
use self::loss::SegLoss;
use self::optim::{Adam, EarlyStop, Plateau};
use crate::imaging::SplitMix64;
use crate::io::dataset::{open_dataset, DatasetOptions, Sample, Split};
use crate::model::manifest::{load_manifest, Arch, EncoderName, Manifest, MANIFEST_FILE};
use crate::model::preprocess::normalize;
use crate::model::registry::build_network;
use crate::model::train_mode::TrainMode;
use crate::model::weights::StateDict;
use crate::model::{Network, Task};

/// Why training failed: bad input (exit 2) or anything else (exit 1).
#[derive(Debug, Clone, PartialEq)]
pub enum TrainError {
    BadInput(String),
    Failed(String),
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::BadInput(s) | TrainError::Failed(s) => f.write_str(s),
        }
    }
}

fn failed(e: impl std::fmt::Display) -> TrainError {
    TrainError::Failed(format!("training failed: {e}"))
}

/// Everything `radlens train` was asked for.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub data: PathBuf,
    pub arch: Arch,
    pub encoder: Option<EncoderName>,
    pub task: Task,
    pub mask_dir: Option<String>,
    /// Square input side.
    pub size: usize,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub loss: SegLoss,
    /// Early-stopping patience in epochs (ReduceLROnPlateau uses a third of it, at least 2).
    pub patience: usize,
    pub seed: u64,
    /// `[arch_config]` entries as TOML `key = value` lines.
    pub arch_config: Vec<String>,
    /// The manifest's `name` (default: the output folder's name).
    pub name: Option<String>,
    pub resume: Option<PathBuf>,
    pub augment: bool,
    /// Classification: epochs training only the head, then only the head and the last stage, before
    /// all layers train.
    pub stages: [usize; 2],
    /// Initial weights (PyTorch state-dict names) instead of the seeded initialisation.
    pub init: Option<PathBuf>,
    pub out: PathBuf,
}

/// One epoch's row of `train_log.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    /// The validation score that picks the best epoch: mean Dice (segmentation) or accuracy
    /// (classification).
    pub val_score: f64,
    pub lr: f64,
    pub seconds: f64,
}

/// Scores of a segmentation model over a set of images: means of the per-image values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegScores {
    pub dice: f64,
    pub precision: f64,
    pub recall: f64,
    pub images: usize,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub epochs_run: usize,
    pub best_epoch: usize,
    /// Best validation Dice (segmentation) or accuracy (classification).
    pub best_val_score: f64,
    pub test: Option<SegScores>,
    pub test_classification: Option<crate::metrics::classification::ClassificationScores>,
    pub log: Vec<EpochLog>,
    pub seconds_per_epoch: f64,
}

pub const LOG_FILE: &str = "train_log.csv";
pub const CURVES_FILE: &str = "curves.png";

/// The `model.toml` text for `cfg`; `classes` are the dataset's (classification) or ignored.
pub fn manifest_text(cfg: &TrainConfig, name: &str, classes: &[String]) -> String {
    let mut s = String::new();
    s.push_str(&format!("name = {}\n", toml_str(name)));
    s.push_str(&format!("arch = \"{}\"\n", cfg.arch.name()));
    if let Some(e) = cfg.encoder {
        s.push_str(&format!("encoder = \"{}\"\n", e.name()));
    }
    s.push_str(&format!("weights = \"{WEIGHTS_FILE}\"\n"));
    if cfg.task == Task::Classification {
        s.push_str("task = \"classification\"\nactivation = \"softmax\"\n");
    } else {
        s.push_str("task = \"segmentation\"\nactivation = \"sigmoid\"\n");
    }
    s.push_str(&format!("input_size = [{0}, {0}]\nin_channels = 1\nnormalize = \"unit\"\n", cfg.size));
    if cfg.task == Task::Classification {
        let list: Vec<String> = classes.iter().map(|c| toml_str(c)).collect();
        let cam = if matches!(cfg.arch, Arch::Densenet121 | Arch::Densenet201) {
            "features.denseblock4"
        } else {
            "layer4"
        };
        s.push_str(&format!("classes = [{}]\ncam_layer = \"{cam}\"\n", list.join(", ")));
    } else {
        s.push_str("classes = [\"infection\"]\n");
        let cam = match cfg.arch {
            Arch::Unet => "down4",
            _ => "encoder.layer4",
        };
        let cam =
            if cfg.encoder == Some(EncoderName::Densenet121) { "encoder.features.denseblock4" } else { cam };
        s.push_str(&format!("cam_layer = \"{cam}\"\nthreshold = 0.5\n"));
    }
    if !cfg.arch_config.is_empty() {
        s.push_str("\n[arch_config]\n");
        for line in &cfg.arch_config {
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn check_manifest(text: &str) -> Result<Manifest, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(scratch.path().join(WEIGHTS_FILE), b"").map_err(|e| e.to_string())?;
    let p = scratch.path().join(MANIFEST_FILE);
    std::fs::write(&p, text).map_err(|e| e.to_string())?;
    let m = load_manifest(&p).map_err(|e| match e {
        crate::model::ModelError::Manifest { reason, .. } => reason,
        e => e.to_string(),
    })?;
    Ok(m)
}

/// Settings that must match for `--resume` to continue the same run.
fn fingerprint(cfg: &TrainConfig) -> String {
    format!(
        "arch={} encoder={:?} size={} batch={} loss={} augment={} arch_config={:?} stages={:?} init={:?} data={}",
        cfg.arch.name(),
        cfg.encoder.map(|e| e.name()),
        cfg.size,
        cfg.batch,
        if cfg.task == Task::Classification { "cross-entropy".to_string() } else { format!("{:?}", cfg.loss) },
        cfg.augment,
        cfg.arch_config,
        cfg.stages,
        cfg.init,
        cfg.data.display()
    )
}

/// PyTorch-like seeded initialisation (candle's CPU generator cannot be seeded): convolution and linear
/// weights He-uniform over their fan-in, biases 0, BatchNorm γ 1, β 0, running mean 0, variance 1.
pub fn init_weights(varmap: &VarMap, seed: u64) -> candle_core::Result<()> {
    let vars = sorted_vars(varmap);
    let mut rng = SplitMix64::new(seed);
    for (name, var) in vars {
        let dims = var.dims().to_vec();
        let dev = var.device().clone();
        let n: usize = dims.iter().product();
        let values: Vec<f32> = if name.ends_with("running_var") {
            vec![1.0; n]
        } else if name.ends_with("running_mean") || name.ends_with("num_batches_tracked") {
            vec![0.0; n]
        } else if dims.len() == 1 {
            vec![if name.ends_with("weight") { 1.0 } else { 0.0 }; n]
        } else {
            let fan_in: usize = dims[1..].iter().product::<usize>().max(1);
            let bound = (6.0 / fan_in as f64).sqrt();
            (0..n).map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32).collect()
        };
        var.set(&Tensor::from_vec(values, dims, &dev)?)?;
    }
    Ok(())
}

fn sorted_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().map(|d| d.clone()).unwrap_or_default();
    let mut v: Vec<(String, Var)> = data.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var") || name.ends_with("num_batches_tracked")
}

/// The network's tensors by PyTorch name (parameters and BatchNorm buffers).
pub fn state_tensors(varmap: &VarMap) -> HashMap<String, Tensor> {
    sorted_vars(varmap).into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect()
}

/// Dice, precision and recall of a binary prediction against a binary target (`> 0.5` each); both empty
/// scores 1 (nothing to find, nothing found).
pub fn binary_scores(pred: &[f32], target: &[f32]) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut fneg) = (0f64, 0f64, 0f64);
    for (&p, &t) in pred.iter().zip(target) {
        match (p > 0.5, t > 0.5) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fneg += 1.0,
            _ => {}
        }
    }
    let ratio = |num: f64, den: f64| if den == 0.0 { 1.0 } else { num / den };
    (ratio(2.0 * tp, 2.0 * tp + fp + fneg), ratio(tp, tp + fp), ratio(tp, tp + fneg))
}

struct Run<'a> {
    cfg: &'a TrainConfig,
    net: Box<dyn Network>,
    manifest: Manifest,
    device: Device,
}

impl Run<'_> {
    /// The (N, C, S, S) input of `items` and, for segmentation, their (N, 1, S, S) target, augmented
    /// with `rng` when given (image and mask by the same transform).
    fn batch(
        &self,
        items: &[&Item],
        mut rng: Option<&mut SplitMix64>,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let s = self.cfg.size;
        let c = self.manifest.in_channels;
        let seg = self.cfg.task == Task::Segmentation;
        let mut xs = Vec::with_capacity(items.len() * c * s * s);
        let mut ts = Vec::with_capacity(if seg { items.len() * s * s } else { 0 });
        for it in items {
            let empty = vec![0.0; s * s];
            let mask = if seg { Some(it.mask.as_deref().unwrap_or(&empty)) } else { None };
            let (g, m) = match rng.as_deref_mut() {
                Some(r) => {
                    let p = augment::AffineParams::random(r, s, s);
                    augment::apply(&it.grey, 1, mask, s, s, &p)
                }
                None => (it.grey.clone(), mask.map(<[f32]>::to_vec)),
            };
            xs.extend(normalize(&g, self.manifest.normalize, c));
            if seg {
                ts.extend(m.unwrap_or_else(|| empty.clone()));
            }
        }
        let n = items.len();
        let x = Tensor::from_vec(xs, (n, c, s, s), &self.device)?;
        let t = if seg { Some(Tensor::from_vec(ts, (n, 1, s, s), &self.device)?) } else { None };
        Ok((x, t))
    }

    /// The training loss of one batch (train-mode forward).
    fn loss(&self, items: &[&Item], rng: Option<&mut SplitMix64>) -> Result<Tensor, TrainError> {
        let (x, t) = self.batch(items, rng).map_err(failed)?;
        let _mode = TrainMode::enter(true);
        let logits = self.net.forward(&x).map_err(failed)?;
        match t {
            Some(t) => self.cfg.loss.compute(&logits, &t).map_err(failed),
            None => {
                let labels = classify::labels_tensor(items, &self.device)?;
                loss::cross_entropy(&logits, &labels).map_err(failed)
            }
        }
    }

    /// Validation loss and score (mean per-image Dice, or accuracy) over `items` in inference mode,
    /// with a line of further scores for classification.
    fn validate(&self, items: &[Item], classes: usize) -> Result<(f64, f64, String), TrainError> {
        if self.cfg.task == Task::Classification {
            let (l, sc) = classify::validate(self.net.as_ref(), items, classes, self.cfg.batch, |b| {
                self.batch(b, None).map(|(x, _)| x)
            })?;
            let auc = sc.macro_auc.map_or("n/a".into(), |a| format!("{a:.4}"));
            return Ok((l, sc.accuracy, format!("  val macro-AUC {auc}")));
        }
        let (l, d) = self.validate_segmentation(items).map_err(failed)?;
        Ok((l, d, String::new()))
    }

    fn validate_segmentation(&self, items: &[Item]) -> candle_core::Result<(f64, f64)> {
        let _mode = TrainMode::enter(false);
        let (mut loss_sum, mut dice_sum) = (0.0, 0.0);
        for chunk in items.chunks(self.cfg.batch.max(1)) {
            let refs: Vec<&Item> = chunk.iter().collect();
            let (x, t) = self.batch(&refs, None)?;
            let t = t.ok_or_else(|| candle_core::Error::Msg("segmentation batch without masks".into()))?;
            let logits = self.net.forward(&x)?.detach();
            loss_sum += self.cfg.loss.compute(&logits, &t)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            let prob = candle_nn::ops::sigmoid(&logits)?;
            let thr = self.manifest.threshold as f64;
            let pred = prob.ge(thr)?.to_dtype(DType::F32)?;
            let s2 = self.cfg.size * self.cfg.size;
            let p = pred.flatten_all()?.to_vec1::<f32>()?;
            let tv = t.flatten_all()?.to_vec1::<f32>()?;
            for i in 0..chunk.len() {
                dice_sum += binary_scores(&p[i * s2..(i + 1) * s2], &tv[i * s2..(i + 1) * s2]).0;
            }
        }
        let n = items.len().max(1) as f64;
        Ok((loss_sum / n, dice_sum / n))
    }
}

/// Loads `samples` at the model's size: with their masks (segmentation) or class indices into
/// `classes` (classification).
fn load_items(
    samples: &[Sample],
    size: usize,
    task: Task,
    classes: &[String],
) -> Result<Vec<Item>, TrainError> {
    let seg = task == Task::Segmentation;
    samples
        .iter()
        .map(|s| {
            load_item(s, size, None, seg, if seg { &[] } else { classes })
                .map_err(|e| TrainError::BadInput(e.to_string()))
        })
        .collect()
}

/// Scores the model folder at `manifest` on `samples` at their own resolution (prediction resized back
/// to the image's grid, as `radlens predict` does).
pub fn score_model_folder(
    manifest: &Path,
    samples: &[Sample],
    device: &Device,
) -> Result<SegScores, TrainError> {
    let model = crate::model::load_model(manifest, device).map_err(|e| TrainError::Failed(e.to_string()))?;
    let thr = model.manifest.threshold;
    let (mut d, mut p, mut r) = (0.0, 0.0, 0.0);
    for s in samples {
        let vol = data::load_volume(&s.image).map_err(|e| TrainError::BadInput(e.to_string()))?;
        let mask_path = s.mask.as_ref().ok_or_else(|| {
            TrainError::BadInput(format!("{}: no mask found for this image", s.image.display()))
        })?;
        let mask = data::load_volume(mask_path).map_err(|e| TrainError::BadInput(e.to_string()))?;
        let probs = model
            .predict_slices(&vol, &[0], |_, _| true)
            .map_err(|e| TrainError::Failed(e.to_string()))?
            .and_then(|v| v.into_iter().next())
            .ok_or_else(|| TrainError::Failed("prediction returned nothing".into()))?;
        let hw = vol.height() * vol.width();
        if mask.data().len() != hw {
            return Err(TrainError::BadInput(format!(
                "{}: mask size differs from its image",
                mask_path.display()
            )));
        }
        let pred: Vec<f32> = probs[..hw].iter().map(|&v| if v >= thr { 1.0 } else { 0.0 }).collect();
        let gt = data::binarize(mask.data());
        let (a, b, c) = binary_scores(&pred, &gt);
        d += a;
        p += b;
        r += c;
    }
    let n = samples.len().max(1) as f64;
    Ok(SegScores { dice: d / n, precision: p / n, recall: r / n, images: samples.len() })
}

/// Checks what the task needs of the architecture and the flags.
fn check_task(cfg: &TrainConfig) -> Result<(), TrainError> {
    let bad = |m: String| Err(TrainError::BadInput(m));
    match cfg.task {
        Task::Segmentation => {
            if cfg.arch.task() != Task::Segmentation {
                return bad(format!(
                    "--arch {}: a classifier; use --task classification or a U-Net (unet, resnet-unet, smp-unet)",
                    cfg.arch
                ));
            }
            if cfg.stages != [0, 0] {
                return bad("--stages: staged unfreezing is for --task classification".into());
            }
        }
        Task::Classification => {
            if !classify::TRAINABLE.contains(&cfg.arch) {
                let names: Vec<&str> = classify::TRAINABLE.iter().map(|a| a.name()).collect();
                return bad(format!(
                    "--arch {}: --task classification trains {}",
                    cfg.arch,
                    names.join(", ")
                ));
            }
        }
    }
    if cfg.batch == 0 || cfg.size < 16 || cfg.epochs == 0 {
        return bad("--batch and --epochs must be at least 1 and --size at least 16".into());
    }
    Ok(())
}

/// Runs training as `cfg` says, printing one line per epoch to `out`.
pub fn run(cfg: &TrainConfig, device: &Device, out: &mut dyn Write) -> Result<TrainSummary, TrainError> {
    check_task(cfg)?;
    let classify = cfg.task == Task::Classification;
    let ds = open_dataset(&cfg.data, &DatasetOptions { mask_dir: cfg.mask_dir.clone(), no_masks: classify })
        .map_err(|e| TrainError::BadInput(e.to_string()))?;
    if !classify && ds.mask_dir.is_none() {
        return Err(TrainError::BadInput(format!(
            "{}: no mask folder found (segmentation needs masks)",
            cfg.data.display()
        )));
    }
    if classify && ds.classes.len() < 2 {
        return Err(TrainError::BadInput(format!(
            "{}: classification needs a labels.csv with at least 2 classes (found {})",
            cfg.data.display(),
            ds.classes.len()
        )));
    }
    let train_s = ds.split(Split::Train, cfg.seed);
    let val_s = ds.split(Split::Val, cfg.seed);
    let test_s = ds.split(Split::Test, cfg.seed);
    if train_s.is_empty() || val_s.is_empty() {
        return Err(TrainError::BadInput(format!(
            "{}: too few {} to train ({} train, {} validation)",
            cfg.data.display(),
            if classify { "labelled images" } else { "images with masks" },
            train_s.len(),
            val_s.len()
        )));
    }
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| TrainError::BadInput(format!("{}: cannot create ({e})", cfg.out.display())))?;
    let name = cfg.name.clone().unwrap_or_else(|| {
        cfg.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "trained".into())
    });
    // The manifest is checked as `load_manifest` will read it (it validates --arch-config), in a scratch
    // folder beside an empty weights file since the real weights do not exist yet; it is written to the
    // output folder with the first weights.
    let manifest_path = cfg.out.join(MANIFEST_FILE);
    let text = manifest_text(cfg, &name, &ds.classes);
    let manifest = check_manifest(&text)
        .map_err(|e| TrainError::BadInput(format!("{}: {e}", manifest_path.display())))?;

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let empty = StateDict::new(manifest.weights_path(), HashMap::new());
    let built = build_network(&manifest, vb, &empty, device).map_err(|e| {
        TrainError::BadInput(format!("{}: cannot build the network ({e})", manifest_path.display()))
    })?;
    init_weights(&varmap, cfg.seed).map_err(failed)?;
    if let Some(init) = &cfg.init {
        for note in classify::load_initial_weights(init, &sorted_vars(&varmap))? {
            writeln!(out, "note: {}: {note}", init.display()).map_err(failed)?;
        }
    }
    let params_of = |stage: classify::Stage| -> Vec<(String, Var)> {
        sorted_vars(&varmap).into_iter().filter(|(k, _)| !is_buffer(k) && stage.trains(k)).collect()
    };
    let stage_of = |epoch: usize| {
        if classify {
            classify::Stage::of_epoch(epoch, cfg.stages)
        } else {
            classify::Stage::Full
        }
    };
    let plateau_patience = (cfg.patience / 3).max(2);
    let mut state = TrainState {
        epoch: 0,
        adam_step: 0,
        lr: cfg.lr,
        plateau: Plateau::new(0.5, plateau_patience, 1e-6),
        early: EarlyStop::new(cfg.patience.max(1)),
        seed: cfg.seed,
        fingerprint: fingerprint(cfg),
    };
    let mut stage = stage_of(1);
    let mut adam = Adam::new(params_of(stage), cfg.lr).map_err(failed)?;
    if let Some(r) = &cfg.resume {
        let (tensors, st) = load_checkpoint(r, device).map_err(TrainError::BadInput)?;
        if st.fingerprint != state.fingerprint {
            return Err(TrainError::BadInput(format!(
                "{}: checkpoint was made with other settings ({}), not ({})",
                r.display(),
                st.fingerprint,
                state.fingerprint
            )));
        }
        for (k, v) in sorted_vars(&varmap) {
            let t = tensors.get(&format!("param.{k}")).ok_or_else(|| {
                TrainError::BadInput(format!("{}: tensor 'param.{k}' missing", r.display()))
            })?;
            v.set(t)
                .map_err(|e| TrainError::BadInput(format!("{}: tensor 'param.{k}': {e}", r.display())))?;
        }
        // The optimiser saved was the one of the last epoch run; the next epoch continues with it
        // unless it starts a new stage (then a fresh one, as in an uninterrupted run).
        let (last, next) = (stage_of(st.epoch.max(1)), stage_of(st.epoch + 1));
        stage = next;
        adam = Adam::new(params_of(stage), st.lr).map_err(failed)?;
        if last == next || st.epoch == 0 {
            adam.load_state(&tensors, st.adam_step, st.lr)
                .map_err(|e| TrainError::BadInput(format!("{}: {e}", r.display())))?;
        }
        state = st;
    }

    writeln!(
        out,
        "{}: {} train, {} validation, {} test images; {} at {}², batch {}, loss {}{}",
        cfg.data.display(),
        train_s.len(),
        val_s.len(),
        test_s.len(),
        cfg.arch.name(),
        cfg.size,
        cfg.batch,
        if classify { "cross-entropy" } else { cfg.loss.name() },
        if classify { format!("; classes {}", ds.classes.join(", ")) } else { String::new() }
    )
    .map_err(failed)?;
    let train = load_items(&train_s, cfg.size, cfg.task, &ds.classes)?;
    let val = load_items(&val_s, cfg.size, cfg.task, &ds.classes)?;
    let run = Run { cfg, net: built.net, manifest, device: device.clone() };
    let score_name = if classify { "val_accuracy" } else { "val_dice" };
    let score_label = if classify { "val accuracy" } else { "val Dice" };

    let log_path = cfg.out.join(LOG_FILE);
    let mut log: Vec<EpochLog> = if cfg.resume.is_some() {
        read_log(&log_path).into_iter().filter(|r| r.epoch <= state.epoch).collect()
    } else {
        Vec::new()
    };
    write_log(&log_path, &log, score_name).map_err(failed)?;
    let mut epoch_secs = Vec::new();
    while state.epoch < cfg.epochs {
        let epoch = state.epoch + 1;
        let t0 = Instant::now();
        if stage_of(epoch) != stage {
            stage = stage_of(epoch);
            adam = Adam::new(params_of(stage), adam.lr).map_err(failed)?;
        }
        if classify && (epoch == 1 || stage_of(epoch - 1) != stage) {
            writeln!(out, "epoch {epoch}: training {}", stage.name()).map_err(failed)?;
        }
        let mut rng = SplitMix64::new(cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut order: Vec<usize> = (0..train.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let batches: Vec<&[usize]> = order.chunks(cfg.batch).collect();
        let bar = indicatif::ProgressBar::new(batches.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{epoch}/{}", cfg.epochs));
        let mut loss_sum = 0.0;
        for b in &batches {
            let items: Vec<&Item> = b.iter().map(|&i| &train[i]).collect();
            let loss = run.loss(&items, if cfg.augment { Some(&mut rng) } else { None })?;
            let l = loss.to_scalar::<f32>().map_err(failed)? as f64;
            if !l.is_finite() {
                return Err(TrainError::Failed(format!(
                    "training diverged at epoch {epoch} (loss {l}); try a lower --lr"
                )));
            }
            let grads = loss.backward().map_err(failed)?;
            adam.step(&grads).map_err(failed)?;
            loss_sum += l * items.len() as f64;
            bar.set_message(format!("loss {:.4}", l));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let train_loss = loss_sum / train.len() as f64;
        let (val_loss, val_score, extra) = run.validate(&val, ds.classes.len())?;
        let lr_used = adam.lr;
        let (improved, stop) = state.early.observe(epoch, val_score);
        adam.lr = state.plateau.observe(val_score, adam.lr);
        if improved {
            save_model_folder(&cfg.out, &text, &state_tensors(&varmap)).map_err(failed)?;
        }
        state.epoch = epoch;
        state.adam_step = adam.step;
        state.lr = adam.lr;
        let mut ck: HashMap<String, Tensor> =
            state_tensors(&varmap).into_iter().map(|(k, v)| (format!("param.{k}"), v)).collect();
        ck.extend(adam.state_tensors());
        save_checkpoint(&cfg.out, &ck, &state).map_err(failed)?;
        let secs = t0.elapsed().as_secs_f64();
        epoch_secs.push(secs);
        let row = EpochLog { epoch, train_loss, val_loss, val_score, lr: lr_used, seconds: secs };
        append_log(&log_path, &row).map_err(failed)?;
        log.push(row);
        writeln!(
            out,
            "epoch {epoch}/{}  loss {train_loss:.4}  val loss {val_loss:.4}  {score_label} {val_score:.4}{}{extra}  lr {lr_used:.2e}  {secs:.1} s",
            cfg.epochs,
            if improved { " *" } else { "" }
        )
        .map_err(failed)?;
        let _ = out.flush();
        let curve_title = if classify { "validation accuracy" } else { "validation Dice" };
        if let Err(e) = crate::report::curves::write_curves(&cfg.out.join(CURVES_FILE), &log, curve_title) {
            writeln!(out, "note: {e}").map_err(failed)?;
        }
        if stop {
            writeln!(out, "early stop: no better {score_label} for {} epochs", state.early.patience)
                .map_err(failed)?;
            break;
        }
    }
    let (mut test, mut test_classification) = (None, None);
    if !test_s.is_empty() && cfg.out.join(WEIGHTS_FILE).is_file() {
        if classify {
            let sc = classify::score_model_folder(&manifest_path, &test_s, device)?;
            writeln!(
                out,
                "test ({} images, best epoch {}): {}",
                sc.samples,
                state.early.best_epoch,
                classify::scores_line(&sc)
            )
            .map_err(failed)?;
            for (c, cs) in ds.classes.iter().zip(&sc.per_class) {
                let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
                writeln!(
                    out,
                    "  {c}: precision {}  recall {}  AUC {}  ({} images)",
                    f(cs.precision),
                    f(cs.recall),
                    f(cs.auc),
                    cs.support
                )
                .map_err(failed)?;
            }
            test_classification = Some(sc);
        } else {
            let sc = score_model_folder(&manifest_path, &test_s, device)?;
            writeln!(
                out,
                "test ({} images, best epoch {}): Dice {:.4}  precision {:.4}  recall {:.4}",
                sc.images, state.early.best_epoch, sc.dice, sc.precision, sc.recall
            )
            .map_err(failed)?;
            test = Some(sc);
        }
    }
    let spe =
        if epoch_secs.is_empty() { 0.0 } else { epoch_secs.iter().sum::<f64>() / epoch_secs.len() as f64 };
    Ok(TrainSummary {
        epochs_run: state.epoch,
        best_epoch: state.early.best_epoch,
        best_val_score: state.early.best,
        test,
        test_classification,
        log,
        seconds_per_epoch: spe,
    })
}

/// `train_log.csv`'s header; `score` is `val_dice` or `val_accuracy`.
fn log_header(score: &str) -> String {
    format!("epoch,train_loss,val_loss,{score},lr,seconds")
}

fn write_log(path: &Path, rows: &[EpochLog], score: &str) -> Result<(), crate::io::LoadError> {
    crate::io::write_atomic(path, |w| {
        writeln!(w, "{}", log_header(score))?;
        for r in rows {
            writeln!(w, "{}", log_line(r))?;
        }
        Ok(())
    })
}

fn log_line(r: &EpochLog) -> String {
    format!(
        "{},{:.6},{:.6},{:.6},{:e},{:.3}",
        r.epoch, r.train_loss, r.val_loss, r.val_score, r.lr, r.seconds
    )
}

/// Appends one row and syncs it to disk.
fn append_log(path: &Path, r: &EpochLog) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path)?;
    writeln!(f, "{}", log_line(r))?;
    f.sync_all()
}

/// Reads `train_log.csv` (rows that do not parse are skipped).
pub fn read_log(path: &Path) -> Vec<EpochLog> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            if f.len() != 6 {
                return None;
            }
            Some(EpochLog {
                epoch: f[0].parse().ok()?,
                train_loss: f[1].parse().ok()?,
                val_loss: f[2].parse().ok()?,
                val_score: f[3].parse().ok()?,
                lr: f[4].parse().ok()?,
                seconds: f[5].parse().ok()?,
            })
        })
        .collect()
}
