//! Known-answer and reference tests for `radlens::metrics`: hand-computed cases, every empty-mask
//! convention, symmetry, and a brute-force surface-distance reference on random masks.

use radlens::metrics::{
    hausdorff_px, segmentation_scores, surface_distances, ConfusionCounts, MetricsError, SegmentationScores,
};

const ISO: [f64; 3] = [1.0, 1.0, 1.0];

/// A mask on `dims` with the given (z, y, x) voxels set.
fn mask(dims: [usize; 3], voxels: &[[usize; 3]]) -> Vec<bool> {
    let mut m = vec![false; dims.iter().product()];
    for &[z, y, x] in voxels {
        m[(z * dims[1] + y) * dims[2] + x] = true;
    }
    m
}

/// A filled box [z0, z1) × [y0, y1) × [x0, x1).
fn boxed(dims: [usize; 3], lo: [usize; 3], hi: [usize; 3]) -> Vec<bool> {
    let mut v = Vec::new();
    for z in lo[0]..hi[0] {
        for y in lo[1]..hi[1] {
            for x in lo[2]..hi[2] {
                v.push([z, y, x]);
            }
        }
    }
    mask(dims, &v)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!(close(a, b), "{what}: {a} vs expected {b}");
}

// ---------------------------------------------------------------------------------------------
// Overlap

#[test]
fn overlap_and_distances_hand_counted_4x4() {
    // One 4×4 slice; B = both, P = prediction only, G = ground truth only:
    //   B B B P      tp 3, fp 1, fn 2, tn 10
    //   G G . .
    //   . . . .
    //   . . . .
    let dims = [1, 4, 4];
    let pred = mask(dims, &[[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3]]);
    let gt = mask(dims, &[[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0], [0, 1, 1]]);
    let c = ConfusionCounts::from_masks(&pred, &gt).unwrap();
    assert_eq!((c.true_pos, c.false_pos, c.false_neg, c.true_neg), (3, 1, 2, 10));
    let s = segmentation_scores(&pred, &gt, dims, ISO).unwrap();
    assert_eq!(s.dice, 6.0 / 9.0); // 2·3 / (6 + 1 + 2)
    assert_eq!(s.iou, 3.0 / 6.0); // 3 / (3 + 1 + 2)
    assert_eq!(s.precision, 3.0 / 4.0);
    assert_eq!(s.recall, 3.0 / 5.0);
    assert_eq!(s.specificity, 10.0 / 11.0);
    assert_eq!(s.accuracy, 13.0 / 16.0);
    // Every voxel of both masks is surface (each touches the grid border or row 2).
    // pred→gt: (0,0),(0,1),(0,2) are 0; (0,3)→(0,2) is 1.          max 1, mean 1/4
    // gt→pred: row 0 is 0; (1,0)→(0,0) and (1,1)→(0,1) are 1.      max 1, mean 2/5
    // HD = 1; ASSD = (0.25 + 0.4)/2 = 0.325; pooled {0×6, 1×3}: h = 8·0.95 = 7.6 → v7 = v8 = 1.
    assert_eq!(s.hd_mm, Some(1.0));
    assert_eq!(s.hd95_mm, Some(1.0));
    assert_close(s.assd_mm.unwrap(), 0.325, "assd");
}

// ---------------------------------------------------------------------------------------------
// Distances: hand cases

