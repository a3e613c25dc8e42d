//! The browser API: a thin `#[wasm_bindgen]` layer over [`Pipeline`]. Input checks, errors and
//! results all come from the plain Rust code; this module only converts at the boundary
//! (crate [`Error`](crate::Error) to `JsError` through `?`, results to plain JS objects through
//! serde-wasm-bindgen).
//!
//! ```js
//! import init, { Analyzer, version } from './pkg/agegender.js';
//! await init();
//! const analyzer = new Analyzer();            // loads the embedded models, once
//! const analysis = analyzer.analyze(rgba, width, height, {}); // { width, height, faces: [...] }
//! verify(analysis, { age: 30, gender: 'female' });  // [{ verdict, reason, age, gender }] per face
//! ageGate(analysis, 18);                            // [{ decision, threshold, reason }] per face
//! const tracker = new Tracker();                    // webcam: per-face ids and smoothing
//! const frame = tracker.update(analysis, performance.now()); // { width, height, faces: [{ id, ... }] }
//! const { frame } = analyzer.analyzeTracked(rgba, width, height, {}, tracker, performance.now());
//!                                                   // the same, classifying only the faces due
//! const { analysis: parts, classify, crops } = analyzer.findFaces(rgba, width, height, {});
//! const estimates = analyzer.classifyCrops(crops, {}); // in any worker, any whole crops
//! classify.forEach((face, i) => (parts.faces[face].estimate = estimates[i])); // = analyze's
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::embedded;
use crate::estimate::Calibration;
use crate::pipeline::{Options, Pipeline};
use crate::results::Analysis;
use crate::track::{TrackOptions, TrackedFrame, Tracker as RustTracker};
use crate::verify::{self, Claim, FaceEvidence, GateRules, VerifyRules};

/// Face analysis with the models embedded in the module.
#[wasm_bindgen]
pub struct Analyzer {
    pipeline: Pipeline,
}

