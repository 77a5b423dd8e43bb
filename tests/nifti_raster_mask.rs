//! NIfTI, raster and mask loading against real fixtures (made by tools/make_io_fixtures.py, with the
//! reference values nibabel and Pillow give in tests/fixtures/*/reference.json).

use std::path::{Path, PathBuf};

use radlens::imaging::{Affine, LabelSelector, Mask, Modality, Unit, Volume};
use radlens::io::mask::{check_mask_grid, load_mask_for};
use radlens::io::nifti::{load_nifti, load_nifti_labels, write_nifti, write_nifti_labels};
use radlens::io::raster::{load_raster, write_png_rgb, write_png_u8};
use radlens::io::{load_mask, load_study, LoadError, LoadOptions};
use serde_json::Value;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

fn reference(kind: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("{kind}/reference.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn dims_of(v: &Value) -> [usize; 3] {
    let a: Vec<usize> = v.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    [a[0], a[1], a[2]]
}

fn assert_affine_close(a: &Affine, b: &Affine, tol: f64) {
    for k in 0..3 {
        assert!(
            (a.origin_lps[k] - b.origin_lps[k]).abs() < tol,
            "origin {:?} vs {:?}",
            a.origin_lps,
            b.origin_lps
        );
        for i in 0..3 {
            assert!(
                (a.axes_lps[i][k] - b.axes_lps[i][k]).abs() < tol,
                "axes {:?} vs {:?}",
                a.axes_lps,
                b.axes_lps
            );
        }
    }
}

fn affine_from_reference(r: &Value) -> Affine {
    let v3 = |v: &Value| -> [f64; 3] { [f(&v[0]), f(&v[1]), f(&v[2])] };
    Affine { origin_lps: v3(&r["origin_lps"]), axes_lps: [0, 1, 2].map(|i| v3(&r["axes_lps"][i])) }
}

/// One line, names the file, and is an error (not a panic).
fn assert_one_line_error(res: Result<impl std::fmt::Debug, LoadError>, path: &Path) -> String {
    let e = res.expect_err("bad input must be refused").to_string();
    eprintln!("{e}");
    assert!(!e.contains('\n'), "not one line: {e}");
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(e.contains(name.as_ref()), "does not name {name}: {e}");
    e
}

fn check_against_reference(v: &Volume, r: &Value) {
    assert_eq!(v.dims(), dims_of(&r["dims"]));
    let sp = &r["spacing_mm"];
    for k in 0..3 {
        assert!((v.spacing_mm[k] - f(&sp[k])).abs() < 1e-6, "spacing {:?}", v.spacing_mm);
    }
    let sum: f64 = v.data().iter().map(|&x| x as f64).sum();
    assert_eq!(sum, f(&r["sum"]));
    assert_eq!(v.min_max(), (f(&r["min"]) as f32, f(&r["max"]) as f32));
    for p in r["probes"].as_array().unwrap() {
        let zyx = dims_of(&p["zyx"]);
        assert_eq!(v.get(zyx[0], zyx[1], zyx[2]), Some(f(&p["value"]) as f32), "voxel {zyx:?}");
    }
    assert_affine_close(&v.affine.unwrap(), &affine_from_reference(r), 1e-4);
}

// ---------------------------------------------------------------- NIfTI

#[test]
fn lidc_crop_loads_like_nibabel() {
    let r = reference("nifti");
    let path = fixture("nifti/lidc_crop_hu.nii.gz");
    let v = load_nifti(&path).unwrap();
    assert_eq!(v.dims(), [4, 64, 64]);
    assert_eq!(v.spacing_mm, [2.5, 0.703125, 0.703125]);
    assert!(!v.spacing_assumed);
    assert_eq!(v.unit, Unit::Hu);
    assert_eq!(v.modality, Modality::CT);
    assert_eq!(v.meta.source_format, "nifti");
    check_against_reference(&v, &r["lidc_crop_hu.nii.gz"]);
    // Radiological display: patient's right on the image's left, anterior at the top.
    assert_eq!(v.orientation_letters(), Some(['R', 'L', 'A', 'P']));
    // The crop's first voxel sits where the full LIDC grid puts column 285, row 331, slice 4.
    let o = v.affine.unwrap().origin_lps;
    assert!((o[0] - (-166.0 + 285.0 * 0.703125)).abs() < 1e-4 && (o[2] - (-132.5 + 4.0 * 2.5)).abs() < 1e-6);
    // And load_study dispatches .nii.gz here.
    let s = load_study(&path, &LoadOptions::default()).unwrap();
    assert_eq!(s.volume, v);
}

#[test]
fn reoriented_qform_copy_loads_to_the_same_display_array() {
    let r = reference("nifti");
    let canonical = load_nifti(&fixture("nifti/lidc_crop_hu.nii.gz")).unwrap();
    // Stored as (I, R, A) axes, uint16 + scl_inter -1024, geometry only in the qform.
    let other = load_nifti(&fixture("nifti/lidc_crop_hu_IRA_qform.nii")).unwrap();
    check_against_reference(&other, &r["lidc_crop_hu_IRA_qform.nii"]);
    assert_eq!(other.data(), canonical.data());
    assert_eq!(other.dims(), canonical.dims());
    assert_eq!(other.unit, Unit::Hu);
    for k in 0..3 {
        assert!((other.spacing_mm[k] - canonical.spacing_mm[k]).abs() < 1e-6);
    }
    assert_affine_close(&other.affine.unwrap(), &canonical.affine.unwrap(), 1e-3);

    // nibabel's canonical RAS (x and y stored the other way), big-endian float64, scl_slope 0.5, sform only.
    let be = load_nifti(&fixture("nifti/lidc_crop_hu_RAS_f64_be.nii.gz")).unwrap();
    check_against_reference(&be, &r["lidc_crop_hu_RAS_f64_be.nii.gz"]);
    assert_eq!(be.data(), canonical.data());
    assert_eq!(be.unit, Unit::Hu);
    assert_affine_close(&be.affine.unwrap(), &canonical.affine.unwrap(), 1e-3);
}

#[test]
fn label_map_loads_with_the_image_grid_and_selectors() {
    let r = &reference("nifti")["lidc_crop_readers.nii.gz"];
    let path = fixture("nifti/lidc_crop_readers.nii.gz");
    let m = load_nifti_labels(&path).unwrap();
    assert_eq!(m.dims(), [4, 64, 64]);
    let counts = r["label_counts"].as_object().unwrap();
    for (label, n) in counts {
        let label: u16 = label.parse().unwrap();
        let got = m.labels().iter().filter(|&&l| l == label).count();
        assert_eq!(got as u64, n.as_u64().unwrap(), "label {label}");
    }
    assert_eq!(m.present_labels(), vec![1, 2, 3, 4]);
    // "Nodule by at least one reader" vs "by all four".
    assert_eq!(m.count(LabelSelector::Any), 525 + 324 + 316 + 3124);
    assert_eq!(m.count(LabelSelector::Label(4)), 3124);
    // load_mask dispatches NIfTI names, and the label map lies on the image's grid.
    let image = load_nifti(&fixture("nifti/lidc_crop_hu.nii.gz")).unwrap();
    assert_eq!(load_mask_for(&path, &image).unwrap(), m);
    // The nodule (all 4 readers) is dense tissue, the crop's corner is lung.
    let nodule: Vec<f32> =
        image.data().iter().zip(m.labels()).filter(|(_, &l)| l == 4).map(|(&v, _)| v).collect();
    let mean = nodule.iter().sum::<f32>() / nodule.len() as f32;
    assert!(mean > -300.0, "nodule mean {mean} HU");
}

#[test]
fn image_loaded_as_labels_is_refused() {
    // HU values are negative: not a label map.
    let path = fixture("nifti/lidc_crop_hu.nii.gz");
    let e = assert_one_line_error(load_nifti_labels(&path), &path);
    assert!(e.contains("labels must be whole numbers"), "{e}");
}

#[test]
fn write_nifti_round_trips_nii_and_nii_gz() {
    let dir = tempfile::tempdir().unwrap();
    let src = load_nifti(&fixture("nifti/lidc_crop_hu_IRA_qform.nii")).unwrap();
    for name in ["out.nii", "out.nii.gz"] {
        let p = dir.path().join(name);
        write_nifti(&p, &src).unwrap();
        let back = load_nifti(&p).unwrap();
        assert_eq!(back.data(), src.data(), "{name}");
        assert_eq!(back.dims(), src.dims());
        assert_eq!(back.unit, Unit::Hu);
        for k in 0..3 {
            assert!((back.spacing_mm[k] - src.spacing_mm[k]).abs() < 1e-5);
        }
        assert_affine_close(&back.affine.unwrap(), &src.affine.unwrap(), 1e-4);
    }
    assert_eq!(&std::fs::read(dir.path().join("out.nii.gz")).unwrap()[..2], &[0x1f, 0x8b]);

    // Oblique and permuted geometry survives too, and fractional values stay exact (float32).
    let mut v =
        Volume::new((0..60).map(|i| i as f32 * 0.25 - 3.0).collect(), [3, 4, 5], [3.0, 0.8, 0.8]).unwrap();
    let (s, c) = (0.2f64.sin(), 0.2f64.cos());
    v.affine = Some(Affine {
        origin_lps: [-12.5, 40.0, 7.25],
        axes_lps: [[0.8 * c, 0.0, 0.8 * s], [0.0, 0.8, 0.0], [-3.0 * s, 0.0, 3.0 * c]],
    });
    let p = dir.path().join("oblique.nii.gz");
    write_nifti(&p, &v).unwrap();
    let back = load_nifti(&p).unwrap();
    assert_eq!(back.data(), v.data());
    assert_affine_close(&back.affine.unwrap(), &v.affine.unwrap(), 1e-5);

    // No affine: written from the spacing in display orientation, read back the same way round.
    // The unit is kept although these values look nothing like CT.
    let mut plain = Volume::new((0..24).map(|i| i as f32).collect(), [2, 3, 4], [2.0, 0.5, 0.6]).unwrap();
    plain.unit = Unit::Hu;
    let p = dir.path().join("plain.nii");
    write_nifti(&p, &plain).unwrap();
    let back = load_nifti(&p).unwrap();
    assert_eq!(back.data(), plain.data());
    assert_eq!(back.orientation_letters(), Some(['R', 'L', 'A', 'P']));
    assert_eq!(back.unit, Unit::Hu);
    assert!((back.spacing_mm[2] - 0.6).abs() < 1e-6);
}

#[test]
fn write_nifti_labels_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let image = load_nifti(&fixture("nifti/lidc_crop_hu_IRA_qform.nii")).unwrap();
    let m = load_nifti_labels(&fixture("nifti/lidc_crop_readers.nii.gz")).unwrap();
    let p = dir.path().join("labels.nii.gz");
    write_nifti_labels(&p, &m, &image).unwrap();
    assert_eq!(load_nifti_labels(&p).unwrap(), m);
    assert_eq!(load_mask(&p).unwrap(), m);
    // As an image it is raw labels, not HU, whatever the unit of the volume it was drawn on.
    assert_eq!(load_nifti(&p).unwrap().unit, Unit::Raw);
    // Labels above 255 are written as uint16.
    let mut wide = m.labels().to_vec();
    wide[0] = 300;
    wide[1] = 65535;
    let wide = Mask::new(wide, m.dims()).unwrap();
    let p = dir.path().join("wide.nii");
    write_nifti_labels(&p, &wide, &image).unwrap();
    assert_eq!(load_nifti_labels(&p).unwrap(), wide);
    // A mask on another grid is refused.
    let small = Mask::new(vec![0; 8], [2, 2, 2]).unwrap();
    let p = dir.path().join("small.nii");
    assert_one_line_error(write_nifti_labels(&p, &small, &image), &p);
}

