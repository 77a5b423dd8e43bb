//! Perturbation XAI: superpixels against skimage, LIME / KernelSHAP / occlusion / RISE on hand-built
//! networks with known answers, determinism and stability, adaptive LIME against fixed LIME on a fixture.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use radlens::model::manifest::Normalize;
use radlens::model::preprocess::normalize;
use radlens::model::{Network, Tap, Task};
use radlens::xai::kernelshap::{full_and_baseline, KernelShap};
use radlens::xai::lime::Lime;
use radlens::xai::occlusion::Occlusion;
use radlens::xai::perturb::{positive_only, spearman, stability, Fill};
use radlens::xai::rise::Rise;
use radlens::xai::superpixels::{felzenszwalb, quickshift, slic, Segmentation};
use radlens::xai::{ExplainInput, Explainer, Heatmap, Params, Target};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn cxr64() -> Vec<f32> {
    let b = std::fs::read(fixtures().join("xai/perturb/cxr64.u8")).expect("cxr64.u8");
    assert_eq!(b.len(), 64 * 64);
    b.iter().map(|&v| v as f32).collect()
}

fn labels_u16(name: &str) -> Vec<u32> {
    let b = std::fs::read(fixtures().join("xai/perturb").join(name)).expect(name);
    b.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u32).collect()
}

fn count(l: &[u32]) -> usize {
    let mut u = l.to_vec();
    u.sort_unstable();
    u.dedup();
    u.len()
}

/// Adjusted Rand index (Hubert & Arabie).
fn ari(a: &[u32], b: &[u32]) -> f64 {
    let c2 = |n: f64| n * (n - 1.0) / 2.0;
    let mut table: HashMap<(u32, u32), f64> = HashMap::new();
    let (mut ra, mut rb): (HashMap<u32, f64>, HashMap<u32, f64>) = (HashMap::new(), HashMap::new());
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *ra.entry(x).or_default() += 1.0;
        *rb.entry(y).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|&n| c2(n)).sum();
    let sa: f64 = ra.values().map(|&n| c2(n)).sum();
    let sb: f64 = rb.values().map(|&n| c2(n)).sum();
    let expected = sa * sb / c2(a.len() as f64);
    let max = (sa + sb) / 2.0;
    if max == expected {
        1.0
    } else {
        (index - expected) / (max - expected)
    }
}

