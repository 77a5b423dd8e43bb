//! Parity of the classifiers (DenseNet, torchxrayvision DenseNet, smp's DenseNet encoder, VGG, ConvNeXt)
//! with PyTorch, on narrow fixtures written by `tools/make_fixtures_classifiers.py`; gradient flow through
//! them; and (ignored) a full-size check against `RADLENS_FULL_CHECK_CLS=DIR`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use radlens::io::npy::read_npy_f32;
use radlens::model::convnext::{ConvNext, ConvNextConfig};
use radlens::model::densenet::{
    op_norm, smp_densenet_encoder, DenseNet, DenseNetConfig, XrvDenseNet, XRV_PATHOLOGIES,
};
use radlens::model::layers::adaptive_avg_pool2d;
use radlens::model::vgg::{Vgg, VggConfig};
use radlens::model::{Network, Tap, Task};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(case)
}

fn npy(path: &Path) -> Tensor {
    let (data, shape) = read_npy_f32(path).unwrap_or_else(|e| panic!("{e}"));
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn weights(dir: &Path) -> VarBuilder<'static> {
    let st = dir.join("weights.safetensors");
    if st.exists() {
        // SAFETY: the fixture files are not modified while the tests run.
        unsafe { VarBuilder::from_mmaped_safetensors(&[st], DType::F32, &Device::Cpu).unwrap() }
    } else {
        VarBuilder::from_pth(dir.join("weights.pth"), DType::F32, &Device::Cpu).unwrap()
    }
}

fn manifest(dir: &Path) -> toml::Table {
    let text = std::fs::read_to_string(dir.join("model.toml")).unwrap();
    text.parse::<toml::Table>().unwrap()
}

fn arch_usize(m: &toml::Table, key: &str) -> usize {
    m["arch_config"][key].as_integer().unwrap_or_else(|| panic!("arch_config.{key}")) as usize
}

fn arch_list(m: &toml::Table, key: &str) -> Vec<usize> {
    m["arch_config"][key].as_array().unwrap().iter().map(|v| v.as_integer().unwrap() as usize).collect()
}

fn classes(m: &toml::Table) -> usize {
    m["classes"].as_array().unwrap().len()
}

/// max |a - b| ≤ 1e-4 · max(1, max |b|); returns the error for the report.
fn assert_close(what: &str, got: &Tensor, expected: &Tensor) -> f32 {
    assert_eq!(got.dims(), expected.dims(), "{what}: shape");
    let diff = (got - expected).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    let diff: f32 = diff.to_scalar().unwrap();
    let scale: f32 = expected.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
    let tol = 1e-4 * scale.max(1.0);
    eprintln!("{what}: max abs diff {diff:.3e} (max |expected| {scale:.3}, tolerance {tol:.1e})");
    assert!(diff <= tol, "{what}: max abs diff {diff} > {tol}");
    diff
}

/// Forward the fixture's input, compare logits and every recorded `<layer>.npy`.
fn check_network(dir: &Path, net: &dyn Network, taps: &[&str]) {
    assert_eq!(net.task(), Task::Classification);
    let x = npy(&dir.join("input.npy"));
    let mut tap = Tap::recording(taps.iter().copied());
    let y = net.forward_tap(&x, &mut tap).unwrap();
    assert_close(&format!("{} logits", dir.display()), &y, &npy(&dir.join("output.npy")));
    for name in taps {
        let got = tap.get(name).unwrap_or_else(|| panic!("tap {name} not visited"));
        assert_close(name, got, &npy(&dir.join(format!("{name}.npy"))));
    }
}

fn densenet_config(m: &toml::Table) -> DenseNetConfig {
    DenseNetConfig::custom(
        arch_usize(m, "growth_rate"),
        &arch_list(m, "block_config"),
        arch_usize(m, "num_init_features"),
        arch_usize(m, "bn_size"),
        m["in_channels"].as_integer().unwrap() as usize,
        classes(m),
    )
}

