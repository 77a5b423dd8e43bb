//! The model core against PyTorch: checkpoints written by torch (tools/make_weight_fixtures.py), the
//! checking VarBuilder, model.toml validation, and preprocessing known answers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use radlens::model::manifest::{load_manifest, resolve_model, Activation, Arch, EncoderName, Normalize};
use radlens::model::preprocess::{self, resize_bilinear};
use radlens::model::weights::{
    load_state_dict, normalize_names, save_safetensors_f16, CheckedWeights, StateDict,
};
use radlens::model::{layers, ModelError, Task};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/weights").join(name)
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

const TINY_NAMES: [&str; 8] = [
    "bn.bias",
    "bn.running_mean",
    "bn.running_var",
    "bn.weight",
    "conv.bias",
    "conv.weight",
    "fc.bias",
    "fc.weight",
];

fn loaded(name: &str) -> StateDict {
    let mut sd = load_state_dict(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    normalize_names(&mut sd);
    sd
}

fn assert_same(a: &StateDict, b: &StateDict, tol: f32) {
    assert_eq!(a.names(), b.names());
    for n in a.names() {
        let (x, y) = (a.get(n).unwrap(), b.get(n).unwrap());
        assert_eq!(x.dims(), y.dims(), "{n}");
        assert_eq!(x.dtype(), DType::F32);
        assert_eq!(y.dtype(), DType::F32);
        for (p, q) in values(x).iter().zip(values(y)) {
            assert!((p - q).abs() <= tol * p.abs().max(1.0), "{n}: {p} vs {q}");
        }
    }
}

#[test]
fn torch_checkpoints_load_to_identical_tensors_with_normalised_names() {
    let st = loaded("tiny.safetensors");
    assert_eq!(st.names(), TINY_NAMES.to_vec(), "num_batches_tracked (int64) is dropped");
    for other in [
        "tiny.pth",
        "tiny_dataparallel.pth",
        "tiny_wrapped_state_dict.pth",
        "tiny_wrapped_model.pth",
        "tiny_wrapped_model_state_dict.pth",
        "tiny_model_prefix.safetensors",
        "tiny_f64.pth",
    ] {
        let sd = loaded(other);
        assert_same(&st, &sd, 0.0);
    }
    // f16 rounding: relative error below 2^-11.
    assert_same(&st, &loaded("tiny_f16.safetensors"), 1e-3);
}

#[test]
fn dataparallel_prefix_is_present_before_normalisation() {
    let sd = load_state_dict(&fixture("tiny_dataparallel.pth")).unwrap();
    assert!(sd.names().iter().all(|n| n.starts_with("module.")), "{:?}", sd.names());
}

#[test]
fn legacy_densenet_names_are_mapped_like_torchvision() {
    let sd = loaded("densenet_legacy.pth");
    let p = "features.denseblock1.denselayer1.";
    let mut want: Vec<String> = [
        "norm1.weight",
        "norm1.bias",
        "norm1.running_mean",
        "norm1.running_var",
        "conv1.weight",
        "norm2.weight",
        "conv2.weight",
    ]
    .iter()
    .map(|s| format!("{p}{s}"))
    .collect();
    want.push("features.norm5.weight".into());
    want.sort();
    assert_eq!(sd.names(), want.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(sd.get(&format!("{p}conv2.weight")).unwrap().dims(), &[1, 3, 3, 3]);
}

/// The fixture's `Tiny` module in candle: conv(3→4, 3×3, pad 1) → BN → ReLU → spatial mean → fc(4→2).
struct Tiny {
    conv: candle_nn::Conv2d,
    bn: candle_nn::BatchNorm,
    fc: candle_nn::Linear,
}

impl Tiny {
    fn new(vb: candle_nn::VarBuilder, bn_name: &str, classes: usize) -> candle_core::Result<Self> {
        Ok(Tiny {
            conv: layers::conv2d(vb.pp("conv"), 3, 4, 3, 1, 1, true)?,
            bn: layers::batch_norm(vb.pp(bn_name), 4)?,
            fc: candle_nn::linear(4, classes, vb.pp("fc"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = layers::conv_bn_relu(&self.conv, Some(&self.bn), x)?;
        self.fc.forward(&y.mean((2, 3))?)
    }
}

#[test]
fn checked_weights_build_a_network_matching_torch() {
    let dev = Device::Cpu;
    let checked = CheckedWeights::new(loaded("tiny.pth"), "tiny");
    let net = Tiny::new(checked.var_builder(&dev), "bn", 2).unwrap();
    let report = checked.finish().unwrap();
    assert_eq!(report.used, 8);
    assert!(report.ignored.is_empty());

    let r = reference();
    let shape: Vec<usize> =
        r["tiny_input_shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let x = Tensor::from_vec(floats(&r["tiny_input"]), shape, &dev).unwrap();
    let got = values(&net.forward(&x).unwrap());
    let want = floats(&r["tiny_logits"]);
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}

#[test]
fn checked_weights_report_every_problem_in_one_line() {
    let dev = Device::Cpu;
    let checked = CheckedWeights::new(loaded("tiny.safetensors"), "tiny");
    // Wrong BN name (4 missing, 4 unexpected) and 3 classes instead of 2 (2 mis-shaped): the build
    // itself succeeds so that everything is reported at once.
    let _net = Tiny::new(checked.var_builder(&dev), "norm", 3).unwrap();
    let err = checked.finish().unwrap_err().to_string();
    assert!(!err.contains('\n'), "{err}");
    assert!(err.starts_with("checkpoint does not fit tiny: "), "{err}");
    assert!(
        err.contains("4 missing (norm.bias [4], norm.running_mean [4], norm.running_var [4], ...)"),
        "{err}"
    );
    assert!(
        err.contains("2 mis-shaped (fc.bias: file [2], model [3], fc.weight: file [2, 4], model [3, 4])"),
        "{err}"
    );
    assert!(
        err.contains("4 unexpected (bn.bias [4], bn.running_mean [4], bn.running_var [4], ...)"),
        "{err}"
    );
    assert!(err.ends_with("tiny.safetensors"), "{err}");
}

#[test]
fn unused_tensors_can_be_allowed() {
    let dev = Device::Cpu;
    let checked = CheckedWeights::new(loaded("tiny.safetensors"), "tiny-features").allow_unused(["fc."]);
    let vb = checked.var_builder(&dev);
    layers::conv2d(vb.pp("conv"), 3, 4, 3, 1, 1, true).unwrap();
    layers::batch_norm(vb.pp("bn"), 4).unwrap();
    let report = checked.finish().unwrap();
    assert_eq!(report.used, 6);
    assert_eq!(report.ignored, vec!["fc.bias".to_string(), "fc.weight".to_string()]);

    // Last-component match (like num_batches_tracked or op_threshs).
    let checked = CheckedWeights::new(loaded("tiny.safetensors"), "t").allow_unused(["weight", "bias"]);
    let vb = checked.var_builder(&dev);
    layers::batch_norm(vb.pp("bn"), 4).unwrap();
    assert_eq!(checked.finish().unwrap().ignored, vec!["conv.bias", "conv.weight", "fc.bias", "fc.weight"]);
}

fn one_line_error_naming(result: Result<StateDict, ModelError>, file: &str) -> String {
    let msg = result.map(|_| ()).unwrap_err().to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.ends_with(file), "{msg}");
    msg
}

#[test]
fn bad_checkpoints_give_one_line_errors_naming_the_file() {
    let m = one_line_error_naming(load_state_dict(&fixture("no_such_file.pth")), "no_such_file.pth");
    assert!(m.starts_with("cannot read checkpoint"), "{m}");
    let m = one_line_error_naming(load_state_dict(&fixture("empty.safetensors")), "empty.safetensors");
    assert!(m.contains("empty"), "{m}");
    let m = one_line_error_naming(load_state_dict(&fixture("not_a_checkpoint.pth")), "not_a_checkpoint.pth");
    assert!(m.starts_with("not a PyTorch state dict"), "{m}");
    let m =
        one_line_error_naming(load_state_dict(&fixture("truncated.safetensors")), "truncated.safetensors");
    assert!(m.starts_with("not a valid safetensors file"), "{m}");
    assert_eq!(m.matches("truncated.safetensors").count(), 1, "the path once: {m}");
    let m = one_line_error_naming(load_state_dict(&fixture("reference.json")), "reference.json");
    assert!(m.starts_with("unknown checkpoint type '.json'"), "{m}");
    // A text file named .safetensors.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fake.safetensors");
    std::fs::write(&p, "hello, I am not a checkpoint").unwrap();
    one_line_error_naming(load_state_dict(&p), "fake.safetensors");
}

#[test]
fn f16_safetensors_are_saved_atomically_and_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.safetensors");
    let sd = loaded("tiny.safetensors");
    save_safetensors_f16(&path, &sd.tensors).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("out.safetensors")], "no temporary file left");
    let raw = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert!(raw.values().all(|t| t.dtype() == DType::F16));
    assert_same(&sd, &loaded_path(&path), 1e-3);
    // Overwrites an existing file.
    save_safetensors_f16(&path, &sd.tensors).unwrap();
    let err =
        save_safetensors_f16(&dir.path().join("missing/dir/x.safetensors"), &HashMap::new()).unwrap_err();
    assert!(err.to_string().ends_with("x.safetensors"), "{err}");
}

fn loaded_path(p: &Path) -> StateDict {
    let mut sd = load_state_dict(p).unwrap();
    normalize_names(&mut sd);
    sd
}

// ---------------------------------------------------------------------------------------------------
// model.toml

const FULL: &str = r#"
name = "ggo-resnet34-unet"
arch = "smp-unet"
encoder = "resnet34"
weights = "weights.safetensors"
task = "segmentation"
activation = "sigmoid"
input_size = [256, 192]
in_channels = 3
normalize = "imagenet"
window = [-600, 1500]
classes = ["ggo"]
cam_layer = "encoder.layer4"
threshold = 0.4

[arch_config]
decoder_channels = [128, 64, 32, 16, 8]
encoder_depth = 5
vgg_cfg = [64, "M", 128]
"#;

/// A model folder `dir/<sub>` with `model.toml` = `text` and an (empty) weights file.
fn model_dir(root: &Path, sub: &str, text: &str) -> PathBuf {
    let d = root.join(sub);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("weights.safetensors"), b"x").unwrap();
    let m = d.join("model.toml");
    std::fs::write(&m, text).unwrap();
    m
}

#[test]
fn a_full_manifest_parses() {
    let tmp = tempfile::tempdir().unwrap();
    let path = model_dir(tmp.path(), "ggo", FULL);
    let m = load_manifest(&path).unwrap();
    assert_eq!(m.name, "ggo-resnet34-unet");
    assert_eq!(m.arch, Arch::SmpUnet);
    assert_eq!(m.encoder, Some(EncoderName::Resnet34));
    assert_eq!(m.task, Task::Segmentation);
    assert_eq!(m.activation, Activation::Sigmoid);
    assert_eq!(m.input_size, [256, 192]);
    assert_eq!(m.in_channels, 3);
    assert_eq!(m.normalize, Normalize::Imagenet);
    let w = m.window.unwrap();
    assert_eq!((w.center, w.width), (-600.0, 1500.0));
    assert_eq!(m.classes, vec!["ggo"]);
    assert_eq!(m.cam_layer.as_deref(), Some("encoder.layer4"));
    assert_eq!(m.threshold, 0.4);
    assert_eq!(m.arch_config.decoder_channels, Some(vec![128, 64, 32, 16, 8]));
    assert_eq!(m.arch_config.encoder_depth, Some(5));
    assert_eq!(m.arch_config.base_width, None);
    assert_eq!(m.weights_path(), tmp.path().join("ggo/weights.safetensors"));
    assert_eq!(m.dir, tmp.path().join("ggo"));

    // Optional fields left out: threshold defaults to 0.5; a classifier takes no encoder.
    let text = "name = \"cxr\"\narch = \"xrv-densenet121\"\nweights = \"weights.safetensors\"\n\
                task = \"classification\"\nactivation = \"sigmoid\"\ninput_size = [224, 224]\n\
                in_channels = 1\nnormalize = \"xrv\"\nclasses = [\"Atelectasis\", \"Effusion\"]\n";
    let m = load_manifest(&model_dir(tmp.path(), "cxr", text)).unwrap();
    assert_eq!((m.threshold, m.encoder, m.window, m.cam_layer), (0.5, None, None, None));
}

#[test]
fn each_invalid_field_gives_a_one_line_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "arch = \"smp-unet\"",
            "arch = \"vit\"",
            "field 'arch': \"vit\" is not one of unet, resnet-unet, smp-unet, densenet121",
        ),
        (
            "encoder = \"resnet34\"",
            "encoder = \"resnet99\"",
            "field 'encoder': \"resnet99\" is not one of resnet18, resnet34, resnet50, densenet121",
        ),
        ("encoder = \"resnet34\"\n", "", "field 'encoder': required for arch \"smp-unet\""),
        (
            "task = \"segmentation\"",
            "task = \"classification\"",
            "field 'task': arch \"smp-unet\" does segmentation",
        ),
        ("task = \"segmentation\"", "task = \"detection\"", "field 'task': \"detection\" is not one of"),
        (
            "activation = \"sigmoid\"",
            "activation = \"relu\"",
            "field 'activation': \"relu\" is not one of sigmoid, softmax",
        ),
        (
            "activation = \"sigmoid\"",
            "activation = \"softmax\"",
            "field 'activation': \"softmax\" needs at least 2 classes",
        ),
        ("input_size = [256, 192]", "input_size = [0, 192]", "field 'input_size'"),
        ("input_size = [256, 192]", "input_size = [256, 5000]", "field 'input_size'"),
        ("input_size = [256, 192]", "input_size = 256", "field 'input_size'"),
        ("in_channels = 3", "in_channels = 2", "field 'in_channels': 2 is not 1 or 3"),
        ("in_channels = 3", "in_channels = 1", "field 'normalize': \"imagenet\" needs in_channels = 3"),
        (
            "normalize = \"imagenet\"",
            "normalize = \"zscore\"",
            "field 'normalize': \"zscore\" is not one of imagenet, unit, xrv",
        ),
        ("window = [-600, 1500]", "window = [-600, 0]", "field 'window'"),
        ("classes = [\"ggo\"]", "classes = []", "field 'classes'"),
        ("threshold = 0.4", "threshold = 1.0", "field 'threshold': 1 is not in (0, 1)"),
        ("threshold = 0.4", "threshold = 0", "field 'threshold'"),
        ("weights = \"weights.safetensors\"", "weights = \"gone.pth\"", "field 'weights': file"),
        ("name = \"ggo-resnet34-unet\"\n", "", "field 'name': missing"),
        ("threshold = 0.4", "threshold = 0.4\ncolour = \"red\"", "field 'colour': unknown field"),
        ("encoder_depth = 5", "encoder_depth = 0", "field 'arch_config.encoder_depth': must be positive"),
        ("encoder_depth = 5", "depth = 5", "field 'depth': unknown field"),
        ("vgg_cfg = [64, \"M\", 128]", "vgg_cfg = [64, \"X\"]", "field 'vgg_cfg'"),
    ];
    for (i, (from, to, want)) in cases.iter().enumerate() {
        assert!(FULL.contains(from), "case {i}: {from}");
        let text = FULL.replacen(from, to, 1);
        let path = model_dir(tmp.path(), &format!("case{i}"), &text);
        let err = load_manifest(&path).unwrap_err().to_string();
        assert!(!err.contains('\n'), "case {i}: {err}");
        assert!(err.starts_with(want), "case {i}: expected '{want}…', got: {err}");
        assert!(err.ends_with(&format!("case{i}/model.toml")), "case {i}: {err}");
    }
    // A classifier with an encoder.
    let text = FULL
        .replace("arch = \"smp-unet\"", "arch = \"densenet121\"")
        .replace("segmentation", "classification");
    let err = load_manifest(&model_dir(tmp.path(), "enc", &text)).unwrap_err().to_string();
    assert!(
        err.starts_with("field 'encoder': \"resnet34\" given, but arch \"densenet121\" takes no encoder"),
        "{err}"
    );
    // Not TOML at all, and a missing file.
    let err = load_manifest(&model_dir(tmp.path(), "junk", "this is [not toml")).unwrap_err().to_string();
    assert!(!err.contains('\n') && err.ends_with("junk/model.toml"), "{err}");
    let err = load_manifest(&tmp.path().join("nowhere/model.toml")).unwrap_err().to_string();
    assert!(err.starts_with("cannot read model manifest") && err.ends_with("nowhere/model.toml"), "{err}");
}

