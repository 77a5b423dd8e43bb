//! Adam (Kingma & Ba, PyTorch's defaults β = (0.9, 0.999), ε = 1e-8) with its moments held as plain
//! tensors so that they can be saved and restored exactly; ReduceLROnPlateau and early stopping.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, Var};

pub struct Adam {
    /// (name, parameter), sorted by name.
    pub params: Vec<(String, Var)>,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
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
        Ok(Adam { params, lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 0, m, v })
    }

    /// One step: `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`, `θ ← θ − lr·m̂ / (√v̂ + ε)` with the
    /// bias corrections `m̂ = m / (1−β1^t)`, `v̂ = v / (1−β2^t)`. Parameters without a gradient are left
    /// alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else { continue };
            let m = ((&self.m[i] * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            let v = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + self.eps)?)?;
            p.set(&(p.as_tensor() - (update * self.lr)?)?)?;
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
                *slot = t.to_device(p.device()).map_err(|e| e.to_string())?;
            }
        }
        self.step = step;
        self.lr = lr;
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
