//! `predict`: one JSON line per image, through the same detect-align-classify pipeline as the
//! page (or straight to the classifier with `--crops`).

use std::io::Write;
use std::path::{Path, PathBuf};

use agegender::estimate::Estimate;
use agegender::{Classifier, Options, Pipeline, decode, preprocess};
use serde_json::json;

use crate::card::ModelCard;
use crate::dataset::read_manifest;
use crate::error::{Error, Result};
use crate::files;

#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct PredictArgs {
    /// Image files.
    pub paths: Vec<PathBuf>,
    /// A CSV whose first column lists image paths (e.g. `path,age,gender`).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Treat each image as an already aligned face crop: no detection.
    #[arg(long)]
    pub crops: bool,
    /// The ONNX classifier (default: the embedded shipped model).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

impl PredictArgs {
    pub fn run(&self) -> Result<()> {
        predict(
            &self.paths,
            self.manifest.as_deref(),
            self.crops,
            self.model.as_deref(),
        )
    }
}

fn stdout_error(source: std::io::Error) -> Error {
    Error::Io {
        path: "<stdout>".into(),
        source,
    }
}

fn estimate_json(e: &Estimate) -> serde_json::Value {
    json!({
        "age": e.age,
        "age_low": e.age_low,
        "age_high": e.age_high,
        "gender": e.gender(),
        "p_female": e.p_female,
        "gender_reliable": e.gender_reliable,
    })
}

fn predict(
    paths: &[PathBuf],
    manifest: Option<&Path>,
    crops: bool,
    model: Option<&Path>,
) -> Result<()> {
    let mut all: Vec<PathBuf> = paths.to_vec();
    if let Some(m) = manifest {
        all.extend(read_manifest(m)?.into_iter().map(|r| r.path));
    }
    let (bytes, card) = match model {
        Some(p) => (
            files::read(p)?,
            std::fs::read_to_string(ModelCard::path_beside(p)).ok(),
        ),
        None => match agegender::embedded::CLASSIFIER {
            Some(b) => (b.to_vec(), agegender::embedded::CARD.map(str::to_string)),
            None => {
                return Err(Error::Refused(
                    "this build has no embedded classifier: pass --model".into(),
                ));
            }
        },
    };
    let calibration = card
        .and_then(|c| ModelCard::parse(&c).ok())
        .map(|c| c.calibration)
        .unwrap_or_default();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if crops {
        let classifier = Classifier::from_bytes(&bytes)?.with_calibration(calibration);
        for p in &all {
            let line = match decode::open(p).and_then(|img| {
                classifier.classify(&[preprocess::aligned_crop_input(
                    &img,
                    classifier.input_size(),
                )])
            }) {
                Ok(est) => match est.first() {
                    Some(e) => {
                        let mut v = estimate_json(e);
                        v["path"] = json!(p.display().to_string());
                        v["faces"] = json!(1);
                        v
                    }
                    None => json!({"path": p.display().to_string(), "faces": 0}),
                },
                Err(e) => json!({"path": p.display().to_string(), "error": e.to_string()}),
            };
            writeln!(out, "{line}").map_err(stdout_error)?;
        }
        return Ok(());
    }
    let pipeline = Pipeline::new(&bytes)?.with_calibration(calibration);
    let opts = Options::default();
    for p in &all {
        let line = match decode::open(p).and_then(|img| pipeline.analyze(&img, &opts)) {
            Ok(analysis) => {
                let largest = analysis
                    .faces
                    .iter()
                    .filter(|f| f.estimate.is_some())
                    .max_by(|a, b| {
                        (a.box_px[2] * a.box_px[3]).total_cmp(&(b.box_px[2] * b.box_px[3]))
                    });
                let mut v = match largest.and_then(|f| f.estimate.as_ref()) {
                    Some(e) => estimate_json(e),
                    None => json!({}),
                };
                v["path"] = json!(p.display().to_string());
                v["faces"] = json!(analysis.faces.len());
                v["all"] = serde_json::to_value(&analysis.faces).map_err(|source| Error::Json {
                    path: p.clone(),
                    source,
                })?;
                v
            }
            Err(e) => json!({"path": p.display().to_string(), "error": e.to_string()}),
        };
        writeln!(out, "{line}").map_err(stdout_error)?;
    }
    Ok(())
}
