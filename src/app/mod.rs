//! The desktop app: eframe window with the wgpu renderer. [`ViewerApp`] holds the runtime state (the
//! open study, the worker handle, jobs, errors) and the persisted settings, draws the panels
//! (`crate::ui`), and executes the [`Command`]s they return in one place ([`ViewerApp::execute`]).
//! Long work (loading a study, predictions, maps) never runs on the UI thread.

pub mod persist;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use eframe::egui;

use crate::imaging::{LabelSelector, Mask, Volume};
use crate::io::heatmap::{load_heatmap, load_mask_onto, save_heatmap, save_mask, GridFit, HeatmapData};
use crate::io::series::SeriesSummary;
use crate::io::{load_study, LoadError, LoadOptions, Study};
use crate::metrics::segmentation_scores;
use crate::model::manifest::{builtin_models, resolve_model, DEFAULT_MODEL};
use crate::model::weights::DeviceChoice;
use crate::model::{builtin_dir, probabilities_to_labels, Task};
use crate::pipeline::worker::Worker;
use crate::pipeline::{Event, ExplainJob, Job, JobId, JobOutput, PredictJob, TargetSpec};
use crate::render::new_source_id;
use crate::ui::controls::{self, ControlsInput, ControlsState, JobRow};
use crate::ui::file_browser::{BrowsePurpose, BrowserAction, FileBrowser};
use crate::ui::grid::{self, method_label, GridState, PanelData};
use crate::ui::metrics::{metrics_panel, MetricsView, ThresholdChoice};
use crate::ui::series_picker::{SeriesAction, SeriesPicker};
use crate::ui::{Command, Document, HeatmapEntry, PanelContent, PredictionMask, Readout, ViewState};
use crate::xai::methods::METHODS;
use crate::xai::Params;
use persist::Persisted;

/// Per heatmap: (method label, [(score name, value)] or why there is none).
type LocalizationRows = Vec<(String, Result<Vec<(String, f64)>, String>)>;

/// Most errors kept in the window's list.
const MAX_ERRORS: usize = 20;

/// How the app starts.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// A study to open instead of the demo.
    pub open: Option<PathBuf>,
    /// A ground-truth mask for `open`.
    pub mask: Option<PathBuf>,
    /// A model name or manifest path; default: the last used, else the first built-in.
    pub model: Option<String>,
    /// Where built-in models live.
    pub builtin_dir: PathBuf,
    /// Settings file; `None` = do not read or write settings (tests).
    pub settings: Option<PathBuf>,
    /// Submit the prediction and the visible maps when a study opens.
    pub auto_compute: bool,
    /// Use native dialogs (off in tests).
    pub dialogs: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            open: None,
            mask: None,
            model: None,
            builtin_dir: builtin_dir(),
            settings: Persisted::default_path(),
            auto_compute: true,
            dialogs: true,
        }
    }
}

/// A job the app is waiting for.
#[derive(Debug, Clone)]
enum JobKind {
    Predict { doc: u64, model: String, slices: Vec<usize> },
    Explain { doc: u64, model: String, method: String, params: String, slice: usize },
}

#[derive(Debug, Clone)]
struct Pending {
    kind: JobKind,
    label: String,
    done: usize,
    total: usize,
    message: String,
    running: bool,
}

/// What the loader thread found.
enum Loaded {
    Study(Box<Study>, Option<Mask>),
    /// The folder holds several series: the user picks one.
    Choose(Vec<SeriesSummary>),
}

/// A study being loaded on a background thread.
struct Loading {
    path: PathBuf,
    mask: Option<PathBuf>,
    rx: Receiver<Result<Loaded, LoadError>>,
}

/// The viewer's runtime state plus its persisted settings.
pub struct ViewerApp {
    pub options: AppOptions,
    pub persisted: Persisted,
    pub doc: Document,
    pub grid: GridState,
    pub controls: ControlsState,
    /// Demo cases (name, description, volume, masks) when the demo is available.
    demo: Vec<crate::io::demo::DemoCase>,
    pub current_demo: Option<usize>,
    /// (name, manifest) of the built-in models.
    pub models: Vec<(String, PathBuf)>,
    /// The selected model: a built-in name or a manifest path.
    pub model: Option<String>,
    worker: Option<Worker>,
    pending: BTreeMap<JobId, Pending>,
    pub errors: Vec<String>,
    /// One-line notices (e.g. a classification model's top class).
    pub notes: Vec<String>,
    loading: Option<Loading>,
    pub readout: Option<Readout>,
    pub threshold: ThresholdChoice,
    metrics_cache: Option<((u64, u64, usize), MetricsView)>,
    volume_metrics_cache: Option<((u64, u64), Result<(crate::metrics::SegmentationScores, usize), String>)>,
    /// The series picker, while a folder with several series waits for a choice.
    pub series_picker: Option<SeriesPicker>,
    /// Localization rows by (mask, slice, threshold, map sources).
    localization_cache: std::cell::RefCell<Option<(String, LocalizationRows)>>,
    /// The method whose map an export writes.
    export_method: Option<String>,
    /// The in-app file browser (the fallback when no native dialog answers), with what it picks for.
    pub browser: Option<FileBrowser>,
    /// A user study run from the File menu: while it is open it fills the window (method names hidden).
    pub study: Option<crate::ui::study::StudyPanel>,
}

