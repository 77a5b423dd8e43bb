//! Adam (Kingma & Ba, PyTorch's defaults β = (0.9, 0.999), ε = 1e-8; with a weight decay, AdamW's
//! decoupled one) with its moments held as plain tensors so that they can be saved and restored
//! exactly; ReduceLROnPlateau and early stopping.
//!
//! On the CPU in f32 a step is three parallel in-place passes per parameter (first moment, second
//! moment, update) instead of candle's eleven allocating ops; elsewhere the same formula as tensor ops.

use std::collections::HashMap;

use candle_core::{
    backprop::GradStore, bail, CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var,
};
use rayon::prelude::*;

pub struct Adam {
    /// (name, parameter), sorted by name.
    pub params: Vec<(String, Var)>,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (AdamW, Loshchilov & Hutter): `θ ← θ·(1 − lr·wd)` before each update,
    /// as `torch.optim.AdamW` applies it; 0 (plain Adam) unless set.
    pub weight_decay: f64,
    /// Steps taken so far (t in the paper).
    pub step: u64,
    /// First and second moments per parameter (zeros before the first step).
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl Adam {
    pub fn new(mut params: Vec<(String, Var)>, lr: f64) -> Result<Self> {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let m = params.iter().map(|(_, p)| p.as_tensor().zeros_like()).collect::<Result<Vec<_>>>()?;
        let v = params.iter().map(|(_, p)| p.as_tensor().zeros_like()).collect::<Result<Vec<_>>>()?;
        Ok(Adam { params, lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, step: 0, m, v })
    }

    /// One step: `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`, `θ ← θ − lr·m̂ / (√v̂ + ε)` with the
    /// bias corrections `m̂ = m / (1−β1^t)`, `v̂ = v / (1−β2^t)` (after the weight decay, if any).
    /// Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        let update =
            AdamUpdate { lr: self.lr, bc1, bc2, eps: self.eps, decay: 1.0 - self.lr * self.weight_decay };
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else { continue };
            let (m, v, theta) = (&self.m[i], &self.v[i], p.as_tensor());
            let fused = [theta, m, v, g].iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
                && g.dims() == theta.dims()
                && [theta, m, v].iter().all(|t| t.is_contiguous());
            if fused {
                let g = g.contiguous()?;
                m.inplace_op2(&g, &Moment { beta: self.beta1, square: false })?;
                v.inplace_op2(&g, &Moment { beta: self.beta2, square: true })?;
                theta.inplace_op3(m, v, &update)?;
                continue;
            }
            let m = ((m * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            let v = ((v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let step = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + self.eps)?)?;
            let decayed = if self.weight_decay != 0.0 { (theta * update.decay)? } else { theta.clone() };
            p.set(&(decayed - (step * self.lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments as named tensors (`adam_m.NAME`, `adam_v.NAME`) for a checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.insert(format!("adam_m.{name}"), self.m[i].clone());
            out.insert(format!("adam_v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restores the moments saved by [`Adam::state_tensors`]; a missing or mis-shaped one is an error
    /// naming it.
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        step: u64,
        lr: f64,
    ) -> std::result::Result<(), String> {
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (key, slot) in
                [(format!("adam_m.{name}"), &mut self.m[i]), (format!("adam_v.{name}"), &mut self.v[i])]
            {
                let t = tensors.get(&key).ok_or_else(|| format!("optimiser state '{key}' missing"))?;
                if t.dims() != p.as_tensor().dims() {
                    return Err(format!(
                        "optimiser state '{key}' has shape {:?}, expected {:?}",
                        t.dims(),
                        p.dims()
                    ));
                }
                // A copy: the step updates the moments in place.
                *slot = t.to_device(p.device()).and_then(|t| t.copy()).map_err(|e| e.to_string())?;
            }
        }
        self.step = step;
        self.lr = lr;
        Ok(())
    }
}

fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout, what: &str) -> Result<&'a mut [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else { bail!("adam: non-contiguous {what}") };
    match s {
        CpuStorage::F32(v) => Ok(&mut v[a..b]),
        _ => bail!("adam: {what} is not f32"),
    }
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else { bail!("adam: non-contiguous {what}") };
    Ok(&s.as_slice::<f32>()?[a..b])
}

/// Elements per parallel chunk of the in-place passes.
const CHUNK: usize = 1 << 14;

/// In place on a moment, with the gradient: `m ← β·m + (1−β)·g` (`g²` for the second moment).
struct Moment {
    beta: f64,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "radlens-adam-moment"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let m = slice_mut(s1, l1, "moment")?;
        let g = slice(s2, l2, "gradient")?;
        if m.len() != g.len() {
            bail!("adam: gradient of {} values for a parameter of {}", g.len(), m.len())
        }
        let (b, a) = (self.beta as f32, (1.0 - self.beta) as f32);
        m.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(m, g)| {
            for (m, &g) in m.iter_mut().zip(g) {
                *m = b * *m + a * if self.square { g * g } else { g };
            }
        });
        Ok(())
    }
}

/// In place on a parameter, with its moments: `θ ← θ·decay − lr·(m/bc1) / (√(v/bc2) + ε)`.
struct AdamUpdate {
    lr: f64,
    bc1: f64,
    bc2: f64,
    eps: f64,
    decay: f64,
}

impl InplaceOp3 for AdamUpdate {
    fn name(&self) -> &'static str {
        "radlens-adam-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let p = slice_mut(s1, l1, "parameter")?;
        let (m, v) = (slice(s2, l2, "first moment")?, slice(s3, l3, "second moment")?);
        if m.len() != p.len() || v.len() != p.len() {
            bail!("adam: moments of {} and {} values for a parameter of {}", m.len(), v.len(), p.len())
        }
        let (lr, bc1, bc2, eps, decay) =
            (self.lr as f32, self.bc1 as f32, self.bc2 as f32, self.eps as f32, self.decay as f32);
        p.par_chunks_mut(CHUNK).zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK))).for_each(|(p, (m, v))| {
            for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                *p = *p * decay - lr * ((m / bc1) / ((v / bc2).sqrt() + eps));
            }
        });
        Ok(())
    }
}

