//! The training loop: augmentation, label-distribution age loss, AdamW with warmup + cosine
//! schedule, early stopping on validation, atomic per-epoch checkpoints and `--resume`.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use agegender::estimate::{self, AGE_BINS, Calibration, MAX_AGE};
use agegender::preprocess::{self, Similarity};
use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::tensor::activation::{log_sigmoid, log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Sample, Split};
use crate::fairface::{self, AGE_BINS_FF};
use crate::model::{AgeGenderNet, NetConfig};

/// Everything that defines a run; saved with each checkpoint and the exported model.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f32,
    pub warmup_epochs: f64,
    /// Stop when validation age MAE has not improved for this many epochs.
    pub patience: usize,
    pub seed: u64,
    /// Standard deviation (years) of the Gaussian label distribution for the age loss.
    pub label_sigma: f32,
    /// Weight of the L1 loss on the expected age (DLDL-v2 style), per year.
    pub l1_weight: f32,
    pub gender_weight: f32,
    pub augment: bool,
    pub net: NetConfig,
    /// Weights the run starts from instead of a random initialisation (a fine-tune or warm
    /// restart of an earlier run); the optimiser and schedule start fresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// Prediction files (`eval --predictions`) of teacher models whose averaged gender
    /// probability is mixed into the gender target (see `distill`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teachers: Vec<PathBuf>,
    /// Share of the teacher probability in the gender target, in [0, 1].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub teacher_weight: f32,
    /// Also train on the validation split: the final refit of a recipe chosen earlier on
    /// validation. Validation figures are then on seen faces, so the last epoch is kept and
    /// nothing stops early.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fit_val: bool,
    /// Gender label fixes for training faces (see `relabel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_fixes: Option<PathBuf>,
    /// Runs with FairFace: how often each FairFace training face is drawn per epoch, against
    /// once for every other face (a fraction draws a fresh subset each epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairface_weight: Option<f32>,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

/// Per-epoch figures, kept for the learning curves.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    /// On the training faces with exact ages (FairFace's are binned: see `train_bin_acc`).
    pub train_mae: f64,
    /// Validation figures on the faces with exact ages (UTKFace).
    pub val_mae: f64,
    pub val_gender_acc: f64,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_second: f64,
    /// FairFace training faces whose estimated age fell in their bin (augmented batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_bin_acc: Option<f64>,
    /// FairFace validation: age-bin accuracy and gender accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_bin_acc: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_fairface_gender_acc: Option<f64>,
    /// Runs with FairFace: the training loss on all validation faces (no augmentation), which
    /// picks the best epoch since no one figure covers both sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
}