// ---------------------------------------------------------------- raster

#[test]
fn grey_png_cxr() {
    let r = &reference("raster")["cxr_grey"];
    let path = fixture("raster/cxr_covid_01902.png");
    let v = load_raster(&path).unwrap();
    assert_eq!(v.dims(), dims_of(&r["dims"]));
    assert_eq!(v.dims(), [1, 256, 256]);
    assert!(v.spacing_assumed);
    assert_eq!(v.spacing_mm, [1.0; 3]);
    assert_eq!(v.unit, Unit::Raw);
    assert_eq!(v.modality, Modality::Other("OT".into()));
    assert_eq!(v.meta.source_format, "png");
    assert_eq!(v.data().iter().map(|&x| x as u64).sum::<u64>(), r["sum"].as_u64().unwrap());
    for p in r["probes"].as_array().unwrap() {
        let (y, x) = (p["yx"][0].as_u64().unwrap() as usize, p["yx"][1].as_u64().unwrap() as usize);
        assert_eq!(v.get(0, y, x), Some(f(&p["value"]) as f32));
    }
    assert!(v.affine.is_none());
}

#[test]
fn sixteen_bit_png_keeps_values() {
    let r = &reference("raster")["cxr_16bit"];
    let v = load_raster(&fixture("raster/cxr_16bit.png")).unwrap();
    assert_eq!(v.dims(), [1, 256, 256]);
    assert_eq!(v.min_max().1, 65535.0);
    for p in r["probes"].as_array().unwrap() {
        let (y, x) = (p["yx"][0].as_u64().unwrap() as usize, p["yx"][1].as_u64().unwrap() as usize);
        assert_eq!(v.get(0, y, x), Some(f(&p["value"]) as f32));
    }
    assert_eq!(v.data().iter().map(|&x| x as u64).sum::<u64>(), r["sum"].as_u64().unwrap());
}

