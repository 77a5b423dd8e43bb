//! `model.toml`: what a checkpoint is and how to feed it.
//!
//! A model is a folder with a `model.toml` and its weights. Example (every field shown):
//!
//! ```toml
//! name = "ggo-resnet34-unet"        # required; how `--model NAME` finds a built-in model
//! arch = "smp-unet"                 # required; see below
//! encoder = "resnet34"              # required for smp-unet and resnet-unet, refused for the others
//! weights = "weights.safetensors"   # required; relative to this file; .safetensors, .pth, .pt or .bin
//! task = "segmentation"             # required; "segmentation" or "classification"
//! activation = "sigmoid"            # required; "sigmoid" or "softmax" (softmax needs >= 2 classes)
//! input_size = [256, 256]           # required; [height, width], each 1..=4096
//! in_channels = 3                   # required; 1 or 3
//! normalize = "imagenet"            # required; "imagenet" | "unit" | "xrv"
//! window = [-600, 1500]             # optional; [level, width] in HU, width > 0
//! classes = ["ggo"]                 # required; one name per output channel, non-empty
//! cam_layer = "encoder.layer4"      # optional; default layer for CAM methods (else the architecture's)
//! threshold = 0.5                   # optional, default 0.5; segmentation mask cut, in (0, 1)
//!
//! [arch_config]                     # optional; knobs for narrow or custom variants
//! base_width = 16
//! ```
//!
//! **Architectures** (`arch`): `unet` (the original U-Net), `resnet-unet` and `smp-unet` (U-Nets with a
//! ResNet encoder; `encoder` one of resnet18, resnet34, resnet50 — smp-unet also densenet121),
//! segmentation only; classifiers `densenet121`, `densenet201`, `vgg16`, `vgg16_bn`, `resnet18`, `resnet34`, `resnet50`,
//! `convnext_tiny`, `convnext_base`, `xrv-densenet121` (torchxrayvision), classification only.
//!
//! **Input pipeline** (order fixed): slice → 8-bit grey value `v` (for HU inputs with a `window`:
//! DICOM linear window/level, rounded to 0..255; for other inputs: values as they are when all lie in
//! 0..255, else min-max scaled to 0..255 and rounded; see `preprocess::to_u8_grey`) → bilinear resize to
//! `input_size` (PyTorch's `align_corners=False`) → `normalize`:
//! - `imagenet`: `v/255`, grey copied to the 3 channels, then `(x − mean)/std` with mean
//!   [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225]. Needs `in_channels = 3`: a 1-channel ImageNet
//!   model has no agreed statistics, so it is refused rather than guessed.
//! - `unit`: `v/255` (in 0..1), copied to every channel.
//! - `xrv`: `(v/255)·2048 − 1024`, torchxrayvision's range, copied to every channel.
//!
//! **Output**: `activation` turns logits into probabilities (sigmoid per channel, or softmax over the
//! class channels); a segmentation's probabilities are resized back to the study grid and cut at
//! `threshold`.
//!
//! **`[arch_config]`** (all optional, unknown keys refused): `base_width` (U-Net first-level channels),
//! `bilinear` (U-Net upsampling by interpolation instead of transposed convolution), `layers` (ResNet
//! blocks per stage), `encoder_depth` and `decoder_channels` (smp U-Net), `growth_rate`, `block_config`,
//! `num_init_features`, `bn_size` (DenseNet), `depths`, `dims` (ConvNeXt), `vgg_cfg` (VGG layer list:
//! channel counts and `"M"` for max-pool), `classifier_width` (width of hidden classifier layers).
//! An architecture reads the knobs it knows and uses torchvision / smp defaults for the rest.
//!
//! Every error is one line naming the field and the manifest file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ModelError, Task};
use crate::imaging::WindowLevel;

/// Largest accepted `input_size` side.
pub const MAX_INPUT_SIDE: usize = 4096;

/// The file name a model folder holds.
pub const MANIFEST_FILE: &str = "model.toml";