#[test]
fn single_pixels_distance_d_apart() {
    // (y 0, x 0) and (y 3, x 4): 5 pixels apart (3-4-5 triangle).
    let dims = [1, 5, 5];
    let a = mask(dims, &[[0, 0, 0]]);
    let b = mask(dims, &[[0, 3, 4]]);
    assert_eq!(hausdorff_px(&a, &b, dims), Ok(Some(5.0)));
    let s = segmentation_scores(&a, &b, dims, ISO).unwrap();
    assert_eq!((s.hd_mm, s.hd95_mm, s.assd_mm), (Some(5.0), Some(5.0), Some(5.0)));
    // Spacing (z –, y 0.5, x 2): √((3·0.5)² + (4·2)²) = √(2.25 + 64) = √66.25.
    let s = segmentation_scores(&a, &b, dims, [9.0, 0.5, 2.0]).unwrap();
    let d = 66.25f64.sqrt();
    assert_close(s.hd_mm.unwrap(), d, "hd");
    assert_close(s.hd95_mm.unwrap(), d, "hd95");
    assert_close(s.assd_mm.unwrap(), d, "assd");
    // Isotropic spacing s scales every distance by s.
    let s = segmentation_scores(&a, &b, dims, [0.8, 0.8, 0.8]).unwrap();
    assert_close(s.hd_mm.unwrap(), 4.0, "hd at 0.8 mm");
}

#[test]
fn single_voxels_in_3d_with_ct_spacing() {
    // (0,0,0) and (2,1,3), spacing (2.5, 0.7, 0.7): (5)² + 0.7² + 2.1² = 25 + 0.49 + 4.41 = 29.9 mm².
    let dims = [3, 2, 4];
    let a = mask(dims, &[[0, 0, 0]]);
    let b = mask(dims, &[[2, 1, 3]]);
    let s = segmentation_scores(&a, &b, dims, [2.5, 0.7, 0.7]).unwrap();
    assert_close(s.hd_mm.unwrap(), 29.9f64.sqrt(), "hd");
    assert_close(s.assd_mm.unwrap(), 29.9f64.sqrt(), "assd");
    // In voxels: √(4 + 1 + 9) = √14.
    assert_close(hausdorff_px(&a, &b, dims).unwrap().unwrap(), 14f64.sqrt(), "hd px");
}

#[test]
fn squares_offset_by_two_pixels() {
    // A = 3×3 square rows 2..5, cols 2..5; B = the same moved 2 columns right (cols 4..7).
    // Surfaces (4-connectivity): all but the centres (3,3) and (3,5):
    //   A: cols 2 and 4 rows 2,3,4; col 3 rows 2,4.   B: cols 4 and 6 rows 2,3,4; col 5 rows 2,4.
    // A→B: col 2 → col 4 of B: 2, 2, 2; col 3 → col 4: 1, 1; col 4 is on B's surface: 0, 0, 0.
    //      mean 8/8 = 1, max 2. B→A mirrors it.
    // HD = 2, ASSD = 1; pooled {0×6, 1×4, 2×6}: h = 15·0.95 = 14.25 → v14 = v15 = 2.
    let dims = [1, 10, 10];
    let a = boxed(dims, [0, 2, 2], [1, 5, 5]);
    let b = boxed(dims, [0, 2, 4], [1, 5, 7]);
    let s = segmentation_scores(&a, &b, dims, ISO).unwrap();
    assert_eq!((s.hd_mm, s.hd95_mm, s.assd_mm), (Some(2.0), Some(2.0), Some(1.0)));
    // x spacing 0.5 mm, y 3 mm: every nearest partner is still in the same row, so the
    // x offsets halve: HD 1, ASSD 0.5.
    let s = segmentation_scores(&a, &b, dims, [1.0, 3.0, 0.5]).unwrap();
    assert_eq!((s.hd_mm, s.hd95_mm, s.assd_mm), (Some(1.0), Some(1.0), Some(0.5)));
    // Overlap: the shared column (col 4) is 3 of 9 pixels: dice 2·3/18, IoU 3/15.
    assert_eq!((s.dice, s.iou), (1.0 / 3.0, 0.2));
}