impl ViewerApp {
    /// The app on the demo (or `options.open`), with its worker started.
    pub fn new(options: AppOptions) -> Self {
        let (persisted, warning) = match &options.settings {
            Some(p) => Persisted::load(p),
            None => (Persisted::default(), None),
        };
        let mut errors: Vec<String> = warning.into_iter().collect();
        let demo = match crate::io::demo::demo_cases() {
            Ok(d) => d,
            Err(e) => {
                errors.push(format!("embedded demo study is broken: {e}"));
                Vec::new()
            }
        };
        let placeholder = Volume::new(vec![0.0], [1, 1, 1], [1.0; 3]).map_err(|e| e.to_string());
        let doc = match (demo.first(), placeholder) {
            (Some(_), _) => demo_document(&demo[0]),
            (None, Ok(v)) => Document::new("no study".into(), None, v),
            (None, Err(e)) => unreachable_volume(e),
        };
        let view = ViewState::for_volume(&doc.volume);
        let mut grid = GridState::new(view);
        grid.set_layout(persisted.layout);
        grid.linked = persisted.linked;
        let controls = ControlsState { method: persisted.method.clone(), params: persisted.params.clone() };
        let models = builtin_models(&options.builtin_dir);
        let model = options
            .model
            .clone()
            .or_else(|| {
                persisted.last_model.clone().filter(|m| resolve_model(m, &options.builtin_dir).is_ok())
            })
            .or_else(|| {
                let default = models.iter().find(|(n, _)| n == DEFAULT_MODEL).or(models.first());
                default.map(|(n, _)| n.clone())
            });
        let worker = match Worker::spawn() {
            Ok(w) => Some(w),
            Err(e) => {
                errors.push(format!("cannot start the worker thread: {e}; models are unavailable"));
                None
            }
        };
        let threshold = persisted.threshold;
        let mut app = ViewerApp {
            current_demo: (!demo.is_empty()).then_some(0),
            demo,
            options,
            persisted,
            doc,
            grid,
            controls,
            models,
            model,
            worker,
            pending: BTreeMap::new(),
            errors,
            notes: Vec::new(),
            loading: None,
            readout: None,
            threshold,
            metrics_cache: None,
            volume_metrics_cache: None,
            series_picker: None,
            export_method: None,
            localization_cache: Default::default(),
            browser: None,
            study: None,
        };
        if let Some(path) = app.options.open.clone() {
            let mask = app.options.mask.clone();
            app.start_loading(path, mask, None);
        } else if app.options.auto_compute {
            app.compute_visible();
        }
        app
    }

    /// Jobs queued or running.
    pub fn pending_jobs(&self) -> usize {
        self.pending.len()
    }

    /// True while a study is being loaded.
    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    fn error(&mut self, e: impl Into<String>) {
        let e = e.into();
        self.errors.push(e.lines().next().unwrap_or("").to_string());
        if self.errors.len() > MAX_ERRORS {
            self.errors.remove(0);
        }
    }

    fn save_settings(&mut self) {
        self.persisted.layout = self.grid.layout;
        self.persisted.linked = self.grid.linked;
        self.persisted.last_model = self.model.clone();
        self.persisted.method = self.controls.method.clone();
        self.persisted.params = self.controls.params.clone();
        self.persisted.threshold = self.threshold;
        if let Some(path) = self.options.settings.clone() {
            if let Err(e) = self.persisted.save(&path) {
                self.error(e);
            }
        }
    }

    /// The selected model's manifest, or why there is none.
    fn model_manifest(&self) -> Result<PathBuf, String> {
        let m = self.model.as_ref().ok_or_else(|| "no model installed".to_string())?;
        resolve_model(m, &self.options.builtin_dir).map_err(|e| e.to_string())
    }

    fn current_slice(&self) -> usize {
        self.grid.view(self.grid.active.min(3)).slice.min(self.doc.volume.depth().saturating_sub(1))
    }

