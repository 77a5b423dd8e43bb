//! Figures and tables for people: heatmap overlays, the papers' figure grid; CSV, text tables and PNG plots
//! for eval.

pub mod csv;
pub mod curves;
pub mod figure;
pub mod overlay;
pub mod plots;
pub mod tables;
