//! `export`: turns a training run into the files the page embeds (ONNX, model card, golden
//! outputs, report), refusing to write anything that fails its own tract check.

use std::path::{Path, PathBuf};

use agegender::Classifier;
use agegender::estimate::{Calibration, Estimate};
use agegender::preprocess;
use burn::tensor::Device;
use image::RgbImage;

use crate::calibration;
use crate::card::{
    CARD_FILE, CardMetrics, GOLDEN_FILE, GRAPH_FILE, Golden, Input, MODEL_FILE, ModelCard, Outputs,
    Quantization, Speed, Tolerance, Training, Variant,
};
use crate::commands::data::FairFaceArgs;
use crate::commands::shell;
use crate::commands::train::{CARGO_RUN, FAIRFACE_PLACEHOLDER, UTKFACE_PLACEHOLDER, train_steps};
use crate::dataset::{self, Dataset, Sample, Split};
use crate::defaults;
use crate::error::{Error, Result};
use crate::evaluate::{evaluate, max_logit_diff};
use crate::files::{self, write_atomic};
use crate::metrics::{self, Metrics, Outcome};
use crate::model::predict_logits;
use crate::onnx::write::{encode, to_onnx};
use crate::plots;
use crate::portable::fold;
use crate::training::checkpoint::{RunDir, load_model};

/// Tolerance between the framework's outputs and tract's on the f32 export.
const F32_TOLERANCE: f32 = 1e-3;

#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct ExportArgs {
    /// Training run directory (holds best.bpk and train_state.json).
    #[arg(long)]
    pub run: PathBuf,
    /// Where to write agegender.onnx, the graph file the page embeds (agegender.graph),
    /// agegender.json and agegender.golden.json.
    #[arg(long, default_value = defaults::MODEL_DIR)]
    pub out: PathBuf,
    /// Dataset for choosing f32/int8 and calibrating ranges on validation, and test metrics.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub fairface: FairFaceArgs,
    /// Ship f32 even if int8 keeps accuracy.
    #[arg(long)]
    pub no_int8: bool,
    /// Bits of the quantised weights (stored as int8): fewer make the page's gzipped download
    /// smaller; the quantised model ships only if it keeps accuracy on validation.
    #[arg(long, default_value_t = defaults::WEIGHT_BITS,
          value_parser = clap::value_parser!(u32).range(4..=8))]
    pub weight_bits: u32,
    /// Folder for the report (plots and test metrics).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Take the age-range and gender calibration from this model card instead of fitting them
    /// on validation: for a run trained with `--fit-val`; give the card of the same recipe
    /// trained without it.
    #[arg(long)]
    pub calibration_from: Option<PathBuf>,
}

impl ExportArgs {
    /// Loads the data named by the options and exports the run.
    pub fn run(&self) -> Result<()> {
        let mut loaded = self
            .data
            .as_deref()
            .map(|d| dataset::load_any(d, None))
            .transpose()?
            .map(|l| l.0);
        if let Some((ff, _)) = self.fairface.load(&self.run, None)? {
            loaded.get_or_insert_with(Vec::new).extend(ff);
        }
        let data_label = [self.data.as_ref(), self.fairface.fairface.as_ref()]
            .into_iter()
            .flatten()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" + ");
        let data_label = if data_label.is_empty() {
            "unknown".into()
        } else {
            data_label
        };
        export(self, loaded.as_deref(), &data_label)
    }

    /// The words after `export` for the card's command: the datasets as placeholders, the
    /// FairFace cache and the report left out (they do not change the model).
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec!["--run".to_string(), self.run.display().to_string()];
        if self.data.is_some() {
            a.extend(["--data".into(), UTKFACE_PLACEHOLDER.into()]);
        }
        if self.fairface.fairface.is_some() {
            a.extend(["--fairface".into(), FAIRFACE_PLACEHOLDER.into()]);
        }
        a.extend(["--out".into(), self.out.display().to_string()]);
        if self.no_int8 {
            a.push("--no-int8".into());
        }
        if self.weight_bits != defaults::WEIGHT_BITS {
            a.extend(["--weight-bits".into(), self.weight_bits.to_string()]);
        }
        if let Some(p) = &self.calibration_from {
            a.extend(["--calibration-from".into(), p.display().to_string()]);
        }
        a
    }
}

