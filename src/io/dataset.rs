//! Datasets for training and evaluation: which images, masks and class labels a folder holds, and how
//! they split into train / validation / test.
//!
//! Layouts recognised by [`open_dataset`] (the layouts of the open data radlens is trained and scored on):
//! - **Split folders** (COVID-SemiSeg as the Inf-Net authors ship it): `train/` and `test/` (and
//!   optionally `val/`), each with `images/` and a mask folder (`infection_binary/`,
//!   `infection_multiclass/`, `masks/`, ...). The dataset's own test split is kept as the test split:
//!   it is never trained on.
//! - **Image/mask folders** (COVID-QU-Ex): `images/`, an optional mask folder (`infection_masks/`,
//!   `masks/`, `labels/`, ...) and an optional `labels.csv` with a header naming the file column (`file`,
//!   `image`, `filename`) and the class column (`class`, `label`). Images without a mask folder but with
//!   labels make a classification dataset.
//! - **NIfTI pairs**: `imagesTr/` + `labelsTr/` (Medical Segmentation Decathlon) or `images/` + `labels/`
//!   holding `.nii` / `.nii.gz` volumes; each volume is one sample, its slices are used by the caller.
//!
//! Images and masks are paired by file stem (`0.jpg` ↔ `0.png`, `case.nii.gz` ↔ `case.nii.gz`). An image
//! whose mask is missing, or a mask whose image is missing, is an error naming the file: a silently
//! shrunken dataset would make every score wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::LoadError;
use crate::imaging::SplitMix64;

/// Mask folder names tried, in this order, when the caller does not name one.
pub const MASK_DIRS: &[&str] =
    &["infection_binary", "infection_masks", "masks", "mask", "labels", "labelsTr"];

/// One image with its optional mask and class label.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The image's file stem: unique within the dataset split it comes from.
    pub id: String,
    pub image: PathBuf,
    pub mask: Option<PathBuf>,
    pub label: Option<String>,
    /// The split folder the sample came from (`train`, `val`, `test`), when the layout has them.
    pub source_split: Option<String>,
    /// True for NIfTI volumes (the caller iterates their slices).
    pub is_volume: bool,
}

/// How the dataset's folders are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    SplitFolders,
    ImageMaskFolders,
    NiftiPairs,
}

/// What [`open_dataset`] found.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub root: PathBuf,
    pub layout: Layout,
    /// The mask folder used (None: no masks).
    pub mask_dir: Option<String>,
    pub samples: Vec<Sample>,
    /// Class names from the labels file, sorted (empty without labels).
    pub classes: Vec<String>,
}

/// Which part of a dataset to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Val,
    Test,
    All,
}

impl Split {
    pub fn from_name(name: &str) -> Option<Split> {
        match name {
            "train" => Some(Split::Train),
            "val" | "valid" | "validation" => Some(Split::Val),
            "test" => Some(Split::Test),
            "all" => Some(Split::All),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::All => "all",
        }
    }
}

/// Options for [`open_dataset`].
#[derive(Debug, Clone, Default)]
pub struct DatasetOptions {
    /// The mask folder to use (e.g. `infection_multiclass`); default: the first of [`MASK_DIRS`] present.
    pub mask_dir: Option<String>,
    /// Ignore masks even if present (classification).
    pub no_masks: bool,
}

const IMAGE_EXTS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff", "dcm", "nii", "nii.gz"];

/// Finds the samples under `root` (see the module docs for the layouts).
pub fn open_dataset(root: &Path, opts: &DatasetOptions) -> Result<Dataset, LoadError> {
    if !root.is_dir() {
        return Err(if root.exists() {
            LoadError::new(root, "not a dataset folder (expected images/ or train/ and test/ inside)")
        } else {
            LoadError::new(root, "no such file or folder")
        });
    }
    let split_dirs: Vec<&str> =
        ["train", "val", "test"].into_iter().filter(|s| root.join(s).is_dir()).collect();
    if !split_dirs.is_empty() && split_dirs.iter().any(|s| root.join(s).join("images").is_dir()) {
        let mut samples = Vec::new();
        let mut mask_dir_used = None;
        for s in split_dirs {
            let dir = root.join(s);
            let (mut part, md) = image_mask_samples(&dir, "images", opts)?;
            if mask_dir_used.is_none() {
                mask_dir_used = md;
            }
            for p in &mut part {
                p.source_split = Some(s.to_string());
            }
            samples.extend(part);
        }
        let classes = class_names(&samples);
        return Ok(Dataset {
            root: root.into(),
            layout: Layout::SplitFolders,
            mask_dir: mask_dir_used,
            samples,
            classes,
        });
    }
    for images in ["imagesTr", "images"] {
        let dir = root.join(images);
        if dir.is_dir() && list_files(&dir)?.iter().any(|p| is_nifti(p)) {
            let (samples, md) = image_mask_samples(root, images, opts)?;
            return Ok(Dataset {
                root: root.into(),
                layout: Layout::NiftiPairs,
                mask_dir: md,
                samples,
                classes: vec![],
            });
        }
    }
    if root.join("images").is_dir() {
        let (samples, md) = image_mask_samples(root, "images", opts)?;
        let classes = class_names(&samples);
        return Ok(Dataset {
            root: root.into(),
            layout: Layout::ImageMaskFolders,
            mask_dir: md,
            samples,
            classes,
        });
    }
    Err(LoadError::new(root, "not a dataset folder (expected images/, imagesTr/ or train/ and test/ inside)"))
}

