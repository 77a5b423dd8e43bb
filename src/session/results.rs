//! A participant's results: one append-only JSON-lines file per participant, `<dir>/<participant>.jsonl`.
//!
//! Every answer is appended and fsync'd the moment it is given, so a crash or a kill loses nothing that
//! was answered; reopening resumes at the first unfinished case with every earlier answer restored. A
//! later answer to the same question supersedes an earlier one (revisions are appended, never rewritten).
//!
//! Records (one JSON object a line, field `kind`):
//! - `start`: participant, study title, seed, the plan (case IDs and methods in position order);
//! - `answer`: case, question (a Likert item id, `preference` or `comment`), method and its 1-based
//!   position and letter (absent for the comment), value (1–5, the preferred method's letter, or
//!   text), seconds on the case when answered;
//! - `case_done`: case and the seconds spent on it.
//!
//! Results hold case IDs and method names only: nothing from the images' headers (no patient names or
//! IDs) is ever written. Participant IDs are pseudonyms (letters, digits, `-`, `_`); a participant's file
//! is created with `create_new` and held by a lock file while a session runs, so two sessions never
//! write the same file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::randomise::{letter, plan, PlannedCase};
use super::study::{is_valid_id, Study, FREE_TEXT, PREFERENCE};
use super::SessionError;

/// One line of a results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Start {
        participant: String,
        study: String,
        seed: u64,
        plan: Vec<PlanEntry>,
        unix_time: f64,
    },
    Answer {
        participant: String,
        case: String,
        question: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// 1-based.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        letter: Option<String>,
        value: Value,
        seconds: f64,
        unix_time: f64,
    },
    CaseDone {
        participant: String,
        case: String,
        seconds: f64,
        unix_time: f64,
    },
}

/// A case of the plan as stored in the `start` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanEntry {
    pub case: String,
    pub methods: Vec<String>,
}

/// An answer's key: (case, question, method); the comment has no method.
pub type AnswerKey = (String, String, Option<String>);

/// Everything a results file says, with later answers superseding earlier ones.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsLog {
    pub path: PathBuf,
    pub participant: String,
    pub study: String,
    pub plan: Vec<PlanEntry>,
    /// Latest answer per key, in the order first given: (key, position 1-based, value, seconds).
    pub answers: Vec<(AnswerKey, Option<usize>, Value, f64)>,
    /// Finished cases with their seconds, in finishing order.
    pub done: Vec<(String, f64)>,
    /// Bytes of complete lines; a torn last line (a write cut by a crash) lies beyond.
    complete_len: u64,
}

impl ResultsLog {
    /// Reads a results file. A last line cut short by a crash is ignored; any other bad line is an error
    /// naming the line.
    pub fn read(path: &Path) -> Result<ResultsLog, SessionError> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| SessionError::io(path, e))?;
        let text = String::from_utf8_lossy(&bytes);
        let mut log = ResultsLog {
            path: path.to_path_buf(),
            participant: String::new(),
            study: String::new(),
            plan: vec![],
            answers: vec![],
            done: vec![],
            complete_len: 0,
        };
        let mut index: HashMap<AnswerKey, usize> = HashMap::new();
        let mut offset = 0u64;
        let mut started = false;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let complete = line.ends_with('\n');
            let rec = match (serde_json::from_str::<Record>(line.trim_end()), complete) {
                (Ok(r), true) => r,
                // A last line without its newline was torn by a crash mid-write: not an answer given.
                (_, false) => break,
                (Err(_), true) if line.trim().is_empty() => {
                    offset += line.len() as u64;
                    continue;
                }
                (Err(e), true) => {
                    return Err(SessionError::new(
                        path,
                        format!("line {}: not a results record ({e})", i + 1),
                    ));
                }
            };
            offset += line.len() as u64;
            match rec {
                Record::Start { participant, study, plan, .. } => {
                    if started {
                        return Err(SessionError::new(
                            path,
                            format!("line {}: a second start record", i + 1),
                        ));
                    }
                    started = true;
                    log.participant = participant;
                    log.study = study;
                    log.plan = plan;
                }
                _ if !started => {
                    return Err(SessionError::new(path, "the file does not begin with a start record"));
                }
                Record::Answer { case, question, method, position, value, seconds, .. } => {
                    // The preference is one answer per case; its value names the method.
                    let method = if question == PREFERENCE { None } else { method };
                    let key = (case, question, method);
                    match index.get(&key) {
                        Some(&j) => log.answers[j] = (key, position, value, seconds),
                        None => {
                            index.insert(key.clone(), log.answers.len());
                            log.answers.push((key, position, value, seconds));
                        }
                    }
                }
                Record::CaseDone { case, seconds, .. } => {
                    match log.done.iter_mut().find(|(c, _)| *c == case) {
                        Some(d) => d.1 = seconds,
                        None => log.done.push((case, seconds)),
                    }
                }
            }
        }
        if !started {
            return Err(SessionError::new(path, "empty results file (no start record)"));
        }
        log.complete_len = offset;
        Ok(log)
    }

    pub fn answer(&self, case: &str, question: &str, method: Option<&str>) -> Option<&Value> {
        self.answers
            .iter()
            .find(|((c, q, m), ..)| c == case && q == question && m.as_deref() == method)
            .map(|(_, _, v, _)| v)
    }

    pub fn is_done(&self, case: &str) -> bool {
        self.done.iter().any(|(c, _)| c == case)
    }
}