#[test]
fn models_resolve_by_path_folder_and_name() {
    let tmp = tempfile::tempdir().unwrap();
    let builtin = tmp.path().join("weights");
    let ggo = model_dir(&builtin, "ggo", FULL);
    model_dir(&builtin, "cxr", &FULL.replace("ggo-resnet34-unet", "chest-xray"));
    std::fs::create_dir_all(builtin.join("empty-folder")).unwrap();

    assert_eq!(resolve_model(ggo.to_str().unwrap(), &builtin).unwrap(), ggo);
    assert_eq!(resolve_model(builtin.join("ggo").to_str().unwrap(), &builtin).unwrap(), ggo);
    assert_eq!(resolve_model("ggo-resnet34-unet", &builtin).unwrap(), ggo);
    assert_eq!(resolve_model("chest-xray", &builtin).unwrap(), builtin.join("cxr/model.toml"));

    let err = resolve_model("resnet-9000", &builtin).unwrap_err().to_string();
    assert!(!err.contains('\n'), "{err}");
    assert!(err.contains("built-in: chest-xray, ggo-resnet34-unet"), "{err}");
    assert!(err.ends_with("resnet-9000"), "{err}");
    let err =
        resolve_model(builtin.join("empty-folder").to_str().unwrap(), &builtin).unwrap_err().to_string();
    assert!(err.starts_with("folder has no model.toml"), "{err}");
}