/// Number of labels that are not one connected piece (4- or 8-connectivity).
fn disconnected(l: &[u32], h: usize, w: usize, eight: bool) -> usize {
    let mut seen = vec![false; h * w];
    let mut pieces: HashMap<u32, usize> = HashMap::new();
    for s in 0..h * w {
        if seen[s] {
            continue;
        }
        *pieces.entry(l[s]).or_default() += 1;
        seen[s] = true;
        let mut stack = vec![s];
        while let Some(i) = stack.pop() {
            let (y, x) = ((i / w) as isize, (i % w) as isize);
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    if (dy == 0 && dx == 0) || (!eight && dy != 0 && dx != 0) {
                        continue;
                    }
                    let (ny, nx) = (y + dy, x + dx);
                    if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if !seen[j] && l[j] == l[i] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
    }
    pieces.values().filter(|&&n| n > 1).count()
}

#[test]
fn superpixels_agree_with_skimage() {
    let g = cxr64();
    for (k, d, r, file) in [
        (4.0, 200.0, 0.2, "quickshift_k4_d200_r0.2.u16"),
        (2.0, 6.0, 0.5, "quickshift_k2_d6_r0.5.u16"),
        (2.0, 4.0, 1.0, "quickshift_k2_d4_r1.0.u16"),
    ] {
        let ours = quickshift(&g, 64, 64, k, d, r);
        let theirs = labels_u16(file);
        let a = ari(&ours, &theirs);
        let exact = ours.iter().zip(&theirs).filter(|(x, y)| x == y).count() as f64 / ours.len() as f64;
        println!("quickshift k={k} d={d} r={r}: ours {} segments, skimage {}, ARI {a:.4}, identical labels {exact:.4}", count(&ours), count(&theirs));
        assert!(ours.iter().all(|&l| (l as usize) < count(&ours)), "labels not contiguous");
        let (n0, n1) = (count(&ours) as f64, count(&theirs) as f64);
        assert!((n0 - n1).abs() <= (0.1 * n1).max(1.0), "quickshift segment count {n0} vs skimage {n1}");
        assert!(a >= 0.9, "quickshift ARI {a}");
    }
    let s = slic(&g, 64, 64, 50, 0.1);
    let s_ref = labels_u16("slic.u16");
    println!(
        "slic: ours {} segments, skimage {}, ARI {:.4}, disconnected labels {}",
        count(&s),
        count(&s_ref),
        ari(&s, &s_ref),
        disconnected(&s, 64, 64, false)
    );
    assert!((count(&s) as f64 - count(&s_ref) as f64).abs() <= 0.3 * count(&s_ref) as f64);
    assert_eq!(disconnected(&s, 64, 64, false), 0);
    let f = felzenszwalb(&g, 64, 64, 100.0, 0.5, 20);
    let f_ref = labels_u16("felzenszwalb.u16");
    println!(
        "felzenszwalb: ours {} segments, skimage {}, ARI {:.4}, disconnected (8-conn) {}",
        count(&f),
        count(&f_ref),
        ari(&f, &f_ref),
        disconnected(&f, 64, 64, true)
    );
    assert!((count(&f) as f64 - count(&f_ref) as f64).abs() <= (0.3 * count(&f_ref) as f64).max(2.0));
    assert_eq!(disconnected(&f, 64, 64, true), 0);
}

/// Classification with one class: the mean of the input (all channels) inside a rectangle.
struct RectMean {
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
}

impl Network for RectMean {
    fn forward_tap(&self, x: &Tensor, _tap: &mut Tap) -> candle_core::Result<Tensor> {
        let r = x.narrow(2, self.rows.start, self.rows.len())?.narrow(3, self.cols.start, self.cols.len())?;
        r.flatten_from(1)?.mean(1)?.unsqueeze(1)
    }
    fn task(&self) -> Task {
        Task::Classification
    }
}

fn image_input(grey: &[f32], h: usize, w: usize) -> Tensor {
    Tensor::from_vec(normalize(grey, Normalize::Imagenet, 3), (1, 3, h, w), &Device::Cpu).unwrap()
}

/// 8×8 blocks as superpixels on a 64×64 grid (64 of them).
fn blocks64() -> Vec<u32> {
    (0..64 * 64).map(|i| ((i / 64) / 8 * 8 + (i % 64) / 8) as u32).collect()
}

fn run(e: &dyn Explainer, input: &ExplainInput, params: &Params) -> Heatmap {
    e.explain(input, params, &mut |_, _| true).unwrap()
}

#[test]
fn lime_finds_the_informative_superpixels() {
    let g = cxr64();
    let x = image_input(&g, 64, 64);
    let net = RectMean { rows: 16..32, cols: 24..48 };
    let target = Target::Class(0);
    let input = ExplainInput { net: &net, input: &x, grey: &g, target: &target, default_layer: None };
    let lime =
        Lime { segmentation: Segmentation::Given(blocks64()), fill: Fill::Constant(-3.0), ..Lime::fixed() };
    let map = run(&lime, &input, &Params::default());
    let pos = positive_only(&map);
    let (mut inside, mut total) = (0.0f64, 0.0f64);
    for (i, &v) in pos.values.iter().enumerate() {
        total += v as f64;
        if net.rows.contains(&(i / 64)) && net.cols.contains(&(i % 64)) {
            inside += v as f64;
        }
    }
    let r2 = map.extras.surrogate_r2.unwrap();
    println!("LIME synthetic: positive mass inside the region {:.4}, R² {r2:.4}", inside / total);
    assert!(inside / total >= 0.9);
    assert!(r2 > 0.9);
    // The six informative blocks are the six heaviest.
    let w = map.extras.superpixel_weights.clone().unwrap();
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.sort_by(|&a, &b| w[b].total_cmp(&w[a]));
    let mut top: Vec<usize> = order[..6].to_vec();
    top.sort();
    assert_eq!(top, vec![19, 20, 21, 27, 28, 29]);
}

#[test]
fn kernelshap_is_efficient_and_exact_on_a_linear_model() {
    let g = cxr64();
    let x = image_input(&g, 64, 64);
    let net = RectMean { rows: 16..32, cols: 24..48 };
    let target = Target::Class(0);
    let input = ExplainInput { net: &net, input: &x, grey: &g, target: &target, default_layer: None };
    let ks = KernelShap { segmentation: Segmentation::Given(blocks64()), fill: Fill::Constant(-3.0) };
    let map = run(&ks, &input, &Params::default());
    let phi = map.extras.superpixel_weights.clone().unwrap();
    let (fx, f0) = full_and_baseline(&ks, &input).unwrap();
    let sum: f64 = phi.iter().map(|&v| v as f64).sum();
    println!("KernelSHAP synthetic: Σφ {sum:.6}, f(x) − f(baseline) {:.6}", fx - f0);
    assert!((sum - (fx - f0) as f64).abs() < 1e-3);
    // Linear game: φ_j is block j's own contribution (Σ over its pixels in the rectangle of x + 3) / |R|.
    let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let mut expected = vec![0.0f64; 64];
    for c in 0..3 {
        for y in 16..32 {
            for xx in 24..48 {
                expected[(y / 8) * 8 + xx / 8] +=
                    (xs[c * 4096 + y * 64 + xx] as f64 + 3.0) / (3.0 * 16.0 * 24.0);
            }
        }
    }
    for (j, (&p, &e)) in phi.iter().zip(&expected).enumerate() {
        assert!((p as f64 - e).abs() < 1e-4, "φ[{j}] = {p}, expected {e}");
    }

    // A fixture model, 23 quickshift superpixels (sampled coalitions).
    let dir = fixtures().join("models/densenet121_narrow");
    let lm = radlens::model::load_model(&dir.join("model.toml"), &Device::Cpu).unwrap();
    let x = Tensor::from_vec(
        normalize(&g, lm.manifest.normalize, lm.manifest.in_channels),
        (1, 3, 64, 64),
        &Device::Cpu,
    )
    .unwrap();
    let target = Target::Class(1);
    let input = ExplainInput { net: &*lm.net, input: &x, grey: &g, target: &target, default_layer: None };
    let ks = KernelShap {
        segmentation: Segmentation::Quickshift { kernel_size: 2.0, max_dist: 6.0, ratio: 0.5 },
        fill: Fill::SuperpixelMean,
    };
    let map = run(&ks, &input, &Params { samples: Some(500), ..Params::default() });
    let phi = map.extras.superpixel_weights.clone().unwrap();
    let (fx, f0) = full_and_baseline(&ks, &input).unwrap();
    let sum: f64 = phi.iter().map(|&v| v as f64).sum();
    println!(
        "KernelSHAP densenet121_narrow: {} players, Σφ {sum:.6}, f(x) − f(baseline) {:.6}",
        phi.len(),
        fx - f0
    );
    assert!((sum - (fx - f0) as f64).abs() < 1e-3);
}

#[test]
fn occlusion_known_answer_on_a_linear_model() {
    let (h, w) = (32, 32);
    let g: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 251) as f32).collect();
    let x = image_input(&g, h, w);
    let net = RectMean { rows: 4..20, cols: 10..26 };
    let target = Target::Class(0);
    let input = ExplainInput { net: &net, input: &x, grey: &g, target: &target, default_layer: None };
    let occ = Occlusion { window: 8, stride: 4, fill: Fill::Constant(0.0) };
    let map = run(&occ, &input, &Params::default());
    // By hand: occluding window W (fill 0) lowers the score by Σ_{p ∈ W∩R} mean_c x_c(p) / |R|; each
    // pixel averages that over the windows covering it (starts 0, 4, …, 24 on each axis).
    let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let pix = |y: usize, xx: usize| (0..3).map(|c| xs[c * h * w + y * w + xx] as f64).sum::<f64>() / 3.0;
    let area = 16.0 * 16.0;
    let mut expected = vec![0.0f64; h * w];
    let mut cover = vec![0.0f64; h * w];
    for y0 in (0..=24).step_by(4) {
        for x0 in (0..=24).step_by(4) {
            let mut d = 0.0;
            for y in y0..y0 + 8 {
                for xx in x0..x0 + 8 {
                    if (4..20).contains(&y) && (10..26).contains(&xx) {
                        d += pix(y, xx) / area;
                    }
                }
            }
            for y in y0..y0 + 8 {
                for xx in x0..x0 + 8 {
                    expected[y * w + xx] += d;
                    cover[y * w + xx] += 1.0;
                }
            }
        }
    }
    let mut worst = 0.0f64;
    for i in 0..h * w {
        worst = worst.max((map.values[i] as f64 - expected[i] / cover[i]).abs());
    }
    println!("occlusion: max |ours − hand| = {worst:.2e}");
    assert!(worst < 1e-4);
}

