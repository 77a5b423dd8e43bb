//! The papers' figure: a grid of panels composed on the CPU into one RGB image.
//!
//! Rows are cases or slices; columns are what each panel shows — typically original | ground truth vs
//! prediction | one column per XAI method. Each cell is the windowed grey slice with, optionally, a mask
//! overlay (ground truth green, prediction red, overlap yellow, blended at `mask_alpha`) or a heatmap
//! (min-max scaled per panel, jet, blended at the heatmap's `alpha`, values under the threshold left
//! grey). Column captions go above the columns, row labels to the left; rows holding heatmaps get a strip
//! under each heatmap cell with the map's raw minimum and maximum; a legend at the bottom shows the mask
//! colours present and the jet colour bar.
//!
//! Pure data in, pixels out: no egui, no candle. Text is drawn by plotters with the embedded DejaVu Sans
//! (`assets/fonts/`), so the figure looks the same on every machine and needs no system fonts.
//!
//! Layout, in pixels: `margin` around everything; a caption band of [`CAPTION_HEIGHT`] when any column
//! has a caption; cells of `cell_size` wide, as tall as the tallest panel of the row once its width is
//! scaled to `cell_size`; `gap` between cells; panels keep their aspect and sit centred (bands left black).
//! [`figure_layout`] returns where everything went, for callers (and tests) that need to find a cell.

use std::path::Path;

use image::{imageops, Rgb, RgbImage};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::overlay::{jet, min_max_scale};
use crate::imaging::{Mask, Volume, WindowLevel};
use crate::io::{raster, LoadError};

/// Ground truth, prediction and overlap colours (RGB).
pub const GT_COLOUR: [u8; 3] = [0, 255, 0];
pub const PRED_COLOUR: [u8; 3] = [255, 0, 0];
pub const OVERLAP_COLOUR: [u8; 3] = [255, 255, 0];
/// Height of the column-caption band.
pub const CAPTION_HEIGHT: u32 = 24;
/// Height of the min/max strip under heatmap cells.
pub const RANGE_HEIGHT: u32 = 18;
/// Height of the legend band.
pub const LEGEND_HEIGHT: u32 = 30;
/// The largest figure accepted (pixels), so a bad spec cannot ask for gigabytes.
pub const MAX_FIGURE_PIXELS: u64 = 12_000 * 12_000;

const FONT: &str = "sans-serif";
const FONT_SIZE: f64 = 15.0;
const SMALL_FONT_SIZE: f64 = 12.0;
const BACKGROUND: [u8; 3] = [255, 255, 255];
const TEXT: RGBColor = RGBColor(0, 0, 0);

/// A grey slice and the window to show it with.
#[derive(Debug, Clone, PartialEq)]
pub struct GreySlice {
    /// Row-major `width * height` values (HU or raw).
    pub values: Vec<f32>,
    pub width: usize,
    pub height: usize,
    pub window: WindowLevel,
}

impl GreySlice {
    /// Slice `z` of `volume` with `window`; `None` when the slice does not exist.
    pub fn from_volume(volume: &Volume, z: usize, window: WindowLevel) -> Option<Self> {
        (z < volume.depth()).then(|| GreySlice {
            values: volume.slice(z).to_vec(),
            width: volume.width(),
            height: volume.height(),
            window,
        })
    }
}

/// Slice `z` of a mask as foreground (any non-zero label) flags, for [`PanelOverlay::Masks`]; `None`
/// when the slice does not exist.
pub fn mask_slice(mask: &Mask, z: usize) -> Option<Vec<bool>> {
    (z < mask.dims()[0]).then(|| mask.slice(z).iter().map(|&l| l != 0).collect())
}

/// What is drawn over the grey slice.
#[derive(Debug, Clone, PartialEq)]
pub enum PanelOverlay {
    None,
    /// Masks on the slice's grid; either may be absent. Overlap is yellow.
    Masks {
        ground_truth: Option<Vec<bool>>,
        prediction: Option<Vec<bool>>,
    },
    /// A heatmap on the slice's grid, raw values (min-max scaled for display). `threshold` (0..1, on the
    /// scaled map) leaves pixels below it grey; `alpha` is the blend (the papers use 0.5).
    Heatmap {
        values: Vec<f32>,
        threshold: Option<f32>,
        alpha: f32,
    },
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub image: GreySlice,
    pub overlay: PanelOverlay,
}

/// One row: an optional label (case, slice) and its cells from left to right.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FigureRow {
    pub label: Option<String>,
    pub cells: Vec<Panel>,
}

