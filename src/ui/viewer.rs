//! One slice view: the GPU-drawn slice with its overlays, and the interactions radiologists expect —
//! wheel and arrow keys move through slices, Ctrl+wheel zooms about the cursor, drag pans, right-drag
//! changes window/level (horizontal: width, vertical: level), keys 1–4 pick presets, R resets the view.
//! On top: orientation letters, a scale bar in mm, the caption and colour legend.

use eframe::egui::{self, Color32, Pos2, Rect, Vec2};
use eframe::egui_wgpu;

use crate::imaging::{auto_window, Unit, Volume, WindowLevel, WindowPreset};
use crate::render::{Colormap, SliceCallback, SliceLayers, SliceStyle, ViewTransform};

/// Slice, pan, zoom and window of a view (shared by linked panels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewState {
    pub slice: usize,
    /// 1 = the slice fits the panel.
    pub zoom: f32,
    /// Image pixel coordinates shown at the panel centre, relative to the image centre.
    pub pan: Vec2,
    pub window: WindowLevel,
}

impl ViewState {
    /// The opening view of a volume: middle slice, fitted, its default window.
    pub fn for_volume(volume: &Volume) -> Self {
        ViewState { slice: volume.depth() / 2, zoom: 1.0, pan: Vec2::ZERO, window: volume.default_window() }
    }

    /// Where the image sits in `rect`.
    pub fn transform(&self, rect: Rect, volume: &Volume) -> ViewTransform {
        let [_, h, w] = volume.dims();
        let (sy, sx) = (volume.spacing_mm[1] as f32, volume.spacing_mm[2] as f32);
        // Fit the physical extent (mm), so anisotropic pixels keep their true aspect.
        let fit = (rect.width() / (w as f32 * sx)).min(rect.height() / (h as f32 * sy)).max(1e-6);
        let points_per_mm = fit * self.zoom;
        ViewTransform {
            centre: rect.center(),
            image_centre: Vec2::new(w as f32 / 2.0, h as f32 / 2.0) + self.pan,
            points_per_pixel: Vec2::new(points_per_mm * sx, points_per_mm * sy),
        }
    }

    /// Zooms by `factor` keeping the image point under `cursor` in place.
    pub fn zoom_about(&mut self, cursor: Pos2, factor: f32, rect: Rect, volume: &Volume) {
        let before = self.transform(rect, volume).to_image(cursor);
        self.zoom = (self.zoom * factor).clamp(0.1, 64.0);
        let after = self.transform(rect, volume).to_image(cursor);
        self.pan += before - after;
    }

    /// Moves `steps` slices (clamped).
    pub fn step_slice(&mut self, steps: i64, volume: &Volume) {
        let last = volume.depth().saturating_sub(1) as i64;
        self.slice = (self.slice as i64 + steps).clamp(0, last) as usize;
    }

    /// Right-drag window/level: `delta` in points; wider to the right, brighter (lower level) upwards.
    pub fn drag_window(&mut self, delta: Vec2, volume: &Volume) {
        // Scale the sensitivity to the data: a full 400-point drag spans about the value range.
        let (lo, hi) = volume.min_max();
        let per_point = ((hi - lo).abs() / 400.0).max(1e-3);
        let width = (self.window.width + delta.x * per_point).max(1.0);
        let center = self.window.center + delta.y * per_point;
        self.window = WindowLevel::new(center, width);
    }

    /// Keys 1–4: lung, mediastinum, bone (HU studies), 4 = auto-window of the current slice. Presets in
    /// HU mean nothing on raw data, where every key gives the auto-window.
    pub fn apply_preset(&mut self, key: usize, volume: &Volume) {
        let z = self.slice.min(volume.depth().saturating_sub(1));
        self.window = match (key, volume.unit) {
            (1, Unit::Hu) => WindowPreset::Lung.window(),
            (2, Unit::Hu) => WindowPreset::Mediastinum.window(),
            (3, Unit::Hu) => WindowPreset::Bone.window(),
            _ => auto_window(volume.slice(z), 0.5, 99.5),
        };
    }

