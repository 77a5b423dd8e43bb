//! `radlens train` pieces on tiny synthetic data: losses against hand-computed values, augmentation
//! geometry, the Adam formula, learning a trivial segmentation, determinism, exact resume, the written
//! model folder, bad input.

use std::path::Path;

use candle_core::{Device, Tensor, Var};
use radlens::imaging::SplitMix64;
use radlens::model::manifest::Arch;
use radlens::model::Task;
use radlens::train::augment::{apply, AffineParams};
use radlens::train::loss::{bce_with_logits, cross_entropy, dice_loss, focal_tversky_loss, SegLoss};
use radlens::train::optim::{Adam, EarlyStop, Plateau};
use radlens::train::{run, TrainConfig, TrainError};

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f32>().unwrap() as f64
}

fn t(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

#[test]
fn dice_loss_matches_hand_computation() {
    // p = [0.9, 0.2, 0.7, 0.1], t = [1, 0, 1, 1]: Σpt = 1.7, Σp = 1.9, Σt = 3, ε = 1.
    let l = scalar(&dice_loss(&t(&[0.9, 0.2, 0.7, 0.1]), &t(&[1.0, 0.0, 1.0, 1.0])).unwrap());
    let want = 1.0 - (2.0 * 1.7 + 1.0) / (1.9 + 3.0 + 1.0);
    assert!((l - want).abs() < 1e-6, "{l} vs {want}");
}

#[test]
fn bce_matches_hand_computation() {
    let x = [2.0f32, -1.0, 0.5];
    let y = [1.0f32, 0.0, 0.0];
    let want: f64 = x
        .iter()
        .zip(&y)
        .map(|(&x, &y)| {
            let p = 1.0 / (1.0 + (-(x as f64)).exp());
            -(y as f64 * p.ln() + (1.0 - y as f64) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / 3.0;
    let l = scalar(&bce_with_logits(&t(&x), &t(&y)).unwrap());
    assert!((l - want).abs() < 1e-6, "{l} vs {want}");
    // Large logits stay finite.
    let big = scalar(&bce_with_logits(&t(&[80.0, -80.0]), &t(&[0.0, 1.0])).unwrap());
    assert!((big - 80.0).abs() < 1e-4, "{big}");
}

#[test]
fn focal_tversky_matches_hand_computation() {
    let p = [0.9f32, 0.2, 0.7, 0.1];
    let y = [1.0f32, 0.0, 1.0, 1.0];
    // TP = 0.9 + 0.7 + 0.1 = 1.7; FP = 0.2; FN = 0.1 + 0.3 + 0.9 = 1.3.
    let (a, b, g) = (0.3, 0.7, 0.75);
    let ti = (1.7 + 1.0) / (1.7 + a * 0.2 + b * 1.3 + 1.0);
    let want = (1.0f64 - ti).powf(g);
    let l = scalar(&focal_tversky_loss(&t(&p), &t(&y), a, b, g).unwrap());
    assert!((l - want).abs() < 1e-6, "{l} vs {want}");
    // The combined loss adds the Dice loss.
    let logits: Vec<f32> = p.iter().map(|&v| (v / (1.0 - v)).ln()).collect();
    let both = SegLoss::FocalTverskyDice { alpha: a, beta: b, gamma: g };
    let l2 = scalar(&both.compute(&t(&logits), &t(&y)).unwrap());
    let d = 1.0 - (2.0 * 1.7 + 1.0) / (1.9 + 3.0 + 1.0);
    assert!((l2 - (want + d)).abs() < 1e-5, "{l2} vs {}", want + d);
}

#[test]
fn cross_entropy_matches_hand_computation() {
    let logits = Tensor::new(&[[1.0f32, 2.0, 0.5], [0.0, 0.0, 3.0]], &Device::Cpu).unwrap();
    let labels = Tensor::new(&[1u32, 0], &Device::Cpu).unwrap();
    let lse = |v: [f64; 3]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
    let want = ((lse([1.0, 2.0, 0.5]) - 2.0) + (lse([0.0, 0.0, 3.0]) - 0.0)) / 2.0;
    let l = scalar(&cross_entropy(&logits, &labels).unwrap());
    assert!((l - want).abs() < 1e-5, "{l} vs {want}");
}

#[test]
fn augmentation_shift_and_flip_move_image_and_mask_identically() {
    let (h, w) = (8, 10);
    let img: Vec<f32> = (0..h * w).map(|i| i as f32).collect();
    let mask: Vec<f32> = (0..h * w).map(|i| if (i % w) < 3 { 1.0 } else { 0.0 }).collect();
    // Shift right by 2 and down by 1: out(y, x) = in(y − 1, x − 2) inside the image.
    let p = AffineParams { shift_x: 2.0, shift_y: 1.0, ..AffineParams::identity() };
    let (o, m) = apply(&img, 1, Some(&mask), h, w, &p);
    let m = m.unwrap();
    for y in 1..h {
        for x in 2..w {
            assert_eq!(o[y * w + x], img[(y - 1) * w + x - 2]);
            assert_eq!(m[y * w + x], mask[(y - 1) * w + x - 2]);
        }
    }
    // Reflect fill (dcba|abcd): source column −1 is column 0, column −2 is column 1, row −1 is row 0.
    assert_eq!(o[w + 1], img[0]);
    assert_eq!(o[0], img[1]);
    // Horizontal flip: out(y, x) = in(y, w − 1 − x).
    let f = AffineParams { flip_h: true, ..AffineParams::identity() };
    let (o, m) = apply(&img, 1, Some(&mask), h, w, &f);
    let m = m.unwrap();
    for y in 0..h {
        for x in 0..w {
            assert_eq!(o[y * w + x], img[y * w + w - 1 - x]);
            assert_eq!(m[y * w + x], mask[y * w + w - 1 - x]);
        }
    }
    // Random draws keep the mask binary and are seeded.
    let mut r1 = SplitMix64::new(5);
    let mut r2 = SplitMix64::new(5);
    for _ in 0..5 {
        let a = AffineParams::random(&mut r1, h, w);
        assert_eq!(a, AffineParams::random(&mut r2, h, w));
        assert!(a.rotate_deg.abs() <= 15.0 && (0.8..=1.2).contains(&a.zoom));
        assert!(a.shift_x.abs() <= 1.0 && a.shift_y.abs() <= 0.8);
        let (_, m) = apply(&img, 1, Some(&mask), h, w, &a);
        assert!(m.unwrap().iter().all(|&v| v == 0.0 || v == 1.0));
    }
}

#[test]
fn adam_step_matches_the_formula_on_a_scalar() {
    let x = Var::new(&[3.0f32], &Device::Cpu).unwrap();
    let mut adam = Adam::new(vec![("x".into(), x.clone())], 0.1).unwrap();
    // loss = x², g = 2x.
    let mut want = 3.0f64;
    let (mut m, mut v) = (0.0f64, 0.0f64);
    for step in 1..=3 {
        let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        adam.step(&grads).unwrap();
        let g = 2.0 * want;
        m = 0.9 * m + 0.1 * g;
        v = 0.999 * v + 0.001 * g * g;
        let mh = m / (1.0 - 0.9f64.powi(step));
        let vh = v / (1.0 - 0.999f64.powi(step));
        want -= 0.1 * mh / (vh.sqrt() + 1e-8);
        let got = x.as_tensor().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((got - want).abs() < 1e-5, "step {step}: {got} vs {want}");
    }
}

#[test]
fn plateau_and_early_stopping_follow_their_patience() {
    let mut p = Plateau::new(0.5, 2, 1e-6);
    let mut lr = 1.0;
    for s in [0.5, 0.6, 0.6, 0.6] {
        lr = p.observe(s, lr);
    }
    assert_eq!(lr, 1.0, "two bad epochs are within patience");
    lr = p.observe(0.6, lr);
    assert_eq!(lr, 0.5, "the third bad epoch halves the rate");
    let mut e = EarlyStop::new(2);
    assert_eq!(e.observe(1, 0.3), (true, false));
    assert_eq!(e.observe(2, 0.2), (false, false));
    assert_eq!(e.observe(3, 0.25), (false, true));
    assert_eq!(e.best_epoch, 1);
}

/// A folder `images/` + `masks/` of `n` 32×32 images: a bright disc on a noisy background, the mask the
/// disc.
fn synthetic_dataset(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    let mut rng = SplitMix64::new(42);
    for i in 0..n {
        let (cy, cx) = (8.0 + rng.below(16) as f64, 8.0 + rng.below(16) as f64);
        let r = 4.0 + rng.below(4) as f64;
        let mut img = vec![0u8; 32 * 32];
        let mut mask = vec![0u8; 32 * 32];
        for y in 0..32 {
            for x in 0..32 {
                let inside = ((y as f64 - cy).powi(2) + (x as f64 - cx).powi(2)).sqrt() <= r;
                let noise = rng.below(40) as u8;
                img[y * 32 + x] = if inside { 180 + noise } else { 30 + noise };
                mask[y * 32 + x] = if inside { 255 } else { 0 };
            }
        }
        radlens::io::raster::write_png_u8(&dir.join(format!("images/{i}.png")), 32, 32, &img).unwrap();
        radlens::io::raster::write_png_u8(&dir.join(format!("masks/{i}.png")), 32, 32, &mask).unwrap();
    }
}

fn tiny_config(data: &Path, out: &Path, epochs: usize) -> TrainConfig {
    TrainConfig {
        data: data.to_path_buf(),
        arch: Arch::Unet,
        encoder: None,
        task: Task::Segmentation,
        mask_dir: None,
        size: 32,
        epochs,
        batch: 4,
        lr: 1e-2,
        loss: SegLoss::BceDice,
        patience: 50,
        seed: 7,
        arch_config: vec!["base_width = 4".into()],
        name: Some("tiny".into()),
        resume: None,
        augment: true,
        stages: [0, 0],
        init: None,
        out: out.to_path_buf(),
    }
}

fn weights_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("checkpoint.safetensors")).unwrap()
}

#[test]
fn tiny_unet_learns_a_trivial_segmentation_and_its_folder_loads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synthetic_dataset(&data, 20);
    let out = dir.path().join("model");
    let mut cfg = tiny_config(&data, &out, 12);
    cfg.augment = false;
    let mut text = Vec::new();
    let s = run(&cfg, &Device::Cpu, &mut text).unwrap();
    let log = &s.log;
    assert_eq!(log.len(), 12);
    assert!(
        log[11].train_loss < 0.7 * log[0].train_loss,
        "loss {} → {}",
        log[0].train_loss,
        log[11].train_loss
    );
    assert!(s.best_val_score > 0.8, "best validation Dice {}", s.best_val_score);
    assert!(s.best_val_score > log[0].val_score);
    let test = s.test.expect("the 64/16/20 split has a test part");
    assert!(test.dice > 0.7, "test Dice {}", test.dice);
    for f in ["model.toml", "weights.safetensors", "train_log.csv", "curves.png", "checkpoint.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert_eq!(std::fs::read_to_string(out.join("train_log.csv")).unwrap().lines().count(), 13);
    // The folder loads as a model and predicts a disc where the disc is.
    let model = radlens::model::load_model(&out.join("model.toml"), &Device::Cpu).unwrap();
    assert_eq!(model.manifest.name, "tiny");
    let vol = radlens::io::raster::load_raster(&data.join("images/0.png")).unwrap();
    let gt = radlens::io::raster::load_raster(&data.join("masks/0.png")).unwrap();
    let probs = model.predict_slices(&vol, &[0], |_, _| true).unwrap().unwrap().remove(0);
    let pred: Vec<f32> = probs.iter().map(|&p| if p >= 0.5 { 1.0 } else { 0.0 }).collect();
    let truth: Vec<f32> = gt.data().iter().map(|&v| if v > 127.0 { 1.0 } else { 0.0 }).collect();
    let (dice, _, _) = radlens::train::binary_scores(&pred, &truth);
    assert!(dice > 0.7, "Dice on image 0: {dice}");
}

#[test]
fn same_seed_gives_identical_weights_and_resume_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synthetic_dataset(&data, 12);
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let c = dir.path().join("c");
    run(&tiny_config(&data, &a, 2), &Device::Cpu, &mut Vec::new()).unwrap();
    run(&tiny_config(&data, &b, 2), &Device::Cpu, &mut Vec::new()).unwrap();
    assert_eq!(weights_bytes(&a), weights_bytes(&b), "same seed, different weights");
    let mut other = tiny_config(&data, &dir.path().join("d"), 2);
    other.seed = 8;
    run(&other, &Device::Cpu, &mut Vec::new()).unwrap();
    assert_ne!(weights_bytes(&a), weights_bytes(&dir.path().join("d")));
    // 1 epoch, then resume for the second ≡ 2 epochs at once.
    run(&tiny_config(&data, &c, 1), &Device::Cpu, &mut Vec::new()).unwrap();
    let mut resume = tiny_config(&data, &c, 2);
    resume.resume = Some(c.clone());
    let s = run(&resume, &Device::Cpu, &mut Vec::new()).unwrap();
    assert_eq!(s.epochs_run, 2);
    assert_eq!(weights_bytes(&a), weights_bytes(&c), "resumed run differs");
    assert_eq!(std::fs::read_to_string(c.join("train_log.csv")).unwrap().lines().count(), 3);
    // Resuming with other settings is refused.
    let mut bad = tiny_config(&data, &c, 3);
    bad.resume = Some(c.clone());
    bad.batch = 2;
    match run(&bad, &Device::Cpu, &mut Vec::new()) {
        Err(TrainError::BadInput(m)) => assert!(m.contains("other settings"), "{m}"),
        other => panic!("expected a bad-input error, got {other:?}"),
    }
}

#[test]
fn bad_data_folder_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let err =
        run(&tiny_config(&missing, &dir.path().join("o"), 1), &Device::Cpu, &mut Vec::new()).unwrap_err();
    let TrainError::BadInput(msg) = err else { panic!("expected bad input") };
    assert!(msg.contains("nowhere") && !msg.contains('\n'), "{msg}");
    // Images without masks cannot train a segmentation.
    let nomask = dir.path().join("nomask");
    std::fs::create_dir_all(nomask.join("images")).unwrap();
    radlens::io::raster::write_png_u8(&nomask.join("images/0.png"), 4, 4, &[0; 16]).unwrap();
    let err =
        run(&tiny_config(&nomask, &dir.path().join("o2"), 1), &Device::Cpu, &mut Vec::new()).unwrap_err();
    let TrainError::BadInput(msg) = err else { panic!("expected bad input") };
    assert!(msg.contains("nomask") && !msg.contains('\n'), "{msg}");
}

