//! The menu bar and the side panel: study, model, computations with progress and cancel, per-method
//! parameters, display settings, errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use eframe::egui;

use super::grid::{method_label, GridState, Layout};
use super::Command;
use crate::render::Colormap;
use crate::xai::superpixels::SEGMENTATION_NAMES;

/// Methods that perturb superpixels (the superpixel algorithm is one of their parameters).
pub const SUPERPIXEL_METHODS: [&str; 2] = ["lime", "kernelshap"];

/// Methods whose maps depend on a seed (shown with a stability figure when repeated).
pub const STOCHASTIC: [&str; 5] = ["lime", "kernelshap", "rise", "smoothgrad", "occlusion"];

/// Parameters of one method as the user sets them (0 = the method's default).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MethodParams {
    /// CAM layer (PyTorch module path); empty = the model's default.
    pub layer: String,
    pub samples: usize,
    pub steps: usize,
    pub seed: u64,
    /// Runs with seeds seed, seed+1, …; more than one gives the stability figure.
    pub repeats: usize,
    pub batch: usize,
    /// Superpixel algorithm for LIME and KernelSHAP (`xai::superpixels::SEGMENTATION_NAMES`); empty =
    /// the method's default (quickshift).
    #[serde(default)]
    pub superpixels: String,
}

impl Default for MethodParams {
    fn default() -> Self {
        MethodParams {
            layer: String::new(),
            samples: 0,
            steps: 0,
            seed: 0,
            repeats: 1,
            batch: 16,
            superpixels: String::new(),
        }
    }
}

impl MethodParams {
    /// The parameters as part of the result cache key (and shown to the user).
    pub fn key(&self) -> String {
        let d = |v: usize| if v == 0 { "default".to_string() } else { v.to_string() };
        format!(
            "layer={} samples={} steps={} seed={} repeats={} superpixels={}",
            if self.layer.is_empty() { "default" } else { &self.layer },
            d(self.samples),
            d(self.steps),
            self.seed,
            self.repeats.max(1),
            if self.superpixels.is_empty() { "default" } else { &self.superpixels },
        )
    }
}

/// A queued or running job, for the progress list.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub label: String,
    pub done: usize,
    pub total: usize,
    pub message: String,
    pub running: bool,
}

/// What the side panel shows (read-only inputs).
pub struct ControlsInput<'a> {
    pub study: String,
    pub study_info: String,
    pub demo_cases: &'a [String],
    pub current_demo: Option<usize>,
    pub models: &'a [String],
    pub model: Option<&'a str>,
    /// Shown instead of the compute buttons when no model is available.
    pub model_note: Option<&'a str>,
    pub methods: &'a [&'a str],
    pub jobs: &'a [JobRow],
    pub errors: &'a [String],
}

/// The side panel's own state (persisted with the app).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ControlsState {
    pub method: String,
    pub params: BTreeMap<String, MethodParams>,
}

impl ControlsState {
    pub fn params_for(&self, method: &str) -> MethodParams {
        self.params.get(method).cloned().unwrap_or_default()
    }
}

