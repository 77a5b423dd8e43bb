//! Annotation review: known answers for every edit operation, exact undo/redo, versioned saving that
//! never touches the original, the audit log, the review queue and state, a UI test through
//! egui_kittest, and a kill-and-restart test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use radlens::imaging::{LabelSelector, Mask, Volume};
use radlens::io::raster::write_png_u8;
use radlens::session::annotate::{
    brush_segment, copy_slice, dice, erase_segment, flood_fill, grow_region, polygon_fill, Action,
    Connectivity, GrowCriterion, MaskEditor, SliceGrid,
};
use radlens::session::audit::AuditLog;
use radlens::session::review::{Filter, Queue, ReviewState, Status};
use radlens::session::reviewer::ReviewSession;
use radlens::session::save::{latest_revision, revision_path};

fn grid(w: usize, h: usize, sy: f64, sx: f64) -> SliceGrid {
    SliceGrid { width: w, height: h, spacing_mm: [sy, sx] }
}

/// The (x, y) pixels a change list sets to `value`.
fn set_pixels(changes: &[radlens::session::annotate::PixelChange], w: usize) -> BTreeSet<(usize, usize)> {
    changes.iter().map(|c| (c.index % w, c.index / w)).collect()
}

fn pts(list: &[(usize, usize)]) -> BTreeSet<(usize, usize)> {
    list.iter().copied().collect()
}

#[test]
fn brush_dab_paints_exactly_the_disc() {
    // Radius 2 mm on 1 mm pixels, centred on pixel (5, 5): the 13 pixels with dx² + dy² ≤ 4.
    let g = grid(11, 11, 1.0, 1.0);
    let slice = vec![0u16; 121];
    let c = brush_segment(&slice, &g, (5.5, 5.5), (5.5, 5.5), 2.0, 1);
    let expected = pts(&[
        (5, 3),
        (4, 4),
        (5, 4),
        (6, 4),
        (3, 5),
        (4, 5),
        (5, 5),
        (6, 5),
        (7, 5),
        (4, 6),
        (5, 6),
        (6, 6),
        (5, 7),
    ]);
    assert_eq!(set_pixels(&c, 11), expected);
    assert!(c.iter().all(|p| p.old == 0 && p.new == 1));
    // The same disc in mm on 0.5 mm pixels: radius 1 mm covers the same 13 pixels.
    let c = brush_segment(&slice, &grid(11, 11, 0.5, 0.5), (5.5, 5.5), (5.5, 5.5), 1.0, 1);
    assert_eq!(set_pixels(&c, 11), expected);
    // Anisotropic pixels (rows 2 mm apart, columns 1 mm): radius 2 mm reaches 2 columns but only 1 row.
    let c = brush_segment(&slice, &grid(11, 11, 2.0, 1.0), (5.5, 5.5), (5.5, 5.5), 2.0, 1);
    assert_eq!(set_pixels(&c, 11), pts(&[(5, 4), (3, 5), (4, 5), (5, 5), (6, 5), (7, 5), (5, 6)]));
    // Painting where the label already is changes nothing.
    let full = vec![1u16; 121];
    assert!(brush_segment(&full, &g, (5.5, 5.5), (5.5, 5.5), 2.0, 1).is_empty());
    // A brush smaller than a pixel still paints the pixel under the pointer.
    let c = brush_segment(&slice, &g, (3.2, 7.9), (3.2, 7.9), 0.1, 4);
    assert_eq!(set_pixels(&c, 11), pts(&[(3, 7)]));
}

#[test]
fn fast_drag_leaves_no_gap() {
    // One jump from (2.5, 5.5) to (8.5, 5.5) with radius 1 mm: rows 4–6 for x 2..=8 plus the two end caps.
    let mut ed = MaskEditor::new(vec![0; 121], [1, 11, 11], [1.0, 1.0]).unwrap();
    ed.begin_stroke(0, (2.5, 5.5), 1.0, 1, false);
    ed.stroke_to((8.5, 5.5));
    let edit = ed.end_stroke().unwrap();
    assert_eq!(edit.action, Action::Brush);
    let mut expected = BTreeSet::new();
    for x in 2..=8 {
        for y in 4..=6 {
            expected.insert((x, y));
        }
    }
    expected.insert((1, 5));
    expected.insert((9, 5));
    let painted: BTreeSet<(usize, usize)> =
        (0..121).filter(|&i| ed.labels()[i] == 1).map(|i| (i % 11, i / 11)).collect();
    assert_eq!(painted, expected);
    assert_eq!(edit.added(), 23);
    assert_eq!(ed.history().undo_len(), 1, "a stroke is one undoable edit");
}

#[test]
fn eraser_removes_only_the_selected_label() {
    let g = grid(5, 1, 1.0, 1.0);
    let slice = vec![1, 2, 1, 2, 1];
    let c = erase_segment(&slice, &g, (0.5, 0.5), (4.5, 0.5), 0.5, 1);
    let mut after = slice.clone();
    for p in &c {
        after[p.index] = p.new;
    }
    assert_eq!(after, vec![0, 2, 0, 2, 0]);
    assert_eq!(c.len(), 3);
}

/// 7 × 7 with a ring of label 1 on the border of the 5 × 5 square at 1..=5, its corner (1, 1) missing:
/// the interior touches the gap only diagonally.
fn ring() -> Vec<u16> {
    let mut s = vec![0u16; 49];
    for y in 1..=5 {
        for x in 1..=5 {
            if x == 1 || x == 5 || y == 1 || y == 5 {
                s[y * 7 + x] = 1;
            }
        }
    }
    s[7 + 1] = 0;
    s
}

