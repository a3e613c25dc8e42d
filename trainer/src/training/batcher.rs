//! The batcher: which faces an epoch draws and in what order, the random augmentation, and the
//! host-side mini-batches that become tensors.

use agegender::estimate::AGE_BINS;
use agegender::preprocess::{self, Similarity};
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};

use crate::dataset::{Dataset, Sample};
use crate::training::loss::{AgeTargets, LossTargets, age_interval};

/// Random geometric and colour augmentation through the shared warp: the jitter is composed
/// onto `base`, the map from the classifier input to the face in `img` (`Sample::similarity`).
pub fn augment(img: &RgbImage, base: Similarity, size: u32, rng: &mut StdRng) -> RgbImage {
    // Shifts are drawn in default-size pixels so every input size gets the same jitter.
    let px = size as f32 / preprocess::INPUT_SIZE as f32;
    let m = base.jitter(
        size,
        rng.random_range(-0.17f32..0.17),
        rng.random_range(0.9f32..1.1),
        (
            rng.random_range(-3.0f32..3.0) * px,
            rng.random_range(-3.0f32..3.0) * px,
        ),
    );
    let mut out = preprocess::warp(img, &m, size);
    if rng.random_bool(0.5) {
        image::imageops::flip_horizontal_in_place(&mut out);
    }
    let brightness = rng.random_range(-25.0f32..25.0);
    let contrast = rng.random_range(0.75f32..1.25);
    let saturation = if rng.random_bool(0.05) {
        0.0
    } else {
        rng.random_range(0.7f32..1.3)
    };
    for p in out.pixels_mut() {
        let [r, g, b] = p.0.map(|c| c as f32);
        let grey = 0.299 * r + 0.587 * g + 0.114 * b;
        for (c, v) in p.0.iter_mut().zip([r, g, b]) {
            let s = grey + (v - grey) * saturation;
            *c = ((s - 128.0) * contrast + 128.0 + brightness)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// One mini-batch on the host, ready to become tensors.
pub struct Batch {
    x: Vec<f32>,
    /// Each face's age interval ([`age_interval`]), low ends then high ends.
    pub lo: Vec<f32>,
    pub hi: Vec<f32>,
    /// FairFace's bin, for the bin-accuracy readout; `None` for exact ages.
    pub bins: Vec<Option<u8>>,
    targets: Vec<f32>,
    /// Gender targets in [0, 1]: the label, or the label mixed with a teacher's probability.
    genders: Vec<f32>,
}

/// The batch of `samples` (each with its gender target): augmented crops when given `rng`,
/// plain ones without.
pub fn make_batch(
    samples: &[(&Sample, f32)],
    table: &AgeTargets,
    size: u32,
    rng: Option<&mut StdRng>,
) -> Batch {
    let n = samples.len();
    let plane = (size * size * 3) as usize;
    let mut b = Batch {
        x: Vec::with_capacity(n * plane),
        lo: Vec::with_capacity(n),
        hi: Vec::with_capacity(n),
        bins: Vec::with_capacity(n),
        targets: Vec::with_capacity(n * AGE_BINS),
        genders: Vec::with_capacity(n),
    };
    let mut rng = rng;
    for &(s, gender) in samples {
        let crop = match rng.as_deref_mut() {
            Some(r) => augment(&s.image, s.similarity(size), size, r),
            None => s.input(size),
        };
        b.x.extend(preprocess::to_nchw(&crop));
        let (lo, hi) = age_interval(s);
        b.lo.push(lo);
        b.hi.push(hi);
        b.bins.push(s.label.age_bin);
        b.targets.extend_from_slice(table.row(s));
        b.genders.push(gender);
    }
    b
}

impl Batch {
    /// The input `[N, 3, size, size]` and the loss targets, on `device`.
    pub fn into_tensors(self, size: usize, device: &Device) -> (Tensor<4>, LossTargets) {
        let n = self.lo.len();
        let x = Tensor::<4>::from_data(TensorData::new(self.x, [n, 3, size, size]), device);
        let targets = LossTargets {
            ages: Tensor::<2>::from_data(TensorData::new(self.targets, [n, AGE_BINS]), device),
            lo: Tensor::<2>::from_data(TensorData::new(self.lo, [n, 1]), device),
            hi: Tensor::<2>::from_data(TensorData::new(self.hi, [n, 1]), device),
            genders: Tensor::<1>::from_data(TensorData::new(self.genders, [n]), device),
        };
        (x, targets)
    }
}

/// The training faces of one epoch, shuffled: every face once, FairFace's `weight` times
/// (the fraction as a subset drawn for the epoch).
pub fn epoch_order(train_set: &[&Sample], weight: f32, rng: &mut StdRng) -> Vec<usize> {
    let (ff, mut order): (Vec<usize>, Vec<usize>) =
        (0..train_set.len()).partition(|&i| train_set[i].dataset == Dataset::FairFace);
    let whole = weight.max(0.0).floor();
    for _ in 0..whole as usize {
        order.extend_from_slice(&ff);
    }
    let extra = ((weight.max(0.0) - whole) * ff.len() as f32).round() as usize;
    if extra > 0 {
        order.extend(ff.choose_multiple(rng, extra));
    }
    order.shuffle(rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{fake_fairface, sample};
    use rand::SeedableRng;

    #[test]
    fn epochs_draw_fairface_by_its_weight_and_replay_with_the_seed() {
        let mut samples: Vec<Sample> = (0..10).map(|i| sample(&format!("u{i}"), 0)).collect();
        samples.extend(fake_fairface(20));
        let set: Vec<&Sample> = samples.iter().collect();
        let count = |order: &[usize], i: usize| order.iter().filter(|&&j| j == i).count();
        for (weight, len) in [(0.0f32, 10usize), (0.5, 20), (1.0, 30), (2.25, 55)] {
            let order = epoch_order(&set, weight, &mut StdRng::seed_from_u64(3));
            assert_eq!(order.len(), len, "weight {weight}");
            // Every other face exactly once; FairFace faces floor(w) or floor(w) + 1 times.
            assert!((0..10).all(|i| count(&order, i) == 1));
            let whole = weight.floor() as usize;
            assert!((10..30).all(|i| (whole..=whole + 1).contains(&count(&order, i))));
            assert_eq!(
                order,
                epoch_order(&set, weight, &mut StdRng::seed_from_u64(3))
            );
        }
        // A fraction draws another subset in another epoch.
        assert_ne!(
            epoch_order(&set, 0.5, &mut StdRng::seed_from_u64(1)),
            epoch_order(&set, 0.5, &mut StdRng::seed_from_u64(2))
        );
    }
}
