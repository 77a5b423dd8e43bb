use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{fmt_num, CliError};
use crate::io::{load_study, LoadOptions, Study};

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A DICOM file or series folder, a NIfTI file (.nii, .nii.gz) or an image (PNG, BMP, JPEG, TIFF).
    pub study: PathBuf,
    /// With several series in a folder: the SeriesInstanceUID to load (default: the largest series).
    #[arg(long)]
    pub series: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &InfoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let study = load_study(&args.study, &LoadOptions { series_uid: args.series.clone() })?;
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&info_json(&study)).map_err(|e| CliError::Failed(e.to_string()))?
        )?;
    } else {
        write_table(&args.study, &study, out)?;
    }
    Ok(())
}

/// The `info --json` object. Keys are a promise to users' scripts: add, never rename.
pub fn info_json(study: &Study) -> serde_json::Value {
    let v = &study.volume;
    let (min, max) = v.min_max();
    let w = v.default_window();
    json!({
        "modality": v.modality.code(),
        "dims": v.dims(),
        "spacing_mm": v.spacing_mm,
        "spacing_assumed": v.spacing_assumed,
        "unit": v.unit.as_str(),
        "min": min,
        "max": max,
        "transfer_syntax": v.meta.transfer_syntax,
        "series": study.series.iter().map(|s| json!({
            "uid": s.uid,
            "description": s.description,
            "slice_count": s.slice_count,
            "modality": s.modality,
        })).collect::<Vec<_>>(),
        "source_format": v.meta.source_format,
        "default_window": {"center": w.center, "width": w.width},
        "header_window": v.header_window.map(|h| json!({"center": h.center, "width": h.width})),
        "padding_value": v.padding_value,
        "orientation": v.orientation_letters().map(|l| l.iter().collect::<String>()),
        "affine_lps": v.affine,
        "metadata": v.meta,
        "warnings": study.warnings,
    })
}

fn write_table(path: &std::path::Path, study: &Study, out: &mut dyn Write) -> std::io::Result<()> {
    let v = &study.volume;
    let [z, y, x] = v.dims();
    let [sz, sy, sx] = v.spacing_mm;
    let (min, max) = v.min_max();
    writeln!(out, "study          {}", path.display())?;
    writeln!(out, "format         {}", v.meta.source_format)?;
    writeln!(out, "modality       {}", v.modality.code())?;
    writeln!(out, "dims (z,y,x)   {z} x {y} x {x}")?;
    writeln!(
        out,
        "spacing (mm)   {} x {} x {}{}",
        fmt_num(sz),
        fmt_num(sy),
        fmt_num(sx),
        if v.spacing_assumed { "  (assumed: the file carries no spacing)" } else { "" }
    )?;
    writeln!(out, "unit           {}", v.unit.as_str())?;
    writeln!(out, "range          {} .. {}", fmt_num(min as f64), fmt_num(max as f64))?;
    let w = v.default_window();
    writeln!(out, "window         level {} width {}", fmt_num(w.center as f64), fmt_num(w.width as f64))?;
    if let Some(p) = v.padding_value {
        writeln!(out, "padding value  {} (outside the scanned field)", fmt_num(p as f64))?;
    }
    if let Some([l, r, t, b]) = v.orientation_letters() {
        writeln!(out, "orientation    left {l}, right {r}, top {t}, bottom {b}")?;
    }
    if let Some(ts) = &v.meta.transfer_syntax {
        writeln!(out, "transfer syntax {ts}")?;
    }
    if !study.series.is_empty() {
        writeln!(out, "series         {}", study.series.len())?;
        for s in &study.series {
            let mark = if v.meta.series_uid.as_deref() == Some(s.uid.as_str()) { "*" } else { " " };
            writeln!(out, "  {mark} {}  {} slices  {}  {}", s.uid, s.slice_count, s.modality, s.description)?;
        }
    }
    for w in &study.warnings {
        writeln!(out, "warning        {w}")?;
    }
    Ok(())
}
