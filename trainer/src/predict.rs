//! `predict`: one JSON line per image, through the same detect-align-classify pipeline as the
//! page (or straight to the classifier with `--crops`).

use std::io::Write;
use std::path::{Path, PathBuf};

use agegender::estimate::Estimate;
use agegender::{Classifier, Options, Pipeline, decode, preprocess};
use anyhow::Result;
use serde_json::json;

use crate::dataset::read_manifest;

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

pub fn run(
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
            std::fs::read(p)?,
            std::fs::read_to_string(p.with_extension("json")).ok(),
        ),
        None => match agegender::embedded::CLASSIFIER {
            Some(b) => (b.to_vec(), agegender::embedded::CARD.map(str::to_string)),
            None => anyhow::bail!("this build has no embedded classifier: pass --model"),
        },
    };
    let calibration = card
        .and_then(|c| agegender::classify::calibration_from_card(&c).ok())
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
            writeln!(out, "{line}")?;
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
                v["all"] = serde_json::to_value(&analysis.faces)?;
                v
            }
            Err(e) => json!({"path": p.display().to_string(), "error": e.to_string()}),
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}
