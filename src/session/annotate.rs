//! Mask edit operations for annotation review, as pure functions on one 2-D label slice.
//!
//! Coordinates: a point `(x, y)` is in pixel units of the slice, pixel `(i, j)` (column, row) covering
//! `[i, i+1) × [j, j+1)`, so its centre is `(i + 0.5, j + 0.5)`. Distances are in millimetres through
//! the slice spacing, so a brush of radius r mm is a true disc on anisotropic pixels.
//!
//! Every operation returns the [`PixelChange`]s it would make (old and new label of each changed pixel)
//! without touching the slice; [`Edit`] bundles them with the slice index, and [`History`] applies,
//! undoes and redoes edits exactly. Because an edit stores both values, undo/redo is exact whatever the
//! order of operations, and unbounded within a session.
//!
//! Rules, each chosen so an edit never damages what the annotator did not point at:
//! - **Brush**: pixels whose centre lies within r mm of the stroke's segment (a capsule, so fast drags
//!   leave no gaps) take the selected label; the pixel under each end point is always painted, so a
//!   click with a tiny brush still paints one pixel.
//! - **Eraser**: the same footprint, but only pixels holding the selected label become 0; other labels
//!   are left alone.
//! - **Flood fill**: the 4-connected region of pixels sharing the seed's label takes the selected label.
//! - **Polygon / lasso**: pixels whose centre is inside the polygon by the even-odd rule (scanline;
//!   a centre exactly on a left edge is inside, on a right edge outside) take the selected label.
//! - **Region growing**: from a seed, pixels connected to it (4- or 8-connectivity, [`Connectivity`])
//!   whose image value passes the criterion (HU range `[lo, hi]` inclusive, or `|v − seed| ≤ d`) take the
//!   selected label. A seed that fails its own criterion grows nothing.
//! - **Copy from a neighbouring slice**: the target slice becomes the source slice (for one label, or
//!   for all labels).

use std::collections::VecDeque;

use crate::imaging::LabelSelector;

/// The shape and pixel size of one slice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceGrid {
    pub width: usize,
    pub height: usize,
    /// Pixel size in mm along (y, x): row spacing, column spacing.
    pub spacing_mm: [f64; 2],
}

impl SliceGrid {
    pub fn len(&self) -> usize {
        self.width * self.height
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pixel containing the point, if it lies on the slice.
    pub fn pixel_at(&self, p: (f64, f64)) -> Option<(usize, usize)> {
        let (x, y) = (p.0.floor(), p.1.floor());
        (x >= 0.0 && y >= 0.0 && (x as usize) < self.width && (y as usize) < self.height)
            .then_some((x as usize, y as usize))
    }
}

/// One pixel an edit changed: its index in the slice (row-major) and its label before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelChange {
    pub index: usize,
    pub old: u16,
    pub new: u16,
}

/// What an edit did, for the history and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Brush,
    Erase,
    FloodFill,
    Polygon,
    RegionGrow,
    CopySlice,
}

impl Action {
    /// The name written in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Action::Brush => "brush",
            Action::Erase => "erase",
            Action::FloodFill => "flood_fill",
            Action::Polygon => "polygon",
            Action::RegionGrow => "region_grow",
            Action::CopySlice => "copy_slice",
        }
    }
}

/// A completed edit on slice `slice`: every changed pixel with its old and new label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub action: Action,
    pub label: u16,
    pub slice: usize,
    pub changes: Vec<PixelChange>,
}

impl Edit {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Pixels that gained a label (new label non-zero).
    pub fn added(&self) -> usize {
        self.changes.iter().filter(|c| c.new != 0).count()
    }

    /// Pixels that lost their label (new label zero).
    pub fn removed(&self) -> usize {
        self.changes.iter().filter(|c| c.new == 0).count()
    }

    /// Writes the new labels into the slice.
    pub fn apply(&self, slice: &mut [u16]) {
        for c in &self.changes {
            if let Some(v) = slice.get_mut(c.index) {
                *v = c.new;
            }
        }
    }

