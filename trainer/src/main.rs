//! `trainer`: trains, evaluates, exports and runs the age and gender model.

mod dataset;
mod export;
mod model;
mod train;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Train, evaluate, export and run the agegender model")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train on a UTKFace-style folder, a pixel CSV or a manifest CSV.
    Train(TrainArgs),
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Folder of `age_gender_race_*.jpg` files, a CSV with a `pixels` column, or a `path,age,gender` manifest.
    #[arg(long)]
    data: PathBuf,
    /// Run directory: checkpoints, best model, state and report.
    #[arg(long, default_value = "runs/utkface")]
    out: PathBuf,
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0.02)]
    weight_decay: f32,
    #[arg(long, default_value_t = 6)]
    patience: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use at most this many images (spread over the folder): for smoke runs.
    #[arg(long)]
    limit: Option<usize>,
    /// The narrow test architecture instead of the shipped one.
    #[arg(long)]
    tiny: bool,
    #[arg(long)]
    no_augment: bool,
    /// Continue the run in `--out` from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(a) => {
            let (samples, report) = dataset::load_any(&a.data, a.limit)?;
            eprintln!(
                "loaded {} of {} ({} skipped: {} malformed names, {} undecodable, {} bad rows; {} without race)",
                report.loaded,
                report.seen,
                report.skipped(),
                report.malformed_names.len(),
                report.undecodable.len(),
                report.bad_rows.len(),
                report.missing_race
            );
            let cfg = train::TrainConfig {
                epochs: a.epochs,
                batch_size: a.batch_size,
                lr: a.lr,
                weight_decay: a.weight_decay,
                warmup_epochs: 1.0,
                patience: a.patience,
                seed: a.seed,
                label_sigma: 2.0,
                l1_weight: 0.5,
                gender_weight: 3.0,
                augment: !a.no_augment,
                net: if a.tiny { model::NetConfig::tiny() } else { model::NetConfig::standard() },
            };
            std::fs::create_dir_all(&a.out)?;
            train::write_atomic(&a.out.join("load_report.json"), &serde_json::to_vec_pretty(&report)?)?;
            let state = train::train(&samples, &cfg, &train::RunDir(a.out.clone()), a.resume, a.quiet)?;
            eprintln!("best validation MAE {:.3} at epoch {}", state.best_val_mae, state.best_epoch);
        }
    }
    Ok(())
}
