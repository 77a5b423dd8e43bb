//! The study file (TOML): title, instructions, cases, questions and design. A complete, commented
//! example is `assets/studies/example.toml`.
//!
//! Parsing checks everything that can be checked without opening other files (names, ranges, methods,
//! duplicates); every error is one line naming the case or section and the field, then the study file.
//! Paths are resolved relative to the study file's folder. Whether the files exist and the models
//! resolve is checked by `radlens study validate`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::SessionError;
use crate::xai::methods::METHODS;

/// How the maps of one case are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// All maps at once, their positions randomised per participant and case.
    SideBySide,
    /// One map after the other, in a randomised order.
    OneAtATime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    pub layout: Layout,
    /// Method names are shown as letters (A, B, …); default true.
    pub blind: bool,
    /// Participants may go back and change answers of finished cases; default false.
    pub revisable: bool,
    /// Case order is shuffled per participant; default true.
    pub shuffle_cases: bool,
    /// Seeds the per-participant order and the stochastic methods (LIME, RISE, …).
    pub seed: u64,
}

/// A Likert item, answered 1 (strongly disagree) … 5 (strongly agree) for every map.
#[derive(Debug, Clone, PartialEq)]
pub struct LikertItem {
    /// Short name used in results files and tables.
    pub id: String,
    /// The statement the participant rates.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Questions {
    pub likert: Vec<LikertItem>,
    /// The forced-choice question ("Which explanation do you prefer?"), when asked.
    pub preference: Option<String>,
    /// The prompt of an optional free-text answer, when offered.
    pub free_text: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: String,
    /// The image or volume (any format `radlens info` reads), resolved against the study's folder.
    pub study: PathBuf,
    /// Slices (z, from 0) to show; empty: the middle slice.
    pub slices: Vec<usize>,
    /// Ground-truth mask on the study's grid, shown as an outline when present.
    pub gt_mask: Option<PathBuf>,
    /// A built-in model's name, a model.toml or a folder holding one (relative paths: to the study file).
    pub model: String,
    /// Methods to compare (names as `radlens explain --method`).
    pub methods: Vec<String>,
}

impl Case {
    /// The slices to show for a study of `depth` slices (the middle one when none are listed).
    pub fn slices_for(&self, depth: usize) -> Vec<usize> {
        if self.slices.is_empty() {
            vec![depth / 2]
        } else {
            self.slices.clone()
        }
    }
}

/// Settings of the precomputed maps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PrepareSettings {
    /// Perturbation samples (LIME, KernelSHAP, RISE); default: each method's own.
    pub samples: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    /// The study file itself.
    pub path: PathBuf,
    pub title: String,
    pub instructions: String,
    pub cases: Vec<Case>,
    pub questions: Questions,
    pub design: Design,
    pub prepare: PrepareSettings,
}

/// Question id of the forced choice in results files.
pub const PREFERENCE: &str = "preference";
/// Question id of the free-text answer in results files.
pub const FREE_TEXT: &str = "comment";