impl Dataset {
    /// The samples of one split. Layouts with their own test folder keep it as the test split; their
    /// train folder is divided 80/20 into train and validation (unless a `val` folder exists). Layouts
    /// without split folders are divided 64/16/20 (train/val/test). Divisions are seeded and, when the
    /// samples have class labels, stratified by class, so every class keeps its share.
    pub fn split(&self, split: Split, seed: u64) -> Vec<Sample> {
        if split == Split::All {
            return self.samples.clone();
        }
        let has_own = |name: &str| self.samples.iter().any(|s| s.source_split.as_deref() == Some(name));
        if has_own("test") || has_own("train") {
            let own = |name: &str| -> Vec<Sample> {
                self.samples.iter().filter(|s| s.source_split.as_deref() == Some(name)).cloned().collect()
            };
            if has_own("val") {
                return own(split.name());
            }
            return match split {
                Split::Test => own("test"),
                Split::Train | Split::Val => {
                    let train = own("train");
                    let (tr, va, _) = divide(&train, [0.8, 0.2, 0.0], seed);
                    if split == Split::Train {
                        tr
                    } else {
                        va
                    }
                }
                Split::All => self.samples.clone(),
            };
        }
        let (tr, va, te) = divide(&self.samples, [0.64, 0.16, 0.20], seed);
        match split {
            Split::Train => tr,
            Split::Val => va,
            Split::Test => te,
            Split::All => self.samples.clone(),
        }
    }
}

/// Divides samples into three parts with the given fractions, per class when labelled, in a seeded
/// order. Rounding gives each part at least its floor; the test part takes the remainder.
fn divide(samples: &[Sample], frac: [f64; 3], seed: u64) -> (Vec<Sample>, Vec<Sample>, Vec<Sample>) {
    let mut strata: BTreeMap<Option<String>, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        strata.entry(s.label.clone()).or_default().push(s);
    }
    let (mut a, mut b, mut c) = (vec![], vec![], vec![]);
    for (i, (_, mut group)) in strata.into_iter().enumerate() {
        // Sort first so that the division does not depend on the order the folder listing returned.
        group.sort_by(|x, y| x.id.cmp(&y.id));
        let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for k in (1..group.len()).rev() {
            let j = rng.below(k + 1);
            group.swap(k, j);
        }
        let n = group.len();
        let n_a = (n as f64 * frac[0]).round() as usize;
        let n_b = ((n as f64 * frac[1]).round() as usize).min(n - n_a.min(n));
        let n_a = n_a.min(n);
        for (k, s) in group.into_iter().enumerate() {
            if k < n_a {
                a.push(s.clone());
            } else if k < n_a + n_b {
                b.push(s.clone());
            } else if frac[2] > 0.0 {
                c.push(s.clone());
            } else {
                b.push(s.clone());
            }
        }
    }
    for part in [&mut a, &mut b, &mut c] {
        part.sort_by(|x, y| x.id.cmp(&y.id));
    }
    (a, b, c)
}

fn class_names(samples: &[Sample]) -> Vec<String> {
    let mut c: Vec<String> = samples.iter().filter_map(|s| s.label.clone()).collect();
    c.sort();
    c.dedup();
    c
}

