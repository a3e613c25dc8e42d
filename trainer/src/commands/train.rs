//! `train`: the options, the run configuration they make, and back: the options (and so the
//! command line) that remake a run's configuration, for the model card.

use std::path::{Path, PathBuf};

use crate::card::ModelCard;
use crate::commands::data::FairFaceArgs;
use crate::commands::shell;
use crate::dataset;
use crate::defaults;
use crate::error::{Error, Result};
use crate::files;
use crate::model::NetConfig;
use crate::training::checkpoint::{RunDir, source_state};
use crate::training::init::is_exported_model;
use crate::training::{self, Control, TrainConfig, TrainState};

/// The placeholders the card's command has for the dataset folders.
pub const UTKFACE_PLACEHOLDER: &str = "<utkface>";
pub const FAIRFACE_PLACEHOLDER: &str = "<fairface>";

/// How the card's commands call the trainer.
pub const CARGO_RUN: &str = "cargo run --release -p trainer --";

fn parse_weight(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s} is not a number >= 0")),
    }
}

fn parse_unit(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s} is not a number in [0, 1]")),
    }
}

#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct TrainArgs {
    /// Folder of `age_gender_race_*.jpg` files, a CSV with a `pixels` column, or a `path,age,gender` manifest.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub fairface: FairFaceArgs,
    /// How often each FairFace training face is drawn per epoch, against once for each
    /// `--data` face (a fraction draws a fresh subset each epoch).
    #[arg(long, default_value_t = defaults::FAIRFACE_WEIGHT, value_parser = parse_weight)]
    pub fairface_weight: f32,
    /// Run directory: checkpoints, best model, state and report.
    #[arg(long, default_value = defaults::RUN_DIR)]
    pub out: PathBuf,
    #[arg(long, default_value_t = defaults::EPOCHS)]
    pub epochs: usize,
    #[arg(long, default_value_t = defaults::BATCH_SIZE)]
    pub batch_size: usize,
    #[arg(long, default_value_t = defaults::LR)]
    pub lr: f64,
    #[arg(long, default_value_t = defaults::WEIGHT_DECAY)]
    pub weight_decay: f32,
    #[arg(long, default_value_t = defaults::PATIENCE)]
    pub patience: usize,
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,
    /// Use at most this many images (spread over the folder): for smoke runs.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The narrow test architecture instead of the shipped one.
    #[arg(long)]
    pub tiny: bool,
    #[arg(long)]
    pub no_augment: bool,
    /// Continue the run in `--out` from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Stop after this many epochs in this call; `--resume` continues later.
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Start from these weights (a run's `best.bpk`, or an exported `.onnx` such as the
    /// shipped model) instead of a random initialisation: a fine-tune or warm restart with a
    /// fresh optimiser and schedule.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Weight of the gender loss against the age loss.
    #[arg(long, default_value_t = defaults::GENDER_WEIGHT)]
    pub gender_weight: f32,
    /// Epochs of linear learning-rate warmup.
    #[arg(long, default_value_t = defaults::WARMUP_EPOCHS)]
    pub warmup_epochs: f64,
    /// Side of the square face crop the network takes, in pixels. The trunk is convolutional
    /// with a global pool, so `--init` weights trained at another size load and fine-tune.
    #[arg(long, default_value_t = defaults::INPUT_SIZE,
          value_parser = clap::value_parser!(u32).range(16..=256))]
    pub input_size: u32,
    /// Channel counts of the standard net's five stages (default 32,64,128,192,256). With
    /// `--init` from a narrower run, its weights are embedded and the new channels start at zero.
    #[arg(long, value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    /// Distil gender from these teachers' `eval --predictions` files (train split; several
    /// are averaged in logit space).
    #[arg(long = "teacher")]
    pub teachers: Vec<PathBuf>,
    /// Share of the teachers' probability in the gender target.
    #[arg(long, default_value_t = defaults::TEACHER_WEIGHT, value_parser = parse_unit)]
    pub teacher_weight: f32,
    /// Also train on the validation split (a final refit of a recipe chosen on validation):
    /// keeps the last epoch, no early stopping. Export then needs `--calibration-from`.
    #[arg(long)]
    pub fit_val: bool,
    /// CSV `name,gender` (gender m, f or drop) of training faces whose gender label is fixed
    /// or that are left out; validation and test labels are never changed.
    #[arg(long)]
    pub label_fixes: Option<PathBuf>,
    /// Quantisation-aware training: the forward pass sees the weights as `export
    /// --weight-bits` with the same bits will store them (a fine-tune from `--init` before
    /// exporting at fewer bits).
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=8))]
    pub qat_bits: Option<u32>,
}

