//! `radlens eval`: run models and XAI methods over a dataset split and score them — segmentation
//! scores, classification scores, each method's map as a mask against the ground truth (localization),
//! optionally faithfulness (deletion / insertion AUC) and stability. Writes `per_image.csv`,
//! `summary.csv`, `summary.json` and PNG plots into `--out`, and prints the papers' tables.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde_json::{json, Map, Value};

use super::{CliError, DeviceArg};
use crate::imaging::{LabelSelector, Volume};
use crate::io::dataset::{open_dataset, DatasetOptions, Sample, Split};
use crate::io::mask::load_mask_for;
use crate::io::{load_study, write_atomic, LoadOptions};
use crate::metrics::faithfulness::{deletion_insertion, FaithfulnessOptions};
use crate::metrics::localization::{
    heatmap_to_mask, localization_scores, tune_threshold, LocalizationScores, Threshold,
    POINTING_TOLERANCE_PX,
};
use crate::metrics::stats::{summarize, Summary, BOOTSTRAP_RESAMPLES};
use crate::metrics::{segmentation_scores, SegmentationScores};
use crate::model::manifest::resolve_model;
use crate::model::{builtin_dir, probabilities_to_labels, LoadedModel, Task};
use crate::pipeline::{
    run_job, CancelToken, Context, ExplainJob, Explanation, Job, JobOutput, ModelCache, PipelineError,
    PredictJob, Stability, TargetSpec,
};
use crate::report::csv::{num, write_csv};
use crate::report::{plots, tables};
use crate::xai::methods::METHODS;
use crate::xai::Params;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Models, comma-separated: built-in names, model.toml files or folders holding one.
    #[arg(long, value_delimiter = ',', required = true)]
    pub model: Vec<String>,
    /// The dataset folder (layouts: see `radlens::io::dataset`): images with masks and/or labels.
    #[arg(long)]
    pub data: PathBuf,
    /// train, val, test or all (the dataset's own test split when it has one, else a seeded 64/16/20).
    #[arg(long, default_value = "test")]
    pub split: String,
    /// XAI methods to score, comma-separated (e.g. gradcam++,lime); none: model scores only.
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Heatmap → mask: otsu, a cut in [0, 1] on the min-max scaled map (0.5), or topP (top10).
    #[arg(long, default_value = "otsu")]
    pub threshold: String,
    /// Tune each method's cut on the validation split to maximise mean IoU (CheXlocalize); overrides
    /// --threshold.
    #[arg(long)]
    pub tune_thresholds: bool,
    /// The class the masks belong to: the classifier's class explained (default COVID-19), or a
    /// segmentation model's class (default: its predicted region).
    #[arg(long)]
    pub class: Option<String>,
    /// Run stochastic methods with R seeds and report their stability.
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Also compute deletion and insertion AUC (Petsiuk et al.; 20 steps, blurred baseline).
    #[arg(long)]
    pub faithfulness: bool,
    /// Perturbation samples (LIME, KernelSHAP, RISE); default per method.
    #[arg(long)]
    pub samples: Option<usize>,
    /// Use at most N images of the split (in the split's order).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Seed for the split, the methods and the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// The class infection masks belong to in the CXR data.
const DEFAULT_CLASS: &str = "COVID-19";

/// One method's scores on one image.
#[derive(Debug, Clone)]
struct MethodRecord {
    loc: LocalizationScores,
    deletion_auc: Option<f64>,
    insertion_auc: Option<f64>,
    stability: Option<Stability>,
}

/// Everything scored on one image by one model.
#[derive(Debug, Clone)]
struct ImageRecord {
    model: String,
    image: String,
    split: String,
    label: Option<String>,
    predicted: Option<String>,
    /// Classification: the class probabilities.
    probs: Option<Vec<f32>>,
    seg: Option<SegmentationScores>,
    /// Target class of the maps (empty when no method ran).
    target_class: String,
    methods: BTreeMap<String, MethodRecord>,
    /// Methods that failed on this image (e.g. not available for the architecture): one line each.
    method_errors: Vec<String>,
}

