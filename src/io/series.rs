//! DICOM series folders: grouping by SeriesInstanceUID and slice ordering.
//!
//! Headers are read first (up to the pixel data) to group files into series and order the slices;
//! only the chosen series is decoded, on two threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::dicom::{decode_into, dot, open_object, scale, SliceHeader};
use super::{LoadError, LoadOptions, SeriesInfo, Study};
use crate::imaging::{Affine, Volume};

/// Where one slice lies, for ordering: its position along the slice normal (mm), if known, and its
/// InstanceNumber, if any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceKey {
    pub position_along_normal: Option<f64>,
    pub instance_number: Option<i64>,
}

/// What the slice order was based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBasis {
    /// ImagePositionPatient projected on the slice normal, ascending.
    Position,
    /// InstanceNumber, ascending (some slice had no usable position).
    InstanceNumber,
    /// Neither was available for every slice: file-name order is kept.
    FileOrder,
}

/// The order to stack slices in: ascending position along the normal when every slice has one, else
/// ascending InstanceNumber when every slice has one, else the given order. Ties keep the given order.
pub fn order_slices(keys: &[SliceKey]) -> (Vec<usize>, OrderBasis) {
    let mut idx: Vec<usize> = (0..keys.len()).collect();
    if keys.iter().all(|k| k.position_along_normal.is_some()) {
        idx.sort_by(|&a, &b| {
            keys[a]
                .position_along_normal
                .unwrap_or(0.0)
                .total_cmp(&keys[b].position_along_normal.unwrap_or(0.0))
        });
        (idx, OrderBasis::Position)
    } else if keys.iter().all(|k| k.instance_number.is_some()) {
        idx.sort_by_key(|&i| keys[i].instance_number.unwrap_or(0));
        (idx, OrderBasis::InstanceNumber)
    } else {
        (idx, OrderBasis::FileOrder)
    }
}

/// Slice spacing from sorted positions along the normal: the median of successive differences, and a
/// one-line warning when the differences vary by more than 1% or two slices share a position.
/// `None` when there are fewer than two slices or the median is zero.
pub fn spacing_from_positions(sorted: &[f64]) -> Option<(f64, Option<String>)> {
    if sorted.len() < 2 {
        return None;
    }
    let mut diffs: Vec<f64> = sorted.windows(2).map(|w| w[1] - w[0]).collect();
    diffs.sort_by(f64::total_cmp);
    let median = diffs[diffs.len() / 2];
    if median <= 1e-6 {
        return None;
    }
    let (lo, hi) = (diffs[0], diffs[diffs.len() - 1]);
    let duplicates = diffs.iter().filter(|d| d.abs() <= 1e-6 * median.max(1.0)).count();
    let warning = if duplicates > 0 {
        Some(format!(
            "{duplicates} slice(s) share a position with another; slice spacing {lo:.3} to {hi:.3} mm"
        ))
    } else if (hi - lo) > 0.01 * median {
        Some(format!("non-uniform slice spacing: {lo:.3} to {hi:.3} mm (median {median:.3} mm used)"))
    } else {
        None
    };
    Some((median, warning))
}

/// One readable image file in a folder.
struct Entry {
    path: PathBuf,
    header: SliceHeader,
}

/// Reads the headers of every image file in `path` (not recursive); files that are not DICOM images
/// (README, DICOMDIR, reports) are skipped. Returns the entries grouped by SeriesInstanceUID and the
/// number of DICOM files that could not be read.
fn scan(path: &Path) -> Result<(BTreeMap<String, Vec<Entry>>, usize), LoadError> {
    let dir = std::fs::read_dir(path).map_err(|e| LoadError::io(path, e))?;
    let mut files: Vec<PathBuf> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file() || t.is_symlink()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut groups: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut unreadable = 0;
    for file in files {
        let Ok(obj) = open_object(&file, true) else {
            // Counted only when it looked like DICOM: stray text files are expected in study folders.
            if super::dicom::has_dicom_magic(&file) {
                unreadable += 1;
            }
            continue;
        };
        // DICOMDIR, SR and other non-image objects have no Rows/Columns.
        let Ok(header) = SliceHeader::from_object(&obj, &file) else { continue };
        groups.entry(header.series_uid.clone()).or_default().push(Entry { path: file, header });
    }
    if groups.is_empty() {
        return Err(LoadError::new(path, "no readable DICOM image files in this folder"));
    }
    Ok((groups, unreadable))
}

