//! The worker: one named thread that runs [`Job`]s in order, reports [`Event`]s tagged with the job id,
//! honours cancellation between units of work, and keeps loaded models in a cache so that a model loads
//! once per session. The GUI polls [`Worker::try_recv`] each frame and never blocks; the CLI may block on
//! [`Worker::recv`].

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{run_job, CancelToken, Context, Event, Job, JobId, ModelCache};

enum Msg {
    Run(JobId, Job, CancelToken),
    Shutdown,
}

/// Handle to the worker thread. Dropping it asks the thread to stop after the current job and joins it.
pub struct Worker {
    jobs: Sender<Msg>,
    events: Receiver<Event>,
    cancels: HashMap<JobId, CancelToken>,
    /// Failures noticed on this side (the thread is gone), delivered before the channel's events.
    local: std::collections::VecDeque<Event>,
    next_id: u64,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker thread ("radlens-worker").
    pub fn spawn() -> std::io::Result<Worker> {
        let (job_tx, job_rx) = mpsc::channel::<Msg>();
        let (event_tx, event_rx) = mpsc::channel::<Event>();
        let thread = std::thread::Builder::new().name("radlens-worker".into()).spawn(move || {
            let mut cache = ModelCache::default();
            while let Ok(Msg::Run(id, job, cancel)) = job_rx.recv() {
                if cancel.is_cancelled() {
                    let _ = event_tx.send(Event::Cancelled { id });
                    continue;
                }
                let _ = event_tx.send(Event::Started { id });
                let tx = event_tx.clone();
                let mut progress = move |done: usize, total: usize, message: &str| {
                    let _ = tx.send(Event::Progress { id, done, total, message: message.to_string() });
                };
                let mut ctx = Context { cancel: &cancel, progress: &mut progress, cache: &mut cache };
                // A panic inside a job must not take the worker (and the window) down with it.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_job(&job, &mut ctx)));
                let event = match outcome {
                    Ok(Ok(output)) => Event::Finished { id, output: Box::new(output) },
                    Ok(Err(super::PipelineError::Cancelled)) => Event::Cancelled { id },
                    Ok(Err(e)) => Event::Failed { id, error: e.to_string() },
                    Err(_) => Event::Failed { id, error: "internal error: the job panicked".into() },
                };
                if event_tx.send(event).is_err() {
                    break; // nobody listens any more
                }
            }
        })?;
        Ok(Worker {
            jobs: job_tx,
            events: event_rx,
            cancels: HashMap::new(),
            local: Default::default(),
            next_id: 1,
            thread: Some(thread),
        })
    }

    /// Queues a job; returns its id (events carry it).
    pub fn submit(&mut self, job: Job) -> JobId {
        let id = JobId(self.next_id);
        self.next_id += 1;
        let cancel = CancelToken::default();
        self.cancels.insert(id, cancel.clone());
        if self.jobs.send(Msg::Run(id, job, cancel)).is_err() {
            // The thread is gone; report it as a failed job rather than losing the request.
            self.cancels.remove(&id);
            self.local.push_back(Event::Failed { id, error: "the worker thread has stopped".into() });
        }
        id
    }

    /// Asks a queued or running job to stop; it ends with `Event::Cancelled`.
    pub fn cancel(&mut self, id: JobId) {
        if let Some(c) = self.cancels.get(&id) {
            c.cancel();
        }
    }

    /// Cancels every job not yet finished.
    pub fn cancel_all(&mut self) {
        for c in self.cancels.values() {
            c.cancel();
        }
    }

    /// The next event if one is ready (never blocks).
    pub fn try_recv(&mut self) -> Option<Event> {
        if let Some(e) = self.local.pop_front() {
            return Some(e);
        }
        let e = self.events.try_recv().ok()?;
        self.forget_if_done(&e);
        Some(e)
    }

    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Event> {
        if let Some(e) = self.local.pop_front() {
            return Some(e);
        }
        match self.events.recv_timeout(timeout) {
            Ok(e) => {
                self.forget_if_done(&e);
                Some(e)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    fn forget_if_done(&mut self, e: &Event) {
        if e.is_terminal() {
            self.cancels.remove(&e.id());
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.cancel_all();
        let _ = self.jobs.send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
