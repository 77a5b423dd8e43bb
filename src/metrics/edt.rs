//! Exact Euclidean distance transform on an anisotropic (z, y, x) grid.
//!
//! Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions" (Theory of Computing 8,
//! 2012): the squared distance is separable, so one 1D lower-envelope-of-parabolas pass per axis gives
//! the exact result in O(voxels). Spacing enters as the weight `s²` of each axis's parabolas, so the
//! result is in mm², exact up to f64 rounding (no chamfer approximation).

/// Squared Euclidean distance in mm² from every voxel to the nearest `true` voxel of `feature`;
/// `0.0` on feature voxels, `f64::INFINITY` everywhere when `feature` has no `true` voxel.
///
/// `feature` is indexed (z, y, x) row-major with `dims = [z, y, x]`; `spacing_mm` is (z, y, x) and
/// should be positive and finite (the metrics entry points check it; here a zero spacing yields NaN).
///
/// # Panics
/// If `feature.len()` is not `dims[0] * dims[1] * dims[2]` — a programming error, not bad data:
/// [`crate::metrics::segmentation_scores`] checks lengths and returns an error instead.
pub fn edt_sq_mm(feature: &[bool], dims: [usize; 3], spacing_mm: [f64; 3]) -> Vec<f64> {
    let mut out = Vec::new();
    edt_sq_mm_into(feature, dims, spacing_mm, &mut out);
    out
}

/// [`edt_sq_mm`] into a reused buffer, so callers computing two transforms allocate the
/// voxel-sized buffer once.
pub(crate) fn edt_sq_mm_into(feature: &[bool], dims: [usize; 3], spacing_mm: [f64; 3], out: &mut Vec<f64>) {
    let [nz, ny, nx] = dims;
    let n = nz * ny * nx;
    assert_eq!(
        feature.len(),
        n,
        "edt_sq_mm: feature holds {} voxels but dims {dims:?} need {n}",
        feature.len()
    );
    out.clear();
    out.extend(feature.iter().map(|&f| if f { 0.0 } else { f64::INFINITY }));
    if n == 0 {
        return;
    }
    let longest = nz.max(ny).max(nx);
    let mut scratch = Scratch::new(longest);

    // x: contiguous lines.
    if nx > 1 {
        let w = spacing_mm[2] * spacing_mm[2];
        for line in out.chunks_exact_mut(nx) {
            scratch.transform_contiguous(line, w);
        }
    }
    // y: lines of stride nx inside each slice.
    if ny > 1 {
        let w = spacing_mm[1] * spacing_mm[1];
        for z in 0..nz {
            for x in 0..nx {
                scratch.transform_strided(out, z * ny * nx + x, nx, ny, w);
            }
        }
    }
    // z: lines of stride ny*nx.
    if nz > 1 {
        let w = spacing_mm[0] * spacing_mm[0];
        for base in 0..ny * nx {
            scratch.transform_strided(out, base, ny * nx, nz, w);
        }
    }
}

/// Buffers for one 1D pass, sized for the longest axis and reused by every line (no per-line
/// or per-voxel allocation).
struct Scratch {
    /// The line's input values (gathered for strided lines).
    f: Vec<f64>,
    /// The line's output values.
    d: Vec<f64>,
    /// Positions of the parabolas in the lower envelope.
    vertex: Vec<usize>,
    /// Boundaries between envelope parabolas: parabola k is lowest on [bound[k], bound[k+1]].
    bound: Vec<f64>,
}

impl Scratch {
    fn new(len: usize) -> Self {
        Scratch { f: vec![0.0; len], d: vec![0.0; len], vertex: vec![0; len], bound: vec![0.0; len + 1] }
    }

    fn transform_contiguous(&mut self, line: &mut [f64], w: f64) {
        let len = line.len();
        self.f[..len].copy_from_slice(line);
        lower_envelope(&self.f[..len], w, &mut self.d[..len], &mut self.vertex, &mut self.bound);
        line.copy_from_slice(&self.d[..len]);
    }

    fn transform_strided(&mut self, data: &mut [f64], base: usize, stride: usize, len: usize, w: f64) {
        let mut any_finite = false;
        for (i, f) in self.f[..len].iter_mut().enumerate() {
            *f = data[base + i * stride];
            any_finite |= f.is_finite();
        }
        // A line with no finite value stays all infinite: skip the work (common far from a mask).
        if !any_finite {
            return;
        }
        lower_envelope(&self.f[..len], w, &mut self.d[..len], &mut self.vertex, &mut self.bound);
        for (i, d) in self.d[..len].iter().enumerate() {
            data[base + i * stride] = *d;
        }
    }
}

