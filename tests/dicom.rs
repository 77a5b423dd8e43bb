//! DICOM loading: transfer syntaxes, pydicom parity, series ordering, multi-frame, bad input.
//!
//! Fixtures live in tests/fixtures/dicom (see LICENSES.md there); files for the odd cases (second
//! series, missing pixels, absurd dimensions, ...) are generated into temporary folders.

use std::path::{Path, PathBuf};

use dicom::core::{DataElement, PrimitiveValue, VR};
use dicom::dictionary_std::tags;
use dicom::object::open_file;
use radlens::imaging::{Modality, Unit, WindowLevel};
use radlens::io::dicom::load_dicom_file;
use radlens::io::series::{
    load_series_folder, order_slices, scan_folder, spacing_from_positions, OrderBasis, SliceKey,
};
use radlens::io::{load_study, LoadError, LoadOptions, Study};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom")
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn load(path: &Path) -> Study {
    load_dicom_file(path).unwrap_or_else(|e| panic!("{e}"))
}

const CT1: [&str; 7] = ["UNC", "RLE", "JPLL", "JLSL", "JLSN", "J2KR", "J2KI"];

fn ct1(code: &str) -> PathBuf {
    fixture(&format!("ct1/CT1_{code}.dcm"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A one-line error that names the file.
fn assert_clean_error(err: &LoadError, file: &Path, expect: &str) {
    let msg = err.to_string();
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(msg.contains(&*name), "error does not name {name}: {msg}");
    assert!(!msg.contains('\n'), "error is not one line: {msg:?}");
    assert!(msg.to_lowercase().contains(&expect.to_lowercase()), "expected {expect:?} in: {msg}");
}

/// Copies `src` to `dst` after `edit` changes the parsed object.
fn write_edited(src: &Path, dst: &Path, edit: impl FnOnce(&mut dicom::object::DefaultDicomObject)) {
    let mut obj = open_file(src).unwrap();
    edit(&mut obj);
    obj.write_to_file(dst).unwrap();
}

const DCMQI_SERIES: &str = "series_shuffled";

fn copy_series(dst: &Path) {
    for f in ["slice_a.dcm", "slice_b.dcm", "slice_c.dcm"] {
        std::fs::copy(fixture(DCMQI_SERIES).join(f), dst.join(f)).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Transfer syntaxes

#[test]
fn ct1_every_transfer_syntax_decodes_and_lossless_ones_are_bit_identical() {
    let reference = load(&ct1("UNC"));
    assert_eq!(reference.volume.dims(), [1, 512, 512]);
    for code in ["RLE", "JPLL", "JLSL", "J2KR"] {
        let v = load(&ct1(code)).volume;
        assert_eq!(v.dims(), [1, 512, 512], "{code}");
        assert!(v.data() == reference.volume.data(), "{code} differs from CT1_UNC");
        assert_eq!(v.padding_value, Some(-3024.0), "{code}");
    }
}

#[test]
fn ct1_lossy_transfer_syntaxes_are_close() {
    let reference = load(&ct1("UNC")).volume;
    let jlsn = max_abs_diff(load(&ct1("JLSN")).volume.data(), reference.data());
    let j2ki = max_abs_diff(load(&ct1("J2KI")).volume.data(), reference.data());
    println!("max |diff| vs CT1_UNC: JLSN {jlsn} HU, J2KI {j2ki} HU");
    // JPEG-LS near-lossless bounds the error by its NEAR parameter (pydicom finds 4 here too).
    assert!(jlsn > 0.0 && jlsn <= 4.0, "JLSN max diff {jlsn}");
    // Lossy JPEG 2000 at this rate: pydicom + openjpeg finds 352.
    assert!(j2ki > 0.0 && j2ki <= 400.0, "J2KI max diff {j2ki}");
}

#[test]
fn every_ct1_syntax_names_its_transfer_syntax_in_meta() {
    for code in CT1 {
        let v = load(&ct1(code)).volume;
        assert!(v.meta.transfer_syntax.as_deref().unwrap().starts_with("1.2.840.10008.1.2"), "{code}");
        assert_eq!(v.meta.source_format, "dicom");
    }
}

// ---------------------------------------------------------------------------------------------
// pydicom parity

#[derive(serde::Deserialize)]
struct Reference {
    kind: String,
    error: Option<String>,
    shape: Option<Vec<usize>>,
    min: Option<f64>,
    max: Option<f64>,
    sum: Option<f64>,
    sample_indices: Option<Vec<usize>>,
    sample_values: Option<Vec<f64>>,
    sha256: Option<String>,
}

/// Compares one loaded volume with pydicom's numbers; returns a one-line summary.
fn compare(name: &str, study: &Study, r: &Reference) -> String {
    let v = &study.volume;
    assert_eq!(v.dims().to_vec(), *r.shape.as_ref().unwrap(), "{name} shape");
    let (lo, hi) = v.min_max();
    assert_eq!(lo as f64, r.min.unwrap(), "{name} min");
    assert_eq!(hi as f64, r.max.unwrap(), "{name} max");
    let sum: f64 = v.data().iter().map(|&x| x as f64).sum();
    let ref_sum = r.sum.unwrap();
    assert!((sum - ref_sum).abs() <= 1e-9 * ref_sum.abs().max(1.0), "{name} sum {sum} vs {ref_sum}");
    for (&i, &want) in r.sample_indices.as_ref().unwrap().iter().zip(r.sample_values.as_ref().unwrap()) {
        assert_eq!(v.data()[i] as f64, want, "{name} voxel {i}");
    }
    let bytes: Vec<u8> = v.data().iter().flat_map(|x| x.to_le_bytes()).collect();
    let sha = sha256_hex(&bytes);
    assert_eq!(&sha, r.sha256.as_ref().unwrap(), "{name} sha256 of float32 voxels");
    format!("{name}: {:?} min {lo} max {hi} sum {sum} sha256 {}… identical", v.dims(), &sha[..12])
}

fn load_reference(path: &Path) -> std::collections::BTreeMap<String, Reference> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn pydicom_parity_on_fixtures() {
    let refs = load_reference(&fixture("pydicom_reference.json"));
    let mut compared = 0;
    for (name, r) in &refs {
        if r.error.is_some() {
            continue; // pydicom cannot decode it either (12-bit JPEG): covered by the bad-input test
        }
        let path = fixture(name);
        let study = if r.kind == "folder" {
            load_series_folder(&path, &LoadOptions::default()).unwrap()
        } else {
            load(&path)
        };
        println!("{}", compare(name, &study, r));
        compared += 1;
    }
    assert_eq!(compared, 10);
}

/// Run by hand: `python3 tools/dicom_reference.py --all /tmp/ref.json` then
/// `RADLENS_PARITY_JSON=/tmp/ref.json cargo test --test dicom -- --ignored --nocapture pydicom_parity_external`.
#[test]
#[ignore]
fn pydicom_parity_external() {
    let path = std::env::var("RADLENS_PARITY_JSON").expect("set RADLENS_PARITY_JSON");
    for (name, r) in &load_reference(Path::new(&path)) {
        if let Some(e) = &r.error {
            println!(
                "{name}: pydicom failed ({e}); radlens: {:?}",
                load_study(Path::new(name), &LoadOptions::default()).err().map(|e| e.to_string())
            );
            continue;
        }
        let t = std::time::Instant::now();
        let study = load_study(Path::new(name), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let elapsed = t.elapsed();
        println!("{} ({:.3} s)", compare(name, &study, r), elapsed.as_secs_f64());
    }
}

/// Run by hand: `RADLENS_LIDC=/work/shared/data/ct_lidc_idri_0001/dicom cargo test --release --test dicom -- --ignored --nocapture lidc`.
#[test]
#[ignore]
fn lidc_folder_loads_80_slices_in_z_order() {
    let dir = PathBuf::from(std::env::var("RADLENS_LIDC").expect("set RADLENS_LIDC"));
    let t = std::time::Instant::now();
    let study = load_series_folder(&dir, &LoadOptions::default()).unwrap();
    let elapsed = t.elapsed();
    let v = &study.volume;
    println!(
        "LIDC: {:?} spacing {:?} unit {:?} in {:.3} s; warnings {:?}",
        v.dims(),
        v.spacing_mm,
        v.unit,
        elapsed.as_secs_f64(),
        study.warnings
    );
    assert_eq!(v.dims(), [80, 512, 512]);
    assert_eq!(v.spacing_mm, [2.5, 0.703125, 0.703125]);
    assert_eq!(v.unit, Unit::Hu);
    let a = v.affine.unwrap();
    assert_eq!(a.origin_lps[2], -250.0);
    assert_eq!(a.position(0.0, 0.0, 79.0)[2], -52.5);
    assert!(study.warnings.is_empty(), "{:?}", study.warnings);
}

// ---------------------------------------------------------------------------------------------
// Values and metadata

#[test]
fn ct_small_is_hounsfield_with_geometry_and_no_identifying_metadata() {
    let study = load(&fixture("CT_small.dcm"));
    let v = &study.volume;
    assert_eq!(v.dims(), [1, 128, 128]);
    assert_eq!(v.min_max(), (-896.0, 1167.0));
    assert_eq!(v.modality, Modality::CT);
    assert_eq!(v.unit, Unit::Hu);
    assert_eq!(v.spacing_mm[1..], [0.661468, 0.661468]);
    assert!(!v.spacing_assumed);
    let a = v.affine.expect("CT_small has position and orientation");
    assert_eq!(a.origin_lps, [-158.135803, -179.035797, -75.699997]);
    assert_eq!(a.axes_lps[0], [0.661468, 0.0, 0.0]);
    assert_eq!(v.meta.source_format, "dicom");
    assert_eq!(v.meta.photometric.as_deref(), Some("MONOCHROME2"));
    assert_eq!(study.series.len(), 1);
    assert_eq!(study.series[0].modality, "CT");
    // Nothing that identifies the patient may reach the metadata.
    // UIDs may embed a date by construction (this one does); everything else must be free of them.
    let meta =
        serde_json::to_string(&radlens::imaging::StudyMeta { series_uid: None, ..v.meta.clone() }).unwrap();
    let obj = open_file(fixture("CT_small.dcm")).unwrap();
    for tag in [
        tags::PATIENT_NAME,
        tags::PATIENT_ID,
        tags::PATIENT_BIRTH_DATE,
        tags::INSTITUTION_NAME,
        tags::STUDY_DATE,
    ] {
        if let Some(value) = obj.get(tag).and_then(|e| e.to_str().ok()) {
            let value = value.trim();
            if value.len() > 2 {
                assert!(!meta.contains(value), "{tag} value leaked into meta: {meta}");
            }
        }
    }
}

#[test]
fn ct1_padding_value_is_the_rescaled_pixel_padding_value() {
    let v = load(&ct1("UNC")).volume;
    assert_eq!(v.padding_value, Some(-3024.0)); // stored -2000, intercept -1024
    assert_eq!(v.min_max(), (-3024.0, 1254.0)); // voxels keep their value, like pydicom
    assert_eq!(v.meta.slice_thickness_mm, Some(5.0));
    assert_eq!(v.spacing_mm[0], 5.0);
}

#[test]
fn dcmqi_slices_carry_the_header_window() {
    let v = load(&fixture("series_shuffled/slice_a.dcm")).volume;
    assert_eq!(v.header_window, Some(WindowLevel::new(40.0, 400.0)));
    assert_eq!(v.default_window(), WindowLevel::new(40.0, 400.0));
}

#[test]
fn monochrome1_is_inverted_and_its_window_mirrored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mono1.dcm");
    write_edited(&fixture("CT_small.dcm"), &path, |obj| {
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from("MONOCHROME1"),
        ));
        obj.put(DataElement::new(tags::WINDOW_CENTER, VR::DS, PrimitiveValue::from("100")));
        obj.put(DataElement::new(tags::WINDOW_WIDTH, VR::DS, PrimitiveValue::from("500")));
    });
    let mono2 = load(&fixture("CT_small.dcm")).volume;
    let mono1 = load(&path).volume;
    // CT_small stores 16-bit signed: rescaled range -32768-1024 ..= 32767-1024, sum -2049.
    let mirror = -2049.0f32;
    for (a, b) in mono1.data().iter().zip(mono2.data()) {
        assert_eq!(*a, mirror - b);
    }
    assert_eq!(mono1.header_window, Some(WindowLevel::new(mirror - 100.0, 500.0)));
    // A value at the window centre stays at mid-grey after both mirrors.
    let w1 = mono1.header_window.unwrap();
    assert_eq!(w1.to_u8(mirror - 100.0), WindowLevel::new(100.0, 500.0).to_u8(100.0));
}

// ---------------------------------------------------------------------------------------------
// Series folders

#[test]
fn shuffled_series_comes_out_in_z_order_with_spacing_from_positions() {
    let dir = fixture(DCMQI_SERIES);
    let study = load_series_folder(&dir, &LoadOptions::default()).unwrap();
    let v = &study.volume;
    assert_eq!(v.dims(), [3, 512, 512]);
    // Name order is a, b, c; z order (ascending) is b (-128.69), c (-127.69), a (-126.69).
    for (z, name) in ["slice_b.dcm", "slice_c.dcm", "slice_a.dcm"].iter().enumerate() {
        let single = load(&dir.join(name)).volume;
        assert!(v.slice(z) == single.data(), "slice {z} is not {name}");
    }
    assert!((v.spacing_mm[0] - 1.0).abs() < 1e-5, "{:?}", v.spacing_mm);
    assert_eq!(v.spacing_mm[1..], [0.810547, 0.810547]);
    let a = v.affine.unwrap();
    assert!((a.origin_lps[2] - -128.690002).abs() < 1e-9);
    assert!((a.position(0.0, 0.0, 2.0)[2] - -126.690002).abs() < 1e-4);
    assert_eq!(v.header_window, Some(WindowLevel::new(40.0, 400.0)));
    assert!(study.warnings.is_empty(), "{:?}", study.warnings); // README.txt is skipped silently
    assert_eq!(study.series.len(), 1);
    assert_eq!(study.series[0].slice_count, 3);
}

#[test]
fn instance_number_orders_slices_without_positions() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["slice_a.dcm", "slice_b.dcm", "slice_c.dcm"] {
        write_edited(&fixture(DCMQI_SERIES).join(f), &dir.path().join(f), |obj| {
            obj.remove_element(tags::IMAGE_POSITION_PATIENT);
        });
    }
    let v = load_series_folder(dir.path(), &LoadOptions::default()).unwrap().volume;
    // InstanceNumber: a 1, c 2, b 3.
    for (z, name) in ["slice_a.dcm", "slice_c.dcm", "slice_b.dcm"].iter().enumerate() {
        assert!(
            v.slice(z) == load(&fixture(DCMQI_SERIES).join(name)).volume.data(),
            "slice {z} is not {name}"
        );
    }
    assert!(v.affine.is_none());

    // The ordering rule on plain data.
    let key = |p: Option<f64>, n: Option<i64>| SliceKey { position_along_normal: p, instance_number: n };
    let (order, basis) =
        order_slices(&[key(Some(3.0), Some(1)), key(Some(-1.0), Some(2)), key(Some(2.0), None)]);
    assert_eq!((order, basis), (vec![1, 2, 0], OrderBasis::Position));
    let (order, basis) =
        order_slices(&[key(Some(3.0), Some(7)), key(None, Some(5)), key(Some(2.0), Some(6))]);
    assert_eq!((order, basis), (vec![1, 2, 0], OrderBasis::InstanceNumber));
    let (order, basis) = order_slices(&[key(None, Some(7)), key(None, None)]);
    assert_eq!((order, basis), (vec![0, 1], OrderBasis::FileOrder));
}

#[test]
fn non_uniform_spacing_warns() {
    let (spacing, warning) = spacing_from_positions(&[0.0, 2.5, 5.0, 7.5]).unwrap();
    assert_eq!((spacing, warning), (2.5, None));
    let (spacing, warning) = spacing_from_positions(&[0.0, 2.5, 5.0, 10.0]).unwrap();
    assert_eq!(spacing, 2.5);
    assert_eq!(warning.unwrap(), "non-uniform slice spacing: 2.500 to 5.000 mm (median 2.500 mm used)");
    assert!(spacing_from_positions(&[0.0, 2.5, 2.5, 5.0]).unwrap().1.unwrap().contains("share a position"));

    // A real folder with a gap: b moved from z -128.69 to -129.69 (gaps 2 and 1 mm).
    let dir = tempfile::tempdir().unwrap();
    copy_series(dir.path());
    write_edited(&fixture(DCMQI_SERIES).join("slice_b.dcm"), &dir.path().join("slice_b.dcm"), |obj| {
        obj.put(DataElement::new(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            PrimitiveValue::Strs(
                ["-235.199997", "-226.800003", "-129.690002"].map(String::from).to_vec().into(),
            ),
        ));
    });
    let study = load_series_folder(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(study.warnings.len(), 1, "{:?}", study.warnings);
    assert!(
        study.warnings[0].starts_with("non-uniform slice spacing: 1.000 to 2.000 mm"),
        "{}",
        study.warnings[0]
    );
    assert!(!study.warnings[0].contains('\n'));
}

#[test]
fn two_series_in_a_folder_are_listed_and_selectable() {
    let dir = tempfile::tempdir().unwrap();
    copy_series(dir.path());
    std::fs::copy(fixture("CT_small.dcm"), dir.path().join("other.dcm")).unwrap();
    let small_uid = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322";

    let listed = scan_folder(dir.path()).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].slice_count, 3);
    assert_eq!(listed[1].slice_count, 1);
    assert_eq!(listed[1].uid, small_uid);
    assert_eq!(listed[1].modality, "CT");

    let default = load_series_folder(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(default.volume.dims(), [3, 512, 512]);
    assert_eq!(default.series, listed);

    let chosen = LoadOptions { series_uid: Some(small_uid.into()) };
    let small = load_series_folder(dir.path(), &chosen).unwrap();
    assert_eq!(small.volume.dims(), [1, 128, 128]);
    assert_eq!(small.volume.min_max(), (-896.0, 1167.0));

    let unknown = LoadOptions { series_uid: Some("1.2.3.4".into()) };
    let err = load_series_folder(dir.path(), &unknown).unwrap_err().to_string();
    assert!(err.contains("1.2.3.4") && err.contains(small_uid) && err.contains(&listed[0].uid), "{err}");
    assert!(!err.contains('\n'));
}

#[test]
fn load_study_dispatches_folders_and_files() {
    let study = load_study(&fixture(DCMQI_SERIES), &LoadOptions::default()).unwrap();
    assert_eq!(study.volume.depth(), 3);
    let study = load_study(&fixture("CT_small.dcm"), &LoadOptions::default()).unwrap();
    assert_eq!(study.volume.depth(), 1);
}

// ---------------------------------------------------------------------------------------------
// Multi-frame

#[test]
fn multi_frame_seg_loads_one_slice_per_frame() {
    let study = load(&fixture("liver_seg.dcm"));
    let v = &study.volume;
    assert_eq!(v.dims(), [3, 512, 512]);
    assert_eq!(v.modality, Modality::Other("SEG".into()));
    assert_eq!(v.unit, Unit::Raw);
    let counts: Vec<usize> = (0..3).map(|z| v.slice(z).iter().filter(|&&x| x == 1.0).count()).collect();
    assert_eq!(counts, [36_233, 35_645, 35_220]);
    assert_eq!(v.min_max(), (0.0, 1.0));
    assert_eq!(v.spacing_mm, [1.0, 0.810547, 0.810547]);
    let a = v.affine.expect("per-frame positions and shared orientation");
    assert_eq!(a.origin_lps, [-235.2, -226.8, -128.69]);
    assert_eq!(study.series[0].slice_count, 3);
}

// ---------------------------------------------------------------------------------------------
// Bad input: one line naming the file, never a panic

#[test]
fn empty_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.dcm");
    std::fs::write(&path, b"").unwrap();
    assert_clean_error(&load_dicom_file(&path).unwrap_err(), &path, "empty file");
    assert_clean_error(&load_study(&path, &LoadOptions::default()).unwrap_err(), &path, "empty file");
}

#[test]
fn truncated_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("CT_small.dcm")).unwrap();
    for n in [100, 132, 200, 1000, 5000, bytes.len() / 2, bytes.len() - 7] {
        let path = dir.path().join(format!("truncated_{n}.dcm"));
        std::fs::write(&path, &bytes[..n]).unwrap();
        let err = load_dicom_file(&path).unwrap_err();
        assert_clean_error(&err, &path, "");
        println!("{n} bytes: {err}");
    }
}