#[wasm_bindgen]
impl Analyzer {
    /// Loads the embedded models. Costly: build one and keep it.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Result<Analyzer, JsError> {
        #[cfg(feature = "console_error_panic_hook")]
        console_error_panic_hook::set_once();
        Ok(Analyzer {
            pipeline: embedded::pipeline()?,
        })
    }

    /// Finds the faces in a row-major RGBA buffer (`ImageData.data`) of `width` x `height`
    /// pixels and estimates age and gender for each. `options` is `undefined`, `null` or an object
    /// with any of [`Options`]' fields. Returns an `Analysis` as a plain object
    /// (`{ width, height, faces: [{ box_px, box_norm, score, keypoints, estimate, quality }] }`,
    /// `estimate` is `null` when there is none); throws an `Error` on bad input.
    pub fn analyze(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
        options: JsValue,
    ) -> Result<JsValue, JsError> {
        let options: Options = from_js_or_default(options)?;
        let analysis = self.pipeline.analyze_rgba(rgba, width, height, &options)?;
        to_js(&analysis)
    }

    /// The first half of `analyze`, so that several workers can share the classification:
    /// `{ analysis, classify, crops }`, the faces found (each `estimate` still `null`), the
    /// indices of the faces to classify, and their classifier crops packed one after another in
    /// a `Uint8Array`. `classifyCrops` (in any worker; whole crops, split anywhere) gives their
    /// estimates in order; put at `analysis.faces[classify[i]].estimate`, they make the result
    /// `analyze` gives.
    #[wasm_bindgen(js_name = findFaces)]
    pub fn find_faces(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
        options: JsValue,
    ) -> Result<JsValue, JsError> {
        let options: Options = from_js_or_default(options)?;
        let img = crate::decode::rgba_to_rgb(rgba, width, height)?;
        let found = self.pipeline.find(&img, &options)?;
        let (classify, packed) = self.pipeline.packed_crops(&found);
        let out = to_js(&FoundFaces {
            analysis: &found.analysis,
            classify,
        })?;
        js_sys::Reflect::set(
            &out,
            &"crops".into(),
            &js_sys::Uint8Array::from(&packed[..]),
        )
        .map_err(|_| JsError::new("could not return the crops"))?;
        Ok(out)
    }

    /// Estimates for crops packed as `findFaces` packs them, made as `analyze` makes them with
    /// these `options` (only `mirror` is used): an array of `estimate` objects, in order.
    #[wasm_bindgen(js_name = classifyCrops)]
    pub fn classify_crops(&self, crops: &[u8], options: JsValue) -> Result<JsValue, JsError> {
        let options: Options = from_js_or_default(options)?;
        to_js(&self.pipeline.classify_packed(crops, options.mirror)?)
    }

    /// A webcam frame: like `analyze`, but only the faces `tracker` asks for are classified
    /// (new faces, and one tracked face per frame in turn; `options.mirror` is not used), and the
    /// frame, taken at `time_ms`, is added to `tracker`. Returns `{ analysis, frame }`: this
    /// frame's analysis (estimates only for the faces classified) and `tracker.update`'s result.
    #[wasm_bindgen(js_name = analyzeTracked)]
    pub fn analyze_tracked(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
        options: JsValue,
        tracker: &mut Tracker,
        time_ms: f64,
    ) -> Result<JsValue, JsError> {
        let options: Options = from_js_or_default(options)?;
        let img = crate::decode::rgba_to_rgb(rgba, width, height)?;
        let (analysis, frame) = tracker
            .inner
            .analyze(&self.pipeline, &img, &options, time_ms)?;
        to_js(&TrackedAnalysis { analysis, frame })
    }

    /// Makes the detector's plans for `options` now (see [`Options`]), so that no image waits
    /// for them: with `width` and `height`, the ones an image of that size needs (the webcam's
    /// frames); without, every canvas shape of the working size and the second look at tilted
    /// faces. Each plan takes about 0.1 s.
    pub fn prepare(
        &self,
        options: JsValue,
        width: Option<u32>,
        height: Option<u32>,
    ) -> Result<(), JsError> {
        let options: Options = from_js_or_default(options)?;
        let detector = self.pipeline.detector();
        match (width, height) {
            (Some(w), Some(h)) => detector.prepare_for(w, h, &options.detect)?,
            _ => detector.prepare(&options.detect)?,
        }
        Ok(())
    }

    /// Makes one of `prepare`'s plans that is missing, most common photo shapes first, and
    /// returns whether any is still missing: the worker calls it again after any request that
    /// arrived meanwhile, so a photo waits for one plan at most.
    #[wasm_bindgen(js_name = prepareNext)]
    pub fn prepare_next(&self, options: JsValue) -> Result<bool, JsError> {
        let options: Options = from_js_or_default(options)?;
        Ok(self.pipeline.detector().prepare_next(&options.detect)?)
    }

    /// Which models are loaded: `{ version, detector, working_size, classifier, calibration }`
    /// (`working_size`: the default longer side photos are detected at)
    /// (`classifier` and `calibration` are `null` in a build without the age/gender model).
    #[wasm_bindgen(js_name = modelInfo)]
    pub fn model_info(&self) -> Result<JsValue, JsError> {
        to_js(&ModelInfo::of(&self.pipeline))
    }
}

/// The crate version (`Cargo.toml`).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// What [`Analyzer::analyze_tracked`] returns.
#[derive(Serialize)]
struct TrackedAnalysis {
    analysis: Analysis,
    frame: TrackedFrame,
}

/// What [`Analyzer::find_faces`] returns, less the crops.
#[derive(Serialize)]
struct FoundFaces<'a> {
    analysis: &'a Analysis,
    classify: Vec<usize>,
}

/// What [`Analyzer::model_info`] reports.
#[derive(Serialize)]
struct ModelInfo {
    version: &'static str,
    detector: &'static str,
    working_size: u32,
    classifier: Option<String>,
    calibration: Option<Calibration>,
}

impl ModelInfo {
    fn of(pipeline: &Pipeline) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            detector: "YuNet (libfacedetection, yunet_n)",
            working_size: crate::detect::DetectOptions::default().working_size,
            classifier: pipeline
                .classifier()
                .map(|_| embedded::classifier_name().unwrap_or_else(|| "agegender".into())),
            calibration: pipeline.classifier().map(|c| c.calibration()),
        }
    }
}