// ---------------------------------------------------------------------------------------------------
// preprocessing

#[test]
fn bilinear_resize_equals_torch() {
    let r = reference();
    let mut worst = 0f32;
    for case in r["bilinear"].as_array().unwrap() {
        let g = |k: &str| case[k].as_u64().unwrap() as usize;
        let (h, w, oh, ow) = (g("h"), g("w"), g("oh"), g("ow"));
        let got = resize_bilinear(&floats(&case["src"]), h, w, oh, ow);
        let want = floats(&case["out"]);
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            // 1e-5 absolute, relative for the 0..255 plane (f32 spacing there is 1.5e-5).
            let err = (a - b).abs() / b.abs().max(1.0);
            worst = worst.max(err);
            assert!(err <= 1e-5, "{h}×{w} → {oh}×{ow}: {a} vs {b}");
        }
    }
    eprintln!("worst relative difference to torch: {worst:e}");
}

fn manifest_for(
    tmp: &Path,
    normalize: &str,
    channels: usize,
    window: Option<&str>,
) -> radlens::model::manifest::Manifest {
    let mut text = FULL
        .replace("normalize = \"imagenet\"", &format!("normalize = \"{normalize}\""))
        .replace("in_channels = 3", &format!("in_channels = {channels}"))
        .replace("input_size = [256, 192]", "input_size = [4, 6]");
    text = match window {
        Some(w) => text.replace("window = [-600, 1500]", w),
        None => text.replace("window = [-600, 1500]\n", ""),
    };
    load_manifest(&model_dir(tmp, &format!("{normalize}{channels}{}", window.is_some()), &text)).unwrap()
}

