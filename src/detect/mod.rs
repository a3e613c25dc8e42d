//! Face detection with MediaPipe BlazeFace (the 256x256 "back camera" model, which is made for
//! faces that fill little of the frame) run by tract, over a pyramid of windows (see [`tiles`]),
//! merged by weighted non-max suppression (see [`nms`]).
//!
//! Coordinates are image pixels with continuous edges: pixel `i` spans `[i, i + 1)`.

pub mod anchors;
pub mod nms;
mod onnx;
pub use onnx::patch_constant_of_shape;
pub mod tiles;

use image::{RgbImage, imageops};
use serde::Serialize;
use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use anchors::{Anchor, KEYPOINTS, VALUES_PER_ANCHOR};

/// The embedded detector: BlazeFace back-camera model, 256x256 (see `model/DETECTOR.md`).
pub static BLAZEFACE_BACK_256: &[u8] =
    include_bytes!("../../model/face_detection_back_256x256_barracuda.onnx");

/// Index of the image-left eye (the subject's right eye) in [`Detection::keypoints`].
pub const LEFT_EYE: usize = 0;
/// Index of the image-right eye.
pub const RIGHT_EYE: usize = 1;

/// One detected face.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Detection {
    /// Detector confidence in [0, 1].
    pub score: f32,
    /// `[x, y, width, height]` in image pixels.
    pub bbox: [f32; 4],
    /// Image-left eye, image-right eye, nose, mouth, image-left ear, image-right ear.
    pub keypoints: [[f32; 2]; KEYPOINTS],
}

impl Detection {
    /// Distance between the eye keypoints, in pixels: the face's scale.
    pub fn eye_distance(&self) -> f32 {
        let (l, r) = (self.keypoints[LEFT_EYE], self.keypoints[RIGHT_EYE]);
        (r[0] - l[0]).hypot(r[1] - l[1])
    }
}

/// Detection settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DetectOptions {
    /// Minimum confidence of a face on its second look (see `Detector::verify`). Candidates
    /// from the first look need `CANDIDATE_SCORE`.
    pub score_threshold: f32,
    /// Overlap above which candidates are merged into one face.
    pub iou_threshold: f32,
    /// Smallest face width, in image pixels, worth searching for with finer windows.
    pub min_face: f32,
    /// Upper bound on model runs per image (each costs one inference).
    pub max_windows: usize,
}

impl Default for DetectOptions {
    fn default() -> Self {
        Self {
            score_threshold: 0.7,
            iou_threshold: 0.3,
            min_face: 24.0,
            max_windows: 40,
        }
    }
}

/// Pyramid levels reduced at least this much are box-averaged (see `Detector::detect`).
const THUMBNAIL_RATIO: u32 = 3;

/// Minimum first-look score for a candidate to get a second look.
pub const CANDIDATE_SCORE: f32 = 0.5;
/// Face box size in the verification window, as a fraction of its side. Small, with context
/// around it, as the back-camera model was trained: at 0.25 real faces scored >= 0.78 on the
/// sample photos and false alarms (a cat, hands) <= 0.66; at 0.4 they overlapped.
const VERIFY_FACE_SIZE: f32 = 0.25;
/// Candidates below this score are ignored when verifying.
const VERIFY_MIN_SCORE: f32 = 0.3;
/// A re-detection must overlap the expected box this much...
const VERIFY_MIN_IOU: f32 = 0.4;
/// ...and have its eyes within this angle (radians, 20 degrees) of level.
const VERIFY_MAX_TILT: f32 = 0.35;

/// A loaded detector; build once, run on many images.
pub struct Detector {
    plan: onnx::Plan,
    input: u32,
    anchors: Vec<Anchor>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("input", &self.input)
            .finish()
    }
}

impl Detector {
    /// The embedded BlazeFace model.
    pub fn new() -> Result<Self> {
        Self::from_bytes(BLAZEFACE_BACK_256)
    }

