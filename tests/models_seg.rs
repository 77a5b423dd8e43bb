//! Parity of the ResNet / U-Net family with PyTorch (fixtures from `tools/make_fixtures.py`: narrow models,
//! random weights and BatchNorm statistics), gradient flow for the XAI methods, and activation replacement.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use radlens::io::npy::read_npy_f32;
use radlens::model::resnet::{ResNet, ResNetConfig};
use radlens::model::resnet_unet::{ResNetUnet, ResNetUnetConfig};
use radlens::model::smp_unet::{smp_unet_resnet, smp_unet_resnet_with, SmpUnetConfig};
use radlens::model::unet::{Unet, UnetConfig};
use radlens::model::{Network, Tap, Task};

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(case)
}

fn npy(path: &Path) -> Tensor {
    let (data, shape) = read_npy_f32(path).unwrap();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// Plain F32 tensors (not a VarMap), as at inference.
fn weights(dir: &Path) -> VarBuilder<'static> {
    let st = dir.join("weights.safetensors");
    if st.exists() {
        unsafe { VarBuilder::from_mmaped_safetensors(&[st], DType::F32, &Device::Cpu).unwrap() }
    } else {
        VarBuilder::from_pth(dir.join("weights.pth"), DType::F32, &Device::Cpu).unwrap()
    }
}

