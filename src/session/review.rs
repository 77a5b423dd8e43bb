//! The review queue (which cases to check) and the persisted review state (what was decided).
//!
//! A queue comes from:
//! - a **folder** holding `images/` and a mask folder — the first of `masks/`, `infection_masks/`,
//!   `infection_binary/`, `infection_multiclass/` that exists (the layouts of COVID-QU-Ex and
//!   COVID-SemiSeg). Files pair by stem (`images/18.jpg` ↔ `masks/18.png`; `.nii.gz` counts as one
//!   extension); revision files (`18.rev2.png`) are never cases. Images without a mask are listed in
//!   `warnings` and skipped.
//! - a **list file** (CSV or TSV): one `image,mask` (or `image<TAB>mask`) per line, paths relative to
//!   the list file's folder; blank lines, `#` comments and an `image,mask` header are skipped. Either
//!   path may be a volume and label map (NIfTI), so a CT volume with its label map is one case.
//!
//! State and log live beside the queue so a restart resumes: for a folder `Q/`, `Q/radlens_review.json`
//! and `Q/radlens_audit.jsonl`; for a list `Q/list.csv`, `Q/list.csv.review.json` and
//! `Q/list.csv.audit.jsonl`. The state is rewritten atomically on every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::save::is_revision_name;
use crate::io::{write_atomic, LoadError};

/// Mask folder names tried, in order, beside `images/`.
pub const MASK_FOLDERS: [&str; 4] = ["masks", "infection_masks", "infection_binary", "infection_multiclass"];

/// One case: an image (or volume) and its mask (or label map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Stable key in the review state: the image path as given (relative to the queue's folder).
    pub id: String,
    pub image: PathBuf,
    pub mask: PathBuf,
}

/// An ordered list of cases, with where its state and audit log live.
#[derive(Debug, Clone)]
pub struct Queue {
    pub source: PathBuf,
    pub cases: Vec<Case>,
    pub warnings: Vec<String>,
    pub state_path: PathBuf,
    pub audit_path: PathBuf,
}

/// File name without its extension (`.nii.gz` counts as one).
fn stem_of(name: &str) -> &str {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".nii.gz") {
        return &name[..name.len() - 7];
    }
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

/// Orders names as people do: `2` before `10`.
fn natural_key(s: &str) -> Vec<(u8, u64, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        let mut run = String::new();
        let digit = c.is_ascii_digit();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() != digit {
                break;
            }
            run.push(d);
            chars.next();
        }
        if digit {
            out.push((0, run.parse().unwrap_or(u64::MAX), run));
        } else {
            out.push((1, 0, run));
        }
    }
    out
}

fn list_files(dir: &Path) -> Result<Vec<String>, LoadError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| LoadError::io(dir, e))? {
        let entry = entry.map_err(|e| LoadError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        names.push(name);
    }
    names.sort_by_key(|n| natural_key(n));
    Ok(names)
}

impl Queue {
    /// Opens a queue folder or list file (see the module docs).
    pub fn open(path: &Path) -> Result<Queue, LoadError> {
        let meta = std::fs::metadata(path).map_err(|e| LoadError::io(path, e))?;
        if meta.is_dir() {
            Self::from_folder(path)
        } else {
            Self::from_list(path)
        }
    }

    fn from_folder(dir: &Path) -> Result<Queue, LoadError> {
        let images = dir.join("images");
        if !images.is_dir() {
            return Err(LoadError::new(dir, "a review folder needs an images/ folder beside its masks/"));
        }
        let Some(mask_dir) = MASK_FOLDERS.iter().map(|m| dir.join(m)).find(|p| p.is_dir()) else {
            return Err(LoadError::new(
                dir,
                format!("no mask folder found (looked for {})", MASK_FOLDERS.join("/, ")),
            ));
        };
        let mut masks: BTreeMap<String, String> = BTreeMap::new();
        for name in list_files(&mask_dir)? {
            if !is_revision_name(&name) {
                masks.entry(stem_of(&name).to_string()).or_insert(name);
            }
        }
        let mask_folder = mask_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut cases = Vec::new();
        let mut warnings = Vec::new();
        for name in list_files(&images)? {
            if is_revision_name(&name) {
                continue;
            }
            match masks.get(stem_of(&name)) {
                Some(mask) => cases.push(Case {
                    id: format!("images/{name}"),
                    image: images.join(&name),
                    mask: mask_dir.join(mask),
                }),
                None => warnings.push(format!("images/{name} has no mask in {mask_folder}/ (skipped)")),
            }
        }
        if cases.is_empty() {
            return Err(LoadError::new(dir, "no image has a mask of the same name"));
        }
        Ok(Queue {
            source: dir.to_path_buf(),
            cases,
            warnings,
            state_path: dir.join("radlens_review.json"),
            audit_path: dir.join("radlens_audit.jsonl"),
        })
    }

