//! `Volume`: one study as f32 voxels indexed (z, y, x), with the geometry and de-identified metadata
//! every other room needs.

use serde::Serialize;

use super::WindowLevel;

/// Volumes larger than this (as f32 voxels) are refused: 4 GiB.
pub const MAX_VOLUME_BYTES: u64 = 4 << 30;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VolumeError {
    #[error("volume has a zero dimension ({z} x {y} x {x})")]
    Empty { z: usize, y: usize, x: usize },
    #[error("volume of {z} x {y} x {x} voxels needs {bytes} bytes, over the 4 GiB limit")]
    TooLarge { z: usize, y: usize, x: usize, bytes: u64 },
    #[error("voxel buffer holds {got} values but the dimensions {z} x {y} x {x} need {expected}")]
    LengthMismatch { z: usize, y: usize, x: usize, expected: usize, got: usize },
    #[error("voxel {index} (z {z}, y {y}, x {x}) is {value}: not a finite number")]
    NonFinite { index: usize, z: usize, y: usize, x: usize, value: f32 },
    #[error("voxel spacing {0:?} mm is not positive and finite")]
    BadSpacing([f64; 3]),
}

/// Imaging modality, from DICOM (0008,0060) or inferred from the file kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Modality {
    /// Computed tomography: voxels are Hounsfield units once rescaled.
    CT,
    /// Projection radiography (CR, DX) — chest X-rays.
    XRay,
    MR,
    /// Anything else, with the DICOM code as given (or "OT" for plain images).
    Other(String),
}

impl Modality {
    pub fn from_dicom_code(code: &str) -> Self {
        match code.trim() {
            "CT" => Modality::CT,
            "CR" | "DX" | "DR" | "RG" => Modality::XRay,
            "MR" => Modality::MR,
            other if other.is_empty() => Modality::Other("OT".into()),
            other => Modality::Other(other.to_string()),
        }
    }

    /// Short code for display and JSON: "CT", "XR", "MR" or the DICOM code.
    pub fn code(&self) -> &str {
        match self {
            Modality::CT => "CT",
            Modality::XRay => "XR",
            Modality::MR => "MR",
            Modality::Other(s) => s,
        }
    }
}

/// What one voxel value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    /// Hounsfield units (CT after the modality rescale).
    #[serde(rename = "HU")]
    Hu,
    /// Stored values with no physical unit (X-ray, photographs, 8-bit exports).
    #[serde(rename = "raw")]
    Raw,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Hu => "HU",
            Unit::Raw => "raw",
        }
    }
}

/// Voxel index (x, y, z) → patient coordinates in mm, DICOM's LPS convention (+x patient left,
/// +y posterior, +z superior).
///
/// `columns[i]` is the patient-space step in mm for one voxel along index axis i (x, y, z).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Affine {
    pub origin_lps: [f64; 3],
    pub axes_lps: [[f64; 3]; 3],
}

impl Affine {
    /// Patient position (LPS, mm) of voxel (x, y, z).
    pub fn position(&self, x: f64, y: f64, z: f64) -> [f64; 3] {
        let mut p = self.origin_lps;
        for (i, idx) in [x, y, z].into_iter().enumerate() {
            for (k, pk) in p.iter_mut().enumerate() {
                *pk += self.axes_lps[i][k] * idx;
            }
        }
        p
    }

    /// The patient direction an index axis points to, as a letter pair (towards, away):
    /// e.g. ('L', 'R') for an axis that runs from the patient's right to their left.
    pub fn axis_letters(&self, axis: usize) -> (char, char) {
        let v = self.axes_lps[axis];
        let (k, _) =
            v.iter()
                .enumerate()
                .fold((0, 0.0f64), |best, (k, c)| if c.abs() > best.1 { (k, c.abs()) } else { best });
        let positive = v[k] >= 0.0;
        let (pos, neg) = match k {
            0 => ('L', 'R'),
            1 => ('P', 'A'),
            _ => ('S', 'I'),
        };
        if positive {
            (pos, neg)
        } else {
            (neg, pos)
        }
    }
}