#[test]
fn flood_fill_is_four_connected_same_label() {
    let g = grid(7, 7, 1.0, 1.0);
    let s = ring();
    let c = flood_fill(&s, &g, (3, 3), 2);
    let interior: BTreeSet<_> = (2..=4).flat_map(|y| (2..=4).map(move |x| (x, y))).collect();
    assert_eq!(set_pixels(&c, 7), interior, "the diagonal gap at (1,1) must not leak");
    assert!(c.iter().all(|p| p.old == 0 && p.new == 2));
    // Outside: 49 − 25 (the square) + the missing corner = 25 pixels.
    assert_eq!(flood_fill(&s, &g, (0, 0), 2).len(), 25);
    // Filling the ring itself relabels exactly its 15 pixels.
    assert_eq!(flood_fill(&s, &g, (3, 1), 3).len(), 15);
    // Seed already holding the label: nothing.
    assert!(flood_fill(&s, &g, (3, 1), 1).is_empty());
    assert!(flood_fill(&s, &g, (9, 9), 1).is_empty());
}

#[test]
fn polygon_fill_uses_pixel_centres_even_odd() {
    let g = grid(10, 10, 1.0, 1.0);
    let s = vec![0u16; 100];
    // Rectangle with corners on pixel edges: x 2..6, y 2..5 → 4 × 3 pixels.
    let c = polygon_fill(&s, &g, &[(2.0, 2.0), (6.0, 2.0), (6.0, 5.0), (2.0, 5.0)], 1);
    let rect: BTreeSet<_> = (2..5).flat_map(|y| (2..6).map(move |x| (x, y))).collect();
    assert_eq!(set_pixels(&c, 10), rect);
    // Right triangle (0,0), (8,0), (0,8): centres with x + y + 1 < 8, i.e. x + y < 7 → 28 pixels.
    let c = polygon_fill(&s, &g, &[(0.0, 0.0), (8.0, 0.0), (0.0, 8.0)], 1);
    let tri: BTreeSet<_> =
        (0..10).flat_map(|y| (0..10).map(move |x| (x, y))).filter(|(x, y)| x + y < 7).collect();
    assert_eq!(set_pixels(&c, 10), tri);
    assert_eq!(tri.len(), 28);
    // Even-odd: a self-overlapping bow-tie "square inside square" path leaves the inner square empty.
    let outer_inner = [
        (1.0, 1.0),
        (9.0, 1.0),
        (9.0, 9.0),
        (1.0, 9.0),
        (1.0, 1.0),
        (3.0, 3.0),
        (3.0, 7.0),
        (7.0, 7.0),
        (7.0, 3.0),
        (3.0, 3.0),
    ];
    let c = set_pixels(&polygon_fill(&s, &g, &outer_inner, 1), 10);
    assert!(c.contains(&(1, 1)) && c.contains(&(8, 8)) && c.contains(&(2, 5)));
    assert!(!c.contains(&(4, 4)) && !c.contains(&(5, 5)), "the inner square is a hole");
    assert_eq!(c.len(), 64 - 16);
    assert!(polygon_fill(&s, &g, &[(0.0, 0.0), (5.0, 5.0)], 1).is_empty());
}

/// 20 × 20 HU phantom: air −1000; square A (x, y in 5..=10) at 120 HU; a strip right of it
/// (x = 11, y 5..=7) at 140 HU; one pixel (11, 11) at 125 HU touching A only at a corner; a blob
/// (15..=17, 15..=17) at 130 HU not connected to anything.
fn phantom() -> Vec<f32> {
    let mut v = vec![-1000.0f32; 400];
    for y in 5..=10 {
        for x in 5..=10 {
            v[y * 20 + x] = 120.0;
        }
    }
    for y in 5..=7 {
        v[y * 20 + 11] = 140.0;
    }
    v[11 * 20 + 11] = 125.0;
    for y in 15..=17 {
        for x in 15..=17 {
            v[y * 20 + x] = 130.0;
        }
    }
    v
}

#[test]
fn region_growing_selects_exactly_the_region() {
    let g = grid(20, 20, 1.0, 1.0);
    let img = phantom();
    let set =
        |v: Vec<usize>| -> BTreeSet<(usize, usize)> { v.into_iter().map(|i| (i % 20, i / 20)).collect() };
    let square: BTreeSet<_> = (5..=10).flat_map(|y| (5..=10).map(move |x| (x, y))).collect();
    let strip: BTreeSet<_> = (5..=7).map(|y| (11, y)).collect();
    let range = GrowCriterion::Range { lo: 100.0, hi: 150.0 };
    // 100–150 HU, 4-connected: the square and the strip; not the diagonal pixel, not the far blob.
    let got = set(grow_region(&img, &g, (7, 7), range, Connectivity::Four));
    assert_eq!(got, square.union(&strip).copied().collect());
    // 8-connected: the diagonal pixel joins.
    let got = set(grow_region(&img, &g, (7, 7), range, Connectivity::Eight));
    assert_eq!(got.len(), 36 + 3 + 1);
    assert!(got.contains(&(11, 11)));
    // ±15 HU from the seed (120): 140 is out, so the square alone (4-connected) …
    let got = set(grow_region(&img, &g, (7, 7), GrowCriterion::Deviation(15.0), Connectivity::Four));
    assert_eq!(got, square);
    // … and with the 125 HU corner pixel 8-connected.
    assert_eq!(grow_region(&img, &g, (7, 7), GrowCriterion::Deviation(15.0), Connectivity::Eight).len(), 37);
    // Range ends are inclusive: exactly 120–120 still selects the square.
    let got =
        set(grow_region(&img, &g, (7, 7), GrowCriterion::Range { lo: 120.0, hi: 120.0 }, Connectivity::Four));
    assert_eq!(got, square);
    // A seed outside the range grows nothing; a seed in the blob grows only the blob.
    assert!(grow_region(&img, &g, (0, 0), range, Connectivity::Eight).is_empty());
    assert_eq!(grow_region(&img, &g, (16, 16), range, Connectivity::Eight).len(), 9);
}

