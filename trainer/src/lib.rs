//! The agegender trainer as a library: data loading, the network, training, ONNX export and
//! import, evaluation, the model card, and the command-line subcommands built on them. The
//! `trainer` binary (`main.rs`) parses the command line and calls [`commands::Cli::run`].
//!
//! Dependencies run one way: `model` -> `portable` -> `onnx::{write, read}`; `training` builds
//! on the model and the data; `commands` on everything else.

pub mod calibration;
pub mod card;
pub mod commands;
pub mod dataset;
pub mod defaults;
pub mod error;
pub mod evaluate;
pub mod fairface;
pub mod files;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod plots;
pub mod portable;
pub mod training;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;

pub use error::{Error, Result};