    /// Writes the old labels back (in reverse order, so repeated pixels end at their first old value).
    pub fn revert(&self, slice: &mut [u16]) {
        for c in self.changes.iter().rev() {
            if let Some(v) = slice.get_mut(c.index) {
                *v = c.old;
            }
        }
    }

    /// Appends `more` (made after this edit was applied) so the two act as one edit.
    pub fn extend(&mut self, more: Vec<PixelChange>) {
        self.changes.extend(more);
    }
}

/// Changes that set every index in `indices` to `value` (pixels already holding it are skipped).
fn set_to(slice: &[u16], indices: impl IntoIterator<Item = usize>, value: u16) -> Vec<PixelChange> {
    indices
        .into_iter()
        .filter_map(|index| {
            let old = *slice.get(index)?;
            (old != value).then_some(PixelChange { index, old, new: value })
        })
        .collect()
}

/// Squared distance in mm² from point p to segment a–b (all in pixel units, scaled by spacing).
fn dist2_to_segment_mm(p: (f64, f64), a: (f64, f64), b: (f64, f64), sx: f64, sy: f64) -> f64 {
    let (px, py) = ((p.0 - a.0) * sx, (p.1 - a.1) * sy);
    let (dx, dy) = ((b.0 - a.0) * sx, (b.1 - a.1) * sy);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 { ((px * dx + py * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let (ex, ey) = (px - t * dx, py - t * dy);
    ex * ex + ey * ey
}

/// Indices of the pixels a brush of radius `radius_mm` covers along segment a–b (see the module docs).
pub fn stroke_footprint(grid: &SliceGrid, a: (f64, f64), b: (f64, f64), radius_mm: f64) -> Vec<usize> {
    let [sy, sx] = grid.spacing_mm;
    let r = radius_mm.max(0.0);
    if grid.is_empty() || !(sx > 0.0 && sy > 0.0) || !r.is_finite() {
        return vec![];
    }
    let (rx, ry) = (r / sx + 1.0, r / sy + 1.0);
    let x0 = (a.0.min(b.0) - rx).floor().max(0.0) as usize;
    let x1 = ((a.0.max(b.0) + rx).ceil().max(0.0) as usize).min(grid.width);
    let y0 = (a.1.min(b.1) - ry).floor().max(0.0) as usize;
    let y1 = ((a.1.max(b.1) + ry).ceil().max(0.0) as usize).min(grid.height);
    let r2 = r * r;
    let mut out = Vec::new();
    for y in y0..y1 {
        for x in x0..x1 {
            let c = (x as f64 + 0.5, y as f64 + 0.5);
            if dist2_to_segment_mm(c, a, b, sx, sy) <= r2 + 1e-9 {
                out.push(y * grid.width + x);
            }
        }
    }
    for p in [a, b] {
        if let Some((x, y)) = grid.pixel_at(p) {
            let i = y * grid.width + x;
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    out
}

/// Brush segment a–b of radius `radius_mm`: covered pixels take `label`.
pub fn brush_segment(
    slice: &[u16],
    grid: &SliceGrid,
    a: (f64, f64),
    b: (f64, f64),
    radius_mm: f64,
    label: u16,
) -> Vec<PixelChange> {
    set_to(slice, stroke_footprint(grid, a, b, radius_mm), label)
}

/// Eraser segment a–b: covered pixels holding `label` become 0.
pub fn erase_segment(
    slice: &[u16],
    grid: &SliceGrid,
    a: (f64, f64),
    b: (f64, f64),
    radius_mm: f64,
    label: u16,
) -> Vec<PixelChange> {
    let hits = stroke_footprint(grid, a, b, radius_mm).into_iter().filter(|&i| slice.get(i) == Some(&label));
    set_to(slice, hits, 0)
}

/// Neighbourhood used by region growing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Connectivity {
    /// Edge neighbours only (up, down, left, right): a diagonal touch does not join regions.
    #[default]
    Four,
    /// Edge and corner neighbours.
    Eight,
}

/// The connected set of pixels reachable from `seed` through pixels for which `inside(index)` holds.
fn connected(
    grid: &SliceGrid,
    seed: (usize, usize),
    conn: Connectivity,
    inside: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let (w, h) = (grid.width, grid.height);
    if seed.0 >= w || seed.1 >= h || !inside(seed.1 * w + seed.0) {
        return vec![];
    }
    let mut seen = vec![false; w * h];
    let mut queue = VecDeque::new();
    let mut out = Vec::new();
    let start = seed.1 * w + seed.0;
    seen[start] = true;
    queue.push_back(start);
    const FOUR: [(isize, isize); 4] = [(1, 0), (-1, 0), (0, 1), (0, -1)];
    const EIGHT: [(isize, isize); 8] = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)];
    let steps: &[(isize, isize)] = match conn {
        Connectivity::Four => &FOUR,
        Connectivity::Eight => &EIGHT,
    };
    while let Some(i) = queue.pop_front() {
        out.push(i);
        let (x, y) = ((i % w) as isize, (i / w) as isize);
        for &(dx, dy) in steps {
            let (nx, ny) = (x + dx, y + dy);
            if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                continue;
            }
            let n = ny as usize * w + nx as usize;
            if !seen[n] && inside(n) {
                seen[n] = true;
                queue.push_back(n);
            }
        }
    }
    out
}

/// Flood fill from `seed`: the 4-connected region sharing the seed's label takes `label`.
pub fn flood_fill(slice: &[u16], grid: &SliceGrid, seed: (usize, usize), label: u16) -> Vec<PixelChange> {
    if slice.len() != grid.len() || seed.0 >= grid.width || seed.1 >= grid.height {
        return vec![];
    }
    let target = slice[seed.1 * grid.width + seed.0];
    if target == label {
        return vec![];
    }
    let region = connected(grid, seed, Connectivity::Four, |i| slice[i] == target);
    set_to(slice, region, label)
}

/// Indices of the pixels whose centres lie inside the polygon (even-odd rule, see the module docs).
pub fn polygon_footprint(grid: &SliceGrid, points: &[(f64, f64)]) -> Vec<usize> {
    let mut out = Vec::new();
    if points.len() < 3 || points.iter().any(|p| !(p.0.is_finite() && p.1.is_finite())) {
        return out;
    }
    let mut xs: Vec<f64> = Vec::new();
    for y in 0..grid.height {
        let yc = y as f64 + 0.5;
        xs.clear();
        for k in 0..points.len() {
            let (a, b) = (points[k], points[(k + 1) % points.len()]);
            // Half-open in y so a vertex on the scanline is counted once.
            if (a.1 <= yc && yc < b.1) || (b.1 <= yc && yc < a.1) {
                xs.push(a.0 + (yc - a.1) / (b.1 - a.1) * (b.0 - a.0));
            }
        }
        xs.sort_by(|p, q| p.total_cmp(q));
        for pair in xs.chunks_exact(2) {
            // Centre x + 0.5 in [left, right): x from ceil(left - 0.5) to ceil(right - 0.5) - 1.
            let lo = (pair[0] - 0.5).ceil().max(0.0);
            let hi = (pair[1] - 0.5).ceil().min(grid.width as f64);
            if hi > lo {
                out.extend((lo as usize..hi as usize).map(|x| y * grid.width + x));
            }
        }
    }
    out
}

/// Polygon / lasso fill: pixels inside take `label`.
pub fn polygon_fill(slice: &[u16], grid: &SliceGrid, points: &[(f64, f64)], label: u16) -> Vec<PixelChange> {
    set_to(slice, polygon_footprint(grid, points), label)
}

/// Which image values region growing accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GrowCriterion {
    /// `lo ≤ v ≤ hi` (e.g. 100–150 HU, as in the GGO paper).
    Range { lo: f32, hi: f32 },
    /// `|v − seed value| ≤ deviation`.
    Deviation(f32),
}

