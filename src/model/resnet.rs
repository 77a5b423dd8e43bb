//! torchvision ResNet (18/34 with `BasicBlock`, 50 with `Bottleneck`): the ImageNet-style classifier and
//! the U-Net encoder of segmentation_models_pytorch (`smp.Unet(encoder_name="resnet34")`), which is the
//! same module without `fc`.
//!
//! # Parameter names (torchvision's state dict, under an optional prefix such as `encoder.`)
//! - `conv1.weight` (w, in, 7, 7), no bias; `bn1.{weight,bias,running_mean,running_var}`
//!   (`num_batches_tracked` is ignored everywhere)
//! - `layer{L}.{B}.conv1.weight`, `layer{L}.{B}.bn1.*`, `layer{L}.{B}.conv2.weight`, `layer{L}.{B}.bn2.*`,
//!   and for Bottleneck also `layer{L}.{B}.conv3.weight`, `layer{L}.{B}.bn3.*`; L = 1..4, B = 0..blocks
//! - `layer{L}.0.downsample.0.weight` (1×1 conv, stride of the stage) and `layer{L}.0.downsample.1.*` (BN),
//!   present when the block changes resolution or width
//! - classifier only: `fc.weight` (classes, 8w·expansion), `fc.bias`
//!
//! The stem's max pool (3×3, stride 2, padding 1) is `layers::max_pool2d`, exact and differentiable.
//!
//! # Taps
//! `{prefix}relu` (stem output, stride 2), `{prefix}maxpool`, `{prefix}layer1` … `{prefix}layer4`;
//! the classifier also taps `avgpool` (N, C) and its output is `fc`.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};

use super::layers::{self, ConvBn};
use super::{Encoder, Network, Tap, Task};

/// Which residual block a ResNet stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet-18/34), expansion 1.
    Basic,
    /// 1×1 → 3×3 → 1×1 (ResNet-50/101/152), expansion 4; the stride sits on the 3×3 (torchvision ≥ 0.5).
    Bottleneck,
}

impl BlockKind {
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// Shape of a torchvision ResNet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetConfig {
    pub block: BlockKind,
    /// Blocks per stage (`layers` in torchvision).
    pub layers: [usize; 4],
    /// Stem width and `planes` of layer1 (64 in every standard ResNet); stage L has `base_width · 2^(L-1)`
    /// planes. Narrow fixtures use 8 or 16.
    pub base_width: usize,
    /// Input channels of `conv1` (3).
    pub in_channels: usize,
}

impl ResNetConfig {
    pub fn resnet18() -> Self {
        ResNetConfig { block: BlockKind::Basic, layers: [2, 2, 2, 2], base_width: 64, in_channels: 3 }
    }

    pub fn resnet34() -> Self {
        ResNetConfig { block: BlockKind::Basic, layers: [3, 4, 6, 3], base_width: 64, in_channels: 3 }
    }

    pub fn resnet50() -> Self {
        ResNetConfig { block: BlockKind::Bottleneck, layers: [3, 4, 6, 3], base_width: 64, in_channels: 3 }
    }

    /// ResNet-18, -34 or -50 by depth.
    pub fn by_depth(depth: usize) -> Result<Self> {
        match depth {
            18 => Ok(Self::resnet18()),
            34 => Ok(Self::resnet34()),
            50 => Ok(Self::resnet50()),
            d => Err(candle_core::Error::Msg(format!("unsupported ResNet depth {d} (18, 34 or 50)"))),
        }
    }

    /// The same structure at another width (fixtures).
    pub fn with_base_width(mut self, base_width: usize) -> Self {
        self.base_width = base_width;
        self
    }

    pub fn with_in_channels(mut self, in_channels: usize) -> Self {
        self.in_channels = in_channels;
        self
    }

    /// Output channels of layer1..layer4.
    pub fn stage_channels(&self) -> [usize; 4] {
        let e = self.block.expansion();
        let w = self.base_width;
        [w * e, 2 * w * e, 4 * w * e, 8 * w * e]
    }
}

fn conv_bn(
    vb: &VarBuilder,
    conv: &str,
    norm: &str,
    i: usize,
    o: usize,
    k: usize,
    s: usize,
) -> Result<ConvBn> {
    ConvBn::load(vb.pp(conv), vb.pp(norm), i, o, k, s, k / 2)
}