#[test]
fn asymmetric_directed_distances() {
    // pred = one pixel at (2,2); gt = (2,2) and (2,7).
    // pred→gt = {0}; gt→pred = {0, 5}: directed maxima 0 and 5, HD 5.
    // ASSD = (0 + 2.5)/2 = 1.25 (MedPy: mean of the directed means; the pooled mean would be 5/3).
    // HD95: pooled {0, 0, 5}, h = 2·0.95 = 1.9 → 0 + 0.9·(5 − 0) = 4.5.
    let dims = [1, 5, 9];
    let pred = mask(dims, &[[0, 2, 2]]);
    let gt = mask(dims, &[[0, 2, 2], [0, 2, 7]]);
    let d = surface_distances(&pred, &gt, dims, ISO).unwrap().unwrap();
    assert_eq!((d.directed_pred_to_gt_mm, d.directed_gt_to_pred_mm), (0.0, 5.0));
    assert_eq!(d.hausdorff_mm, 5.0);
    assert_close(d.hausdorff_95_mm, 4.5, "hd95");
    assert_eq!(d.assd_mm, 1.25);
    let swapped = surface_distances(&gt, &pred, dims, ISO).unwrap().unwrap();
    assert_eq!((swapped.directed_pred_to_gt_mm, swapped.directed_gt_to_pred_mm), (5.0, 0.0));
    assert_eq!(
        (swapped.hausdorff_mm, swapped.hausdorff_95_mm, swapped.assd_mm),
        (d.hausdorff_mm, d.hausdorff_95_mm, d.assd_mm)
    );
}

#[test]
fn border_voxels_are_surface_and_one_slice_is_2d() {
    // gt fills a 1×3×3 slice (surface: the 8 border pixels, centre interior);
    // pred is the centre pixel alone.
    // pred→gt: centre to nearest border pixel = 1.  gt→pred: 4 edge pixels 1, 4 corners √2.
    // HD = √2; ASSD = (1 + (4 + 4√2)/8)/2.
    let dims = [1, 3, 3];
    let gt = vec![true; 9];
    let pred = mask(dims, &[[0, 1, 1]]);
    let s = segmentation_scores(&pred, &gt, dims, ISO).unwrap();
    assert_close(s.hd_mm.unwrap(), 2f64.sqrt(), "hd");
    assert_close(s.assd_mm.unwrap(), (1.0 + (4.0 + 4.0 * 2f64.sqrt()) / 8.0) / 2.0, "assd");
}

// ---------------------------------------------------------------------------------------------
// Empty-mask conventions (module docs table)

#[test]
fn both_empty_is_perfect() {
    let dims = [2, 3, 3];
    let e = vec![false; 18];
    let s = segmentation_scores(&e, &e, dims, [2.5, 0.7, 0.7]).unwrap();
    assert_eq!(
        s,
        SegmentationScores {
            dice: 1.0,
            iou: 1.0,
            precision: 1.0,
            recall: 1.0,
            specificity: 1.0,
            accuracy: 1.0,
            hd_mm: Some(0.0),
            hd95_mm: Some(0.0),
            assd_mm: Some(0.0),
        }
    );
    assert_eq!(hausdorff_px(&e, &e, dims), Ok(Some(0.0)));
}

#[test]
fn gt_empty_pred_not() {
    // 1×2×2, pred has 1 pixel: tp 0, fp 1, fn 0, tn 3.
    let dims = [1, 2, 2];
    let pred = mask(dims, &[[0, 0, 0]]);
    let gt = vec![false; 4];
    let s = segmentation_scores(&pred, &gt, dims, ISO).unwrap();
    assert_eq!((s.dice, s.iou), (0.0, 0.0));
    assert_eq!(s.precision, 0.0); // 0 / 1
    assert_eq!(s.recall, 1.0); // nothing to find: 0/0 → 1
    assert_eq!(s.specificity, 3.0 / 4.0);
    assert_eq!(s.accuracy, 3.0 / 4.0);
    assert_eq!((s.hd_mm, s.hd95_mm, s.assd_mm), (None, None, None));
    assert_eq!(hausdorff_px(&pred, &gt, dims), Ok(None));
    // Undefined distances are JSON null.
    let json = serde_json::to_value(s).unwrap();
    assert!(json["hd_mm"].is_null() && json["hd95_mm"].is_null() && json["assd_mm"].is_null());
    assert_eq!(json["recall"], 1.0);
}

