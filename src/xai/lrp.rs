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
//! - convolutions: LRP-ε, LRP-γ (`ρ(w) = w + γw⁺`, also on the bias) or LRP-α1β0
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
//! [`LrpModel::from_manifest`] builds `vgg16`, `vgg16_bn` (any `vgg_cfg`), `resnet50` (any torchvision
//! ResNet classifier) and `densenet121` / `densenet201` from the checkpoint alone; ResNet additions are
//! [`LrpLayer::Residual`] (relevance split in proportion to each branch's contribution), DenseNet
//! concatenations [`LrpLayer::Concat`] (split by channel). Other architectures (U-Nets, ConvNeXt,
//! torchxrayvision's DenseNet with its output recalibration) give
//! `XaiError::BadParams("LRP is not available for <arch> yet")`.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use super::saliency::{reduce_channels, ChannelReduce};
use super::{ExplainInput, Explainer, Heatmap, Params, Progress, Target, XaiError};
use crate::model::layers::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
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
    /// layer is `Concat([[], [norm1, relu, conv1, norm2, relu, conv2]])`. Relevance is split by channel.
    Concat(Vec<Vec<LrpLayer>>),
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
        }
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
}

impl LrpModel {
    /// Folds every BatchNorm that directly follows a convolution into it.
    pub fn new(layers: Vec<LrpLayer>, composite: Composite) -> candle_core::Result<Self> {
        Ok(LrpModel { layers: fold_batch_norms(layers)?, composite })
    }

    pub fn layers(&self) -> &[LrpLayer] {
        &self.layers
    }

    /// Builds the LRP form of the model described by a `model.toml` with the default composite (z^B with
    /// the bounds of the manifest's normalisation of grey values 0 and 255, γ = 0.25, ε = 1e-6). The layer
    /// structure is read from the checkpoint's names and shapes (torchvision's), so any depth and width
    /// of these families works: `vgg16`/`vgg16_bn` (any `vgg_cfg`), `resnet50` (any ResNet classifier:
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
            Arch::Resnet50 => resnet_layers(&w)?,
            Arch::Densenet121 | Arch::Densenet201 => densenet_layers(&w)?,
            other => return Err(XaiError::BadParams(format!("LRP is not available for {other} yet"))),
        };
        let grey = crate::model::preprocess::normalize(&[0.0, 255.0], m.normalize, m.in_channels);
        let low = grey.iter().step_by(2).copied().collect();
        let high = grey.iter().skip(1).step_by(2).copied().collect();
        Ok(LrpModel::new(layers, Composite::epsilon_gamma_box(low, high))?)
    }

    /// The relevance of each input value (same shape as `x`, first batch item) for `target`.
    pub fn relevance(&self, x: &Tensor, target: &Target) -> Result<Tensor, XaiError> {
        let x = x.narrow(0, 0, 1)?.detach();
        let acts = activations(&self.layers, &x)?;
        let logits = acts.last().expect("non-empty");
        if logits.rank() != 2 {
            return Err(XaiError::BadParams("LRP explains classifiers (N, classes) only".into()));
        }
        let r = match target {
            Target::Class(c) => {
                let n = logits.dim(1)?;
                if *c >= n {
                    return Err(XaiError::BadParams(format!(
                        "class {c} is out of range: the model has {n} outputs"
                    )));
                }
                let mut m = vec![0f32; n];
                m[*c] = 1.0;
                logits.broadcast_mul(&Tensor::from_vec(m, (1, n), logits.device())?)?
            }
            Target::Sum => logits.clone(),
            Target::Region { .. } => {
                return Err(XaiError::BadParams(
                    "LRP explains classifiers; a region target needs a segmentation rule".into(),
                ))
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
                        _ => match self.composite.conv {
                            ConvRule::Epsilon(e) => eps_rule(a, &r, e, |t| layer.forward(t))?,
                            ConvRule::Gamma(g) => {
                                let w = (weight + (weight.relu()? * g as f64)?)?;
                                let b = match bias {
                                    Some(b) => Some((b + (b.relu()? * g as f64)?)?),
                                    None => None,
                                };
                                eps_rule(a, &r, 1e-6, |t| conv(t, &w, b.as_ref(), s, p))?
                            }
                            ConvRule::AlphaOneBetaZero => alpha1beta0(a, &r, weight, bias.as_ref(), s, p)?,
                        },
                    }
                }
            };
        }
        Ok(r)
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
    let mut layers = vec![
        w.conv("conv1", 2)?,
        w.bn("bn1")?,
        LrpLayer::Relu,
        LrpLayer::MaxPool { kernel: 3, stride: 2, padding: 1 },
    ];
    for l in 1..=4 {
        let mut b = 0;
        while w.has(&format!("layer{l}.{b}.conv1.weight")) {
            let p = format!("layer{l}.{b}");
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
    }
    layers.extend([LrpLayer::AdaptiveAvgPool { height: 1, width: 1 }, LrpLayer::Flatten, w.linear("fc")?]);
    Ok(layers)
}