fn infos(groups: &BTreeMap<String, Vec<Entry>>) -> Vec<SeriesInfo> {
    let mut out: Vec<SeriesInfo> = groups
        .values()
        .map(|entries| {
            let count = entries.iter().map(|e| e.header.frames.max(1)).sum();
            entries[0].header.series_info(count)
        })
        .collect();
    // Stable sort: equal counts stay in uid order, so the default choice is deterministic.
    out.sort_by(|a, b| b.slice_count.cmp(&a.slice_count));
    out
}

/// Lists the series in a folder (largest first) without decoding any pixels.
pub fn scan_folder(path: &Path) -> Result<Vec<SeriesInfo>, LoadError> {
    scan(path).map(|(groups, _)| infos(&groups))
}

/// Loads one series from a folder: `opts.series_uid`, else the one with most slices.
pub fn load_series_folder(path: &Path, opts: &LoadOptions) -> Result<Study, LoadError> {
    let (mut groups, unreadable) = scan(path)?;
    let series = infos(&groups);
    let uid = match &opts.series_uid {
        Some(uid) => {
            if !groups.contains_key(uid) {
                let available: Vec<String> =
                    series.iter().map(|s| format!("{} ({} slices)", s.uid, s.slice_count)).collect();
                return Err(LoadError::new(
                    path,
                    format!("no series with uid {uid} in this folder; available: {}", available.join(", ")),
                ));
            }
            uid.clone()
        }
        None => series[0].uid.clone(),
    };
    let entries = groups.remove(&uid).unwrap_or_default();
    let mut warnings = Vec::new();
    if unreadable > 0 {
        warnings.push(format!("skipped {unreadable} unreadable DICOM file(s) in {}", path.display()));
    }

    if entries.iter().any(|e| e.header.frames > 1) {
        if entries.len() == 1 {
            let mut study = super::dicom::load_dicom_file(&entries[0].path)?;
            study.series = series;
            study.warnings.extend(warnings);
            return Ok(study);
        }
        let multi = entries.iter().find(|e| e.header.frames > 1).map(|e| e.path.clone()).unwrap_or_default();
        return Err(LoadError::new(
            &multi,
            format!("series {uid} mixes a multi-frame file with other files; load the file on its own"),
        ));
    }

    let volume = load_entries(path, entries, &mut warnings)?;
    Ok(Study { volume, series, warnings })
}

/// Orders, checks and decodes the slices of one series.
fn load_entries(folder: &Path, entries: Vec<Entry>, warnings: &mut Vec<String>) -> Result<Volume, LoadError> {
    let first = &entries[0].header;
    let (rows, cols) = (first.rows, first.cols);
    if let Some(bad) = entries.iter().find(|e| (e.header.rows, e.header.cols) != (rows, cols)) {
        return Err(LoadError::new(
            &bad.path,
            format!(
                "slice is {} x {} but the rest of series {} is {rows} x {cols} (from {})",
                bad.header.rows,
                bad.header.cols,
                first.series_uid,
                file_name(&entries[0].path)
            ),
        ));
    }
    let normal = first.normal();
    let keys: Vec<SliceKey> = entries
        .iter()
        .map(|e| SliceKey {
            position_along_normal: normal.and_then(|n| e.header.position.map(|p| dot(p, n))),
            instance_number: e.header.instance_number,
        })
        .collect();
    let (order, basis) = order_slices(&keys);
    let entries: Vec<Entry> = {
        let mut slots: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
        order.iter().filter_map(|&i| slots[i].take()).collect()
    };
    let depth = entries.len();
    Volume::check_dims([depth, rows, cols]).map_err(|e| {
        LoadError::new(&entries[0].path, format!("image dimensions in the header are unusable: {e}"))
    })?;

    let sorted_positions: Vec<f64> = order.iter().filter_map(|&i| keys[i].position_along_normal).collect();
    let from_positions =
        if basis == OrderBasis::Position { spacing_from_positions(&sorted_positions) } else { None };
    let (slice_spacing, assumed) = match from_positions {
        Some((s, warning)) => {
            warnings.extend(warning);
            (s, false)
        }
        None => {
            if basis == OrderBasis::Position && depth > 1 {
                warnings.push("all slices share one position; slice spacing taken from the header".into());
            }
            if basis == OrderBasis::FileOrder && depth > 1 {
                warnings.push(
                    "slices have neither positions nor instance numbers: kept in file-name order".into(),
                );
            }
            let head = &entries[0].header;
            match head.spacing_between_slices.or(head.slice_thickness.filter(|t| t.is_finite() && *t > 0.0)) {
                Some(s) => (s, false),
                None => (1.0, true),
            }
        }
    };

    let slice_len = rows * cols;
    let mut data = vec![0f32; depth * slice_len];
    decode_parallel(&entries, &mut data, slice_len)?;

    let head = &entries[0].header;
    let mut volume = head.build_volume(data, depth, slice_spacing, assumed, folder)?;
    if let (Some(origin), Some(axes), Some(n)) = (head.position, head.in_plane_axes(), normal) {
        volume.affine =
            Some(Affine { origin_lps: origin, axes_lps: [axes[0], axes[1], scale(n, slice_spacing)] });
    }
    if entries.iter().any(|e| (e.header.slope, e.header.intercept) != (head.slope, head.intercept)) {
        // Each slice is rescaled with its own slope/intercept; only the padding value uses the first's.
        warnings.push("rescale slope/intercept differ between slices (each slice uses its own)".into());
    }
    Ok(volume)
}