#[test]
fn prepare_input_windows_resizes_and_normalises() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    // A 2×3 HU slice, lung window: -1350.5 → 0, -600 → 128, ≥149.5 → 255.
    let slice = [-2000.0, -600.0, 500.0, -2000.0, -600.0, 500.0];
    let m = manifest_for(tmp.path(), "imagenet", 3, Some("window = [-600, 1500]"));
    let x = preprocess::prepare_input(&slice, 2, 3, &m, true, &dev).unwrap();
    assert_eq!(x.dims(), &[1, 3, 4, 6]);
    let v = values(&x);
    // Row 0, column 0 of channel 1 (green) is grey 0; column 5 is grey 255.
    let g0 = (0.0 - 0.456) / 0.224;
    let g255 = (1.0 - 0.456) / 0.224;
    assert!((v[24] - g0).abs() < 1e-5 && (v[24 + 5] - g255).abs() < 1e-5, "{:?}", &v[24..30]);
    // The same through the pure functions.
    let grey = preprocess::to_u8_grey(&slice, true, m.window);
    assert_eq!(grey, vec![0.0, 128.0, 255.0, 0.0, 128.0, 255.0]);
    let want = preprocess::normalize(&resize_bilinear(&grey, 2, 3, 4, 6), Normalize::Imagenet, 3);
    assert_eq!(v, want);

    // XRV, one channel, raw 8-bit input passes through: grey 0 → −1024, 255 → 1024.
    let m = manifest_for(tmp.path(), "xrv", 1, None);
    let raw = [0.0, 0.0, 0.0, 255.0, 255.0, 255.0];
    let x = preprocess::prepare_batch(&[&raw, &raw], 2, 3, &m, false, &dev).unwrap();
    assert_eq!(x.dims(), &[2, 1, 4, 6]);
    let v = values(&x);
    assert_eq!(&v[0..6], &[-1024.0; 6]);
    assert_eq!(&v[18..24], &[1024.0; 6]);
    assert!(preprocess::prepare_input(&raw[..5], 2, 3, &m, false, &dev).is_err());
}

