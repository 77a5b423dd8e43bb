//! DenseNet: torchvision's classifier, torchxrayvision's chest X-ray classifier, and
//! segmentation_models_pytorch's DenseNet encoder.
//!
//! # State-dict keys (torchvision `DenseNet`, identical in torchxrayvision's copy)
//! ```text
//! features.conv0.weight                                   (init, in_c, 7, 7)   stride 2, pad 3, no bias
//! features.norm0.{weight,bias,running_mean,running_var}   BatchNorm2d(init)
//! (features.relu0, features.pool0 = MaxPool2d(3, 2, 1): no parameters)
//! features.denseblock{b}.denselayer{l}.norm1.*            BatchNorm2d(c_in + (l-1)*growth)
//! features.denseblock{b}.denselayer{l}.conv1.weight       (bn_size*growth, c, 1, 1)
//! features.denseblock{b}.denselayer{l}.norm2.*            BatchNorm2d(bn_size*growth)
//! features.denseblock{b}.denselayer{l}.conv2.weight       (growth, bn_size*growth, 3, 3)  pad 1
//! features.transition{t}.norm.*  features.transition{t}.conv.weight (c/2, c, 1, 1), then AvgPool2d(2, 2)
//! features.norm5.*                                        BatchNorm2d(final channels)
//! classifier.{weight,bias}                                Linear(final channels, num_classes)
//! op_threshs                                              torchxrayvision only, optional buffer (18)
//! ```
//! Checkpoints from before torchvision 0.3 spell `norm.1`/`conv.2` in dense layers; torchvision's own
//! loader renames them, and so must ours (`model::weights`), not this file.
//!
//! The smp encoder is the same `features.*` tree under the U-Net's `encoder.` prefix, without
//! `classifier`.
//!
//! # Taps
//! `features.relu0`, `features.pool0`, `features.denseblock{1..4}`, `features.transition{1..3}` (after
//! its pool), `features.norm5` (before the final ReLU: the layer pytorch-grad-cam users pick for
//! DenseNet). The smp encoder taps its stage outputs under its prefix: `encoder.features.relu0`,
//! `encoder.features.denseblock{1..4}`, `encoder.features.transition{1..3}.relu` (the skip features are
//! taken after the transition's norm+ReLU, before its conv and pool), `encoder.features.norm5`.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::{avg_pool2d, global_avg_pool, max_pool2d, ConvBn, FrozenBatchNorm, GemmConv2d};
use super::{Encoder, Network, Tap, Task};

/// The knobs of torchvision's `DenseNet(growth_rate, block_config, num_init_features, bn_size)`. The
/// standard variants have 3 input channels and torchvision's 1000 classes; change them with
/// [`DenseNetConfig::with_num_classes`] / [`DenseNetConfig::with_in_channels`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseNetConfig {
    pub growth_rate: usize,
    /// Dense layers per block (four blocks in every standard variant; any count ≥ 1 works).
    pub block_config: Vec<usize>,
    pub num_init_features: usize,
    pub bn_size: usize,
    pub in_channels: usize,
    pub num_classes: usize,
}

impl DenseNetConfig {
    /// torchvision `densenet121`: growth 32, blocks (6, 12, 24, 16), 64 initial features, bn_size 4.
    pub fn densenet121() -> Self {
        Self::custom(32, &[6, 12, 24, 16], 64, 4, 3, 1000)
    }

    /// torchvision `densenet169`: blocks (6, 12, 32, 32).
    pub fn densenet169() -> Self {
        Self::custom(32, &[6, 12, 32, 32], 64, 4, 3, 1000)
    }

    /// torchvision `densenet201`: blocks (6, 12, 48, 32).
    pub fn densenet201() -> Self {
        Self::custom(32, &[6, 12, 48, 32], 64, 4, 3, 1000)
    }

