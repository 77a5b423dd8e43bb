//! `radlens view PATH [--mask GT] [--model M]`: open a study in the viewer window. `main` starts the
//! window (the `app` room sits beside `cli`, so `cli` does not call it); this file holds the flags.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct ViewArgs {
    /// A DICOM file or series folder, NIfTI (.nii / .nii.gz), or PNG/BMP/JPEG/TIFF image.
    pub path: PathBuf,
    /// A ground-truth mask on the same grid (PNG / NIfTI / .npy), shown green.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// A built-in model name, a model.toml, or a folder holding one; default: the last used model,
    /// else the first built-in one.
    #[arg(long)]
    pub model: Option<String>,
}
