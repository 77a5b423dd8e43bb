use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::io::{load_study, lower_name, nifti, npy, LoadError, LoadOptions};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The study to export (any format `radlens info` reads).
    pub study: PathBuf,
    /// Output file: `.npy` (float32, shape Z×Y×X, HU for CT, raw values otherwise, in the viewer's
    /// orientation and slice order) or `.nii` / `.nii.gz` (float32 with the study's affine).
    #[arg(long)]
    pub out: PathBuf,
    /// With several series in a folder: the SeriesInstanceUID to export (default: the largest).
    #[arg(long)]
    pub series: Option<String>,
}

pub fn run(args: &ExportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let name = lower_name(&args.out);
    let is_npy = name.ends_with(".npy");
    let is_nifti = name.ends_with(".nii") || name.ends_with(".nii.gz");
    if !is_npy && !is_nifti {
        return Err(LoadError::new(&args.out, "unknown output format (use .npy, .nii or .nii.gz)").into());
    }
    let study = load_study(&args.study, &LoadOptions { series_uid: args.series.clone() })?;
    let v = &study.volume;
    if is_npy {
        npy::write_npy_f32(&args.out, v.data(), &v.dims())?;
    } else {
        nifti::write_nifti(&args.out, v)?;
    }
    let [z, y, x] = v.dims();
    writeln!(out, "wrote {} ({z} x {y} x {x}, {})", args.out.display(), v.unit.as_str())?;
    for w in &study.warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}
