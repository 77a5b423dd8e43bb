//! torchvision's VGG (with and without BatchNorm).
//!
//! # State-dict keys
//! `features` is torchvision's `make_layers(cfg, batch_norm)`: walking the config, a number `c` adds
//! `Conv2d(prev, c, 3, padding=1)` [+ `BatchNorm2d(c)`] + `ReLU`, and `"M"` adds `MaxPool2d(2, 2)`, each
//! module taking the next index `N`:
//! ```text
//! features.{N}.{weight,bias}                                 conv (c, prev, 3, 3)
//! features.{N+1}.{weight,bias,running_mean,running_var}      BatchNorm2d (vgg*_bn only)
//! classifier.0.{weight,bias}   Linear(last_c * 7 * 7, width)  (then ReLU, Dropout = identity here)
//! classifier.3.{weight,bias}   Linear(width, width)
//! classifier.6.{weight,bias}   Linear(width, num_classes)
//! ```
//! `avgpool` is `AdaptiveAvgPool2d(7)` (no parameters), computed with PyTorch's exact windows for any
//! input size.
//!
//! # Taps
//! `features.{N}` at every ReLU and max-pool index, then `avgpool`. For `vgg16` the last conv block ends at
//! `features.29` (ReLU after conv 28) and `features.30` (the last pool); for `vgg16_bn` at `features.42`
//! (ReLU) and `features.43` (pool). [`Vgg::last_conv_relu`] gives that name for any config; it is the
//! usual Grad-CAM layer.

use candle_core::{Module, Result, Tensor};
use candle_nn::{BatchNorm, Linear, VarBuilder};

use super::layers::{adaptive_avg_pool2d, batch_norm, bn_relu, max_pool2d, GemmConv2d};
use super::{Network, Tap, Task};

/// One entry of torchvision's VGG config list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VggLayer {
    /// 3×3 convolution (padding 1) with this many output channels, then [BN,] ReLU.
    Conv(usize),
    /// `MaxPool2d(2, 2)` (written `"M"` in torchvision).
    MaxPool,
}

/// torchvision's VGG knobs; the standard variants have 3 input channels and 1000 classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VggConfig {
    pub layers: Vec<VggLayer>,
    pub batch_norm: bool,
    /// Width of the two hidden classifier layers (4096 in torchvision).
    pub classifier_width: usize,
    pub in_channels: usize,
    pub num_classes: usize,
}

const VGG16_CFG: [usize; 18] = [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0];

impl VggConfig {
    /// torchvision `vgg16` (config "D").
    pub fn vgg16() -> Self {
        let layers =
            VGG16_CFG.iter().map(|&c| if c == 0 { VggLayer::MaxPool } else { VggLayer::Conv(c) }).collect();
        VggConfig { layers, batch_norm: false, classifier_width: 4096, in_channels: 3, num_classes: 1000 }
    }

    /// torchvision `vgg16_bn`.
    pub fn vgg16_bn() -> Self {
        VggConfig { batch_norm: true, ..Self::vgg16() }
    }

    /// The same network with another number of outputs.
    pub fn with_num_classes(self, num_classes: usize) -> Self {
        VggConfig { num_classes, ..self }
    }

    /// A custom config in torchvision's notation: numbers are conv widths, `"M"` a max-pool.
    pub fn custom(
        cfg: &[&str],
        batch_norm: bool,
        classifier_width: usize,
        in_channels: usize,
        num_classes: usize,
    ) -> std::result::Result<Self, String> {
        let layers = cfg
            .iter()
            .map(|s| match *s {
                "M" => Ok(VggLayer::MaxPool),
                n => n
                    .parse::<usize>()
                    .map(VggLayer::Conv)
                    .map_err(|_| format!("bad VGG layer {n:?} (a width or \"M\")")),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(VggConfig { layers, batch_norm, classifier_width, in_channels, num_classes })
    }

    fn last_channels(&self) -> usize {
        self.layers
            .iter()
            .rev()
            .find_map(|l| match l {
                VggLayer::Conv(c) => Some(*c),
                VggLayer::MaxPool => None,
            })
            .unwrap_or(self.in_channels)
    }
}

enum Stage {
    /// Conv, optional BN, and the `features` index of its ReLU.
    Conv(GemmConv2d, Option<BatchNorm>, usize),
    /// Max-pool and its index.
    Pool(usize),
}

pub struct Vgg {
    stages: Vec<Stage>,
    fc0: Linear,
    fc3: Linear,
    fc6: Linear,
    last_conv_relu: String,
}

impl Vgg {
    /// `vb` at the state dict's root (keys `features.*`, `classifier.*`).
    pub fn load(vb: VarBuilder, config: &VggConfig) -> Result<Self> {
        let f = vb.pp("features");
        let mut idx = 0;
        let mut c = config.in_channels;
        let mut stages = Vec::new();
        let mut last_relu = None;
        for layer in &config.layers {
            match *layer {
                VggLayer::Conv(out) => {
                    let conv = GemmConv2d::load(f.pp(idx.to_string()), c, out, 3, 1, 1, true)?;
                    let norm = if config.batch_norm {
                        Some(batch_norm(f.pp((idx + 1).to_string()), out)?)
                    } else {
                        None
                    };
                    let relu = idx + if config.batch_norm { 2 } else { 1 };
                    stages.push(Stage::Conv(conv, norm, relu));
                    last_relu = Some(relu);
                    idx = relu + 1;
                    c = out;
                }
                VggLayer::MaxPool => {
                    stages.push(Stage::Pool(idx));
                    idx += 1;
                }
            }
        }
        let cl = vb.pp("classifier");
        let w = config.classifier_width;
        Ok(Vgg {
            stages,
            fc0: candle_nn::linear(config.last_channels() * 49, w, cl.pp("0"))?,
            fc3: candle_nn::linear(w, w, cl.pp("3"))?,
            fc6: candle_nn::linear(w, config.num_classes, cl.pp("6"))?,
            last_conv_relu: format!("features.{}", last_relu.unwrap_or(0)),
        })
    }

    /// Tap name of the last ReLU of `features` (`features.29` for vgg16, `features.42` for vgg16_bn).
    pub fn last_conv_relu(&self) -> &str {
        &self.last_conv_relu
    }
}

impl Network for Vgg {
    fn forward_tap(&self, x: &Tensor, tap: &mut Tap) -> Result<Tensor> {
        let mut x = x.clone();
        for stage in &self.stages {
            x = match stage {
                Stage::Conv(conv, norm, relu) => {
                    let y = match norm {
                        Some(n) => bn_relu(n, &conv.forward(&x)?)?,
                        None => conv.forward_relu(&x)?,
                    };
                    tap.visit(&format!("features.{relu}"), y)
                }
                Stage::Pool(i) => tap.visit(&format!("features.{i}"), max_pool2d(&x, 2, 2, 0)?),
            };
        }
        let x = tap.visit("avgpool", adaptive_avg_pool2d(&x, 7, 7)?);
        let x = x.flatten_from(1)?;
        let x = self.fc0.forward(&x)?.relu()?;
        let x = self.fc3.forward(&x)?.relu()?;
        self.fc6.forward(&x)
    }

    fn task(&self) -> Task {
        Task::Classification
    }
}