    /// torchxrayvision's `DenseNet`: densenet121 on one channel with 18 outputs ([`XRV_PATHOLOGIES`]).
    pub fn xrv_densenet121() -> Self {
        Self::custom(32, &[6, 12, 24, 16], 64, 4, 1, XRV_PATHOLOGIES.len())
    }

    /// The same network with another number of outputs.
    pub fn with_num_classes(self, num_classes: usize) -> Self {
        DenseNetConfig { num_classes, ..self }
    }

    /// The same network on another number of input channels (e.g. 1 for smp encoders built with
    /// `in_channels=1`, whose `conv0` smp sums over the RGB kernels).
    pub fn with_in_channels(self, in_channels: usize) -> Self {
        DenseNetConfig { in_channels, ..self }
    }

    /// Any other shape, e.g. the narrow ones of the parity fixtures.
    pub fn custom(
        growth_rate: usize,
        block_config: &[usize],
        num_init_features: usize,
        bn_size: usize,
        in_channels: usize,
        num_classes: usize,
    ) -> Self {
        DenseNetConfig {
            growth_rate,
            block_config: block_config.to_vec(),
            num_init_features,
            bn_size,
            in_channels,
            num_classes,
        }
    }

    /// Channels after each dense block (before its transition halves them).
    pub fn block_out_channels(&self) -> Vec<usize> {
        let mut c = self.num_init_features;
        let mut out = Vec::with_capacity(self.block_config.len());
        for (i, &n) in self.block_config.iter().enumerate() {
            c += n * self.growth_rate;
            out.push(c);
            if i + 1 < self.block_config.len() {
                c /= 2;
            }
        }
        out
    }

    /// Channels of `features.norm5` (the classifier's input).
    pub fn num_features(&self) -> usize {
        self.block_out_channels().last().copied().unwrap_or(self.num_init_features)
    }
}

struct DenseLayer {
    norm1: FrozenBatchNorm,
    /// `conv1` with `norm2` (folded into it for inference).
    conv1: ConvBn,
    conv2: GemmConv2d,
}

impl DenseLayer {
    fn load(vb: VarBuilder, c_in: usize, growth: usize, bn_size: usize) -> Result<Self> {
        Ok(DenseLayer {
            norm1: FrozenBatchNorm::load(vb.pp("norm1"), c_in)?,
            conv1: ConvBn::load(vb.pp("conv1"), vb.pp("norm2"), c_in, bn_size * growth, 1, 1, 0)?,
            conv2: GemmConv2d::load(vb.pp("conv2"), bn_size * growth, growth, 3, 1, 1, false)?,
        })
    }

    /// The new `growth` channels from the concatenation of everything before.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv1.forward_relu(&self.norm1.forward_relu(x)?)?;
        self.conv2.forward(&y)
    }
}

struct DenseBlock {
    layers: Vec<DenseLayer>,
}

impl DenseBlock {
    fn load(vb: VarBuilder, n: usize, c_in: usize, growth: usize, bn_size: usize) -> Result<Self> {
        let layers = (0..n)
            .map(|l| {
                DenseLayer::load(vb.pp(format!("denselayer{}", l + 1)), c_in + l * growth, growth, bn_size)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DenseBlock { layers })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            let new = layer.forward(&x)?;
            x = Tensor::cat(&[&x, &new], 1)?;
        }
        Ok(x)
    }
}

struct Transition {
    norm: FrozenBatchNorm,
    conv: GemmConv2d,
}

impl Transition {
    fn load(vb: VarBuilder, c_in: usize, c_out: usize) -> Result<Self> {
        Ok(Transition {
            norm: FrozenBatchNorm::load(vb.pp("norm"), c_in)?,
            conv: GemmConv2d::load(vb.pp("conv"), c_in, c_out, 1, 1, 0, false)?,
        })
    }

    fn norm_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.norm.forward_relu(x)
    }

    fn conv_pool(&self, x: &Tensor) -> Result<Tensor> {
        avg_pool2d(&self.conv.forward(x)?, 2, 2)
    }
}

