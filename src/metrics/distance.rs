//! Surface distances between two binary masks: Hausdorff, HD95 and ASSD, as MedPy defines them.

use serde::Serialize;

use super::edt::edt_sq_mm_into;

/// Surface-distance scores of two non-empty masks (or two empty ones, all 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SurfaceDistances {
    /// Symmetric Hausdorff distance: the larger of the two directed ones.
    pub hausdorff_mm: f64,
    /// 95th percentile of the pooled directed distances (MedPy `hd95`).
    pub hausdorff_95_mm: f64,
    /// Mean of the two directed mean distances (MedPy `assd`).
    pub assd_mm: f64,
    /// Largest distance from a prediction surface voxel to the ground-truth surface.
    pub directed_pred_to_gt_mm: f64,
    /// Largest distance from a ground-truth surface voxel to the prediction surface.
    pub directed_gt_to_pred_mm: f64,
}

impl SurfaceDistances {
    const ZERO: SurfaceDistances = SurfaceDistances {
        hausdorff_mm: 0.0,
        hausdorff_95_mm: 0.0,
        assd_mm: 0.0,
        directed_pred_to_gt_mm: 0.0,
        directed_gt_to_pred_mm: 0.0,
    };
}

/// The surface of a mask: mask voxels with at least one face neighbour (6-connectivity; in a
/// one-slice volume 4-connectivity in (y, x)) outside the mask or outside the grid.
///
/// This is MedPy's `mask ^ binary_erosion(mask, generate_binary_structure(ndim, 1))` with scipy's
/// default `border_value=0`: a mask voxel on the grid border is surface. A grid with `dims[0] == 1`
/// is a 2D image, so z has no neighbours at all (otherwise every pixel would be surface);
/// y and x always count, even when their length is 1, as they would for scipy on the 2D array.
///
/// # Panics
/// If `mask.len()` is not the product of `dims` (callers check it).
pub fn surface_voxels(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let [nz, ny, nx] = dims;
    assert_eq!(mask.len(), nz * ny * nx, "surface_voxels: mask length does not match {dims:?}");
    let plane = ny * nx;
    let use_z = nz > 1;
    let mut surface = vec![false; mask.len()];
    for z in 0..nz {
        for y in 0..ny {
            let row = z * plane + y * nx;
            for x in 0..nx {
                let i = row + x;
                if !mask[i] {
                    continue;
                }
                let outside = |cond: bool, j: usize| cond || !mask[j];
                surface[i] = x == 0
                    || x + 1 == nx
                    || !mask[i - 1]
                    || !mask[i + 1]
                    || outside(y == 0, i.wrapping_sub(nx))
                    || outside(y + 1 == ny, i + nx)
                    || (use_z && (outside(z == 0, i.wrapping_sub(plane)) || outside(z + 1 == nz, i + plane)));
            }
        }
    }
    surface
}

/// Distances in mm from every `from_surface` voxel to the nearest `to_surface` voxel, appended to
/// `out` in voxel order. `edt` is a reused voxel-sized buffer.
fn directed_distances_into(
    from_surface: &[bool],
    to_surface: &[bool],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    edt: &mut Vec<f64>,
    out: &mut Vec<f64>,
) {
    edt_sq_mm_into(to_surface, dims, spacing_mm, edt);
    out.extend(from_surface.iter().zip(edt.iter()).filter(|(s, _)| **s).map(|(_, d)| d.sqrt()));
}

