//! GPU rendering of slice panels with wgpu (through `eframe::egui_wgpu`): the pipeline is built once
//! and kept in egui_wgpu's `callback_resources`; slices, masks and maps are uploaded once and cached
//! by (source, slice); window/level, colormaps, opacity, threshold and overlay modes are uniforms.
//!
//! This room knows `imaging` data (volumes, masks) and wgpu; nothing of models, candle or the app.

pub mod colormap;
pub mod shaders;
pub mod slice;

pub use colormap::Colormap;
pub use slice::{
    install, new_source_id, HeatLayer, LabelLayer, MaskLayer, SliceCallback, SliceLayers, SliceRenderer,
    SliceStyle, SliceUniforms, ViewTransform,
};