/// torchvision's `features` module tree.
struct Features {
    /// `conv0` with `norm0` (folded into it for inference).
    conv0: ConvBn,
    blocks: Vec<DenseBlock>,
    transitions: Vec<Transition>,
    norm5: FrozenBatchNorm,
}

impl Features {
    /// `vb` points at `features`.
    fn load(vb: VarBuilder, cfg: &DenseNetConfig) -> Result<Self> {
        let conv0 =
            ConvBn::load(vb.pp("conv0"), vb.pp("norm0"), cfg.in_channels, cfg.num_init_features, 7, 2, 3)?;
        let mut c = cfg.num_init_features;
        let mut blocks = Vec::new();
        let mut transitions = Vec::new();
        for (i, &n) in cfg.block_config.iter().enumerate() {
            blocks.push(DenseBlock::load(
                vb.pp(format!("denseblock{}", i + 1)),
                n,
                c,
                cfg.growth_rate,
                cfg.bn_size,
            )?);
            c += n * cfg.growth_rate;
            if i + 1 < cfg.block_config.len() {
                transitions.push(Transition::load(vb.pp(format!("transition{}", i + 1)), c, c / 2)?);
                c /= 2;
            }
        }
        let norm5 = FrozenBatchNorm::load(vb.pp("norm5"), c)?;
        Ok(Features { conv0, blocks, transitions, norm5 })
    }

    /// `features(x)`, i.e. up to and including `norm5`; tap names are `{prefix}.{module}`.
    fn forward(&self, prefix: &str, x: &Tensor, tap: &mut Tap) -> Result<Tensor> {
        let name = |m: &str| format!("{prefix}.{m}");
        let x = self.conv0.forward_relu(x)?;
        let x = tap.visit(&name("relu0"), x);
        let mut x = tap.visit(&name("pool0"), max_pool2d(&x, 3, 2, 1)?);
        for (i, block) in self.blocks.iter().enumerate() {
            x = tap.visit(&name(&format!("denseblock{}", i + 1)), block.forward(&x)?);
            if let Some(t) = self.transitions.get(i) {
                let y = t.conv_pool(&t.norm_relu(&x)?)?;
                x = tap.visit(&name(&format!("transition{}", i + 1)), y);
            }
        }
        Ok(tap.visit(&name("norm5"), self.norm5.forward(&x)?))
    }
}

/// torchvision's `DenseNet` classifier: `features` → ReLU → global average pool → `classifier`.
pub struct DenseNet {
    features: Features,
    classifier: Linear,
    config: DenseNetConfig,
}

impl DenseNet {
    /// `vb` at the state dict's root (keys `features.*`, `classifier.*`).
    pub fn load(vb: VarBuilder, config: &DenseNetConfig) -> Result<Self> {
        let features = Features::load(vb.pp("features"), config)?;
        let classifier = candle_nn::linear(config.num_features(), config.num_classes, vb.pp("classifier"))?;
        Ok(DenseNet { features, classifier, config: config.clone() })
    }

    pub fn config(&self) -> &DenseNetConfig {
        &self.config
    }

    fn logits(&self, x: &Tensor, tap: &mut Tap) -> Result<Tensor> {
        let f = self.features.forward("features", x, tap)?;
        self.classifier.forward(&global_avg_pool(&f.relu()?)?)
    }
}

impl Network for DenseNet {
    fn forward_tap(&self, x: &Tensor, tap: &mut Tap) -> Result<Tensor> {
        self.logits(x, tap)
    }

    fn task(&self) -> Task {
        Task::Classification
    }
}

