//! The ResNet U-Net of the GGO (ground-glass opacity) paper: a torchvision ResNet encoder and a decoder of
//! residual up-blocks with learned (transposed-convolution) upsampling. The PyTorch reference module,
//! with exactly these names, is `ResNetUNet` in `tools/make_fixtures.py`.
//!
//! # Structure
//! Encoder stages (as smp): `s1 = relu(bn1(conv1 x))` (1/2), `layer1` (1/4), `layer2` (1/8), `layer3`
//! (1/16), `layer4` (1/32). Decoder block `i` = 0..4 takes the previous output `y` (`layer4` for i = 0,
//! `in_c` channels) and the skip `s = [layer3, layer2, layer1, s1][i]` (`skip_c` channels):
//! ```text
//! u = up(y)                                   ConvTranspose2d(in_c, in_c / 2, k=2, s=2), bias
//! u = fit_to(u, s)                            zero-pad / crop to the skip's size (milesial's F.pad split)
//! z = relu(bn1(conv1(cat[u, s])))             3×3, in_c / 2 + skip_c → out_c, no bias
//! z = relu(bn2(conv2(z)))                     3×3, out_c → out_c, no bias
//! y = z + (proj(u) if in_c / 2 ≠ out_c else u)    proj: 1×1 conv, no bias
//! ```
//! then `final_up` (ConvTranspose2d(c, c / 2, 2, 2), bias) → `fit_to` the input size → ReLU → `head`
//! (1×1 conv, bias) → logits at the input size.
//!
//! # Parameter names
//! - `encoder.conv1.weight`, `encoder.bn1.*`, `encoder.layer{1..4}.{b}.…` (torchvision ResNet, see
//!   [`super::resnet`]; `encoder.fc.*` is not used and may be absent)
//! - `decoder.{i}.up.weight` (in_c, in_c/2, 2, 2), `decoder.{i}.up.bias`
//! - `decoder.{i}.conv1.weight`, `decoder.{i}.bn1.{weight,bias,running_mean,running_var}`,
//!   `decoder.{i}.conv2.weight`, `decoder.{i}.bn2.*`
//! - `decoder.{i}.proj.weight` (out_c, in_c/2, 1, 1), only when `in_c / 2 ≠ out_c`
//! - `final_up.weight` (c, c/2, 2, 2), `final_up.bias`; `head.weight` (classes, c/2, 1, 1), `head.bias`
//!
//! # Taps
//! `encoder.relu`, `encoder.maxpool`, `encoder.layer1..4`, `decoder.0` … `decoder.3`, `final_up`.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, ConvTranspose2d, VarBuilder};

use super::layers::{self, ConvBn};
use super::resnet::{ResNetConfig, ResNetEncoder};
use super::{Encoder, Network, Tap, Task};

/// Encoder shape and decoder widths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetUnetConfig {
    pub encoder: ResNetConfig,
    /// Output channels of `decoder.0..3`.
    pub decoder_channels: [usize; 4],
}

impl ResNetUnetConfig {
    /// Standard decoder widths (256, 128, 64, 64) on ResNet-18/34/50.
    pub fn resnet(depth: usize) -> Result<Self> {
        Ok(ResNetUnetConfig { encoder: ResNetConfig::by_depth(depth)?, decoder_channels: [256, 128, 64, 64] })
    }

    pub fn resnet18() -> Self {
        ResNetUnetConfig { encoder: ResNetConfig::resnet18(), decoder_channels: [256, 128, 64, 64] }
    }

    pub fn resnet34() -> Self {
        ResNetUnetConfig { encoder: ResNetConfig::resnet34(), decoder_channels: [256, 128, 64, 64] }
    }

    pub fn resnet50() -> Self {
        ResNetUnetConfig { encoder: ResNetConfig::resnet50(), decoder_channels: [256, 128, 64, 64] }
    }

    /// Narrow form: encoder `base_width` and explicit decoder widths.
    pub fn narrow(mut self, base_width: usize, decoder_channels: [usize; 4]) -> Self {
        self.encoder.base_width = base_width;
        self.decoder_channels = decoder_channels;
        self
    }
}

struct UpBlock {
    up: ConvTranspose2d,
    conv1: ConvBn,
    conv2: ConvBn,
    proj: Option<Conv2d>,
}

impl UpBlock {
    fn new(vb: VarBuilder, in_c: usize, skip_c: usize, out_c: usize) -> Result<Self> {
        let up_c = in_c / 2;
        Ok(UpBlock {
            up: layers::conv_transpose2d(vb.pp("up"), in_c, up_c, 2, 2)?,
            conv1: ConvBn::load(vb.pp("conv1"), vb.pp("bn1"), up_c + skip_c, out_c, 3, 1, 1)?,
            conv2: ConvBn::load(vb.pp("conv2"), vb.pp("bn2"), out_c, out_c, 3, 1, 1)?,
            proj: if up_c != out_c {
                Some(layers::conv2d(vb.pp("proj"), up_c, out_c, 1, 1, 0, false)?)
            } else {
                None
            },
        })
    }

    fn forward(&self, x: &Tensor, skip: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = skip.dims4()?;
        let u = layers::fit_to(&layers::conv_transpose2d_fwd(&self.up, x)?, h, w)?;
        let z = self.conv1.forward_relu(&Tensor::cat(&[&u, skip], 1)?)?;
        let z = self.conv2.forward_relu(&z)?;
        let residual = match &self.proj {
            Some(p) => layers::conv2d_fwd(p, &u)?,
            None => u,
        };
        z + residual
    }
}

/// The GGO paper's ResNet U-Net.
pub struct ResNetUnet {
    encoder: ResNetEncoder,
    blocks: Vec<UpBlock>,
    final_up: ConvTranspose2d,
    head: Conv2d,
}

impl ResNetUnet {
    pub fn new(vb: VarBuilder, config: &ResNetUnetConfig, classes: usize) -> Result<Self> {
        let encoder = ResNetEncoder::new(vb.pp("encoder"), &config.encoder, "encoder", 5)?;
        let enc = encoder.out_channels(); // [in, stem, l1, l2, l3, l4]
        let mut in_c = enc[5];
        let mut blocks = Vec::with_capacity(4);
        for (i, &out_c) in config.decoder_channels.iter().enumerate() {
            blocks.push(UpBlock::new(vb.pp("decoder").pp(i), in_c, enc[4 - i], out_c)?);
            in_c = out_c;
        }
        let final_up = layers::conv_transpose2d(vb.pp("final_up"), in_c, in_c / 2, 2, 2)?;
        let head = layers::conv2d(vb.pp("head"), in_c / 2, classes, 1, 1, 0, true)?;
        Ok(ResNetUnet { encoder, blocks, final_up, head })
    }
}

impl Network for ResNetUnet {
    fn forward_tap(&self, x: &Tensor, tap: &mut Tap) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let feats = self.encoder.forward_stages(x, tap)?;
        let mut y = feats[5].clone();
        for (i, block) in self.blocks.iter().enumerate() {
            y = block.forward(&y, &feats[4 - i])?;
            y = tap.visit(&format!("decoder.{i}"), y);
        }
        let y = layers::fit_to(&layers::conv_transpose2d_fwd(&self.final_up, &y)?, h, w)?;
        let y = tap.visit("final_up", y);
        layers::conv2d_fwd(&self.head, &y.relu()?)
    }

    fn task(&self) -> Task {
        Task::Segmentation
    }
}
