//! Single DICOM files (single- and multi-frame): decoding, rescale to HU, MONOCHROME1, padding.
//! (Being written: see the DICOM issue.)

use std::path::Path;

use super::{LoadError, Study};

/// True when the file has the "DICM" magic at byte 128.
pub fn has_dicom_magic(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return false };
    let mut magic = [0u8; 4];
    f.seek(SeekFrom::Start(128)).is_ok() && f.read_exact(&mut magic).is_ok() && &magic == b"DICM"
}

pub fn load_dicom_file(path: &Path) -> Result<Study, LoadError> {
    Err(LoadError::new(path, "DICOM loading is not built yet"))
}
