//! Seeded random affine augmentation as the GGO paper's Keras `ImageDataGenerator`: rotation ±15°,
//! shifts ±10%, shear, zoom 0.8–1.2, horizontal flip, reflect fill. The image is resampled bilinearly,
//! the mask with nearest neighbour through the same transform, so it stays binary and aligned.

use crate::imaging::SplitMix64;

/// One affine draw. The output pixel at centred coordinates `p` takes the source pixel
/// `A⁻¹ (p − shift)`, where `A = rotation · shear · zoom · flip` acts about the image centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineParams {
    pub rotate_deg: f64,
    /// Shift in pixels (x right, y down).
    pub shift_x: f64,
    pub shift_y: f64,
    /// Shear angle in degrees (x sheared along y).
    pub shear_deg: f64,
    /// Zoom factor (> 1 enlarges the content).
    pub zoom: f64,
    pub flip_h: bool,
}

impl AffineParams {
    pub fn identity() -> Self {
        AffineParams { rotate_deg: 0.0, shift_x: 0.0, shift_y: 0.0, shear_deg: 0.0, zoom: 1.0, flip_h: false }
    }

    /// A random draw for an `h × w` image.
    pub fn random(rng: &mut SplitMix64, h: usize, w: usize) -> Self {
        let mut u = |lo: f64, hi: f64| lo + (hi - lo) * rng.next_f64();
        let rotate_deg = u(-15.0, 15.0);
        let shift_x = u(-0.1, 0.1) * w as f64;
        let shift_y = u(-0.1, 0.1) * h as f64;
        let shear_deg = u(-8.0, 8.0);
        let zoom = u(0.8, 1.2);
        let flip_h = rng.coin(0.5);
        AffineParams { rotate_deg, shift_x, shift_y, shear_deg, zoom, flip_h }
    }

    /// The inverse of the 2×2 part, row-major [a, b, c, d] mapping output → source offsets.
    fn inverse_matrix(&self) -> [f64; 4] {
        let (s, c) = self.rotate_deg.to_radians().sin_cos();
        let sh = self.shear_deg.to_radians().tan();
        let f = if self.flip_h { -1.0 } else { 1.0 };
        // A = R · S · Z · F with R = [c −s; s c], S = [1 sh; 0 1], Z = zoom·I, F = diag(f, 1).
        let z = self.zoom;
        let a = [c * z * f, (c * sh - s) * z, s * z * f, (s * sh + c) * z];
        let det = a[0] * a[3] - a[1] * a[2];
        [a[3] / det, -a[1] / det, -a[2] / det, a[0] / det]
    }
}

/// Keras/scipy `reflect` index (`dcba|abcd|dcba`).
fn reflect(i: i64, n: usize) -> usize {
    let n = n as i64;
    let period = 2 * n;
    let mut k = i.rem_euclid(period);
    if k >= n {
        k = period - 1 - k;
    }
    k as usize
}

/// Transforms `channels` image planes (CHW, each `h × w`) bilinearly and the mask (`h × w`, optional)
/// with nearest neighbour, both with `p`.
pub fn apply(
    image: &[f32],
    channels: usize,
    mask: Option<&[f32]>,
    h: usize,
    w: usize,
    p: &AffineParams,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let inv = p.inverse_matrix();
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let mut out = vec![0.0f32; channels * h * w];
    let mut out_mask = mask.map(|_| vec![0.0f32; h * w]);
    for y in 0..h {
        for x in 0..w {
            let dx = x as f64 - cx - p.shift_x;
            let dy = y as f64 - cy - p.shift_y;
            let sx = inv[0] * dx + inv[1] * dy + cx;
            let sy = inv[2] * dx + inv[3] * dy + cy;
            // Bilinear with reflected neighbours.
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let (xa, xb) = (reflect(x0, w), reflect(x0 + 1, w));
            let (ya, yb) = (reflect(y0, h), reflect(y0 + 1, h));
            for c in 0..channels {
                let plane = &image[c * h * w..(c + 1) * h * w];
                let top = plane[ya * w + xa] * (1.0 - fx) + plane[ya * w + xb] * fx;
                let bottom = plane[yb * w + xa] * (1.0 - fx) + plane[yb * w + xb] * fx;
                out[c * h * w + y * w + x] = top * (1.0 - fy) + bottom * fy;
            }
            if let (Some(m), Some(om)) = (mask, out_mask.as_mut()) {
                let (nx, ny) = (reflect(sx.round() as i64, w), reflect(sy.round() as i64, h));
                om[y * w + x] = m[ny * w + nx];
            }
        }
    }
    (out, out_mask)
}
