//! The fast convolution (`radlens::model::conv`) against candle's reference convolution and its
//! autograd, and against finite differences; BatchNorm folding against the unfolded layers; the
//! pixel-shuffle transposed convolution against candle's.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use radlens::model::conv::{conv2d, conv2d_add, reference_conv2d, ConvParams};
use radlens::model::layers;

/// Normal samples from a fixed per-test seed (each test runs on its own thread), so a failure can be
/// reproduced; candle's `Tensor::randn` on the CPU cannot be seeded.
fn randn<S: Into<candle_core::Shape>>(
    mean: f32,
    std: f32,
    shape: S,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    thread_local! {
        static RNG: std::cell::RefCell<radlens::imaging::SplitMix64> =
            std::cell::RefCell::new(radlens::imaging::SplitMix64::new(0x5eed));
    }
    let shape = shape.into();
    let values: Vec<f32> = RNG.with(|rng| {
        let mut rng = rng.borrow_mut();
        (0..shape.elem_count())
            .map(|_| {
                // Box–Muller; 1 − u keeps the logarithm finite.
                let (u, v) = (1.0 - rng.next_f64(), rng.next_f64());
                mean + std * ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect()
    });
    Tensor::from_vec(values, shape, dev)
}

/// The reference output with the ReLU mask taken from `fast` (held constant): where a pre-activation is
/// within rounding of zero the two implementations may legitimately disagree on the mask, which would
/// move a whole upstream gradient value; with a shared mask the gradients must agree everywhere.
fn relu_with_mask_of(pre: &Tensor, fast: &Tensor) -> Tensor {
    let mask = fast.detach().gt(0f32).unwrap().to_dtype(DType::F32).unwrap();
    (pre * mask).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// |a − b| ≤ tol · max(1, max|b|).
fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f32) {
    let d = max_abs_diff(a, b);
    let scale = max_abs(b).max(1.0);
    assert!(d <= tol * scale, "{what}: max abs diff {d} (scale {scale})");
}

/// One test case: (n, c_in, c_out, h, w, kh, kw, params, bias).
type Case = (usize, usize, usize, usize, usize, usize, usize, ConvParams, bool);

fn p(stride: usize, padding: usize, dilation: usize, groups: usize) -> ConvParams {
    ConvParams { stride, padding, dilation, groups }
}

fn cases() -> Vec<Case> {
    vec![
        // odd sizes, 3×3, stride 1, padding 1
        (1, 3, 5, 7, 9, 3, 3, p(1, 1, 1, 1), true),
        // stride 2 with uneven remainders in height and width (9 → 5, 10 → 5 with different rests)
        (2, 4, 6, 9, 10, 3, 3, p(2, 1, 1, 1), false),
        // the ResNet stem: 7×7 stride 2 padding 3
        (1, 3, 8, 19, 17, 7, 7, p(2, 3, 1, 1), false),
        // 1×1 stride 1 (read in place) and 1×1 stride 2 (the downsample)
        (3, 6, 4, 5, 7, 1, 1, p(1, 0, 1, 1), true),
        (2, 6, 4, 9, 8, 1, 1, p(2, 0, 1, 1), false),
        // dilation 2
        (1, 4, 3, 11, 12, 3, 3, p(1, 2, 2, 1), true),
        // groups (2 and depthwise)
        (2, 6, 4, 8, 7, 3, 3, p(1, 1, 1, 2), true),
        (1, 4, 4, 6, 6, 3, 3, p(2, 1, 1, 4), false),
        // grouped 1×1
        (1, 8, 6, 5, 5, 1, 1, p(1, 0, 1, 2), false),
        // non-square kernel, no padding; kernel as large as the input
        (1, 2, 3, 6, 8, 3, 2, p(1, 0, 1, 1), true),
        (2, 2, 3, 4, 4, 4, 4, p(1, 0, 1, 1), true),
        // enough output pixels and channels for several tiles per image (tile edges inside a row)
        (2, 64, 16, 37, 41, 3, 3, p(1, 1, 1, 1), false),
        (1, 96, 8, 70, 70, 3, 3, p(1, 1, 1, 1), true),
        // 3×3 stride 1 with ≥ 16 channels each way and ≥ 8×8 output, with padding 0, 1 and 2, odd
        // output sizes and a batch.
        (2, 20, 16, 10, 11, 3, 3, p(1, 0, 1, 1), true),
        (3, 16, 24, 9, 8, 3, 3, p(1, 1, 1, 1), false),
        (1, 32, 17, 8, 9, 3, 3, p(1, 2, 1, 1), true),
        (1, 48, 32, 33, 30, 3, 3, p(1, 1, 1, 1), true),
        // ≥ 32×32 inputs at stride 1: the input gradient runs as a forward convolution of dy with the
        // rotated kernel (padding k − 1 − p for p = 0, 1, 2 and a 5×5 kernel)
        (1, 3, 5, 40, 30, 3, 3, p(1, 0, 1, 1), false),
        (2, 4, 6, 33, 34, 5, 5, p(1, 2, 1, 1), true),
        (1, 5, 4, 32, 33, 3, 3, p(1, 2, 1, 1), true),
    ]
}

#[test]
fn forward_and_gradients_equal_candle() {
    let dev = Device::Cpu;
    for (i, &(n, c, co, h, w, kh, kw, params, with_bias)) in cases().iter().enumerate() {
        let x = Var::from_tensor(&randn(0f32, 1., (n, c, h, w), &dev).unwrap()).unwrap();
        let wt = randn(0f32, 0.3, (co, c / params.groups, kh, kw), &dev).unwrap();
        let wt = Var::from_tensor(&wt).unwrap();
        let b = Var::from_tensor(&randn(0f32, 1., co, &dev).unwrap()).unwrap();
        let bias = with_bias.then(|| b.as_tensor());
        for relu in [false, true] {
            let what = format!("case {i} {:?} relu {relu}", (n, c, co, h, w, kh, kw, params));
            let fast = conv2d(x.as_tensor(), wt.as_tensor(), bias, params, relu).unwrap();
            let want = reference_conv2d(x.as_tensor(), wt.as_tensor(), bias, params, relu).unwrap();
            assert_close(&format!("{what} forward"), &fast, &want, 1e-5);
            let want = if relu {
                let pre = reference_conv2d(x.as_tensor(), wt.as_tensor(), bias, params, false).unwrap();
                relu_with_mask_of(&pre, &fast)
            } else {
                want
            };
            // A random linear functional of the output: its gradients are conv's adjoints applied to r.
            let r = randn(0f32, 1., want.shape(), &dev).unwrap();
            let g_fast = (fast * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g_want = (want * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, t) in [("input", x.as_tensor()), ("weight", wt.as_tensor()), ("bias", b.as_tensor())] {
                if name == "bias" && !with_bias {
                    continue;
                }
                let (Some(a), Some(e)) = (g_fast.get(t), g_want.get(t)) else {
                    panic!("{what}: no {name} gradient")
                };
                assert_close(&format!("{what} {name} gradient"), a, e, 1e-4);
            }
        }
    }
}

/// A constant (non-Var) bias is fused into the op; with a Var input the input gradient must still see
/// the ReLU mask computed after the bias.
#[test]
fn fused_constant_bias_and_relu_gradient() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&randn(0f32, 1., (2, 5, 12, 11), &dev).unwrap()).unwrap();
    let w = randn(0f32, 0.3, (7, 5, 3, 3), &dev).unwrap();
    let b = randn(0f32, 1., 7, &dev).unwrap();
    let params = p(2, 1, 1, 1);
    let fast = conv2d(x.as_tensor(), &w, Some(&b), params, true).unwrap();
    let want = reference_conv2d(x.as_tensor(), &w, Some(&b), params, true).unwrap();
    assert_close("fused forward", &fast, &want, 1e-5);
    // Some outputs are negative before the ReLU, so the mask matters.
    let pre = reference_conv2d(x.as_tensor(), &w, Some(&b), params, false).unwrap();
    let negatives =
        pre.lt(0f32).unwrap().to_dtype(DType::F32).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(negatives > 10.0);
    let want = relu_with_mask_of(&pre, &fast);
    let r = randn(0f32, 1., want.shape(), &dev).unwrap();
    let ga = (fast * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let ge = (want * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close(
        "fused input gradient",
        ga.get(x.as_tensor()).unwrap(),
        ge.get(x.as_tensor()).unwrap(),
        1e-4,
    );
    // The constant weight gets no gradient.
    assert!(ga.get(&w).is_none());
}

/// The residual-fused convolution (`relu(conv(x) + b + r)`, a ResNet block's tail) equals the
/// separate conv, add and ReLU, in value and in the gradients of input, weight and residual; with a
/// constant bias (fused) and a tracked one (added separately), with and without the ReLU.
#[test]
fn residual_fused_conv_equals_conv_add_relu() {
    let dev = Device::Cpu;
    for (i, &(n, c, co, h, w, kh, kw, params, _)) in cases().iter().enumerate() {
        let x = Var::from_tensor(&randn(0f32, 1., (n, c, h, w), &dev).unwrap()).unwrap();
        let wt = Var::from_tensor(&randn(0f32, 0.3, (co, c / params.groups, kh, kw), &dev).unwrap()).unwrap();
        let b = randn(0f32, 1., co, &dev).unwrap();
        let bv = Var::from_tensor(&b).unwrap();
        let out_shape =
            reference_conv2d(x.as_tensor(), wt.as_tensor(), None, params, false).unwrap().shape().clone();
        let res = Var::from_tensor(&randn(0f32, 1., out_shape.clone(), &dev).unwrap()).unwrap();
        for (relu, bias) in [(true, Some(&b)), (false, Some(&b)), (true, None), (true, Some(bv.as_tensor()))]
        {
            let what = format!(
                "case {i} relu {relu} bias {}",
                bias.map_or("none", |t| if t.is_variable() { "var" } else { "const" })
            );
            let fast =
                conv2d_add(x.as_tensor(), wt.as_tensor(), bias, params, res.as_tensor(), relu).unwrap();
            let pre = (reference_conv2d(x.as_tensor(), wt.as_tensor(), bias, params, false).unwrap()
                + res.as_tensor())
            .unwrap();
            let want = if relu { pre.relu().unwrap() } else { pre.clone() };
            assert_close(&format!("{what} forward"), &fast, &want, 1e-5);
            let want = if relu { relu_with_mask_of(&pre, &fast) } else { want };
            let r = randn(0f32, 1., out_shape.clone(), &dev).unwrap();
            let ga = (&fast * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let ge = (&want * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, t) in
                [("input", x.as_tensor()), ("weight", wt.as_tensor()), ("residual", res.as_tensor())]
            {
                let (Some(a), Some(e)) = (ga.get(t), ge.get(t)) else { panic!("{what}: no {name} gradient") };
                assert_close(&format!("{what} {name} gradient"), a, e, 1e-4);
            }
            if bias.is_some_and(|t| t.is_variable()) {
                assert_close(
                    &format!("{what} bias gradient"),
                    ga.get(&bv).unwrap(),
                    ge.get(&bv).unwrap(),
                    1e-4,
                );
            }
        }
    }
    // A residual of the wrong shape is an error naming both shapes, not a panic.
    let x = randn(0f32, 1., (1, 3, 8, 8), &dev).unwrap();
    let wt = randn(0f32, 1., (4, 3, 3, 3), &dev).unwrap();
    let r = randn(0f32, 1., (1, 4, 7, 8), &dev).unwrap();
    let err = conv2d_add(&x, &wt, None, p(1, 1, 1, 1), &r, true).unwrap_err().to_string();
    assert!(err.contains("residual"), "{err}");
}

/// The input gradient against central finite differences (independent of candle's autograd), in f64
/// arithmetic on the host for the difference quotient.
#[test]
fn input_gradient_matches_finite_differences() {
    let dev = Device::Cpu;
    let (n, c, h, w) = (1, 2, 5, 6);
    let xs: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
    let x = Tensor::from_vec(xs.clone(), (n, c, h, w), &dev).unwrap();
    let wt = randn(0f32, 0.5, (3, c, 3, 3), &dev).unwrap();
    let params = p(2, 1, 1, 1);
    let r = randn(0f32, 1., (1, 3, 3, 3), &dev).unwrap();
    let f = |x: &Tensor| -> f64 {
        (conv2d(x, &wt, None, params, false).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64
    };
    let xv = Var::from_tensor(&x).unwrap();
    let g = (conv2d(xv.as_tensor(), &wt, None, params, false).unwrap() * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let grad: Vec<f32> = g.get(xv.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let eps = 1e-2f32;
    for i in 0..xs.len() {
        let mut up = xs.clone();
        up[i] += eps;
        let mut down = xs.clone();
        down[i] -= eps;
        let fd = (f(&Tensor::from_vec(up, (n, c, h, w), &dev).unwrap())
            - f(&Tensor::from_vec(down, (n, c, h, w), &dev).unwrap()))
            / (2.0 * eps as f64);
        assert!(
            (fd - grad[i] as f64).abs() < 2e-3,
            "element {i}: finite difference {fd}, gradient {}",
            grad[i]
        );
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &dev).unwrap();
    let w = Tensor::zeros((2, 4, 3, 3), DType::F32, &dev).unwrap();
    let e = conv2d(&x, &w, None, ConvParams::default(), false).unwrap_err().to_string();
    assert!(e.contains("channels"), "{e}");
    let w = Tensor::zeros((2, 3, 5, 5), DType::F32, &dev).unwrap();
    let e = conv2d(&x, &w, None, ConvParams::default(), false).unwrap_err().to_string();
    assert!(e.contains("smaller than"), "{e}");
    let w = Tensor::zeros((2, 3, 3, 3), DType::F32, &dev).unwrap();
    let e = conv2d(&x, &w, None, p(0, 0, 1, 1), false).unwrap_err().to_string();
    assert!(e.contains("stride"), "{e}");
    let x3 = Tensor::zeros((3, 4, 4), DType::F32, &dev).unwrap();
    assert!(conv2d(&x3, &w, None, ConvParams::default(), false).is_err());
}

/// Random BatchNorm statistics and affine parameters, as plain tensors (a checkpoint).
fn conv_bn_tensors(c: usize, o: usize, k: usize, dev: &Device) -> std::collections::HashMap<String, Tensor> {
    let mut t = std::collections::HashMap::new();
    t.insert("conv.weight".into(), randn(0f32, 0.3, (o, c, k, k), dev).unwrap());
    t.insert("bn.weight".into(), randn(1f32, 0.3, o, dev).unwrap());
    t.insert("bn.bias".into(), randn(0f32, 0.5, o, dev).unwrap());
    t.insert("bn.running_mean".into(), randn(0f32, 0.5, o, dev).unwrap());
    t.insert("bn.running_var".into(), Tensor::rand(0.2f32, 2.0, o, dev).unwrap());
    t
}

#[test]
fn folded_batch_norm_equals_unfolded() {
    let dev = Device::Cpu;
    for (c, o, k, stride, pad) in [(3, 8, 3, 1, 1), (8, 16, 1, 2, 0), (4, 6, 7, 2, 3)] {
        let vb = VarBuilder::from_tensors(conv_bn_tensors(c, o, k, &dev), DType::F32, &dev);
        let folded = layers::ConvBn::load(vb.pp("conv"), vb.pp("bn"), c, o, k, stride, pad).unwrap();
        assert!(folded.is_folded(), "plain tensors fold");
        let conv = layers::conv2d(vb.pp("conv"), c, o, k, stride, pad, false).unwrap();
        let unfolded = layers::ConvBn::unfolded(conv.clone(), layers::batch_norm(vb.pp("bn"), o).unwrap());
        let x = randn(0f32, 1., (2, c, 13, 14), &dev).unwrap();
        assert_close("folded conv-bn", &folded.forward(&x).unwrap(), &unfolded.forward(&x).unwrap(), 1e-5);
        assert_close(
            "folded conv-bn-relu",
            &folded.forward_relu(&x).unwrap(),
            &unfolded.forward_relu(&x).unwrap(),
            1e-5,
        );
        // and the unfolded layer equals candle's own conv + BatchNorm
        let bn = layers::batch_norm(vb.pp("bn"), o).unwrap();
        let candle_ref =
            candle_nn::ModuleT::forward_t(&bn, &candle_core::Module::forward(&conv, &x).unwrap(), false)
                .unwrap();
        assert_close("unfolded vs candle", &unfolded.forward(&x).unwrap(), &candle_ref, 1e-5);
    }
}

#[test]
fn trainable_layers_are_not_folded_and_get_gradients() {
    let dev = Device::Cpu;
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let layer = layers::ConvBn::load(vb.pp("conv"), vb.pp("bn"), 3, 4, 3, 1, 1).unwrap();
    assert!(!layer.is_folded());
    let x = randn(0f32, 1., (1, 3, 6, 6), &dev).unwrap();
    let g = layer.forward_relu(&x).unwrap().sum_all().unwrap().backward().unwrap();
    let w = layer.conv().weight();
    let dw = g.get(w).expect("weight gradient");
    assert!(max_abs(dw) > 0.0);
    let (gamma, beta) = layer.batch_norm().expect("unfolded").weight_and_bias().unwrap();
    assert!(g.get(gamma).is_some() && g.get(beta).is_some());
}

#[test]
fn transposed_conv_k_equals_stride_matches_candle() {
    let dev = Device::Cpu;
    for (c, o, k, h, w) in [(6, 3, 2, 5, 7), (4, 4, 3, 3, 2)] {
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let up = layers::conv_transpose2d(vb.pp("up"), c, o, k, k).unwrap();
        let x = Var::from_tensor(&randn(0f32, 1., (2, c, h, w), &dev).unwrap()).unwrap();
        let fast = layers::conv_transpose2d_fwd(&up, x.as_tensor()).unwrap();
        let want = candle_core::Module::forward(&up, x.as_tensor()).unwrap();
        assert_close("conv transpose forward", &fast, &want, 1e-5);
        let r = randn(0f32, 1., want.shape(), &dev).unwrap();
        let ga = (fast * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let ge = (want * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let weight = up.weight();
        for (name, t) in [("input", x.as_tensor()), ("weight", weight)] {
            assert_close(
                &format!("conv transpose {name} gradient"),
                ga.get(t).unwrap(),
                ge.get(t).unwrap(),
                1e-4,
            );
        }
    }
}

/// The one-pass max pool against a brute-force loop: values and the gradient (each output's gradient
/// goes to the first maximum of its window, PyTorch's rule; ties are made on purpose).
#[test]
fn max_pool_matches_brute_force_with_ties() {
    let dev = Device::Cpu;
    for (n, c, h, w, k, s, pad) in [(2, 3, 9, 10, 3, 2, 1), (1, 2, 7, 7, 2, 2, 0), (1, 1, 6, 5, 3, 1, 1)] {
        // small integers: many ties
        let xs: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 7919) % 5) as f32).collect();
        let x = Var::from_tensor(&Tensor::from_vec(xs.clone(), (n, c, h, w), &dev).unwrap()).unwrap();
        let y = layers::max_pool2d(x.as_tensor(), k, s, pad).unwrap();
        let (oh, ow) = ((h + 2 * pad - k) / s + 1, (w + 2 * pad - k) / s + 1);
        assert_eq!(y.dims4().unwrap(), (n, c, oh, ow));
        let r: Vec<f32> = (0..n * c * oh * ow).map(|i| 1.0 + i as f32).collect();
        let g = (&y * Tensor::from_vec(r.clone(), (n, c, oh, ow), &dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let got: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let dx: Vec<f32> = g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut want_dx = vec![0f32; xs.len()];
        for plane in 0..n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best: Option<(f32, usize)> = None;
                    for dy in 0..k {
                        for dxk in 0..k {
                            let (iy, ix) = (
                                (oy * s + dy) as isize - pad as isize,
                                (ox * s + dxk) as isize - pad as isize,
                            );
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let i = plane * h * w + iy as usize * w + ix as usize;
                            if best.is_none_or(|(v, _)| xs[i] > v) {
                                best = Some((xs[i], i));
                            }
                        }
                    }
                    let (v, i) = best.unwrap();
                    let o = plane * oh * ow + oy * ow + ox;
                    assert_eq!(got[o], v, "max at {o}");
                    want_dx[i] += r[o];
                }
            }
        }
        assert_eq!(dx, want_dx, "max pool gradient k{k} s{s} p{pad}");
    }
}

/// Nearest upsampling by repetition equals candle's `upsample_nearest2d`, and its gradient is the sum
/// over each pixel's f×f block.
#[test]
fn nearest_upsampling_and_its_gradient() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&randn(0f32, 1., (2, 3, 4, 5), &dev).unwrap()).unwrap();
    let y = layers::resize_nearest(x.as_tensor(), 8, 10).unwrap();
    let want = x.as_tensor().upsample_nearest2d(8, 10).unwrap();
    assert_eq!(max_abs_diff(&y, &want), 0.0);
    let r = randn(0f32, 1., (2, 3, 8, 10), &dev).unwrap();
    let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let block_sums = r.reshape((2, 3, 4, 2, 5, 2)).unwrap().sum(5).unwrap().sum(3).unwrap();
    assert_close("nearest upsampling gradient", g.get(x.as_tensor()).unwrap(), &block_sums, 1e-6);
}

/// Two BatchNorms over equal but separate parameters (γ, β as `Var`s) and running statistics.
fn twin_batch_norms(c: usize, dev: &Device) -> [(candle_nn::BatchNorm, Var, Var); 2] {
    let gamma = randn(1.0, 0.3, c, dev).unwrap();
    let beta = randn(0.0, 0.5, c, dev).unwrap();
    let mean = randn(0.0, 0.2, c, dev).unwrap();
    let var = (randn(0.0, 0.3, c, dev).unwrap().abs().unwrap() + 0.5).unwrap();
    let make = || {
        let (g, b) = (
            Var::from_tensor(&gamma.copy().unwrap()).unwrap(),
            Var::from_tensor(&beta.copy().unwrap()).unwrap(),
        );
        let bn = candle_nn::BatchNorm::new(
            c,
            mean.copy().unwrap(),
            var.copy().unwrap(),
            g.as_tensor().clone(),
            b.as_tensor().clone(),
            1e-5,
        )
        .unwrap();
        (bn, g, b)
    };
    [make(), make()]
}

#[test]
fn training_batch_norm_equals_candle_values_running_stats_and_gradients() {
    let dev = Device::Cpu;
    for (relu, shape) in [(false, (2, 5, 6, 7)), (true, (3, 4, 5, 5)), (true, (1, 3, 2, 1))] {
        let c = shape.1;
        let [(ours, g1, b1), (theirs, g2, b2)] = twin_batch_norms(c, &dev);
        // Off-centre input so that the mean matters; a random upstream gradient.
        let x = Var::from_tensor(&randn(0.7, 2.0, shape, &dev).unwrap()).unwrap();
        let r = randn(0.0, 1.0, shape, &dev).unwrap();
        let y = radlens::model::channel::batch_norm_train(&ours, x.as_tensor(), relu).unwrap();
        let pre = candle_nn::ModuleT::forward_t(&theirs, x.as_tensor(), true).unwrap();
        let reference = if relu { relu_with_mask_of(&pre, &y) } else { pre };
        assert_close("output", &y, &reference, 1e-5);
        assert_close("running mean", ours.running_mean(), theirs.running_mean(), 1e-6);
        assert_close("running var", ours.running_var(), theirs.running_var(), 1e-5);
        assert!(max_abs_diff(ours.running_mean(), &randn(0.0, 0.0, c, &dev).unwrap()) > 0.0);

        let ga = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&reference * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (what, a, b) in [("x", &x, &x), ("gamma", &g1, &g2), ("beta", &b1, &b2)] {
            let (da, db) = (ga.get(a.as_tensor()).unwrap(), gb.get(b.as_tensor()).unwrap());
            assert_close(&format!("d{what} (relu {relu}, {shape:?})"), da, db, 1e-4);
        }
        // The input gradient of a BN in training mode sums to zero per channel (the mean is removed)
        // when there is no ReLU: a check that does not lean on candle.
        if !relu {
            let dx = ga.get(x.as_tensor()).unwrap().sum((0, 2, 3)).unwrap();
            assert!(max_abs(&dx) < 1e-4, "dx sums {dx}");
        }
    }
}

#[test]
fn training_batch_norm_through_layers_uses_batch_statistics_and_rejects_single_values() {
    let dev = Device::Cpu;
    let [(norm, _, _), _] = twin_batch_norms(3, &dev);
    let x = randn(3.0, 2.0, (2, 3, 4, 4), &dev).unwrap();
    let y = {
        let _train = radlens::model::train_mode::TrainMode::enter(true);
        layers::bn(&norm, &x).unwrap()
    };
    // γ·x̂ + β: removing β and dividing by γ leaves zero mean and unit (biased) variance per channel.
    let (g, b) = norm.weight_and_bias().unwrap();
    let xhat = y
        .broadcast_sub(&b.reshape((1, 3, 1, 1)).unwrap())
        .unwrap()
        .broadcast_div(&g.reshape((1, 3, 1, 1)).unwrap())
        .unwrap();
    let mean = xhat.mean((0, 2, 3)).unwrap();
    let var = xhat.sqr().unwrap().mean((0, 2, 3)).unwrap();
    assert!(max_abs(&mean) < 1e-4, "mean {mean}");
    assert!(max_abs(&(var - 1.0).unwrap()) < 1e-3);
    let one = randn(0.0, 1.0, (1, 3, 1, 1), &dev).unwrap();
    let err = radlens::model::channel::batch_norm_train(&norm, &one, false).unwrap_err().to_string();
    assert!(err.contains("more than one value"), "{err}");
}

#[test]
fn tracked_bias_add_equals_broadcast_add_with_gradients() {
    let dev = Device::Cpu;
    let y = Var::from_tensor(&randn(0.0, 1.0, (2, 4, 5, 3), &dev).unwrap()).unwrap();
    let b = Var::from_tensor(&randn(0.0, 1.0, 4, &dev).unwrap()).unwrap();
    let r = randn(0.0, 1.0, (2, 4, 5, 3), &dev).unwrap();
    let ours = radlens::model::channel::bias_add(y.as_tensor(), b.as_tensor()).unwrap();
    let theirs = y.as_tensor().broadcast_add(&b.as_tensor().reshape((1, 4, 1, 1)).unwrap()).unwrap();
    assert_close("output", &ours, &theirs, 1e-6);
    let ga = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (&theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close("dy", ga.get(y.as_tensor()).unwrap(), gb.get(y.as_tensor()).unwrap(), 1e-6);
    assert_close("db", ga.get(b.as_tensor()).unwrap(), gb.get(b.as_tensor()).unwrap(), 1e-5);
    // A tracked bias through the fast convolution: its gradient is the channel sum of the output's.
    let x = randn(0.0, 1.0, (2, 3, 6, 6), &dev).unwrap();
    let w = randn(0.0, 0.3, (4, 3, 3, 3), &dev).unwrap();
    let out = conv2d(
        &x,
        &w,
        Some(b.as_tensor()),
        ConvParams { stride: 1, padding: 1, dilation: 1, groups: 1 },
        false,
    )
    .unwrap();
    let g = out.sum_all().unwrap().backward().unwrap();
    let db = g.get(b.as_tensor()).unwrap();
    assert_close("conv db", db, &Tensor::full(72f32, 4, &dev).unwrap(), 1e-5);
    let bad = radlens::model::channel::bias_add(y.as_tensor(), &Tensor::zeros(3, DType::F32, &dev).unwrap());
    assert!(bad.unwrap_err().to_string().contains("bias of 3 for 4 channels"));
}

#[test]
fn frozen_batch_norm_with_fused_relu_equals_bn_then_relu_with_gradient() {
    let dev = Device::Cpu;
    let vb = VarBuilder::from_tensors(conv_bn_tensors(3, 5, 1, &dev), DType::F32, &dev);
    let norm = layers::FrozenBatchNorm::load(vb.pp("bn"), 5).unwrap();
    let reference = layers::batch_norm(vb.pp("bn"), 5).unwrap();
    let x = Var::from_tensor(&randn(0.0, 1.5, (2, 5, 4, 6), &dev).unwrap()).unwrap();
    let r = randn(0.0, 1.0, (2, 5, 4, 6), &dev).unwrap();
    let fused = norm.forward_relu(x.as_tensor()).unwrap();
    let pre = candle_nn::ModuleT::forward_t(&reference, x.as_tensor(), false).unwrap();
    let unfused = relu_with_mask_of(&pre, &fused);
    assert_close("bn + relu", &fused, &unfused, 1e-5);
    assert!(fused.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().any(|&v| v == 0.0), "some clipped");
    let ga = (&fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (&unfused * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close("dx", ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap(), 1e-5);
    // Without the ReLU the same layer is the plain affine map.
    assert_close("bn", &norm.forward(x.as_tensor()).unwrap(), &pre, 1e-5);
}

#[test]
fn constant_weight_3x3_convolutions_with_many_channels_equal_candle() {
    // Constant (non-Var) weights with ≥ 256 input channels and ≥ 64 tiles take Winograd's F(2×2, 3×3)
    // with cached transformed weights: padding 0–2, odd sizes (partial edge tiles), a batch, bias,
    // ReLU and the fused residual; a second weight of the same shape must not reuse the first's cache.
    let dev = Device::Cpu;
    for (n, c, co, h, w, pad) in [(1, 256, 64, 17, 15, 1), (2, 272, 80, 16, 16, 0), (1, 256, 96, 15, 18, 2)] {
        let x = randn(0f32, 1., (n, c, h, w), &dev).unwrap();
        let params = ConvParams { stride: 1, padding: pad, dilation: 1, groups: 1 };
        let b = randn(0f32, 1., co, &dev).unwrap();
        for seed_shift in [0.0f32, 0.5] {
            let wt = randn(seed_shift, 0.05, (co, c, 3, 3), &dev).unwrap();
            for relu in [false, true] {
                let what = format!("{:?} pad {pad} relu {relu} shift {seed_shift}", (n, c, co, h, w));
                let want = reference_conv2d(&x, &wt, Some(&b), params, relu).unwrap();
                for round in 0..2 {
                    let got = conv2d(&x, &wt, Some(&b), params, relu).unwrap();
                    assert_close(&format!("{what} round {round}"), &got, &want, 1e-5);
                }
                let res = randn(0f32, 1., want.shape(), &dev).unwrap();
                let fused = conv2d_add(&x, &wt, Some(&b), params, &res, relu).unwrap();
                let pre = (reference_conv2d(&x, &wt, Some(&b), params, false).unwrap() + &res).unwrap();
                let want = if relu { pre.relu().unwrap() } else { pre };
                assert_close(&format!("{what} residual"), &fused, &want, 1e-5);
            }
        }
    }
}

#[test]
fn add_relu_equals_add_then_relu_with_gradients() {
    let dev = Device::Cpu;
    let a = Var::from_tensor(&randn(0.0, 1.0, (2, 3, 5, 4), &dev).unwrap()).unwrap();
    let b = Var::from_tensor(&randn(0.0, 1.0, (2, 3, 5, 4), &dev).unwrap()).unwrap();
    let r = randn(0.0, 1.0, (2, 3, 5, 4), &dev).unwrap();
    let fused = radlens::model::conv::add_relu(a.as_tensor(), b.as_tensor()).unwrap();
    let pre = (a.as_tensor() + b.as_tensor()).unwrap();
    let want = relu_with_mask_of(&pre, &fused);
    assert_eq!(max_abs_diff(&fused, &pre.relu().unwrap()), 0.0);
    let ga = (&fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (&want * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [&a, &b] {
        assert_close("gradient", ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap(), 1e-6);
    }
    let bad =
        radlens::model::conv::add_relu(a.as_tensor(), &Tensor::zeros((2, 3, 5), DType::F32, &dev).unwrap());
    assert!(bad.is_err());
}
