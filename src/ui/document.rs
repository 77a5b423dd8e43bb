//! The open study as the panels see it: plain data (volume, masks, prediction, heatmaps), each layer
//! with a render source id so the GPU cache knows when it changed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::imaging::{Mask, Volume};
use crate::render::new_source_id;

/// A mask loaded with the study (ground truth first).
#[derive(Debug, Clone)]
pub struct LoadedMask {
    pub name: String,
    pub source: u64,
    pub mask: Arc<Mask>,
}

/// The model's predicted mask on the study grid; slices not yet predicted are empty.
#[derive(Debug, Clone)]
pub struct PredictionMask {
    pub model: String,
    pub source: u64,
    pub mask: Arc<Mask>,
    pub slices: BTreeSet<usize>,
    pub threshold: f32,
}

/// One heatmap on one slice of the study grid.
#[derive(Debug, Clone)]
pub struct HeatmapEntry {
    /// Method name, or "file: NAME" for a loaded map.
    pub method: String,
    pub model: String,
    /// The parameters it was computed with, as shown to the user (part of the cache key).
    pub params: String,
    pub slice: usize,
    pub source: u64,
    pub values: Arc<Vec<f32>>,
    pub min: f32,
    pub max: f32,
    pub signed: bool,
    pub superpixels: Option<(u64, Arc<Vec<u32>>)>,
    /// (repeats, mean top-10% IoU, mean Spearman) for stochastic methods run more than once.
    pub stability: Option<(usize, f64, f64)>,
}

impl HeatmapEntry {
    /// A map from raw values; the range and sign are measured here.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        method: String,
        model: String,
        params: String,
        slice: usize,
        values: Vec<f32>,
        superpixels: Option<Vec<u32>>,
        stability: Option<(usize, f64, f64)>,
    ) -> Self {
        let (min, max) = values
            .iter()
            .filter(|v| v.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let (min, max) = if min.is_finite() { (min, max) } else { (0.0, 1.0) };
        // Signed when the map has real mass on both sides of zero (LRP, IG, saliency with sign, LIME).
        let signed = min < 0.0 && max > 0.0 && -min > 0.05 * max;
        HeatmapEntry {
            method,
            model,
            params,
            slice,
            source: new_source_id(),
            values: Arc::new(values),
            min,
            max,
            signed,
            superpixels: superpixels.map(|s| (new_source_id(), Arc::new(s))),
            stability,
        }
    }

    /// The value at pixel (y, x) of a `width`-wide slice.
    pub fn value_at(&self, y: usize, x: usize, width: usize) -> Option<f32> {
        self.values.get(y * width + x).copied()
    }
}

/// The open study.
#[derive(Debug, Clone)]
pub struct Document {
    pub name: String,
    pub path: Option<PathBuf>,
    pub description: String,
    pub source: u64,
    pub volume: Arc<Volume>,
    /// Masks loaded with or onto the study; `gt` says which is the ground truth.
    pub masks: Vec<LoadedMask>,
    pub gt: Option<usize>,
    pub prediction: Option<PredictionMask>,
    pub heatmaps: Vec<HeatmapEntry>,
    /// Loader warnings, shown in the info line.
    pub warnings: Vec<String>,
}

impl Document {
    pub fn new(name: String, path: Option<PathBuf>, volume: Volume) -> Self {
        Document {
            name,
            path,
            description: String::new(),
            source: new_source_id(),
            volume: Arc::new(volume),
            masks: Vec::new(),
            gt: None,
            prediction: None,
            heatmaps: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn add_mask(&mut self, name: String, mask: Mask) {
        self.masks.push(LoadedMask { name, source: new_source_id(), mask: Arc::new(mask) });
        if self.gt.is_none() {
            self.gt = Some(self.masks.len() - 1);
        }
    }

    pub fn ground_truth(&self) -> Option<&LoadedMask> {
        self.gt.and_then(|i| self.masks.get(i))
    }

    /// The newest map of `method` on `slice` (computed with `model` and `params`, or loaded from a file).
    pub fn heatmap(&self, method: &str, model: &str, params: &str, slice: usize) -> Option<&HeatmapEntry> {
        self.heatmaps.iter().rev().find(|h| {
            h.method == method
                && h.slice == slice
                && (h.method.starts_with("file: ") || (h.model == model && h.params == params))
        })
    }

    /// Adds a map, replacing one with the same key.
    pub fn put_heatmap(&mut self, entry: HeatmapEntry) {
        self.heatmaps.retain(|h| {
            !(h.method == entry.method
                && h.model == entry.model
                && h.params == entry.params
                && h.slice == entry.slice)
        });
        self.heatmaps.push(entry);
    }
}
