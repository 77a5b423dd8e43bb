//! Loading and writing studies, masks and arrays.
//!
//! Everything a user can point radlens at comes in through [`load_study`] or [`load_mask`]; every bad
//! file comes back as one [`LoadError`] line naming the file and the reason, never a panic.

mod atomic;
pub mod dataset;
pub mod demo;
pub mod dicom;
mod error;
pub mod heatmap;
pub mod mask;
pub mod nifti;
pub mod npy;
pub mod raster;
pub mod series;

use std::path::Path;

use serde::Serialize;

pub use atomic::write_atomic;
pub use error::LoadError;
pub use mask::load_mask;

use crate::imaging::Volume;

/// One series found while scanning a path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesInfo {
    pub uid: String,
    pub description: String,
    pub slice_count: usize,
    pub modality: String,
}

/// A loaded study: the volume, every series found beside it, and non-fatal warnings (e.g. non-uniform
/// slice spacing) for the UI and CLI to show.
#[derive(Debug, Clone)]
pub struct Study {
    pub volume: Volume,
    pub series: Vec<SeriesInfo>,
    pub warnings: Vec<String>,
}

/// How to load a study.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// With several DICOM series in one folder, the one to load; default: the one with most slices.
    pub series_uid: Option<String>,
}

/// The kinds of file radlens reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    DicomFolder,
    Dicom,
    Nifti,
    Raster,
}

/// Decides how to read `path`: folders are DICOM series; files by extension, else by the DICOM magic.
pub fn detect_kind(path: &Path) -> Result<FileKind, LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| LoadError::io(path, e))?;
    if meta.is_dir() {
        return Ok(FileKind::DicomFolder);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        return Ok(FileKind::Nifti);
    }
    if raster::is_raster_name(&name) {
        return Ok(FileKind::Raster);
    }
    if name.ends_with(".dcm") || name.ends_with(".dicom") || dicom::has_dicom_magic(path) {
        return Ok(FileKind::Dicom);
    }
    Err(LoadError::new(
        path,
        "not a study radlens can read (expected a DICOM file or folder, .nii/.nii.gz, PNG, BMP, JPEG or TIFF)",
    ))
}

/// Loads any supported study into a [`Volume`] in display orientation and slice order.
pub fn load_study(path: &Path, opts: &LoadOptions) -> Result<Study, LoadError> {
    match detect_kind(path)? {
        FileKind::DicomFolder => series::load_series_folder(path, opts),
        FileKind::Dicom => dicom::load_dicom_file(path),
        FileKind::Nifti => {
            nifti::load_nifti(path).map(|volume| Study { volume, series: vec![], warnings: vec![] })
        }
        FileKind::Raster => {
            raster::load_raster(path).map(|volume| Study { volume, series: vec![], warnings: vec![] })
        }
    }
}

/// `path` with its (possibly double, like `.nii.gz`) extension lower-cased, for dispatch on output names.
pub fn lower_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}