#[test]
fn activations_and_grid_resize() {
    let dev = Device::Cpu;
    let logits = Tensor::new(&[[0.0f32, 2.0_f32.ln()]], &dev).unwrap();
    let p = values(&preprocess::activation(&logits, Activation::Softmax).unwrap());
    assert!((p[0] - 1.0 / 3.0).abs() < 1e-6 && (p[1] - 2.0 / 3.0).abs() < 1e-6, "{p:?}");
    let p = values(&preprocess::activation(&logits, Activation::Sigmoid).unwrap());
    assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 2.0 / 3.0).abs() < 1e-6, "{p:?}");
    // Softmax over the class dimension of a (1, 2, 1, 2) map.
    let seg = Tensor::new(&[0.0f32, 1.0, 0.0, 1.0], &dev).unwrap().reshape((1, 2, 1, 2)).unwrap();
    let p = values(&preprocess::activation(&seg, Activation::Softmax).unwrap());
    assert!((p[0] + p[2] - 1.0).abs() < 1e-6 && (p[1] + p[3] - 1.0).abs() < 1e-6 && p[0] == 0.5, "{p:?}");

    let grid = preprocess::resize_to_grid(&[0.0, 1.0, 1.0, 1.0], 2, 1, 2, 1, 4);
    assert_eq!(grid, vec![0.0, 0.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0]);
}