    /// Loads a BlazeFace ONNX model (NHWC RGB input in [-1, 1], 896 anchors).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let plan = onnx::load(bytes)?;
        let fact = plan
            .model()
            .input_fact(0)
            .map_err(|e| Error::model("detector", e))?;
        let shape: Option<Vec<usize>> = fact.shape.as_concrete().map(|s| s.to_vec());
        let input = match shape.as_deref() {
            Some([1, h, w, 3]) if h == w && *h >= 32 => *h as u32,
            other => {
                return Err(Error::Model {
                    model: "detector",
                    message: format!("expected a [1, S, S, 3] input, got {other:?}"),
                });
            }
        };
        // Both BlazeFace short-range models (128 front, 256 back) use these 896 anchors.
        let anchors = anchors::grid(16, 2)
            .into_iter()
            .chain(anchors::grid(8, 6))
            .collect();
        Ok(Self {
            plan,
            input,
            anchors,
        })
    }

    /// Side of the model's square input.
    pub fn input_size(&self) -> u32 {
        self.input
    }

    /// Finds faces in `img`, best score first.
    pub fn detect(&self, img: &RgbImage, opts: &DetectOptions) -> Result<Vec<Detection>> {
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return Err(Error::EmptyImage {
                width: w,
                height: h,
            });
        }
        let levels = tiles::plan(w, h, self.input, opts.min_face, opts.max_windows.max(1));
        let mut found = Vec::new();
        for level in &levels {
            let scaled = if (level.width, level.height) == (w, h) {
                std::borrow::Cow::Borrowed(img)
            } else if level.width * THUMBNAIL_RATIO <= w && level.height * THUMBNAIL_RATIO <= h {
                // Box averaging for large reductions: a Triangle resize costs more per output
                // pixel the larger the reduction (the whole-image level was most of the 8-15% of
                // detection time spent resizing); at milder ones its finer filtering kept a
                // borderline face in `stock-group-1.jpg` that box averaging lost.
                std::borrow::Cow::Owned(imageops::thumbnail(img, level.width, level.height))
            } else {
                let filter = imageops::FilterType::Triangle;
                std::borrow::Cow::Owned(imageops::resize(img, level.width, level.height, filter))
            };
            let (fx, fy) = level.factors(w, h);
            for &[x0, y0] in &level.windows {
                for raw in self.run_window(&scaled, x0, y0, CANDIDATE_SCORE)? {
                    let n = self.input as f32;
                    let to_img =
                        |p: [f32; 2]| [(x0 as f32 + p[0] * n) / fx, (y0 as f32 + p[1] * n) / fy];
                    let (bx0, by0) = (raw.cx - raw.w / 2.0, raw.cy - raw.h / 2.0);
                    let (bx1, by1) = (raw.cx + raw.w / 2.0, raw.cy + raw.h / 2.0);
                    // A face cut by a window edge inside the image is whole in a neighbouring
                    // window (they overlap) or on a coarser level: drop the partial view.
                    let cut = |lo: f32, hi: f32, origin: u32, len: u32| {
                        let (a, b) = (origin as f32 + lo * n, origin as f32 + hi * n);
                        (origin > 0 && a < origin as f32 + 1.0)
                            || (origin + self.input < len && b > (origin + self.input) as f32 - 1.0)
                    };
                    if level.windows.len() > 1
                        && (cut(bx0, bx1, x0, level.width) || cut(by0, by1, y0, level.height))
                    {
                        continue;
                    }
                    let [x, y] = to_img([bx0, by0]);
                    let [x1, y1] = to_img([bx1, by1]);
                    found.push(Detection {
                        score: raw.score,
                        bbox: [x, y, x1 - x, y1 - y],
                        keypoints: raw.keypoints.map(to_img),
                    });
                }
            }
        }
        let merged = nms::weighted(found, opts.iou_threshold);
        let mut verified = Vec::with_capacity(merged.len());
        for det in &merged {
            if let Some(v) = self.verify(img, det)?
                && v.score >= opts.score_threshold
            {
                verified.push(v);
            }
        }
        Ok(nms::weighted(verified, opts.iou_threshold))
    }

    /// Second look at a candidate: re-runs the model on a window where the candidate is centred,
    /// upright (eyes level) and at the size the model likes best. A real face is found again at
    /// that place, size and angle with a high score; most false alarms (animals, hands, patterns
    /// seen at the wrong scale) are not. Returns the re-detection mapped back to the image, with
    /// the score-weighted mean of the consistent candidates' boxes and keypoints (steadier than
    /// the first look's), or `None`.
    fn verify(&self, img: &RgbImage, det: &Detection) -> Result<Option<Detection>> {
        let n = self.input as f32;
        let (l, r) = (det.keypoints[LEFT_EYE], det.keypoints[RIGHT_EYE]);
        let size = det.bbox[2].max(det.bbox[3]);
        if size.is_nan() || size <= 1.0 {
            return Ok(None);
        }
        let angle = (r[1] - l[1]).atan2(r[0] - l[0]);
        // Window-to-image map in edge coordinates: x = a*u - b*v + tx, y = b*u + a*v + ty.
        let s = size / (VERIFY_FACE_SIZE * n);
        let (a, b) = (s * angle.cos(), s * angle.sin());
        let (cx, cy) = (
            det.bbox[0] + det.bbox[2] / 2.0,
            det.bbox[1] + det.bbox[3] / 2.0,
        );
        let c = n / 2.0;
        let (tx, ty) = (cx - (a * c - b * c), cy - (b * c + a * c));
        // `warp` works in pixel-centre coordinates.
        let m = crate::preprocess::Similarity {
            a,
            b,
            tx: tx + 0.5 * (a - b) - 0.5,
            ty: ty + 0.5 * (a + b) - 0.5,
        };
        let window = crate::preprocess::warp(img, &m, self.input);
        let to_img = |p: [f32; 2]| {
            let (u, v) = (p[0] * n, p[1] * n);
            [a * u - b * v + tx, b * u + a * v + ty]
        };
        let expected = {
            let half = VERIFY_FACE_SIZE / 2.0;
            [0.5 - half, 0.5 - half, VERIFY_FACE_SIZE, VERIFY_FACE_SIZE]
        };
        let mut group = Vec::new();
        for raw in self.run_window(&window, 0, 0, VERIFY_MIN_SCORE)? {
            let bbox = [raw.cx - raw.w / 2.0, raw.cy - raw.h / 2.0, raw.w, raw.h];
            let (kl, kr) = (raw.keypoints[LEFT_EYE], raw.keypoints[RIGHT_EYE]);
            let tilt = (kr[1] - kl[1]).atan2(kr[0] - kl[0]).abs();
            if nms::iou(&bbox, &expected) >= VERIFY_MIN_IOU && tilt <= VERIFY_MAX_TILT {
                let centre = to_img([raw.cx, raw.cy]);
                let (w, h) = (raw.w * n * s, raw.h * n * s);
                group.push(Detection {
                    score: raw.score,
                    bbox: [centre[0] - w / 2.0, centre[1] - h / 2.0, w, h],
                    keypoints: raw.keypoints.map(to_img),
                });
            }
        }
        // All consistent candidates overlap the expected box, so they merge into one.
        Ok(nms::weighted(group, 0.0).into_iter().next())
    }

    /// Runs the model on the `input`-sized window at `(x0, y0)` of `img` (black beyond its edges)
    /// and returns the candidates scoring at least `threshold`, in normalised window coordinates.
    fn run_window(
        &self,
        img: &RgbImage,
        x0: u32,
        y0: u32,
        threshold: f32,
    ) -> Result<Vec<anchors::Raw>> {
        let n = self.input as usize;
        // Black is -1 after normalisation.
        let mut data = vec![-1.0f32; n * n * 3];
        let (w, h) = img.dimensions();
        let raw = img.as_raw();
        let (cw, ch) = (
            (w.saturating_sub(x0) as usize).min(n),
            (h.saturating_sub(y0) as usize).min(n),
        );
        for v in 0..ch {
            let src = ((y0 as usize + v) * w as usize + x0 as usize) * 3;
            let dst = v * n * 3;
            for (d, s) in data[dst..dst + cw * 3]
                .iter_mut()
                .zip(&raw[src..src + cw * 3])
            {
                *d = *s as f32 / 127.5 - 1.0;
            }
        }
        let tensor =
            Tensor::from_shape(&[1, n, n, 3], &data).map_err(|e| Error::model("detector", e))?;
        let outputs = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| Error::model("detector", e))?;
        let (scores, boxes) = split_outputs(&outputs, self.anchors.len())?;
        let mut out = Vec::new();
        for (i, (&logit, anchor)) in scores.iter().zip(&self.anchors).enumerate() {
            // The 256 model emits huge logits; sigmoid clamps them.
            let score = crate::estimate::sigmoid(logit);
            if score >= threshold {
                let values = &boxes[i * VALUES_PER_ANCHOR..(i + 1) * VALUES_PER_ANCHOR];
                out.push(anchors::decode(*anchor, values, score, self.input as f32));
            }
        }
        Ok(out)
    }
}

