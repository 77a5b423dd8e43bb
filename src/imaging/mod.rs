//! The imaging core: volumes, masks, spacing, orientation and windowing.
//!
//! Pure data and arithmetic. This room depends on nothing else in the crate (no I/O, no candle, no UI),
//! so every loader, model, metric and panel can share it.

mod mask;
mod rng;
mod volume;
mod window;

pub use mask::{LabelSelector, Mask};
pub use rng::SplitMix64;
pub use volume::{Affine, Modality, StudyMeta, Unit, Volume, VolumeError, MAX_VOLUME_BYTES};
pub use window::{auto_window, WindowLevel, WindowPreset};