/// The top menu bar.
pub fn menu_bar(
    ui: &mut egui::Ui,
    recent: &[PathBuf],
    grid: &mut GridState,
    has_prediction: bool,
) -> Vec<Command> {
    let mut cmds = Vec::new();
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| {
            if ui.button("Open file…").clicked() {
                cmds.push(Command::OpenDialog { folder: false });
            }
            if ui.button("Open folder (DICOM series)…").clicked() {
                cmds.push(Command::OpenDialog { folder: true });
            }
            ui.menu_button("Recent", |ui| {
                if recent.is_empty() {
                    ui.label("(none)");
                }
                for p in recent {
                    if ui.button(p.display().to_string()).clicked() {
                        cmds.push(Command::Open(p.clone()));
                    }
                }
            });
            ui.separator();
            if ui.button("Load mask onto study…").clicked() {
                cmds.push(Command::OpenMaskDialog);
            }
            if ui.button("Load heatmap onto study…").clicked() {
                cmds.push(Command::OpenHeatmapDialog);
            }
            ui.separator();
            if ui.button("Run a user study…").clicked() {
                cmds.push(Command::RunStudyDialog);
            }
        });
        ui.menu_button("Export", |ui| {
            if ui.button("Grid as PNG figure…").clicked() {
                cmds.push(Command::ExportFigureDialog);
            }
            for m in grid.visible_methods() {
                if ui.button(format!("{} heatmap (.npy / NIfTI)…", method_label(&m))).clicked() {
                    cmds.push(Command::ExportHeatmapDialog { method: m.clone() });
                }
            }
            if ui.add_enabled(has_prediction, egui::Button::new("Predicted mask (PNG / NIfTI)…")).clicked()
            {
                cmds.push(Command::ExportPredictionDialog);
            }
        });
        ui.separator();
        ui.label("Layout");
        for l in Layout::ALL {
            if ui.selectable_label(grid.layout == l, l.name()).clicked() {
                grid.set_layout(l);
            }
        }
        ui.separator();
        let mut linked = grid.linked;
        if ui
            .checkbox(&mut linked, "Link views")
            .on_hover_text("Slice, pan, zoom and window move together")
            .changed()
        {
            grid.set_linked(linked);
        }
        ui.separator();
        ui.weak("wheel: slice · Ctrl+wheel: zoom · drag: pan · right-drag: window · 1–4: presets · R: reset");
    });
    cmds
}

