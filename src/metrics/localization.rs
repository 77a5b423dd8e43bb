//! Localization: how well a heatmap points at a ground-truth region.
//!
//! A map is H×W, row-major, raw values (signed where the method is). Two families of scores:
//! - **Mask scores**: the map is cut into a binary mask ([`Threshold`], [`heatmap_to_mask`]) and the
//!   mask is scored against the ground truth: IoU, Dice, Hausdorff distance in pixels and in mm (the
//!   conventions of [`crate::metrics`]: both masks empty → IoU = Dice = 1 and HD 0; exactly one empty →
//!   IoU = Dice = 0 and HD `None`, "undefined", JSON `null`).
//! - **Map scores** on the raw map, undefined (`None`) when the ground truth is empty:
//!   - pointing game ([`pointing_game_hit`], Zhang et al. 2016): a hit when the map's maximum (first
//!     in row-major order on ties) lies inside the ground truth or within `tolerance_px` pixels
//!     (Euclidean) of it; the original uses 15 px ([`POINTING_TOLERANCE_PX`]).
//!   - energy-based pointing game ([`energy_pointing_game`], Score-CAM, Wang et al. 2020): the map is
//!     min-max scaled to [0, 1] first, then the share of its sum inside the ground truth.
//!   - relevance mass ([`relevance_mass`], Arras et al. 2022): the share of the *positive* raw
//!     relevance inside the ground truth (negative relevance is evidence against, not mass).
//!   - relevance rank accuracy ([`relevance_rank_accuracy`], Arras et al.): with K ground-truth
//!     pixels, the share of the K highest-valued pixels that lie inside the ground truth.
//!
//! Per-class thresholds as CheXlocalize tunes them ([`tune_threshold`]): on a validation split, the
//! fixed threshold on the min-max scaled map (grid 0.05, 0.10, …, 0.95) that maximises the mean IoU.

use super::{hausdorff_px, surface_distances, MetricsError};

/// The pointing game's tolerance in the original protocol (Zhang et al., "Top-down neural attention
/// by excitation backprop"): 15 pixels.
pub const POINTING_TOLERANCE_PX: f64 = 15.0;

/// How a heatmap becomes a mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// Otsu's threshold on a 256-bin histogram of the min-max scaled map (bins of width 1/256 over
    /// [0, 1]; the cut is the upper edge of the bin that maximises the between-class variance).
    Otsu,
    /// A fixed cut on the min-max scaled map, in [0, 1] (0.5: pixels at least half way from the
    /// map's minimum to its maximum), as CheXlocalize does.
    Fixed(f32),
    /// The given percentage of the pixels with the highest values: exactly round(p/100 · N) pixels
    /// (ties broken by row-major order).
    TopPercent(f32),
}

impl Threshold {
    /// Parses `otsu`, a number in [0, 1] (`0.5`) or `topP` / `topP%` (`top10`).
    pub fn parse(s: &str) -> Result<Threshold, String> {
        let t = s.trim().to_ascii_lowercase();
        if t == "otsu" {
            return Ok(Threshold::Otsu);
        }
        if let Some(p) = t.strip_prefix("top") {
            let p = p.trim_end_matches('%');
            return match p.parse::<f32>() {
                Ok(v) if v > 0.0 && v <= 100.0 => Ok(Threshold::TopPercent(v)),
                _ => Err(format!("bad threshold '{s}': topP needs 0 < P <= 100 (e.g. top10)")),
            };
        }
        match t.parse::<f32>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(Threshold::Fixed(v)),
            _ => Err(format!("bad threshold '{s}': use otsu, a number in [0, 1] or topP (e.g. top10)")),
        }
    }

    /// The spelling [`Threshold::parse`] reads back.
    pub fn name(&self) -> String {
        match self {
            Threshold::Otsu => "otsu".into(),
            Threshold::Fixed(v) => format!("{v}"),
            Threshold::TopPercent(p) => format!("top{p}"),
        }
    }
}

/// The map min-max scaled to [0, 1]; a constant map becomes all zeros. Non-finite values count as
/// the minimum.
pub fn minmax_scaled(map: &[f32]) -> Vec<f32> {
    let (lo, hi) = map
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if !(hi > lo) {
        return vec![0.0; map.len()];
    }
    map.iter().map(|&v| if v.is_finite() { (v - lo) / (hi - lo) } else { 0.0 }).collect()
}