#[test]
fn cli_bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_radlens");
    let o = std::process::Command::new(bin)
        .args(["train", "--data", "/no/such/dataset", "--arch", "unet", "--out"])
        .arg(dir.path().join("m"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/no/such/dataset") && err.trim().lines().count() == 1, "{err}");
    let o = std::process::Command::new(bin)
        .args(["train", "--data", "x", "--arch", "vgg16", "--out", "y"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// Manual check (needs ../shared/data): the shipped CT model on the 48 COVID-SemiSeg test slices, scored
/// at each slice's own resolution. `cargo test --release --test train -- --ignored --nocapture`
#[test]
#[ignore]
fn shipped_ct_model_on_the_semiseg_test_split() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("../shared/data/ct_covid_semiseg_infnet");
    let ds = radlens::io::dataset::open_dataset(&data, &Default::default()).unwrap();
    let test = ds.split(radlens::io::dataset::Split::Test, 0);
    assert_eq!(test.len(), 48);
    let s = radlens::train::score_model_folder(
        &root.join("weights/ct-infection-unet/model.toml"),
        &test,
        &Device::Cpu,
    )
    .unwrap();
    println!(
        "test Dice {:.4} precision {:.4} recall {:.4} ({} images)",
        s.dice, s.precision, s.recall, s.images
    );
    assert!(s.dice >= 0.60, "test Dice {}", s.dice);
}

/// `images/` + `labels.csv` of `n` 32×32 images in three classes: a bright square on the left
/// (`left`), on the right (`right`), or none (`none`), on a noisy background.
fn synthetic_classes(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut rng = SplitMix64::new(5);
    let mut csv = String::from("file,class\n");
    for i in 0..n {
        let class = ["left", "right", "none"][i % 3];
        let mut img = vec![0u8; 32 * 32];
        let (y0, x0) =
            (4 + rng.below(16), if class == "left" { 2 + rng.below(6) } else { 18 + rng.below(6) });
        for y in 0..32 {
            for x in 0..32 {
                let inside = class != "none" && (y0..y0 + 10).contains(&y) && (x0..x0 + 10).contains(&x);
                img[y * 32 + x] = if inside { 200 } else { 40 } + rng.below(30) as u8;
            }
        }
        let name = format!("img_{i:03}.png");
        radlens::io::raster::write_png_u8(&dir.join("images").join(&name), 32, 32, &img).unwrap();
        csv.push_str(&format!("{name},{class}\n"));
    }
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
}

fn classifier_config(data: &Path, out: &Path, epochs: usize) -> TrainConfig {
    let mut c = tiny_config(data, out, epochs);
    c.arch = Arch::Resnet18;
    c.task = Task::Classification;
    c.arch_config = vec!["base_width = 4".into()];
    c.lr = 3e-3;
    c.batch = 8;
    c.augment = false;
    c
}

fn checkpoint_tensors(dir: &Path) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("checkpoint.safetensors"), &Device::Cpu).unwrap()
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    d.to_scalar::<f32>().unwrap() == 0.0
}

#[test]
fn tiny_resnet_classifier_learns_three_classes_and_its_folder_loads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synthetic_classes(&data, 60);
    let out = dir.path().join("cls");
    let mut text = Vec::new();
    let s = run(&classifier_config(&data, &out, 15), &Device::Cpu, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(s.best_val_score >= 0.9, "best validation accuracy {}\n{text}", s.best_val_score);
    let test = s.test_classification.expect("the 64/16/20 split has a test part");
    assert_eq!(test.samples, 12, "{text}");
    assert!(test.accuracy >= 0.8, "test accuracy {}\n{text}", test.accuracy);
    assert!(test.macro_auc.unwrap() >= 0.9, "macro-AUC {:?}", test.macro_auc);
    assert!(text.contains("test (12 images") && text.contains("macro-AUC"), "{text}");
    // The log names the score; the folder is a softmax classifier over the label file's classes.
    let log = std::fs::read_to_string(out.join("train_log.csv")).unwrap();
    assert!(log.starts_with("epoch,train_loss,val_loss,val_accuracy,lr,seconds\n"), "{log}");
    let model = radlens::model::load_model(&out.join("model.toml"), &Device::Cpu).unwrap();
    assert_eq!(model.manifest.classes, ["left", "none", "right"]);
    assert_eq!(model.manifest.task, Task::Classification);
    assert_eq!(model.manifest.cam_layer.as_deref(), Some("layer4"));
    let probs = model
        .predict_slices(
            &radlens::io::raster::load_raster(&data.join("images/img_000.png")).unwrap(),
            &[0],
            |_, _| true,
        )
        .unwrap()
        .unwrap()
        .remove(0);
    assert_eq!(probs.len(), 3);
    assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    // The written model scores as the run reported (the same images through the predict pipeline).
    let ds = radlens::io::dataset::open_dataset(&data, &Default::default()).unwrap();
    let again = radlens::train::classify::score_model_folder(
        &out.join("model.toml"),
        &ds.split(radlens::io::dataset::Split::Test, 7),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(again.accuracy, test.accuracy);
}

#[test]
fn staged_unfreezing_trains_head_then_last_stage_then_all_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synthetic_classes(&data, 24);
    // Known initial weights with a 3-channel first convolution and a 5-class head, as a user's
    // ImageNet checkpoint would differ from a 1-channel 3-class model.
    let probe = dir.path().join("probe");
    run(&classifier_config(&data, &probe, 1), &Device::Cpu, &mut Vec::new()).unwrap();
    let mut init: std::collections::HashMap<String, Tensor> = checkpoint_tensors(&probe)
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("param.").map(|k| (k.to_string(), v)))
        .collect();
    let conv1 = init["conv1.weight"].clone();
    let (o, _, kh, kw) = conv1.dims4().unwrap();
    let rgb = Tensor::cat(&[&conv1, &(&conv1 * 2.0).unwrap(), &(&conv1 * -0.5).unwrap()], 1).unwrap();
    assert_eq!(rgb.dims(), [o, 3, kh, kw]);
    init.insert("conv1.weight".into(), rgb);
    let fc_in = init["fc.weight"].dim(1).unwrap();
    init.insert("fc.weight".into(), Tensor::ones((5, fc_in), candle_core::DType::F32, &Device::Cpu).unwrap());
    init.insert("fc.bias".into(), Tensor::zeros(5, candle_core::DType::F32, &Device::Cpu).unwrap());
    let init_path = dir.path().join("init.safetensors");
    candle_core::safetensors::save(&init, &init_path).unwrap();

    let staged = |out: &Path, epochs: usize| {
        let mut c = classifier_config(&data, out, epochs);
        c.stages = [1, 1];
        c.init = Some(init_path.clone());
        c
    };
    let p = |t: &std::collections::HashMap<String, Tensor>, k: &str| t[&format!("param.{k}")].clone();
    let e1 = dir.path().join("e1");
    let mut text = Vec::new();
    run(&staged(&e1, 1), &Device::Cpu, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("3 input channels summed into 1"), "{text}");
    assert!(text.contains("fc.weight") && text.contains("trained from scratch"), "{text}");
    assert!(text.contains("epoch 1: training head"), "{text}");
    let t1 = checkpoint_tensors(&e1);
    // Epoch 1 trains the head only: the first convolution is the summed initial one, layer4 unchanged.
    let summed = (&conv1 * 2.5).unwrap();
    let diff = (p(&t1, "conv1.weight") - summed).unwrap().abs().unwrap().flatten_all().unwrap();
    assert!(diff.max(0).unwrap().to_scalar::<f32>().unwrap() < 1e-6, "conv1 is not the summed initial one");
    assert!(same(&p(&t1, "layer4.0.conv1.weight"), &init["layer4.0.conv1.weight"]));
    assert!(same(&p(&t1, "layer1.0.bn1.weight"), &init["layer1.0.bn1.weight"]));
    assert_eq!(p(&t1, "fc.weight").dims(), [3, fc_in], "the 5-class head was kept");
    // Epoch 2 adds layer4; epoch 3 trains everything.
    let e3 = dir.path().join("e3");
    let mut text3 = Vec::new();
    run(&staged(&e3, 3), &Device::Cpu, &mut text3).unwrap();
    let text3 = String::from_utf8(text3).unwrap();
    assert!(
        text3.contains("epoch 2: training head + last stage")
            && text3.contains("epoch 3: training all layers"),
        "{text3}"
    );
    let e2 = dir.path().join("e2");
    run(&staged(&e2, 2), &Device::Cpu, &mut Vec::new()).unwrap();
    let (t2, t3) = (checkpoint_tensors(&e2), checkpoint_tensors(&e3));
    assert!(same(&p(&t2, "conv1.weight"), &p(&t1, "conv1.weight")), "epoch 2 changed conv1");
    assert!(same(&p(&t2, "layer3.0.conv1.weight"), &p(&t1, "layer3.0.conv1.weight")));
    assert!(
        !same(&p(&t2, "layer4.0.conv1.weight"), &p(&t1, "layer4.0.conv1.weight")),
        "layer4 frozen in epoch 2"
    );
    assert!(!same(&p(&t2, "fc.weight"), &p(&t1, "fc.weight")));
    assert!(!same(&p(&t3, "conv1.weight"), &p(&t2, "conv1.weight")), "conv1 frozen in epoch 3");
    // Resuming across both stage changes gives the uninterrupted run's weights, bit for bit.
    let mut resume = staged(&e1, 3);
    resume.resume = Some(e1.clone());
    run(&resume, &Device::Cpu, &mut Vec::new()).unwrap();
    assert_eq!(weights_bytes(&e1), weights_bytes(&e3), "resumed staged run differs");
}

