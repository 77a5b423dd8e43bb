//! NumPy `.npy` arrays of float32, the exchange format of researchers' scripts.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use super::{write_atomic, LoadError};

/// Writes `data` (C order) with `shape` as a float32 `.npy`, atomically.
pub fn write_npy_f32(path: &Path, data: &[f32], shape: &[usize]) -> Result<(), LoadError> {
    let arr = ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).map_err(|e| {
        LoadError::new(path, format!("array shape {shape:?} does not fit {} values: {e}", data.len()))
    })?;
    write_atomic(path, |w| arr.write_npy(w).map_err(std::io::Error::other))
}

/// Reads a float32 or float64 `.npy` (any shape) as f32 values in C order with its shape.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<f32>, Vec<usize>), LoadError> {
    let open = || std::fs::File::open(path).map_err(|e| LoadError::io(path, e));
    if let Ok(arr) = ArrayD::<f32>::read_npy(open()?) {
        let shape = arr.shape().to_vec();
        return Ok((arr.as_standard_layout().iter().copied().collect(), shape));
    }
    match ArrayD::<f64>::read_npy(open()?) {
        Ok(arr) => {
            let shape = arr.shape().to_vec();
            Ok((arr.as_standard_layout().iter().map(|&v| v as f32).collect(), shape))
        }
        Err(e) => Err(LoadError::new(path, format!("not a float32/float64 .npy array ({e})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_values_and_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 - 3.5).collect();
        write_npy_f32(&p, &data, &[2, 3, 4]).unwrap();
        let (back, shape) = read_npy_f32(&p).unwrap();
        assert_eq!(shape, vec![2, 3, 4]);
        assert_eq!(back, data);
        // The header is what numpy writes: magic, version, then a dict with '<f4'.
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        assert!(String::from_utf8_lossy(&bytes[..128]).contains("'descr': '<f4'"));
    }

    #[test]
    fn garbage_is_a_one_line_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        std::fs::write(&p, b"not numpy").unwrap();
        let e = read_npy_f32(&p).unwrap_err().to_string();
        assert!(e.contains("bad.npy") && !e.contains('\n'), "{e}");
    }
}