/// An image loaded with its ground truth.
struct Prepared {
    volume: Arc<Volume>,
    /// Whole-volume foreground of the ground truth, when the sample has a mask.
    gt: Option<Vec<bool>>,
    /// The slice maps are computed on: the one with most ground truth (0 for 2D images).
    slice: usize,
}

struct Runner<'a> {
    args: &'a EvalArgs,
    cache: ModelCache,
    cancel: CancelToken,
}

impl Runner<'_> {
    fn job(&mut self, job: &Job) -> Result<JobOutput, String> {
        let mut progress = |_: usize, _: usize, _: &str| {};
        let mut ctx = Context { cancel: &self.cancel, progress: &mut progress, cache: &mut self.cache };
        run_job(job, &mut ctx).map_err(|e| match e {
            PipelineError::Cancelled => "cancelled".to_string(),
            e => e.to_string(),
        })
    }
}

fn prepare(sample: &Sample) -> Result<Prepared, String> {
    let study = load_study(&sample.image, &LoadOptions::default()).map_err(|e| e.to_string())?;
    let volume = study.volume;
    let gt = match &sample.mask {
        Some(m) => Some(load_mask_for(m, &volume).map_err(|e| e.to_string())?.binary(LabelSelector::Any)),
        None => None,
    };
    let [depth, h, w] = volume.dims();
    let slice = match &gt {
        Some(g) if depth > 1 => (0..depth)
            .max_by_key(|&z| {
                (g[z * h * w..(z + 1) * h * w].iter().filter(|&&b| b).count(), std::cmp::Reverse(z))
            })
            .unwrap_or(0),
        _ => depth / 2,
    };
    Ok(Prepared { volume: Arc::new(volume), gt, slice })
}

fn gt_slice(p: &Prepared) -> Option<&[bool]> {
    let [_, h, w] = p.volume.dims();
    p.gt.as_deref().map(|g| &g[p.slice * h * w..(p.slice + 1) * h * w])
}

/// The map of `method` on the prepared image.
fn explain(
    runner: &mut Runner,
    manifest: &Path,
    p: &Prepared,
    method: &str,
    target: &TargetSpec,
) -> Result<Explanation, String> {
    let a = runner.args;
    let params = Params { seed: a.seed, samples: a.samples, ..Params::default() };
    let job = Job::Explain(ExplainJob {
        model: manifest.to_path_buf(),
        device: a.device.into(),
        volume: p.volume.clone(),
        slice: p.slice,
        method: method.to_string(),
        params,
        target: target.clone(),
        repeats: a.repeats,
    });
    match runner.job(&job)? {
        JobOutput::Explanation(e) => Ok(*e),
        _ => Err("the explain job returned something else".into()),
    }
}

/// The target probability of each image for faithfulness: the class probability (classification) or
/// the mean probability of `class` over `region` (segmentation; all pixels when `region` is empty).
fn faithfulness_scorer<'m>(
    model: &'m LoadedModel,
    like: &'m Volume,
    class: usize,
    region: Vec<bool>,
) -> impl FnMut(&[Vec<f32>]) -> Result<Vec<f64>, String> + 'm {
    let [_, h, w] = like.dims();
    let region = if region.iter().any(|&b| b) { region } else { vec![true; h * w] };
    let area = region.iter().filter(|&&b| b).count() as f64;
    move |images: &[Vec<f32>]| {
        let n = images.len();
        let mut v = Volume::new(images.concat(), [n, h, w], like.spacing_mm).map_err(|e| e.to_string())?;
        v.unit = like.unit;
        v.modality = like.modality.clone();
        let probs = model
            .predict_slices(&v, &(0..n).collect::<Vec<_>>(), |_, _| true)
            .map_err(|e| e.to_string())?
            .ok_or("cancelled")?;
        Ok(probs
            .iter()
            .map(|p| match model.manifest.task {
                Task::Classification => p.get(class).copied().unwrap_or(0.0) as f64,
                Task::Segmentation => {
                    let plane = &p[class * h * w..(class + 1) * h * w];
                    plane.iter().zip(&region).filter(|(_, &r)| r).map(|(&x, _)| x as f64).sum::<f64>() / area
                }
            })
            .collect())
    }
}