/// torchvision DenseNet; blocks and layers found by name. BatchNorms after a concatenation (norm1,
/// transition norms, norm5) have no convolution before them and get the ε rule.
fn densenet_layers(w: &Weights) -> Result<Vec<LrpLayer>, XaiError> {
    let f = "features";
    let mut layers = vec![
        w.conv(&format!("{f}.conv0"), 2)?,
        w.bn(&format!("{f}.norm0"))?,
        LrpLayer::Relu,
        LrpLayer::MaxPool { kernel: 3, stride: 2, padding: 1 },
    ];
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
            layers.push(LrpLayer::Concat(vec![Vec::new(), new]));
            l += 1;
        }
        let t = format!("{f}.transition{b}");
        if w.has(&format!("{t}.norm.weight")) {
            layers.extend([w.bn(&format!("{t}.norm"))?, LrpLayer::Relu, w.conv(&format!("{t}.conv"), 1)?]);
            layers.push(LrpLayer::AvgPool { kernel: 2, stride: 2 });
        }
        b += 1;
    }
    layers.extend([
        w.bn(&format!("{f}.norm5"))?,
        LrpLayer::Relu,
        LrpLayer::AdaptiveAvgPool { height: 1, width: 1 },
    ]);
    layers.extend([LrpLayer::Flatten, w.linear("classifier")?]);
    Ok(layers)
}

/// α1β0: only positive contributions `a⁺w⁺ + a⁻w⁻ (+ b⁺)` carry relevance.
fn alpha1beta0(
    a: &Tensor,
    r: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    s: usize,
    p: usize,
) -> candle_core::Result<Tensor> {
    let (ap, an) = (a.relu()?, a.minimum(0f64)?);
    let (wp, wn) = (w.relu()?, w.minimum(0f64)?);
    let bp = match b {
        Some(b) => Some(b.relu()?),
        None => None,
    };
    let z = (conv(&ap, &wp, bp.as_ref(), s, p)? + conv(&an, &wn, None, s, p)?)?;
    let sc = (r / stabilise(&z, 1e-9)?)?.detach();
    let gp = vjp(&ap, &sc, |t| conv(t, &wp, None, s, p))?;
    let gn = vjp(&an, &sc, |t| conv(t, &wn, None, s, p))?;
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
        Task::Classification
    }
}

/// LRP ("lrp") on a model built for it; the `ExplainInput::net` is not used (it must be the same model).
#[derive(Debug, Clone)]
pub struct Lrp {
    pub model: LrpModel,
}

impl Lrp {
    /// See [`LrpModel::from_manifest`].
    pub fn from_manifest(path: &Path, device: &Device) -> Result<Self, XaiError> {
        Ok(Lrp { model: LrpModel::from_manifest(path, device)? })
    }
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
