//! The viewer's support pieces: the in-app file browser and the series picker (egui_kittest, no
//! renderer needed), heatmap and mask load/save onto a study, and the papers' figure.
//!
//! Data is generated into temporary folders; DICOM series come from tests/fixtures/dicom.

use std::path::{Path, PathBuf};

use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use radlens::imaging::{Affine, Mask, Volume, WindowLevel};
use radlens::io::heatmap::{
    check_grid, load_heatmap, load_mask_onto, read_heatmap, save_heatmap, save_mask, GridFit, HeatmapData,
};
use radlens::io::series::{list_series, load_series_folder};
use radlens::io::{load_mask, nifti, npy, raster, LoadOptions};
use radlens::report::figure::{
    figure_layout, render_figure, save_figure, FigureError, FigureRow, FigureSpec, GreySlice, Panel,
    PanelOverlay, GT_COLOUR, OVERLAP_COLOUR, PRED_COLOUR,
};
use radlens::report::overlay::jet;
use radlens::ui::file_browser::{BrowsePurpose, BrowserAction, FileBrowser};
use radlens::ui::series_picker::{SeriesAction, SeriesPicker};

// ---------------------------------------------------------------------------------------------
// File browser

struct BrowserState {
    browser: FileBrowser,
    actions: Vec<BrowserAction>,
}

fn browser_harness(start: &Path, purpose: BrowsePurpose) -> Harness<'static, BrowserState> {
    harness_for(FileBrowser::new(start.to_path_buf(), purpose))
}

fn harness_for(browser: FileBrowser) -> Harness<'static, BrowserState> {
    let state = BrowserState { browser, actions: Vec::new() };
    // Short frames, so that two clicks a frame apart are a double-click (egui: within 0.3 s).
    Harness::builder().with_size([600.0, 500.0]).with_step_dt(1.0 / 60.0).build_ui_state(
        |ui, s: &mut BrowserState| {
            if let Some(a) = s.browser.show(ui) {
                s.actions.push(a);
            }
        },
        state,
    )
}

/// root/{case1/{scan.nii.gz, notes.txt, .hidden.png}, IM10, IM2, b.png, readme.txt}
fn browse_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case1");
    std::fs::create_dir(&case).unwrap();
    for f in ["scan.nii.gz", "notes.txt", ".hidden.png"] {
        std::fs::write(case.join(f), b"x").unwrap();
    }
    for f in ["IM10", "IM2", "b.png", "readme.txt"] {
        std::fs::write(dir.path().join(f), b"x").unwrap();
    }
    dir
}

/// Two clicks one frame apart (well inside egui's 0.3 s double-click window).
fn double_click<S>(h: &mut Harness<'_, S>, label: &str) {
    h.get_by_label(label).click();
    h.step();
    h.get_by_label(label).click();
    h.run();
}

fn names(b: &FileBrowser) -> Vec<String> {
    b.visible().iter().map(|e| e.name.clone()).collect()
}

#[test]
fn browser_lists_folders_first_in_natural_order_and_filters_by_purpose() {
    let dir = browse_tree();
    let mut b = FileBrowser::new(dir.path().to_path_buf(), BrowsePurpose::OpenStudy);
    assert_eq!(b.current_dir(), dir.path());
    assert!(b.error().is_none());
    // readme.txt is not a study; IM2 / IM10 may be DICOM files without extension.
    assert_eq!(names(&b), ["case1", "b.png", "IM2", "IM10"]);
    b.set_show_all_files(true);
    assert_eq!(names(&b), ["case1", "b.png", "IM2", "IM10", "readme.txt"]);
    let mut m = FileBrowser::new(dir.path().join("case1"), BrowsePurpose::OpenMask);
    assert_eq!(names(&m), ["scan.nii.gz"]);
    m.set_show_hidden(true);
    assert_eq!(names(&m), [".hidden.png", "scan.nii.gz"]);
}

#[test]
fn browser_double_click_enters_a_folder_and_open_picks_the_file() {
    let dir = browse_tree();
    let mut h = browser_harness(dir.path(), BrowsePurpose::OpenStudy);
    h.run();
    double_click(&mut h, "case1/");
    assert_eq!(h.state().browser.current_dir(), dir.path().join("case1"));
    assert!(h.query_by_label("notes.txt").is_none(), "non-study files are filtered out");
    h.get_by_label("scan.nii.gz").click();
    h.run();
    h.get_by_label("Open").click();
    h.run();
    assert_eq!(h.state().actions, vec![BrowserAction::Picked(dir.path().join("case1/scan.nii.gz"))]);
}