struct ModelSetup {
    manifest: PathBuf,
    model: Arc<LoadedModel>,
    target: TargetSpec,
    /// Index of the explained class (faithfulness score).
    target_index: usize,
    target_name: String,
}

fn setup_model(runner: &mut Runner, name: &str) -> Result<ModelSetup, CliError> {
    let manifest = resolve_model(name, &builtin_dir()).map_err(|e| CliError::BadInput(e.to_string()))?;
    let (model, note) = runner
        .cache
        .get(&manifest, runner.args.device.into())
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    let classes = &model.manifest.classes;
    let find = |c: &str| classes.iter().position(|k| k.eq_ignore_ascii_case(c));
    let (target, target_index, target_name) = match (model.manifest.task, &runner.args.class) {
        (Task::Classification, class) => {
            let c = class.as_deref().unwrap_or(DEFAULT_CLASS);
            let i = find(c).ok_or_else(|| {
                CliError::BadInput(format!(
                    "model {} has no class '{c}' to explain (classes: {}); choose one with --class",
                    manifest.display(),
                    classes.join(", ")
                ))
            })?;
            (TargetSpec::Class(classes[i].clone()), i, classes[i].clone())
        }
        (Task::Segmentation, Some(c)) => {
            let i = find(c).ok_or_else(|| {
                CliError::BadInput(format!(
                    "model {} has no class '{c}' (classes: {})",
                    manifest.display(),
                    classes.join(", ")
                ))
            })?;
            (TargetSpec::Class(classes[i].clone()), i, classes[i].clone())
        }
        (Task::Segmentation, None) => {
            (TargetSpec::Default, 0, classes.first().cloned().unwrap_or_else(|| "foreground".into()))
        }
    };
    Ok(ModelSetup { manifest, model, target, target_index, target_name })
}

fn progress_bar(len: usize, msg: String) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(msg);
    pb
}

/// Per-class cuts tuned on the validation split, one per method.
fn tune(
    runner: &mut Runner,
    setup: &ModelSetup,
    samples: &[Sample],
    methods: &[String],
) -> Result<BTreeMap<String, Threshold>, CliError> {
    let mut maps: BTreeMap<String, Vec<(Vec<f32>, Vec<bool>)>> = BTreeMap::new();
    let pb = progress_bar(samples.len(), format!("tuning thresholds ({})", setup.model.manifest.name));
    for s in samples {
        pb.inc(1);
        let p = match prepare(s) {
            Ok(p) => p,
            Err(e) => {
                pb.suspend(|| eprintln!("skipped (tuning) {}", e));
                continue;
            }
        };
        let Some(gt) = gt_slice(&p).filter(|g| g.iter().any(|&b| b)).map(|g| g.to_vec()) else { continue };
        for m in methods {
            match explain(runner, &setup.manifest, &p, m, &setup.target) {
                Ok(ex) => maps.entry(m.clone()).or_default().push((ex.values, gt.clone())),
                Err(e) => pb.suspend(|| eprintln!("skipped (tuning) {}: {m}: {e}", s.image.display())),
            }
        }
    }
    pb.finish_and_clear();
    let mut out = BTreeMap::new();
    for m in methods {
        let t = tune_threshold(maps.get(m).map(|v| v.as_slice()).unwrap_or(&[]))
            .map_err(|e| CliError::Failed(format!("tuning {m}: {e}")))?;
        match t {
            Some(t) => {
                eprintln!(
                    "{m} ({}): tuned cut {t:.2} on {} validation images",
                    setup.target_name,
                    maps[m].len()
                );
                out.insert(m.clone(), Threshold::Fixed(t));
            }
            None => eprintln!("{m}: no validation image with a mask to tune on; using --threshold"),
        }
    }
    Ok(out)
}