    /// R: fit, centred, default window; the slice stays.
    pub fn reset(&mut self, volume: &Volume) {
        let slice = self.slice;
        *self = ViewState { slice, ..ViewState::for_volume(volume) };
    }
}

/// What the cursor is over.
#[derive(Debug, Clone, PartialEq)]
pub struct Readout {
    pub x: usize,
    pub y: usize,
    pub z: usize,
    pub value: f32,
    pub unit: Unit,
    pub heat: Option<(String, f32)>,
    /// (mask name, label) of every mask with a non-zero label here.
    pub labels: Vec<(String, u16)>,
}

impl Readout {
    pub fn text(&self) -> String {
        let value = match self.unit {
            Unit::Hu => format!("{:.0} HU", self.value),
            Unit::Raw => format!("{:.1}", self.value),
        };
        let mut s = format!("x {}  y {}  z {}   {value}", self.x, self.y, self.z);
        if let Some((name, v)) = &self.heat {
            s.push_str(&format!("   {name} {v:.3}"));
        }
        for (name, l) in &self.labels {
            s.push_str(&format!("   {name}: {l}"));
        }
        s
    }
}

/// A legend drawn at the bottom of a panel.
#[derive(Debug, Clone, PartialEq)]
pub enum Legend {
    None,
    /// GT green, prediction red, overlap yellow.
    Masks {
        gt: bool,
        pred: bool,
    },
    /// A colour bar from `min` to `max`.
    Colormap {
        map: Colormap,
        min: f32,
        max: f32,
        signed: bool,
    },
}

/// Everything one panel draws this frame.
pub struct PanelPaint<'a> {
    pub panel: u64,
    pub layers: SliceLayers,
    pub style: SliceStyle,
    pub caption: &'a str,
    pub legend: Legend,
    /// A line under the caption: progress, "no model installed", an error.
    pub status: Option<String>,
}

/// What a view reports back.
#[derive(Debug, Default)]
pub struct ViewResponse {
    pub hovered: bool,
    /// Image pixel under the cursor (x, y), if over the image.
    pub cursor_pixel: Option<(usize, usize)>,
    pub changed: bool,
}

/// Draws a slice view into `rect` and applies the pointer interactions to `view`.
pub fn slice_view(ui: &mut egui::Ui, rect: Rect, view: &mut ViewState, paint: PanelPaint) -> ViewResponse {
    let volume = paint.layers.volume.clone();
    let id = ui.scope_id().with(("slice_view", paint.panel));
    let response = ui.interact(rect, id, egui::Sense::click_and_drag());
    let mut out = ViewResponse { hovered: response.hovered() || response.dragged(), ..Default::default() };
    let before = *view;

    if response.hovered() {
        let events = ui.input(|i| i.events.clone());
        for e in events {
            if let egui::Event::MouseWheel { unit, delta, modifiers, .. } = e {
                let lines = match unit {
                    egui::MouseWheelUnit::Line => delta.y,
                    egui::MouseWheelUnit::Point => delta.y / 40.0,
                    egui::MouseWheelUnit::Page => delta.y * 10.0,
                };
                if modifiers.ctrl || modifiers.command {
                    if let Some(p) = response.hover_pos() {
                        view.zoom_about(p, (lines * 0.15).exp(), rect, &volume);
                    }
                } else if lines != 0.0 {
                    // Wheel towards the user (content moves up) = the next slice.
                    let steps = -(lines.signum() * lines.abs().round().max(1.0)) as i64;
                    view.step_slice(steps, &volume);
                }
            }
        }
    }
    if response.dragged_by(egui::PointerButton::Primary) || response.dragged_by(egui::PointerButton::Middle) {
        let t = view.transform(rect, &volume);
        view.pan -= response.drag_delta() / t.points_per_pixel;
    }
    if response.dragged_by(egui::PointerButton::Secondary) {
        view.drag_window(response.drag_delta(), &volume);
    }
    if response.double_clicked() {
        view.reset(&volume);
    }
    out.changed = *view != before;

    let transform = view.transform(rect, &volume);
    let mut layers = paint.layers;
    layers.z = view.slice.min(volume.depth().saturating_sub(1));
    let z = layers.z;
    let style = SliceStyle { window: view.window, ..paint.style };
    if let Some(p) = response.hover_pos() {
        let q = transform.to_image(p);
        let [_, h, w] = volume.dims();
        if q.x >= 0.0 && q.y >= 0.0 && (q.x as usize) < w && (q.y as usize) < h {
            out.cursor_pixel = Some((q.x as usize, q.y as usize));
        }
    }

    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::BLACK);
    painter.add(egui_wgpu::Callback::new_paint_callback(
        rect,
        SliceCallback { panel: paint.panel, rect, transform, layers, style },
    ));
    draw_annotations(
        &painter,
        rect,
        &transform,
        &volume,
        z,
        view,
        &paint.legend,
        paint.caption,
        paint.status.as_deref(),
    );
    if response.hovered() {
        painter.rect_stroke(
            rect,
            0.0,
            egui::Stroke::new(1.0, Color32::from_gray(110)),
            egui::StrokeKind::Inside,
        );
    }
    out
}

