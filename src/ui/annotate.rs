//! The annotation review panel: the image with the original mask's contour and the edited mask's fill,
//! tools, undo/redo, decisions, navigation, filters, progress and Dice; keyboard shortcuts with a
//! visible cheat sheet. [`show`] only reads the session and returns [`Command`]s; [`execute`] is the one
//! place that changes it. [`AnnotateApp`] is the small `eframe::App` behind `radlens annotate QUEUE`.
//!
//! The image is one egui texture (grey by the window, edited labels blended in colour, original
//! contour in yellow), rebuilt only when the case, slice, mask, window or overlay switches change —
//! never per frame.

use std::path::Path;

use eframe::egui;
use egui::{Color32, ColorImage, Key, Modifiers, Pos2, Rect, Sense, TextureHandle, TextureOptions, Vec2};

use crate::imaging::{LabelSelector, WindowLevel};
use crate::session::annotate::{Connectivity, GrowCriterion};
use crate::session::review::{Filter, Status};
use crate::session::reviewer::{OpenCase, ReviewSession};

/// The editing tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tool {
    #[default]
    Brush,
    Eraser,
    Fill,
    /// Click vertices (Enter closes) or drag a lasso.
    Polygon,
    Grow,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Brush => "Brush",
            Tool::Eraser => "Eraser",
            Tool::Fill => "Fill",
            Tool::Polygon => "Polygon",
            Tool::Grow => "Grow",
        }
    }
}

/// How region growing picks values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GrowMode {
    /// Within [lo, hi] (HU for CT).
    #[default]
    Range,
    /// Within ± deviation of the seed value.
    Deviation,
}

/// What the panel asks for; [`execute`] carries it out on the session.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Command {
    BeginStroke { z: usize, p: (f64, f64), radius_mm: f64, label: u16, erase: bool },
    StrokeTo((f64, f64)),
    EndStroke,
    Fill { z: usize, seed: (usize, usize), label: u16 },
    Polygon { z: usize, points: Vec<(f64, f64)>, label: u16 },
    Grow { z: usize, seed: (usize, usize), criterion: GrowCriterion, connectivity: Connectivity, label: u16 },
    CopySlice { from: usize, to: usize },
    Undo,
    Redo,
    SetStatus(Status, String),
    Next,
    Previous,
    SetFilter(Filter),
}

/// Runtime state of the panel (tool settings, slice, window, the cached texture).
pub struct AnnotateUi {
    pub tool: Tool,
    pub label: u16,
    pub brush_radius_mm: f64,
    pub grow_mode: GrowMode,
    pub hu_lo: f32,
    pub hu_hi: f32,
    pub deviation: f32,
    pub eight_connected: bool,
    pub slice: usize,
    pub window: Option<WindowLevel>,
    pub comment: String,
    pub show_original: bool,
    pub show_edited: bool,
    pub show_help: bool,
    /// The last message (an error or a note) shown in the status line.
    pub message: Option<String>,
    /// Where the image was drawn in the last frame (points), for pointer mapping (and tests).
    pub image_rect: Option<Rect>,
    /// How many times the texture has been (re)built: stays put while nothing changes.
    pub texture_builds: u64,
    polygon: Vec<(f64, f64)>,
    lasso: bool,
    texture: Option<TextureHandle>,
    texture_key: Option<TextureKey>,
    /// The case the per-case settings (slice, window, comment) belong to.
    case_index: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct TextureKey {
    case: usize,
    slice: usize,
    generation: u64,
    window: (u32, u32),
    original: bool,
    edited: bool,
}

impl Default for AnnotateUi {
    fn default() -> Self {
        AnnotateUi {
            tool: Tool::Brush,
            label: 1,
            brush_radius_mm: 3.0,
            grow_mode: GrowMode::Range,
            hu_lo: 100.0,
            hu_hi: 150.0,
            deviation: 50.0,
            eight_connected: false,
            slice: 0,
            window: None,
            comment: String::new(),
            show_original: true,
            show_edited: true,
            show_help: true,
            message: None,
            image_rect: None,
            texture_builds: 0,
            polygon: Vec::new(),
            lasso: false,
            texture: None,
            texture_key: None,
            case_index: None,
        }
    }
}

impl AnnotateUi {
    /// Resets the per-case settings when the case on screen changed.
    fn sync_case(&mut self, session: &ReviewSession) {
        let idx = session.case().map(|c| c.index);
        if idx != self.case_index {
            self.case_index = idx;
            self.polygon.clear();
            self.comment = session.current_review().comment;
            if let Some(c) = session.case() {
                self.slice = c.depth() / 2;
                self.window = Some(c.image.default_window());
            }
        }
    }