#[test]
fn copy_from_neighbour_slice() {
    let src = vec![0, 1, 2, 2, 0, 1];
    let dst = vec![1, 0, 0, 2, 3, 3];
    let mut all = dst.clone();
    for c in copy_slice(&src, &dst, None) {
        all[c.index] = c.new;
    }
    assert_eq!(all, src);
    // Only label 2: its source pixels get 2, the target's other 2s become 0, labels 1 and 3 stay.
    let mut one = dst.clone();
    for c in copy_slice(&src, &dst, Some(2)) {
        one[c.index] = c.new;
    }
    assert_eq!(one, vec![1, 0, 2, 2, 3, 3]);
}

#[test]
fn dice_known_values() {
    assert_eq!(dice(&[1, 1, 0, 0], &[1, 0, 1, 0], LabelSelector::Any), 0.5);
    assert_eq!(dice(&[0, 0], &[0, 0], LabelSelector::Any), 1.0);
    assert_eq!(dice(&[1, 2, 2, 0], &[1, 2, 0, 0], LabelSelector::Label(2)), 2.0 / 3.0);
    assert_eq!(dice(&[1, 0], &[0, 1], LabelSelector::Any), 0.0);
}

/// SplitMix64, for seeded random edits.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn coord(&mut self, n: usize) -> f64 {
        self.below(n * 100) as f64 / 100.0
    }
}

#[test]
fn undo_redo_round_trip_many_random_edits() {
    let (d, h, w) = (3, 24, 32);
    let mut rng = Rng(20_261_123);
    let initial: Vec<u16> = (0..d * h * w).map(|_| if rng.below(5) == 0 { 1 } else { 0 }).collect();
    let image: Vec<f32> = (0..h * w).map(|_| rng.below(300) as f32 - 100.0).collect();
    let mut ed = MaskEditor::new(initial.clone(), [d, h, w], [0.7, 0.7]).unwrap();
    let mut snapshots = vec![initial.clone()];
    for _ in 0..300 {
        let z = rng.below(d);
        let label = 1 + rng.below(3) as u16;
        let g = *ed.grid();
        let committed = match rng.below(6) {
            0 | 1 => {
                ed.begin_stroke(
                    z,
                    (rng.coord(w), rng.coord(h)),
                    0.5 + rng.coord(4),
                    label,
                    rng.below(3) == 0,
                );
                for _ in 0..rng.below(5) {
                    ed.stroke_to((rng.coord(w), rng.coord(h)));
                }
                ed.end_stroke().is_some()
            }
            2 => {
                let c = flood_fill(ed.slice(z), &g, (rng.below(w), rng.below(h)), label);
                ed.commit_changes(Action::FloodFill, label, z, c).is_some()
            }
            3 => {
                let p: Vec<(f64, f64)> =
                    (0..3 + rng.below(4)).map(|_| (rng.coord(w), rng.coord(h))).collect();
                let c = polygon_fill(ed.slice(z), &g, &p, label);
                ed.commit_changes(Action::Polygon, label, z, c).is_some()
            }
            4 => {
                let crit = GrowCriterion::Deviation(rng.below(80) as f32);
                let c = radlens::session::annotate::region_grow(
                    ed.slice(z),
                    &image,
                    &g,
                    (rng.below(w), rng.below(h)),
                    crit,
                    Connectivity::Eight,
                    label,
                );
                ed.commit_changes(Action::RegionGrow, label, z, c).is_some()
            }
            _ => {
                let from = rng.below(d);
                let c = copy_slice(ed.slice(from), ed.slice(z), None);
                ed.commit_changes(Action::CopySlice, 0, z, c).is_some()
            }
        };
        if committed {
            snapshots.push(ed.labels().to_vec());
        }
    }
    let n = snapshots.len() - 1;
    assert!(n > 200, "most random edits change something ({n})");
    assert_eq!(ed.history().undo_len(), n);
    // Undo everything, checking each intermediate state.
    for k in (0..n).rev() {
        assert!(ed.undo().is_some());
        assert_eq!(ed.labels(), &snapshots[k][..], "after undoing back to state {k}");
    }
    assert!(ed.undo().is_none());
    // Redo everything.
    for (k, snap) in snapshots.iter().enumerate().skip(1) {
        assert!(ed.redo().is_some());
        assert_eq!(ed.labels(), &snap[..], "after redoing to state {k}");
    }
    assert!(ed.redo().is_none());
    // Undo three, then a new edit clears the redo stack.
    for _ in 0..3 {
        ed.undo();
    }
    assert_eq!(ed.labels(), &snapshots[n - 3][..]);
    assert!(ed.history().can_redo());
    ed.begin_stroke(0, (1.5, 1.5), 2.0, 9, false);
    assert!(ed.end_stroke().is_some());
    assert!(!ed.history().can_redo());
    ed.undo();
    assert_eq!(ed.labels(), &snapshots[n - 3][..]);
}

