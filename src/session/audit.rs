//! The append-only audit log of an annotation review: one JSON object per line, written, flushed and
//! fsync'd as each action happens, so a crash loses nothing that was logged.
//!
//! Line format (keys in this order):
//! `{"annotator":"ana","time":"2026-11-23T14:20:01.123Z","case":"images/18.jpg","action":"brush",
//!   "label":1,"slice":0,"added":13,"removed":0,"comment":null}`
//! `action` is an edit (`brush`, `erase`, `flood_fill`, `polygon`, `region_grow`, `copy_slice`), `undo`,
//! `redo`, a review decision (`accept`, `reject`, `needs_fix`), or `save` (the revision file in
//! `comment`). `label` and `slice` are null for actions that do not touch pixels.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::io::LoadError;

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub annotator: String,
    /// UTC, ISO 8601 with milliseconds and a `Z`.
    pub time: String,
    pub case: String,
    pub action: String,
    pub label: Option<u16>,
    pub slice: Option<usize>,
    pub added: usize,
    pub removed: usize,
    pub comment: Option<String>,
}

/// An open audit log; every [`AuditLog::append`] is on disk when it returns.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
    path: PathBuf,
}

impl AuditLog {
    /// Opens (creating if needed) the log for appending; earlier lines are never rewritten.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let file =
            OpenOptions::new().create(true).append(true).open(path).map_err(|e| LoadError::io(path, e))?;
        Ok(AuditLog { file, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one line and fsyncs it.
    pub fn append(&mut self, entry: &AuditEntry) -> Result<(), LoadError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| LoadError::new(&self.path, e.to_string()))?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| LoadError::io(&self.path, e))?;
        self.file.flush().map_err(|e| LoadError::io(&self.path, e))?;
        self.file.sync_data().map_err(|e| LoadError::io(&self.path, e))
    }

    /// Reads every complete line of a log (a torn last line, from a crash mid-write, is skipped).
    pub fn read(path: &Path) -> Result<Vec<AuditEntry>, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
        let mut out = Vec::new();
        let lines: Vec<&str> = text.split('\n').collect();
        for (n, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(e) => out.push(e),
                Err(_) if n + 1 == lines.len() => {} // torn last line without its newline
                Err(e) => {
                    return Err(LoadError::new(path, format!("audit log line {} is not valid ({e})", n + 1)))
                }
            }
        }
        Ok(out)
    }
}

/// Now, UTC, as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format_utc(d.as_secs() as i64, d.subsec_millis())
}

/// Formats seconds since the Unix epoch (plus milliseconds) as ISO 8601 UTC.
pub fn format_utc(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + (m <= 2) as i64;
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_known_dates() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 12:34:56 UTC (a leap day) is 951827696.
        assert_eq!(format_utc(951_827_696, 7), "2000-02-29T12:34:56.007Z");
        // 2026-11-23 00:00:00 UTC.
        assert_eq!(format_utc(1_795_392_000, 0), "2026-11-23T00:00:00.000Z");
    }
}
