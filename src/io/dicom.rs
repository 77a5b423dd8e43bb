//! Single DICOM files (single- and multi-frame): decoding, rescale to HU, MONOCHROME1, padding.
//!
//! Order of transforms (DICOM PS3.3 C.11): stored value → sign extension to Bits Stored → modality
//! rescale (`stored * slope + intercept`, computed in f64 then rounded to f32, exactly as pydicom's
//! `pixel_array * slope + intercept` followed by `astype(float32)`) → MONOCHROME1 inversion.
//! The VOI window is never applied to voxels; it travels as [`Volume::header_window`].
//!
//! MONOCHROME1 (low = bright) is turned into MONOCHROME2 so that the rest of radlens can assume
//! high = bright: each rescaled value `v` becomes `lo + hi - v`, where `lo..=hi` is the rescaled range
//! of the stored bit depth (e.g. 0..=4095 for 12-bit unsigned with the identity rescale). That keeps
//! values inside the same range, so the header window stays meaningful once its centre is mirrored the
//! same way (`c' = lo + hi - c`, width unchanged) and the Pixel Padding Value is mirrored too.
//!
//! Nothing that identifies a person (patient name/ID, birth date, accession number, institution, dates)
//! is read into [`StudyMeta`], warnings or errors.

use std::error::Error as StdError;
use std::path::Path;

use dicom::core::Tag;
use dicom::dictionary_std::tags;
use dicom::encoding::TransferSyntaxIndex;
use dicom::object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom::pixeldata::PixelDecoder;
use dicom::transfer_syntax::TransferSyntaxRegistry;

use super::{LoadError, SeriesInfo, Study};
use crate::imaging::{Affine, Modality, StudyMeta, Unit, Volume, WindowLevel};

/// True when the file has the "DICM" magic at byte 128.
pub fn has_dicom_magic(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return false };
    let mut magic = [0u8; 4];
    f.seek(SeekFrom::Start(128)).is_ok() && f.read_exact(&mut magic).is_ok() && &magic == b"DICM"
}

/// Loads one DICOM file. A multi-frame file gives one slice per frame, in file order.
pub fn load_dicom_file(path: &Path) -> Result<Study, LoadError> {
    let obj = open_object(path, false)?;
    let header = SliceHeader::from_object(&obj, path)?;
    let frames = header.frames;
    Volume::check_dims([frames, header.rows, header.cols])
        .map_err(|e| LoadError::new(path, format!("image dimensions in the header are unusable: {e}")))?;
    let mut data = vec![0f32; frames * header.rows * header.cols];
    decode_into(&obj, &header, path, &mut data)?;

    let (slice_spacing, slice_axis, z_assumed) = multi_frame_spacing(&obj, &header);
    let mut volume = header.build_volume(data, frames, slice_spacing, z_assumed, path)?;
    if let (Some(origin), Some(axes)) = (header.frame_origin(&obj), header.in_plane_axes()) {
        volume.affine = Some(Affine {
            origin_lps: origin,
            axes_lps: [axes[0], axes[1], scale(slice_axis, slice_spacing)],
        });
    }
    let series = vec![header.series_info(frames)];
    Ok(Study { volume, series, warnings: vec![] })
}

/// Opens a DICOM file, mapping every failure to one line naming the file. With `header_only`, stops
/// before the pixel data (for scanning folders).
pub(crate) fn open_object(path: &Path, header_only: bool) -> Result<DefaultDicomObject, LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| LoadError::io(path, e))?;
    if meta.is_dir() {
        return Err(LoadError::new(path, "is a folder, not a DICOM file"));
    }
    if meta.len() == 0 {
        return Err(LoadError::new(path, "empty file"));
    }
    let mut opts = OpenFileOptions::new();
    if header_only {
        opts = opts.read_until(tags::PIXEL_DATA);
    }
    opts.open_file(path).map_err(|e| {
        let chain = error_chain(&e);
        if !has_dicom_magic(path) {
            LoadError::new(path, "not a DICOM file (no DICM marker at byte 128)")
        } else if chain.to_lowercase().contains("transfer syntax") {
            LoadError::new(path, format!("unsupported transfer syntax: {chain}"))
        } else {
            LoadError::new(path, format!("truncated or corrupt DICOM file: {chain}"))
        }
    })
}

