//! `trainer`: trains, evaluates, exports and runs the age and gender model.

mod dataset;
mod distill;
mod export;
mod fairface;
mod import;
mod metrics;
mod model;
mod plots;
mod predict;
mod relabel;
mod ship;
mod train;

use std::path::{Path, PathBuf};

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
    /// Evaluate an exported ONNX model through tract, exactly as the page runs it; prints JSON.
    Eval(EvalArgs),
    /// Estimate age and gender for images; one JSON line per image.
    Predict(PredictArgs),
    /// Export a run's best model to ONNX (f32, and int8 when it keeps accuracy) with its card.
    Export(ExportArgs),
}

#[derive(clap::Args)]
struct EvalArgs {
    /// The ONNX model to evaluate.
    #[arg(long, default_value = "model/agegender.onnx")]
    model: PathBuf,
    /// UTKFace-style folder, pixel CSV or `path,age,gender` manifest (faces as aligned crops).
    #[arg(long, required_unless_present = "fairface")]
    data: Option<PathBuf>,
    #[command(flatten)]
    fairface: FairFaceArgs,
    /// Which split to evaluate: test, val, train or all.
    #[arg(long, default_value = "test")]
    split: String,
    /// Folder for the PNG plots and the JSON report.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Training run whose learning curves go into the report.
    #[arg(long)]
    run: Option<PathBuf>,
    #[arg(long)]
    limit: Option<usize>,
    /// Also write one JSON line per face (name, labels, estimate) for error analysis.
    #[arg(long)]
    predictions: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PredictArgs {
    /// Image files.
    paths: Vec<PathBuf>,
    /// A CSV whose first column lists image paths (e.g. `path,age,gender`).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Treat each image as an already aligned face crop: no detection.
    #[arg(long)]
    crops: bool,
    /// The ONNX classifier (default: the embedded shipped model).
    #[arg(long)]
    model: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Training run directory (holds best.bpk and train_state.json).
    #[arg(long)]
    run: PathBuf,
    /// Where to write agegender.onnx, agegender.json and agegender.golden.json.
    #[arg(long, default_value = "model")]
    out: PathBuf,
    /// Dataset for choosing f32/int8 and calibrating ranges on validation, and test metrics.
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    fairface: FairFaceArgs,
    /// Ship f32 even if int8 keeps accuracy.
    #[arg(long)]
    no_int8: bool,
    /// Folder for the report (plots and test metrics).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Take the age-range and gender calibration from this model card instead of fitting them
    /// on validation: for a run trained with `--fit-val`; give the card of the same recipe
    /// trained without it.
    #[arg(long)]
    calibration_from: Option<PathBuf>,
}

/// The FairFace folder, next to `--data`.
#[derive(clap::Args)]
struct FairFaceArgs {
    /// FairFace folder (`labels.csv` and the images it lists): faces found and aligned by the
    /// page's detector, ages as bins.
    #[arg(long)]
    fairface: Option<PathBuf>,
    /// The detections of the FairFace faces, reused while the detector is unchanged
    /// (default: `fairface_faces.json` in the run directory).
    #[arg(long)]
    align_cache: Option<PathBuf>,
    /// Detect FairFace faces on a canvas of this side instead of the page's (640): FairFace's
    /// 96x96 crops are never enlarged, so they meet the detector at the same scale on a
    /// smaller, faster canvas. Part of the cache key.
    #[arg(long)]
    align_working_size: Option<u32>,
}

impl FairFaceArgs {
    /// Loads FairFace when asked, with its cache in `--align-cache` or else in `run_dir`.
    fn load(
        &self,
        run_dir: &Path,
        limit: Option<usize>,
    ) -> Result<Option<(Vec<dataset::Sample>, dataset::LoadReport)>> {
        let Some(dir) = &self.fairface else {
            return Ok(None);
        };
        let cache = self
            .align_cache
            .clone()
            .unwrap_or_else(|| run_dir.join("fairface_faces.json"));
        let (samples, report) = fairface::load(dir, &cache, limit, self.align_working_size)?;
        eprintln!("FairFace: {}", report.summary());
        Ok(Some((samples, report)))
    }
}

fn parse_weight(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s} is not a number >= 0")),
    }
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Folder of `age_gender_race_*.jpg` files, a CSV with a `pixels` column, or a `path,age,gender` manifest.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    fairface: FairFaceArgs,
    /// How often each FairFace training face is drawn per epoch, against once for each
    /// `--data` face (a fraction draws a fresh subset each epoch).
    #[arg(long, default_value_t = 1.0, value_parser = parse_weight)]
    fairface_weight: f32,
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
    /// Stop after this many epochs in this call; `--resume` continues later.
    #[arg(long)]
    stop_after: Option<usize>,
    /// Start from these weights (a run's `best.bpk`, or an exported `.onnx` such as the
    /// shipped model) instead of a random initialisation: a fine-tune or warm restart with a
    /// fresh optimiser and schedule.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Weight of the gender loss against the age loss.
    #[arg(long, default_value_t = 3.0)]
    gender_weight: f32,
    /// Epochs of linear learning-rate warmup.
    #[arg(long, default_value_t = 1.0)]
    warmup_epochs: f64,
    /// Side of the square face crop the network takes, in pixels. The trunk is convolutional
    /// with a global pool, so `--init` weights trained at another size load and fine-tune.
    #[arg(long, default_value_t = agegender::preprocess::INPUT_SIZE,
          value_parser = clap::value_parser!(u32).range(16..=256))]
    input_size: u32,
    /// Channel counts of the standard net's five stages (default 32,64,128,192,256). With
    /// `--init` from a narrower run, its weights are embedded and the new channels start at zero.
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// Distil gender from these teachers' `eval --predictions` files (train split; several
    /// are averaged in logit space).
    #[arg(long = "teacher")]
    teachers: Vec<PathBuf>,
    /// Share of the teachers' probability in the gender target.
    #[arg(long, default_value_t = 0.5, value_parser = parse_unit)]
    teacher_weight: f32,
    /// Also train on the validation split (a final refit of a recipe chosen on validation):
    /// keeps the last epoch, no early stopping. Export then needs `--calibration-from`.
    #[arg(long)]
    fit_val: bool,
    /// CSV `name,gender` (gender m, f or drop) of training faces whose gender label is fixed
    /// or that are left out; validation and test labels are never changed.
    #[arg(long)]
    label_fixes: Option<PathBuf>,
}