/// De-identified metadata kept with a study. Patient name, patient ID, birth date, accession number,
/// institution and dates are deliberately absent: nothing here may identify a person, so all of it can
/// appear in logs, errors and exports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StudyMeta {
    pub series_uid: Option<String>,
    pub series_description: Option<String>,
    pub body_part: Option<String>,
    pub manufacturer: Option<String>,
    pub convolution_kernel: Option<String>,
    pub slice_thickness_mm: Option<f64>,
    pub kvp: Option<f64>,
    pub photometric: Option<String>,
    pub bits_stored: Option<u16>,
    pub transfer_syntax: Option<String>,
    /// Where the pixels came from: "dicom", "nifti", "png", ...
    pub source_format: String,
}

/// One study: f32 voxels indexed (z, y, x) in display orientation and slice order.
///
/// Invariants (checked by [`Volume::new`]): no zero dimension, `data.len() == z*y*x`, at most
/// [`MAX_VOLUME_BYTES`], every voxel finite, spacing positive.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    data: Vec<f32>,
    dims: [usize; 3],
    /// Voxel size in mm along (z, y, x).
    pub spacing_mm: [f64; 3],
    /// True when the file carried no spacing and 1 mm was assumed.
    pub spacing_assumed: bool,
    pub modality: Modality,
    pub unit: Unit,
    /// Index → patient (LPS) geometry, when the file defines it.
    pub affine: Option<Affine>,
    /// The window stored in the file (DICOM Window Center/Width), if any.
    pub header_window: Option<WindowLevel>,
    /// Voxels equal to this value (DICOM Pixel Padding Value, after rescale) lie outside the scanned
    /// field. They keep their value (so exports equal pydicom's), but display paints them black and
    /// statistics such as the auto-window skip them.
    pub padding_value: Option<f32>,
    pub meta: StudyMeta,
}

impl Volume {
    /// Checks that the dimensions are sane before a loader allocates `z*y*x` voxels.
    pub fn check_dims(dims: [usize; 3]) -> Result<(), VolumeError> {
        let [z, y, x] = dims;
        if z == 0 || y == 0 || x == 0 {
            return Err(VolumeError::Empty { z, y, x });
        }
        let bytes = (z as u64)
            .checked_mul(y as u64)
            .and_then(|v| v.checked_mul(x as u64))
            .and_then(|v| v.checked_mul(4))
            .unwrap_or(u64::MAX);
        if bytes > MAX_VOLUME_BYTES {
            return Err(VolumeError::TooLarge { z, y, x, bytes });
        }
        Ok(())
    }

