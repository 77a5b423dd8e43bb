//! Saving reviewed masks: never over the original, always a new versioned file beside it, written
//! atomically; and the exports (PNG 0/255 — the papers' mask format — and NIfTI label maps).
//!
//! Names: `masks/18.png` gets `masks/18.rev2.png`, then `18.rev3.png`, …; `seg.nii.gz` gets
//! `seg.rev2.nii.gz`. The original counts as revision 1, so numbering starts at 2. A raster original in
//! another format (JPEG, BMP, TIFF) gets PNG revisions: lossy JPEG cannot hold a label map.

use std::path::{Path, PathBuf};

use crate::imaging::{LabelSelector, Mask, Volume};
use crate::io::{nifti::write_nifti_labels, raster::write_png_u8, LoadError};

/// The base name (without extension and without any `.revN`) and the extension revisions use.
fn base_and_ext(original: &Path) -> (String, &'static str) {
    let name = original.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let (stem, ext) = if lower.ends_with(".nii.gz") {
        (&name[..name.len() - 7], ".nii.gz")
    } else if lower.ends_with(".nii") {
        (&name[..name.len() - 4], ".nii")
    } else {
        match name.rfind('.') {
            Some(i) if i > 0 => (&name[..i], ".png"),
            _ => (name.as_str(), ".png"),
        }
    };
    let stem = match revision_suffix(stem) {
        Some((base, _)) => base,
        None => stem,
    };
    (stem.to_string(), ext)
}

/// `("18", 3)` for `"18.rev3"`.
fn revision_suffix(stem: &str) -> Option<(&str, u32)> {
    let i = stem.rfind(".rev")?;
    let digits = &stem[i + 4..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((&stem[..i], digits.parse().ok()?))
}

/// True for names like `18.rev2.png` or `seg.rev10.nii.gz` (queue scans skip these).
pub fn is_revision_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let stem = if let Some(s) = lower.strip_suffix(".nii.gz") {
        s
    } else {
        match lower.rfind('.') {
            Some(i) => &lower[..i],
            None => return false,
        }
    };
    revision_suffix(stem).is_some()
}

/// The path of revision `n` of `original`.
pub fn revision_path(original: &Path, n: u32) -> PathBuf {
    let (base, ext) = base_and_ext(original);
    original.with_file_name(format!("{base}.rev{n}{ext}"))
}

/// The revisions of `original` that exist beside it, ascending.
pub fn existing_revisions(original: &Path) -> Vec<(u32, PathBuf)> {
    let (base, ext) = base_and_ext(original);
    let dir = match original.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!("{base}.rev");
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let digits = name.strip_prefix(&prefix)?.strip_suffix(ext)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((digits.parse().ok()?, entry.path()))
        })
        .collect();
    out.sort();
    out
}

/// The path the next revision should take: one past the highest existing, starting at 2.
pub fn next_revision_path(original: &Path) -> PathBuf {
    let n = existing_revisions(original).last().map_or(2, |(n, _)| n + 1).max(2);
    revision_path(original, n)
}

/// The newest revision beside `original`, if any.
pub fn latest_revision(original: &Path) -> Option<PathBuf> {
    existing_revisions(original).pop().map(|(_, p)| p)
}

/// Writes a label map to `path`, atomically, in the format its name says: `.nii`/`.nii.gz` as a NIfTI
/// label map on `like`'s geometry; `.png` as 0/255 when the mask is binary, else as grey label values
/// (read back as labels by `io::load_mask`). Refuses ever to write over `protect` (the original).
pub fn write_mask(path: &Path, mask: &Mask, like: &Volume, protect: &Path) -> Result<(), LoadError> {
    if same_file(path, protect) {
        return Err(LoadError::new(path, "refusing to overwrite the original mask"));
    }
    let name = crate::io::lower_name(path);
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        return write_nifti_labels(path, mask, like);
    }
    if !name.ends_with(".png") {
        return Err(LoadError::new(path, "masks are saved as .png, .nii or .nii.gz"));
    }
    let [z, h, w] = mask.dims();
    if z != 1 {
        return Err(LoadError::new(
            path,
            format!("a PNG holds one slice but this mask has {z}; save it as .nii.gz"),
        ));
    }
    let max = mask.labels().iter().copied().max().unwrap_or(0);
    let grey: Vec<u8> = if max <= 1 {
        mask.labels().iter().map(|&l| if l > 0 { 255 } else { 0 }).collect()
    } else if max < 128 {
        mask.labels().iter().map(|&l| l as u8).collect()
    } else {
        return Err(LoadError::new(
            path,
            format!("label {max} does not fit a PNG label mask (at most 127); use .nii.gz"),
        ));
    };
    write_png_u8(path, w as u32, h as u32, &grey)
}

/// Exports slice `z` of a mask as PNG 0/255 (pixels matching `sel` are 255).
pub fn export_png_binary(path: &Path, mask: &Mask, z: usize, sel: LabelSelector) -> Result<(), LoadError> {
    let [d, h, w] = mask.dims();
    if z >= d {
        return Err(LoadError::new(path, format!("slice {z} is out of range (the mask has {d})")));
    }
    let grey: Vec<u8> = mask.slice(z).iter().map(|&l| if sel.matches(l) { 255 } else { 0 }).collect();
    write_png_u8(path, w as u32, h as u32, &grey)
}

/// Exports a mask as a NIfTI label map on `like`'s geometry.
pub fn export_nifti(path: &Path, mask: &Mask, like: &Volume) -> Result<(), LoadError> {
    write_nifti_labels(path, mask, like)
}

fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_names() {
        assert_eq!(revision_path(Path::new("m/18.png"), 2), Path::new("m/18.rev2.png"));
        assert_eq!(revision_path(Path::new("m/18.rev4.png"), 5), Path::new("m/18.rev5.png"));
        assert_eq!(revision_path(Path::new("m/a.b.jpg"), 2), Path::new("m/a.b.rev2.png"));
        assert_eq!(revision_path(Path::new("seg.nii.gz"), 3), Path::new("seg.rev3.nii.gz"));
        assert!(is_revision_name("18.rev2.png"));
        assert!(is_revision_name("seg.rev12.nii.gz"));
        assert!(!is_revision_name("18.png"));
        assert!(!is_revision_name("18.review.png"));
    }
}