#[test]
fn pred_empty_gt_not() {
    // 1×2×2, gt has 2 pixels: tp 0, fp 0, fn 2, tn 2.
    let dims = [1, 2, 2];
    let pred = vec![false; 4];
    let gt = mask(dims, &[[0, 0, 0], [0, 1, 1]]);
    let s = segmentation_scores(&pred, &gt, dims, ISO).unwrap();
    assert_eq!((s.dice, s.iou), (0.0, 0.0));
    assert_eq!(s.precision, 1.0); // no positive claims, none false: 0/0 → 1 (sklearn zero_division=1)
    assert_eq!(s.recall, 0.0); // 0 / 2
    assert_eq!(s.specificity, 1.0); // 2 / 2
    assert_eq!(s.accuracy, 0.5);
    assert_eq!((s.hd_mm, s.hd95_mm, s.assd_mm), (None, None, None));
    assert_eq!(hausdorff_px(&pred, &gt, dims), Ok(None));
}

#[test]
fn specificity_without_negatives_is_one() {
    // gt covers the whole grid: TN + FP = 0.
    let dims = [1, 2, 3];
    let gt = vec![true; 6];
    let pred = mask(dims, &[[0, 0, 0], [0, 0, 1], [0, 0, 2]]);
    let s = segmentation_scores(&pred, &gt, dims, ISO).unwrap();
    assert_eq!(s.specificity, 1.0);
    assert_eq!((s.precision, s.recall, s.dice), (1.0, 0.5, 2.0 / 3.0));
}

#[test]
fn bad_input_returns_errors() {
    assert_eq!(
        segmentation_scores(&[true; 4], &[true; 5], [1, 2, 2], ISO),
        Err(MetricsError::LengthMismatch { pred: 4, gt: 5 })
    );
    assert!(matches!(
        segmentation_scores(&[true; 4], &[true; 4], [2, 2, 2], ISO),
        Err(MetricsError::DimsMismatch { expected: 8, got: 4, .. })
    ));
    assert!(matches!(
        segmentation_scores(&[true; 4], &[true; 4], [1, 2, 2], [1.0, 0.0, 1.0]),
        Err(MetricsError::BadSpacing(_))
    ));
    assert!(hausdorff_px(&[true; 4], &[true; 4], [1, 1, 3]).is_err());
}

// ---------------------------------------------------------------------------------------------
// Random masks: brute-force reference, symmetry, HD95 ≤ HD

/// Numerical Recipes' 64-bit LCG: deterministic masks without the rand crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A mask that is sometimes empty, sometimes sparse, sometimes a noisy blob.
    fn mask(&mut self, dims: [usize; 3]) -> Vec<bool> {
        let n: usize = dims.iter().product();
        match self.below(8) {
            0 => vec![false; n],
            1 => vec![true; n],
            _ => {
                let density = 1 + self.below(70);
                (0..n).map(|_| self.below(100) < density).collect()
            }
        }
    }
}

/// Surface by explicit erosion with the face-neighbour offsets (a one-slice grid has no z offsets);
/// out-of-grid neighbours count as background.
fn reference_surface(m: &[bool], dims: [usize; 3]) -> Vec<[usize; 3]> {
    let mut offsets = vec![[0i64, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]];
    if dims[0] > 1 {
        offsets.extend([[1, 0, 0], [-1, 0, 0]]);
    }
    let at = |p: [i64; 3]| -> bool {
        (0..3).all(|a| p[a] >= 0 && (p[a] as usize) < dims[a])
            && m[((p[0] as usize) * dims[1] + p[1] as usize) * dims[2] + p[2] as usize]
    };
    let mut out = Vec::new();
    for z in 0..dims[0] {
        for y in 0..dims[1] {
            for x in 0..dims[2] {
                let p = [z as i64, y as i64, x as i64];
                let eroded = offsets.iter().all(|o| at([p[0] + o[0], p[1] + o[1], p[2] + o[2]]));
                if at(p) && !eroded {
                    out.push([z, y, x]);
                }
            }
        }
    }
    out
}

