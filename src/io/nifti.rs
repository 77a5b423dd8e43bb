//! NIfTI-1 volumes and label maps.

use std::path::Path;

use super::LoadError;
use crate::imaging::Volume;

pub fn load_nifti(path: &Path) -> Result<Volume, LoadError> {
    Err(LoadError::new(path, "NIfTI loading is not built yet"))
}

pub fn write_nifti(path: &Path, _volume: &Volume) -> Result<(), LoadError> {
    Err(LoadError::new(path, "NIfTI writing is not built yet"))
}