/// Everything the figure shows.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureSpec {
    pub rows: Vec<FigureRow>,
    /// One per column ("Original", "GT vs prediction", "Grad-CAM++", "LIME"); missing ones stay blank.
    pub column_captions: Vec<String>,
    /// Cell width in pixels (default 256).
    pub cell_size: u32,
    /// Blend of mask colours over grey (default 0.5).
    pub mask_alpha: f32,
    /// Draw the legend band (default true; it appears only when some panel has an overlay).
    pub legend: bool,
    pub margin: u32,
    pub gap: u32,
}

impl Default for FigureSpec {
    fn default() -> Self {
        FigureSpec {
            rows: Vec::new(),
            column_captions: Vec::new(),
            cell_size: 256,
            mask_alpha: 0.5,
            legend: true,
            margin: 8,
            gap: 4,
        }
    }
}

/// A rectangle in figure pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl PixelRect {
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x < self.x + self.width && y < self.y + self.height
    }
}

/// Where everything goes.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureLayout {
    pub width: u32,
    pub height: u32,
    /// Column-caption band (zero height when no captions).
    pub caption_band: PixelRect,
    /// `cells[row][col]`: the whole cell; `panels[row][col]`: where the panel's pixels are drawn in it.
    pub cells: Vec<Vec<PixelRect>>,
    pub panels: Vec<Vec<PixelRect>>,
    /// Legend band (zero height when there is no legend).
    pub legend_band: PixelRect,
    /// Left column of row labels (zero width when no labels).
    pub label_column: PixelRect,
}

/// A figure that cannot be drawn; one line.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    #[error("the figure has no panels")]
    Empty,
    #[error("figure panel at row {row}, column {col}: {reason}")]
    BadPanel { row: usize, col: usize, reason: String },
    #[error("the figure would be {width} x {height} pixels, larger than allowed")]
    TooLarge { width: u64, height: u64 },
    #[error("cannot draw figure text: {0}")]
    Text(String),
    #[error(transparent)]
    Write(#[from] LoadError),
}

fn text_width(text: &str, size: f64) -> u32 {
    super::register_embedded_font();
    (FONT, size).into_font().box_size(text).map(|(w, _)| w).unwrap_or(text.chars().count() as u32 * 8)
}

