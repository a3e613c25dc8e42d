//! The run directory: per-epoch checkpoints (model, optimiser, state) written atomically, the
//! best model, the run's state, and loading them back for `--resume`, `--init` and export.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::files::{self, write_atomic};
use crate::model::{AgeGenderNet, NetConfig};
use crate::training::config::TrainState;

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

    /// The run's state as of its last epoch.
    pub fn read_state(&self) -> Result<TrainState> {
        files::read_json(&self.state())
    }

    pub fn write_state(&self, state: &TrainState) -> Result<()> {
        files::write_json(&self.state(), state)
    }

    /// Keeps `model` as the run's best, replacing the last one atomically.
    pub fn save_best(&self, model: &AgeGenderNet) -> Result<()> {
        let tmp = self.best_model().with_extension("bpk.tmp");
        save_model(model, &tmp)?;
        files::rename(&tmp, &self.best_model())
    }
}

fn save_model(model: &AgeGenderNet, path: &Path) -> Result<()> {
    model
        .clone()
        .into_record()
        .save(path)
        .map_err(|e| Error::Record {
            action: "saving",
            path: path.to_path_buf(),
            detail: format!("{e:?}"),
        })
}

/// Writes the checkpoint of `epoch` beside the last one, then points `latest` at it; older
/// checkpoints than the last two are removed.
pub fn save_checkpoint(
    run: &RunDir,
    epoch: usize,
    model: &AgeGenderNet,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<()> {
    let dir = run.checkpoints();
    files::create_dir_all(&dir)?;
    let name = format!("epoch-{epoch:03}");
    let tmp = dir.join(format!("{name}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    files::create_dir_all(&tmp)?;
    save_model(model, &tmp.join("model.bpk"))?;
    let optim_path = tmp.join("optim.bpk");
    optim
        .to_record()
        .save(&optim_path)
        .map_err(|e| Error::Record {
            action: "saving",
            path: optim_path.clone(),
            detail: format!("{e:?}"),
        })?;
    let state_path = tmp.join("state.json");
    std::fs::write(&state_path, files::to_json(state, &state_path)?).map_err(|source| {
        Error::Io {
            path: state_path.clone(),
            source,
        }
    })?;
    let fin = dir.join(&name);
    let _ = std::fs::remove_dir_all(&fin);
    files::rename(&tmp, &fin)?;
    // The pointer moves only once the whole checkpoint is in place.
    write_atomic(&run.latest_pointer(), name.as_bytes())?;
    // Keep the two newest checkpoints.
    if epoch >= 2 {
        let _ = std::fs::remove_dir_all(dir.join(format!("epoch-{:03}", epoch - 2)));
    }
    Ok(())
}

/// The last checkpoint of `run`, if it has one.
pub fn load_checkpoint(
    run: &RunDir,
    device: &Device,
) -> Result<Option<(AgeGenderNet, ModuleOptimizer, TrainState)>> {
    let Ok(name) = std::fs::read_to_string(run.latest_pointer()) else {
        return Ok(None);
    };
    let dir = run.checkpoints().join(name.trim());
    let state: TrainState = files::read_json(&dir.join("state.json"))?;
    let model = load_model(&state.config.net, &dir.join("model.bpk"), device)?;
    let optim_path = dir.join("optim.bpk");
    let record = OptimizerRecord::load(&optim_path).map_err(|e| Error::Record {
        action: "loading",
        path: optim_path.clone(),
        detail: format!("{e:?}"),
    })?;
    let optim = state.config.optimizer().load_record(record);
    Ok(Some((model, optim, state)))
}

/// Loads a model saved with `into_record().save()`.
pub fn load_model(net: &NetConfig, path: &Path, device: &Device) -> Result<AgeGenderNet> {
    let error = |action, e: &dyn std::fmt::Debug| Error::Record {
        action,
        path: path.to_path_buf(),
        detail: format!("{e:?}"),
    };
    let record = ModuleRecord::load(path).map_err(|e| error("loading", &e))?;
    net.init(device)
        .try_load_record(record)
        .map_err(|e| error("applying", &e))
}

/// The state of the run that `weights` (a run's `best.bpk`) came from, when its
/// `train_state.json` is still beside them.
pub fn source_state(weights: &Path) -> Option<TrainState> {
    RunDir(weights.parent()?.to_path_buf()).read_state().ok()
}