#[test]
fn classification_bad_input_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // No labels.csv: nothing to classify.
    let data = dir.path().join("nolabels");
    synthetic_dataset(&data, 6);
    let err =
        run(&classifier_config(&data, &dir.path().join("o"), 1), &Device::Cpu, &mut Vec::new()).unwrap_err();
    let TrainError::BadInput(msg) = err else { panic!("expected bad input") };
    assert!(msg.contains("nolabels") && msg.contains("labels.csv") && !msg.contains('\n'), "{msg}");
    // A classifier cannot train a segmentation, staged unfreezing is for classifiers, and an --init
    // checkpoint of another architecture names the missing tensor.
    let mut c = classifier_config(&data, &dir.path().join("o"), 1);
    c.task = Task::Segmentation;
    assert!(
        matches!(run(&c, &Device::Cpu, &mut Vec::new()), Err(TrainError::BadInput(m)) if m.contains("resnet18"))
    );
    let mut c = tiny_config(&data, &dir.path().join("o"), 1);
    c.stages = [1, 0];
    assert!(
        matches!(run(&c, &Device::Cpu, &mut Vec::new()), Err(TrainError::BadInput(m)) if m.contains("--stages"))
    );
    let labelled = dir.path().join("labelled");
    synthetic_classes(&labelled, 12);
    let other = dir.path().join("other.safetensors");
    let t = Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&std::collections::HashMap::from([("x".to_string(), t)]), &other).unwrap();
    let mut c = classifier_config(&labelled, &dir.path().join("o3"), 1);
    c.init = Some(other.clone());
    match run(&c, &Device::Cpu, &mut Vec::new()) {
        Err(TrainError::BadInput(m)) => {
            assert!(
                m.contains("other.safetensors") && m.contains("'bn1.bias' missing") && !m.contains('\n'),
                "{m}"
            )
        }
        other => panic!("expected bad input, got {other:?}"),
    }
    // The command line: a classifier that does not train here is exit 2, one line.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_radlens"))
        .args(["train", "--data"])
        .arg(&labelled)
        .args(["--arch", "convnext_tiny", "--out"])
        .arg(dir.path().join("o4"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("convnext_tiny") && err.trim().lines().count() == 1, "{err}");
}