#[test]
fn rgb_png_becomes_bt601_luma() {
    let r = &reference("raster")["cxr_rgb"];
    let v = load_raster(&fixture("raster/cxr_rgb.png")).unwrap();
    assert_eq!(v.dims(), [1, 256, 256]);
    for p in r["probes"].as_array().unwrap() {
        let (y, x) = (p["yx"][0].as_u64().unwrap() as usize, p["yx"][1].as_u64().unwrap() as usize);
        let rgb: Vec<f64> = p["rgb"].as_array().unwrap().iter().map(f).collect();
        let expected = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
        let got = v.get(0, y, x).unwrap() as f64;
        assert!((got - expected).abs() < 1e-3, "({y}, {x}): {got} vs {expected}");
    }
}

#[test]
fn bmp_tiff_jpeg_load_as_grey() {
    let grey = load_raster(&fixture("raster/cxr_covid_01902.png")).unwrap();
    for (name, format) in [("cxr_grey.bmp", "bmp"), ("cxr_grey.tif", "tiff")] {
        let v = load_raster(&fixture(&format!("raster/{name}"))).unwrap();
        assert_eq!(v.meta.source_format, format);
        assert!(v.spacing_assumed);
        assert_eq!(v.data(), grey.data(), "{name} must hold the same pixels as the PNG");
    }
    let r = &reference("raster")["semiseg_6_jpeg"];
    let v = load_raster(&fixture("raster/semiseg_6.jpg")).unwrap();
    assert_eq!(v.meta.source_format, "jpeg");
    assert_eq!(v.dims(), dims_of(&r["dims"]));
    // JPEG decoders may differ by a grey level here and there; the mean must agree closely.
    let n = v.data().len() as f64;
    let mean = v.data().iter().map(|&x| x as f64).sum::<f64>() / n;
    let expected = r["sum"].as_f64().unwrap() / n;
    assert!((mean - expected).abs() < 0.5, "{mean} vs {expected}");
}