/// True for pseudonymous IDs: 1–64 ASCII letters, digits, `-` and `_`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Study {
    /// Reads and checks a study file.
    pub fn load(path: &Path) -> Result<Study, SessionError> {
        let text = std::fs::read_to_string(path).map_err(|e| SessionError::io(path, e))?;
        Study::parse(&text, path)
    }

    /// Parses study text; `path` names the file in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Study, SessionError> {
        let err = |reason: String| SessionError::new(path, reason);
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            match line {
                Some(l) => err(format!("not valid TOML (line {l}): {}", e.message())),
                None => err(format!("not valid TOML: {}", e.message())),
            }
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let top = Fields::new(&table, "study file".into());
        top.deny_unknown(&["title", "instructions", "design", "questions", "cases", "prepare"])
            .map_err(err)?;
        let title = top.req_str("title").map_err(err)?;
        let instructions = top.opt_str("instructions").map_err(err)?.unwrap_or_default();

        let design = match top.opt_table("design").map_err(err)? {
            None => return Err(err("section [design]: missing (layout and seed are required)".into())),
            Some(t) => {
                let f = Fields::new(t, "section [design]".into());
                f.deny_unknown(&["layout", "blind", "revisable", "shuffle_cases", "seed"]).map_err(err)?;
                let layout = match f.req_str("layout").map_err(err)?.as_str() {
                    "side-by-side" => Layout::SideBySide,
                    "one-at-a-time" => Layout::OneAtATime,
                    other => {
                        return Err(err(format!(
                            "section [design], field 'layout': '{other}' is not 'side-by-side' or 'one-at-a-time'"
                        )))
                    }
                };
                let seed = f.req_int("seed").map_err(err)?;
                if seed < 0 {
                    return Err(err("section [design], field 'seed': must be 0 or more".into()));
                }
                Design {
                    layout,
                    blind: f.opt_bool("blind").map_err(err)?.unwrap_or(true),
                    revisable: f.opt_bool("revisable").map_err(err)?.unwrap_or(false),
                    shuffle_cases: f.opt_bool("shuffle_cases").map_err(err)?.unwrap_or(true),
                    seed: seed as u64,
                }
            }
        };

        let questions = match top.opt_table("questions").map_err(err)? {
            None => return Err(err("section [questions]: missing".into())),
            Some(t) => {
                let f = Fields::new(t, "section [questions]".into());
                f.deny_unknown(&["likert", "preference", "free_text"]).map_err(err)?;
                let mut likert = Vec::new();
                let mut seen = HashSet::new();
                for (i, item) in f.opt_tables("likert").map_err(err)?.into_iter().enumerate() {
                    let q = Fields::new(item, format!("likert item #{}", i + 1));
                    q.deny_unknown(&["id", "text"]).map_err(err)?;
                    let id = q.req_str("id").map_err(err)?;
                    let q = Fields::new(item, format!("likert item '{id}'"));
                    if !is_valid_id(&id) || id == PREFERENCE || id == FREE_TEXT {
                        return Err(err(format!(
                            "likert item '{id}', field 'id': use letters, digits, - and _ (not '{PREFERENCE}' or '{FREE_TEXT}')"
                        )));
                    }
                    if !seen.insert(id.clone()) {
                        return Err(err(format!("likert item '{id}', field 'id': used twice")));
                    }
                    let text = q.req_str("text").map_err(err)?;
                    likert.push(LikertItem { id, text });
                }
                let preference = f.opt_str("preference").map_err(err)?;
                let free_text = f.opt_str("free_text").map_err(err)?;
                if likert.is_empty() && preference.is_none() {
                    return Err(err(
                        "section [questions]: ask at least one Likert item or a preference".into()
                    ));
                }
                Questions { likert, preference, free_text }
            }
        };

        let prepare = match top.opt_table("prepare").map_err(err)? {
            None => PrepareSettings::default(),
            Some(t) => {
                let f = Fields::new(t, "section [prepare]".into());
                f.deny_unknown(&["samples"]).map_err(err)?;
                let samples = match f.opt_int("samples").map_err(err)? {
                    Some(n) if n < 1 => {
                        return Err(err("section [prepare], field 'samples': must be 1 or more".into()))
                    }
                    n => n.map(|n| n as usize),
                };
                PrepareSettings { samples }
            }
        };

        let raw_cases = top.opt_tables("cases").map_err(err)?;
        if raw_cases.is_empty() {
            return Err(err("no [[cases]]: a study needs at least one case".into()));
        }
        let mut cases = Vec::new();
        let mut ids = HashSet::new();
        for (i, t) in raw_cases.into_iter().enumerate() {
            let f = Fields::new(t, format!("case #{}", i + 1));
            let id = f.req_str("id").map_err(err)?;
            let f = Fields::new(t, format!("case '{id}'"));
            if !is_valid_id(&id) {
                return Err(err(format!("case '{id}', field 'id': use 1-64 letters, digits, - and _")));
            }
            if !ids.insert(id.clone()) {
                return Err(err(format!("case '{id}', field 'id': used by an earlier case")));
            }
            f.deny_unknown(&["id", "study", "slice", "slices", "gt_mask", "model", "methods"])
                .map_err(err)?;
            let study = base.join(f.req_str("study").map_err(err)?);
            let mut slices = Vec::new();
            if let Some(s) = f.opt_int("slice").map_err(err)? {
                slices.push(s);
            }
            for s in f.opt_int_list("slices").map_err(err)? {
                slices.push(s);
            }
            if f.has("slice") && f.has("slices") {
                return Err(err(format!("case '{id}', field 'slices': give 'slice' or 'slices', not both")));
            }
            let slices = slices
                .into_iter()
                .map(|s| {
                    usize::try_from(s)
                        .map_err(|_| err(format!("case '{id}', field 'slices': {s} is not a slice index")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let gt_mask = f.opt_str("gt_mask").map_err(err)?.map(|p| base.join(p));
            let model_raw = f.req_str("model").map_err(err)?;
            // A relative model path is relative to the study file; a bare name is a built-in model.
            let as_path = base.join(&model_raw);
            let model = if as_path.exists() { as_path.to_string_lossy().into_owned() } else { model_raw };
            let methods = f.req_str_list("methods").map_err(err)?;
            if methods.is_empty() {
                return Err(err(format!("case '{id}', field 'methods': list at least one method")));
            }
            let mut seen = HashSet::new();
            for m in &methods {
                if !METHODS.contains(&m.as_str()) {
                    return Err(err(format!(
                        "case '{id}', field 'methods': unknown method '{m}' (one of: {})",
                        METHODS.join(", ")
                    )));
                }
                if !seen.insert(m) {
                    return Err(err(format!("case '{id}', field 'methods': '{m}' is listed twice")));
                }
            }
            if questions.preference.is_some() && methods.len() < 2 {
                return Err(err(format!(
                    "case '{id}', field 'methods': a preference question needs at least two methods"
                )));
            }
            if methods.len() > 26 {
                return Err(err(format!("case '{id}', field 'methods': at most 26 methods (letters A-Z)")));
            }
            cases.push(Case { id, study, slices, gt_mask, model, methods });
        }
        Ok(Study { path: path.to_path_buf(), title, instructions, cases, questions, design, prepare })
    }

    pub fn case(&self, id: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.id == id)
    }

    /// Default folder for results files: `<study stem>.results/` next to the study file.
    pub fn default_results_dir(&self) -> PathBuf {
        sibling(&self.path, "results")
    }

    /// Folder of the precomputed maps: `<study stem>.cache/` next to the study file.
    pub fn cache_dir(&self) -> PathBuf {
        sibling(&self.path, "cache")
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "study".into());
    path.with_file_name(format!("{stem}.{suffix}"))
}

/// Typed access to one TOML table with errors that name where the field is.
struct Fields<'a> {
    table: &'a toml::Table,
    ctx: String,
}

