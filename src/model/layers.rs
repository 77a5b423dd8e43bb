//! Building blocks shared by the architectures, named like torch.nn so that `vb.pp(..)` paths match
//! state-dict keys. All layers run in inference mode (BatchNorm uses its running statistics).

use candle_core::{Module, Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, VarBuilder};

/// `nn.Conv2d(in, out, k, stride, padding, bias)`: weights `{prefix}.weight` (out, in/groups, k, k) and
/// optionally `{prefix}.bias`.
pub fn conv2d(
    vb: VarBuilder,
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: usize,
    padding: usize,
    bias: bool,
) -> Result<Conv2d> {
    let cfg = Conv2dConfig { stride, padding, ..Default::default() };
    if bias {
        candle_nn::conv2d(in_c, out_c, k, cfg, vb)
    } else {
        candle_nn::conv2d_no_bias(in_c, out_c, k, cfg, vb)
    }
}

/// `nn.BatchNorm2d(c)` with eps 1e-5: `weight`, `bias`, `running_mean`, `running_var`
/// (`num_batches_tracked` is ignored).
pub fn batch_norm(vb: VarBuilder, c: usize) -> Result<BatchNorm> {
    candle_nn::batch_norm(c, 1e-5, vb)
}

/// Applies a BatchNorm in inference mode.
pub fn bn(bn: &BatchNorm, x: &Tensor) -> Result<Tensor> {
    candle_nn::ModuleT::forward_t(bn, x, false)
}

/// Conv then (optional) BN then ReLU, the commonest trio.
pub fn conv_bn_relu(conv: &Conv2d, norm: Option<&BatchNorm>, x: &Tensor) -> Result<Tensor> {
    let mut y = conv.forward(x)?;
    if let Some(n) = norm {
        y = bn(n, &y)?;
    }
    y.relu()
}

/// `nn.MaxPool2d(kernel, stride, padding)` written as a max over the kernel's strided views. candle's
/// `max_pool2d` has no padding and no backward when kernel ≠ stride; this form is exact, pads with −∞ as
/// PyTorch does, and is differentiable.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    if padding == 0 && kernel == stride {
        // candle's own max_pool2d scales gradients wrongly (see max_pool2d_floor).
        return max_pool2d_floor(x, kernel);
    }
    let (_, _, h, w) = x.dims4()?;
    let x = if padding > 0 {
        let neg = f32::NEG_INFINITY;
        pad_const(x, padding, neg)?
    } else {
        x.clone()
    };
    let oh = (h + 2 * padding - kernel) / stride + 1;
    let ow = (w + 2 * padding - kernel) / stride + 1;
    let mut out: Option<Tensor> = None;
    for dy in 0..kernel {
        for dx in 0..kernel {
            let v = strided_view(&x, dy, dx, stride, oh, ow)?;
            out = Some(match out {
                None => v,
                Some(o) => o.maximum(&v)?,
            });
        }
    }
    out.ok_or_else(|| candle_core::Error::Msg("max_pool2d with a zero kernel".into()))
}

/// `nn.AvgPool2d(kernel, stride)` with no padding.
pub fn avg_pool2d(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    x.avg_pool2d_with_stride(kernel, stride)
}

/// Rows dy, dy+s, ..., and columns dx, dx+s, ... (oh × ow of them).
fn strided_view(x: &Tensor, dy: usize, dx: usize, s: usize, oh: usize, ow: usize) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    // Take the window [dy, dy + oh*s) then reshape to (oh, s) and keep column 0: a strided pick
    // without gather, differentiable through narrow/reshape.
    let need_h = oh * s;
    let need_w = ow * s;
    let x = pad_to(x, dy + need_h, dx + need_w)?;
    let x = x.narrow(2, dy, need_h)?.narrow(3, dx, need_w)?;
    let x = x.reshape((n, c, oh, s, ow, s))?;
    x.narrow(3, 0, 1)?.narrow(5, 0, 1)?.reshape((n, c, oh, ow))
}

/// Pads bottom/right with −∞ so that narrow never runs past the edge (the padded values are never picked).
fn pad_to(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, xh, xw) = x.dims4()?;
    let mut x = x.clone();
    if h > xh {
        x = x.pad_with_same(2, 0, h - xh)?;
    }
    if w > xw {
        x = x.pad_with_same(3, 0, w - xw)?;
    }
    Ok(x)
}

fn pad_const(x: &Tensor, p: usize, value: f32) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let full = Tensor::full(value, (n, c, h + 2 * p, w + 2 * p), x.device())?.to_dtype(x.dtype())?;
    full.slice_assign(&[0..n, 0..c, p..p + h, p..p + w], x)
}

/// Nearest-neighbour upsampling by an integer factor (`nn.Upsample(scale_factor=f, mode="nearest")`),
/// differentiable in candle.
pub fn upsample_nearest(x: &Tensor, factor: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    x.upsample_nearest2d(h * factor, w * factor)
}

/// `nn.ConvTranspose2d(in, out, k, stride)` with bias (`{prefix}.weight` (in, out, k, k), `{prefix}.bias`).
/// candle has a backward for it, so learned upsampling keeps gradients flowing.
pub fn conv_transpose2d(
    vb: VarBuilder,
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: usize,
) -> Result<candle_nn::ConvTranspose2d> {
    let cfg = candle_nn::ConvTranspose2dConfig { stride, ..Default::default() };
    candle_nn::conv_transpose2d(in_c, out_c, k, cfg, vb)
}

