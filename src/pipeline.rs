//! The whole path from an image to faces with estimates: detect, align, check quality, classify.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::align;
use crate::classify::{Classifier, Mirror};
use crate::decode::{self, WORK_SIDE};
use crate::detect::{DetectOptions, Detection, Detector, LEFT_EYE, RIGHT_EYE};
use crate::error::{Error, Result};
use crate::estimate::{Calibration, Estimate};
use crate::preprocess;
use crate::results::{Analysis, Face, Quality};

/// Analysis settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    pub detect: DetectOptions,
    /// Below this eye distance (pixels of the analysed image after any downscale to `WORK_SIDE`;
    /// for faces turned aside, the distance a frontal face of that size would have) a face is
    /// flagged `too_small` and not classified.
    pub min_eye_distance: f32,
    /// Below this crop sharpness a face is flagged `blurry`.
    pub min_sharpness: f32,
    /// At most this many faces (the most confident) are reported.
    pub max_faces: usize,
    /// Whether each face is also classified mirrored (see [`Mirror`]).
    pub mirror: Mirror,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            detect: DetectOptions::default(),
            min_eye_distance: 12.0,
            min_sharpness: MIN_SHARPNESS,
            max_faces: 64,
            mirror: Mirror::default(),
        }
    }
}

impl Options {
    /// Rejects NaN and infinite thresholds (the page passes options from JavaScript, where
    /// `NaN` is a number): they would silently turn every comparison false.
    pub fn validate(&self) -> Result<()> {
        self.detect.validate()?;
        for (name, value) in [
            ("min_eye_distance", self.min_eye_distance),
            ("min_sharpness", self.min_sharpness),
        ] {
            if !value.is_finite() {
                return Err(Error::InvalidOption { name, value });
            }
        }
        Ok(())
    }
}

/// Default blur threshold: the 2nd percentile of the sharpness of UTKFace training crops (83.3
/// over 300 crops with the YuNet template, median 395; `tests/utkface_crops.rs`), so "blurry"
/// means blurrier than nearly everything the classifier learnt on.
pub const MIN_SHARPNESS: f32 = 85.0;

/// Detector and classifier, loaded once.
#[derive(Debug)]
pub struct Pipeline {
    detector: Detector,
    classifier: Option<Classifier>,
}

impl Pipeline {
    /// The embedded detector with the given classifier ONNX bytes.
    pub fn new(classifier_bytes: &[u8]) -> Result<Self> {
        Ok(Self {
            detector: Detector::new()?,
            classifier: Some(Classifier::from_bytes(classifier_bytes)?),
        })
    }

    /// Both models from bytes (tests swap models this way).
    pub fn with_models(detector_bytes: &[u8], classifier_bytes: &[u8]) -> Result<Self> {
        Ok(Self {
            detector: Detector::from_bytes(detector_bytes)?,
            classifier: Some(Classifier::from_bytes(classifier_bytes)?),
        })
    }

    /// Detection only: faces come back with `estimate: None`.
    pub fn detector_only() -> Result<Self> {
        Ok(Self {
            detector: Detector::new()?,
            classifier: None,
        })
    }

    /// Sets the classifier's age-range calibration (from the model card).
    pub fn with_calibration(mut self, calibration: Calibration) -> Self {
        self.classifier = self.classifier.map(|c| c.with_calibration(calibration));
        self
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    pub fn classifier(&self) -> Option<&Classifier> {
        self.classifier.as_ref()
    }

    /// Analyses a row-major RGBA buffer (from the page's canvas).
    pub fn analyze_rgba(
        &self,
        data: &[u8],
        width: u32,
        height: u32,
        opts: &Options,
    ) -> Result<Analysis> {
        self.analyze(&decode::rgba_to_rgb(data, width, height)?, opts)
    }

    /// Finds the faces in `img` and estimates age and gender for each one large enough.
    pub fn analyze(&self, img: &RgbImage, opts: &Options) -> Result<Analysis> {
        let found = self.find(img, opts)?;
        let mirror = opts.mirror;
        self.estimate(found, |_| Some(mirror))
    }

    /// The first half of [`Pipeline::analyze`]: faces found, aligned and checked, in reading
    /// order, without estimates. [`Pipeline::estimate`] classifies them, all or some.
    pub fn find<'a>(&self, img: &'a RgbImage, opts: &Options) -> Result<Found<'a>> {
        opts.validate()?;
        let (width, height) = img.dimensions();
        // Huge photos are analysed downscaled; results are mapped back to `img`'s pixels.
        let (work, k) = decode::fit_within(img, WORK_SIDE);
        let mut dets = self.detector.detect(&work, &opts.detect)?;
        dets.truncate(opts.max_faces);