#[test]
fn palette_png_as_image_gives_the_colours_grey() {
    let r = &reference("raster")["semiseg_6_multiclass"];
    let v = load_raster(&fixture("raster/semiseg_6_multiclass_palette.png")).unwrap();
    let m = load_mask(&fixture("raster/semiseg_6_multiclass_palette.png")).unwrap();
    for (label, value) in v.data().iter().zip(m.labels()).map(|(&v, &l)| (l, v)).take(100_000) {
        let rgb: Vec<f64> = r["palette_rgb"][label as usize].as_array().unwrap().iter().map(f).collect();
        assert!((value as f64 - (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])).abs() < 1e-3);
    }
}

#[test]
fn png_writers_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("grey.png");
    let grey: Vec<u8> = (0..6 * 5).map(|i| (i * 8) as u8).collect();
    write_png_u8(&p, 6, 5, &grey).unwrap();
    let v = load_raster(&p).unwrap();
    assert_eq!(v.dims(), [1, 5, 6]);
    assert_eq!(v.data(), grey.iter().map(|&b| b as f32).collect::<Vec<_>>().as_slice());
    let p = dir.path().join("rgb.png");
    let rgb: Vec<u8> = (0..2 * 2 * 3).map(|i| (i * 20) as u8).collect();
    write_png_rgb(&p, 2, 2, &rgb).unwrap();
    let v = load_raster(&p).unwrap();
    let expected = 0.299 * 0.0 + 0.587 * 20.0 + 0.114 * 40.0;
    assert!((v.data()[0] as f64 - expected).abs() < 1e-4);
    // Wrong buffer length: refused, nothing written.
    let p = dir.path().join("bad.png");
    assert_one_line_error(write_png_u8(&p, 3, 3, &grey), &p);
    assert!(!p.exists());
}

// ---------------------------------------------------------------- masks

