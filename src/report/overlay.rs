//! The papers' figure: a jet heatmap at 50% over the windowed image.

/// MATLAB/matplotlib "jet" at t ∈ [0, 1] (dark blue → blue → cyan → yellow → red → dark red).
pub fn jet(t: f32) -> [u8; 3] {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let ch = |c: f32| ((1.5 - (4.0 * t - c).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [ch(3.0), ch(2.0), ch(1.0)]
}

/// Min-max scales a map to 0..1 for display (a constant map becomes 0).
pub fn min_max_scale(values: &[f32]) -> Vec<f32> {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let span = hi - lo;
    values.iter().map(|&v| if span > 0.0 && v.is_finite() { (v - lo) / span } else { 0.0 }).collect()
}

/// RGB pixels of `heat` (min-max scaled, jet) blended with `alpha` over the grey image.
pub fn overlay_rgb(grey: &[u8], heat: &[f32], alpha: f32) -> Vec<u8> {
    let scaled = min_max_scale(heat);
    let mut out = Vec::with_capacity(grey.len() * 3);
    for (&g, &t) in grey.iter().zip(&scaled) {
        let c = jet(t);
        for k in 0..3 {
            out.push(((1.0 - alpha) * g as f32 + alpha * c[k] as f32).round() as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_endpoints_and_middle() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(0.5), [128, 255, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
    }

    #[test]
    fn overlay_blends_half_and_half() {
        let rgb = overlay_rgb(&[0, 255], &[0.0, 1.0], 0.5);
        assert_eq!(rgb, vec![0, 0, 64, 192, 128, 128]);
        assert_eq!(min_max_scale(&[2.0, 2.0]), vec![0.0, 0.0]);
    }
}