fn eval_image(
    runner: &mut Runner,
    setup: &ModelSetup,
    sample: &Sample,
    split: &str,
    methods: &[String],
    thresholds: &BTreeMap<String, Threshold>,
    default_threshold: Threshold,
) -> Result<ImageRecord, String> {
    let p = prepare(sample)?;
    let vol = &p.volume;
    let [depth, h, w] = vol.dims();
    let m = &setup.model.manifest;
    let slices: Vec<usize> = match m.task {
        Task::Segmentation => (0..depth).collect(),
        Task::Classification => vec![p.slice],
    };
    let job = Job::Predict(PredictJob {
        model: setup.manifest.clone(),
        device: runner.args.device.into(),
        volume: vol.clone(),
        slices,
    });
    let pred = match runner.job(&job).map_err(|e| format!("{}: {e}", sample.image.display()))? {
        JobOutput::Prediction(p) => p,
        _ => return Err("the predict job returned something else".into()),
    };
    let mut rec = ImageRecord {
        model: m.name.clone(),
        image: sample.image.display().to_string(),
        split: sample.source_split.clone().unwrap_or_else(|| split.to_string()),
        label: sample.label.clone(),
        predicted: None,
        probs: None,
        seg: None,
        target_class: String::new(),
        methods: BTreeMap::new(),
        method_errors: Vec::new(),
    };
    let mut region = vec![false; h * w];
    match m.task {
        Task::Segmentation => {
            let classes = m.classes.len();
            let pred_mask: Vec<bool> = pred
                .probs
                .iter()
                .flat_map(|pl| probabilities_to_labels(pl, classes, pred.threshold))
                .map(|l| l > 0)
                .collect();
            region.copy_from_slice(&pred_mask[p.slice * h * w..(p.slice + 1) * h * w]);
            if let Some(gt) = &p.gt {
                rec.seg = Some(
                    segmentation_scores(&pred_mask, gt, [depth, h, w], vol.spacing_mm)
                        .map_err(|e| format!("{}: {e}", sample.image.display()))?,
                );
            }
        }
        Task::Classification => {
            let probs = pred.probs.first().cloned().unwrap_or_default();
            let best =
                probs
                    .iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
            rec.predicted = m.classes.get(best.0).cloned();
            rec.probs = Some(probs);
        }
    }
    let Some(gt) = gt_slice(&p).filter(|g| g.iter().any(|&b| b)) else { return Ok(rec) };
    rec.target_class = setup.target_name.clone();
    let spacing = [vol.spacing_mm[1], vol.spacing_mm[2]];
    for method in methods {
        // A method that fails (e.g. LRP on an architecture without rules) loses its columns on this
        // image; the image's other scores stand.
        let ex = match explain(runner, &setup.manifest, &p, method, &setup.target) {
            Ok(ex) => ex,
            Err(e) => {
                rec.method_errors.push(format!("{method}: {e}: {}", sample.image.display()));
                continue;
            }
        };
        let threshold = thresholds.get(method).copied().unwrap_or(default_threshold);
        let mask = heatmap_to_mask(&ex.values, threshold);
        let loc = localization_scores(&ex.values, &mask, gt, h, w, spacing, POINTING_TOLERANCE_PX)
            .map_err(|e| format!("{}: {method}: {e}", sample.image.display()))?;
        let (mut deletion_auc, mut insertion_auc) = (None, None);
        if runner.args.faithfulness {
            let scorer = faithfulness_scorer(&setup.model, vol, setup.target_index, region.clone());
            let f = deletion_insertion(
                vol.slice(p.slice),
                h,
                w,
                &ex.values,
                ex.superpixels.as_deref(),
                &FaithfulnessOptions::default(),
                scorer,
            )
            .map_err(|e| format!("{}: {method}: faithfulness: {e}", sample.image.display()))?;
            deletion_auc = Some(f.deletion_auc);
            insertion_auc = Some(f.insertion_auc);
        }
        rec.methods.insert(
            method.clone(),
            MethodRecord { loc, deletion_auc, insertion_auc, stability: ex.stability },
        );
    }
    Ok(rec)
}

const SEG_KEYS: [&str; 6] = ["dice", "precision", "recall", "accuracy", "iou", "hd95_mm"];
const METHOD_KEYS: [&str; 11] = [
    "iou",
    "dice",
    "hd_px",
    "hd_mm",
    "hit",
    "energy_pointing",
    "relevance_mass",
    "relevance_rank",
    "deletion_auc",
    "insertion_auc",
    "stability_top10_iou",
];

