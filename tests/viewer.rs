//! The viewer, headless: egui_kittest with the wgpu renderer (Mesa's software rasteriser in CI).
//! Known-pixel checks of the WGSL slice shader, snapshots of the single viewer, the compare grid and
//! the metrics panel, and interaction tests (wheel, right-drag, Ctrl+wheel, keys, worker results,
//! cancellation, a corrupt file, the superpixel picker, drag and drop, the series picker window, recent
//! files, the cursor readout, orientation letters, the scale bar, choosing a model, stability figures).
//! `UPDATE_SNAPSHOTS=1` rewrites tests/snapshots/.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui::{self, Pos2, Rect, Vec2};
use eframe::egui_wgpu;
use egui_kittest::kittest::Queryable;
use egui_kittest::wgpu::WgpuTestRenderer;
use egui_kittest::Harness;
use radlens::app::{AppOptions, ViewerApp};
use radlens::imaging::{Mask, Unit, Volume, WindowLevel};
use radlens::metrics::segmentation_scores;
use radlens::render::{new_source_id, HeatLayer, MaskLayer, SliceLayers, SliceStyle};
use radlens::ui::grid::{Layout, PanelContent};
use radlens::ui::metrics::{metrics_panel, MetricsView, ThresholdChoice};
use radlens::ui::viewer::{slice_view, Legend, PanelPaint, ViewState};
use radlens::ui::{Command, Document, PredictionMask};

fn renderer() -> WgpuTestRenderer {
    let rs = egui_kittest::wgpu::create_render_state(
        egui_kittest::wgpu::default_wgpu_setup(),
        egui_wgpu::RendererOptions::PREDICTABLE,
    );
    radlens::render::install(&rs);
    WgpuTestRenderer::from_render_state(rs)
}

fn fixture_model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name).join("model.toml")
}

/// A (depth, 40, 40) HU volume: left half -1000 (air), right half +1000, slice z adds 10·z.
fn halves(depth: usize) -> Volume {
    let (h, w) = (40, 40);
    let mut data = Vec::with_capacity(depth * h * w);
    for z in 0..depth {
        for _y in 0..h {
            for x in 0..w {
                data.push(if x < w / 2 { -1000.0 } else { 1000.0 } + 10.0 * z as f32);
            }
        }
    }
    let mut v = Volume::new(data, [depth, h, w], [2.0, 1.0, 1.0]).unwrap();
    v.unit = Unit::Hu;
    v
}

/// A box mask on every slice: rows y0..y1, columns x0..x1.
fn box_mask(depth: usize, y0: usize, y1: usize, x0: usize, x1: usize) -> Mask {
    let mut labels = vec![0u16; depth * 40 * 40];
    for z in 0..depth {
        for y in y0..y1 {
            for x in x0..x1 {
                labels[(z * 40 + y) * 40 + x] = 1;
            }
        }
    }
    Mask::new(labels, [depth, 40, 40]).unwrap()
}

struct Single {
    view: ViewState,
    layers: SliceLayers,
    style: SliceStyle,
}

/// One slice view filling a 200×200 harness: image pixel (x, y) covers screen [5x, 5x+5) × [5y, 5y+5).
fn single_harness(single: Single) -> Harness<'static, Single> {
    Harness::builder().with_size(Vec2::new(200.0, 200.0)).renderer(renderer()).build_ui_state(
        |ui, s: &mut Single| {
            let rect = Rect::from_min_size(Pos2::ZERO, Vec2::new(200.0, 200.0));
            let _ = slice_view(
                ui,
                rect,
                &mut s.view,
                PanelPaint {
                    panel: 1,
                    layers: s.layers.clone(),
                    style: s.style,
                    caption: "",
                    legend: Legend::None,
                    status: None,
                },
            );
        },
        single,
    )
}

fn single(depth: usize) -> Single {
    let volume = Arc::new(halves(depth));
    let view = ViewState { slice: 0, zoom: 1.0, pan: Vec2::ZERO, window: WindowLevel::new(0.0, 1000.0) };
    Single {
        view,
        layers: SliceLayers {
            volume_source: new_source_id(),
            volume,
            z: 0,
            gt: None,
            pred: None,
            heat: None,
            superpixels: None,
        },
        style: SliceStyle { mask_opacity: 1.0, ..SliceStyle::default() },
    }
}

fn px(img: &image::RgbaImage, x: u32, y: u32) -> [u8; 3] {
    let p = img.get_pixel(x, y).0;
    [p[0], p[1], p[2]]
}

fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    a.iter().zip(b).all(|(x, y)| (*x as i32 - y as i32).abs() <= tol)
}

