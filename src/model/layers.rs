//! Building blocks shared by the architectures, named like torch.nn so that `vb.pp(..)` paths match
//! state-dict keys. All layers run in inference mode (BatchNorm uses its running statistics).

use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, VarBuilder};

use super::conv as fastconv;

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

/// Applies a BatchNorm in inference mode: `x · s + t` with the per-channel `s = γ/√(var+ε)` and
/// `t = β − mean·s` computed first (two passes over `x` instead of candle's four; γ and β still receive
/// their gradients when they are `Var`s).
pub fn bn(bn: &BatchNorm, x: &Tensor) -> Result<Tensor> {
    if super::train_mode::is_training() {
        // Batch statistics; running statistics updated with momentum 0.1 (see model::train_mode).
        return super::channel::batch_norm_train(bn, x, false);
    }
    if x.rank() != 4 {
        return candle_nn::ModuleT::forward_t(bn, x, false);
    }
    let (scale, shift) = bn_scale_shift(bn)?;
    let c = scale.dim(0)?;
    x.broadcast_mul(&scale.reshape((1, c, 1, 1))?)?.broadcast_add(&shift.reshape((1, c, 1, 1))?)
}

/// `relu(bn(x))`; in training mode one fused op (see [`super::channel::batch_norm_train`]).
pub fn bn_relu(norm: &BatchNorm, x: &Tensor) -> Result<Tensor> {
    if super::train_mode::is_training() {
        return super::channel::batch_norm_train(norm, x, true);
    }
    bn(norm, x)?.relu()
}

/// The per-channel scale and shift of an inference-mode BatchNorm. The running statistics are
/// detached: candle stores them as `Var`s, and they must not pull the graph into every forward.
fn bn_scale_shift(bn: &BatchNorm) -> Result<(Tensor, Tensor)> {
    let mean = bn.running_mean().detach();
    let inv_std = (bn.running_var().detach() + bn.eps())?.sqrt()?.recip()?;
    Ok(match bn.weight_and_bias() {
        Some((w, b)) => {
            let scale = w.mul(&inv_std)?;
            let shift = b.sub(&mean.mul(&scale)?)?;
            (scale, shift)
        }
        None => {
            let shift = mean.mul(&inv_std)?.neg()?;
            (inv_std, shift)
        }
    })
}

/// Conv then (optional) BN then ReLU, the commonest trio (the fast convolution of [`conv2d_fwd`];
/// without a BN the ReLU is fused into it). Layers built once should prefer [`ConvBn`], which folds the
/// BN into the weights.
pub fn conv_bn_relu(conv: &Conv2d, norm: Option<&BatchNorm>, x: &Tensor) -> Result<Tensor> {
    match norm {
        Some(n) => bn_relu(n, &conv2d_fwd(conv, x)?),
        None => fastconv::conv2d(x, conv.weight(), conv.bias(), conv_params(conv), true),
    }
}

fn conv_params(conv: &Conv2d) -> fastconv::ConvParams {
    let c = conv.config();
    fastconv::ConvParams { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups }
}

/// `nn.Conv2d` followed by `nn.BatchNorm2d` (inference mode). When neither holds a `Var` (a checkpoint
/// loaded for inference) the BN is folded into the convolution at load time: `w·s` and `(b − mean)·s +
/// β`, with `s = γ/√(var+ε)`, computed in f64. With `Var`s (training) both stay separate so that every
/// parameter gets its gradient.
#[derive(Debug, Clone)]
pub struct ConvBn {
    /// The convolution in use: the folded one (with a bias) when `bn` is None.
    conv: Conv2d,
    bn: Option<BatchNorm>,
}

