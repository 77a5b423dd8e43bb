//! segmentation_models_pytorch's `Unet` (checked against smp 0.6.0, `decoders/unet/decoder.py`): any
//! [`Encoder`], decoder blocks that resize to the next encoder stage, concatenate the skip, then two
//! conv-BN-ReLU; a 3×3 segmentation head. No attention (`decoder_attention_type=None`), no center block
//! (smp adds one only for VGG encoders), nearest interpolation (the default; also the only mode with a
//! backward in candle).
//!
//! Block `i` (0-based) resizes its input with `F.interpolate(size=skip_i.shape)` (nearest) to the spatial
//! size of encoder stage `depth - 1 - i` (the last block resizes to the input size and has no skip), so odd
//! input sizes work exactly as in smp.
//!
//! # Parameter names
//! - `encoder.*`: the encoder's own (for ResNets see [`super::resnet`]: `encoder.conv1.weight`,
//!   `encoder.bn1.*`, `encoder.layer{1..4}.{b}.…`)
//! - `decoder.blocks.{i}.conv1.0.weight` (3×3 conv, no bias), `decoder.blocks.{i}.conv1.1.{weight,bias,
//!   running_mean,running_var}` (BN), `decoder.blocks.{i}.conv2.0.weight`, `decoder.blocks.{i}.conv2.1.*`;
//!   i = 0..encoder_depth. With `use_norm: false` the convs carry `.0.bias` and there is no `.1`.
//! - `segmentation_head.0.weight` (classes, decoder_channels[-1], 3, 3), `segmentation_head.0.bias`
//!
//! # Taps
//! The encoder's (`encoder.relu`, `encoder.maxpool`, `encoder.layer1..4` for ResNets), then
//! `decoder.blocks.0` … `decoder.blocks.{depth-1}`.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, VarBuilder};

use super::layers::{self, ConvBn};
use super::resnet::{ResNetConfig, ResNetEncoder};
use super::{Encoder, Network, Tap, Task};

/// Decoder knobs of `smp.Unet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmpUnetConfig {
    /// `decoder_channels`, one per block; its length is the encoder depth (smp's `encoder_depth`).
    pub decoder_channels: Vec<usize>,
    /// `decoder_use_norm`: BatchNorm between conv and ReLU (true, smp's default).
    pub use_norm: bool,
    /// Kernel of the segmentation head's conv (3 in `smp.Unet`).
    pub head_kernel: usize,
}

impl Default for SmpUnetConfig {
    /// smp's defaults: decoder_channels (256, 128, 64, 32, 16), encoder_depth 5, batchnorm, 3×3 head.
    fn default() -> Self {
        SmpUnetConfig { decoder_channels: vec![256, 128, 64, 32, 16], use_norm: true, head_kernel: 3 }
    }
}

impl SmpUnetConfig {
    /// Custom decoder channels (narrow fixtures, or smp models trained with other channels/depth).
    pub fn with_decoder_channels(decoder_channels: &[usize]) -> Self {
        SmpUnetConfig { decoder_channels: decoder_channels.to_vec(), ..Self::default() }
    }

    /// smp's `encoder_depth`.
    pub fn encoder_depth(&self) -> usize {
        self.decoder_channels.len()
    }
}

/// smp's `Conv2dReLU`: `{name}.0` conv, `{name}.1` BN, ReLU (the BN folded into the convolution for
/// inference); without the norm the conv has a bias.
enum Conv2dReLU {
    Norm(ConvBn),
    Plain(Conv2d),
}

