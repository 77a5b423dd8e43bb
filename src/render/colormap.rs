//! The colormaps of `shaders/slice.wgsl`, evaluated on the CPU for legends and figure exports (never for
//! per-frame recolouring of slices). The formulas are the shader's, so a legend shows the panel's colours.

/// Colormaps for the image (grey by default) and for heatmaps (jet by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Colormap {
    Grey,
    Jet,
    Inferno,
    Viridis,
}

impl Colormap {
    pub const ALL: [Colormap; 4] = [Colormap::Grey, Colormap::Jet, Colormap::Inferno, Colormap::Viridis];

    /// The shader's `colormap(which, t)` selector.
    pub fn shader_index(self) -> u32 {
        match self {
            Colormap::Grey => 0,
            Colormap::Jet => 1,
            Colormap::Inferno => 2,
            Colormap::Viridis => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Colormap::Grey => "grey",
            Colormap::Jet => "jet",
            Colormap::Inferno => "inferno",
            Colormap::Viridis => "viridis",
        }
    }

    /// RGB in 0..=1 for t in 0..=1 (clamped), as the shader computes it.
    pub fn rgb(self, t: f32) -> [f32; 3] {
        let x = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
        let clamp3 = |c: [f32; 3]| c.map(|v| v.clamp(0.0, 1.0));
        match self {
            Colormap::Grey => [x; 3],
            Colormap::Jet => clamp3([
                1.5 - (4.0 * x - 3.0).abs(),
                1.5 - (4.0 * x - 2.0).abs(),
                1.5 - (4.0 * x - 1.0).abs(),
            ]),
            Colormap::Inferno => clamp3(poly(x, &INFERNO)),
            Colormap::Viridis => clamp3(poly(x, &VIRIDIS)),
        }
    }

    /// 8-bit RGB, for legends and exported figures.
    pub fn rgb_u8(self, t: f32) -> [u8; 3] {
        self.rgb(t).map(|v| (v * 255.0).round() as u8)
    }
}

fn poly(x: f32, c: &[[f32; 3]; 7]) -> [f32; 3] {
    let mut out = [0.0f32; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let mut acc = c[6][k];
        for i in (0..6).rev() {
            acc = c[i][k] + x * acc;
        }
        *o = acc;
    }
    out
}

// Polynomial fits of matplotlib's maps (Matt Zucconi, CC0); the same numbers as shaders/slice.wgsl.
const INFERNO: [[f32; 3]; 7] = [
    [0.000_218_940_37, 0.001_651_004_6, -0.019_480_898],
    [0.106_513_42, 0.563_956_44, 3.932_712_4],
    [11.602_493, -3.972_854, -15.942_394],
    [-41.703_996, 17.436_399, 44.354_145],
    [77.162_94, -33.402_36, -81.807_31],
    [-71.319_43, 32.626_064, 73.209_52],
    [25.131_126, -12.242_669, -23.070_325],
];
const VIRIDIS: [[f32; 3]; 7] = [
    [0.277_727_33, 0.005_407_344_5, 0.334_099_8],
    [0.105_093_04, 1.404_613_5, 1.384_590_2],
    [-0.330_861_83, 0.214_847_56, 0.095_095_16],
    [-4.634_230_6, -5.799_101, -19.332_441],
    [6.228_27, 14.179_933, 56.690_55],
    [4.776_385, -13.745_145, -65.353_03],
    [-5.435_456, 4.645_852_6, 26.312_435],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colormaps_hit_their_known_end_points() {
        assert_eq!(Colormap::Grey.rgb_u8(0.25), [64, 64, 64]);
        assert_eq!(Colormap::Jet.rgb_u8(0.0), [0, 0, 128]);
        assert_eq!(Colormap::Jet.rgb_u8(0.5), [128, 255, 128]);
        assert_eq!(Colormap::Jet.rgb_u8(1.0), [128, 0, 0]);
        // matplotlib: viridis(0) = #440154, viridis(1) = #fde725; inferno(0) = #000004, inferno(1) = #fcffa4.
        let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| (*x as i32 - y as i32).abs() <= 6);
        assert!(
            close(Colormap::Viridis.rgb_u8(0.0), [0x44, 0x01, 0x54]),
            "{:?}",
            Colormap::Viridis.rgb_u8(0.0)
        );
        assert!(
            close(Colormap::Viridis.rgb_u8(1.0), [0xfd, 0xe7, 0x25]),
            "{:?}",
            Colormap::Viridis.rgb_u8(1.0)
        );
        assert!(
            close(Colormap::Inferno.rgb_u8(0.0), [0x00, 0x00, 0x04]),
            "{:?}",
            Colormap::Inferno.rgb_u8(0.0)
        );
        assert!(
            close(Colormap::Inferno.rgb_u8(1.0), [0xfc, 0xff, 0xa4]),
            "{:?}",
            Colormap::Inferno.rgb_u8(1.0)
        );
        assert_eq!(Colormap::Jet.rgb(f32::NAN), Colormap::Jet.rgb(0.0));
    }
}
