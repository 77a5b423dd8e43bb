//! Layer-wise Relevance Propagation (Bach et al. 2015; Montavon et al., "Layer-wise relevance
//! propagation: an overview", 2019) over a small sequential layer list.
//!
//! # How
//! An [`LrpModel`] is a list of [`LrpLayer`]s run in order (BatchNorm folded into the preceding
//! convolution when built). The relevance at the output is the target logit (the other logits zeroed);
//! it is carried back one layer at a time with the overview paper's four-step recipe, the gradient
//! doing the transposed product: `z = ρ-layer(a)`, `s = R / (z + ε·sign z)` (constant),
//! `c = ∇_a Σ z ⊙ s`, `R_in = a ⊙ c`. Rules ([`Composite`]):
//! - dense layers: LRP-ε;
//! - convolutions: LRP-ε, LRP-γ (`ρ(w) = w + γw⁺`, also on the bias, in the general form for inputs
//!   and outputs of either sign: see `gamma_rule`) or LRP-α1β0
//!   (`z = conv(a⁺, w⁺) + b⁺ + conv(a⁻, w⁻)`: only positive contributions);
//! - the first convolution: z^B (Montavon's box rule with the input's lower/upper bounds `l`, `h`),
//!   or the convolution rule when no bounds are known;
//! - ReLU and Flatten pass relevance unchanged; max-pool sends it to the winner, average pools share it
//!   in proportion (both by the ε recipe with the pool as the layer, captum's choice).
//!
//! [`Composite::epsilon`] applies ε to every layer (captum's `LRP()` default rules); the default
//! composite is zennit's `EpsilonGammaBox` (z^B first, γ = 0.25 on convolutions, ε = 1e-6 on dense
//! layers). Without biases and with ε → 0 the ε rule conserves relevance: Σ R_input = target logit.
//! The γ and α1β0 rules assume non-negative conv inputs where they apply (true after a ReLU/max-pool).
//!
//! # Coverage
//! [`LrpModel::from_manifest`] builds, from the checkpoint alone: `vgg16`, `vgg16_bn` (any `vgg_cfg`),
//! `resnet50` (any torchvision ResNet classifier), `densenet121` / `densenet201` / `xrv-densenet121`
//! (relevance of the logit, before torchxrayvision's `op_threshs` recalibration), and the segmentation
//! networks `unet` (transposed-convolution form; the `bilinear` form is refused: no backward in candle),
//! `resnet-unet` and `smp-unet` (ResNet and DenseNet encoders, any depth). ResNet additions are
//! [`LrpLayer::Residual`] (relevance split in proportion to each branch's contribution), DenseNet and
//! U-Net skip concatenations [`LrpLayer::Concat`] (split by channel, so each channel's relevance returns
//! to the path that produced it, and relevance reaching a feature map from the skip and from the deeper
//! path adds up). A U-Net is written as nested levels: each level's input is its skip, its deeper path
//! ends in a [`LrpLayer::ResizeToInput`] (nearest up-sampling, or milesial's pad/crop) that passes
//! relevance back exactly; transposed convolutions get the convolution rule. For segmentation the
//! output relevance is the region target itself: the class's logits inside the mask, zero elsewhere.
//! ConvNeXt (LayerNorm, GELU, layer scale) gives `XaiError::BadParams("LRP is not available for
//! convnext_tiny yet")`.

use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor, Var};

use super::saliency::{reduce_channels, ChannelReduce};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, Target, XaiError};
use crate::model::layers::{adaptive_avg_pool2d, avg_pool2d, fit_to, max_pool2d, resize_nearest};
use crate::model::manifest::{load_manifest, Arch, VggLayer};
use crate::model::weights::{load_state_dict, normalize_names};
use crate::model::{Network, Task};

/// One layer of an LRP-able network.
#[derive(Debug, Clone)]
pub enum LrpLayer {
    /// weight (out, in, k, k), bias (out).
    Conv {
        weight: Tensor,
        bias: Option<Tensor>,
        stride: usize,
        padding: usize,
    },
    /// Inference BatchNorm as `x·scale + shift` per channel (folded into a preceding Conv).
    BatchNorm {
        scale: Tensor,
        shift: Tensor,
    },
    Relu,
    MaxPool {
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    AvgPool {
        kernel: usize,
        stride: usize,
    },
    AdaptiveAvgPool {
        height: usize,
        width: usize,
    },
    Flatten,
    /// weight (out, in), bias (out).
    Linear {
        weight: Tensor,
        bias: Option<Tensor>,
    },
    /// `main(x) + shortcut(x)`, an empty `shortcut` being the identity: a ResNet block before its final
    /// ReLU. Relevance is split between the two in proportion to their contributions (ε-stabilised).
    Residual {
        main: Vec<LrpLayer>,
        shortcut: Vec<LrpLayer>,
    },
    /// The branches' outputs concatenated along channels, an empty branch being the identity: a DenseNet
    /// layer is `Concat([[], [norm1, relu, conv1, norm2, relu, conv2]])`, a U-Net level
    /// `Concat([[ResizeToInput(deeper path)], []])` followed by its decoder convolutions. Relevance is
    /// split by channel, so each channel's relevance goes back to the branch that produced it.
    Concat(Vec<Vec<LrpLayer>>),
    /// `nn.ConvTranspose2d` without padding: weight (in, out, k, k), bias (out). Gets the convolution rule.
    ConvTranspose {
        weight: Tensor,
        bias: Option<Tensor>,
        stride: usize,
    },
    /// Runs `inner`, then resizes its output to this layer's input height and width: a U-Net's deeper
    /// path, brought back to the skip's resolution before the concatenation. The resize only copies,
    /// pads or drops values, so relevance goes back through it exactly (each source pixel collects the
    /// relevance of its copies), then through `inner`.
    ResizeToInput {
        inner: Vec<LrpLayer>,
        mode: Resize,
    },
    /// Channels `start .. start + len` (the upsampled half of a concatenation that also feeds a residual
    /// projection). Relevance goes back to those channels.
    Channels {
        start: usize,
        len: usize,
    },
}

/// How [`LrpLayer::ResizeToInput`] matches its input's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// `F.interpolate(mode="nearest")` (smp's decoder).
    Nearest,
    /// Centred zero padding or cropping (milesial's `F.pad`, the GGO ResNet U-Net).
    PadCrop,
}