/// Everything radlens needs from one file's header, de-identified.
#[derive(Debug, Clone)]
pub(crate) struct SliceHeader {
    pub rows: usize,
    pub cols: usize,
    pub frames: usize,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub photometric: String,
    pub slope: f64,
    pub intercept: f64,
    pub rescale_type: Option<String>,
    pub modality_code: String,
    pub series_uid: String,
    pub series_description: String,
    pub instance_number: Option<i64>,
    pub position: Option<[f64; 3]>,
    pub orientation: Option<[f64; 6]>,
    /// (row spacing, column spacing) in mm.
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    pub spacing_between_slices: Option<f64>,
    pub window: Option<(f64, f64)>,
    /// Stored (not rescaled) padding value, already sign-corrected.
    pub padding_stored: Option<f64>,
    pub transfer_syntax: String,
    pub meta: StudyMeta,
}

impl SliceHeader {
    pub(crate) fn from_object(obj: &DefaultDicomObject, path: &Path) -> Result<Self, LoadError> {
        let ds: &InMemDicomObject = obj;
        let rows = uint(ds, tags::ROWS);
        let cols = uint(ds, tags::COLUMNS);
        let (Some(rows), Some(cols)) = (rows, cols) else {
            return Err(LoadError::new(path, "no Rows/Columns in the header: not an image"));
        };
        let frames = match text(ds, tags::NUMBER_OF_FRAMES) {
            None => 1,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| LoadError::new(path, format!("unreadable NumberOfFrames {s:?}")))?
                as usize,
        };
        let bits_allocated = uint(ds, tags::BITS_ALLOCATED).unwrap_or(16) as u16;
        let bits_stored = uint(ds, tags::BITS_STORED).map(|b| b as u16).unwrap_or(bits_allocated);
        let signed = uint(ds, tags::PIXEL_REPRESENTATION) == Some(1);
        let photometric = text(ds, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_else(|| "MONOCHROME2".into());

        let pixel_transform = functional_group_item(ds, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE);
        let rescale_src = pixel_transform.unwrap_or(ds);
        let slope =
            float(rescale_src, tags::RESCALE_SLOPE).or_else(|| float(ds, tags::RESCALE_SLOPE)).unwrap_or(1.0);
        let intercept = float(rescale_src, tags::RESCALE_INTERCEPT)
            .or_else(|| float(ds, tags::RESCALE_INTERCEPT))
            .unwrap_or(0.0);
        let rescale_type = text(rescale_src, tags::RESCALE_TYPE).or_else(|| text(ds, tags::RESCALE_TYPE));

        let measures = functional_group_item(ds, tags::PIXEL_MEASURES_SEQUENCE);
        let pixel_spacing = floats(ds, tags::PIXEL_SPACING)
            .or_else(|| measures.and_then(|m| floats(m, tags::PIXEL_SPACING)))
            .or_else(|| floats(ds, tags::IMAGER_PIXEL_SPACING))
            .filter(|v| v.len() >= 2 && v[..2].iter().all(|s| s.is_finite() && *s > 0.0))
            .map(|v| [v[0], v[1]]);
        let slice_thickness = float(ds, tags::SLICE_THICKNESS)
            .or_else(|| measures.and_then(|m| float(m, tags::SLICE_THICKNESS)));
        let spacing_between_slices = float(ds, tags::SPACING_BETWEEN_SLICES)
            .or_else(|| measures.and_then(|m| float(m, tags::SPACING_BETWEEN_SLICES)))
            .filter(|s| s.is_finite() && *s > 0.0);
        let orientation = floats(ds, tags::IMAGE_ORIENTATION_PATIENT)
            .or_else(|| {
                functional_group_item(ds, tags::PLANE_ORIENTATION_SEQUENCE)
                    .and_then(|p| floats(p, tags::IMAGE_ORIENTATION_PATIENT))
            })
            .filter(|v| v.len() == 6 && v.iter().all(|x| x.is_finite()))
            .map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]);
        let position = floats(ds, tags::IMAGE_POSITION_PATIENT)
            .filter(|v| v.len() == 3 && v.iter().all(|x| x.is_finite()))
            .map(|v| [v[0], v[1], v[2]]);

        let voi = functional_group_item(ds, tags::FRAME_VOILUT_SEQUENCE);
        let window_src = |tag| floats(ds, tag).or_else(|| voi.and_then(|v| floats(v, tag)));
        let window = match (window_src(tags::WINDOW_CENTER), window_src(tags::WINDOW_WIDTH)) {
            (Some(c), Some(w)) if !c.is_empty() && !w.is_empty() && c[0].is_finite() && w[0].is_finite() => {
                Some((c[0], w[0]))
            }
            _ => None,
        };
        // (0028,0120) is US or SS by Pixel Representation; implicit VR files often read it as US.
        let padding_stored = ds.get(tags::PIXEL_PADDING_VALUE).and_then(|e| e.to_int::<i64>().ok()).map(
            |v| if signed && bits_allocated == 16 && v > i16::MAX as i64 { v - 65536 } else { v } as f64,
        );

        let modality_code = text(ds, tags::MODALITY).unwrap_or_default();
        let series_uid = text(ds, tags::SERIES_INSTANCE_UID).unwrap_or_default();
        let series_description = text(ds, tags::SERIES_DESCRIPTION).unwrap_or_default();
        let transfer_syntax = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
        let meta = StudyMeta {
            series_uid: Some(series_uid.clone()).filter(|s| !s.is_empty()),
            series_description: Some(series_description.clone()).filter(|s| !s.is_empty()),
            body_part: text(ds, tags::BODY_PART_EXAMINED),
            manufacturer: text(ds, tags::MANUFACTURER),
            convolution_kernel: text(ds, tags::CONVOLUTION_KERNEL),
            slice_thickness_mm: slice_thickness,
            kvp: float(ds, tags::KVP),
            photometric: Some(photometric.clone()),
            bits_stored: Some(bits_stored),
            transfer_syntax: Some(transfer_syntax.clone()),
            source_format: "dicom".into(),
        };
        Ok(SliceHeader {
            rows: rows as usize,
            cols: cols as usize,
            frames,
            samples_per_pixel: uint(ds, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as u16,
            bits_allocated,
            bits_stored,
            signed,
            photometric,
            slope,
            intercept,
            rescale_type,
            modality_code,
            series_uid,
            series_description,
            instance_number: text(ds, tags::INSTANCE_NUMBER).and_then(|s| s.parse::<i64>().ok()),
            position,
            orientation,
            pixel_spacing,
            slice_thickness,
            spacing_between_slices,
            window,
            padding_stored,
            transfer_syntax,
            meta,
        })
    }

    pub(crate) fn modality(&self) -> Modality {
        Modality::from_dicom_code(&self.modality_code)
    }

    pub(crate) fn unit(&self) -> Unit {
        let hu_type = self.rescale_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("HU"));
        if self.modality() == Modality::CT || hu_type {
            Unit::Hu
        } else {
            Unit::Raw
        }
    }

    fn monochrome1(&self) -> bool {
        self.photometric.eq_ignore_ascii_case("MONOCHROME1")
    }

    /// `lo + hi` of the rescaled value range, for the MONOCHROME1 mirror.
    fn mirror_sum(&self) -> f64 {
        let bits = self.bits_stored.clamp(1, 32) as i32;
        let (lo, hi) = if self.signed {
            (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0)
        } else {
            (0.0, 2f64.powi(bits) - 1.0)
        };
        let (a, b) = (lo * self.slope + self.intercept, hi * self.slope + self.intercept);
        a + b
    }

    /// Stored value → the voxel value radlens keeps (rescale, then MONOCHROME1 mirror).
    pub(crate) fn to_voxel(&self, stored: f64) -> f32 {
        let v = (stored * self.slope + self.intercept) as f32;
        if self.monochrome1() {
            (self.mirror_sum() - v as f64) as f32
        } else {
            v
        }
    }

    pub(crate) fn header_window(&self) -> Option<WindowLevel> {
        let (c, w) = self.window?;
        let c = if self.monochrome1() { self.mirror_sum() - c } else { c };
        Some(WindowLevel::new(c as f32, w as f32))
    }

    /// Row direction × column spacing, column direction × row spacing (LPS).
    pub(crate) fn in_plane_axes(&self) -> Option<[[f64; 3]; 2]> {
        let o = self.orientation?;
        let [row_sp, col_sp] = self.pixel_spacing.unwrap_or([1.0, 1.0]);
        Some([[o[0] * col_sp, o[1] * col_sp, o[2] * col_sp], [o[3] * row_sp, o[4] * row_sp, o[5] * row_sp]])
    }

    /// Unit normal of the image plane (row cosine × column cosine).
    pub(crate) fn normal(&self) -> Option<[f64; 3]> {
        let o = self.orientation?;
        let n = cross([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        (len > 1e-6).then(|| [n[0] / len, n[1] / len, n[2] / len])
    }

    /// Position of the first frame: the top-level ImagePositionPatient, else the first per-frame one.
    fn frame_origin(&self, obj: &DefaultDicomObject) -> Option<[f64; 3]> {
        self.position.or_else(|| per_frame_positions(obj).and_then(|p| p.first().copied()))
    }

    pub(crate) fn series_info(&self, slice_count: usize) -> SeriesInfo {
        SeriesInfo {
            uid: self.series_uid.clone(),
            description: self.series_description.clone(),
            slice_count,
            modality: self.modality_code.clone(),
        }
    }

    /// The volume with everything from this header filled in, except the affine.
    pub(crate) fn build_volume(
        &self,
        data: Vec<f32>,
        depth: usize,
        slice_spacing: f64,
        slice_spacing_assumed: bool,
        path: &Path,
    ) -> Result<Volume, LoadError> {
        let [row_sp, col_sp] = self.pixel_spacing.unwrap_or([1.0, 1.0]);
        let mut volume = Volume::new(data, [depth, self.rows, self.cols], [slice_spacing, row_sp, col_sp])
            .map_err(|e| LoadError::new(path, format!("unusable image: {e}")))?;
        volume.spacing_assumed = self.pixel_spacing.is_none() || slice_spacing_assumed;
        volume.modality = self.modality();
        volume.unit = self.unit();
        volume.header_window = self.header_window();
        volume.padding_value = self.padding_stored.map(|p| self.to_voxel(p));
        volume.meta = self.meta.clone();
        Ok(volume)
    }
}

/// Decodes every frame of `obj` into `out` (frames × rows × cols voxels, already sized).
pub(crate) fn decode_into(
    obj: &DefaultDicomObject,
    header: &SliceHeader,
    path: &Path,
    out: &mut [f32],
) -> Result<(), LoadError> {
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(LoadError::new(path, "no pixel data in the file"));
    }
    if header.samples_per_pixel != 1 {
        return Err(LoadError::new(
            path,
            format!(
                "colour images ({} samples per pixel, {}) are not supported for DICOM",
                header.samples_per_pixel, header.photometric
            ),
        ));
    }
    if !matches!(header.bits_allocated, 1 | 8 | 16 | 32) {
        return Err(LoadError::new(path, format!("unsupported Bits Allocated {}", header.bits_allocated)));
    }
    let ts = &header.transfer_syntax;
    if TransferSyntaxRegistry.get(ts).is_none() {
        return Err(LoadError::new(
            path,
            format!("unsupported transfer syntax {ts} (unknown to this build)"),
        ));
    }
    // Decoders can panic on hostile input; a bad file must never take the viewer down.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
        .map_err(|_| LoadError::new(path, format!("pixel decoder crashed on {}", ts_label(ts))))?
        .map_err(|e| decode_error(path, ts, &e))?;
    let bytes = decoded.data();
    let n = out.len();
    let bytes_per_sample = match header.bits_allocated {
        1 | 8 => 1, // 1-bit data comes unpacked, one byte (0 or 255) a pixel
        b => b as usize / 8,
    };
    if bytes.len() < n * bytes_per_sample {
        return Err(LoadError::new(
            path,
            format!(
                "pixel data too short: {} bytes for {} frame(s) of {} x {} (truncated file?)",
                bytes.len(),
                header.frames,
                header.rows,
                header.cols
            ),
        ));
    }
    let shift = header.bits_allocated.saturating_sub(header.bits_stored) as u32;
    let sign_extend16 =
        |v: i16| if header.signed && shift > 0 && shift < 16 { (v << shift) >> shift } else { v };
    let sign_extend32 =
        |v: i32| if header.signed && shift > 0 && shift < 32 { (v << shift) >> shift } else { v };
    match (header.bits_allocated, header.signed) {
        (1, _) => fill(out, bytes.iter().map(|&b| if b != 0 { 1.0 } else { 0.0 }), header),
        (8, false) => fill(out, bytes.iter().map(|&b| b as f64), header),
        (8, true) => fill(out, bytes.iter().map(|&b| b as i8 as f64), header),
        (16, false) => {
            fill(out, bytes.chunks_exact(2).map(|c| u16::from_ne_bytes([c[0], c[1]]) as f64), header)
        }
        (16, true) => fill(
            out,
            bytes.chunks_exact(2).map(|c| sign_extend16(i16::from_ne_bytes([c[0], c[1]])) as f64),
            header,
        ),
        (32, false) => fill(
            out,
            bytes.chunks_exact(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as f64),
            header,
        ),
        _ => fill(
            out,
            bytes.chunks_exact(4).map(|c| sign_extend32(i32::from_ne_bytes([c[0], c[1], c[2], c[3]])) as f64),
            header,
        ),
    }
    Ok(())
}

