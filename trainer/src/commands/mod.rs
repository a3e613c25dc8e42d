//! The subcommands: their options (clap) and what each one runs. `main.rs` only parses and
//! dispatches.

pub mod data;
pub mod eval;
pub mod export;
pub mod predict;
pub mod shell;
pub mod train;

use clap::{Parser, Subcommand};

use crate::error::Result;

#[derive(Parser, Debug)]
#[command(
    name = "trainer",
    version,
    about = "Train, evaluate, export and run the agegender model"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, PartialEq)]
pub enum Command {
    /// Train on a UTKFace-style folder, a pixel CSV or a manifest CSV.
    Train(train::TrainArgs),
    /// Evaluate an exported ONNX model through tract, exactly as the page runs it; prints JSON.
    Eval(eval::EvalArgs),
    /// Estimate age and gender for images; one JSON line per image.
    Predict(predict::PredictArgs),
    /// Export a run's best model to ONNX (f32, and int8 when it keeps accuracy) with its card.
    Export(export::ExportArgs),
}

impl Cli {
    pub fn run(self) -> Result<()> {
        match self.command {
            Command::Train(a) => a.run().map(|_| ()),
            Command::Eval(a) => a.run(),
            Command::Predict(a) => a.run(),
            Command::Export(a) => a.run(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::commands::export::ExportArgs;
    use crate::commands::train::{CARGO_RUN, TrainArgs, train_steps};
    use crate::fixtures::tiny_config;
    use crate::model::NetConfig;
    use crate::training::TrainConfig;

    /// Parses one step of a card's command (`cargo run ... -- <subcommand> ...`).
    fn parse(step: &str) -> Command {
        let words = step
            .strip_prefix(CARGO_RUN)
            .unwrap_or_else(|| panic!("{step}"));
        let argv = std::iter::once("trainer".to_string()).chain(shell::split(words));
        Cli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{step}: {e}"))
            .command
    }

    #[test]
    fn the_cards_train_command_parses_back_to_the_same_options() {
        let mut cfg = tiny_config(12);
        cfg.lr = 5e-4;
        cfg.batch_size = 24;
        cfg.weight_decay = 0.03;
        cfg.patience = 2;
        cfg.seed = 1234;
        cfg.augment = false;
        cfg.fit_val = true;
        cfg.fairface_weight = Some(0.25);
        cfg.teachers = vec!["a b/t1.jsonl".into(), "t2.jsonl".into()];
        cfg.teacher_weight = 0.7;
        cfg.label_fixes = Some("trainer/utkface-label-fixes.csv".into());
        cfg.init = Some("gone/best.bpk".into());
        let run = Path::new("runs/it's here");
        let wide = TrainConfig {
            net: NetConfig::standard_with_widths([16, 32, 64, 96, 128]),
            ..cfg.clone()
        };
        let plain = TrainConfig {
            net: NetConfig::standard(),
            ..tiny_config(30)
        };
        for cfg in [cfg, wide, plain] {
            let line = train_steps(run, &cfg);
            let expected = TrainArgs::of_config(&cfg, run);
            assert_eq!(parse(&line), Command::Train(expected.clone()), "{line}");
            assert_eq!(expected.config().unwrap(), cfg);
        }
        // Every option of a call, also those a run's configuration does not hold.
        let mut all = TrainArgs::of_config(&tiny_config(2), run);
        all.fairface.align_cache = Some("cache.json".into());
        all.fairface.align_working_size = Some(320);
        all.limit = Some(100);
        all.resume = true;
        all.quiet = true;
        all.stop_after = Some(1);
        let line = format!("{CARGO_RUN} train {}", shell::join(&all.to_args()));
        assert_eq!(parse(&line), Command::Train(all));
    }

    #[test]
    fn the_cards_export_command_parses_back_to_the_same_options() {
        let args = ExportArgs {
            run: "runs/r".into(),
            out: "model".into(),
            data: Some("<utkface>".into()),
            fairface: Default::default(),
            no_int8: true,
            weight_bits: 5,
            report: None,
            calibration_from: Some("model/agegender.json".into()),
        };
        let line = format!("{CARGO_RUN} export {}", shell::join(&args.to_args()));
        assert_eq!(parse(&line), Command::Export(args));
    }
}