impl<'a> Fields<'a> {
    fn new(table: &'a toml::Table, ctx: String) -> Self {
        Fields { table, ctx }
    }

    fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    fn bad(&self, key: &str, what: &str) -> String {
        format!("{}, field '{key}': {what}", self.ctx)
    }

    fn deny_unknown(&self, known: &[&str]) -> Result<(), String> {
        match self.table.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(self.bad(k, &format!("unknown field (known: {})", known.join(", ")))),
            None => Ok(()),
        }
    }

    fn opt_str(&self, key: &str) -> Result<Option<String>, String> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(key, "expected a string")),
        }
    }

    fn req_str(&self, key: &str) -> Result<String, String> {
        match self.opt_str(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(self.bad(key, "is empty")),
            None => Err(self.bad(key, "missing")),
        }
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(_) => Err(self.bad(key, "expected true or false")),
        }
    }

    fn opt_int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) => Ok(Some(*i)),
            Some(_) => Err(self.bad(key, "expected a whole number")),
        }
    }

    fn req_int(&self, key: &str) -> Result<i64, String> {
        self.opt_int(key)?.ok_or_else(|| self.bad(key, "missing"))
    }

    fn opt_int_list(&self, key: &str) -> Result<Vec<i64>, String> {
        match self.table.get(key) {
            None => Ok(vec![]),
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_integer().ok_or_else(|| self.bad(key, "expected a list of whole numbers")))
                .collect(),
            Some(_) => Err(self.bad(key, "expected a list of whole numbers")),
        }
    }

    fn req_str_list(&self, key: &str) -> Result<Vec<String>, String> {
        match self.table.get(key) {
            None => Err(self.bad(key, "missing")),
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| self.bad(key, "expected a list of strings"))
                })
                .collect(),
            Some(_) => Err(self.bad(key, "expected a list of strings")),
        }
    }

    fn opt_table(&self, key: &str) -> Result<Option<&'a toml::Table>, String> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Table(t)) => Ok(Some(t)),
            Some(_) => Err(self.bad(key, "expected a table")),
        }
    }

    fn opt_tables(&self, key: &str) -> Result<Vec<&'a toml::Table>, String> {
        match self.table.get(key) {
            None => Ok(vec![]),
            Some(toml::Value::Array(a)) => {
                a.iter().map(|v| v.as_table().ok_or_else(|| self.bad(key, "expected [[tables]]"))).collect()
            }
            Some(_) => Err(self.bad(key, "expected [[tables]]")),
        }
    }
}