/// Region growing from `seed` on `image` (the slice's values, e.g. HU): the connected pixels passing
/// the criterion take `label`.
pub fn region_grow(
    slice: &[u16],
    image: &[f32],
    grid: &SliceGrid,
    seed: (usize, usize),
    criterion: GrowCriterion,
    connectivity: Connectivity,
    label: u16,
) -> Vec<PixelChange> {
    set_to(slice, grow_region(image, grid, seed, criterion, connectivity), label)
}

/// The pixel indices region growing selects (see [`region_grow`]).
pub fn grow_region(
    image: &[f32],
    grid: &SliceGrid,
    seed: (usize, usize),
    criterion: GrowCriterion,
    connectivity: Connectivity,
) -> Vec<usize> {
    if image.len() != grid.len() || seed.0 >= grid.width || seed.1 >= grid.height {
        return vec![];
    }
    let seed_value = image[seed.1 * grid.width + seed.0];
    let (lo, hi) = match criterion {
        GrowCriterion::Range { lo, hi } => (lo, hi),
        GrowCriterion::Deviation(d) => (seed_value - d.abs(), seed_value + d.abs()),
    };
    connected(grid, seed, connectivity, |i| image[i] >= lo && image[i] <= hi)
}

/// Copies `source` (a neighbouring slice) into `target`: every label, or only `label` (its pixels in
/// the source get it, its pixels elsewhere in the target become 0; other labels stay).
pub fn copy_slice(source: &[u16], target: &[u16], label: Option<u16>) -> Vec<PixelChange> {
    source
        .iter()
        .zip(target)
        .enumerate()
        .filter_map(|(index, (&s, &t))| {
            let new = match label {
                None => s,
                Some(l) if s == l => l,
                Some(l) if t == l => 0,
                Some(_) => t,
            };
            (new != t).then_some(PixelChange { index, old: t, new })
        })
        .collect()
}

