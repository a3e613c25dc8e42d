//! Our models as tract-core graphs in a small file of their own, so the page's module links
//! tract-core alone: no ONNX front end (tract-onnx, tract-hir, protobuf) and no NNEF registry,
//! which together kept every op tract knows alive in the wasm (`bench/ANALYSIS.md`).
//!
//! The ONNX files in `model/` stay the source of truth. Natively (feature `onnx`) a file is read
//! by tract-onnx, typed and decluttered, and the decluttered graph is written here ([`from_typed`],
//! [`onnx::from_onnx`]); `agegender` writes the embedded models this way into `model/*.graph`. Loading
//! ([`Graph::to_typed`]) rebuilds the same `TypedModel` with tract-core's constructors, ready for
//! `into_optimized`. Dimensions are kept as expressions, so the detector stays one graph for every
//! canvas size ([`Graph::to_typed`] then `TypedModel::set_symbols`).

mod error;
mod file;
#[cfg(feature = "onnx")]
pub mod onnx;
mod ops;
mod tensor;

pub use error::{Error, Result};
pub use file::{Graph, Node, Output, Wire};
pub use ops::OpSpec;
pub use tensor::{Encoding, TensorInfo};

use tract_core::internal::*;

/// How constant tensors are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weights {
    /// As they are, except f32 tensors that are exactly int8 values times a scale per output
    /// channel (the classifier's int8 export): those are stored as the int8 values and scales
    /// and come back bit for bit.
    #[default]
    Exact,
    /// Also quantise the other f32 weights (rank 2 and up) to int8 with a symmetric scale per
    /// output channel: a quarter of the bytes, outputs within the quantisation error.
    Int8,
    /// As [`Weights::Int8`] on the grid of this many bits (2..=8), still stored as int8 values:
    /// the same bytes raw, fewer gzipped.
    Bits(u32),
}

/// The top level of the symmetric `bits`-bit grid (2..=8): the grid is -levels..=levels times a
/// channel's scale. [`Weights::Bits`] quantises on it; the trainer's export and its
/// quantisation-aware training use it too, so all three mean the same grid.
pub fn grid_levels(bits: u32) -> f32 {
    ((1i32 << (bits.clamp(2, 8) - 1)) - 1) as f32
}

/// Writes a (decluttered) typed model as a [`Graph`]: the nodes its outputs need, in evaluation
/// order. Fails on an op the file format does not know ([`OpSpec`] lists them).
pub fn from_typed(model: &TypedModel, weights: Weights) -> Result<Graph> {
    file::from_typed(model, weights)
}