/// max |a − b| ≤ 1e-4 · max(1, max |b|).
fn assert_close(what: &str, got: &Tensor, expected: &Tensor) {
    assert_eq!(got.dims(), expected.dims(), "{what}: shape");
    let diff = (got - expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = expected.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
    assert!(diff <= 1e-4 * scale, "{what}: max abs diff {diff} > 1e-4 × {scale}");
    eprintln!("{what}: max abs diff {diff:.3e} (max |expected| {scale:.3e})");
}

/// Runs the fixture's input, compares the output and the recorded activations.
fn check_case(case: &str, net: &dyn Network, layers: &[&str]) {
    let dir = case_dir(case);
    let x = npy(&dir.join("input.npy"));
    let mut tap = Tap::recording(layers.iter().copied());
    let y = net.forward_tap(&x, &mut tap).unwrap();
    assert_close(&format!("{case} output"), &y, &npy(&dir.join("output.npy")));
    for l in layers {
        let got = tap.get(l).unwrap_or_else(|| panic!("{case}: layer {l} was not tapped"));
        assert_close(&format!("{case} {l}"), got, &npy(&dir.join(format!("{l}.npy"))));
    }
}

fn smp_net(case: &str, depth: usize, decoder: &[usize], classes: usize) -> Box<dyn Network> {
    smp_net_w(case, depth, 8, decoder, classes)
}

fn smp_net_w(case: &str, depth: usize, width: usize, decoder: &[usize], classes: usize) -> Box<dyn Network> {
    let resnet = ResNetConfig::by_depth(depth).unwrap().with_base_width(width);
    let cfg = SmpUnetConfig::with_decoder_channels(decoder);
    Box::new(smp_unet_resnet_with(weights(&case_dir(case)), &resnet, &cfg, classes).unwrap())
}

fn resnet_unet_net(case: &str, depth: usize, decoder: [usize; 4]) -> Box<dyn Network> {
    let cfg = ResNetUnetConfig::resnet(depth).unwrap().narrow(8, decoder);
    Box::new(ResNetUnet::new(weights(&case_dir(case)), &cfg, 1).unwrap())
}

const SMP_LAYERS: [&str; 2] = ["encoder.layer4", "decoder.blocks.2"];
const RESNET_UNET_LAYERS: [&str; 2] = ["encoder.layer4", "decoder.1"];

#[test]
fn smp_unet_resnet18_matches_torch() {
    let net = smp_net("smp_unet_resnet18", 18, &[32, 16, 16, 8, 8], 2);
    assert_eq!(net.task(), Task::Segmentation);
    check_case("smp_unet_resnet18", net.as_ref(), &SMP_LAYERS);
}

#[test]
fn smp_unet_resnet34_from_pth_matches_torch() {
    check_case(
        "smp_unet_resnet34",
        smp_net_w("smp_unet_resnet34", 34, 6, &[32, 16, 8, 8, 8], 1).as_ref(),
        &SMP_LAYERS,
    );
}

#[test]
fn smp_unet_resnet50_odd_size_matches_torch() {
    // 72 × 88 input: stage sizes 3×3 → 5×6 etc., smp's interpolate-to-skip-size path.
    let net = smp_net("smp_unet_resnet50", 50, &[32, 16, 16, 8, 8], 1);
    check_case("smp_unet_resnet50", net.as_ref(), &SMP_LAYERS);
}

#[test]
fn smp_unet_resnet18_encoder_depth3_matches_torch() {
    let net = smp_net_w("smp_unet_resnet18_depth3", 18, 4, &[16, 8, 8], 1);
    check_case("smp_unet_resnet18_depth3", net.as_ref(), &["encoder.layer2", "decoder.blocks.2"]);
    let mut tap = Tap::none();
    net.forward_tap(&npy(&case_dir("smp_unet_resnet18_depth3").join("input.npy")), &mut tap).unwrap();
    assert!(!tap.visited().iter().any(|n| n == "encoder.layer3"), "{:?}", tap.visited());
}

#[test]
fn resnet_unet_18_matches_torch() {
    check_case(
        "resnet_unet_18",
        resnet_unet_net("resnet_unet_18", 18, [32, 16, 8, 8]).as_ref(),
        &RESNET_UNET_LAYERS,
    );
}

#[test]
fn resnet_unet_50_odd_size_matches_torch() {
    check_case(
        "resnet_unet_50",
        resnet_unet_net("resnet_unet_50", 50, [32, 16, 16, 8]).as_ref(),
        &RESNET_UNET_LAYERS,
    );
}

#[test]
fn unet_odd_size_matches_torch() {
    let net = Unet::new(weights(&case_dir("unet")), &UnetConfig::standard().with_base_width(4), 1).unwrap();
    check_case("unet", &net, &["down4", "up4"]);
}

#[test]
fn unet_bilinear_matches_torch() {
    let cfg = UnetConfig { bilinear: true, ..UnetConfig::standard().with_base_width(4) };
    let net = Unet::new(weights(&case_dir("unet/bilinear")), &cfg, 1).unwrap();
    check_case("unet/bilinear", &net, &["down4", "up4"]);
}

#[test]
fn resnet50_classifier_matches_torch() {
    let cfg = ResNetConfig::resnet50().with_base_width(8);
    let net = ResNet::new(weights(&case_dir("resnet50_cls")), &cfg, 3).unwrap();
    assert_eq!(net.task(), Task::Classification);
    check_case("resnet50_cls", &net, &["layer4"]);
}

#[test]
fn taps_are_visited_in_forward_order() {
    let net = smp_net("smp_unet_resnet18", 18, &[32, 16, 16, 8, 8], 2);
    let x = npy(&case_dir("smp_unet_resnet18").join("input.npy"));
    let mut tap = Tap::none();
    net.forward_tap(&x, &mut tap).unwrap();
    let expected = [
        "encoder.relu",
        "encoder.maxpool",
        "encoder.layer1",
        "encoder.layer2",
        "encoder.layer3",
        "encoder.layer4",
        "decoder.blocks.0",
        "decoder.blocks.1",
        "decoder.blocks.2",
        "decoder.blocks.3",
        "decoder.blocks.4",
    ];
    assert_eq!(tap.visited(), &expected);
}

fn assert_nonzero_finite(what: &str, g: &Tensor) {
    let v: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|x| x.is_finite()), "{what}: non-finite gradient");
    let l1: f32 = v.iter().map(|x| x.abs()).sum();
    assert!(l1 > 0.0, "{what}: gradient is all zero");
}

