//! Every WGSL source of the viewer, embedded at build time. Nothing else in the crate includes shaders.

/// The slice panel: window/level, colormaps, masks, heatmap, superpixel boundaries (`shaders/slice.wgsl`).
pub const SLICE_WGSL: &str = include_str!("../../shaders/slice.wgsl");
