//! The metrics panel: prediction vs ground truth on the slice and the volume (Dice, IoU, precision,
//! recall, HD95), and each heatmap's localization scores against the ground truth at the chosen
//! threshold. The numbers come from `crate::metrics` (the code `radlens metrics` / `eval` use); this
//! panel only shows them.

use eframe::egui;

use crate::metrics::SegmentationScores;

/// How a heatmap becomes a mask for localization scores.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ThresholdChoice {
    Otsu,
    /// On the map normalised to 0..1.
    Fixed(f32),
    /// The top k% of pixels.
    TopPercent(f32),
}

impl Default for ThresholdChoice {
    fn default() -> Self {
        ThresholdChoice::Otsu
    }
}

/// What the panel shows.
#[derive(Debug, Clone, Default)]
pub struct MetricsView {
    /// Prediction vs ground truth on the current slice; Err: why there is no number.
    pub slice: Option<Result<SegmentationScores, String>>,
    /// Over every predicted slice: (scores, number of slices).
    pub volume: Option<Result<(SegmentationScores, usize), String>>,
    /// Per heatmap: (method label, [(score name, value)]) or why there is none.
    pub heatmaps: Vec<(String, Result<Vec<(String, f64)>, String>)>,
    /// Shown when there is nothing to score.
    pub note: Option<String>,
}

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "—".into()
    }
}

fn fmt_mm(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{v:.1} mm"),
        None => "undefined".into(),
    }
}

/// Draws the panel; returns true when the threshold choice changed.
pub fn metrics_panel(ui: &mut egui::Ui, view: &MetricsView, threshold: &mut ThresholdChoice) -> bool {
    ui.heading("Metrics");
    if let Some(note) = &view.note {
        ui.weak(note);
    }
    let rows: Vec<(&str, Option<&Result<SegmentationScores, String>>)> = vec![("slice", view.slice.as_ref())];
    let volume = view.volume.as_ref().map(|r| r.as_ref().map(|(s, _)| *s).map_err(|e| e.clone()));
    let volume_label = match &view.volume {
        Some(Ok((_, n))) => format!("volume ({n} sl.)"),
        _ => "volume".into(),
    };
    egui::Grid::new("seg_metrics").striped(true).num_columns(6).show(ui, |ui| {
        for h in ["", "Dice", "IoU", "Prec.", "Recall", "HD95"] {
            ui.label(egui::RichText::new(h).strong());
        }
        ui.end_row();
        let row = |ui: &mut egui::Ui, name: &str, r: Option<&Result<SegmentationScores, String>>| {
            ui.label(name);
            match r {
                Some(Ok(s)) => {
                    ui.label(fmt(s.dice));
                    ui.label(fmt(s.iou));
                    ui.label(fmt(s.precision));
                    ui.label(fmt(s.recall));
                    ui.label(fmt_mm(s.hd95_mm));
                }
                Some(Err(e)) => {
                    ui.weak(e);
                }
                None => {
                    ui.weak("—");
                }
            }
            ui.end_row();
        };
        for (name, r) in rows {
            row(ui, name, r);
        }
        row(ui, &volume_label, volume.as_ref());
    });
    ui.separator();
    ui.label(egui::RichText::new("Heatmap localization vs ground truth").strong());
    let mut changed = false;
    ui.horizontal(|ui| {
        let mut kind = match threshold {
            ThresholdChoice::Otsu => 0,
            ThresholdChoice::Fixed(_) => 1,
            ThresholdChoice::TopPercent(_) => 2,
        };
        let before = kind;
        ui.radio_value(&mut kind, 0, "Otsu");
        ui.radio_value(&mut kind, 1, "fixed");
        ui.radio_value(&mut kind, 2, "top-k%");
        if kind != before {
            *threshold = match kind {
                0 => ThresholdChoice::Otsu,
                1 => ThresholdChoice::Fixed(0.5),
                _ => ThresholdChoice::TopPercent(10.0),
            };
            changed = true;
        }
        match threshold {
            ThresholdChoice::Fixed(t) => {
                changed |= ui.add(egui::DragValue::new(t).range(0.0..=1.0).speed(0.01)).changed()
            }
            ThresholdChoice::TopPercent(k) => {
                changed |= ui.add(egui::DragValue::new(k).range(0.1..=100.0).speed(0.5).suffix("%")).changed()
            }
            ThresholdChoice::Otsu => {}
        }
    });
    if view.heatmaps.is_empty() {
        ui.weak("no heatmap on this slice");
    }
    for (name, r) in &view.heatmaps {
        match r {
            Ok(scores) => {
                let text: Vec<String> = scores.iter().map(|(k, v)| format!("{k} {}", fmt(*v))).collect();
                ui.label(format!("{name}: {}", text.join(" · ")));
            }
            Err(e) => {
                ui.weak(format!("{name}: {e}"));
            }
        }
    }
    changed
}