fn pearson(a: &[f32], b: &[f32]) -> f64 {
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

/// captum's `Occlusion` (16×16 windows, stride 8, baseline 0) on the PyTorch fixtures, from
/// tools/make_xai_occlusion_fixtures.py: a class logit of two classifiers and a region target of a U-Net.
#[test]
fn occlusion_matches_captum() {
    for case in ["densenet121_narrow", "vgg16_narrow", "smp_unet_resnet18"] {
        let refs = fixtures().join("xai/occlusion").join(case);
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(refs.join("meta.json")).unwrap()).unwrap();
        let want: ndarray::ArrayD<f32> = ndarray_npy::read_npy(refs.join("occlusion.npy")).unwrap();
        let want: Vec<f32> = want.iter().copied().collect();
        let dir = fixtures().join("models").join(case);
        let lm = radlens::model::load_model(&dir.join("model.toml"), &Device::Cpu).unwrap();
        let m = &lm.manifest;
        let (h, w) = (m.input_size[0], m.input_size[1]);
        let all: ndarray::ArrayD<f32> = ndarray_npy::read_npy(dir.join("input.npy")).unwrap();
        let n = m.in_channels * h * w;
        let x = Tensor::from_vec(
            all.iter().copied().take(n).collect::<Vec<_>>(),
            (1, m.in_channels, h, w),
            &Device::Cpu,
        )
        .unwrap();
        let target = match meta["target"].as_u64() {
            Some(c) => Target::Class(c as usize),
            None => {
                let mask: ndarray::ArrayD<f32> =
                    ndarray_npy::read_npy(fixtures().join("xai/cam").join(case).join("mask.npy")).unwrap();
                Target::Region { class: 0, mask: mask.iter().map(|&v| v > 0.5).collect() }
            }
        };
        let grey = vec![0.0; h * w];
        let input =
            ExplainInput { net: &*lm.net, input: &x, grey: &grey, target: &target, default_layer: None };
        let occ = Occlusion {
            window: meta["window"].as_u64().unwrap() as usize,
            stride: meta["stride"].as_u64().unwrap() as usize,
            fill: Fill::Constant(0.0),
        };
        let t0 = Instant::now();
        let map = run(&occ, &input, &Params { batch: 16, ..Params::default() });
        let r = pearson(&map.values, &want);
        let worst = map.values.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        println!(
            "occlusion {case}: Pearson {r:.6}, max |Δ| {worst:.2e}; radlens {:.2?}, captum {:.2} s",
            t0.elapsed(),
            meta["captum_seconds"].as_f64().unwrap()
        );
        assert!(r >= 0.99, "{case}: Pearson {r}");
    }
}

