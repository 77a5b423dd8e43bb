//! Jobs and their execution, shared by the GUI and the CLI: both build a [`Job`] and call [`run_job`] —
//! the GUI on the [`worker::Worker`] thread, the CLI directly. Long work reports progress and stops when
//! its [`CancelToken`] is set.

mod explain;
pub mod worker;

pub use explain::{resize_nearest_labels, ExplainJob, Explanation, Stability, TargetSpec};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::imaging::Volume;
use crate::model::weights::{select_device, DeviceChoice};
use crate::model::{load_model, LoadedModel, ModelError, Task};

/// Identifies a submitted job; every [`Event`] carries it, so results of a stale job can be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// Shared flag a job polls between units of work.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Work for the pipeline.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Job {
    /// Run a model on some slices of a study.
    Predict(PredictJob),
    /// Explain a model's output on one slice with one method.
    Explain(ExplainJob),
}

#[derive(Debug, Clone)]
pub struct PredictJob {
    /// The model's manifest (`model.toml`).
    pub model: PathBuf,
    pub device: DeviceChoice,
    pub volume: Arc<Volume>,
    /// Slice indices (z) to run on, in output order.
    pub slices: Vec<usize>,
}

/// What a finished job produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum JobOutput {
    Prediction(Prediction),
    Explanation(Box<Explanation>),
}

/// Model probabilities on the study's grid.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub model_name: String,
    pub task: Task,
    pub classes: Vec<String>,
    /// Segmentation: the probability cut for the predicted mask.
    pub threshold: f32,
    pub slices: Vec<usize>,
    /// Per slice: (classes, H, W) for segmentation, (classes) for classification.
    pub probs: Vec<Vec<f32>>,
    /// E.g. "CUDA requested but ...; running on CPU".
    pub notes: Vec<String>,
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum Event {
    Started { id: JobId },
    Progress { id: JobId, done: usize, total: usize, message: String },
    Finished { id: JobId, output: Box<JobOutput> },
    Failed { id: JobId, error: String },
    Cancelled { id: JobId },
}

impl Event {
    pub fn id(&self) -> JobId {
        match self {
            Event::Started { id }
            | Event::Progress { id, .. }
            | Event::Finished { id, .. }
            | Event::Failed { id, .. }
            | Event::Cancelled { id } => *id,
        }
    }

    /// True for the last event of a job.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Event::Finished { .. } | Event::Failed { .. } | Event::Cancelled { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Xai(#[from] crate::xai::XaiError),
}

/// Models loaded so far, by (manifest path, device): a model loads once per session.
#[derive(Default)]
pub struct ModelCache {
    models: HashMap<(PathBuf, String), Arc<LoadedModel>>,
}

impl ModelCache {
    /// The model for `manifest` on `device`, loading it on first use. Returns it with any device note.
    pub fn get(
        &mut self,
        manifest: &std::path::Path,
        device: DeviceChoice,
    ) -> Result<(Arc<LoadedModel>, Option<String>), ModelError> {
        let (dev, note) = select_device(device);
        let key = (manifest.to_path_buf(), format!("{dev:?}"));
        if let Some(m) = self.models.get(&key) {
            return Ok((m.clone(), note));
        }
        let m = Arc::new(load_model(manifest, &dev)?);
        self.models.insert(key, m.clone());
        Ok((m, note))
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// Everything a running job may use besides its inputs.
pub struct Context<'a> {
    pub cancel: &'a CancelToken,
    /// (done, total, message)
    pub progress: &'a mut dyn FnMut(usize, usize, &str),
    pub cache: &'a mut ModelCache,
}

/// Runs one job to completion (or cancellation) on the calling thread.
pub fn run_job(job: &Job, ctx: &mut Context) -> Result<JobOutput, PipelineError> {
    match job {
        Job::Predict(p) => predict(p, ctx).map(JobOutput::Prediction),
        Job::Explain(e) => explain::explain(e, ctx).map(|x| JobOutput::Explanation(Box::new(x))),
    }
}

fn predict(job: &PredictJob, ctx: &mut Context) -> Result<Prediction, PipelineError> {
    (ctx.progress)(0, job.slices.len(), "loading model");
    let (model, note) = ctx.cache.get(&job.model, job.device)?;
    if ctx.cancel.is_cancelled() {
        return Err(PipelineError::Cancelled);
    }
    let cancel = ctx.cancel;
    let progress = &mut *ctx.progress;
    let probs = model.predict_slices(&job.volume, &job.slices, |done, total| {
        progress(done, total, "predicting");
        !cancel.is_cancelled()
    })?;
    let probs = probs.ok_or(PipelineError::Cancelled)?;
    let m = &model.manifest;
    Ok(Prediction {
        model_name: m.name.clone(),
        task: m.task,
        classes: m.classes.clone(),
        threshold: m.threshold,
        slices: job.slices.clone(),
        probs,
        notes: note.into_iter().collect(),
    })
}
