//! The age/gender classifier, run by tract exactly as the page runs it. The trainer evaluates the
//! exported ONNX file through this same code, so its reported metrics are what users get.

use std::sync::Arc;

use image::RgbImage;
use serde::{Deserialize, Serialize};
use tract_core::internal::DimLike;
use tract_core::prelude::*;

use crate::error::{Error, Result};
use crate::estimate::{
    self, AGE_BINS, AGE_OUTPUT, Calibration, Estimate, GENDER_OUTPUT, INPUT_NAME,
};
use crate::preprocess::{INPUT_SIZE, to_nchw};

/// Faces per model run for a fixed-batch export: bounds memory on huge batches.
const MAX_BATCH: usize = 64;

/// Which image of each face the model sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mirror {
    /// The face and its mirror image, the two predictions averaged (age probabilities and gender
    /// logit): faces are left-right symmetric, and the average lowers the error (UTKFace test
    /// split: age MAE 4.79 against 4.92 for one run, gender 92.1% against 91.7%) for the price
    /// of a second model run.
    #[default]
    Average,
    /// The face once, as it is: half the cost. The webcam alternates this and `Mirrored` from
    /// frame to frame, and its tracker's averaging over frames takes the mirror average's place.
    Plain,
    /// The mirror image once.
    Mirrored,
}

/// A loaded classifier; build once, run on many faces.
pub struct Classifier {
    plan: Arc<TypedRunnableModel>,
    /// Faces per model run: the export's fixed batch, or 1.
    batch: usize,
    /// Side of the square input crop, from the model's input shape.
    input_size: u32,
    age_ix: usize,
    gender_ix: usize,
    calibration: Calibration,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("batch", &self.batch)
            .field("input_size", &self.input_size)
            .field("calibration", &self.calibration)
            .finish()
    }
}

fn model_err(e: impl std::fmt::Display) -> Error {
    Error::model("classifier", e)
}

fn output_err(message: String) -> Error {
    Error::ModelOutput {
        model: "classifier",
        message,
    }
}

/// The input shape an ONNX classifier is translated for (from the dimensions its file states):
/// a symbolic batch fixed to 1, so faces run one by one (tract then plans the convolutions with
/// lazy im2col, ~3x faster per face than its eager im2col at batch 8 or with a symbolic batch,
/// bench/ANALYSIS.md), a fixed batch kept (at most `MAX_BATCH`), an open crop size the default.
fn onnx_input_shape(dims: &[Option<usize>]) -> Result<Vec<Option<String>>> {
    let [batch, _, h, w] = dims else {
        return Err(model_err(format!(
            "the input must have rank 4, got {dims:?}"
        )));
    };
    let batch = batch.unwrap_or(1).clamp(1, MAX_BATCH);
    let n = match (h, w) {
        (Some(h), Some(w)) if h == w && *h > 0 => *h,
        (None, None) => INPUT_SIZE as usize,
        (h, w) => {
            return Err(model_err(format!(
                "the input must be a square [N, 3, S, S] image, got height {h:?} and width {w:?}"
            )));
        }
    };
    Ok(vec![
        Some(batch.to_string()),
        Some("3".into()),
        Some(n.to_string()),
        Some(n.to_string()),
    ])
}

/// The embedded graph file (`model/agegender.graph`) for an exported classifier's ONNX file.
#[cfg(feature = "onnx")]
pub fn graph_file(onnx: &[u8]) -> Result<Vec<u8>> {
    // Its int8 weights (per-channel scales) stay int8 and come back bit for bit.
    crate::model::graph_file(onnx, "classifier", onnx_input_shape, graph::Weights::Exact)
}