        let mut found: Vec<(Face, Option<Detection>)> = Vec::with_capacity(dets.len());
        for det in dets {
            // Sharpness thresholds are set on 64-pixel crops, whatever size the classifier takes.
            let sharpness = sharpness(&align::crop(&work, &det, preprocess::INPUT_SIZE));
            // Judged on the pixels actually available: the (possibly downscaled) working image.
            let too_small = align::face_scale(&det) < opts.min_eye_distance;
            let face = to_face(&det, k, width, height, too_small, sharpness, opts);
            found.push((face, (!too_small).then_some(det)));
        }
        found.sort_by(|(a, _), (b, _)| {
            let cx = |f: &Face| f.box_px[0] + f.box_px[2] / 2.0;
            cx(a).total_cmp(&cx(b))
        });
        let (faces, dets) = found.into_iter().unzip();
        Ok(Found {
            analysis: Analysis {
                width,
                height,
                faces,
            },
            work,
            dets,
        })
    }

    /// The second half of [`Pipeline::analyze`]: classifies the found faces for which `view`
    /// (given the face's index) names a [`Mirror`] choice; the others keep `estimate: None`, as
    /// do faces too small to classify and every face without a classifier. The webcam's tracker
    /// classifies only some faces each frame ([`crate::track::Tracker::views`]).
    pub fn estimate(
        &self,
        found: Found<'_>,
        view: impl Fn(usize) -> Option<Mirror>,
    ) -> Result<Analysis> {
        let Found {
            mut analysis,
            work,
            dets,
        } = found;
        let Some(classifier) = &self.classifier else {
            return Ok(analysis);
        };
        // One batch per view, so each model run sees as many faces as it can; crops only for
        // the faces classified (the webcam's frames classify few of their faces).
        for mirror in [Mirror::Average, Mirror::Plain, Mirror::Mirrored] {
            let (ix, batch): (Vec<usize>, Vec<RgbImage>) =
                crops_of(&work, &dets, classifier, |i| view(i) == Some(mirror))
                    .into_iter()
                    .unzip();
            if ix.is_empty() {
                continue;
            }
            for (i, est) in ix
                .into_iter()
                .zip(classifier.classify_with(&batch, mirror)?)
            {
                analysis.faces[i].estimate = Some(est);
            }
        }
        Ok(analysis)
    }

    /// The classifier's input crops of the faces in `found` that [`Pipeline::estimate`] would
    /// classify (all but the faces too small), packed one after another (RGB rows, as
    /// [`RgbImage::as_raw`]), and those faces' indices: the page classifies them in two workers
    /// at once ([`Pipeline::classify_packed`], on any whole crops), for the same estimates as
    /// [`Pipeline::analyze`]. Empty without a classifier.
    pub fn packed_crops(&self, found: &Found<'_>) -> (Vec<usize>, Vec<u8>) {
        let Some(classifier) = &self.classifier else {
            return Default::default();
        };
        let crops = crops_of(&found.work, &found.dets, classifier, |_| true);
        (
            crops.iter().map(|(i, _)| *i).collect(),
            crops.into_iter().flat_map(|(_, c)| c.into_raw()).collect(),
        )
    }

    /// Estimates for crops packed as [`Pipeline::packed_crops`] packs them, in order, as [`Pipeline::estimate`] makes them with `mirror`.
    /// Empty without a classifier.
    pub fn classify_packed(&self, packed: &[u8], mirror: Mirror) -> Result<Vec<Estimate>> {
        let Some(classifier) = &self.classifier else {
            return Ok(Vec::new());
        };
        let side = classifier.input_size();
        let len = side as usize * side as usize * 3;
        if !packed.len().is_multiple_of(len) {
            return Err(Error::PackedCrops {
                bytes: packed.len(),
                side,
            });
        }
        let crops: Vec<RgbImage> = packed
            .chunks_exact(len)
            .filter_map(|c| RgbImage::from_raw(side, side, c.to_vec()))
            .collect();
        classifier.classify_with(&crops, mirror)
    }
}

/// The classifier's input crop of each face of `dets` (found in `work`) that `keep` takes by
/// index, faces too small to classify (`None`) left out: shared by [`Pipeline::estimate`] and
/// [`Pipeline::packed_crops`], so both crop alike.
fn crops_of(
    work: &RgbImage,
    dets: &[Option<Detection>],
    classifier: &Classifier,
    keep: impl Fn(usize) -> bool,
) -> Vec<(usize, RgbImage)> {
    dets.iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .filter_map(|(i, det)| Some((i, align::crop(work, det.as_ref()?, classifier.input_size()))))
        .collect()
}

/// Faces found in an image, not yet classified ([`Pipeline::find`]).
#[derive(Clone, Debug)]
pub struct Found<'a> {
    /// The faces in reading order, `estimate: None`.
    pub analysis: Analysis,
    /// The image the faces were detected in (the input, or a downscaled copy of a huge one).
    work: std::borrow::Cow<'a, RgbImage>,
    /// Each face's detection in `work`'s pixels; `None` for faces too small to classify.
    dets: Vec<Option<Detection>>,
}