    fn from_list(list: &Path) -> Result<Queue, LoadError> {
        let text = std::fs::read_to_string(list).map_err(|e| LoadError::io(list, e))?;
        let base = match list.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut cases = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.eq_ignore_ascii_case("image,mask") {
                continue;
            }
            let fields: Vec<&str> = if line.contains('\t') { line.split('\t') } else { line.split(',') }
                .map(|f| f.trim().trim_matches('"'))
                .collect();
            if fields.len() != 2 || fields.iter().any(|f| f.is_empty()) {
                return Err(LoadError::new(
                    list,
                    format!("line {} must be `image,mask`, got `{line}`", n + 1),
                ));
            }
            let (image, mask) = (base.join(fields[0]), base.join(fields[1]));
            for p in [&image, &mask] {
                if !p.is_file() {
                    return Err(LoadError::new(
                        list,
                        format!("line {}: no such file {}", n + 1, p.display()),
                    ));
                }
            }
            cases.push(Case { id: fields[0].to_string(), image, mask });
        }
        if cases.is_empty() {
            return Err(LoadError::new(list, "the list has no `image,mask` lines"));
        }
        let name = list.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Queue {
            source: list.to_path_buf(),
            cases,
            warnings: vec![],
            state_path: base.join(format!("{name}.review.json")),
            audit_path: base.join(format!("{name}.audit.jsonl")),
        })
    }

    pub fn len(&self) -> usize {
        self.cases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }
}

/// A reviewer's decision on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Unreviewed,
    Accepted,
    Rejected,
    NeedsFix,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Unreviewed => "unreviewed",
            Status::Accepted => "accepted",
            Status::Rejected => "rejected",
            Status::NeedsFix => "needs_fix",
        }
    }

    /// The audit-log action that sets this status.
    pub fn action(self) -> &'static str {
        match self {
            Status::Unreviewed => "reset",
            Status::Accepted => "accept",
            Status::Rejected => "reject",
            Status::NeedsFix => "needs_fix",
        }
    }
}

/// What is known about one case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseReview {
    pub status: Status,
    #[serde(default)]
    pub comment: String,
    /// The newest revision file written for the case (relative to the queue folder when inside it).
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub annotator: String,
    /// UTC time of the last change.
    #[serde(default)]
    pub updated: String,
}

/// The persisted review state of a queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviewState {
    pub version: u32,
    pub cases: BTreeMap<String, CaseReview>,
    /// The case on screen when the state was last written (where a restart resumes).
    #[serde(default)]
    pub current: Option<String>,
}

impl ReviewState {
    /// Loads the state, or an empty one when the file does not exist yet. A damaged file is an error
    /// (never silently replaced: it holds someone's work).
    pub fn load(path: &Path) -> Result<ReviewState, LoadError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| LoadError::new(path, format!("review state is not valid JSON ({e})"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(ReviewState { version: 1, ..Default::default() })
            }
            Err(e) => Err(LoadError::io(path, e)),
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, path: &Path) -> Result<(), LoadError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| LoadError::new(path, e.to_string()))?;
        write_atomic(path, |w| w.write_all(&bytes))
    }

    pub fn status(&self, id: &str) -> Status {
        self.cases.get(id).map_or(Status::Unreviewed, |c| c.status)
    }

    /// (reviewed, total) over the queue: a case is reviewed once it has any status but unreviewed.
    pub fn progress(&self, queue: &Queue) -> (usize, usize) {
        let done = queue.cases.iter().filter(|c| self.status(&c.id) != Status::Unreviewed).count();
        (done, queue.len())
    }
}

/// Which cases navigation visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    All,
    Unreviewed,
    Accepted,
    Rejected,
    NeedsFix,
}

impl Filter {
    pub const ALL: [Filter; 5] =
        [Filter::All, Filter::Unreviewed, Filter::Accepted, Filter::Rejected, Filter::NeedsFix];

    pub fn name(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::Unreviewed => "unreviewed",
            Filter::Accepted => "accepted",
            Filter::Rejected => "rejected",
            Filter::NeedsFix => "needs-fix",
        }
    }

    pub fn admits(self, status: Status) -> bool {
        match self {
            Filter::All => true,
            Filter::Unreviewed => status == Status::Unreviewed,
            Filter::Accepted => status == Status::Accepted,
            Filter::Rejected => status == Status::Rejected,
            Filter::NeedsFix => status == Status::NeedsFix,
        }
    }

    /// Queue indices of the cases this filter admits, in queue order.
    pub fn indices(self, queue: &Queue, state: &ReviewState) -> Vec<usize> {
        (0..queue.len()).filter(|&i| self.admits(state.status(&queue.cases[i].id))).collect()
    }
}
