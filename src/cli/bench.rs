use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};

use super::CliError;
use crate::io::{load_study, LoadOptions};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Full-size networks with random weights: forward (smp-unet and resnet-unet with a ResNet-50
    /// encoder, DenseNet-121), Grad-CAM forward + backward, forward + input gradient, a ResNet-18 U-Net
    /// training step (AdamW), with each row's peak RSS; next to PyTorch on the same shapes and thread
    /// count when `python3` with torch is available (tools/bench_model_torch.py).
    Model {
        /// Timed runs per row (after one warm-up); the median is reported.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Only rows whose name contains this text.
        #[arg(long)]
        only: Option<String>,
        /// Skip the PyTorch comparison.
        #[arg(long)]
        no_torch: bool,
    },
    /// Time loading a study (e.g. a DICOM series folder): median and best of N runs.
    Load {
        /// The study to load.
        study: PathBuf,
        /// How many timed loads (after one warm-up).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
    },
}

pub fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match &args.what {
        BenchWhat::Model { repeats, only, no_torch } => super::bench_model::run(*repeats, only.as_deref(), *no_torch, out),
        BenchWhat::Load { study, repeats } => {
            let opts = LoadOptions::default();
            // Warm-up: fills the OS page cache so that the runs time decoding, not the disk.
            let first = load_study(study, &opts)?;
            let voxels = first.volume.data().len();
            let mut secs = Vec::with_capacity(*repeats);
            for _ in 0..(*repeats).max(1) {
                let t = Instant::now();
                let s = load_study(study, &opts)?;
                secs.push(t.elapsed().as_secs_f64());
                std::hint::black_box(s);
            }
            secs.sort_by(f64::total_cmp);
            let median = secs[secs.len() / 2];
            let [z, y, x] = first.volume.dims();
            writeln!(out, "load {}: {z} x {y} x {x} voxels", study.display())?;
            writeln!(
                out,
                "median {:.1} ms, best {:.1} ms over {} runs ({:.0} Mvoxel/s)",
                median * 1e3,
                secs[0] * 1e3,
                secs.len(),
                voxels as f64 / median / 1e6
            )?;
            Ok(())
        }
    }
}
