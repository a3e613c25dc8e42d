//! The models and the pipeline stages that the benchmarks time, in wasm (through the exports in
//! [`wasm`]) and natively (`src/main.rs`). Every call does one unit of work and returns something
//! derived from the output, so nothing is optimised away; the callers time it.

use std::collections::BTreeMap;
use std::sync::Arc;

use agegender::decode::{WORK_SIDE, fit_within};
use agegender::{Classifier, DetectOptions, Options, Pipeline};
use image::RgbImage;
use tract_onnx::prelude::*;

pub const DETECTOR: &[u8] = agegender::detect::YUNET;

/// The bare detector model's input in the model benchmarks: one 640x480 frame (a webcam's).
pub const RAW_DETECTOR_SHAPE: [usize; 4] = [1, 3, 480, 640];

pub type Plan = Arc<TypedRunnableModel>;

pub struct Bench {
    /// Also serves the bare detector runs and the detection and classification stages: each model is parsed once.
    pipeline: Pipeline,
    /// Raw classifier plans by batch size.
    raw_classifier: Vec<(usize, Plan)>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Bench {
    /// `classifier`: the ONNX bytes of model/agegender.onnx, or empty for a detector-only run.
    pub fn new(classifier: &[u8]) -> Result<Self, String> {
        let (pipeline, raw_classifier) = if classifier.is_empty() {
            (Pipeline::detector_only().map_err(err)?, Vec::new())
        } else {
            let pipeline = Pipeline::with_models(DETECTOR, classifier).map_err(err)?;
            let size = pipeline
                .classifier()
                .map_or(agegender::preprocess::INPUT_SIZE, Classifier::input_size)
                as usize;
            let raw = [1usize, 8]
                .iter()
                .map(|&n| load_classifier(classifier, n, size).map(|p| (n, p)))
                .collect::<Result<Vec<_>, _>>()?;
            (pipeline, raw)
        };
        Ok(Self {
            pipeline,
            raw_classifier,
        })
    }

    pub fn has_classifier(&self) -> bool {
        self.pipeline.classifier().is_some()
    }

    /// Side of the classifier's square input (the default size for a detector-only run).
    pub fn input_size(&self) -> u32 {
        self.pipeline
            .classifier()
            .map_or(agegender::preprocess::INPUT_SIZE, Classifier::input_size)
    }

    /// One run of the bare detector model on a [`RAW_DETECTOR_SHAPE`] input (BGR, 0-255).
    pub fn raw_detector(&self, input: &[f32]) -> Result<f32, String> {
        let t = Tensor::from_shape(&RAW_DETECTOR_SHAPE, input).map_err(err)?;
        checksum(self.pipeline.detector().run(t).map_err(err)?)
    }

    /// One run of the bare classifier model on [n, 3, S, S] (n = 1 or 8, S = `input_size`).
    pub fn raw_classifier(&self, n: usize, input: &[f32]) -> Result<f32, String> {
        let plan = &self
            .raw_classifier
            .iter()
            .find(|(b, _)| *b == n)
            .ok_or("no classifier at that batch size")?
            .1;
        let s = self.input_size() as usize;
        let t = Tensor::from_shape(&[n, 3, s, s], input).map_err(err)?;
        checksum(plan.run(tvec![t.into()]).map_err(err)?)
    }

    /// The pipeline's detection stage on one image (scaling onto the canvas, one YuNet pass, NMS), as
    /// `Pipeline::analyze` runs it. Returns the number of faces.
    pub fn detect(&self, img: &RgbImage) -> Result<usize, String> {
        let (work, _) = fit_within(img, WORK_SIDE);
        Ok(self
            .pipeline
            .detector()
            .detect(&work, &DetectOptions::default())
            .map_err(err)?
            .len())
    }

    /// The pipeline's classification stage on `n` aligned crops (preprocessing included).
    pub fn classify(&self, crops: &[RgbImage]) -> Result<usize, String> {
        let c = self.pipeline.classifier().ok_or("no classifier")?;
        Ok(c.classify(crops).map_err(err)?.len())
    }

    /// The whole pipeline on one image. Returns the number of faces.
    pub fn analyze(&self, img: &RgbImage) -> Result<usize, String> {
        Ok(self
            .pipeline
            .analyze(img, &Options::default())
            .map_err(err)?
            .faces
            .len())
    }
}

/// Deterministic `size` x `size` crops with some texture (the cost does not depend on the
/// content).
pub fn crops(n: usize, size: u32) -> Vec<RgbImage> {
    (0..n)
        .map(|k| {
            RgbImage::from_fn(size, size, |x, y| {
                let v = ((x * 7 + y * 13 + k as u32 * 31) % 256) as u8;
                image::Rgb([v, v.wrapping_add(60), v.wrapping_add(120)])
            })
        })
        .collect()
}

/// Deterministic inputs in [-1, 1].
pub fn input(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 37 % 201) as f32 / 100.0) - 1.0)
        .collect()
}