#[test]
fn browser_keyboard_moves_enters_goes_up_and_cancels() {
    let dir = browse_tree();
    let mut h = browser_harness(dir.path(), BrowsePurpose::OpenStudy);
    h.run();
    h.key_press(egui::Key::ArrowDown); // case1/
    h.run();
    assert_eq!(h.state().browser.selected().map(|e| e.name.clone()), Some("case1".to_string()));
    h.key_press(egui::Key::Enter);
    h.run();
    assert_eq!(h.state().browser.current_dir(), dir.path().join("case1"));
    h.key_press(egui::Key::Backspace);
    h.run();
    assert_eq!(h.state().browser.current_dir(), dir.path());
    // Back in the parent, the folder we came from is selected; two down is b.png, Enter picks it.
    assert_eq!(h.state().browser.selected().map(|e| e.name.clone()), Some("case1".to_string()));
    h.key_press(egui::Key::ArrowDown);
    h.run();
    h.key_press(egui::Key::Enter);
    h.run();
    assert_eq!(h.state().actions, vec![BrowserAction::Picked(dir.path().join("b.png"))]);
    h.key_press(egui::Key::Escape);
    h.run();
    assert_eq!(h.state().actions.last(), Some(&BrowserAction::Cancelled));
}

#[test]
fn browser_reports_unreadable_and_missing_folders_in_one_line_and_stays() {
    let dir = browse_tree();
    let mut h = browser_harness(dir.path(), BrowsePurpose::OpenStudy);
    h.run();
    // The folder disappears between listing and opening.
    std::fs::remove_dir_all(dir.path().join("case1")).unwrap();
    double_click(&mut h, "case1/");
    assert_eq!(h.state().browser.current_dir(), dir.path());
    let err = h.state().browser.error().unwrap().to_string();
    assert!(err.contains("no such file or folder") && err.contains("case1") && !err.contains('\n'), "{err}");
    assert!(h.query_by_label(&err).is_some(), "the message is shown in the window");

    // A path typed into the path field that does not exist.
    let missing = dir.path().join("nowhere");
    let field = h.get_by_role(egui::accesskit::Role::TextInput);
    assert_eq!(field.value(), Some(dir.path().display().to_string()));
    field.focus();
    field.type_text("/nowhere");
    h.run();
    h.key_press(egui::Key::Enter);
    h.run();
    assert_eq!(h.state().browser.current_dir(), dir.path());
    let err = h.state().browser.error().unwrap().to_string();
    assert_eq!(err, format!("no such folder: {}", missing.display()));

    // A folder without read permission (only meaningful when not running as root).
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut b = FileBrowser::new(dir.path().to_path_buf(), BrowsePurpose::OpenStudy);
    let entered = b.navigate(&locked);
    if std::fs::read_dir(&locked).is_err() {
        assert!(!entered);
        assert_eq!(b.current_dir(), dir.path());
        assert_eq!(b.error(), Some(format!("permission denied: {}", locked.display()).as_str()));
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();

    // A start folder that does not exist opens somewhere readable and says why.
    let b = FileBrowser::new(missing.clone(), BrowsePurpose::OpenStudy);
    assert!(b.current_dir().is_dir());
    assert!(b.error().unwrap().contains("nowhere"));
}

#[test]
fn browser_open_folder_picks_a_dicom_series_folder() {
    let dir = browse_tree();
    let mut h = browser_harness(dir.path(), BrowsePurpose::OpenStudy);
    h.run();
    h.get_by_label("case1/").click();
    h.run();
    h.get_by_label("Open folder").click();
    h.run();
    assert_eq!(h.state().actions, vec![BrowserAction::Picked(dir.path().join("case1"))]);
}

#[test]
fn browser_save_checks_the_extension_and_asks_before_replacing() {
    let dir = browse_tree();
    let browser =
        FileBrowser::new(dir.path().to_path_buf(), BrowsePurpose::SaveFigure).with_file_name("figure.jpg");
    let mut h = harness_for(browser);
    h.run();
    h.get_by_label("Save").click();
    h.run();
    assert!(h.state().actions.is_empty());
    assert_eq!(h.state().browser.error(), Some("the name must end in .png"));
    // Clicking an existing PNG names it; the first Save warns, the second replaces.
    h.get_by_label("b.png").click();
    h.run();
    h.get_by_label("Save").click();
    h.run();
    assert!(h.state().actions.is_empty());
    assert!(h.state().browser.error().unwrap().contains("exists"));
    h.get_by_label("Save").click();
    h.run();
    assert_eq!(h.state().actions, vec![BrowserAction::Picked(dir.path().join("b.png"))]);
}

// ---------------------------------------------------------------------------------------------
// Series picker

fn dicom_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom").join(name)
}

