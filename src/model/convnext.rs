//! torchvision's ConvNeXt.
//!
//! # State-dict keys (four stages; `i` the stage, `dim_i` its width)
//! ```text
//! features.0.0.{weight,bias}          stem Conv2d(3, dim_0, 4, stride 4)
//! features.0.1.{weight,bias}          LayerNorm2d(dim_0), eps 1e-6
//! features.{1,3,5,7}.{b}.block.0.{weight,bias}   depthwise Conv2d(dim, dim, 7, pad 3, groups dim)
//! features.{1,3,5,7}.{b}.block.2.{weight,bias}   LayerNorm(dim) on channels-last, eps 1e-6
//! features.{1,3,5,7}.{b}.block.3.{weight,bias}   Linear(dim, 4 dim), then exact (erf) GELU
//! features.{1,3,5,7}.{b}.block.5.{weight,bias}   Linear(4 dim, dim)
//! features.{1,3,5,7}.{b}.layer_scale             (dim, 1, 1)
//! features.{2,4,6}.0.{weight,bias}    LayerNorm2d(dim_i)
//! features.{2,4,6}.1.{weight,bias}    Conv2d(dim_i, dim_i+1, 2, stride 2)
//! classifier.0.{weight,bias}          LayerNorm2d(dim_3) after global average pooling
//! classifier.2.{weight,bias}          Linear(dim_3, num_classes)
//! ```
//! Stochastic depth is the identity at inference. Block: `x + layer_scale * block(x)`.
//!
//! # Taps
//! `features.0` … `features.7` (each `features` child's output); `features.7` is the usual CAM layer.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::{global_avg_pool, ChannelNorm, DepthwiseConv2d, GemmConv2d};
use super::{Network, Tap, Task};

const LN_EPS: f64 = 1e-6;

/// torchvision's ConvNeXt knobs; the standard variants have 3 input channels and 1000 classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvNextConfig {
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Width of each stage.
    pub dims: Vec<usize>,
    pub in_channels: usize,
    pub num_classes: usize,
}

impl ConvNextConfig {
    /// torchvision `convnext_tiny`: depths (3, 3, 9, 3), dims (96, 192, 384, 768).
    pub fn convnext_tiny() -> Self {
        Self::custom(&[3, 3, 9, 3], &[96, 192, 384, 768], 1000)
    }

    /// torchvision `convnext_small`: depths (3, 3, 27, 3), dims (96, 192, 384, 768).
    pub fn convnext_small() -> Self {
        Self::custom(&[3, 3, 27, 3], &[96, 192, 384, 768], 1000)
    }

    /// torchvision `convnext_base`: depths (3, 3, 27, 3), dims (128, 256, 512, 1024).
    pub fn convnext_base() -> Self {
        Self::custom(&[3, 3, 27, 3], &[128, 256, 512, 1024], 1000)
    }

    /// torchvision `convnext_large`: depths (3, 3, 27, 3), dims (192, 384, 768, 1536).
    pub fn convnext_large() -> Self {
        Self::custom(&[3, 3, 27, 3], &[192, 384, 768, 1536], 1000)
    }

    /// The same network with another number of outputs.
    pub fn with_num_classes(self, num_classes: usize) -> Self {
        ConvNextConfig { num_classes, ..self }
    }

    /// Any other shape (`depths` and `dims` of equal length ≥ 1), three input channels.
    pub fn custom(depths: &[usize], dims: &[usize], num_classes: usize) -> Self {
        ConvNextConfig { depths: depths.to_vec(), dims: dims.to_vec(), in_channels: 3, num_classes }
    }
}

struct CnBlock {
    dwconv: DepthwiseConv2d,
    norm: ChannelNorm,
    fc1: Linear,
    fc2: Linear,
    /// (1, dim, 1, 1)
    layer_scale: Tensor,
}