/// The faces of an `analyze` result (or of a `Tracker.update` frame): only their `estimate` and
/// `quality` are read.
#[derive(Deserialize)]
struct Faces {
    faces: Vec<FaceEvidence>,
}

/// Checks each face of `analysis` against what a person states, `claim` = `{ age?, gender? }`
/// (`gender`: `"female"` or `"male"`). Returns one `{ verdict, reason, age, gender }` per face:
/// `verdict` is `"consistent"`, `"inconsistent"` or `"cannot_tell"`, `age` and `gender` are the
/// parts' `{ verdict, reason }` (`null` when not stated). `rules` (optional):
/// `{ min_margin, strong_gender }`. Throws on an empty or impossible claim. Rules: `src/verify.rs`.
#[wasm_bindgen]
pub fn verify(analysis: JsValue, claim: JsValue, rules: JsValue) -> Result<JsValue, JsError> {
    let Faces { faces } = serde_wasm_bindgen::from_value(analysis)?;
    let claim: Claim = serde_wasm_bindgen::from_value(claim)?;
    let rules: VerifyRules = from_js_or_default(rules)?;
    // A bad claim is an error even when there is no face to check.
    claim.validate()?;
    let checks = faces
        .iter()
        .map(|f| verify::verify(f, &claim, &rules))
        .collect::<Result<Vec<_>, _>>()?;
    to_js(&checks)
}

/// Age gate at `threshold` years for each face of `analysis`: one
/// `{ decision, threshold, reason }` per face, `decision` being `"clearly_over"`,
/// `"clearly_under"` or `"check_id"` (never a guess near the line). `rules` (optional):
/// `{ min_margin }`. Throws on a threshold outside 1-130. Rules: `src/verify.rs`.
#[wasm_bindgen(js_name = ageGate)]
pub fn age_gate(analysis: JsValue, threshold: f32, rules: JsValue) -> Result<JsValue, JsError> {
    let Faces { faces } = serde_wasm_bindgen::from_value(analysis)?;
    let rules: GateRules = from_js_or_default(rules)?;
    verify::validate_threshold(threshold)?;
    let gates = faces
        .iter()
        .map(|f| verify::age_gate(f, threshold, &rules))
        .collect::<Result<Vec<_>, _>>()?;
    to_js(&gates)
}

/// Follows faces across webcam frames and smooths their estimates (`src/track.rs`).
#[wasm_bindgen]
pub struct Tracker {
    inner: RustTracker,
}

#[wasm_bindgen]
impl Tracker {
    /// `options` (optional): `{ min_iou, time_constant_ms, box_time_constant_ms, max_missed }`.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<Tracker, JsError> {
        Ok(Tracker {
            inner: RustTracker::new(from_js_or_default::<TrackOptions>(options)?),
        })
    }

    /// Adds one frame's `analyze` result, taken at `time_ms` (`performance.now()`); returns
    /// `{ width, height, faces }` whose faces carry `id`, `frames`, `estimate_frames` and the
    /// usual face fields with smoothed box and estimate.
    pub fn update(&mut self, analysis: JsValue, time_ms: f64) -> Result<JsValue, JsError> {
        let analysis: Analysis = serde_wasm_bindgen::from_value(analysis)?;
        to_js(&self.inner.update(&analysis, time_ms))
    }

    /// Forgets every track.
    pub fn reset(&mut self) {
        self.inner.reset();
    }

    /// Live tracks.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.inner.len()
    }
}

/// `undefined` or `null` give the defaults.
fn from_js_or_default<T: DeserializeOwned + Default>(value: JsValue) -> Result<T, JsError> {
    if value.is_undefined() || value.is_null() {
        Ok(T::default())
    } else {
        Ok(serde_wasm_bindgen::from_value(value)?)
    }
}

/// Plain JS objects and arrays, `null` for `None` (not `Map`s or `undefined`).
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    Ok(value.serialize(&serde_wasm_bindgen::Serializer::json_compatible())?)
}