fn two_series_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["slice_a.dcm", "slice_b.dcm", "slice_c.dcm"] {
        std::fs::copy(dicom_fixture("series_shuffled").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::copy(dicom_fixture("CT_small.dcm"), dir.path().join("other.dcm")).unwrap();
    dir
}

#[test]
fn list_series_gives_size_and_spacing_matching_the_loaded_volumes() {
    let dir = two_series_folder();
    let series = list_series(dir.path()).unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].info.slice_count, 3);
    assert_eq!((series[0].rows, series[0].cols), (512, 512));
    assert_eq!((series[1].rows, series[1].cols), (128, 128));
    for s in &series {
        let opts = LoadOptions { series_uid: Some(s.info.uid.clone()) };
        let v = load_series_folder(dir.path(), &opts).unwrap().volume;
        assert_eq!(v.dims(), [s.info.slice_count, s.rows, s.cols]);
        let [ps_row, ps_col] = s.pixel_spacing_mm.unwrap();
        assert_eq!([ps_row, ps_col], [v.spacing_mm[1], v.spacing_mm[2]]);
        assert!((s.slice_spacing_mm.unwrap() - v.spacing_mm[0]).abs() < 1e-9, "{s:?} vs {:?}", v.spacing_mm);
    }
    let err = list_series(&dicom_fixture("ct1")).err().map(|e| e.to_string());
    assert!(err.is_none(), "ct1 folder lists: {err:?}");
    let empty = tempfile::tempdir().unwrap();
    let err = list_series(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no readable DICOM") && !err.contains('\n'), "{err}");
}

#[test]
fn series_picker_shows_each_series_and_loads_the_chosen_one() {
    let dir = two_series_folder();
    let picker = SeriesPicker::scan(dir.path()).unwrap();
    assert!(picker.needs_choice());
    let small = picker.series()[1].clone();
    let big = picker.series()[0].clone();
    assert_eq!(picker.selected().map(|s| s.info.uid.clone()), Some(big.info.uid.clone()));
    let mut h = Harness::builder().with_size([700.0, 400.0]).build_ui_state(
        |ui, s: &mut (SeriesPicker, Vec<SeriesAction>)| {
            if let Some(a) = s.0.show(ui) {
                s.1.push(a);
            }
        },
        (picker, Vec::new()),
    );
    h.run();
    assert!(h.query_by_label("512 x 512 x 3").is_some());
    assert!(h.query_by_label("128 x 128 x 1").is_some());
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(h.state().0.selected().map(|s| s.info.uid.clone()), Some(small.info.uid.clone()));
    h.get_by_label("Load series").click();
    h.run();
    assert_eq!(
        h.state().1,
        vec![SeriesAction::Load { folder: dir.path().to_path_buf(), uid: small.info.uid.clone() }]
    );
    h.get_by_label("Cancel").click();
    h.run();
    assert_eq!(h.state().1.last(), Some(&SeriesAction::Cancelled));
}

// ---------------------------------------------------------------------------------------------
// Heatmaps and masks onto a study

fn study(dims: [usize; 3]) -> Volume {
    let n: usize = dims.iter().product();
    let mut v = Volume::new((0..n).map(|i| i as f32).collect(), dims, [2.5, 0.7, 0.8]).unwrap();
    v.affine = Some(Affine {
        origin_lps: [-100.0, -120.0, 40.0],
        axes_lps: [[0.8, 0.0, 0.0], [0.0, 0.7, 0.0], [0.0, 0.0, 2.5]],
    });
    v
}