fn parse_unit(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s} is not a number in [0, 1]")),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(a) => {
            let (mut samples, report) = dataset::load_any(&a.data, a.limit)?;
            eprintln!("{}", report.summary());
            std::fs::create_dir_all(&a.out)?;
            let ff = a.fairface.load(&a.out, a.limit)?;
            let cfg = train::TrainConfig {
                epochs: a.epochs,
                batch_size: a.batch_size,
                lr: a.lr,
                weight_decay: a.weight_decay,
                warmup_epochs: a.warmup_epochs,
                patience: a.patience,
                seed: a.seed,
                label_sigma: 2.0,
                l1_weight: 0.5,
                gender_weight: a.gender_weight,
                augment: !a.no_augment,
                net: model::NetConfig {
                    input_size: a.input_size,
                    ..match (a.tiny, &a.widths) {
                        (true, _) => model::NetConfig::tiny(),
                        (false, Some(w)) => model::NetConfig::standard_with_widths(
                            w.as_slice()
                                .try_into()
                                .map_err(|_| anyhow::anyhow!("--widths takes five numbers"))?,
                        ),
                        (false, None) => model::NetConfig::standard(),
                    }
                },
                init: a.init.clone(),
                teacher_weight: if a.teachers.is_empty() {
                    0.0
                } else {
                    a.teacher_weight
                },
                teachers: a.teachers.clone(),
                fit_val: a.fit_val,
                label_fixes: a.label_fixes.clone(),
                fairface_weight: ff.is_some().then_some(a.fairface_weight),
            };
            train::write_atomic(
                &a.out.join("load_report.json"),
                &serde_json::to_vec_pretty(&report)?,
            )?;
            if let Some((ff_samples, ff_report)) = ff {
                train::write_atomic(
                    &a.out.join("fairface_load_report.json"),
                    &serde_json::to_vec_pretty(&ff_report)?,
                )?;
                samples.extend(ff_samples);
            }
            let state = train::train(
                &samples,
                &cfg,
                &train::RunDir(a.out.clone()),
                train::Control {
                    resume: a.resume,
                    quiet: a.quiet,
                    stop_after: a.stop_after,
                },
            )?;
            let loss = state
                .best_val_loss
                .map(|l| format!(" (validation loss {l:.3}, which chose it)"))
                .unwrap_or_default();
            eprintln!(
                "best validation MAE {:.3} at epoch {}{loss}",
                state.best_val_mae, state.best_epoch
            );
        }
        Command::Export(a) => {
            let mut loaded = a
                .data
                .as_deref()
                .map(|d| dataset::load_any(d, None))
                .transpose()?
                .map(|l| l.0);
            if let Some((ff, _)) = a.fairface.load(&a.run, None)? {
                loaded.get_or_insert_with(Vec::new).extend(ff);
            }
            let data_label = [a.data.as_ref(), a.fairface.fairface.as_ref()]
                .into_iter()
                .flatten()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" + ");
            ship::export_run(ship::ExportArgs {
                run: &a.run,
                out: &a.out,
                samples: loaded.as_deref(),
                data_label: if data_label.is_empty() {
                    "unknown".into()
                } else {
                    data_label
                },
                allow_int8: !a.no_int8,
                report_dir: a.report,
                calibration_from: a.calibration_from.as_deref(),
            })?;
        }
        Command::Eval(a) => eval(a)?,
        Command::Predict(a) => {
            predict::run(&a.paths, a.manifest.as_deref(), a.crops, a.model.as_deref())?
        }
    }
    Ok(())
}