    fn criterion(&self) -> GrowCriterion {
        match self.grow_mode {
            GrowMode::Range => {
                GrowCriterion::Range { lo: self.hu_lo.min(self.hu_hi), hi: self.hu_hi.max(self.hu_lo) }
            }
            GrowMode::Deviation => GrowCriterion::Deviation(self.deviation.abs()),
        }
    }

    fn connectivity(&self) -> Connectivity {
        if self.eight_connected {
            Connectivity::Eight
        } else {
            Connectivity::Four
        }
    }
}

/// Colour of a label in the edited fill.
pub fn label_colour(label: u16) -> Color32 {
    const COLOURS: [Color32; 6] = [
        Color32::from_rgb(255, 40, 40),
        Color32::from_rgb(40, 200, 40),
        Color32::from_rgb(60, 120, 255),
        Color32::from_rgb(255, 140, 0),
        Color32::from_rgb(200, 60, 220),
        Color32::from_rgb(0, 200, 200),
    ];
    COLOURS[(label.max(1) as usize - 1) % COLOURS.len()]
}

/// The composited slice: grey image, edited labels blended at 45 %, original contour in yellow.
pub fn compose_slice(
    case: &OpenCase,
    z: usize,
    window: WindowLevel,
    original: bool,
    edited: bool,
) -> ColorImage {
    let grid = *case.editor.grid();
    let (w, h) = (grid.width, grid.height);
    let image = if z < case.image.depth() { case.image.slice(z) } else { &[] };
    let labels = case.editor.slice(z);
    let orig = if z < case.original.dims()[0] { case.original.slice(z) } else { &[] };
    let mut px = Vec::with_capacity(w * h);
    for i in 0..w * h {
        let g = image.get(i).map_or(0, |&v| window.to_u8(v));
        let mut c = [g as f32; 3];
        if edited {
            if let Some(&l) = labels.get(i) {
                if l > 0 {
                    let lc = label_colour(l);
                    for (k, v) in [lc.r(), lc.g(), lc.b()].into_iter().enumerate() {
                        c[k] = c[k] * 0.55 + v as f32 * 0.45;
                    }
                }
            }
        }
        if original && !orig.is_empty() {
            let fg = |j: usize| orig.get(j).is_some_and(|&l| l > 0);
            if fg(i) {
                let (x, y) = (i % w, i / w);
                let edge = x == 0
                    || y == 0
                    || x + 1 == w
                    || y + 1 == h
                    || !fg(i - 1)
                    || !fg(i + 1)
                    || !fg(i - w)
                    || !fg(i + w);
                if edge {
                    c = [255.0, 230.0, 0.0];
                }
            }
        }
        px.push(Color32::from_rgb(c[0] as u8, c[1] as u8, c[2] as u8));
    }
    ColorImage::new([w, h], px)
}

/// The shortcuts, as shown in the cheat sheet.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("B / E / F / L / G", "brush / eraser / fill / polygon / grow"),
    ("[  ]", "brush smaller / larger"),
    ("1 - 9", "label"),
    ("Ctrl+Z / Ctrl+Y", "undo / redo"),
    ("A / R / X", "accept / reject / needs fix"),
    ("N / P", "next / previous case"),
    ("Up / Down, wheel", "slice up / down"),
    ("Ctrl+Up / Ctrl+Down", "copy mask from slice above / below"),
    ("Enter / Esc", "close / drop polygon"),
    ("O / M", "original contour / edited fill on-off"),
    ("H", "this cheat sheet"),
];

