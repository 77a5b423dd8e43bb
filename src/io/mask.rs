//! Masks: binary PNG/BMP, palette (index) PNG, NIfTI label maps.

use std::path::Path;

use super::LoadError;
use crate::imaging::Mask;

pub fn load_mask(path: &Path) -> Result<Mask, LoadError> {
    Err(LoadError::new(path, "mask loading is not built yet"))
}