fn sha(path: &Path) -> Vec<u8> {
    // Not a cryptographic hash: the bytes themselves, compared whole.
    std::fs::read(path).unwrap()
}

/// A folder queue: images/ with `n` 32 × 24 grey PNGs, masks/ with 0/255 masks (a 6 × 6 square).
fn make_queue(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    let mut masks = Vec::new();
    for k in 0..n {
        let img: Vec<u8> = (0..32 * 24).map(|i| ((i * 7 + k * 13) % 200) as u8).collect();
        write_png_u8(&dir.join(format!("images/case{k}.png")), 32, 24, &img).unwrap();
        let mut m = vec![0u8; 32 * 24];
        for y in 4..10 {
            for x in 4..10 {
                m[y * 32 + x] = 255;
            }
        }
        let p = dir.join(format!("masks/case{k}.png"));
        write_png_u8(&p, 32, 24, &m).unwrap();
        masks.push(p);
    }
    masks
}

#[test]
fn versioned_saving_never_touches_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let masks = make_queue(dir.path(), 2);
    let original = sha(&masks[0]);
    {
        let mut s = ReviewSession::open(dir.path(), "ana").unwrap();
        s.begin_stroke(0, (20.5, 15.5), 1.0, 1, false);
        s.stroke_to((25.5, 15.5));
        s.end_stroke().unwrap();
        assert_eq!(latest_revision(&masks[0]).unwrap(), revision_path(&masks[0], 2));
        // A second stroke rewrites the same revision (autosave), not a new one.
        s.flood_fill(0, (0, 0), 1).unwrap();
        s.undo().unwrap();
        assert_eq!(latest_revision(&masks[0]).unwrap(), revision_path(&masks[0], 2));
    }
    assert_eq!(sha(&masks[0]), original, "the original mask is byte-for-byte unchanged");
    let rev2 = radlens::io::load_mask(&revision_path(&masks[0], 2)).unwrap();
    assert_eq!(rev2.count(LabelSelector::Any), 36 + 6 * 3 + 2, "the square plus the stroke");
    let rev2_bytes = sha(&revision_path(&masks[0], 2));
    // A new session resumes from rev2 and writes rev3; rev2 stays as it was.
    {
        let mut s = ReviewSession::open(dir.path(), "ben").unwrap();
        let c = s.case().unwrap();
        assert_eq!(c.loaded_from, revision_path(&masks[0], 2));
        assert_eq!(c.original.count(LabelSelector::Any), 36, "the original stays the reference");
        assert!((c.dice(LabelSelector::Any) - 2.0 * 36.0 / (36.0 + 56.0)).abs() < 1e-12);
        s.begin_stroke(0, (2.5, 20.5), 0.5, 1, true); // eraser where nothing is: no edit, no file
        s.end_stroke().unwrap();
        assert_eq!(latest_revision(&masks[0]).unwrap(), revision_path(&masks[0], 2));
        s.begin_stroke(0, (2.5, 20.5), 0.5, 1, false);
        s.end_stroke().unwrap();
    }
    assert_eq!(latest_revision(&masks[0]).unwrap(), revision_path(&masks[0], 3));
    assert_eq!(sha(&revision_path(&masks[0], 2)), rev2_bytes);
    assert_eq!(sha(&masks[0]), original);
    let rev3 = radlens::io::load_mask(&revision_path(&masks[0], 3)).unwrap();
    assert_eq!(rev3.count(LabelSelector::Any), 56 + 1);
    // The PNG is 0/255, the papers' mask format.
    let raw = image::open(revision_path(&masks[0], 3)).unwrap().to_luma8();
    assert!(raw.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    // Revision files are not cases.
    let q = Queue::open(dir.path()).unwrap();
    assert_eq!(q.len(), 2);
}

