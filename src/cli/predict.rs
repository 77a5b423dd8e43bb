use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{CliError, DeviceArg};
use crate::imaging::{Mask, Volume};
use crate::io::{load_study, lower_name, nifti, npy, raster, LoadError, LoadOptions};
use crate::model::manifest::resolve_model;
use crate::model::{builtin_dir, probabilities_to_labels, Task};
use crate::pipeline::{Job, JobOutput, PredictJob, Prediction};

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A built-in model's name, a model.toml, or a folder holding one.
    #[arg(long)]
    pub model: String,
    /// The study (any format `radlens info` reads).
    pub study: PathBuf,
    /// The slice (z index, from 0) to run on; default: the middle slice.
    #[arg(long, conflicts_with = "all_slices")]
    pub slice: Option<usize>,
    /// Run on every slice.
    #[arg(long)]
    pub all_slices: bool,
    /// Segmentation: `.npy` float32 probabilities ((H, W) for one slice, (Z, H, W) for all; a class axis
    /// after Z when the model has several classes), `.png` the 0/255 mask of one slice, `.nii`/`.nii.gz`
    /// a label volume. Classification: `.npy` float32 probabilities in manifest order (optional: the
    /// JSON object is always printed).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With several series in a folder: the SeriesInstanceUID to load.
    #[arg(long)]
    pub series: Option<String>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
}

pub fn run(args: &PredictArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let manifest =
        resolve_model(&args.model, &builtin_dir()).map_err(|e| CliError::BadInput(e.to_string()))?;
    let study = load_study(&args.study, &LoadOptions { series_uid: args.series.clone() })?;
    let volume = Arc::new(study.volume);
    let depth = volume.depth();
    let slices: Vec<usize> = if args.all_slices {
        (0..depth).collect()
    } else {
        let k = args.slice.unwrap_or(depth / 2);
        if k >= depth {
            return Err(LoadError::new(
                &args.study,
                format!("slice {k} is out of range: the study has {depth} slices"),
            )
            .into());
        }
        vec![k]
    };
    if let Some(path) = &args.out {
        let name = lower_name(path);
        if ![".npy", ".png", ".nii", ".nii.gz"].iter().any(|e| name.ends_with(e)) {
            return Err(
                LoadError::new(path, "unknown output format (use .npy, .png, .nii or .nii.gz)").into()
            );
        }
    }

    let job = Job::Predict(PredictJob {
        model: manifest,
        device: args.device.into(),
        volume: volume.clone(),
        slices,
    });
    let pred = match super::run_cli_job(&job)? {
        JobOutput::Prediction(p) => p,
        _ => return Err(CliError::Failed("the predict job returned something else".into())),
    };
    for n in &pred.notes {
        eprintln!("note: {n}");
    }
    match pred.task {
        Task::Classification => write_classification(&pred, args, out),
        Task::Segmentation => write_segmentation(&pred, &volume, args, out),
    }
}

fn write_classification(pred: &Prediction, args: &PredictArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let probs = &pred.probs[0];
    let mut obj = serde_json::Map::new();
    for (c, p) in pred.classes.iter().zip(probs) {
        obj.insert(c.clone(), serde_json::json!(p));
    }
    writeln!(out, "{}", serde_json::Value::Object(obj))?;
    if let Some(path) = &args.out {
        if !lower_name(path).ends_with(".npy") {
            return Err(LoadError::new(path, "a classifier's probabilities are written as .npy").into());
        }
        npy::write_npy_f32(path, probs, &[probs.len()])?;
    }
    Ok(())
}

fn write_segmentation(
    pred: &Prediction,
    volume: &Volume,
    args: &PredictArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let [_, h, w] = volume.dims();
    let classes = pred.classes.len();
    let n = pred.slices.len();
    let labels: Vec<u16> =
        pred.probs.iter().flat_map(|p| probabilities_to_labels(p, classes, pred.threshold)).collect();
    let fg = labels.iter().filter(|&&l| l > 0).count();
    writeln!(
        out,
        "{}: {n} slice(s), {fg} of {} pixels above {} ({:.2}%)",
        pred.model_name,
        labels.len(),
        pred.threshold,
        100.0 * fg as f64 / labels.len().max(1) as f64
    )?;
    let Some(path) = &args.out else { return Ok(()) };
    let name = lower_name(path);
    if name.ends_with(".npy") {
        let data: Vec<f32> = pred.probs.concat();
        let mut shape = Vec::new();
        if args.all_slices {
            shape.push(n);
        }
        if classes > 1 {
            shape.push(classes);
        }
        shape.extend([h, w]);
        npy::write_npy_f32(path, &data, &shape)?;
    } else if name.ends_with(".png") {
        if n != 1 {
            return Err(LoadError::new(
                path,
                "a PNG holds one slice: use --slice K, or .npy / .nii.gz for all slices",
            )
            .into());
        }
        let grey: Vec<u8> = labels.iter().map(|&l| if l > 0 { 255 } else { 0 }).collect();
        raster::write_png_u8(path, w as u32, h as u32, &grey)?;
    } else {
        let mask = Mask::new(labels, [n, h, w]).ok_or_else(|| CliError::Failed("label map size".into()))?;
        let like = slab(volume, &pred.slices);
        nifti::write_nifti_labels(path, &mask, &like)?;
    }
    writeln!(out, "wrote {}", path.display())?;
    Ok(())
}

/// The geometry of the predicted slices, for the NIfTI label map: the whole volume, or one slice with
/// its origin moved to that slice.
fn slab(volume: &Volume, slices: &[usize]) -> Volume {
    if slices.len() == volume.depth() {
        return volume.clone();
    }
    let z = slices[0];
    let [_, h, w] = volume.dims();
    let mut one = match Volume::new(volume.slice(z).to_vec(), [1, h, w], volume.spacing_mm) {
        Ok(v) => v,
        Err(_) => return volume.clone(),
    };
    one.spacing_assumed = volume.spacing_assumed;
    one.affine = volume.affine.map(|mut a| {
        a.origin_lps = a.position(0.0, 0.0, z as f64);
        a
    });
    one
}