fn seg_value(s: &SegmentationScores, key: &str) -> Option<f64> {
    match key {
        "dice" => Some(s.dice),
        "precision" => Some(s.precision),
        "recall" => Some(s.recall),
        "accuracy" => Some(s.accuracy),
        "iou" => Some(s.iou),
        "hd95_mm" => s.hd95_mm,
        _ => None,
    }
}

fn method_value(r: &MethodRecord, key: &str) -> Option<f64> {
    let l = &r.loc;
    match key {
        "iou" => Some(l.iou),
        "dice" => Some(l.dice),
        "hd_px" => l.hd_px,
        "hd_mm" => l.hd_mm,
        "hit" => l.pointing_hit.map(|h| h as u8 as f64),
        "energy_pointing" => l.energy_pointing,
        "relevance_mass" => l.relevance_mass,
        "relevance_rank" => l.relevance_rank,
        "deletion_auc" => r.deletion_auc,
        "insertion_auc" => r.insertion_auc,
        "stability_top10_iou" => r.stability.map(|s| s.top10_iou),
        _ => None,
    }
}

fn write_per_image(path: &Path, records: &[ImageRecord], methods: &[String]) -> Result<(), CliError> {
    let mut header: Vec<String> = ["model", "image", "split", "label", "predicted", "target_class"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(SEG_KEYS.iter().map(|k| k.to_string()));
    for m in methods {
        header.extend(METHOD_KEYS.iter().map(|k| format!("{m}_{k}")));
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let mut row = vec![
                r.model.clone(),
                r.image.clone(),
                r.split.clone(),
                r.label.clone().unwrap_or_default(),
                r.predicted.clone().unwrap_or_default(),
                r.target_class.clone(),
            ];
            row.extend(SEG_KEYS.iter().map(|k| num(r.seg.as_ref().and_then(|s| seg_value(s, k)))));
            for m in methods {
                let mr = r.methods.get(m);
                row.extend(METHOD_KEYS.iter().map(|k| num(mr.and_then(|x| method_value(x, k)))));
            }
            row
        })
        .collect();
    write_csv(path, &header, &rows).map_err(|e| CliError::Failed(e.to_string()))
}

fn summary_json(s: &Summary) -> Value {
    json!({ "mean": s.mean, "sd": s.sd, "ci95": s.ci95, "n": s.n })
}

