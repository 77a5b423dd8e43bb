use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::{fmt_num, CliError};
use crate::imaging::LabelSelector;
use crate::io::{load_mask, lower_name, nifti, LoadError};
use crate::metrics::mask_scores;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Predicted mask: PNG/BMP (0/255 or 0/1, or palette/index labels) or a NIfTI label map.
    #[arg(long)]
    pub pred: PathBuf,
    /// Ground-truth mask, same formats, same grid as the prediction.
    #[arg(long)]
    pub gt: PathBuf,
    /// Score only this label (default: any label > 0 is foreground).
    #[arg(long)]
    pub label: Option<u16>,
    /// Voxel spacing in mm as Z,Y,X (default: from the NIfTI header of --gt, else 1 mm, reported as assumed).
    #[arg(long, value_parser = parse_spacing)]
    pub spacing: Option<[f64; 3]>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_spacing(s: &str) -> Result<[f64; 3], String> {
    let parts: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>().map_err(|_| format!("'{p}' is not a number")))
        .collect::<Result<_, _>>()?;
    match parts[..] {
        [z, y, x] if parts.iter().all(|v| v.is_finite() && *v > 0.0) => Ok([z, y, x]),
        _ => Err("expected three positive numbers Z,Y,X in mm, e.g. 2.5,0.7,0.7".into()),
    }
}

fn is_nifti(path: &Path) -> bool {
    let n = lower_name(path);
    n.ends_with(".nii") || n.ends_with(".nii.gz")
}

pub fn run(args: &MetricsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let pred = load_mask(&args.pred)?;
    let gt = load_mask(&args.gt)?;
    if pred.dims() != gt.dims() {
        let [pz, py, px] = pred.dims();
        let [gz, gy, gx] = gt.dims();
        return Err(LoadError::new(
            &args.pred,
            format!("prediction grid {pz} x {py} x {px} differs from the ground truth's {gz} x {gy} x {gx}"),
        )
        .into());
    }
    let (spacing, assumed) = match args.spacing {
        Some(s) => (s, false),
        None if is_nifti(&args.gt) => (nifti::load_nifti(&args.gt)?.spacing_mm, false),
        None => ([1.0; 3], true),
    };
    let sel = args.label.map_or(LabelSelector::Any, LabelSelector::Label);
    let scores =
        mask_scores(&pred, &gt, sel, spacing).map_err(|e| LoadError::new(&args.pred, e.to_string()))?;
    let pred_voxels = pred.count(sel);
    let gt_voxels = gt.count(sel);
    if args.json {
        let mut obj = serde_json::to_value(scores).map_err(|e| CliError::Failed(e.to_string()))?;
        if let Some(map) = obj.as_object_mut() {
            map.insert("spacing_mm".into(), json!(spacing));
            map.insert("spacing_assumed".into(), json!(assumed));
            map.insert("pred_voxels".into(), json!(pred_voxels));
            map.insert("gt_voxels".into(), json!(gt_voxels));
            map.insert("label".into(), json!(args.label));
        }
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&obj).map_err(|e| CliError::Failed(e.to_string()))?
        )?;
    } else {
        let opt = |v: Option<f64>| v.map_or("undefined (one mask is empty)".to_string(), fmt_num);
        writeln!(out, "prediction   {} ({pred_voxels} voxels)", args.pred.display())?;
        writeln!(out, "ground truth {} ({gt_voxels} voxels)", args.gt.display())?;
        writeln!(
            out,
            "spacing (mm) {} x {} x {}{}",
            fmt_num(spacing[0]),
            fmt_num(spacing[1]),
            fmt_num(spacing[2]),
            if assumed { "  (assumed)" } else { "" }
        )?;
        writeln!(out, "dice         {}", fmt_num(scores.dice))?;
        writeln!(out, "iou          {}", fmt_num(scores.iou))?;
        writeln!(out, "precision    {}", fmt_num(scores.precision))?;
        writeln!(out, "recall       {}", fmt_num(scores.recall))?;
        writeln!(out, "specificity  {}", fmt_num(scores.specificity))?;
        writeln!(out, "accuracy     {}", fmt_num(scores.accuracy))?;
        writeln!(out, "hd_mm        {}", opt(scores.hd_mm))?;
        writeln!(out, "hd95_mm      {}", opt(scores.hd95_mm))?;
        writeln!(out, "assd_mm      {}", opt(scores.assd_mm))?;
    }
    Ok(())
}