/// PyTorch's `ReduceLROnPlateau(mode="max", factor, patience, threshold=1e-4 rel)`: the learning rate is
/// multiplied by `factor` after more than `patience` epochs without improvement of the monitored score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plateau {
    pub factor: f64,
    pub patience: usize,
    pub min_lr: f64,
    pub best: f64,
    pub bad_epochs: usize,
}

impl Plateau {
    pub fn new(factor: f64, patience: usize, min_lr: f64) -> Self {
        Plateau { factor, patience, min_lr, best: f64::NEG_INFINITY, bad_epochs: 0 }
    }

    /// Records one epoch's score; returns the (possibly reduced) learning rate.
    pub fn observe(&mut self, score: f64, lr: f64) -> f64 {
        if score > self.best * (1.0 + 1e-4) || self.best == f64::NEG_INFINITY {
            self.best = score;
            self.bad_epochs = 0;
            lr
        } else {
            self.bad_epochs += 1;
            if self.bad_epochs > self.patience {
                self.bad_epochs = 0;
                (lr * self.factor).max(self.min_lr)
            } else {
                lr
            }
        }
    }
}

/// Early stopping: stop after `patience` epochs without a new best score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EarlyStop {
    pub patience: usize,
    pub best: f64,
    pub best_epoch: usize,
}

impl EarlyStop {
    pub fn new(patience: usize) -> Self {
        EarlyStop { patience, best: f64::NEG_INFINITY, best_epoch: 0 }
    }

    /// Records `score` for `epoch` (1-based); returns (is a new best, should stop).
    pub fn observe(&mut self, epoch: usize, score: f64) -> (bool, bool) {
        let improved = score > self.best;
        if improved {
            self.best = score;
            self.best_epoch = epoch;
        }
        (improved, epoch - self.best_epoch >= self.patience)
    }
}