/// Draws the panel and returns what the user asked for.
pub fn show(ui: &mut egui::Ui, st: &mut AnnotateUi, session: &ReviewSession) -> Vec<Command> {
    st.sync_case(session);
    let mut cmds = Vec::new();
    let depth = session.case().map_or(1, |c| c.depth());
    keyboard(ui, st, session, depth, &mut cmds);

    egui::Panel::top("annotate_top").show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            let (done, total) = session.progress();
            ui.label(format!("Case {} of {}", session.current_index() + 1, total));
            ui.label(format!("(reviewed {done} of {total})"));
            ui.separator();
            ui.label(session.current_id());
            ui.separator();
            let status = session.current_review().status;
            ui.label(format!("status: {}", status.name()));
            if ui.button("< Previous").clicked() {
                cmds.push(Command::Previous);
            }
            if ui.button("Next >").clicked() {
                cmds.push(Command::Next);
            }
            ui.separator();
            ui.label("Show:");
            for f in Filter::ALL {
                if ui.selectable_label(session.filter() == f, f.name()).clicked() {
                    cmds.push(Command::SetFilter(f));
                }
            }
        });
    });

    egui::Panel::left("annotate_tools").resizable(false).default_size(230.0).show(ui, |ui| {
        tools_panel(ui, st, session, depth, &mut cmds);
    });

    egui::Panel::bottom("annotate_status").show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            if let Some(c) = session.case() {
                let sel = LabelSelector::Any;
                ui.label(format!("Dice original vs edited: {:.4}", c.dice(sel)));
                ui.separator();
                ui.label(format!("edits: {}", c.editor.history().undo_len()));
                if let Some(r) = &c.revision {
                    ui.separator();
                    ui.label(format!(
                        "saved: {}",
                        r.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                    ));
                }
            }
            if let Some(m) = &st.message {
                ui.separator();
                ui.colored_label(Color32::from_rgb(255, 170, 60), m);
            }
        });
    });

    egui::CentralPanel::default().show(ui, |ui| match session.case() {
        Some(case) => image_view(ui, st, case, &mut cmds),
        None => {
            st.image_rect = None;
            ui.label(session.case_error().unwrap_or("no case"));
        }
    });
    cmds
}

fn keyboard(
    ui: &egui::Ui,
    st: &mut AnnotateUi,
    session: &ReviewSession,
    depth: usize,
    cmds: &mut Vec<Command>,
) {
    if ui.ctx().text_edit_focused() {
        return;
    }
    let z = st.slice;
    ui.input_mut(|i| {
        let none = Modifiers::NONE;
        if i.consume_key(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z)
            || i.consume_key(Modifiers::COMMAND, Key::Y)
        {
            cmds.push(Command::Redo);
        }
        if i.consume_key(Modifiers::COMMAND, Key::Z) {
            cmds.push(Command::Undo);
        }
        // Slices ascend inferior → superior, so "above" is z + 1 (as ↑ moves up a slice).
        if i.consume_key(Modifiers::COMMAND, Key::ArrowUp) && z + 1 < depth {
            cmds.push(Command::CopySlice { from: z + 1, to: z });
        }
        if i.consume_key(Modifiers::COMMAND, Key::ArrowDown) && z > 0 {
            cmds.push(Command::CopySlice { from: z - 1, to: z });
        }
        for (key, tool) in [
            (Key::B, Tool::Brush),
            (Key::E, Tool::Eraser),
            (Key::F, Tool::Fill),
            (Key::L, Tool::Polygon),
            (Key::G, Tool::Grow),
        ] {
            if i.consume_key(none, key) {
                st.tool = tool;
                st.polygon.clear();
            }
        }
        if i.consume_key(none, Key::OpenBracket) {
            st.brush_radius_mm = (st.brush_radius_mm / 1.25).max(0.1);
        }
        if i.consume_key(none, Key::CloseBracket) {
            st.brush_radius_mm = (st.brush_radius_mm * 1.25).min(200.0);
        }
        let digits = [
            Key::Num1,
            Key::Num2,
            Key::Num3,
            Key::Num4,
            Key::Num5,
            Key::Num6,
            Key::Num7,
            Key::Num8,
            Key::Num9,
        ];
        for (n, key) in digits.into_iter().enumerate() {
            if i.consume_key(none, key) {
                st.label = n as u16 + 1;
            }
        }
        for (key, status) in
            [(Key::A, Status::Accepted), (Key::R, Status::Rejected), (Key::X, Status::NeedsFix)]
        {
            if i.consume_key(none, key) {
                cmds.push(Command::SetStatus(status, st.comment.clone()));
            }
        }
        if i.consume_key(none, Key::N) {
            cmds.push(Command::Next);
        }
        if i.consume_key(none, Key::P) {
            cmds.push(Command::Previous);
        }
        if i.consume_key(none, Key::ArrowUp) && st.slice + 1 < depth {
            st.slice += 1;
        }
        if i.consume_key(none, Key::ArrowDown) && st.slice > 0 {
            st.slice -= 1;
        }
        if i.consume_key(none, Key::Enter) && st.polygon.len() >= 3 {
            cmds.push(Command::Polygon { z, points: std::mem::take(&mut st.polygon), label: st.label });
        }
        if i.consume_key(none, Key::Escape) {
            st.polygon.clear();
        }
        if i.consume_key(none, Key::O) {
            st.show_original = !st.show_original;
        }
        if i.consume_key(none, Key::M) {
            st.show_edited = !st.show_edited;
        }
        if i.consume_key(none, Key::H) {
            st.show_help = !st.show_help;
        }
    });
    let _ = session;
}