fn check(spec: &FigureSpec) -> Result<(), FigureError> {
    if spec.rows.iter().all(|r| r.cells.is_empty()) {
        return Err(FigureError::Empty);
    }
    if spec.cell_size == 0 || spec.cell_size > 4096 {
        return Err(FigureError::BadPanel {
            row: 0,
            col: 0,
            reason: format!("cell size {} is outside 1..=4096", spec.cell_size),
        });
    }
    for (r, row) in spec.rows.iter().enumerate() {
        for (c, p) in row.cells.iter().enumerate() {
            let bad = |reason: String| FigureError::BadPanel { row: r, col: c, reason };
            let (w, h) = (p.image.width, p.image.height);
            if w == 0 || h == 0 || p.image.values.len() != w * h {
                return Err(bad(format!("{} values for a {w} x {h} image", p.image.values.len())));
            }
            match &p.overlay {
                PanelOverlay::None => {}
                PanelOverlay::Masks { ground_truth, prediction } => {
                    for (name, m) in [("ground truth", ground_truth), ("prediction", prediction)] {
                        if let Some(m) = m {
                            if m.len() != w * h {
                                return Err(bad(format!(
                                    "{name} mask has {} pixels but the image {w} x {h}",
                                    m.len()
                                )));
                            }
                        }
                    }
                }
                PanelOverlay::Heatmap { values, threshold, alpha } => {
                    if values.len() != w * h {
                        return Err(bad(format!(
                            "heatmap has {} values but the image is {w} x {h}",
                            values.len()
                        )));
                    }
                    if !(0.0..=1.0).contains(alpha) {
                        return Err(bad(format!("heatmap alpha {alpha} is outside 0..1")));
                    }
                    if let Some(t) = threshold {
                        if !(0.0..=1.0).contains(t) {
                            return Err(bad(format!("heatmap threshold {t} is outside 0..1")));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn has_heatmap(row: &FigureRow) -> bool {
    row.cells.iter().any(|p| matches!(p.overlay, PanelOverlay::Heatmap { .. }))
}

fn legend_items(spec: &FigureSpec) -> (bool, bool) {
    let cells = spec.rows.iter().flat_map(|r| &r.cells);
    let masks = cells.clone().any(|p| matches!(p.overlay, PanelOverlay::Masks { .. }));
    let heat = cells.clone().any(|p| matches!(p.overlay, PanelOverlay::Heatmap { .. }));
    (masks, heat)
}

/// Where the spec's cells, captions and legend go (see the module docs).
pub fn figure_layout(spec: &FigureSpec) -> Result<FigureLayout, FigureError> {
    check(spec)?;
    let (m, gap, cell) = (spec.margin, spec.gap, spec.cell_size);
    let ncols = spec.rows.iter().map(|r| r.cells.len()).max().unwrap_or(0) as u32;
    let label_w = spec
        .rows
        .iter()
        .filter_map(|r| r.label.as_deref())
        .map(|l| text_width(l, FONT_SIZE) + 12)
        .max()
        .unwrap_or(0)
        .min(400);
    let caption_h =
        if spec.column_captions.iter().any(|c| !c.trim().is_empty()) { CAPTION_HEIGHT } else { 0 };
    let (legend_masks, legend_heat) = legend_items(spec);
    let legend_h = if spec.legend && (legend_masks || legend_heat) { LEGEND_HEIGHT } else { 0 };
    let grid_x = m + label_w;
    let grid_w = ncols * cell + ncols.saturating_sub(1) * gap;
    let mut y = m + caption_h;
    let mut cells = Vec::new();
    let mut panels = Vec::new();
    for row in &spec.rows {
        let row_h = row
            .cells
            .iter()
            .map(|p| {
                ((p.image.height as f64 * cell as f64 / p.image.width as f64).round() as u32)
                    .clamp(1, 4 * cell)
            })
            .max()
            .unwrap_or(cell);
        let mut row_cells = Vec::new();
        let mut row_panels = Vec::new();
        for (c, p) in row.cells.iter().enumerate() {
            let x = grid_x + c as u32 * (cell + gap);
            row_cells.push(PixelRect { x, y, width: cell, height: row_h });
            // Fit keeping aspect, centred.
            let scale = (cell as f64 / p.image.width as f64).min(row_h as f64 / p.image.height as f64);
            let pw = ((p.image.width as f64 * scale).round() as u32).clamp(1, cell);
            let ph = ((p.image.height as f64 * scale).round() as u32).clamp(1, row_h);
            row_panels.push(PixelRect {
                x: x + (cell - pw) / 2,
                y: y + (row_h - ph) / 2,
                width: pw,
                height: ph,
            });
        }
        cells.push(row_cells);
        panels.push(row_panels);
        y += row_h + if has_heatmap(row) { RANGE_HEIGHT } else { 0 } + gap;
    }
    y -= gap;
    let legend_w = if legend_h > 0 { legend_width(legend_masks, legend_heat) } else { 0 };
    let inner_w = (label_w + grid_w).max(legend_w);
    let legend_band =
        PixelRect { x: m, y: y + if legend_h > 0 { gap } else { 0 }, width: inner_w, height: legend_h };
    let height = legend_band.y + legend_h + m;
    let width = m + inner_w + m;
    if (width as u64) * (height as u64) > MAX_FIGURE_PIXELS {
        return Err(FigureError::TooLarge { width: width as u64, height: height as u64 });
    }
    Ok(FigureLayout {
        width,
        height,
        caption_band: PixelRect { x: grid_x, y: m, width: grid_w, height: caption_h },
        cells,
        panels,
        legend_band,
        label_column: PixelRect {
            x: m,
            y: m + caption_h,
            width: label_w,
            height: y.saturating_sub(m + caption_h),
        },
    })
}

fn blend(grey: u8, colour: [u8; 3], alpha: f32) -> [u8; 3] {
    colour.map(|c| ((1.0 - alpha) * grey as f32 + alpha * c as f32).round() as u8)
}

/// The panel at its own resolution: windowed grey with its overlay.
pub fn render_panel(panel: &Panel, mask_alpha: f32) -> RgbImage {
    let (w, h) = (panel.image.width, panel.image.height);
    let grey: Vec<u8> = panel.image.window.apply_u8(&panel.image.values);
    let mut out = RgbImage::new(w as u32, h as u32);
    let scaled = match &panel.overlay {
        PanelOverlay::Heatmap { values, .. } => min_max_scale(values),
        _ => Vec::new(),
    };
    for (i, px) in out.pixels_mut().enumerate() {
        let g = grey.get(i).copied().unwrap_or(0);
        let rgb = match &panel.overlay {
            PanelOverlay::None => [g; 3],
            PanelOverlay::Masks { ground_truth, prediction } => {
                let gt = ground_truth.as_ref().and_then(|m| m.get(i).copied()).unwrap_or(false);
                let pr = prediction.as_ref().and_then(|m| m.get(i).copied()).unwrap_or(false);
                match (gt, pr) {
                    (true, true) => blend(g, OVERLAP_COLOUR, mask_alpha),
                    (true, false) => blend(g, GT_COLOUR, mask_alpha),
                    (false, true) => blend(g, PRED_COLOUR, mask_alpha),
                    (false, false) => [g; 3],
                }
            }
            PanelOverlay::Heatmap { threshold, alpha, .. } => {
                let t = scaled.get(i).copied().unwrap_or(0.0);
                if threshold.is_some_and(|th| t < th) {
                    [g; 3]
                } else {
                    blend(g, jet(t), *alpha)
                }
            }
        };
        *px = Rgb(rgb);
    }
    out
}

fn fill(img: &mut RgbImage, r: PixelRect, colour: [u8; 3]) {
    for y in r.y..(r.y + r.height).min(img.height()) {
        for x in r.x..(r.x + r.width).min(img.width()) {
            img.put_pixel(x, y, Rgb(colour));
        }
    }
}

fn raw_range(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

fn short(v: f32) -> String {
    if !v.is_finite() {
        "-".to_string()
    } else if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-2) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// Every panel coloured and scaled to its place, on two threads (the work machines have two cores;
/// a 4 × 4 grid of 512² slices is most of a second on one).
fn render_panels(spec: &FigureSpec, layout: &FigureLayout) -> Vec<Vec<RgbImage>> {
    let one = |r: usize, c: usize| {
        let at = layout.panels[r][c];
        let rgb = render_panel(&spec.rows[r].cells[c], spec.mask_alpha);
        if (rgb.width(), rgb.height()) == (at.width, at.height) {
            rgb
        } else {
            imageops::resize(&rgb, at.width, at.height, imageops::FilterType::Triangle)
        }
    };
    let jobs: Vec<(usize, usize)> =
        spec.rows.iter().enumerate().flat_map(|(r, row)| (0..row.cells.len()).map(move |c| (r, c))).collect();
    let (first, second) = jobs.split_at(jobs.len() / 2);
    let (mut done, theirs) = std::thread::scope(|s| {
        let other = s.spawn(|| second.iter().map(|&(r, c)| one(r, c)).collect::<Vec<_>>());
        let mine: Vec<RgbImage> = first.iter().map(|&(r, c)| one(r, c)).collect();
        // A panic in the other thread would be a bug in this module; redo its share here rather than
        // lose the figure.
        let theirs = other.join().unwrap_or_else(|_| second.iter().map(|&(r, c)| one(r, c)).collect());
        (mine, theirs)
    });
    done.extend(theirs);
    let mut it = done.into_iter();
    spec.rows.iter().map(|row| it.by_ref().take(row.cells.len()).collect()).collect()
}

/// A piece of text to draw: content, anchor position, size, horizontal anchor.
struct Label {
    text: String,
    at: (i32, i32),
    size: f64,
    h: HPos,
}

/// Draws the figure.
pub fn render_figure(spec: &FigureSpec) -> Result<RgbImage, FigureError> {
    let layout = figure_layout(spec)?;
    let mut img = RgbImage::from_pixel(layout.width, layout.height, Rgb(BACKGROUND));
    let mut labels = Vec::new();
    let panels = render_panels(spec, &layout);
    for (r, row) in spec.rows.iter().enumerate() {
        for (c, panel) in row.cells.iter().enumerate() {
            let cell = layout.cells[r][c];
            let at = layout.panels[r][c];
            fill(&mut img, cell, [0, 0, 0]);
            imageops::replace(&mut img, &panels[r][c], at.x as i64, at.y as i64);
            if let PanelOverlay::Heatmap { values, .. } = &panel.overlay {
                let (lo, hi) = raw_range(values);
                labels.push(Label {
                    text: format!("min {}  max {}", short(lo), short(hi)),
                    at: ((cell.x + cell.width / 2) as i32, (cell.y + cell.height + RANGE_HEIGHT / 2) as i32),
                    size: SMALL_FONT_SIZE,
                    h: HPos::Center,
                });
            }
        }
        if let (Some(label), Some(first)) = (&row.label, layout.cells[r].first()) {
            labels.push(Label {
                text: label.clone(),
                at: ((layout.label_column.x + 4) as i32, (first.y + first.height / 2) as i32),
                size: FONT_SIZE,
                h: HPos::Left,
            });
        }
    }
    let ncols = layout.cells.iter().map(Vec::len).max().unwrap_or(0);
    for (c, caption) in spec.column_captions.iter().enumerate().take(ncols) {
        if caption.trim().is_empty() {
            continue;
        }
        let x = layout.caption_band.x + c as u32 * (spec.cell_size + spec.gap) + spec.cell_size / 2;
        labels.push(Label {
            text: caption.clone(),
            at: (x as i32, (layout.caption_band.y + CAPTION_HEIGHT / 2) as i32),
            size: FONT_SIZE,
            h: HPos::Center,
        });
    }
    if layout.legend_band.height > 0 {
        legend(&mut img, spec, layout.legend_band, &mut labels);
    }
    draw_labels(&mut img, &labels)?;
    Ok(img)
}

const SWATCH: u32 = 14;
const JET_BAR_WIDTH: u32 = 160;
const MASK_LEGEND: [(&str, [u8; 3]); 3] =
    [("Ground truth", GT_COLOUR), ("Prediction", PRED_COLOUR), ("Overlap", OVERLAP_COLOUR)];
const JET_MAX_TEXT: &str = "max (each map min-max scaled)";

/// Width of the legend drawn by [`legend`] (kept in step with it).
fn legend_width(masks: bool, heat: bool) -> u32 {
    let mut w = 0;
    if masks {
        w += MASK_LEGEND.iter().map(|(name, _)| SWATCH + 10 + text_width(name, FONT_SIZE) + 14).sum::<u32>();
    }
    if heat {
        w += text_width("min", FONT_SIZE) + 6 + JET_BAR_WIDTH + 6 + text_width(JET_MAX_TEXT, FONT_SIZE);
    }
    w
}

/// Mask swatches, then the jet bar with "min" and "max" of each map.
fn legend(img: &mut RgbImage, spec: &FigureSpec, band: PixelRect, labels: &mut Vec<Label>) {
    let (masks, heat) = legend_items(spec);
    let sw = SWATCH;
    let mid = band.y + band.height / 2;
    let mut x = band.x;
    if masks {
        for (name, colour) in MASK_LEGEND {
            fill(img, PixelRect { x, y: mid - sw / 2, width: sw, height: sw }, [0, 0, 0]);
            fill(img, PixelRect { x: x + 1, y: mid - sw / 2 + 1, width: sw - 2, height: sw - 2 }, colour);
            labels.push(Label {
                text: name.into(),
                at: ((x + sw + 4) as i32, mid as i32),
                size: FONT_SIZE,
                h: HPos::Left,
            });
            x += sw + 10 + text_width(name, FONT_SIZE) + 14;
        }
    }
    if heat {
        let min_w = text_width("min", FONT_SIZE);
        labels.push(Label { text: "min".into(), at: (x as i32, mid as i32), size: FONT_SIZE, h: HPos::Left });
        x += min_w + 6;
        let bar_w = JET_BAR_WIDTH;
        for i in 0..bar_w {
            let c = jet(i as f32 / (bar_w - 1) as f32);
            fill(img, PixelRect { x: x + i, y: mid - sw / 2, width: 1, height: sw }, c);
        }
        x += bar_w + 6;
        labels.push(Label {
            text: JET_MAX_TEXT.into(),
            at: (x as i32, mid as i32),
            size: FONT_SIZE,
            h: HPos::Left,
        });
    }
}

fn draw_labels(img: &mut RgbImage, labels: &[Label]) -> Result<(), FigureError> {
    if labels.is_empty() {
        return Ok(());
    }
    super::register_embedded_font();
    let (w, h) = img.dimensions();
    let buf: &mut [u8] = img;
    let root = BitMapBackend::with_buffer(buf, (w, h)).into_drawing_area();
    for l in labels {
        let style = TextStyle::from((FONT, l.size).into_font()).color(&TEXT).pos(Pos::new(l.h, VPos::Center));
        root.draw_text(&l.text, &style, l.at).map_err(|e| FigureError::Text(e.to_string()))?;
    }
    root.present().map_err(|e| FigureError::Text(e.to_string()))?;
    Ok(())
}

/// Draws the figure and writes it as a PNG, atomically.
pub fn save_figure(path: &Path, spec: &FigureSpec) -> Result<(), FigureError> {
    let img = render_figure(spec)?;
    raster::write_png_rgb(path, img.width(), img.height(), img.as_raw())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_and_range() {
        assert_eq!(blend(100, OVERLAP_COLOUR, 0.5), [178, 178, 50]);
        assert_eq!(raw_range(&[1.0, -2.0, 3.5]), (-2.0, 3.5));
        assert_eq!(short(0.5), "0.500");
    }
}
