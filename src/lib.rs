//! agegender: face detection, alignment and age/gender classification.

pub mod estimate;
pub mod preprocess;

pub mod align;
pub mod classify;
pub mod decode;
pub mod detect;
pub mod error;
mod model;
pub mod pipeline;
pub mod results;
pub mod track;
pub mod verify;

pub use classify::{Classifier, Mirror};
pub use detect::{DetectOptions, Detection, Detector};
pub use error::{Error, Result};
pub use pipeline::{Options, Pipeline};
pub use results::{Analysis, Face, Quality};

pub mod embedded;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
