//! `radlens study validate|prepare|export|summary|run`: the organiser's side of a user study.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{CliError, DeviceArg};
use crate::imaging::Volume;
use crate::io::{load_mask, load_study, write_atomic, LoadOptions};
use crate::model::builtin_dir;
use crate::model::manifest::{load_manifest, resolve_model};
use crate::model::Task;
use crate::pipeline::{
    run_job, CancelToken, Context, ExplainJob, Job, JobOutput, ModelCache, PredictJob, TargetSpec,
};
use crate::session::prepared::{MapCache, MapKey, PREDICTION};
use crate::session::study::{Case, Study};
use crate::session::summary::{read_logs, rows, summarise, to_csv, write_outputs, write_tables};
use crate::session::SessionError;
use crate::xai::Params;

#[derive(Debug, Args)]
pub struct StudyArgs {
    #[command(subcommand)]
    pub command: StudyCommand,
}

#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Check a study file: every image, slice, mask, model and method (errors name the case and field).
    Validate {
        /// The study file (TOML; see assets/studies/example.toml).
        file: PathBuf,
    },
    /// Precompute every map (model prediction and each method's heatmap) into `<study>.cache/` next
    /// to the study file, so participants never wait. Maps already cached are skipped.
    Prepare {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
        device: DeviceArg,
    },
    /// Write participants' results as one tidy CSV row per answer: participant, case, method,
    /// position, question, value, seconds.
    Export {
        /// Results files (`<participant>.jsonl`).
        #[arg(required = true)]
        results: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Per method: mean ± sd per Likert item, preference share with a 95% CI, sign tests between
    /// methods; per participant: completion and time. Tables are printed; with --out, summary.json
    /// and plots (likert.png, preference.png) are written there.
    Summary {
        #[arg(required = true)]
        results: Vec<PathBuf>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Open the participant window (needs `prepare` first).
    Run {
        file: PathBuf,
        /// Folder of the results files; default: `<study>.results/` next to the study file.
        #[arg(long)]
        results: Option<PathBuf>,
    },
}

impl From<SessionError> for CliError {
    fn from(e: SessionError) -> Self {
        CliError::BadInput(e.to_string())
    }
}

pub fn run(args: &StudyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match &args.command {
        StudyCommand::Validate { file } => validate(file, out),
        StudyCommand::Prepare { file, device } => prepare(file, *device, out),
        StudyCommand::Export { results, out: csv } => export(results, csv, out),
        StudyCommand::Summary { results, out: dir } => summary(results, dir.as_deref(), out),
        StudyCommand::Run { file, results } => run_window(file, results.as_deref()),
    }
}

/// A case's image, or why it cannot be used (naming the case, the field and the file).
fn case_volume(case: &Case) -> Result<Volume, String> {
    load_study(&case.study, &LoadOptions::default())
        .map(|s| s.volume)
        .map_err(|e| format!("case '{}', field 'study': {e}", case.id))
}

/// Every problem of one case, each a one-line message.
fn check_case(case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    match case_volume(case) {
        Err(e) => problems.push(e),
        Ok(v) => {
            let [depth, h, w] = v.dims();
            for &z in &case.slices {
                if z >= depth {
                    problems.push(format!(
                        "case '{}', field 'slices': slice {z} is out of range (the study has {depth} slice{}): {}",
                        case.id,
                        if depth == 1 { "" } else { "s" },
                        case.study.display()
                    ));
                }
            }
            if let Some(gt) = &case.gt_mask {
                match load_mask(gt) {
                    Err(e) => problems.push(format!("case '{}', field 'gt_mask': {e}", case.id)),
                    Ok(m) if m.dims()[1..] != [h, w] || (m.dims()[0] != depth && m.dims()[0] != 1) => {
                        let [md, mh, mw] = m.dims();
                        problems.push(format!(
                            "case '{}', field 'gt_mask': the mask is {md}x{mh}x{mw}, the study {depth}x{h}x{w}: {}",
                            case.id,
                            gt.display()
                        ))
                    }
                    Ok(_) => {}
                }
            }
        }
    }
    match resolve_model(&case.model, &builtin_dir()).and_then(|p| load_manifest(&p).map(|m| (p, m))) {
        Err(e) => problems.push(format!("case '{}', field 'model': {e}", case.id)),
        Ok((p, m)) => {
            if case.methods.iter().any(|x| x == "lrp") && m.task == Task::Segmentation {
                problems.push(format!(
                    "case '{}', field 'methods': lrp works on classifiers only, {} is a segmentation model: {}",
                    case.id,
                    m.name,
                    p.display()
                ));
            }
        }
    }
    problems
}

fn validate(file: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let study = Study::load(file)?;
    let mut problems: Vec<String> = study.cases.iter().flat_map(check_case).collect();
    if let Some(last) = problems.pop() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        return Err(CliError::BadInput(last));
    }
    let maps: usize = study.cases.iter().map(|c| c.slices.len().max(1) * c.methods.len()).sum();
    writeln!(
        out,
        "{}: OK — {} cases, {} Likert items{}, {maps} maps to prepare",
        file.display(),
        study.cases.len(),
        study.questions.likert.len(),
        if study.questions.preference.is_some() { " and a preference" } else { "" }
    )?;
    Ok(())
}

