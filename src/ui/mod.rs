//! Panels (viewer, compare grid, study, annotate); each returns an optional command. Nothing here knows
//! candle or wgpu.

pub mod study;