impl TrainArgs {
    /// The run these options define.
    pub fn config(&self) -> Result<TrainConfig> {
        let net = match (self.tiny, &self.widths) {
            (true, _) => NetConfig::tiny(),
            (false, Some(w)) => NetConfig::standard_with_widths(
                w.as_slice()
                    .try_into()
                    .map_err(|_| Error::Refused("--widths takes five numbers".into()))?,
            ),
            (false, None) => NetConfig::standard(),
        };
        Ok(TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            weight_decay: self.weight_decay,
            warmup_epochs: self.warmup_epochs,
            patience: self.patience,
            seed: self.seed,
            label_sigma: defaults::LABEL_SIGMA,
            l1_weight: defaults::L1_WEIGHT,
            gender_weight: self.gender_weight,
            augment: !self.no_augment,
            net: NetConfig {
                input_size: self.input_size,
                ..net
            },
            init: self.init.clone(),
            teacher_weight: if self.teachers.is_empty() {
                0.0
            } else {
                self.teacher_weight
            },
            teachers: self.teachers.clone(),
            fit_val: self.fit_val,
            label_fixes: self.label_fixes.clone(),
            fairface_weight: self
                .fairface
                .fairface
                .is_some()
                .then_some(self.fairface_weight),
            qat_bits: self.qat_bits,
        })
    }

    /// The options that make `cfg` in `run`, with the datasets as placeholders; the options
    /// of one call (`--limit`, `--resume`, `--quiet`, `--stop-after`, the FairFace cache) at
    /// their defaults. The inverse of [`TrainArgs::config`] for every configuration it makes.
    pub fn of_config(cfg: &TrainConfig, run: &Path) -> Self {
        let net = &cfg.net;
        let same = |other: NetConfig| {
            NetConfig {
                input_size: net.input_size,
                ..other
            } == *net
        };
        let tiny = same(NetConfig::tiny());
        // A net the options cannot make (only tests build one) is written as the standard.
        let widths = if tiny || same(NetConfig::standard()) {
            None
        } else {
            net.widths()
                .filter(|w| same(NetConfig::standard_with_widths(*w)))
                .map(|w| w.to_vec())
        };
        Self {
            data: UTKFACE_PLACEHOLDER.into(),
            fairface: FairFaceArgs {
                fairface: cfg.fairface_weight.map(|_| FAIRFACE_PLACEHOLDER.into()),
                ..FairFaceArgs::default()
            },
            fairface_weight: cfg.fairface_weight.unwrap_or(defaults::FAIRFACE_WEIGHT),
            out: run.to_path_buf(),
            epochs: cfg.epochs,
            batch_size: cfg.batch_size,
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            patience: cfg.patience,
            seed: cfg.seed,
            limit: None,
            tiny,
            no_augment: !cfg.augment,
            resume: false,
            quiet: false,
            stop_after: None,
            init: cfg.init.clone(),
            gender_weight: cfg.gender_weight,
            warmup_epochs: cfg.warmup_epochs,
            input_size: net.input_size,
            widths,
            teachers: cfg.teachers.clone(),
            teacher_weight: if cfg.teachers.is_empty() {
                defaults::TEACHER_WEIGHT
            } else {
                cfg.teacher_weight
            },
            fit_val: cfg.fit_val,
            label_fixes: cfg.label_fixes.clone(),
            qat_bits: cfg.qat_bits,
        }
    }

    /// The words after `train` that give these options (every one that defines the run, also
    /// at its default, so the line replays the run when defaults change).
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut opt = |name: &str, value: String| {
            a.push(format!("--{name}"));
            a.push(value);
        };
        let path = |p: &Path| p.display().to_string();
        opt("data", path(&self.data));
        if let Some(ff) = &self.fairface.fairface {
            opt("fairface", path(ff));
            opt("fairface-weight", self.fairface_weight.to_string());
        }
        if let Some(p) = &self.fairface.align_cache {
            opt("align-cache", path(p));
        }
        if let Some(s) = self.fairface.align_working_size {
            opt("align-working-size", s.to_string());
        }
        opt("out", path(&self.out));
        opt("epochs", self.epochs.to_string());
        opt("batch-size", self.batch_size.to_string());
        opt("lr", self.lr.to_string());
        opt("weight-decay", self.weight_decay.to_string());
        opt("patience", self.patience.to_string());
        opt("seed", self.seed.to_string());
        if let Some(n) = self.limit {
            opt("limit", n.to_string());
        }
        if let Some(n) = self.stop_after {
            opt("stop-after", n.to_string());
        }
        if let Some(p) = &self.init {
            opt("init", path(p));
        }
        opt("gender-weight", self.gender_weight.to_string());
        opt("warmup-epochs", self.warmup_epochs.to_string());
        opt("input-size", self.input_size.to_string());
        if let Some(w) = &self.widths {
            let w: Vec<String> = w.iter().map(|v| v.to_string()).collect();
            opt("widths", w.join(","));
        }
        for t in &self.teachers {
            opt("teacher", path(t));
        }
        if !self.teachers.is_empty() {
            opt("teacher-weight", self.teacher_weight.to_string());
        }
        if let Some(p) = &self.label_fixes {
            opt("label-fixes", path(p));
        }
        if let Some(b) = self.qat_bits {
            opt("qat-bits", b.to_string());
        }
        let flags = [
            ("tiny", self.tiny),
            ("no-augment", self.no_augment),
            ("fit-val", self.fit_val),
            ("resume", self.resume),
            ("quiet", self.quiet),
        ];
        a.extend(
            flags
                .into_iter()
                .filter(|f| f.1)
                .map(|(name, _)| format!("--{name}")),
        );
        a
    }

    /// Loads the data and trains (or resumes) the run.
    pub fn run(&self) -> Result<TrainState> {
        let cfg = self.config()?;
        let (mut samples, report) = dataset::load_any(&self.data, self.limit)?;
        eprintln!("{}", report.summary());
        files::create_dir_all(&self.out)?;
        let ff = self.fairface.load(&self.out, self.limit)?;
        files::write_json(&self.out.join("load_report.json"), &report)?;
        if let Some((ff_samples, ff_report)) = ff {
            files::write_json(&self.out.join("fairface_load_report.json"), &ff_report)?;
            samples.extend(ff_samples);
        }
        let control = Control {
            resume: self.resume,
            quiet: self.quiet,
            stop_after: self.stop_after,
        };
        let state = training::train(&samples, &cfg, &RunDir(self.out.clone()), control)?;
        let loss = state
            .best_val_loss
            .map(|l| format!(" (validation loss {l:.3}, which chose it)"))
            .unwrap_or_default();
        eprintln!(
            "best validation MAE {:.3} at epoch {}{loss}",
            state.best_val_mae, state.best_epoch
        );
        Ok(state)
    }
}