/// Backprop of sum(output) reaches the input Var, and an activation at `encoder.layer4` made a Var through
/// `Tap::replacing` (candle 0.11's backward drops the gradients of intermediate, non-Var tensors, so
/// `GradStore::get(&recorded_activation)` is None: the replacing recipe is the way to get layer gradients).
fn check_gradients(case: &str, net: &dyn Network) {
    let x = npy(&case_dir(case).join("input.npy"));
    let xv = Var::from_tensor(&x).unwrap();
    let mut tap = Tap::recording(["encoder.layer4"]);
    let y = net.forward_tap(xv.as_tensor(), &mut tap).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert_nonzero_finite(
        &format!("{case} d/dx"),
        grads.get(xv.as_tensor()).expect("no gradient at the input"),
    );
    let act = tap.get("encoder.layer4").unwrap();
    assert!(grads.get(act).is_none(), "candle now keeps intermediate gradients: simplify the XAI recipe");

    let av = Var::from_tensor(&act.detach()).unwrap();
    let mut tap = Tap::none().replacing("encoder.layer4", av.as_tensor().clone());
    let y2 = net.forward_tap(&x, &mut tap).unwrap();
    assert_close(&format!("{case} output with the activation as a Var"), &y2, &y);
    let g2 = y2.sum_all().unwrap().backward().unwrap();
    let g2 = g2.get(av.as_tensor()).expect("no gradient at the replaced activation");
    assert_nonzero_finite(&format!("{case} d/dlayer4"), g2);
}

#[test]
fn gradients_flow_through_smp_unet() {
    check_gradients("smp_unet_resnet18", smp_net("smp_unet_resnet18", 18, &[32, 16, 16, 8, 8], 2).as_ref());
    // Non-integer nearest resizing (index_select path) must be differentiable too.
    check_gradients("smp_unet_resnet50", smp_net("smp_unet_resnet50", 50, &[32, 16, 16, 8, 8], 1).as_ref());
}

#[test]
fn gradients_flow_through_resnet_unet() {
    check_gradients("resnet_unet_18", resnet_unet_net("resnet_unet_18", 18, [32, 16, 8, 8]).as_ref());
    check_gradients("resnet_unet_50", resnet_unet_net("resnet_unet_50", 50, [32, 16, 16, 8]).as_ref());
}

#[test]
fn gradients_flow_through_classic_unet() {
    let net = Unet::new(weights(&case_dir("unet")), &UnetConfig::standard().with_base_width(4), 1).unwrap();
    let xv = Var::from_tensor(&npy(&case_dir("unet").join("input.npy"))).unwrap();
    let y = net.forward(xv.as_tensor()).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert_nonzero_finite("unet d/dx", grads.get(xv.as_tensor()).unwrap());
}

#[test]
fn replacing_layer4_changes_the_output() {
    for (case, net) in [
        ("smp_unet_resnet18", smp_net("smp_unet_resnet18", 18, &[32, 16, 16, 8, 8], 2)),
        ("resnet_unet_18", resnet_unet_net("resnet_unet_18", 18, [32, 16, 8, 8])),
    ] {
        let x = npy(&case_dir(case).join("input.npy"));
        let mut tap = Tap::recording(["encoder.layer4"]);
        let y = net.forward_tap(&x, &mut tap).unwrap();
        let act = tap.take("encoder.layer4").unwrap();
        // Same activation back in: same output. Zeroed: a different one.
        let mut same = Tap::none().replacing("encoder.layer4", act.clone());
        let y_same = net.forward_tap(&x, &mut same).unwrap();
        assert_close(&format!("{case} identity replacement"), &y_same, &y);
        let mut zero = Tap::none().replacing("encoder.layer4", act.zeros_like().unwrap());
        let y_zero = net.forward_tap(&x, &mut zero).unwrap();
        let d = (y_zero - &y).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d > 1e-3, "{case}: zeroing encoder.layer4 left the output unchanged ({d})");
    }
}

#[test]
fn mismatched_decoder_depth_is_an_error() {
    // A five-stage encoder handed to a four-block decoder must be refused, not silently mis-wired.
    use radlens::model::resnet::ResNetEncoder;
    use radlens::model::smp_unet::SmpUnet;
    let vb = weights(&case_dir("smp_unet_resnet18"));
    let resnet = ResNetConfig::resnet18().with_base_width(8);
    let enc = ResNetEncoder::new(vb.pp("encoder"), &resnet, "encoder", 5).unwrap();
    let cfg = SmpUnetConfig::with_decoder_channels(&[32, 16, 16, 8]);
    let err = SmpUnet::with_encoder(vb, Box::new(enc), &cfg, 2).err().expect("should fail");
    assert!(err.to_string().contains("decoder channels"), "{err}");
}

