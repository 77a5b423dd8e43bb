//! Masks: binary PNG/BMP, palette (index) PNG, NIfTI label maps.

use std::path::Path;

use super::LoadError;
use crate::imaging::Mask;

pub fn load_mask(path: &Path) -> Result<Mask, LoadError> {
    Err(LoadError::new(path, "mask loading is not built yet"))
}

use crate::imaging::Volume;

/// Placeholder until the mask loader lands (replaced by the io branch).
pub fn check_mask_grid(mask: &Mask, volume: &Volume, mask_path: &Path) -> Result<(), LoadError> {
    if mask.dims() != volume.dims() {
        return Err(LoadError::new(mask_path, "mask grid differs from the image"));
    }
    Ok(())
}