#[test]
fn cxr_infection_masks_0_255_and_0_1() {
    let r = reference("raster");
    let n = r["infection_covid_01902"]["foreground"].as_u64().unwrap() as usize;
    let image = load_raster(&fixture("raster/cxr_covid_01902.png")).unwrap();
    let m255 = load_mask_for(&fixture("raster/cxr_covid_01902_infection.png"), &image).unwrap();
    let m01 = load_mask_for(&fixture("raster/cxr_covid_01902_infection_01.png"), &image).unwrap();
    assert_eq!(m255.dims(), [1, 256, 256]);
    assert_eq!(m255.present_labels(), vec![1]);
    assert_eq!(m255.count(LabelSelector::Any), n);
    assert!(n > 0);
    assert_eq!(m01, m255);
    let other = load_raster(&fixture("raster/cxr_covid_01903.png")).unwrap();
    let m = load_mask_for(&fixture("raster/cxr_covid_01903_infection.png"), &other).unwrap();
    assert_eq!(m.present_labels(), vec![1]);
}

#[test]
fn semiseg_binary_and_palette_masks_use_indices() {
    let r = &reference("raster");
    let image = load_raster(&fixture("raster/semiseg_6.jpg")).unwrap();
    let binary = load_mask_for(&fixture("raster/semiseg_6_binary.png"), &image).unwrap();
    assert_eq!(
        binary.count(LabelSelector::Any) as u64,
        r["semiseg_6_binary"]["foreground"].as_u64().unwrap()
    );
    let multi = load_mask_for(&fixture("raster/semiseg_6_multiclass_palette.png"), &image).unwrap();
    // Palette indices (1 = GGO, 2 = consolidation), not the colours' grey values.
    assert_eq!(multi.present_labels(), vec![1, 2]);
    for (label, n) in r["semiseg_6_multiclass"]["counts"].as_object().unwrap() {
        let label: u16 = label.parse().unwrap();
        assert_eq!(multi.labels().iter().filter(|&&l| l == label).count() as u64, n.as_u64().unwrap());
    }
    // The binary mask is the union of the classes.
    assert_eq!(multi.binary(LabelSelector::Any), binary.binary(LabelSelector::Any));
    assert!(multi.count(LabelSelector::Label(1)) > 0 && multi.count(LabelSelector::Label(2)) > 0);
}

#[test]
fn written_masks_follow_the_documented_rules() {
    let dir = tempfile::tempdir().unwrap();
    // Small labels kept.
    let p = dir.path().join("labels.png");
    write_png_u8(&p, 4, 1, &[0, 1, 2, 3]).unwrap();
    assert_eq!(load_mask(&p).unwrap().labels(), &[0, 1, 2, 3]);
    // Many grey levels (as JPEG smoothing leaves): threshold at 128.
    let p = dir.path().join("smooth.png");
    write_png_u8(&p, 5, 1, &[0, 90, 127, 128, 250]).unwrap();
    assert_eq!(load_mask(&p).unwrap().labels(), &[0, 0, 0, 1, 1]);
    // Colour: any non-black is 1.
    let p = dir.path().join("colour.png");
    write_png_rgb(&p, 3, 1, &[0, 0, 0, 0, 0, 7, 200, 0, 0]).unwrap();
    assert_eq!(load_mask(&p).unwrap().labels(), &[0, 1, 1]);
    // BMP {0,255} through image rather than png.
    let bmp = dir.path().join("m.bmp");
    let img = image::GrayImage::from_raw(3, 1, vec![0, 255, 0]).unwrap();
    img.save(&bmp).unwrap();
    assert_eq!(load_mask(&bmp).unwrap().labels(), &[0, 1, 0]);
}

#[test]
fn mask_grid_mismatch_names_the_mask() {
    let image = load_raster(&fixture("raster/semiseg_6.jpg")).unwrap(); // 226 x 308
    let path = fixture("raster/cxr_covid_01902_infection.png"); // 256 x 256
    let e = assert_one_line_error(load_mask_for(&path, &image), &path);
    assert!(e.contains("mask is 256 x 256 but the image is 226 x 308"), "{e}");
    let m = load_mask(&path).unwrap();
    let e = check_mask_grid(&m, &image, &path).unwrap_err().to_string();
    assert!(e.ends_with("cxr_covid_01902_infection.png"), "{e}");
    // 3D: the NIfTI label map against a 2D image.
    let labels = fixture("nifti/lidc_crop_readers.nii.gz");
    let e = assert_one_line_error(load_mask_for(&labels, &image), &labels);
    assert!(e.contains("64 x 64 x 4"), "{e}");
}

// ---------------------------------------------------------------- bad input