#[test]
fn shader_applies_window_masks_and_heatmap_threshold() {
    let mut s = single(2);
    let depth = 2;
    // GT rows 0..20 × cols 0..20 (green); prediction rows 10..30 × cols 10..30 (red); overlap yellow.
    s.layers.gt = Some(MaskLayer { source: new_source_id(), mask: Arc::new(box_mask(depth, 0, 20, 0, 20)) });
    s.layers.pred =
        Some(MaskLayer { source: new_source_id(), mask: Arc::new(box_mask(depth, 10, 30, 10, 30)) });
    let mut h = single_harness(s);
    h.run();
    let img = h.render().unwrap();
    // Image pixel (x, y) → screen centre (5x+2, 5y+2) at 1 point per pixel.
    let at = |x: u32, y: u32| px(&img, 5 * x + 2, 5 * y + 2);
    assert!(close(at(5, 5), [0, 255, 0], 2), "GT only: {:?}", at(5, 5));
    assert!(close(at(15, 15), [255, 255, 0], 2), "overlap: {:?}", at(15, 15));
    assert!(close(at(25, 25), [255, 0, 0], 2), "prediction only: {:?}", at(25, 25));
    // Outside the masks: window W 1000 / L 0 → -1000 HU black, +1000 HU white.
    assert!(close(at(5, 35), [0, 0, 0], 2), "air: {:?}", at(5, 35));
    assert!(close(at(35, 12), [255, 255, 255], 2), "bone: {:?}", at(35, 12));

    // Contour-only: the inside of the GT box is plain image again, its edge is still green.
    h.state_mut().style.contour_only = true;
    h.run();
    let img = h.render().unwrap();
    assert!(close(px(&img, 5 * 5 + 2, 5 * 5 + 2), [0, 0, 0], 2), "contour inside: {:?}", px(&img, 27, 27));
    assert!(close(px(&img, 5 * 5 + 2, 0), [0, 255, 0], 2), "contour edge: {:?}", px(&img, 27, 0));

    // A heatmap = x / 39: threshold 0.5 hides the left half, opacity 1 shows jet on the right.
    let s = h.state_mut();
    s.style.contour_only = false;
    s.layers.gt = None;
    s.layers.pred = None;
    let values: Vec<f32> = (0..40 * 40).map(|i| (i % 40) as f32 / 39.0).collect();
    s.layers.heat = Some(HeatLayer {
        source: new_source_id(),
        values: Arc::new(values),
        min: 0.0,
        max: 1.0,
        signed: false,
    });
    s.style.heat_opacity = 1.0;
    s.style.heat_threshold = 0.5;
    h.run();
    let img = h.render().unwrap();
    assert!(close(px(&img, 5 * 10 + 2, 100), [0, 0, 0], 2), "below threshold: {:?}", px(&img, 52, 100));
    let right = px(&img, 5 * 39 + 2, 100);
    assert!(close(right, [128, 0, 0], 6), "jet(1) = dark red: {right:?}");
}

#[test]
fn single_viewer_snapshot() {
    let mut s = single(3);
    s.layers.gt = Some(MaskLayer { source: new_source_id(), mask: Arc::new(box_mask(3, 8, 24, 6, 26)) });
    s.style.mask_opacity = 0.45;
    let mut h = single_harness(s);
    h.run();
    h.snapshot("single_viewer");
}

fn wheel(h: &Harness<'_, impl Sized>, lines: f32, ctrl: bool) {
    let modifiers = if ctrl { egui::Modifiers::CTRL } else { egui::Modifiers::NONE };
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Line,
        delta: Vec2::new(0.0, lines),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers,
    });
}

#[test]
fn wheel_changes_slice_ctrl_wheel_zooms_about_the_cursor() {
    let mut h = single_harness(single(5));
    h.hover_at(Pos2::new(100.0, 100.0));
    h.run();
    wheel(&h, -1.0, false);
    h.run();
    assert_eq!(h.state().view.slice, 1);
    wheel(&h, -3.0, false);
    h.run();
    assert_eq!(h.state().view.slice, 4);
    wheel(&h, 10.0, false);
    h.run();
    assert_eq!(h.state().view.slice, 0);
    // The rendered slice follows: slice 4 is 40 HU brighter on the left; with W 100 / L -980 the left
    // half goes from grey (slice 0: -1000 HU) to brighter.
    h.state_mut().view.window = WindowLevel::new(-980.0, 100.0);
    h.run();
    let dark = px(&h.render().unwrap(), 40, 100)[0];
    h.state_mut().view.slice = 4;
    h.run();
    let bright = px(&h.render().unwrap(), 40, 100)[0];
    assert!(bright > dark + 50, "slice 0 grey {dark}, slice 4 grey {bright}");

    let cursor = Pos2::new(150.0, 60.0);
    h.hover_at(cursor);
    h.run();
    let rect = Rect::from_min_size(Pos2::ZERO, Vec2::new(200.0, 200.0));
    let volume = h.state().layers.volume.clone();
    let before = h.state().view.transform(rect, &volume).to_image(cursor);
    wheel(&h, 2.0, true);
    h.run();
    let v = h.state().view;
    assert!(v.zoom > 1.2, "zoom {}", v.zoom);
    let after = v.transform(rect, &volume).to_image(cursor);
    assert!((before - after).length() < 0.01, "point under the cursor moved: {before:?} → {after:?}");
    assert_eq!(v.slice, 4, "Ctrl+wheel must not change the slice");
}

#[test]
fn right_drag_changes_window_and_left_drag_pans() {
    let mut h = single_harness(single(1));
    h.run();
    let w0 = h.state().view.window;
    let start = Pos2::new(100.0, 100.0);
    h.hover_at(start);
    h.run();
    let press = |h: &Harness<'_, Single>, pos: Pos2, button: egui::PointerButton, pressed: bool| {
        h.event(egui::Event::PointerButton { pos, button, pressed, modifiers: egui::Modifiers::NONE })
    };
    press(&h, start, egui::PointerButton::Secondary, true);
    h.step();
    for i in 1..=5 {
        h.hover_at(start + Vec2::new(12.0 * i as f32, -6.0 * i as f32));
        h.step();
    }
    press(&h, start + Vec2::new(60.0, -30.0), egui::PointerButton::Secondary, false);
    h.run();
    let w1 = h.state().view.window;
    assert!(w1.width > w0.width, "width {} → {}", w0.width, w1.width);
    assert!(w1.center < w0.center, "level {} → {}", w0.center, w1.center);
    assert_eq!(h.state().view.pan, Vec2::ZERO, "a right-drag must not pan");

    press(&h, start, egui::PointerButton::Primary, true);
    h.step();
    for i in 1..=4 {
        h.hover_at(start + Vec2::new(10.0 * i as f32, 0.0));
        h.step();
    }
    press(&h, start + Vec2::new(40.0, 0.0), egui::PointerButton::Primary, false);
    h.run();
    // 5 points per pixel: dragging 40 points right moves the image 8 pixels right.
    let pan = h.state().view.pan;
    assert!((pan.x + 8.0).abs() < 2.5 && pan.y.abs() < 0.5, "pan {pan:?}");
    assert_eq!(h.state().view.window, w1, "a left-drag must not change the window");
}

