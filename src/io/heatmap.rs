//! Heatmaps and predicted masks loaded onto (or saved from) an open study.
//!
//! A map lies on the study's grid in one of two ways: the whole volume (dims equal the volume's
//! `[z, y, x]`), or one slice (`[1, y, x]` with the volume's in-plane size; the caller says which slice it
//! belongs to). Anything else is refused with one line naming the file and both shapes.
//!
//! Formats read ([`load_heatmap`]):
//! - `.npy` float32/float64, shape (H, W), (1, H, W) or (Z, H, W), C order — what researchers' scripts
//!   and `radlens explain` write. Values are kept as they are (signed maps stay signed).
//! - `.nii` / `.nii.gz`, reoriented to display orientation exactly as the study loader does, so a map
//!   written by another tool on the study's NIfTI grid lines up.
//! - 8- or 16-bit grey PNG (also BMP/TIFF): values scaled to 0..1 by full scale (255 or 65535). A colour
//!   image (e.g. an already jet-coloured map) is refused: its colours cannot be turned back into values.
//!
//! Formats written: heatmaps as float32 `.npy` or float32 NIfTI carrying the study's geometry
//! ([`save_heatmap`]); predicted masks as 8-bit PNG 0/255 (the papers' format, one slice) or a NIfTI
//! label map ([`save_mask`]). Every write is atomic.

use std::path::Path;

use image::DynamicImage;

use super::raster::decode_image;
use super::{lower_name, mask::load_mask, nifti, npy, raster, LoadError};
use crate::imaging::{Affine, Mask, Unit, Volume};

/// A heatmap on a study's grid: `values` in (z, y, x) C order with `dims` `[z, y, x]`; `z == 1` for a
/// single-slice map.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapData {
    pub values: Vec<f32>,
    pub dims: [usize; 3],
}

impl HeatmapData {
    /// A map from values and dims; `None` when the lengths disagree.
    pub fn new(values: Vec<f32>, dims: [usize; 3]) -> Option<Self> {
        (dims.iter().product::<usize>() == values.len()).then_some(HeatmapData { values, dims })
    }

    /// True when the map covers one slice (`dims[0] == 1`).
    pub fn is_single_slice(&self) -> bool {
        self.dims[0] == 1
    }

    /// The values of slice `z` (row-major H×W), if it exists.
    pub fn slice(&self, z: usize) -> Option<&[f32]> {
        let n = self.dims[1] * self.dims[2];
        self.values.get(z * n..(z + 1) * n)
    }
}

/// How a map's grid fits a study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridFit {
    /// One value per voxel of the volume.
    Volume,
    /// One slice with the volume's in-plane size (the caller places it on a slice).
    Slice,
}

/// Checks that `dims` (`[z, y, x]`) of something read from `path` lie on `volume`'s grid: the whole
/// volume, or one slice of it. `what` names the thing in the message ("heatmap", "mask").
pub fn check_grid(dims: [usize; 3], volume: &Volume, path: &Path, what: &str) -> Result<GridFit, LoadError> {
    let [vz, vy, vx] = volume.dims();
    if dims == [vz, vy, vx] {
        return Ok(GridFit::Volume);
    }
    if dims == [1, vy, vx] {
        return Ok(GridFit::Slice);
    }
    let [z, y, x] = dims;
    let reason = if vz == 1 {
        format!("{what} is {x} x {y} x {z} but the study is {vx} x {vy} (width x height)")
    } else {
        format!(
            "{what} is {x} x {y} x {z} but the study is {vx} x {vy} x {vz} (x by y by z; one slice of {vx} x {vy} also fits)"
        )
    };
    Err(LoadError::new(path, reason))
}

