//! The loss: a label distribution over ages (Gaussian for exact ages, FairFace's bins as
//! uniform rows), L1 from the expected age to each face's age interval, and a binary
//! cross-entropy on soft gender targets; on the device for training, on the host for validation.

use agegender::estimate::{AGE_BINS, MAX_AGE};
use burn::tensor::Tensor;
use burn::tensor::activation::{log_sigmoid, log_softmax, softmax};

use crate::dataset::Sample;
use crate::fairface::{self, AGE_BINS_FF};
use crate::training::config::TrainConfig;

/// Gaussian label distributions over the age bins, one row per true age.
pub fn label_table(sigma: f32) -> Vec<f32> {
    let mut t = vec![0.0f32; AGE_BINS * AGE_BINS];
    for age in 0..AGE_BINS {
        let row = &mut t[age * AGE_BINS..(age + 1) * AGE_BINS];
        for (b, v) in row.iter_mut().enumerate() {
            let d = (b as f32 - age as f32) / sigma;
            *v = (-0.5 * d * d).exp();
        }
        let s: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    t
}

/// The age-head targets: Gaussian rows for exact ages, one row per FairFace bin.
pub struct AgeTargets {
    exact: Vec<f32>,
    bins: Vec<f32>,
}

impl AgeTargets {
    /// Gaussian rows of `sigma` years, and FairFace's bins with 70+ shaped by `old_ages` (the
    /// exact ages of 70 and over it trains beside; see `fairface::bin_targets`).
    pub fn new(sigma: f32, old_ages: &[u32]) -> Self {
        Self {
            exact: label_table(sigma),
            bins: fairface::bin_targets(old_ages),
        }
    }

    pub fn row(&self, s: &Sample) -> &[f32] {
        match s.label.age_bin {
            Some(b) => {
                let b = (b as usize).min(AGE_BINS_FF.len() - 1);
                &self.bins[b * AGE_BINS..(b + 1) * AGE_BINS]
            }
            None => {
                let age = (s.label.age as usize).min(MAX_AGE);
                &self.exact[age * AGE_BINS..(age + 1) * AGE_BINS]
            }
        }
    }
}

/// The ages a face's expected age may take without an L1 penalty: its exact age, or its bin
/// widened by half a year each side (estimates are read rounded).
pub fn age_interval(s: &Sample) -> (f32, f32) {
    match s.label.age_bin {
        Some(b) => {
            let (_, lo, hi) = AGE_BINS_FF[(b as usize).min(AGE_BINS_FF.len() - 1)];
            (lo as f32 - 0.5, hi as f32 + 0.5)
        }
        None => {
            let age = (s.label.age as usize).min(MAX_AGE) as f32;
            (age, age)
        }
    }
}

/// A batch's targets on the device.
pub struct LossTargets {
    /// `[N, AGE_BINS]` rows of [`AgeTargets`].
    pub ages: Tensor<2>,
    /// `[N, 1]` each face's age interval ([`age_interval`]).
    pub lo: Tensor<2>,
    pub hi: Tensor<2>,
    /// `[N]` gender targets in [0, 1].
    pub genders: Tensor<1>,
}

/// The training loss of one batch and each face's expected age (`[N, 1]`). `ages` is the
/// column `[AGE_BINS, 1]` of the ages 0..=100.
pub fn batch_loss(
    age_logits: Tensor<2>,
    gender_logit: Tensor<2>,
    t: LossTargets,
    ages: &Tensor<2>,
    cfg: &TrainConfig,
) -> (Tensor<1>, Tensor<2>) {
    let ce = (t.ages * log_softmax(age_logits.clone(), 1))
        .sum_dim(1)
        .mean()
        .neg();
    let expected = softmax(age_logits, 1).matmul(ages.clone());
    // L1 to the face's age interval: |expected - age| for an exact age, zero inside a bin.
    let abs_err = ((t.lo - expected.clone()).clamp_min(0.0)
        + (expected.clone() - t.hi).clamp_min(0.0))
    .mean();
    let g = gender_loss(gender_logit.flatten::<1>(0, 1), t.genders);
    let loss = ce + abs_err.mul_scalar(cfg.l1_weight) + g.mul_scalar(cfg.gender_weight);
    (loss, expected)
}

/// Binary cross-entropy on logits with targets in [0, 1]. burn's loss takes only 0/1 labels;
/// distillation needs soft targets. With 0/1 targets it equals burn's.
fn gender_loss(logits: Tensor<1>, targets: Tensor<1>) -> Tensor<1> {
    (targets.clone() * log_sigmoid(logits.clone())
        + targets.neg().add_scalar(1.0) * log_sigmoid(logits.neg()))
    .mean()
    .neg()
}

/// The training loss of one face, on the host (hard gender label).
pub fn face_loss(
    age_logits: &[f32],
    gender_logit: f32,
    expected: f32,
    s: &Sample,
    table: &AgeTargets,
    cfg: &TrainConfig,
) -> f64 {
    let max = age_logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_sum = age_logits
        .iter()
        .map(|&z| (z as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    let ce: f64 = table
        .row(s)
        .iter()
        .zip(age_logits)
        .map(|(&t, &z)| -(t as f64) * (z as f64 - log_sum))
        .sum();
    let (lo, hi) = age_interval(s);
    let l1 = (lo - expected).max(0.0) + (expected - hi).max(0.0);
    // -log sigmoid(z) = softplus(-z), written stably.
    let softplus = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
    let z = gender_logit as f64;
    let bce = if s.label.gender == 1 {
        softplus(-z)
    } else {
        softplus(z)
    };
    ce + cfg.l1_weight as f64 * l1 as f64 + cfg.gender_weight as f64 * bce
}

/// Host readout of one batch: absolute errors of the exact-age faces and bin hits of the
/// binned ones.
#[derive(Default)]
pub struct AgeReadout {
    abs: f64,
    pub exact: usize,
    hits: usize,
    pub binned: usize,
}

impl AgeReadout {
    pub fn add(&mut self, expected: f32, lo: f32, hi: f32, bin: Option<u8>) {
        match bin {
            Some(b) => {
                self.binned += 1;
                self.hits += (fairface::bin_of(expected) == b as usize) as usize;
            }
            None => {
                self.exact += 1;
                self.abs += (expected - (lo + hi) / 2.0).abs() as f64;
            }
        }
    }

    pub fn mae(&self) -> f64 {
        self.abs / self.exact.max(1) as f64
    }

    pub fn bin_acc(&self) -> Option<f64> {
        (self.binned > 0).then(|| self.hits as f64 / self.binned as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{fake_fairface, tiny_config};
    use burn::tensor::{Device, TensorData};

    #[test]
    fn binned_faces_lose_nothing_inside_their_bin() {
        let ff = fake_fairface(9);
        let cfg = tiny_config(1);
        let table = AgeTargets::new(cfg.label_sigma, &[]);
        // A face of the 20-29 bin (i = 9: bin 0; i = 6: bin 3).
        let s = ff.iter().find(|s| s.label.age_bin == Some(3)).unwrap();
        assert_eq!(age_interval(s), (19.5, 29.5));
        // Its target row is the uniform bin; a prediction of exactly that row with the
        // expected age inside the bin has no L1 term, one outside pays per year.
        let row = table.row(s);
        let logits: Vec<f32> = row.iter().map(|&p| p.max(1e-30).ln()).collect();
        let inside = face_loss(&logits, 0.0, 24.5, s, &table, &cfg);
        let outside = face_loss(&logits, 0.0, 32.5, s, &table, &cfg);
        assert!(
            (outside - inside - cfg.l1_weight as f64 * 3.0).abs() < 1e-4,
            "{inside} {outside}"
        );
        // Cross-entropy of the target with itself is its entropy: ln 10 for ten ages.
        let gender = cfg.gender_weight as f64 * std::f64::consts::LN_2;
        assert!((inside - gender - 10f64.ln()).abs() < 1e-4, "{inside}");
        let mut r = AgeReadout::default();
        r.add(29.4, 19.5, 29.5, Some(3));
        r.add(29.6, 19.5, 29.5, Some(3));
        r.add(33.0, 30.0, 30.0, None);
        assert_eq!(r.bin_acc(), Some(0.5));
        assert!((r.mae() - 3.0).abs() < 1e-9);
    }

    #[test]
    fn label_distributions_are_normalised_and_centred() {
        let t = label_table(2.0);
        for age in [0, 30, MAX_AGE] {
            let row = &t[age * AGE_BINS..(age + 1) * AGE_BINS];
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            let peak = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|p| p.0);
            assert_eq!(peak, Some(age));
        }
    }

    #[test]
    fn soft_gender_loss_matches_burns_on_hard_labels() {
        let dev = Device::flex();
        let logits = [-3.0f32, -0.2, 0.0, 0.7, 4.0];
        let labels = [0i64, 1, 0, 1, 1];
        let z = || Tensor::<1>::from_data(TensorData::new(logits.to_vec(), [5]), &dev);
        let ours = gender_loss(
            z(),
            Tensor::<1>::from_data(
                TensorData::new(labels.iter().map(|&l| l as f32).collect::<Vec<_>>(), [5]),
                &dev,
            ),
        );
        let burns = burn::nn::loss::BinaryCrossEntropyLossConfig::new()
            .with_logits(true)
            .init(&dev)
            .forward(
                z(),
                Tensor::<1, burn::tensor::Int>::from_data(
                    TensorData::new(labels.to_vec(), [5]),
                    &dev,
                ),
            );
        let v = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap()[0];
        assert!((v(ours) - v(burns)).abs() < 1e-5);
        // A soft target of 0.5 pulls the logit to 0, where the loss is smallest.
        let half = |x: f32| {
            v(gender_loss(
                Tensor::<1>::from_data(TensorData::new(vec![x], [1]), &dev),
                Tensor::<1>::from_data(TensorData::new(vec![0.5f32], [1]), &dev),
            ))
        };
        assert!(half(0.0) < half(0.5) && half(0.0) < half(-0.5));
    }
}