/// (HD, HD95, ASSD) from all pairwise surface distances; NumPy-linear percentile on a full sort.
fn reference_distances(
    a: &[bool],
    b: &[bool],
    dims: [usize; 3],
    spacing: [f64; 3],
) -> Option<(f64, f64, f64)> {
    let (sa, sb) = (reference_surface(a, dims), reference_surface(b, dims));
    if sa.is_empty() || sb.is_empty() {
        return if sa.is_empty() && sb.is_empty() { Some((0.0, 0.0, 0.0)) } else { None };
    }
    let dist = |p: &[usize; 3], q: &[usize; 3]| {
        (0..3).map(|k| ((p[k] as f64 - q[k] as f64) * spacing[k]).powi(2)).sum::<f64>().sqrt()
    };
    let directed = |from: &[[usize; 3]], to: &[[usize; 3]]| -> Vec<f64> {
        from.iter().map(|p| to.iter().map(|q| dist(p, q)).fold(f64::INFINITY, f64::min)).collect()
    };
    let (ab, ba) = (directed(&sa, &sb), directed(&sb, &sa));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut pooled: Vec<f64> = ab.iter().chain(&ba).copied().collect();
    pooled.sort_by(f64::total_cmp);
    let h = (pooled.len() - 1) as f64 * 0.95;
    let lo = h.floor() as usize;
    let hd95 = if lo + 1 < pooled.len() {
        pooled[lo] + (h - lo as f64) * (pooled[lo + 1] - pooled[lo])
    } else {
        pooled[lo]
    };
    Some((*pooled.last().unwrap(), hd95, (mean(&ab) + mean(&ba)) / 2.0))
}

fn random_dims(rng: &mut Lcg) -> [usize; 3] {
    // A third of the cases are 2D (one slice).
    let z = if rng.below(3) == 0 { 1 } else { 1 + rng.below(5) as usize };
    [z, 1 + rng.below(10) as usize, 1 + rng.below(10) as usize]
}

const SPACINGS: [[f64; 3]; 4] = [[1.0, 1.0, 1.0], [2.5, 0.7, 0.7], [0.6, 1.3, 2.2], [5.0, 0.4, 0.9]];

#[test]
fn distances_match_brute_force_on_random_masks() {
    let mut rng = Lcg(20240611);
    let mut compared = 0;
    for case in 0..400 {
        let dims = random_dims(&mut rng);
        let (a, b) = (rng.mask(dims), rng.mask(dims));
        let spacing = SPACINGS[case % SPACINGS.len()];
        let s = segmentation_scores(&a, &b, dims, spacing).unwrap();
        match reference_distances(&a, &b, dims, spacing) {
            None => assert_eq!((s.hd_mm, s.hd95_mm, s.assd_mm), (None, None, None), "case {case}"),
            Some((hd, hd95, assd)) => {
                compared += 1;
                assert_close(s.hd_mm.unwrap(), hd, &format!("case {case} {dims:?} hd"));
                assert_close(s.hd95_mm.unwrap(), hd95, &format!("case {case} {dims:?} hd95"));
                assert_close(s.assd_mm.unwrap(), assd, &format!("case {case} {dims:?} assd"));
            }
        }
    }
    assert!(compared > 250, "only {compared} cases had two non-empty masks");
}

#[test]
fn hd95_and_assd_never_exceed_hd() {
    let mut rng = Lcg(7);
    for case in 0..300 {
        let dims = random_dims(&mut rng);
        let (a, b) = (rng.mask(dims), rng.mask(dims));
        let s = segmentation_scores(&a, &b, dims, SPACINGS[case % SPACINGS.len()]).unwrap();
        if let (Some(hd), Some(hd95), Some(assd)) = (s.hd_mm, s.hd95_mm, s.assd_mm) {
            assert!(0.0 <= hd95 && hd95 <= hd, "case {case}: hd95 {hd95} > hd {hd}");
            assert!(0.0 <= assd && assd <= hd, "case {case}: assd {assd} > hd {hd}");
        }
    }
}

