//! Localization, faithfulness and summary statistics on known answers, and `radlens eval` end to end
//! on a generated dataset folder with fixture models.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use radlens::imaging::SplitMix64;
use radlens::metrics::faithfulness::{auc, deletion_insertion, FaithfulnessOptions, Fill};
use radlens::metrics::localization::{
    energy_pointing_game, heatmap_to_mask, localization_scores, otsu_threshold, pointing_game_hit,
    relevance_mass, relevance_rank_accuracy, top_percent_mask, tune_threshold, Threshold,
};
use radlens::metrics::stats::{bootstrap_ci, mean, sd, summarize};

// ---------- localization ----------

#[test]
fn otsu_on_a_bimodal_map_separates_the_modes() {
    // 70 pixels around 0.1..0.2 (background), 30 around 0.8..0.9 (object), in a shuffled order.
    let mut map = Vec::new();
    let mut truth = Vec::new();
    let mut rng = SplitMix64::new(3);
    for i in 0..100 {
        let object = i % 10 < 3;
        let v = if object { 0.8 + 0.1 * rng.next_f64() } else { 0.1 + 0.1 * rng.next_f64() };
        map.push(v as f32);
        truth.push(object);
    }
    let cut = otsu_threshold(&map);
    // On the min-max scale, the background lies below 0.15 and the object above 0.85.
    assert!(cut > 0.1 && cut < 0.9, "cut {cut}");
    assert_eq!(heatmap_to_mask(&map, Threshold::Otsu), truth);
    // Raw scale does not matter: an affine change of the map gives the same mask.
    let scaled: Vec<f32> = map.iter().map(|v| 40.0 * v - 7.0).collect();
    assert_eq!(heatmap_to_mask(&scaled, Threshold::Otsu), truth);
}

#[test]
fn top_percent_picks_exactly_that_many_of_the_highest_pixels() {
    let map: Vec<f32> = (0..200).map(|i| ((i * 37) % 200) as f32).collect();
    let mask = top_percent_mask(&map, 10.0);
    assert_eq!(mask.iter().filter(|&&b| b).count(), 20);
    for (v, m) in map.iter().zip(&mask) {
        assert_eq!(*m, *v >= 180.0);
    }
    // Ties are broken by row-major order, so the count stays exact.
    let flat = vec![1.0f32; 50];
    let m = heatmap_to_mask(&flat, Threshold::TopPercent(20.0));
    assert_eq!(m.iter().filter(|&&b| b).count(), 10);
    assert!(m[..10].iter().all(|&b| b));
    // A fixed cut works on the min-max scaled map; a constant map selects nothing.
    assert_eq!(heatmap_to_mask(&[0.0, 5.0, 10.0], Threshold::Fixed(0.5)), vec![false, true, true]);
    assert_eq!(heatmap_to_mask(&flat, Threshold::Fixed(0.5)), vec![false; 50]);
}

#[test]
fn threshold_spellings_parse() {
    assert_eq!(Threshold::parse("otsu").unwrap(), Threshold::Otsu);
    assert_eq!(Threshold::parse("0.5").unwrap(), Threshold::Fixed(0.5));
    assert_eq!(Threshold::parse("top10").unwrap(), Threshold::TopPercent(10.0));
    assert_eq!(Threshold::parse("top5%").unwrap(), Threshold::TopPercent(5.0));
    for bad in ["1.5", "top0", "top200", "median", ""] {
        assert!(Threshold::parse(bad).is_err(), "{bad}");
    }
}

fn square(h: usize, w: usize, y0: usize, x0: usize, size: usize) -> Vec<bool> {
    (0..h * w).map(|i| (y0..y0 + size).contains(&(i / w)) && (x0..x0 + size).contains(&(i % w))).collect()
}

