//! Panels and widgets (egui only: no candle, no wgpu). Each returns an optional action for the app to execute.

pub mod annotate;
pub mod file_browser;
pub mod series_picker;