fn temp_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bad_raster_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let png = std::fs::read(fixture("raster/cxr_covid_01902.png")).unwrap();
    let cases = [
        temp_file(dir.path(), "empty.png", b""),
        temp_file(dir.path(), "truncated.png", &png[..png.len() / 2]),
        temp_file(dir.path(), "header_only.png", &png[..40]),
        temp_file(dir.path(), "text.png", b"this is not an image\n"),
        temp_file(dir.path(), "text.jpg", b"this is not an image either\n"),
        temp_file(dir.path(), "empty.bmp", b""),
        dir.path().join("missing.png"),
    ];
    for p in &cases {
        assert_one_line_error(load_raster(p), p);
        assert_one_line_error(load_mask(p), p);
    }
    // A PNG header claiming 100000 x 100000: refused from the header, nothing allocated.
    let mut huge = png[..33].to_vec();
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    huge.extend_from_slice(&png[33..]);
    let p = temp_file(dir.path(), "huge.png", &huge);
    assert_one_line_error(load_raster(&p), &p);
    assert_one_line_error(load_mask(&p), &p);
}

/// PNG chunk CRC (so the absurd-size header is otherwise valid).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A valid little float32 NIfTI written by us, as bytes, for corrupting.
fn small_nifti_bytes(dir: &Path) -> Vec<u8> {
    let v = Volume::new((0..24).map(|i| i as f32).collect(), [2, 3, 4], [1.0; 3]).unwrap();
    let p = dir.join("small_valid.nii");
    write_nifti(&p, &v).unwrap();
    std::fs::read(&p).unwrap()
}

#[test]
fn bad_nifti_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_nifti_bytes(dir.path());
    let gz = std::fs::read(fixture("nifti/lidc_crop_hu.nii.gz")).unwrap();

    // Absurd dimensions (NIfTI-1 dims are i16, so 32767 is the most a header can claim).
    let mut absurd = good.clone();
    for k in 1..=3 {
        absurd[40 + 2 * k..42 + 2 * k].copy_from_slice(&32767i16.to_le_bytes());
    }
    // NaN in a float volume.
    let mut nan = good.clone();
    nan[352 + 4 * 5..352 + 4 * 6].copy_from_slice(&f32::NAN.to_le_bytes());
    // Four volumes.
    let mut four_d = good.clone();
    four_d[40..42].copy_from_slice(&4i16.to_le_bytes());
    four_d[48..50].copy_from_slice(&4i16.to_le_bytes());
    // Unsupported datatype (complex64).
    let mut complex = good.clone();
    complex[70..72].copy_from_slice(&32i16.to_le_bytes());

    let cases: Vec<(PathBuf, &str)> = vec![
        (temp_file(dir.path(), "empty.nii", b""), "empty"),
        (temp_file(dir.path(), "empty.nii.gz", b""), "empty file"),
        (temp_file(dir.path(), "plain.nii.gz", &good), "not gzip"),
        (temp_file(dir.path(), "text.nii", b"hello, not a nifti\n"), "NIfTI"),
        (temp_file(dir.path(), "short_header.nii", &good[..100]), "header"),
        (temp_file(dir.path(), "truncated.nii", &good[..good.len() - 10]), "truncated"),
        (temp_file(dir.path(), "truncated.nii.gz", &gz[..gz.len() / 2]), "NIfTI data"),
        (temp_file(dir.path(), "absurd.nii", &absurd), "4 GiB"),
        (temp_file(dir.path(), "nan.nii", &nan), "not a finite number"),
        (temp_file(dir.path(), "four_d.nii", &four_d), "4 volumes"),
        (temp_file(dir.path(), "complex.nii", &complex), "datatype"),
        (dir.path().join("missing.nii"), "no such file"),
    ];
    for (p, needle) in &cases {
        let e = assert_one_line_error(load_nifti(p), p);
        assert!(e.contains(needle), "{}: {e}", p.display());
        assert_one_line_error(load_nifti_labels(p), p);
        assert_one_line_error(load_mask(p), p);
    }
    // The untouched bytes do load, and so does 4D with a single volume.
    let ok = temp_file(dir.path(), "ok.nii", &good);
    assert_eq!(load_nifti(&ok).unwrap().dims(), [2, 3, 4]);
    let mut one_volume = good.clone();
    one_volume[40..42].copy_from_slice(&4i16.to_le_bytes());
    let p = temp_file(dir.path(), "one_volume.nii", &one_volume);
    assert_eq!(load_nifti(&p).unwrap(), load_nifti(&ok).unwrap());
}