    /// Executes one command from the panels.
    pub fn execute(&mut self, cmd: Command) {
        match cmd {
            Command::OpenDialog { folder } => {
                if let Some(p) = self.pick(folder, BrowsePurpose::OpenStudy) {
                    self.start_loading(p, None, None);
                }
            }
            Command::Open(p) => self.start_loading(p, None, None),
            Command::OpenMaskDialog => {
                if let Some(p) = self.pick(false, BrowsePurpose::OpenMask) {
                    self.execute(Command::OpenMask(p));
                }
            }
            Command::OpenMask(p) => match load_mask_onto(&p, &self.doc.volume) {
                Ok((m, fit)) => {
                    let m = match fit {
                        GridFit::Volume => Some(m),
                        // One slice: placed on the slice shown now.
                        GridFit::Slice => {
                            let dims = self.doc.volume.dims();
                            let plane = dims[1] * dims[2];
                            let z = self.current_slice();
                            let mut labels = vec![0u16; dims[0] * plane];
                            labels[z * plane..(z + 1) * plane].copy_from_slice(m.slice(0));
                            Mask::new(labels, dims)
                        }
                    };
                    match m {
                        Some(m) => {
                            self.doc.add_mask(file_name(&p), m);
                            self.metrics_cache = None;
                            self.volume_metrics_cache = None;
                        }
                        None => self.error(format!("mask does not fit the study grid: {}", p.display())),
                    }
                }
                Err(e) => self.error(e.to_string()),
            },
            Command::OpenHeatmapDialog => {
                if let Some(p) = self.pick(false, BrowsePurpose::OpenHeatmap) {
                    self.execute(Command::OpenHeatmap(p));
                }
            }
            Command::OpenHeatmap(p) => match load_heatmap(&p, &self.doc.volume) {
                Ok((map, fit)) => {
                    let method = format!("file: {}", file_name(&p));
                    let first = if fit == GridFit::Slice { self.current_slice() } else { 0 };
                    for k in 0..map.dims[0] {
                        if let Some(values) = map.slice(k) {
                            self.doc.put_heatmap(HeatmapEntry::new(
                                method.clone(),
                                String::new(),
                                String::new(),
                                first + k,
                                values.to_vec(),
                                None,
                                None,
                            ));
                        }
                    }
                }
                Err(e) => self.error(e.to_string()),
            },
            Command::ShowDemoCase(i) => {
                if let Some(case) = self.demo.get(i) {
                    let doc = demo_document(case);
                    self.open_document(doc);
                    self.current_demo = Some(i);
                    if self.options.auto_compute {
                        self.compute_visible();
                    }
                }
            }
            Command::SelectModel(m) => {
                self.model = Some(m);
                self.save_settings();
                if self.options.auto_compute {
                    self.compute_visible();
                }
            }
            Command::SelectModelDialog => {
                if let Some(p) = self.pick(false, BrowsePurpose::OpenModel) {
                    self.execute(Command::SelectModel(p.display().to_string()));
                }
            }
            Command::Predict { whole_volume } => {
                let slices = if whole_volume {
                    (0..self.doc.volume.depth()).collect()
                } else {
                    vec![self.current_slice()]
                };
                self.submit_predict(slices);
            }
            Command::Explain { method } => {
                let z = self.current_slice();
                self.submit_explain(&method, z);
            }
            Command::ComputeVisible => self.compute_visible(),
            Command::RunStudyDialog => {
                if let Some(p) = self.pick(false, BrowsePurpose::OpenUserStudy) {
                    self.execute(Command::RunStudy(p));
                }
            }
            Command::RunStudy(p) => match open_study_panel(&p) {
                Ok(panel) => self.study = Some(panel),
                Err(e) => self.error(e),
            },
            Command::CancelJobs => {
                if let Some(w) = &mut self.worker {
                    w.cancel_all();
                }
            }
            Command::DismissError(i) => {
                if i < self.errors.len() {
                    self.errors.remove(i);
                }
            }
            Command::ExportFigureDialog => {
                if let Some(p) = self.pick_save(BrowsePurpose::SaveFigure, "radlens_figure.png") {
                    self.export_figure(&p);
                }
            }
            Command::ExportHeatmapDialog { method } => {
                let name = format!("{}_slice{}.npy", method.replace('+', "pp"), self.current_slice() + 1);
                self.export_method = Some(method);
                if let Some(p) = self.pick_save(BrowsePurpose::SaveHeatmap, &name) {
                    self.export_heatmap(&p);
                }
            }
            Command::ExportPredictionDialog => {
                if let Some(p) = self.pick_save(BrowsePurpose::SaveMask, "prediction.nii.gz") {
                    self.export_prediction(&p);
                }
            }
        }
    }

