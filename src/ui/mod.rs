//! Panels (viewer, compare grid, study, annotate); each returns commands that one place executes.
//! No candle, no wgpu here.

pub mod annotate;
