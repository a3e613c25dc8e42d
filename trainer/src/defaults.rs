//! Every default of the command line in one place: the options' defaults and the values that
//! the command line does not set.

/// `train --out`.
pub const RUN_DIR: &str = "runs/utkface";
/// `export --out`: the folder the page embeds from.
pub const MODEL_DIR: &str = "model";
/// `eval --model`.
pub const MODEL: &str = "model/agegender.onnx";
/// Where `eval` keeps the FairFace detection cache without `--run`.
pub const EVAL_CACHE_DIR: &str = "runs";
/// The FairFace detection cache's file name inside a run directory.
pub const ALIGN_CACHE: &str = "fairface_faces.json";

pub const EPOCHS: usize = 30;
pub const BATCH_SIZE: usize = 64;
pub const LR: f64 = 2e-3;
pub const WEIGHT_DECAY: f32 = 0.02;
pub const PATIENCE: usize = 6;
pub const SEED: u64 = 42;
pub const GENDER_WEIGHT: f32 = 3.0;
pub const WARMUP_EPOCHS: f64 = 1.0;
pub const TEACHER_WEIGHT: f32 = 0.5;
pub const FAIRFACE_WEIGHT: f32 = 1.0;
/// Bits of the exported int8 weights. The model of b973b53 requantised: UTKFace validation MAE
/// 4.787 and gender 94.57% at 6 bits against 4.794 and 94.57% at 8 (5 bits: 4.827, 94.40%; 4:
/// 5.211, 93.23%); FairFace validation gender 87.3% and age bins 51.6% against 87.5% and 52.2%
/// (5 bits: 87.0%, 51.9%); the weights 216 KB gzipped against 289 KB (5 bits 184, 4 bits 141).
pub const WEIGHT_BITS: u32 = 6;
/// `train --input-size` (the page's input size).
pub const INPUT_SIZE: u32 = agegender::preprocess::INPUT_SIZE;

/// Standard deviation (years) of the Gaussian age label distribution; not an option.
pub const LABEL_SIGMA: f32 = 2.0;
/// Weight of the L1 loss on the expected age; not an option.
pub const L1_WEIGHT: f32 = 0.5;
