//! The participant's side of a user study, as an egui panel: a pseudonymous ID, the instructions, then
//! case k of N (maps labelled only by blinding letters, Likert rows, the forced choice, an optional
//! comment), pause and resume, and a thank-you screen.
//!
//! [`StudyPanel::ui`] draws and returns at most one [`StudyCommand`]; [`StudyPanel::execute`] carries it
//! out (every answer goes to the results file and is flushed before the screen moves on). Images are
//! egui textures coloured on the CPU once per case, slice and window, never per frame; no candle and
//! no wgpu code lives here. `radlens study run` wraps the panel in [`StudyApp`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use eframe::egui;
use egui::{Color32, ColorImage, RichText, TextureHandle, TextureOptions};
use serde_json::Value;

use crate::imaging::WindowLevel;
use crate::io::{load_mask, load_study, LoadOptions};
use crate::report::overlay::overlay_rgb;
use crate::session::prepared::{MapCache, MapKey, PREDICTION};
use crate::session::randomise::letter;
use crate::session::results::{participant_id_problem, Session};
use crate::session::study::{Layout, Study, FREE_TEXT, PREFERENCE};
use crate::session::SessionError;

/// One case's pixels: the shown slices, their maps and ground truth, read once before the session.
#[derive(Debug, Clone)]
pub struct PreparedCase {
    pub slices: Vec<usize>,
    pub height: usize,
    pub width: usize,
    /// Per shown slice: the image plane.
    planes: Vec<Vec<f32>>,
    /// (slice index in `slices`, method) → map.
    maps: HashMap<(usize, String), Vec<f32>>,
    /// Per shown slice: ground-truth outline pixels, when the case has a mask.
    gt_outline: Option<Vec<Vec<bool>>>,
    pub window: WindowLevel,
    /// Window-width bounds for the control (the image's value span).
    value_span: (f32, f32),
}

/// Every case of a study with its prepared maps.
#[derive(Debug, Clone)]
pub struct PreparedStudy {
    /// In `Study::cases` order.
    pub cases: Vec<PreparedCase>,
}

impl PreparedStudy {
    /// Reads every case's image, mask and maps; fails (naming the case) when a map is not prepared.
    pub fn load(study: &Study) -> Result<PreparedStudy, SessionError> {
        let cache = MapCache::open(&study.cache_dir())?;
        let mut cases = Vec::new();
        for case in &study.cases {
            let vol = load_study(&case.study, &LoadOptions::default())
                .map_err(|e| {
                    SessionError::new(&study.path, format!("case '{}', field 'study': {e}", case.id))
                })?
                .volume;
            let [depth, h, w] = vol.dims();
            let slices = case.slices_for(depth);
            let mut planes = Vec::new();
            let mut maps = HashMap::new();
            for (si, &z) in slices.iter().enumerate() {
                if z >= depth {
                    return Err(SessionError::new(
                        &study.path,
                        format!(
                            "case '{}', field 'slices': slice {z} is out of range ({depth} slices)",
                            case.id
                        ),
                    ));
                }
                planes.push(vol.slice(z).to_vec());
                for m in &case.methods {
                    let (v, mh, mw) = cache.load(&MapKey::new(study, case, z, m))?;
                    if (mh, mw) != (h, w) {
                        return Err(SessionError::new(
                            cache.dir(),
                            format!(
                                "case '{}': the {m} map is {mh}x{mw}, the image {h}x{w}; prepare again",
                                case.id
                            ),
                        ));
                    }
                    maps.insert((si, m.clone()), v);
                }
                // The prediction is optional (classifiers have none).
                if let Ok((v, mh, mw)) = cache.load(&MapKey::new(study, case, z, PREDICTION)) {
                    if (mh, mw) == (h, w) {
                        maps.insert((si, PREDICTION.to_string()), v);
                    }
                }
            }
            let gt_outline = match &case.gt_mask {
                None => None,
                Some(p) => {
                    let m = load_mask(p).map_err(|e| {
                        SessionError::new(&study.path, format!("case '{}', field 'gt_mask': {e}", case.id))
                    })?;
                    let [md, mh, mw] = m.dims();
                    if (mh, mw) != (h, w) {
                        return Err(SessionError::new(
                            p,
                            format!(
                                "case '{}', field 'gt_mask': the mask is {mh}x{mw}, the image {h}x{w}",
                                case.id
                            ),
                        ));
                    }
                    let bin = m.binary(crate::imaging::LabelSelector::Any);
                    let outlines = slices
                        .iter()
                        .map(|&z| {
                            let z = if md == 1 { 0 } else { z.min(md - 1) };
                            outline(&bin[z * h * w..(z + 1) * h * w], h, w)
                        })
                        .collect();
                    Some(outlines)
                }
            };
            let (lo, hi) = vol.min_max();
            // CT in HU opens in its default (lung/soft-tissue) window, other images span their values.
            let window = vol.default_window();
            cases.push(PreparedCase {
                slices,
                height: h,
                width: w,
                planes,
                maps,
                gt_outline,
                window,
                value_span: (lo, hi),
            });
        }
        Ok(PreparedStudy { cases })
    }
}