/// Otsu's cut on the min-max scaled map, in [0, 1] (see [`Threshold::Otsu`]); pixels with a scaled
/// value `>= cut` are foreground. A constant map gives 1.0 (nothing above it but the maximum).
pub fn otsu_threshold(map: &[f32]) -> f32 {
    let scaled = minmax_scaled(map);
    let mut hist = [0u64; 256];
    for &v in &scaled {
        hist[((v * 256.0) as usize).min(255)] += 1;
    }
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 1.0;
    }
    let sum_all: f64 = hist.iter().enumerate().map(|(i, &c)| i as f64 * c as f64).sum();
    let (mut w0, mut sum0) = (0u64, 0.0f64);
    let (mut best, mut best_k) = (-1.0f64, 255usize);
    for (k, &c) in hist.iter().enumerate().take(255) {
        w0 += c;
        sum0 += k as f64 * c as f64;
        let w1 = total - w0;
        if w0 == 0 || w1 == 0 {
            continue;
        }
        let m0 = sum0 / w0 as f64;
        let m1 = (sum_all - sum0) / w1 as f64;
        let between = w0 as f64 * w1 as f64 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_k = k;
        }
    }
    (best_k + 1) as f32 / 256.0
}

/// The `p` percent highest pixels: exactly round(p/100 · N) of them, ties by row-major order.
pub fn top_percent_mask(map: &[f32], percent: f32) -> Vec<bool> {
    let n = map.len();
    let k = ((percent.clamp(0.0, 100.0) as f64 / 100.0) * n as f64).round() as usize;
    let mut order: Vec<usize> = (0..n).collect();
    let key = |i: usize| if map[i].is_finite() { map[i] } else { f32::NEG_INFINITY };
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    let mut mask = vec![false; n];
    for &i in order.iter().take(k) {
        mask[i] = true;
    }
    mask
}

/// The map cut into a mask by `threshold`.
pub fn heatmap_to_mask(map: &[f32], threshold: Threshold) -> Vec<bool> {
    match threshold {
        Threshold::TopPercent(p) => top_percent_mask(map, p),
        Threshold::Otsu => {
            let cut = otsu_threshold(map);
            minmax_scaled(map).into_iter().map(|v| v >= cut).collect()
        }
        Threshold::Fixed(t) => {
            let scaled = minmax_scaled(map);
            if scaled.iter().all(|&v| v == 0.0) {
                // A constant map carries no location: no pixel is picked out.
                return vec![false; map.len()];
            }
            scaled.into_iter().map(|v| v >= t).collect()
        }
    }
}

/// Every localization score of one map against one ground truth.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LocalizationScores {
    pub iou: f64,
    pub dice: f64,
    pub hd_px: Option<f64>,
    pub hd_mm: Option<f64>,
    pub pointing_hit: Option<bool>,
    pub energy_pointing: Option<f64>,
    pub relevance_mass: Option<f64>,
    pub relevance_rank: Option<f64>,
}

fn check_map(map: &[f32], gt: &[bool], h: usize, w: usize) -> Result<(), MetricsError> {
    if map.len() != gt.len() {
        return Err(MetricsError::LengthMismatch { pred: map.len(), gt: gt.len() });
    }
    if h.checked_mul(w) != Some(map.len()) {
        return Err(MetricsError::DimsMismatch {
            z: 1,
            y: h,
            x: w,
            expected: h.saturating_mul(w),
            got: map.len(),
        });
    }
    Ok(())
}

/// Scores `map` (H×W) and its mask `pred` against `gt` on a 2D grid with pixel size `spacing_mm`
/// (y, x). `tolerance_px` is the pointing game's tolerance (see [`POINTING_TOLERANCE_PX`]).
pub fn localization_scores(
    map: &[f32],
    pred: &[bool],
    gt: &[bool],
    h: usize,
    w: usize,
    spacing_mm: [f64; 2],
    tolerance_px: f64,
) -> Result<LocalizationScores, MetricsError> {
    check_map(map, gt, h, w)?;
    let counts = super::ConfusionCounts::from_masks(pred, gt)?;
    let dims = [1, h, w];
    let hd_px = hausdorff_px(pred, gt, dims)?;
    let hd_mm =
        surface_distances(pred, gt, dims, [1.0, spacing_mm[0], spacing_mm[1]])?.map(|d| d.hausdorff_mm);
    Ok(LocalizationScores {
        iou: counts.iou(),
        dice: counts.dice(),
        hd_px,
        hd_mm,
        pointing_hit: pointing_game_hit(map, gt, h, w, tolerance_px)?,
        energy_pointing: energy_pointing_game(map, gt)?,
        relevance_mass: relevance_mass(map, gt)?,
        relevance_rank: relevance_rank_accuracy(map, gt)?,
    })
}