/// Dice between two label buffers under a selector; 1 when both are empty.
pub fn dice(original: &[u16], edited: &[u16], sel: LabelSelector) -> f64 {
    let (mut a, mut b, mut both) = (0u64, 0u64, 0u64);
    for (&o, &e) in original.iter().zip(edited) {
        let (po, pe) = (sel.matches(o), sel.matches(e));
        a += po as u64;
        b += pe as u64;
        both += (po && pe) as u64;
    }
    if a + b == 0 {
        1.0
    } else {
        2.0 * both as f64 / (a + b) as f64
    }
}

/// Undo and redo stacks of completed edits. A new edit clears the redo stack.
#[derive(Debug, Default, Clone)]
pub struct History {
    undo: Vec<Edit>,
    redo: Vec<Edit>,
}

impl History {
    pub fn push(&mut self, edit: Edit) {
        self.undo.push(edit);
        self.redo.clear();
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    pub fn undo_len(&self) -> usize {
        self.undo.len()
    }

    /// Takes the last edit off the undo stack onto the redo stack; the caller reverts it.
    fn pop_undo(&mut self) -> Option<&Edit> {
        let e = self.undo.pop()?;
        self.redo.push(e);
        self.redo.last()
    }

    fn pop_redo(&mut self) -> Option<&Edit> {
        let e = self.redo.pop()?;
        self.undo.push(e);
        self.undo.last()
    }
}

/// A label volume (z, y, x) being edited, with its history and any stroke in progress.
#[derive(Debug, Clone)]
pub struct MaskEditor {
    labels: Vec<u16>,
    dims: [usize; 3],
    grid: SliceGrid,
    history: History,
    stroke: Option<Stroke>,
    /// Bumped on every change, so views know when to rebuild their texture.
    generation: u64,
}

#[derive(Debug, Clone)]
struct Stroke {
    edit: Edit,
    last: (f64, f64),
    radius_mm: f64,
}

impl MaskEditor {
    /// An editor on `labels` (z, y, x) with pixel spacing (y, x) in mm. `None` when the sizes disagree.
    pub fn new(labels: Vec<u16>, dims: [usize; 3], spacing_yx_mm: [f64; 2]) -> Option<Self> {
        if labels.len() != dims.iter().product::<usize>() || dims.contains(&0) {
            return None;
        }
        let grid = SliceGrid { width: dims[2], height: dims[1], spacing_mm: spacing_yx_mm };
        Some(MaskEditor { labels, dims, grid, history: History::default(), stroke: None, generation: 0 })
    }

    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    pub fn grid(&self) -> &SliceGrid {
        &self.grid
    }

    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Slice z, or an empty slice when z is out of range.
    pub fn slice(&self, z: usize) -> &[u16] {
        let n = self.grid.len();
        self.labels.get(z * n..(z + 1) * n).unwrap_or(&[])
    }

