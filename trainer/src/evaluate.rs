//! Runs an exported classifier over samples as the page would (`eval`, and export's checks):
//! each face's outcome, the `eval --predictions` lines, and raw-output comparison.

use agegender::Classifier;
use agegender::estimate::Estimate;
use image::RgbImage;
use serde::Serialize;

use crate::dataset::Sample;
use crate::error::Result;
use crate::metrics::Outcome;

/// Runs `classifier` over samples (aligned crops, or faces aligned as the page aligns them).
pub fn evaluate(classifier: &Classifier, samples: &[&Sample]) -> Result<Vec<Outcome>> {
    let crops: Vec<RgbImage> = samples
        .iter()
        .map(|s| s.input(classifier.input_size()))
        .collect();
    let estimates: Vec<Estimate> = classifier.classify(&crops)?;
    Ok(samples
        .iter()
        .zip(estimates)
        .map(|(s, estimate)| Outcome {
            name: s.name.clone(),
            label: s.label,
            estimate,
        })
        .collect())
}

/// One line of `eval --predictions` (fields in the order the lines have always had).
#[derive(Serialize)]
struct PredictionLine<'a> {
    age: u32,
    age_bin: Option<u8>,
    /// As a JSON value, whose keys are sorted: the lines' bytes as they have always been.
    estimate: serde_json::Value,
    gender: u8,
    name: &'a str,
    race: Option<u8>,
}

/// `eval --predictions`: one JSON object per face (name, labels, estimate), the format
/// `train --teacher` reads.
pub fn prediction_lines(outcomes: &[Outcome]) -> Result<String, serde_json::Error> {
    let mut lines = String::new();
    for o in outcomes {
        lines += &serde_json::to_string(&PredictionLine {
            age: o.label.age,
            age_bin: o.label.age_bin,
            estimate: serde_json::to_value(o.estimate)?,
            gender: o.label.gender,
            name: &o.name,
            race: o.label.race,
        })?;
        lines.push('\n');
    }
    Ok(lines)
}

/// Largest difference between two sets of raw outputs (age logits, gender logit).
pub fn max_logit_diff(a: &[(Vec<f32>, f32)], b: &[(Vec<f32>, f32)]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|((la, ga), (lb, gb))| {
            la.iter()
                .zip(lb)
                .map(|(x, y)| (x - y).abs())
                .chain([(ga - gb).abs()])
        })
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Label;

    #[test]
    fn prediction_lines_feed_distillation() {
        let outcome = |name: &str, p_female: f32| Outcome {
            name: name.into(),
            label: Label {
                age: 30,
                gender: 1,
                race: Some(2),
                age_bin: None,
            },
            estimate: Estimate {
                age: 31.0,
                age_std: 3.0,
                age_low: 27.0,
                age_high: 35.0,
                p_female,
                gender_reliable: true,
            },
        };
        let text = prediction_lines(&[outcome("a.jpg", 0.8), outcome("b.jpg", 0.1)]).unwrap();
        assert_eq!(text.lines().count(), 2);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["name"], "a.jpg");
        assert_eq!(first["race"], 2);
        let path =
            std::env::temp_dir().join(format!("agegender-preds-{}.jsonl", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let teachers =
            crate::training::distill::load_teachers(std::slice::from_ref(&path)).unwrap();
        assert!((teachers["a.jpg"] - 0.8).abs() < 1e-5);
        assert!((teachers["b.jpg"] - 0.1).abs() < 1e-5);
        std::fs::remove_file(&path).ok();
    }
}
