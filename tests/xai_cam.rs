//! The CAM family: known answers on a hand-built network, parity with pytorch-grad-cam on the narrow
//! fixtures (tools/make_xai_cam_fixtures.py), Score-CAM's numerical safety, a weight-randomisation sanity
//! check and determinism.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor, D};
use radlens::io::npy::read_npy_f32;
use radlens::model::preprocess::resize_bilinear;
use radlens::model::{load_model, LoadedModel, Network, Tap, Task};
use radlens::xai::ablationcam::AblationCam;
use radlens::xai::cam::{activations_and_gradients, weighted_map, CamWeights};
use radlens::xai::eigencam::EigenCam;
use radlens::xai::gradcam::GradCam;
use radlens::xai::gradcam_pp::GradCamPlusPlus;
use radlens::xai::hirescam::HiResCam;
use radlens::xai::layercam::LayerCam;
use radlens::xai::scorecam::ScoreCam;
use radlens::xai::xgradcam::XGradCam;
use radlens::xai::{ExplainInput, Explainer, Heatmap, Params, Target, XaiError};

// ---------------------------------------------------------------------------------------------------
// A tiny network with chosen weights: conv 3×3 stride 2 pad 1 (1 → 3 channels) → ReLU → tap "features"
// → global average pool → linear (3 → 2).

const X: [f32; 16] = [0.5, 1.0, -0.5, 2.0, 1.5, -1.0, 0.25, 0.75, 0.0, 2.5, 1.0, -0.25, 1.25, 0.5, -1.5, 3.0];
const K0: [f32; 9] = [0.1, 0.2, 0.0, -0.1, 0.3, 0.1, 0.0, 0.2, 0.1];
const K1: [f32; 9] = [0.0, -0.2, 0.1, 0.3, 0.1, 0.0, 0.2, 0.0, 0.2];
const K2: [f32; 9] = [0.0; 9]; // channel 2: constant (bias only)
const CONV_BIAS: [f32; 3] = [0.05, 0.1, 0.5];
const LIN_W: [[f32; 3]; 2] = [[0.8, -0.6, 0.3], [0.4, 0.9, -0.2]];
const LIN_B: [f32; 2] = [0.1, -0.1];

struct Tiny {
    conv_w: Tensor,
    conv_b: Tensor,
    lin_w: Tensor,
    lin_b: Tensor,
}

impl Tiny {
    fn new() -> Tiny {
        let d = &Device::Cpu;
        let kw: Vec<f32> = [K0, K1, K2].concat();
        Tiny {
            conv_w: Tensor::from_vec(kw, (3, 1, 3, 3), d).unwrap(),
            conv_b: Tensor::from_vec(CONV_BIAS.to_vec(), (1, 3, 1, 1), d).unwrap(),
            lin_w: Tensor::from_vec(LIN_W.concat(), (2, 3), d).unwrap(),
            lin_b: Tensor::from_vec(LIN_B.to_vec(), (1, 2), d).unwrap(),
        }
    }
    fn input() -> Tensor {
        Tensor::from_vec(X.to_vec(), (1, 1, 4, 4), &Device::Cpu).unwrap()
    }
}

impl Network for Tiny {
    fn forward_tap(&self, x: &Tensor, tap: &mut Tap) -> candle_core::Result<Tensor> {
        let a = x.conv2d(&self.conv_w, 1, 2, 1, 1)?.broadcast_add(&self.conv_b)?.relu()?;
        let a = tap.visit("features", a);
        let pooled = a.mean(D::Minus1)?.mean(D::Minus1)?; // (N, 3)
        pooled.matmul(&self.lin_w.t()?)?.broadcast_add(&self.lin_b)
    }
    fn task(&self) -> Task {
        Task::Classification
    }
}

