//! Gradient and relevance methods: known answers on hand-built nets, completeness and conservation,
//! determinism, and parity with captum on the narrow PyTorch fixtures (tools/make_xai_grad_fixtures.py).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use radlens::model::manifest::Normalize;
use radlens::model::{load_model, Network};
use radlens::xai::integrated_gradients::{gauss_legendre, Baseline, IntegratedGradients, Quadrature};
use radlens::xai::lrp::{Composite, ConvRule, Lrp, LrpLayer, LrpModel};
use radlens::xai::saliency::{input_gradient, reduce_channels, ChannelReduce, Saliency};
use radlens::xai::smoothgrad::SmoothGrad;
use radlens::xai::{ExplainInput, Explainer, Heatmap, Params, Target, XaiError};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}
fn refs(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xai/grad").join(case)
}

fn npy(path: &Path) -> Vec<f32> {
    let a: ndarray::ArrayD<f32> =
        ndarray_npy::read_npy(path).unwrap_or_else(|e| panic!("{e}: {}", path.display()));
    a.iter().copied().collect()
}

fn meta(case: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(refs(case).join("meta.json")).unwrap()).unwrap()
}

fn pearson(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let n = a.len() as f64;
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}

/// The fixture's network, its first input item and captum's target.
fn fixture(case: &str) -> (Box<dyn Network>, Tensor, Target) {
    let model = load_model(&models().join(case).join("model.toml"), &Device::Cpu).unwrap();
    let x = npy(&models().join(case).join("input.npy"));
    let m = model.manifest;
    let (h, w) = (m.input_size[0], m.input_size[1]);
    let n = m.in_channels * h * w;
    let x = Tensor::from_vec(x[..n].to_vec(), (1, m.in_channels, h, w), &Device::Cpu).unwrap();
    let target = Target::Class(meta(case)["target"].as_u64().unwrap() as usize);
    (model.net, x, target)
}

fn run(
    e: &dyn Explainer,
    net: &dyn Network,
    x: &Tensor,
    target: &Target,
    params: &Params,
) -> Result<Heatmap, XaiError> {
    let (h, w) = (x.dim(2).unwrap(), x.dim(3).unwrap());
    let grey = vec![0.0; h * w];
    let input = ExplainInput { net, input: x, grey: &grey, target, default_layer: None };
    e.explain(&input, params, &mut |_, _| true)
}