#[test]
fn standard_configs_have_standard_widths() {
    assert_eq!(ResNetConfig::resnet50().stage_channels(), [256, 512, 1024, 2048]);
    assert_eq!(ResNetConfig::resnet34().stage_channels(), [64, 128, 256, 512]);
    assert_eq!(SmpUnetConfig::default().decoder_channels, vec![256, 128, 64, 32, 16]);
    assert!(ResNetConfig::by_depth(101).is_err());
}

/// Full-size check against `python3 tools/make_fixtures.py --full-check DIR` (not in the suite: needs the
/// generated files): `RADLENS_FULL_CHECK=DIR cargo test --test models_seg -- --ignored --nocapture`.
#[test]
#[ignore]
fn full_size_smp_unet_matches_torch() {
    let Ok(root) = std::env::var("RADLENS_FULL_CHECK") else {
        panic!("set RADLENS_FULL_CHECK to the --full-check directory");
    };
    for depth in [34usize, 50] {
        let dir = Path::new(&root).join(format!("smp_unet_resnet{depth}"));
        let net = smp_unet_resnet(weights(&dir), depth, &SmpUnetConfig::default(), 1).unwrap();
        let x = npy(&dir.join("input.npy"));
        let y = net.forward(&x).unwrap();
        assert_close(&format!("full smp Unet resnet{depth}"), &y, &npy(&dir.join("output.npy")));
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = std::time::Instant::now();
            net.forward(&x).unwrap();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        eprintln!("smp Unet resnet{depth} 1×3×256² forward: min {:.3} s, median {:.3} s", times[0], times[1]);
    }
}

/// d sum(output) / d input equals PyTorch's on odd sizes (strided convs with unequal remainders, non-integer
/// nearest resizes, crops/pads): the gradients the XAI methods see are the right ones.
#[test]
fn input_gradients_match_torch_on_odd_sizes() {
    let cases: [(&str, Box<dyn Network>); 3] = [
        ("smp_unet_resnet50", smp_net("smp_unet_resnet50", 50, &[32, 16, 16, 8, 8], 1)),
        ("resnet_unet_50", resnet_unet_net("resnet_unet_50", 50, [32, 16, 16, 8])),
        (
            "unet",
            Box::new(
                Unet::new(weights(&case_dir("unet")), &UnetConfig::standard().with_base_width(4), 1).unwrap(),
            ),
        ),
    ];
    for (case, net) in cases {
        let dir = case_dir(case);
        let xv = Var::from_tensor(&npy(&dir.join("input.npy"))).unwrap();
        let y = net.forward(xv.as_tensor()).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert_close(
            &format!("{case} d sum(y)/dx"),
            grads.get(xv.as_tensor()).unwrap(),
            &npy(&dir.join("input_grad.npy")),
        );
    }
}

#[test]
fn max_pool_floor_gradient_is_one_at_each_maximum() {
    use radlens::model::layers::max_pool2d_floor;
    // 5 × 5 with distinct values: floor mode pools the top-left 4 × 4; the maxima get gradient 1 (candle's
    // own max_pool2d backward gives 0.25 there, and misplaces it on odd sizes).
    let x =
        Var::from_tensor(&Tensor::arange(0f32, 25., &Device::Cpu).unwrap().reshape((1, 1, 5, 5)).unwrap())
            .unwrap();
    let y = max_pool2d_floor(x.as_tensor(), 2).unwrap();
    assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![6., 8., 16., 18.]);
    let g = y.sum_all().unwrap().backward().unwrap();
    let g: Vec<f32> = g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let ones: Vec<usize> = g.iter().enumerate().filter(|(_, v)| **v == 1.0).map(|(i, _)| i).collect();
    assert_eq!(ones, vec![6, 8, 16, 18]);
    assert_eq!(g.iter().sum::<f32>(), 4.0);
}
