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
//! ```

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::embedded;
use crate::estimate::Calibration;
use crate::pipeline::{Options, Pipeline};

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
        let options: Options = if options.is_undefined() || options.is_null() {
            Options::default()
        } else {
            serde_wasm_bindgen::from_value(options)?
        };
        let analysis = self.pipeline.analyze_rgba(rgba, width, height, &options)?;
        to_js(&analysis)
    }

    /// Which models are loaded: `{ version, detector, detector_input, classifier, calibration }`
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

/// What [`Analyzer::model_info`] reports.
#[derive(Serialize)]
struct ModelInfo {
    version: &'static str,
    detector: &'static str,
    detector_input: u32,
    classifier: Option<String>,
    calibration: Option<Calibration>,
}

impl ModelInfo {
    fn of(pipeline: &Pipeline) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            detector: "MediaPipe BlazeFace (back camera)",
            detector_input: pipeline.detector().input_size(),
            classifier: pipeline
                .classifier()
                .map(|_| embedded::classifier_name().unwrap_or_else(|| "agegender".into())),
            calibration: pipeline.classifier().map(|c| c.calibration()),
        }
    }
}

/// Plain JS objects and arrays, `null` for `None` (not `Map`s or `undefined`).
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    Ok(value.serialize(&serde_wasm_bindgen::Serializer::json_compatible())?)
}
