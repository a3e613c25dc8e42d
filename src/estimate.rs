//! Turns the classifier's raw outputs into an age with a range and a gender with a confidence.
//! The trainer's `eval` and the page use this same code, so reported metrics are what users see.

use serde::{Deserialize, Serialize};

/// Ages the classifier distributes probability over: 0..=MAX_AGE years, one bin per year.
pub const MAX_AGE: usize = 100;
/// Number of age bins in the classifier's `age_logits` output.
pub const AGE_BINS: usize = MAX_AGE + 1;

/// Name of the classifier's input tensor: f32 `[N, 3, 64, 64]` from `preprocess::to_nchw`.
pub const INPUT_NAME: &str = "input";
/// Name of the age output: f32 `[N, AGE_BINS]` logits over ages in years.
pub const AGE_OUTPUT: &str = "age_logits";
/// Name of the gender output: f32 `[N, 1]` logit of P(female).
pub const GENDER_OUTPUT: &str = "gender_logit";

/// Below this estimated age, gender from a face is not reliable (UTKFace's infants): say so.
pub const GENDER_MIN_AGE: f32 = 6.0;

/// A gender is shown only when P(female) is at least this far from 0.5 (the page, the tracker
/// and the verification rules all read it here).
pub const GENDER_MARGIN: f32 = 0.2;

/// How the age interval is derived from the predicted distribution; stored in the model card
/// because the factor is calibrated on the validation split for each trained model.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// Half-width of the age range in predicted standard deviations (for `coverage`).
    pub interval_k: f32,
    /// Fraction of validation faces whose true age fell inside the range.
    pub coverage: f32,
}

impl Default for Calibration {
    fn default() -> Self {
        // 1.28 sigma is an 80% interval for a Gaussian; replaced by the calibrated value.
        Self {
            interval_k: 1.28,
            coverage: 0.8,
        }
    }
}

/// One face's estimate.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Estimate {
    /// Expected age in years under the predicted distribution.
    pub age: f32,
    /// Standard deviation of the predicted age distribution, in years.
    pub age_std: f32,
    pub age_low: f32,
    pub age_high: f32,
    /// Probability that the face is female, in [0, 1].
    pub p_female: f32,
    /// False when the gender should not be shown as a prediction (infants, near 0.5).
    pub gender_reliable: bool,
}

impl Estimate {
    /// `"f"` or `"m"`, the more likely gender.
    pub fn gender(&self) -> &'static str {
        if self.p_female >= 0.5 { "f" } else { "m" }
    }

    /// Confidence in the reported gender, in [0.5, 1].
    pub fn gender_confidence(&self) -> f32 {
        self.p_female.max(1.0 - self.p_female)
    }
}

/// Numerically stable softmax; non-finite logits are treated as very unlikely.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let clean: Vec<f32> = logits
        .iter()
        .map(|&x| if x.is_finite() { x } else { -1e4 })
        .collect();
    let max = clean.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = clean.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    if !(sum.is_finite() && sum > 0.0) {
        return vec![1.0 / logits.len().max(1) as f32; logits.len()];
    }
    exps.into_iter().map(|e| e / sum).collect()
}

/// Logistic function, with NaN mapped to 0.5 (no information).
pub fn sigmoid(x: f32) -> f32 {
    if x.is_nan() {
        0.5
    } else {
        1.0 / (1.0 + (-x.clamp(-80.0, 80.0)).exp())
    }
}

/// Decodes one face's `age_logits` (length `AGE_BINS`) and `gender_logit`.
pub fn decode(age_logits: &[f32], gender_logit: f32, cal: &Calibration) -> Estimate {
    let p = softmax(age_logits);
    let mean: f32 = p.iter().enumerate().map(|(i, q)| i as f32 * q).sum();
    let var: f32 = p
        .iter()
        .enumerate()
        .map(|(i, q)| (i as f32 - mean).powi(2) * q)
        .sum();
    let std = var.max(0.0).sqrt();
    let half = (cal.interval_k * std).max(1.0);
    let p_female = sigmoid(gender_logit);
    let confident = (p_female - 0.5).abs() >= GENDER_MARGIN;
    Estimate {
        age: mean,
        age_std: std,
        age_low: (mean - half).max(0.0),
        age_high: (mean + half).min(MAX_AGE as f32 + 10.0),
        p_female,
        gender_reliable: mean >= GENDER_MIN_AGE && confident,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaked_distribution_gives_its_age() {
        let mut logits = vec![-20.0; AGE_BINS];
        logits[30] = 20.0;
        let e = decode(&logits, 5.0, &Calibration::default());
        assert!((e.age - 30.0).abs() < 1e-3);
        assert!(e.age_low <= 30.0 && e.age_high >= 30.0 && e.age_high - e.age_low >= 2.0);
        assert_eq!(e.gender(), "f");
        assert!(e.gender_reliable);
    }

    #[test]
    fn two_peaks_average_and_widen() {
        let mut logits = vec![-20.0; AGE_BINS];
        logits[20] = 10.0;
        logits[40] = 10.0;
        let e = decode(&logits, -5.0, &Calibration::default());
        assert!((e.age - 30.0).abs() < 1e-3);
        assert!((e.age_std - 10.0).abs() < 1e-3);
        assert_eq!(e.gender(), "m");
    }

    #[test]
    fn infants_and_unsure_gender_are_flagged() {
        let mut logits = vec![-20.0; AGE_BINS];
        logits[1] = 20.0;
        assert!(!decode(&logits, 6.0, &Calibration::default()).gender_reliable);
        logits[1] = -20.0;
        logits[35] = 20.0;
        assert!(!decode(&logits, 0.1, &Calibration::default()).gender_reliable);
    }

    #[test]
    fn non_finite_outputs_do_not_poison_the_estimate() {
        let mut logits = vec![0.0; AGE_BINS];
        logits[3] = f32::NAN;
        logits[4] = f32::INFINITY;
        let e = decode(&logits, f32::NAN, &Calibration::default());
        assert!(e.age.is_finite() && e.age_std.is_finite());
        assert_eq!(e.p_female, 0.5);
        assert!(!e.gender_reliable);
    }
}