fn to_face(
    det: &Detection,
    k: f32,
    width: u32,
    height: u32,
    too_small: bool,
    sharpness: f32,
    opts: &Options,
) -> Face {
    let b = det.bbox.map(|v| v * k);
    let (w, h) = (width as f32, height as f32);
    let (x0, y0) = ((b[0] / w).clamp(0.0, 1.0), (b[1] / h).clamp(0.0, 1.0));
    let (x1, y1) = (
        ((b[0] + b[2]) / w).clamp(0.0, 1.0),
        ((b[1] + b[3]) / h).clamp(0.0, 1.0),
    );
    let keypoints = det.keypoints.map(|p| [p[0] * k, p[1] * k]);
    let (l, r) = (keypoints[LEFT_EYE], keypoints[RIGHT_EYE]);
    Face {
        box_px: b,
        box_norm: [x0, y0, x1 - x0, y1 - y0],
        score: det.score,
        keypoints,
        estimate: None,
        quality: Quality {
            too_small,
            blurry: sharpness < opts.min_sharpness,
            cut_off: b[0] < 0.0 || b[1] < 0.0 || b[0] + b[2] > w || b[1] + b[3] > h,
            eye_distance: (r[0] - l[0]).hypot(r[1] - l[1]),
            sharpness,
        },
    }
}

/// Variance of the 4-neighbour Laplacian of the grey image: low when the crop has no edges.
pub fn sharpness(img: &RgbImage) -> f32 {
    let (w, h) = img.dimensions();
    if w < 3 || h < 3 {
        return 0.0;
    }
    let grey: Vec<f32> = img
        .pixels()
        .map(|p| 0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32)
        .collect();
    let (w, h) = (w as usize, h as usize);
    let mut lap = Vec::with_capacity((w - 2) * (h - 2));
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            lap.push(grey[i - 1] + grey[i + 1] + grey[i - w] + grey[i + w] - 4.0 * grey[i]);
        }
    }
    let n = lap.len() as f32;
    let mean = lap.iter().sum::<f32>() / n;
    lap.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_are_reported_in_input_pixels_and_clamped_fractions() {
        let mut keypoints = [[0.0; 2]; crate::detect::KEYPOINTS];
        keypoints[LEFT_EYE] = [10.0, 50.0];
        keypoints[RIGHT_EYE] = [40.0, 50.0];
        let det = Detection {
            score: 0.9,
            bbox: [-10.0, 20.0, 100.0, 100.0],
            keypoints,
        };
        // Detected on a working copy downscaled 2x from a 400x300 input.
        let f = to_face(&det, 2.0, 400, 300, false, 500.0, &Options::default());
        assert_eq!(f.box_px, [-20.0, 40.0, 200.0, 200.0]);
        let expected = [0.0, 40.0 / 300.0, 180.0 / 400.0, 200.0 / 300.0];
        for (a, b) in f.box_norm.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{:?}", f.box_norm);
        }
        assert_eq!(f.keypoints[RIGHT_EYE], [80.0, 100.0]);
        assert!((f.quality.eye_distance - 60.0).abs() < 1e-4);
        assert!(f.quality.cut_off && !f.quality.blurry && f.estimate.is_none());
    }

    // Reads a photo file and loads a toy ONNX model: native only (wasm-pack test builds the unit
    // tests for wasm32, where the module loads graph files alone).
    #[cfg(all(not(target_arch = "wasm32"), feature = "onnx"))]
    #[test]
    fn toy_classifier_fills_estimates_on_a_photo() {
        let Some(root) = std::env::var_os("AGEGENDER_DATA") else {
            println!("AGEGENDER_DATA is not set: skipping");
            return;
        };
        let path = std::path::Path::new(&root).join("photos/stock-group-1.jpg");
        let img = decode::open(path).unwrap();
        // Not the default size: the pipeline must crop at the size the classifier takes.
        let toy = crate::classify::tests::toy_model_of_size(None, Some(80), Some(80));
        let pipeline = Pipeline {
            detector: Detector::new().unwrap(),
            classifier: Some(Classifier::from_proto(&toy).unwrap()),
        };
        let a = pipeline.analyze(&img, &Options::default()).unwrap();
        assert_eq!((a.width, a.height), img.dimensions());
        assert_eq!(a.faces.len(), 15);
        for pair in a.faces.windows(2) {
            let cx = |f: &Face| f.box_px[0] + f.box_px[2] / 2.0;
            assert!(cx(&pair[0]) <= cx(&pair[1]), "not in reading order");
        }
        for f in &a.faces {
            assert_eq!(f.estimate.is_some(), !f.quality.too_small, "{f:?}");
            assert!(f.box_norm.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        // Nothing flagged too small here: the smallest faces have eyes ~15 px apart, and the
        // one in profile (eyes 4.5 px apart) is judged by its box.
        assert!(a.faces.iter().all(|f| f.estimate.is_some()));
    }

    #[test]
    fn sharpness_separates_edges_from_flat() {
        let flat = RgbImage::from_pixel(64, 64, image::Rgb([120, 120, 120]));
        assert_eq!(sharpness(&flat), 0.0);
        let checker = RgbImage::from_fn(64, 64, |x, y| {
            if (x / 4 + y / 4) % 2 == 0 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        let blurred = image::imageops::blur(&checker, 3.0);
        assert!(sharpness(&checker) > 10.0 * sharpness(&blurred));
        assert_eq!(sharpness(&RgbImage::new(2, 2)), 0.0);
    }
}
