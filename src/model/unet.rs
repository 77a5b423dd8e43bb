//! The classic U-Net (Ronneberger et al.) with the module names of milesial/Pytorch-UNet (`unet_model.py`,
//! `unet_parts.py`): DoubleConv = (3×3 conv without bias, BN, ReLU) × 2; Down = MaxPool2d(2) then
//! DoubleConv; Up = ConvTranspose2d(c, c/2, 2, 2) (or, with `bilinear`, a ×2 bilinear upsampling with
//! `align_corners=True`), `F.pad` to the skip's size, `cat([skip, up])`, DoubleConv; OutConv = 1×1 conv.
//!
//! # Parameter names (w = `base_width`, 64 standard; f = 2 with `bilinear`, else 1)
//! - `inc.double_conv.{0,3}.weight` (3×3 convs), `inc.double_conv.{1,4}.{weight,bias,running_mean,
//!   running_var}` (BN): in → w → w
//! - `down{k}.maxpool_conv.1.double_conv.{0,1,3,4}.*`, k = 1..4: w·2^(k-1) → w·2^k (down4: → 16w / f)
//! - `up{k}.up.weight` (c, c/2, 2, 2), `up{k}.up.bias` (transposed conv; absent with `bilinear`),
//!   `up{k}.conv.double_conv.{0,1,3,4}.*`; up1: 16w → 8w/f, up2: 8w → 4w/f, up3: 4w → 2w/f, up4: 2w → w
//!   (with `bilinear` the DoubleConv's middle width is in/2)
//! - `outc.conv.weight` (classes, w, 1, 1), `outc.conv.bias`
//!
//! # Taps
//! `inc`, `down1` … `down4`, `up1` … `up4` (module outputs).
//!
//! `bilinear = true` runs forward only: candle has no backward for bilinear upsampling, so gradient-based
//! explanations need the transposed-convolution form.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, ConvTranspose2d, VarBuilder};

use super::layers::{self, ConvBn};
use super::{Network, Tap, Task};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnetConfig {
    /// `n_channels` (input channels).
    pub in_channels: usize,
    /// Width of `inc` (64 in the paper and in milesial's repository).
    pub base_width: usize,
    /// milesial's `bilinear` flag (default there is False; forward only here).
    pub bilinear: bool,
}

impl UnetConfig {
    /// 64 → 1024 channels, transposed-convolution upsampling, 3 input channels.
    pub fn standard() -> Self {
        UnetConfig { in_channels: 3, base_width: 64, bilinear: false }
    }

    pub fn with_base_width(mut self, base_width: usize) -> Self {
        self.base_width = base_width;
        self
    }
}

impl Default for UnetConfig {
    fn default() -> Self {
        Self::standard()
    }
}

struct DoubleConv {
    c1: ConvBn,
    c2: ConvBn,
}

impl DoubleConv {
    /// `vb` points at the `DoubleConv` module (its `double_conv` Sequential is below it).
    fn new(vb: VarBuilder, in_c: usize, out_c: usize, mid_c: usize) -> Result<Self> {
        let s = vb.pp("double_conv");
        Ok(DoubleConv {
            c1: ConvBn::load(s.pp("0"), s.pp("1"), in_c, mid_c, 3, 1, 1)?,
            c2: ConvBn::load(s.pp("3"), s.pp("4"), mid_c, out_c, 3, 1, 1)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.c2.forward_relu(&self.c1.forward_relu(x)?)
    }
}

struct Up {
    up: Option<ConvTranspose2d>,
    conv: DoubleConv,
}

impl Up {
    fn new(vb: VarBuilder, in_c: usize, out_c: usize, bilinear: bool) -> Result<Self> {
        if bilinear {
            Ok(Up { up: None, conv: DoubleConv::new(vb.pp("conv"), in_c, out_c, in_c / 2)? })
        } else {
            Ok(Up {
                up: Some(layers::conv_transpose2d(vb.pp("up"), in_c, in_c / 2, 2, 2)?),
                conv: DoubleConv::new(vb.pp("conv"), in_c, out_c, out_c)?,
            })
        }
    }

    fn forward(&self, x: &Tensor, skip: &Tensor) -> Result<Tensor> {
        let x = match &self.up {
            Some(up) => layers::conv_transpose2d_fwd(up, x)?,
            None => {
                let (_, _, h, w) = x.dims4()?;
                x.upsample_bilinear2d(2 * h, 2 * w, true)?
            }
        };
        let (_, _, h, w) = skip.dims4()?;
        let x = layers::fit_to(&x, h, w)?;
        self.conv.forward(&Tensor::cat(&[skip, &x], 1)?)
    }
}

/// milesial's `UNet`.
pub struct Unet {
    inc: DoubleConv,
    downs: Vec<DoubleConv>,
    ups: Vec<Up>,
    outc: Conv2d,
}

impl Unet {
    pub fn new(vb: VarBuilder, config: &UnetConfig, classes: usize) -> Result<Self> {
        let w = config.base_width;
        let f = if config.bilinear { 2 } else { 1 };
        let inc = DoubleConv::new(vb.pp("inc"), config.in_channels, w, w)?;
        let mut downs = Vec::with_capacity(4);
        for k in 1..=4usize {
            let (i, o) = (w << (k - 1), if k == 4 { (w << 4) / f } else { w << k });
            downs.push(DoubleConv::new(vb.pp(format!("down{k}")).pp("maxpool_conv").pp("1"), i, o, o)?);
        }
        let mut ups = Vec::with_capacity(4);
        for k in 1..=4usize {
            let i = w << (5 - k);
            let o = if k == 4 { w } else { (w << (4 - k)) / f };
            ups.push(Up::new(vb.pp(format!("up{k}")), i, o, config.bilinear)?);
        }
        let outc = layers::conv2d(vb.pp("outc").pp("conv"), w, classes, 1, 1, 0, true)?;
        Ok(Unet { inc, downs, ups, outc })
    }
}

impl Network for Unet {
    fn forward_tap(&self, x: &Tensor, tap: &mut Tap) -> Result<Tensor> {
        let mut skips = vec![tap.visit("inc", self.inc.forward(x)?)];
        for (k, d) in self.downs.iter().enumerate() {
            let prev = skips.last().ok_or_else(|| candle_core::Error::Msg("empty U-Net".into()))?;
            let y = d.forward(&layers::max_pool2d_floor(prev, 2)?)?;
            skips.push(tap.visit(&format!("down{}", k + 1), y));
        }
        let mut y = skips[4].clone();
        for (k, up) in self.ups.iter().enumerate() {
            y = tap.visit(&format!("up{}", k + 1), up.forward(&y, &skips[3 - k])?);
        }
        layers::conv2d_fwd(&self.outc, &y)
    }

    fn task(&self) -> Task {
        Task::Segmentation
    }
}