    fn start_dir(&self) -> PathBuf {
        self.persisted
            .recent
            .first()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// The native dialog; when it returns at once with nothing (no desktop portal answers), the in-app
    /// browser opens instead and its pick arrives later as a command.
    fn pick(&mut self, folder: bool, purpose: BrowsePurpose) -> Option<PathBuf> {
        if !self.options.dialogs {
            self.browser = Some(FileBrowser::new(self.start_dir(), purpose));
            return None;
        }
        let mut d = rfd::FileDialog::new().set_directory(self.start_dir());
        let ext: Vec<&str> = purpose.extensions().iter().map(|e| e.trim_start_matches('.')).collect();
        if !ext.is_empty() && !folder {
            d = d.add_filter("supported", &ext);
        }
        let t = std::time::Instant::now();
        let picked = if folder { d.pick_folder() } else { d.pick_file() };
        if picked.is_none() && t.elapsed() < std::time::Duration::from_millis(300) {
            self.browser = Some(FileBrowser::new(self.start_dir(), purpose));
        }
        picked
    }

    fn pick_save(&mut self, purpose: BrowsePurpose, name: &str) -> Option<PathBuf> {
        if !self.options.dialogs {
            self.browser = Some(FileBrowser::new(self.start_dir(), purpose).with_file_name(name));
            return None;
        }
        let t = std::time::Instant::now();
        let picked = rfd::FileDialog::new().set_directory(self.start_dir()).set_file_name(name).save_file();
        if picked.is_none() && t.elapsed() < std::time::Duration::from_millis(300) {
            self.browser = Some(FileBrowser::new(self.start_dir(), purpose).with_file_name(name));
        }
        picked
    }

    /// A path picked in the in-app browser, for what it was opened for.
    fn browser_picked(&mut self, purpose: BrowsePurpose, p: PathBuf) {
        match purpose {
            BrowsePurpose::OpenStudy => self.start_loading(p, None, None),
            BrowsePurpose::OpenMask => self.execute(Command::OpenMask(p)),
            BrowsePurpose::OpenHeatmap => self.execute(Command::OpenHeatmap(p)),
            BrowsePurpose::OpenModel => self.execute(Command::SelectModel(p.display().to_string())),
            BrowsePurpose::OpenUserStudy => self.execute(Command::RunStudy(p)),
            BrowsePurpose::SaveFigure => self.export_figure(&p),
            BrowsePurpose::SaveHeatmap => self.export_heatmap(&p),
            BrowsePurpose::SaveMask => self.export_prediction(&p),
        }
    }

    /// The visible panels on the current slice as the papers' figure (one row).
    pub fn export_figure(&mut self, path: &Path) {
        use crate::report::figure::{save_figure, FigureRow, FigureSpec, GreySlice, Panel, PanelOverlay};
        let z = self.current_slice();
        let [_, h, w] = self.doc.volume.dims();
        let mut cells = Vec::new();
        let mut captions = Vec::new();
        for i in 0..self.grid.layout.panel_count().min(self.grid.panels.len()) {
            let content = self.grid.panels[i].content.clone();
            let view = *self.grid.view(i);
            let image = GreySlice {
                values: self.doc.volume.slice(z).to_vec(),
                width: w,
                height: h,
                window: view.window,
            };
            let overlay = match &content {
                PanelContent::Image => PanelOverlay::None,
                PanelContent::Masks => PanelOverlay::Masks {
                    ground_truth: self
                        .doc
                        .ground_truth()
                        .map(|m| m.mask.slice(z).iter().map(|&l| l != 0).collect()),
                    prediction: self
                        .doc
                        .prediction
                        .as_ref()
                        .filter(|p| p.slices.contains(&z))
                        .map(|p| p.mask.slice(z).iter().map(|&l| l != 0).collect()),
                },
                PanelContent::Heatmap(_) => match self.panel_data(&content, z).heat {
                    Some(hm) => PanelOverlay::Heatmap {
                        values: hm.values.to_vec(),
                        threshold: (self.grid.display.heat_threshold > 0.0)
                            .then_some(self.grid.display.heat_threshold),
                        alpha: self.grid.display.heat_opacity,
                    },
                    None => PanelOverlay::None,
                },
            };
            captions.push(content.label());
            cells.push(Panel { image, overlay });
        }
        let spec = FigureSpec {
            rows: vec![FigureRow { label: Some(format!("{} · slice {}", self.doc.name, z + 1)), cells }],
            column_captions: captions,
            ..Default::default()
        };
        match save_figure(path, &spec) {
            Ok(()) => self.notes.push(format!("figure saved: {}", path.display())),
            Err(e) => self.error(format!("figure not saved ({e}): {}", path.display())),
        }
    }

    /// The map of the method chosen for export on the current slice (.npy / NIfTI).
    pub fn export_heatmap(&mut self, path: &Path) {
        let z = self.current_slice();
        let Some(method) = self.export_method.clone() else { return };
        let Some(hm) = self.panel_data(&PanelContent::Heatmap(method.clone()), z).heat else {
            return self.error(format!("no {} map on slice {} to export", method_label(&method), z + 1));
        };
        let [_, h, w] = self.doc.volume.dims();
        let Some(map) = HeatmapData::new(hm.values.to_vec(), [1, h, w]) else { return };
        match save_heatmap(path, &map, &self.doc.volume, z) {
            Ok(()) => self.notes.push(format!("heatmap saved: {}", path.display())),
            Err(e) => self.error(e.to_string()),
        }
    }

    /// The predicted mask: PNG = the current slice, NIfTI = the whole volume (unpredicted slices empty).
    pub fn export_prediction(&mut self, path: &Path) {
        let Some(pred) = self.doc.prediction.clone() else {
            return self.error("no prediction to export");
        };
        let z = self.current_slice();
        let result = if crate::io::lower_name(path).ends_with(".png") {
            let [_, h, w] = self.doc.volume.dims();
            match Mask::new(pred.mask.slice(z).to_vec(), [1, h, w]) {
                Some(m) => save_mask(path, &m, &self.doc.volume, z),
                None => return,
            }
        } else {
            save_mask(path, &pred.mask, &self.doc.volume, 0)
        };
        match result {
            Ok(()) => self.notes.push(format!("prediction saved: {}", path.display())),
            Err(e) => self.error(e.to_string()),
        }
    }

    /// Shows `doc`; jobs on the previous study are cancelled and their results dropped.
    pub fn open_document(&mut self, doc: Document) {
        // Results of jobs on the previous study are stale: cancel them and drop their events.
        if let Some(w) = &mut self.worker {
            w.cancel_all();
        }
        self.pending.clear();
        let view = ViewState::for_volume(&doc.volume);
        self.grid.shared = view;
        for p in &mut self.grid.panels {
            p.view = view;
        }
        self.doc = doc;
        self.metrics_cache = None;
        self.volume_metrics_cache = None;
        self.readout = None;
        self.notes.clear();
    }

    /// Loads a study (and optionally its mask) on a background thread.
    pub fn start_loading(&mut self, path: PathBuf, mask: Option<PathBuf>, series_uid: Option<String>) {
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        let m = mask.clone();
        let spawned = std::thread::Builder::new().name("radlens-load".into()).spawn(move || {
            // A folder with several series: list them (headers only) and let the user choose.
            if p.is_dir() && series_uid.is_none() {
                if let Ok(list) = crate::io::series::list_series(&p) {
                    if list.len() > 1 {
                        let _ = tx.send(Ok(Loaded::Choose(list)));
                        return;
                    }
                }
            }
            let opts = LoadOptions { series_uid, ..Default::default() };
            let result = load_study(&p, &opts).and_then(|study| {
                let mask = match &m {
                    Some(mp) => Some(crate::io::mask::load_mask_for(mp, &study.volume)?),
                    None => None,
                };
                Ok(Loaded::Study(Box::new(study), mask))
            });
            let _ = tx.send(result);
        });
        match spawned {
            Ok(_) => self.loading = Some(Loading { path, mask, rx }),
            Err(e) => self.error(format!("cannot start loading ({e}): {}", path.display())),
        }
    }

    fn poll_loading(&mut self) {
        let Some(l) = &self.loading else { return };
        let result = match l.rx.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => {
                Err(LoadError::new(&l.path, "internal error: the loader stopped"))
            }
        };
        let Some(l) = self.loading.take() else { return };
        match result {
            Ok(Loaded::Choose(list)) => {
                self.series_picker = Some(SeriesPicker::new(l.path.clone(), list));
            }
            Ok(Loaded::Study(study, mask)) => {
                let study = *study;
                let mut doc = Document::new(file_name(&l.path), Some(l.path.clone()), study.volume);
                doc.warnings = study.warnings;
                if let (Some(m), Some(mp)) = (mask, &l.mask) {
                    doc.add_mask(file_name(mp), m);
                }
                self.open_document(doc);
                self.current_demo = None;
                self.persisted.add_recent(&l.path);
                self.save_settings();
                if self.options.auto_compute {
                    self.compute_visible();
                }
            }
            Err(e) => self.error(e.to_string()),
        }
    }

