//! Segmentation and classification losses on logits. Sums run over the whole batch (every pixel of
//! every image), so one empty mask in a batch does not dominate; `EPS` smooths empty masks.

use candle_core::{Result, Tensor, D};

/// Smoothing term of the Dice and Tversky ratios.
pub const EPS: f64 = 1.0;

/// The segmentation loss chosen with `--loss`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SegLoss {
    Dice,
    Bce,
    BceDice,
    /// Focal Tversky: `(1 − TI)^γ`, `TI = TP / (TP + α·FP + β·FN)`.
    FocalTversky {
        alpha: f64,
        beta: f64,
        gamma: f64,
    },
    FocalTverskyDice {
        alpha: f64,
        beta: f64,
        gamma: f64,
    },
}

impl SegLoss {
    pub const NAMES: [&'static str; 5] = ["dice", "bce", "bce+dice", "focal-tversky", "focal-tversky+dice"];

    pub fn from_name(name: &str, alpha: f64, beta: f64, gamma: f64) -> Option<Self> {
        Some(match name {
            "dice" => SegLoss::Dice,
            "bce" => SegLoss::Bce,
            "bce+dice" => SegLoss::BceDice,
            "focal-tversky" => SegLoss::FocalTversky { alpha, beta, gamma },
            "focal-tversky+dice" => SegLoss::FocalTverskyDice { alpha, beta, gamma },
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            SegLoss::Dice => "dice",
            SegLoss::Bce => "bce",
            SegLoss::BceDice => "bce+dice",
            SegLoss::FocalTversky { .. } => "focal-tversky",
            SegLoss::FocalTverskyDice { .. } => "focal-tversky+dice",
        }
    }

    /// The loss of `logits` against the binary `target` (same shape), a scalar tensor.
    pub fn compute(&self, logits: &Tensor, target: &Tensor) -> Result<Tensor> {
        match *self {
            SegLoss::Dice => dice_loss(&candle_nn::ops::sigmoid(logits)?, target),
            SegLoss::Bce => bce_with_logits(logits, target),
            SegLoss::BceDice => {
                bce_with_logits(logits, target)? + dice_loss(&candle_nn::ops::sigmoid(logits)?, target)?
            }
            SegLoss::FocalTversky { alpha, beta, gamma } => {
                focal_tversky_loss(&candle_nn::ops::sigmoid(logits)?, target, alpha, beta, gamma)
            }
            SegLoss::FocalTverskyDice { alpha, beta, gamma } => {
                let p = candle_nn::ops::sigmoid(logits)?;
                focal_tversky_loss(&p, target, alpha, beta, gamma)? + dice_loss(&p, target)?
            }
        }
    }
}

/// Soft Dice loss `1 − (2·Σpt + ε) / (Σp + Σt + ε)` on probabilities `p`.
pub fn dice_loss(p: &Tensor, t: &Tensor) -> Result<Tensor> {
    let inter = (p * t)?.sum_all()?;
    let denom = (p.sum_all()? + t.sum_all()?)?;
    let ratio = ((inter * 2.0)? + EPS)?.div(&(denom + EPS)?)?;
    ratio.neg()? + 1.0
}

/// Mean binary cross-entropy on logits `x`, in the stable form `max(x,0) − x·t + log(1 + e^−|x|)`.
pub fn bce_with_logits(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    let l = ((x.relu()? - (x * t)?)? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    l.mean_all()
}

/// Focal Tversky loss `(1 − TI)^γ` with `TI = (TP + ε) / (TP + α·FP + β·FN + ε)` on probabilities.
pub fn focal_tversky_loss(p: &Tensor, t: &Tensor, alpha: f64, beta: f64, gamma: f64) -> Result<Tensor> {
    let tp = (p * t)?.sum_all()?;
    let fp = (p * (t.neg()? + 1.0)?)?.sum_all()?;
    let fneg = ((p.neg()? + 1.0)? * t)?.sum_all()?;
    let denom = ((&tp + (fp * alpha)?)? + (fneg * beta)?)?;
    let ti = (tp + EPS)?.div(&(denom + EPS)?)?;
    // 1 − TI ≥ 0; a tiny floor keeps the power's gradient finite when γ < 1 and TI reaches 1.
    (ti.neg()? + 1.0)?.clamp(1e-7, 1.0)?.powf(gamma)
}

/// Mean cross-entropy of `logits` (N, K) against class indices `labels` (N, u32).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = logp.gather(&labels.unsqueeze(1)?, 1)?;
    picked.neg()?.mean_all()
}