#[test]
fn densenet121_narrow_matches_torchvision() {
    let dir = fixture("densenet121_narrow");
    let m = manifest(&dir);
    assert_eq!(m["arch"].as_str(), Some("densenet121"));
    let net = DenseNet::load(weights(&dir), &densenet_config(&m)).unwrap();
    check_network(&dir, &net, &["features.denseblock4", "features.norm5", "features.transition2"]);
}

#[test]
fn densenet201_narrow_odd_size_matches_torchvision() {
    let dir = fixture("densenet201_narrow");
    let net = DenseNet::load(weights(&dir), &densenet_config(&manifest(&dir))).unwrap();
    check_network(&dir, &net, &["features.norm5", "features.transition3"]);
}

#[test]
fn densenet_visits_taps_in_forward_order() {
    let dir = fixture("densenet121_narrow");
    let net = DenseNet::load(weights(&dir), &densenet_config(&manifest(&dir))).unwrap();
    let mut tap = Tap::none();
    net.forward_tap(&npy(&dir.join("input.npy")), &mut tap).unwrap();
    let expected = [
        "features.relu0",
        "features.pool0",
        "features.denseblock1",
        "features.transition1",
        "features.denseblock2",
        "features.transition2",
        "features.denseblock3",
        "features.transition3",
        "features.denseblock4",
        "features.norm5",
    ];
    assert_eq!(tap.visited(), expected);
}

#[test]
fn standard_densenet_configs() {
    let c = DenseNetConfig::densenet121();
    assert_eq!(c.block_out_channels(), vec![256, 512, 1024, 1024]);
    assert_eq!(DenseNetConfig::densenet201().block_out_channels(), vec![256, 512, 1792, 1920]);
    assert_eq!(DenseNetConfig::xrv_densenet121().num_classes, 18);
    assert_eq!(DenseNetConfig::xrv_densenet121().in_channels, 1);
    // smp's densenet121 encoder channels, with the full-size parameter shapes (zeros) loading.
    let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
    let enc = smp_densenet_encoder(vb.pp("encoder"), &DenseNetConfig::densenet121()).unwrap();
    assert_eq!(enc.out_channels(), vec![3, 64, 256, 512, 1024, 1024]);
    let x = Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu).unwrap();
    let sizes: Vec<(usize, usize)> = enc
        .forward_stages(&x, &mut Tap::none())
        .unwrap()
        .iter()
        .map(|s| (s.dim(1).unwrap(), s.dim(3).unwrap()))
        .collect();
    assert_eq!(sizes, vec![(3, 64), (64, 32), (256, 16), (512, 8), (1024, 4), (1024, 2)]);
}

#[test]
fn standard_vgg_and_convnext_configs() {
    let v = VggConfig::vgg16();
    assert_eq!(v.layers.len(), 18);
    assert_eq!((v.classifier_width, v.num_classes, v.batch_norm), (4096, 1000, false));
    assert!(VggConfig::vgg16_bn().with_num_classes(2).batch_norm);
    assert!(VggConfig::custom(&["8", "X"], false, 4, 3, 2).is_err());
    let c = ConvNextConfig::convnext_base();
    assert_eq!((c.depths.clone(), c.dims.clone()), (vec![3, 3, 27, 3], vec![128, 256, 512, 1024]));
    assert_eq!(ConvNextConfig::convnext_tiny().with_num_classes(3).num_classes, 3);
}

#[test]
fn wrong_config_for_checkpoint_is_an_error() {
    let dir = fixture("densenet121_narrow");
    assert!(DenseNet::load(weights(&dir), &DenseNetConfig::densenet121()).is_err());
    let dir = fixture("convnext_tiny_narrow");
    assert!(ConvNext::load(weights(&dir), &ConvNextConfig::convnext_tiny()).is_err());
    let dir = fixture("vgg16_narrow");
    assert!(Vgg::load(weights(&dir), &VggConfig::vgg16()).is_err());
}

