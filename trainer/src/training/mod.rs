//! Training: the configuration, the batcher, the loss, checkpoints, `--init` weights, the
//! training targets' adjustments (label fixes, distillation) and the loop that ties them.

pub mod batcher;
pub mod checkpoint;
pub mod config;
pub mod distill;
pub mod init;
pub mod label_fixes;
pub mod loss;
pub mod train_loop;

pub use config::{Control, EpochStats, TrainConfig, TrainState};
pub use train_loop::train;