/// One BasicBlock or Bottleneck.
struct Block {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Block {
    fn new(vb: VarBuilder, kind: BlockKind, in_c: usize, planes: usize, stride: usize) -> Result<Self> {
        let out_c = planes * kind.expansion();
        let convs = match kind {
            BlockKind::Basic => vec![
                conv_bn(&vb, "conv1", "bn1", in_c, planes, 3, stride)?,
                conv_bn(&vb, "conv2", "bn2", planes, planes, 3, 1)?,
            ],
            BlockKind::Bottleneck => vec![
                conv_bn(&vb, "conv1", "bn1", in_c, planes, 1, 1)?,
                conv_bn(&vb, "conv2", "bn2", planes, planes, 3, stride)?,
                conv_bn(&vb, "conv3", "bn3", planes, out_c, 1, 1)?,
            ],
        };
        let downsample = if stride != 1 || in_c != out_c {
            let d = vb.pp("downsample");
            Some(ConvBn::load(d.pp("0"), d.pp("1"), in_c, out_c, 1, stride, 0)?)
        } else {
            None
        };
        Ok(Block { convs, downsample })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let identity = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        let (last, inner) =
            self.convs.split_last().ok_or_else(|| candle_core::Error::Msg("empty block".into()))?;
        let mut y = x.clone();
        for c in inner {
            y = c.forward_relu(&y)?;
        }
        last.forward_add_relu(&y, &identity)
    }
}

/// The convolutional trunk (`conv1`, `bn1`, `layer1..4`) shared by the classifier and the encoder.
pub struct ResNetBackbone {
    config: ResNetConfig,
    /// Tap prefix: `""` or `"encoder."`.
    prefix: String,
    stem: ConvBn,
    stages: Vec<Vec<Block>>,
}

impl ResNetBackbone {
    /// Loads the first `stages` stages (1..=4) under `vb`; `prefix` is the module path `vb` points at
    /// (`""`, `"encoder"`), used to name the taps.
    pub fn new(vb: VarBuilder, config: &ResNetConfig, prefix: &str, stages: usize) -> Result<Self> {
        let w = config.base_width;
        let stem = conv_bn(&vb, "conv1", "bn1", config.in_channels, w, 7, 2)?;
        let mut in_c = w;
        let mut all = Vec::new();
        for (l, &n) in config.layers.iter().enumerate().take(stages.min(4)) {
            let planes = w << l;
            let stride = if l == 0 { 1 } else { 2 };
            let lvb = vb.pp(format!("layer{}", l + 1));
            let mut blocks = Vec::with_capacity(n);
            for b in 0..n {
                blocks.push(Block::new(
                    lvb.pp(b),
                    config.block,
                    in_c,
                    planes,
                    if b == 0 { stride } else { 1 },
                )?);
                in_c = planes * config.block.expansion();
            }
            all.push(blocks);
        }
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}.") };
        Ok(ResNetBackbone { config: config.clone(), prefix, stem, stages: all })
    }

    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// smp's stages: [x, relu(bn1(conv1 x)), layer1(maxpool ..), layer2, layer3, layer4], truncated to the
    /// stages this backbone was built with.
    pub fn forward_stages(&self, x: &Tensor, tap: &mut Tap) -> Result<Vec<Tensor>> {
        let p = &self.prefix;
        let mut feats = vec![x.clone()];
        let mut y = tap.visit(&format!("{p}relu"), self.stem.forward_relu(x)?);
        feats.push(y.clone());
        for (l, blocks) in self.stages.iter().enumerate() {
            if l == 0 {
                y = tap.visit(&format!("{p}maxpool"), layers::max_pool2d(&y, 3, 2, 1)?);
            }
            for b in blocks {
                y = b.forward(&y)?;
            }
            y = tap.visit(&format!("{p}layer{}", l + 1), y);
            feats.push(y.clone());
        }
        Ok(feats)
    }
}

/// The torchvision classifier: trunk, global average pool, `fc`. Taps `relu`, `maxpool`, `layer1..4`
/// (`layer4` is the usual CAM layer), `avgpool`.
pub struct ResNet {
    backbone: ResNetBackbone,
    fc: Linear,
}

impl ResNet {
    pub fn new(vb: VarBuilder, config: &ResNetConfig, classes: usize) -> Result<Self> {
        let backbone = ResNetBackbone::new(vb.clone(), config, "", 4)?;
        let fc = candle_nn::linear(config.stage_channels()[3], classes, vb.pp("fc"))?;
        Ok(ResNet { backbone, fc })
    }
}

impl Network for ResNet {
    fn forward_tap(&self, x: &Tensor, tap: &mut Tap) -> Result<Tensor> {
        let feats = self.backbone.forward_stages(x, tap)?;
        let last = feats.last().ok_or_else(|| candle_core::Error::Msg("empty ResNet".into()))?;
        let pooled = tap.visit("avgpool", last.mean(D::Minus1)?.mean(D::Minus1)?);
        self.fc.forward(&pooled)
    }

    fn task(&self) -> Task {
        Task::Classification
    }
}

/// A ResNet as an smp U-Net encoder (`encoder.conv1`, … `encoder.layer4`), `depth` 1..=5 stages.
pub struct ResNetEncoder {
    backbone: ResNetBackbone,
    depth: usize,
}

impl ResNetEncoder {
    /// `prefix` is the module path of `vb` (normally `"encoder"`); `depth` is smp's `encoder_depth`.
    pub fn new(vb: VarBuilder, config: &ResNetConfig, prefix: &str, depth: usize) -> Result<Self> {
        if !(1..=5).contains(&depth) {
            candle_core::bail!("ResNet encoder depth must be 1..=5, got {depth}");
        }
        Ok(ResNetEncoder { backbone: ResNetBackbone::new(vb, config, prefix, depth - 1)?, depth })
    }
}

impl Encoder for ResNetEncoder {
    fn out_channels(&self) -> Vec<usize> {
        let c = &self.backbone.config;
        let s = c.stage_channels();
        let all = [c.in_channels, c.base_width, s[0], s[1], s[2], s[3]];
        all[..=self.depth].to_vec()
    }

    fn forward_stages(&self, x: &Tensor, tap: &mut Tap) -> Result<Vec<Tensor>> {
        self.backbone.forward_stages(x, tap)
    }
}