/// The results file of `participant` in `dir`.
pub fn results_path(dir: &Path, participant: &str) -> PathBuf {
    dir.join(format!("{participant}.jsonl"))
}

/// Why a participant ID is refused, or None when it is fine.
pub fn participant_id_problem(id: &str) -> Option<String> {
    if is_valid_id(id) {
        None
    } else if id.is_empty() {
        Some("enter a participant ID".into())
    } else {
        Some(format!(
            "participant ID '{id}' is not a pseudonym: use 1-64 letters, digits, - and _ (never a name)"
        ))
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Held while a session writes a participant's file; removed when dropped.
#[derive(Debug)]
struct Lock {
    path: PathBuf,
}

impl Lock {
    fn take(results: &Path, participant: &str) -> Result<Lock, SessionError> {
        let path = results.with_extension("jsonl.lock");
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    let _ = f.sync_all();
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder =
                        std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                    if holder.is_some_and(process_gone) {
                        // Left behind by a session that was killed: take it over.
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    return Err(SessionError::new(
                        &path,
                        format!(
                            "participant '{participant}' is already in a running session (if none is running, delete this lock file)"
                        ),
                    ));
                }
                Err(e) => return Err(SessionError::io(&path, e)),
            }
        }
        Err(SessionError::new(&path, "cannot take the session lock"))
    }
}