/// Reads a heatmap file (see the module docs for formats) without checking it against a study.
pub fn read_heatmap(path: &Path) -> Result<HeatmapData, LoadError> {
    let name = lower_name(path);
    if name.ends_with(".npy") {
        let (values, shape) = npy::read_npy_f32(path)?;
        let dims = match shape.as_slice() {
            [h, w] => [1, *h, *w],
            [z, h, w] => [*z, *h, *w],
            other => {
                return Err(LoadError::new(
                    path,
                    format!("heatmap array has shape {other:?}; expected (H, W) or (Z, H, W)"),
                ))
            }
        };
        if dims.contains(&0) {
            return Err(LoadError::new(path, format!("heatmap array is empty (shape {shape:?})")));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(LoadError::new(
                path,
                format!("heatmap value {i} is {}: values must be finite", values[i]),
            ));
        }
        return HeatmapData::new(values, dims)
            .ok_or_else(|| LoadError::new(path, "heatmap array size does not match its shape"));
    }
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        let v = nifti::load_nifti(path)?;
        let dims = v.dims();
        return Ok(HeatmapData { values: v.into_data(), dims });
    }
    if raster::is_raster_name(&name) {
        return read_raster_heatmap(path);
    }
    Err(LoadError::new(path, "not a heatmap radlens can read (expected .npy, .nii/.nii.gz or a grey PNG)"))
}

/// Grey images → values in 0..1 by full scale.
fn read_raster_heatmap(path: &Path) -> Result<HeatmapData, LoadError> {
    let (img, _) = decode_image(path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let grey_or_refuse = |raw: &[u16], channels: usize, full: f32| -> Result<Vec<f32>, LoadError> {
        if raw.chunks_exact(channels).any(|p| p[0] != p[1] || p[1] != p[2]) {
            return Err(LoadError::new(
                path,
                "colour image: a heatmap must be a grey PNG (its colours cannot be turned back into values)",
            ));
        }
        Ok(raw.chunks_exact(channels).map(|p| p[0] as f32 / full).collect())
    };
    let values = match img {
        DynamicImage::ImageLuma8(b) => b.as_raw().iter().map(|&v| v as f32 / 255.0).collect(),
        DynamicImage::ImageLumaA8(b) => b.as_raw().chunks_exact(2).map(|p| p[0] as f32 / 255.0).collect(),
        DynamicImage::ImageLuma16(b) => b.as_raw().iter().map(|&v| v as f32 / 65535.0).collect(),
        DynamicImage::ImageLumaA16(b) => b.as_raw().chunks_exact(2).map(|p| p[0] as f32 / 65535.0).collect(),
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgba16(_) => {
            grey_or_refuse(img.to_rgb16().as_raw(), 3, 65535.0)?
        }
        other => {
            let raw: Vec<u16> = other.to_rgb8().as_raw().iter().map(|&v| v as u16).collect();
            grey_or_refuse(&raw, 3, 255.0)?
        }
    };
    HeatmapData::new(values, [1, h, w])
        .ok_or_else(|| LoadError::new(path, "image size does not match its dimensions"))
}

/// Loads a heatmap onto an open study: reads it and checks its grid (whole volume or one slice).
pub fn load_heatmap(path: &Path, volume: &Volume) -> Result<(HeatmapData, GridFit), LoadError> {
    let map = read_heatmap(path)?;
    let fit = check_grid(map.dims, volume, path, "heatmap")?;
    Ok((map, fit))
}

/// Loads a mask or label map onto an open study (formats and label rules of [`load_mask`]): the whole
/// volume, or one slice of it.
pub fn load_mask_onto(path: &Path, volume: &Volume) -> Result<(Mask, GridFit), LoadError> {
    let mask = load_mask(path)?;
    let fit = check_grid(mask.dims(), volume, path, "mask")?;
    Ok((mask, fit))
}

/// `study`'s affine with its origin moved to slice `first`, after checking `depth` slices from there
/// exist.
fn placed_affine(
    study: &Volume,
    first: usize,
    depth: usize,
    path: &Path,
) -> Result<Option<Affine>, LoadError> {
    let vz = study.depth();
    if first + depth > vz {
        return Err(LoadError::new(
            path,
            format!("slices {first}..{} lie outside the study's {vz} slices", first + depth),
        ));
    }
    Ok(study.affine.map(|a| Affine { origin_lps: a.position(0.0, 0.0, first as f64), axes_lps: a.axes_lps }))
}

/// One slice of `study`'s geometry (slice `first`): same spacing, the affine placed on that slice. The
/// voxels are zero; only the geometry is meant.
fn slice_geometry(study: &Volume, first: usize, path: &Path) -> Result<Volume, LoadError> {
    let affine = placed_affine(study, first, 1, path)?;
    let [_, vy, vx] = study.dims();
    let mut like = Volume::new(vec![0.0; vy * vx], [1, vy, vx], study.spacing_mm)
        .map_err(|e| LoadError::new(path, e.to_string()))?;
    like.spacing_assumed = study.spacing_assumed;
    like.affine = affine;
    Ok(like)
}

/// Saves a heatmap lying on `study`'s grid: `.npy` float32 ((H, W) for one slice, (Z, H, W) for a
/// volume) or `.nii` / `.nii.gz` float32 with the study's geometry. `first_slice` is the study slice of
/// the map's first slice (0 for a whole-volume map); it places a single-slice map in NIfTI space.
pub fn save_heatmap(
    path: &Path,
    map: &HeatmapData,
    study: &Volume,
    first_slice: usize,
) -> Result<(), LoadError> {
    let fit = check_grid(map.dims, study, path, "heatmap")?;
    if map.values.len() != map.dims.iter().product::<usize>() {
        return Err(LoadError::new(path, "heatmap values do not match its dimensions"));
    }
    let first = if fit == GridFit::Volume { 0 } else { first_slice };
    let name = lower_name(path);
    if name.ends_with(".npy") {
        let [z, h, w] = map.dims;
        let shape: Vec<usize> = if z == 1 { vec![h, w] } else { vec![z, h, w] };
        return npy::write_npy_f32(path, &map.values, &shape);
    }
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        let affine = placed_affine(study, first, map.dims[0], path)?;
        let mut out = Volume::new(map.values.clone(), map.dims, study.spacing_mm)
            .map_err(|e| LoadError::new(path, format!("heatmap cannot be written: {e}")))?;
        out.affine = affine;
        out.spacing_assumed = study.spacing_assumed;
        out.unit = Unit::Raw;
        return nifti::write_nifti(path, &out);
    }
    Err(LoadError::new(path, "unknown heatmap format (use .npy, .nii or .nii.gz)"))
}

