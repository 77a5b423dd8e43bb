//! Window/level (DICOM's VOI LUT "LINEAR" function) and the presets radiologists use.
//!
//! Order of transforms, as in DICOM PS3.3 C.11: stored value → modality rescale (slope/intercept, done by
//! the loader, giving HU for CT) → window/level (this module) → 8-bit display value.

use serde::Serialize;

/// A display window: values below `center - width/2` are black, above `center + width/2` white.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WindowLevel {
    pub center: f32,
    pub width: f32,
}

impl WindowLevel {
    pub fn new(center: f32, width: f32) -> Self {
        // A zero or negative width would divide by zero; DICOM requires width >= 1.
        WindowLevel { center, width: width.max(1e-3) }
    }

    /// Maps a value to 0..=1 with DICOM's LINEAR VOI function (PS3.3 C.11.2.1.2.1).
    pub fn normalize(&self, v: f32) -> f32 {
        let c = self.center - 0.5;
        let w = (self.width - 1.0).max(1e-3);
        (((v - c) / w) + 0.5).clamp(0.0, 1.0)
    }

    /// Maps a value to an 8-bit grey level.
    pub fn to_u8(&self, v: f32) -> u8 {
        (self.normalize(v) * 255.0).round() as u8
    }

    pub fn apply_u8(&self, values: &[f32]) -> Vec<u8> {
        values.iter().map(|&v| self.to_u8(v)).collect()
    }
}

/// The window presets, bound to keys 1–4 in the viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowPreset {
    /// W 1500 / L −600
    Lung,
    /// W 350 / L 50
    Mediastinum,
    /// W 2000 / L 500
    Bone,
}

impl WindowPreset {
    pub const ALL: [WindowPreset; 3] = [WindowPreset::Lung, WindowPreset::Mediastinum, WindowPreset::Bone];

    pub fn window(self) -> WindowLevel {
        match self {
            WindowPreset::Lung => WindowLevel::new(-600.0, 1500.0),
            WindowPreset::Mediastinum => WindowLevel::new(50.0, 350.0),
            WindowPreset::Bone => WindowLevel::new(500.0, 2000.0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WindowPreset::Lung => "lung",
            WindowPreset::Mediastinum => "mediastinum",
            WindowPreset::Bone => "bone",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(name))
    }
}

/// A window spanning the `lo_pct`..`hi_pct` percentiles of the finite values: for images whose values
/// have no physical unit (X-rays, 8-bit exports), where fixed HU presets mean nothing.
pub fn auto_window(values: &[f32], lo_pct: f32, hi_pct: f32) -> WindowLevel {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return WindowLevel::new(0.5, 1.0);
    }
    let pick = |v: &mut Vec<f32>, pct: f32| -> f32 {
        let k = ((pct.clamp(0.0, 100.0) / 100.0) * (v.len() - 1) as f32).round() as usize;
        *v.select_nth_unstable_by(k, f32::total_cmp).1
    };
    let lo = pick(&mut v, lo_pct);
    let hi = pick(&mut v, hi_pct);
    let width = (hi - lo).max(1.0);
    WindowLevel::new(lo + width / 2.0, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_the_radiology_standards() {
        assert_eq!(WindowPreset::Lung.window(), WindowLevel { center: -600.0, width: 1500.0 });
        assert_eq!(WindowPreset::Mediastinum.window(), WindowLevel { center: 50.0, width: 350.0 });
        assert_eq!(WindowPreset::Bone.window(), WindowLevel { center: 500.0, width: 2000.0 });
        assert_eq!(WindowPreset::from_name("Lung"), Some(WindowPreset::Lung));
    }

    #[test]
    fn linear_voi_function_matches_dicom() {
        let w = WindowLevel::new(40.0, 400.0);
        // Bounds from PS3.3 C.11.2.1.2.1: x <= c - 0.5 - (w-1)/2 → 0; x > c - 0.5 + (w-1)/2 → max.
        assert_eq!(w.to_u8(40.0 - 0.5 - 199.5), 0);
        assert_eq!(w.to_u8(40.0 - 0.5 + 199.5 + 0.01), 255);
        assert_eq!(w.to_u8(39.5), 128);
        assert_eq!(w.to_u8(-3000.0), 0);
    }

    #[test]
    fn auto_window_spans_percentiles() {
        let values: Vec<f32> = (0..=100).map(|i| i as f32).collect();
        let w = auto_window(&values, 10.0, 90.0);
        assert_eq!(w.center, 50.0);
        assert_eq!(w.width, 80.0);
        // NaN is ignored, a constant image still gets a usable width.
        let w = auto_window(&[f32::NAN, 7.0, 7.0], 1.0, 99.0);
        assert_eq!(w.width, 1.0);
    }
}