#[test]
fn same_seed_same_map_different_seeds_stable() {
    let g = cxr64();
    let x = image_input(&g, 64, 64);
    let net = RectMean { rows: 16..40, cols: 8..32 };
    let target = Target::Class(0);
    let input = ExplainInput { net: &net, input: &x, grey: &g, target: &target, default_layer: None };
    let seg = Segmentation::Quickshift { kernel_size: 2.0, max_dist: 6.0, ratio: 0.5 };
    // RISE's masks are coarse and random: it needs its default 2,000 to settle.
    let methods: Vec<(Box<dyn Explainer>, usize)> = vec![
        (Box::new(Lime { segmentation: seg.clone(), fill: Fill::Constant(-3.0), ..Lime::fixed() }), 500),
        (Box::new(KernelShap { segmentation: seg.clone(), fill: Fill::Constant(-3.0) }), 500),
        (Box::new(Rise::default()), 2000),
    ];
    for (m, n) in &methods {
        let p = |seed| Params { seed, samples: Some(*n), batch: 32, ..Params::default() };
        let a = run(m.as_ref(), &input, &p(7));
        let b = run(m.as_ref(), &input, &p(7));
        assert!(
            a.values.iter().zip(&b.values).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{}: same seed, different map",
            m.name()
        );
        let maps: Vec<Heatmap> = (1..=3).map(|s| run(m.as_ref(), &input, &p(s))).collect();
        assert_ne!(maps[0].values, maps[1].values, "{}: seeds ignored", m.name());
        let (iou, rho) = stability(&maps, 10.0);
        println!(
            "{}: stability over 3 seeds, {n} samples: top-10% IoU {iou:.3}, Spearman {rho:.3}",
            m.name()
        );
        // LIME's and KernelSHAP's weights outside the informative region are sampling noise around 0, so
        // their pixel Spearman is lower than their top-k agreement.
        assert!(rho > 0.5 && iou > 0.5, "{} unstable: IoU {iou}, Spearman {rho}", m.name());
    }
}

