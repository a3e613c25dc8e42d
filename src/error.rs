//! The crate's one error type. Everything that can fail on user input (image bytes, buffer sizes,
//! model files) returns it instead of panicking.

/// Errors from decoding, detection and classification.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image has a zero width or height.
    #[error("image is empty ({width}x{height})")]
    EmptyImage { width: u32, height: u32 },

    /// The image is larger than we are willing to allocate for.
    #[error("image is too large ({width}x{height}); the limit is {max_side} px per side")]
    ImageTooLarge {
        width: u32,
        height: u32,
        max_side: u32,
    },

    /// An RGBA buffer whose length does not match its stated size.
    #[error("RGBA buffer has {got} bytes, expected {expected} for {width}x{height}")]
    BufferLength {
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },

    /// An empty file or buffer.
    #[error("the file is empty")]
    EmptyFile,

    /// The bytes are in no image format we read (text, PDF, SVG, HEIC...).
    #[error("not an image in a supported format (JPEG, PNG, GIF, WebP or BMP)")]
    UnknownFormat,

    /// An analysis option that is not a number (NaN, e.g. from JavaScript) or is infinite.
    #[error("option {name} must be a finite number, got {value}")]
    InvalidOption { name: &'static str, value: f32 },

    /// The bytes are not an image we can decode (or exceed the decoder's limits).
    #[error("cannot decode image: {0}")]
    Decode(#[from] image::ImageError),

    /// Reading an image file failed.
    #[error("cannot read image: {0}")]
    Io(#[from] std::io::Error),

    /// A model could not be loaded or run. tract reports `anyhow` errors, which do not implement
    /// `std::error::Error`, so the full chain is kept as text.
    #[error("{model} model: {message}")]
    Model {
        model: &'static str,
        message: String,
    },

    /// A classifier input that is not the square crop size the model takes.
    #[error("face crop is {width}x{height}, expected {expected}x{expected}")]
    CropSize {
        width: u32,
        height: u32,
        expected: u32,
    },

    /// Classifier crops handed over packed ([`crate::Pipeline::classify_packed`]) that are not
    /// a whole number of crops.
    #[error("packed crops: {bytes} bytes is not a whole number of {side}x{side} RGB crops")]
    PackedCrops { bytes: usize, side: u32 },

    /// The model card is not valid JSON or lacks the calibration.
    #[error("model card: {0}")]
    ModelCard(#[from] serde_json::Error),

    /// A model ran but its outputs do not have the expected shape.
    #[error("{model} model: unexpected output: {message}")]
    ModelOutput {
        model: &'static str,
        message: String,
    },
}

impl Error {
    /// Wraps a tract error, keeping its whole context chain.
    pub(crate) fn model(model: &'static str, e: impl std::fmt::Display) -> Self {
        Error::Model {
            model,
            message: format!("{e:#}"),
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
