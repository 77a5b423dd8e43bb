//! A review session: the queue, its persisted state, the audit log and the case being edited, tied
//! together so that every completed action is on disk before the call returns.
//!
//! Durability, in order, after each completed edit (a stroke when the pointer is released, a fill, a
//! grow, an undo…): the edited mask is written atomically to this session's revision file beside the
//! original (`name.revN.png`, never the original), the audit line is appended and fsync'd, the review
//! state is rewritten atomically. A crash therefore loses at most the stroke in progress.
//!
//! Opening a case loads the newest revision on disk (so a restart resumes with every completed stroke)
//! and keeps the original for comparison (contour, Dice). The first save of a session writes a new
//! revision one past the newest; later autosaves in the session rewrite that same file. Going back to
//! a case visited earlier in the session restores its editor, so undo reaches back across visits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::annotate::{self, Action, Connectivity, Edit, GrowCriterion, MaskEditor};
use super::audit::{utc_now, AuditEntry, AuditLog};
use super::review::{CaseReview, Filter, Queue, ReviewState, Status};
use super::save::{latest_revision, next_revision_path, write_mask};
use crate::imaging::{LabelSelector, Mask, Volume};
use crate::io::{load_mask, load_study, LoadError, LoadOptions};

/// The case on screen: its image, the original mask and the editor holding the edited mask.
#[derive(Debug)]
pub struct OpenCase {
    pub index: usize,
    pub image: Volume,
    pub original: Mask,
    pub editor: MaskEditor,
    /// Where the edited mask was loaded from (the original, or the newest revision).
    pub loaded_from: PathBuf,
    /// The revision file this session writes, once it has saved.
    pub revision: Option<PathBuf>,
}

impl OpenCase {
    /// The edited mask as a [`Mask`].
    pub fn edited_mask(&self) -> Mask {
        Mask::new(self.editor.labels().to_vec(), self.editor.dims()).unwrap_or_else(|| self.original.clone())
    }

    /// Dice between the original and the edited mask under `sel`, over the whole volume.
    pub fn dice(&self, sel: LabelSelector) -> f64 {
        annotate::dice(self.original.labels(), self.editor.labels(), sel)
    }

    pub fn depth(&self) -> usize {
        self.image.depth()
    }
}

/// A review session over a queue, for one annotator.
#[derive(Debug)]
pub struct ReviewSession {
    pub queue: Queue,
    pub state: ReviewState,
    audit: AuditLog,
    annotator: String,
    filter: Filter,
    case: Option<OpenCase>,
    /// Why the current case could not be opened, if it could not.
    case_error: Option<String>,
    current: usize,
    /// Editors (with their undo history and revision file) of cases visited earlier in this session,
    /// so going back to a case keeps its history and keeps writing the same revision.
    parked: HashMap<usize, (MaskEditor, Option<PathBuf>)>,
}

impl ReviewSession {
    /// Opens a queue (folder or list file), its state and audit log, and the case it was left on.
    pub fn open(queue_path: &Path, annotator: &str) -> Result<ReviewSession, LoadError> {
        let queue = Queue::open(queue_path)?;
        let state = ReviewState::load(&queue.state_path)?;
        let audit = AuditLog::open(&queue.audit_path)?;
        let current =
            state.current.as_ref().and_then(|id| queue.cases.iter().position(|c| &c.id == id)).unwrap_or(0);
        let mut s = ReviewSession {
            queue,
            state,
            audit,
            annotator: annotator.to_string(),
            filter: Filter::All,
            case: None,
            case_error: None,
            current,
            parked: HashMap::new(),
        };
        s.load_current();
        Ok(s)
    }

    pub fn annotator(&self) -> &str {
        &self.annotator
    }

    pub fn case(&self) -> Option<&OpenCase> {
        self.case.as_ref()
    }

    pub fn case_mut(&mut self) -> Option<&mut OpenCase> {
        self.case.as_mut()
    }

    pub fn case_error(&self) -> Option<&str> {
        self.case_error.as_deref()
    }

    /// Queue index of the case on screen.
    pub fn current_index(&self) -> usize {
        self.current
    }

    pub fn current_id(&self) -> &str {
        self.queue.cases.get(self.current).map_or("", |c| c.id.as_str())
    }

    pub fn current_review(&self) -> CaseReview {
        self.state.cases.get(self.current_id()).cloned().unwrap_or_default()
    }

    pub fn filter(&self) -> Filter {
        self.filter
    }

    /// (reviewed, total).
    pub fn progress(&self) -> (usize, usize) {
        self.state.progress(&self.queue)
    }

    fn load_current(&mut self) {
        if let Some(old) = self.case.take() {
            self.parked.insert(old.index, (old.editor, old.revision));
        }
        self.case_error = None;
        let Some(case) = self.queue.cases.get(self.current).cloned() else { return };
        match open_case(self.current, &case.image, &case.mask) {
            Ok(mut c) => {
                if let Some((editor, revision)) = self.parked.remove(&self.current) {
                    c.editor = editor;
                    c.revision = revision;
                }
                self.case = Some(c);
            }
            Err(e) => self.case_error = Some(e.to_string()),
        }
    }