/// Median time per face of `classifier.logits` at batch 1 and 16 (after a warm-up run).
fn time_per_face(classifier: &Classifier) -> Result<Speed> {
    let median_ms = |batch: usize, runs: usize| -> Result<f64> {
        let crops: Vec<RgbImage> = (0..batch)
            .map(|i| preprocess::golden_pattern(i as u32 % 3, classifier.input_size()))
            .collect();
        classifier.logits(&crops)?;
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = std::time::Instant::now();
            classifier.logits(&crops)?;
            times.push(t.elapsed().as_secs_f64() * 1e3 / batch as f64);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[runs / 2])
    };
    Ok(Speed {
        batch_1: median_ms(1, 41)?,
        batch_16: median_ms(16, 11)?,
    })
}

/// Exports `a.run` with `samples` (validation for calibration and the int8 choice, test for
/// the figures) into `a.out`.
pub fn export(a: &ExportArgs, samples: Option<&[Sample]>, data_label: &str) -> Result<()> {
    let run = RunDir(a.run.clone());
    let state = run.read_state()?;
    let net = &state.config.net;
    let device = Device::flex();
    let model = load_model(net, &run.best_model(), &device)?;
    let mut portable = fold(&model, net);

    let split = |which: Split| -> Vec<&Sample> {
        samples
            .map(|s| s.iter().filter(|x| x.split == which).collect())
            .unwrap_or_default()
    };
    let (val, test) = (split(Split::Val), split(Split::Test));
    // Exact ages (UTKFace) and bins (FairFace) are scored apart.
    fn of<'a>(set: &[&'a Sample], d: Dataset) -> Vec<&'a Sample> {
        set.iter().copied().filter(|s| s.dataset == d).collect()
    }
    let (val_exact, val_ff) = (of(&val, Dataset::UtkFace), of(&val, Dataset::FairFace));
    let (test_exact, test_ff) = (of(&test, Dataset::UtkFace), of(&test, Dataset::FairFace));
    let borrowed = match &a.calibration_from {
        Some(card) => Some(calibration::borrowed(card)?),
        None if state.config.fit_val && !val.is_empty() => {
            return Err(Error::Refused(format!(
                "{} trained on the validation split (--fit-val), so it cannot be calibrated there: pass --calibration-from the card of the same recipe trained without it",
                a.run.display()
            )));
        }
        None => None,
    };

    // Gender calibration, fitted on validation and folded into the gender head so that every
    // consumer (page, eval, predict) reads calibrated probabilities from the file itself.
    let gender_calibration = if let Some((_, g)) = &borrowed {
        if let Some(g) = g {
            portable.calibrate_gender(g.scale, g.bias);
        }
        g.clone()
    } else if val.is_empty() {
        None
    } else {
        let crops: Vec<RgbImage> = val.iter().map(|s| s.input(net.input_size)).collect();
        let (_, logits) = predict_logits(&model, &crops, &device);
        let fitted = calibration::fit_gender(&val, &logits);
        for (name, fit) in &fitted.per_dataset {
            eprintln!(
                "  {name}: own fit scale {:.3} bias {:.3} (accuracy {:.4}); joint fit accuracy {:.4}",
                fit.scale, fit.bias, fit.accuracy_own_fit, fit.accuracy_joint_fit
            );
        }
        eprintln!(
            "gender calibration on validation: scale {:.3}, bias {:.3}; accuracy {:.4} -> {:.4}",
            fitted.scale, fitted.bias, fitted.val_accuracy_before, fitted.val_accuracy_after
        );
        portable.calibrate_gender(fitted.scale, fitted.bias);
        Some(fitted)
    };

    // Golden pair: the framework's own outputs on synthetic crops.
    let variants = vec![0u32, 1, 2];
    let goldens: Vec<RgbImage> = variants
        .iter()
        .map(|&v| preprocess::golden_pattern(v, net.input_size))
        .collect();
    let (ref_ages, mut ref_genders) = predict_logits(&model, &goldens, &device);
    if let Some(c) = &gender_calibration {
        ref_genders
            .iter_mut()
            .for_each(|g| *g = c.scale * *g + c.bias);
    }
    let reference: Vec<(Vec<f32>, f32)> = ref_ages.into_iter().zip(ref_genders).collect();

    let doc = format!(
        "agegender age/gender classifier; {} epochs on {}",
        state.epochs_done, data_label
    );
    let f32_bytes = encode(&to_onnx(&portable, None, &doc));
    let f32_model = Classifier::from_bytes(&f32_bytes)?;
    let diff = max_logit_diff(&reference, &f32_model.logits(&goldens)?);
    // Written so that a NaN difference also refuses the export.
    if diff.is_nan() || diff > F32_TOLERANCE {
        return Err(Error::ExportMismatch { diff });
    }
    let int8_bytes = encode(&to_onnx(&portable, Some(a.weight_bits), &doc));
    let int8_model = Classifier::from_bytes(&int8_bytes)?;
    let int8_diff = max_logit_diff(&reference, &int8_model.logits(&goldens)?);
    eprintln!(
        "tract check: f32 max diff {diff:.2e}, int8 ({} bits) max diff {int8_diff:.3}",
        a.weight_bits
    );
    let (f32_speed, int8_speed) = (time_per_face(&f32_model)?, time_per_face(&int8_model)?);
    eprintln!(
        "native tract ms/face (batch 1, 16): f32 {:.2}, {:.2}; int8 {:.2}, {:.2}",
        f32_speed.batch_1, f32_speed.batch_16, int8_speed.batch_1, int8_speed.batch_16
    );

    let val_metrics = |c: &Classifier| -> Result<Option<(Metrics, Vec<Outcome>)>> {
        if val_exact.is_empty() {
            return Ok(None);
        }
        let o = evaluate(c, &val_exact)?;
        Ok(Some((metrics::metrics(&o.iter().collect::<Vec<_>>()), o)))
    };
    let ff_val_metrics = |c: &Classifier| -> Result<Option<(metrics::BinMetrics, Vec<Outcome>)>> {
        if val_ff.is_empty() {
            return Ok(None);
        }
        let o = evaluate(c, &val_ff)?;
        Ok(Some((
            metrics::bin_metrics(&o.iter().collect::<Vec<_>>()),
            o,
        )))
    };
    let f32_val = val_metrics(&f32_model)?;
    let int8_val = val_metrics(&int8_model)?;
    let (f32_ff, int8_ff) = (ff_val_metrics(&f32_model)?, ff_val_metrics(&int8_model)?);
    // Ship int8 only where it keeps accuracy on validation (or, without data, when allowed).
    let keeps_fairface = match (&f32_ff, &int8_ff) {
        (Some((f, _)), Some((q, _))) => {
            q.gender_accuracy >= f.gender_accuracy - 0.005
                && q.age_bin_accuracy >= f.age_bin_accuracy - 0.01
        }
        _ => true,
    };
    let use_int8 = !a.no_int8
        && keeps_fairface
        && match (&f32_val, &int8_val) {
            (Some((f, _)), Some((q, _))) => {
                q.age_mae <= f.age_mae + 0.1 && q.gender_accuracy >= f.gender_accuracy - 0.005
            }
            (None, None) if f32_ff.is_some() => true,
            _ => int8_diff < 0.5,
        };
    let (bytes, chosen, chosen_val) = if use_int8 {
        (&int8_bytes, int8_model, &int8_val)
    } else {
        (&f32_bytes, f32_model, &f32_val)
    };
    let calibration = match (&borrowed, chosen_val) {
        (Some((c, _)), _) => *c,
        (None, Some((_, outcomes))) => {
            let (k, c) = metrics::calibrate_interval(outcomes, 0.8);
            Calibration {
                interval_k: k,
                coverage: c,
            }
        }
        (None, None) => Calibration::default(),
    };
    let chosen = chosen.with_calibration(calibration);

    // The age range is fitted on exact ages only; on FairFace its promise is checked against
    // the bins (`range_overlaps_bin`) in the validation and test figures.
    let fairface_val = if val_ff.is_empty() {
        None
    } else {
        let o = evaluate(&chosen, &val_ff)?;
        let r = metrics::bin_report(&o, MODEL_FILE, data_label, "val");
        eprintln!(
            "FairFace validation: gender {:.4} (shown {:.4}, {:.3} withheld), age bins {:.4}",
            r.overall.gender_accuracy,
            r.overall.gender_accuracy_when_shown,
            r.overall.gender_withheld_share,
            r.overall.age_bin_accuracy
        );
        Some(r)
    };
    let fairface_test = if test_ff.is_empty() {
        None
    } else {
        let o = evaluate(&chosen, &test_ff)?;
        let r = metrics::bin_report(&o, MODEL_FILE, data_label, "test");
        if let Some(dir) = &a.report {
            files::create_dir_all(dir)?;
            files::write_json(&dir.join("fairface_test_metrics.json"), &r)?;
            write_atomic(
                &dir.join("fairface_test_metrics.md"),
                metrics::bin_report_md(&r).as_bytes(),
            )?;
        }
        Some(r)
    };
    let mut test_report = None;
    if !test_exact.is_empty() {
        let outcomes = evaluate(&chosen, &test_exact)?;
        let r = metrics::report(&outcomes, MODEL_FILE, data_label, "test");
        if let Some(dir) = &a.report {
            plots::write_report(
                dir,
                &outcomes,
                &r,
                Some(&state.history),
                "test_metrics.json",
            )?;
        }
        test_report = Some(r);
    }

    let golden_estimates: Vec<Estimate> = reference
        .iter()
        .map(|(l, g)| agegender::estimate::decode(l, *g, &calibration))
        .collect();
    let golden = Golden {
        description: "outputs of the trained network in burn (f32, before export, gender logit after the card's gender_calibration) on agegender::preprocess::golden_pattern(variant)".into(),
        variants,
        age_logits: reference.iter().map(|r| r.0.clone()).collect(),
        gender_logit: reference.iter().map(|r| r.1).collect(),
        estimates: golden_estimates,
        tolerance: Tolerance {
            f32_logits: F32_TOLERANCE,
            shipped_max_logit_diff: if use_int8 { int8_diff } else { diff },
        },
    };
    let command = format!(
        "{} && {CARGO_RUN} export {}",
        train_steps(&a.run, &state.config),
        shell::join(&a.to_args())
    );
    let card = ModelCard {
        name: "agegender".into(),
        file: MODEL_FILE.into(),
        bytes: bytes.len(),
        input: Input::of_size(net.input_size),
        outputs: Outputs::default(),
        calibration,
        gender_calibration,
        architecture: net.clone(),
        parameters: portable.parameters(),
        quantization: Quantization {
            f32: Variant {
                bits: None,
                bytes: f32_bytes.len(),
                native_ms_per_face: f32_speed,
                val: f32_val.map(|v| v.0),
            },
            int8: Variant {
                bits: Some(a.weight_bits),
                bytes: int8_bytes.len(),
                native_ms_per_face: int8_speed,
                val: int8_val.map(|v| v.0),
            },
            shipped: if use_int8 {
                format!(
                    "{}-bit weights stored as int8, per-output-channel symmetric scales, dequantised by Cast+Mul (folded by tract at load)",
                    a.weight_bits
                )
            } else {
                "f32".into()
            },
        },
        training: Training {
            best_epoch: state.best_epoch,
            best_val_mae_in_training: state.best_val_mae,
            command,
            config: state.config.clone(),
            data: data_label.into(),
            data_licence: if state.config.fairface_weight.is_some() {
                "UTKFace: non-commercial research use only; FairFace (Kärkkäinen and Joo, WACV 2021): CC BY 4.0"
            } else {
                "UTKFace: non-commercial research use only"
            }
            .into(),
            epochs_run: state.epochs_done,
            split: "FNV-1a 64 of the file name mod 100: 0-79 train, 80-89 validation, 90-99 test"
                .into(),
            // After a final refit (--fit-val) validation figures are on faces it trained on.
            validation_held_out: !state.config.fit_val,
        },
        metrics: CardMetrics {
            fairface_test: fairface_test.as_ref().map(|r| r.overall.clone()),
            fairface_test_race_gender_gap_points: fairface_test
                .as_ref()
                .map(|r| r.race_gender_gap_points),
            fairface_val: fairface_val.as_ref().map(|r| r.overall.clone()),
            test: test_report.as_ref().map(|r| r.overall.clone()),
        },
    };
    files::create_dir_all(&a.out)?;
    write_atomic(&a.out.join(MODEL_FILE), bytes)?;
    write_atomic(
        &a.out.join(GRAPH_FILE),
        &agegender::classify::graph_file(bytes)?,
    )?;
    card.write(&a.out.join(CARD_FILE))?;
    files::write_json(&a.out.join(GOLDEN_FILE), &golden)?;
    eprintln!(
        "wrote {} ({} bytes, {}), f32 would be {} bytes",
        a.out.join(MODEL_FILE).display(),
        bytes.len(),
        if use_int8 { "int8" } else { "f32" },
        f32_bytes.len()
    );
    let stdout = Path::new("<stdout>");
    if let Some(r) = &test_report {
        println!(
            "{}",
            String::from_utf8_lossy(&files::to_json(&r.overall, stdout)?)
        );
    }
    if let Some(r) = &fairface_test {
        println!(
            "{}",
            String::from_utf8_lossy(&files::to_json(&r.overall, stdout)?)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{QUIET, SERIAL, fake_fairface, fake_utk, tiny_config};
    use crate::training::{TrainConfig, train};

    #[test]
    fn a_joint_export_calibrates_on_both_sets_and_scores_each_apart() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let data = fake_utk("joint-export", 60);
        let (mut samples, _) = crate::dataset::load_utk_dir(&data, None).unwrap();
        samples.extend(fake_fairface(90));
        let cfg = TrainConfig {
            fairface_weight: Some(1.0),
            ..tiny_config(1)
        };
        let run = data.join("run");
        train(&samples, &cfg, &RunDir(run.clone()), QUIET).unwrap();
        let (out, report) = (data.join("model"), data.join("report"));
        let args = ExportArgs {
            run: run.clone(),
            out: out.clone(),
            data: None,
            fairface: FairFaceArgs::default(),
            no_int8: false,
            weight_bits: crate::defaults::WEIGHT_BITS,
            report: Some(report.clone()),
            calibration_from: None,
        };
        export(&args, Some(&samples), "utk + ff").unwrap();
        let card = ModelCard::read(&out.join(CARD_FILE)).unwrap();
        let g = card.gender_calibration.as_ref().unwrap();
        assert!(g.fitted_on.contains("all datasets"));
        let per = &g.per_dataset;
        let count = |split, d| {
            samples
                .iter()
                .filter(|s| s.split == split && s.dataset == d)
                .count()
        };
        assert_eq!(per["utkface"].faces, count(Split::Val, Dataset::UtkFace));
        assert_eq!(per["fairface"].faces, count(Split::Val, Dataset::FairFace));
        // UTKFace keeps its exact-age report; FairFace is scored on bins, apart.
        let m = &card.metrics;
        assert_eq!(
            m.test.as_ref().unwrap().n,
            count(Split::Test, Dataset::UtkFace)
        );
        let ff_test = m.fairface_test.as_ref().unwrap();
        assert_eq!(ff_test.n, count(Split::Test, Dataset::FairFace));
        assert!(ff_test.age_bin_accuracy.is_finite());
        assert!(card.training.data_licence.contains("CC BY 4.0"));
        let command = &card.training.command;
        assert!(
            command.contains("--fairface <fairface> --fairface-weight 1"),
            "{command}"
        );
        assert!(
            command.ends_with(&format!(
                " export --run {} --out {}",
                run.display(),
                out.display()
            )),
            "{command}"
        );
        let md = std::fs::read_to_string(report.join("fairface_test_metrics.md")).unwrap();
        assert!(md.contains("## By race") && md.contains("| all |"), "{md}");
        std::fs::remove_dir_all(&data).ok();
    }
}