/// The built-in model the viewer selects when neither the command line nor the settings name one (the
/// CT infection U-Net; any other built-in model when it is not installed).
pub const DEFAULT_MODEL: &str = "ct-infection-unet";

/// Architectures, named as in `model.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Arch {
    Unet,
    ResnetUnet,
    SmpUnet,
    Densenet121,
    Densenet201,
    Vgg16,
    Vgg16Bn,
    Resnet18,
    Resnet34,
    Resnet50,
    ConvnextTiny,
    ConvnextBase,
    XrvDensenet121,
}

impl Arch {
    pub const ALL: [Arch; 13] = [
        Arch::Unet,
        Arch::ResnetUnet,
        Arch::SmpUnet,
        Arch::Densenet121,
        Arch::Densenet201,
        Arch::Vgg16,
        Arch::Vgg16Bn,
        Arch::Resnet18,
        Arch::Resnet34,
        Arch::Resnet50,
        Arch::ConvnextTiny,
        Arch::ConvnextBase,
        Arch::XrvDensenet121,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Unet => "unet",
            Arch::ResnetUnet => "resnet-unet",
            Arch::SmpUnet => "smp-unet",
            Arch::Densenet121 => "densenet121",
            Arch::Densenet201 => "densenet201",
            Arch::Vgg16 => "vgg16",
            Arch::Vgg16Bn => "vgg16_bn",
            Arch::Resnet18 => "resnet18",
            Arch::Resnet34 => "resnet34",
            Arch::Resnet50 => "resnet50",
            Arch::ConvnextTiny => "convnext_tiny",
            Arch::ConvnextBase => "convnext_base",
            Arch::XrvDensenet121 => "xrv-densenet121",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The task the architecture can do.
    pub fn task(self) -> Task {
        match self {
            Arch::Unet | Arch::ResnetUnet | Arch::SmpUnet => Task::Segmentation,
            _ => Task::Classification,
        }
    }

    /// Encoders the architecture accepts; empty when it takes no `encoder`.
    pub fn encoders(self) -> &'static [EncoderName] {
        use EncoderName::*;
        match self {
            Arch::ResnetUnet => &[Resnet18, Resnet34, Resnet50],
            Arch::SmpUnet => &[Resnet18, Resnet34, Resnet50, Densenet121],
            _ => &[],
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// U-Net encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncoderName {
    Resnet18,
    Resnet34,
    Resnet50,
    Densenet121,
}

impl EncoderName {
    pub const ALL: [EncoderName; 4] =
        [EncoderName::Resnet18, EncoderName::Resnet34, EncoderName::Resnet50, EncoderName::Densenet121];

    pub fn name(self) -> &'static str {
        match self {
            EncoderName::Resnet18 => "resnet18",
            EncoderName::Resnet34 => "resnet34",
            EncoderName::Resnet50 => "resnet50",
            EncoderName::Densenet121 => "densenet121",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl std::fmt::Display for EncoderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Logits → probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Independent per channel (multi-label, or one foreground class).
    Sigmoid,
    /// Over the class channels (dimension 1): mutually exclusive classes.
    Softmax,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Softmax => "softmax",
        }
    }
}

/// Intensity normalisation of the 8-bit grey value (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    Imagenet,
    Unit,
    Xrv,
}

impl Normalize {
    pub fn name(self) -> &'static str {
        match self {
            Normalize::Imagenet => "imagenet",
            Normalize::Unit => "unit",
            Normalize::Xrv => "xrv",
        }
    }
}

/// One entry of a VGG layer list: a 3×3 convolution's output channels, or `"M"` (2×2 max-pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VggLayer {
    Conv(usize),
    MaxPool,
}

impl<'de> Deserialize<'de> for VggLayer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(usize),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(VggLayer::Conv(n)),
            Raw::S(s) if s == "M" => Ok(VggLayer::MaxPool),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "vgg_cfg entry \"{s}\" is neither a channel count nor \"M\""
            ))),
        }
    }
}