/// `F.interpolate(x, size=(h, w), mode="nearest")`. Integer, uniform factors use candle's nearest
/// upsampling (which has a backward); other sizes pick rows and columns with `index_select` using
/// PyTorch's source index `floor(dst · in/out)` computed in f32, which is differentiable too.
pub fn resize_nearest(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, xh, xw) = x.dims4()?;
    if (xh, xw) == (h, w) {
        return Ok(x.clone());
    }
    if h % xh == 0 && w % xw == 0 && h / xh == w / xw {
        return x.upsample_nearest2d(h, w);
    }
    let pick = |src: usize, dst: usize| -> Result<Tensor> {
        let scale = src as f32 / dst as f32;
        let idx: Vec<u32> =
            (0..dst).map(|i| ((i as f32 * scale).floor() as usize).min(src - 1) as u32).collect();
        Tensor::new(idx.as_slice(), x.device())
    };
    let x = if xh != h { x.index_select(&pick(xh, h)?, 2)? } else { x.clone() };
    if xw != w {
        x.index_select(&pick(xw, w)?, 3)
    } else {
        Ok(x)
    }
}

/// Brings `x` to `h × w` the way milesial's U-Net does with `F.pad(x, [dX // 2, dX - dX // 2, dY // 2,
/// dY - dY // 2])`: zero padding split before/after (the smaller half first) when `x` is smaller, and, for
/// a negative difference, the same split as a crop (Python's floor division: a crop of 1 is taken from the
/// start).
pub fn fit_to(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, xh, xw) = x.dims4()?;
    let mut x = x.clone();
    for (dim, cur, want) in [(2usize, xh, h), (3usize, xw, w)] {
        if want > cur {
            let d = want - cur;
            x = x.pad_with_zeros(dim, d / 2, d - d / 2)?;
        } else if want < cur {
            let d = cur - want;
            // floor(-d / 2) = -ceil(d / 2) elements are cut at the start.
            x = x.narrow(dim, d.div_ceil(2), want)?;
        }
    }
    Ok(x)
}

/// `conv.forward(x)`, made safe for backprop when a strided convolution leaves a different remainder in
/// height and width (e.g. 5×6 → 3×3 at stride 2). candle 0.11's conv2d backward computes the transposed
/// convolution's `output_padding` from the height only and uses it for both axes, so the input gradient
/// comes back one column short and the backward fails with a shape mismatch. Zero rows/columns appended
/// at the bottom/right equalise the remainders: they only ever meet the kernel where PyTorch's own zero
/// padding was, so the output is unchanged and their gradient is dropped by the pad's backward.
pub fn conv2d_fwd(conv: &Conv2d, x: &Tensor) -> Result<Tensor> {
    let cfg = conv.config();
    if cfg.stride <= 1 {
        return conv.forward(x);
    }
    let (_, _, kh, kw) = conv.weight().dims4()?;
    let (_, _, h, w) = x.dims4()?;
    let (s, p, d) = (cfg.stride, cfg.padding, cfg.dilation);
    let rem = |n: usize, k: usize| (n + 2 * p - d * (k - 1) - 1) % s;
    let (rh, rw) = (rem(h, kh), rem(w, kw));
    let x = match rh.cmp(&rw) {
        std::cmp::Ordering::Equal => x.clone(),
        std::cmp::Ordering::Less => x.pad_with_zeros(2, 0, rw - rh)?,
        std::cmp::Ordering::Greater => x.pad_with_zeros(3, 0, rh - rw)?,
    };
    conv.forward(&x)
}

/// `nn.MaxPool2d(k)` (stride k, floor mode) with a correct backward for any size. candle 0.11's max-pool
/// backward is wrong twice: it multiplies the gradient by the fraction of maxima in the window (1/k² for a
/// unique maximum) where it means to divide, and it maps the pooled map back with nearest-neighbour
/// indices that are misaligned when the size is not a multiple of `k`. This form crops what floor mode
/// ignores, then takes max reductions over a (h/k, k, w/k, k) view, whose backward is exact. (The same
/// flaw affects `max_pool2d(x, k, k, 0)` above, which delegates to candle's op.)
pub fn max_pool2d_floor(x: &Tensor, k: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / k, w / k);
    let x =
        if (oh * k, ow * k) != (h, w) { x.narrow(2, 0, oh * k)?.narrow(3, 0, ow * k)? } else { x.clone() };
    x.reshape((n, c, oh, k, ow, k))?.max(5)?.max(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn max_pool_3x3_stride2_pad1_matches_torch() {
        // torch.nn.MaxPool2d(3, 2, 1)(torch.arange(25.).reshape(1,1,5,5)) = [[6,8,9],[16,18,19],[21,23,24]]
        let x = Tensor::arange(0f32, 25., &Device::Cpu).unwrap().reshape((1, 1, 5, 5)).unwrap();
        let y = max_pool2d(&x, 3, 2, 1).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![6., 8., 9., 16., 18., 19., 21., 23., 24.]);
    }
}