fn resize(x: &Tensor, mode: Resize, h: usize, w: usize) -> candle_core::Result<Tensor> {
    match mode {
        Resize::Nearest => resize_nearest(x, h, w),
        Resize::PadCrop => fit_to(x, h, w),
    }
}

fn run(layers: &[LrpLayer], x: &Tensor) -> candle_core::Result<Tensor> {
    let mut x = x.clone();
    for l in layers {
        x = l.forward(&x)?;
    }
    Ok(x)
}

/// The input of every layer, then the output.
fn activations(layers: &[LrpLayer], x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
    let mut acts = Vec::with_capacity(layers.len() + 1);
    acts.push(x.clone());
    for l in layers {
        let y = l.forward(acts.last().expect("starts non-empty"))?;
        acts.push(y);
    }
    Ok(acts)
}

/// The first convolution in forward order (z^B applies to it).
fn first_conv(layers: &[LrpLayer]) -> Option<&LrpLayer> {
    for l in layers {
        match l {
            LrpLayer::Conv { .. } => return Some(l),
            LrpLayer::Residual { main, shortcut } => {
                if let Some(c) = first_conv(main).or_else(|| first_conv(shortcut)) {
                    return Some(c);
                }
            }
            LrpLayer::Concat(branches) => {
                if let Some(c) = branches.iter().find_map(|b| first_conv(b)) {
                    return Some(c);
                }
            }
            LrpLayer::ResizeToInput { inner, .. } => {
                if let Some(c) = first_conv(inner) {
                    return Some(c);
                }
            }
            _ => {}
        }
    }
    None
}

/// Folds every BatchNorm that directly follows a convolution into it, in nested lists too.
fn fold_batch_norms(layers: Vec<LrpLayer>) -> candle_core::Result<Vec<LrpLayer>> {
    let mut out: Vec<LrpLayer> = Vec::with_capacity(layers.len());
    for layer in layers {
        let layer = match layer {
            LrpLayer::Residual { main, shortcut } => {
                LrpLayer::Residual { main: fold_batch_norms(main)?, shortcut: fold_batch_norms(shortcut)? }
            }
            LrpLayer::Concat(b) => {
                LrpLayer::Concat(b.into_iter().map(fold_batch_norms).collect::<candle_core::Result<_>>()?)
            }
            LrpLayer::ResizeToInput { inner, mode } => {
                LrpLayer::ResizeToInput { inner: fold_batch_norms(inner)?, mode }
            }
            other => other,
        };
        if let (LrpLayer::BatchNorm { scale, shift }, Some(LrpLayer::Conv { weight, bias, .. })) =
            (&layer, out.last_mut())
        {
            let w = weight.broadcast_mul(&scale.reshape(((), 1, 1, 1))?)?;
            let b = match bias {
                Some(b) => ((&*b * scale)? + shift)?,
                None => shift.clone(),
            };
            *weight = w;
            *bias = Some(b);
            continue;
        }
        out.push(layer);
    }
    Ok(out)
}

impl LrpLayer {
    /// `nn.BatchNorm2d` in eval mode from its parameters.
    pub fn batch_norm(
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
    ) -> candle_core::Result<Self> {
        let scale = (gamma / (var + eps)?.sqrt()?)?;
        let shift = (beta - (mean * &scale)?)?;
        Ok(LrpLayer::BatchNorm { scale, shift })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            LrpLayer::Conv { weight, bias, stride, padding } => {
                conv(x, weight, bias.as_ref(), *stride, *padding)
            }
            LrpLayer::BatchNorm { scale, shift } => x
                .broadcast_mul(&scale.reshape((1, (), 1, 1))?)?
                .broadcast_add(&shift.reshape((1, (), 1, 1))?),
            LrpLayer::Relu => x.relu(),
            LrpLayer::MaxPool { kernel, stride, padding } => max_pool2d(x, *kernel, *stride, *padding),
            LrpLayer::AvgPool { kernel, stride } => avg_pool2d(x, *kernel, *stride),
            LrpLayer::AdaptiveAvgPool { height, width } => adaptive_avg_pool2d(x, *height, *width),
            LrpLayer::Flatten => x.flatten_from(1),
            LrpLayer::Linear { weight, bias } => {
                let y = x.matmul(&weight.t()?)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
            LrpLayer::Residual { main, shortcut } => run(main, x)? + run(shortcut, x)?,
            LrpLayer::Concat(branches) => {
                let outs = branches.iter().map(|b| run(b, x)).collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::cat(&outs, 1)
            }
            LrpLayer::ConvTranspose { weight, bias, stride } => {
                conv_transpose(x, weight, bias.as_ref(), *stride)
            }
            LrpLayer::ResizeToInput { inner, mode } => {
                let (_, _, h, w) = x.dims4()?;
                resize(&run(inner, x)?, *mode, h, w)
            }
            LrpLayer::Channels { start, len } => x.narrow(1, *start, *len),
        }
    }

    /// The same layer with every bias (and BatchNorm shift) set to zero: the network on which the
    /// ε rule conserves relevance exactly.
    fn without_biases(&self) -> candle_core::Result<Self> {
        let zero = |b: &Option<Tensor>| -> candle_core::Result<Option<Tensor>> {
            b.as_ref().map(|b| b.zeros_like()).transpose()
        };
        let all = |l: &[LrpLayer]| -> candle_core::Result<Vec<LrpLayer>> {
            l.iter().map(|x| x.without_biases()).collect()
        };
        Ok(match self {
            LrpLayer::Conv { weight, bias, stride, padding } => LrpLayer::Conv {
                weight: weight.clone(),
                bias: zero(bias)?,
                stride: *stride,
                padding: *padding,
            },
            LrpLayer::ConvTranspose { weight, bias, stride } => {
                LrpLayer::ConvTranspose { weight: weight.clone(), bias: zero(bias)?, stride: *stride }
            }
            LrpLayer::Linear { weight, bias } => {
                LrpLayer::Linear { weight: weight.clone(), bias: zero(bias)? }
            }
            LrpLayer::BatchNorm { scale, shift } => {
                LrpLayer::BatchNorm { scale: scale.clone(), shift: shift.zeros_like()? }
            }
            LrpLayer::Residual { main, shortcut } => {
                LrpLayer::Residual { main: all(main)?, shortcut: all(shortcut)? }
            }
            LrpLayer::Concat(b) => {
                LrpLayer::Concat(b.iter().map(|x| all(x)).collect::<candle_core::Result<_>>()?)
            }
            LrpLayer::ResizeToInput { inner, mode } => {
                LrpLayer::ResizeToInput { inner: all(inner)?, mode: *mode }
            }
            other => other.clone(),
        })
    }
}