/// The `q`-th percentile (0..=100) by NumPy's default method ("linear", Hyndman–Fan type 7):
/// position `h = (n − 1)·q/100` in the ascending order, linear interpolation between the
/// neighbours `⌊h⌋` and `⌊h⌋ + 1`. Reorders `values`; `None` when empty. O(n) (selection, no sort).
pub fn percentile_linear(values: &mut [f64], q: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * (q / 100.0);
    let lo = (h.floor().max(0.0) as usize).min(n - 1);
    let frac = h - lo as f64;
    let (_, lo_value, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let lo_value = *lo_value;
    match above.iter().copied().min_by(f64::total_cmp) {
        Some(hi_value) if frac > 0.0 => Some(lo_value + frac * (hi_value - lo_value)),
        _ => Some(lo_value),
    }
}

/// Hausdorff, HD95 and ASSD in mm between two masks on the same grid.
///
/// `None` when exactly one mask is empty (undefined); all zeros when both are.
/// Two exact distance transforms (one per direction) are computed, each O(voxels), into one
/// shared buffer.
///
/// # Panics
/// If either mask's length is not the product of `dims` (callers check it).
pub fn surface_distances_mm(
    pred: &[bool],
    gt: &[bool],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
) -> Option<SurfaceDistances> {
    let pred_empty = !pred.iter().any(|&v| v);
    let gt_empty = !gt.iter().any(|&v| v);
    match (pred_empty, gt_empty) {
        (true, true) => return Some(SurfaceDistances::ZERO),
        (true, false) | (false, true) => return None,
        (false, false) => {}
    }
    let pred_surface = surface_voxels(pred, dims);
    let gt_surface = surface_voxels(gt, dims);
    let mut edt = Vec::new();
    let mut pooled = Vec::new();
    directed_distances_into(&pred_surface, &gt_surface, dims, spacing_mm, &mut edt, &mut pooled);
    let n_pred_to_gt = pooled.len();
    directed_distances_into(&gt_surface, &pred_surface, dims, spacing_mm, &mut edt, &mut pooled);
    drop(edt);
    let (pred_to_gt, gt_to_pred) = pooled.split_at(n_pred_to_gt);
    // A non-empty mask always has a surface voxel (walk along x to a background voxel or the border),
    // so neither set is empty; still, an empty one yields None rather than a panic or NaN.
    if pred_to_gt.is_empty() || gt_to_pred.is_empty() {
        return None;
    }
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let directed_pred_to_gt_mm = max(pred_to_gt);
    let directed_gt_to_pred_mm = max(gt_to_pred);
    let assd_mm = (mean(pred_to_gt) + mean(gt_to_pred)) / 2.0;
    let hausdorff_95_mm = percentile_linear(&mut pooled, 95.0)?;
    Some(SurfaceDistances {
        hausdorff_mm: directed_pred_to_gt_mm.max(directed_gt_to_pred_mm),
        hausdorff_95_mm,
        assd_mm,
        directed_pred_to_gt_mm,
        directed_gt_to_pred_mm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([0, 0, 5], 95): h = 2·0.95 = 1.9 → 0 + 0.9·(5 − 0) = 4.5.
        assert!((percentile_linear(&mut [5.0, 0.0, 0.0], 95.0).unwrap() - 4.5).abs() < 1e-12);
        // [1..=5], 50th: h = 2 → exactly 3.
        assert_eq!(percentile_linear(&mut [5.0, 3.0, 1.0, 4.0, 2.0], 50.0), Some(3.0));
        // [1, 2, 3, 4], 95th: h = 3·0.95 = 2.85 → 3 + 0.85·1 = 3.85.
        assert!((percentile_linear(&mut [4.0, 1.0, 3.0, 2.0], 95.0).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(percentile_linear(&mut [7.0], 95.0), Some(7.0));
        assert_eq!(percentile_linear(&mut [], 95.0), None);
        assert_eq!(percentile_linear(&mut [2.0, 9.0], 100.0), Some(9.0));
        assert_eq!(percentile_linear(&mut [2.0, 9.0], 0.0), Some(2.0));
    }

    #[test]
    fn surface_of_squares_and_cubes() {
        // 3×3 square in a 5×5 slice (4-connectivity): all but the centre are surface.
        let mut sq = vec![false; 25];
        for y in 1..4 {
            for x in 1..4 {
                sq[y * 5 + x] = true;
            }
        }
        let s = surface_voxels(&sq, [1, 5, 5]);
        assert_eq!(s.iter().filter(|&&v| v).count(), 8);
        assert!(!s[2 * 5 + 2]);
        // A slice filled completely: the grid border counts as background, the centre does not.
        let s = surface_voxels(&[true; 9], [1, 3, 3]);
        assert_eq!(s.iter().filter(|&&v| v).count(), 8);
        assert!(!s[4]);
        // A 3×3×3 volume filled completely: 26 surface voxels, the centre is interior.
        let s = surface_voxels(&[true; 27], [3, 3, 3]);
        assert_eq!(s.iter().filter(|&&v| v).count(), 26);
        assert!(!s[13]);
        // Two slices filled: every voxel touches the z border.
        let s = surface_voxels(&[true; 18], [2, 3, 3]);
        assert!(s.iter().all(|&v| v));
        // A single row (y length 1) in 2D: y neighbours lie outside, so every pixel is surface.
        assert!(surface_voxels(&[true; 4], [1, 1, 4]).iter().all(|&v| v));
    }
}
