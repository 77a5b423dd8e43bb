//! Choosing one DICOM series when a folder holds several.
//!
//! The caller lists the folder with [`crate::io::series::list_series`] (headers only; for big folders do
//! it off the UI thread), and shows a [`SeriesPicker`] when [`SeriesPicker::needs_choice`] is true. Each
//! row shows description, modality, slice count, size (columns × rows × slices) and spacing in mm. Click
//! selects, double-click or Enter loads, ↑/↓ move, Escape cancels. The largest series comes first and is
//! selected at the start: it is what `load_study` picks when nobody chooses.

use std::path::{Path, PathBuf};

use eframe::egui;

use crate::io::series::{list_series, SeriesSummary};
use crate::io::LoadError;

/// What the user chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesAction {
    /// Load this series of `folder` (pass `uid` as `io::LoadOptions::series_uid`).
    Load {
        folder: PathBuf,
        uid: String,
    },
    Cancelled,
}

/// The picker's state; keep it while it is open.
#[derive(Debug, Clone)]
pub struct SeriesPicker {
    folder: PathBuf,
    series: Vec<SeriesSummary>,
    selected: usize,
}

impl SeriesPicker {
    /// A picker over series already listed (e.g. by a background scan).
    pub fn new(folder: PathBuf, series: Vec<SeriesSummary>) -> Self {
        SeriesPicker { folder, series, selected: 0 }
    }

    /// Lists `folder` (headers only) and builds a picker; the one-line error when the folder holds no
    /// readable DICOM image.
    pub fn scan(folder: &Path) -> Result<Self, LoadError> {
        Ok(SeriesPicker::new(folder.to_path_buf(), list_series(folder)?))
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub fn series(&self) -> &[SeriesSummary] {
        &self.series
    }

    /// True when there is something to choose (more than one series).
    pub fn needs_choice(&self) -> bool {
        self.series.len() > 1
    }

    /// The series selected now.
    pub fn selected(&self) -> Option<&SeriesSummary> {
        self.series.get(self.selected)
    }

    pub fn select(&mut self, index: usize) {
        if index < self.series.len() {
            self.selected = index;
        }
    }

    fn load_action(&self) -> Option<SeriesAction> {
        self.selected().map(|s| SeriesAction::Load { folder: self.folder.clone(), uid: s.info.uid.clone() })
    }

    /// Draws the list and buttons; returns what the user did this frame.
    #[must_use]
    pub fn show(&mut self, ui: &mut egui::Ui) -> Option<SeriesAction> {
        let mut action = None;
        ui.label(format!("{} series in {}", self.series.len(), self.folder.display()));
        ui.separator();
        let mut clicked = None;
        let mut double_clicked = None;
        egui::ScrollArea::vertical().id_salt("series_picker_list").max_height(320.0).show(ui, |ui| {
            egui::Grid::new("series_picker_grid").striped(true).num_columns(5).show(ui, |ui| {
                for heading in ["Description", "Modality", "Slices", "Size (px)", "Spacing (mm)"] {
                    ui.strong(heading);
                }
                ui.end_row();
                for (i, s) in self.series.iter().enumerate() {
                    let description = if s.info.description.trim().is_empty() {
                        "(no description)"
                    } else {
                        s.info.description.as_str()
                    };
                    let resp =
                        ui.selectable_label(self.selected == i, description).on_hover_text(&s.info.uid);
                    if resp.double_clicked() {
                        double_clicked = Some(i);
                    } else if resp.clicked() {
                        clicked = Some(i);
                    }
                    ui.label(&s.info.modality);
                    ui.label(s.info.slice_count.to_string());
                    ui.label(format!("{} x {} x {}", s.cols, s.rows, s.info.slice_count));
                    ui.label(spacing_text(s));
                    ui.end_row();
                }
            });
        });
        if let Some(i) = clicked {
            self.selected = i;
        }
        if let Some(i) = double_clicked {
            self.selected = i;
            action = self.load_action();
        }
        ui.separator();
        ui.horizontal(|ui| {
            if ui.add_enabled(!self.series.is_empty(), egui::Button::new("Load series")).clicked() {
                action = self.load_action();
            }
            if ui.button("Cancel").clicked() {
                action = Some(SeriesAction::Cancelled);
            }
        });
        if action.is_none() {
            let (down, up, enter, escape) = ui.input_mut(|i| {
                (
                    i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowDown),
                    i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowUp),
                    i.consume_key(egui::Modifiers::NONE, egui::Key::Enter),
                    i.consume_key(egui::Modifiers::NONE, egui::Key::Escape),
                )
            });
            if down && self.selected + 1 < self.series.len() {
                self.selected += 1;
            }
            if up {
                self.selected = self.selected.saturating_sub(1);
            }
            if enter {
                action = self.load_action();
            }
            if escape {
                action = Some(SeriesAction::Cancelled);
            }
        }
        action
    }
}

/// "0.70 x 0.70 x 5.00" (column, row, slice); "?" for what the header does not say.
pub fn spacing_text(s: &SeriesSummary) -> String {
    let f = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "?".to_string());
    let (row, col) = match s.pixel_spacing_mm {
        Some([r, c]) => (Some(r), Some(c)),
        None => (None, None),
    };
    format!("{} x {} x {}", f(col), f(row), f(s.slice_spacing_mm))
}