/// The app with no settings file, no built-in models, no native dialogs.
fn app_options(model: Option<PathBuf>, auto_compute: bool) -> AppOptions {
    AppOptions {
        open: None,
        mask: None,
        model: model.map(|m| m.display().to_string()),
        builtin_dir: PathBuf::from("/nonexistent/radlens-no-builtin-models"),
        settings: None,
        auto_compute,
        dialogs: false,
    }
}

fn app_harness(app: ViewerApp, size: Vec2) -> Harness<'static, ViewerApp> {
    Harness::builder()
        .with_size(size)
        .renderer(renderer())
        .build_ui_state(|ui, app: &mut ViewerApp| app.ui(ui), app)
}

/// Steps until `done` holds (the worker and loader run on their own threads).
fn wait_until(h: &mut Harness<'_, ViewerApp>, what: &str, done: impl Fn(&ViewerApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "timed out waiting for {what}; errors: {:?}",
            h.state().errors
        );
        std::thread::sleep(Duration::from_millis(20));
        h.step();
    }
    h.run();
}

#[test]
fn compare_grid_snapshot_with_overlays() {
    let mut app = ViewerApp::new(app_options(None, false));
    // A 4-slice study with GT, a shifted prediction and a loaded heatmap: deterministic overlays.
    let mut doc = Document::new("synthetic".into(), None, halves(4));
    doc.add_mask("infection".into(), box_mask(4, 8, 24, 6, 26));
    let pred = box_mask(4, 14, 30, 12, 32);
    doc.prediction = Some(PredictionMask {
        model: "fixture".into(),
        source: new_source_id(),
        mask: Arc::new(pred),
        slices: (0..4).collect(),
        threshold: 0.5,
    });
    app.open_document(doc);
    let dir = tempfile::tempdir().unwrap();
    let heat = dir.path().join("map.npy");
    let values: Vec<f32> = (0..4 * 40 * 40)
        .map(|i| {
            let (y, x) = ((i / 40) % 40, i % 40);
            (-(((x as f32 - 20.0).powi(2) + (y as f32 - 16.0).powi(2)) / 60.0)).exp()
        })
        .collect();
    ndarray_npy::write_npy(&heat, &ndarray::Array3::from_shape_vec((4, 40, 40), values).unwrap()).unwrap();
    app.execute(Command::OpenHeatmap(heat));
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    app.grid.set_layout(Layout::TwoByTwo);
    app.grid.panels[2].content = PanelContent::Heatmap("file: map.npy".into());
    app.grid.panels[3].content = PanelContent::Heatmap("gradcam++".into());
    let mut h = app_harness(app, Vec2::new(1100.0, 640.0));
    h.run();
    h.snapshot("compare_grid");
    let app = h.state();
    assert_eq!(app.doc.heatmaps.len(), 4, "one plane per slice");
    // The panels say why a map is missing rather than showing nothing.
    let z = app.grid.view(3).slice;
    let status = app.panel_data(&PanelContent::Heatmap("gradcam++".into()), z).status.unwrap_or_default();
    assert!(status.contains("no model installed"), "{status}");
    let loaded = app.panel_data(&PanelContent::Heatmap("file: map.npy".into()), z);
    assert!(loaded.heat.is_some() && loaded.status.is_none());
    assert!(h.query_all_by_label_contains("No model installed").count() >= 1);
    // The metrics panel scores the loaded map against the ground truth (metrics::localization).
    assert_eq!(h.query_all_by_label_contains("file: map.npy: IoU").count(), 1);
}

#[test]
fn linked_views_move_together_and_unlinked_do_not() {
    let mut app = ViewerApp::new(app_options(None, false));
    app.open_document(Document::new("synthetic".into(), None, halves(6)));
    app.grid.set_layout(Layout::OneByTwo);
    let mut h = app_harness(app, Vec2::new(1100.0, 500.0));
    h.run();
    h.key_press(egui::Key::ArrowDown);
    h.run();
    assert_eq!(h.state().grid.view(0).slice, 4);
    assert_eq!(h.state().grid.view(1).slice, 4);
    h.key_press(egui::Key::Num3);
    h.run();
    assert_eq!(h.state().grid.view(1).window, radlens::imaging::WindowPreset::Bone.window());
    h.state_mut().grid.set_linked(false);
    h.state_mut().grid.active = 0;
    h.key_press(egui::Key::ArrowUp);
    h.run();
    assert_eq!((h.state().grid.view(0).slice, h.state().grid.view(1).slice), (3, 4));
    h.key_press(egui::Key::R);
    h.run();
    assert_ne!(h.state().grid.view(0).window, radlens::imaging::WindowPreset::Bone.window());
}

