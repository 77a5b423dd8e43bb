//! radlens: a radiology viewer that shows clinicians why a model said what it said.
//!
//! The rooms and which may use which (see ARCHITECTURE.md):
//! `imaging` ← `io` ← `metrics` ← `cli`. `imaging` knows nothing of the others; nothing depends on `cli`.

pub mod cli;
pub mod imaging;
pub mod io;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod report;
pub mod session;
pub mod ui;
pub mod xai;
