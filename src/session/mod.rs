//! User-study sessions and annotation reviews: the study file, blinding, seeded order, results logs
//! appended and flushed as answers are given; mask review with edits, versioned saves and an
//! audit log. Knows nothing of candle or the GUI.

pub mod annotate;
pub mod audit;
pub mod prepared;
pub mod randomise;
pub mod results;
pub mod review;
pub mod reviewer;
pub mod save;
pub mod study;
pub mod summary;

use std::path::{Path, PathBuf};

/// A study file, results file or cache that cannot be used. Displays as one line: the reason, then
/// the file.
#[derive(Debug, thiserror::Error)]
#[error("{reason}: {}", path.display())]
pub struct SessionError {
    pub path: PathBuf,
    pub reason: String,
}

impl SessionError {
    pub fn new(path: &Path, reason: impl Into<String>) -> Self {
        let reason: String = reason.into();
        let reason = if reason.contains('\n') {
            reason.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            reason
        };
        SessionError { path: path.to_path_buf(), reason }
    }

    pub fn io(path: &Path, err: std::io::Error) -> Self {
        crate::io::LoadError::io(path, err).into()
    }
}

impl From<crate::io::LoadError> for SessionError {
    fn from(e: crate::io::LoadError) -> Self {
        SessionError { path: e.path, reason: e.reason }
    }
}
