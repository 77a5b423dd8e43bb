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
    /// Time of one explanation per method (Grad-CAM++, Score-CAM, LIME fixed and adaptive, KernelSHAP,
    /// Integrated Gradients) on smp-unet ResNet-50 at 256² and DenseNet-121 at 224² (random weights, the
    /// demo chest X-ray), next to pytorch-grad-cam, lime, shap and captum on the same weights, image and
    /// target when `python3` with them is available (tools/bench_xai_torch.py).
    Xai {
        /// LIME and KernelSHAP with 100 samples, Score-CAM on a narrower layer (both sides); minutes
        /// instead of most of an hour.
        #[arg(long)]
        quick: bool,
        /// LIME / KernelSHAP samples (default 1000; 100 with --quick).
        #[arg(long)]
        samples: Option<usize>,
        /// Only rows whose name ("densenet121 lime", "smp-unet-resnet50 ig", ...) contains this text.
        #[arg(long)]
        only: Option<String>,
        /// Skip the reference packages.
        #[arg(long)]
        no_torch: bool,
    },
    /// Viewer frame times, headless: four linked panels with overlays scrolling a synthetic volume
    /// (p50/p99 per frame, texture uploads). Uses the first wgpu adapter (software on machines without
    /// a GPU).
    Frames {
        /// Slices of the synthetic volume.
        #[arg(long, default_value_t = 300)]
        slices: usize,
        /// Panel and slice size in pixels.
        #[arg(long, default_value_t = 512)]
        size: usize,
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
        BenchWhat::Model { repeats, only, no_torch } => {
            super::bench_model::run(*repeats, only.as_deref(), *no_torch, out)
        }
        BenchWhat::Xai { quick, samples, only, no_torch } => {
            let opts = super::bench_xai::XaiBenchOptions {
                quick: *quick,
                samples: *samples,
                only: only.clone(),
                no_torch: *no_torch,
            };
            super::bench_xai::run(&opts, out)
        }
        BenchWhat::Frames { slices, size } => super::bench_frames::run(*slices, *size, out),
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