#[test]
fn audit_log_records_every_action() {
    let dir = tempfile::tempdir().unwrap();
    make_queue(dir.path(), 2);
    let mut s = ReviewSession::open(dir.path(), "ana").unwrap();
    s.begin_stroke(0, (20.5, 15.5), 1.0, 1, false);
    s.end_stroke().unwrap();
    s.flood_fill(0, (5, 5), 2).unwrap();
    s.undo().unwrap();
    s.redo().unwrap();
    s.set_status(Status::NeedsFix, "left edge missing").unwrap();
    s.next().unwrap();
    s.set_status(Status::Accepted, "").unwrap();
    drop(s);
    let log = AuditLog::read(&dir.path().join("radlens_audit.jsonl")).unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["save", "brush", "flood_fill", "undo", "redo", "needs_fix", "accept"]);
    assert!(log.iter().all(|e| e.annotator == "ana"));
    assert_eq!(log[1].case, "images/case0.png");
    assert_eq!((log[1].added, log[1].removed, log[1].label), (5, 0, Some(1)));
    assert_eq!((log[2].added, log[2].label), (36, Some(2)), "the square relabelled 1 → 2");
    assert_eq!((log[3].added, log[3].comment.as_deref()), (36, Some("flood_fill")));
    assert_eq!(log[5].comment.as_deref(), Some("left edge missing"));
    assert_eq!(log[6].case, "images/case1.png");
    for e in &log {
        let t = e.time.as_bytes();
        assert_eq!(t.len(), 24, "{}", e.time);
        assert!(e.time.ends_with('Z') && t[10] == b'T', "{}", e.time);
    }
    // Each line is a JSON object on its own line.
    let text = std::fs::read_to_string(dir.path().join("radlens_audit.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 7);
    assert!(text.ends_with('\n'));
}

#[test]
fn queue_from_folder_and_lists_and_state_resumes() {
    let dir = tempfile::tempdir().unwrap();
    make_queue(dir.path(), 3);
    // An image without a mask is skipped with a note; a stray revision file is not a case.
    write_png_u8(&dir.path().join("images/lonely.png"), 2, 2, &[0; 4]).unwrap();
    write_png_u8(&dir.path().join("masks/case1.rev2.png"), 32, 24, &[0; 32 * 24]).unwrap();
    let q = Queue::open(dir.path()).unwrap();
    let ids: Vec<&str> = q.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["images/case0.png", "images/case1.png", "images/case2.png"]);
    assert_eq!(q.warnings.len(), 1);
    assert!(q.warnings[0].contains("lonely.png"));

    // Review: reject case 1, needs-fix case 2, move on; a restart resumes where it was.
    {
        let mut s = ReviewSession::open(dir.path(), "ana").unwrap();
        assert_eq!(s.progress(), (0, 3));
        s.go_to(1).unwrap();
        s.set_status(Status::Rejected, "wrong lung").unwrap();
        s.next().unwrap();
        s.set_status(Status::NeedsFix, "").unwrap();
        assert_eq!(s.progress(), (2, 3));
        s.set_filter(Filter::Unreviewed).unwrap();
        assert_eq!(s.current_index(), 0, "the only unreviewed case");
        assert!(!s.next().unwrap());
        s.set_filter(Filter::Rejected).unwrap();
        assert_eq!(s.current_index(), 1);
    }
    let s = ReviewSession::open(dir.path(), "ana").unwrap();
    assert_eq!(s.current_index(), 1, "resumes on the case it was left on");
    assert_eq!(s.state.status("images/case1.png"), Status::Rejected);
    assert_eq!(s.state.cases["images/case1.png"].comment, "wrong lung");
    assert_eq!(s.state.status("images/case2.png"), Status::NeedsFix);
    assert_eq!(Filter::Rejected.indices(&s.queue, &s.state), vec![1]);
    assert_eq!(Filter::Unreviewed.indices(&s.queue, &s.state), vec![0]);
    assert_eq!(s.progress(), (2, 3));

    // The same pairs as a CSV list and a TSV list (with a header and a comment).
    let csv = dir.path().join("list.csv");
    std::fs::write(
        &csv,
        "image,mask\n# two cases\nimages/case2.png,masks/case2.png\n\nimages/case0.png,masks/case0.png\n",
    )
    .unwrap();
    let q = Queue::open(&csv).unwrap();
    assert_eq!(
        q.cases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["images/case2.png", "images/case0.png"]
    );
    assert_eq!(q.state_path, dir.path().join("list.csv.review.json"));
    let tsv = dir.path().join("list.tsv");
    std::fs::write(&tsv, "images/case1.png\tmasks/case1.png\n").unwrap();
    assert_eq!(Queue::open(&tsv).unwrap().cases[0].mask, dir.path().join("masks/case1.png"));

    // Bad input: one line naming the file and the reason.
    std::fs::write(&csv, "images/case2.png,masks/nope.png\n").unwrap();
    let e = Queue::open(&csv).unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("nope.png") && e.ends_with("list.csv"), "{e}");
    std::fs::write(&csv, "just-one-field\n").unwrap();
    assert!(Queue::open(&csv).unwrap_err().to_string().contains("image,mask"));
    let e = Queue::open(&dir.path().join("images")).unwrap_err().to_string();
    assert!(e.contains("images/ folder"), "{e}");
    std::fs::write(dir.path().join("radlens_review.json"), "{ not json").unwrap();
    let e = ReviewSession::open(dir.path(), "ana").unwrap_err().to_string();
    assert!(e.contains("not valid JSON") && e.ends_with("radlens_review.json"), "{e}");
}