/// Pixels of `mask` with a 4-neighbour outside the mask.
fn outline(mask: &[bool], h: usize, w: usize) -> Vec<bool> {
    let at = |y: isize, x: isize| {
        y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w && mask[y as usize * w + x as usize]
    };
    (0..h * w)
        .map(|i| {
            let (y, x) = ((i / w) as isize, (i % w) as isize);
            mask[i] && !(at(y - 1, x) && at(y + 1, x) && at(y, x - 1) && at(y, x + 1))
        })
        .collect()
}

/// What the participant asked for; [`StudyPanel::execute`] carries it out.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum StudyCommand {
    /// Start (or, when `resume` is confirmed, resume) the session of this participant ID.
    Begin {
        participant: String,
        resume: bool,
    },
    /// Leave the instructions for the first unfinished case.
    ShowCases,
    /// Answer a question of the current case (method None for preference and comment).
    Answer {
        question: String,
        method: Option<String>,
        value: Value,
    },
    /// The next method (one at a time) or the next case; refused until the answers are given.
    Next,
    /// Back to the previous step or (revisable studies) the previous case.
    Back,
    Pause,
    Resume,
    /// The participant is finished and closes the window.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    EnterId,
    Instructions,
    /// Case `k` of the plan; `step` is the method shown (one at a time) or, at the number of methods,
    /// the final question page; side by side has one step.
    Case {
        k: usize,
        step: usize,
    },
    Thanks,
}

/// Textures of one case, slice and window.
struct CaseTextures {
    key: (usize, usize, u32, u32),
    /// In position order.
    maps: Vec<TextureHandle>,
}

pub struct StudyPanel {
    study: Study,
    prepared: PreparedStudy,
    results_dir: PathBuf,
    session: Option<Session>,
    stage: Stage,
    paused: bool,
    id_input: String,
    /// Participant ID whose earlier session awaits "Resume".
    confirm_resume: Option<String>,
    message: Option<String>,
    comment: String,
    /// Clock of the current case: seconds before `since`, and when it last started.
    spent: f64,
    since: Option<Instant>,
    slice: usize,
    zoom: f32,
    window: Option<WindowLevel>,
    textures: Option<CaseTextures>,
    close_requested: bool,
}

impl StudyPanel {
    pub fn new(study: Study, prepared: PreparedStudy, results_dir: PathBuf) -> Self {
        StudyPanel {
            study,
            prepared,
            results_dir,
            session: None,
            stage: Stage::EnterId,
            paused: false,
            id_input: String::new(),
            confirm_resume: None,
            message: None,
            comment: String::new(),
            spent: 0.0,
            since: None,
            slice: 0,
            zoom: 1.0,
            window: None,
            textures: None,
            close_requested: false,
        }
    }

    /// True once the participant pressed "Close" on the thank-you screen.
    pub fn close_requested(&self) -> bool {
        self.close_requested
    }