impl ConvBn {
    /// `nn.Conv2d(in, out, k, stride, padding, bias=False)` under `conv`, `nn.BatchNorm2d(out)` under
    /// `norm`.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        conv: VarBuilder,
        norm: VarBuilder,
        in_c: usize,
        out_c: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        Self::new(conv2d(conv, in_c, out_c, k, stride, padding, false)?, batch_norm(norm, out_c)?)
    }

    /// Folds when no parameter is a `Var` (the original weights are then dropped).
    pub fn new(conv: Conv2d, bn: BatchNorm) -> Result<Self> {
        let trainable = conv.weight().is_variable()
            || conv.bias().is_some_and(|b| b.is_variable())
            || bn.weight_and_bias().is_some_and(|(w, b)| w.is_variable() || b.is_variable());
        if trainable || conv.weight().dtype() != candle_core::DType::F32 {
            return Ok(Self::unfolded(conv, bn));
        }
        // candle keeps the running statistics as `Var`s: detached here, or the folded weights would
        // carry a graph back to them, every forward would record one (keeping each activation alive)
        // and every backward would compute weight gradients nobody reads.
        let f64 = candle_core::DType::F64;
        let inv_std = (bn.running_var().detach().to_dtype(f64)? + bn.eps())?.sqrt()?.recip()?;
        let (scale, beta) = match bn.weight_and_bias() {
            Some((w, b)) => (w.to_dtype(f64)?.mul(&inv_std)?, Some(b.to_dtype(f64)?)),
            None => (inv_std, None),
        };
        let co = scale.dim(0)?;
        let weight = conv.weight().to_dtype(f64)?.broadcast_mul(&scale.reshape((co, 1, 1, 1))?)?;
        let mean = bn.running_mean().detach().to_dtype(f64)?;
        let mut bias = match conv.bias() {
            Some(b) => b.to_dtype(f64)?.sub(&mean)?.mul(&scale)?,
            None => mean.mul(&scale)?.neg()?,
        };
        if let Some(beta) = beta {
            bias = bias.add(&beta)?;
        }
        let f32 = candle_core::DType::F32;
        let folded = Conv2d::new(weight.to_dtype(f32)?, Some(bias.to_dtype(f32)?), *conv.config());
        Ok(ConvBn { conv: folded, bn: None })
    }

    /// Keeps the convolution and the BN apart (the reference for the folded form).
    pub fn unfolded(conv: Conv2d, bn: BatchNorm) -> Self {
        ConvBn { conv, bn: Some(bn) }
    }

    pub fn is_folded(&self) -> bool {
        self.bn.is_none()
    }

    /// The convolution run: the original one, or the folded one with its bias.
    pub fn conv(&self) -> &Conv2d {
        &self.conv
    }

    /// The BatchNorm applied after the convolution (None once folded).
    pub fn batch_norm(&self) -> Option<&BatchNorm> {
        self.bn.as_ref()
    }

    /// `bn(conv(x))`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, false)
    }

    /// `relu(bn(conv(x)))`, the ReLU fused into the folded convolution.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, true)
    }

    /// `relu(bn(conv(x)) + residual)`: a residual block's last convolution, shortcut and ReLU, fused
    /// into one op when the BN is folded.
    pub fn forward_add_relu(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        match &self.bn {
            None => fastconv::conv2d_add(
                x,
                self.conv.weight(),
                self.conv.bias(),
                conv_params(&self.conv),
                residual,
                true,
            ),
            Some(_) => fastconv::add_relu(&self.forward(x)?, residual),
        }
    }

    fn forward_act(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        match &self.bn {
            None => fastconv::conv2d(x, self.conv.weight(), self.conv.bias(), conv_params(&self.conv), relu),
            Some(n) if relu => bn_relu(n, &conv2d_fwd(&self.conv, x)?),
            Some(n) => bn(n, &conv2d_fwd(&self.conv, x)?),
        }
    }
}

/// `nn.MaxPool2d(kernel, stride, padding)` written as a max over the kernel's strided views. candle's
/// `max_pool2d` has no padding and no backward when kernel ≠ stride; this form is exact, pads with −∞ as
/// PyTorch does, and is differentiable.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    if x.device().is_cpu()
        && x.dtype() == candle_core::DType::F32
        && x.rank() == 4
        && kernel > 0
        && stride > 0
    {
        let (_, _, h, w) = x.dims4()?;
        if h + 2 * padding < kernel || w + 2 * padding < kernel || padding * 2 > kernel {
            candle_core::bail!("max_pool2d: {h}×{w} input, kernel {kernel}, padding {padding}: no output");
        }
        return x.contiguous()?.apply_op1(MaxPoolOp { kernel, stride, padding });
    }
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