fn tools_panel(
    ui: &mut egui::Ui,
    st: &mut AnnotateUi,
    session: &ReviewSession,
    depth: usize,
    cmds: &mut Vec<Command>,
) {
    ui.heading("Tools");
    ui.horizontal_wrapped(|ui| {
        for tool in [Tool::Brush, Tool::Eraser, Tool::Fill, Tool::Polygon, Tool::Grow] {
            if ui.selectable_label(st.tool == tool, tool.name()).clicked() {
                st.tool = tool;
                st.polygon.clear();
            }
        }
    });
    ui.horizontal(|ui| {
        let l = ui.label("Brush (mm)");
        ui.add(egui::DragValue::new(&mut st.brush_radius_mm).range(0.1..=200.0).speed(0.1)).labelled_by(l.id);
    });
    ui.horizontal(|ui| {
        let l = ui.label("Label");
        ui.add(egui::DragValue::new(&mut st.label).range(1..=u16::MAX)).labelled_by(l.id);
        let (rect, _) = ui.allocate_exact_size(Vec2::splat(14.0), Sense::hover());
        ui.painter().rect_filled(rect, 2.0, label_colour(st.label));
    });
    if let Some(c) = session.case() {
        let present = c.original.present_labels();
        if present.len() > 1 {
            ui.horizontal_wrapped(|ui| {
                ui.label("in mask:");
                for l in present {
                    if ui.selectable_label(st.label == l, l.to_string()).clicked() {
                        st.label = l;
                    }
                }
            });
        }
    }
    ui.separator();
    ui.label("Region growing");
    ui.horizontal(|ui| {
        ui.radio_value(&mut st.grow_mode, GrowMode::Range, "range");
        ui.radio_value(&mut st.grow_mode, GrowMode::Deviation, "+/- deviation");
    });
    match st.grow_mode {
        GrowMode::Range => {
            ui.horizontal(|ui| {
                let l = ui.label("from");
                ui.add(egui::DragValue::new(&mut st.hu_lo).speed(1.0)).labelled_by(l.id);
                let l = ui.label("to");
                ui.add(egui::DragValue::new(&mut st.hu_hi).speed(1.0)).labelled_by(l.id);
            });
        }
        GrowMode::Deviation => {
            ui.horizontal(|ui| {
                let l = ui.label("+/-");
                ui.add(egui::DragValue::new(&mut st.deviation).range(0.0..=10_000.0).speed(1.0))
                    .labelled_by(l.id);
            });
        }
    }
    ui.checkbox(&mut st.eight_connected, "8-connected (diagonals join)");
    ui.separator();
    ui.horizontal(|ui| {
        if ui
            .add_enabled(
                session.case().is_some_and(|c| c.editor.history().can_undo()),
                egui::Button::new("Undo"),
            )
            .clicked()
        {
            cmds.push(Command::Undo);
        }
        if ui
            .add_enabled(
                session.case().is_some_and(|c| c.editor.history().can_redo()),
                egui::Button::new("Redo"),
            )
            .clicked()
        {
            cmds.push(Command::Redo);
        }
    });
    ui.horizontal(|ui| {
        if ui.add_enabled(st.slice + 1 < depth, egui::Button::new("Copy from above")).clicked() {
            cmds.push(Command::CopySlice { from: st.slice + 1, to: st.slice });
        }
        if ui.add_enabled(st.slice > 0, egui::Button::new("Copy from below")).clicked() {
            cmds.push(Command::CopySlice { from: st.slice - 1, to: st.slice });
        }
    });
    if depth > 1 {
        ui.add(egui::Slider::new(&mut st.slice, 0..=depth - 1).text("slice"));
    }
    ui.checkbox(&mut st.show_original, "original contour (yellow)");
    ui.checkbox(&mut st.show_edited, "edited fill");
    ui.separator();
    ui.heading("Decision");
    let l = ui.label("Comment");
    ui.add(egui::TextEdit::multiline(&mut st.comment).desired_rows(2).desired_width(f32::INFINITY))
        .labelled_by(l.id);
    ui.horizontal(|ui| {
        if ui.button("Accept").clicked() {
            cmds.push(Command::SetStatus(Status::Accepted, st.comment.clone()));
        }
        if ui.button("Reject").clicked() {
            cmds.push(Command::SetStatus(Status::Rejected, st.comment.clone()));
        }
        if ui.button("Needs fix").clicked() {
            cmds.push(Command::SetStatus(Status::NeedsFix, st.comment.clone()));
        }
    });
    ui.separator();
    if ui.selectable_label(st.show_help, "Shortcuts (H)").clicked() {
        st.show_help = !st.show_help;
    }
    if st.show_help {
        egui::Grid::new("annotate_shortcuts").num_columns(2).show(ui, |ui| {
            for (k, what) in SHORTCUTS {
                ui.monospace(*k);
                ui.label(*what);
                ui.end_row();
            }
        });
    }
}