    /// Submits what the visible panels need on the current slice and is not cached or queued.
    pub fn compute_visible(&mut self) {
        if self.model_manifest().is_err() {
            return;
        }
        let z = self.current_slice();
        let predicted = self
            .doc
            .prediction
            .as_ref()
            .is_some_and(|p| p.slices.contains(&z) && Some(&p.model) == self.model.as_ref());
        let pending_predict = self
            .pending
            .values()
            .any(|p| matches!(&p.kind, JobKind::Predict { slices, .. } if slices.contains(&z)));
        if !predicted && !pending_predict {
            self.submit_predict(vec![z]);
        }
        for m in self.grid.visible_methods() {
            self.submit_explain(&m, z);
        }
    }

    fn submit_predict(&mut self, slices: Vec<usize>) {
        let manifest = match self.model_manifest() {
            Ok(m) => m,
            Err(e) => return self.error(e),
        };
        let Some(worker) = &mut self.worker else { return };
        let model = self.model.clone().unwrap_or_default();
        let n = slices.len();
        let job = Job::Predict(PredictJob {
            model: manifest,
            device: DeviceChoice::Auto,
            volume: self.doc.volume.clone(),
            slices: slices.clone(),
        });
        let id = worker.submit(job);
        let label =
            if n == 1 { format!("predict slice {}", slices[0] + 1) } else { format!("predict {n} slices") };
        self.pending.insert(
            id,
            Pending {
                kind: JobKind::Predict { doc: self.doc.source, model, slices },
                label,
                done: 0,
                total: n,
                message: String::new(),
                running: false,
            },
        );
    }

    fn submit_explain(&mut self, method: &str, slice: usize) {
        let manifest = match self.model_manifest() {
            Ok(m) => m,
            Err(e) => return self.error(e),
        };
        let model = self.model.clone().unwrap_or_default();
        let ui_params = self.controls.params_for(method);
        let key = ui_params.key();
        if self.doc.heatmap(method, &model, &key, slice).is_some() {
            return;
        }
        let already = self.pending.values().any(|p| {
            matches!(&p.kind, JobKind::Explain { method: m, params, slice: s, model: md, .. }
                if m == method && params == &key && *s == slice && md == &model)
        });
        if already {
            return;
        }
        let Some(worker) = &mut self.worker else { return };
        let nz = |v: usize| (v > 0).then_some(v);
        let params = Params {
            layer: (!ui_params.layer.trim().is_empty()).then(|| ui_params.layer.trim().to_string()),
            seed: ui_params.seed,
            samples: nz(ui_params.samples),
            batch: ui_params.batch.max(1),
            steps: nz(ui_params.steps),
            // The panel offers only known names; an unknown one (an old settings file) is the default.
            segmentation: (!ui_params.superpixels.is_empty())
                .then(|| crate::xai::superpixels::Segmentation::from_name(&ui_params.superpixels).ok())
                .flatten(),
        };
        let job = Job::Explain(ExplainJob {
            model: manifest,
            device: DeviceChoice::Auto,
            volume: self.doc.volume.clone(),
            slice,
            method: method.to_string(),
            params,
            target: TargetSpec::Default,
            repeats: ui_params.repeats.max(1),
        });
        let id = worker.submit(job);
        self.pending.insert(
            id,
            Pending {
                kind: JobKind::Explain {
                    doc: self.doc.source,
                    model,
                    method: method.to_string(),
                    params: key,
                    slice,
                },
                label: format!("{} slice {}", method_label(method), slice + 1),
                done: 0,
                total: 1,
                message: String::new(),
                running: false,
            },
        );
    }

    /// Takes every worker event that is ready; results of stale jobs are dropped.
    pub fn poll_worker(&mut self) {
        let mut events = Vec::new();
        if let Some(w) = &mut self.worker {
            while let Some(e) = w.try_recv() {
                events.push(e);
            }
        }
        for e in events {
            let id = e.id();
            let Some(p) = self.pending.get_mut(&id) else { continue };
            match e {
                Event::Started { .. } => p.running = true,
                Event::Progress { done, total, message, .. } => {
                    p.running = true;
                    p.done = done;
                    p.total = total;
                    p.message = message;
                }
                Event::Cancelled { .. } => {
                    self.pending.remove(&id);
                }
                Event::Failed { error, .. } => {
                    let label = p.label.clone();
                    self.pending.remove(&id);
                    self.error(format!("{label}: {error}"));
                }
                Event::Finished { output, .. } => {
                    if let Some(p) = self.pending.remove(&id) {
                        self.accept(p.kind, *output);
                    }
                }
            }
        }
    }

