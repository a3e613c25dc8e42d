//! agegender: face detection, alignment and age/gender classification.

pub mod estimate;
pub mod preprocess;