impl CnBlock {
    fn load(vb: VarBuilder, dim: usize) -> Result<Self> {
        let b = vb.pp("block");
        Ok(CnBlock {
            dwconv: DepthwiseConv2d::load(b.pp("0"), dim, 7, 3, true)?,
            norm: ChannelNorm::load(b.pp("2"), dim, LN_EPS)?,
            fc1: candle_nn::linear(dim, 4 * dim, b.pp("3"))?,
            fc2: candle_nn::linear(4 * dim, dim, b.pp("5"))?,
            layer_scale: vb.get((dim, 1, 1), "layer_scale")?.unsqueeze(0)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let y = self.dwconv.forward(x)?;
        // channels-last rows for the LayerNorm and the two Linears
        let y = y.permute((0, 2, 3, 1))?.contiguous()?.reshape((n * h * w, c))?;
        let y = self.norm.forward_last(&y)?;
        let y = self.fc2.forward(&self.fc1.forward(&y)?.gelu_erf()?)?;
        let y = y.reshape((n, h, w, c))?.permute((0, 3, 1, 2))?;
        x + y.broadcast_mul(&self.layer_scale)?
    }
}

enum Feature {
    Stem(GemmConv2d, ChannelNorm),
    Stage(Vec<CnBlock>),
    Downsample(ChannelNorm, GemmConv2d),
}

pub struct ConvNext {
    features: Vec<Feature>,
    head_norm: ChannelNorm,
    head: Linear,
}

impl ConvNext {
    /// `vb` at the state dict's root (keys `features.*`, `classifier.*`).
    pub fn load(vb: VarBuilder, config: &ConvNextConfig) -> Result<Self> {
        if config.depths.len() != config.dims.len() || config.dims.is_empty() {
            candle_core::bail!(
                "ConvNeXt config: {} depths for {} dims",
                config.depths.len(),
                config.dims.len()
            );
        }
        let f = vb.pp("features");
        let d0 = config.dims[0];
        let mut features = vec![Feature::Stem(
            GemmConv2d::load(f.pp("0").pp("0"), config.in_channels, d0, 4, 4, 0, true)?,
            ChannelNorm::load(f.pp("0").pp("1"), d0, LN_EPS)?,
        )];
        for (i, (&depth, &dim)) in config.depths.iter().zip(&config.dims).enumerate() {
            let s = f.pp((2 * i + 1).to_string());
            let blocks =
                (0..depth).map(|b| CnBlock::load(s.pp(b.to_string()), dim)).collect::<Result<Vec<_>>>()?;
            features.push(Feature::Stage(blocks));
            if let Some(&next) = config.dims.get(i + 1) {
                let d = f.pp((2 * i + 2).to_string());
                features.push(Feature::Downsample(
                    ChannelNorm::load(d.pp("0"), dim, LN_EPS)?,
                    GemmConv2d::load(d.pp("1"), dim, next, 2, 2, 0, true)?,
                ));
            }
        }
        let last = *config.dims.last().unwrap_or(&d0);
        let cl = vb.pp("classifier");
        Ok(ConvNext {
            features,
            head_norm: ChannelNorm::load(cl.pp("0"), last, LN_EPS)?,
            head: candle_nn::linear(last, config.num_classes, cl.pp("2"))?,
        })
    }
}

impl Network for ConvNext {
    fn forward_tap(&self, x: &Tensor, tap: &mut Tap) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, f) in self.features.iter().enumerate() {
            x = match f {
                Feature::Stem(conv, norm) => norm.forward_nchw(&conv.forward(&x)?)?,
                Feature::Stage(blocks) => {
                    for b in blocks {
                        x = b.forward(&x)?;
                    }
                    x
                }
                Feature::Downsample(norm, conv) => conv.forward(&norm.forward_nchw(&x)?)?,
            };
            x = tap.visit(&format!("features.{i}"), x);
        }
        // LayerNorm2d on the pooled (N, C, 1, 1) map is a LayerNorm over C of (N, C).
        let pooled = global_avg_pool(&x)?;
        self.head.forward(&self.head_norm.forward_last(&pooled)?)
    }

    fn task(&self) -> Task {
        Task::Classification
    }
}