const TEXT: Color32 = Color32::from_rgb(235, 235, 235);
const SHADOW: Color32 = Color32::from_black_alpha(200);

fn shadowed(
    painter: &egui::Painter,
    pos: Pos2,
    anchor: egui::Align2,
    text: &str,
    size: f32,
    colour: Color32,
) -> Rect {
    let font = egui::FontId::proportional(size);
    painter.text(pos + Vec2::new(1.0, 1.0), anchor, text, font.clone(), SHADOW);
    painter.text(pos, anchor, text, font, colour)
}

#[allow(clippy::too_many_arguments)]
fn draw_annotations(
    painter: &egui::Painter,
    rect: Rect,
    t: &ViewTransform,
    volume: &Volume,
    z: usize,
    view: &ViewState,
    legend: &Legend,
    caption: &str,
    status: Option<&str>,
) {
    let pad = 6.0;
    // Caption (when the panel has no header) and status, top left; the slice number top right; the
    // window above the scale bar, bottom right — the corners radiologists read them in.
    let mut below = rect.left_top() + Vec2::splat(pad);
    if !caption.is_empty() {
        below = shadowed(painter, below, egui::Align2::LEFT_TOP, caption, 14.0, TEXT).left_bottom()
            + Vec2::new(0.0, 2.0);
    }
    if let Some(s) = status {
        shadowed(painter, below, egui::Align2::LEFT_TOP, s, 12.0, Color32::from_rgb(255, 200, 90));
    }
    let slice = format!("{}/{}", z + 1, volume.depth());
    shadowed(painter, rect.right_top() + Vec2::new(-pad, pad), egui::Align2::RIGHT_TOP, &slice, 12.0, TEXT);
    let window = format!("W {:.0} L {:.0}", view.window.width, view.window.center);
    shadowed(
        painter,
        rect.right_bottom() + Vec2::new(-pad, -30.0),
        egui::Align2::RIGHT_BOTTOM,
        &window,
        12.0,
        TEXT,
    );
    // Orientation letters at the edge midpoints, when the file defines the geometry.
    if let Some([left, right, top, bottom]) = volume.orientation_letters() {
        let c = rect.center();
        let col = Color32::from_rgb(255, 230, 120);
        shadowed(
            painter,
            Pos2::new(rect.left() + pad, c.y),
            egui::Align2::LEFT_CENTER,
            &left.to_string(),
            15.0,
            col,
        );
        shadowed(
            painter,
            Pos2::new(rect.right() - pad, c.y),
            egui::Align2::RIGHT_CENTER,
            &right.to_string(),
            15.0,
            col,
        );
        shadowed(
            painter,
            Pos2::new(c.x, rect.top() + pad + 18.0),
            egui::Align2::CENTER_TOP,
            &top.to_string(),
            15.0,
            col,
        );
        shadowed(
            painter,
            Pos2::new(c.x, rect.bottom() - pad - 26.0),
            egui::Align2::CENTER_BOTTOM,
            &bottom.to_string(),
            15.0,
            col,
        );
    }
    // Scale bar, bottom right: a round length of about a fifth of the panel.
    let points_per_mm = t.points_per_pixel.x / volume.spacing_mm[2] as f32;
    if points_per_mm.is_finite() && points_per_mm > 0.0 {
        let target_mm = rect.width() * 0.2 / points_per_mm;
        let nice = [1.0f32, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];
        let mm = nice.iter().copied().rev().find(|&m| m <= target_mm).unwrap_or(1.0);
        let len = mm * points_per_mm;
        let y = rect.bottom() - pad - 4.0;
        let x1 = rect.right() - pad;
        let x0 = x1 - len;
        let stroke = egui::Stroke::new(2.0, TEXT);
        painter.line_segment([Pos2::new(x0, y), Pos2::new(x1, y)], egui::Stroke::new(4.0, SHADOW));
        painter.line_segment([Pos2::new(x0, y), Pos2::new(x1, y)], stroke);
        painter.line_segment([Pos2::new(x0, y - 4.0), Pos2::new(x0, y)], stroke);
        painter.line_segment([Pos2::new(x1, y - 4.0), Pos2::new(x1, y)], stroke);
        let label = if volume.spacing_assumed { format!("{mm:.0} px") } else { format!("{mm:.0} mm") };
        shadowed(
            painter,
            Pos2::new((x0 + x1) / 2.0, y - 5.0),
            egui::Align2::CENTER_BOTTOM,
            &label,
            11.0,
            TEXT,
        );
    }
    // Legend, bottom left.
    let base = rect.left_bottom() + Vec2::new(pad, -pad);
    match legend {
        Legend::None => {}
        Legend::Masks { gt, pred } => {
            let mut x = base.x;
            let mut item = |colour: Color32, label: &str| {
                let sw = Rect::from_min_size(Pos2::new(x, base.y - 12.0), Vec2::splat(11.0));
                painter.rect_filled(sw, 2.0, colour);
                let r = shadowed(
                    painter,
                    Pos2::new(sw.right() + 4.0, sw.center().y),
                    egui::Align2::LEFT_CENTER,
                    label,
                    12.0,
                    TEXT,
                );
                x = r.right() + 10.0;
            };
            if *gt {
                item(Color32::from_rgb(0, 255, 0), "GT");
            }
            if *pred {
                item(Color32::from_rgb(255, 0, 0), "prediction");
            }
            if *gt && *pred {
                item(Color32::from_rgb(255, 255, 0), "both");
            }
        }
        Legend::Colormap { map, min, max, signed } => {
            let bar = Rect::from_min_size(
                Pos2::new(base.x, base.y - 26.0),
                Vec2::new((rect.width() * 0.3).clamp(60.0, 160.0), 10.0),
            );
            let n = 32;
            let mut mesh = egui::Mesh::default();
            for i in 0..=n {
                let t = i as f32 / n as f32;
                let [r, g, b] = map.rgb_u8(t);
                let c = Color32::from_rgb(r, g, b);
                let x = bar.left() + t * bar.width();
                mesh.colored_vertex(Pos2::new(x, bar.top()), c);
                mesh.colored_vertex(Pos2::new(x, bar.bottom()), c);
                if i > 0 {
                    let k = 2 * i as u32;
                    mesh.add_triangle(k - 2, k - 1, k);
                    mesh.add_triangle(k - 1, k, k + 1);
                }
            }
            painter.add(egui::Shape::mesh(mesh));
            painter.rect_stroke(bar, 0.0, egui::Stroke::new(1.0, SHADOW), egui::StrokeKind::Outside);
            let (lo, hi) = if *signed {
                let m = min.abs().max(max.abs());
                (-m, m)
            } else {
                (*min, *max)
            };
            let (lo_text, hi_text) = fmt_range(lo, hi);
            shadowed(
                painter,
                Pos2::new(bar.left(), bar.bottom() + 1.0),
                egui::Align2::LEFT_TOP,
                &lo_text,
                11.0,
                TEXT,
            );
            shadowed(
                painter,
                Pos2::new(bar.right(), bar.bottom() + 1.0),
                egui::Align2::RIGHT_TOP,
                &hi_text,
                11.0,
                TEXT,
            );
        }
    }
}