fn conv_transpose(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize) -> candle_core::Result<Tensor> {
    let y = x.conv_transpose2d(w, 0, 0, stride, 1)?;
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

fn conv(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    // candle 0.11's conv2d backward takes the transposed conv's output padding from the height only:
    // zero rows/columns at the bottom/right equalise the remainders (as `layers::conv2d_fwd`).
    let x = if stride > 1 {
        let (_, _, kh, kw) = w.dims4()?;
        let (_, _, h, wd) = x.dims4()?;
        let rem = |n: usize, k: usize| (n + 2 * padding - k) % stride;
        let (rh, rw) = (rem(h, kh), rem(wd, kw));
        match rh.cmp(&rw) {
            std::cmp::Ordering::Equal => x.clone(),
            std::cmp::Ordering::Less => x.pad_with_zeros(2, 0, rw - rh)?,
            std::cmp::Ordering::Greater => x.pad_with_zeros(3, 0, rh - rw)?,
        }
    } else {
        x.clone()
    };
    let y = x.conv2d(w, padding, stride, 1, 1)?;
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

/// The rule for convolutions after the first.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ConvRule {
    Epsilon(f32),
    Gamma(f32),
    AlphaOneBetaZero,
}

/// Which rule each layer gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Composite {
    /// Per-input-channel bounds (low, high) of the input domain for z^B on the first convolution;
    /// `None`: the first convolution uses `conv`.
    pub first_bounds: Option<(Vec<f32>, Vec<f32>)>,
    pub conv: ConvRule,
    /// ε of dense layers (and of pools, BatchNorm not folded).
    pub epsilon: f32,
}

impl Composite {
    /// LRP-ε everywhere (captum's `LRP` default rules).
    pub fn epsilon(epsilon: f32) -> Self {
        Composite { first_bounds: None, conv: ConvRule::Epsilon(epsilon), epsilon }
    }

    /// zennit's `EpsilonGammaBox`: z^B with these bounds first, γ = 0.25 on convolutions, ε = 1e-6.
    pub fn epsilon_gamma_box(low: Vec<f32>, high: Vec<f32>) -> Self {
        Composite { first_bounds: Some((low, high)), conv: ConvRule::Gamma(0.25), epsilon: 1e-6 }
    }

    /// z^B first, α1β0 on convolutions, ε = 1e-6 on dense layers.
    pub fn epsilon_alpha1beta0_box(low: Vec<f32>, high: Vec<f32>) -> Self {
        Composite { first_bounds: Some((low, high)), conv: ConvRule::AlphaOneBetaZero, epsilon: 1e-6 }
    }
}

/// `z + ε·sign(z)` with sign(0) = 1, so that nothing is divided by zero.
fn stabilise(z: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    let sign = z.ge(0f64)?.to_dtype(z.dtype())?.affine(2.0, -1.0)?;
    z + (sign * eps as f64)?
}

/// `∇_x Σ f(x) ⊙ s` for a constant `s`.
fn vjp(
    x: &Tensor,
    s: &Tensor,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let v = Var::from_tensor(&x.detach())?;
    let grads = (f(v.as_tensor())? * s)?.sum_all()?.backward()?;
    match grads.get(v.as_tensor()) {
        Some(g) => Ok(g.clone()),
        None => x.zeros_like(),
    }
}

/// The ε recipe through any layer function: `a ⊙ ∇_a Σ f(a) ⊙ R/(f(a) + ε sign)`.
fn eps_rule(
    a: &Tensor,
    r: &Tensor,
    eps: f32,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let s = (r / stabilise(&f(a)?, eps)?)?.detach();
    a * vjp(a, &s, f)?
}

/// A sequential network that LRP can explain; also a [`Network`] (its plain forward).
#[derive(Debug, Clone)]
pub struct LrpModel {
    layers: Vec<LrpLayer>,
    pub composite: Composite,
    task: Task,
}

impl LrpModel {
    /// Folds every BatchNorm that directly follows a convolution into it.
    /// A classifier by default; see [`LrpModel::with_task`].
    pub fn new(layers: Vec<LrpLayer>, composite: Composite) -> candle_core::Result<Self> {
        Ok(LrpModel { layers: fold_batch_norms(layers)?, composite, task: Task::Classification })
    }

    /// Segmentation networks output (N, classes, H, W) logits and take region targets.
    pub fn with_task(mut self, task: Task) -> Self {
        self.task = task;
        self
    }

    /// The same network with every bias and BatchNorm shift set to zero (after folding): where LRP-ε
    /// conserves relevance, Σ R_input = target, which the tests check on every architecture.
    pub fn without_biases(&self) -> candle_core::Result<Self> {
        let layers = self.layers.iter().map(|l| l.without_biases()).collect::<candle_core::Result<_>>()?;
        Ok(LrpModel { layers, composite: self.composite.clone(), task: self.task })
    }

    pub fn layers(&self) -> &[LrpLayer] {
        &self.layers
    }