/// `d[q] = min_p ( w·(q−p)² + f[p] )` over the finite `f[p]`; all infinite when none is finite.
///
/// Infinite samples are left out of the envelope (rather than carried as huge numbers) so that the
/// intersection arithmetic never sees `inf − inf`.
fn lower_envelope(f: &[f64], w: f64, d: &mut [f64], vertex: &mut [usize], bound: &mut [f64]) {
    let n = f.len();
    // Number of parabolas in the envelope so far.
    let mut k = 0usize;
    for q in 0..n {
        let fq = f[q];
        if !fq.is_finite() {
            continue;
        }
        let qf = q as f64;
        loop {
            if k == 0 {
                vertex[0] = q;
                bound[0] = f64::NEG_INFINITY;
                k = 1;
                break;
            }
            let p = vertex[k - 1];
            let pf = p as f64;
            // Where parabola q starts to lie below parabola p.
            let s = ((fq + w * qf * qf) - (f[p] + w * pf * pf)) / (2.0 * w * (qf - pf));
            if s <= bound[k - 1] {
                // Parabola p is nowhere lowest any more.
                k -= 1;
                continue;
            }
            vertex[k] = q;
            bound[k] = s;
            k += 1;
            break;
        }
    }
    if k == 0 {
        d.fill(f64::INFINITY);
        return;
    }
    bound[k] = f64::INFINITY;
    let mut j = 0usize;
    for (q, dq) in d.iter_mut().enumerate() {
        let qf = q as f64;
        while bound[j + 1] < qf {
            j += 1;
        }
        let p = vertex[j];
        let dist = qf - p as f64;
        *dq = w * dist * dist + f[p];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Squared distances by trying every feature voxel: the O(n²) reference.
    fn brute_force_sq_mm(feature: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
        let [nz, ny, nx] = dims;
        let coords = |i: usize| [i / (ny * nx), (i / nx) % ny, i % nx];
        let features: Vec<[usize; 3]> = (0..feature.len()).filter(|&i| feature[i]).map(coords).collect();
        (0..nz * ny * nx)
            .map(|i| {
                let c = coords(i);
                features
                    .iter()
                    .map(|f| {
                        (0..3)
                            .map(|a| {
                                let d = (c[a] as f64 - f[a] as f64) * spacing[a];
                                d * d
                            })
                            .sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

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
    }

    #[test]
    fn edt_1d_hand_case() {
        // Feature at x = 1 of 5: distances 1, 0, 1, 2, 3 → squared 1, 0, 1, 4, 9.
        let f = [false, true, false, false, false];
        assert_eq!(edt_sq_mm(&f, [1, 1, 5], [1.0, 1.0, 1.0]), vec![1.0, 0.0, 1.0, 4.0, 9.0]);
        // Two features at 0 and 4: the middle voxel is 2 from both.
        let f = [true, false, false, false, true];
        assert_eq!(edt_sq_mm(&f, [1, 1, 5], [1.0, 1.0, 1.0]), vec![0.0, 1.0, 4.0, 1.0, 0.0]);
        // x spacing 2.5 mm: squared distances scale by 6.25.
        let f = [false, true, false, false, false];
        assert_eq!(edt_sq_mm(&f, [1, 1, 5], [9.0, 9.0, 2.5]), vec![6.25, 0.0, 6.25, 25.0, 56.25]);
    }

    #[test]
    fn edt_2d_hand_case() {
        // Feature at (y 0, x 0) of a 3×3 slice: squared distances y² + x²,
        // i.e. distances 0, 1, 2 / 1, √2, √5 / 2, √5, √8.
        let mut f = [false; 9];
        f[0] = true;
        let d = edt_sq_mm(&f, [1, 3, 3], [1.0, 1.0, 1.0]);
        assert_eq!(d, vec![0.0, 1.0, 4.0, 1.0, 2.0, 5.0, 4.0, 5.0, 8.0]);
        assert_eq!(d[5].sqrt(), 5f64.sqrt());
    }

    #[test]
    fn edt_anisotropic_hand_case() {
        // Centre feature of a 3×3 slice, y spacing 2 mm, x spacing 1 mm:
        // edge neighbours 4 (y) or 1 (x) mm², corners 4 + 1 = 5 mm².
        let mut f = [false; 9];
        f[4] = true;
        let d = edt_sq_mm(&f, [1, 3, 3], [7.0, 2.0, 1.0]);
        assert_eq!(d, vec![5.0, 4.0, 5.0, 1.0, 0.0, 1.0, 5.0, 4.0, 5.0]);
        // 3D, spacing (2.5, 0.7, 0.7): voxel (2, 1, 3) from feature (0, 0, 0) is
        // (2·2.5)² + 0.7² + (3·0.7)² = 25 + 0.49 + 4.41 = 29.9 mm².
        let dims = [3, 2, 4];
        let mut f = vec![false; 24];
        f[0] = true;
        let d = edt_sq_mm(&f, dims, [2.5, 0.7, 0.7]);
        assert!((d[2 * 8 + 4 + 3] - 29.9).abs() < 1e-12);
    }

    #[test]
    fn edt_no_feature_is_infinite() {
        let d = edt_sq_mm(&[false; 12], [2, 2, 3], [1.0, 1.0, 1.0]);
        assert!(d.iter().all(|v| *v == f64::INFINITY));
        assert!(edt_sq_mm(&[], [0, 4, 4], [1.0, 1.0, 1.0]).is_empty());
    }

    #[test]
    fn edt_matches_brute_force_on_random_masks() {
        let mut rng = Lcg(0x5eed_ed71);
        let spacings = [[1.0, 1.0, 1.0], [2.5, 0.7, 0.7], [0.3, 1.9, 1.1], [5.0, 0.5, 3.0]];
        for case in 0..300 {
            let dims = [1 + rng.below(6) as usize, 1 + rng.below(9) as usize, 1 + rng.below(9) as usize];
            let n: usize = dims.iter().product();
            // From nearly empty to nearly full.
            let density = 1 + rng.below(60);
            let feature: Vec<bool> = (0..n).map(|_| rng.below(100) < density).collect();
            let spacing = spacings[case % spacings.len()];
            let fast = edt_sq_mm(&feature, dims, spacing);
            let slow = brute_force_sq_mm(&feature, dims, spacing);
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                if b.is_infinite() {
                    assert_eq!(a, b, "case {case} voxel {i}");
                } else {
                    assert!(
                        (a - b).abs() <= 1e-9 * b.max(1.0),
                        "case {case} dims {dims:?} voxel {i}: {a} vs {b}"
                    );
                }
            }
        }
    }
}