/// True when no process `pid` runs (Linux: no /proc entry). Elsewhere a lock is never presumed stale.
fn process_gone(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let proc = Path::new("/proc");
    proc.is_dir() && !proc.join(pid.to_string()).exists()
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A participant's running session: the plan, the answers so far, and the open results file.
#[derive(Debug)]
pub struct Session {
    pub participant: String,
    pub plan: Vec<PlannedCase>,
    pub revisable: bool,
    path: PathBuf,
    file: File,
    log: ResultsLog,
    required: Vec<Vec<AnswerKey>>,
    _lock: Lock,
}

impl Session {
    /// True when `participant` already has a results file in `dir` (the UI asks before resuming it).
    pub fn exists(dir: &Path, participant: &str) -> bool {
        results_path(dir, participant).exists()
    }

    /// Starts a new session or resumes the participant's earlier one. The plan is recomputed from the
    /// study's seed and must equal the stored one (a changed study file is refused, not mixed).
    pub fn open(study: &Study, dir: &Path, participant: &str) -> Result<Session, SessionError> {
        if let Some(problem) = participant_id_problem(participant) {
            return Err(SessionError::new(dir, problem));
        }
        std::fs::create_dir_all(dir).map_err(|e| SessionError::io(dir, e))?;
        let path = results_path(dir, participant);
        let lock = Lock::take(&path, participant)?;
        let plan = plan(study, participant);
        let entries: Vec<PlanEntry> =
            plan.iter().map(|p| PlanEntry { case: p.case_id.clone(), methods: p.methods.clone() }).collect();
        let (file, log) = match OpenOptions::new().append(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let start = Record::Start {
                    participant: participant.to_string(),
                    study: study.title.clone(),
                    seed: study.design.seed,
                    plan: entries,
                    unix_time: now(),
                };
                append(&mut file, &path, &start)?;
                sync_dir(dir);
                let log = ResultsLog::read(&path)?;
                (file, log)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let log = ResultsLog::read(&path)?;
                if log.participant != participant || log.plan != entries {
                    return Err(SessionError::new(
                        &path,
                        "this results file was made with a different study file or seed; use a new results folder",
                    ));
                }
                let file =
                    OpenOptions::new().write(true).open(&path).map_err(|e| SessionError::io(&path, e))?;
                // Cut a line torn by a crash, so the next record starts on a line of its own.
                file.set_len(log.complete_len).map_err(|e| SessionError::io(&path, e))?;
                let mut file = file;
                file.seek(SeekFrom::End(0)).map_err(|e| SessionError::io(&path, e))?;
                (file, log)
            }
            Err(e) => return Err(SessionError::io(&path, e)),
        };
        let required = plan.iter().map(|p| required_answers(study, p)).collect();
        Ok(Session {
            participant: participant.to_string(),
            plan,
            revisable: study.design.revisable,
            path,
            file,
            log,
            required,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn log(&self) -> &ResultsLog {
        &self.log
    }

    /// Index (into the plan) of the first unfinished case; None when all are done.
    pub fn first_unfinished(&self) -> Option<usize> {
        self.plan.iter().position(|p| !self.log.is_done(&p.case_id))
    }

    pub fn is_done(&self, k: usize) -> bool {
        self.plan.get(k).is_some_and(|p| self.log.is_done(&p.case_id))
    }

    pub fn done_count(&self) -> usize {
        self.plan.iter().filter(|p| self.log.is_done(&p.case_id)).count()
    }

    /// The stored answer to a question of case `k` (method None for the comment).
    pub fn answer_of(&self, k: usize, question: &str, method: Option<&str>) -> Option<&Value> {
        self.log.answer(&self.plan.get(k)?.case_id, question, method)
    }

    /// Seconds already spent on case `k` (from its last record), so a resumed case keeps counting.
    pub fn seconds_spent(&self, k: usize) -> f64 {
        let Some(p) = self.plan.get(k) else { return 0.0 };
        if let Some((_, s)) = self.log.done.iter().find(|(c, _)| *c == p.case_id) {
            return *s;
        }
        self.log.answers.iter().filter(|((c, ..), ..)| *c == p.case_id).map(|a| a.3).fold(0.0, f64::max)
    }

    /// Records an answer to case `k` and flushes it to disk before returning. Likert values are 1–5;
    /// a preference names a shown method; the comment takes text.
    pub fn answer(
        &mut self,
        k: usize,
        question: &str,
        method: Option<&str>,
        value: Value,
        seconds: f64,
    ) -> Result<(), SessionError> {
        let bad = |reason: String| Err(SessionError::new(&self.path, reason));
        let Some(p) = self.plan.get(k) else { return bad(format!("there is no case {}", k + 1)) };
        if self.log.is_done(&p.case_id) && !self.revisable {
            return bad(format!(
                "case '{}' is finished and answers cannot be revised in this study",
                p.case_id
            ));
        }
        let key: AnswerKey = (p.case_id.clone(), question.to_string(), method.map(str::to_string));
        let (method, position, value) = if question == FREE_TEXT {
            match value {
                Value::String(_) => (None, None, value),
                _ => return bad("a comment is text".into()),
            }
        } else if question == PREFERENCE {
            let chosen = value.as_str().unwrap_or_default().to_string();
            let Some(pos) = p.position(&chosen) else {
                return bad(format!("preference '{chosen}' is not a method shown in case '{}'", p.case_id));
            };
            (Some(chosen.clone()), Some(pos + 1), Value::String(chosen))
        } else {
            if !self.required[k].contains(&key) {
                return bad(format!("case '{}' has no question '{question}' for that method", p.case_id));
            }
            match value.as_u64() {
                Some(1..=5) => {}
                _ => return bad(format!("a Likert answer is 1 to 5, not {value}")),
            }
            let m = key.2.clone();
            let pos = m.as_deref().and_then(|m| p.position(m)).map(|x| x + 1);
            (m, pos, value)
        };
        let key = if question == PREFERENCE { (key.0, key.1, None) } else { key };
        let record = Record::Answer {
            participant: self.participant.clone(),
            case: key.0.clone(),
            question: key.1.clone(),
            method: method.clone(),
            position,
            letter: position.map(|x| letter(x - 1)),
            value: value.clone(),
            seconds,
            unix_time: now(),
        };
        append(&mut self.file, &self.path, &record)?;
        match self.log.answers.iter_mut().find(|(k2, ..)| *k2 == key) {
            Some(a) => *a = (key, position, value, seconds),
            None => self.log.answers.push((key, position, value, seconds)),
        }
        Ok(())
    }

    /// The required questions of case `k` still unanswered, as "item (letter)" descriptions.
    pub fn missing(&self, k: usize) -> Vec<String> {
        let Some(p) = self.plan.get(k) else { return vec![] };
        self.required[k]
            .iter()
            .filter(|(c, q, m)| self.log.answer(c, q, m.as_deref()).is_none())
            .map(|(_, q, m)| match m.as_deref().and_then(|m| p.position(m)) {
                Some(pos) => format!("{q} ({})", letter(pos)),
                None => q.clone(),
            })
            .collect()
    }

    /// Marks case `k` finished (every required answer must be given) and flushes it.
    pub fn finish_case(&mut self, k: usize, seconds: f64) -> Result<(), SessionError> {
        let missing = self.missing(k);
        let Some(p) = self.plan.get(k) else {
            return Err(SessionError::new(&self.path, format!("there is no case {}", k + 1)));
        };
        if !missing.is_empty() {
            return Err(SessionError::new(
                &self.path,
                format!("case '{}' is not finished: {} unanswered", p.case_id, missing.join(", ")),
            ));
        }
        let case = p.case_id.clone();
        let record = Record::CaseDone {
            participant: self.participant.clone(),
            case: case.clone(),
            seconds,
            unix_time: now(),
        };
        append(&mut self.file, &self.path, &record)?;
        match self.log.done.iter_mut().find(|(c, _)| *c == case) {
            Some(d) => d.1 = seconds,
            None => self.log.done.push((case, seconds)),
        }
        Ok(())
    }
}

/// Keys every case needs before it can be finished: each Likert item for each method, and the
/// preference when asked. (The comment is optional.)
fn required_answers(study: &Study, p: &PlannedCase) -> Vec<AnswerKey> {
    let mut keys = Vec::new();
    for m in &p.methods {
        for item in &study.questions.likert {
            keys.push((p.case_id.clone(), item.id.clone(), Some(m.clone())));
        }
    }
    if study.questions.preference.is_some() {
        keys.push((p.case_id.clone(), PREFERENCE.to_string(), None));
    }
    keys
}

/// Appends one record as a line and makes it durable (fsync) before returning.
fn append(file: &mut File, path: &Path, record: &Record) -> Result<(), SessionError> {
    let mut line = serde_json::to_string(record).map_err(|e| SessionError::new(path, e.to_string()))?;
    line.push('\n');
    file.write_all(line.as_bytes()).map_err(|e| SessionError::io(path, e))?;
    file.sync_data().map_err(|e| SessionError::io(path, e))?;
    Ok(())
}

/// Makes a new file's directory entry durable (best effort; not possible on every platform).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