#[test]
fn metrics_panel_snapshot_shows_the_scores() {
    let gt = box_mask(1, 8, 24, 6, 26);
    let pred = box_mask(1, 14, 30, 12, 32);
    let g: Vec<bool> = gt.labels().iter().map(|&l| l != 0).collect();
    let p: Vec<bool> = pred.labels().iter().map(|&l| l != 0).collect();
    let scores = segmentation_scores(&p, &g, [1, 40, 40], [1.0; 3]).unwrap();
    // Known answer: 10×14 overlap of two 16×20 boxes: Dice = 2·140 / 640.
    assert!((scores.dice - 280.0 / 640.0).abs() < 1e-12);
    let view = MetricsView {
        slice: Some(Ok(scores)),
        volume: Some(Ok((scores, 1))),
        heatmaps: vec![("Grad-CAM++".into(), Err("no map on this slice".into()))],
        note: None,
    };
    let mut h = Harness::builder().with_size(Vec2::new(360.0, 220.0)).renderer(renderer()).build_ui_state(
        move |ui, t: &mut ThresholdChoice| {
            let _ = metrics_panel(ui, &view, t);
        },
        ThresholdChoice::Otsu,
    );
    h.run();
    // Dice = precision = recall = 0.4375 here, on the slice and the volume rows.
    assert_eq!(h.query_all_by_label("0.438").count(), 6);
    assert_eq!(h.query_all_by_label("0.280").count(), 2, "IoU = 140 / 500");
    h.snapshot("metrics_panel");
}

#[test]
fn worker_results_appear_in_their_panels() {
    let mut app = ViewerApp::new(app_options(Some(fixture_model("unet")), false));
    // Few LIME samples keep the test quick; the default is 1000.
    app.controls.params.entry("lime".into()).or_default().samples = 64;
    let mut h = app_harness(app, Vec2::new(1100.0, 640.0));
    h.run();
    assert!(h.state().doc.prediction.is_none());
    h.state_mut().execute(Command::ComputeVisible);
    assert_eq!(h.state().pending_jobs(), 3, "prediction + Grad-CAM++ + LIME");
    h.step();
    wait_until(&mut h, "the jobs", |a| a.pending_jobs() == 0);
    let app = h.state();
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    let pred = app.doc.prediction.as_ref().expect("prediction");
    assert!(pred.slices.contains(&0));
    let model = app.model.clone().unwrap();
    for method in ["gradcam++", "lime"] {
        let key = app.controls.params_for(method).key();
        let map = app.doc.heatmap(method, &model, &key, 0).unwrap_or_else(|| panic!("{method} map missing"));
        assert_eq!(map.values.len(), app.doc.volume.height() * app.doc.volume.width());
        assert!(map.max > map.min, "{method}: flat map");
    }
    // LIME comes with its superpixels; the panels no longer say "computing".
    assert!(app
        .doc
        .heatmap("lime", &model, &app.controls.params_for("lime").key(), 0)
        .unwrap()
        .superpixels
        .is_some());
    for method in ["gradcam++", "lime"] {
        let d = app.panel_data(&PanelContent::Heatmap(method.into()), 0);
        assert!(d.heat.is_some() && d.status.is_none(), "{method}: {:?}", d.status);
    }
    assert!(app.panel_data(&PanelContent::Masks, 0).status.is_none());
    // Asking again is served from the cache: nothing is queued.
    h.state_mut().execute(Command::ComputeVisible);
    assert_eq!(h.state().pending_jobs(), 0);

    // The superpixel algorithm is a LIME parameter in the side panel; a new choice is a new map with
    // its own superpixels, and the quickshift map stays cached beside it.
    let quickshift_key = h.state().controls.params_for("lime").key();
    h.state_mut().controls.method = "lime".into();
    h.run();
    h.get_by_label_contains("Parameters: ").click();
    h.run();
    h.get_by_label("Superpixels").click();
    h.run();
    h.get_by_label("slic").click();
    h.run();
    assert_eq!(h.state().controls.params_for("lime").superpixels, "slic");
    let slic_key = h.state().controls.params_for("lime").key();
    assert_ne!(slic_key, quickshift_key);
    h.state_mut().execute(Command::Explain { method: "lime".into() });
    wait_until(&mut h, "LIME with SLIC", |a| a.pending_jobs() == 0);
    let app = h.state();
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    let superpixels =
        |key: &str| app.doc.heatmap("lime", &model, key, 0).unwrap().superpixels.clone().unwrap();
    assert_ne!(superpixels(&slic_key).1, superpixels(&quickshift_key).1);
}

#[test]
fn cancelled_jobs_leave_the_ui_responsive() {
    let mut app = ViewerApp::new(app_options(Some(fixture_model("unet")), false));
    app.open_document(Document::new("synthetic".into(), None, halves(40)));
    app.grid.set_layout(Layout::Single);
    let mut h = app_harness(app, Vec2::new(1000.0, 600.0));
    h.run();
    h.state_mut().execute(Command::Predict { whole_volume: true });
    for _ in 0..4 {
        h.state_mut().execute(Command::Explain { method: "occlusion".into() });
        h.state_mut().controls.params.entry("occlusion".into()).or_default().seed += 1;
    }
    assert_eq!(h.state().pending_jobs(), 5);
    h.step();
    h.state_mut().execute(Command::CancelJobs);
    wait_until(&mut h, "cancellation", |a| a.pending_jobs() == 0);
    assert!(h.state().errors.is_empty(), "cancelling is not an error: {:?}", h.state().errors);
    // Still responsive: the wheel moves through slices and new jobs run.
    let before = h.state().grid.view(0).slice;
    let header = h.get_all_by_label("Panel 1").next().expect("panel header").rect();
    h.hover_at(header.left_bottom() + Vec2::new(120.0, 150.0));
    h.run();
    wheel(&h, -1.0, false);
    h.run();
    assert_eq!(h.state().grid.view(0).slice, before + 1);
    h.state_mut().execute(Command::Predict { whole_volume: false });
    wait_until(&mut h, "a prediction after cancelling", |a| a.pending_jobs() == 0);
    assert!(h.state().doc.prediction.as_ref().is_some_and(|p| p.slices.contains(&(before + 1))));
}