    /// Moves to queue index `i` (ending any stroke, which is saved first); remembers it in the state.
    pub fn go_to(&mut self, i: usize) -> Result<(), LoadError> {
        if i >= self.queue.len() {
            return Ok(());
        }
        self.end_stroke()?;
        self.current = i;
        self.load_current();
        self.state.current = Some(self.current_id().to_string());
        self.state.save(&self.queue.state_path)
    }

    /// Moves to the next case the filter admits (after the current one); stays when there is none.
    pub fn next(&mut self) -> Result<bool, LoadError> {
        let idx = self.filter.indices(&self.queue, &self.state);
        match idx.into_iter().find(|&i| i > self.current) {
            Some(i) => self.go_to(i).map(|_| true),
            None => Ok(false),
        }
    }

    pub fn previous(&mut self) -> Result<bool, LoadError> {
        let idx = self.filter.indices(&self.queue, &self.state);
        match idx.into_iter().rev().find(|&i| i < self.current) {
            Some(i) => self.go_to(i).map(|_| true),
            None => Ok(false),
        }
    }

    /// Sets the filter; when the case on screen does not pass it, moves to the first one that does.
    pub fn set_filter(&mut self, f: Filter) -> Result<(), LoadError> {
        self.filter = f;
        let idx = f.indices(&self.queue, &self.state);
        if !idx.contains(&self.current) {
            if let Some(&i) = idx.first() {
                self.go_to(i)?;
            }
        }
        Ok(())
    }

    /// Records a decision (and comment) on the case on screen.
    pub fn set_status(&mut self, status: Status, comment: &str) -> Result<(), LoadError> {
        self.end_stroke()?;
        let id = self.current_id().to_string();
        if id.is_empty() {
            return Ok(());
        }
        let entry = self.state.cases.entry(id.clone()).or_default();
        entry.status = status;
        entry.comment = comment.to_string();
        entry.annotator = self.annotator.clone();
        entry.updated = utc_now();
        self.state.current = Some(id.clone());
        self.log(status.action(), None, None, 0, 0, (!comment.is_empty()).then(|| comment.to_string()))?;
        self.state.save(&self.queue.state_path)
    }

    fn log(
        &mut self,
        action: &str,
        label: Option<u16>,
        slice: Option<usize>,
        added: usize,
        removed: usize,
        comment: Option<String>,
    ) -> Result<(), LoadError> {
        let entry = AuditEntry {
            annotator: self.annotator.clone(),
            time: utc_now(),
            case: self.current_id().to_string(),
            action: action.to_string(),
            label,
            slice,
            added,
            removed,
            comment,
        };
        self.audit.append(&entry)
    }

    /// Saves the edited mask to this session's revision file and records it in the state.
    pub fn save(&mut self) -> Result<Option<PathBuf>, LoadError> {
        let Some(case) = self.case.as_mut() else { return Ok(None) };
        let Some(qcase) = self.queue.cases.get(self.current) else { return Ok(None) };
        let original = qcase.mask.clone();
        let first = case.revision.is_none();
        let path = case.revision.clone().unwrap_or_else(|| next_revision_path(&original));
        let mask = case.edited_mask();
        write_mask(&path, &mask, &case.image, &original)?;
        case.revision = Some(path.clone());
        let rel = relative_to(&path, &self.queue.source);
        let id = self.current_id().to_string();
        let entry = self.state.cases.entry(id.clone()).or_default();
        entry.revision = Some(rel.clone());
        entry.annotator = self.annotator.clone();
        entry.updated = utc_now();
        self.state.current = Some(id);
        if first {
            self.log("save", None, None, 0, 0, Some(rel))?;
        }
        self.state.save(&self.queue.state_path)?;
        Ok(Some(path))
    }

    /// After a completed edit: save the mask, log the edit, save the state.
    fn completed(&mut self, name: &str, edit: &Edit) -> Result<(), LoadError> {
        self.save()?;
        self.log(name, Some(edit.label), Some(edit.slice), edit.added(), edit.removed(), None)
    }

    /// Commits changes computed by one of the `annotate` operations, then saves and logs.
    fn commit(
        &mut self,
        action: Action,
        label: u16,
        z: usize,
        f: impl FnOnce(&OpenCase) -> Vec<annotate::PixelChange>,
    ) -> Result<usize, LoadError> {
        self.end_stroke()?;
        let Some(case) = self.case.as_mut() else { return Ok(0) };
        let changes = f(case);
        let Some(edit) = case.editor.commit_changes(action, label, z, changes).cloned() else { return Ok(0) };
        self.completed(action.name(), &edit)?;
        Ok(edit.changes.len())
    }

