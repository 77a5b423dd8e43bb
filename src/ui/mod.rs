//! Panels of the viewer. Each draws with egui and returns [`Command`]s (what the user asked for) that
//! the app executes in one place; view interactions (slice, pan, zoom, window) change the panel's own
//! [`viewer::ViewState`] directly. ui knows imaging data and the renderer, never candle or the pipeline.

pub mod annotate;
pub mod controls;
pub mod document;
pub mod file_browser;
pub mod grid;
pub mod metrics;
pub mod series_picker;
pub mod study;
pub mod viewer;

use std::path::PathBuf;

pub use document::{Document, HeatmapEntry, LoadedMask, PredictionMask};
pub use grid::{GridState, Layout, PanelContent};
pub use viewer::{Readout, ViewState};

/// What the user asked for; executed by `app` (`ViewerApp::execute`).
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Open a study (file or folder) with the native dialog (in-app browser when none answers).
    OpenDialog {
        folder: bool,
    },
    /// Open a study from a path (recent files, drag and drop, the command line).
    Open(PathBuf),
    /// Load a mask onto the open study, by dialog or path.
    OpenMaskDialog,
    OpenMask(PathBuf),
    /// Load a heatmap (.npy / NIfTI / PNG) onto the open study.
    OpenHeatmapDialog,
    OpenHeatmap(PathBuf),
    /// Show one of the embedded demo cases.
    ShowDemoCase(usize),
    /// Use the model with this name (built-in) or manifest path.
    SelectModel(String),
    /// Pick a `model.toml` with the dialog.
    SelectModelDialog,
    /// Predict the current slice or every slice.
    Predict {
        whole_volume: bool,
    },
    /// Compute a method's map on the current slice.
    Explain {
        method: String,
    },
    /// Compute what the visible panels need on the current slice (prediction, maps).
    ComputeVisible,
    /// Cancel every queued or running job.
    CancelJobs,
    /// Remove the error at this index from the error list.
    DismissError(usize),
    /// Export the current grid as a PNG figure.
    ExportFigureDialog,
    /// Export a panel's heatmap (.npy / NIfTI).
    ExportHeatmapDialog {
        method: String,
    },
    /// Export the predicted mask (PNG / NIfTI).
    ExportPredictionDialog,
    /// Run a prepared user study (`radlens study prepare`) in this window: pick its file.
    RunStudyDialog,
    RunStudy(PathBuf),
}

/// A combo box with a label before it (and named by it for screen readers and tests).
pub(crate) fn labelled_combo<R>(
    ui: &mut eframe::egui::Ui,
    id_salt: impl std::hash::Hash + std::fmt::Debug,
    label: &str,
    selected: impl Into<eframe::egui::WidgetText>,
    width: f32,
    add_contents: impl FnOnce(&mut eframe::egui::Ui) -> R,
) {
    let l = ui.label(label);
    let r = eframe::egui::ComboBox::from_id_salt(id_salt)
        .selected_text(selected)
        .width(width)
        .show_ui(ui, add_contents);
    let _ = r.response.labelled_by(l.id);
}