fn image_view(ui: &mut egui::Ui, st: &mut AnnotateUi, case: &OpenCase, cmds: &mut Vec<Command>) {
    let grid = *case.editor.grid();
    let (w, h) = (grid.width, grid.height);
    let z = st.slice.min(case.depth().saturating_sub(1));
    st.slice = z;
    let window = st.window.unwrap_or_else(|| case.image.default_window());
    let key = TextureKey {
        case: case.index,
        slice: z,
        generation: case.editor.generation(),
        window: (window.center.to_bits(), window.width.to_bits()),
        original: st.show_original,
        edited: st.show_edited,
    };
    if st.texture_key != Some(key) || st.texture.is_none() {
        let img = compose_slice(case, z, window, st.show_original, st.show_edited);
        match &mut st.texture {
            Some(t) => t.set(img, TextureOptions::NEAREST),
            None => st.texture = Some(ui.ctx().load_texture("annotate_slice", img, TextureOptions::NEAREST)),
        }
        st.texture_key = Some(key);
        st.texture_builds += 1;
    }
    // Fit the slice, keeping its physical aspect ratio.
    let [sy, sx] = grid.spacing_mm;
    let (mm_w, mm_h) = (w as f64 * sx, h as f64 * sy);
    let avail = ui.available_size();
    let scale = (avail.x as f64 / mm_w).min(avail.y as f64 / mm_h).max(1e-6);
    let size = Vec2::new((mm_w * scale) as f32, (mm_h * scale) as f32);
    let (rect, resp) = ui.allocate_exact_size(size, Sense::click_and_drag());
    st.image_rect = Some(rect);
    if let Some(t) = &st.texture {
        ui.painter().image(t.id(), rect, Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)), Color32::WHITE);
    }
    let to_px = |p: Pos2| -> (f64, f64) {
        (
            ((p.x - rect.min.x) / rect.width()) as f64 * w as f64,
            ((p.y - rect.min.y) / rect.height()) as f64 * h as f64,
        )
    };
    let to_screen = |p: (f64, f64)| -> Pos2 {
        Pos2::new(
            rect.min.x + (p.0 / w as f64) as f32 * rect.width(),
            rect.min.y + (p.1 / h as f64) as f32 * rect.height(),
        )
    };
    let seed_of = |p: (f64, f64)| grid.pixel_at(p);

    if resp.hovered() && case.depth() > 1 {
        // One slice per wheel event (not the smoothed delta, which would keep stepping for frames).
        let steps: i64 = ui.input(|i| {
            i.events
                .iter()
                .filter_map(|e| match e {
                    egui::Event::MouseWheel { delta, .. } if delta.y != 0.0 => Some(delta.y.signum() as i64),
                    _ => None,
                })
                .sum()
        });
        st.slice = (z as i64 + steps).clamp(0, case.depth() as i64 - 1) as usize;
    }

    let press = ui.input(|i| i.pointer.press_origin());
    let now = resp.interact_pointer_pos();
    match st.tool {
        Tool::Brush | Tool::Eraser => {
            let erase = st.tool == Tool::Eraser;
            if resp.drag_started() {
                if let Some(p) = press.or(now) {
                    cmds.push(Command::BeginStroke {
                        z,
                        p: to_px(p),
                        radius_mm: st.brush_radius_mm,
                        label: st.label,
                        erase,
                    });
                }
            }
            if resp.dragged() {
                if let Some(p) = now {
                    cmds.push(Command::StrokeTo(to_px(p)));
                }
            }
            if resp.drag_stopped() {
                cmds.push(Command::EndStroke);
            }
            if resp.clicked() {
                if let Some(p) = now {
                    cmds.push(Command::BeginStroke {
                        z,
                        p: to_px(p),
                        radius_mm: st.brush_radius_mm,
                        label: st.label,
                        erase,
                    });
                    cmds.push(Command::EndStroke);
                }
            }
        }
        Tool::Fill => {
            if let Some(seed) = resp.clicked().then_some(now).flatten().and_then(|p| seed_of(to_px(p))) {
                cmds.push(Command::Fill { z, seed, label: st.label });
            }
        }
        Tool::Grow => {
            if let Some(seed) = resp.clicked().then_some(now).flatten().and_then(|p| seed_of(to_px(p))) {
                cmds.push(Command::Grow {
                    z,
                    seed,
                    criterion: st.criterion(),
                    connectivity: st.connectivity(),
                    label: st.label,
                });
            }
        }
        Tool::Polygon => {
            if resp.drag_started() {
                st.polygon.clear();
                st.lasso = true;
                if let Some(p) = press {
                    st.polygon.push(to_px(p));
                }
            }
            if resp.dragged() && st.lasso {
                if let Some(p) = now {
                    st.polygon.push(to_px(p));
                }
            }
            if resp.drag_stopped() && st.lasso {
                st.lasso = false;
                if st.polygon.len() >= 3 {
                    cmds.push(Command::Polygon {
                        z,
                        points: std::mem::take(&mut st.polygon),
                        label: st.label,
                    });
                }
                st.polygon.clear();
            }
            if resp.double_clicked() && st.polygon.len() >= 3 {
                cmds.push(Command::Polygon { z, points: std::mem::take(&mut st.polygon), label: st.label });
            } else if resp.clicked() {
                if let Some(p) = now {
                    st.polygon.push(to_px(p));
                }
            }
            if st.polygon.len() > 1 {
                let pts: Vec<Pos2> = st.polygon.iter().map(|&p| to_screen(p)).collect();
                ui.painter()
                    .add(egui::Shape::line(pts, egui::Stroke::new(1.5, Color32::from_rgb(0, 255, 255))));
            }
        }
    }
    // Brush outline under the pointer, so the size in mm is visible.
    if matches!(st.tool, Tool::Brush | Tool::Eraser) {
        if let Some(p) = resp.hover_pos() {
            let r = Vec2::new(
                (st.brush_radius_mm / sx / w as f64) as f32 * rect.width(),
                (st.brush_radius_mm / sy / h as f64) as f32 * rect.height(),
            );
            let shape = egui::epaint::EllipseShape::stroke(p, r, egui::Stroke::new(1.0, Color32::WHITE));
            ui.painter().add(shape);
        }
    }
    if case.depth() > 1 {
        ui.painter().text(
            rect.left_top() + Vec2::new(6.0, 6.0),
            egui::Align2::LEFT_TOP,
            format!("slice {} / {}", z + 1, case.depth()),
            egui::FontId::proportional(13.0),
            Color32::WHITE,
        );
    }
}

