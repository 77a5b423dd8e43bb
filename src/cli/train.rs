//! `radlens train`: trains a segmentation model or a classifier on a dataset folder and writes a model folder
//! (`model.toml` + f16 `weights.safetensors`) that `--model` accepts, with `train_log.csv`,
//! `curves.png` and a resumable checkpoint beside it.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{CliError, DeviceArg};
use crate::model::manifest::{Arch, EncoderName};
use crate::model::weights::select_device;
use crate::model::Task;
use crate::train::loss::SegLoss;
use crate::train::{run as train_run, TrainConfig, TrainError};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset folder: split folders (train/ test/ with images/ and a mask folder), images/ + a mask
    /// folder, or NIfTI pairs (see `open_dataset`). Own test splits are never trained on; otherwise a
    /// seeded 64/16/20 split.
    #[arg(long)]
    pub data: PathBuf,
    /// Architecture: unet, resnet-unet or smp-unet (segmentation); resnet18, resnet34, resnet50,
    /// densenet121 or densenet201 (classification).
    #[arg(long)]
    pub arch: String,
    /// Encoder for resnet-unet (resnet18|resnet34|resnet50) and smp-unet (also densenet121).
    #[arg(long)]
    pub encoder: Option<String>,
    /// segmentation (masks) or classification (labels.csv classes, cross-entropy); default: the
    /// architecture's task.
    #[arg(long)]
    pub task: Option<String>,
    /// Mask folder name (default: the first of infection_binary, infection_masks, masks, ... present).
    #[arg(long)]
    pub mask_dir: Option<String>,
    /// Square input side the images are resized to.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Maximum epochs.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// dice | bce | bce+dice | focal-tversky | focal-tversky+dice.
    #[arg(long, default_value = "bce+dice")]
    pub loss: String,
    /// Focal Tversky α (weight of false positives).
    #[arg(long, default_value_t = 0.3)]
    pub alpha: f64,
    /// Focal Tversky β (weight of false negatives).
    #[arg(long, default_value_t = 0.7)]
    pub beta: f64,
    /// Focal Tversky γ (exponent).
    #[arg(long, default_value_t = 0.75)]
    pub gamma: f64,
    /// Early stopping: epochs without a better validation Dice (the learning rate halves after a third
    /// of them, at least 2).
    #[arg(long, default_value_t = 20)]
    pub patience: usize,
    /// Seed of the split, the initial weights, shuffling and augmentation (same seed → same weights on
    /// the CPU).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// `[arch_config]` entries, KEY=VALUE in TOML (e.g. base_width=16, decoder_channels=[128,64,32,16]).
    #[arg(long, num_args = 1..)]
    pub arch_config: Vec<String>,
    /// The model's name in model.toml (default: the output folder's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Turn augmentation off.
    #[arg(long)]
    pub no_augment: bool,
    /// Continue from a checkpoint (a folder holding checkpoint.safetensors + checkpoint.json, e.g. the
    /// previous --out); the settings must be the same.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Classification: staged unfreezing, HEAD,PARTIAL epochs: the first HEAD epochs train only the
    /// head (fc / classifier), the next PARTIAL epochs the head and the last stage (layer4 /
    /// denseblock4 + norm5), then all layers train.
    #[arg(long, value_delimiter = ',', num_args = 2, default_values_t = [0, 0])]
    pub stages: Vec<usize>,
    /// Initial weights instead of the seeded initialisation: a PyTorch checkpoint (.safetensors/.pth,
    /// state-dict names) of the same architecture, e.g. torchvision ImageNet weights; a head of
    /// another shape is trained from scratch, a 3-channel first convolution is summed into 1 channel.
    #[arg(long)]
    pub init: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Output model folder.
    #[arg(long)]
    pub out: PathBuf,
}

fn bad(s: String) -> CliError {
    CliError::BadInput(s)
}

/// The flags as a [`TrainConfig`]; a bad value is a one-line error.
pub fn config(a: &TrainArgs) -> Result<TrainConfig, CliError> {
    let trainable = |x: &Arch| {
        matches!(x, Arch::Unet | Arch::ResnetUnet | Arch::SmpUnet)
            || crate::train::classify::TRAINABLE.contains(x)
    };
    let arch = Arch::from_name(&a.arch).filter(trainable).ok_or_else(|| {
        bad(format!(
            "--arch '{}': expected unet, resnet-unet or smp-unet (segmentation), resnet18, resnet34, resnet50, densenet121 or densenet201 (classification)",
            a.arch
        ))
    })?;
    let encoder = match &a.encoder {
        None => None,
        Some(e) => Some(EncoderName::from_name(e).ok_or_else(|| {
            bad(format!("--encoder '{e}': expected resnet18, resnet34, resnet50 or densenet121"))
        })?),
    };
    let task = match a.task.as_deref() {
        None => arch.task(),
        Some("segmentation") => Task::Segmentation,
        Some("classification") => Task::Classification,
        Some(t) => return Err(bad(format!("--task '{t}': expected segmentation or classification"))),
    };
    let stages = match a.stages.as_slice() {
        [h, p] => [*h, *p],
        _ => return Err(bad("--stages: expected HEAD,PARTIAL epochs (e.g. 3,5)".into())),
    };
    let loss = SegLoss::from_name(&a.loss, a.alpha, a.beta, a.gamma)
        .ok_or_else(|| bad(format!("--loss '{}': expected one of {}", a.loss, SegLoss::NAMES.join(", "))))?;
    if !(a.lr > 0.0 && a.lr.is_finite()) {
        return Err(bad(format!("--lr {}: must be a positive number", a.lr)));
    }
    let mut arch_config = Vec::new();
    for kv in &a.arch_config {
        let (k, v) =
            kv.split_once('=').ok_or_else(|| bad(format!("--arch-config '{kv}': expected KEY=VALUE")))?;
        arch_config.push(format!("{} = {}", k.trim(), v.trim()));
    }
    Ok(TrainConfig {
        data: a.data.clone(),
        arch,
        encoder,
        task,
        mask_dir: a.mask_dir.clone(),
        size: a.size,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        loss,
        patience: a.patience,
        seed: a.seed,
        arch_config,
        name: a.name.clone(),
        resume: a.resume.clone(),
        augment: !a.no_augment,
        stages,
        init: a.init.clone(),
        out: a.out.clone(),
    })
}

pub fn run(a: &TrainArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let cfg = config(a)?;
    let (device, note) = select_device(a.device.into());
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    let summary = train_run(&cfg, &device, out).map_err(|e| match e {
        TrainError::BadInput(s) => CliError::BadInput(s),
        TrainError::Failed(s) => CliError::Failed(s),
    })?;
    writeln!(
        out,
        "best epoch {} (validation {} {:.4}); {:.1} s per epoch; model: {}",
        summary.best_epoch,
        if cfg.task == Task::Classification { "accuracy" } else { "Dice" },
        summary.best_val_score,
        summary.seconds_per_epoch,
        cfg.out.join(crate::model::manifest::MANIFEST_FILE).display()
    )?;
    Ok(())
}