fn fill(out: &mut [f32], stored: impl Iterator<Item = f64>, header: &SliceHeader) {
    for (o, s) in out.iter_mut().zip(stored) {
        *o = header.to_voxel(s);
    }
}

/// Spacing between frames of a multi-frame file (or the slice thickness of a single image), the
/// direction of the slice axis (unit vector) and whether the spacing was assumed.
fn multi_frame_spacing(obj: &DefaultDicomObject, header: &SliceHeader) -> (f64, [f64; 3], bool) {
    let normal = header.normal().unwrap_or([0.0, 0.0, 1.0]);
    if let Some(s) = header.spacing_between_slices {
        return (s, normal, false);
    }
    if header.frames > 1 {
        if let Some(pos) = per_frame_positions(obj).filter(|p| p.len() >= 2) {
            let along: Vec<f64> = pos.iter().map(|p| dot(*p, normal)).collect();
            let mut diffs: Vec<f64> = along.windows(2).map(|w| w[1] - w[0]).collect();
            diffs.sort_by(f64::total_cmp);
            let median = diffs[diffs.len() / 2];
            if median.abs() > 1e-6 {
                let dir = if median < 0.0 { normal.map(|c| -c) } else { normal };
                return (median.abs(), dir, false);
            }
        }
    }
    match header.slice_thickness.filter(|t| t.is_finite() && *t > 0.0) {
        Some(t) => (t, normal, false),
        None => (1.0, normal, true),
    }
}

