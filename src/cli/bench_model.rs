//! `radlens bench model`: forward time of full-size networks on the CPU, and the same shapes in PyTorch
//! when it is installed. Random weights (values do not change the arithmetic), never zeros.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::CliError;
use crate::model::densenet::{DenseNet, DenseNetConfig};
use crate::model::resnet_unet::{ResNetUnet, ResNetUnetConfig};
use crate::model::smp_unet::{smp_unet_resnet, SmpUnetConfig};
use crate::model::Network;

/// (row name, batch, side)
const ROWS: &[(&str, usize, usize)] = &[
    ("smp-unet-resnet50 1x3x256", 1, 256),
    ("smp-unet-resnet50 1x3x512", 1, 512),
    ("smp-unet-resnet50 8x3x256", 8, 256),
    ("resnet-unet-resnet50 1x3x256", 1, 256),
    ("resnet-unet-resnet50 1x3x512", 1, 512),
    ("resnet-unet-resnet50 8x3x256", 8, 256),
    ("densenet121 1x3x224", 1, 224),
    ("densenet121 8x3x224", 8, 224),
];

/// Builds a network with randomly initialised parameters held as plain tensors (not `Var`s, so that
/// the forward records no gradient graph, as with real checkpoints).
fn random_network(name: &str) -> candle_core::Result<Box<dyn Network>> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let build = |vb: VarBuilder| -> candle_core::Result<Box<dyn Network>> {
        Ok(if name.starts_with("smp-unet") {
            Box::new(smp_unet_resnet(vb, 50, &SmpUnetConfig::default(), 1)?)
        } else if name.starts_with("resnet-unet") {
            Box::new(ResNetUnet::new(vb, &ResNetUnetConfig::resnet50(), 1)?)
        } else {
            Box::new(DenseNet::load(vb, &DenseNetConfig::densenet121().with_num_classes(3))?)
        })
    };
    build(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    let tensors = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("variable map poisoned".into()))?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect();
    build(VarBuilder::from_tensors(tensors, DType::F32, &dev))
}

fn time_row(net: &dyn Network, batch: usize, side: usize, repeats: usize) -> candle_core::Result<f64> {
    let x = Tensor::randn(0f32, 1f32, (batch, 3, side, side), &Device::Cpu)?;
    net.forward(&x)?; // warm-up: allocator, caches
    let mut secs = Vec::new();
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        std::hint::black_box(net.forward(&x)?);
        secs.push(t.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    Ok(secs[secs.len() / 2])
}

/// PyTorch's times for the same rows, if python3 with torch and the script are available.
fn torch_times(rows: &[&(&str, usize, usize)], repeats: usize, threads: usize) -> Option<Vec<f64>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/bench_model_torch.py");
    if !script.is_file() {
        return None;
    }
    let names: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(["--repeats", &repeats.to_string(), "--threads", &threads.to_string(), "--rows", &names.join(",")])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    names.iter().map(|n| v.get(*n).and_then(|t| t.as_f64())).collect()
}

pub fn run(repeats: usize, only: Option<&str>, no_torch: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let rows: Vec<&(&str, usize, usize)> = ROWS.iter().filter(|r| only.is_none_or(|o| r.0.contains(o))).collect();
    if rows.is_empty() {
        return Err(CliError::BadInput(format!("no benchmark row matches '{}'", only.unwrap_or_default())));
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let torch = if no_torch { None } else { torch_times(&rows, repeats, threads) };
    writeln!(out, "forward, CPU, {threads} threads, median of {repeats} (after one warm-up)")?;
    writeln!(out, "{:<32} {:>12} {:>12} {:>8}", "row", "radlens (s)", "torch (s)", "ratio")?;
    let mut current: Option<(String, Box<dyn Network>)> = None;
    for (i, (name, batch, side)) in rows.iter().enumerate() {
        let arch = name.split(' ').next().unwrap_or(name).to_string();
        if current.as_ref().map(|c| &c.0) != Some(&arch) {
            let net = random_network(&arch).map_err(|e| CliError::Failed(e.to_string()))?;
            current = Some((arch, net));
        }
        let Some((_, net)) = &current else { continue };
        let t = time_row(net.as_ref(), *batch, *side, repeats).map_err(|e| CliError::Failed(e.to_string()))?;
        match torch.as_ref().map(|v| v[i]) {
            Some(tt) => writeln!(out, "{name:<32} {t:>12.3} {tt:>12.3} {:>7.1}x", t / tt)?,
            None => writeln!(out, "{name:<32} {t:>12.3} {:>12} {:>8}", "-", "-")?,
        }
        out.flush()?;
    }
    if torch.is_none() && !no_torch {
        writeln!(out, "(PyTorch not found: install torch and segmentation-models-pytorch for the comparison)")?;
    }
    Ok(())
}