    fn slice_mut(&mut self, z: usize) -> &mut [u16] {
        let n = self.grid.len();
        self.labels.get_mut(z * n..(z + 1) * n).unwrap_or(&mut [])
    }

    /// Applies a completed edit and records it; empty edits are dropped. Returns whether it was kept.
    pub fn commit(&mut self, edit: Edit) -> bool {
        if edit.is_empty() || edit.slice >= self.dims[0] {
            return false;
        }
        edit.apply(self.slice_mut(edit.slice));
        self.history.push(edit);
        self.generation += 1;
        true
    }

    /// Builds an edit from changes computed on slice z and commits it; returns it when it changed pixels.
    pub fn commit_changes(
        &mut self,
        action: Action,
        label: u16,
        z: usize,
        changes: Vec<PixelChange>,
    ) -> Option<&Edit> {
        self.commit(Edit { action, label, slice: z, changes }).then(|| self.history.undo.last()).flatten()
    }

    /// Undoes the last edit (ending any stroke in progress first); returns it.
    pub fn undo(&mut self) -> Option<Edit> {
        self.end_stroke();
        let e = self.history.pop_undo()?.clone();
        e.revert(self.slice_mut(e.slice));
        self.generation += 1;
        Some(e)
    }

    pub fn redo(&mut self) -> Option<Edit> {
        self.end_stroke();
        let e = self.history.pop_redo()?.clone();
        e.apply(self.slice_mut(e.slice));
        self.generation += 1;
        Some(e)
    }

    /// Starts a brush (or, with `erase`, eraser) stroke on slice z at point p; paints the first dab.
    pub fn begin_stroke(&mut self, z: usize, p: (f64, f64), radius_mm: f64, label: u16, erase: bool) {
        self.end_stroke();
        if z >= self.dims[0] {
            return;
        }
        let action = if erase { Action::Erase } else { Action::Brush };
        self.stroke =
            Some(Stroke { edit: Edit { action, label, slice: z, changes: vec![] }, last: p, radius_mm });
        self.stroke_to(p);
    }

    /// Extends the stroke in progress to p (a segment from the previous point, so no gaps).
    pub fn stroke_to(&mut self, p: (f64, f64)) {
        let Some(mut s) = self.stroke.take() else { return };
        let grid = self.grid;
        let z = s.edit.slice;
        let slice = self.slice(z);
        let changes = match s.edit.action {
            Action::Erase => erase_segment(slice, &grid, s.last, p, s.radius_mm, s.edit.label),
            _ => brush_segment(slice, &grid, s.last, p, s.radius_mm, s.edit.label),
        };
        if !changes.is_empty() {
            let seg = Edit { action: s.edit.action, label: s.edit.label, slice: z, changes };
            seg.apply(self.slice_mut(z));
            s.edit.extend(seg.changes);
            self.generation += 1;
        }
        s.last = p;
        self.stroke = Some(s);
    }

    pub fn stroke_in_progress(&self) -> bool {
        self.stroke.is_some()
    }

    /// Ends the stroke in progress and records it as one edit; returns it when it changed pixels.
    pub fn end_stroke(&mut self) -> Option<Edit> {
        let s = self.stroke.take()?;
        if s.edit.is_empty() {
            return None;
        }
        let e = s.edit.clone();
        self.history.push(s.edit);
        Some(e)
    }
}