#[test]
fn a_corrupt_file_shows_one_line_error_and_the_app_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken_scan.dcm");
    std::fs::write(&bad, b"DICM? no, just garbage bytes").unwrap();
    let app = ViewerApp::new(app_options(None, false));
    let demo_name = app.doc.name.clone();
    let mut h = app_harness(app, Vec2::new(1000.0, 600.0));
    h.run();
    h.state_mut().execute(Command::Open(bad.clone()));
    wait_until(&mut h, "the loader", |a| !a.is_loading());
    let app = h.state();
    assert_eq!(app.errors.len(), 1, "{:?}", app.errors);
    assert!(app.errors[0].contains("broken_scan.dcm") && !app.errors[0].contains('\n'), "{}", app.errors[0]);
    assert_eq!(app.doc.name, demo_name, "the open study stays");
    assert_eq!(h.query_all_by_label_contains("broken_scan.dcm").count(), 1);
    // A heatmap of the wrong shape and a mask that is not a mask: errors too, nothing lost.
    let heat = dir.path().join("wrong.npy");
    ndarray_npy::write_npy(&heat, &ndarray::Array2::<f32>::zeros((3, 3))).unwrap();
    h.state_mut().execute(Command::OpenHeatmap(heat));
    h.state_mut().execute(Command::OpenMask(bad));
    h.run();
    assert_eq!(h.state().errors.len(), 3, "{:?}", h.state().errors);
    assert!(h.state().errors[1].contains("wrong.npy"), "{}", h.state().errors[1]);
    // Dismissing an error removes it.
    h.state_mut().execute(Command::DismissError(0));
    assert_eq!(h.state().errors.len(), 2);
}

#[test]
fn opening_a_study_with_its_mask_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("scan.png");
    let mask = dir.path().join("scan_mask.png");
    image::GrayImage::from_fn(32, 24, |x, _| image::Luma([(x * 8) as u8])).save(&img).unwrap();
    image::GrayImage::from_fn(32, 24, |x, y| image::Luma([if x > 10 && y > 10 { 255 } else { 0 }]))
        .save(&mask)
        .unwrap();
    let mut opts = app_options(None, false);
    opts.open = Some(img);
    opts.mask = Some(mask);
    let mut h = app_harness(ViewerApp::new(opts), Vec2::new(900.0, 500.0));
    wait_until(&mut h, "the loader", |a| !a.is_loading());
    let app = h.state();
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    assert_eq!(app.doc.name, "scan.png");
    assert_eq!(app.doc.volume.dims(), [1, 24, 32]);
    assert_eq!(
        app.doc.ground_truth().map(|m| m.mask.count(radlens::imaging::LabelSelector::Any)),
        Some(21 * 13)
    );
}

#[test]
fn exports_write_the_figure_the_heatmap_and_the_prediction() {
    let mut app = ViewerApp::new(app_options(None, false));
    let mut doc = Document::new("synthetic".into(), None, halves(3));
    doc.add_mask("infection".into(), box_mask(3, 8, 24, 6, 26));
    doc.prediction = Some(PredictionMask {
        model: "fixture".into(),
        source: new_source_id(),
        mask: Arc::new(box_mask(3, 14, 30, 12, 32)),
        slices: (0..3).collect(),
        threshold: 0.5,
    });
    app.open_document(doc);
    let dir = tempfile::tempdir().unwrap();
    let heat = dir.path().join("map.npy");
    let values: Vec<f32> = (0..40 * 40).map(|i| (i % 40) as f32).collect();
    ndarray_npy::write_npy(&heat, &ndarray::Array2::from_shape_vec((40, 40), values.clone()).unwrap())
        .unwrap();
    // A single-slice map lands on the slice shown (the middle one, 1).
    app.execute(Command::OpenHeatmap(heat));
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    assert_eq!(app.doc.heatmaps.len(), 1);
    assert_eq!(app.doc.heatmaps[0].slice, 1);
    app.grid.panels[2].content = PanelContent::Heatmap("file: map.npy".into());

    let fig = dir.path().join("figure.png");
    app.export_figure(&fig);
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    let img = image::open(&fig).unwrap().to_rgb8();
    assert!(img.width() > 4 * 40 && img.height() > 40, "{}×{}", img.width(), img.height());

    // The dialog-less path opens the in-app browser; its pick exports the map.
    app.execute(Command::ExportHeatmapDialog { method: "file: map.npy".into() });
    assert!(app.browser.is_some(), "the in-app browser is the fallback");
    let out = dir.path().join("exported.npy");
    app.export_heatmap(&out);
    let (back, shape) = radlens::io::npy::read_npy_f32(&out).unwrap();
    assert_eq!((shape, back), (vec![40, 40], values));

    let nii = dir.path().join("pred.nii.gz");
    app.export_prediction(&nii);
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    let m = radlens::io::load_mask(&nii).unwrap();
    assert_eq!(m.dims(), [3, 40, 40]);
    assert_eq!(m.count(radlens::imaging::LabelSelector::Any), 3 * 16 * 20);
}