#[test]
fn volume_and_label_map_case_saves_nifti_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let (d, h, w) = (3, 16, 16);
    let data: Vec<f32> =
        (0..d * h * w).map(|i| if (i % (h * w)) % 16 < 8 { 120.0 } else { -900.0 }).collect();
    let vol = Volume::new(data, [d, h, w], [2.5, 0.8, 0.8]).unwrap();
    radlens::io::nifti::write_nifti(&dir.path().join("ct.nii.gz"), &vol).unwrap();
    let mut labels = vec![0u16; d * h * w];
    labels[h * w + 5 * w + 5] = 2; // one voxel of label 2 on slice 1
    let mask = Mask::new(labels, [d, h, w]).unwrap();
    radlens::io::nifti::write_nifti_labels(&dir.path().join("seg.nii.gz"), &mask, &vol).unwrap();
    std::fs::write(dir.path().join("cases.csv"), "ct.nii.gz,seg.nii.gz\n").unwrap();
    let before = sha(&dir.path().join("seg.nii.gz"));

    let mut s = ReviewSession::open(&dir.path().join("cases.csv"), "ana").unwrap();
    assert_eq!(s.case().unwrap().depth(), 3);
    // Grow 100–150 HU on slice 0 from (2, 2): the left half of the slice (x < 8), 128 pixels.
    let n = s
        .region_grow(0, (2, 2), GrowCriterion::Range { lo: 100.0, hi: 150.0 }, Connectivity::Four, 1)
        .unwrap();
    assert_eq!(n, 128);
    // Copy slice 0 onto slice 1 (the label-2 voxel there is replaced).
    // 127 background pixels gain label 1 and the label-2 voxel becomes 1: 128 changes.
    assert_eq!(s.copy_slice(0, 1, None).unwrap(), 128);
    drop(s);
    assert_eq!(sha(&dir.path().join("seg.nii.gz")), before);
    let rev = dir.path().join("seg.rev2.nii.gz");
    let m = radlens::io::load_mask(&rev).unwrap();
    assert_eq!(m.dims(), [d, h, w]);
    assert_eq!(m.slice(0), m.slice(1));
    assert_eq!(m.count(LabelSelector::Label(1)), 256);
    assert_eq!(m.count(LabelSelector::Label(2)), 0);
    let state = ReviewState::load(&dir.path().join("cases.csv.review.json")).unwrap();
    assert_eq!(state.cases["ct.nii.gz"].revision.as_deref(), Some("seg.rev2.nii.gz"));
}

#[test]
fn exports_png_0_255_and_nifti() {
    use radlens::session::save::{export_nifti, export_png_binary, write_mask};
    let dir = tempfile::tempdir().unwrap();
    let mask = Mask::new(vec![0, 1, 2, 0, 2, 1], [1, 2, 3]).unwrap();
    let like = Volume::new(vec![0.0; 6], [1, 2, 3], [1.0; 3]).unwrap();
    let p = dir.path().join("ggo.png");
    export_png_binary(&p, &mask, 0, LabelSelector::Label(2)).unwrap();
    let img = image::open(&p).unwrap().to_luma8();
    assert_eq!(img.as_raw(), &vec![0, 0, 255, 0, 255, 0]);
    let n = dir.path().join("labels.nii.gz");
    export_nifti(&n, &mask, &like).unwrap();
    assert_eq!(radlens::io::load_mask(&n).unwrap(), mask);
    // Multi-label PNG revisions keep their labels; writing over the "original" is refused.
    let r = dir.path().join("m.rev2.png");
    write_mask(&r, &mask, &like, &dir.path().join("m.png")).unwrap();
    assert_eq!(radlens::io::load_mask(&r).unwrap(), mask);
    let e = write_mask(&r, &mask, &like, &r).unwrap_err().to_string();
    assert!(e.contains("refusing to overwrite the original"), "{e}");
}

// ---------------------------------------------------------------------------------------------------
// UI through egui_kittest.

mod ui {
    use super::*;
    use eframe::egui;
    use egui::{Event, Modifiers, PointerButton, Pos2};
    use egui_kittest::kittest::Queryable;
    use egui_kittest::Harness;
    use radlens::ui::annotate::{AnnotateApp, Tool};

    fn screen(app: &AnnotateApp, p: (f64, f64)) -> Pos2 {
        let r = app.ui_state.image_rect.expect("the image was drawn");
        let g = *app.session.case().unwrap().editor.grid();
        Pos2::new(
            r.min.x + (p.0 / g.width as f64) as f32 * r.width(),
            r.min.y + (p.1 / g.height as f64) as f32 * r.height(),
        )
    }

