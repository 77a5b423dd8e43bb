//! Models: candle networks whose parameter names are the original PyTorch state-dict names, so a user's
//! checkpoint loads unchanged.
//!
//! Every architecture is a struct implementing [`Network`]; its forward calls [`Tap::visit`] at each
//! named module boundary (PyTorch module paths such as `encoder.layer4` or `features.denseblock4`), which
//! lets the XAI methods record an intermediate activation, or substitute one and run the rest of the net.

use std::collections::{HashMap, HashSet};

use candle_core::Tensor;

pub mod channel;
pub mod conv;
pub mod convnext;
pub mod densenet;
pub mod layers;
mod loaded;
pub mod registry;
pub mod train_mode;

pub use loaded::{load_model, probabilities_to_labels, LoadedModel, PREDICT_BATCH};
pub mod manifest;
pub mod preprocess;
pub mod weights;

/// Where the built-in models live: `$RADLENS_WEIGHTS` if set, else `weights/` beside the executable's
/// package (the repository's `weights/` for `cargo run`), else `weights/` in the current folder.
pub fn builtin_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("RADLENS_WEIGHTS") {
        return dir.into();
    }
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
    if repo.is_dir() {
        return repo;
    }
    std::path::PathBuf::from("weights")
}
pub mod resnet;
pub mod resnet_unet;
pub mod smp_unet;
pub mod unet;
pub mod vgg;

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Per-pixel logits (N, classes, H, W).
    Segmentation,
    /// Per-image logits (N, classes).
    Classification,
}

/// Errors of the model room: one line each, naming the file where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{reason}: {}", path.display())]
    Weights { path: std::path::PathBuf, reason: String },
    #[error("{reason}: {}", path.display())]
    Manifest { path: std::path::PathBuf, reason: String },
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Other(String),
}

/// Records and/or replaces named intermediate activations during a forward pass.
///
/// Networks call [`Tap::visit`] with the PyTorch module path of every block output they expose.
#[derive(Debug, Default)]
pub struct Tap {
    record_all: bool,
    record: HashSet<String>,
    recorded: HashMap<String, Tensor>,
    replace: HashMap<String, Tensor>,
    /// Module paths whose activation becomes a gradient-tracked `Var` (recorded as such).
    track: HashSet<String>,
    /// The first error met while making such a `Var`.
    error: Option<String>,
    visited: Vec<String>,
}

impl Tap {
    /// A tap that does nothing (plain inference).
    pub fn none() -> Self {
        Tap::default()
    }

    /// Records the activations at these module paths.
    pub fn recording<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Tap { record: names.into_iter().map(Into::into).collect(), ..Tap::default() }
    }

    /// Records every activation the network exposes (for listing layers and tests).
    pub fn recording_all() -> Self {
        Tap { record_all: true, ..Tap::default() }
    }

    /// Replaces the activation at `name` by `value` (same shape) and records nothing; the rest of the
    /// network runs from `value`. Used to take gradients at a layer (`value` a `Var`) and by Score-CAM.
    pub fn replacing(mut self, name: impl Into<String>, value: Tensor) -> Self {
        self.replace.insert(name.into(), value);
        self
    }

    /// Makes the activation at `name` a `Var` (the same values, detached from what came before) and
    /// records it: the rest of the network runs from it, so one forward pass gives both the activation
    /// and, after `backward`, its gradient.
    pub fn tracking(name: impl Into<String>) -> Self {
        Tap { track: HashSet::from([name.into()]), ..Tap::default() }
    }

    /// The error met while making a tracked activation a `Var`, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Called by networks at each named module output.
    pub fn visit(&mut self, name: &str, x: Tensor) -> Tensor {
        self.visited.push(name.to_string());
        let mut x = self.replace.remove(name).unwrap_or(x);
        if self.track.remove(name) {
            match candle_core::Var::from_tensor(&x.detach()) {
                Ok(v) => {
                    x = v.as_tensor().clone();
                    self.recorded.insert(name.to_string(), x.clone());
                }
                Err(e) => self.error = Some(e.to_string()),
            }
        }
        if self.record_all || self.record.contains(name) {
            self.recorded.insert(name.to_string(), x.clone());
        }
        x
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.recorded.get(name)
    }

    pub fn take(&mut self, name: &str) -> Option<Tensor> {
        self.recorded.remove(name)
    }

    /// Module paths visited, in forward order.
    pub fn visited(&self) -> &[String] {
        &self.visited
    }
}

/// A network: normalised NCHW f32 input → logits.
pub trait Network: Send + Sync {
    /// Segmentation: (N, classes, H, W) logits at the input size; classification: (N, classes) logits.
    fn forward_tap(&self, x: &Tensor, tap: &mut Tap) -> candle_core::Result<Tensor>;

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_tap(x, &mut Tap::none())
    }

    fn task(&self) -> Task;
}

/// A U-Net encoder: the feature maps of every stage, shallowest first. By segmentation_models_pytorch's
/// convention index 0 is the input itself, then strides 2, 4, 8, 16, 32.
pub trait Encoder: Send + Sync {
    /// Channels of each stage output, index 0 being the input's.
    fn out_channels(&self) -> Vec<usize>;

    /// Runs the encoder; `tap.visit` is called with full module paths (the encoder was built under a
    /// prefix such as `encoder`, which it keeps to name its taps, e.g. `encoder.layer4`).
    fn forward_stages(&self, x: &Tensor, tap: &mut Tap) -> candle_core::Result<Vec<Tensor>>;
}
