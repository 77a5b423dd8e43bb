//! `radlens annotate QUEUE [--annotator NAME] [--status]`: the annotation review window, or (with
//! `--status`) the review progress table, printed without opening any image.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::session::review::{Queue, ReviewState, Status};

#[derive(Debug, Args)]
pub struct AnnotateArgs {
    /// A folder with images/ and masks/ (or infection_masks/, infection_binary/), or a CSV/TSV list of
    /// `image,mask` lines (a mask may be a NIfTI label map for a volume).
    pub queue: PathBuf,
    /// Who is reviewing; written in the audit log (default: $USER).
    #[arg(long)]
    pub annotator: Option<String>,
    /// Print the review progress table (case, status, revision, comment) instead of opening the window.
    #[arg(long)]
    pub status: bool,
}

pub fn run(args: &AnnotateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if args.status {
        return print_status(args, out);
    }
    let annotator = args
        .annotator
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "unknown".into());
    // Bad queues are reported before any window opens.
    Queue::open(&args.queue)?;
    crate::ui::annotate::run_window(&args.queue, &annotator).map_err(CliError::Failed)
}

fn print_status(args: &AnnotateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let queue = Queue::open(&args.queue)?;
    let state = ReviewState::load(&queue.state_path)?;
    writeln!(out, "{:>4}  {:<32} {:<11} {:<28} comment", "#", "case", "status", "revision")?;
    for (i, case) in queue.cases.iter().enumerate() {
        let r = state.cases.get(&case.id).cloned().unwrap_or_default();
        let line = format!(
            "{:>4}  {:<32} {:<11} {:<28} {}",
            i + 1,
            case.id,
            r.status.name(),
            r.revision.as_deref().unwrap_or("-"),
            r.comment.replace('\n', " ")
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    let count = |s: Status| queue.cases.iter().filter(|c| state.status(&c.id) == s).count();
    let (done, total) = state.progress(&queue);
    writeln!(
        out,
        "reviewed {done} of {total} (accepted {}, rejected {}, needs_fix {}, unreviewed {})",
        count(Status::Accepted),
        count(Status::Rejected),
        count(Status::NeedsFix),
        count(Status::Unreviewed)
    )?;
    for w in &queue.warnings {
        writeln!(out, "note: {w}")?;
    }
    Ok(())
}