/// `nn.MaxPool2d(kernel, stride, padding)` on contiguous f32 NCHW in one pass; the backward sends each
/// output's gradient to the first maximum of its window in row-major order (PyTorch's choice on ties).
#[derive(Debug, Clone, Copy)]
struct MaxPoolOp {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl MaxPoolOp {
    fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1)
    }

    /// Index (within the plane) of the first maximum of output (oy, ox)'s window; windows always hold
    /// at least one input element because padding ≤ kernel / 2.
    #[inline]
    fn argmax(&self, plane: &[f32], h: usize, w: usize, oy: usize, ox: usize) -> usize {
        let (k, s, p) = (self.kernel as isize, self.stride as isize, self.padding as isize);
        let (y0, x0) = (oy as isize * s - p, ox as isize * s - p);
        let (ya, yb) = (y0.max(0) as usize, ((y0 + k).min(h as isize)) as usize);
        let (xa, xb) = (x0.max(0) as usize, ((x0 + k).min(w as isize)) as usize);
        let mut best = ya * w + xa;
        let mut best_v = f32::NEG_INFINITY;
        for y in ya..yb {
            for (i, &v) in plane[y * w + xa..y * w + xb].iter().enumerate() {
                // `>` keeps the first maximum; a NaN wins as in PyTorch.
                if v > best_v || v.is_nan() {
                    best_v = v;
                    best = y * w + xa + i;
                    if v.is_nan() {
                        return best;
                    }
                }
            }
        }
        best
    }
}

impl candle_core::CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "radlens-max-pool2d"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("max_pool2d: non-contiguous input")
        };
        let (n, c, h, w) = layout.shape().dims4()?;
        let x = &storage.as_slice::<f32>()?[start..end];
        let (oh, ow) = self.out_hw(h, w);
        let mut out = vec![0f32; n * c * oh * ow];
        out.par_chunks_mut(oh * ow).zip(x.par_chunks(h * w)).for_each(|(dst, plane)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    dst[oy * ow + ox] = plane[self.argmax(plane, h, w, oy, ox)];
                }
            }
        });
        Ok((candle_core::CpuStorage::F32(out), (n, c, oh, ow).into()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = arg
            .detach()
            .contiguous()?
            .apply_op2_no_bwd(&grad.detach().contiguous()?, &MaxPoolBackward(*self))?;
        Ok(Some(dx))
    }
}

/// (x, dy) → dx for [`MaxPoolOp`].
struct MaxPoolBackward(MaxPoolOp);

impl candle_core::CustomOp2 for MaxPoolBackward {
    fn name(&self) -> &'static str {
        "radlens-max-pool2d-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let (Some((a, b)), Some((ga, gb))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("max_pool2d backward: non-contiguous input")
        };
        let (n, c, h, w) = l1.shape().dims4()?;
        let (oh, ow) = self.0.out_hw(h, w);
        if l2.shape().dims4()? != (n, c, oh, ow) {
            candle_core::bail!(
                "max_pool2d backward: gradient {:?} for output {:?}",
                l2.shape(),
                (n, c, oh, ow)
            )
        }
        let x = &s1.as_slice::<f32>()?[a..b];
        let g = &s2.as_slice::<f32>()?[ga..gb];
        let mut dx = vec![0f32; n * c * h * w];
        dx.par_chunks_mut(h * w).zip(x.par_chunks(h * w)).zip(g.par_chunks(oh * ow)).for_each(
            |((dst, plane), gp)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        dst[self.0.argmax(plane, h, w, oy, ox)] += gp[oy * ow + ox];
                    }
                }
            },
        );
        Ok((candle_core::CpuStorage::F32(dx), (n, c, h, w).into()))
    }
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
    upsample_repeat(x, factor)
}