impl Classifier {
    /// Loads a classifier with input `estimate::INPUT_NAME` f32 `[N, 3, S, S]` and outputs
    /// `age_logits` `[N, 101]` and `gender_logit` `[N, 1]`: a graph file (the embedded model) or,
    /// natively with the `onnx` feature, an ONNX file. Uses the default calibration until
    /// [`Classifier::with_calibration`] sets the model card's.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let model = crate::model::load(bytes, "classifier", onnx_input_shape)?;
        Self::from_typed(model)
    }

    /// Loads an already parsed ONNX model (see [`Classifier::from_bytes`]).
    #[cfg(feature = "onnx")]
    pub fn from_proto(proto: &graph::onnx::pb::ModelProto) -> Result<Self> {
        let graph =
            crate::model::from_proto(proto, "classifier", onnx_input_shape, graph::Weights::Exact)?;
        Self::from_typed(graph.to_typed().map_err(model_err)?)
    }

    fn from_typed(model: TypedModel) -> Result<Self> {
        let output_ix = |name: &str| {
            let outlets = model.output_outlets().map_err(model_err)?;
            outlets
                .iter()
                .position(|o| model.outlet_label(*o) == Some(name))
                .ok_or_else(|| output_err(format!("no output named {name:?}")))
        };
        let (age_ix, gender_ix) = (output_ix(AGE_OUTPUT)?, output_ix(GENDER_OUTPUT)?);
        let input_names: Vec<&str> = model
            .input_outlets()
            .map_err(model_err)?
            .iter()
            .map(|o| model.node(o.node).name.as_str())
            .collect();
        if input_names != [INPUT_NAME] {
            return Err(model_err(format!(
                "expected one input named {INPUT_NAME:?}, got {input_names:?}"
            )));
        }
        let input = model.input_fact(0).map_err(model_err)?;
        let dims: Vec<Option<usize>> = input.shape.iter().map(|d| d.to_usize().ok()).collect();
        let (batch, n) = match dims[..] {
            [Some(batch), Some(3), Some(h), Some(w)] if h == w && h > 0 && batch > 0 => (batch, h),
            _ => {
                return Err(model_err(format!(
                    "the input must be a square [N, 3, S, S] image, got {:?}",
                    input.shape
                )));
            }
        };
        let input_size = u32::try_from(n).map_err(model_err)?;
        let plan = crate::model::plan(model).map_err(model_err)?;
        Ok(Self {
            plan,
            batch,
            input_size,
            age_ix,
            gender_ix,
            calibration: Calibration::default(),
        })
    }

    /// Uses `calibration` (from the model card) for the age ranges.
    pub fn with_calibration(mut self, calibration: Calibration) -> Self {
        self.calibration = calibration;
        self
    }

    /// Side of the square face crop this model takes (`align::crop`, `aligned_crop_input`).
    pub fn input_size(&self) -> u32 {
        self.input_size
    }

    /// The calibration in use.
    pub fn calibration(&self) -> Calibration {
        self.calibration
    }

    /// Estimates age and gender for each [`Classifier::input_size`] square face crop (from
    /// `align::crop` or `preprocess::aligned_crop_input`), in order, with [`Mirror::Average`].
    pub fn classify(&self, faces: &[RgbImage]) -> Result<Vec<Estimate>> {
        self.classify_with(faces, Mirror::Average)
    }

    /// [`Classifier::classify`] with a choice of mirror run (see [`Mirror`]).
    pub fn classify_with(&self, faces: &[RgbImage], mirror: Mirror) -> Result<Vec<Estimate>> {
        let decode = |(a, g): &(Vec<f32>, f32)| estimate::decode(a, *g, &self.calibration);
        match mirror {
            Mirror::Plain => Ok(self.logits(faces)?.iter().map(decode).collect()),
            Mirror::Mirrored => {
                let flipped: Vec<RgbImage> =
                    faces.iter().map(image::imageops::flip_horizontal).collect();
                Ok(self.logits(&flipped)?.iter().map(decode).collect())
            }
            Mirror::Average => {
                let mut both: Vec<RgbImage> = faces.to_vec();
                both.extend(faces.iter().map(image::imageops::flip_horizontal));
                let outputs = self.logits(&both)?;
                let (plain, mirrored) = outputs.split_at(faces.len());
                Ok(plain
                    .iter()
                    .zip(mirrored)
                    .map(|((a1, g1), (a2, g2))| {
                        let (p1, p2) = (estimate::softmax(a1), estimate::softmax(a2));
                        let mean_log: Vec<f32> = p1
                            .iter()
                            .zip(&p2)
                            .map(|(x, y)| ((x + y) / 2.0).max(1e-30).ln())
                            .collect();
                        estimate::decode(&mean_log, (g1 + g2) / 2.0, &self.calibration)
                    })
                    .collect())
            }
        }
    }

    /// The raw outputs for each face crop: (age logits, gender logit). The trainer compares
    /// these with its own framework's outputs when it exports a model.
    pub fn logits(&self, faces: &[RgbImage]) -> Result<Vec<(Vec<f32>, f32)>> {
        if let Some(f) = faces
            .iter()
            .find(|f| f.dimensions() != (self.input_size, self.input_size))
        {
            return Err(Error::CropSize {
                width: f.width(),
                height: f.height(),
                expected: self.input_size,
            });
        }
        let n = self.input_size as usize;
        let mut out = Vec::with_capacity(faces.len());
        for chunk in faces.chunks(self.batch) {
            let mut data = Vec::with_capacity(chunk.len() * 3 * n * n);
            for f in chunk {
                data.extend(to_nchw(f));
            }
            let input = Tensor::from_shape(&[chunk.len(), 3, n, n], &data).map_err(model_err)?;
            let outputs = self.plan.run(tvec!(input.into())).map_err(model_err)?;
            let slice = |ix: usize, per: usize| -> Result<&[f32]> {
                let t = outputs
                    .get(ix)
                    .ok_or_else(|| output_err(format!("missing output {ix}")))?;
                let v = t
                    .try_as_plain_ram()
                    .and_then(|p| p.as_slice::<f32>())
                    .map_err(|e| output_err(format!("{e:#}")))?;
                if v.len() != chunk.len() * per {
                    return Err(output_err(format!(
                        "output {ix} has shape {:?} for a batch of {}",
                        t.shape(),
                        chunk.len()
                    )));
                }
                Ok(v)
            };
            let (age, gender) = (slice(self.age_ix, AGE_BINS)?, slice(self.gender_ix, 1)?);
            out.extend(
                age.chunks_exact(AGE_BINS)
                    .zip(gender)
                    .map(|(a, &g)| (a.to_vec(), g)),
            );
        }
        Ok(out)
    }
}