/// IoU of the top-k superpixels (by weight) of two weight vectors.
fn top_k_iou(a: &[f64], b: &[f64], k: usize) -> f64 {
    let top = |w: &[f64]| -> std::collections::HashSet<usize> {
        let mut idx: Vec<usize> = (0..w.len()).collect();
        idx.sort_by(|&i, &j| w[j].total_cmp(&w[i]).then(i.cmp(&j)));
        idx.into_iter().take(k).collect()
    };
    let (ta, tb) = (top(a), top(b));
    ta.intersection(&tb).count() as f64 / ta.union(&tb).count() as f64
}

#[test]
fn adaptive_lime_agrees_with_fixed_lime_on_densenet121_narrow() {
    let g = cxr64();
    let dir = fixtures().join("models/densenet121_narrow");
    let lm = radlens::model::load_model(&dir.join("model.toml"), &Device::Cpu).unwrap();
    let x = Tensor::from_vec(
        normalize(&g, lm.manifest.normalize, lm.manifest.in_channels),
        (1, 3, 64, 64),
        &Device::Cpu,
    )
    .unwrap();
    let target = Target::default_for(&*lm.net, &x, lm.manifest.activation, 0.5).unwrap();
    let input = ExplainInput { net: &*lm.net, input: &x, grey: &g, target: &target, default_layer: None };
    // lime's default quickshift finds one segment on this smooth crop; a finer one gives 23.
    let seg = Segmentation::Quickshift { kernel_size: 2.0, max_dist: 6.0, ratio: 0.5 };
    let weights = |h: &Heatmap| -> Vec<f64> {
        h.extras.superpixel_weights.as_ref().unwrap().iter().map(|&v| v as f64).collect()
    };
    let fixed = Lime { segmentation: seg.clone(), ..Lime::fixed() };
    let adaptive = Lime { segmentation: seg, ..Lime::default() };
    let params = |seed| Params { seed, samples: Some(1000), batch: 16, ..Params::default() };
    let t0 = Instant::now();
    let (f3, n_fixed) = fixed.explain_counted(&input, &params(3), &mut |_, _| true).unwrap();
    let t_fixed = t0.elapsed();
    let (f4, _) = fixed.explain_counted(&input, &params(4), &mut |_, _| true).unwrap();
    let (wf3, wf4) = (weights(&f3), weights(&f4));
    let k = wf3.len().div_ceil(4);
    // The noise floor: two 1,000-sample runs with different seeds.
    let (rho_ff, iou_ff) = (spearman(&wf3, &wf4), top_k_iou(&wf3, &wf4, k));
    println!(
        "LIME densenet121_narrow 64², {} superpixels: fixed 1000 samples {t_fixed:.2?}; fixed seed 3 vs 4: Spearman {rho_ff:.4}, top-{k} IoU {iou_ff:.3}",
        wf3.len()
    );
    assert_eq!(n_fixed, 1000);
    let (mut rho_sum, mut iou_sum, mut n_sum) = (0.0, 0.0, 0);
    for seed in [3u64, 5, 6] {
        let t0 = Instant::now();
        let (a, n_adaptive) = adaptive.explain_counted(&input, &params(seed), &mut |_, _| true).unwrap();
        let t_adaptive = t0.elapsed();
        let wa = weights(&a);
        let (rho, iou) = (spearman(&wa, &wf3), top_k_iou(&wa, &wf3, k));
        println!(
            "  adaptive seed {seed}: {n_adaptive} samples {t_adaptive:.2?} (R² {:.3}); vs fixed seed 3: Spearman {rho:.4}, top-{k} IoU {iou:.3}",
            a.extras.surrogate_r2.unwrap()
        );
        assert!(n_adaptive >= 96 && n_adaptive <= 1000);
        // Each adaptive map agrees with the 1,000-sample map nearly as well as another 1,000-sample
        // run does.
        assert!(rho >= 0.9 && rho >= rho_ff - 0.05, "seed {seed}: Spearman {rho} (fixed vs fixed {rho_ff})");
        assert!(iou >= iou_ff - 0.35, "seed {seed}: top-{k} IoU {iou} (fixed vs fixed {iou_ff})");
        (rho_sum, iou_sum, n_sum) = (rho_sum + rho, iou_sum + iou, n_sum + n_adaptive);
        // Same seed, same samples, same stop, same map.
        let (again, n_again) = adaptive.explain_counted(&input, &params(seed), &mut |_, _| true).unwrap();
        assert_eq!((again, n_again), (a, n_adaptive), "seed {seed}: not deterministic");
    }
    println!(
        "  adaptive mean: {} samples, Spearman {:.4}, IoU {:.3}",
        n_sum / 3,
        rho_sum / 3.0,
        iou_sum / 3.0
    );
    assert!(n_sum / 3 <= 600, "the adaptive rule did not save samples: {} on average", n_sum / 3);
    // Cancellation through the progress callback.
    let r = Lime::fixed().explain(&input, &params(3), &mut |done, _| done < 64);
    assert!(matches!(r, Err(radlens::xai::XaiError::Cancelled)));
}