/// Decodes slices into `data` on two threads (the work machines have two cores).
fn decode_parallel(entries: &[Entry], data: &mut [f32], slice_len: usize) -> Result<(), LoadError> {
    let decode_one = |entry: &Entry, out: &mut [f32]| -> Result<(), LoadError> {
        let obj = open_object(&entry.path, false)?;
        // Re-read the header from the full object: it is the one the pixels belong to.
        let header = SliceHeader::from_object(&obj, &entry.path)?;
        if header.frames > 1 || (header.rows, header.cols) != (entry.header.rows, entry.header.cols) {
            return Err(LoadError::new(&entry.path, "file changed while loading"));
        }
        decode_into(&obj, &header, &entry.path, out)
    };
    let half = entries.len().div_ceil(2);
    let (first_entries, second_entries) = entries.split_at(half);
    let (first_data, second_data) = data.split_at_mut(half * slice_len);
    let run = |list: &[Entry], buf: &mut [f32]| -> Result<(), LoadError> {
        for (entry, out) in list.iter().zip(buf.chunks_mut(slice_len)) {
            decode_one(entry, out)?;
        }
        Ok(())
    };
    if second_entries.is_empty() {
        return run(first_entries, first_data);
    }
    std::thread::scope(|s| {
        let other = s.spawn(|| run(second_entries, second_data));
        let mine = run(first_entries, first_data);
        let theirs = other
            .join()
            .unwrap_or_else(|_| Err(LoadError::new(&second_entries[0].path, "decoder thread crashed")));
        mine.and(theirs)
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// One series of a folder as a series picker shows it: what [`scan_folder`] gives, plus the image size
/// and spacing, still without decoding any pixels.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeriesSummary {
    pub info: SeriesInfo,
    /// Rows × columns of the series' first file.
    pub rows: usize,
    pub cols: usize,
    /// (row, column) pixel spacing in mm from the header, if it has one.
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// Slice spacing in mm: the median step between slice positions when every slice has one, else the
    /// header's SpacingBetweenSlices or SliceThickness; `None` for a single slice without either.
    pub slice_spacing_mm: Option<f64>,
    /// The first file of the series (file-name order), e.g. to show where it lives.
    pub first_file: PathBuf,
}

/// Lists the series in a folder with their size and spacing, largest first (ties in uid order, like
/// [`scan_folder`]), reading headers only.
pub fn list_series(folder: &Path) -> Result<Vec<SeriesSummary>, LoadError> {
    let (groups, _) = scan(folder)?;
    let mut out: Vec<SeriesSummary> = groups
        .values()
        .map(|entries| {
            let head = &entries[0].header;
            let count = entries.iter().map(|e| e.header.frames.max(1)).sum();
            let mut positions: Vec<f64> = match head.normal() {
                Some(n) => entries.iter().filter_map(|e| e.header.position.map(|p| dot(p, n))).collect(),
                None => Vec::new(),
            };
            positions.sort_by(f64::total_cmp);
            let from_positions = if positions.len() == entries.len() {
                spacing_from_positions(&positions).map(|(s, _)| s)
            } else {
                None
            };
            let slice_spacing_mm = from_positions
                .or(head.spacing_between_slices)
                .or(head.slice_thickness)
                .filter(|s| s.is_finite() && *s > 0.0);
            SeriesSummary {
                info: head.series_info(count),
                rows: head.rows,
                cols: head.cols,
                pixel_spacing_mm: head.pixel_spacing,
                slice_spacing_mm,
                first_file: entries[0].path.clone(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.info.slice_count.cmp(&a.info.slice_count));
    Ok(out)
}