/// Reads the `calibration` object from a model card (`model/agegender.json`).
pub fn calibration_from_card(json: &str) -> Result<Calibration> {
    #[derive(serde::Deserialize)]
    struct Card {
        calibration: Calibration,
    }
    Ok(serde_json::from_str::<Card>(json)?.calibration)
}

// Toy ONNX models: natively, where the tests load ONNX (the `onnx` feature).
#[cfg(all(test, feature = "onnx"))]
pub(crate) mod tests {
    use super::*;
    use graph::onnx::pb;

    fn value_info(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
        use pb::tensor_shape_proto::{Dimension, dimension::Value};
        let dim = dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Some(v) => Value::DimValue(*v),
                    None => Value::DimParam("N".into()),
                }),
                ..Default::default()
            })
            .collect();
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: pb::tensor_proto::DataType::Float as i32,
                    shape: Some(pb::TensorShapeProto { dim }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn tensor(name: &str, dims: &[i64], data: Vec<f32>) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: data,
            ..Default::default()
        }
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            name: output.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    /// A stand-in classifier with the real model's interface: the mean of each colour channel
    /// drives the outputs. Age logits peak at 30 years, shifted older by red; the gender logit is
    /// 4 x mean blue. `batch` None gives a symbolic batch dimension.
    pub(crate) fn toy_model(batch: Option<i64>) -> pb::ModelProto {
        toy_model_of_size(batch, Some(INPUT_SIZE as i64), Some(INPUT_SIZE as i64))
    }

    /// [`toy_model`] with the given input height and width (None: symbolic).
    pub(crate) fn toy_model_of_size(
        batch: Option<i64>,
        height: Option<i64>,
        width: Option<i64>,
    ) -> pb::ModelProto {
        let bins = AGE_BINS as i64;
        let mut w_age = vec![0.0f32; 3 * AGE_BINS];
        let mut b_age = vec![0.0f32; AGE_BINS];
        for i in 0..AGE_BINS {
            w_age[i] = i as f32 * 0.4; // red row: +10 years at full red
            b_age[i] = -((i as f32 - 30.0).powi(2)) / 50.0;
        }
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(pb::GraphProto {
                name: "toy".into(),
                node: vec![
                    node("GlobalAveragePool", &[INPUT_NAME], "pooled"),
                    node("Flatten", &["pooled"], "flat"),
                    node("Gemm", &["flat", "w_age", "b_age"], AGE_OUTPUT),
                    node("Gemm", &["flat", "w_gender", "b_gender"], GENDER_OUTPUT),
                ],
                initializer: vec![
                    tensor("w_age", &[3, bins], w_age),
                    tensor("b_age", &[bins], b_age),
                    tensor("w_gender", &[3, 1], vec![0.0, 0.0, 4.0]),
                    tensor("b_gender", &[1], vec![0.0]),
                ],
                input: vec![value_info(INPUT_NAME, &[batch, Some(3), height, width])],
                output: vec![
                    value_info(AGE_OUTPUT, &[batch, Some(bins)]),
                    value_info(GENDER_OUTPUT, &[batch, Some(1)]),
                ],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn solid(rgb: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(INPUT_SIZE, INPUT_SIZE, image::Rgb(rgb))
    }

    #[test]
    fn toy_classifier_runs_batched_and_matches_single_runs() {
        for batch in [None, Some(1)] {
            let c = Classifier::from_proto(&toy_model(batch)).unwrap();
            let faces = [
                solid([0, 0, 255]),
                solid([255, 0, 0]),
                solid([128, 128, 128]),
            ];
            let all = c.classify(&faces).unwrap();
            assert_eq!(all.len(), 3);
            for (face, est) in faces.iter().zip(&all) {
                let one = c.classify(std::slice::from_ref(face)).unwrap();
                assert!((one[0].age - est.age).abs() < 1e-3);
                assert!((one[0].p_female - est.p_female).abs() < 1e-5);
            }
            // Blue face: gender logit 4 x (1.0) -> female; red face: older than the grey one.
            assert!(all[0].p_female > 0.95 && all[1].p_female < 0.5);
            assert!(all[1].age > all[2].age + 5.0, "{all:?}");
            assert!(c.classify(&[]).unwrap().is_empty());
        }
    }

    /// [`toy_model`] that sees only the left half of the face: not mirror-symmetric.
    fn left_half_toy() -> pb::ModelProto {
        let mut m = toy_model(None);
        let g = m.graph.as_mut().unwrap();
        g.node[0] = node("GlobalAveragePool", &["left"], "pooled");
        g.node.insert(
            0,
            node("Slice", &[INPUT_NAME, "starts", "ends", "axes"], "left"),
        );
        let int64 = |name: &str, v: i64| pb::TensorProto {
            name: name.into(),
            dims: vec![1],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: vec![v],
            ..Default::default()
        };
        g.initializer.extend([
            int64("starts", 0),
            int64("ends", INPUT_SIZE as i64 / 2),
            int64("axes", 3),
        ]);
        m
    }

    #[test]
    fn mirror_modes_see_the_face_as_is_mirrored_or_both() {
        let c = Classifier::from_proto(&left_half_toy()).unwrap();
        // Red on the left (older, male), blue on the right (female).
        let face = RgbImage::from_fn(INPUT_SIZE, INPUT_SIZE, |x, _| {
            if x < INPUT_SIZE / 2 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let one = |m| c.classify_with(std::slice::from_ref(&face), m).unwrap()[0];
        let (plain, mirrored, average) = (
            one(Mirror::Plain),
            one(Mirror::Mirrored),
            one(Mirror::Average),
        );
        assert!(
            plain.p_female < 0.05 && mirrored.p_female > 0.95,
            "{plain:?} {mirrored:?}"
        );
        assert!(plain.age > mirrored.age + 5.0);
        // The average of the two gender logits (-4 and 4) is 0.
        assert!((average.p_female - 0.5).abs() < 1e-4, "{average:?}");
        assert!(mirrored.age < average.age && average.age < plain.age);
        assert_eq!(c.classify(std::slice::from_ref(&face)).unwrap()[0], average);
        let flipped = image::imageops::flip_horizontal(&face);
        let again = c.classify_with(&[flipped], Mirror::Plain).unwrap()[0];
        assert_eq!(again, mirrored);
    }

    #[test]
    fn wrong_crop_size_and_bad_models_are_errors() {
        let c = Classifier::from_proto(&toy_model(None)).unwrap();
        let big = RgbImage::new(65, 64);
        assert!(matches!(c.classify(&[big]), Err(Error::CropSize { .. })));
        assert!(Classifier::from_bytes(b"not onnx").is_err());
        let mut renamed = toy_model(None);
        if let Some(g) = renamed.graph.as_mut() {
            g.output[0].name = "something_else".into();
        }
        assert!(Classifier::from_proto(&renamed).is_err());
    }

    #[test]
    fn the_crop_size_is_read_from_the_model() {
        let c = Classifier::from_proto(&toy_model_of_size(None, Some(96), Some(96))).unwrap();
        assert_eq!(c.input_size(), 96);
        let face = RgbImage::from_pixel(96, 96, image::Rgb([0, 0, 255]));
        assert!(c.classify(&[face]).unwrap()[0].p_female > 0.95);
        let small = solid([0, 0, 255]);
        assert!(matches!(
            c.classify(&[small]),
            Err(Error::CropSize { expected: 96, .. })
        ));
        // Older exports may leave the spatial size symbolic: they were all 64.
        let open = Classifier::from_proto(&toy_model_of_size(None, None, None)).unwrap();
        assert_eq!(open.input_size(), INPUT_SIZE);
        // The crops are square.
        let err = Classifier::from_proto(&toy_model_of_size(None, Some(64), Some(80)));
        assert!(err.unwrap_err().to_string().contains("square"));
    }

    #[test]
    fn calibration_is_read_from_the_card() {
        let card = r#"{"name": "x", "calibration": {"interval_k": 1.5, "coverage": 0.81}}"#;
        let cal = calibration_from_card(card).unwrap();
        assert_eq!(cal.interval_k, 1.5);
        assert!(calibration_from_card("{}").is_err());
    }
}