/// Deterministic values in [−1, 1).
fn uniform(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn t(seed: u64, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<f32> = uniform(seed, n).into_iter().map(|v| v * scale).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// A VGG-like net: conv, relu, max-pool, conv(+BN), relu, adaptive avg-pool, flatten, linear, relu, linear.
fn tiny_vgg(bias: bool, composite: Composite) -> LrpModel {
    let b = |seed, n| if bias { Some(t(seed, &[n], 0.1)) } else { None };
    let mut layers = vec![
        LrpLayer::Conv { weight: t(1, &[4, 3, 3, 3], 0.5), bias: b(2, 4), stride: 1, padding: 1 },
        LrpLayer::Relu,
        LrpLayer::MaxPool { kernel: 2, stride: 2, padding: 0 },
        LrpLayer::Conv { weight: t(3, &[6, 4, 3, 3], 0.5), bias: b(4, 6), stride: 1, padding: 1 },
    ];
    if bias {
        let g = (t(5, &[6], 0.3) + 1.0).unwrap();
        let var = (t(6, &[6], 0.3) + 1.0).unwrap();
        layers.push(LrpLayer::batch_norm(&g, &t(7, &[6], 0.1), &t(8, &[6], 0.1), &var, 1e-5).unwrap());
    }
    layers.extend([
        LrpLayer::Relu,
        LrpLayer::AdaptiveAvgPool { height: 3, width: 3 },
        LrpLayer::Flatten,
        LrpLayer::Linear { weight: t(9, &[10, 54], 0.5), bias: b(10, 10) },
        LrpLayer::Relu,
        LrpLayer::Linear { weight: t(11, &[3, 10], 0.8), bias: b(12, 3) },
    ]);
    LrpModel::new(layers, composite).unwrap()
}

fn tiny_input() -> Tensor {
    t(42, &[1, 3, 8, 8], 1.0)
}

fn top_class(net: &dyn Network, x: &Tensor) -> (usize, f32) {
    let row: Vec<f32> = net.forward(x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    row.iter().copied().enumerate().fold((0, f32::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a })
}

#[test]
fn gauss_legendre_matches_numpy_leggauss() {
    // numpy.polynomial.legendre.leggauss(3)
    let (x, w) = gauss_legendre(3);
    let r = (0.6f64).sqrt();
    for (a, b) in x.iter().zip([-r, 0.0, r]) {
        assert!((a - b).abs() < 1e-14, "{x:?}");
    }
    for (a, b) in w.iter().zip([5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0]) {
        assert!((a - b).abs() < 1e-14, "{w:?}");
    }
    let (_, w50) = Quadrature::GaussLegendre.points(50);
    assert!((w50.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn linear_model_known_answers() {
    // f(x) = w·x on a 1×5×5 image (one channel so the channel reduction is the identity).
    let w = t(100, &[1, 25], 1.0);
    let x = t(101, &[1, 1, 5, 5], 2.0);
    let net = LrpModel::new(
        vec![LrpLayer::Flatten, LrpLayer::Linear { weight: w.clone(), bias: None }],
        Composite::epsilon(1e-9),
    )
    .unwrap();
    let target = Target::Class(0);
    let wv: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
    let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let wx: Vec<f32> = wv.iter().zip(&xv).map(|(a, b)| a * b).collect();
    let close = |got: &[f32], want: &[f32], tol: f32, what: &str| {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}: {g} vs {w}");
        }
    };
    let sal = run(&Saliency::default(), &net, &x, &target, &Params::default()).unwrap();
    close(&sal.values, &wv.iter().map(|v| v.abs()).collect::<Vec<_>>(), 1e-6, "saliency = |w|");
    let ig = run(&IntegratedGradients::default(), &net, &x, &target, &Params::default()).unwrap();
    close(&ig.values, &wx, 1e-5, "IG = w ⊙ x");
    let lrp = run(&Lrp { model: net.clone() }, &net, &x, &target, &Params::default()).unwrap();
    close(&lrp.values, &wx, 1e-5, "LRP-ε = w ⊙ x");
}

#[test]
fn ig_is_complete_on_a_tiny_net() {
    let net = tiny_vgg(true, Composite::epsilon(1e-9));
    let x = tiny_input();
    let (c, _) = top_class(&net, &x);
    let r = IntegratedGradients::default()
        .attributions(&net, &x, &Target::Class(c), 50, 16, &mut |_, _| true)
        .unwrap();
    let sum: f32 = r.attributions.sum_all().unwrap().to_scalar().unwrap();
    let diff = r.score_input - r.score_baseline;
    println!("tiny net IG: Σ = {sum}, f(x) − f(0) = {diff}");
    assert!((sum - diff).abs() <= 0.01 * diff.abs(), "Σ {sum} vs {diff}");
}

#[test]
fn ig_cancels_from_the_progress_callback() {
    let net = tiny_vgg(true, Composite::epsilon(1e-9));
    let x = tiny_input();
    let mut calls = 0;
    let r = IntegratedGradients::default().attributions(
        &net,
        &x,
        &Target::Class(0),
        50,
        10,
        &mut |done, total| {
            calls += 1;
            assert_eq!(total, 50);
            done < 20
        },
    );
    assert!(matches!(r, Err(XaiError::Cancelled)));
    assert_eq!(calls, 2);
}

#[test]
fn lrp_conserves_relevance_without_biases() {
    let x = tiny_input(); // values in [−1, 1): the z^B bounds
    let bounds = || (vec![-1.0; 3], vec![1.0; 3]);
    for (name, composite) in [
        ("epsilon", Composite::epsilon(1e-9)),
        ("epsilon-gamma-box", Composite::epsilon_gamma_box(bounds().0, bounds().1)),
        ("epsilon-alpha1beta0-box", Composite::epsilon_alpha1beta0_box(bounds().0, bounds().1)),
        (
            "epsilon, alpha1beta0 first",
            Composite { first_bounds: None, conv: ConvRule::AlphaOneBetaZero, epsilon: 1e-9 },
        ),
    ] {
        let net = tiny_vgg(false, composite);
        let (c, logit) = top_class(&net, &x);
        let r = net.relevance(&x, &Target::Class(c)).unwrap();
        let sum: f32 = r.sum_all().unwrap().to_scalar().unwrap();
        println!("{name}: Σ R = {sum}, logit = {logit}");
        assert!((sum - logit).abs() <= 1e-3 * logit.abs(), "{name}: Σ R {sum} vs logit {logit}");
    }
}

/// A bias-free net with a residual block (identity and projection shortcuts) and DenseNet-style
/// concatenations.
fn tiny_graph(composite: Composite) -> LrpModel {
    let c = |seed, o, i, k, s| LrpLayer::Conv {
        weight: t(seed, &[o, i, k, k], 0.5),
        bias: None,
        stride: s,
        padding: k / 2,
    };
    let layers = vec![
        c(1, 4, 3, 3, 1),
        LrpLayer::Relu,
        LrpLayer::Residual {
            main: vec![c(2, 4, 4, 3, 1), LrpLayer::Relu, c(3, 4, 4, 3, 1)],
            shortcut: vec![],
        },
        LrpLayer::Relu,
        LrpLayer::Concat(vec![vec![], vec![c(4, 2, 4, 3, 1), LrpLayer::Relu]]),
        LrpLayer::Concat(vec![vec![], vec![c(5, 2, 6, 1, 1), LrpLayer::Relu]]),
        LrpLayer::MaxPool { kernel: 3, stride: 2, padding: 1 },
        LrpLayer::Residual {
            main: vec![c(6, 5, 8, 3, 2), LrpLayer::Relu, c(7, 5, 5, 3, 1)],
            shortcut: vec![c(8, 5, 8, 1, 2)],
        },
        LrpLayer::Relu,
        LrpLayer::AdaptiveAvgPool { height: 1, width: 1 },
        LrpLayer::Flatten,
        LrpLayer::Linear { weight: t(9, &[3, 5], 0.8), bias: None },
    ];
    LrpModel::new(layers, composite).unwrap()
}

#[test]
fn lrp_conserves_relevance_through_residuals_and_concatenations() {
    let x = tiny_input();
    for (name, composite) in [
        ("epsilon", Composite::epsilon(1e-9)),
        ("epsilon-gamma-box", Composite::epsilon_gamma_box(vec![-1.0; 3], vec![1.0; 3])),
        ("epsilon-alpha1beta0-box", Composite::epsilon_alpha1beta0_box(vec![-1.0; 3], vec![1.0; 3])),
    ] {
        let net = tiny_graph(composite);
        let (c, logit) = top_class(&net, &x);
        let r = net.relevance(&x, &Target::Class(c)).unwrap();
        let sum: f32 = r.sum_all().unwrap().to_scalar().unwrap();
        println!("graph {name}: Σ R = {sum}, logit = {logit}");
        assert!((sum - logit).abs() <= 1e-3 * logit.abs(), "{name}: Σ R {sum} vs logit {logit}");
    }
}

fn first_input(case: &str, model: &radlens::model::LoadedModel) -> Tensor {
    let m = &model.manifest;
    let shape = (1, m.in_channels, m.input_size[0], m.input_size[1]);
    let n = m.in_channels * m.input_size[0] * m.input_size[1];
    Tensor::from_vec(npy(&models().join(case).join("input.npy"))[..n].to_vec(), shape, &Device::Cpu).unwrap()
}

#[test]
fn lrp_from_manifest_covers_vgg_resnet_densenet() {
    let err =
        Lrp::from_manifest(&models().join("convnext_tiny_narrow/model.toml"), &Device::Cpu).unwrap_err();
    assert_eq!(err.to_string(), "LRP is not available for convnext_tiny yet");
    // BatchNorm folded, blocks found by name: the LRP model's forward equals the network's.
    for case in
        ["vgg16_narrow", "vgg16_bn_narrow", "resnet50_cls", "densenet121_narrow", "densenet201_narrow"]
    {
        let lrp = LrpModel::from_manifest(&models().join(case).join("model.toml"), &Device::Cpu).unwrap();
        let model = load_model(&models().join(case).join("model.toml"), &Device::Cpu).unwrap();
        let x = first_input(case, &model);
        let a: Vec<f32> = lrp.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = model.net.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-4 * (1.0 + q.abs()), "{case}: {a:?} vs {b:?}");
        }
        // The default composite (z^B, γ, ε) gives a finite, non-trivial map.
        let (c, _) = top_class(&lrp, &x);
        let start = Instant::now();
        let map = run(&Lrp { model: lrp.clone() }, &lrp, &x, &Target::Class(c), &Params::default()).unwrap();
        println!("{case}: LRP (z^B, γ, ε) {:.2} s", start.elapsed().as_secs_f64());
        assert!(map.values.iter().all(|v| v.is_finite()) && map.values.iter().any(|&v| v != 0.0), "{case}");
    }
}

const SEGMENTATION_CASES: [&str; 6] = [
    "unet",
    "resnet_unet_18",
    "smp_unet_resnet18",
    "smp_unet_resnet18_depth3",
    "smp_unet_densenet121",
    "smp_unet_resnet50",
];

/// The region a segmentation test explains: the top-left quadrant of the output.
fn quadrant(h: usize, w: usize) -> Target {
    let mask = (0..h * w).map(|i| i / w < h / 2 && i % w < w / 2).collect();
    Target::Region { class: 0, mask }
}

#[test]
fn lrp_from_manifest_covers_unets_and_xrv_densenet() {
    // The nested-level form of every U-Net (skips, pad/crop and nearest resizes, transposed
    // convolutions, residual up-blocks) computes exactly the network's forward.
    for case in SEGMENTATION_CASES.iter().copied().chain(["xrv_densenet121_narrow"]) {
        let lrp = LrpModel::from_manifest(&models().join(case).join("model.toml"), &Device::Cpu).unwrap();
        let model = load_model(&models().join(case).join("model.toml"), &Device::Cpu).unwrap();
        assert_eq!(lrp.task(), model.net.task(), "{case}");
        let x = first_input(case, &model);
        let a: Vec<f32> = lrp.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = model.net.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a.len(), b.len(), "{case}");
        // Folded BatchNorms round differently through 50 layers: the tolerance scales with the output.
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        println!("{case}: LRP forward vs network, max |Δ| {worst:.2e} (max |y| {scale:.2})");
        assert!(worst <= 2e-4 * scale, "{case}: max |Δ| {worst} for outputs up to {scale}");
        // The default composite on the default target (predicted region or top class).
        let m = &model.manifest;
        let target = Target::default_for(&lrp, &x, m.activation, m.threshold).unwrap();
        let start = Instant::now();
        let map = run(&Lrp { model: lrp.clone() }, &lrp, &x, &target, &Params::default()).unwrap();
        println!("{case}: LRP (z^B, γ, ε) {:.2} s", start.elapsed().as_secs_f64());
        assert_eq!((map.height, map.width), (m.input_size[0], m.input_size[1]), "{case}");
        assert!(map.values.iter().all(|v| v.is_finite()) && map.values.iter().any(|&v| v != 0.0), "{case}");
    }
    // milesial's bilinear form has no backward in candle: refused in one line naming the checkpoint.
    let err = Lrp::from_manifest(&models().join("unet/bilinear/model.toml"), &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("transposed convolutions") && msg.contains("weights.safetensors"), "{msg}");
    assert!(!msg.contains('\n'));
}

#[test]
fn lrp_conserves_region_relevance_on_bias_free_unets() {
    for case in SEGMENTATION_CASES {
        let model = load_model(&models().join(case).join("model.toml"), &Device::Cpu).unwrap();
        let x = first_input(case, &model);
        let full = LrpModel::from_manifest(&models().join(case).join("model.toml"), &Device::Cpu).unwrap();
        let bounds = full.composite.first_bounds.clone().unwrap();
        for (name, composite) in [
            ("epsilon", Composite::epsilon(1e-9)),
            ("epsilon-gamma-box", Composite::epsilon_gamma_box(bounds.0.clone(), bounds.1.clone())),
        ] {
            let mut net = full.without_biases().unwrap();
            net.composite = composite;
            let logits = net.forward(&x).unwrap();
            let (_, _, h, w) = logits.dims4().unwrap();
            let target = quadrant(h, w);
            let score: f32 = target.score(&logits).unwrap().sum_all().unwrap().to_scalar().unwrap();
            let r = net.relevance(&x, &target).unwrap();
            let sum: f32 = r.sum_all().unwrap().to_scalar().unwrap();
            println!("{case} {name}: Σ R = {sum}, target = {score}");
            assert!(score.abs() > 1e-3, "{case}: degenerate target {score}");
            assert!((sum - score).abs() <= 2e-3 * score.abs(), "{case} {name}: Σ R {sum} vs target {score}");
        }
    }
}

#[test]
fn smoothgrad_is_deterministic_per_seed() {
    let net = tiny_vgg(true, Composite::epsilon(1e-9));
    let x = tiny_input();
    let p = |seed| Params { seed, batch: 7, ..Params::default() };
    let sg = SmoothGrad::default();
    assert!(sg.stochastic());
    let a = run(&sg, &net, &x, &Target::Class(0), &p(1)).unwrap();
    let b = run(&sg, &net, &x, &Target::Class(0), &p(1)).unwrap();
    let c = run(&sg, &net, &x, &Target::Class(0), &p(2)).unwrap();
    assert_eq!(a, b, "same seed, same map");
    assert_ne!(a.values, c.values, "another seed, another map");
    // The batch size does not change the noise stream.
    let d =
        run(&sg, &net, &x, &Target::Class(0), &Params { seed: 1, batch: 25, ..Params::default() }).unwrap();
    for (u, v) in a.values.iter().zip(&d.values) {
        assert!((u - v).abs() <= 1e-5 * (1.0 + v.abs()));
    }
}

#[test]
fn saliency_matches_captum() {
    for case in ["densenet121_narrow", "vgg16_narrow"] {
        let (net, x, target) = fixture(case);
        let map = run(&Saliency::default(), net.as_ref(), &x, &target, &Params::default()).unwrap();
        let want = npy(&refs(case).join("saliency.npy"));
        let r = pearson(&map.values, &want);
        println!("{case}: saliency Pearson vs captum = {r:.8}");
        assert!(r >= 0.99, "{case}: {r}");
    }
}

#[test]
fn ig_matches_captum_and_is_complete() {
    for case in ["densenet121_narrow", "vgg16_narrow"] {
        let (net, x, target) = fixture(case);
        let start = Instant::now();
        let r = IntegratedGradients::default()
            .attributions(net.as_ref(), &x, &target, 50, 16, &mut |_, _| true)
            .unwrap();
        let secs = start.elapsed().as_secs_f64();
        let map = reduce_channels(&r.attributions, ChannelReduce::Sum).unwrap();
        let want = npy(&refs(case).join("ig.npy"));
        let corr = pearson(&map.values, &want);
        let sum: f32 = r.attributions.sum_all().unwrap().to_scalar().unwrap();
        let diff = r.score_input - r.score_baseline;
        let m = meta(case);
        println!(
            "{case}: IG 50 steps batch 16 {secs:.2} s (captum {:.2} s); Pearson {corr:.8}; Σ {sum} vs f(x)−f(0) {diff} (captum Σ {})",
            m["captum_ig_seconds"].as_f64().unwrap(),
            m["ig_sum"].as_f64().unwrap()
        );
        assert!(corr >= 0.99, "{case}: {corr}");
        assert!(
            (sum as f64 - m["ig_sum"].as_f64().unwrap()).abs() <= 1e-3 * (1.0 + sum.abs() as f64),
            "{case}: Σ differs from captum's"
        );
        if case == "densenet121_narrow" {
            assert!((sum - diff).abs() <= 0.01 * diff.abs(), "completeness: Σ {sum} vs {diff}");
        }
    }
}

#[test]
fn lrp_epsilon_matches_captum() {
    for case in ["vgg16_narrow", "densenet121_narrow"] {
        let (_, x, target) = fixture(case);
        let mut model =
            LrpModel::from_manifest(&models().join(case).join("model.toml"), &Device::Cpu).unwrap();
        model.composite = Composite::epsilon(1e-9);
        let start = Instant::now();
        let r = model.relevance(&x, &target).unwrap();
        let secs = start.elapsed().as_secs_f64();
        let map = reduce_channels(&r, ChannelReduce::Sum).unwrap();
        let want = npy(&refs(case).join("lrp_eps.npy"));
        let corr = pearson(&map.values, &want);
        let sum: f32 = r.sum_all().unwrap().to_scalar().unwrap();
        println!(
            "{case}: LRP-ε {secs:.2} s; Pearson vs captum {corr:.8}; Σ {sum} (captum {})",
            meta(case)["lrp_sum"]
        );
        assert!(corr >= 0.99, "{case}: {corr}");
    }
}

#[test]
fn gradient_of_a_batch_is_per_item() {
    let net = tiny_vgg(true, Composite::epsilon(1e-9));
    let x = tiny_input();
    let x2 = Tensor::cat(&[&x, &(&x * 0.5).unwrap()], 0).unwrap();
    let g = input_gradient(&net, &x2, &Target::Class(1)).unwrap();
    let g0 = input_gradient(&net, &x, &Target::Class(1)).unwrap();
    let d: f32 =
        (g.narrow(0, 0, 1).unwrap() - g0).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(d < 1e-6);
}

#[test]
fn ig_riemann_trapezoid_follows_captums_step_sizes() {
    // captum's trapezoid steps sum to (n − 1)/n: on f(x) = w·x, IG = w ⊙ x · (n − 1)/n.
    let w = t(100, &[1, 25], 1.0);
    let x = t(101, &[1, 1, 5, 5], 2.0);
    let net = LrpModel::new(
        vec![LrpLayer::Flatten, LrpLayer::Linear { weight: w.clone(), bias: None }],
        Composite::epsilon(1e-9),
    )
    .unwrap();
    let ig = IntegratedGradients { method: Quadrature::RiemannTrapezoid, ..Default::default() };
    let n = 20;
    let map =
        run(&ig, &net, &x, &Target::Class(0), &Params { steps: Some(n), batch: 6, ..Params::default() })
            .unwrap();
    let wv: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
    let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    for ((g, a), b) in map.values.iter().zip(&wv).zip(&xv) {
        let want = a * b * (n - 1) as f32 / n as f32;
        assert!((g - want).abs() <= 1e-5 * (1.0 + want.abs()), "{g} vs {want}");
    }
}

#[test]
fn ig_with_a_black_baseline_is_complete() {
    let net = tiny_vgg(true, Composite::epsilon(1e-9));
    let x = tiny_input();
    let ig = IntegratedGradients {
        baseline: Baseline::black(Normalize::Imagenet, 3, 8, 8, &Device::Cpu).unwrap(),
        ..Default::default()
    };
    let (c, _) = top_class(&net, &x);
    let r = ig.attributions(&net, &x, &Target::Class(c), 64, 16, &mut |_, _| true).unwrap();
    let sum: f32 = r.attributions.sum_all().unwrap().to_scalar().unwrap();
    let diff = r.score_input - r.score_baseline;
    println!("tiny net IG, black baseline: Σ = {sum}, f(x) − f(black) = {diff}");
    assert!((sum - diff).abs() <= 0.01 * diff.abs(), "Σ {sum} vs {diff}");
    // The baseline really is the normalised black image.
    let zero = IntegratedGradients::default()
        .attributions(&net, &x, &Target::Class(c), 8, 8, &mut |_, _| true)
        .unwrap();
    assert_ne!(zero.score_baseline, r.score_baseline);
}
