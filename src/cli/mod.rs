//! Command-line subcommands. Each one parses its flags (clap), does its work through the library rooms
//! and prints; errors are mapped to exit codes in one place ([`run`]): 2 for bad input (a file that
//! cannot be read, a mask on the wrong grid, a flag value that makes no sense), 1 for anything else.

mod annotate;
mod bench;
mod bench_frames;
mod bench_model;
mod bench_xai;
mod demo;
mod eval;
mod explain;
mod export;
mod info;
mod metrics;
mod predict;
mod study;
mod train;
pub mod view;

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::io::LoadError;

#[derive(Debug, Parser)]
#[command(
    name = "radlens",
    version,
    about = "Radiology viewer and toolkit: load CT / X-ray studies, compare masks, score segmentations",
    long_about = "Radiology viewer and toolkit: load CT / X-ray studies (DICOM files and series folders, \
NIfTI, PNG/BMP/JPEG/TIFF), inspect and export them, and score segmentations against ground truth.\n\n\
With no subcommand, radlens opens the viewer window on its embedded demo study (`radlens demo` prints a \
summary of it instead).\n\n\
Exit codes: 0 success, 2 bad input (unreadable file, wrong grid, bad flag), 1 other failure."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarise a study: modality, dimensions, spacing, unit, value range, transfer syntax, series.
    Info(info::InfoArgs),
    /// Write a study's voxels as .npy (float32, Z×Y×X, HU for CT) or NIfTI (.nii / .nii.gz).
    Export(export::ExportArgs),
    /// Score a predicted mask against a ground-truth mask (Dice, IoU, Hausdorff, ...).
    Metrics(metrics::MetricsArgs),
    /// Run a model on a study: segmentation probabilities / masks, or class probabilities.
    Predict(predict::PredictArgs),
    /// Explain a model's output on one slice with an XAI method (heatmap .npy, overlay PNG).
    Explain(explain::ExplainArgs),
    /// Score models and XAI methods over a dataset split (segmentation, classification, localization,
    /// faithfulness): per_image.csv, summary.csv, summary.json, tables and plots.
    Eval(eval::EvalArgs),
    /// Benchmarks (timings are printed, never asserted).
    Bench(bench::BenchArgs),
    /// Review masks: accept / reject / fix them in a window (or print progress with --status).
    Annotate(annotate::AnnotateArgs),
    /// Open a study in the viewer window (with no subcommand the viewer opens the embedded demo).
    View(view::ViewArgs),
    /// Print a summary of the embedded demo study (images, masks, overlap).
    Demo,
    /// Train a segmentation model on a dataset folder; writes a model folder --model accepts.
    Train(train::TrainArgs),
    /// User studies: validate, prepare, run (participant window), export and summarise results.
    Study(study::StudyArgs),
}

/// Why a subcommand failed; decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user's input cannot be used: exit code 2.
    #[error("{0}")]
    BadInput(String),
    /// Anything else: exit code 1.
    #[error("{0}")]
    Failed(String),
}

impl From<LoadError> for CliError {
    fn from(e: LoadError) -> Self {
        CliError::BadInput(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Failed(format!("cannot write output: {e}"))
    }
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

/// Runs a parsed command line, prints any error as one line on stderr, and returns the exit code.
pub fn run(cli: Cli) -> i32 {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match cli.command {
        None | Some(Command::View(_)) => {
            Err(CliError::Failed("the viewer window is opened by the radlens binary, not cli::run".into()))
        }
        Some(Command::Demo) => demo::run(&mut out),
        Some(Command::Info(a)) => info::run(&a, &mut out),
        Some(Command::Export(a)) => export::run(&a, &mut out),
        Some(Command::Metrics(a)) => metrics::run(&a, &mut out),
        Some(Command::Predict(a)) => predict::run(&a, &mut out),
        Some(Command::Explain(a)) => explain::run(&a, &mut out),
        Some(Command::Eval(a)) => eval::run(&a, &mut out),
        Some(Command::Bench(a)) => bench::run(&a, &mut out),
        Some(Command::Annotate(a)) => annotate::run(&a, &mut out),
        Some(Command::Train(a)) => train::run(&a, &mut out),
        Some(Command::Study(a)) => study::run(&a, &mut out),
    };
    let _ = out.flush();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Runs a job on this thread as the CLI does (a progress line on stderr when it is a terminal). Model
/// and method errors are bad input (exit 2): they name the file or the parameter at fault.
pub(crate) fn run_cli_job(job: &crate::pipeline::Job) -> Result<crate::pipeline::JobOutput, CliError> {
    use crate::pipeline::{run_job, CancelToken, Context, ModelCache, PipelineError};
    use std::io::IsTerminal;
    let cancel = CancelToken::default();
    let mut cache = ModelCache::default();
    let tty = std::io::stderr().is_terminal();
    let mut progress = |done: usize, total: usize, msg: &str| {
        if tty {
            eprint!("\r{msg} {done}/{total}   ");
        }
    };
    let result = run_job(job, &mut Context { cancel: &cancel, progress: &mut progress, cache: &mut cache });
    if tty {
        eprintln!();
    }
    result.map_err(|e| match e {
        PipelineError::Cancelled => CliError::Failed("cancelled".into()),
        e => CliError::BadInput(e.to_string()),
    })
}

/// `--device`: where models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// CUDA when this build has it and a GPU is present, else the CPU.
    Auto,
    Cpu,
    /// CUDA; falls back to the CPU with a note when no GPU (or no CUDA build) is available.
    Cuda,
}

impl From<DeviceArg> for crate::model::weights::DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        use crate::model::weights::DeviceChoice;
        match d {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Cuda => DeviceChoice::Cuda,
        }
    }
}

/// Formats a float for human-readable tables: up to 6 decimals, no trailing noise.
pub(crate) fn fmt_num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
