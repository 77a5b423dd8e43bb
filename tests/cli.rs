//! The command line as users and their scripts see it: output, JSON keys, files written, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn radlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_radlens")).args(args).output().expect("run radlens")
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "radlens failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// A bad input: exit code 2, exactly one line on stderr that names the file, nothing that looks like a panic.
fn assert_bad_input(o: &Output, file_name: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2, stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "expected one line: {err}");
    assert!(err.contains(file_name), "error does not name {file_name}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn write_grey_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u8) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)])).save(path).unwrap();
}

#[test]
fn demo_summarises_the_embedded_demo() {
    let o = radlens(&["demo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("embedded demo study (4 cases)"), "{s}");
    for case in ["ct-slice-7", "ct-slice-60", "ct-slice-79", "cxr-covid-02108"] {
        assert!(s.contains(case), "missing {case}: {s}");
    }
    // The CXR is 256 x 256 and its infection mask is not empty.
    assert!(s.contains("1 x 256 x 256 voxels"), "{s}");
    assert!(s.contains("(assumed)"), "{s}");
}

#[test]
fn info_json_on_a_png_reports_assumed_spacing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("img.png");
    write_grey_png(&p, 7, 5, |x, y| (x * 10 + y) as u8);
    let v = json(&radlens(&["info", p.to_str().unwrap(), "--json"]));
    assert_eq!(v["dims"], serde_json::json!([1, 5, 7]));
    assert_eq!(v["spacing_mm"], serde_json::json!([1.0, 1.0, 1.0]));
    assert_eq!(v["spacing_assumed"], true);
    assert_eq!(v["unit"], "raw");
    assert_eq!(v["min"], 0.0);
    assert_eq!(v["max"], 64.0);
    assert_eq!(v["series"], serde_json::json!([]));
    assert!(v["transfer_syntax"].is_null());
    assert!(v.get("modality").is_some());
}

#[test]
fn info_json_on_a_dicom_file() {
    let v = json(&radlens(&["info", fixture("dicom/CT_small.dcm").to_str().unwrap(), "--json"]));
    assert_eq!(v["modality"], "CT");
    assert_eq!(v["unit"], "HU");
    assert_eq!(v["dims"], serde_json::json!([1, 128, 128]));
    assert_eq!(v["min"], -896.0);
    assert_eq!(v["max"], 1167.0);
    assert_eq!(v["transfer_syntax"], "1.2.840.10008.1.2.1");
    // De-identified: CT_small carries a patient name and ID; neither may leak into the output.
    let text = v.to_string().to_lowercase();
    assert!(!text.contains("patient"), "{text}");
}

#[test]
fn info_table_is_human_readable() {
    let o = radlens(&["info", fixture("dicom/CT_small.dcm").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("modality       CT"), "{s}");
    assert!(s.contains("dims (z,y,x)   1 x 128 x 128"), "{s}");
    assert!(s.contains("range          -896 .. 1167"), "{s}");
}

#[test]
fn export_npy_round_trips_the_volume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ct.npy");
    let o =
        radlens(&["export", fixture("dicom/CT_small.dcm").to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (data, shape) = radlens::io::npy::read_npy_f32(&out).unwrap();
    assert_eq!(shape, vec![1, 128, 128]);
    let study = radlens::io::load_study(&fixture("dicom/CT_small.dcm"), &Default::default()).unwrap();
    assert_eq!(data, study.volume.data());
    assert_eq!(data.iter().cloned().fold(f32::INFINITY, f32::min), -896.0);
}

#[test]
fn export_nifti_keeps_values_and_spacing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ct.nii.gz");
    let src = fixture("dicom/CT_small.dcm");
    let o = radlens(&["export", src.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let original = radlens::io::load_study(&src, &Default::default()).unwrap().volume;
    let back = radlens::io::nifti::load_nifti(&out).unwrap();
    assert_eq!(back.dims(), original.dims());
    assert_eq!(back.data(), original.data());
    for k in 1..3 {
        assert!((back.spacing_mm[k] - original.spacing_mm[k]).abs() < 1e-5);
    }
}

#[test]
fn export_refuses_unknown_format_before_loading() {
    let o = radlens(&["export", "whatever.dcm", "--out", "out.xyz"]);
    assert_bad_input(&o, "out.xyz");
}

/// 10 × 10 masks by hand: GT a 4 × 4 square at (2..6, 2..6), prediction the same square shifted right by
/// 2 columns. Overlap 4 × 2 = 8 pixels, |P| = |G| = 16 → Dice 16/32 = 0.5, IoU 8/24 = 1/3,
/// precision = recall = 0.5, TN = 100 − 24 = 76 → specificity 76/84, accuracy 84/100.
/// Surfaces (4-connected border of each square): the farthest GT border pixel from the prediction is
/// its left column, 2 px away from the prediction's left column → HD = 2 px = 2 × 0.5 mm = 1 mm.
#[test]
fn metrics_json_known_answer() {
    let dir = tempfile::tempdir().unwrap();
    let gt = dir.path().join("gt.png");
    let pred = dir.path().join("pred.png");
    write_grey_png(&gt, 10, 10, |x, y| if (2..6).contains(&x) && (2..6).contains(&y) { 255 } else { 0 });
    write_grey_png(&pred, 10, 10, |x, y| if (4..8).contains(&x) && (2..6).contains(&y) { 255 } else { 0 });
    let v = json(&radlens(&[
        "metrics",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
        "--json",
        "--spacing",
        "1,0.5,0.5",
    ]));
    let close = |k: &str, want: f64| {
        let got = v[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {v}"));
        assert!((got - want).abs() < 1e-9, "{k}: {got} != {want}");
    };
    close("dice", 0.5);
    close("iou", 1.0 / 3.0);
    close("precision", 0.5);
    close("recall", 0.5);
    close("specificity", 76.0 / 84.0);
    close("accuracy", 0.84);
    close("hd_mm", 1.0);
    assert!(v["hd95_mm"].as_f64().unwrap() <= 1.0);
    assert!(v["assd_mm"].as_f64().unwrap() > 0.0);
    assert_eq!(v["spacing_assumed"], false);
}

#[test]
fn metrics_on_an_empty_prediction_reports_undefined_distances() {
    let dir = tempfile::tempdir().unwrap();
    let gt = dir.path().join("gt.png");
    let pred = dir.path().join("pred.png");
    write_grey_png(&gt, 6, 6, |x, _| if x < 2 { 255 } else { 0 });
    write_grey_png(&pred, 6, 6, |_, _| 0);
    let v = json(&radlens(&[
        "metrics",
        "--pred",
        pred.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(v["dice"], 0.0);
    assert!(v["hd_mm"].is_null() && v["hd95_mm"].is_null() && v["assd_mm"].is_null(), "{v}");
    assert_eq!(v["spacing_assumed"], true);
}

#[test]
fn metrics_with_masks_of_different_sizes_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let gt = dir.path().join("gt.png");
    let pred = dir.path().join("pred_small.png");
    write_grey_png(&gt, 8, 8, |_, _| 255);
    write_grey_png(&pred, 4, 4, |_, _| 255);
    let o = radlens(&["metrics", "--pred", pred.to_str().unwrap(), "--gt", gt.to_str().unwrap()]);
    assert_bad_input(&o, "pred_small.png");
}

#[test]
fn bad_inputs_exit_2_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.dcm");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.dcm");
    std::fs::write(&text, b"this is not a DICOM file at all, just text\n".repeat(10)).unwrap();
    let truncated = dir.path().join("truncated.dcm");
    let bytes = std::fs::read(fixture("dicom/CT_small.dcm")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let bad_png = dir.path().join("broken.png");
    std::fs::write(&bad_png, b"\x89PNG\r\n\x1a\nthis is not the rest of a PNG").unwrap();
    let unknown = dir.path().join("table.csv");
    std::fs::write(&unknown, b"a,b\n1,2\n").unwrap();
    for p in [&empty, &text, &truncated, &bad_png, &unknown] {
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_bad_input(&radlens(&["info", p.to_str().unwrap()]), name);
        assert_bad_input(&radlens(&["info", "--json", p.to_str().unwrap()]), name);
    }
    assert_bad_input(&radlens(&["info", "/no/such/study.dcm"]), "study.dcm");
    // A mask that is not an image at all.
    let gt = dir.path().join("gt.png");
    write_grey_png(&gt, 4, 4, |_, _| 0);
    assert_bad_input(
        &radlens(&["metrics", "--pred", text.to_str().unwrap(), "--gt", gt.to_str().unwrap()]),
        "notes.dcm",
    );
}

#[test]
fn bad_flags_exit_2() {
    let o = radlens(&["metrics", "--pred", "a.png", "--gt", "b.png", "--spacing", "1,0,1"]);
    assert_eq!(o.status.code(), Some(2));
    let o = radlens(&["no-such-command"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["info", "export", "metrics", "bench", "view", "demo"] {
        let o = radlens(&[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help failed");
        assert!(stdout(&o).contains("Usage: radlens"), "{sub}");
    }
}

#[test]
fn bench_load_prints_timings() {
    let o = radlens(&["bench", "load", fixture("dicom/CT_small.dcm").to_str().unwrap(), "--repeats", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("median"), "{}", stdout(&o));
}