    /// The open session, if a participant has started.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    fn seconds(&self) -> f64 {
        self.spent + self.since.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0)
    }

    fn stop_clock(&mut self) {
        self.spent = self.seconds();
        self.since = None;
    }

    fn enter_case(&mut self, k: usize, step: usize) {
        let spent = self.session.as_ref().map(|s| s.seconds_spent(k)).unwrap_or(0.0);
        let same_case = matches!(self.stage, Stage::Case { k: k0, .. } if k0 == k);
        if !same_case {
            self.spent = spent;
            self.slice = 0;
            self.window = None;
            self.comment = self
                .session
                .as_ref()
                .and_then(|s| s.answer_of(k, FREE_TEXT, None))
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
        }
        self.since = Some(Instant::now());
        self.stage = Stage::Case { k, step };
    }

    fn methods_count(&self, k: usize) -> usize {
        self.session.as_ref().and_then(|s| s.plan.get(k)).map(|p| p.methods.len()).unwrap_or(0)
    }

    /// The questions of case `k` on `step` still unanswered.
    fn missing_on_step(&self, k: usize, step: usize) -> Vec<String> {
        let Some(s) = &self.session else { return vec![] };
        let missing = s.missing(k);
        if self.study.design.layout == Layout::SideBySide {
            return missing;
        }
        let m = self.methods_count(k);
        if step < m {
            let l = format!("({})", letter(step));
            missing.into_iter().filter(|q| q.ends_with(&l)).collect()
        } else {
            missing
        }
    }

    fn last_step(&self, k: usize) -> usize {
        match self.study.design.layout {
            Layout::SideBySide => 0,
            Layout::OneAtATime => {
                let m = self.methods_count(k);
                if self.study.questions.preference.is_some() || self.study.questions.free_text.is_some() {
                    m
                } else {
                    m.saturating_sub(1)
                }
            }
        }
    }

    /// Saves the comment box when it differs from the stored comment.
    fn save_comment(&mut self, k: usize) -> Result<(), SessionError> {
        let seconds = self.seconds();
        let Some(s) = self.session.as_mut() else { return Ok(()) };
        let stored = s.answer_of(k, FREE_TEXT, None).and_then(|v| v.as_str()).unwrap_or_default();
        if self.study.questions.free_text.is_some() && stored != self.comment.trim() {
            s.answer(k, FREE_TEXT, None, Value::String(self.comment.trim().to_string()), seconds)?;
        }
        Ok(())
    }

    /// Carries out a command; problems are shown to the participant, never lost silently.
    pub fn execute(&mut self, cmd: StudyCommand) {
        self.message = None;
        if let Err(e) = self.try_execute(cmd) {
            self.message = Some(e);
        }
    }

    fn try_execute(&mut self, cmd: StudyCommand) -> Result<(), String> {
        match cmd {
            StudyCommand::Begin { participant, resume } => {
                let id = participant.trim().to_string();
                if let Some(p) = participant_id_problem(&id) {
                    return Err(p);
                }
                if Session::exists(&self.results_dir, &id) && !resume {
                    self.confirm_resume = Some(id);
                    return Ok(());
                }
                self.confirm_resume = None;
                let s = Session::open(&self.study, &self.results_dir, &id).map_err(|e| e.to_string())?;
                self.session = Some(s);
                self.stage = Stage::Instructions;
            }
            StudyCommand::ShowCases => {
                let s = self.session.as_ref().ok_or("no participant yet")?;
                match s.first_unfinished() {
                    Some(k) => self.enter_case(k, 0),
                    None => self.stage = Stage::Thanks,
                }
            }
            StudyCommand::Answer { question, method, value } => {
                let Stage::Case { k, .. } = self.stage else { return Err("no case is shown".into()) };
                if self.paused {
                    return Err("the study is paused".into());
                }
                let seconds = self.seconds();
                let s = self.session.as_mut().ok_or("no participant yet")?;
                s.answer(k, &question, method.as_deref(), value, seconds).map_err(|e| e.to_string())?;
            }
            StudyCommand::Next => {
                let Stage::Case { k, step } = self.stage else { return Ok(()) };
                let missing = self.missing_on_step(k, step);
                if !missing.is_empty() {
                    return Err(format!("please answer: {}", missing.join(", ")));
                }
                self.save_comment(k).map_err(|e| e.to_string())?;
                if step < self.last_step(k) {
                    self.stage = Stage::Case { k, step: step + 1 };
                    return Ok(());
                }
                let seconds = self.seconds();
                let s = self.session.as_mut().ok_or("no participant yet")?;
                s.finish_case(k, seconds).map_err(|e| e.to_string())?;
                self.textures = None;
                // The next unfinished case after k, else any unfinished one, else done.
                let next = (k + 1..s.plan.len()).find(|&j| !s.is_done(j)).or_else(|| s.first_unfinished());
                match next {
                    Some(j) => self.enter_case(j, 0),
                    None => {
                        self.stop_clock();
                        self.stage = Stage::Thanks;
                    }
                }
            }
            StudyCommand::Back => {
                let Stage::Case { k, step } = self.stage else { return Ok(()) };
                if step > 0 {
                    self.stage = Stage::Case { k, step: step - 1 };
                } else if self.study.design.revisable && k > 0 {
                    self.save_comment(k).map_err(|e| e.to_string())?;
                    self.stop_clock();
                    self.enter_case(k - 1, 0);
                }
            }
            StudyCommand::Pause => {
                self.stop_clock();
                self.paused = true;
            }
            StudyCommand::Resume => {
                self.paused = false;
                if matches!(self.stage, Stage::Case { .. }) {
                    self.since = Some(Instant::now());
                }
            }
            StudyCommand::Close => self.close_requested = true,
        }
        Ok(())
    }

    /// Draws the panel and carries out what the participant did.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        if let Some(cmd) = self.ui(ui) {
            self.execute(cmd);
        }
    }

    /// Draws the panel; returns what the participant asked for (at most one command a frame).
    pub fn ui(&mut self, ui: &mut egui::Ui) -> Option<StudyCommand> {
        let mut cmd = None;
        ui.heading(&self.study.title);
        match self.stage {
            Stage::EnterId => cmd = self.ui_enter_id(ui),
            Stage::Instructions => {
                ui.label(&self.study.instructions);
                let resumed = self.session.as_ref().map(|s| s.done_count()).unwrap_or(0);
                let label =
                    if resumed > 0 { format!("Continue ({resumed} cases done)") } else { "Begin".into() };
                if ui.button(label).clicked() {
                    cmd = Some(StudyCommand::ShowCases);
                }
            }
            Stage::Case { k, step } => {
                if self.paused {
                    ui.label(
                        RichText::new("Paused: the images are hidden and the clock is stopped.").strong(),
                    );
                    if ui.button("Resume").clicked() {
                        cmd = Some(StudyCommand::Resume);
                    }
                } else {
                    cmd = self.ui_case(ui, k, step);
                }
            }
            Stage::Thanks => {
                ui.label(RichText::new("Thank you! All cases are done; your answers are saved.").strong());
                if ui.button("Close").clicked() {
                    cmd = Some(StudyCommand::Close);
                }
            }
        }
        if let Some(m) = &self.message {
            ui.colored_label(Color32::from_rgb(200, 40, 40), m);
        }
        cmd
    }

    fn ui_enter_id(&mut self, ui: &mut egui::Ui) -> Option<StudyCommand> {
        let mut cmd = None;
        ui.label("Participant ID (a pseudonym: letters, digits, - and _; never your name)");
        let r = ui.add(egui::TextEdit::singleline(&mut self.id_input).hint_text("e.g. P07"));
        let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if let Some(p) = participant_id_problem(self.id_input.trim()) {
            if !self.id_input.is_empty() {
                ui.label(p);
            }
        }
        if ui.button("Start").clicked() || enter {
            cmd = Some(StudyCommand::Begin { participant: self.id_input.clone(), resume: false });
        }
        if let Some(id) = self.confirm_resume.clone() {
            ui.label(format!("A session for '{id}' exists already. Resume it where it stopped?"));
            if ui.button("Resume session").clicked() {
                cmd = Some(StudyCommand::Begin { participant: id, resume: true });
            }
        }
        cmd
    }

    /// Builds the textures of case `k` when the case, slice or window changed.
    fn ensure_textures(&mut self, ctx: &egui::Context, k: usize) {
        let Some(s) = &self.session else { return };
        let Some(planned) = s.plan.get(k) else { return };
        let pc = &self.prepared.cases[planned.case_index];
        let window = self.window.unwrap_or(pc.window);
        let key = (k, self.slice, window.center.to_bits(), window.width.to_bits());
        if self.textures.as_ref().is_some_and(|t| t.key == key) {
            return;
        }
        let grey = window.apply_u8(&pc.planes[self.slice]);
        let (h, w) = (pc.height, pc.width);
        let maps = planned
            .methods
            .iter()
            .enumerate()
            .map(|(pos, m)| {
                let mut rgb = match pc.maps.get(&(self.slice, m.clone())) {
                    Some(map) => overlay_rgb(&grey, map, 0.5),
                    None => grey.iter().flat_map(|&g| [g, g, g]).collect(),
                };
                if let Some(outlines) = &pc.gt_outline {
                    for (i, &on) in outlines[self.slice].iter().enumerate() {
                        if on {
                            rgb[3 * i..3 * i + 3].copy_from_slice(&[0, 255, 0]);
                        }
                    }
                }
                // Texture names carry the letter only: method names never reach the screen.
                ctx.load_texture(
                    format!("study-{k}-{}", letter(pos)),
                    ColorImage::from_rgb([w, h], &rgb),
                    TextureOptions::LINEAR,
                )
            })
            .collect();
        self.textures = Some(CaseTextures { key, maps });
    }

    fn ui_case(&mut self, ui: &mut egui::Ui, k: usize, step: usize) -> Option<StudyCommand> {
        let mut cmd = None;
        let Some(s) = &self.session else { return None };
        let n = s.plan.len();
        let planned = s.plan[k].clone();
        let pc = self.prepared.cases[planned.case_index].clone_view();
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Case {} of {n}", k + 1)).strong());
            ui.add(egui::ProgressBar::new(s.done_count() as f32 / n.max(1) as f32).desired_width(200.0));
            if ui.button("Pause").clicked() {
                cmd = Some(StudyCommand::Pause);
            }
        });
        // Viewing tools: slices, zoom, window.
        ui.horizontal(|ui| {
            if pc.slices > 1 {
                let l = ui.label("Slice");
                ui.add(egui::Slider::new(&mut self.slice, 0..=pc.slices - 1)).labelled_by(l.id);
            }
            let l = ui.label("Zoom");
            ui.add(egui::Slider::new(&mut self.zoom, 0.5..=4.0)).labelled_by(l.id);
            let mut wl = self.window.unwrap_or(pc.window);
            let l = ui.label("Window centre");
            let span = (pc.value_span.1 - pc.value_span.0).max(1.0);
            let c = ui.add(egui::DragValue::new(&mut wl.center).speed(span / 200.0)).labelled_by(l.id);
            let l = ui.label("width");
            let w = ui
                .add(egui::DragValue::new(&mut wl.width).speed(span / 200.0).range(1.0..=span * 4.0))
                .labelled_by(l.id);
            if c.changed() || w.changed() {
                self.window = Some(wl);
            }
            if ui.button("Reset view").clicked() {
                self.window = None;
                self.zoom = 1.0;
            }
        });
        self.ensure_textures(ui.ctx(), k);
        let Some(tex) = &self.textures else { return cmd };
        let m = planned.methods.len();
        let side = self.study.design.layout == Layout::SideBySide;
        let shown: Vec<usize> = if side || step >= m { (0..m).collect() } else { vec![step] };
        let avail = ui.available_width();
        let per = if shown.len() > 1 { avail / shown.len() as f32 - 12.0 } else { avail.min(512.0) };
        let thumbs = !side && step >= m;
        let base = if thumbs { per.min(160.0) } else { per.min(512.0) };
        let size = egui::vec2(base, base * pc.height as f32 / pc.width.max(1) as f32)
            * if thumbs { 1.0 } else { self.zoom };
        let name = |pos: usize| {
            if self.study.design.blind {
                letter(pos)
            } else {
                format!("{} ({})", letter(pos), planned.methods[pos])
            }
        };
        egui::ScrollArea::both().max_height(size.y + 40.0).id_salt("study-images").show(ui, |ui| {
            ui.horizontal(|ui| {
                for &pos in &shown {
                    ui.vertical(|ui| {
                        ui.label(RichText::new(name(pos)).heading());
                        ui.image((tex.maps[pos].id(), size));
                    });
                }
            });
        });
        let session = self.session.as_ref()?;
        // Likert rows for the methods on this step.
        let rated: Vec<usize> = if side {
            (0..m).collect()
        } else if step < m {
            vec![step]
        } else {
            vec![]
        };
        egui::Grid::new("likert").striped(true).show(ui, |ui| {
            for item in &self.study.questions.likert {
                for &pos in &rated {
                    ui.label(format!("{} — {}", name(pos), item.text));
                    let method = &planned.methods[pos];
                    let current = session.answer_of(k, &item.id, Some(method)).and_then(|v| v.as_u64());
                    ui.horizontal(|ui| {
                        ui.label("disagree");
                        for v in 1..=5u64 {
                            if ui.radio(current == Some(v), v.to_string()).clicked() && current != Some(v) {
                                cmd = Some(StudyCommand::Answer {
                                    question: item.id.clone(),
                                    method: Some(method.clone()),
                                    value: Value::from(v),
                                });
                            }
                        }
                        ui.label("agree");
                    });
                    ui.end_row();
                }
            }
        });
        let last = step >= self.last_step(k);
        if last {
            if let Some(q) = &self.study.questions.preference {
                ui.label(RichText::new(q).strong());
                let current =
                    session.answer_of(k, PREFERENCE, None).and_then(|v| v.as_str().map(str::to_string));
                ui.horizontal(|ui| {
                    for (pos, method) in planned.methods.iter().enumerate() {
                        let on = current.as_deref() == Some(method.as_str());
                        if ui.radio(on, name(pos)).clicked() && !on {
                            cmd = Some(StudyCommand::Answer {
                                question: PREFERENCE.into(),
                                method: None,
                                value: Value::String(method.clone()),
                            });
                        }
                    }
                });
            }
            if let Some(q) = &self.study.questions.free_text {
                let l = ui.label(q);
                ui.add(egui::TextEdit::multiline(&mut self.comment).desired_rows(2)).labelled_by(l.id);
            }
        }
        let missing = self.missing_on_step(k, step);
        ui.horizontal(|ui| {
            let can_back = step > 0 || (self.study.design.revisable && k > 0);
            if can_back && ui.button("Back").clicked() {
                cmd = Some(StudyCommand::Back);
            }
            let next = ui.add_enabled(missing.is_empty(), egui::Button::new("Next"));
            if next.clicked() {
                cmd = Some(StudyCommand::Next);
            }
            if !missing.is_empty() {
                ui.label(format!("{} answer(s) still needed", missing.len()));
            }
        });
        cmd
    }
}