#[test]
fn text_file_named_dcm_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.dcm");
    std::fs::write(&path, "This is a radiology report, not an image.\n".repeat(10)).unwrap();
    assert_clean_error(&load_dicom_file(&path).unwrap_err(), &path, "not a DICOM file");
}

#[test]
fn dicom_without_pixel_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_pixels.dcm");
    write_edited(&fixture("CT_small.dcm"), &path, |obj| {
        obj.remove_element(tags::PIXEL_DATA);
    });
    assert_clean_error(&load_dicom_file(&path).unwrap_err(), &path, "no pixel data");
}

#[test]
fn absurd_dimensions_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.dcm");
    write_edited(&fixture("CT_small.dcm"), &path, |obj| {
        obj.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(65535u16)));
        obj.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(65535u16)));
        obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from("1000")));
    });
    assert_clean_error(&load_dicom_file(&path).unwrap_err(), &path, "over the 4 GiB limit");
}

#[test]
fn mismatched_slice_sizes_in_a_series_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    copy_series(dir.path());
    let series_uid = open_file(fixture(DCMQI_SERIES).join("slice_a.dcm"))
        .unwrap()
        .element(tags::SERIES_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string();
    let odd = dir.path().join("slice_z_small.dcm");
    write_edited(&fixture("CT_small.dcm"), &odd, |obj| {
        obj.put(DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(series_uid.as_str()),
        ));
    });
    let err = load_series_folder(dir.path(), &LoadOptions::default()).unwrap_err();
    assert_clean_error(&err, &odd, "128 x 128");
}

#[test]
fn twelve_bit_jpeg_extended_is_an_unsupported_transfer_syntax() {
    let path = fixture("jpeg_extended_12bit.dcm");
    let err = load_dicom_file(&path).unwrap_err();
    println!("{err}");
    assert_clean_error(&err, &path, "unsupported transfer syntax 1.2.840.10008.1.2.4.51 (JPEG Extended");
}

#[test]
fn folders_without_dicom_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README"), "nothing here").unwrap();
    let err = load_series_folder(dir.path(), &LoadOptions::default()).unwrap_err();
    assert_clean_error(&err, dir.path(), "no readable DICOM image files");
    assert!(scan_folder(dir.path()).is_err());
}

// ---------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), so the parity test needs no extra dependency.

fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[test]
fn sha256_known_answer() {
    assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