fn assert_one_line_naming(err: &str, file: &Path, parts: &[&str]) {
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(err.contains(&*name), "{err}");
    assert!(!err.contains('\n'), "{err:?}");
    for p in parts {
        assert!(err.contains(p), "expected {p:?} in {err}");
    }
}

#[test]
fn npy_heatmaps_round_trip_for_a_slice_and_a_volume() {
    let dir = tempfile::tempdir().unwrap();
    let vol = study([3, 4, 5]);
    let slice_map = HeatmapData::new((0..20).map(|i| i as f32 * 0.25 - 1.0).collect(), [1, 4, 5]).unwrap();
    let p = dir.path().join("slice.npy");
    save_heatmap(&p, &slice_map, &vol, 1).unwrap();
    let (_, shape) = npy::read_npy_f32(&p).unwrap();
    assert_eq!(shape, vec![4, 5], "a single-slice map is saved as (H, W)");
    let (back, fit) = load_heatmap(&p, &vol).unwrap();
    assert_eq!((back, fit), (slice_map, GridFit::Slice));

    let vol_map = HeatmapData::new((0..60).map(|i| (i as f32).sin()).collect(), [3, 4, 5]).unwrap();
    let q = dir.path().join("volume.npy");
    save_heatmap(&q, &vol_map, &vol, 0).unwrap();
    let (back, fit) = load_heatmap(&q, &vol).unwrap();
    assert_eq!(fit, GridFit::Volume);
    assert_eq!(back.slice(2), vol_map.slice(2));
    assert_eq!(back, vol_map);
}

#[test]
fn heatmap_on_the_wrong_grid_names_the_file_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cam_64.npy");
    npy::write_npy_f32(&p, &vec![0.5; 6 * 5], &[6, 5]).unwrap();
    let err = load_heatmap(&p, &study([1, 4, 5])).unwrap_err().to_string();
    assert_one_line_naming(&err, &p, &["heatmap is 5 x 6 x 1", "study is 5 x 4"]);
    let err = load_heatmap(&p, &study([3, 4, 5])).unwrap_err().to_string();
    assert_one_line_naming(&err, &p, &["heatmap is 5 x 6 x 1", "study is 5 x 4 x 3"]);
    // Two slices of a three-slice study fit neither way.
    let q = dir.path().join("two.npy");
    npy::write_npy_f32(&q, &vec![0.0; 40], &[2, 4, 5]).unwrap();
    assert!(load_heatmap(&q, &study([3, 4, 5])).is_err());
    // Saving checks too.
    let map = HeatmapData::new(vec![0.0; 30], [1, 6, 5]).unwrap();
    let err = save_heatmap(&dir.path().join("out.npy"), &map, &study([1, 4, 5]), 0).unwrap_err().to_string();
    assert!(err.contains("out.npy") && err.contains("5 x 6"), "{err}");
    // A 4-D array and NaN values are refused.
    let r = dir.path().join("4d.npy");
    npy::write_npy_f32(&r, &vec![0.0; 8], &[2, 2, 1, 2]).unwrap();
    assert_one_line_naming(&read_heatmap(&r).unwrap_err().to_string(), &r, &["shape [2, 2, 1, 2]"]);
    let s = dir.path().join("nan.npy");
    npy::write_npy_f32(&s, &[0.0, f32::NAN], &[1, 2]).unwrap();
    assert_one_line_naming(&read_heatmap(&s).unwrap_err().to_string(), &s, &["NaN"]);
    assert_eq!(check_grid([1, 4, 5], &study([3, 4, 5]), &s, "mask").unwrap(), GridFit::Slice);
}

#[test]
fn nifti_heatmaps_keep_values_and_the_study_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let vol = study([3, 4, 5]);
    let map = HeatmapData::new((0..20).map(|i| i as f32 / 7.0 - 0.5).collect(), [1, 4, 5]).unwrap();
    for name in ["slice.nii", "slice.nii.gz"] {
        let p = dir.path().join(name);
        save_heatmap(&p, &map, &vol, 2).unwrap();
        let (back, fit) = load_heatmap(&p, &vol).unwrap();
        assert_eq!(fit, GridFit::Slice);
        assert_eq!(back.values, map.values);
        // Placed on slice 2 of the study.
        let as_volume = nifti::load_nifti(&p).unwrap();
        let a = as_volume.affine.unwrap();
        let want = vol.affine.unwrap().position(0.0, 0.0, 2.0);
        for k in 0..3 {
            assert!((a.origin_lps[k] - want[k]).abs() < 1e-3, "{:?} vs {want:?}", a.origin_lps);
        }
        assert!((as_volume.spacing_mm[1] - 0.7).abs() < 1e-5);
    }
    let whole = HeatmapData::new((0..60).map(|i| i as f32).collect(), [3, 4, 5]).unwrap();
    let q = dir.path().join("whole.nii.gz");
    save_heatmap(&q, &whole, &vol, 0).unwrap();
    assert_eq!(load_heatmap(&q, &vol).unwrap().0, whole);
    let err = save_heatmap(&dir.path().join("x.tif"), &whole, &vol, 0).unwrap_err().to_string();
    assert!(err.contains("x.tif") && err.contains(".npy"), "{err}");
}

