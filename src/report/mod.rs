//! Figures and tables for people: heatmap overlays; CSV, text tables and PNG plots for eval.

pub mod csv;
pub mod overlay;
pub mod plots;
pub mod tables;