/// Classification scores of one model: (accuracy values per image, per-class (precision, recall,
/// support), macro precision, macro recall, macro AUC).
#[allow(clippy::type_complexity)]
fn classification_scores(
    recs: &[&ImageRecord],
    classes: &[String],
) -> (Vec<f64>, Vec<(String, Option<f64>, Option<f64>, usize)>, Option<f64>, Option<f64>, Option<f64>) {
    let truth = |r: &ImageRecord| {
        r.label.as_ref().and_then(|l| classes.iter().position(|c| c.eq_ignore_ascii_case(l)))
    };
    let labelled: Vec<(&ImageRecord, usize)> =
        recs.iter().filter_map(|r| truth(r).map(|t| (*r, t))).collect();
    let pred_idx = |r: &ImageRecord| r.predicted.as_ref().and_then(|p| classes.iter().position(|c| c == p));
    let correct: Vec<f64> = labelled.iter().map(|(r, t)| (pred_idx(r) == Some(*t)) as u8 as f64).collect();
    let mut per_class = Vec::new();
    let mut aucs = Vec::new();
    for (ci, c) in classes.iter().enumerate() {
        let tp = labelled.iter().filter(|(r, t)| *t == ci && pred_idx(r) == Some(ci)).count();
        let pp = labelled.iter().filter(|(r, _)| pred_idx(r) == Some(ci)).count();
        let support = labelled.iter().filter(|(_, t)| *t == ci).count();
        let precision = (pp > 0).then(|| tp as f64 / pp as f64);
        let recall = (support > 0).then(|| tp as f64 / support as f64);
        let scores: Vec<(f64, bool)> = labelled
            .iter()
            .filter_map(|(r, t)| r.probs.as_ref().and_then(|p| p.get(ci)).map(|&p| (p as f64, *t == ci)))
            .collect();
        if let Some(a) = crate::metrics::classification::roc_auc(&scores) {
            aucs.push(a);
        }
        if support > 0 {
            per_class.push((c.clone(), precision, recall, support));
        }
    }
    let macro_of = |f: &dyn Fn(&(String, Option<f64>, Option<f64>, usize)) -> Option<f64>| {
        let v: Vec<f64> = per_class.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let mp = macro_of(&|c| c.1);
    let mr = macro_of(&|c| c.2);
    let auc = (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64);
    (correct, per_class, mp, mr, auc)
}

fn stat_row(model: &str, method: &str, metric: &str, s: &Summary) -> Vec<String> {
    vec![
        model.to_string(),
        method.to_string(),
        metric.to_string(),
        s.n.to_string(),
        num(s.mean),
        num(s.sd),
        num(s.ci95.map(|c| c[0])),
        num(s.ci95.map(|c| c[1])),
    ]
}

fn methods_list(args: &EvalArgs) -> Result<Vec<String>, CliError> {
    let mut out: Vec<String> = Vec::new();
    for m in args.methods.iter().map(|m| m.trim().to_ascii_lowercase()).filter(|m| !m.is_empty()) {
        if !METHODS.contains(&m.as_str()) {
            return Err(CliError::BadInput(format!("unknown method '{m}' (one of: {})", METHODS.join(", "))));
        }
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

pub fn run(args: &EvalArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let methods = methods_list(args)?;
    let threshold = Threshold::parse(&args.threshold).map_err(CliError::BadInput)?;
    let split = Split::from_name(&args.split).ok_or_else(|| {
        CliError::BadInput(format!("unknown split '{}' (train, val, test or all)", args.split))
    })?;
    if args.repeats == 0 {
        return Err(CliError::BadInput("--repeats must be at least 1".into()));
    }
    let ds = open_dataset(&args.data, &DatasetOptions::default())?;
    let mut samples = ds.split(split, args.seed);
    if let Some(n) = args.limit {
        samples.truncate(n);
    }
    if samples.is_empty() {
        return Err(CliError::BadInput(format!(
            "no images in the {} split of {}",
            split.name(),
            args.data.display()
        )));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| {
        CliError::Failed(format!("cannot create the output folder: {e}: {}", args.out.display()))
    })?;
    let mut runner = Runner { args, cache: ModelCache::default(), cancel: CancelToken::default() };
    let mut records: Vec<ImageRecord> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut method_errors: Vec<String> = Vec::new();
    let mut model_info: Vec<(String, Task, Vec<String>, BTreeMap<String, Threshold>)> = Vec::new();
    for name in &args.model {
        let setup = setup_model(&mut runner, name)?;
        let thresholds = if args.tune_thresholds && !methods.is_empty() {
            let mut val = ds.split(Split::Val, args.seed);
            if let Some(n) = args.limit {
                val.truncate(n);
            }
            tune(&mut runner, &setup, &val, &methods)?
        } else {
            BTreeMap::new()
        };
        let pb = progress_bar(samples.len(), format!("eval {}", setup.model.manifest.name));
        for s in &samples {
            match eval_image(&mut runner, &setup, s, split.name(), &methods, &thresholds, threshold) {
                Ok(r) => {
                    for e in &r.method_errors {
                        pb.suspend(|| eprintln!("warning: {e}"));
                    }
                    method_errors.extend(r.method_errors.iter().cloned());
                    records.push(r)
                }
                Err(e) => {
                    let line = if e.contains(&*s.image.display().to_string()) || e.contains(&*s.id) {
                        e
                    } else {
                        format!("{e}: {}", s.image.display())
                    };
                    pb.suspend(|| eprintln!("skipped: {line}"));
                    errors.push(line);
                }
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        let m = &setup.model.manifest;
        model_info.push((m.name.clone(), m.task, m.classes.clone(), thresholds));
    }
    if records.is_empty() {
        return Err(CliError::BadInput(format!(
            "nothing could be scored ({} image(s) failed) in {}",
            errors.len(),
            args.data.display()
        )));
    }
    write_per_image(&args.out.join("per_image.csv"), &records, &methods)?;

    // Summaries.
    let mut models_json = Map::new();
    let mut csv_rows: Vec<Vec<String>> = Vec::new();
    let mut seg_rows: Vec<tables::SegmentationRow> = Vec::new();
    let mut loc_cols: Vec<tables::LocalizationColumn> = Vec::new();
    let mut iou_groups: Vec<(String, Vec<f64>)> = Vec::new();
    let mut miou_bars: Vec<(String, Option<f64>)> = Vec::new();
    let mut dice_groups: Vec<(String, Vec<f64>)> = Vec::new();
    let seed = args.seed;
    for (name, task, classes, thresholds) in &model_info {
        let recs: Vec<&ImageRecord> = records.iter().filter(|r| &r.model == name).collect();
        let mut mj = Map::new();
        mj.insert(
            "task".into(),
            json!(match task {
                Task::Segmentation => "segmentation",
                Task::Classification => "classification",
            }),
        );
        mj.insert("images".into(), json!(recs.len()));
        match task {
            Task::Segmentation => {
                let mut cells = [(None, None); 4];
                for key in SEG_KEYS {
                    let vals: Vec<f64> =
                        recs.iter().filter_map(|r| r.seg.as_ref().and_then(|s| seg_value(s, key))).collect();
                    let s = summarize(&vals, seed);
                    if let Some(i) =
                        ["dice", "precision", "recall", "accuracy"].iter().position(|k| *k == key)
                    {
                        cells[i] = (s.mean, s.sd);
                    }
                    if key == "dice" {
                        dice_groups.push((name.clone(), vals.clone()));
                    }
                    csv_rows.push(stat_row(name, "", key, &s));
                    mj.insert(key.into(), summary_json(&s));
                }
                seg_rows.push((name.clone(), split.name().to_string(), cells));
            }
            Task::Classification => {
                let (correct, per_class, mp, mr, auc) = classification_scores(&recs, classes);
                let acc = summarize(&correct, seed);
                let n = correct.len();
                if n == 0 && recs.iter().any(|r| r.label.is_some()) {
                    eprintln!(
                        "note: no image label matches a class of {name} ({}): no classification scores",
                        classes.join(", ")
                    );
                }
                let point = |v: Option<f64>| Summary { n, mean: v, sd: None, ci95: None };
                mj.insert("dice".into(), Value::Null);
                mj.insert("precision".into(), summary_json(&point(mp)));
                mj.insert("recall".into(), summary_json(&point(mr)));
                mj.insert("accuracy".into(), summary_json(&acc));
                mj.insert("macro_auc".into(), json!(auc));
                let pc: Map<String, Value> = per_class
                    .iter()
                    .map(|(c, p, r, s)| (c.clone(), json!({ "precision": p, "recall": r, "support": s })))
                    .collect();
                mj.insert("per_class".into(), Value::Object(pc));
                csv_rows.push(stat_row(name, "", "accuracy", &acc));
                csv_rows.push(stat_row(name, "", "precision", &point(mp)));
                csv_rows.push(stat_row(name, "", "recall", &point(mr)));
                csv_rows.push(stat_row(name, "", "macro_auc", &point(auc)));
                writeln!(
                    out,
                    "{name} ({} split, {n} labelled images): accuracy {}, macro precision {}, macro recall {}, macro-AUC {}",
                    split.name(),
                    tables::cell(acc.mean, acc.sd),
                    tables::cell(mp, None),
                    tables::cell(mr, None),
                    tables::cell(auc, None)
                )?;
            }
        }
        let mut methods_json = Map::new();
        for method in &methods {
            let with: Vec<&MethodRecord> = recs.iter().filter_map(|r| r.methods.get(method)).collect();
            let target = recs
                .iter()
                .find(|r| r.methods.contains_key(method))
                .map(|r| r.target_class.clone())
                .unwrap_or_default();
            let mut meth = Map::new();
            let thr = thresholds.get(method).copied().unwrap_or(threshold);
            meth.insert("threshold".into(), json!(thr.name()));
            meth.insert("class".into(), json!(target));
            meth.insert("images".into(), json!(with.len()));
            let mut cells = [(None, None); 4];
            for (key, json_key) in [
                ("iou", "miou"),
                ("dice", "mdice"),
                ("hd_px", "mhd"),
                ("hd_mm", "mhd_mm"),
                ("hit", "hit_rate"),
                ("energy_pointing", "energy_pointing"),
                ("relevance_mass", "relevance_mass"),
                ("relevance_rank", "relevance_rank"),
                ("deletion_auc", "deletion_auc"),
                ("insertion_auc", "insertion_auc"),
                ("stability_top10_iou", "stability_top10_iou"),
            ] {
                let vals: Vec<f64> = with.iter().filter_map(|r| method_value(r, key)).collect();
                let s = summarize(&vals, seed);
                if let Some(i) = ["iou", "dice", "hd_px", "hit"].iter().position(|k| *k == key) {
                    cells[i] = (s.mean, s.sd);
                }
                if key == "iou" {
                    iou_groups.push((format!("{method} ({target})"), vals.clone()));
                    miou_bars.push((format!("{method}/{name}"), s.mean));
                }
                csv_rows.push(stat_row(name, method, json_key, &s));
                meth.insert(json_key.into(), summary_json(&s));
            }
            loc_cols.push((method.clone(), name.clone(), cells));
            methods_json.insert(method.clone(), Value::Object(meth));
        }
        mj.insert("methods".into(), Value::Object(methods_json));
        models_json.insert(name.clone(), Value::Object(mj));
    }
    let summary = json!({
        "data": args.data.display().to_string(),
        "split": split.name(),
        "threshold": threshold.name(),
        "tuned_thresholds": args.tune_thresholds,
        "seed": args.seed,
        "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
        "pointing_tolerance_px": POINTING_TOLERANCE_PX,
        "images": samples.len(),
        "scored": records.len(),
        "skipped": errors.len(),
        "errors": errors,
        "method_errors": method_errors,
        "models": Value::Object(models_json),
    });
    let json_path = args.out.join("summary.json");
    write_atomic(&json_path, |w| {
        serde_json::to_writer_pretty(&mut *w, &summary).map_err(std::io::Error::other)?;
        writeln!(w)
    })
    .map_err(|e| CliError::Failed(e.to_string()))?;
    let header: Vec<String> = ["model", "method", "metric", "n", "mean", "sd", "ci95_low", "ci95_high"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    write_csv(&args.out.join("summary.csv"), &header, &csv_rows)
        .map_err(|e| CliError::Failed(e.to_string()))?;

    if !seg_rows.is_empty() {
        writeln!(out, "\nSegmentation (mean ± sd)\n{}", tables::segmentation_table(&seg_rows))?;
    }
    if !loc_cols.is_empty() {
        let how = if args.tune_thresholds {
            "cuts tuned per method on the validation split (see summary.json)".to_string()
        } else {
            format!("threshold {}", threshold.name())
        };
        writeln!(out, "\nLocalization, {how} (mean ± sd)\n{}", tables::localization_table(&loc_cols))?;
    }
    let mut plots_written = Vec::new();
    let mut plot = |file: &str, r: Result<(), String>| match r {
        Ok(()) => plots_written.push(file.to_string()),
        Err(e) => eprintln!("warning: plot {file} not written: {e}"),
    };
    if !dice_groups.is_empty() {
        let f = "segmentation_dice_box.png";
        plot(f, plots::box_plot(&args.out.join(f), "Segmentation Dice per image", "Dice", &dice_groups));
    }
    if !iou_groups.is_empty() {
        let f = "localization_iou_box.png";
        plot(
            f,
            plots::box_plot(&args.out.join(f), "Localization IoU per method (class)", "IoU", &iou_groups),
        );
        let f = "localization_miou_bars.png";
        plot(
            f,
            plots::bar_chart(&args.out.join(f), "Localization mIoU per method / model", "mIoU", &miou_bars),
        );
    }
    writeln!(
        out,
        "scored {} of {} image(s){}; wrote per_image.csv, summary.csv, summary.json{} in {}",
        records.len(),
        samples.len() * args.model.len(),
        if errors.is_empty() { String::new() } else { format!(", skipped {}", errors.len()) },
        plots_written.iter().map(|p| format!(", {p}")).collect::<String>(),
        args.out.display()
    )?;
    Ok(())
}
