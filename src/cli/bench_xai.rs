//! `radlens bench xai`: the time of one explanation per method on full-size networks with random
//! weights (smp-unet ResNet-50 at 256², DenseNet-121 at 224²) on the demo chest X-ray, CPU, and — when
//! python3 with torch is installed — the reference packages on the same weights, image and target
//! (tools/bench_xai_torch.py): pytorch-grad-cam (Grad-CAM++, Score-CAM), lime (fixed sample count),
//! shap's KernelExplainer over radlens's superpixels, captum's Integrated Gradients.
//!
//! Targets: the top class (DenseNet), the predicted region of class 0 (the U-Net; the whole output when
//! nothing is predicted). Layers: `features.denseblock4` and `encoder.layer4` for the CAMs. Score-CAM
//! costs one forward per channel (1,024 and 2,048 there); `--quick` runs it on a narrower layer
//! (`features.transition1`, 128 channels; `decoder.blocks.3`, 32 channels) and LIME and KernelSHAP
//! with 100 samples — on both sides, and the table says so.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::CliError;
use crate::model::densenet::{DenseNet, DenseNetConfig};
use crate::model::preprocess::{normalize, resize_bilinear, to_u8_grey};
use crate::model::smp_unet::{smp_unet_resnet, SmpUnetConfig};
use crate::model::{load_model, Task};
use crate::xai::gradcam_pp::GradCamPlusPlus;
use crate::xai::integrated_gradients::IntegratedGradients;
use crate::xai::kernelshap::KernelShap;
use crate::xai::lime::Lime;
use crate::xai::perturb::spearman;
use crate::xai::scorecam::ScoreCam;
use crate::xai::superpixels::Segmentation;
use crate::xai::{ExplainInput, Explainer, Params, Target};

/// Options of `radlens bench xai`.
#[derive(Debug, Clone)]
pub struct XaiBenchOptions {
    pub quick: bool,
    /// LIME / KernelSHAP samples (default 1000, 100 with `quick`).
    pub samples: Option<usize>,
    /// Only rows whose name contains this text.
    pub only: Option<String>,
    pub no_torch: bool,
}

struct Case {
    arch: &'static str,
    side: usize,
    cam_layer: &'static str,
    quick_scorecam_layer: &'static str,
}

const CASES: [Case; 2] = [
    Case {
        arch: "densenet121",
        side: 224,
        cam_layer: "features.denseblock4",
        quick_scorecam_layer: "features.transition1",
    },
    Case {
        arch: "smp-unet-resnet50",
        side: 256,
        cam_layer: "encoder.layer4",
        quick_scorecam_layer: "decoder.blocks.3",
    },
];

const METHODS: [&str; 6] = ["gradcam++", "scorecam", "lime", "lime-adaptive", "kernelshap", "ig"];

/// IoU of the `k` largest entries of two weight vectors.
fn top_k_iou(a: &[f64], b: &[f64], k: usize) -> f64 {
    let top = |w: &[f64]| -> std::collections::BTreeSet<usize> {
        let mut idx: Vec<usize> = (0..w.len()).collect();
        idx.sort_by(|&i, &j| w[j].total_cmp(&w[i]).then(i.cmp(&j)));
        idx.into_iter().take(k).collect()
    };
    let (ta, tb) = (top(a), top(b));
    let union = ta.union(&tb).count().max(1);
    ta.intersection(&tb).count() as f64 / union as f64
}

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

/// Random parameters with the PyTorch state-dict names, written as a model folder.
fn write_random_model(case: &Case, dir: &Path) -> Result<PathBuf, CliError> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let (task, activation, classes) = if case.arch == "densenet121" {
        DenseNet::load(vb, &DenseNetConfig::densenet121().with_num_classes(3)).map_err(failed)?;
        ("classification", "softmax", r#"["a", "b", "c"]"#)
    } else {
        smp_unet_resnet(vb, 50, &SmpUnetConfig::default(), 1).map_err(failed)?;
        ("segmentation", "sigmoid", r#"["lesion"]"#)
    };
    let tensors: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .map_err(|_| failed("variable map poisoned"))?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect();
    candle_core::safetensors::save(&tensors, dir.join("weights.safetensors")).map_err(failed)?;
    let encoder = if case.arch == "densenet121" { "" } else { "encoder = \"resnet50\"\n" };
    let arch = if case.arch == "densenet121" { "densenet121" } else { "smp-unet" };
    let toml = format!(
        "name = \"bench-{}\"\narch = \"{arch}\"\n{encoder}weights = \"weights.safetensors\"\ntask = \"{task}\"\n\
         activation = \"{activation}\"\ninput_size = [{s}, {s}]\nin_channels = 3\nnormalize = \"imagenet\"\n\
         classes = {classes}\ncam_layer = \"{}\"\n",
        case.arch,
        case.cam_layer,
        s = case.side
    );
    let manifest = dir.join("model.toml");
    std::fs::write(&manifest, toml).map_err(failed)?;
    Ok(manifest)
}

/// The demo chest X-ray as 8-bit grey at `side`².
fn demo_grey(side: usize) -> Result<Vec<f32>, CliError> {
    let cases = crate::io::demo::demo_cases().map_err(failed)?;
    let cxr = cases.iter().find(|c| c.name.starts_with("cxr")).ok_or_else(|| failed("no demo X-ray"))?;
    let [_, h, w] = cxr.volume.dims();
    let grey = to_u8_grey(cxr.volume.slice(0), false, None);
    Ok(resize_bilinear(&grey, h, w, side, side))
}

fn write_npy_f32(path: &Path, v: &[f32], shape: &[usize]) -> Result<(), CliError> {
    let a = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), v.to_vec()).map_err(failed)?;
    ndarray_npy::write_npy(path, &a).map_err(failed)
}