/// A = relu(conv(x)) by hand: (3, 2, 2).
fn tiny_activations() -> Vec<[[f64; 2]; 2]> {
    let x = |r: isize, c: isize| -> f64 {
        if (0..4).contains(&r) && (0..4).contains(&c) {
            X[(r * 4 + c) as usize] as f64
        } else {
            0.0
        }
    };
    [K0, K1, K2]
        .iter()
        .zip(CONV_BIAS)
        .map(|(k, b)| {
            let mut out = [[0.0; 2]; 2];
            for (oy, row) in out.iter_mut().enumerate() {
                for (ox, v) in row.iter_mut().enumerate() {
                    let mut s = b as f64;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            s += k[ky * 3 + kx] as f64
                                * x(oy as isize * 2 - 1 + ky as isize, ox as isize * 2 - 1 + kx as isize);
                        }
                    }
                    *v = s.max(0.0);
                }
            }
            out
        })
        .collect()
}

fn hand_map(weights: &[f64], a: &[[[f64; 2]; 2]]) -> Vec<f64> {
    let mut m = [0.0; 4];
    for (k, ak) in a.iter().enumerate() {
        for y in 0..2 {
            for x in 0..2 {
                m[y * 2 + x] += weights[k] * ak[y][x];
            }
        }
    }
    m.iter().map(|v| v.max(0.0)).collect()
}

fn explain_with(
    net: &dyn Network,
    x: &Tensor,
    target: &Target,
    layer: Option<&str>,
    method: &dyn Explainer,
    params: &Params,
) -> Result<Heatmap, XaiError> {
    let input = ExplainInput { net, input: x, grey: &[], target, default_layer: layer };
    method.explain(&input, params, &mut |_, _| true)
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= tol, "{what}[{i}]: got {g}, want {w}\n got {got:?}\nwant {want:?}");
    }
}

#[test]
fn gradcam_known_answer_on_a_hand_built_network() {
    let net = Tiny::new();
    let x = Tiny::input();
    let a_hand = tiny_activations();
    for (class, lin) in LIN_W.iter().enumerate() {
        let target = Target::Class(class);
        let (a, g) = activations_and_gradients(&net, &x, "features", &target).unwrap();
        // Activations and gradients by hand: dscore/dA_k(i,j) = w_ck / (h·w).
        let a_flat: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let a_want: Vec<f64> = a_hand.iter().flat_map(|k| k.iter().flatten().copied()).collect();
        assert_close(&a_flat, &a_want, 1e-6, "activations");
        let g_flat: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        let g_want: Vec<f64> = (0..3).flat_map(|k| std::iter::repeat_n(lin[k] as f64 / 4.0, 4)).collect();
        assert_close(&g_flat, &g_want, 1e-7, "gradients");

        let w: Vec<f64> = (0..3).map(|k| lin[k] as f64 / 4.0).collect();
        let want = hand_map(&w, &a_hand);
        let got = weighted_map(&a, &GradCam.weights(&a, &g).unwrap()).unwrap();
        assert_close(&got.flatten_all().unwrap().to_vec1::<f32>().unwrap(), &want, 1e-6, "Grad-CAM map");

        // The explainer: the same map resized 2×2 → 4×4.
        let map = explain_with(&net, &x, &target, Some("features"), &GradCam, &Params::default()).unwrap();
        assert_eq!((map.height, map.width), (4, 4));
        let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        let resized: Vec<f64> = resize_bilinear(&want32, 2, 2, 4, 4).iter().map(|&v| v as f64).collect();
        assert_close(&map.values, &resized, 1e-6, "Grad-CAM heatmap");
    }
}