    /// Builds the LRP form of the model described by a `model.toml` with the default composite (z^B with
    /// the bounds of the manifest's normalisation of grey values 0 and 255, γ = 0.25, ε = 1e-6). The layer
    /// structure is read from the checkpoint's names and shapes (torchvision's), so any depth and width
    /// of these families works: `vgg16`/`vgg16_bn` (any `vgg_cfg`), `resnet18`/`34`/`50` (any ResNet classifier:
    /// Basic or Bottleneck blocks), `densenet121`/`densenet201`.
    pub fn from_manifest(path: &Path, device: &Device) -> Result<Self, XaiError> {
        let m = load_manifest(path).map_err(|e| XaiError::BadParams(e.to_string()))?;
        let mut sd = load_state_dict(&m.weights_path()).map_err(|e| XaiError::BadParams(e.to_string()))?;
        normalize_names(&mut sd);
        let w = Weights { sd: &sd, device, path: m.weights_path() };
        let layers = match m.arch {
            Arch::Vgg16 | Arch::Vgg16Bn => {
                vgg_layers(&w, m.arch_config.vgg_cfg.clone(), m.arch == Arch::Vgg16Bn)?
            }
            Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50 => resnet_layers(&w)?,
            // torchxrayvision's DenseNet: the same layers; relevance is of the logit, before the
            // `op_threshs` recalibration (a monotone map per output).
            Arch::Densenet121 | Arch::Densenet201 | Arch::XrvDensenet121 => densenet_layers(&w)?,
            Arch::Unet => unet_layers(&w)?,
            Arch::ResnetUnet => resnet_unet_layers(&w)?,
            Arch::SmpUnet => smp_unet_layers(&w)?,
            other => return Err(XaiError::BadParams(format!("LRP is not available for {other} yet"))),
        };
        let grey = crate::model::preprocess::normalize(&[0.0, 255.0], m.normalize, m.in_channels);
        let low = grey.iter().step_by(2).copied().collect();
        let high = grey.iter().skip(1).step_by(2).copied().collect();
        Ok(LrpModel::new(layers, Composite::epsilon_gamma_box(low, high))?.with_task(m.task))
    }

    /// The relevance of each input value (same shape as `x`, first batch item) for `target`.
    pub fn relevance(&self, x: &Tensor, target: &Target) -> Result<Tensor, XaiError> {
        let x = x.narrow(0, 0, 1)?.detach();
        let acts = activations(&self.layers, &x)?;
        let logits = acts.last().expect("non-empty");
        let (rank, n) = (logits.rank(), logits.dim(1)?);
        let plane = |c: usize| -> Result<Tensor, XaiError> {
            if c >= n {
                return Err(XaiError::BadParams(format!(
                    "class {c} is out of range: the model has {n} outputs"
                )));
            }
            let mut m = vec![0f32; n];
            m[c] = 1.0;
            let shape: Vec<usize> = if rank == 2 { vec![1, n] } else { vec![1, n, 1, 1] };
            Ok(Tensor::from_vec(m, shape, logits.device())?)
        };
        // The output relevance is the target's own terms: Σ R_out = the target's score.
        let r = match target {
            Target::Class(c) => logits.broadcast_mul(&plane(*c)?)?,
            Target::Sum => logits.clone(),
            Target::Region { class, mask } => {
                if rank != 4 {
                    return Err(XaiError::BadParams("a region target needs a segmentation model".into()));
                }
                let (_, _, h, w) = logits.dims4()?;
                if mask.len() != h * w {
                    return Err(XaiError::BadParams(format!(
                        "target mask has {} pixels, the model output {h}×{w}",
                        mask.len()
                    )));
                }
                let m: Vec<f32> = mask.iter().map(|&b| b as u8 as f32).collect();
                let m = Tensor::from_vec(m, (1, 1, h, w), logits.device())?;
                logits.broadcast_mul(&plane(*class)?)?.broadcast_mul(&m)?
            }
        };
        let first = first_conv(&self.layers);
        Ok(self.backward(&self.layers, &acts, r, first)?)
    }

    /// Carries relevance `r` at the output of `layers` back to their input; `acts` from [`activations`].
    fn backward(
        &self,
        layers: &[LrpLayer],
        acts: &[Tensor],
        mut r: Tensor,
        first: Option<&LrpLayer>,
    ) -> candle_core::Result<Tensor> {
        let eps = self.composite.epsilon;
        for (i, layer) in layers.iter().enumerate().rev() {
            let a = &acts[i];
            r = match layer {
                LrpLayer::Relu => r,
                LrpLayer::Flatten => r.reshape(a.dims())?,
                LrpLayer::Linear { .. }
                | LrpLayer::BatchNorm { .. }
                | LrpLayer::MaxPool { .. }
                | LrpLayer::AvgPool { .. }
                | LrpLayer::AdaptiveAvgPool { .. } => eps_rule(a, &r, eps, |t| layer.forward(t))?,
                LrpLayer::Residual { main, shortcut } => {
                    let (am, asc) = (activations(main, a)?, activations(shortcut, a)?);
                    let (m, sc) = (am.last().expect("non-empty"), asc.last().expect("non-empty"));
                    let q = (&r / stabilise(&(m + sc)?, eps)?)?;
                    let rm = self.backward(main, &am, (m * &q)?, first)?;
                    let rs = self.backward(shortcut, &asc, (sc * &q)?, first)?;
                    (rm + rs)?
                }
                LrpLayer::Concat(branches) => {
                    let mut total: Option<Tensor> = None;
                    let mut offset = 0;
                    for b in branches {
                        let ab = activations(b, a)?;
                        let c = ab.last().expect("non-empty").dim(1)?;
                        let rb = self.backward(b, &ab, r.narrow(1, offset, c)?, first)?;
                        offset += c;
                        total = Some(match total {
                            None => rb,
                            Some(t) => (t + rb)?,
                        });
                    }
                    total.map_or_else(|| a.zeros_like(), Ok)?
                }
                LrpLayer::Conv { weight, bias, stride, padding } => {
                    let (s, p) = (*stride, *padding);
                    let is_first = first.is_some_and(|f| std::ptr::eq(f, layer));
                    match (&self.composite.first_bounds, is_first) {
                        (Some((low, high)), true) => zbox(a, &r, weight, bias.as_ref(), s, p, low, high)?,
                        _ => self.conv_rule(a, &r, weight, bias.as_ref(), |t, w, b| conv(t, w, b, s, p))?,
                    }
                }
                LrpLayer::ConvTranspose { weight, bias, stride } => {
                    let s = *stride;
                    self.conv_rule(a, &r, weight, bias.as_ref(), |t, w, b| conv_transpose(t, w, b, s))?
                }
                LrpLayer::ResizeToInput { inner, mode } => {
                    let ai = activations(inner, a)?;
                    let (_, _, h, w) = a.dims4()?;
                    // Copies, padding and crops: the gradient with R as the cotangent sends each output
                    // value's relevance to its source pixel, conserving it exactly.
                    let ri = vjp(ai.last().expect("non-empty"), &r, |t| resize(t, *mode, h, w))?;
                    self.backward(inner, &ai, ri, first)?
                }
                LrpLayer::Channels { start, len } => {
                    let c = a.dim(1)?;
                    r.pad_with_zeros(1, *start, c - start - len)?
                }
            };
        }
        Ok(r)
    }