/// Carries out the panel's commands on the session; errors go to the status line.
pub fn execute(session: &mut ReviewSession, st: &mut AnnotateUi, cmds: Vec<Command>) {
    for cmd in cmds {
        let result = match cmd {
            Command::BeginStroke { z, p, radius_mm, label, erase } => {
                session.begin_stroke(z, p, radius_mm, label, erase);
                Ok(())
            }
            Command::StrokeTo(p) => {
                session.stroke_to(p);
                Ok(())
            }
            Command::EndStroke => session.end_stroke(),
            Command::Fill { z, seed, label } => session.flood_fill(z, seed, label).map(|_| ()),
            Command::Polygon { z, points, label } => session.polygon(z, &points, label).map(|_| ()),
            Command::Grow { z, seed, criterion, connectivity, label } => {
                session.region_grow(z, seed, criterion, connectivity, label).map(|n| {
                    if n == 0 {
                        st.message =
                            Some("region growing selected nothing new (seed outside the range?)".into());
                    }
                })
            }
            Command::CopySlice { from, to } => session.copy_slice(from, to, None).map(|_| ()),
            Command::Undo => session.undo().map(|_| ()),
            Command::Redo => session.redo().map(|_| ()),
            Command::SetStatus(status, comment) => session.set_status(status, &comment),
            Command::Next => session.next().map(|moved| {
                if !moved {
                    st.message = Some("no next case under this filter".into());
                }
            }),
            Command::Previous => session.previous().map(|moved| {
                if !moved {
                    st.message = Some("no previous case under this filter".into());
                }
            }),
            Command::SetFilter(f) => session.set_filter(f),
        };
        if let Err(e) = result {
            st.message = Some(e.to_string());
        }
    }
}

