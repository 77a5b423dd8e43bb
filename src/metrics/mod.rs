//! Segmentation metrics: overlap scores and surface distances of a predicted binary mask against a
//! ground truth, on a (z, y, x) grid with spacing in mm. Pure arithmetic on `crate::imaging` data.
//!
//! # Definitions
//! From the confusion counts TP, FP, FN, TN ([`ConfusionCounts`]):
//! dice = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN), precision = TP/(TP+FP), recall = TP/(TP+FN),
//! specificity = TN/(TN+FP), accuracy = (TP+TN)/N.
//!
//! Surface distances follow MedPy (`medpy.metric.binary.hd`, `hd95`, `assd`, connectivity 1):
//! - **Surface** ([`surface_voxels`]): a mask voxel with a face neighbour (6-connectivity in 3D,
//!   4-connectivity in (y, x) when the grid has one slice) that is background or lies outside the
//!   grid — MedPy's `mask ^ binary_erosion(mask)` with scipy's default `border_value=0`, so mask
//!   voxels on the grid border are surface. A one-slice grid is 2D: z has no neighbours.
//! - **Directed distances** d(A→B): for every surface voxel of A, the Euclidean distance in mm to the
//!   nearest surface voxel of B, from an exact distance transform ([`edt_sq_mm`], Felzenszwalb–
//!   Huttenlocher) of B's surface with the anisotropic spacing.
//! - **Hausdorff** = max(max d(pred→gt), max d(gt→pred)).
//! - **HD95** = the 95th percentile of the pooled multiset d(pred→gt) ∪ d(gt→pred) (MedPy `hd95`:
//!   `numpy.percentile(numpy.hstack((hd1, hd2)), 95)`), NumPy's default "linear" method: in the
//!   ascending order v₀ ≤ … ≤ vₙ₋₁, position h = 0.95·(n−1), value v⌊h⌋ + (h−⌊h⌋)·(v⌊h⌋+1 − v⌊h⌋)
//!   ([`percentile_linear`]). Note: DeepMind's `surface-distance` instead takes the max of the two
//!   directed 95th percentiles, so values can differ from that library.
//! - **ASSD** = (mean d(pred→gt) + mean d(gt→pred)) / 2, the mean of the two directed means (MedPy
//!   `assd`), not the mean of the pooled set.
//!
//! # Empty masks and zero denominators
//! One rule covers every ratio: **a ratio whose denominator is 0 is 1** (its numerator is then 0
//! too; nothing could be got wrong). This is scikit-learn's `zero_division=1` (added for exactly the
//! all-negative case, scikit-learn issue #14876 / PR #14900). It keeps the scores symmetric under
//! swapping prediction and ground truth (precision(a, b) = recall(b, a)), which the "recall 1 when
//! there is nothing to find" convention requires of precision. Other references differ: MedPy
//! returns 0 for `dc`, `precision` and `recall` on a zero denominator and raises for distances on an
//! empty mask; MONAI returns NaN (confusion-matrix metrics) and NaN/inf (distances, with a warning);
//! `surface-distance` returns inf distances. Distances are `None` ("undefined", JSON `null`) when
//! exactly one mask is empty: no number is honest there, and an infinity does not survive JSON.
//!
//! | case                         | dice | IoU | precision | recall | specificity | accuracy | HD, HD95, ASSD |
//! |------------------------------|------|-----|-----------|--------|-------------|----------|----------------|
//! | both empty                   | 1    | 1   | 1         | 1      | 1 (TN/TN)   | 1        | `Some(0.0)`    |
//! | gt empty, pred not           | 0    | 0   | 0 (TP/FP) | 1: nothing to find | TN/(TN+FP) | (TP+TN)/N | `None` |
//! | pred empty, gt not           | 0    | 0   | 1: no false claims (sklearn `zero_division=1`) | 0 | 1 (no FP) | (TP+TN)/N | `None` |
//! | gt covers the grid (no negatives) | usual | usual | usual | usual | 1     | usual    | usual          |
//! | zero-voxel grid (a dim is 0) | 1    | 1   | 1         | 1      | 1           | 1        | `Some(0.0)`    |
//!
//! Bad input (length or dims mismatch, non-positive or non-finite spacing) is a [`MetricsError`],
//! never a panic.

pub mod classification;
mod distance;
mod edt;
pub mod faithfulness;
pub mod localization;
mod overlap;
pub mod stats;

use serde::Serialize;

use crate::imaging::{LabelSelector, Mask};

pub use distance::{percentile_linear, surface_distances_mm, surface_voxels, SurfaceDistances};
pub use edt::edt_sq_mm;
pub use overlap::ConfusionCounts;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error("prediction holds {pred} voxels but ground truth holds {gt}")]
    LengthMismatch { pred: usize, gt: usize },
    #[error("masks hold {got} voxels but the dimensions {z} x {y} x {x} need {expected}")]
    DimsMismatch { z: usize, y: usize, x: usize, expected: usize, got: usize },
    #[error("prediction grid {pred:?} differs from ground-truth grid {gt:?}")]
    GridMismatch { pred: [usize; 3], gt: [usize; 3] },
    #[error("voxel spacing {0:?} mm is not positive and finite")]
    BadSpacing([f64; 3]),
}

/// Every score of one prediction against one ground truth. Distances are in mm; `None` means
/// undefined (exactly one mask empty) and serialises as JSON `null`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SegmentationScores {
    pub dice: f64,
    pub iou: f64,
    pub precision: f64,
    pub recall: f64,
    pub specificity: f64,
    pub accuracy: f64,
    pub hd_mm: Option<f64>,
    pub hd95_mm: Option<f64>,
    pub assd_mm: Option<f64>,
}

