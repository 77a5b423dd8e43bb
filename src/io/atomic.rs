//! Atomic writes: a temporary file in the destination folder, flushed, then renamed over the target,
//! so a reader never sees a half-written file and a crash never destroys the previous version.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::LoadError;

/// Writes `path` atomically with the bytes `write` produces.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), LoadError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(LoadError::new(path, "the output folder does not exist"));
    }
    let tmp = tempfile::Builder::new()
        .prefix(".radlens-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| LoadError::io(path, e))?;
    {
        let mut w = BufWriter::new(tmp.as_file());
        write(&mut w).map_err(|e| LoadError::io(path, e))?;
        w.flush().map_err(|e| LoadError::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| LoadError::io(path, e))?;
    tmp.persist(path).map_err(|e| LoadError::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        write_atomic(&p, |w| w.write_all(b"first")).unwrap();
        write_atomic(&p, |w| w.write_all(b"second")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        // A failing writer leaves the previous content intact.
        let err = write_atomic(&p, |_| Err(std::io::Error::other("boom"))).unwrap_err();
        assert!(err.to_string().ends_with("out.txt"));
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