#[test]
fn gradcam_plusplus_known_answer_on_a_hand_built_network() {
    let net = Tiny::new();
    let x = Tiny::input();
    let a_hand = tiny_activations();
    for (class, lin) in LIN_W.iter().enumerate() {
        let target = Target::Class(class);
        // Gradients are constant per channel, g_k = w_ck / 4: α_k = g² / (2g² + S_k g³ + 1e-6) where S_k = Σ A_k,
        // weight_k = Σ_ij α_k relu(g_k) = 4 α_k relu(g_k).
        let w: Vec<f64> = (0..3)
            .map(|k| {
                let g = lin[k] as f64 / 4.0;
                let s: f64 = a_hand[k].iter().flatten().sum();
                let alpha = g * g / (2.0 * g * g + s * g * g * g + 1e-6);
                4.0 * alpha * g.max(0.0)
            })
            .collect();
        let want = hand_map(&w, &a_hand);
        let (a, g) = activations_and_gradients(&net, &x, "features", &target).unwrap();
        let weights: Vec<f32> = GradCamPlusPlus.weights(&a, &g).unwrap().to_vec1().unwrap();
        assert_close(&weights, &w, 1e-6, "Grad-CAM++ weights");
        let got = weighted_map(&a, &GradCamPlusPlus.weights(&a, &g).unwrap()).unwrap();
        assert_close(&got.flatten_all().unwrap().to_vec1::<f32>().unwrap(), &want, 1e-6, "Grad-CAM++ map");
        let map =
            explain_with(&net, &x, &target, Some("features"), &GradCamPlusPlus, &Params::default()).unwrap();
        let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        let resized: Vec<f64> = resize_bilinear(&want32, 2, 2, 4, 4).iter().map(|&v| v as f64).collect();
        assert_close(&map.values, &resized, 1e-6, "Grad-CAM++ heatmap");
    }
}

#[test]
fn unknown_layer_lists_the_layers() {
    let net = Tiny::new();
    let x = Tiny::input();
    let params = Params { layer: Some("nope".into()), ..Params::default() };
    for method in all_methods() {
        match explain_with(&net, &x, &Target::Class(0), Some("features"), method.as_ref(), &params) {
            Err(XaiError::UnknownLayer { layer, available }) => {
                assert_eq!(layer, "nope");
                assert!(available.contains("features"), "{available}");
            }
            other => panic!("{}: expected UnknownLayer, got {other:?}", method.name()),
        }
    }
    let err = explain_with(&net, &x, &Target::Class(0), None, &GradCam, &Params::default()).unwrap_err();
    assert!(matches!(err, XaiError::BadParams(_)), "{err:?}");
}

#[test]
fn names() {
    let names: Vec<&str> = all_methods().iter().map(|m| m.name()).collect();
    assert_eq!(
        names,
        ["gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", "eigencam", "scorecam", "ablationcam"]
    );
}

fn all_methods() -> Vec<Box<dyn Explainer>> {
    vec![
        Box::new(GradCam),
        Box::new(GradCamPlusPlus),
        Box::new(XGradCam),
        Box::new(LayerCam),
        Box::new(HiResCam),
        Box::new(EigenCam),
        Box::new(ScoreCam),
        Box::new(AblationCam),
    ]
}

/// Fixture file stem of each method (tools/make_xai_cam_fixtures.py).
const STEMS: [&str; 8] =
    ["gradcam", "gradcam_pp", "xgradcam", "layercam", "hirescam", "eigencam", "scorecam", "ablationcam"];

// ---------------------------------------------------------------------------------------------------
// Score-CAM numerical safety.

#[test]
fn scorecam_has_no_nans_with_a_constant_channel_at_any_batch_size() {
    let net = Tiny::new();
    let x = Tiny::input();
    let mut reference: Option<Heatmap> = None;
    for batch in [1, 2, 3, 4] {
        let mut calls = Vec::new();
        let input = ExplainInput {
            net: &net,
            input: &x,
            grey: &[],
            target: &Target::Class(1),
            default_layer: Some("features"),
        };
        let map = ScoreCam
            .explain(&input, &Params { batch, ..Params::default() }, &mut |d, t| {
                calls.push((d, t));
                true
            })
            .unwrap();
        assert!(map.values.iter().all(|v| v.is_finite()), "batch {batch}: {:?}", map.values);
        let scores = map.extras.channel_scores.clone().unwrap();
        assert_eq!(scores.len(), 3);
        assert!(scores.iter().all(|v| v.is_finite()), "{scores:?}");
        assert!((scores.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(calls.last(), Some(&(3, 3)), "progress {calls:?}");
        match &reference {
            None => reference = Some(map),
            Some(r) => assert_close(
                &map.values,
                &r.values.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                1e-6,
                "batch-size independence",
            ),
        }
    }
}

#[test]
fn scorecam_can_be_cancelled_and_rejects_batch_zero() {
    let net = Tiny::new();
    let x = Tiny::input();
    let input = ExplainInput {
        net: &net,
        input: &x,
        grey: &[],
        target: &Target::Class(0),
        default_layer: Some("features"),
    };
    let r = ScoreCam.explain(&input, &Params { batch: 1, ..Params::default() }, &mut |d, _| d < 1);
    assert!(matches!(r, Err(XaiError::Cancelled)), "{r:?}");
    let r = ScoreCam.explain(&input, &Params { batch: 0, ..Params::default() }, &mut |_, _| true);
    assert!(matches!(r, Err(XaiError::BadParams(_))), "{r:?}");
    let r = AblationCam.explain(&input, &Params { batch: 2, ..Params::default() }, &mut |d, _| d < 2);
    assert!(matches!(r, Err(XaiError::Cancelled)), "{r:?}");
}

// ---------------------------------------------------------------------------------------------------
// Parity with pytorch-grad-cam.

fn model_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(case)
}

fn cam_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xai/cam").join(case)
}

