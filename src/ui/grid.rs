//! The compare grid: 1×1, 1×2, 2×2, 1×4 and the papers' row (original | GT vs prediction | Grad-CAM++ |
//! LIME). Each panel picks what it shows; slice, pan, zoom and window are linked across panels unless
//! the link is switched off. Keyboard shortcuts act on the hovered (or last used) panel.

use eframe::egui::{self, Rect, Vec2};

use super::document::{Document, HeatmapEntry};
use super::viewer::{slice_view, Legend, PanelPaint, Readout, ViewState};
use crate::render::{Colormap, HeatLayer, LabelLayer, MaskLayer, SliceLayers, SliceStyle};

/// Panel arrangements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    Single,
    OneByTwo,
    TwoByTwo,
    OneByFour,
    /// original | GT vs prediction | Grad-CAM++ | LIME, as in the papers' figures.
    PapersRow,
}

impl Layout {
    pub const ALL: [Layout; 5] =
        [Layout::Single, Layout::OneByTwo, Layout::TwoByTwo, Layout::OneByFour, Layout::PapersRow];

    pub fn name(self) -> &'static str {
        match self {
            Layout::Single => "1×1",
            Layout::OneByTwo => "1×2",
            Layout::TwoByTwo => "2×2",
            Layout::OneByFour => "1×4",
            Layout::PapersRow => "papers' row",
        }
    }

    /// (rows, columns)
    pub fn shape(self) -> (usize, usize) {
        match self {
            Layout::Single => (1, 1),
            Layout::OneByTwo => (1, 2),
            Layout::TwoByTwo => (2, 2),
            Layout::OneByFour | Layout::PapersRow => (1, 4),
        }
    }

    pub fn panel_count(self) -> usize {
        let (r, c) = self.shape();
        r * c
    }
}

/// What a panel shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PanelContent {
    /// The image alone.
    Image,
    /// Ground truth (green) vs prediction (red), overlap yellow.
    Masks,
    /// A method's map (an XAI method name, or "file: NAME" for a loaded map).
    Heatmap(String),
}

impl PanelContent {
    pub fn label(&self) -> String {
        match self {
            PanelContent::Image => "Original".into(),
            PanelContent::Masks => "GT vs prediction".into(),
            PanelContent::Heatmap(m) => method_label(m),
        }
    }
}

/// Display name of a method ("gradcam++" → "Grad-CAM++").
pub fn method_label(m: &str) -> String {
    match m {
        "gradcam" => "Grad-CAM".into(),
        "gradcam++" => "Grad-CAM++".into(),
        "xgradcam" => "XGrad-CAM".into(),
        "layercam" => "Layer-CAM".into(),
        "hirescam" => "HiRes-CAM".into(),
        "eigencam" => "Eigen-CAM".into(),
        "scorecam" => "Score-CAM".into(),
        "ablationcam" => "Ablation-CAM".into(),
        "lime" => "LIME".into(),
        "kernelshap" => "KernelSHAP".into(),
        "occlusion" => "Occlusion".into(),
        "rise" => "RISE".into(),
        "lrp" => "LRP".into(),
        "ig" => "Integrated Gradients".into(),
        "saliency" => "Saliency".into(),
        "smoothgrad" => "SmoothGrad".into(),
        other => other.to_string(),
    }
}

/// One panel of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelState {
    pub content: PanelContent,
    /// Used when the grid is not linked.
    pub view: ViewState,
}

/// Display settings shared by the panels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisplaySettings {
    pub image_colormap: Colormap,
    pub heat_colormap: Colormap,
    pub heat_opacity: f32,
    pub heat_threshold: f32,
    pub mask_opacity: f32,
    pub contour_only: bool,
    pub show_superpixels: bool,
    /// Draw the ground-truth contour over heatmaps.
    pub gt_on_maps: bool,
}

impl Default for DisplaySettings {
    fn default() -> Self {
        DisplaySettings {
            image_colormap: Colormap::Grey,
            heat_colormap: Colormap::Jet,
            heat_opacity: 0.5,
            heat_threshold: 0.0,
            mask_opacity: 0.45,
            contour_only: false,
            show_superpixels: true,
            gt_on_maps: false,
        }
    }
}

/// The grid's state.
#[derive(Debug, Clone, PartialEq)]
pub struct GridState {
    pub layout: Layout,
    /// Four panels; the layout shows the first `layout.panel_count()`.
    pub panels: Vec<PanelState>,
    pub linked: bool,
    /// The view of every panel while linked.
    pub shared: ViewState,
    /// The panel keyboard shortcuts act on when unlinked.
    pub active: usize,
    pub display: DisplaySettings,
}

