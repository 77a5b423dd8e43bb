//! Per-channel ops on NCHW f32 tensors on the CPU, each one pass forward and one or two passes
//! backward, where candle's compositions record ten ops and sum their broadcasts back single-threaded:
//! training-mode BatchNorm (batch statistics, running statistics updated as PyTorch does, an optional
//! fused ReLU) and a per-channel bias add whose bias receives its gradient. Elsewhere (another device or
//! dtype) both fall back to candle's own ops, with the same results.

use std::sync::Arc;

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, Var,
};
use candle_nn::BatchNorm;
use rayon::prelude::*;

/// `relu?(batch_norm(x))` in training mode: normalised with the batch's mean and biased variance over
/// (N, H, W), then `γ·x̂ + β`; the running statistics move by the BN's momentum towards the batch mean
/// and the unbiased variance (PyTorch's `model.train()`, and candle's `forward_t(x, true)`).
pub fn batch_norm_train(bn: &BatchNorm, x: &Tensor, relu: bool) -> Result<Tensor> {
    let fast = x.device().is_cpu()
        && x.dtype() == DType::F32
        && x.rank() == 4
        && bn.running_mean().dtype() == DType::F32
        && bn.running_var().dtype() == DType::F32
        && bn.weight_and_bias().is_some_and(|(w, b)| w.dtype() == DType::F32 && b.dtype() == DType::F32);
    let Some((gamma, beta)) = bn.weight_and_bias().filter(|_| fast) else {
        let y = candle_nn::ModuleT::forward_t(bn, x, true)?;
        return if relu { y.relu() } else { Ok(y) };
    };
    let (n, c, h, w) = x.dims4()?;
    let m = n * h * w;
    if bn.running_mean().elem_count() != c || gamma.elem_count() != c || beta.elem_count() != c {
        bail!("batch norm: {c} input channels for {} features", bn.running_mean().elem_count())
    }
    if m < 2 {
        bail!("batch norm: training needs more than one value per channel, got input {:?}", x.dims())
    }
    let x = x.contiguous()?;
    let stats = x.apply_op1_no_bwd(&ChannelStats)?.to_vec2::<f64>()?;
    let (mean, var) = (&stats[0], &stats[1]);

    // Running statistics, in place (candle keeps them as `Var`s; from_tensor returns the same one).
    let momentum = bn.momentum();
    let unbiased = m as f64 / (m as f64 - 1.0);
    let update = |running: &Tensor, batch: &dyn Fn(usize) -> f64| -> Result<()> {
        let old = running.to_vec1::<f32>()?;
        let new: Vec<f32> = old
            .iter()
            .enumerate()
            .map(|(i, &r)| ((1.0 - momentum) * r as f64 + momentum * batch(i)) as f32)
            .collect();
        Var::from_tensor(running)?.set(&Tensor::from_vec(new, c, running.device())?)
    };
    update(bn.running_mean(), &|i| mean[i])?;
    update(bn.running_var(), &|i| var[i] * unbiased)?;

    let eps = bn.eps();
    let gamma = gamma.flatten_all()?;
    let op = BatchNormTrain {
        mean: Arc::new(mean.iter().map(|&v| v as f32).collect()),
        inv_std: Arc::new(var.iter().map(|&v| (1.0 / (v + eps).sqrt()) as f32).collect()),
        gamma: Arc::new(gamma.to_vec1::<f32>()?),
        relu,
    };
    x.apply_op3(&gamma, &beta.flatten_all()?, op)
}

