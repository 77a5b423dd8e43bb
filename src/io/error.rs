use std::path::{Path, PathBuf};

/// A file radlens could not read or write. Displays as one line: the reason, then the file.
#[derive(Debug, thiserror::Error)]
#[error("{reason}: {}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub reason: String,
}

impl LoadError {
    pub fn new(path: &Path, reason: impl Into<String>) -> Self {
        LoadError { path: path.to_path_buf(), reason: one_line(reason.into()) }
    }

    /// An OS-level failure (missing file, permission, ...).
    pub fn io(path: &Path, err: std::io::Error) -> Self {
        let reason = match err.kind() {
            std::io::ErrorKind::NotFound => "no such file or folder".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => err.to_string(),
        };
        LoadError::new(path, reason)
    }
}

/// Error chains from dependencies can hold newlines; our messages are one line.
fn one_line(s: String) -> String {
    if s.contains('\n') {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s
    }
}