/// Gathers the score logits and regression values of all anchors from the model outputs. The
/// Barracuda export has one score and one regression output per feature map (16x16 first); a
/// merged export has one of each: both are accepted, ordered by anchor count, largest first.
fn split_outputs(outputs: &[TValue], anchors: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let bad = |message: String| Error::ModelOutput {
        model: "detector",
        message,
    };
    let mut scores: Vec<&[f32]> = Vec::new();
    let mut boxes: Vec<&[f32]> = Vec::new();
    for t in outputs {
        let values = t
            .try_as_plain_ram()
            .and_then(|p| p.as_slice::<f32>())
            .map_err(|e| bad(format!("{e:#}")))?;
        match t.shape().last() {
            Some(&VALUES_PER_ANCHOR) => boxes.push(values),
            Some(1) => scores.push(values),
            _ => return Err(bad(format!("output of shape {:?}", t.shape()))),
        }
    }
    scores.sort_by_key(|s| std::cmp::Reverse(s.len()));
    boxes.sort_by_key(|b| std::cmp::Reverse(b.len()));
    let (scores, boxes) = (scores.concat(), boxes.concat());
    if scores.len() != anchors || boxes.len() != anchors * VALUES_PER_ANCHOR {
        return Err(bad(format!(
            "{} scores and {} box values for {anchors} anchors",
            scores.len(),
            boxes.len()
        )));
    }
    Ok((scores, boxes))
}