/// Nearest upsampling by an integer factor written as a broadcast (n, c, h, 1, w, 1) → (n, c, h, f, w, f)
/// and a reshape: the same values as `upsample_nearest2d`, but its backward is a sum over the broadcast
/// axes, where candle's runs a grouped convolution as one small convolution per channel.
fn upsample_repeat(x: &Tensor, factor: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if factor == 1 {
        return Ok(x.clone());
    }
    x.reshape((n, c, h, 1, w, 1))?.broadcast_as((n, c, h, factor, w, factor))?.contiguous()?.reshape((
        n,
        c,
        h * factor,
        w * factor,
    ))
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

/// `up.forward(x)` for a `ConvTranspose2d`. When the kernel equals the stride (no padding, output
/// padding or dilation: the U-Nets' learned ×2 upsampling) the output blocks do not overlap and the layer
/// is one 1×1 convolution to `out·k²` channels on the fast path, then a pixel shuffle; other
/// configurations use candle's transposed convolution.
pub fn conv_transpose2d_fwd(up: &candle_nn::ConvTranspose2d, x: &Tensor) -> Result<Tensor> {
    let cfg = up.config();
    let (in_c, out_c, kh, kw) = up.weight().dims4()?;
    let plain = cfg.padding == 0
        && cfg.output_padding == 0
        && cfg.dilation == 1
        && kh == cfg.stride
        && kw == cfg.stride;
    if !plain || x.dim(1)? != in_c {
        return candle_core::Module::forward(up, x);
    }
    let (n, _, h, w) = x.dims4()?;
    let k = cfg.stride;
    // (in, out, k, k) → (out, k, k, in) → (out·k·k, in, 1, 1)
    let wt = up.weight().permute((1, 2, 3, 0))?.reshape((out_c * k * k, in_c, 1, 1))?;
    let y = fastconv::conv2d(x, &wt, None, fastconv::ConvParams::default(), false)?;
    // (n, out, k, k, h, w) → (n, out, h, k, w, k)
    let y =
        y.reshape((n, out_c, k, k, h, w))?.permute((0, 1, 4, 2, 5, 3))?.reshape((n, out_c, h * k, w * k))?;
    match up.bias() {
        Some(b) => super::channel::bias_add(&y, b),
        None => Ok(y),
    }
}

/// `F.interpolate(x, size=(h, w), mode="nearest")`. Integer, uniform factors repeat each pixel (a
/// broadcast, see [`upsample_nearest`]); other sizes pick rows and columns with `index_select` using
/// PyTorch's source index `floor(dst · in/out)` computed in f32, which is differentiable too.
pub fn resize_nearest(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, xh, xw) = x.dims4()?;
    if (xh, xw) == (h, w) {
        return Ok(x.clone());
    }
    if h % xh == 0 && w % xw == 0 && h / xh == w / xw {
        return upsample_repeat(x, h / xh);
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

/// `conv.forward(x)` through the fast convolution ([`super::conv`]): on the CPU in f32 a GEMM-based
/// custom op with its own backward (input gradient always, weight gradient only for `Var` weights);
/// elsewhere candle's convolution, with the bottom/right zero padding that keeps candle 0.11's strided
/// backward from failing on uneven remainders (see [`fastconv::reference_conv2d`]).
pub fn conv2d_fwd(conv: &Conv2d, x: &Tensor) -> Result<Tensor> {
    fastconv::conv2d(x, conv.weight(), conv.bias(), conv_params(conv), false)
}

/// `nn.MaxPool2d(k)` (stride k, floor mode) with a correct backward for any size. candle 0.11's max-pool
/// backward is wrong twice: it multiplies the gradient by the fraction of maxima in the window (1/k² for a
/// unique maximum) where it means to divide, and it maps the pooled map back with nearest-neighbour
/// indices that are misaligned when the size is not a multiple of `k`. This form crops what floor mode
/// ignores, then takes max reductions over a (h/k, k, w/k, k) view, whose backward is exact. (The same
/// flaw affects `max_pool2d(x, k, k, 0)` above, which delegates to candle's op.)
pub fn max_pool2d_floor(x: &Tensor, k: usize) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && x.rank() == 4 {
        return max_pool2d(x, k, k, 0);
    }
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

/// `F.adaptive_avg_pool2d(x, (oh, ow))` with PyTorch's windows: output cell `i` averages input rows
/// `floor(i*h/oh) .. ceil((i+1)*h/oh)` (and likewise columns), so windows overlap when the sizes do not
/// divide and the input is replicated when it is smaller than the output. Written with narrow/mean/cat,
/// so it is differentiable.
pub fn adaptive_avg_pool2d(x: &Tensor, oh: usize, ow: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let rows = adaptive_mean_along(x, 2, h, oh)?;
    adaptive_mean_along(&rows, 3, w, ow)
}

fn adaptive_mean_along(x: &Tensor, dim: usize, len: usize, out: usize) -> Result<Tensor> {
    if len == out {
        return Ok(x.clone());
    }
    if out == 1 {
        return x.mean_keepdim(dim);
    }
    let parts = (0..out)
        .map(|i| {
            let start = i * len / out;
            let end = ((i + 1) * len).div_ceil(out);
            x.narrow(dim, start, end - start)?.mean_keepdim(dim)
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&parts, dim)
}

/// Mean over the spatial dimensions, `(N, C, H, W)` → `(N, C)` (`adaptive_avg_pool2d(x, 1)` + flatten).
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.mean(3)?.mean(2)
}

/// LayerNorm weights `{prefix}.weight` and `{prefix}.bias` of length `c`, with its `eps`.
#[derive(Debug, Clone)]
pub struct ChannelNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl ChannelNorm {
    /// `nn.LayerNorm(c, eps)` (or torchvision's `LayerNorm2d`, the same parameters).
    pub fn load(vb: VarBuilder, c: usize, eps: f64) -> Result<Self> {
        Ok(ChannelNorm { weight: vb.get(c, "weight")?, bias: vb.get(c, "bias")?, eps })
    }

    /// Normalises over the last dimension (`nn.LayerNorm` on channels-last input). Built from basic ops
    /// rather than `candle_nn::ops::layer_norm` so that gradients flow.
    pub fn forward_last(&self, x: &Tensor) -> Result<Tensor> {
        let d = x.rank() - 1;
        let mean = x.mean_keepdim(d)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(d)?;
        let y = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        y.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }

    /// Normalises over the channel dimension of NCHW input: torchvision's `LayerNorm2d` (which permutes to
    /// channels-last, applies `F.layer_norm` and permutes back) without the permutes.
    pub fn forward_nchw(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.weight.dim(0)?;
        let mean = x.mean_keepdim(1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(1)?;
        let y = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        y.broadcast_mul(&self.weight.reshape((1, c, 1, 1))?)?.broadcast_add(&self.bias.reshape((1, c, 1, 1))?)
    }
}

/// Depthwise `nn.Conv2d(c, c, k, padding=p, groups=c)` with stride 1: weight `(c, 1, k, k)`, bias `(c)`.
/// candle runs a grouped convolution as one convolution per group (hundreds of tiny ones). On CPU in f32
/// this is a direct kernel (a custom op whose backward, to the input only, is the same kernel with the
/// flipped filter); elsewhere a sum of k² shifted, per-channel-scaled views. Inference only: no gradient
/// reaches the weights.
#[derive(Debug, Clone)]
pub struct DepthwiseConv2d {
    /// `(k*k)` tensors of shape (1, c, 1, 1), row-major over the kernel.
    taps: Vec<Tensor>,
    /// (c, k, k) host copy for the CPU kernel (None when the weights are not f32).
    host: Option<std::sync::Arc<Vec<f32>>>,
    bias: Option<Tensor>,
    k: usize,
    padding: usize,
}

impl DepthwiseConv2d {
    pub fn load(vb: VarBuilder, c: usize, k: usize, padding: usize, bias: bool) -> Result<Self> {
        let w = vb.get((c, 1, k, k), "weight")?;
        let w = w.reshape((c, k * k))?.t()?.contiguous()?; // (k*k, c)
        let taps = (0..k * k).map(|i| w.get(i)?.reshape((1, c, 1, 1))).collect::<Result<Vec<_>>>()?;
        let bias = if bias { Some(vb.get(c, "bias")?.reshape((1, c, 1, 1))?) } else { None };
        let wt = vb.get((c, 1, k, k), "weight")?;
        let host = if wt.dtype() == candle_core::DType::F32 {
            Some(std::sync::Arc::new(wt.flatten_all()?.to_vec1::<f32>()?))
        } else {
            None
        };
        Ok(DepthwiseConv2d { taps, host, bias, k, padding })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        if let (Some(wts), true, true) =
            (&self.host, x.device().is_cpu(), x.dtype() == candle_core::DType::F32)
        {
            if h + 2 * self.padding >= self.k && w + 2 * self.padding >= self.k {
                let op = DepthwiseOp {
                    w: wts.clone(),
                    k: self.k,
                    padding: self.padding,
                    flip: false,
                    dims: (n, c, h, w),
                };
                let y = x.contiguous()?.apply_op1(op)?;
                return match &self.bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                };
            }
        }
        let p = self.padding;
        let xp = if p > 0 { x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)? } else { x.clone() };
        let oh = h + 2 * p + 1 - self.k;
        let ow = w + 2 * p + 1 - self.k;
        let mut acc: Option<Tensor> = None;
        for dy in 0..self.k {
            let band = xp.narrow(2, dy, oh)?;
            for dx in 0..self.k {
                let v = band.narrow(3, dx, ow)?.broadcast_mul(&self.taps[dy * self.k + dx])?;
                acc = Some(match acc {
                    None => v,
                    Some(a) => (a + v)?,
                });
            }
        }
        let y = acc.ok_or_else(|| candle_core::Error::Msg("depthwise conv with a zero kernel".into()))?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// `nn.BatchNorm2d(c)` (eps 1e-5) in inference mode folded into one per-channel scale and shift:
/// `x * w/sqrt(var+eps) + (b - mean * w/sqrt(var+eps))`; same parameter names as [`batch_norm`]. On CPU
/// in f32 it is one pass (a custom op whose backward is one pass too, to the input only: candle's own
/// broadcast ops would also compute gradients for the constant scale and shift); elsewhere two broadcast
/// ops. When its parameters are `Var`s (a network built for `radlens train`) it stays an ordinary
/// BatchNorm run through [`bn`] instead: batch statistics in training mode, gradients to γ and β.
#[derive(Debug, Clone)]
pub struct FrozenBatchNorm {
    /// (1, c, 1, 1)
    scale: Tensor,
    /// (1, c, 1, 1)
    shift: Tensor,
    host: Option<(std::sync::Arc<Vec<f32>>, std::sync::Arc<Vec<f32>>)>,
    trainable: Option<BatchNorm>,
}

impl FrozenBatchNorm {
    pub fn load(vb: VarBuilder, c: usize) -> Result<Self> {
        let norm = batch_norm(vb, c)?;
        let Some((w, b)) = norm.weight_and_bias() else {
            candle_core::bail!("batch norm without affine parameters")
        };
        let (w, b) = (w.clone(), b.clone());
        let trainable = w.is_variable();
        let (mean, var) = (norm.running_mean().detach(), norm.running_var().detach());
        let scale = w.detach().div(&(var + 1e-5)?.sqrt()?)?;
        let shift = b.detach().sub(&mean.mul(&scale)?)?;
        let host = if scale.dtype() == candle_core::DType::F32 && !trainable {
            Some((std::sync::Arc::new(scale.to_vec1::<f32>()?), std::sync::Arc::new(shift.to_vec1::<f32>()?)))
        } else {
            None
        };
        Ok(FrozenBatchNorm {
            scale: scale.reshape((1, c, 1, 1))?,
            shift: shift.reshape((1, c, 1, 1))?,
            host,
            trainable: trainable.then_some(norm),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, false)
    }

    /// `relu(bn(x))`, one pass over `x` (and one over the gradient) on the CPU.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, true)
    }

    fn forward_act(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        if let Some(norm) = &self.trainable {
            return if relu { bn_relu(norm, x) } else { bn(norm, x) };
        }
        if let (Some((scale, shift)), true, true, 4) =
            (&self.host, x.device().is_cpu(), x.dtype() == candle_core::DType::F32, x.rank())
        {
            let op =
                ChannelAffine { scale: scale.clone(), shift: Some(shift.clone()), channels: x.dim(1)?, relu };
            return x.contiguous()?.apply_op1(op);
        }
        let y = x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }
}

/// `x * scale[c] + shift[c]` over NCHW (then ReLU when `relu`), one pass; the backward is the same
/// scaling of the gradient, masked where the output is zero under the ReLU.
#[derive(Debug, Clone)]
struct ChannelAffine {
    scale: std::sync::Arc<Vec<f32>>,
    shift: Option<std::sync::Arc<Vec<f32>>>,
    channels: usize,
    relu: bool,
}

impl candle_core::CustomOp1 for ChannelAffine {
    fn name(&self) -> &'static str {
        "radlens-channel-affine"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("channel affine: non-contiguous input")
        };
        let dims = layout.shape().dims();
        let (c, plane) = (dims[1], dims[2] * dims[3]);
        if c != self.channels || c != self.scale.len() {
            candle_core::bail!("channel affine: {c} channels for {} parameters", self.scale.len())
        }
        let x = &storage.as_slice::<f32>()?[start..end];
        let mut out = Vec::with_capacity(x.len());
        for (i, row) in x.chunks(plane).enumerate() {
            let s = self.scale[i % c];
            let t = self.shift.as_ref().map_or(0.0, |t| t[i % c]);
            if self.relu {
                out.extend(row.iter().map(|v| (v * s + t).max(0.0)));
            } else {
                out.extend(row.iter().map(|v| v * s + t));
            }
        }
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op =
            ChannelAffine { scale: self.scale.clone(), shift: None, channels: self.channels, relu: false };
        if self.relu {
            let masked = MaskedChannelScale(op);
            return Ok(Some(grad.contiguous()?.apply_op2_no_bwd(&res.contiguous()?, &masked)?));
        }
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

/// (dy, y) → dy · scale[c] where y > 0, else 0: [`ChannelAffine`]'s backward under its ReLU.
struct MaskedChannelScale(ChannelAffine);

impl candle_core::CustomOp2 for MaskedChannelScale {
    fn name(&self) -> &'static str {
        "radlens-channel-affine-relu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (Some((a, b)), Some((c0, c1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("channel affine backward: non-contiguous input")
        };
        let (g, y) = (&s1.as_slice::<f32>()?[a..b], &s2.as_slice::<f32>()?[c0..c1]);
        let dims = l1.shape().dims();
        if g.len() != y.len() || dims.len() != 4 || dims[1] != self.0.scale.len() {
            candle_core::bail!(
                "channel affine backward: gradient {:?} for output {:?}",
                l1.shape(),
                l2.shape()
            )
        }
        let (c, plane) = (dims[1], dims[2] * dims[3]);
        let mut out = Vec::with_capacity(g.len());
        for (i, (gr, yr)) in g.chunks(plane.max(1)).zip(y.chunks(plane.max(1))).enumerate() {
            let s = self.0.scale[i % c];
            out.extend(gr.iter().zip(yr).map(|(&g, &y)| if y > 0.0 { g * s } else { 0.0 }));
        }
        Ok((candle_core::CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `nn.Conv2d(in, out, k, stride, padding, bias)`: the name the classifiers use for [`conv2d`] run
/// through the fast convolution ([`conv2d_fwd`]).
#[derive(Debug, Clone)]
pub struct GemmConv2d {
    conv: Conv2d,
}

impl GemmConv2d {
    pub fn load(
        vb: VarBuilder,
        in_c: usize,
        out_c: usize,
        k: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Self> {
        Ok(GemmConv2d { conv: conv2d(vb, in_c, out_c, k, stride, padding, bias)? })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d_fwd(&self.conv, x)
    }

    /// `relu(conv(x))`, the ReLU fused into the convolution.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        conv_bn_relu(&self.conv, None, x)
    }
}

/// Stride-1 depthwise correlation of (N, C, H, W) with per-channel k×k filters and zero padding `padding`;
/// `flip` rotates the filters by 180°, which turns the op into its own input adjoint (with padding
/// k-1-padding).
#[derive(Debug, Clone)]
struct DepthwiseOp {
    w: std::sync::Arc<Vec<f32>>,
    k: usize,
    padding: usize,
    flip: bool,
    dims: (usize, usize, usize, usize),
}

impl DepthwiseOp {
    fn out_hw(&self) -> (usize, usize) {
        let (_, _, h, w) = self.dims;
        (h + 2 * self.padding + 1 - self.k, w + 2 * self.padding + 1 - self.k)
    }

    /// One (image, channel) plane.
    fn plane(&self, ch: usize, x: &[f32], out: &mut [f32]) {
        let (_, _, h, w) = self.dims;
        let (oh, ow) = self.out_hw();
        let (k, p) = (self.k as isize, self.padding as isize);
        let filt = &self.w[ch * self.k * self.k..(ch + 1) * self.k * self.k];
        for dy in 0..k {
            for dx in 0..k {
                let wv = if self.flip {
                    filt[((k - 1 - dy) * k + (k - 1 - dx)) as usize]
                } else {
                    filt[(dy * k + dx) as usize]
                };
                // output columns whose input column ox + dx - p lies inside [0, w)
                let ox0 = (p - dx).max(0) as usize;
                let ox1 = ((w as isize + p - dx).min(ow as isize)).max(0) as usize;
                if ox0 >= ox1 {
                    continue;
                }
                for oy in 0..oh {
                    let iy = oy as isize + dy - p;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let src = &x[iy as usize * w..(iy as usize + 1) * w];
                    let dst = &mut out[oy * ow..(oy + 1) * ow];
                    let shift = dx - p; // input column = output column + shift
                    for ox in ox0..ox1 {
                        dst[ox] += wv * src[(ox as isize + shift) as usize];
                    }
                }
            }
        }
    }
}

impl candle_core::CustomOp1 for DepthwiseOp {
    fn name(&self) -> &'static str {
        "radlens-depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (n, c, h, w) = self.dims;
        let (oh, ow) = self.out_hw();
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("depthwise conv: non-contiguous input")
        };
        let x = &storage.as_slice::<f32>()?[start..end];
        let mut out = vec![0f32; n * c * oh * ow];
        let planes = n * c;
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(planes).max(1);
        let per = planes.div_ceil(threads);
        std::thread::scope(|scope| {
            for (t, chunk) in out.chunks_mut(per * oh * ow).enumerate() {
                scope.spawn(move || {
                    for (j, dst) in chunk.chunks_mut(oh * ow).enumerate() {
                        let plane = t * per + j;
                        self.plane(plane % c, &x[plane * h * w..(plane + 1) * h * w], dst);
                    }
                });
            }
        });
        Ok((candle_core::CpuStorage::F32(out), (n, c, oh, ow).into()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (n, c, _, _) = self.dims;
        let (oh, ow) = self.out_hw();
        let adjoint = DepthwiseOp {
            w: self.w.clone(),
            k: self.k,
            padding: self.k - 1 - self.padding,
            flip: !self.flip,
            dims: (n, c, oh, ow),
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&adjoint)?))
    }
}
