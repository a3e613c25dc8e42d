//! What an analysis returns. Plain serialisable structs: the wasm layer hands them to JavaScript
//! through serde-wasm-bindgen (and take them back, for `verify` and `Tracker`), the native CLI
//! prints them as JSON.

use serde::{Deserialize, Serialize};

use crate::detect::KEYPOINTS;
use crate::estimate::Estimate;

/// All faces found in one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Size of the analysed image, in pixels; all `*_px` values refer to it.
    pub width: u32,
    pub height: u32,
    /// Faces in reading order (left to right).
    pub faces: Vec<Face>,
}

/// One face.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// `[x, y, width, height]` in image pixels (may extend past the image edge).
    pub box_px: [f32; 4],
    /// The same box as fractions of the image width and height, clamped to 0-1.
    pub box_norm: [f32; 4],
    /// Detector confidence in [0, 1].
    pub score: f32,
    /// Image-left eye, image-right eye, nose tip, image-left and image-right mouth corners, in
    /// pixels.
    pub keypoints: [[f32; 2]; KEYPOINTS],
    /// Age and gender; `None` when no classifier is loaded or the face is too small to judge.
    pub estimate: Option<Estimate>,
    pub quality: Quality,
}

/// Why an estimate may be unreliable.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Face smaller than `Options::min_eye_distance` (see there): too few pixels for an estimate.
    pub too_small: bool,
    /// Crop sharpness below `Options::min_sharpness`.
    pub blurry: bool,
    /// Box reaches past the image edge: the face is cut off.
    pub cut_off: bool,
    /// Distance between the eyes, in image pixels.
    pub eye_distance: f32,
    /// Variance of the Laplacian of the grey 64x64 crop (higher is sharper).
    pub sharpness: f32,
}