/// What `ui_case` needs of a prepared case without borrowing the panel.
struct CaseView {
    slices: usize,
    height: usize,
    width: usize,
    window: WindowLevel,
    value_span: (f32, f32),
}

impl PreparedCase {
    fn clone_view(&self) -> CaseView {
        CaseView {
            slices: self.slices.len(),
            height: self.height,
            width: self.width,
            window: self.window,
            value_span: self.value_span,
        }
    }
}

/// The participant window of `radlens study run`.
pub struct StudyApp {
    panel: StudyPanel,
}

impl StudyApp {
    pub fn new(panel: StudyPanel) -> Self {
        StudyApp { panel }
    }
}

impl eframe::App for StudyApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.panel.show(ui));
        });
        if self.panel.close_requested() {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }
}

/// Opens the participant window and returns when it is closed.
pub fn run_window(study: Study, prepared: PreparedStudy, results_dir: PathBuf) -> Result<(), String> {
    let title = format!("radlens study — {}", study.title);
    let panel = StudyPanel::new(study, prepared, results_dir);
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_inner_size([1200.0, 900.0]),
        ..Default::default()
    };
    eframe::run_native(&title, options, Box::new(|_cc| Ok(Box::new(StudyApp::new(panel)))))
        .map_err(|e| e.to_string())
}
