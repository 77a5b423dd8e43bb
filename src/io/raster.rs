//! PNG, BMP, JPEG and TIFF images as one-slice volumes.

use std::path::Path;

use super::LoadError;
use crate::imaging::Volume;

/// File names (lower-cased) this module reads.
pub fn is_raster_name(name: &str) -> bool {
    [".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"].iter().any(|e| name.ends_with(e))
}

pub fn load_raster(path: &Path) -> Result<Volume, LoadError> {
    Err(LoadError::new(path, "image loading is not built yet"))
}