    fn accept(&mut self, kind: JobKind, output: JobOutput) {
        match (kind, output) {
            (JobKind::Predict { doc, model, .. }, JobOutput::Prediction(pred)) => {
                if doc != self.doc.source {
                    return; // a previous study's result
                }
                if pred.task == Task::Classification {
                    for (z, probs) in pred.slices.iter().zip(&pred.probs) {
                        if let Some((k, p)) = probs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) {
                            let class = pred.classes.get(k).cloned().unwrap_or_else(|| k.to_string());
                            self.notes.push(format!("{model}, slice {}: {class} ({:.1}%)", z + 1, 100.0 * p));
                        }
                    }
                    return;
                }
                let dims = self.doc.volume.dims();
                let plane = dims[1] * dims[2];
                let mut labels = match &self.doc.prediction {
                    Some(p) if p.model == model => p.mask.labels().to_vec(),
                    _ => vec![0u16; dims[0] * plane],
                };
                let mut slices = match &self.doc.prediction {
                    Some(p) if p.model == model => p.slices.clone(),
                    _ => Default::default(),
                };
                let classes = pred.classes.len().max(1);
                for (z, probs) in pred.slices.iter().zip(&pred.probs) {
                    let l = probabilities_to_labels(probs, classes, pred.threshold);
                    if l.len() == plane && *z < dims[0] {
                        labels[z * plane..(z + 1) * plane].copy_from_slice(&l);
                        slices.insert(*z);
                    }
                }
                match Mask::new(labels, dims) {
                    Some(mask) => {
                        self.doc.prediction = Some(PredictionMask {
                            model,
                            source: new_source_id(),
                            mask: Arc::new(mask),
                            slices,
                            threshold: pred.threshold,
                        });
                    }
                    None => self.error("internal error: prediction does not fit the study grid"),
                }
                for n in pred.notes {
                    self.notes.push(n);
                }
                self.metrics_cache = None;
                self.volume_metrics_cache = None;
            }
            (JobKind::Explain { doc, model, method, params, slice }, JobOutput::Explanation(x)) => {
                if doc != self.doc.source {
                    return;
                }
                let stability = x.stability.map(|s| (s.repeats, s.top10_iou, s.spearman));
                let entry =
                    HeatmapEntry::new(method, model, params, slice, x.values, x.superpixels, stability);
                self.doc.put_heatmap(entry);
                self.metrics_cache = None;
            }
            _ => self.error("internal error: a job returned an unexpected result"),
        }
    }

    /// What a panel shows besides the image at slice `z`.
    pub fn panel_data(&self, content: &PanelContent, z: usize) -> PanelData {
        let model = self.model.clone().unwrap_or_default();
        let no_model = self.model.is_none();
        match content {
            PanelContent::Image => PanelData::default(),
            PanelContent::Masks => {
                let running = self
                    .pending
                    .values()
                    .find(|p| matches!(&p.kind, JobKind::Predict { slices, .. } if slices.contains(&z)));
                let predicted = self.doc.prediction.as_ref().is_some_and(|p| p.slices.contains(&z));
                let status = if let Some(p) = running {
                    Some(progress_text("predicting", p))
                } else if predicted {
                    None
                } else if no_model {
                    Some("no model installed: ground truth only".into())
                } else {
                    Some("not predicted — Predict slice".into())
                };
                PanelData { heat: None, status }
            }
            PanelContent::Heatmap(method) => {
                let key = self.controls.params_for(method).key();
                let heat = self.doc.heatmap(method, &model, &key, z).cloned();
                let running = self.pending.values().find(|p| {
                    matches!(&p.kind, JobKind::Explain { method: m, slice, .. } if m == method && *slice == z)
                });
                let status = if let Some(p) = running {
                    Some(progress_text("computing", p))
                } else if heat.is_some() {
                    None
                } else if method.starts_with("file: ") {
                    Some("no map on this slice".into())
                } else if no_model {
                    Some("no model installed: maps need a model".into())
                } else {
                    Some("not computed — Compute visible panels".into())
                };
                PanelData { heat, status }
            }
        }
    }

    fn metrics_view(&mut self) -> MetricsView {
        let z = self.current_slice();
        let (Some(gt), Some(pred)) = (self.doc.ground_truth().cloned(), self.doc.prediction.clone()) else {
            let heatmaps = match self.doc.ground_truth().cloned() {
                Some(gt) => self.localization_rows(&gt.mask, z),
                None => Vec::new(),
            };
            return MetricsView {
                heatmaps,
                note: Some(if self.doc.ground_truth().is_none() {
                    "load a ground-truth mask to score".into()
                } else {
                    "no prediction yet".into()
                }),
                ..Default::default()
            };
        };
        let key = (gt.source, pred.source, z);
        if let Some((k, v)) = &self.metrics_cache {
            if *k == key {
                return v.clone();
            }
        }
        let [_, h, w] = self.doc.volume.dims();
        let sp = self.doc.volume.spacing_mm;
        let slice_scores = if pred.slices.contains(&z) {
            let p: Vec<bool> = pred.mask.slice(z).iter().map(|&l| l != 0).collect();
            let g: Vec<bool> = gt.mask.slice(z).iter().map(|&l| LabelSelector::Any.matches(l)).collect();
            Some(segmentation_scores(&p, &g, [1, h, w], sp).map_err(|e| e.to_string()))
        } else {
            Some(Err("slice not predicted".into()))
        };
        let predicting = self.pending.values().any(|p| matches!(p.kind, JobKind::Predict { .. }));
        let vkey = (gt.source, pred.source);
        let volume = match &self.volume_metrics_cache {
            Some((k, v)) if *k == vkey => Some(v.clone()),
            _ if predicting => Some(Err("waiting for the prediction".into())),
            _ => {
                let slices: Vec<usize> = pred.slices.iter().copied().collect();
                let mut p = Vec::with_capacity(slices.len() * h * w);
                let mut g = Vec::with_capacity(slices.len() * h * w);
                for &s in &slices {
                    p.extend(pred.mask.slice(s).iter().map(|&l| l != 0));
                    g.extend(gt.mask.slice(s).iter().map(|&l| l != 0));
                }
                let r = segmentation_scores(&p, &g, [slices.len(), h, w], sp)
                    .map(|s| (s, slices.len()))
                    .map_err(|e| e.to_string());
                self.volume_metrics_cache = Some((vkey, r.clone()));
                Some(r)
            }
        };
        let heatmaps = self.localization_rows(&gt.mask, z);
        let view = MetricsView { slice: slice_scores, volume, heatmaps, note: None };
        if !predicting {
            self.metrics_cache = Some((key, view.clone()));
        }
        view
    }

    /// Localization of each visible map on slice `z` against the ground truth, at the chosen threshold
    /// (`metrics::localization`, the code `radlens eval` uses).
    fn localization_rows(&self, gt: &Mask, z: usize) -> LocalizationRows {
        use crate::metrics::localization::{
            heatmap_to_mask, localization_scores, Threshold, POINTING_TOLERANCE_PX,
        };
        let threshold = match self.threshold {
            ThresholdChoice::Otsu => Threshold::Otsu,
            ThresholdChoice::Fixed(t) => Threshold::Fixed(t),
            ThresholdChoice::TopPercent(p) => Threshold::TopPercent(p),
        };
        let [_, h, w] = self.doc.volume.dims();
        let sp = self.doc.volume.spacing_mm;
        let g: Vec<bool> = gt.slice(z).iter().map(|&l| l != 0).collect();
        let sources: Vec<u64> = self
            .grid
            .panels
            .iter()
            .take(self.grid.layout.panel_count())
            .filter_map(|p| self.panel_data(&p.content, z).heat.map(|h| h.source))
            .collect();
        let key = format!("{:p} {z} {threshold:?} {sources:?}", gt as *const Mask);
        if let Some((k, rows)) = self.localization_cache.borrow().as_ref() {
            if *k == key {
                return rows.clone();
            }
        }
        let mut rows = Vec::new();
        let mut seen = Vec::new();
        for p in self.grid.panels.iter().take(self.grid.layout.panel_count()) {
            let PanelContent::Heatmap(method) = &p.content else { continue };
            if seen.contains(method) {
                continue;
            }
            seen.push(method.clone());
            let Some(hm) = self.panel_data(&p.content, z).heat else { continue };
            let pred = heatmap_to_mask(&hm.values, threshold);
            let r = localization_scores(&hm.values, &pred, &g, h, w, [sp[1], sp[2]], POINTING_TOLERANCE_PX)
                .map(|s| {
                    let mut v = vec![("IoU".to_string(), s.iou), ("Dice".to_string(), s.dice)];
                    if let Some(hit) = s.pointing_hit {
                        v.push(("pointing".into(), if hit { 1.0 } else { 0.0 }));
                    }
                    if let Some(m) = s.relevance_mass {
                        v.push(("mass".into(), m));
                    }
                    if let Some(d) = s.hd_mm {
                        v.push(("HD mm".into(), d));
                    }
                    v
                })
                .map_err(|e| e.to_string());
            rows.push((method_label(method), r));
        }
        *self.localization_cache.borrow_mut() = Some((key, rows.clone()));
        rows
    }

    /// Draws the whole window and executes what the user asked for.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.poll_loading();
        self.poll_worker();
        if let Some(panel) = &mut self.study {
            // The participant sees only the study: no model or method names anywhere on screen. Every
            // answer is already on disk, so leaving mid-study loses nothing (the study resumes).
            let mut leave = false;
            egui::Panel::top("study-bar").show(ui, |ui| {
                leave = ui.button("Leave the study").clicked();
            });
            egui::CentralPanel::default().show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| panel.show(ui));
            });
            if leave {
                self.study = None;
            }
            return;
        }
        let mut cmds: Vec<Command> = Vec::new();

        // Drag and drop: the first dropped file or folder opens as a study.
        let dropped: Vec<PathBuf> =
            ui.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        if let Some(p) = dropped.into_iter().next() {
            cmds.push(Command::Open(p));
        }

        let has_prediction = self.doc.prediction.is_some();
        egui::Panel::top("menu").show(ui, |ui| {
            cmds.extend(controls::menu_bar(ui, &self.persisted.recent, &mut self.grid, has_prediction));
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                if let Some(l) = &self.loading {
                    ui.spinner();
                    ui.label(format!("loading {}", l.path.display()));
                } else if let Some(r) = &self.readout {
                    ui.monospace(r.text());
                } else {
                    ui.weak("move the cursor over an image for values");
                }
                if let Some(n) = self.notes.last() {
                    ui.separator();
                    ui.label(n);
                }
            });
        });
        let jobs: Vec<JobRow> = self
            .pending
            .values()
            .map(|p| JobRow {
                label: p.label.clone(),
                done: p.done,
                total: p.total,
                message: p.message.clone(),
                running: p.running,
            })
            .collect();
        let model_names: Vec<String> = self.models.iter().map(|(n, _)| n.clone()).collect();
        let model_note = match (&self.model, self.models.is_empty()) {
            (None, true) => Some("No model installed: the demo shows images and ground truth. Add weights/<name>/model.toml or choose a manifest."),
            (None, false) => Some("Choose a model to compute predictions and maps."),
            _ => None,
        };
        let demo_names: Vec<String> = self.demo.iter().map(|c| c.name.clone()).collect();
        let v = &self.doc.volume;
        let [d, h, w] = v.dims();
        let study_info = format!(
            "{d}×{h}×{w}, {:.2}×{:.2}×{:.2} mm{}, {}",
            v.spacing_mm[0],
            v.spacing_mm[1],
            v.spacing_mm[2],
            if v.spacing_assumed { " (assumed)" } else { "" },
            v.unit.as_str()
        );
        let methods: Vec<&str> = METHODS.to_vec();
        egui::Panel::left("controls").default_size(290.0).show(ui, |ui| {
            let input = ControlsInput {
                study: self.doc.name.clone(),
                study_info,
                demo_cases: &demo_names,
                current_demo: self.current_demo,
                models: &model_names,
                model: self.model.as_deref(),
                model_note,
                methods: &methods,
                jobs: &jobs,
                errors: &self.errors,
            };
            if !self.doc.description.is_empty() {
                ui.weak(&self.doc.description);
            }
            cmds.extend(controls::side_panel(ui, &input, &mut self.controls, &mut self.grid));
        });
        // The series picker and the in-app browser, as windows over the viewer.
        if let Some(picker) = &mut self.series_picker {
            let mut action = None;
            egui::Window::new("Choose a series")
                .collapsible(false)
                .show(ui.ctx(), |ui| action = picker.show(ui));
            match action {
                Some(SeriesAction::Load { folder, uid }) => {
                    self.series_picker = None;
                    self.start_loading(folder, None, Some(uid));
                }
                Some(SeriesAction::Cancelled) => self.series_picker = None,
                None => {}
            }
        }
        if let Some(browser) = &mut self.browser {
            let purpose = browser.purpose();
            let mut action = None;
            egui::Window::new(purpose.title())
                .collapsible(false)
                .default_size([560.0, 420.0])
                .show(ui.ctx(), |ui| action = browser.show(ui));
            match action {
                Some(BrowserAction::Picked(p)) => {
                    self.browser = None;
                    self.browser_picked(purpose, p);
                }
                Some(BrowserAction::Cancelled) => self.browser = None,
                None => {}
            }
        }
        let metrics = self.metrics_view();
        let mut threshold = self.threshold;
        egui::Panel::right("metrics").default_size(300.0).show(ui, |ui| {
            if metrics_panel(ui, &metrics, &mut threshold) {
                self.metrics_cache = None;
            }
        });
        self.threshold = threshold;
        let slice_before = self.current_slice();
        egui::CentralPanel::no_frame().show(ui, |ui| {
            let this = &*self;
            let data = |c: &PanelContent, z: usize| this.panel_data(c, z);
            let mut grid = this.grid.clone();
            let r = grid::compare_grid(ui, &mut grid, &this.doc, &methods, &data);
            self.grid = grid;
            self.readout = r.readout.or(if r.changed { None } else { self.readout.take() });
        });
        if self.current_slice() != slice_before {
            self.metrics_cache = None;
        }
        for c in cmds {
            self.execute(c);
        }
        if !self.pending.is_empty() || self.loading.is_some() {
            ui.ctx().request_repaint_after(std::time::Duration::from_millis(100));
        }
    }

    /// Cancels every job (e.g. on exit) and saves the settings.
    pub fn shutdown(&mut self) {
        if let Some(w) = &mut self.worker {
            w.cancel_all();
        }
        self.save_settings();
    }
}

