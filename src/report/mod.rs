//! Figures and tables for people: heatmap overlays now; CSV / JSON / plots for eval and studies later.

pub mod curves;
pub mod overlay;
