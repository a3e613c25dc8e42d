//! The library's error type. Each loader keeps its own error (`DatasetError`, `ImportError`,
//! `FixError`, `TeacherError`); this one gathers them with the trainer's own failures.

use std::path::PathBuf;

use crate::dataset::DatasetError;
use crate::onnx::read::ImportError;
use crate::training::distill::TeacherError;
use crate::training::label_fixes::FixError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    LabelFixes(#[from] FixError),
    #[error(transparent)]
    Teachers(#[from] TeacherError),
    /// tract, or the library's decoding and classification.
    #[error(transparent)]
    Classifier(#[from] agegender::Error),
    /// A burn record (model or optimiser weights) that could not be saved or loaded.
    #[error("{action} {}: {detail}", path.display())]
    Record {
        action: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("plotting: {0}")]
    Plot(String),
    /// The `--init` weights could not be used.
    #[error("--init {}: {source}", path.display())]
    Init { path: PathBuf, source: Box<Error> },
    #[error("loss became {loss} at epoch {epoch} step {step}")]
    Diverged {
        loss: f32,
        epoch: usize,
        step: usize,
    },
    #[error(
        "the exported model disagrees with the trained one in tract (max diff {diff}); nothing written"
    )]
    ExportMismatch { diff: f32 },
    /// Options or a run directory the trainer refuses, with the reason.
    #[error("{0}")]
    Refused(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