#[test]
fn swapping_prediction_and_ground_truth() {
    let mut rng = Lcg(99);
    for case in 0..300 {
        let dims = random_dims(&mut rng);
        let (a, b) = (rng.mask(dims), rng.mask(dims));
        let spacing = SPACINGS[case % SPACINGS.len()];
        let ab = segmentation_scores(&a, &b, dims, spacing).unwrap();
        let ba = segmentation_scores(&b, &a, dims, spacing).unwrap();
        // Symmetric scores are bit-identical.
        assert_eq!((ab.dice, ab.iou, ab.accuracy), (ba.dice, ba.iou, ba.accuracy), "case {case}");
        assert_eq!((ab.hd_mm, ab.hd95_mm, ab.assd_mm), (ba.hd_mm, ba.hd95_mm, ba.assd_mm), "case {case}");
        // Precision and recall trade places (this is why precision of an empty prediction is 1).
        assert_eq!((ab.precision, ab.recall), (ba.recall, ba.precision), "case {case}");
        assert_eq!(hausdorff_px(&a, &b, dims), hausdorff_px(&b, &a, dims));
    }
}

#[test]
fn hausdorff_px_is_hd_at_unit_spacing() {
    let mut rng = Lcg(3);
    for _ in 0..100 {
        let dims = random_dims(&mut rng);
        let (a, b) = (rng.mask(dims), rng.mask(dims));
        assert_eq!(
            hausdorff_px(&a, &b, dims).unwrap(),
            segmentation_scores(&a, &b, dims, ISO).unwrap().hd_mm
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Size

/// Two offset balls in a 128×128×32 CT-like grid: must finish quickly (linear EDT) and agree
/// with the geometry: the balls' centres are 10 voxels apart along x.
#[test]
fn moderate_volume_runs_and_is_plausible() {
    let dims = [32, 128, 128];
    let ball = |cz: f64, cy: f64, cx: f64, r: f64| -> Vec<bool> {
        let mut m = Vec::with_capacity(dims.iter().product());
        for z in 0..dims[0] {
            for y in 0..dims[1] {
                for x in 0..dims[2] {
                    let (dz, dy, dx) = (z as f64 - cz, y as f64 - cy, x as f64 - cx);
                    m.push(dz * dz + dy * dy + dx * dx <= r * r);
                }
            }
        }
        m
    };
    let a = ball(16.0, 64.0, 60.0, 12.0);
    let b = ball(16.0, 64.0, 70.0, 12.0);
    let s = segmentation_scores(&a, &b, dims, ISO).unwrap();
    // Shifting a ball by 10 along x: the farthest surface points are ~10 apart.
    let hd = s.hd_mm.unwrap();
    assert!((9.0..=11.0).contains(&hd), "hd {hd}");
    assert!(s.hd95_mm.unwrap() <= hd && s.assd_mm.unwrap() > 0.0);
    assert!(s.dice > 0.3 && s.dice < 0.7, "dice {}", s.dice);
}

/// 512×512×80 (the size the viewer must handle); run with `cargo test --test metrics -- --ignored`.
#[test]
#[ignore = "large: ~21 M voxels, a few seconds"]
fn full_ct_volume_512x512x80() {
    let dims = [80, 512, 512];
    let n: usize = dims.iter().product();
    let mut a = vec![false; n];
    let mut b = vec![false; n];
    for z in 20..60 {
        for y in 100..400 {
            for x in 100..400 {
                a[(z * 512 + y) * 512 + x] = true;
                b[(z * 512 + y) * 512 + x + 7] = true;
            }
        }
    }
    let t = std::time::Instant::now();
    let s = segmentation_scores(&a, &b, dims, [2.5, 0.7, 0.7]).unwrap();
    eprintln!("512x512x80: {:?} in {:?}", s, t.elapsed());
    // Boxes shifted by 7 voxels in x (4.9 mm); faces facing each other are 4.9 mm apart.
    assert!((s.hd_mm.unwrap() - 4.9).abs() < 1e-9);
}
