//! Test fixtures shared by the unit tests and (with the `fixtures` feature) the integration
//! tests in `tests/`: fake datasets, a tiny configuration, and comparisons.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Tensor;
use image::RgbImage;

use crate::dataset::{Dataset, Label, Sample, Split, load_utk_dir, split_of};
use crate::fairface::AGE_BINS_FF;
use crate::model::{AgeGenderNet, NetConfig, values};
use crate::training::{Control, TrainConfig};

/// burn's random generator is per process: training tests running in parallel threads
/// would draw from it in turn and lose determinism, so they take this lock.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A training call without a progress bar.
pub const QUIET: Control = Control {
    resume: false,
    quiet: true,
    stop_after: None,
};

/// Writes `n` small UTKFace-named images into `dir` whose pixels depend on age and gender, so a
/// tiny net has something to learn.
pub fn write_fake_utk(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let (age, gender) = ((i * 7) % 90, i % 2);
        let img = RgbImage::from_fn(48, 48, |x, y| {
            let v = (age * 2 + (x as usize * 3 + y as usize) % 40) as u8;
            image::Rgb([v, v.wrapping_add(gender as u8 * 60), 255 - v])
        });
        img.save(dir.join(format!("{age}_{gender}_0_2017{i:09}.jpg.chip.jpg")))
            .unwrap();
    }
}

/// A fresh temporary folder of `n` fake UTKFace faces ([`write_fake_utk`]) for test `tag`.
pub fn fake_utk(tag: &str, n: usize) -> PathBuf {
    let d = std::env::temp_dir().join(format!("agegender-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    write_fake_utk(&d, n);
    d
}

/// A fake UTKFace folder of 60 faces for one test, and its samples.
pub fn fake_samples(tag: &str) -> (PathBuf, Vec<Sample>) {
    let data = fake_utk(tag, 60);
    let (samples, _) = load_utk_dir(&data, None).unwrap();
    (data, samples)
}

/// A one-epoch-a-second configuration: the tiny net, small batches.
pub fn tiny_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        lr: 2e-3,
        weight_decay: 0.01,
        warmup_epochs: 0.5,
        patience: 10,
        seed: 7,
        label_sigma: 2.0,
        l1_weight: 0.5,
        gender_weight: 3.0,
        augment: true,
        net: NetConfig::tiny(),
        init: None,
        teachers: vec![],
        teacher_weight: 0.0,
        fit_val: false,
        label_fixes: None,
        fairface_weight: None,
        qat_bits: None,
    }
}

/// A 1x1 training face aged 30, for tests that only look at names and labels.
pub fn sample(name: &str, gender: u8) -> Sample {
    Sample {
        name: name.into(),
        label: Label {
            age: 30,
            gender,
            race: None,
            age_bin: None,
        },
        split: Split::Train,
        image: RgbImage::new(1, 1),
        dataset: Dataset::UtkFace,
        face: None,
    }
}

/// `n` in-memory FairFace faces (96x96, a face found at a fixed place), brightness by
/// bin, tint by gender.
pub fn fake_fairface(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            let (bin, gender) = ((i * 5) % 9, (i / 2) % 2);
            let image = RgbImage::from_fn(96, 96, |x, y| {
                let v = (bin * 25 + (x as usize + 2 * y as usize) % 30) as u8;
                image::Rgb([v, v.wrapping_add(gender as u8 * 60), 200 - v / 2])
            });
            let mut face = agegender::Detection {
                score: 0.9,
                bbox: [23.0, 25.0, 50.0, 60.0],
                keypoints: Default::default(),
            };
            face.keypoints[agegender::detect::LEFT_EYE] = [36.0, 42.0];
            face.keypoints[agegender::detect::RIGHT_EYE] = [60.0, 42.0];
            let name = format!("{}.jpg", i + 1);
            Sample {
                split: split_of(&name),
                name,
                label: Label {
                    age: AGE_BINS_FF[bin].1,
                    gender: gender as u8,
                    race: Some((i % 7) as u8),
                    age_bin: Some(bin as u8),
                },
                image,
                dataset: Dataset::FairFace,
                face: Some(face),
            }
        })
        .collect()
}

/// Asserts that two nets give the same age and gender logits (inference mode) on `input`.
pub fn assert_same_outputs(
    a: &AgeGenderNet,
    b: &AgeGenderNet,
    input: impl Fn() -> Tensor<4>,
    tol: f32,
) {
    let (age_a, gender_a) = a.valid().forward(input());
    let (age_b, gender_b) = b.valid().forward(input());
    for (p, q) in values(age_a)
        .iter()
        .zip(values(age_b))
        .chain(values(gender_a).iter().zip(values(gender_b)))
    {
        assert!((p - q).abs() < tol, "{p} {q}");
    }
}

/// The model card committed beside the shipped model (`model/agegender.json`).
pub fn committed_card() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/agegender.json")
}