/// The reference packages' times for `methods` of one case (None when python/torch are missing).
#[allow(clippy::too_many_arguments)]
fn torch_times(
    dir: &Path,
    case: &Case,
    target: &str,
    samples: usize,
    scorecam_layer: &str,
    methods: &[&str],
    threads: usize,
    out: &mut dyn Write,
) -> Option<HashMap<String, f64>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/bench_xai_torch.py");
    if !script.is_file() {
        return None;
    }
    let res = std::process::Command::new("python3")
        .arg(&script)
        .args(["--dir", &dir.display().to_string(), "--arch", case.arch, "--target", target])
        .args(["--samples", &samples.to_string(), "--cam-layer", case.cam_layer])
        .args(["--scorecam-layer", scorecam_layer, "--threads", &threads.to_string()])
        .args(["--methods", &methods.join(",")])
        .output()
        .ok()?;
    if !res.status.success() {
        let err = String::from_utf8_lossy(&res.stderr);
        let last = err.lines().last().unwrap_or("").to_string();
        let _ = writeln!(out, "(reference packages failed for {}: {last})", case.arch);
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).ok()?;
    Some(methods.iter().filter_map(|m| Some((m.to_string(), v.get(*m)?.as_f64()?))).collect())
}

pub fn run(opts: &XaiBenchOptions, out: &mut dyn Write) -> Result<(), CliError> {
    let samples = opts.samples.unwrap_or(if opts.quick { 100 } else { 1000 });
    if samples < 2 {
        return Err(CliError::BadInput(format!("--samples must be at least 2, got {samples}")));
    }
    let rows: Vec<(usize, &str)> = (0..CASES.len())
        .flat_map(|c| METHODS.iter().map(move |m| (c, *m)))
        .filter(|(c, m)| opts.only.as_deref().is_none_or(|o| format!("{} {m}", CASES[*c].arch).contains(o)))
        .collect();
    if rows.is_empty() {
        return Err(CliError::BadInput(format!(
            "no benchmark row matches '{}'",
            opts.only.as_deref().unwrap_or_default()
        )));
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    writeln!(
        out,
        "one explanation per method, CPU, {threads} threads; LIME/KernelSHAP {samples} samples on both sides{}; \
         load average {}",
        if opts.quick { " (--quick)" } else { "" },
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )?;
    writeln!(out, "{:<42} {:>12} {:>12} {:>10}  reference", "row", "radlens (s)", "ref (s)", "ratio")?;
    let tmp = tempfile::tempdir().map_err(failed)?;
    for (ci, case) in CASES.iter().enumerate() {
        let methods: Vec<&str> = rows.iter().filter(|r| r.0 == ci).map(|r| r.1).collect();
        if methods.is_empty() {
            continue;
        }
        let dir = tmp.path().join(case.arch);
        std::fs::create_dir_all(&dir).map_err(failed)?;
        let manifest = write_random_model(case, &dir)?;
        let model = load_model(&manifest, &Device::Cpu).map_err(failed)?;
        let m = &model.manifest;
        let grey = demo_grey(case.side)?;
        let x =
            Tensor::from_vec(normalize(&grey, m.normalize, 3), (1, 3, case.side, case.side), &Device::Cpu)
                .map_err(failed)?;
        let target =
            Target::default_for(model.net.as_ref(), &x, m.activation, m.threshold).map_err(failed)?;
        let target_arg = match &target {
            Target::Class(c) => c.to_string(),
            Target::Region { mask, .. } => {
                let v: Vec<f32> = mask.iter().map(|&b| b as u8 as f32).collect();
                write_npy_f32(&dir.join("mask.npy"), &v, &[case.side, case.side])?;
                "mask".into()
            }
            Target::Sum => "sum".into(),
        };
        write_npy_f32(&dir.join("grey.npy"), &grey, &[case.side, case.side])?;
        let (labels, _) = Segmentation::default().labels(&grey, case.side, case.side);
        let lv: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
        write_npy_f32(&dir.join("superpixels.npy"), &lv, &[case.side, case.side])?;
        let scorecam_layer = if opts.quick { case.quick_scorecam_layer } else { case.cam_layer };
        let reference = if opts.no_torch {
            None
        } else {
            torch_times(&dir, case, &target_arg, samples, scorecam_layer, &methods, threads, out)
        };
        let target_name = match (&target, model.net.task()) {
            (Target::Class(c), _) => format!("class {c}"),
            (Target::Region { mask, .. }, _) => format!("region {} px", mask.iter().filter(|&&b| b).count()),
            (_, Task::Segmentation) => "whole output".into(),
            _ => "sum".into(),
        };
        writeln!(out, "{} {}² (random weights), target {target_name}", case.arch, case.side)?;
        let mut fixed_lime: Option<Vec<f64>> = None;
        let mut agreement = String::new();
        for method in methods {
            let (explainer, layer, peer): (Box<dyn Explainer>, Option<&str>, String) = match method {
                "gradcam++" => (Box::new(GradCamPlusPlus), Some(case.cam_layer), "pytorch-grad-cam".into()),
                "scorecam" => (Box::new(ScoreCam), Some(scorecam_layer), "pytorch-grad-cam".into()),
                "lime" => (Box::new(Lime::fixed()), None, format!("lime {samples}")),
                "lime-adaptive" => (Box::new(Lime::default()), None, format!("lime {samples}")),
                "kernelshap" => (Box::new(KernelShap::default()), None, format!("shap Kernel {samples}")),
                _ => (Box::new(IntegratedGradients::default()), None, "captum IG 50".into()),
            };
            let params = Params {
                layer: layer.map(str::to_string),
                samples: Some(samples),
                batch: 16,
                steps: Some(50),
                ..Params::default()
            };
            let input = ExplainInput {
                net: model.net.as_ref(),
                input: &x,
                grey: &grey,
                target: &target,
                default_layer: m.cam_layer.as_deref(),
            };
            let t0 = Instant::now();
            let mut forwards = 0;
            let map = explainer
                .explain(&input, &params, &mut |done, _| {
                    forwards = done;
                    true
                })
                .map_err(failed)?;
            let secs = t0.elapsed().as_secs_f64();
            let weights: Option<Vec<f64>> =
                map.extras.superpixel_weights.as_ref().map(|w| w.iter().map(|&v| v as f64).collect());
            match (method, &weights, &fixed_lime) {
                ("lime", Some(w), _) => fixed_lime = Some(w.clone()),
                ("lime-adaptive", Some(w), Some(f)) => {
                    let k = f.len().div_ceil(4);
                    agreement = format!(
                        "{} adaptive LIME vs the {samples}-sample map: Spearman {:.3} of {} superpixel weights, \
                         top-{k} IoU {:.3}",
                        case.arch,
                        spearman(w, f),
                        f.len(),
                        top_k_iou(w, f, k)
                    );
                }
                _ => {}
            }
            let name = match (method, layer) {
                ("scorecam", Some(l)) => format!("{} scorecam {l}", case.arch),
                ("lime-adaptive", _) => format!("{} lime-adaptive ({forwards} samples)", case.arch),
                _ => format!("{} {method}", case.arch),
            };
            let peer_key = if method == "lime-adaptive" { "lime" } else { method };
            match reference.as_ref().and_then(|r| r.get(peer_key)) {
                Some(&t) => {
                    let ratio = if secs <= t {
                        format!("{:.2}x faster", t / secs)
                    } else {
                        format!("{:.2}x slower", secs / t)
                    };
                    writeln!(out, "{name:<42} {secs:>12.2} {t:>12.2} {ratio:>10}  {peer}")?
                }
                None => writeln!(out, "{name:<42} {secs:>12.2} {:>12} {:>10}  {peer}", "-", "-")?,
            }
            out.flush()?;
        }
        if !agreement.is_empty() {
            writeln!(out, "{agreement}")?;
        }
    }
    if opts.no_torch {
        writeln!(out, "(reference packages skipped: --no-torch)")?;
    }
    Ok(())
}