    /// Flood fill on slice z from a seed pixel; returns the number of pixels changed.
    pub fn flood_fill(&mut self, z: usize, seed: (usize, usize), label: u16) -> Result<usize, LoadError> {
        self.commit(Action::FloodFill, label, z, |c| {
            annotate::flood_fill(c.editor.slice(z), c.editor.grid(), seed, label)
        })
    }

    /// Polygon / lasso fill on slice z.
    pub fn polygon(&mut self, z: usize, points: &[(f64, f64)], label: u16) -> Result<usize, LoadError> {
        self.commit(Action::Polygon, label, z, |c| {
            annotate::polygon_fill(c.editor.slice(z), c.editor.grid(), points, label)
        })
    }

    /// Region growing on slice z from a seed pixel over the image values.
    pub fn region_grow(
        &mut self,
        z: usize,
        seed: (usize, usize),
        criterion: GrowCriterion,
        connectivity: Connectivity,
        label: u16,
    ) -> Result<usize, LoadError> {
        self.commit(Action::RegionGrow, label, z, |c| {
            if z >= c.image.depth() {
                return vec![];
            }
            annotate::region_grow(
                c.editor.slice(z),
                c.image.slice(z),
                c.editor.grid(),
                seed,
                criterion,
                connectivity,
                label,
            )
        })
    }

    /// Copies slice `from` onto slice `to` (every label, or only `label`).
    pub fn copy_slice(&mut self, from: usize, to: usize, label: Option<u16>) -> Result<usize, LoadError> {
        self.commit(Action::CopySlice, label.unwrap_or(0), to, |c| {
            let d = c.editor.dims()[0];
            if from >= d || to >= d || from == to {
                return vec![];
            }
            annotate::copy_slice(c.editor.slice(from), c.editor.slice(to), label)
        })
    }

    /// Starts a brush or eraser stroke (nothing is saved until it ends).
    pub fn begin_stroke(&mut self, z: usize, p: (f64, f64), radius_mm: f64, label: u16, erase: bool) {
        if let Some(c) = self.case.as_mut() {
            c.editor.begin_stroke(z, p, radius_mm, label, erase);
        }
    }

    pub fn stroke_to(&mut self, p: (f64, f64)) {
        if let Some(c) = self.case.as_mut() {
            c.editor.stroke_to(p);
        }
    }

    /// Ends the stroke in progress: it becomes one undoable edit, saved and logged.
    pub fn end_stroke(&mut self) -> Result<(), LoadError> {
        let Some(edit) = self.case.as_mut().and_then(|c| c.editor.end_stroke()) else { return Ok(()) };
        self.completed(edit.action.name(), &edit)
    }

    /// Undoes the last edit of this case; saves and logs it (added/removed are the undo's own effect).
    pub fn undo(&mut self) -> Result<bool, LoadError> {
        self.end_stroke()?;
        let Some(edit) = self.case.as_mut().and_then(|c| c.editor.undo()) else { return Ok(false) };
        let added = edit.changes.iter().filter(|c| c.old != 0).count();
        let removed = edit.changes.iter().filter(|c| c.old == 0).count();
        self.save()?;
        self.log(
            "undo",
            Some(edit.label),
            Some(edit.slice),
            added,
            removed,
            Some(edit.action.name().into()),
        )?;
        Ok(true)
    }

    pub fn redo(&mut self) -> Result<bool, LoadError> {
        self.end_stroke()?;
        let Some(edit) = self.case.as_mut().and_then(|c| c.editor.redo()) else { return Ok(false) };
        self.save()?;
        self.log(
            "redo",
            Some(edit.label),
            Some(edit.slice),
            edit.added(),
            edit.removed(),
            Some(edit.action.name().into()),
        )?;
        Ok(true)
    }
}

/// Loads a case: the image, the original mask, and the newest revision (or the original) to edit.
pub fn open_case(index: usize, image_path: &Path, mask_path: &Path) -> Result<OpenCase, LoadError> {
    let image = load_study(image_path, &LoadOptions::default())?.volume;
    let original = load_mask(mask_path)?;
    crate::io::mask::check_mask_grid(&original, &image, mask_path)?;
    let loaded_from = latest_revision(mask_path).unwrap_or_else(|| mask_path.to_path_buf());
    let edited = if loaded_from.as_path() == mask_path {
        original.clone()
    } else {
        let m = load_mask(&loaded_from)?;
        crate::io::mask::check_mask_grid(&m, &image, &loaded_from)?;
        m
    };
    let [_, sy, sx] = image.spacing_mm;
    let editor = MaskEditor::new(edited.labels().to_vec(), edited.dims(), [sy, sx])
        .ok_or_else(|| LoadError::new(&loaded_from, "mask size does not match its dimensions"))?;
    Ok(OpenCase { index, image, original, editor, loaded_from, revision: None })
}

/// `path` relative to the queue's folder when it lies inside it, else as given.
fn relative_to(path: &Path, source: &Path) -> String {
    let root = if source.is_dir() { source } else { source.parent().unwrap_or(Path::new("")) };
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().replace('\\', "/")
}