    /// The composite's rule for a (transposed) convolution `f(a, w, b)` after the first layer.
    fn conv_rule(
        &self,
        a: &Tensor,
        r: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        f: impl Fn(&Tensor, &Tensor, Option<&Tensor>) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        match self.composite.conv {
            ConvRule::Epsilon(e) => eps_rule(a, r, e, |t| f(t, weight, bias)),
            ConvRule::Gamma(g) => gamma_rule(a, r, weight, bias, g as f64, f),
            ConvRule::AlphaOneBetaZero => alpha1beta0(a, r, weight, bias, f),
        }
    }
}

/// Checkpoint tensors by name, as f32 on the target device.
struct Weights<'a> {
    sd: &'a crate::model::weights::StateDict,
    device: &'a Device,
    path: std::path::PathBuf,
}

impl Weights<'_> {
    fn has(&self, k: &str) -> bool {
        self.sd.get(k).is_some()
    }

    fn get(&self, k: &str) -> Result<Tensor, XaiError> {
        let t = self.sd.get(k).ok_or_else(|| {
            XaiError::BadParams(format!("checkpoint has no tensor '{k}': {}", self.path.display()))
        })?;
        Ok(t.to_dtype(DType::F32)?.to_device(self.device)?)
    }

    /// `{p}.weight` (+ `{p}.bias` when present); padding k/2 as in torchvision.
    fn conv(&self, p: &str, stride: usize) -> Result<LrpLayer, XaiError> {
        let weight = self.get(&format!("{p}.weight"))?;
        let k = weight.dim(2)?;
        let bias = if self.has(&format!("{p}.bias")) { Some(self.get(&format!("{p}.bias"))?) } else { None };
        Ok(LrpLayer::Conv { weight, bias, stride, padding: k / 2 })
    }

    /// `nn.ConvTranspose2d` with kernel = stride (the U-Nets' ×2 up-sampling).
    fn conv_transpose(&self, p: &str) -> Result<LrpLayer, XaiError> {
        let weight = self.get(&format!("{p}.weight"))?;
        let stride = weight.dim(2)?;
        let bias = if self.has(&format!("{p}.bias")) { Some(self.get(&format!("{p}.bias"))?) } else { None };
        Ok(LrpLayer::ConvTranspose { weight, bias, stride })
    }

    fn bn(&self, p: &str) -> Result<LrpLayer, XaiError> {
        let g = |n: &str| self.get(&format!("{p}.{n}"));
        Ok(LrpLayer::batch_norm(&g("weight")?, &g("bias")?, &g("running_mean")?, &g("running_var")?, 1e-5)?)
    }

    fn linear(&self, p: &str) -> Result<LrpLayer, XaiError> {
        Ok(LrpLayer::Linear {
            weight: self.get(&format!("{p}.weight"))?,
            bias: Some(self.get(&format!("{p}.bias"))?),
        })
    }
}

/// torchvision VGG: `features` from the config, `avgpool` (7×7), `classifier.{0,3,6}`.
fn vgg_layers(w: &Weights, cfg: Option<Vec<VggLayer>>, batch_norm: bool) -> Result<Vec<LrpLayer>, XaiError> {
    let cfg = cfg.unwrap_or_else(|| {
        [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0]
            .iter()
            .map(|&c| if c == 0 { VggLayer::MaxPool } else { VggLayer::Conv(c) })
            .collect()
    });
    let mut layers = Vec::new();
    let mut idx = 0;
    for l in cfg {
        match l {
            VggLayer::Conv(_) => {
                layers.push(w.conv(&format!("features.{idx}"), 1)?);
                if batch_norm {
                    layers.push(w.bn(&format!("features.{}", idx + 1))?);
                    idx += 1;
                }
                layers.push(LrpLayer::Relu);
                idx += 2;
            }
            VggLayer::MaxPool => {
                layers.push(LrpLayer::MaxPool { kernel: 2, stride: 2, padding: 0 });
                idx += 1;
            }
        }
    }
    layers.extend([LrpLayer::AdaptiveAvgPool { height: 7, width: 7 }, LrpLayer::Flatten]);
    layers.extend([w.linear("classifier.0")?, LrpLayer::Relu, w.linear("classifier.3")?, LrpLayer::Relu]);
    layers.push(w.linear("classifier.6")?);
    Ok(layers)
}

/// torchvision ResNet classifier; blocks found by name (`conv3` present: Bottleneck), the stride 2 on the
/// first block of layer2..4 (on `conv2` of a Bottleneck, `conv1` of a BasicBlock, and the downsample).
fn resnet_layers(w: &Weights) -> Result<Vec<LrpLayer>, XaiError> {
    let mut layers: Vec<LrpLayer> = resnet_stages(w, "", 5)?.into_iter().flatten().collect();
    layers.extend([LrpLayer::AdaptiveAvgPool { height: 1, width: 1 }, LrpLayer::Flatten, w.linear("fc")?]);
    Ok(layers)
}

