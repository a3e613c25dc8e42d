//! What defines a run and what it records: the configuration (saved with every checkpoint and
//! exported model), the per-epoch figures, the run's state, and how one call behaves.

use std::path::PathBuf;

use burn::optim::{AdamWConfig, ModuleOptimizer};
use serde::{Deserialize, Serialize};

use crate::model::NetConfig;

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
    /// probability is mixed into the gender target (see `training::distill`).
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
    /// Gender label fixes for training faces (see `training::label_fixes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_fixes: Option<PathBuf>,
    /// Runs with FairFace: how often each FairFace training face is drawn per epoch, against
    /// once for every other face (a fraction draws a fresh subset each epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairface_weight: Option<f32>,
    /// Quantisation-aware training at this many bits (`AgeGenderNet::qat_bits`): export with
    /// the same `--weight-bits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qat_bits: Option<u32>,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

impl TrainConfig {
    /// AdamW with this run's weight decay (fresh, or to load a checkpoint's state into).
    pub fn optimizer(&self) -> ModuleOptimizer {
        AdamWConfig::new()
            .with_weight_decay(self.weight_decay)
            .init()
    }
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

/// How one call of [`train`](super::train) behaves (not part of the run's configuration).
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