/// Full-size benchmark against the `lime` package: run `python3 tools/bench_lime_torch.py` first (it
/// writes the random-weight DenseNet-121, the 224² image and lime's result to
/// `$RADLENS_LIME_BENCH`, default /tmp/radlens_lime_bench), then
/// `cargo test --test xai_perturb -- --ignored --nocapture lime_full_size`.
#[test]
#[ignore]
fn lime_full_size_densenet121_vs_lime_package() {
    let dir = PathBuf::from(std::env::var("RADLENS_LIME_BENCH").unwrap_or("/tmp/radlens_lime_bench".into()));
    let lime_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("lime.json")).unwrap()).unwrap();
    let g: Vec<f32> = std::fs::read(dir.join("grey224.u8")).unwrap().iter().map(|&v| v as f32).collect();
    let lm = radlens::model::load_model(&dir.join("model.toml"), &Device::Cpu).unwrap();
    let x =
        Tensor::from_vec(normalize(&g, lm.manifest.normalize, 3), (1, 3, 224, 224), &Device::Cpu).unwrap();
    let target = Target::Class(lime_json["target"].as_u64().unwrap() as usize);
    let input = ExplainInput { net: &*lm.net, input: &x, grey: &g, target: &target, default_layer: None };
    let their_segments: Vec<u32> =
        lime_json["segments"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let their_w: Vec<f64> =
        lime_json["weights"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let t0 = Instant::now();
    let ours = quickshift(&g, 224, 224, 4.0, 200.0, 0.2);
    println!(
        "quickshift 224² (lime defaults): {:.2?}, {} segments (lime: {}), ARI {:.4}",
        t0.elapsed(),
        count(&ours),
        their_w.len(),
        ari(&ours, &their_segments)
    );
    let params = Params { seed: 0, samples: Some(1000), batch: 16, ..Params::default() };
    let fixed_wanted = std::env::var("RADLENS_LIME_BENCH_FIXED").is_ok();
    let t0 = Instant::now();
    let (adaptive, n_adaptive) = Lime::default().explain_counted(&input, &params, &mut |_, _| true).unwrap();
    let t_adaptive = t0.elapsed();
    let wa: Vec<f64> = adaptive.extras.superpixel_weights.unwrap().iter().map(|&v| v as f64).collect();
    let same_segments = ours == their_segments;
    println!(
        "radlens adaptive LIME: {n_adaptive} samples, {t_adaptive:.2?}; lime package 1000 samples {:.1} s; Spearman vs lime's weights {}",
        lime_json["seconds"].as_f64().unwrap(),
        if same_segments { format!("{:.4}", spearman(&wa, &their_w)) } else { "n/a (segments differ)".into() }
    );
    if fixed_wanted {
        let t0 = Instant::now();
        let (fixed, _) = Lime::fixed().explain_counted(&input, &params, &mut |_, _| true).unwrap();
        let wf: Vec<f64> = fixed.extras.superpixel_weights.unwrap().iter().map(|&v| v as f64).collect();
        println!(
            "radlens fixed LIME: 1000 samples, {:.2?}; Spearman adaptive vs fixed {:.4}; fixed vs lime {}",
            t0.elapsed(),
            spearman(&wa, &wf),
            if same_segments { format!("{:.4}", spearman(&wf, &their_w)) } else { "n/a".into() }
        );
    }
}

#[test]
fn bad_inputs_are_refused() {
    let g = cxr64();
    let x = image_input(&g, 64, 64);
    let net = RectMean { rows: 0..8, cols: 0..8 };
    let target = Target::Class(0);
    let short = &g[..100];
    let input = ExplainInput { net: &net, input: &x, grey: short, target: &target, default_layer: None };
    let bad =
        |r: Result<Heatmap, radlens::xai::XaiError>| matches!(r, Err(radlens::xai::XaiError::BadParams(_)));
    assert!(bad(Lime::default().explain(&input, &Params::default(), &mut |_, _| true)));
    assert!(bad(KernelShap::default().explain(&input, &Params::default(), &mut |_, _| true)));
    let input = ExplainInput { net: &net, input: &x, grey: &g, target: &target, default_layer: None };
    let occ = Occlusion { window: 0, ..Occlusion::default() };
    assert!(bad(occ.explain(&input, &Params::default(), &mut |_, _| true)));
    let rise = Rise { p: 0.0, ..Rise::default() };
    assert!(bad(rise.explain(&input, &Params::default(), &mut |_, _| true)));
}

/// A batch's images are scored independently, so the batch size (and its cap for large inputs,
/// `perturb::MAX_BATCH_VALUES`) never changes a map: LIME on the DenseNet fixture at 3×232², where a
/// requested batch of 16 is capped to 7, gives the same bits with batch 16, 7 and 3.
#[test]
fn lime_map_does_not_depend_on_the_batch_size_or_its_cap() {
    let side = 232;
    let g: Vec<f32> =
        (0..side * side).map(|i| (((i % side) * 7 + (i / side) * 3) % 255) as f32 / 255.0).collect();
    let dir = fixtures().join("models/densenet121_narrow");
    let lm = radlens::model::load_model(&dir.join("model.toml"), &Device::Cpu).unwrap();
    let data = normalize(&g, lm.manifest.normalize, lm.manifest.in_channels);
    let x = Tensor::from_vec(data, (1, 3, side, side), &Device::Cpu).unwrap();
    assert_eq!(radlens::xai::perturb::MAX_BATCH_VALUES / (3 * side * side), 7);
    let target = Target::Class(0);
    let input = ExplainInput { net: &*lm.net, input: &x, grey: &g, target: &target, default_layer: None };
    let lime =
        Lime { segmentation: Segmentation::Slic { n_segments: 12, compactness: 10.0 }, ..Lime::fixed() };
    let maps: Vec<Heatmap> = [16usize, 7, 3]
        .iter()
        .map(|&batch| run(&lime, &input, &Params { seed: 5, samples: Some(21), batch, ..Params::default() }))
        .collect();
    for m in &maps[1..] {
        assert!(maps[0].values.iter().zip(&m.values).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