    /// A volume with the given voxels (z, y, x order) and spacing; other fields take neutral defaults
    /// (raw unit, modality "OT", no geometry) for the loader to fill in.
    pub fn new(data: Vec<f32>, dims: [usize; 3], spacing_mm: [f64; 3]) -> Result<Self, VolumeError> {
        Self::check_dims(dims)?;
        let [z, y, x] = dims;
        let expected = z * y * x;
        if data.len() != expected {
            return Err(VolumeError::LengthMismatch { z, y, x, expected, got: data.len() });
        }
        if spacing_mm.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(VolumeError::BadSpacing(spacing_mm));
        }
        if let Some(index) = data.iter().position(|v| !v.is_finite()) {
            let (zz, rem) = (index / (y * x), index % (y * x));
            return Err(VolumeError::NonFinite { index, z: zz, y: rem / x, x: rem % x, value: data[index] });
        }
        Ok(Volume {
            data,
            dims,
            spacing_mm,
            spacing_assumed: false,
            modality: Modality::Other("OT".into()),
            unit: Unit::Raw,
            affine: None,
            header_window: None,
            padding_value: None,
            meta: StudyMeta::default(),
        })
    }

    /// (z, y, x)
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    pub fn depth(&self) -> usize {
        self.dims[0]
    }

    pub fn height(&self) -> usize {
        self.dims[1]
    }

    pub fn width(&self) -> usize {
        self.dims[2]
    }

    /// All voxels, z-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Slice z as a row-major (y, x) buffer.
    ///
    /// # Panics
    /// If `z >= depth()`; callers clamp slice indices from user input first.
    pub fn slice(&self, z: usize) -> &[f32] {
        let n = self.dims[1] * self.dims[2];
        &self.data[z * n..(z + 1) * n]
    }

    pub fn get(&self, z: usize, y: usize, x: usize) -> Option<f32> {
        let [d, h, w] = self.dims;
        (z < d && y < h && x < w).then(|| self.data[(z * h + y) * w + x])
    }

    /// (min, max) over all voxels.
    pub fn min_max(&self) -> (f32, f32) {
        self.data.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
    }

    /// The window a viewer opens with: the header's, else lung for CT, else a percentile auto-window.
    pub fn default_window(&self) -> WindowLevel {
        if let Some(w) = self.header_window {
            return w;
        }
        if self.unit == Unit::Hu {
            return super::WindowPreset::Lung.window();
        }
        match self.padding_value {
            Some(p) => {
                let inside: Vec<f32> = self.data.iter().copied().filter(|&v| v != p).collect();
                super::auto_window(&inside, 0.5, 99.5)
            }
            None => super::auto_window(&self.data, 0.5, 99.5),
        }
    }

    /// True when the voxel value marks padding outside the scanned field.
    pub fn is_padding(&self, v: f32) -> bool {
        self.padding_value == Some(v)
    }

    /// Patient-orientation letters at the (left, right, top, bottom) edges of an axial slice, if known.
    pub fn orientation_letters(&self) -> Option<[char; 4]> {
        let a = self.affine?;
        let (x_to, x_from) = a.axis_letters(0);
        let (y_to, y_from) = a.axis_letters(1);
        Some([x_from, x_to, y_from, y_to])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_length_and_finiteness() {
        assert!(matches!(
            Volume::new(vec![0.0; 5], [1, 2, 3], [1.0; 3]),
            Err(VolumeError::LengthMismatch { expected: 6, got: 5, .. })
        ));
        let mut data = vec![0.0; 6];
        data[4] = f32::NAN;
        match Volume::new(data, [1, 2, 3], [1.0; 3]) {
            Err(VolumeError::NonFinite { index: 4, z: 0, y: 1, x: 1, .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(Volume::new(vec![], [0, 2, 3], [1.0; 3]), Err(VolumeError::Empty { .. })));
        assert!(matches!(
            Volume::new(vec![0.0; 6], [1, 2, 3], [1.0, 0.0, 1.0]),
            Err(VolumeError::BadSpacing(_))
        ));
    }

    #[test]
    fn refuses_absurd_dimensions_before_allocating() {
        assert!(matches!(Volume::check_dims([2048, 1024, 1024]), Err(VolumeError::TooLarge { .. })));
        assert!(matches!(Volume::check_dims([usize::MAX, 2, 2]), Err(VolumeError::TooLarge { .. })));
        assert!(Volume::check_dims([1000, 512, 512]).is_ok());
    }

    #[test]
    fn slice_and_get_index_z_y_x() {
        let v = Volume::new((0..24).map(|i| i as f32).collect(), [2, 3, 4], [2.5, 0.7, 0.7]).unwrap();
        assert_eq!(v.slice(1)[0], 12.0);
        assert_eq!(v.get(1, 2, 3), Some(23.0));
        assert_eq!(v.get(2, 0, 0), None);
        assert_eq!(v.min_max(), (0.0, 23.0));
    }

    #[test]
    fn standard_axial_orientation_letters() {
        let mut v = Volume::new(vec![0.0; 4], [1, 2, 2], [1.0; 3]).unwrap();
        v.affine = Some(Affine {
            origin_lps: [0.0; 3],
            axes_lps: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        });
        // Radiological convention: patient's right on the image's left, anterior at the top.
        assert_eq!(v.orientation_letters(), Some(['R', 'L', 'A', 'P']));
        assert_eq!(v.affine.unwrap().position(1.0, 2.0, 3.0), [1.0, 2.0, 3.0]);
    }
}