/// Saves a predicted mask lying on `study`'s grid: `.png` as 8-bit grey 0/255 (every non-zero label
/// becomes 255; one slice only) or `.nii` / `.nii.gz` as a label map with the study's geometry.
/// `first_slice` places a single-slice mask in NIfTI space (ignored for a whole-volume mask).
pub fn save_mask(path: &Path, mask: &Mask, study: &Volume, first_slice: usize) -> Result<(), LoadError> {
    let fit = check_grid(mask.dims(), study, path, "mask")?;
    let [z, h, w] = mask.dims();
    let name = lower_name(path);
    if name.ends_with(".png") {
        if z != 1 {
            return Err(LoadError::new(
                path,
                format!("a PNG holds one slice but the mask has {z}: save one slice, or use .nii / .nii.gz"),
            ));
        }
        let grey: Vec<u8> = mask.labels().iter().map(|&l| if l != 0 { 255 } else { 0 }).collect();
        return raster::write_png_u8(path, w as u32, h as u32, &grey);
    }
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        return match fit {
            GridFit::Volume => nifti::write_nifti_labels(path, mask, study),
            GridFit::Slice => {
                nifti::write_nifti_labels(path, mask, &slice_geometry(study, first_slice, path)?)
            }
        };
    }
    Err(LoadError::new(path, "unknown mask format (use .png, .nii or .nii.gz)"))
}