/// Optional architecture knobs (`[arch_config]`). `None` means the architecture's standard value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchConfig {
    /// U-Net: channels of the first level (64 in the original).
    pub base_width: Option<usize>,
    /// U-Net: bilinear upsampling instead of transposed convolutions.
    pub bilinear: Option<bool>,
    /// ResNet: blocks per stage, e.g. [3, 4, 6, 3].
    pub layers: Option<Vec<usize>>,
    /// smp U-Net: encoder stages used (5).
    pub encoder_depth: Option<usize>,
    /// smp U-Net: decoder block channels, deepest first ([256, 128, 64, 32, 16]).
    pub decoder_channels: Option<Vec<usize>>,
    /// DenseNet: growth rate (32).
    pub growth_rate: Option<usize>,
    /// DenseNet: layers per dense block ([6, 12, 24, 16]).
    pub block_config: Option<Vec<usize>>,
    /// DenseNet: stem channels (64).
    pub num_init_features: Option<usize>,
    /// DenseNet: bottleneck multiplier (4).
    pub bn_size: Option<usize>,
    /// ConvNeXt: blocks per stage ([3, 3, 9, 3]).
    pub depths: Option<Vec<usize>>,
    /// ConvNeXt: channels per stage ([96, 192, 384, 768]).
    pub dims: Option<Vec<usize>>,
    /// VGG: the layer list, channel counts and "M".
    pub vgg_cfg: Option<Vec<VggLayer>>,
    /// Width of hidden classifier layers (VGG: 4096).
    pub classifier_width: Option<usize>,
}

impl ArchConfig {
    /// Every count must be positive and every list non-empty: a zero would build a broken network.
    fn check(&self) -> Result<(), String> {
        let one = |name: &str, v: Option<usize>| match v {
            Some(0) => Err(format!("field 'arch_config.{name}': must be positive")),
            _ => Ok(()),
        };
        let list = |name: &str, v: &Option<Vec<usize>>| match v {
            Some(v) if v.is_empty() => Err(format!("field 'arch_config.{name}': must not be empty")),
            Some(v) if v.contains(&0) => Err(format!("field 'arch_config.{name}': entries must be positive")),
            _ => Ok(()),
        };
        one("base_width", self.base_width)?;
        one("encoder_depth", self.encoder_depth)?;
        one("growth_rate", self.growth_rate)?;
        one("num_init_features", self.num_init_features)?;
        one("bn_size", self.bn_size)?;
        one("classifier_width", self.classifier_width)?;
        list("layers", &self.layers)?;
        list("decoder_channels", &self.decoder_channels)?;
        list("block_config", &self.block_config)?;
        list("depths", &self.depths)?;
        list("dims", &self.dims)?;
        if let Some(cfg) = &self.vgg_cfg {
            if cfg.is_empty() || cfg.contains(&VggLayer::Conv(0)) {
                return Err("field 'arch_config.vgg_cfg': needs positive channel counts and \"M\"".into());
            }
        }
        Ok(())
    }
}

/// The file as written (all strings), checked into a [`Manifest`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    arch: String,
    encoder: Option<String>,
    weights: String,
    task: String,
    activation: String,
    input_size: [i64; 2],
    in_channels: i64,
    normalize: String,
    window: Option<[f32; 2]>,
    classes: Vec<String>,
    cam_layer: Option<String>,
    threshold: Option<f32>,
    #[serde(default)]
    arch_config: ArchConfig,
}

/// A checked `model.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub arch: Arch,
    pub encoder: Option<EncoderName>,
    /// As written (relative to `dir` unless absolute); see [`Manifest::weights_path`].
    pub weights: PathBuf,
    pub task: Task,
    pub activation: Activation,
    /// [height, width].
    pub input_size: [usize; 2],
    pub in_channels: usize,
    pub normalize: Normalize,
    pub window: Option<WindowLevel>,
    pub classes: Vec<String>,
    pub cam_layer: Option<String>,
    pub threshold: f32,
    pub arch_config: ArchConfig,
    /// The folder holding the manifest.
    pub dir: PathBuf,
    /// The manifest file itself (for messages).
    pub path: PathBuf,
}