fn prepare(file: &Path, device: DeviceArg, out: &mut dyn Write) -> Result<(), CliError> {
    let study = Study::load(file)?;
    let mut cache = MapCache::open(&study.cache_dir())?;
    // Everything the maps need, checked before any model runs.
    let mut work = Vec::new();
    for case in &study.cases {
        let problems = check_case(case);
        if let Some(p) = problems.into_iter().next() {
            return Err(CliError::BadInput(p));
        }
        let volume = Arc::new(case_volume(case).map_err(CliError::BadInput)?);
        let manifest =
            resolve_model(&case.model, &builtin_dir()).map_err(|e| CliError::BadInput(e.to_string()))?;
        let task = load_manifest(&manifest).map_err(|e| CliError::BadInput(e.to_string()))?.task;
        // A segmentation model's prediction is shown too; a classifier's is not a map.
        let prediction = (task == Task::Segmentation).then_some(PREDICTION);
        for z in case.slices_for(volume.depth()) {
            for method in prediction.into_iter().chain(case.methods.iter().map(String::as_str)) {
                work.push((case, volume.clone(), manifest.clone(), z, method.to_string()));
            }
        }
    }
    let todo: Vec<_> =
        work.iter().filter(|(case, _, _, z, m)| !cache.contains(&MapKey::new(&study, case, *z, m))).collect();
    let skipped = work.len() - todo.len();
    let bar = indicatif::ProgressBar::new(todo.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} maps  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let cancel = CancelToken::default();
    let mut models = ModelCache::default();
    let (mut done, mut failed) = (0usize, 0usize);
    for (case, volume, manifest, z, method) in todo {
        bar.set_message(format!("{} slice {z}: {method}", case.id));
        let job = if method == PREDICTION {
            Job::Predict(PredictJob {
                model: manifest.clone(),
                device: device.into(),
                volume: volume.clone(),
                slices: vec![*z],
            })
        } else {
            let params =
                Params { seed: study.design.seed, samples: study.prepare.samples, ..Params::default() };
            Job::Explain(ExplainJob {
                model: manifest.clone(),
                device: device.into(),
                volume: volume.clone(),
                slice: *z,
                method: method.clone(),
                params,
                target: TargetSpec::Default,
                repeats: 1,
            })
        };
        let msg = format!("{} slice {z}: {method}", case.id);
        let mut progress = |d: usize, t: usize, _: &str| bar.set_message(format!("{msg} ({d}/{t})"));
        let result =
            run_job(&job, &mut Context { cancel: &cancel, progress: &mut progress, cache: &mut models });
        let [_, h, w] = volume.dims();
        let map = match result {
            // Class 0's probability plane.
            Ok(JobOutput::Prediction(p)) => p.probs.first().and_then(|v| v.get(..h * w)).map(<[f32]>::to_vec),
            Ok(JobOutput::Explanation(e)) => Some(e.values),
            Err(e) => {
                bar.suspend(|| eprintln!("error: case '{}', method '{method}': {e}", case.id));
                failed += 1;
                bar.inc(1);
                continue;
            }
        };
        let Some(map) = map else {
            failed += 1;
            bar.inc(1);
            continue;
        };
        cache.store(MapKey::new(&study, case, *z, method), &map, h, w)?;
        done += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    writeln!(
        out,
        "prepared {done} maps, {skipped} already cached, {failed} failed: {}",
        study.cache_dir().display()
    )?;
    if failed > 0 {
        return Err(CliError::BadInput(format!("{failed} maps could not be computed (see above)")));
    }
    Ok(())
}

fn export(results: &[PathBuf], csv: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let logs = read_logs(results)?;
    let all: Vec<_> = logs.iter().flat_map(rows).collect();
    let text = to_csv(&all);
    write_atomic(csv, |w| w.write_all(text.as_bytes()))?;
    writeln!(out, "wrote {} rows from {} participants to {}", all.len(), logs.len(), csv.display())?;
    Ok(())
}

fn summary(results: &[PathBuf], dir: Option<&Path>, out: &mut dyn Write) -> Result<(), CliError> {
    let logs = read_logs(results)?;
    let s = summarise(&logs);
    write_tables(&s, out)?;
    if let Some(dir) = dir {
        for p in write_outputs(&s, dir)? {
            writeln!(out, "wrote {}", p.display())?;
        }
    }
    Ok(())
}

fn run_window(file: &Path, results: Option<&Path>) -> Result<(), CliError> {
    let study = Study::load(file)?;
    let dir = results.map(Path::to_path_buf).unwrap_or_else(|| study.default_results_dir());
    // Refuse to start before every map is prepared: a participant must never wait or see a gap.
    let prepared = crate::ui::study::PreparedStudy::load(&study)?;
    crate::ui::study::run_window(study, prepared, dir)
        .map_err(|e| CliError::Failed(format!("the study window failed: {e}")))
}