    fn press(h: &Harness<'_, AnnotateApp>, pos: Pos2, pressed: bool) {
        h.event(Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        });
    }

    #[test]
    fn draw_undo_accept_next_files_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let masks = make_queue(dir.path(), 2);
        let original = sha(&masks[0]);
        let session = ReviewSession::open(dir.path(), "kit").unwrap();
        let mut harness = Harness::builder()
            .with_size(egui::Vec2::new(1100.0, 700.0))
            .build_ui_state(|ui, app: &mut AnnotateApp| app.frame(ui), AnnotateApp::new(session));
        harness.run();
        assert!(harness.state().ui_state.image_rect.is_some());
        let builds = harness.state().ui_state.texture_builds;
        harness.run_steps(5);
        assert_eq!(
            harness.state().ui_state.texture_builds,
            builds,
            "no texture rebuild when nothing changed"
        );
        harness.state_mut().ui_state.brush_radius_mm = 1.0;
        assert_eq!(harness.state().ui_state.tool, Tool::Brush);

        // Drag a stroke along row 18 from x = 14 to x = 26 (pixel coordinates).
        let points: Vec<Pos2> =
            (0..=6).map(|k| screen(harness.state(), (14.5 + 2.0 * k as f64, 18.5))).collect();
        harness.event(Event::PointerMoved(points[0]));
        harness.step();
        press(&harness, points[0], true);
        harness.step();
        for p in &points[1..] {
            harness.event(Event::PointerMoved(*p));
            harness.step();
        }
        press(&harness, points[6], false);
        harness.run();
        {
            let case = harness.state().session.case().unwrap();
            let row: Vec<u16> = (0..32).map(|x| case.editor.slice(0)[18 * 32 + x]).collect();
            assert!(row[14..=26].iter().all(|&l| l == 1), "the stroke has no gaps: {row:?}");
            assert_eq!(case.editor.history().undo_len(), 1, "one stroke, one edit");
            assert!(harness.state().ui_state.texture_builds > builds, "the texture followed the edit");
        }
        let rev2 = revision_path(&masks[0], 2);
        let saved = radlens::io::load_mask(&rev2).unwrap();
        assert_eq!(saved.labels(), harness.state().session.case().unwrap().editor.labels(), "autosaved");

        // Ctrl+Z: back to the original mask, on screen and on disk.
        harness.key_press_modifiers(Modifiers::COMMAND, egui::Key::Z);
        harness.run();
        let orig_mask = radlens::io::load_mask(&masks[0]).unwrap();
        assert_eq!(harness.state().session.case().unwrap().editor.labels(), orig_mask.labels());
        assert_eq!(radlens::io::load_mask(&rev2).unwrap(), orig_mask);

        // Fill tool (F) on the background… then Accept with a comment, then N for the next case.
        harness.key_press(egui::Key::F);
        harness.run();
        assert_eq!(harness.state().ui_state.tool, Tool::Fill);
        harness.state_mut().ui_state.comment = "fine after fix".into();
        let inside = screen(harness.state(), (6.5, 6.5));
        harness.event(Event::PointerMoved(inside));
        harness.step();
        press(&harness, inside, true);
        harness.step();
        press(&harness, inside, false);
        harness.run();
        // Filling inside the square with label 1 changes nothing (already 1): still the original.
        assert_eq!(harness.state().session.case().unwrap().editor.labels(), orig_mask.labels());
        harness.get_by_label("Accept").click();
        harness.run();
        harness.key_press(egui::Key::N);
        harness.run();
        assert_eq!(harness.state().session.current_index(), 1);
        harness.get_by_label("Case 2 of 2");

        // The files on disk.
        assert_eq!(sha(&masks[0]), original, "the original is untouched");
        let state = ReviewState::load(&dir.path().join("radlens_review.json")).unwrap();
        assert_eq!(state.status("images/case0.png"), Status::Accepted);
        assert_eq!(state.cases["images/case0.png"].comment, "fine after fix");
        assert_eq!(state.cases["images/case0.png"].revision.as_deref(), Some("masks/case0.rev2.png"));
        assert_eq!(state.current.as_deref(), Some("images/case1.png"));
        let log = AuditLog::read(&dir.path().join("radlens_audit.jsonl")).unwrap();
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["save", "brush", "undo", "accept"]);
        assert!(log.iter().all(|e| e.annotator == "kit"));
        assert_eq!(log[1].added, log[2].removed);
    }

    #[test]
    fn volume_case_wheel_slices_and_copy_from_above() {
        let dir = tempfile::tempdir().unwrap();
        let (d, h, w) = (3, 12, 12);
        let vol = Volume::new(vec![0.0; d * h * w], [d, h, w], [2.0, 1.0, 1.0]).unwrap();
        radlens::io::nifti::write_nifti(&dir.path().join("ct.nii.gz"), &vol).unwrap();
        let mut labels = vec![0u16; d * h * w];
        for i in 0..20 {
            labels[2 * h * w + 30 + i] = 1; // a pattern on slice 2 only
        }
        let mask = Mask::new(labels, [d, h, w]).unwrap();
        radlens::io::nifti::write_nifti_labels(&dir.path().join("seg.nii.gz"), &mask, &vol).unwrap();
        std::fs::write(dir.path().join("q.csv"), "ct.nii.gz,seg.nii.gz\n").unwrap();
        let session = ReviewSession::open(&dir.path().join("q.csv"), "kit").unwrap();
        let mut harness = Harness::builder()
            .with_size(egui::Vec2::new(1000.0, 700.0))
            .build_ui_state(|ui, app: &mut AnnotateApp| app.frame(ui), AnnotateApp::new(session));
        harness.run();
        assert_eq!(harness.state().ui_state.slice, 1, "a volume opens on its middle slice");
        // Ctrl+Up copies the slice above (z + 1) onto this one.
        harness.key_press_modifiers(Modifiers::COMMAND, egui::Key::ArrowUp);
        harness.run();
        {
            let ed = &harness.state().session.case().unwrap().editor;
            assert_eq!(ed.slice(1), ed.slice(2));
            assert_eq!(ed.slice(1).iter().filter(|&&l| l == 1).count(), 20);
        }
        let saved = radlens::io::load_mask(&dir.path().join("seg.rev2.nii.gz")).unwrap();
        assert_eq!(saved.slice(1), saved.slice(2));
        // One wheel event over the image moves one slice.
        let centre = harness.state().ui_state.image_rect.unwrap().center();
        harness.event(Event::PointerMoved(centre));
        harness.step();
        harness.event(Event::MouseWheel {
            unit: egui::MouseWheelUnit::Line,
            delta: egui::vec2(0.0, -1.0),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
            modifiers: Modifiers::NONE,
        });
        harness.run();
        assert_eq!(harness.state().ui_state.slice, 0);
    }
}

// ---------------------------------------------------------------------------------------------------
// Kill and restart.

const CHILD_DIR: &str = "RADLENS_ANNOTATE_CHILD_DIR";
const STROKES: usize = 20;

/// Row of stroke k (each stroke paints one full row from x = 2 to x = 60).
fn stroke_row(k: usize) -> usize {
    2 + 3 * k
}

