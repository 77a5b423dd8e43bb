//! Training mode for BatchNorm: while a [`TrainMode`] guard is alive on this thread, `layers::bn` uses
//! batch statistics and updates the running statistics with momentum 0.1 (PyTorch's `model.train()`).
//! Everything else (inference, XAI) runs with the flag off, the default.

use std::cell::Cell;

thread_local! {
    static TRAINING: Cell<bool> = const { Cell::new(false) };
}

/// True while a [`TrainMode`] guard with `on = true` is alive on this thread.
pub fn is_training() -> bool {
    TRAINING.with(|t| t.get())
}

/// Sets the flag for its lifetime and restores the previous value when dropped.
#[must_use = "the mode is reset when the guard is dropped"]
pub struct TrainMode {
    previous: bool,
}

impl TrainMode {
    pub fn enter(on: bool) -> Self {
        let previous = TRAINING.with(|t| t.replace(on));
        TrainMode { previous }
    }
}

impl Drop for TrainMode {
    fn drop(&mut self) {
        TRAINING.with(|t| t.set(self.previous));
    }
}
