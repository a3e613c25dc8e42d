//! The calibrations an export fits on validation (or takes from another card): the gender
//! head's Platt scaling, jointly over all datasets with each one's own fit beside it.

use std::collections::BTreeMap;
use std::path::Path;

use agegender::estimate::Calibration;

use crate::card::{GenderCalibration, ModelCard, PlattFit};
use crate::dataset::{Dataset, Sample};
use crate::error::Result;
use crate::metrics;

fn dataset_name(d: Dataset) -> &'static str {
    match d {
        Dataset::UtkFace => "utkface",
        Dataset::FairFace => "fairface",
    }
}

/// Fits the gender calibration on the validation faces `val` from their gender logits. One
/// fit on the joint split: the page cannot tell which set a face is like, so one calibration
/// has to serve both. Each set's own fit is kept beside it.
pub fn fit_gender(val: &[&Sample], logits: &[f32]) -> GenderCalibration {
    let female: Vec<bool> = val.iter().map(|s| s.label.gender == 1).collect();
    let (scale, bias) = metrics::fit_platt(logits, &female);
    let accuracy = |which: &dyn Fn(usize) -> bool, sc: f32, bi: f32| {
        let (mut right, mut n) = (0usize, 0usize);
        for (i, (&z, &f)) in logits.iter().zip(&female).enumerate() {
            if which(i) {
                n += 1;
                right += ((sc * z + bi >= 0.0) == f) as usize;
            }
        }
        right as f64 / n.max(1) as f64
    };
    let mut per_dataset = BTreeMap::new();
    for d in [Dataset::UtkFace, Dataset::FairFace] {
        let mine = |i: usize| val[i].dataset == d;
        let (z, f): (Vec<f32>, Vec<bool>) = (0..val.len())
            .filter(|&i| mine(i))
            .map(|i| (logits[i], female[i]))
            .unzip();
        if z.is_empty() || z.len() == val.len() {
            continue;
        }
        let (sc, bi) = metrics::fit_platt(&z, &f);
        per_dataset.insert(
            dataset_name(d).to_string(),
            PlattFit {
                scale: sc,
                bias: bi,
                faces: z.len(),
                accuracy_own_fit: accuracy(&mine, sc, bi),
                accuracy_joint_fit: accuracy(&mine, scale, bias),
            },
        );
    }
    GenderCalibration {
        scale,
        bias,
        fitted_on: format!(
            "validation split{} (Platt scaling, folded into the gender head)",
            if per_dataset.is_empty() {
                ""
            } else {
                " of all datasets together"
            }
        ),
        val_accuracy_before: accuracy(&|_| true, 1.0, 0.0),
        val_accuracy_after: accuracy(&|_| true, scale, bias),
        per_dataset,
    }
}

/// The calibrations of an earlier card, for a final refit that has seen validation: its own
/// validation outputs are fitted, not held out. The source should be the same recipe trained
/// without validation.
pub fn borrowed(card: &Path) -> Result<(Calibration, Option<GenderCalibration>)> {
    let c = ModelCard::read(card)?;
    let gender = c.gender_calibration.map(|g| GenderCalibration {
        fitted_on: format!("taken from {}: {}", card.display(), g.fitted_on),
        ..g
    });
    Ok((c.calibration, gender))
}
