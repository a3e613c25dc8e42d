//! `eval`: scores an exported ONNX model through tract, exactly as the page runs it, on one
//! split of each dataset (UTKFace-style data as exact ages, FairFace as bins); prints JSON.

use std::path::{Path, PathBuf};

use agegender::Classifier;
use serde::Serialize;

use crate::card::ModelCard;
use crate::commands::data::FairFaceArgs;
use crate::dataset::{self, Sample, Split};
use crate::defaults;
use crate::error::{Error, Result};
use crate::evaluate::{evaluate, prediction_lines};
use crate::files;
use crate::metrics;
use crate::plots;
use crate::training::checkpoint::RunDir;

/// Which faces `eval` scores.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SplitChoice {
    #[default]
    Test,
    Val,
    Train,
    All,
}

impl SplitChoice {
    pub fn contains(self, s: Split) -> bool {
        match self {
            Self::All => true,
            Self::Train => s == Split::Train,
            Self::Val => s == Split::Val,
            Self::Test => s == Split::Test,
        }
    }

    /// The name the reports give the split.
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Train => "train",
            Self::Val => "val",
            Self::Test => "test",
        }
    }
}

#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct EvalArgs {
    /// The ONNX model to evaluate.
    #[arg(long, default_value = defaults::MODEL)]
    pub model: PathBuf,
    /// UTKFace-style folder, pixel CSV or `path,age,gender` manifest (faces as aligned crops).
    #[arg(long, required_unless_present = "fairface")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub fairface: FairFaceArgs,
    /// Which split to evaluate.
    #[arg(long, value_enum, default_value_t = SplitChoice::Test)]
    pub split: SplitChoice,
    /// Folder for the PNG plots and the JSON report.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Training run whose learning curves go into the report.
    #[arg(long)]
    pub run: Option<PathBuf>,
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also write one JSON line per face (name, labels, estimate) for error analysis.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
}

impl EvalArgs {
    /// Each dataset's split scored on its own; prints the reports as JSON.
    pub fn run(&self) -> Result<()> {
        let mut classifier = Classifier::from_bytes(&files::read(&self.model)?)?;
        let card = ModelCard::path_beside(&self.model);
        if card.exists() {
            classifier = classifier.with_calibration(ModelCard::read(&card)?.calibration);
        }
        let split = self.split;
        let in_split = |s: &&Sample| split.contains(s.split);
        let model_name = self.model.display().to_string();
        let mut out = serde_json::Map::new();
        let mut predictions = Vec::new();
        if let Some(data) = &self.data {
            let (samples, load) = dataset::load_any(data, self.limit)?;
            let wanted: Vec<&Sample> = samples.iter().filter(in_split).collect();
            let outcomes = evaluate(&classifier, &wanted)?;
            let data = data.display().to_string();
            let report = metrics::report(&outcomes, &model_name, &data, split.name());
            if let Some(dir) = &self.report {
                let state = match &self.run {
                    Some(run) => Some(RunDir(run.clone()).read_state()?),
                    None => None,
                };
                let history = state.as_ref().map(|s| s.history.as_slice());
                plots::write_report(dir, &outcomes, &report, history, "eval.json")?;
            }
            out.insert("load".into(), value(&load)?);
            out.insert("report".into(), value(&report)?);
            predictions.extend(outcomes);
        }
        let cache_dir = self
            .run
            .clone()
            .unwrap_or_else(|| PathBuf::from(defaults::EVAL_CACHE_DIR));
        if let Some((samples, load)) = self.fairface.load(&cache_dir, self.limit)? {
            let wanted: Vec<&Sample> = samples.iter().filter(in_split).collect();
            let outcomes = evaluate(&classifier, &wanted)?;
            let data = self
                .fairface
                .fairface
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            let report = metrics::bin_report(&outcomes, &model_name, &data, split.name());
            if let Some(dir) = &self.report {
                files::create_dir_all(dir)?;
                files::write_json(&dir.join("fairface_eval.json"), &report)?;
                files::write_atomic(
                    &dir.join("fairface_eval.md"),
                    metrics::bin_report_md(&report).as_bytes(),
                )?;
            }
            let mut fairface = serde_json::Map::new();
            fairface.insert("load".into(), value(&load)?);
            fairface.insert("report".into(), value(&report)?);
            out.insert("fairface".into(), fairface.into());
            predictions.extend(outcomes);
        }
        if let Some(path) = &self.predictions {
            let lines = prediction_lines(&predictions).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?;
            files::write_atomic(path, lines.as_bytes())?;
        }
        let text = files::to_json(&out, Path::new(STDOUT))?;
        println!("{}", String::from_utf8_lossy(&text));
        Ok(())
    }
}

/// What JSON errors name as the place of `eval`'s printed report.
const STDOUT: &str = "<eval output>";

fn value<T: Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|source| Error::Json {
        path: STDOUT.into(),
        source,
    })
}