/// Inference records no autograd graph: every shipped model, loaded as the viewer and the CLI load it,
/// gives a forward output that tracks nothing (candle keeps BatchNorm's running statistics as `Var`s;
/// folded into the convolution weights undetached, they made every forward keep all its activations
/// alive and every gradient explainer compute weight gradients for every layer). And a gradient at a
/// layer still flows when the caller asks for one.
#[test]
fn shipped_models_run_inference_without_a_gradient_graph() {
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
    let models = radlens::model::manifest::builtin_models(&weights);
    assert!(models.len() >= 3, "shipped models: {models:?}");
    for (name, path) in models {
        let m = radlens::model::load_model(&path, &Device::Cpu).unwrap();
        let [h, w] = m.manifest.input_size;
        let x = Tensor::randn(0f32, 1., (1, m.manifest.in_channels, h, w), &Device::Cpu).unwrap();
        let y = m.net.forward(&x).unwrap();
        assert!(!y.track_op(), "{name}: the inference forward recorded a graph");
        let mut tap = radlens::model::Tap::recording_all();
        m.net.forward_tap(&x, &mut tap).unwrap();
        for layer in tap.visited().to_vec() {
            assert!(!tap.get(&layer).unwrap().track_op(), "{name}: {layer} is tracked in inference");
        }
    }
}