#[test]
fn the_slice_slider_moves_every_linked_panel() {
    let mut app = ViewerApp::new(app_options(None, false));
    app.open_document(Document::new("synthetic".into(), None, halves(9)));
    app.grid.set_layout(Layout::OneByTwo);
    let mut h = app_harness(app, Vec2::new(1100.0, 500.0));
    h.run();
    let before = h.state().grid.view(0).slice;
    assert_ne!(before, 0);
    let rect = h.get_by_role_and_label(egui::accesskit::Role::Slider, "Slice").rect();
    // A press at the slider's left end picks the first slice, at its right end the last.
    let press = |h: &Harness<'_, ViewerApp>, pos: Pos2, pressed: bool| {
        h.event(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        })
    };
    for (x, want) in [(rect.left() + 1.0, 0), (rect.right() - 1.0, 8)] {
        let pos = Pos2::new(x, rect.center().y);
        h.hover_at(pos);
        h.step();
        press(&h, pos, true);
        h.step();
        press(&h, pos, false);
        h.run();
        assert_eq!((h.state().grid.view(0).slice, h.state().grid.view(1).slice), (want, want));
    }
}

#[test]
fn a_prepared_user_study_runs_from_the_file_menu_without_method_names() {
    use radlens::session::prepared::{MapCache, MapKey};
    use radlens::session::study::Study;
    let dir = tempfile::tempdir().unwrap();
    let (h, w) = (20u32, 24u32);
    let px: Vec<u8> = (0..h * w).map(|i| (i % 251) as u8).collect();
    radlens::io::raster::write_png_u8(&dir.path().join("img0.png"), w, h, &px).unwrap();
    let model = fixture_model("unet");
    let toml = format!(
        "title = \"Menu study\"\ninstructions = \"Rate the maps.\"\n\n[design]\nlayout = \"side-by-side\"\nseed = 3\n\n\
[questions]\npreference = \"Which do you prefer?\"\n\n[[questions.likert]]\nid = \"matches\"\ntext = \"The region matches\"\n\n\
[[cases]]\nid = \"c0\"\nstudy = \"img0.png\"\nmodel = \"{}\"\nmethods = [\"gradcam\", \"lime\"]\n",
        model.display()
    );
    let path = dir.path().join("study.toml");
    std::fs::write(&path, toml).unwrap();

    let mut app = ViewerApp::new(app_options(None, false));
    // Not prepared yet: a one-line error, the viewer goes on.
    app.execute(Command::RunStudy(path.clone()));
    assert!(app.study.is_none());
    assert_eq!(app.errors.len(), 1, "{:?}", app.errors);
    assert!(!app.errors[0].contains('\n'));
    app.errors.clear();

    let study = Study::load(&path).unwrap();
    let mut cache = MapCache::open(&study.cache_dir()).unwrap();
    for (mi, m) in study.cases[0].methods.iter().enumerate() {
        let v: Vec<f32> = (0..h * w).map(|i| ((i as usize * (mi + 1)) % 97) as f32).collect();
        cache.store(MapKey::new(&study, &study.cases[0], 0, m), &v, h as usize, w as usize).unwrap();
    }
    app.execute(Command::RunStudy(path));
    assert!(app.study.is_some(), "{:?}", app.errors);
    let mut hn = app_harness(app, Vec2::new(1100.0, 700.0));
    hn.run();
    assert!(hn.query_by_label("Leave the study").is_some());
    // The study fills the window: the viewer's panels and every method name are gone.
    for hidden in ["Grad-CAM", "LIME", "gradcam", "lime", "Panel 1"] {
        assert!(hn.query_all_by_label_contains(hidden).next().is_none(), "{hidden} on screen");
    }
    hn.get_by_label("Leave the study").click();
    hn.run();
    assert!(hn.state().study.is_none());
    assert!(hn.query_all_by_label_contains("Panel 1").next().is_some());
}

/// True where a pixel has the orientation letters' colour (yellow, anti-aliased over a dark image).
fn letter_pixels(img: &image::RgbaImage, x: std::ops::Range<u32>, y: std::ops::Range<u32>) -> usize {
    let mut n = 0;
    for yy in y {
        for xx in x.clone() {
            let [r, g, b] = px(img, xx, yy);
            if r > 180 && g > 160 && (r as i32 - b as i32) > 60 {
                n += 1;
            }
        }
    }
    n
}