impl Manifest {
    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(&self.weights)
    }
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> String {
    format!("field '{field}': \"{value}\" is not one of {}", allowed.join(", "))
}

/// Reads and checks a `model.toml` (see the module docs for the schema).
pub fn load_manifest(path: &Path) -> Result<Manifest, ModelError> {
    let err = |reason: String| ModelError::Manifest { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read model manifest ({e})")))?;
    let raw: RawManifest = toml::from_str(&text).map_err(|e| err(toml_error_line(&text, &e)))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    check(raw, dir, path).map_err(err)
}

/// One line out of a TOML error: `field 'x': <message> (line N)`.
fn toml_error_line(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().lines().map(str::trim).collect::<Vec<_>>().join(" ");
    // serde's "missing field `task`" / "unknown field `foo`, expected ..." name the field themselves.
    for lead in ["missing field `", "unknown field `"] {
        if let Some(rest) = msg.strip_prefix(lead) {
            if let Some((field, tail)) = rest.split_once('`') {
                let what = if lead.starts_with("missing") {
                    "missing".to_string()
                } else {
                    format!("unknown field{tail}")
                };
                return format!("field '{field}': {what}");
            }
        }
    }
    let Some(span) = e.span() else { return format!("invalid model manifest: {msg}") };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() && !key.contains('[') => {
            format!("field '{}': {msg} (line {line_no})", key.trim())
        }
        _ => format!("invalid model manifest at line {line_no}: {msg}"),
    }
}

fn check(raw: RawManifest, dir: PathBuf, path: &Path) -> Result<Manifest, String> {
    if raw.name.trim().is_empty() {
        return Err("field 'name': must not be empty".into());
    }
    let arch_names: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
    let arch = Arch::from_name(&raw.arch).ok_or_else(|| one_of("arch", &raw.arch, &arch_names))?;

    let allowed = arch.encoders();
    let encoder = match (&raw.encoder, allowed.is_empty()) {
        (None, true) => None,
        (Some(e), true) => {
            return Err(format!("field 'encoder': \"{e}\" given, but arch \"{arch}\" takes no encoder"))
        }
        (None, false) => return Err(format!("field 'encoder': required for arch \"{arch}\"")),
        (Some(e), false) => {
            let names: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
            let enc = EncoderName::from_name(e).filter(|x| allowed.contains(x));
            Some(enc.ok_or_else(|| one_of("encoder", e, &names))?)
        }
    };

    let task = match raw.task.as_str() {
        "segmentation" => Task::Segmentation,
        "classification" => Task::Classification,
        other => return Err(one_of("task", other, &["segmentation", "classification"])),
    };
    if task != arch.task() {
        let want = if arch.task() == Task::Segmentation { "segmentation" } else { "classification" };
        return Err(format!("field 'task': arch \"{arch}\" does {want}, not {}", raw.task));
    }

    let activation = match raw.activation.as_str() {
        "sigmoid" => Activation::Sigmoid,
        "softmax" => Activation::Softmax,
        other => return Err(one_of("activation", other, &["sigmoid", "softmax"])),
    };

    let [h, w] = raw.input_size;
    let side = |v: i64| v >= 1 && v <= MAX_INPUT_SIDE as i64;
    if !side(h) || !side(w) {
        return Err(format!(
            "field 'input_size': [{h}, {w}] must be [height, width], each 1..={MAX_INPUT_SIDE}"
        ));
    }
    let in_channels = match raw.in_channels {
        1 => 1,
        3 => 3,
        other => return Err(format!("field 'in_channels': {other} is not 1 or 3")),
    };
    let normalize = match raw.normalize.as_str() {
        "imagenet" => Normalize::Imagenet,
        "unit" => Normalize::Unit,
        "xrv" => Normalize::Xrv,
        other => return Err(one_of("normalize", other, &["imagenet", "unit", "xrv"])),
    };
    if normalize == Normalize::Imagenet && in_channels != 3 {
        return Err(
            "field 'normalize': \"imagenet\" needs in_channels = 3 (use \"unit\" or \"xrv\" for 1 channel)"
                .into(),
        );
    }

    let window = match raw.window {
        None => None,
        Some([level, width]) if level.is_finite() && width.is_finite() && width > 0.0 => {
            Some(WindowLevel::new(level, width))
        }
        Some([level, width]) => {
            return Err(format!("field 'window': [{level}, {width}] must be [level, width] with width > 0"))
        }
    };

    if raw.classes.is_empty() {
        return Err("field 'classes': must name at least one class".into());
    }
    if let Some(c) = raw.classes.iter().find(|c| c.trim().is_empty()) {
        return Err(format!("field 'classes': empty class name \"{c}\""));
    }
    if activation == Activation::Softmax && raw.classes.len() < 2 {
        return Err(
            "field 'activation': \"softmax\" needs at least 2 classes (use \"sigmoid\" for one)".into()
        );
    }

    let threshold = raw.threshold.unwrap_or(0.5);
    if !(threshold > 0.0 && threshold < 1.0) {
        return Err(format!("field 'threshold': {threshold} is not in (0, 1)"));
    }
    if let Some(l) = &raw.cam_layer {
        if l.trim().is_empty() {
            return Err("field 'cam_layer': must not be empty".into());
        }
    }
    raw.arch_config.check()?;

    if raw.weights.trim().is_empty() {
        return Err("field 'weights': must name the weights file".into());
    }
    let weights = PathBuf::from(&raw.weights);
    let full = dir.join(&weights);
    if !full.is_file() {
        return Err(format!("field 'weights': file \"{}\" not found", full.display()));
    }

    Ok(Manifest {
        name: raw.name,
        arch,
        encoder,
        weights,
        task,
        activation,
        input_size: [h as usize, w as usize],
        in_channels,
        normalize,
        window,
        classes: raw.classes,
        cam_layer: raw.cam_layer,
        threshold,
        arch_config: raw.arch_config,
        dir,
        path: path.to_path_buf(),
    })
}

