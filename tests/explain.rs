//! `radlens explain` end to end: every method on a segmentation and a classification model, maps on the
//! study's grid, overlays, targets, stability, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use radlens::io::npy::read_npy_f32;
use radlens::xai::methods::METHODS;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn radlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_radlens")).args(args).output().expect("run radlens")
}

fn explain(model: &str, method: &str, out: &Path, extra: &[&str]) -> Output {
    let model = fixtures().join("models").join(model);
    let image = fixtures().join("raster/cxr_covid_01902.png");
    let mut args = vec![
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--method",
        method,
        image.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--samples",
        "200",
    ];
    args.extend_from_slice(extra);
    radlens(&args)
}

#[test]
fn every_method_runs_on_a_segmentation_and_a_classification_model() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["smp_unet_resnet18", "densenet121_narrow"] {
        for method in METHODS {
            let out = dir.path().join("heat.npy");
            let o = explain(model, method, &out, &[]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{method} on {model}: {err}");
            let (values, shape) = read_npy_f32(&out).unwrap();
            assert_eq!(shape, vec![256, 256], "{method} on {model}");
            assert!(values.iter().all(|v| v.is_finite()), "{method} on {model}: non-finite values");
            assert!(values.iter().any(|&v| v != values[0]), "{method} on {model}: constant map");
        }
    }
}

#[test]
fn same_seed_same_map_and_repeats_report_stability() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    for out in [&a, &b] {
        let o = explain("densenet121_narrow", "rise", out, &["--seed", "7"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(read_npy_f32(&a).unwrap(), read_npy_f32(&b).unwrap());
    let o = explain("densenet121_narrow", "rise", &a, &["--seed", "8"]);
    assert!(o.status.success());
    assert_ne!(read_npy_f32(&a).unwrap(), read_npy_f32(&b).unwrap());
    let o = explain("densenet121_narrow", "rise", &a, &["--repeats", "3"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("stability over 3 seeds: top-10% IoU"), "{s}");
}

#[test]
fn overlay_superpixels_and_a_mask_target() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("h.npy");
    let png = dir.path().join("h.png");
    let sp = dir.path().join("sp.npy");
    let mask = fixtures().join("raster/cxr_covid_01902_infection.png");
    let o = explain(
        "smp_unet_resnet18",
        "lime",
        &out,
        &[
            "--overlay",
            png.to_str().unwrap(),
            "--superpixels",
            sp.to_str().unwrap(),
            "--target",
            mask.to_str().unwrap(),
        ],
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(s.contains("target: class 0 over"), "{s}");
    // LIME says how many samples it scored (adaptive: at most the --samples cap).
    let used: usize = s
        .split("LIME surrogate R²: ")
        .nth(1)
        .and_then(|r| r.split('(').nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sample count: {s}"));
    assert!((2..=200).contains(&used), "{used} samples, cap 200");
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (256, 256));
    let (labels, shape) = read_npy_f32(&sp).unwrap();
    assert_eq!(shape, vec![256, 256]);
    assert!(labels.iter().all(|l| l.fract() == 0.0 && *l >= 0.0));
}

#[test]
fn a_class_target_by_name_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("h.npy");
    let o = explain("densenet121_narrow", "gradcam", &out, &["--target", "class3"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && s.contains("target: class 3"), "{s}");

    let o = explain("densenet121_narrow", "gradcam", &out, &["--target", "no-such-class"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown class"));

    let o = explain("densenet121_narrow", "nonsense", &out, &[]);
    assert_eq!(o.status.code(), Some(2));

    let o = explain("densenet121_narrow", "gradcam", &out, &["--layer", "features.nope"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("features.denseblock4"), "the error lists the layers: {err}");

    let small = dir.path().join("small.png");
    image::GrayImage::new(8, 8).save(&small).unwrap();
    let o = explain("smp_unet_resnet18", "gradcam", &out, &["--target", small.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("small.png"), "{err}");
}

#[test]
fn lrp_on_convnext_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("h.npy");
    let o = explain("convnext_tiny_narrow", "lrp", &out, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("LRP is not available for convnext_tiny"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!out.exists());
}

/// The superpixel algorithm is a parameter of LIME and KernelSHAP: each named algorithm cuts the image
/// differently, the map changes with the superpixels, and an unknown name is refused.
#[test]
fn the_superpixel_algorithm_can_be_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cuts, mut maps) = (Vec::new(), Vec::new());
    for algorithm in radlens::xai::superpixels::SEGMENTATION_NAMES {
        let out = dir.path().join(format!("{algorithm}.npy"));
        let sp = dir.path().join(format!("{algorithm}_sp.npy"));
        let o = explain(
            "densenet121_narrow",
            "kernelshap",
            &out,
            &["--segmentation", algorithm, "--superpixels", sp.to_str().unwrap()],
        );
        assert!(o.status.success(), "{algorithm}: {}", String::from_utf8_lossy(&o.stderr));
        let (labels, _) = read_npy_f32(&sp).unwrap();
        let (heat, _) = read_npy_f32(&out).unwrap();
        let n = labels.iter().map(|&l| l as usize + 1).max().unwrap();
        assert!(n >= 2, "{algorithm}: {n} superpixels");
        assert!(heat.iter().all(|v| v.is_finite()) && heat.iter().any(|&v| v != heat[0]), "{algorithm}");
        maps.push(heat);
        cuts.push(labels);
    }
    assert_ne!(cuts[0], cuts[1], "quickshift and SLIC cut alike");
    assert_ne!(cuts[1], cuts[2], "SLIC and Felzenszwalb cut alike");
    // The players are the superpixels, so other superpixels give another map.
    assert_ne!(maps[0], maps[1]);
    assert_ne!(maps[1], maps[2]);

    let out = dir.path().join("bad.npy");
    let o = explain("densenet121_narrow", "lime", &out, &["--segmentation", "watershed"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown superpixel algorithm 'watershed'") && err.contains("felzenszwalb"),
        "{err}"
    );
    assert!(!out.exists());
}