/// `y + b` with `b` (C) broadcast over the channels of NCHW `y`; the bias's gradient is the
/// per-channel sum of the output's, computed in parallel.
pub fn bias_add(y: &Tensor, b: &Tensor) -> Result<Tensor> {
    let c = b.elem_count();
    if !(y.device().is_cpu() && y.dtype() == DType::F32 && b.dtype() == DType::F32 && y.rank() == 4) {
        return y.broadcast_add(&b.reshape((1, c, 1, 1))?);
    }
    if y.dim(1)? != c {
        bail!("bias add: bias of {c} for {} channels", y.dim(1)?)
    }
    y.contiguous()?.apply_op2(&b.flatten_all()?.contiguous()?, BiasAdd)
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((start, end)) = l.contiguous_offsets() else { bail!("{what}: non-contiguous tensor") };
    Ok(&s.as_slice::<f32>()?[start..end])
}

/// (N, C, plane) of a rank-4 layout.
fn ncp(l: &Layout, what: &str) -> Result<(usize, usize, usize)> {
    match l.shape().dims() {
        &[n, c, h, w] => Ok((n, c, h * w)),
        d => bail!("{what}: expected an NCHW tensor, got {d:?}"),
    }
}

/// `f(channel)` for every channel, channels in parallel.
fn per_channel<T: Send>(c: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    (0..c).into_par_iter().map(f).collect()
}

/// x (N, C, H, W) → (2, C) f64: each channel's mean and biased variance (two passes, f64 sums).
struct ChannelStats;

impl CustomOp1 for ChannelStats {
    fn name(&self) -> &'static str {
        "radlens-channel-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, p) = ncp(l, "batch norm")?;
        let x = f32_slice(s, l, "batch norm")?;
        let m = (n * p) as f64;
        let stats = per_channel(c, |ch| {
            let planes = || (0..n).map(move |i| &x[(i * c + ch) * p..(i * c + ch + 1) * p]);
            let mean = planes().map(|pl| pl.iter().map(|&v| v as f64).sum::<f64>()).sum::<f64>() / m;
            let var = planes()
                .map(|pl| pl.iter().map(|&v| (v as f64 - mean) * (v as f64 - mean)).sum::<f64>())
                .sum::<f64>()
                / m;
            (mean, var)
        });
        let mut out: Vec<f64> = stats.iter().map(|s| s.0).collect();
        out.extend(stats.iter().map(|s| s.1));
        Ok((CpuStorage::F64(out), (2, c).into()))
    }
}