impl Conv2dReLU {
    fn new(vb: VarBuilder, in_c: usize, out_c: usize, use_norm: bool) -> Result<Self> {
        Ok(if use_norm {
            Conv2dReLU::Norm(ConvBn::load(vb.pp("0"), vb.pp("1"), in_c, out_c, 3, 1, 1)?)
        } else {
            Conv2dReLU::Plain(layers::conv2d(vb.pp("0"), in_c, out_c, 3, 1, 1, true)?)
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Conv2dReLU::Norm(c) => c.forward_relu(x),
            Conv2dReLU::Plain(c) => layers::conv_bn_relu(c, None, x),
        }
    }
}

struct DecoderBlock {
    conv1: Conv2dReLU,
    conv2: Conv2dReLU,
}

/// `smp.Unet` on any encoder.
pub struct SmpUnet {
    encoder: Box<dyn Encoder>,
    blocks: Vec<DecoderBlock>,
    head: Conv2d,
}

/// `smp.Unet(encoder_name="resnet{depth}")` with the encoder at `config`'s depth. `vb` is the root of the
/// state dict.
pub fn smp_unet_resnet(
    vb: VarBuilder,
    depth: usize,
    config: &SmpUnetConfig,
    classes: usize,
) -> Result<SmpUnet> {
    smp_unet_resnet_with(vb, &ResNetConfig::by_depth(depth)?, config, classes)
}

/// As [`smp_unet_resnet`] with an explicit ResNet shape (narrow fixtures: `ResNetConfig::resnet50()
/// .with_base_width(8)`).
pub fn smp_unet_resnet_with(
    vb: VarBuilder,
    resnet: &ResNetConfig,
    config: &SmpUnetConfig,
    classes: usize,
) -> Result<SmpUnet> {
    let encoder = ResNetEncoder::new(vb.pp("encoder"), resnet, "encoder", config.encoder_depth())?;
    SmpUnet::with_encoder(vb, Box::new(encoder), config, classes)
}

impl SmpUnet {
    /// Builds the decoder and head under `vb` (the state-dict root) for `encoder`, whose
    /// `out_channels()` must have `encoder_depth + 1` entries.
    pub fn with_encoder(
        vb: VarBuilder,
        encoder: Box<dyn Encoder>,
        config: &SmpUnetConfig,
        classes: usize,
    ) -> Result<SmpUnet> {
        let enc = encoder.out_channels();
        let depth = config.encoder_depth();
        if depth == 0 || enc.len() != depth + 1 {
            candle_core::bail!(
                "smp Unet: {} decoder channels need an encoder with {} stages, it has {}",
                depth,
                depth + 1,
                enc.len()
            );
        }
        // As smp: drop stage 0, reverse; the head is the deepest stage, skips the rest, the last block none.
        let rev: Vec<usize> = enc[1..].iter().rev().copied().collect();
        let mut in_c = rev[0];
        let dvb = vb.pp("decoder").pp("blocks");
        let mut blocks = Vec::with_capacity(depth);
        for (i, &out_c) in config.decoder_channels.iter().enumerate() {
            let skip_c = rev.get(i + 1).copied().unwrap_or(0);
            let bvb = dvb.pp(i);
            blocks.push(DecoderBlock {
                conv1: Conv2dReLU::new(bvb.pp("conv1"), in_c + skip_c, out_c, config.use_norm)?,
                conv2: Conv2dReLU::new(bvb.pp("conv2"), out_c, out_c, config.use_norm)?,
            });
            in_c = out_c;
        }
        let k = config.head_kernel;
        let head = layers::conv2d(vb.pp("segmentation_head").pp("0"), in_c, classes, k, 1, k / 2, true)?;
        Ok(SmpUnet { encoder, blocks, head })
    }
}

impl Network for SmpUnet {
    fn forward_tap(&self, x: &Tensor, tap: &mut Tap) -> Result<Tensor> {
        let feats = self.encoder.forward_stages(x, tap)?;
        let shapes: Vec<(usize, usize)> =
            feats.iter().rev().map(|f| f.dims4().map(|d| (d.2, d.3))).collect::<Result<_>>()?;
        let skips: Vec<&Tensor> = feats[1..].iter().rev().collect();
        let mut y = skips[0].clone(); // decoder.center is nn.Identity for ResNets
        for (i, block) in self.blocks.iter().enumerate() {
            let (h, w) = shapes[i + 1];
            y = layers::resize_nearest(&y, h, w)?;
            if let Some(skip) = skips.get(i + 1) {
                y = Tensor::cat(&[&y, *skip], 1)?;
            }
            y = block.conv2.forward(&block.conv1.forward(&y)?)?;
            y = tap.visit(&format!("decoder.blocks.{i}"), y);
        }
        layers::conv2d_fwd(&self.head, &y)
    }

    fn task(&self) -> Task {
        Task::Segmentation
    }
}