/// Run by `kill_and_restart` in a child process: edits slowly through the real session API, writing
/// `done.txt` (the number of completed strokes) after each stroke is saved.
#[test]
#[ignore = "helper for kill_and_restart (runs in a child process)"]
fn slow_editing_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let dir = PathBuf::from(dir);
    let mut s = ReviewSession::open(&dir, "child").unwrap();
    s.set_status(Status::NeedsFix, "child was here").unwrap();
    for k in 0..STROKES {
        let y = stroke_row(k) as f64 + 0.5;
        s.begin_stroke(0, (2.5, y), 0.4, 1, false);
        s.stroke_to((30.5, y));
        std::thread::sleep(std::time::Duration::from_millis(60)); // a stroke in progress
        s.stroke_to((60.5, y));
        s.end_stroke().unwrap();
        std::fs::write(dir.join("done.txt"), (k + 1).to_string()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(40));
    }
}

#[test]
fn kill_and_restart_keeps_review_state_and_completed_strokes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    std::fs::create_dir_all(dir.path().join("masks")).unwrap();
    write_png_u8(&dir.path().join("images/ct.png"), 64, 64, &[100; 64 * 64]).unwrap();
    let mask = dir.path().join("masks/ct.png");
    write_png_u8(&mask, 64, 64, &[0; 64 * 64]).unwrap();
    let original = sha(&mask);

    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["--ignored", "--exact", "slow_editing_child", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let done = dir.path().join("done.txt");
    let start = std::time::Instant::now();
    let read_done =
        || std::fs::read_to_string(&done).ok().and_then(|s| s.trim().parse::<usize>().ok()).unwrap_or(0);
    while read_done() < 6 {
        assert!(start.elapsed().as_secs() < 120, "the child made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the child exited early");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Land the kill somewhere inside the next stroke or pause.
    std::thread::sleep(std::time::Duration::from_millis(35));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let completed = read_done();
    assert!(completed < STROKES, "killed before the end");

    let s = ReviewSession::open(dir.path(), "restart").unwrap();
    assert_eq!(s.state.status("images/ct.png"), Status::NeedsFix);
    assert_eq!(s.state.cases["images/ct.png"].comment, "child was here");
    let case = s.case().unwrap();
    assert_eq!(case.loaded_from, revision_path(&mask, 2));
    let labels = case.editor.slice(0);
    for k in 0..completed {
        let y = stroke_row(k);
        assert!((2..=60).all(|x| labels[y * 64 + x] == 1), "completed stroke {k} survived the kill");
    }
    // Nothing but whole or partial strokes on their rows: no torn file, no stray pixels.
    for (i, &l) in labels.iter().enumerate() {
        if l == 1 {
            let y = i / 64;
            assert!(y >= 2 && (y - 2) % 3 == 0, "pixel {i} is on a stroke row");
        }
    }
    assert_eq!(sha(&mask), original, "the original mask is untouched");
    let log = AuditLog::read(&dir.path().join("radlens_audit.jsonl")).unwrap();
    assert!(log.iter().filter(|e| e.action == "brush").count() >= completed);
    assert_eq!(log[0].action, "needs_fix");
}

#[test]
fn cli_status_table_and_bad_queue() {
    let dir = tempfile::tempdir().unwrap();
    make_queue(dir.path(), 3);
    {
        let mut s = ReviewSession::open(dir.path(), "ana").unwrap();
        s.set_status(Status::Accepted, "ok").unwrap();
        s.next().unwrap();
        s.begin_stroke(0, (20.5, 15.5), 1.0, 1, false);
        s.end_stroke().unwrap();
        s.set_status(Status::Rejected, "leaks into the heart").unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_radlens"))
        .args(["annotate", dir.path().to_str().unwrap(), "--status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 3 + 1, "{text}");
    assert!(
        lines[1].contains("images/case0.png") && lines[1].contains("accepted") && lines[1].ends_with("ok")
    );
    assert!(lines[2].contains("rejected") && lines[2].contains("masks/case1.rev2.png"));
    assert!(lines[2].ends_with("leaks into the heart"));
    assert!(lines[3].contains("unreviewed"));
    assert_eq!(lines[4], "reviewed 2 of 3 (accepted 1, rejected 1, needs_fix 0, unreviewed 1)");
    // A queue that does not exist: exit 2, one line naming it.
    let missing = dir.path().join("nope");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_radlens"))
        .args(["annotate", missing.to_str().unwrap(), "--status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1);
    assert!(err.contains("no such file") && err.trim_end().ends_with("nope"), "{err}");
}

#[test]
fn history_survives_moving_between_cases() {
    let dir = tempfile::tempdir().unwrap();
    let masks = make_queue(dir.path(), 2);
    let mut s = ReviewSession::open(dir.path(), "ana").unwrap();
    let original = s.case().unwrap().editor.labels().to_vec();
    s.begin_stroke(0, (20.5, 15.5), 1.0, 1, false);
    s.end_stroke().unwrap();
    s.next().unwrap();
    s.previous().unwrap();
    assert_eq!(s.case().unwrap().editor.history().undo_len(), 1, "the stroke is still undoable");
    assert!(s.undo().unwrap());
    assert_eq!(s.case().unwrap().editor.labels(), &original[..]);
    // Still the same revision file, now holding the undone state.
    assert_eq!(latest_revision(&masks[0]).unwrap(), revision_path(&masks[0], 2));
    assert_eq!(radlens::io::load_mask(&revision_path(&masks[0], 2)).unwrap().labels(), &original[..]);
}