/// A torchvision ResNet trunk under `prefix` (`""` or `"encoder."`) as smp's encoder stages:
/// `[conv1, bn1, relu]`, `[maxpool, layer1]`, `[layer2]`, `[layer3]`, `[layer4]`, the first `depth`.
fn resnet_stages(w: &Weights, prefix: &str, depth: usize) -> Result<Vec<Vec<LrpLayer>>, XaiError> {
    let mut stages =
        vec![vec![w.conv(&format!("{prefix}conv1"), 2)?, w.bn(&format!("{prefix}bn1"))?, LrpLayer::Relu]];
    for l in 1..depth.min(5) {
        let mut layers = Vec::new();
        if l == 1 {
            layers.push(LrpLayer::MaxPool { kernel: 3, stride: 2, padding: 1 });
        }
        let mut b = 0;
        while w.has(&format!("{prefix}layer{l}.{b}.conv1.weight")) {
            let p = format!("{prefix}layer{l}.{b}");
            let s = if l > 1 && b == 0 { 2 } else { 1 };
            let main = if w.has(&format!("{p}.conv3.weight")) {
                vec![
                    w.conv(&format!("{p}.conv1"), 1)?,
                    w.bn(&format!("{p}.bn1"))?,
                    LrpLayer::Relu,
                    w.conv(&format!("{p}.conv2"), s)?,
                    w.bn(&format!("{p}.bn2"))?,
                    LrpLayer::Relu,
                    w.conv(&format!("{p}.conv3"), 1)?,
                    w.bn(&format!("{p}.bn3"))?,
                ]
            } else {
                vec![
                    w.conv(&format!("{p}.conv1"), s)?,
                    w.bn(&format!("{p}.bn1"))?,
                    LrpLayer::Relu,
                    w.conv(&format!("{p}.conv2"), 1)?,
                    w.bn(&format!("{p}.bn2"))?,
                ]
            };
            let shortcut = if w.has(&format!("{p}.downsample.0.weight")) {
                vec![w.conv(&format!("{p}.downsample.0"), s)?, w.bn(&format!("{p}.downsample.1"))?]
            } else {
                Vec::new()
            };
            layers.extend([LrpLayer::Residual { main, shortcut }, LrpLayer::Relu]);
            b += 1;
        }
        if b == 0 {
            return Err(XaiError::BadParams(format!(
                "checkpoint has no tensor '{prefix}layer{l}.0.conv1.weight': {}",
                w.path.display()
            )));
        }
        stages.push(layers);
    }
    Ok(stages)
}

/// torchvision DenseNet; blocks and layers found by name. BatchNorms after a concatenation (norm1,
/// transition norms, norm5) have no convolution before them and get the ε rule.
fn densenet_layers(w: &Weights) -> Result<Vec<LrpLayer>, XaiError> {
    let mut layers: Vec<LrpLayer> = densenet_stages(w, "features")?.into_iter().flatten().collect();
    layers.extend([LrpLayer::Relu, LrpLayer::AdaptiveAvgPool { height: 1, width: 1 }]);
    layers.extend([LrpLayer::Flatten, w.linear("classifier")?]);
    Ok(layers)
}

/// A DenseNet's `features` under `f` as smp's encoder stages: `[conv0, norm0, relu0]`, then per dense
/// block `[(transition conv, pool,) pool0 or …, denseblock, transition norm, relu]`, the last ending at
/// `norm5` (no ReLU).
fn densenet_stages(w: &Weights, f: &str) -> Result<Vec<Vec<LrpLayer>>, XaiError> {
    let mut stages =
        vec![vec![w.conv(&format!("{f}.conv0"), 2)?, w.bn(&format!("{f}.norm0"))?, LrpLayer::Relu]];
    let mut current = vec![LrpLayer::MaxPool { kernel: 3, stride: 2, padding: 1 }];
    let mut b = 1;
    while w.has(&format!("{f}.denseblock{b}.denselayer1.norm1.weight")) {
        let mut l = 1;
        while w.has(&format!("{f}.denseblock{b}.denselayer{l}.norm1.weight")) {
            let p = format!("{f}.denseblock{b}.denselayer{l}");
            let new = vec![
                w.bn(&format!("{p}.norm1"))?,
                LrpLayer::Relu,
                w.conv(&format!("{p}.conv1"), 1)?,
                w.bn(&format!("{p}.norm2"))?,
                LrpLayer::Relu,
                w.conv(&format!("{p}.conv2"), 1)?,
            ];
            current.push(LrpLayer::Concat(vec![Vec::new(), new]));
            l += 1;
        }
        let t = format!("{f}.transition{b}");
        if w.has(&format!("{t}.norm.weight")) {
            current.extend([w.bn(&format!("{t}.norm"))?, LrpLayer::Relu]);
            stages.push(std::mem::take(&mut current));
            current.extend([w.conv(&format!("{t}.conv"), 1)?, LrpLayer::AvgPool { kernel: 2, stride: 2 }]);
        }
        b += 1;
    }
    current.push(w.bn(&format!("{f}.norm5"))?);
    stages.push(current);
    Ok(stages)
}

/// A U-Net from its encoder stages (`stages[0]` maps the input to stage 1, `stages[j]` stage j to
/// j + 1) and decoder blocks: block i resizes the deeper path's output to stage `d − 1 − i` and
/// concatenates that stage's output after it (`up_first`, smp and the GGO U-Net) or before it
/// (milesial), then runs `blocks[i]`; the last block has no skip when `last_has_skip` is false (smp:
/// it resizes to the input). `pre_resize[i]` runs on the deeper path before the resize (transposed
/// convolutions). Written as nested `Concat`s: each level's input is its skip.
fn nest_unet(
    stages: Vec<Vec<LrpLayer>>,
    mut blocks: Vec<Vec<LrpLayer>>,
    mut pre_resize: Vec<Vec<LrpLayer>>,
    mode: Resize,
    up_first: bool,
) -> Vec<LrpLayer> {
    let d = stages.len();
    let mut stages = stages;
    // The deepest stage, then one level per skip, from the deepest skip outwards.
    let mut cur = stages.pop().unwrap_or_default();
    for i in 0..blocks.len() {
        cur.append(&mut pre_resize[i]);
        let deep = vec![LrpLayer::ResizeToInput { inner: std::mem::take(&mut cur), mode }];
        let skip_exists = i + 1 < d;
        let mut level = if skip_exists {
            let branches = if up_first { vec![deep, Vec::new()] } else { vec![Vec::new(), deep] };
            vec![LrpLayer::Concat(branches)]
        } else {
            deep
        };
        level.append(&mut blocks[i]);
        cur = match stages.pop() {
            Some(mut s) if skip_exists => {
                s.append(&mut level);
                s
            }
            _ => level,
        };
    }
    cur
}