#[test]
fn xrv_densenet_pth_matches_torchxrayvision_with_op_norm() {
    let dir = fixture("xrv_densenet121_narrow");
    let m = manifest(&dir);
    assert_eq!(m["arch"].as_str(), Some("xrv-densenet121"));
    let names: Vec<&str> = m["classes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, XRV_PATHOLOGIES);
    let net = XrvDenseNet::load(weights(&dir), &densenet_config(&m)).unwrap();
    assert!(net.op_threshs().is_some(), "op_threshs buffer read from the .pth");
    check_network(&dir, &net, &["features.denseblock4", "features.norm5"]);

    let x = npy(&dir.join("input.npy"));
    let expected = npy(&dir.join("output_op_norm.npy"));
    let logits = net.forward(&x).unwrap();
    assert_close("xrv probabilities()", &net.probabilities(&logits).unwrap(), &expected);
    let net = net.with_calibrated_output(true);
    let calibrated = net.forward(&x).unwrap();
    assert_close("xrv calibrated forward", &calibrated, &expected);
    // NaN thresholds (outputs 14, 15, 17 in the fixture) read 0.5, as in xrv.
    let v: Vec<f32> = calibrated.flatten_all().unwrap().to_vec1().unwrap();
    for i in [14, 15, 17] {
        assert_eq!(v[i], 0.5);
    }
}

#[test]
fn op_norm_known_values() {
    let dev = Device::Cpu;
    let p = Tensor::new(&[[0.05f32, 0.2, 0.6, 0.9]], &dev).unwrap();
    let t = Tensor::new(&[0.1f32, 0.2, 0.4, f32::NAN], &dev).unwrap();
    let y: Vec<f32> = op_norm(&p, &t).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    // below: p / 2t; at or above: 1 - (1 - p) / (2 (1 - t)); NaN threshold: 0.5
    let expected = [0.25, 0.5, 1.0 - 0.4 / 1.2, 0.5];
    for (a, b) in y.iter().zip(expected) {
        assert!((a - b).abs() < 1e-6, "{y:?} vs {expected:?}");
    }
    // gradients stay finite despite the NaN threshold
    let pv = Var::from_tensor(&p).unwrap();
    let g = op_norm(pv.as_tensor(), &t).unwrap().sum_all().unwrap().backward().unwrap();
    let g: Vec<f32> = g.get(pv.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    assert!((g[0] - 5.0).abs() < 1e-5 && g[3] == 0.0, "{g:?}");
}

#[test]
fn smp_densenet_encoder_stages_match_smp() {
    let dir = fixture("smp_unet_densenet121");
    let m = manifest(&dir);
    let cfg = densenet_config(&m);
    let enc = smp_densenet_encoder(weights(&dir).pp("encoder"), &cfg).unwrap();
    // growth 8, blocks [2, 4, 4, 3], 16 initial features: 16 → 16+2·8 = 32 (→ 16 after transition1)
    // → 16+4·8 = 48 (→ 24) → 24+4·8 = 56 (→ 28) → 28+3·8 = 52; stage 0 is the 3-channel input.
    assert_eq!(enc.out_channels(), vec![3, 16, 32, 48, 56, 52]);
    assert_eq!(DenseNetConfig::densenet121().block_out_channels(), vec![256, 512, 1024, 1024]);
    let x = npy(&dir.join("input.npy"));
    let mut tap = Tap::recording(["encoder.features.norm5", "encoder.features.transition2.relu"]);
    let stages = enc.forward_stages(&x, &mut tap).unwrap();
    assert_eq!(stages.len(), 6);
    for (i, s) in stages.iter().enumerate() {
        assert_close(&format!("smp stage {i}"), s, &npy(&dir.join(format!("stage{i}.npy"))));
    }
    assert_close("encoder.features.norm5 tap", tap.get("encoder.features.norm5").unwrap(), &stages[5]);
    assert_close("transition2.relu tap", tap.get("encoder.features.transition2.relu").unwrap(), &stages[3]);
}

fn vgg_config(m: &toml::Table, batch_norm: bool) -> VggConfig {
    let cfg: Vec<String> = m["arch_config"]["vgg_cfg"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.as_integer().unwrap().to_string()))
        .collect();
    let cfg: Vec<&str> = cfg.iter().map(String::as_str).collect();
    VggConfig::custom(&cfg, batch_norm, arch_usize(m, "classifier_width"), 3, classes(m)).unwrap()
}

#[test]
fn vgg16_narrow_matches_torchvision() {
    let dir = fixture("vgg16_narrow");
    let net = Vgg::load(weights(&dir), &vgg_config(&manifest(&dir), false)).unwrap();
    assert_eq!(net.last_conv_relu(), "features.29");
    check_network(&dir, &net, &["features.29", "features.30", "features.15"]);
}

#[test]
fn vgg16_bn_narrow_matches_torchvision() {
    let dir = fixture("vgg16_bn_narrow");
    let net = Vgg::load(weights(&dir), &vgg_config(&manifest(&dir), true)).unwrap();
    assert_eq!(net.last_conv_relu(), "features.42");
    check_network(&dir, &net, &["features.42", "features.43"]);
}

#[test]
fn adaptive_avg_pool_matches_torch_windows() {
    let dir = fixture("vgg_adaptive_pool");
    for i in 0..4 {
        let x = npy(&dir.join(format!("input{i}.npy")));
        let y = adaptive_avg_pool2d(&x, 7, 7).unwrap();
        assert_close(&format!("adaptive_avg_pool2d case {i}"), &y, &npy(&dir.join(format!("output{i}.npy"))));
    }
}

#[test]
fn gemm_conv_matches_candle_conv() {
    let dev = Device::Cpu;
    for (c, o, k, stride, pad, bias, n, hw) in [
        (3, 5, 7, 2, 3, true, 2, 19),
        (4, 6, 3, 1, 1, false, 1, 9),
        (6, 3, 1, 1, 0, true, 2, 5),
        (2, 4, 2, 2, 0, true, 1, 8),
    ] {
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let gemm = radlens::model::layers::GemmConv2d::load(vb.pp("c"), c, o, k, stride, pad, bias).unwrap();
        let conv = radlens::model::layers::conv2d(vb.pp("c"), c, o, k, stride, pad, bias).unwrap();
        let x = Tensor::randn(0f32, 1., (n, c, hw, hw), &dev).unwrap();
        let want = candle_core::Module::forward(&conv, &x).unwrap();
        assert_close(&format!("gemm conv k{k} s{stride} p{pad}"), &gemm.forward(&x).unwrap(), &want);
        // input gradients (im2col's col2im backward) against candle's convolution backward
        let r = Tensor::randn(0f32, 1., want.shape(), &dev).unwrap();
        let input_grad = |f: &dyn Fn(&Tensor) -> Tensor| {
            let xv = Var::from_tensor(&x).unwrap();
            let g = (f(xv.as_tensor()) * &r).unwrap().sum_all().unwrap().backward().unwrap();
            g.get(xv.as_tensor()).unwrap().clone()
        };
        let g_gemm = input_grad(&|t| gemm.forward(t).unwrap());
        let g_conv = input_grad(&|t| candle_core::Module::forward(&conv, t).unwrap());
        assert_close(&format!("gemm conv k{k} s{stride} p{pad} input gradient"), &g_gemm, &g_conv);
    }
}

#[test]
fn depthwise_conv_matches_grouped_conv_with_gradients() {
    let dev = Device::Cpu;
    for (c, k, pad, n, h, w) in [(5, 7, 3, 2, 9, 6), (3, 3, 1, 1, 4, 5), (2, 3, 0, 1, 5, 5)] {
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let dw = radlens::model::layers::DepthwiseConv2d::load(vb.pp("d"), c, k, pad, true).unwrap();
        let wt = vb.pp("d").get((c, 1, k, k), "weight").unwrap();
        let b = vb.pp("d").get(c, "bias").unwrap().reshape((1, c, 1, 1)).unwrap();
        let grouped = |t: &Tensor| t.conv2d(&wt, pad, 1, 1, c).unwrap().broadcast_add(&b).unwrap();
        let x = Tensor::randn(0f32, 1., (n, c, h, w), &dev).unwrap();
        let want = grouped(&x);
        assert_close(&format!("depthwise k{k} p{pad}"), &dw.forward(&x).unwrap(), &want);
        let r = Tensor::randn(0f32, 1., want.shape(), &dev).unwrap();
        let input_grad = |f: &dyn Fn(&Tensor) -> Tensor| {
            let xv = Var::from_tensor(&x).unwrap();
            let g = (f(xv.as_tensor()) * &r).unwrap().sum_all().unwrap().backward().unwrap();
            g.get(xv.as_tensor()).unwrap().clone()
        };
        let got = input_grad(&|t| dw.forward(t).unwrap());
        assert_close(&format!("depthwise k{k} p{pad} input gradient"), &got, &input_grad(&grouped));
    }
}

#[test]
fn frozen_batch_norm_matches_candle_batch_norm_with_gradients() {
    let dev = Device::Cpu;
    let c = 5;
    let mut tensors = std::collections::HashMap::new();
    tensors.insert("bn.weight".to_string(), Tensor::randn(1f32, 0.3, c, &dev).unwrap());
    tensors.insert("bn.bias".to_string(), Tensor::randn(0f32, 0.3, c, &dev).unwrap());
    tensors.insert("bn.running_mean".to_string(), Tensor::randn(0f32, 0.3, c, &dev).unwrap());
    tensors.insert("bn.running_var".to_string(), Tensor::rand(0.5f32, 2.0, c, &dev).unwrap());
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let frozen = radlens::model::layers::FrozenBatchNorm::load(vb.pp("bn"), c).unwrap();
    let reference = radlens::model::layers::batch_norm(vb.pp("bn"), c).unwrap();
    let x = Tensor::randn(0f32, 1., (2, c, 3, 4), &dev).unwrap();
    let want = radlens::model::layers::bn(&reference, &x).unwrap();
    assert_close("frozen batch norm", &frozen.forward(&x).unwrap(), &want);
    let r = Tensor::randn(0f32, 1., want.shape(), &dev).unwrap();
    let input_grad = |f: &dyn Fn(&Tensor) -> Tensor| {
        let xv = Var::from_tensor(&x).unwrap();
        let g = (f(xv.as_tensor()) * &r).unwrap().sum_all().unwrap().backward().unwrap();
        g.get(xv.as_tensor()).unwrap().clone()
    };
    let got = input_grad(&|t| frozen.forward(t).unwrap());
    let want = input_grad(&|t| radlens::model::layers::bn(&reference, t).unwrap());
    assert_close("frozen batch norm input gradient", &got, &want);
}

fn convnext_config(m: &toml::Table) -> ConvNextConfig {
    ConvNextConfig::custom(&arch_list(m, "depths"), &arch_list(m, "dims"), classes(m))
}

#[test]
fn convnext_narrow_matches_torchvision() {
    let dir = fixture("convnext_tiny_narrow");
    let net = ConvNext::load(weights(&dir), &convnext_config(&manifest(&dir))).unwrap();
    check_network(&dir, &net, &["features.7", "features.5", "features.0"]);
    let mut tap = Tap::none();
    net.forward_tap(&npy(&dir.join("input.npy")), &mut tap).unwrap();
    let expected: Vec<String> = (0..8).map(|i| format!("features.{i}")).collect();
    assert_eq!(tap.visited(), expected);
}

/// d logit / d input and d logit / d activation exist, are finite and not all zero.
///
/// candle 0.11 drops the gradients of non-variable nodes during `backward`, so the activation's gradient
/// is taken the way the XAI methods take it: record the activation, then run again with it replaced by a
/// `Var` (`Tap::replacing`) and read that Var's gradient.
fn check_gradients(net: &dyn Network, x: &Tensor, layer: &str) {
    let check = |what: &str, g: Option<&Tensor>, like: &Tensor| {
        let g = g.unwrap_or_else(|| panic!("no gradient at {what}"));
        assert_eq!(g.dims(), like.dims());
        let v: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{what}: non-finite gradient");
        assert!(v.iter().any(|x| *x != 0.0), "{what}: zero gradient");
    };
    let xv = Var::from_tensor(x).unwrap();
    let mut tap = Tap::recording([layer]);
    let y = net.forward_tap(xv.as_tensor(), &mut tap).unwrap();
    let grads = y.get(0).unwrap().get(1).unwrap().backward().unwrap();
    check("input", grads.get(xv.as_tensor()), x);

    let act = tap.take(layer).unwrap();
    let av = Var::from_tensor(&act.detach()).unwrap();
    let mut tap = Tap::none().replacing(layer, av.as_tensor().clone());
    let y2 = net.forward_tap(x, &mut tap).unwrap();
    assert_close("logits with the activation replaced by itself", &y2, &y.detach());
    let grads = y2.get(0).unwrap().get(1).unwrap().backward().unwrap();
    check(layer, grads.get(av.as_tensor()), &act);
}

#[test]
fn densenet_gradients_reach_input_and_denseblock4() {
    let dir = fixture("densenet121_narrow");
    let net = DenseNet::load(weights(&dir), &densenet_config(&manifest(&dir))).unwrap();
    check_gradients(&net, &npy(&dir.join("input.npy")), "features.denseblock4");
}

#[test]
fn convnext_gradients_reach_input_and_features7() {
    let dir = fixture("convnext_tiny_narrow");
    let net = ConvNext::load(weights(&dir), &convnext_config(&manifest(&dir))).unwrap();
    check_gradients(&net, &npy(&dir.join("input.npy")), "features.7");
}

#[test]
fn vgg_gradients_reach_input_and_last_relu() {
    let dir = fixture("vgg16_bn_narrow");
    let net = Vgg::load(weights(&dir), &vgg_config(&manifest(&dir), true)).unwrap();
    check_gradients(&net, &npy(&dir.join("input.npy")), "features.42");
}

/// Full-size torchvision densenet121 / vgg16 / convnext_tiny with random weights, written by
/// `python3 tools/make_fixtures_classifiers.py --full-check DIR`; run with
/// `RADLENS_FULL_CHECK_CLS=DIR cargo test --test models_cls -- --ignored --nocapture full_size`.
#[test]
#[ignore]
fn full_size_standard_models_match_torchvision() {
    let Ok(root) = std::env::var("RADLENS_FULL_CHECK_CLS") else {
        panic!("set RADLENS_FULL_CHECK_CLS to the --full-check directory");
    };
    let root = PathBuf::from(root);
    type Build = Box<dyn Fn(VarBuilder) -> Box<dyn Network>>;
    let cases: Vec<(&str, Build)> = vec![
        ("densenet121", Box::new(|vb| Box::new(DenseNet::load(vb, &DenseNetConfig::densenet121()).unwrap()))),
        ("vgg16", Box::new(|vb| Box::new(Vgg::load(vb, &VggConfig::vgg16()).unwrap()))),
        (
            "convnext_tiny",
            Box::new(|vb| Box::new(ConvNext::load(vb, &ConvNextConfig::convnext_tiny()).unwrap())),
        ),
    ];
    let only = std::env::var("RADLENS_FULL_CHECK_ONLY").ok();
    for (name, build) in cases {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let dir = root.join(name);
        let net = build(weights(&dir));
        let x = npy(&dir.join("input.npy"));
        net.forward(&x).unwrap(); // warm-up
        let mut times = Vec::new();
        let mut y = None;
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            y = Some(net.forward(&x).unwrap());
            times.push(t0.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        eprintln!(
            "{name}: candle forward 1x3x224x224 median {:.0} ms (min {:.0} ms)",
            times[1] * 1e3,
            times[0] * 1e3
        );
        let y = y.unwrap();
        let expected = npy(&dir.join("output.npy"));
        let scale: f32 = expected.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
        let diff: f32 = (&y - &expected)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        eprintln!("{name}: max abs diff {diff:.3e}, max |logit| {scale:.3}, relative {:.3e}", diff / scale);
        assert!(diff <= 1e-4 * scale, "{name}: relative error {}", diff / scale);
        if name != "vgg16" {
            // Input-gradient cost (saliency / Integrated Gradients step): forward + backward to the input.
            let xv = Var::from_tensor(&x).unwrap();
            let t0 = std::time::Instant::now();
            let y = net.forward(xv.as_tensor()).unwrap();
            let g = y.get(0).unwrap().get(1).unwrap().backward().unwrap();
            assert!(g.get(xv.as_tensor()).is_some());
            eprintln!("{name}: forward + backward to the input {:.0} ms", t0.elapsed().as_secs_f64() * 1e3);
        }
    }
}
