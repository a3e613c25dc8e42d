//! The ONNX file format: writing the portable weights (`export`) and reading them back
//! (`train --init model.onnx`).

pub mod read;
pub mod write;