/// Finds a model: `name_or_path` is a `model.toml`, a folder holding one, or the `name` of a built-in
/// model, i.e. of a `<builtin_dir>/*/model.toml`. Only the `name` field of built-in manifests is read
/// here (a broken one does not hide the others); the chosen one is checked by [`load_manifest`].
pub fn resolve_model(name_or_path: &str, builtin_dir: &Path) -> Result<PathBuf, ModelError> {
    let p = Path::new(name_or_path);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    if p.is_dir() {
        let m = p.join(MANIFEST_FILE);
        if m.is_file() {
            return Ok(m);
        }
        return Err(ModelError::Manifest {
            path: p.to_path_buf(),
            reason: format!("folder has no {MANIFEST_FILE}"),
        });
    }
    let builtin = builtin_models(builtin_dir);
    if let Some((_, path)) = builtin.iter().find(|(n, _)| n == name_or_path) {
        return Ok(path.clone());
    }
    let names: Vec<&str> = builtin.iter().map(|(n, _)| n.as_str()).collect();
    let known = if names.is_empty() { "none installed".to_string() } else { names.join(", ") };
    Err(ModelError::Manifest {
        path: p.to_path_buf(),
        reason: format!(
            "unknown model: not a {MANIFEST_FILE}, a folder with one, or a built-in model (built-in: {known})"
        ),
    })
}

/// (name, manifest path) of every `<dir>/*/model.toml` with a readable `name`, sorted by name.
pub fn builtin_models(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let m = entry.path().join(MANIFEST_FILE);
        let Ok(text) = std::fs::read_to_string(&m) else { continue };
        let Ok(table) = toml::from_str::<toml::Table>(&text) else { continue };
        if let Some(name) = table.get("name").and_then(|v| v.as_str()) {
            out.push((name.to_string(), m));
        }
    }
    out.sort();
    out
}