fn npy(path: &Path) -> (Vec<f32>, Vec<usize>) {
    read_npy_f32(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn first_input(case: &str) -> Tensor {
    let (data, shape) = npy(&model_dir(case).join("input.npy"));
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap().narrow(0, 0, 1).unwrap()
}

fn load(case: &str) -> LoadedModel {
    load_model(&model_dir(case).join("model.toml"), &Device::Cpu).unwrap()
}

/// A reference map or mask: float32, or uint16 / uint8 (the `_128` sets, scaled back to 0..1).
fn npy_any(path: &Path) -> (Vec<f32>, Vec<usize>) {
    use ndarray_npy::ReadNpyExt;
    let open = || std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Ok(a) = ndarray::Array2::<u16>::read_npy(open()) {
        return (a.iter().map(|&v| v as f32 / 65535.0).collect(), a.shape().to_vec());
    }
    if let Ok(a) = ndarray::Array2::<u8>::read_npy(open()) {
        return (a.iter().map(|&v| v as f32).collect(), a.shape().to_vec());
    }
    npy(path)
}

/// The fixture's input; `Some(size)`: upsampled as the `_<size>` sets were (bilinear, align_corners=False).
fn fixture_input(case: &str, size: Option<usize>) -> Tensor {
    let x = first_input(case);
    let Some(s) = size else { return x };
    let (_, c, h, w) = x.dims4().unwrap();
    let flat: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let up: Vec<f32> =
        (0..c).flat_map(|ch| resize_bilinear(&flat[ch * h * w..(ch + 1) * h * w], h, w, s, s)).collect();
    Tensor::from_vec(up, (1, c, s, s), &Device::Cpu).unwrap()
}

fn fixture_target(case: &str) -> Target {
    let dir = cam_dir(case);
    if dir.join("mask.npy").exists() {
        let (m, _) = npy_any(&dir.join("mask.npy"));
        Target::Region { class: 0, mask: m.iter().map(|&v| v > 0.5).collect() }
    } else {
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        Target::Class(meta["class"].as_u64().unwrap() as usize)
    }
}

fn minmax(v: &[f32]) -> Vec<f64> {
    let lo = v.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    v.iter().map(|&x| (x as f64 - lo) / (hi - lo + 1e-12)).collect()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

fn parity(case: &str, size: Option<usize>) {
    let model = load(case);
    let x = fixture_input(case, size);
    let set = match size {
        Some(s) => format!("{case}_{s}"),
        None => case.to_string(),
    };
    let case = set.as_str();
    let target = fixture_target(case);
    let layer = model.manifest.cam_layer.clone();
    let mut failures = Vec::new();
    for (method, stem) in all_methods().iter().zip(STEMS) {
        let t = Instant::now();
        let map = explain_with(
            model.net.as_ref(),
            &x,
            &target,
            layer.as_deref(),
            method.as_ref(),
            &Params::default(),
        )
        .unwrap();
        let elapsed = t.elapsed();
        assert!(map.values.iter().all(|v| v.is_finite()), "{case} {stem}: non-finite values");
        let (want, shape) = npy_any(&cam_dir(case).join(format!("{stem}.npy")));
        assert_eq!(shape, vec![map.height, map.width], "{case} {stem}: shape");
        let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
        let r = pearson(&minmax(&map.values), &want);
        println!(
            "parity {case:20} {:12} pearson {r:.6} (1 - r = {:.1e})  ({:.1} ms)",
            method.name(),
            1.0 - r,
            elapsed.as_secs_f64() * 1e3
        );
        if r.is_nan() || r < 0.99 {
            failures.push(format!("{stem}: {r:.4}"));
        }
    }
    assert!(failures.is_empty(), "{case}: correlation < 0.99: {failures:?}");
}

#[test]
fn parity_with_pytorch_grad_cam_smp_unet_resnet18() {
    parity("smp_unet_resnet18", None);
    parity("smp_unet_resnet18", Some(128));
}

#[test]
fn parity_with_pytorch_grad_cam_densenet121_narrow() {
    parity("densenet121_narrow", None);
    parity("densenet121_narrow", Some(128));
}

#[test]
fn scorecam_on_a_fixture_has_no_nans_at_batch_1_3_and_channel_count() {
    let case = "smp_unet_resnet18";
    let model = load(case);
    let x = first_input(case);
    let target = fixture_target(case);
    let layer = model.manifest.cam_layer.clone().unwrap();
    let mut tap = Tap::recording([layer.as_str()]);
    model.net.forward_tap(&x, &mut tap).unwrap();
    let k = tap.get(&layer).unwrap().dim(1).unwrap();
    let mut maps = Vec::new();
    for batch in [1, 3, k] {
        let map = explain_with(
            model.net.as_ref(),
            &x,
            &target,
            Some(&layer),
            &ScoreCam,
            &Params { batch, ..Params::default() },
        )
        .unwrap();
        assert!(map.values.iter().all(|v| v.is_finite()), "batch {batch}");
        assert!(map.extras.channel_scores.as_ref().unwrap().iter().all(|v| v.is_finite()), "batch {batch}");
        assert_eq!(map.extras.channel_scores.as_ref().unwrap().len(), k);
        maps.push(map);
    }
    for m in &maps[1..] {
        let r = pearson(&minmax(&m.values), &minmax(&maps[0].values));
        assert!(r > 0.9999, "batch size changed the map: r = {r}");
    }
}

// ---------------------------------------------------------------------------------------------------
// Sanity: randomising the last block's weights changes the map (Adebayo et al. 2018).

/// Writes a copy of the densenet fixture whose parameters under `prefixes` are replaced by seeded random
/// values (conv / linear weights He-normal, BatchNorm affine and statistics as tools/make_fixtures*.py).
fn randomised_densenet(prefixes: &[&str], dir: &Path) -> usize {
    let src = model_dir("densenet121_narrow");
    std::fs::copy(src.join("model.toml"), dir.join("model.toml")).unwrap();
    let mut sd = candle_core::safetensors::load(src.join("weights.safetensors"), &Device::Cpu).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut names: Vec<String> =
        sd.keys().filter(|k| prefixes.iter().any(|p| k.starts_with(p))).cloned().collect();
    names.sort();
    for name in &names {
        let t = &sd[name];
        let dims = t.dims().to_vec();
        let mut normal = |std: f64| {
            let (u1, u2) = (uniform(), uniform());
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
        };
        let n = t.elem_count();
        let v: Vec<f32> = if dims.len() >= 2 {
            let fan_in: usize = dims[1..].iter().product();
            (0..n).map(|_| normal((2.0 / fan_in as f64).sqrt())).collect()
        } else if name.ends_with("running_var") {
            (0..n).map(|_| (0.5 + 1.5 * uniform()) as f32).collect()
        } else if name.ends_with(".weight") && !name.starts_with("classifier") {
            (0..n).map(|_| (0.5 + uniform()) as f32).collect()
        } else if name.ends_with("running_mean") {
            (0..n).map(|_| normal(0.2)).collect()
        } else {
            (0..n).map(|_| normal(0.1)).collect()
        };
        sd.insert(
            name.clone(),
            Tensor::from_vec(v, dims, &Device::Cpu).unwrap().to_dtype(t.dtype()).unwrap(),
        );
    }
    candle_core::safetensors::save(&sd, dir.join("weights.safetensors")).unwrap();
    names.len()
}

#[test]
fn randomising_the_last_dense_block_changes_gradcam() {
    // At 64² the layer is 2×2: too few cells for a rank correlation to mean much. The fixture image is
    // upsampled to 256² (8×8 cells at features.denseblock4).
    let x = fixture_input("densenet121_narrow", Some(256));
    let original = load("densenet121_narrow");
    let layer = original.manifest.cam_layer.clone();
    let target = Target::default_for(original.net.as_ref(), &x, original.manifest.activation, 0.5).unwrap();
    let run = |m: &LoadedModel| -> Vec<f64> {
        let h = explain_with(m.net.as_ref(), &x, &target, layer.as_deref(), &GradCam, &Params::default())
            .unwrap();
        h.values.iter().map(|&v| v as f64).collect()
    };
    let base = run(&original);
    let mut rhos = Vec::new();
    for prefixes in
        [&["features.denseblock4."][..], &["classifier.", "features.norm5.", "features.denseblock4."][..]]
    {
        let tmp = tempfile::tempdir().unwrap();
        let n = randomised_densenet(prefixes, tmp.path());
        let randomised = load_model(&tmp.path().join("model.toml"), &Device::Cpu).unwrap();
        let rho = spearman(&base, &run(&randomised));
        println!("randomised {prefixes:?} ({n} tensors): Grad-CAM rank correlation {rho:.4}");
        rhos.push(rho);
    }
    // Randomising the block alone moves the map, but DenseNet's block output concatenates the block's
    // (unchanged) input: 16 of its 32 channels pass through, and norm5 and the classifier still weigh
    // them, so the map keeps part of its ranking. The cascade down to the block (Adebayo et al.'s
    // protocol: classifier, norm5, denseblock4) must decorrelate it.
    assert!(rhos[0] < 0.8, "randomising features.denseblock4 barely changed Grad-CAM: rho = {}", rhos[0]);
    assert!(
        rhos[1] < 0.5,
        "randomising the head down to features.denseblock4 barely changed Grad-CAM: rho = {}",
        rhos[1]
    );
}

// ---------------------------------------------------------------------------------------------------

#[test]
fn two_runs_give_bit_identical_maps() {
    for case in ["smp_unet_resnet18", "densenet121_narrow"] {
        let model = load(case);
        let x = first_input(case);
        let target = fixture_target(case);
        let layer = model.manifest.cam_layer.clone();
        for method in all_methods() {
            let run = || {
                explain_with(
                    model.net.as_ref(),
                    &x,
                    &target,
                    layer.as_deref(),
                    method.as_ref(),
                    &Params { batch: 7, ..Params::default() },
                )
                .unwrap()
            };
            let (a, b) = (run(), run());
            let bits = |h: &Heatmap| h.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{case} {}", method.name());
            assert_eq!(a.extras, b.extras, "{case} {}", method.name());
        }
    }
}

#[test]
fn timings_on_the_fixtures() {
    for case in ["smp_unet_resnet18", "densenet121_narrow"] {
        let model = load(case);
        let x = first_input(case);
        let target = fixture_target(case);
        let layer = model.manifest.cam_layer.clone();
        let methods: [&dyn Explainer; 2] = [&GradCamPlusPlus, &ScoreCam];
        for m in methods {
            explain_with(model.net.as_ref(), &x, &target, layer.as_deref(), m, &Params::default()).unwrap();
            let t = Instant::now();
            let reps = 3;
            for _ in 0..reps {
                explain_with(model.net.as_ref(), &x, &target, layer.as_deref(), m, &Params::default())
                    .unwrap();
            }
            println!(
                "timing {case:20} {:10} {:.1} ms/run (batch 16)",
                m.name(),
                t.elapsed().as_secs_f64() * 1e3 / reps as f64
            );
        }
    }
}