/// The window behind `radlens annotate QUEUE`.
pub struct AnnotateApp {
    pub session: ReviewSession,
    pub ui_state: AnnotateUi,
}

impl AnnotateApp {
    pub fn new(session: ReviewSession) -> Self {
        let mut ui_state = AnnotateUi::default();
        if !session.queue.warnings.is_empty() {
            ui_state.message =
                Some(format!("{} image(s) without a mask were skipped", session.queue.warnings.len()));
        }
        AnnotateApp { session, ui_state }
    }

    /// One frame: draw, then execute what was asked.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let cmds = show(ui, &mut self.ui_state, &self.session);
        execute(&mut self.session, &mut self.ui_state, cmds);
    }
}

impl eframe::App for AnnotateApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
    }
}

/// Opens the review window on a queue (blocks until it is closed).
pub fn run_window(queue: &Path, annotator: &str) -> Result<(), String> {
    let session = ReviewSession::open(queue, annotator).map_err(|e| e.to_string())?;
    let title = format!("radlens annotate — {}", queue.display());
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_inner_size([1200.0, 800.0]).with_title(title.clone()),
        ..Default::default()
    };
    eframe::run_native(&title, options, Box::new(|_cc| Ok(Box::new(AnnotateApp::new(session)))))
        .map_err(|e| format!("cannot open the window ({e})"))
}