/// milesial's U-Net (transposed-convolution upsampling only).
fn unet_layers(w: &Weights) -> Result<Vec<LrpLayer>, XaiError> {
    if !w.has("up1.up.weight") {
        return Err(XaiError::BadParams(format!(
            "LRP needs the U-Net's transposed convolutions (bilinear upsampling has no backward in candle): {}",
            w.path.display()
        )));
    }
    let double = |p: &str| -> Result<Vec<LrpLayer>, XaiError> {
        Ok(vec![
            w.conv(&format!("{p}.double_conv.0"), 1)?,
            w.bn(&format!("{p}.double_conv.1"))?,
            LrpLayer::Relu,
            w.conv(&format!("{p}.double_conv.3"), 1)?,
            w.bn(&format!("{p}.double_conv.4"))?,
            LrpLayer::Relu,
        ])
    };
    let mut stages = vec![double("inc")?];
    for k in 1..=4 {
        let mut s = vec![LrpLayer::MaxPool { kernel: 2, stride: 2, padding: 0 }];
        s.extend(double(&format!("down{k}.maxpool_conv.1"))?);
        stages.push(s);
    }
    let mut blocks = Vec::new();
    let mut ups = Vec::new();
    for k in 1..=4 {
        ups.push(vec![w.conv_transpose(&format!("up{k}.up"))?]);
        blocks.push(double(&format!("up{k}.conv"))?);
    }
    let mut layers = nest_unet(stages, blocks, ups, Resize::PadCrop, false);
    layers.push(w.conv("outc.conv", 1)?);
    Ok(layers)
}

/// The GGO paper's ResNet U-Net (`model::resnet_unet`): residual up-blocks `z + proj(u)` where `u` is
/// the upsampled half of the concatenation.
fn resnet_unet_layers(w: &Weights) -> Result<Vec<LrpLayer>, XaiError> {
    let stages = resnet_stages(w, "encoder.", 5)?;
    let (mut blocks, mut ups) = (Vec::new(), Vec::new());
    for i in 0..4 {
        let p = format!("decoder.{i}");
        let up = w.conv_transpose(&format!("{p}.up"))?;
        let up_c = match &up {
            LrpLayer::ConvTranspose { weight, .. } => weight.dim(1)?,
            _ => 0,
        };
        ups.push(vec![up]);
        let main = vec![
            w.conv(&format!("{p}.conv1"), 1)?,
            w.bn(&format!("{p}.bn1"))?,
            LrpLayer::Relu,
            w.conv(&format!("{p}.conv2"), 1)?,
            w.bn(&format!("{p}.bn2"))?,
            LrpLayer::Relu,
        ];
        let mut shortcut = vec![LrpLayer::Channels { start: 0, len: up_c }];
        if w.has(&format!("{p}.proj.weight")) {
            shortcut.push(w.conv(&format!("{p}.proj"), 1)?);
        }
        blocks.push(vec![LrpLayer::Residual { main, shortcut }]);
    }
    // The final up-sampling has no skip: one more "block" whose deeper path is the whole network.
    ups.push(vec![w.conv_transpose("final_up")?]);
    blocks.push(vec![LrpLayer::Relu, w.conv("head", 1)?]);
    Ok(nest_unet(stages, blocks, ups, Resize::PadCrop, true))
}

/// segmentation_models_pytorch's `Unet` on a ResNet or DenseNet encoder; depth = number of decoder
/// blocks.
fn smp_unet_layers(w: &Weights) -> Result<Vec<LrpLayer>, XaiError> {
    let mut depth = 0;
    while w.has(&format!("decoder.blocks.{depth}.conv1.0.weight")) {
        depth += 1;
    }
    if depth == 0 {
        return Err(XaiError::BadParams(format!(
            "checkpoint has no tensor 'decoder.blocks.0.conv1.0.weight': {}",
            w.path.display()
        )));
    }
    let stages = if w.has("encoder.features.conv0.weight") {
        let s = densenet_stages(w, "encoder.features")?;
        if s.len() != depth {
            return Err(XaiError::BadParams(format!(
                "LRP: a DenseNet encoder gives {} stages, the decoder has {depth} blocks: {}",
                s.len(),
                w.path.display()
            )));
        }
        s
    } else {
        resnet_stages(w, "encoder.", depth)?
    };
    let conv_relu = |p: &str| -> Result<Vec<LrpLayer>, XaiError> {
        let mut v = vec![w.conv(&format!("{p}.0"), 1)?];
        if w.has(&format!("{p}.1.weight")) {
            v.push(w.bn(&format!("{p}.1"))?);
        }
        v.push(LrpLayer::Relu);
        Ok(v)
    };
    let mut blocks = Vec::new();
    for i in 0..depth {
        let mut b = conv_relu(&format!("decoder.blocks.{i}.conv1"))?;
        b.extend(conv_relu(&format!("decoder.blocks.{i}.conv2"))?);
        blocks.push(b);
    }
    blocks[depth - 1].push(w.conv("segmentation_head.0", 1)?);
    Ok(nest_unet(stages, blocks, vec![Vec::new(); depth], Resize::Nearest, true))
}

/// LRP-γ in its general form for inputs of either sign (zennit's `Gamma`): where the output `z` is
/// positive the contributions that push it up are favoured (`a⁺(w + γw⁺) + a⁻(w + γw⁻)`, bias
/// `b + γb⁺`), where it is negative those that push it down (`a⁺(w + γw⁻) + a⁻(w + γw⁺)`, `b + γb⁻`).
/// The stabilised denominator keeps the sign of `z` and is never smaller in magnitude, so relevance
/// cannot blow up where a mixed-sign input (a transposed convolution's output feeding a concatenation
/// or a projection) would make the plain `w + γw⁺` denominator cross zero. With non-negative inputs
/// and positive outputs it is the textbook γ rule.
fn gamma_rule(
    a: &Tensor,
    r: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: f64,
    f: impl Fn(&Tensor, &Tensor, Option<&Tensor>) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let (ap, an) = (a.relu()?, a.minimum(0f64)?);
    let w_up = (w + (w.relu()? * g)?)?;
    let w_down = (w + (w.minimum(0f64)? * g)?)?;
    let (b_up, b_down) = match b {
        Some(b) => (Some((b + (b.relu()? * g)?)?), Some((b + (b.minimum(0f64)? * g)?)?)),
        None => (None, None),
    };
    let has_negative = an.min_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()? < 0.0;
    let pos = f(a, w, b)?.gt(0f64)?.to_dtype(a.dtype())?;
    let neg = pos.affine(-1.0, 1.0)?;
    let mut z_up = f(&ap, &w_up, b_up.as_ref())?;
    let mut z_down = f(&ap, &w_down, b_down.as_ref())?;
    if has_negative {
        z_up = (z_up + f(&an, &w_down, None)?)?;
        z_down = (z_down + f(&an, &w_up, None)?)?;
    }
    let z = ((z_up * &pos)? + (z_down * &neg)?)?;
    let s = (r / stabilise(&z, 1e-6)?)?.detach();
    let (s_up, s_down) = ((&s * &pos)?, (&s * &neg)?);
    let grad_p = (vjp(&ap, &s_up, |t| f(t, &w_up, None))? + vjp(&ap, &s_down, |t| f(t, &w_down, None))?)?;
    let rp = (ap * grad_p)?;
    if !has_negative {
        return Ok(rp);
    }
    let grad_n = (vjp(&an, &s_up, |t| f(t, &w_down, None))? + vjp(&an, &s_down, |t| f(t, &w_up, None))?)?;
    rp + (an * grad_n)?
}