#[test]
fn png_heatmaps_scale_by_bit_depth_and_colour_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let vol = study([1, 2, 3]);
    let p8 = dir.path().join("h8.png");
    raster::write_png_u8(&p8, 3, 2, &[0, 51, 102, 153, 204, 255]).unwrap();
    let (m, fit) = load_heatmap(&p8, &vol).unwrap();
    assert_eq!(fit, GridFit::Volume);
    assert_eq!(m.values, vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);

    let p16 = dir.path().join("h16.png");
    let img =
        image::ImageBuffer::<image::Luma<u16>, _>::from_raw(3, 2, vec![0u16, 65535, 13107, 0, 0, 65535])
            .unwrap();
    img.save(&p16).unwrap();
    let (m, _) = load_heatmap(&p16, &vol).unwrap();
    assert_eq!(m.values, vec![0.0, 1.0, 0.2, 0.0, 0.0, 1.0]);

    let pc = dir.path().join("jet.png");
    raster::write_png_rgb(&pc, 3, 2, &[0, 0, 128, 0, 0, 255, 0, 255, 255, 255, 255, 0, 255, 0, 0, 128, 0, 0])
        .unwrap();
    assert_one_line_naming(&load_heatmap(&pc, &vol).unwrap_err().to_string(), &pc, &["colour image"]);
    let err = load_heatmap(&p8, &study([1, 3, 3])).unwrap_err().to_string();
    assert_one_line_naming(&err, &p8, &["heatmap is 3 x 2 x 1", "study is 3 x 3"]);
}

#[test]
fn predicted_masks_save_as_png_0_255_and_nifti_labels_and_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let vol = study([3, 4, 5]);
    let labels: Vec<u16> = (0..20)
        .map(|i| {
            if i % 3 == 0 {
                1
            } else if i % 7 == 0 {
                2
            } else {
                0
            }
        })
        .collect();
    let slice_mask = Mask::new(labels.clone(), [1, 4, 5]).unwrap();
    let png = dir.path().join("pred.png");
    save_mask(&png, &slice_mask, &vol, 1).unwrap();
    let grey = raster::load_raster(&png).unwrap();
    assert!(grey.data().iter().all(|&v| v == 0.0 || v == 255.0));
    let (back, fit) = load_mask_onto(&png, &vol).unwrap();
    assert_eq!(fit, GridFit::Slice);
    let want: Vec<u16> = labels.iter().map(|&l| (l != 0) as u16).collect();
    assert_eq!(back.labels(), want.as_slice());

    let nii = dir.path().join("pred.nii.gz");
    save_mask(&nii, &slice_mask, &vol, 2).unwrap();
    let (back, _) = load_mask_onto(&nii, &vol).unwrap();
    assert_eq!(back, slice_mask, "NIfTI keeps the labels");

    let full = Mask::new((0..60).map(|i| (i % 4) as u16).collect(), [3, 4, 5]).unwrap();
    let nii3 = dir.path().join("pred3.nii");
    save_mask(&nii3, &full, &vol, 0).unwrap();
    assert_eq!(load_mask(&nii3).unwrap(), full);
    let err = save_mask(&dir.path().join("pred3.png"), &full, &vol, 0).unwrap_err().to_string();
    assert!(err.contains("pred3.png") && err.contains("one slice"), "{err}");
    assert!(!dir.path().join("pred3.png").exists());

    let wrong = Mask::new(vec![0; 12], [1, 3, 4]).unwrap();
    let err = save_mask(&dir.path().join("w.png"), &wrong, &vol, 0).unwrap_err().to_string();
    assert_one_line_naming(&err, Path::new("w.png"), &["mask is 4 x 3 x 1", "study is 5 x 4 x 3"]);
    let err = load_mask_onto(&png, &study([1, 5, 4])).unwrap_err().to_string();
    assert_one_line_naming(&err, &png, &["mask is 5 x 4 x 1", "study is 4 x 5"]);
}

