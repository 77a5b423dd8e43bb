//! `radlens bench model`: full-size networks on the CPU (forward, Grad-CAM forward + backward, a
//! forward + backward to the input, a training step), and the same work in PyTorch when it is installed
//! (tools/bench_model_torch.py). Random weights (values do not change the arithmetic), never zeros.
//! Each row also reports the peak resident memory of its timed runs.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use crate::train::optim::Adam;

use super::CliError;
use crate::model::densenet::{DenseNet, DenseNetConfig};
use crate::model::resnet_unet::{ResNetUnet, ResNetUnetConfig};
use crate::model::smp_unet::{smp_unet_resnet, SmpUnetConfig};
use crate::model::Network;
use crate::xai::Target;

/// What a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Inference forward (weights are plain tensors).
    Forward,
    /// pytorch-grad-cam's work: activations at `encoder.layer4` and the gradient of the summed output
    /// with respect to them (radlens: `xai::cam::activations_and_gradients`).
    GradCam,
    /// Forward, then the gradient of the summed output with respect to the input (saliency-style; the
    /// whole network is traversed backwards).
    InputGrad,
    /// One training step: forward, BCE-with-logits loss against a fixed mask, backward to every
    /// parameter, AdamW update, with BatchNorm in training mode (batch statistics, running statistics
    /// updated) in both frameworks, as `radlens train` and `model.train()` run it.
    Train,
}

/// (row name = "<work> <arch> <batch>x3x<side>", work, batch, side). The names are shared with the
/// PyTorch script.
const ROWS: &[(&str, Work, usize, usize)] = &[
    ("forward smp-unet-resnet50 1x3x256", Work::Forward, 1, 256),
    ("forward smp-unet-resnet50 1x3x512", Work::Forward, 1, 512),
    ("forward smp-unet-resnet50 8x3x256", Work::Forward, 8, 256),
    ("gradcam smp-unet-resnet50 1x3x256", Work::GradCam, 1, 256),
    ("inputgrad smp-unet-resnet50 1x3x512", Work::InputGrad, 1, 512),
    ("train resnet-unet-resnet18 2x3x256", Work::Train, 2, 256),
    ("forward resnet-unet-resnet50 1x3x256", Work::Forward, 1, 256),
    ("forward resnet-unet-resnet50 8x3x256", Work::Forward, 8, 256),
    ("forward densenet121 1x3x224", Work::Forward, 1, 224),
    ("forward densenet121 8x3x224", Work::Forward, 8, 224),
];

fn arch_of(row: &str) -> &str {
    row.split(' ').nth(1).unwrap_or(row)
}

fn build(name: &str, vb: VarBuilder) -> candle_core::Result<Box<dyn Network>> {
    Ok(match name {
        "smp-unet-resnet50" => Box::new(smp_unet_resnet(vb, 50, &SmpUnetConfig::default(), 1)?),
        "resnet-unet-resnet50" => Box::new(ResNetUnet::new(vb, &ResNetUnetConfig::resnet50(), 1)?),
        "resnet-unet-resnet18" => Box::new(ResNetUnet::new(vb, &ResNetUnetConfig::resnet18(), 1)?),
        "densenet121" => Box::new(DenseNet::load(vb, &DenseNetConfig::densenet121().with_num_classes(3))?),
        other => candle_core::bail!("unknown benchmark network {other}"),
    })
}

/// A network with randomly initialised parameters: as plain tensors (not `Var`s, so that inference
/// records no gradient graph and BatchNorm is folded, as with real checkpoints) unless `trainable`.
fn random_network(name: &str, trainable: bool) -> candle_core::Result<(Box<dyn Network>, VarMap)> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let net = build(name, VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    if trainable {
        return Ok((net, varmap));
    }
    let tensors = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("variable map poisoned".into()))?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect();
    Ok((build(name, VarBuilder::from_tensors(tensors, DType::F32, &dev))?, VarMap::new()))
}

/// One run of the row's work.
fn run_once(
    net: &dyn Network,
    work: Work,
    x: &Tensor,
    train: Option<&mut (Adam, Tensor)>,
) -> candle_core::Result<()> {
    match work {
        Work::Forward => {
            std::hint::black_box(net.forward(x)?);
        }
        Work::GradCam => {
            let (a, g) = crate::xai::cam::activations_and_gradients(net, x, "encoder.layer4", &Target::Sum)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            std::hint::black_box((a, g));
        }
        Work::InputGrad => {
            let xv = Var::from_tensor(x)?;
            let grads = net.forward(xv.as_tensor())?.sum_all()?.backward()?;
            std::hint::black_box(grads.get(xv.as_tensor()).map(|g| g.dims().to_vec()));
        }
        Work::Train => {
            let Some((opt, mask)) = train else { candle_core::bail!("training row without an optimiser") };
            let _mode = crate::model::train_mode::TrainMode::enter(true);
            let logits = net.forward(x)?;
            let loss = candle_nn::loss::binary_cross_entropy_with_logit(&logits, mask)?;
            opt.step(&loss.backward()?)?;
        }
    }
    Ok(())
}

/// One row's figures: median wall seconds, mean process CPU seconds per run (all threads; on a busy
/// machine this is the fairer comparison), peak resident memory in bytes.
#[derive(Debug, Clone, Copy)]
struct Figures {
    seconds: f64,
    cpu_seconds: Option<f64>,
    peak_rss: Option<u64>,
}