/// Samples of one folder holding `images_dir/`, an optional mask folder and an optional `labels.csv`.
fn image_mask_samples(
    dir: &Path,
    images_dir: &str,
    opts: &DatasetOptions,
) -> Result<(Vec<Sample>, Option<String>), LoadError> {
    let images = list_files(&dir.join(images_dir))?;
    let images: Vec<PathBuf> = images.into_iter().filter(|p| is_image(p)).collect();
    if images.is_empty() {
        return Err(LoadError::new(&dir.join(images_dir), "no images in the dataset's image folder"));
    }
    let mask_dir = if opts.no_masks {
        None
    } else if let Some(name) = &opts.mask_dir {
        if !dir.join(name).is_dir() {
            return Err(LoadError::new(&dir.join(name), "mask folder not found"));
        }
        Some(name.clone())
    } else {
        MASK_DIRS.iter().find(|m| dir.join(m).is_dir() && **m != images_dir).map(|m| m.to_string())
    };
    let mut masks: BTreeMap<String, PathBuf> = BTreeMap::new();
    if let Some(md) = &mask_dir {
        for p in list_files(&dir.join(md))?.into_iter().filter(|p| is_image(p)) {
            let stem = stem(&p);
            if let Some(prev) = masks.insert(stem.clone(), p.clone()) {
                return Err(LoadError::new(
                    &p,
                    format!("two masks share the name {stem:?} (also {})", prev.display()),
                ));
            }
        }
    }
    let labels = read_labels(dir)?;
    let mut samples = Vec::with_capacity(images.len());
    let mut seen = BTreeMap::new();
    for image in images {
        let id = stem(&image);
        if let Some(prev) = seen.insert(id.clone(), image.clone()) {
            return Err(LoadError::new(
                &image,
                format!("two images share the name {id:?} (also {})", prev.display()),
            ));
        }
        let mask = match &mask_dir {
            Some(_) => Some(
                masks
                    .remove(&id)
                    .ok_or_else(|| LoadError::new(&image, "image has no mask in the mask folder"))?,
            ),
            None => None,
        };
        let label = match &labels {
            Some(map) => {
                let file = image.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
                let l = map.get(&file).or_else(|| map.get(&id));
                Some(l.ok_or_else(|| LoadError::new(&image, "image has no row in labels.csv"))?.clone())
            }
            None => None,
        };
        samples.push(Sample { id, is_volume: is_nifti(&image), image, mask, label, source_split: None });
    }
    if let Some((_, orphan)) = masks.into_iter().next() {
        return Err(LoadError::new(&orphan, "mask has no image in the image folder"));
    }
    Ok((samples, mask_dir))
}

/// `labels.csv` (file → class), if present.
fn read_labels(dir: &Path) -> Result<Option<BTreeMap<String, String>>, LoadError> {
    let path = dir.join("labels.csv");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| LoadError::io(&path, e))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv_line(lines.next().ok_or_else(|| LoadError::new(&path, "labels file is empty"))?);
    let col =
        |names: &[&str]| header.iter().position(|h| names.contains(&h.trim().to_ascii_lowercase().as_str()));
    let file_col = col(&["file", "image", "filename", "path"]).ok_or_else(|| {
        LoadError::new(&path, "labels file has no file column (file, image, filename or path)")
    })?;
    let class_col = col(&["class", "label"])
        .ok_or_else(|| LoadError::new(&path, "labels file has no class column (class or label)"))?;
    let mut map = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let cells = split_csv_line(line);
        let (Some(f), Some(c)) = (cells.get(file_col), cells.get(class_col)) else {
            return Err(LoadError::new(&path, format!("row {} has fewer columns than the header", i + 2)));
        };
        let f = Path::new(f.trim()).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        map.insert(f, c.trim().to_string());
    }
    Ok(Some(map))
}

/// Splits one CSV line (RFC 4180 quoting, no embedded newlines).
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn list_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let rd = std::fs::read_dir(dir).map_err(|e| LoadError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| LoadError::io(dir, e))?;
        let p = entry.path();
        let hidden = p.file_name().map(|n| n.to_string_lossy().starts_with('.')).unwrap_or(true);
        if p.is_file() && !hidden {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn is_nifti(p: &Path) -> bool {
    let n = super::lower_name(p);
    n.ends_with(".nii") || n.ends_with(".nii.gz")
}

fn is_image(p: &Path) -> bool {
    let n = super::lower_name(p);
    IMAGE_EXTS.iter().any(|e| n.ends_with(&format!(".{e}")))
}

/// The file name without its extension (`.nii.gz` counts as one).
fn stem(p: &Path) -> String {
    let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".nii.gz") {
        return name[..name.len() - 7].to_string();
    }
    match name.rfind('.') {
        Some(i) if i > 0 => name[..i].to_string(),
        _ => name,
    }
}