#[test]
fn iou_dice_and_hausdorff_of_known_masks() {
    let (h, w) = (6, 6);
    // 2×2 squares, the prediction one pixel to the right: TP 2, FP 2, FN 2.
    let gt = square(h, w, 1, 1, 2);
    let pred = square(h, w, 1, 2, 2);
    let map: Vec<f32> = pred.iter().map(|&b| b as u8 as f32).collect();
    let s = localization_scores(&map, &pred, &gt, h, w, [2.0, 3.0], 15.0).unwrap();
    assert!((s.iou - 2.0 / 6.0).abs() < 1e-12);
    assert!((s.dice - 0.5).abs() < 1e-12);
    assert_eq!(s.hd_px, Some(1.0));
    // A one-pixel shift along x is 3 mm with 3 mm pixels.
    assert_eq!(s.hd_mm, Some(3.0));
    // An empty prediction: overlap 0, distances undefined.
    let empty = vec![false; h * w];
    let s = localization_scores(&map, &empty, &gt, h, w, [1.0, 1.0], 15.0).unwrap();
    assert_eq!((s.iou, s.dice, s.hd_px, s.hd_mm), (0.0, 0.0, None, None));
    // Bad input is an error, not a panic.
    assert!(localization_scores(&map[..10], &pred, &gt, h, w, [1.0, 1.0], 15.0).is_err());
    assert!(localization_scores(&map, &pred, &gt, 5, 5, [1.0, 1.0], 15.0).is_err());
}

#[test]
fn pointing_game_hits_and_misses() {
    let (h, w) = (20, 20);
    let gt = square(h, w, 10, 10, 3); // rows/cols 10..13
    let mut map = vec![0.0f32; h * w];
    map[11 * w + 11] = 1.0; // inside
    assert_eq!(pointing_game_hit(&map, &gt, h, w, 0.0).unwrap(), Some(true));
    let mut far = vec![0.0f32; h * w];
    far[0] = 1.0; // (0, 0): nearest gt pixel (10, 10) is √200 ≈ 14.14 px away
    assert_eq!(pointing_game_hit(&far, &gt, h, w, 0.0).unwrap(), Some(false));
    assert_eq!(pointing_game_hit(&far, &gt, h, w, 14.0).unwrap(), Some(false));
    assert_eq!(pointing_game_hit(&far, &gt, h, w, 15.0).unwrap(), Some(true));
    // No ground truth: undefined.
    assert_eq!(pointing_game_hit(&map, &vec![false; h * w], h, w, 15.0).unwrap(), None);
}

#[test]
fn energy_pointing_relevance_mass_and_rank_on_a_hand_made_map() {
    let map = [1.0f32, 3.0, 0.0, -2.0];
    let gt = [false, true, false, true];
    // Positive relevance 1 + 3 = 4, of which 3 inside.
    assert_eq!(relevance_mass(&map, &gt).unwrap(), Some(0.75));
    // Min-max scaled: [0.6, 1.0, 0.4, 0.0]; inside 1.0 of 2.0.
    let e = energy_pointing_game(&map, &gt).unwrap().unwrap();
    assert!((e - 0.5).abs() < 1e-6, "{e}");
    // K = 2: the two highest are pixel 1 (inside) and pixel 0 (outside).
    assert_eq!(relevance_rank_accuracy(&map, &gt).unwrap(), Some(0.5));
    // A map entirely inside scores 1 everywhere.
    let inside = [0.0f32, 2.0, 0.0, 1.0];
    assert_eq!(relevance_mass(&inside, &gt).unwrap(), Some(1.0));
    assert_eq!(relevance_rank_accuracy(&inside, &gt).unwrap(), Some(1.0));
    assert_eq!(relevance_mass(&map, &[false; 4]).unwrap(), None);
    assert!(relevance_mass(&map, &[true; 3]).is_err());
}

#[test]
fn tuned_threshold_maximises_mean_iou() {
    // Ground truth where the scaled map is 1.0; a distractor at 0.7 and background at 0.
    let gt = vec![true, true, false, false, false];
    let map = vec![1.0f32, 1.0, 0.7, 0.0, 0.0];
    let t = tune_threshold(&[(map.clone(), gt.clone())]).unwrap().unwrap();
    // Any cut in (0.7, 1.0] gives IoU 1; the smallest grid value above 0.7 is 0.75.
    assert!((t - 0.75).abs() < 1e-6, "{t}");
    assert_eq!(heatmap_to_mask(&map, Threshold::Fixed(t)), gt);
    assert_eq!(tune_threshold(&[]).unwrap(), None);
}

// ---------- faithfulness ----------