/// Orientation letters are drawn only when the file defines the patient geometry, at the edge
/// midpoints, and follow it: flipping the row direction swaps the left/right letters, the top stays.
#[test]
fn orientation_letters_follow_the_patient_geometry() {
    use radlens::imaging::Affine;
    let render = |affine: Option<Affine>| {
        let mut s = single(1);
        let mut v = halves(1);
        v.affine = affine;
        s.layers.volume = Arc::new(v);
        // Black image, so only the overlay text is bright.
        s.view.window = WindowLevel::new(5000.0, 100.0);
        let mut h = single_harness(s);
        h.run();
        h.render().unwrap()
    };
    let axial = |x_sign: f64| Affine {
        origin_lps: [0.0; 3],
        axes_lps: [[x_sign, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]],
    };
    let none = render(None);
    let standard = render(Some(axial(1.0)));
    let flipped = render(Some(axial(-1.0)));
    let (left, top) = ((0..30, 85..115), (85..115, 15..45));
    assert_eq!(letter_pixels(&none, left.0.clone(), left.1.clone()), 0, "no geometry, no letters");
    assert!(letter_pixels(&standard, left.0.clone(), left.1.clone()) > 5, "R at the left edge");
    assert!(letter_pixels(&standard, top.0.clone(), top.1.clone()) > 5, "A at the top edge");
    // R and L are different glyphs at the same place; A stays.
    let crop = |img: &image::RgbaImage, (x, y): (std::ops::Range<u32>, std::ops::Range<u32>)| {
        image::imageops::crop_imm(img, x.start, y.start, x.len() as u32, y.len() as u32).to_image()
    };
    assert_ne!(crop(&standard, left.clone()), crop(&flipped, left.clone()));
    assert_eq!(crop(&standard, top.clone()), crop(&flipped, top.clone()));
}

/// A file dropped from the desktop, as the windowing integration hands it to egui.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn dicom_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom").join(name)
}

/// A dropped folder with two DICOM series opens the series picker window; the chosen series loads,
/// joins the recent files (kept in the settings file), and the cursor readout reports its voxels in HU
/// with the mask labels under the cursor.
#[test]
fn dropped_series_folder_picker_recent_files_and_cursor_readout() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("two series");
    std::fs::create_dir(&folder).unwrap();
    for f in ["slice_a.dcm", "slice_b.dcm", "slice_c.dcm"] {
        std::fs::copy(dicom_fixture("series_shuffled").join(f), folder.join(f)).unwrap();
    }
    std::fs::copy(dicom_fixture("CT_small.dcm"), folder.join("other.dcm")).unwrap();
    let settings = dir.path().join("settings.json");
    let mut options = app_options(None, false);
    options.settings = Some(settings.clone());
    let mut h = app_harness(ViewerApp::new(options.clone()), Vec2::new(1200.0, 700.0));
    h.run();
    assert!(h.state().persisted.recent.is_empty());

    h.input_mut().dropped_files.push(Arc::new(Dropped(folder.clone())));
    h.step();
    wait_until(&mut h, "the series scan", |a| !a.is_loading());
    assert!(h.state().series_picker.is_some(), "two series: the picker opens");
    assert!(h.query_by_label("512 x 512 x 3").is_some() && h.query_by_label("128 x 128 x 1").is_some());
    h.get_by_label("Load series").click();
    h.step();
    wait_until(&mut h, "the series", |a| !a.is_loading());
    let app = h.state();
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    assert!(app.series_picker.is_none());
    assert_eq!(app.doc.volume.dims(), [3, 512, 512]);
    assert_eq!(app.persisted.recent.first(), Some(&folder));
    assert!(std::fs::read_to_string(&settings).unwrap().contains("two series"), "recent files are saved");

    // The readout: a mask on the right half, then the cursor over the left and the right of panel 1.
    let (d, hh, w) = (3, 512, 512);
    let labels: Vec<u16> = (0..d * hh * w).map(|i| u16::from(i % w >= w / 2) * 2).collect();
    h.state_mut().doc.add_mask("lesion".into(), Mask::new(labels, [d, hh, w]).unwrap());
    h.state_mut().grid.set_layout(Layout::Single);
    h.run();
    // Sweep the cursor to the right from panel 1's header, across the image.
    let header = h.get_all_by_label("Panel 1").next().expect("panel header").rect();
    let mut readouts = Vec::new();
    for step in 0..30 {
        h.hover_at(header.left_bottom() + Vec2::new(10.0 + 25.0 * step as f32, 250.0));
        h.run();
        readouts.extend(h.state().readout.clone());
    }
    let vol = h.state().doc.volume.clone();
    for ro in &readouts {
        assert_eq!(Some(ro.value), vol.get(ro.z, ro.y, ro.x), "the voxel under the cursor");
        assert_eq!(ro.unit, Unit::Hu);
        assert!(
            ro.text().contains(&format!("x {}  y {}  z {}", ro.x, ro.y, ro.z)) && ro.text().contains(" HU")
        );
    }
    assert!(readouts.windows(2).all(|p| p[0].x <= p[1].x), "x grows left to right");
    let l = readouts.iter().find(|r| r.x < w / 2).expect("a readout on the left half");
    let r = readouts.iter().find(|r| r.x >= w / 2).expect("a readout on the right half");
    assert!(l.labels.is_empty());
    assert_eq!(r.labels, vec![("lesion".to_string(), 2)]);
    assert!(r.text().contains("lesion: 2"), "{}", r.text());

    // A new window reads the recent list back, and its File → Recent entry opens the folder again
    // (the picker, since it still holds two series).
    drop(h);
    let mut h = app_harness(ViewerApp::new(options), Vec2::new(1200.0, 700.0));
    h.run();
    assert_eq!(h.state().persisted.recent.first(), Some(&folder));
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Recent").hover();
    h.run();
    h.get_by_label(&folder.display().to_string()).click();
    h.step();
    wait_until(&mut h, "the series scan", |a| !a.is_loading());
    assert!(h.state().series_picker.is_some());
}