/// ImagePositionPatient of every frame from PerFrameFunctionalGroupsSequence, when all have one.
fn per_frame_positions(obj: &DefaultDicomObject) -> Option<Vec<[f64; 3]>> {
    let items = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)?.items()?;
    items
        .iter()
        .map(|item| {
            let plane = item.get(tags::PLANE_POSITION_SEQUENCE)?.items()?.first()?;
            let v = floats(plane, tags::IMAGE_POSITION_PATIENT)?;
            (v.len() == 3).then(|| [v[0], v[1], v[2]])
        })
        .collect()
}

/// The first item of a functional-group macro (e.g. PixelMeasuresSequence) from the shared groups,
/// else from the first frame's groups.
fn functional_group_item(ds: &InMemDicomObject, macro_tag: Tag) -> Option<&InMemDicomObject> {
    [tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE]
        .into_iter()
        .find_map(|group| ds.get(group)?.items()?.first()?.get(macro_tag)?.items()?.first())
}

fn text(ds: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = ds.get(tag)?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

fn uint(ds: &InMemDicomObject, tag: Tag) -> Option<u32> {
    ds.get(tag)?.to_int::<u32>().ok()
}

fn float(ds: &InMemDicomObject, tag: Tag) -> Option<f64> {
    floats(ds, tag)?.first().copied().filter(|v| v.is_finite())
}

fn floats(ds: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    ds.get(tag)?.to_multi_float64().ok().filter(|v| !v.is_empty())
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn scale(v: [f64; 3], s: f64) -> [f64; 3] {
    v.map(|c| c * s)
}

/// "1.2.840.10008.1.2.4.51 (JPEG Extended (Process 2 & 4))".
fn ts_label(uid: &str) -> String {
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("{uid} ({})", ts.name()),
        None => uid.to_string(),
    }
}

/// The error and its causes on one line, "a: b: c", without repeating a cause already in the text.
pub(crate) fn error_chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn decode_error(path: &Path, ts: &str, err: &dicom::pixeldata::Error) -> LoadError {
    let chain = error_chain(err);
    let debug = format!("{err:?}");
    if debug.contains("SamplePrecision") || chain.contains("SamplePrecision") {
        return LoadError::new(
            path,
            format!(
                "unsupported transfer syntax {}: this build cannot decode 12-bit JPEG ({chain})",
                ts_label(ts)
            ),
        );
    }
    if chain.contains("Unsupported") || chain.contains("unsupported") {
        return LoadError::new(path, format!("unsupported transfer syntax {}: {chain}", ts_label(ts)));
    }
    LoadError::new(path, format!("could not decode pixel data ({}): {chain}", ts_label(ts)))
}
