//! A final refit on train+validation (`train --fit-val`): it keeps its last epoch, and export
//! refuses to calibrate it on the validation faces it has seen unless given a card to take the
//! calibration from.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trainer::card::{CARD_FILE, ModelCard};
use trainer::fixtures::write_fake_utk as fake_utk;

fn trainer(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.output().unwrap()
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["train", "--tiny", "--quiet", "--batch-size", "16"];
    args.extend(extra);
    let o = trainer(&args, &[("--data", data), ("--out", out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("train_state.json")).unwrap()).unwrap()
}

fn card(dir: &Path) -> ModelCard {
    ModelCard::read(&dir.join(CARD_FILE)).unwrap()
}

/// Images seen in an epoch (throughput times duration).
fn seen(state: &serde_json::Value) -> f64 {
    let h = &state["history"][0];
    (h["images_per_second"].as_f64().unwrap() * h["seconds"].as_f64().unwrap()).round()
}

#[test]
fn a_refit_on_validation_keeps_its_last_epoch_and_borrows_its_calibration() {
    let root: PathBuf =
        std::env::temp_dir().join(format!("agegender-fitval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    fake_utk(&data, 160);

    // Patience 1 with a zero learning rate: a plain run stops early, a refit runs on.
    let plain = train(
        &data,
        &root.join("plain"),
        &["--epochs", "3", "--patience", "1", "--lr", "0"],
    );
    let refit = train(
        &data,
        &root.join("refit"),
        &["--epochs", "3", "--patience", "1", "--lr", "0", "--fit-val"],
    );
    assert_eq!(plain["stopped_early"], true);
    assert_eq!(plain["best_epoch"], 1);
    assert_eq!(refit["config"]["fit_val"], true);
    assert_eq!(refit["stopped_early"], false);
    assert_eq!(refit["best_epoch"], 3);
    assert!(
        seen(&refit) > seen(&plain),
        "{} {}",
        seen(&refit),
        seen(&plain)
    );

    // The plain run exports with its own calibration, fitted on validation.
    let o = trainer(
        &["export"],
        &[
            ("--run", &root.join("plain")),
            ("--data", &data),
            ("--out", &root.join("plain-model")),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let source = card(&root.join("plain-model"));
    assert!(source.training.validation_held_out);

    // The refit cannot be calibrated on faces it trained on ...
    let o = trainer(
        &["export"],
        &[
            ("--run", &root.join("refit")),
            ("--data", &data),
            ("--out", &root.join("refit-model")),
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--calibration-from"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!root.join("refit-model/agegender.onnx").exists());

    // ... and takes the plain run's calibration when given its card.
    let source_card = root.join("plain-model").join(CARD_FILE);
    let o = trainer(
        &["export"],
        &[
            ("--run", &root.join("refit")),
            ("--data", &data),
            ("--out", &root.join("refit-model")),
            ("--calibration-from", &source_card),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let refit_card = card(&root.join("refit-model"));
    assert_eq!(refit_card.calibration, source.calibration);
    let (g, source_g) = (
        refit_card.gender_calibration.as_ref().unwrap(),
        source.gender_calibration.as_ref().unwrap(),
    );
    assert_eq!(g.scale, source_g.scale);
    assert!(g.fitted_on.starts_with("taken from"));
    assert!(!refit_card.training.validation_held_out);
    let command = &refit_card.training.command;
    assert!(command.contains(" --fit-val"), "{command}");
    assert!(command.contains(" --calibration-from "), "{command}");

    // A card that is not one is a clear error.
    let o = trainer(
        &["export"],
        &[
            ("--run", &root.join("refit")),
            ("--data", &data),
            ("--out", &root.join("bad")),
            ("--calibration-from", &data.join("nope.json")),
        ],
    );
    assert!(!o.status.success());
    std::fs::remove_dir_all(&root).ok();
}