/// The left side panel.
pub fn side_panel(
    ui: &mut egui::Ui,
    input: &ControlsInput,
    state: &mut ControlsState,
    grid: &mut GridState,
) -> Vec<Command> {
    let mut cmds = Vec::new();
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.heading("Study");
        ui.label(egui::RichText::new(&input.study).strong());
        ui.label(&input.study_info);
        if !input.demo_cases.is_empty() {
            ui.horizontal(|ui| {
                let current = input
                    .current_demo
                    .and_then(|i| input.demo_cases.get(i))
                    .cloned()
                    .unwrap_or_else(|| "—".into());
                super::labelled_combo(ui, "demo_case", "Demo case", current, 150.0, |ui| {
                    for (i, name) in input.demo_cases.iter().enumerate() {
                        if ui.selectable_label(input.current_demo == Some(i), name).clicked() {
                            cmds.push(Command::ShowDemoCase(i));
                        }
                    }
                });
            });
        }
        ui.separator();

        ui.heading("Model");
        ui.horizontal(|ui| {
            let current = input.model.unwrap_or("none").to_string();
            super::labelled_combo(ui, "model", "Use", current, 150.0, |ui| {
                for name in input.models {
                    if ui.selectable_label(input.model == Some(name.as_str()), name).clicked() {
                        cmds.push(Command::SelectModel(name.clone()));
                    }
                }
            });
            if ui.button("Manifest…").on_hover_text("Choose a model.toml").clicked() {
                cmds.push(Command::SelectModelDialog);
            }
        });
        if let Some(note) = input.model_note {
            ui.colored_label(egui::Color32::from_rgb(255, 190, 80), note);
        }
        let has_model = input.model.is_some();
        ui.add_enabled_ui(has_model, |ui| {
            ui.horizontal(|ui| {
                if ui.button("Predict slice").clicked() {
                    cmds.push(Command::Predict { whole_volume: false });
                }
                if ui.button("Predict volume").clicked() {
                    cmds.push(Command::Predict { whole_volume: true });
                }
            });
            if ui
                .button("Compute visible panels")
                .on_hover_text("Prediction and every shown map, this slice")
                .clicked()
            {
                cmds.push(Command::ComputeVisible);
            }
            ui.horizontal(|ui| {
                super::labelled_combo(ui, "method", "Method", method_label(&state.method), 120.0, |ui| {
                    for &m in input.methods {
                        ui.selectable_value(&mut state.method, m.to_string(), method_label(m));
                    }
                });
                if ui.button("Run on slice").clicked() {
                    cmds.push(Command::Explain { method: state.method.clone() });
                }
            });
        });
        ui.collapsing(format!("Parameters: {}", method_label(&state.method)), |ui| {
            let p = state.params.entry(state.method.clone()).or_default();
            egui::Grid::new("params").num_columns(2).show(ui, |ui| {
                // Each field is labelled by its row's label (screen readers, and the UI tests).
                let l = ui.label("Layer");
                ui.add(
                    egui::TextEdit::singleline(&mut p.layer).hint_text("model default").desired_width(130.0),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Samples");
                ui.add(egui::DragValue::new(&mut p.samples).range(0..=20_000).speed(10))
                    .labelled_by(l.id)
                    .on_hover_text("0 = default");
                ui.end_row();
                let l = ui.label("Steps");
                ui.add(egui::DragValue::new(&mut p.steps).range(0..=1000))
                    .labelled_by(l.id)
                    .on_hover_text("IG steps / SmoothGrad samples; 0 = default");
                ui.end_row();
                let l = ui.label("Seed");
                ui.add(egui::DragValue::new(&mut p.seed)).labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Repeats");
                ui.add(egui::DragValue::new(&mut p.repeats).range(1..=20))
                    .labelled_by(l.id)
                    .on_hover_text("Stochastic methods: runs over seeds, for the stability figure");
                ui.end_row();
                let l = ui.label("Batch");
                ui.add(egui::DragValue::new(&mut p.batch).range(1..=256)).labelled_by(l.id);
                ui.end_row();
            });
            if SUPERPIXEL_METHODS.contains(&state.method.as_str()) {
                ui.horizontal(|ui| {
                    let shown = if p.superpixels.is_empty() {
                        "quickshift (default)".to_string()
                    } else {
                        p.superpixels.clone()
                    };
                    super::labelled_combo(ui, "superpixels", "Superpixels", shown, 150.0, |ui| {
                        ui.selectable_value(&mut p.superpixels, String::new(), "quickshift (default)");
                        for name in SEGMENTATION_NAMES.iter().skip(1) {
                            ui.selectable_value(&mut p.superpixels, name.to_string(), *name);
                        }
                    });
                });
            }
        });
        ui.separator();

        ui.heading("Jobs");
        if input.jobs.is_empty() {
            ui.weak("idle");
        }
        for j in input.jobs {
            let frac = if j.total > 0 { j.done as f32 / j.total as f32 } else { 0.0 };
            let text = if j.running {
                format!("{} — {}", j.label, j.message)
            } else {
                format!("{} — queued", j.label)
            };
            ui.add(egui::ProgressBar::new(frac).text(text).animate(j.running));
        }
        if !input.jobs.is_empty() && ui.button("Cancel all").clicked() {
            cmds.push(Command::CancelJobs);
        }
        ui.separator();

        ui.heading("Display");
        let d = &mut grid.display;
        ui.add(egui::Slider::new(&mut d.heat_opacity, 0.0..=1.0).text("map opacity"));
        ui.add(egui::Slider::new(&mut d.heat_threshold, 0.0..=1.0).text("map threshold"));
        ui.add(egui::Slider::new(&mut d.mask_opacity, 0.0..=1.0).text("mask opacity"));
        ui.checkbox(&mut d.contour_only, "Mask contours only");
        ui.checkbox(&mut d.show_superpixels, "Superpixel boundaries (LIME)");
        ui.checkbox(&mut d.gt_on_maps, "Ground-truth contour on maps");
        colormap_combo(ui, "map_cmap", "map colours", &mut d.heat_colormap);
        colormap_combo(ui, "image_cmap", "image colours", &mut d.image_colormap);

        if !input.errors.is_empty() {
            ui.separator();
            ui.heading("Errors");
            for (i, e) in input.errors.iter().enumerate() {
                ui.horizontal_wrapped(|ui| {
                    if ui.small_button("x").on_hover_text("dismiss").clicked() {
                        cmds.push(Command::DismissError(i));
                    }
                    ui.colored_label(egui::Color32::from_rgb(255, 110, 110), e);
                });
            }
        }
    });
    cmds
}

fn colormap_combo(ui: &mut egui::Ui, id: &str, label: &str, value: &mut Colormap) {
    ui.horizontal(|ui| {
        super::labelled_combo(ui, id, label, value.name(), 90.0, |ui| {
            for c in Colormap::ALL {
                ui.selectable_value(value, c, c.name());
            }
        });
    });
}