/// `eval`: each dataset's split scored on its own (UTKFace as exact ages, FairFace as bins).
fn eval(a: EvalArgs) -> Result<()> {
    let bytes = std::fs::read(&a.model)?;
    let card = a.model.with_extension("json");
    let mut classifier = agegender::Classifier::from_bytes(&bytes)?;
    if let Ok(json) = std::fs::read_to_string(&card) {
        classifier =
            classifier.with_calibration(agegender::classify::calibration_from_card(&json)?);
    }
    let in_split = |s: &&dataset::Sample| match a.split.as_str() {
        "all" => true,
        "train" => s.split == dataset::Split::Train,
        "val" => s.split == dataset::Split::Val,
        _ => s.split == dataset::Split::Test,
    };
    let model_name = a.model.display().to_string();
    let mut out = serde_json::Map::new();
    let mut predictions = Vec::new();
    if let Some(data) = &a.data {
        let (samples, load) = dataset::load_any(data, a.limit)?;
        let wanted: Vec<&dataset::Sample> = samples.iter().filter(in_split).collect();
        let outcomes = ship::evaluate(&classifier, &wanted)?;
        let report = metrics::report(
            &outcomes,
            &model_name,
            &data.display().to_string(),
            &a.split,
        );
        if let Some(dir) = &a.report {
            let state: Option<train::TrainState> = match &a.run {
                Some(run) => Some(serde_json::from_slice(&std::fs::read(
                    train::RunDir(run.clone()).state(),
                )?)?),
                None => None,
            };
            let history = state.as_ref().map(|s| s.history.as_slice());
            plots::write_report(dir, &outcomes, &report, history, "eval.json")?;
        }
        out.insert("load".into(), serde_json::to_value(&load)?);
        out.insert("report".into(), serde_json::to_value(&report)?);
        predictions.extend(outcomes);
    }
    let cache_dir = a.run.clone().unwrap_or_else(|| PathBuf::from("runs"));
    if let Some((samples, load)) = a.fairface.load(&cache_dir, a.limit)? {
        let wanted: Vec<&dataset::Sample> = samples.iter().filter(in_split).collect();
        let outcomes = ship::evaluate(&classifier, &wanted)?;
        let data = a
            .fairface
            .fairface
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let report = metrics::bin_report(&outcomes, &model_name, &data, &a.split);
        if let Some(dir) = &a.report {
            std::fs::create_dir_all(dir)?;
            train::write_atomic(
                &dir.join("fairface_eval.json"),
                &serde_json::to_vec_pretty(&report)?,
            )?;
            train::write_atomic(
                &dir.join("fairface_eval.md"),
                metrics::bin_report_md(&report).as_bytes(),
            )?;
        }
        out.insert(
            "fairface".into(),
            serde_json::json!({ "load": load, "report": report }),
        );
        predictions.extend(outcomes);
    }
    if let Some(path) = &a.predictions {
        train::write_atomic(path, ship::prediction_lines(&predictions)?.as_bytes())?;
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
