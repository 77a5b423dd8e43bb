//! The precomputed maps of a study, so participants never wait: `<study stem>.cache/` next to the
//! study file holds one float32 .npy per map and `index.json`, keyed by (case, slice, method, params).
//!
//! `radlens study prepare` fills it (through the pipeline); the participant window only reads it, so
//! this module knows nothing of models.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::study::{Case, Study};
use super::SessionError;
use crate::io::{npy, write_atomic};

pub const INDEX_FILE: &str = "index.json";
/// The method name under which a case's model prediction (class 0 probability) is cached.
pub const PREDICTION: &str = "prediction";

/// What a map was computed from; two maps with equal keys are interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MapKey {
    pub case: String,
    pub slice: usize,
    pub method: String,
    /// Model, seed, samples and target, as text.
    pub params: String,
}

impl MapKey {
    pub fn new(study: &Study, case: &Case, slice: usize, method: &str) -> MapKey {
        MapKey { case: case.id.clone(), slice, method: method.to_string(), params: params_text(study, case) }
    }

    fn text(&self) -> String {
        format!("{}|{}|{}|{}", self.case, self.slice, self.method, self.params)
    }
}

/// The parameters that decide a case's maps (a changed model, seed or sample count means recomputing).
pub fn params_text(study: &Study, case: &Case) -> String {
    let samples = study.prepare.samples.map(|n| n.to_string()).unwrap_or_else(|| "default".into());
    format!("model={};seed={};samples={samples};target=default", case.model, study.design.seed)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: MapKey,
    file: String,
    height: usize,
    width: usize,
}

/// A study's map cache.
#[derive(Debug, Clone)]
pub struct MapCache {
    dir: PathBuf,
    entries: BTreeMap<String, Entry>,
}

impl MapCache {
    /// Opens the cache in `dir` (empty when the folder or its index does not exist yet).
    pub fn open(dir: &Path) -> Result<MapCache, SessionError> {
        let index = dir.join(INDEX_FILE);
        let entries = if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| SessionError::io(&index, e))?;
            let list: Vec<Entry> = serde_json::from_str(&text)
                .map_err(|e| SessionError::new(&index, format!("not a map cache index ({e})")))?;
            list.into_iter().map(|e| (e.key.text(), e)).collect()
        } else {
            BTreeMap::new()
        };
        Ok(MapCache { dir: dir.to_path_buf(), entries })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when the map is indexed and its file is present.
    pub fn contains(&self, key: &MapKey) -> bool {
        self.entries.get(&key.text()).is_some_and(|e| self.dir.join(&e.file).is_file())
    }

    /// Reads a map: (values row-major, height, width).
    pub fn load(&self, key: &MapKey) -> Result<(Vec<f32>, usize, usize), SessionError> {
        let Some(e) = self.entries.get(&key.text()) else {
            return Err(SessionError::new(
                &self.dir,
                format!(
                    "case '{}': the {} map of slice {} is not prepared (run `radlens study prepare`)",
                    key.case, key.method, key.slice
                ),
            ));
        };
        let path = self.dir.join(&e.file);
        let (values, shape) = npy::read_npy_f32(&path)?;
        if shape != [e.height, e.width] {
            return Err(SessionError::new(
                &path,
                format!("map has shape {shape:?}, the index says {}x{}", e.height, e.width),
            ));
        }
        Ok((values, e.height, e.width))
    }

    /// Stores a map (file first, then the index, both atomically).
    pub fn store(
        &mut self,
        key: MapKey,
        values: &[f32],
        height: usize,
        width: usize,
    ) -> Result<(), SessionError> {
        if values.len() != height * width {
            return Err(SessionError::new(
                &self.dir,
                format!("map has {} values, not {height}x{width}", values.len()),
            ));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| SessionError::io(&self.dir, e))?;
        let safe: String = key
            .method
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        // Short hash of the params so that a changed model or seed gets a new file.
        let h = key
            .params
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        let file = format!("{}_z{}_{safe}_{:08x}.npy", key.case, key.slice, h as u32);
        npy::write_npy_f32(&self.dir.join(&file), values, &[height, width])?;
        self.entries.insert(key.text(), Entry { key, file, height, width });
        self.save()
    }

    fn save(&self) -> Result<(), SessionError> {
        let index = self.dir.join(INDEX_FILE);
        let list: Vec<&Entry> = self.entries.values().collect();
        let text =
            serde_json::to_string_pretty(&list).map_err(|e| SessionError::new(&index, e.to_string()))?;
        write_atomic(&index, |w| w.write_all(text.as_bytes()))?;
        Ok(())
    }
}