/// Median seconds, CPU seconds and peak resident memory (when /proc allows resetting the high-water
/// mark).
fn time_row(
    net: &dyn Network,
    varmap: &VarMap,
    work: Work,
    batch: usize,
    side: usize,
    repeats: usize,
) -> candle_core::Result<Figures> {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1f32, (batch, 3, side, side), &dev)?;
    let mut train = if work == Work::Train {
        // radlens train's optimiser with torch.optim.AdamW's default weight decay (as the PyTorch row).
        let vars = varmap.data().lock().map_err(|_| candle_core::Error::Msg("variables locked".into()))?;
        let mut opt = Adam::new(vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect(), 1e-4)?;
        opt.weight_decay = 0.01;
        let mask =
            Tensor::rand(0f32, 1f32, (batch, 1, side, side), &dev)?.ge(0.5f32)?.to_dtype(DType::F32)?;
        Some((opt, mask))
    } else {
        None
    };
    run_once(net, work, &x, train.as_mut())?; // warm-up: allocator, caches
                                              // The peak is this row's own: free heap kept from building the network and from earlier rows
                                              // (main.rs keeps up to 1 GiB) goes back to the system first; the timed runs then grow it again.
    release_free_heap();
    let peak_reset = reset_peak_rss();
    let cpu_start = cpu_seconds();
    let mut secs = Vec::new();
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        run_once(net, work, &x, train.as_mut())?;
        secs.push(t.elapsed().as_secs_f64());
    }
    let cpu = match (cpu_start, cpu_seconds()) {
        (Some(a), Some(b)) => Some((b - a) / secs.len() as f64),
        _ => None,
    };
    secs.sort_by(f64::total_cmp);
    Ok(Figures {
        seconds: secs[secs.len() / 2],
        cpu_seconds: cpu,
        peak_rss: if peak_reset { peak_rss() } else { None },
    })
}

/// User + system CPU time of the whole process (all threads), from Linux's /proc/self/stat.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is the first, utime the 12th, stime the 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// Hands free heap memory back to the system (glibc's `malloc_trim`), so that a peak RSS measured
/// afterwards is not inflated by memory freed before.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Resets the process's peak RSS (`VmHWM`) on Linux; false where that is not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak RSS in bytes since the last reset (Linux `VmHWM`).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// PyTorch's figures for the same rows, if python3 with torch and the script are available.
fn torch_times(rows: &[&(&str, Work, usize, usize)], repeats: usize, threads: usize) -> Option<Vec<Figures>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/bench_model_torch.py");
    if !script.is_file() {
        return None;
    }
    let names: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--repeats",
            &repeats.to_string(),
            "--threads",
            &threads.to_string(),
            "--rows",
            &names.join(","),
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    names
        .iter()
        .map(|n| {
            let row = v.get(*n)?;
            Some(Figures {
                seconds: row.get("seconds")?.as_f64()?,
                cpu_seconds: row.get("cpu_seconds").and_then(|r| r.as_f64()),
                peak_rss: row.get("peak_rss").and_then(|r| r.as_u64()),
            })
        })
        .collect()
}

fn gb(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".to_string(), |b| format!("{:.2}", b as f64 / 1e9))
}

pub fn run(repeats: usize, only: Option<&str>, no_torch: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let rows: Vec<&(&str, Work, usize, usize)> =
        ROWS.iter().filter(|r| only.is_none_or(|o| r.0.contains(o))).collect();
    if rows.is_empty() {
        return Err(CliError::BadInput(format!("no benchmark row matches '{}'", only.unwrap_or_default())));
    }
    // rayon's pool size (RAYON_NUM_THREADS, else the cores): candle and the convolution use it.
    let threads = rayon::current_num_threads();
    let torch = if no_torch { None } else { torch_times(&rows, repeats, threads) };
    writeln!(
        out,
        "CPU, {threads} threads; wall: median of {repeats} runs after one warm-up; cpu: mean process CPU time \
         per run (all threads); GB: peak RSS of the timed runs; ratio: radlens / torch wall time"
    )?;
    writeln!(
        out,
        "{:<38} {:>9} {:>9} {:>7} {:>9} {:>9} {:>7} {:>7}",
        "row", "radlens s", "torch s", "ratio", "rl cpu s", "pt cpu s", "rl GB", "pt GB"
    )?;
    let mut current: Option<(String, bool, Box<dyn Network>, VarMap)> = None;
    for (i, (name, work, batch, side)) in rows.iter().enumerate() {
        let arch = arch_of(name).to_string();
        let trainable = *work == Work::Train;
        if current.as_ref().map(|c| (&c.0, c.1)) != Some((&arch, trainable)) {
            drop(current.take()); // free the previous network before building the next
            let (net, varmap) =
                random_network(&arch, trainable).map_err(|e| CliError::Failed(e.to_string()))?;
            current = Some((arch, trainable, net, varmap));
        }
        let Some((_, _, net, varmap)) = &current else { continue };
        let f = time_row(net.as_ref(), varmap, *work, *batch, *side, repeats)
            .map_err(|e| CliError::Failed(format!("{name}: {e}")))?;
        let t = torch.as_ref().map(|v| v[i]);
        let cpu = |c: Option<f64>| c.map_or_else(|| "-".to_string(), |c| format!("{c:.3}"));
        writeln!(
            out,
            "{name:<38} {:>9.3} {:>9} {:>7} {:>9} {:>9} {:>7} {:>7}",
            f.seconds,
            t.map_or_else(|| "-".to_string(), |t| format!("{:.3}", t.seconds)),
            t.map_or_else(|| "-".to_string(), |t| format!("{:.2}x", f.seconds / t.seconds)),
            cpu(f.cpu_seconds),
            cpu(t.and_then(|t| t.cpu_seconds)),
            gb(f.peak_rss),
            gb(t.and_then(|t| t.peak_rss)),
        )?;
        out.flush()?;
    }
    if torch.is_none() && !no_torch {
        writeln!(
            out,
            "(PyTorch not found: install torch and segmentation-models-pytorch for the comparison)"
        )?;
    }
    Ok(())
}