/// The papers' four panels.
pub fn papers_contents() -> [PanelContent; 4] {
    [
        PanelContent::Image,
        PanelContent::Masks,
        PanelContent::Heatmap("gradcam++".into()),
        PanelContent::Heatmap("lime".into()),
    ]
}

impl GridState {
    /// The default grid for a volume: the papers' four panels, linked.
    pub fn new(view: ViewState) -> Self {
        GridState {
            layout: Layout::TwoByTwo,
            panels: papers_contents().into_iter().map(|content| PanelState { content, view }).collect(),
            linked: true,
            shared: view,
            active: 0,
            display: DisplaySettings::default(),
        }
    }

    /// The view of panel `i`.
    pub fn view(&self, i: usize) -> &ViewState {
        if self.linked {
            &self.shared
        } else {
            &self.panels[i].view
        }
    }

    pub fn view_mut(&mut self, i: usize) -> &mut ViewState {
        if self.linked {
            &mut self.shared
        } else {
            &mut self.panels[i].view
        }
    }

    /// The view keyboard shortcuts act on.
    pub fn active_view_mut(&mut self) -> &mut ViewState {
        let i = self.active.min(self.panels.len().saturating_sub(1));
        self.view_mut(i)
    }

    pub fn set_linked(&mut self, linked: bool) {
        if linked == self.linked {
            return;
        }
        if linked {
            self.shared = self.panels[self.active.min(self.panels.len() - 1)].view;
        } else {
            for p in &mut self.panels {
                p.view = self.shared;
            }
        }
        self.linked = linked;
    }

    pub fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
        if layout == Layout::PapersRow {
            for (p, c) in self.panels.iter_mut().zip(papers_contents()) {
                p.content = c;
            }
        }
    }

    /// Every view (the shared one, or each panel's).
    pub fn views_mut(&mut self) -> Vec<&mut ViewState> {
        if self.linked {
            vec![&mut self.shared]
        } else {
            self.panels.iter_mut().map(|p| &mut p.view).collect()
        }
    }

    /// Methods shown by visible panels.
    pub fn visible_methods(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.panels.iter().take(self.layout.panel_count()) {
            if let PanelContent::Heatmap(m) = &p.content {
                if !m.starts_with("file: ") && !out.contains(m) {
                    out.push(m.clone());
                }
            }
        }
        out
    }

    /// Whether a visible panel shows the masks (needs a prediction).
    pub fn shows_masks(&self) -> bool {
        self.panels.iter().take(self.layout.panel_count()).any(|p| p.content == PanelContent::Masks)
    }
}

/// What the app supplies for a heatmap panel at a slice.
#[derive(Debug, Clone, Default)]
pub struct PanelData {
    pub heat: Option<HeatmapEntry>,
    /// "computing 40%", "no model installed", an error.
    pub status: Option<String>,
}

/// What the grid reports.
#[derive(Debug, Default)]
pub struct GridResponse {
    pub readout: Option<Readout>,
    /// Some view changed (slice, pan, zoom, window).
    pub changed: bool,
}

/// Applies the keyboard shortcuts (when no text field has focus) to the active view.
pub fn handle_keys(ui: &egui::Ui, grid: &mut GridState, doc: &Document) -> bool {
    if ui.ctx().memory(|m| m.focused().is_some()) {
        return false;
    }
    let volume = doc.volume.clone();
    let view = grid.active_view_mut();
    let before = *view;
    ui.input(|i| {
        let depth = volume.depth() as i64;
        for (key, step) in [
            (egui::Key::ArrowUp, -1),
            (egui::Key::ArrowLeft, -1),
            (egui::Key::ArrowDown, 1),
            (egui::Key::ArrowRight, 1),
            (egui::Key::PageUp, -10),
            (egui::Key::PageDown, 10),
            (egui::Key::Home, -depth),
            (egui::Key::End, depth),
        ] {
            if i.key_pressed(key) {
                view.step_slice(step, &volume);
            }
        }
        for (key, n) in
            [(egui::Key::Num1, 1), (egui::Key::Num2, 2), (egui::Key::Num3, 3), (egui::Key::Num4, 4)]
        {
            if i.key_pressed(key) {
                view.apply_preset(n, &volume);
            }
        }
        if i.key_pressed(egui::Key::R) {
            view.reset(&volume);
        }
    });
    *view != before
}