/// Pointing game: is the map's maximum inside `gt` or within `tolerance_px` of it? `None` when `gt`
/// is empty or the map has no finite value.
pub fn pointing_game_hit(
    map: &[f32],
    gt: &[bool],
    h: usize,
    w: usize,
    tolerance_px: f64,
) -> Result<Option<bool>, MetricsError> {
    check_map(map, gt, h, w)?;
    if !gt.iter().any(|&g| g) {
        return Ok(None);
    }
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in map.iter().enumerate() {
        if v.is_finite() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    let Some((i, _)) = best else { return Ok(None) };
    let (py, px) = ((i / w) as f64, (i % w) as f64);
    let tol2 = tolerance_px.max(0.0).powi(2);
    let hit = gt.iter().enumerate().any(|(j, &g)| {
        g && {
            let (dy, dx) = ((j / w) as f64 - py, (j % w) as f64 - px);
            dy * dy + dx * dx <= tol2
        }
    });
    Ok(Some(hit))
}

/// Share of the min-max scaled map's sum inside `gt` (energy-based pointing game); `None` when `gt`
/// is empty or the map is constant.
pub fn energy_pointing_game(map: &[f32], gt: &[bool]) -> Result<Option<f64>, MetricsError> {
    share_inside(&minmax_scaled(map), gt)
}

/// Share of the positive relevance inside `gt` (relevance mass accuracy); `None` when `gt` is empty or
/// the map has no positive value.
pub fn relevance_mass(map: &[f32], gt: &[bool]) -> Result<Option<f64>, MetricsError> {
    share_inside(map, gt)
}

fn share_inside(map: &[f32], gt: &[bool]) -> Result<Option<f64>, MetricsError> {
    if map.len() != gt.len() {
        return Err(MetricsError::LengthMismatch { pred: map.len(), gt: gt.len() });
    }
    if !gt.iter().any(|&g| g) {
        return Ok(None);
    }
    let (mut inside, mut total) = (0.0f64, 0.0f64);
    for (&v, &g) in map.iter().zip(gt) {
        if v.is_finite() && v > 0.0 {
            total += v as f64;
            if g {
                inside += v as f64;
            }
        }
    }
    Ok((total > 0.0).then(|| inside / total))
}

/// Relevance rank accuracy: with K ground-truth pixels, the share of the K highest map values
/// (ties by row-major order) inside `gt`; `None` when `gt` is empty.
pub fn relevance_rank_accuracy(map: &[f32], gt: &[bool]) -> Result<Option<f64>, MetricsError> {
    if map.len() != gt.len() {
        return Err(MetricsError::LengthMismatch { pred: map.len(), gt: gt.len() });
    }
    let k = gt.iter().filter(|&&g| g).count();
    if k == 0 {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..map.len()).collect();
    let key = |i: usize| if map[i].is_finite() { map[i] } else { f32::NEG_INFINITY };
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    let inside = order.iter().take(k).filter(|&&i| gt[i]).count();
    Ok(Some(inside as f64 / k as f64))
}

/// The candidate cuts [`tune_threshold`] tries: 0.05, 0.10, …, 0.95 on the min-max scaled map.
pub fn threshold_grid() -> Vec<f32> {
    (1..20).map(|i| i as f32 * 0.05).collect()
}

/// CheXlocalize's per-class threshold tuning: among [`threshold_grid`], the fixed cut that maximises
/// the mean IoU of `maps` (each a map with its ground truth, same length) — the smallest such cut on
/// ties. `None` when `maps` is empty.
pub fn tune_threshold(maps: &[(Vec<f32>, Vec<bool>)]) -> Result<Option<f32>, MetricsError> {
    if maps.is_empty() {
        return Ok(None);
    }
    let mut best: Option<(f32, f64)> = None;
    for t in threshold_grid() {
        let mut sum = 0.0;
        for (map, gt) in maps {
            let mask = heatmap_to_mask(map, Threshold::Fixed(t));
            sum += super::ConfusionCounts::from_masks(&mask, gt)?.iou();
        }
        let miou = sum / maps.len() as f64;
        if best.is_none_or(|(_, b)| miou > b) {
            best = Some((t, miou));
        }
    }
    Ok(best.map(|(t, _)| t))
}