/// α1β0: only positive contributions `a⁺w⁺ + a⁻w⁻ (+ b⁺)` carry relevance; `f(a, w, b)` is the
/// (transposed) convolution.
fn alpha1beta0(
    a: &Tensor,
    r: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    f: impl Fn(&Tensor, &Tensor, Option<&Tensor>) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let (ap, an) = (a.relu()?, a.minimum(0f64)?);
    let (wp, wn) = (w.relu()?, w.minimum(0f64)?);
    let bp = match b {
        Some(b) => Some(b.relu()?),
        None => None,
    };
    let z = (f(&ap, &wp, bp.as_ref())? + f(&an, &wn, None)?)?;
    let sc = (r / stabilise(&z, 1e-9)?)?.detach();
    let gp = vjp(&ap, &sc, |t| f(t, &wp, None))?;
    let gn = vjp(&an, &sc, |t| f(t, &wn, None))?;
    (ap * gp)? + (an * gn)?
}

/// z^B (Montavon et al. 2017) for an input bounded per channel by `low` ≤ a ≤ `high`.
#[allow(clippy::too_many_arguments)]
fn zbox(
    a: &Tensor,
    r: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    s: usize,
    p: usize,
    low: &[f32],
    high: &[f32],
) -> candle_core::Result<Tensor> {
    let c = a.dim(1)?;
    if low.len() != c || high.len() != c {
        candle_core::bail!("z^B bounds have {} channels, the input {c}", low.len());
    }
    let plane = |v: &[f32]| -> candle_core::Result<Tensor> {
        Tensor::from_vec(v.to_vec(), (1, c, 1, 1), a.device())?.broadcast_as(a.shape())?.contiguous()
    };
    let (l, h) = (plane(low)?, plane(high)?);
    let (wp, wn) = (w.relu()?, w.minimum(0f64)?);
    let (bp, bn) = match b {
        Some(b) => (Some(b.relu()?), Some(b.minimum(0f64)?)),
        None => (None, None),
    };
    let z =
        ((conv(a, w, b, s, p)? - conv(&l, &wp, bp.as_ref(), s, p)?)? - conv(&h, &wn, bn.as_ref(), s, p)?)?;
    let sc = (r / stabilise(&z, 1e-9)?)?.detach();
    let ga = vjp(a, &sc, |t| conv(t, w, None, s, p))?;
    let gl = vjp(&l, &sc, |t| conv(t, &wp, None, s, p))?;
    let gh = vjp(&h, &sc, |t| conv(t, &wn, None, s, p))?;
    ((a * ga)? - (l * gl)?)? - (h * gh)?
}

impl Network for LrpModel {
    fn forward_tap(&self, x: &Tensor, _tap: &mut crate::model::Tap) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for l in &self.layers {
            x = l.forward(&x)?;
        }
        Ok(x)
    }

    fn task(&self) -> Task {
        self.task
    }
}

/// LRP ("lrp") on a model built for it; the `ExplainInput::net` is not used (it must be the same model).
#[derive(Debug, Clone)]
pub struct Lrp {
    pub model: LrpModel,
}

impl Lrp {
    /// See [`LrpModel::from_manifest`].
    ///
    /// Explaining slice after slice rebuilds nothing: the last two models built are kept, keyed by the
    /// manifest's and the checkpoint's paths, sizes and modification times (a re-exported checkpoint
    /// is read again) and the device. Their tensors are shared, so a hit costs no copy.
    pub fn from_manifest(path: &Path, device: &Device) -> Result<Self, XaiError> {
        static CACHE: Mutex<Vec<(String, LrpModel)>> = Mutex::new(Vec::new());
        let key = cache_key(path, device);
        if let (Some(k), Ok(cache)) = (&key, CACHE.lock()) {
            if let Some((_, model)) = cache.iter().find(|(c, _)| c == k) {
                return Ok(Lrp { model: model.clone() });
            }
        }
        let model = LrpModel::from_manifest(path, device)?;
        if let (Some(k), Ok(mut cache)) = (key, CACHE.lock()) {
            cache.retain(|(c, _)| *c != k);
            cache.push((k, model.clone()));
            if cache.len() > 2 {
                cache.remove(0);
            }
        }
        Ok(Lrp { model })
    }
}

/// Identifies a manifest, its checkpoint's content (by size and modification time) and the device.
fn cache_key(path: &Path, device: &Device) -> Option<String> {
    let m = load_manifest(path).ok()?;
    let stamp = |p: &Path| -> Option<String> {
        let meta = std::fs::metadata(p).ok()?;
        Some(format!("{}|{}|{:?}", p.canonicalize().ok()?.display(), meta.len(), meta.modified().ok()?))
    };
    Some(format!("{}|{}|{:?}", stamp(path)?, stamp(&m.weights_path())?, device.location()))
}

impl Explainer for Lrp {
    fn name(&self) -> &'static str {
        "lrp"
    }

    fn explain(
        &self,
        input: &ExplainInput,
        _params: &Params,
        progress: Progress,
    ) -> Result<Heatmap, XaiError> {
        let r = self.model.relevance(input.input, input.target)?;
        if !progress(1, 1) {
            return Err(XaiError::Cancelled);
        }
        Ok(reduce_channels(&r, ChannelReduce::Sum)?)
    }
}