/// Legend labels for a range: both ends with the same precision, about 3 significant digits of the
/// larger magnitude (so a minimum of 1.9e-7 beside a maximum of 1 reads "0.00").
pub fn fmt_range(lo: f32, hi: f32) -> (String, String) {
    let m = lo.abs().max(hi.abs());
    if m == 0.0 || !m.is_finite() {
        return (format!("{lo}"), format!("{hi}"));
    }
    if (1e-3..1e5).contains(&m) {
        let decimals = (2 - m.log10().floor() as i32).max(0) as usize;
        let f = |v: f32| {
            let s = format!("{v:.decimals$}");
            // "-0.00" reads as noise.
            if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
                format!("{:.decimals$}", 0.0)
            } else {
                s
            }
        };
        (f(lo), f(hi))
    } else {
        (format!("{lo:.2e}"), format!("{hi:.2e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(depth: usize) -> Volume {
        Volume::new(
            (0..depth * 100 * 200).map(|v| (v % 1000) as f32).collect(),
            [depth, 100, 200],
            [2.0, 0.5, 0.5],
        )
        .unwrap()
    }

    #[test]
    fn fit_and_zoom_about_cursor_keep_the_point_under_it() {
        let v = vol(3);
        let rect = Rect::from_min_size(Pos2::new(10.0, 20.0), Vec2::new(400.0, 400.0));
        let mut s = ViewState::for_volume(&v);
        assert_eq!(s.slice, 1);
        let t = s.transform(rect, &v);
        // 200 px × 0.5 mm = 100 mm wide, 50 mm high: the width fits 400 points, 2 points per pixel.
        assert_eq!(t.points_per_pixel, Vec2::new(2.0, 2.0));
        assert_eq!(t.to_image(rect.center()), Vec2::new(100.0, 50.0));
        let cursor = Pos2::new(300.0, 250.0);
        let before = t.to_image(cursor);
        s.zoom_about(cursor, 2.0, rect, &v);
        let after = s.transform(rect, &v).to_image(cursor);
        assert!((before - after).length() < 1e-3, "{before:?} vs {after:?}");
        assert_eq!(s.zoom, 2.0);
        let p = s.transform(rect, &v).to_screen(before);
        assert!((p - cursor).length() < 1e-3);
    }

    #[test]
    fn slices_clamp_presets_and_reset() {
        let mut v = vol(3);
        let mut s = ViewState::for_volume(&v);
        s.step_slice(10, &v);
        assert_eq!(s.slice, 2);
        s.step_slice(-10, &v);
        assert_eq!(s.slice, 0);
        v.unit = Unit::Hu;
        s.apply_preset(1, &v);
        assert_eq!(s.window, WindowPreset::Lung.window());
        s.apply_preset(3, &v);
        assert_eq!(s.window, WindowPreset::Bone.window());
        s.zoom = 3.0;
        s.pan = Vec2::new(5.0, 5.0);
        s.reset(&v);
        assert_eq!((s.zoom, s.pan, s.slice), (1.0, Vec2::ZERO, 0));
        let w0 = s.window;
        s.drag_window(Vec2::new(40.0, -20.0), &v);
        assert!(s.window.width > w0.width && s.window.center < w0.center);
    }

    #[test]
    fn legend_ranges_share_one_precision() {
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(fmt_range(1.89e-7, 1.0), s("0.00", "1.00"));
        assert_eq!(fmt_range(-0.5, 0.25), s("-0.500", "0.250"));
        assert_eq!(fmt_range(-3.0, 120.4), s("-3", "120"));
        assert_eq!(fmt_range(0.0, 2e-5), s("0.00e0", "2.00e-5"));
        assert_eq!(fmt_range(-1e-9, 0.5), s("0.000", "0.500"));
    }
}
