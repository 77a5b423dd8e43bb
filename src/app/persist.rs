//! What the viewer remembers between runs: recent files, layout, link toggle, last model, method
//! parameters. A JSON file in the user's config folder, written atomically. (eframe's own storage needs
//! its `persistence` feature and RON; one small JSON file written with `io::write_atomic` keeps the
//! dependency list as it is and the format readable.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ui::controls::MethodParams;
use crate::ui::metrics::ThresholdChoice;
use crate::ui::Layout;

/// Recent files kept.
pub const MAX_RECENT: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    pub recent: Vec<PathBuf>,
    pub layout: Layout,
    pub linked: bool,
    pub last_model: Option<String>,
    pub method: String,
    pub params: BTreeMap<String, MethodParams>,
    pub threshold: ThresholdChoice,
}

impl Default for Persisted {
    fn default() -> Self {
        Persisted {
            recent: Vec::new(),
            layout: Layout::TwoByTwo,
            linked: true,
            last_model: None,
            method: "gradcam++".into(),
            params: BTreeMap::new(),
            threshold: ThresholdChoice::Otsu,
        }
    }
}

impl Persisted {
    /// `$XDG_CONFIG_HOME/radlens/viewer.json`, else `~/.config/radlens/viewer.json`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("radlens").join("viewer.json"))
    }

    /// Reads the settings; a missing file gives the defaults, an unreadable one the defaults and a
    /// one-line warning naming the file.
    pub fn load(path: &Path) -> (Persisted, Option<String>) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Persisted::default(), None),
            Err(e) => {
                return (
                    Persisted::default(),
                    Some(format!("settings not read ({e}), defaults used: {}", path.display())),
                )
            }
        };
        match serde_json::from_str(&text) {
            Ok(p) => (p, None),
            Err(e) => (
                Persisted::default(),
                Some(format!("settings file is not valid ({e}), defaults used: {}", path.display())),
            ),
        }
    }

    /// Writes the settings atomically; the error names the file.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("settings not saved ({e}): {}", dir.display()))?;
        }
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        crate::io::write_atomic(path, |w| w.write_all(&json)).map_err(|e| format!("settings not saved: {e}"))
    }

    /// Puts `path` first in the recent list.
    pub fn add_recent(&mut self, path: &Path) {
        let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.recent.retain(|r| r != &p);
        self.recent.insert(0, p);
        self.recent.truncate(MAX_RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_bad_files_fall_back_to_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/viewer.json");
        let (p, warn) = Persisted::load(&path);
        assert_eq!((p.clone(), warn), (Persisted::default(), None));
        let mut p = p;
        p.layout = Layout::OneByFour;
        p.linked = false;
        p.last_model = Some("ct-infection-unet".into());
        for i in 0..15 {
            p.add_recent(Path::new(&format!("/nonexistent/{i}.dcm")));
        }
        p.add_recent(Path::new("/nonexistent/3.dcm"));
        assert_eq!(p.recent.len(), MAX_RECENT);
        assert_eq!(p.recent[0], Path::new("/nonexistent/3.dcm"));
        p.save(&path).unwrap();
        assert_eq!(Persisted::load(&path), (p, None));
        std::fs::write(&path, "{not json").unwrap();
        let (p, warn) = Persisted::load(&path);
        assert_eq!(p, Persisted::default());
        let warn = warn.unwrap();
        assert!(warn.contains("viewer.json") && !warn.contains('\n'), "{warn}");
    }
}