/// (x, γ, β) → relu?((x − mean)·inv_std·γ + β) with the batch statistics held by the op.
#[derive(Clone)]
struct BatchNormTrain {
    mean: Arc<Vec<f32>>,
    inv_std: Arc<Vec<f32>>,
    gamma: Arc<Vec<f32>>,
    relu: bool,
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "radlens-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        _s2: &CpuStorage,
        _l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, p) = ncp(l1, "batch norm")?;
        let x = f32_slice(s1, l1, "batch norm")?;
        let beta = f32_slice(s3, l3, "batch norm bias")?;
        if beta.len() != c || self.gamma.len() != c || self.mean.len() != c {
            bail!("batch norm: {c} channels for {} parameters", beta.len())
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(p.max(1)).zip(x.par_chunks(p.max(1))).enumerate().for_each(|(i, (o, xi))| {
            let ch = i % c;
            let scale = self.inv_std[ch] * self.gamma[ch];
            let shift = beta[ch] - self.mean[ch] * scale;
            for (o, &v) in o.iter_mut().zip(xi) {
                let y = v * scale + shift;
                *o = if self.relu { y.max(0.0) } else { y };
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let len = n * c * h * w;
        let g = grad.detach().contiguous()?;
        let all = x.detach().apply_op3_no_bwd(
            &g,
            &res.detach().contiguous()?,
            &BatchNormTrainBackward(self.clone()),
        )?;
        let dx = all.narrow(0, 0, len)?.reshape((n, c, h, w))?;
        let dgamma = all.narrow(0, len, c)?;
        let dbeta = all.narrow(0, len + c, c)?;
        Ok((x.track_op().then_some(dx), gamma.track_op().then_some(dgamma), beta.track_op().then_some(dbeta)))
    }
}

/// (x, dy, y) → [dx (N·C·H·W), dγ (C), dβ (C)] flat, for [`BatchNormTrain`]: with ĝ = dy (masked
/// by y > 0 under the ReLU) and x̂ the normalised input, dβ = Σĝ, dγ = Σĝ·x̂ and
/// dx = γ·inv_std·(ĝ − dβ/M − x̂·dγ/M), which includes the statistics' dependence on x.
struct BatchNormTrainBackward(BatchNormTrain);

impl CustomOp3 for BatchNormTrainBackward {
    fn name(&self) -> &'static str {
        "radlens-batch-norm-train-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = &self.0;
        let (n, c, p) = ncp(l1, "batch norm backward")?;
        let x = f32_slice(s1, l1, "batch norm backward")?;
        let dy = f32_slice(s2, l2, "batch norm backward")?;
        let y = f32_slice(s3, l3, "batch norm backward")?;
        if dy.len() != x.len() || y.len() != x.len() {
            bail!("batch norm backward: gradient {:?} for input {:?}", l2.shape(), l1.shape())
        }
        let ghat = |i: usize| if op.relu && y[i] <= 0.0 { 0.0 } else { dy[i] };
        let sums = per_channel(c, |ch| {
            let (mean, inv) = (op.mean[ch], op.inv_std[ch]);
            let (mut sg, mut sgx) = (0f64, 0f64);
            for img in 0..n {
                let base = (img * c + ch) * p;
                let (mut a, mut b) = (0f32, 0f32);
                for i in base..base + p {
                    let g = ghat(i);
                    a += g;
                    b += g * (x[i] - mean) * inv;
                }
                sg += a as f64;
                sgx += b as f64;
            }
            (sg, sgx)
        });
        let m = (n * p) as f64;
        let mut out = vec![0f32; x.len() + 2 * c];
        let (dx, tail) = out.split_at_mut(x.len());
        dx.par_chunks_mut(p.max(1)).enumerate().for_each(|(plane, d)| {
            let ch = plane % c;
            let (mean, inv) = (op.mean[ch], op.inv_std[ch]);
            let k = op.gamma[ch] * inv;
            let (mg, mgx) = ((sums[ch].0 / m) as f32, (sums[ch].1 / m) as f32);
            let base = plane * p;
            for (j, d) in d.iter_mut().enumerate() {
                let i = base + j;
                *d = k * (ghat(i) - mg - (x[i] - mean) * inv * mgx);
            }
        });
        for ch in 0..c {
            tail[ch] = sums[ch].1 as f32;
            tail[c + ch] = sums[ch].0 as f32;
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}

/// (y, b) → y + b[channel].
struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "radlens-bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, p) = ncp(l1, "bias add")?;
        let y = f32_slice(s1, l1, "bias add")?;
        let b = f32_slice(s2, l2, "bias add")?;
        if b.len() != c {
            bail!("bias add: bias of {} for {c} channels", b.len())
        }
        let mut out = vec![0f32; y.len()];
        out.par_chunks_mut(p.max(1)).zip(y.par_chunks(p.max(1))).enumerate().for_each(|(i, (o, yi))| {
            let bias = b[i % c];
            for (o, &v) in o.iter_mut().zip(yi) {
                *o = v + bias;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        y: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let db = if b.track_op() {
            Some(grad.detach().contiguous()?.apply_op1_no_bwd(&ChannelSum)?)
        } else {
            None
        };
        Ok((y.track_op().then(|| grad.clone()), db))
    }
}

/// g (N, C, H, W) → (C): each channel's sum.
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "radlens-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, p) = ncp(l, "bias add backward")?;
        let g = f32_slice(s, l, "bias add backward")?;
        let sums = per_channel(c, |ch| {
            (0..n).map(|i| g[(i * c + ch) * p..(i * c + ch + 1) * p].iter().sum::<f32>() as f64).sum::<f64>()
                as f32
        });
        Ok((CpuStorage::F32(sums), Shape::from(c)))
    }
}