/// The `train` calls that made `run` (configuration `cfg`), joined by `&&`: those of the run
/// its `--init` weights came from (read from that run's state, when it is still there, or
/// from the card beside an exported ONNX model), then its own.
pub fn train_steps(run: &Path, cfg: &TrainConfig) -> String {
    steps(run, cfg, 0)
}

fn steps(run: &Path, cfg: &TrainConfig, depth: usize) -> String {
    let source = cfg.init.as_ref().and_then(|p| {
        if is_exported_model(p) {
            let card = ModelCard::read(&ModelCard::path_beside(p)).ok()?;
            return Some(card.training.command + " && ");
        }
        let (dir, state) = (p.parent()?, source_state(p)?);
        // Guards against a run whose weights came, through a cycle, from itself.
        (depth < 8).then(|| steps(dir, &state.config, depth + 1) + " && ")
    });
    format!(
        "{}{CARGO_RUN} train {}",
        source.unwrap_or_default(),
        shell::join(&TrainArgs::of_config(cfg, run).to_args())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{committed_card, tiny_config};
    use crate::training::TrainState;

    #[test]
    fn the_command_includes_the_run_the_weights_came_from() {
        let dir = std::env::temp_dir().join(format!("agegender-cmd-{}", std::process::id()));
        let source = dir.join("source");
        std::fs::create_dir_all(&source).unwrap();
        let state = TrainState {
            config: tiny_config(30),
            epochs_done: 30,
            best_val_mae: 5.0,
            best_epoch: 30,
            history: vec![],
            stopped_early: false,
            best_val_loss: None,
        };
        RunDir(source.clone()).write_state(&state).unwrap();
        let mut fine = tiny_config(15);
        fine.net.input_size = 80;
        fine.init = Some(source.join("best.bpk"));
        let cmd = train_steps(&dir.join("fine"), &fine);
        let steps: Vec<&str> = cmd.split(" && ").collect();
        assert_eq!(steps.len(), 2, "{cmd}");
        assert!(steps[0].contains("--epochs 30") && steps[0].contains("--input-size 64"));
        assert!(!steps[0].contains("--init"), "{cmd}");
        assert!(steps[1].contains("--epochs 15") && steps[1].contains("--input-size 80"));
        assert!(steps[1].contains(&format!("--init {}", source.join("best.bpk").display())));
        assert!(!cmd.contains("--teacher"), "{cmd}");
        fine.teachers = vec![dir.join("a.jsonl"), dir.join("b.jsonl")];
        fine.teacher_weight = 0.5;
        let cmd = train_steps(&dir.join("fine"), &fine);
        assert!(cmd.contains(" --teacher-weight 0.5"), "{cmd}");
        assert_eq!(cmd.matches(" --teacher ").count(), 2, "{cmd}");
        assert!(
            !cmd.contains("--widths") && cmd.contains(" --tiny"),
            "{cmd}"
        );
        fine.net = NetConfig::standard();
        assert!(!train_steps(&dir, &fine).contains("--widths"));
        fine.net = NetConfig::standard_with_widths([32, 64, 128, 224, 320]);
        assert!(train_steps(&dir, &fine).contains(" --widths 32,64,128,224,320"));
        // A source run that is gone leaves only this run's own step.
        fine.init = Some(dir.join("gone/best.bpk"));
        assert_eq!(train_steps(&dir, &fine).split(" && ").count(), 1);
        // An exported model as --init: its card's command comes first.
        let onnx = dir.join("shipped.onnx");
        let mut card = ModelCard::read(&committed_card()).unwrap();
        card.training.command = "train A && export A".into();
        card.write(&ModelCard::path_beside(&onnx)).unwrap();
        fine.init = Some(onnx.clone());
        let cmd = train_steps(&dir, &fine);
        assert!(cmd.starts_with("train A && export A && "), "{cmd}");
        assert!(cmd.contains(&format!("--init {}", onnx.display())), "{cmd}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn options_and_configuration_are_each_others_inverse() {
        let run = Path::new("runs/x");
        let mut configs = vec![tiny_config(3)];
        let mut c = tiny_config(12);
        c.net = NetConfig::standard_with_widths([16, 32, 64, 96, 128]);
        c.net.input_size = 80;
        c.augment = false;
        c.fit_val = true;
        c.fairface_weight = Some(0.25);
        c.teachers = vec!["t1.jsonl".into(), "t2.jsonl".into()];
        c.teacher_weight = 0.7;
        c.init = Some("model/agegender.onnx".into());
        c.label_fixes = Some("fixes.csv".into());
        configs.push(c);
        configs.push(TrainConfig {
            net: NetConfig::standard(),
            ..tiny_config(30)
        });
        for cfg in configs {
            let args = TrainArgs::of_config(&cfg, run);
            assert_eq!(args.config().unwrap(), cfg);
        }
    }
}