/// The scale bar is a round length in mm of about a fifth of the panel: 5 mm (25 points) at 1 mm per
/// pixel, 2 mm (20 points) at 0.5 mm per pixel, on a 200-point panel showing 40 pixels.
#[test]
fn the_scale_bar_follows_the_pixel_spacing() {
    let bar = |spacing: f64| {
        let mut s = single(1);
        let mut v = halves(1);
        v.spacing_mm = [2.0, spacing, spacing];
        s.layers.volume = Arc::new(v);
        s.view.window = WindowLevel::new(5000.0, 100.0); // black image: only overlays are bright
        let mut h = single_harness(s);
        h.run();
        let img = h.render().unwrap();
        // The longest bright horizontal run in the bottom rows of the right half.
        let mut longest = 0;
        for y in 170..200 {
            let mut run = 0;
            for x in 100..200 {
                let [r, g, b] = px(&img, x, y);
                run = if r > 200 && g > 200 && b > 200 { run + 1 } else { 0 };
                longest = longest.max(run);
            }
        }
        longest
    };
    let (one, half) = (bar(1.0), bar(0.5));
    assert!((23..=27).contains(&one), "5 mm at 5 points per mm: {one} pixels");
    assert!((18..=22).contains(&half), "2 mm at 10 points per mm: {half} pixels");
}

/// Another model by manifest path runs the next prediction; a stochastic map computed with repeats
/// carries its stability figure; a model that does not exist is one error line and the app goes on.
#[test]
fn choosing_a_model_and_the_stability_of_repeated_maps() {
    let mut app = ViewerApp::new(app_options(Some(fixture_model("unet")), false));
    let other = fixture_model("smp_unet_resnet18").display().to_string();
    app.execute(Command::SelectModel(other.clone()));
    let lime = app.controls.params.entry("lime".into()).or_default();
    lime.samples = 64;
    lime.repeats = 2;
    let mut h = app_harness(app, Vec2::new(1100.0, 640.0));
    h.run();
    h.state_mut().execute(Command::Predict { whole_volume: false });
    h.state_mut().execute(Command::Explain { method: "lime".into() });
    h.step();
    wait_until(&mut h, "prediction and LIME", |a| a.pending_jobs() == 0);
    let app = h.state();
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    assert_eq!(app.model.as_deref(), Some(other.as_str()));
    assert_eq!(app.doc.prediction.as_ref().map(|p| p.model.clone()), Some(other.clone()));
    let key = app.controls.params_for("lime").key();
    let map = app.doc.heatmap("lime", &other, &key, app.grid.view(0).slice).expect("the LIME map");
    let (n, iou, rho) = map.stability.expect("a stability figure with repeats");
    assert_eq!(n, 2);
    assert!((0.0..=1.0).contains(&iou) && (-1.0..=1.0).contains(&rho), "{iou} {rho}");

    h.state_mut().execute(Command::SelectModel("/nonexistent/model.toml".into()));
    h.state_mut().execute(Command::Predict { whole_volume: false });
    h.step();
    wait_until(&mut h, "the failing job", |a| a.pending_jobs() == 0);
    let errors = &h.state().errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("/nonexistent/model.toml") && !errors[0].contains('\n'), "{}", errors[0]);
}

/// Every model shipped in `weights/` loads in the viewer by its name: on a chest X-ray the CXR
/// classifier reports its top class and gives a Grad-CAM map, the CXR segmentation model a predicted
/// mask; the CT model (the default) predicts on the same image too.
#[test]
fn shipped_models_load_in_the_viewer_by_name() {
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
    let names: Vec<String> =
        radlens::model::manifest::builtin_models(&weights).into_iter().map(|m| m.0).collect();
    for want in ["ct-infection-unet", "cxr-covid-resnet18", "cxr-infection-resnet18-unet"] {
        assert!(names.iter().any(|n| n == want), "{want} not among the shipped models {names:?}");
    }
    let mut opts = app_options(None, false);
    opts.builtin_dir = weights;
    opts.open = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/raster/cxr_covid_01902.png"));
    let mut h = app_harness(ViewerApp::new(opts), Vec2::new(1000.0, 600.0));
    wait_until(&mut h, "the loader", |a| !a.is_loading());
    assert_eq!(h.state().model.as_deref(), Some("ct-infection-unet"), "the default of five built-in models");
    for name in ["cxr-covid-resnet18", "cxr-infection-resnet18-unet", "ct-infection-unet"] {
        h.state_mut().execute(Command::SelectModel(name.into()));
        h.state_mut().execute(Command::Predict { whole_volume: false });
        h.state_mut().execute(Command::Explain { method: "gradcam".into() });
        h.step();
        wait_until(&mut h, name, |a| a.pending_jobs() == 0);
        let app = h.state();
        assert!(app.errors.is_empty(), "{name}: {:?}", app.errors);
        assert_eq!(app.model.as_deref(), Some(name));
        let key = app.controls.params_for("gradcam").key();
        let map =
            app.doc.heatmap("gradcam", name, &key, 0).unwrap_or_else(|| panic!("{name}: no Grad-CAM map"));
        assert!(map.values.iter().all(|v| v.is_finite()), "{name}: a map with NaN or ∞");
        if name == "cxr-covid-resnet18" {
            // The classifier's evidence for its top class on a COVID-19 image: never an empty map. (A
            // segmentation model's Grad-CAM may be all zero after the ReLU, so it is not asked.)
            assert!(map.values.iter().any(|v| *v != 0.0), "{name}: an all-zero map");
            let note = app.notes.iter().find(|n| n.starts_with(name)).expect("the classifier's top class");
            assert!(["COVID-19", "Non-COVID", "Normal"].iter().any(|c| note.contains(c)), "{note}");
        } else {
            assert_eq!(app.doc.prediction.as_ref().map(|p| p.model.as_str()), Some(name));
        }
    }
}