/// torchxrayvision's output order (`xrv.datasets.default_pathologies`): output `i` of every xrv
/// DenseNet is `XRV_PATHOLOGIES[i]`. A checkpoint trained on a dataset without some of them (e.g.
/// `densenet121-res224-nih` has no "Lung Lesion") keeps all 18 outputs: xrv lists the missing ones as
/// `""` in the model's `pathologies` and gives them a NaN operating threshold, so after [`op_norm`] they
/// read a constant 0.5. Manifests may carry those `""` entries in `classes` to say which outputs are
/// meaningless.
pub const XRV_PATHOLOGIES: [&str; 18] = [
    "Atelectasis",
    "Consolidation",
    "Infiltration",
    "Pneumothorax",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Effusion",
    "Pneumonia",
    "Pleural_Thickening",
    "Cardiomegaly",
    "Nodule",
    "Mass",
    "Hernia",
    "Lung Lesion",
    "Fracture",
    "Lung Opacity",
    "Enlarged Cardiomediastinum",
];

/// torchxrayvision's `DenseNet`: the same network as [`DenseNet`] (one input channel, values in
/// [-1024, 1024]), plus the optional `op_threshs` buffer of per-pathology operating points.
///
/// `forward` returns logits by default (what CAM methods need). With
/// [`XrvDenseNet::with_calibrated_output`] it returns what xrv's `forward` returns: when the checkpoint
/// has `op_threshs`, `op_norm(sigmoid(logits))`; otherwise the logits (xrv's `apply_sigmoid` is off by
/// default). [`XrvDenseNet::probabilities`] maps logits to xrv's outputs at any time.
pub struct XrvDenseNet {
    net: DenseNet,
    op_threshs: Option<Tensor>,
    calibrated_output: bool,
}

impl XrvDenseNet {
    /// `vb` at the state dict's root; `op_threshs` is read when the checkpoint has it.
    pub fn load(vb: VarBuilder, config: &DenseNetConfig) -> Result<Self> {
        let op_threshs = if vb.contains_tensor("op_threshs") {
            Some(vb.get(config.num_classes, "op_threshs")?)
        } else {
            None
        };
        Ok(XrvDenseNet { net: DenseNet::load(vb, config)?, op_threshs, calibrated_output: false })
    }

    /// Makes `forward` return xrv's recalibrated probabilities (when the checkpoint has thresholds).
    pub fn with_calibrated_output(mut self, on: bool) -> Self {
        self.calibrated_output = on;
        self
    }

    /// Sets or clears the operating points (e.g. from a manifest, for checkpoints saved without them).
    pub fn with_op_threshs(mut self, op_threshs: Option<Tensor>) -> Self {
        self.op_threshs = op_threshs;
        self
    }

    pub fn op_threshs(&self) -> Option<&Tensor> {
        self.op_threshs.as_ref()
    }

    /// xrv's output for these logits: `op_norm(sigmoid(logits), op_threshs)` with thresholds, else the
    /// plain sigmoid.
    pub fn probabilities(&self, logits: &Tensor) -> Result<Tensor> {
        let p = candle_nn::ops::sigmoid(logits)?;
        match &self.op_threshs {
            Some(t) => op_norm(&p, t),
            None => Ok(p),
        }
    }

    pub fn config(&self) -> &DenseNetConfig {
        self.net.config()
    }
}

impl Network for XrvDenseNet {
    fn forward_tap(&self, x: &Tensor, tap: &mut Tap) -> Result<Tensor> {
        let logits = self.net.logits(x, tap)?;
        match (&self.op_threshs, self.calibrated_output) {
            (Some(t), true) => op_norm(&candle_nn::ops::sigmoid(&logits)?, t),
            _ => Ok(logits),
        }
    }

    fn task(&self) -> Task {
        Task::Classification
    }
}