/// A synthetic model: the score is the mean image value over a known region.
fn region_model(region: Vec<bool>) -> impl FnMut(&[Vec<f32>]) -> Result<Vec<f64>, String> {
    let area = region.iter().filter(|&&b| b).count() as f64;
    move |images: &[Vec<f32>]| {
        Ok(images
            .iter()
            .map(|im| im.iter().zip(&region).filter(|(_, &r)| r).map(|(&v, _)| v as f64).sum::<f64>() / area)
            .collect())
    }
}

#[test]
fn deletion_and_insertion_auc_reward_a_faithful_map() {
    let (h, w) = (16, 16);
    let region = square(h, w, 4, 4, 4); // 16 of 256 pixels
    let image = vec![1.0f32; h * w];
    let opts = FaithfulnessOptions { steps: 16, fill: Fill::Constant(0.0), batch: 5 };
    let perfect: Vec<f32> = region.iter().map(|&b| b as u8 as f32).collect();
    let f = deletion_insertion(&image, h, w, &perfect, None, &opts, region_model(region.clone())).unwrap();
    // 16 pixels a step: the region goes in the first step.
    assert_eq!(f.deletion_curve.len(), 17);
    assert_eq!(f.deletion_curve[0], 1.0);
    assert!(f.deletion_curve[1..].iter().all(|&v| v == 0.0));
    assert!(f.insertion_curve[1..].iter().all(|&v| v == 1.0));
    assert!((f.deletion_auc - 0.5 / 16.0).abs() < 1e-12);
    assert!((f.insertion_auc - (1.0 - 0.5 / 16.0)).abs() < 1e-12);
    // A random map (seeded) does much worse on both.
    let mut rng = SplitMix64::new(11);
    let random: Vec<f32> = (0..h * w).map(|_| rng.next_f64() as f32).collect();
    let r = deletion_insertion(&image, h, w, &random, None, &opts, region_model(region.clone())).unwrap();
    assert!(r.deletion_auc > 0.3 && r.deletion_auc < 0.7, "{}", r.deletion_auc);
    assert!(r.insertion_auc > 0.3 && r.insertion_auc < 0.7, "{}", r.insertion_auc);
    assert!(f.deletion_auc < r.deletion_auc && f.insertion_auc > r.insertion_auc);
    // Both curves are monotone for this model and lie in [0, 1].
    for c in [&r.deletion_curve, &r.insertion_curve] {
        assert!(c.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    assert!(r.deletion_curve.windows(2).all(|p| p[1] <= p[0]));
    // Superpixels: ordering whole labelled blocks by their mean gives the perfect map's result.
    let labels: Vec<u32> = region.iter().map(|&b| b as u32).collect();
    let noisy: Vec<f32> = region.iter().zip(&random).map(|(&b, &n)| b as u8 as f32 + 0.5 * n).collect();
    let s =
        deletion_insertion(&image, h, w, &noisy, Some(&labels), &opts, region_model(region.clone())).unwrap();
    assert_eq!(s.deletion_auc, f.deletion_auc);
    // The blurred baseline of a constant image is that image: nothing changes.
    let blur = FaithfulnessOptions { fill: Fill::Blur(2.0), ..opts.clone() };
    let b = deletion_insertion(&image, h, w, &perfect, None, &blur, region_model(region)).unwrap();
    assert!((b.deletion_auc - 1.0).abs() < 1e-6 && (b.insertion_auc - 1.0).abs() < 1e-6);
    // Bad sizes and a scorer that returns the wrong count are errors.
    assert!(
        deletion_insertion(&image[..10], h, w, &perfect, None, &opts, |_: &[Vec<f32>]| Ok(vec![])).is_err()
    );
    assert!(deletion_insertion(&image, h, w, &perfect, None, &opts, |_: &[Vec<f32>]| Ok(vec![0.0])).is_err());
    assert_eq!(auc(&[1.0, 0.0]), 0.5);
}

// ---------- statistics ----------

#[test]
fn bootstrap_interval_contains_the_mean_and_is_seeded() {
    let mut rng = SplitMix64::new(5);
    let values: Vec<f64> = (0..60).map(|_| rng.next_f64()).collect();
    let m = mean(&values).unwrap();
    let ci = bootstrap_ci(&values, 1000, 0.95, 42).unwrap();
    assert!(ci[0] < m && m < ci[1], "{ci:?} vs {m}");
    // The interval of a mean of 60 uniforms is about ±1.96·0.289/√60 ≈ ±0.073 wide.
    assert!(ci[1] - ci[0] > 0.08 && ci[1] - ci[0] < 0.2, "{ci:?}");
    assert_eq!(bootstrap_ci(&values, 1000, 0.95, 42), Some(ci));
    assert_ne!(bootstrap_ci(&values, 1000, 0.95, 43), Some(ci));
    // Known answers for mean and sd; a constant sample has a zero-width interval.
    assert_eq!(mean(&[1.0, 2.0, 3.0, 4.0]), Some(2.5));
    assert!((sd(&[1.0, 2.0, 3.0, 4.0]).unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(bootstrap_ci(&[0.7; 5], 100, 0.95, 1), Some([0.7, 0.7]));
    let s = summarize(&[f64::NAN, 1.0], 0);
    assert_eq!((s.n, s.mean, s.sd), (1, Some(1.0), None));
    assert_eq!(summarize(&[], 0).ci95, None);
}

// ---------- radlens eval end to end ----------

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

fn radlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_radlens")).args(args).output().expect("run radlens")
}

/// A folder in the COVID-QU-Ex layout: images/, infection_masks/, labels.csv. Images 0..n have a
/// bright disk where their mask is (image 0's mask is empty); one more image is corrupt.
fn make_dataset(dir: &Path, n: usize) -> usize {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("infection_masks")).unwrap();
    let (h, w) = (40usize, 48usize);
    let mut csv = String::from("file,class\n");
    for i in 0..n {
        let (cy, cx, r) = (10.0 + ((3 * i) % 20) as f64, 14.0 + ((4 * i) % 24) as f64, 6.0);
        let mut img = vec![0u8; h * w];
        let mut mask = vec![0u8; h * w];
        for y in 0..h {
            for x in 0..w {
                let inside = ((y as f64 - cy).powi(2) + (x as f64 - cx).powi(2)).sqrt() < r;
                img[y * w + x] = (30 + (x * 2) % 40) as u8 + if inside { 150 } else { 0 };
                if inside && i > 0 {
                    mask[y * w + x] = 255;
                }
            }
        }
        let name = format!("img_{i:02}.png");
        radlens::io::raster::write_png_u8(&dir.join("images").join(&name), w as u32, h as u32, &img).unwrap();
        radlens::io::raster::write_png_u8(
            &dir.join("infection_masks").join(&name),
            w as u32,
            h as u32,
            &mask,
        )
        .unwrap();
        csv.push_str(&format!("{name},class{}\n", i % 2));
    }
    std::fs::write(dir.join("images/img_99.png"), b"not a png at all").unwrap();
    radlens::io::raster::write_png_u8(
        &dir.join("infection_masks/img_99.png"),
        w as u32,
        h as u32,
        &vec![255; h * w],
    )
    .unwrap();
    csv.push_str("img_99.png,class0\n");
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
    n
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(|s| s.to_string()).collect())
        .collect()
}

#[test]
fn eval_scores_a_segmentation_model_and_skips_a_corrupt_image() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let n = make_dataset(&data, 4);
    let out = dir.path().join("out");
    let model = fixtures().join("unet");
    let o = radlens(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--split",
        "all",
        "--methods",
        "gradcam++,lime",
        "--samples",
        "40",
        "--faithfulness",
        "--repeats",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    // The corrupt image is reported in one line naming it, and skipped.
    let skipped: Vec<&str> = stderr.lines().filter(|l| l.starts_with("skipped")).collect();
    assert_eq!(skipped.len(), 1, "{stderr}");
    assert!(skipped[0].contains("img_99.png"), "{stderr}");
    for f in [
        "per_image.csv",
        "summary.csv",
        "summary.json",
        "segmentation_dice_box.png",
        "localization_iou_box.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing; {stdout}");
    }
    let rows = csv_rows(&out.join("per_image.csv"));
    assert_eq!(rows.len(), 1 + n, "header + one row per good image");
    let col =
        |name: &str| rows[0].iter().position(|c| c == name).unwrap_or_else(|| panic!("no column {name}"));
    for r in &rows[1..] {
        let dice: f64 = r[col("dice")].parse().unwrap();
        assert!((0.0..=1.0).contains(&dice));
    }
    // Image 0 has an empty mask: no map is scored there; the others have both methods.
    let img0 = rows.iter().find(|r| r[col("image")].ends_with("img_00.png")).unwrap();
    assert_eq!(img0[col("gradcam++_iou")], "");
    let img1 = rows.iter().find(|r| r[col("image")].ends_with("img_01.png")).unwrap();
    for k in
        ["gradcam++_iou", "lime_iou", "lime_deletion_auc", "gradcam++_insertion_auc", "lime_relevance_mass"]
    {
        let v: f64 = img1[col(k)].parse().unwrap_or_else(|_| panic!("{k}: '{}'", img1[col(k)]));
        assert!((0.0..=1.0).contains(&v), "{k} {v}");
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["images"], n + 1);
    assert_eq!(s["scored"], n);
    assert_eq!(s["skipped"], 1);
    let m = &s["models"]["unet"];
    for k in ["dice", "precision", "recall", "accuracy"] {
        let mean = m[k]["mean"].as_f64().unwrap_or_else(|| panic!("{k}: {m}"));
        assert!((0.0..=1.0).contains(&mean));
        let ci = m[k]["ci95"].as_array().unwrap();
        assert!(ci[0].as_f64().unwrap() <= mean + 1e-12 && mean <= ci[1].as_f64().unwrap() + 1e-12);
    }
    for method in ["gradcam++", "lime"] {
        let mm = &m["methods"][method];
        for k in ["miou", "mdice", "mhd", "hit_rate"] {
            assert!(mm[k].is_object(), "{method} {k}: {mm}");
        }
        assert_eq!(mm["images"], n - 1);
        assert_eq!(mm["miou"]["n"], n - 1);
    }
    let summary_csv = csv_rows(&out.join("summary.csv"));
    assert_eq!(summary_csv[0], ["model", "method", "metric", "n", "mean", "sd", "ci95_low", "ci95_high"]);
    assert!(summary_csv.iter().any(|r| r[1] == "lime" && r[2] == "miou"));
    // The tables are printed.
    assert!(
        stdout.contains("Segmentation") && stdout.contains("mIoU") && stdout.contains("gradcam++ / unet"),
        "{stdout}"
    );
    // PNGs are real images.
    let png = std::fs::read(out.join("localization_iou_box.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn eval_scores_a_classifier_on_the_masks_class() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let n = make_dataset(&data, 12);
    let out = dir.path().join("out");
    let model = fixtures().join("densenet121_narrow");
    let o = radlens(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--split",
        "all",
        "--methods",
        "gradcam",
        "--class",
        "class1",
        "--threshold",
        "top10",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["models"]["densenet121_narrow"]["methods"]["gradcam"]["threshold"], "top10");
    // Tuned on the validation split (stratified 64/16/20 of 13 images: two validation images, one
    // with a mask): a cut from the grid replaces the default.
    let o = radlens(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--split",
        "all",
        "--methods",
        "gradcam",
        "--class",
        "class1",
        "--tune-thresholds",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let rows = csv_rows(&out.join("per_image.csv"));
    assert_eq!(rows.len(), 1 + n);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let m = &s["models"]["densenet121_narrow"];
    assert_eq!(m["task"], "classification");
    // All labelled images count toward accuracy; maps only where the mask is not empty.
    assert_eq!(m["accuracy"]["n"], n);
    for k in ["dice", "precision", "recall", "accuracy"] {
        assert!(m.get(k).is_some(), "{k}");
    }
    let g = &m["methods"]["gradcam"];
    assert_eq!(g["images"], n - 1);
    assert_eq!(g["class"], "class1");
    let cut: f64 = g["threshold"].as_str().unwrap().parse().unwrap();
    assert!(cut > 0.0 && cut < 1.0, "{cut}");
    assert!(g["hit_rate"]["mean"].as_f64().is_some());

    // The classifier has no COVID-19 class: without --class that is bad input (exit 2).
    let o = radlens(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--methods",
        "gradcam",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no class 'COVID-19'"));
}

#[test]
fn eval_with_nothing_scorable_or_bad_flags_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("images")).unwrap();
    std::fs::write(data.join("images/a.png"), b"garbage").unwrap();
    std::fs::write(data.join("images/b.png"), b"garbage too").unwrap();
    let out = dir.path().join("out");
    let model = fixtures().join("unet");
    let base =
        ["eval", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--split", "all"];
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--out", out.to_str().unwrap()]);
        radlens(&a)
    };
    let o = run(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing could be scored"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("skipped")).count(), 2, "{err}");
    // A method that fails on the architecture loses its columns; the images still count.
    let good = dir.path().join("good");
    let n = make_dataset(&good, 2);
    // LRP is refused on ConvNeXt: the method fails on every image it is asked for, the images still count.
    let convnext = fixtures().join("convnext_tiny_narrow");
    let o = radlens(&[
        "eval",
        "--model",
        convnext.to_str().unwrap(),
        "--class",
        "c0",
        "--data",
        good.to_str().unwrap(),
        "--split",
        "all",
        "--methods",
        "lrp",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("warning: lrp:")).count(), n - 1, "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["scored"], n);
    assert_eq!(s["models"]["convnext_tiny_narrow"]["methods"]["lrp"]["images"], 0);
    assert_eq!(s["method_errors"].as_array().unwrap().len(), n - 1);
    for bad in [&["--methods", "nosuch"][..], &["--threshold", "2"], &["--split", "dev"]] {
        let o = run(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// The shipped CXR classifier, by its built-in name, on a folder laid out like
/// `cxr_covid_qu_ex_infection` (images/, infection_masks/, labels.csv) holding two real COVID-19
/// radiographs with their infection masks and one Normal image with an empty mask: Grad-CAM and LIME
/// maps are scored on the two COVID-19 images for the COVID-19 class, all three count toward accuracy.
#[test]
fn eval_scores_the_shipped_cxr_classifier_grad_cam_and_lime() {
    let raster = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/raster");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cxr");
    std::fs::create_dir_all(data.join("images")).unwrap();
    std::fs::create_dir_all(data.join("infection_masks")).unwrap();
    for id in ["01902", "01903"] {
        std::fs::copy(
            raster.join(format!("cxr_covid_{id}.png")),
            data.join(format!("images/covid_{id}.png")),
        )
        .unwrap();
        std::fs::copy(
            raster.join(format!("cxr_covid_{id}_infection.png")),
            data.join(format!("infection_masks/covid_{id}.png")),
        )
        .unwrap();
    }
    let normal = image::open(raster.join("cxr_covid_01903.png")).unwrap().to_luma8();
    let (w, h) = normal.dimensions();
    normal.save(data.join("images/normal_00001.png")).unwrap();
    image::GrayImage::new(w, h).save(data.join("infection_masks/normal_00001.png")).unwrap();
    std::fs::write(
        data.join("labels.csv"),
        "file,class\ncovid_01902.png,COVID-19\ncovid_01903.png,COVID-19\nnormal_00001.png,Normal\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = radlens(&[
        "eval",
        "--model",
        "cxr-covid-resnet18",
        "--data",
        data.to_str().unwrap(),
        "--split",
        "all",
        "--methods",
        "gradcam,lime",
        "--samples",
        "200",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let m = &s["models"]["cxr-covid-resnet18"];
    assert_eq!(m["task"], "classification", "{m}");
    assert_eq!(m["accuracy"]["n"], 3, "{m}");
    for method in ["gradcam", "lime"] {
        let g = &m["methods"][method];
        assert_eq!(g["images"], 2, "{method}: {g}");
        assert_eq!(g["class"], "COVID-19", "{method}");
        for key in ["miou", "mdice", "mhd", "hit_rate"] {
            let v = g[key]["mean"].as_f64().unwrap_or_else(|| panic!("{method} {key}: {g}"));
            assert!(v.is_finite() && v >= 0.0, "{method} {key} = {v}");
        }
        assert!(g["miou"]["mean"].as_f64().unwrap() <= 1.0);
    }
    let rows = csv_rows(&out.join("per_image.csv"));
    assert_eq!(rows.len(), 4, "a header and three images");
    let col = rows[0].iter().position(|c| c == "gradcam_iou").expect("a gradcam_iou column");
    for r in &rows[1..] {
        let covid = r.iter().any(|c| c.contains("covid_"));
        assert_eq!(!r[col].is_empty(), covid, "maps only on the COVID-19 images: {r:?}");
    }
}
