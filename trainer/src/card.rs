//! The model card (`agegender.json`) and the golden outputs (`agegender.golden.json`) written
//! beside an exported model: typed, and written and read by this one definition.
//!
//! The nested objects keep their fields in the order the card has always had on disk
//! (alphabetical), so a re-exported card diffs cleanly against the committed one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agegender::estimate::{Calibration, Estimate};
use agegender::preprocess;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::files;
use crate::metrics::{BinMetrics, Metrics};
use crate::model::NetConfig;
use crate::training::TrainConfig;

/// File names of an export in its output folder.
pub const MODEL_FILE: &str = "agegender.onnx";
/// The classifier as the page embeds it (`agegender::classify::graph_file`).
pub const GRAPH_FILE: &str = "agegender.graph";
pub const CARD_FILE: &str = "agegender.json";
pub const GOLDEN_FILE: &str = "agegender.golden.json";

/// Everything known about an exported model: its interface, calibrations, architecture,
/// variants, how it was trained and how it scores.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelCard {
    pub name: String,
    pub file: String,
    pub bytes: usize,
    pub input: Input,
    pub outputs: Outputs,
    /// The age range: expectation +- `interval_k` standard deviations.
    pub calibration: Calibration,
    pub gender_calibration: Option<GenderCalibration>,
    pub architecture: NetConfig,
    pub parameters: usize,
    pub quantization: Quantization,
    pub training: Training,
    pub metrics: CardMetrics,
}

impl ModelCard {
    /// The card beside an exported model (`model.onnx` -> `model.json`).
    pub fn path_beside(onnx: &Path) -> PathBuf {
        onnx.with_extension("json")
    }

    pub fn read(path: &Path) -> Result<Self> {
        files::read_json(path)
    }

    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        files::write_json(path, self)
    }
}

/// The network's input.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Input {
    pub crop: String,
    pub layout: String,
    pub name: String,
    pub normalisation: String,
    /// `["N", 3, size, size]`.
    pub shape: (String, u32, u32, u32),
}

impl Input {
    /// The input of a network taking `size` x `size` crops.
    pub fn of_size(size: u32) -> Self {
        Self {
            crop: format!(
                "similarity warp of the face onto UTKFace's aligned 200x200 frame (eyes at {:?} and {:?}), resampled to {size}x{size} by agegender::preprocess::warp",
                preprocess::TEMPLATE_LEFT_EYE,
                preprocess::TEMPLATE_RIGHT_EYE
            ),
            layout: "NCHW, RGB".into(),
            name: agegender::estimate::INPUT_NAME.into(),
            normalisation: "x / 127.5 - 1".into(),
            shape: ("N".into(), 3, size, size),
        }
    }
}

/// The network's outputs, by name (`agegender::estimate::AGE_OUTPUT`, `GENDER_OUTPUT`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Outputs {
    pub age_logits: String,
    pub gender_logit: String,
}

impl Default for Outputs {
    fn default() -> Self {
        Self {
            age_logits: "[N, 101] logits over ages 0..=100 years; the estimate is the softmax expectation, the range expectation +- interval_k standard deviations".into(),
            gender_logit: "[N, 1] logit of P(female)".into(),
        }
    }
}

/// The Platt scaling folded into the gender head.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GenderCalibration {
    pub scale: f32,
    pub bias: f32,
    pub fitted_on: String,
    pub val_accuracy_before: f64,
    pub val_accuracy_after: f64,
    /// With several datasets: each one's own fit, for comparison (the joint one is applied).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_dataset: BTreeMap<String, PlattFit>,
}

/// A Platt fit on one dataset's validation faces.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlattFit {
    pub scale: f32,
    pub bias: f32,
    pub faces: usize,
    /// Validation accuracy with this dataset's own fit, and with the applied joint fit.
    pub accuracy_own_fit: f64,
    pub accuracy_joint_fit: f64,
}

/// The f32 and int8 variants, and which one shipped.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Quantization {
    pub f32: Variant,
    pub int8: Variant,
    pub shipped: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Variant {
    /// Bits of the quantised weights (stored as int8); cards before the option had 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
    pub bytes: usize,
    /// Native tract, median over repeated runs on this machine, in milliseconds per face.
    pub native_ms_per_face: Speed,
    pub val: Option<Metrics>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Speed {
    pub batch_1: f64,
    pub batch_16: f64,
}

/// How the model was trained.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Training {
    pub best_epoch: usize,
    pub best_val_mae_in_training: f64,
    /// The commands that reproduce the model: `train` calls (`commands::train::train_steps`),
    /// then `export`.
    pub command: String,
    pub config: TrainConfig,
    pub data: String,
    pub data_licence: String,
    pub epochs_run: usize,
    pub split: String,
    /// False after a final refit (`--fit-val`): validation figures are then on faces it
    /// trained on.
    pub validation_held_out: bool,
}

/// Test figures of the shipped variant (and FairFace's validation figures).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CardMetrics {
    pub fairface_test: Option<BinMetrics>,
    pub fairface_test_race_gender_gap_points: Option<f64>,
    pub fairface_val: Option<BinMetrics>,
    pub test: Option<Metrics>,
}

/// The trained network's own outputs on synthetic crops, which tract must reproduce from the
/// exported file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Golden {
    pub description: String,
    pub variants: Vec<u32>,
    pub age_logits: Vec<Vec<f32>>,
    pub gender_logit: Vec<f32>,
    pub estimates: Vec<Estimate>,
    pub tolerance: Tolerance,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Tolerance {
    pub f32_logits: f32,
    pub shipped_max_logit_diff: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_card_reads_and_writes_back_the_same() {
        let path = crate::fixtures::committed_card();
        let card = ModelCard::read(&path).expect("model/agegender.json is a model card");
        assert_eq!(card.file, MODEL_FILE);
        assert_eq!(card.input.shape.2, card.architecture.input_size);
        assert!(card.training.command.contains(" train "));
        assert!(card.metrics.test.is_some());
        let text = serde_json::to_string(&card).unwrap();
        assert_eq!(ModelCard::parse(&text).unwrap(), card);
        // Same fields as on disk, nested ones included.
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let disk: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let ours: serde_json::Value = serde_json::from_str(&text).unwrap();
        for field in [
            "",
            "input",
            "outputs",
            "quantization",
            "training",
            "training/config",
        ] {
            let pick = |v: &serde_json::Value| {
                field
                    .split('/')
                    .filter(|f| !f.is_empty())
                    .fold(v.clone(), |v, f| v[f].clone())
            };
            let (d, o) = (keys(&pick(&disk)), keys(&pick(&ours)));
            assert!(d.iter().all(|k| o.contains(k)), "{field}: {d:?} vs {o:?}");
        }
    }

    #[test]
    fn output_fields_are_the_networks_output_names() {
        let v = serde_json::to_value(Outputs::default()).unwrap();
        assert!(v.get(agegender::estimate::AGE_OUTPUT).is_some());
        assert!(v.get(agegender::estimate::GENDER_OUTPUT).is_some());
        let input = serde_json::to_value(Input::of_size(80)).unwrap();
        assert_eq!(input["shape"], serde_json::json!(["N", 3, 80, 80]));
    }
}