fn checksum(out: TVec<TValue>) -> Result<f32, String> {
    let mut s = 0.0;
    for t in out {
        let v = t
            .try_as_plain_ram()
            .and_then(|p| p.as_slice::<f32>())
            .map_err(err)?;
        s += v.first().copied().unwrap_or(0.0);
    }
    Ok(s)
}

/// The classifier ONNX file `bytes`, optimised by tract for a batch of `n` `size`x`size` crops.
pub fn load_classifier(bytes: &[u8], n: usize, size: usize) -> Result<Plan, String> {
    let onnx = tract_onnx::onnx();
    onnx.model_for_read(&mut &bytes[..])
        .and_then(|m| m.with_input_fact(0, f32::fact([n, 3, size, size]).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(err)
}

/// Where a plan's time goes: each node's time and the whole run's, in ms per run over `runs`
/// runs after a warm-up, timed with `now` (a clock in ms). The profiles' measure, natively
/// (`bin/profile.rs`, `Instant`) and in the browser (`wasm::profile_detector`,
/// `performance.now()`).
pub fn node_times(
    plan: &Plan,
    input: &Tensor,
    runs: usize,
    now: impl Fn() -> f64,
) -> Result<(Vec<f64>, f64), String> {
    use tract_onnx::tract_core::plan::{SimpleState, eval};
    let mut per_node = vec![0f64; plan.model().nodes().len()];
    let mut total = 0f64;
    for r in 0..=runs {
        let mut state = SimpleState::new(plan).map_err(err)?;
        let t0 = now();
        state
            .run_plan_with_eval(tvec![input.clone().into()], |ctx, st, node, inputs| {
                let t = now();
                let out = eval(ctx, st, node, inputs);
                if r > 0 {
                    per_node[node.id] += now() - t;
                }
                out
            })
            .map_err(err)?;
        if r > 0 {
            total += now() - t0;
        }
    }
    let runs = runs.max(1) as f64;
    per_node.iter_mut().for_each(|t| *t /= runs);
    Ok((per_node, total / runs))
}

/// [`node_times`]' per-node times summed by op name: (ms per run, nodes).
pub fn by_op(plan: &Plan, per_node: &[f64]) -> BTreeMap<String, (f64, usize)> {
    let mut ops: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for n in plan.model().nodes() {
        let e = ops.entry(n.op().name().to_string()).or_default();
        e.0 += per_node[n.id];
        e.1 += 1;
    }
    ops
}

#[cfg(target_arch = "wasm32")]
pub mod wasm {
    use super::*;
    use wasm_bindgen::prelude::*;

    fn js(e: String) -> JsError {
        JsError::new(&e)
    }

    fn rgb(rgba: &[u8], width: u32, height: u32) -> Result<RgbImage, JsError> {
        agegender::decode::rgba_to_rgb(rgba, width, height)
            .map_err(|e| JsError::new(&e.to_string()))
    }

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_namespace = performance)]
        fn now() -> f64;
    }

    /// Where a model's time goes in the browser, as JSON `{ total, ops: { op: ms per run } }`:
    /// `profileDetector(h, w, runs)` the page's detector plan for that canvas,
    /// `profileClassifier(onnx, n, runs)` an ONNX classifier at batch `n`. Each node is timed
    /// with `performance.now()` (coarse, but summed over the runs, after a warm-up). A tool for
    /// bench/ANALYSIS.md (tract as published, not the page's lean build).
    #[wasm_bindgen(js_name = profileDetector)]
    pub fn profile_detector(h: usize, w: usize, runs: usize) -> Result<String, JsError> {
        let e = |e: agegender::Error| JsError::new(&e.to_string());
        let graph = agegender::detect::plans::load(crate::DETECTOR).map_err(e)?;
        let plan = agegender::detect::plans::plan_for(&graph, h, w).map_err(e)?;
        profile_plan(&plan, &[1, 3, h, w], runs)
    }

    #[wasm_bindgen(js_name = profileClassifier)]
    pub fn profile_classifier(onnx: &[u8], n: usize, runs: usize) -> Result<String, JsError> {
        let side = Classifier::from_bytes(onnx)
            .map_err(|e| JsError::new(&e.to_string()))?
            .input_size() as usize;
        let plan = load_classifier(onnx, n, side).map_err(js)?;
        profile_plan(&plan, &[n, 3, side, side], runs)
    }

    fn profile_plan(plan: &Plan, shape: &[usize], runs: usize) -> Result<String, JsError> {
        let tensor = Tensor::from_shape(shape, &input(shape.iter().product()))
            .map_err(|e| JsError::new(&format!("{e:#}")))?;
        let (per_node, total) = node_times(plan, &tensor, runs, now).map_err(js)?;
        let ops: Vec<String> = by_op(plan, &per_node)
            .iter()
            .map(|(k, (ms, _))| format!("{k:?}: {ms:.3}"))
            .collect();
        Ok(format!(
            "{{\"total\": {total:.3}, \"ops\": {{{}}}}}",
            ops.join(", ")
        ))
    }

    #[wasm_bindgen]
    pub struct TractBench {
        inner: Bench,
        crops: Vec<RgbImage>,
        images: Vec<RgbImage>,
    }

    #[wasm_bindgen]
    impl TractBench {
        #[wasm_bindgen(constructor)]
        pub fn new(classifier: &[u8]) -> Result<TractBench, JsError> {
            let inner = Bench::new(classifier).map_err(js)?;
            let crops = crops(8, inner.input_size());
            Ok(TractBench {
                inner,
                crops,
                images: Vec::new(),
            })
        }
        /// Side of the classifier's square input.
        #[wasm_bindgen(js_name = inputSize)]
        pub fn input_size(&self) -> u32 {
            self.inner.input_size()
        }
        #[wasm_bindgen(js_name = hasClassifier)]
        pub fn has_classifier(&self) -> bool {
            self.inner.has_classifier()
        }
        #[wasm_bindgen(js_name = rawDetector)]
        pub fn raw_detector(&self, input: &[f32]) -> Result<f32, JsError> {
            self.inner.raw_detector(input).map_err(js)
        }
        #[wasm_bindgen(js_name = rawClassifier)]
        pub fn raw_classifier(&self, n: usize, input: &[f32]) -> Result<f32, JsError> {
            self.inner.raw_classifier(n, input).map_err(js)
        }
        /// Stores an image (RGBA) for the stage timings; returns its index.
        #[wasm_bindgen(js_name = addImage)]
        pub fn add_image(
            &mut self,
            rgba: &[u8],
            width: u32,
            height: u32,
        ) -> Result<usize, JsError> {
            self.images.push(rgb(rgba, width, height)?);
            Ok(self.images.len() - 1)
        }
        pub fn detect(&self, image: usize) -> Result<usize, JsError> {
            self.inner.detect(&self.images[image]).map_err(js)
        }
        pub fn analyze(&self, image: usize) -> Result<usize, JsError> {
            self.inner.analyze(&self.images[image]).map_err(js)
        }
        pub fn classify(&self, n: usize) -> Result<usize, JsError> {
            self.inner.classify(&self.crops[..n]).map_err(js)
        }
    }
}