/// Draws the grid in the available space.
pub fn compare_grid(
    ui: &mut egui::Ui,
    grid: &mut GridState,
    doc: &Document,
    methods: &[&str],
    panel_data: &dyn Fn(&PanelContent, usize) -> PanelData,
) -> GridResponse {
    let mut out = GridResponse { changed: handle_keys(ui, grid, doc), ..Default::default() };
    let (rows, cols) = grid.layout.shape();
    let mut area = ui.available_rect_before_wrap();
    let depth = doc.volume.depth();
    if depth > 1 && area.height() > 60.0 {
        // The slice slider: the active view's slice (every panel's when linked), 1-based as radiologists
        // count.
        let bar = Rect::from_min_size(area.min, Vec2::new(area.width(), 22.0));
        area.min.y += 26.0;
        let mut bar_ui = ui.new_child(egui::UiBuilder::new().max_rect(bar));
        let view = grid.active_view_mut();
        let mut z = view.slice.min(depth - 1);
        bar_ui.horizontal(|ui| {
            let label = ui.label("Slice");
            ui.spacing_mut().slider_width = (bar.width() - 140.0).max(60.0);
            let slider = egui::Slider::new(&mut z, 0..=depth - 1)
                .custom_formatter(move |v, _| format!("{} / {depth}", v as usize + 1))
                .custom_parser(|t| t.split('/').next()?.trim().parse::<f64>().ok().map(|v| v - 1.0));
            let _ = ui.add(slider).labelled_by(label.id);
        });
        if z != view.slice {
            view.slice = z;
            out.changed = true;
        }
    }
    ui.allocate_rect(area, egui::Sense::hover());
    let gap = 4.0;
    let header = 24.0;
    let cell = Vec2::new(
        (area.width() - gap * (cols as f32 - 1.0)) / cols as f32,
        (area.height() - gap * (rows as f32 - 1.0)) / rows as f32,
    );
    for i in 0..grid.layout.panel_count().min(grid.panels.len()) {
        let (r, c) = (i / cols, i % cols);
        let min = area.min + Vec2::new(c as f32 * (cell.x + gap), r as f32 * (cell.y + gap));
        let cell_rect = Rect::from_min_size(min, cell);
        let head = Rect::from_min_size(cell_rect.min, Vec2::new(cell.x, header));
        let image_rect = Rect::from_min_max(egui::pos2(cell_rect.min.x, head.max.y), cell_rect.max);
        if image_rect.height() < 8.0 || image_rect.width() < 8.0 {
            continue;
        }
        // Header: what the panel shows.
        let mut header_ui = ui.new_child(egui::UiBuilder::new().max_rect(head.shrink2(Vec2::new(2.0, 1.0))));
        header_ui.horizontal(|ui| {
            let current = grid.panels[i].content.label();
            super::labelled_combo(
                ui,
                ("panel_content", i),
                &format!("Panel {}", i + 1),
                current,
                120.0,
                |ui| {
                    let mut choice = grid.panels[i].content.clone();
                    ui.selectable_value(&mut choice, PanelContent::Image, "Original");
                    ui.selectable_value(&mut choice, PanelContent::Masks, "GT vs prediction");
                    ui.separator();
                    for &m in methods {
                        ui.selectable_value(
                            &mut choice,
                            PanelContent::Heatmap(m.to_string()),
                            method_label(m),
                        );
                    }
                    let mut loaded: Vec<&str> = doc
                        .heatmaps
                        .iter()
                        .filter(|h| h.method.starts_with("file: "))
                        .map(|h| h.method.as_str())
                        .collect();
                    loaded.dedup();
                    if !loaded.is_empty() {
                        ui.separator();
                        for m in loaded {
                            ui.selectable_value(&mut choice, PanelContent::Heatmap(m.to_string()), m);
                        }
                    }
                    if choice != grid.panels[i].content {
                        grid.panels[i].content = choice;
                        if grid.layout == Layout::PapersRow {
                            grid.layout = Layout::OneByFour;
                        }
                    }
                },
            );
        });

        let content = grid.panels[i].content.clone();
        let display = grid.display;
        let z_now = grid.view(i).slice.min(doc.volume.depth().saturating_sub(1));
        let data_now = match &content {
            PanelContent::Image => PanelData::default(),
            _ => panel_data(&content, z_now),
        };
        let model_caption = match &content {
            PanelContent::Heatmap(_) => {
                data_now.heat.as_ref().map(|h| h.model.clone()).filter(|m| !m.is_empty())
            }
            PanelContent::Masks => doc.prediction.as_ref().map(|p| p.model.clone()),
            PanelContent::Image => None,
        };
        if let Some(m) = model_caption {
            let r = head.shrink2(Vec2::new(4.0, 1.0));
            ui.painter_at(head).text(
                r.right_center(),
                egui::Align2::RIGHT_CENTER,
                short_model_name(&m),
                egui::FontId::proportional(12.0),
                ui.visuals().weak_text_color(),
            );
        }
        let gt = doc.ground_truth().map(|m| MaskLayer { source: m.source, mask: m.mask.clone() });
        let pred = doc.prediction.as_ref().map(|p| MaskLayer { source: p.source, mask: p.mask.clone() });
        let view = grid.view_mut(i);
        let z = view.slice.min(doc.volume.depth().saturating_sub(1));
        let data = match &content {
            PanelContent::Heatmap(_) => panel_data(&content, z),
            PanelContent::Masks => panel_data(&content, z),
            PanelContent::Image => PanelData::default(),
        };
        let mut layers = SliceLayers {
            volume_source: doc.source,
            volume: doc.volume.clone(),
            z,
            gt: None,
            pred: None,
            heat: None,
            superpixels: None,
        };
        let mut style = SliceStyle {
            window: view.window,
            image_colormap: display.image_colormap,
            heat_colormap: display.heat_colormap,
            heat_opacity: display.heat_opacity,
            heat_threshold: display.heat_threshold,
            mask_opacity: display.mask_opacity,
            contour_only: display.contour_only,
            show_superpixels: display.show_superpixels,
        };
        let mut status = data.status.clone();
        let legend = match &content {
            PanelContent::Image => Legend::None,
            PanelContent::Masks => {
                layers.gt = gt.clone();
                layers.pred = pred.filter(|_| doc.prediction.as_ref().is_some_and(|p| p.slices.contains(&z)));
                if layers.gt.is_none() && status.is_none() {
                    status = Some("no ground truth loaded".into());
                }
                Legend::Masks { gt: layers.gt.is_some(), pred: layers.pred.is_some() }
            }
            PanelContent::Heatmap(_) => match &data.heat {
                Some(h) => {
                    layers.heat = Some(HeatLayer {
                        source: h.source,
                        values: h.values.clone(),
                        min: h.min,
                        max: h.max,
                        signed: h.signed,
                    });
                    layers.superpixels = h
                        .superpixels
                        .as_ref()
                        .map(|(source, labels)| LabelLayer { source: *source, labels: labels.clone() });
                    if display.gt_on_maps {
                        layers.gt = gt.clone();
                        style.contour_only = true;
                    }
                    if let Some((n, iou, rho)) = h.stability {
                        let s = format!("stability over {n} seeds: top-10% IoU {iou:.2}, Spearman {rho:.2}");
                        status = Some(match status {
                            Some(prev) => format!("{prev} · {s}"),
                            None => s,
                        });
                    }
                    Legend::Colormap { map: display.heat_colormap, min: h.min, max: h.max, signed: h.signed }
                }
                None => Legend::None,
            },
        };
        // The header names the panel; no caption on the image.
        let caption = String::new();
        let heat_for_readout = data.heat.clone();
        let resp = slice_view(
            ui,
            image_rect,
            view,
            PanelPaint { panel: i as u64 + 1, layers, style, caption: &caption, legend, status },
        );
        out.changed |= resp.changed;
        if resp.hovered {
            grid.active = i;
        }
        if let Some((x, y)) = resp.cursor_pixel {
            let z = grid.view(i).slice.min(doc.volume.depth().saturating_sub(1));
            let w = doc.volume.width();
            let value = doc.volume.get(z, y, x).unwrap_or(0.0);
            let mut labels = Vec::new();
            for m in &doc.masks {
                if let Some(&l) = m.mask.slice(z).get(y * w + x) {
                    if l != 0 {
                        labels.push((m.name.clone(), l));
                    }
                }
            }
            if let Some(p) = &doc.prediction {
                if let Some(&l) = p.mask.slice(z).get(y * w + x) {
                    if l != 0 {
                        labels.push(("prediction".into(), l));
                    }
                }
            }
            let heat = heat_for_readout
                .filter(|h| h.slice == z)
                .and_then(|h| h.value_at(y, x, w).map(|v| (method_label(&h.method), v)));
            out.readout = Some(Readout { x, y, z, value, unit: doc.volume.unit, heat, labels });
        }
    }
    out
}

/// A model shown in a panel header: a built-in name as is, a manifest path as its folder name.
fn short_model_name(m: &str) -> String {
    let p = std::path::Path::new(m);
    if p.file_name().is_some_and(|f| f == "model.toml") {
        if let Some(dir) = p.parent().and_then(|d| d.file_name()) {
            return dir.to_string_lossy().into_owned();
        }
    }
    p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| m.to_string())
}