fn check_inputs(
    pred: &[bool],
    gt: &[bool],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
) -> Result<(), MetricsError> {
    if pred.len() != gt.len() {
        return Err(MetricsError::LengthMismatch { pred: pred.len(), gt: gt.len() });
    }
    let [z, y, x] = dims;
    let expected = z.checked_mul(y).and_then(|v| v.checked_mul(x));
    if expected != Some(pred.len()) {
        return Err(MetricsError::DimsMismatch {
            z,
            y,
            x,
            expected: expected.unwrap_or(usize::MAX),
            got: pred.len(),
        });
    }
    if spacing_mm.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(MetricsError::BadSpacing(spacing_mm));
    }
    Ok(())
}

/// Overlap scores and surface distances of `pred` against `gt`, both (z, y, x) row-major on a grid
/// of `dims` with voxel size `spacing_mm` (z, y, x). A 2D image is `dims = [1, h, w]`.
///
/// Conventions for empty masks: see the module docs. Runs in O(voxels): two exact distance
/// transforms, one per direction.
pub fn segmentation_scores(
    pred: &[bool],
    gt: &[bool],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
) -> Result<SegmentationScores, MetricsError> {
    check_inputs(pred, gt, dims, spacing_mm)?;
    let counts = ConfusionCounts::from_masks(pred, gt)?;
    let distances = surface_distances_mm(pred, gt, dims, spacing_mm);
    Ok(SegmentationScores {
        dice: counts.dice(),
        iou: counts.iou(),
        precision: counts.precision(),
        recall: counts.recall(),
        specificity: counts.specificity(),
        accuracy: counts.accuracy(),
        hd_mm: distances.map(|d| d.hausdorff_mm),
        hd95_mm: distances.map(|d| d.hausdorff_95_mm),
        assd_mm: distances.map(|d| d.assd_mm),
    })
}

/// [`segmentation_scores`] for two label maps, each reduced to foreground by `selector`.
pub fn mask_scores(
    pred: &Mask,
    gt: &Mask,
    selector: LabelSelector,
    spacing_mm: [f64; 3],
) -> Result<SegmentationScores, MetricsError> {
    if pred.dims() != gt.dims() {
        return Err(MetricsError::GridMismatch { pred: pred.dims(), gt: gt.dims() });
    }
    segmentation_scores(&pred.binary(selector), &gt.binary(selector), pred.dims(), spacing_mm)
}

/// Surface distances (Hausdorff, HD95, ASSD, directed maxima) in mm, checked like
/// [`segmentation_scores`]; `Ok(None)` when exactly one mask is empty.
pub fn surface_distances(
    pred: &[bool],
    gt: &[bool],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
) -> Result<Option<SurfaceDistances>, MetricsError> {
    check_inputs(pred, gt, dims, spacing_mm)?;
    Ok(surface_distances_mm(pred, gt, dims, spacing_mm))
}

/// Symmetric Hausdorff distance in voxels (spacing 1 on every axis); `Ok(None)` when exactly one
/// mask is empty, `Ok(Some(0.0))` when both are.
pub fn hausdorff_px(pred: &[bool], gt: &[bool], dims: [usize; 3]) -> Result<Option<f64>, MetricsError> {
    Ok(surface_distances(pred, gt, dims, [1.0; 3])?.map(|d| d.hausdorff_mm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let a = [true; 4];
        assert_eq!(
            segmentation_scores(&a, &[true; 3], [1, 2, 2], [1.0; 3]),
            Err(MetricsError::LengthMismatch { pred: 4, gt: 3 })
        );
        assert_eq!(
            segmentation_scores(&a, &a, [1, 2, 3], [1.0; 3]),
            Err(MetricsError::DimsMismatch { z: 1, y: 2, x: 3, expected: 6, got: 4 })
        );
        assert!(matches!(
            segmentation_scores(&a, &a, [usize::MAX, 2, 2], [1.0; 3]),
            Err(MetricsError::DimsMismatch { .. })
        ));
        for bad in [[0.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, f64::NAN], [f64::INFINITY, 1.0, 1.0]] {
            assert!(matches!(segmentation_scores(&a, &a, [1, 2, 2], bad), Err(MetricsError::BadSpacing(_))));
        }
        assert_eq!(
            hausdorff_px(&a, &[true; 3], [1, 2, 2]),
            Err(MetricsError::LengthMismatch { pred: 4, gt: 3 })
        );
    }

    #[test]
    fn zero_voxel_grid_scores_as_both_empty() {
        let s = segmentation_scores(&[], &[], [0, 4, 4], [1.0; 3]).unwrap();
        assert_eq!((s.dice, s.accuracy, s.hd_mm), (1.0, 1.0, Some(0.0)));
    }

    #[test]
    fn mask_scores_use_the_selector() {
        // Label 2 matches exactly; label 1 only in the prediction.
        let pred = Mask::new(vec![1, 2, 0, 0], [1, 2, 2]).unwrap();
        let gt = Mask::new(vec![0, 2, 0, 0], [1, 2, 2]).unwrap();
        let s = mask_scores(&pred, &gt, LabelSelector::Label(2), [1.0; 3]).unwrap();
        assert_eq!((s.dice, s.hd_mm), (1.0, Some(0.0)));
        let s = mask_scores(&pred, &gt, LabelSelector::Any, [1.0; 3]).unwrap();
        assert_eq!(s.dice, 2.0 / 3.0);
        let other = Mask::new(vec![0; 4], [1, 1, 4]).unwrap();
        assert!(matches!(
            mask_scores(&pred, &other, LabelSelector::Any, [1.0; 3]),
            Err(MetricsError::GridMismatch { .. })
        ));
    }
}
