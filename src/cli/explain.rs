use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{CliError, DeviceArg};
use crate::imaging::LabelSelector;
use crate::io::{load_mask, load_study, lower_name, npy, raster, LoadError, LoadOptions};
use crate::model::builtin_dir;
use crate::model::manifest::resolve_model;
use crate::pipeline::{ExplainJob, Job, JobOutput, TargetSpec};
use crate::report::overlay::overlay_rgb;
use crate::xai::methods::METHODS;
use crate::xai::superpixels::Segmentation;
use crate::xai::{Params, Target};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A built-in model's name, a model.toml, or a folder holding one.
    #[arg(long)]
    pub model: String,
    /// gradcam, gradcam++, xgradcam, layercam, hirescam, eigencam, scorecam, ablationcam, lime,
    /// kernelshap, occlusion, rise, lrp, ig, saliency or smoothgrad.
    #[arg(long)]
    pub method: String,
    /// The study (any format `radlens info` reads).
    pub study: PathBuf,
    /// The slice (z index, from 0); default: the middle slice.
    #[arg(long)]
    pub slice: Option<usize>,
    /// What to explain: a class name or index, or a region mask (.png / .npy on the study grid);
    /// default: the predicted mask (segmentation) or the top class (classification).
    #[arg(long)]
    pub target: Option<String>,
    /// CAM layer as a PyTorch module path (default: the manifest's cam_layer).
    #[arg(long)]
    pub layer: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Perturbation samples (LIME, KernelSHAP, RISE); default per method.
    #[arg(long)]
    pub samples: Option<usize>,
    /// Run stochastic methods with seeds seed..seed+R and report their stability.
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// The heatmap: float32 (H, W) on the study's grid, raw values (signed where the method is).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write a PNG: the map (jet, min-max scaled) at 50% over the windowed image.
    #[arg(long)]
    pub overlay: Option<PathBuf>,
    /// Also write the superpixels (perturbation methods) as float32 labels (H, W).
    #[arg(long)]
    pub superpixels: Option<PathBuf>,
    /// Superpixel algorithm for LIME and KernelSHAP: quickshift (lime_image's default), slic or
    /// felzenszwalb.
    #[arg(long, value_name = "ALGORITHM")]
    pub segmentation: Option<String>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
}

fn target_spec(arg: &Option<String>, h: usize, w: usize) -> Result<TargetSpec, CliError> {
    let Some(t) = arg else { return Ok(TargetSpec::Default) };
    let path = std::path::Path::new(t);
    let name = lower_name(path);
    if name.ends_with(".png") || name.ends_with(".bmp") || name.ends_with(".nii") || name.ends_with(".nii.gz")
    {
        let m = load_mask(path)?;
        if m.dims() != [1, h, w] {
            let [_, mh, mw] = m.dims();
            return Err(LoadError::new(
                path,
                format!("target mask is {mh} x {mw} but the slice is {h} x {w}"),
            )
            .into());
        }
        return Ok(TargetSpec::Mask(m.binary(LabelSelector::Any)));
    }
    if name.ends_with(".npy") {
        let (v, shape) = npy::read_npy_f32(path)?;
        if shape.iter().product::<usize>() != h * w {
            return Err(LoadError::new(
                path,
                format!("target mask has shape {shape:?}, the slice is {h} x {w}"),
            )
            .into());
        }
        return Ok(TargetSpec::Mask(v.iter().map(|&x| x > 0.0).collect()));
    }
    Ok(TargetSpec::Class(t.clone()))
}

pub fn run(args: &ExplainArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if !METHODS.contains(&args.method.as_str()) {
        return Err(CliError::BadInput(format!(
            "unknown method '{}' (one of: {})",
            args.method,
            METHODS.join(", ")
        )));
    }
    if !lower_name(&args.out).ends_with(".npy") {
        return Err(LoadError::new(&args.out, "the heatmap is written as .npy").into());
    }
    let manifest =
        resolve_model(&args.model, &builtin_dir()).map_err(|e| CliError::BadInput(e.to_string()))?;
    let study = load_study(&args.study, &LoadOptions::default())?;
    let volume = Arc::new(study.volume);
    let [depth, h, w] = volume.dims();
    let slice = args.slice.unwrap_or(depth / 2);
    if slice >= depth {
        return Err(LoadError::new(
            &args.study,
            format!("slice {slice} is out of range: the study has {depth} slices"),
        )
        .into());
    }
    let target = target_spec(&args.target, h, w)?;
    let segmentation = match &args.segmentation {
        Some(name) => Some(Segmentation::from_name(name).map_err(CliError::BadInput)?),
        None => None,
    };
    let params = Params {
        layer: args.layer.clone(),
        seed: args.seed,
        samples: args.samples,
        segmentation,
        ..Params::default()
    };
    let job = Job::Explain(ExplainJob {
        model: manifest,
        device: args.device.into(),
        volume: volume.clone(),
        slice,
        method: args.method.clone(),
        params,
        target,
        repeats: args.repeats,
    });
    let ex = match super::run_cli_job(&job)? {
        JobOutput::Explanation(e) => e,
        _ => return Err(CliError::Failed("the explain job returned something else".into())),
    };
    npy::write_npy_f32(&args.out, &ex.values, &[ex.height, ex.width])?;
    let (lo, hi) =
        ex.values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let target = match &ex.target {
        Target::Class(c) => format!("class {c}"),
        Target::Region { class, mask } => {
            format!("class {class} over {} pixels", mask.iter().filter(|&&b| b).count())
        }
        Target::Sum => "the whole output".into(),
    };
    writeln!(
        out,
        "{} on slice {} of {} (target: {target}): values {lo} .. {hi}",
        ex.method, ex.slice, ex.model_name
    )?;
    if let Some(r2) = ex.input_grid.extras.surrogate_r2 {
        match ex.input_grid.extras.samples_used {
            Some(n) => writeln!(out, "LIME surrogate R²: {r2:.3} ({n} samples)")?,
            None => writeln!(out, "LIME surrogate R²: {r2:.3}")?,
        }
    }
    if let Some(s) = ex.stability {
        writeln!(
            out,
            "stability over {} seeds: top-10% IoU {:.3}, Spearman {:.3}",
            s.repeats, s.top10_iou, s.spearman
        )?;
    }
    writeln!(out, "wrote {}", args.out.display())?;
    if let Some(path) = &args.overlay {
        let window = volume.default_window();
        let grey = window.apply_u8(volume.slice(ex.slice));
        raster::write_png_rgb(path, w as u32, h as u32, &overlay_rgb(&grey, &ex.values, 0.5))?;
        writeln!(out, "wrote {}", path.display())?;
    }
    if let Some(path) = &args.superpixels {
        match &ex.superpixels {
            Some(labels) => {
                let f: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
                npy::write_npy_f32(path, &f, &[h, w])?;
                writeln!(out, "wrote {}", path.display())?;
            }
            None => writeln!(out, "note: {} uses no superpixels; {} not written", ex.method, path.display())?,
        }
    }
    Ok(())
}