// ---------------------------------------------------------------------------------------------
// The papers' figure

const N: usize = 32;

fn flat_slice(value: f32) -> GreySlice {
    GreySlice { values: vec![value; N * N], width: N, height: N, window: WindowLevel::new(0.0, 200.0) }
}

fn small_spec() -> FigureSpec {
    // GT: left half; prediction: top half → overlap top-left, GT only bottom-left, prediction only top-right.
    let gt: Vec<bool> = (0..N * N).map(|i| i % N < N / 2).collect();
    let pred: Vec<bool> = (0..N * N).map(|i| i / N < N / 2).collect();
    // Heatmap rising left to right: x / (N-1) after scaling; threshold 0.5.
    let heat: Vec<f32> = (0..N * N).map(|i| (i % N) as f32 * 2.0 - 3.0).collect();
    FigureSpec {
        rows: vec![FigureRow {
            label: Some("Case 1".into()),
            cells: vec![
                Panel { image: flat_slice(0.0), overlay: PanelOverlay::None },
                Panel {
                    image: flat_slice(0.0),
                    overlay: PanelOverlay::Masks { ground_truth: Some(gt), prediction: Some(pred) },
                },
                Panel {
                    image: flat_slice(0.0),
                    overlay: PanelOverlay::Heatmap { values: heat, threshold: Some(0.5), alpha: 0.5 },
                },
            ],
        }],
        column_captions: vec!["Original".into(), "GT vs prediction".into(), "Grad-CAM++".into()],
        cell_size: N as u32,
        ..FigureSpec::default()
    }
}

#[test]
fn figure_cells_show_grey_mask_colours_and_thresholded_jet() {
    let spec = small_spec();
    let layout = figure_layout(&spec).unwrap();
    let img = render_figure(&spec).unwrap();
    assert_eq!(img.dimensions(), (layout.width, layout.height));
    let g = WindowLevel::new(0.0, 200.0).to_u8(0.0);
    assert!((126..=129).contains(&g), "mid grey {g}");
    let mix = |c: [u8; 3]| c.map(|c| ((g as f32 + c as f32) * 0.5).round() as u8);
    let at = |col: usize, x: usize, y: usize| {
        let r = layout.panels[0][col];
        assert_eq!((r.width, r.height), (N as u32, N as u32));
        img.get_pixel(r.x + x as u32, r.y + y as u32).0
    };
    assert_eq!(at(0, 5, 5), [g; 3]);
    assert_eq!(at(1, 3, 3), mix(OVERLAP_COLOUR), "overlap is yellow");
    assert_eq!(at(1, 3, N - 3), mix(GT_COLOUR), "ground truth only is green");
    assert_eq!(at(1, N - 3, 3), mix(PRED_COLOUR), "prediction only is red");
    assert_eq!(at(1, N - 3, N - 3), [g; 3]);
    assert_eq!(at(2, 0, 0), [g; 3], "below the threshold stays grey");
    assert_eq!(at(2, N - 1, 7), mix(jet(1.0)), "the maximum is dark red at 50%");
    let t = 20.0 / (N - 1) as f32;
    assert_eq!(at(2, 20, 7), mix(jet(t)));
}