#[test]
fn adamw_fused_step_equals_the_tensor_formula_and_torch_s_weight_decay() {
    // The same parameters in f32 (the fused in-place CPU step) and f64 (the tensor-op step), loss =
    // Σ c·x² with per-element c, five AdamW steps with weight decay; both against the formula in f64.
    let c = [0.5f64, -1.0, 2.0, 0.1, 3.0, -0.7];
    let start = [3.0f64, -2.0, 0.5, 1.5, -0.25, 4.0];
    let x32 = Var::new(&start.map(|v| v as f32), &Device::Cpu).unwrap();
    let x64 = Var::new(&start, &Device::Cpu).unwrap();
    let mut a32 = Adam::new(vec![("x".into(), x32.clone())], 0.05).unwrap();
    let mut a64 = Adam::new(vec![("x".into(), x64.clone())], 0.05).unwrap();
    a32.weight_decay = 0.1;
    a64.weight_decay = 0.1;
    let c32 = Tensor::new(&c.map(|v| v as f32), &Device::Cpu).unwrap();
    let c64 = Tensor::new(&c, &Device::Cpu).unwrap();
    let mut want = start;
    let (mut m, mut v) = ([0f64; 6], [0f64; 6]);
    for step in 1..=5 {
        for (x, cc, adam) in [(&x32, &c32, &mut a32), (&x64, &c64, &mut a64)] {
            let loss = (x.as_tensor().sqr().unwrap() * cc).unwrap().sum_all().unwrap();
            adam.step(&loss.backward().unwrap()).unwrap();
        }
        for i in 0..6 {
            let g = 2.0 * c[i] * want[i];
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            let (mh, vh) = (m[i] / (1.0 - 0.9f64.powi(step)), v[i] / (1.0 - 0.999f64.powi(step)));
            // torch.optim.AdamW: param.mul_(1 - lr·wd), then the Adam update.
            want[i] = want[i] * (1.0 - 0.05 * 0.1) - 0.05 * mh / (vh.sqrt() + 1e-8);
        }
        let got32 = x32.as_tensor().to_vec1::<f32>().unwrap();
        let got64 = x64.as_tensor().to_vec1::<f64>().unwrap();
        for i in 0..6 {
            assert!((got64[i] - want[i]).abs() < 1e-9, "f64 step {step}[{i}]: {} vs {}", got64[i], want[i]);
            assert!(
                (got32[i] as f64 - want[i]).abs() < 1e-5,
                "f32 step {step}[{i}]: {} vs {}",
                got32[i],
                want[i]
            );
        }
    }
    // The moments are the optimiser's own: saved state does not move with later steps.
    let saved = a32.state_tensors()["adam_m.x"].to_vec1::<f32>().unwrap();
    let mut b = Adam::new(vec![("x".into(), x32.clone())], 0.05).unwrap();
    b.load_state(&a32.state_tensors(), 5, 0.05).unwrap();
    let loss = x32.as_tensor().sqr().unwrap().sum_all().unwrap();
    b.step(&loss.backward().unwrap()).unwrap();
    assert_eq!(a32.state_tensors()["adam_m.x"].to_vec1::<f32>().unwrap(), saved);
}