/// torchxrayvision's `op_norm`: rescales probabilities `(N, K)` piecewise-linearly so that each
/// pathology's operating threshold maps to 0.5: `p / (2t)` below `t`, `1 - (1-p) / (2(1-t))` from `t`
/// up. Outputs whose threshold is NaN are 0.5. Differentiable in `probs`.
pub fn op_norm(probs: &Tensor, op_threshs: &Tensor) -> Result<Tensor> {
    let k = probs.dim(1)?;
    let t: Vec<f32> = op_threshs.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()?;
    if t.len() != k {
        candle_core::bail!("op_norm: {} thresholds for {k} outputs", t.len());
    }
    let dev = probs.device();
    let dtype = probs.dtype();
    // NaN thresholds are replaced by 0.5 before any arithmetic so that no NaN reaches the gradient.
    let valid: Vec<u8> = t.iter().map(|v| u8::from(!v.is_nan())).collect();
    let clean: Vec<f32> = t.iter().map(|v| if v.is_nan() { 0.5 } else { *v }).collect();
    let thr = Tensor::from_vec(clean, (1, k), dev)?.to_dtype(dtype)?.broadcast_as(probs.shape())?;
    let valid = Tensor::from_vec(valid, (1, k), dev)?.broadcast_as(probs.shape())?;
    let below = probs.div(&(&thr * 2.0)?)?;
    let above = (1.0 - (1.0 - probs)?.div(&((1.0 - &thr)? * 2.0)?)?)?;
    let scaled = probs.lt(&thr)?.where_cond(&below, &above)?;
    let half = Tensor::full(0.5f32, probs.shape(), dev)?.to_dtype(dtype)?;
    valid.where_cond(&scaled, &half)
}

/// segmentation_models_pytorch's `DenseNetEncoder` (depth 5): stages `[x, relu0, transition1.relu,
/// transition2.relu, transition3.relu, norm5]`, strides 1, 2, 4, 8, 16, 32. For densenet121 the channels
/// are `[in, 64, 256, 512, 1024, 1024]`. smp deletes `classifier`, so no `classifier.*` key is read.
pub struct SmpDenseNetEncoder {
    features: Features,
    config: DenseNetConfig,
    prefix: String,
}

impl SmpDenseNetEncoder {
    /// `vb` at the encoder (e.g. `vb.pp("encoder")`); its prefix names the taps.
    pub fn load(vb: VarBuilder, config: &DenseNetConfig) -> Result<Self> {
        let prefix = vb.prefix();
        let prefix = if prefix.is_empty() { "features".to_string() } else { format!("{prefix}.features") };
        Ok(SmpDenseNetEncoder {
            features: Features::load(vb.pp("features"), config)?,
            config: config.clone(),
            prefix,
        })
    }
}

impl Encoder for SmpDenseNetEncoder {
    fn out_channels(&self) -> Vec<usize> {
        let mut c = vec![self.config.in_channels, self.config.num_init_features];
        c.extend(self.config.block_out_channels());
        c
    }

    fn forward_stages(&self, x: &Tensor, tap: &mut Tap) -> Result<Vec<Tensor>> {
        let f = &self.features;
        let p = &self.prefix;
        let mut stages = vec![x.clone()];
        let y = f.conv0.forward_relu(x)?;
        let y = tap.visit(&format!("{p}.relu0"), y);
        stages.push(y.clone());
        let mut y = max_pool2d(&y, 3, 2, 1)?;
        for (i, block) in f.blocks.iter().enumerate() {
            y = tap.visit(&format!("{p}.denseblock{}", i + 1), block.forward(&y)?);
            match f.transitions.get(i) {
                Some(t) => {
                    let skip = tap.visit(&format!("{p}.transition{}.relu", i + 1), t.norm_relu(&y)?);
                    stages.push(skip.clone());
                    y = t.conv_pool(&skip)?;
                }
                None => {
                    let out = tap.visit(&format!("{p}.norm5"), f.norm5.forward(&y)?);
                    stages.push(out);
                }
            }
        }
        Ok(stages)
    }
}

/// smp's DenseNet encoder behind the [`Encoder`] trait (`vb` at the U-Net's `encoder`).
pub fn smp_densenet_encoder(vb: VarBuilder, config: &DenseNetConfig) -> Result<Box<dyn Encoder>> {
    Ok(Box::new(SmpDenseNetEncoder::load(vb, config)?))
}