fn dark_pixels(img: &image::RgbImage, r: radlens::report::figure::PixelRect) -> usize {
    let mut n = 0;
    for y in r.y..r.y + r.height {
        for x in r.x..r.x + r.width {
            let p = img.get_pixel(x, y).0;
            if p.iter().map(|&c| c as u32).sum::<u32>() < 300 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn figure_has_captions_row_labels_and_a_legend() {
    let spec = small_spec();
    let layout = figure_layout(&spec).unwrap();
    let img = render_figure(&spec).unwrap();
    // Text in the caption band above each column.
    for col in 0..3 {
        let cell = layout.cells[0][col];
        let band = radlens::report::figure::PixelRect {
            x: cell.x,
            y: layout.caption_band.y,
            width: cell.width,
            height: layout.caption_band.height,
        };
        assert!(dark_pixels(&img, band) > 10, "caption of column {col} is missing");
    }
    assert!(layout.label_column.width > 0);
    assert!(dark_pixels(&img, layout.label_column) > 10, "row label missing");
    // The legend holds the three mask colours and the jet bar.
    let legend = layout.legend_band;
    assert!(legend.height > 0);
    let colours: Vec<[u8; 3]> = (legend.y..legend.y + legend.height)
        .flat_map(|y| (legend.x..legend.x + legend.width).map(move |x| (x, y)))
        .map(|(x, y)| img.get_pixel(x, y).0)
        .collect();
    for want in [GT_COLOUR, PRED_COLOUR, OVERLAP_COLOUR, jet(0.0), jet(1.0)] {
        assert!(colours.contains(&want), "legend lacks {want:?}");
    }
    // Without captions or overlays there is no caption band and no legend.
    let plain = FigureSpec {
        rows: vec![FigureRow {
            label: None,
            cells: vec![Panel { image: flat_slice(10.0), overlay: PanelOverlay::None }],
        }],
        cell_size: 16,
        ..FigureSpec::default()
    };
    let l = figure_layout(&plain).unwrap();
    assert_eq!((l.caption_band.height, l.legend_band.height, l.label_column.width), (0, 0, 0));
    assert_eq!((l.width, l.height), (16 + 16, 16 + 16));
}

#[test]
fn figure_resizes_panels_keeping_aspect_and_rejects_bad_specs() {
    let wide = GreySlice {
        values: vec![50.0; 64 * 32],
        width: 64,
        height: 32,
        window: WindowLevel::new(0.0, 200.0),
    };
    let spec = FigureSpec {
        rows: vec![FigureRow {
            label: None,
            cells: vec![
                Panel { image: wide.clone(), overlay: PanelOverlay::None },
                Panel { image: flat_slice(0.0), overlay: PanelOverlay::None },
            ],
        }],
        cell_size: 32,
        ..FigureSpec::default()
    };
    let l = figure_layout(&spec).unwrap();
    assert_eq!((l.panels[0][0].width, l.panels[0][0].height), (32, 16), "64x32 fits a 32-wide cell as 32x16");
    assert_eq!(l.cells[0][0].height, 32, "the row is as tall as its tallest panel");
    let img = render_figure(&spec).unwrap();
    let p = l.panels[0][0];
    let g = WindowLevel::new(0.0, 200.0).to_u8(50.0);
    assert_eq!(img.get_pixel(p.x + 10, p.y + 8).0, [g; 3]);
    assert_eq!(img.get_pixel(p.x + 10, l.cells[0][0].y + 1).0, [0, 0, 0], "letterbox is black");

    let mut bad = small_spec();
    if let PanelOverlay::Masks { ground_truth, .. } = &mut bad.rows[0].cells[1].overlay {
        *ground_truth = Some(vec![true; 5]);
    }
    let err = render_figure(&bad).unwrap_err();
    assert!(matches!(err, FigureError::BadPanel { row: 0, col: 1, .. }), "{err}");
    assert!(err.to_string().contains("ground truth mask has 5 pixels"), "{err}");
    assert!(matches!(render_figure(&FigureSpec::default()), Err(FigureError::Empty)));
}

#[test]
fn figure_is_saved_atomically_as_png() {
    let dir = tempfile::tempdir().unwrap();
    let spec = small_spec();
    let path = dir.path().join("figure.png");
    std::fs::write(&path, b"old").unwrap();
    save_figure(&path, &spec).unwrap();
    let back = image::open(&path).unwrap().to_rgb8();
    assert_eq!(back, render_figure(&spec).unwrap());
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, vec![std::ffi::OsString::from("figure.png")], "no temporary file left behind");
    // A bad spec leaves the previous file untouched.
    let mut bad = small_spec();
    bad.rows[0].cells[0].image.values.pop();
    assert!(save_figure(&path, &bad).is_err());
    assert_eq!(image::open(&path).unwrap().to_rgb8(), back);
    // A missing folder is a one-line error naming the file.
    let err = save_figure(&dir.path().join("no/such/fig.png"), &spec).unwrap_err().to_string();
    assert!(err.contains("fig.png") && !err.contains('\n'), "{err}");
}