fn unreachable_volume(e: String) -> Document {
    // A 1-voxel volume always constructs; keep a clear message should that ever change.
    panic!("internal error: cannot build an empty volume: {e}")
}

fn progress_text(verb: &str, p: &Pending) -> String {
    if !p.running {
        format!("{verb}: queued")
    } else if p.total > 1 {
        format!("{verb} {}%", 100 * p.done / p.total.max(1))
    } else {
        format!("{verb}…")
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
}

fn demo_document(case: &crate::io::demo::DemoCase) -> Document {
    let mut doc = Document::new(format!("demo: {}", case.name), None, case.volume.clone());
    doc.description = case.description.clone();
    for (name, m) in &case.masks {
        doc.add_mask(name.clone(), m.clone());
    }
    doc
}

/// The eframe wrapper.
struct EframeApp {
    app: ViewerApp,
}

impl eframe::App for EframeApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.app.ui(ui);
    }

    fn on_exit(&mut self) {
        self.app.shutdown();
    }
}

/// Opens the window (wgpu renderer) and runs until it is closed.
pub fn run(options: AppOptions) -> Result<(), String> {
    let native = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("radlens")
            .with_inner_size([1500.0, 900.0])
            .with_min_inner_size([800.0, 500.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "radlens",
        native,
        Box::new(move |cc| {
            let rs = cc.wgpu_render_state.as_ref().ok_or("the wgpu renderer is not available")?;
            crate::render::install(rs);
            Ok(Box::new(EframeApp { app: ViewerApp::new(options) }))
        }),
    )
    .map_err(|e| format!("cannot open the window: {e}"))
}

/// A prepared study's participant panel, as `radlens study run` opens it (results beside the study file).
fn open_study_panel(path: &Path) -> Result<crate::ui::study::StudyPanel, String> {
    let study = crate::session::study::Study::load(path).map_err(|e| e.to_string())?;
    let prepared = crate::ui::study::PreparedStudy::load(&study).map_err(|e| e.to_string())?;
    let dir = study.default_results_dir();
    Ok(crate::ui::study::StudyPanel::new(study, prepared, dir))
}