/// Saved in every checkpoint: where the run is and how it got there.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    pub config: TrainConfig,
    pub epochs_done: usize,
    pub best_val_mae: f64,
    pub best_epoch: usize,
    pub history: Vec<EpochStats>,
    pub stopped_early: bool,
    /// Runs with FairFace: the validation loss of the best epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_val_loss: Option<f64>,
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Gaussian label distributions over the age bins, one row per true age.
fn label_table(sigma: f32) -> Vec<f32> {
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

/// The age-head targets: Gaussian rows for exact ages, one row per FairFace bin.
struct AgeTargets {
    exact: Vec<f32>,
    bins: Vec<f32>,
}

impl AgeTargets {
    fn row(&self, s: &Sample) -> &[f32] {
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
fn age_interval(s: &Sample) -> (f32, f32) {
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

/// One mini-batch on the host, ready to become tensors.
struct Batch {
    x: Vec<f32>,
    /// Each face's age interval ([`age_interval`]), low ends then high ends.
    lo: Vec<f32>,
    hi: Vec<f32>,
    /// FairFace's bin, for the bin-accuracy readout; `None` for exact ages.
    bins: Vec<Option<u8>>,
    targets: Vec<f32>,
    /// Gender targets in [0, 1]: the label, or the label mixed with a teacher's probability.
    genders: Vec<f32>,
}

fn make_batch(
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

/// Host readout of one batch: absolute errors of the exact-age faces and bin hits of the
/// binned ones.
#[derive(Default)]
struct AgeReadout {
    abs: f64,
    exact: usize,
    hits: usize,
    binned: usize,
}

impl AgeReadout {
    fn add(&mut self, expected: f32, lo: f32, hi: f32, bin: Option<u8>) {
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

    fn mae(&self) -> f64 {
        self.abs / self.exact.max(1) as f64
    }

    fn bin_acc(&self) -> Option<f64> {
        (self.binned > 0).then(|| self.hits as f64 / self.binned as f64)
    }
}

/// Forward and backward for one batch: (gradients, loss, each face's expected age).
fn grad_step(
    model: &AgeGenderNet,
    b: Batch,
    device: &Device,
    bins: &Tensor<2>,
    cfg: &TrainConfig,
) -> Result<(GradientsParams, f32, Vec<f32>)> {
    let n = b.lo.len();
    let s = cfg.net.input_size as usize;
    let x = Tensor::<4>::from_data(TensorData::new(b.x, [n, 3, s, s]), device);
    let target = Tensor::<2>::from_data(TensorData::new(b.targets, [n, AGE_BINS]), device);
    let lo = Tensor::<2>::from_data(TensorData::new(b.lo, [n, 1]), device);
    let hi = Tensor::<2>::from_data(TensorData::new(b.hi, [n, 1]), device);
    let genders = Tensor::<1>::from_data(TensorData::new(b.genders, [n]), device);
    let (age_logits, gender_logit) = model.forward(x);
    let ce = (target * log_softmax(age_logits.clone(), 1))
        .sum_dim(1)
        .mean()
        .neg();
    let expected = softmax(age_logits, 1).matmul(bins.clone());
    // L1 to the face's age interval: |expected - age| for an exact age, zero inside a bin.
    let abs_err =
        ((lo - expected.clone()).clamp_min(0.0) + (expected.clone() - hi).clamp_min(0.0)).mean();
    let g = gender_loss(gender_logit.flatten::<1>(0, 1), genders);
    let loss = ce + abs_err.mul_scalar(cfg.l1_weight) + g.mul_scalar(cfg.gender_weight);
    let loss_v = loss
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f32::NAN);
    let expected: Vec<f32> = expected.into_data().try_to_vec().unwrap_or_default();
    let grads = GradientsParams::from_grads(loss.backward(), model);
    Ok((grads, loss_v, expected))
}

/// Binary cross-entropy on logits with targets in [0, 1]. burn's loss takes only 0/1 labels;
/// distillation needs soft targets. With 0/1 targets it equals burn's.
fn gender_loss(logits: Tensor<1>, targets: Tensor<1>) -> Tensor<1> {
    (targets.clone() * log_sigmoid(logits.clone())
        + targets.neg().add_scalar(1.0) * log_sigmoid(logits.neg()))
    .mean()
    .neg()
}

fn lr_at(cfg: &TrainConfig, step: usize, steps_per_epoch: usize) -> f64 {
    let total = (cfg.epochs * steps_per_epoch).max(1) as f64;
    let warm = (cfg.warmup_epochs * steps_per_epoch as f64).max(1.0);
    let s = step as f64;
    let warmup = (s / warm).min(1.0);
    let t = ((s - warm) / (total - warm).max(1.0)).clamp(0.0, 1.0);
    cfg.lr * warmup * (0.02 + 0.98 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// Runs the model (inference mode) over host images in batches: (age logits, gender logits).
pub fn predict_logits(
    model: &AgeGenderNet,
    crops: &[RgbImage],
    device: &Device,
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let model = model.valid();
    let dev = device.clone().inner();
    let mut ages = Vec::with_capacity(crops.len());
    let mut genders = Vec::with_capacity(crops.len());
    for chunk in crops.chunks(128) {
        let s = chunk.first().map_or(0, |c| c.width() as usize);
        let x: Vec<f32> = chunk.iter().flat_map(preprocess::to_nchw).collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, [chunk.len(), 3, s, s]), &dev);
        let (a, g) = model.forward(x);
        let a: Vec<f32> = a.into_data().try_to_vec().unwrap_or_default();
        let g: Vec<f32> = g.into_data().try_to_vec().unwrap_or_default();
        ages.extend(a.chunks(AGE_BINS).map(|c| c.to_vec()));
        genders.extend(g);
    }
    (ages, genders)
}

/// Validation figures, decoded exactly as the page decodes.
struct Validation {
    /// Age MAE and gender accuracy on the faces with exact ages.
    mae: f64,
    gender_acc: f64,
    /// FairFace's age-bin and gender accuracy, when it has validation faces.
    bin_acc: Option<f64>,
    fairface_gender_acc: Option<f64>,
    /// The training loss (no augmentation) over all validation faces.
    loss: f64,
}

fn validate(
    model: &AgeGenderNet,
    crops: &[RgbImage],
    samples: &[&Sample],
    table: &AgeTargets,
    cfg: &TrainConfig,
    device: &Device,
) -> Validation {
    let (ages, genders) = predict_logits(model, crops, device);
    let cal = Calibration::default();
    let mut readout = AgeReadout::default();
    let (mut correct, mut ff_correct, mut loss) = ([0usize; 2], 0usize, 0.0f64);
    for ((a, &g), s) in ages.iter().zip(&genders).zip(samples) {
        let e = estimate::decode(a, g, &cal);
        let (lo, hi) = age_interval(s);
        readout.add(e.age, lo, hi, s.label.age_bin);
        let right = ((e.p_female >= 0.5) == (s.label.gender == 1)) as usize;
        match s.label.age_bin {
            Some(_) => ff_correct += right,
            None => correct[0] += right,
        }
        correct[1] += 1;
        loss += face_loss(a, g, e.age, s, table, cfg);
    }
    let exact = readout.exact.max(1) as f64;
    Validation {
        mae: readout.mae(),
        gender_acc: correct[0] as f64 / exact,
        bin_acc: readout.bin_acc(),
        fairface_gender_acc: (readout.binned > 0)
            .then(|| ff_correct as f64 / readout.binned as f64),
        loss: loss / correct[1].max(1) as f64,
    }
}

/// The training loss of one face, on the host (hard gender label).
fn face_loss(
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

/// The training faces of one epoch, shuffled: every face once, FairFace's `weight` times
/// (the fraction as a subset drawn for the epoch).
fn epoch_order(train_set: &[&Sample], weight: f32, rng: &mut StdRng) -> Vec<usize> {
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

/// Paths inside a run directory.
pub struct RunDir(pub PathBuf);

impl RunDir {
    fn checkpoints(&self) -> PathBuf {
        self.0.join("checkpoints")
    }
    fn latest_pointer(&self) -> PathBuf {
        self.checkpoints().join("latest")
    }
    pub fn best_model(&self) -> PathBuf {
        self.0.join("best.bpk")
    }
    pub fn state(&self) -> PathBuf {
        self.0.join("train_state.json")
    }
}

fn save_checkpoint(
    run: &RunDir,
    epoch: usize,
    model: &AgeGenderNet,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<()> {
    let dir = run.checkpoints();
    std::fs::create_dir_all(&dir)?;
    let name = format!("epoch-{epoch:03}");
    let tmp = dir.join(format!("{name}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    model
        .clone()
        .into_record()
        .save(tmp.join("model.bpk"))
        .map_err(|e| anyhow::anyhow!("saving model: {e:?}"))?;
    optim
        .to_record()
        .save(tmp.join("optim.bpk"))
        .map_err(|e| anyhow::anyhow!("saving optimizer: {e:?}"))?;
    std::fs::write(tmp.join("state.json"), serde_json::to_vec_pretty(state)?)?;
    let fin = dir.join(&name);
    let _ = std::fs::remove_dir_all(&fin);
    std::fs::rename(&tmp, &fin)?;
    // The pointer moves only once the whole checkpoint is in place.
    write_atomic(&run.latest_pointer(), name.as_bytes())?;
    // Keep the two newest checkpoints.
    if epoch >= 2 {
        let _ = std::fs::remove_dir_all(dir.join(format!("epoch-{:03}", epoch - 2)));
    }
    Ok(())
}

/// Loads a model saved with `into_record().save()`.
pub fn load_model(net: &NetConfig, path: &Path, device: &Device) -> Result<AgeGenderNet> {
    let record = ModuleRecord::load(path)
        .map_err(|e| anyhow::anyhow!("loading {}: {e:?}", path.display()))?;
    net.init(device)
        .try_load_record(record)
        .map_err(|e| anyhow::anyhow!("applying {}: {e:?}", path.display()))
}

/// The state of the run that `weights` (a run's `best.bpk`) came from, when its
/// `train_state.json` is still beside them.
pub fn source_state(weights: &Path) -> Option<TrainState> {
    let json = std::fs::read(RunDir(weights.parent()?.to_path_buf()).state()).ok()?;
    serde_json::from_slice(&json).ok()
}

/// Loads `--init` weights into `net`. When the run they came from used a narrower net of the
/// same layout, they are embedded into a fresh `net` ([`AgeGenderNet::widen_from`]): a wider
/// model starts from the trained one.
fn load_init(
    net: &NetConfig,
    path: &Path,
    train_set: &[&Sample],
    device: &Device,
) -> Result<AgeGenderNet> {
    if is_exported_model(path) {
        return import_onnx(net, path, train_set, device);
    }
    match source_state(path).map(|s| s.config.net) {
        Some(old) if old.layers != net.layers => {
            if !net.can_widen(&old) {
                bail!("its net cannot be embedded in this one (different layers, or narrower)");
            }
            let old_model = load_model(&old, path, device)?;
            let wide = net.init(device).widen_from(&old_model);
            // Through a record, as from a file, so the new tensors are tracked for autodiff.
            Ok(net.init(device).load_record(wide.into_record()))
        }
        _ => load_model(net, path, device),
    }
}

/// Whether `--init` names an exported ONNX model rather than a run's weights.
pub fn is_exported_model(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "onnx")
}

/// Crops that set the imported norms' statistics: enough for stable per-channel figures.
const IMPORT_CROPS: usize = 256;

/// `--init` from an exported ONNX model (see `import`): its batch norms are set from the
/// statistics of up to [`IMPORT_CROPS`] training crops, spread over the training set.
fn import_onnx(
    net: &NetConfig,
    path: &Path,
    train_set: &[&Sample],
    device: &Device,
) -> Result<AgeGenderNet> {
    let bytes = std::fs::read(path)?;
    let portable = crate::import::read_portable(&bytes, net)?;
    let step = train_set.len().div_ceil(IMPORT_CROPS).max(1);
    let crops: Vec<f32> = train_set
        .iter()
        .step_by(step)
        .flat_map(|s| preprocess::to_nchw(&s.input(net.input_size)))
        .collect();
    let model = crate::import::to_net(&portable, net, crops, device)?;
    // Through a record, as from a file, so the new tensors are tracked for autodiff.
    Ok(net.init(device).load_record(model.into_record()))
}

fn load_checkpoint(
    run: &RunDir,
    device: &Device,
) -> Result<Option<(AgeGenderNet, ModuleOptimizer, TrainState)>> {
    let Ok(name) = std::fs::read_to_string(run.latest_pointer()) else {
        return Ok(None);
    };
    let dir = run.checkpoints().join(name.trim());
    let state: TrainState = serde_json::from_slice(&std::fs::read(dir.join("state.json"))?)?;
    let model = load_model(&state.config.net, &dir.join("model.bpk"), device)?;
    let record = OptimizerRecord::load(dir.join("optim.bpk"))
        .map_err(|e| anyhow::anyhow!("loading optimizer: {e:?}"))?;
    let optim = optimizer(&state.config).load_record(record);
    Ok(Some((model, optim, state)))
}

fn optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay)
        .init()
}

/// How one call of [`train`] behaves (not part of the run's configuration).
#[derive(Clone, Copy, Debug, Default)]
pub struct Control {
    /// Continue from the last checkpoint in the run directory.
    pub resume: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Return after this many epochs in this call (the run can be resumed later), e.g. to
    /// split a long run across sessions.
    pub stop_after: Option<usize>,
}

/// Trains (or resumes) a run in `run`, returning the final state. The best model by
/// validation MAE (with `fit_val`, the last one) is kept in `best.bpk`.
pub fn train(
    samples: &[Sample],
    cfg: &TrainConfig,
    run: &RunDir,
    ctl: Control,
) -> Result<TrainState> {
    let Control {
        resume,
        quiet,
        stop_after,
    } = ctl;
    let device = Device::flex().autodiff();
    std::fs::create_dir_all(&run.0)?;
    let mut train_set: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.split == Split::Train || (cfg.fit_val && s.split == Split::Val))
        .collect();
    let mut genders: Vec<u8> = train_set.iter().map(|s| s.label.gender).collect();
    if let Some(path) = &cfg.label_fixes {
        let fixes = crate::relabel::read_fixes(path)?;
        let applied;
        (train_set, genders, applied) = crate::relabel::apply(train_set, &fixes);
        eprintln!(
            "label fixes: {} of {} listed faces relabelled, {} dropped",
            applied.relabelled,
            fixes.len(),
            applied.dropped
        );
    }
    let val_set: Vec<&Sample> = samples.iter().filter(|s| s.split == Split::Val).collect();
    if train_set.is_empty() || val_set.is_empty() {
        bail!(
            "need training and validation samples (got {} and {})",
            train_set.len(),
            val_set.len()
        );
    }
    let val_crops: Vec<RgbImage> = val_set
        .iter()
        .map(|s| s.input(cfg.net.input_size))
        .collect();
    // FairFace's 70+ takes the shape of the exact ages of 70 and over it trains beside.
    let old_ages: Vec<u32> = train_set
        .iter()
        .filter(|s| s.label.age_bin.is_none() && s.label.age >= 70)
        .map(|s| s.label.age)
        .collect();
    let table = AgeTargets {
        exact: label_table(cfg.label_sigma),
        bins: fairface::bin_targets(&old_ages),
    };
    let fairface_weight = cfg.fairface_weight.unwrap_or(1.0);
    if !(fairface_weight.is_finite() && fairface_weight >= 0.0) {
        bail!("--fairface-weight must be a number >= 0");
    }
    let joint = val_set.iter().any(|s| s.dataset == Dataset::FairFace);
    let ages = Tensor::<2>::from_data(
        TensorData::new(
            (0..AGE_BINS).map(|i| i as f32).collect::<Vec<_>>(),
            [AGE_BINS, 1],
        ),
        &device,
    );
    let (gender_targets, no_teacher) = if cfg.teachers.is_empty() {
        (genders.iter().map(|&g| g as f32).collect(), 0)
    } else {
        if !(0.0..=1.0).contains(&cfg.teacher_weight) {
            bail!("--teacher-weight must be in [0, 1]");
        }
        let teachers = crate::distill::load_teachers(&cfg.teachers)?;
        crate::distill::gender_targets(&train_set, &genders, &teachers, cfg.teacher_weight)
    };
    if no_teacher > 0 {
        eprintln!("{no_teacher} training faces have no teacher prediction: plain labels");
    }

    let (mut model, mut optim, mut state) = match load_checkpoint(run, &device)? {
        Some((m, o, s)) if resume => {
            if s.config != *cfg {
                bail!(
                    "--resume: the checkpoint in {} was made with a different configuration",
                    run.0.display()
                );
            }
            eprintln!("resuming after epoch {}", s.epochs_done);
            (m, o, s)
        }
        Some(_) if !resume => bail!(
            "{} already holds a run: pass --resume or choose another --out",
            run.0.display()
        ),
        _ => {
            device.seed(cfg.seed);
            let state = TrainState {
                config: cfg.clone(),
                epochs_done: 0,
                best_val_mae: f64::INFINITY,
                best_epoch: 0,
                history: vec![],
                stopped_early: false,
                best_val_loss: None,
            };
            let model = match &cfg.init {
                Some(path) => load_init(&cfg.net, path, &train_set, &device)
                    .with_context(|| format!("--init {}", path.display()))?,
                None => cfg.net.init(&device),
            };
            (model, optimizer(cfg), state)
        }
    };

    let n_fairface = train_set
        .iter()
        .filter(|s| s.dataset == Dataset::FairFace)
        .count();
    let whole = fairface_weight.floor();
    let epoch_len = train_set.len() - n_fairface
        + whole as usize * n_fairface
        + ((fairface_weight - whole) * n_fairface as f32).round() as usize;
    let steps_per_epoch = epoch_len.div_ceil(cfg.batch_size);
    let mut epochs_this_call = 0;
    while state.epochs_done < cfg.epochs && !state.stopped_early {
        if stop_after.is_some_and(|n| epochs_this_call >= n) {
            break;
        }
        epochs_this_call += 1;
        let epoch = state.epochs_done + 1;
        let started = std::time::Instant::now();
        // Every epoch's randomness derives from (seed, epoch): a resumed run replays it exactly.
        device.seed(cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
        let mut rng =
            StdRng::seed_from_u64(cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let order = epoch_order(&train_set, fairface_weight, &mut rng);
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(steps_per_epoch as u64)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} {bar:30} {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{epoch}/{}", cfg.epochs));
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        let mut readout = AgeReadout::default();
        let mut lr = cfg.lr;
        model = std::thread::scope(|scope| -> Result<AgeGenderNet> {
            let mut model = model;
            let (tx, rx) = sync_channel::<Batch>(4);
            let (train_set, table, order, targets) = (&train_set, &table, &order, &gender_targets);
            let (augment, size) = (cfg.augment, cfg.net.input_size);
            scope.spawn(move || {
                for chunk in order.chunks(cfg.batch_size) {
                    let picked: Vec<(&Sample, f32)> =
                        chunk.iter().map(|&i| (train_set[i], targets[i])).collect();
                    let batch = make_batch(&picked, table, size, augment.then_some(&mut rng));
                    if tx.send(batch).is_err() {
                        break;
                    }
                }
            });
            for (i, batch) in rx.iter().enumerate() {
                let n = batch.lo.len();
                let (lo, hi, bins) = (batch.lo.clone(), batch.hi.clone(), batch.bins.clone());
                let step = (epoch - 1) * steps_per_epoch + i;
                lr = lr_at(cfg, step, steps_per_epoch);
                // burn-flex runs these small convolutions on one core and serialises autodiff
                // across threads (measured: two threads on two halves gave no speed-up), so the
                // batch runs whole on this thread while the producer augments on the other core.
                let (grads, loss_v, expected) = grad_step(&model, batch, &device, &ages, cfg)?;
                if !loss_v.is_finite() {
                    bail!("loss became {loss_v} at epoch {epoch} step {i}");
                }
                model = optim.step(lr, model, grads);
                loss_sum += loss_v as f64 * n as f64;
                for (j, e) in expected.iter().enumerate() {
                    readout.add(*e, lo[j], hi[j], bins[j]);
                }
                seen += n;
                bar.inc(1);
                let bin_acc = readout
                    .bin_acc()
                    .map(|a| format!(" bins {a:.3}"))
                    .unwrap_or_default();
                bar.set_message(format!(
                    "loss {:.3} mae {:.2}{bin_acc} lr {lr:.2e}",
                    loss_sum / seen as f64,
                    readout.mae()
                ));
            }
            Ok(model)
        })?;
        bar.finish_and_clear();
        let v = validate(&model, &val_crops, &val_set, &table, cfg, &device);
        let (val_mae, val_acc) = (v.mae, v.gender_acc);
        let secs = started.elapsed().as_secs_f64();
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_mae: readout.mae(),
            val_mae,
            val_gender_acc: val_acc,
            lr,
            seconds: secs,
            images_per_second: seen as f64 / secs,
            train_bin_acc: readout.bin_acc(),
            val_bin_acc: v.bin_acc,
            val_fairface_gender_acc: v.fairface_gender_acc,
            val_loss: joint.then_some(v.loss),
        };
        let fairface = match (stats.train_bin_acc, v.bin_acc, v.fairface_gender_acc) {
            (t, Some(b), Some(g)) => format!(
                " | FairFace train bins {:.3}, val bins {b:.3} gender {g:.4}, val loss {:.3}",
                t.unwrap_or(f64::NAN),
                v.loss
            ),
            _ => String::new(),
        };
        eprintln!(
            "epoch {epoch}: train loss {:.3} mae {:.2} | val mae {:.3} gender acc {:.4}{fairface} | {:.0}s, {:.0} img/s",
            stats.train_loss, stats.train_mae, val_mae, val_acc, secs, stats.images_per_second
        );
        state.history.push(stats);
        state.epochs_done = epoch;
        let better = match (joint, state.best_val_loss) {
            (true, Some(best)) => v.loss < best,
            (true, None) => true,
            (false, _) => val_mae < state.best_val_mae,
        };
        if better || cfg.fit_val {
            state.best_val_mae = val_mae;
            state.best_val_loss = joint.then_some(v.loss);
            state.best_epoch = epoch;
            let tmp = run.best_model().with_extension("bpk.tmp");
            model
                .clone()
                .into_record()
                .save(&tmp)
                .map_err(|e| anyhow::anyhow!("saving best model: {e:?}"))?;
            std::fs::rename(&tmp, run.best_model())?;
        } else if epoch - state.best_epoch >= cfg.patience {
            eprintln!(
                "early stop: no validation improvement for {} epochs",
                cfg.patience
            );
            state.stopped_early = true;
        }
        save_checkpoint(run, epoch, &model, &optim, &state)?;
        write_atomic(&run.state(), &serde_json::to_vec_pretty(&state)?)?;
    }
    Ok(state)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dataset::load_utk_dir;

    /// Writes `n` small UTKFace-named images whose brightness grows with age.
    pub fn fake_utk(tag: &str, n: usize) -> PathBuf {
        let d = std::env::temp_dir().join(format!("agegender-train-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            let age = (i * 7) % 90;
            let gender = i % 2;
            let img = RgbImage::from_fn(48, 48, |x, y| {
                let v = (age * 2 + (x as usize * 3 + y as usize) % 40) as u8;
                image::Rgb([v, v.wrapping_add(gender as u8 * 60), 255 - v])
            });
            img.save(d.join(format!("{age}_{gender}_0_2017{i:09}.jpg.chip.jpg")))
                .unwrap();
        }
        d
    }

    /// burn's random generator is per process: training tests running in parallel threads
    /// would draw from it in turn and lose determinism, so they take this lock.
    pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    const QUIET: Control = Control {
        resume: false,
        quiet: true,
        stop_after: None,
    };

    /// A fake UTKFace folder of 60 faces for one test, and its samples.
    fn fake_samples(tag: &str) -> (PathBuf, Vec<Sample>) {
        let data = fake_utk(tag, 60);
        let (samples, _) = load_utk_dir(&data, None).unwrap();
        (data, samples)
    }

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
                    split: crate::dataset::split_of(&name),
                    name,
                    label: crate::dataset::Label {
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

    #[test]
    fn epochs_draw_fairface_by_its_weight_and_replay_with_the_seed() {
        let mut samples: Vec<Sample> = (0..10).map(|i| Sample::fake(&format!("u{i}"), 0)).collect();
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

    #[test]
    fn binned_faces_lose_nothing_inside_their_bin() {
        let ff = fake_fairface(9);
        let cfg = tiny_config(1);
        let table = AgeTargets {
            exact: label_table(cfg.label_sigma),
            bins: fairface::bin_targets(&[]),
        };
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
    fn a_joint_run_trains_reports_bins_and_resumes_to_the_same_model() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (data, mut samples) = fake_samples("joint");
        samples.extend(fake_fairface(90));
        let cfg = TrainConfig {
            fairface_weight: Some(0.5),
            ..tiny_config(2)
        };
        let whole = train(&samples, &cfg, &RunDir(data.join("whole")), QUIET).unwrap();
        assert_eq!(whole.epochs_done, 2);
        for h in &whole.history {
            assert!(h.train_loss.is_finite() && h.train_mae.is_finite() && h.val_mae.is_finite());
            assert!(h.train_bin_acc.is_some_and(|a| (0.0..=1.0).contains(&a)));
            assert!(h.val_bin_acc.is_some() && h.val_fairface_gender_acc.is_some());
            assert!(h.val_loss.is_some_and(f64::is_finite));
        }
        let best = &whole.history[whole.best_epoch - 1];
        assert_eq!(whole.best_val_loss, best.val_loss);
        // Cut after one epoch and resumed: the same run.
        let cut = RunDir(data.join("cut"));
        let once = Control {
            stop_after: Some(1),
            ..QUIET
        };
        train(&samples, &cfg, &cut, once).unwrap();
        let resume = Control {
            resume: true,
            ..QUIET
        };
        let resumed = train(&samples, &cfg, &cut, resume).unwrap();
        for (x, y) in whole.history.iter().zip(&resumed.history) {
            assert_eq!(x.train_loss, y.train_loss, "epoch {}", x.epoch);
            assert_eq!(x.val_loss, y.val_loss, "epoch {}", x.epoch);
            assert_eq!(x.train_bin_acc, y.train_bin_acc, "epoch {}", x.epoch);
        }
        // Another weight is another configuration: no resuming across it.
        let other = TrainConfig {
            fairface_weight: Some(1.0),
            ..cfg.clone()
        };
        assert!(train(&samples, &other, &cut, resume).is_err());
        std::fs::remove_dir_all(&data).ok();
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

    #[test]
    fn schedule_warms_up_then_decays() {
        let cfg = tiny_config(10);
        assert!(lr_at(&cfg, 0, 100) < cfg.lr * 0.05);
        assert!((lr_at(&cfg, 50, 100) - cfg.lr).abs() < cfg.lr * 0.01);
        assert!(lr_at(&cfg, 999, 100) < cfg.lr * 0.05);
    }

    #[test]
    fn smoke_run_trains_checkpoints_and_resumes_to_the_same_model() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let data = fake_utk("smoke", 120);
        let (samples, report) = load_utk_dir(&data, None).unwrap();
        assert_eq!(report.skipped(), 0);
        let run_a = RunDir(data.join("run-a"));
        let run_b = RunDir(data.join("run-b"));
        let cfg = tiny_config(2);
        let quiet = Control {
            quiet: true,
            ..Control::default()
        };
        let a = train(&samples, &cfg, &run_a, quiet).unwrap();
        assert_eq!(a.epochs_done, 2);
        assert!(
            a.history
                .iter()
                .all(|h| h.train_loss.is_finite() && h.val_mae.is_finite())
        );
        assert!(run_a.best_model().exists());
        // Refuses to overwrite a run without --resume.
        assert!(train(&samples, &cfg, &run_a, quiet).is_err());
        // One epoch, as if the run were cut off there, then a call that resumes it.
        let once = Control {
            quiet: true,
            stop_after: Some(1),
            ..Control::default()
        };
        assert_eq!(train(&samples, &cfg, &run_b, once).unwrap().epochs_done, 1);
        let b = train(
            &samples,
            &cfg,
            &run_b,
            Control {
                resume: true,
                quiet: true,
                ..Control::default()
            },
        )
        .unwrap();
        assert_eq!(b.epochs_done, 2);
        for (x, y) in a.history.iter().zip(&b.history) {
            assert_eq!(x.train_loss, y.train_loss, "epoch {}", x.epoch);
            assert_eq!(x.val_mae, y.val_mae, "epoch {}", x.epoch);
        }
        let dev = Device::flex();
        let wa = crate::export::fold(
            &load_model(&cfg.net, &run_a.best_model(), &dev).unwrap(),
            &cfg.net,
        );
        let wb = crate::export::fold(
            &load_model(&cfg.net, &run_b.best_model(), &dev).unwrap(),
            &cfg.net,
        );
        for (ca, cb) in wa.convs.iter().zip(&wb.convs) {
            assert_eq!(ca.weight, cb.weight);
            assert_eq!(ca.bias, cb.bias);
        }
        assert_eq!(wa.age.weight, wb.age.weight);
        std::fs::remove_dir_all(&data).ok();
    }

    #[test]
    fn init_starts_from_the_given_weights_with_a_fresh_optimiser() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (data, samples) = fake_samples("init");
        let quiet = QUIET;
        let source = RunDir(data.join("source"));
        let cfg = tiny_config(1);
        train(&samples, &cfg, &source, quiet).unwrap();
        // With a zero learning rate only batch-norm statistics move, so the head keeps the
        // source's weights exactly; a run without --init starts from a random head.
        let frozen = TrainConfig {
            lr: 0.0,
            seed: 99,
            init: Some(source.best_model()),
            ..cfg.clone()
        };
        let fine = RunDir(data.join("fine"));
        let state = train(&samples, &frozen, &fine, quiet).unwrap();
        assert_eq!(state.config.init, Some(source.best_model()));
        let fresh = RunDir(data.join("fresh"));
        let random = TrainConfig {
            init: None,
            ..frozen.clone()
        };
        train(&samples, &random, &fresh, quiet).unwrap();
        let dev = Device::flex();
        let head = |run: &RunDir| {
            let m = load_model(&cfg.net, &run.best_model(), &dev).unwrap();
            crate::export::fold(&m, &cfg.net).age.weight
        };
        assert_eq!(head(&fine), head(&source));
        assert_ne!(head(&fresh), head(&source));
        // The trunk is convolutional with a global pool: weights trained on 64-pixel crops
        // load into a run on larger crops (a fine-tune at a higher resolution).
        let mut larger = frozen.clone();
        larger.net.input_size = 80;
        let resized = RunDir(data.join("resized"));
        train(&samples, &larger, &resized, quiet).unwrap();
        assert_eq!(head(&resized), head(&source));
        // A missing file is a clear error that names the flag.
        let missing = TrainConfig {
            init: Some(data.join("nope.bpk")),
            ..cfg.clone()
        };
        let err = train(&samples, &missing, &RunDir(data.join("missing")), quiet).unwrap_err();
        assert!(format!("{err:#}").contains("--init"), "{err:#}");
        // A wider net of the same layout starts from a narrower run's weights and trains.
        let narrow = TrainConfig {
            net: NetConfig::standard_with_widths([4, 4, 8, 8, 8]),
            ..cfg.clone()
        };
        let small = RunDir(data.join("narrow"));
        train(&samples, &narrow, &small, quiet).unwrap();
        let wide = TrainConfig {
            net: NetConfig::standard_with_widths([4, 4, 8, 12, 16]),
            init: Some(small.best_model()),
            ..cfg.clone()
        };
        let widened = train(&samples, &wide, &RunDir(data.join("wide")), quiet).unwrap();
        assert!(widened.history.iter().all(|h| h.train_loss.is_finite()));
        // ... but not the other way round.
        let back = TrainConfig {
            net: narrow.net.clone(),
            init: Some(RunDir(data.join("wide")).best_model()),
            ..cfg.clone()
        };
        let err = train(&samples, &back, &RunDir(data.join("back")), quiet).unwrap_err();
        assert!(format!("{err:#}").contains("cannot be embedded"), "{err:#}");
        std::fs::remove_dir_all(&data).ok();
    }

    #[test]
    fn init_from_an_exported_onnx_model_continues_from_it() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (data, samples) = fake_samples("onnx-init");
        let quiet = QUIET;
        let cfg = TrainConfig {
            augment: false,
            ..tiny_config(1)
        };
        let source = RunDir(data.join("source"));
        let trained = train(&samples, &cfg, &source, quiet).unwrap();
        let dev = Device::flex();
        let portable = crate::export::fold(
            &load_model(&cfg.net, &source.best_model(), &dev).unwrap(),
            &cfg.net,
        );
        let onnx = data.join("source.onnx");
        std::fs::write(
            &onnx,
            crate::export::encode(&crate::export::to_onnx(&portable, false, "t")),
        )
        .unwrap();
        // With a zero learning rate the imported net is the exported one: same head, and the
        // same validation error up to the norms' running statistics.
        let frozen = TrainConfig {
            lr: 0.0,
            init: Some(onnx.clone()),
            ..cfg.clone()
        };
        let run = RunDir(data.join("from-onnx"));
        let state = train(&samples, &frozen, &run, quiet).unwrap();
        let back = crate::export::fold(
            &load_model(&cfg.net, &run.best_model(), &dev).unwrap(),
            &cfg.net,
        );
        assert_eq!(back.age.weight, portable.age.weight);
        assert_eq!(back.gender.bias, portable.gender.bias);
        let (a, b) = (trained.history[0].val_mae, state.history[0].val_mae);
        assert!((a - b).abs() < 0.05 * a.max(1.0), "{a} {b}");
        // An ONNX file of another architecture is a clear error.
        let other = TrainConfig {
            net: NetConfig::standard_with_widths([4, 4, 8, 8, 8]),
            ..frozen
        };
        let err = train(&samples, &other, &RunDir(data.join("other")), quiet).unwrap_err();
        assert!(format!("{err:#}").contains("shape"), "{err:#}");
        std::fs::remove_dir_all(&data).ok();
    }

    #[test]
    fn label_fixes_change_only_the_training_targets() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (data, samples) = fake_samples("fixes");
        let quiet = QUIET;
        let fixes = |name: &str, rows: &mut dyn Iterator<Item = String>| {
            let path = data.join(name);
            let body: String = rows.map(|r| r + "\n").collect();
            std::fs::write(&path, format!("name,gender\n{body}")).unwrap();
            path
        };
        let train_faces = || samples.iter().filter(|s| s.split == Split::Train);
        let same = fixes(
            "same.csv",
            &mut train_faces()
                .map(|s| format!("{},{}", s.name, ["m", "f"][s.label.gender as usize])),
        );
        let flipped = fixes(
            "flipped.csv",
            &mut train_faces()
                .map(|s| format!("{},{}", s.name, ["f", "m"][s.label.gender as usize])),
        );
        // As in the distillation test: a zero learning rate and a heavy gender weight make the
        // training loss show which gender targets were used.
        let run = |label_fixes: Option<PathBuf>, dir: &str| {
            let cfg = TrainConfig {
                lr: 0.0,
                gender_weight: 100.0,
                label_fixes,
                ..tiny_config(1)
            };
            train(&samples, &cfg, &RunDir(data.join(dir)), quiet)
        };
        let plain = run(None, "plain").unwrap();
        let unchanged = run(Some(same), "same").unwrap();
        let fixed = run(Some(flipped.clone()), "flipped").unwrap();
        assert_eq!(fixed.config.label_fixes, Some(flipped));
        let loss = |s: &TrainState| s.history[0].train_loss;
        assert!((loss(&unchanged) - loss(&plain)).abs() < 1e-2);
        assert!((loss(&fixed) - loss(&plain)).abs() > 0.3);
        // Validation figures stay on the dataset's labels.
        assert_eq!(
            fixed.history[0].val_gender_acc,
            plain.history[0].val_gender_acc
        );
        let val = samples.iter().find(|s| s.split == Split::Val).unwrap();
        let bad = fixes("val.csv", &mut std::iter::once(format!("{},m", val.name)));
        let err = run(Some(bad), "val").unwrap_err();
        assert!(
            format!("{err:#}").contains("only training labels"),
            "{err:#}"
        );
        std::fs::remove_dir_all(&data).ok();
    }

    #[test]
    fn distillation_trains_from_teacher_predictions() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (data, samples) = fake_samples("distil");
        let quiet = QUIET;
        // Teachers in `eval --predictions` lines: one that agrees with every label, one that
        // contradicts every label.
        let teacher_file = |name: &str, flip: bool| {
            let lines: String = samples
                .iter()
                .map(|s| {
                    let p = if flip {
                        1 - s.label.gender
                    } else {
                        s.label.gender
                    };
                    format!(
                        "{{\"name\":\"{}\",\"estimate\":{{\"p_female\":{p}}}}}\n",
                        s.name
                    )
                })
                .collect();
            let path = data.join(name);
            std::fs::write(&path, lines).unwrap();
            path
        };
        let agree = teacher_file("agree.jsonl", false);
        let teacher = teacher_file("contrary.jsonl", true);
        // With a zero learning rate every run sees the same model on the same batches, so the
        // training loss shows which targets the gender loss used.
        let run = |teachers: Vec<PathBuf>, dir: &str| {
            let cfg = TrainConfig {
                lr: 0.0,
                // Logits start near 0, where targets matter little: weigh gender up.
                gender_weight: 100.0,
                teachers,
                teacher_weight: 1.0,
                ..tiny_config(1)
            };
            train(&samples, &cfg, &RunDir(data.join(dir)), quiet).unwrap()
        };
        let plain = run(vec![], "plain").history[0].train_loss;
        let same = run(vec![agree], "agree").history[0].train_loss;
        let kd = run(vec![teacher.clone()], "kd");
        assert_eq!(kd.config.teachers, vec![teacher.clone()]);
        let contrary = kd.history[0].train_loss;
        assert!(contrary.is_finite());
        assert!((same - plain).abs() < 1e-2, "{same} {plain}");
        assert!((contrary - plain).abs() > 0.3, "{contrary} {plain}");
        let cfg = TrainConfig {
            teachers: vec![teacher.clone()],
            teacher_weight: 0.5,
            ..tiny_config(1)
        };
        // A broken teacher file is a clear error, not a silent fallback to the labels.
        std::fs::write(&teacher, "not json\n").unwrap();
        let err = train(&samples, &cfg, &RunDir(data.join("broken")), quiet).unwrap_err();
        assert!(format!("{err:#}").contains("contrary.jsonl"), "{err:#}");
        std::fs::remove_dir_all(&data).ok();
    }
}
