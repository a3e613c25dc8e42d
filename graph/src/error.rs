//! The crate's error type.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The bytes are not a graph file this version reads.
    #[error("not a model graph file: {0}")]
    Format(String),
    /// A node's op has no entry in [`crate::OpSpec`] (or one of its options has none).
    #[error("node {node:?}: op {op} is not supported by the graph format")]
    Unsupported { node: String, op: String },
    /// tract refused the graph; its whole context chain.
    #[error("tract: {0}")]
    Tract(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn format(message: impl Into<String>) -> Self {
        Error::Format(message.into())
    }

    /// Keeps the `anyhow` chain tract reports, which does not implement `std::error::Error`.
    pub(crate) fn tract(e: impl std::fmt::Display) -> Self {
        Error::Tract(format!("{e:#}"))
    }
}
