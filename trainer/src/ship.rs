//! `export`: turns a training run into the files the page embeds (ONNX, model card, golden
//! pair, report), refusing to write anything that fails its own tract check.

use std::path::{Path, PathBuf};

use agegender::Classifier;
use agegender::estimate::{Calibration, Estimate};
use agegender::preprocess;
use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::dataset::{Dataset, Sample, Split};
use crate::export::{self, max_logit_diff};
use crate::metrics::{self, Metrics, Outcome};
use crate::plots;
use crate::train::{self, RunDir, TrainState, write_atomic};

/// Tolerance between the framework's outputs and tract's on the f32 export.
const F32_TOLERANCE: f32 = 1e-3;

/// Runs `classifier` over samples (aligned crops, or faces aligned as the page aligns them), as
/// `eval` does.
pub fn evaluate(classifier: &Classifier, samples: &[&Sample]) -> Result<Vec<Outcome>> {
    let crops: Vec<RgbImage> = samples
        .iter()
        .map(|s| s.input(classifier.input_size()))
        .collect();
    let estimates: Vec<Estimate> = classifier.classify(&crops)?;
    Ok(samples
        .iter()
        .zip(estimates)
        .map(|(s, estimate)| Outcome {
            name: s.name.clone(),
            label: s.label,
            estimate,
        })
        .collect())
}

/// `eval --predictions`: one JSON object per face (name, labels, estimate), the format
/// `train --teacher` reads.
pub fn prediction_lines(outcomes: &[Outcome]) -> Result<String> {
    let mut lines = String::new();
    for o in outcomes {
        lines += &serde_json::to_string(&serde_json::json!({
            "name": o.name,
            "age": o.label.age,
            "gender": o.label.gender,
            "race": o.label.race,
            "age_bin": o.label.age_bin,
            "estimate": o.estimate,
        }))?;
        lines.push('\n');
    }
    Ok(lines)
}

#[derive(Serialize)]
struct Variant {
    bytes: usize,
    /// Native tract, median over repeated runs on this machine, in milliseconds per face.
    native_ms_per_face: Speed,
    val: Option<Metrics>,
}

#[derive(Clone, Copy, Serialize)]
struct Speed {
    batch_1: f64,
    batch_16: f64,
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

#[derive(Serialize)]
struct Card {
    name: &'static str,
    file: &'static str,
    bytes: usize,
    input: serde_json::Value,
    outputs: serde_json::Value,
    calibration: Calibration,
    gender_calibration: Option<GenderCalibration>,
    architecture: crate::model::NetConfig,
    parameters: usize,
    quantization: serde_json::Value,
    training: serde_json::Value,
    metrics: serde_json::Value,
}

#[derive(Clone, Serialize, Deserialize)]
struct GenderCalibration {
    scale: f32,
    bias: f32,
    fitted_on: String,
    val_accuracy_before: f64,
    val_accuracy_after: f64,
    /// With several datasets: each one's own fit, for comparison (the joint one is applied).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    per_dataset: BTreeMap<String, PlattFit>,
}

/// A Platt fit on one dataset's validation faces.
#[derive(Clone, Serialize, Deserialize)]
struct PlattFit {
    scale: f32,
    bias: f32,
    faces: usize,
    /// Validation accuracy with this dataset's own fit, and with the applied joint fit.
    accuracy_own_fit: f64,
    accuracy_joint_fit: f64,
}

fn dataset_name(d: Dataset) -> &'static str {
    match d {
        Dataset::UtkFace => "utkface",
        Dataset::FairFace => "fairface",
    }
}

#[derive(Serialize)]
struct Golden {
    description: &'static str,
    variants: Vec<u32>,
    age_logits: Vec<Vec<f32>>,
    gender_logit: Vec<f32>,
    estimates: Vec<Estimate>,
    tolerance: serde_json::Value,
}

pub struct ExportArgs<'a> {
    pub run: &'a Path,
    pub out: &'a Path,
    pub samples: Option<&'a [Sample]>,
    pub data_label: String,
    pub allow_int8: bool,
    pub report_dir: Option<PathBuf>,
    /// Card of a model whose calibration this one takes instead of fitting its own on
    /// validation: needed for a run that trained on validation (`--fit-val`).
    pub calibration_from: Option<&'a Path>,
}

/// The calibrations of an earlier card, for a final refit that has seen validation: its own
/// validation outputs are fitted, not held out. The source should be the same recipe trained
/// without validation.
#[derive(Deserialize)]
struct BorrowedCalibration {
    calibration: Calibration,
    gender_calibration: Option<GenderCalibration>,
}

fn read_calibration(card: &Path) -> Result<BorrowedCalibration> {
    let text =
        std::fs::read_to_string(card).with_context(|| format!("reading {}", card.display()))?;
    let mut c: BorrowedCalibration = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a model card", card.display()))?;
    if let Some(g) = &mut c.gender_calibration {
        g.fitted_on = format!("taken from {}: {}", card.display(), g.fitted_on);
    }
    Ok(c)
}

pub fn export_run(a: ExportArgs<'_>) -> Result<()> {
    let run = RunDir(a.run.to_path_buf());
    let state: TrainState = serde_json::from_slice(
        &std::fs::read(run.state())
            .with_context(|| format!("reading {}", run.state().display()))?,
    )?;
    let net = &state.config.net;
    let device = Device::flex();
    let model = train::load_model(net, &run.best_model(), &device)?;
    let mut portable = export::fold(&model, net);

    let split = |which: Split| -> Vec<&Sample> {
        a.samples
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
    let borrowed = match a.calibration_from {
        Some(card) => Some(read_calibration(card)?),
        None if state.config.fit_val && !val.is_empty() => bail!(
            "{} trained on the validation split (--fit-val), so it cannot be calibrated there: pass --calibration-from the card of the same recipe trained without it",
            a.run.display()
        ),
        None => None,
    };

    // Gender calibration, fitted on validation and folded into the gender head so that every
    // consumer (page, eval, predict) reads calibrated probabilities from the file itself.
    let gender_calibration = if let Some(b) = &borrowed {
        if let Some(g) = &b.gender_calibration {
            portable.calibrate_gender(g.scale, g.bias);
        }
        b.gender_calibration.clone()
    } else if val.is_empty() {
        None
    } else {
        // One fit on the joint validation split: the page cannot tell which set a face is
        // like, so one calibration has to serve both. Each set's own fit is kept beside it.
        let crops: Vec<RgbImage> = val.iter().map(|s| s.input(net.input_size)).collect();
        let (_, logits) = train::predict_logits(&model, &crops, &device);
        let female: Vec<bool> = val.iter().map(|s| s.label.gender == 1).collect();
        let (scale, bias) = metrics::fit_platt(&logits, &female);
        let accuracy = |which: &dyn Fn(usize) -> bool, sc: f32, bi: f32| {
            let (mut right, mut n) = (0usize, 0usize);
            for (i, (&z, &f)) in logits.iter().zip(&female).enumerate() {
                if which(i) {
                    n += 1;
                    right += ((sc * z + bi >= 0.0) == f) as usize;
                }
            }
            right as f64 / n.max(1) as f64
        };
        let mut per_dataset = BTreeMap::new();
        for d in [Dataset::UtkFace, Dataset::FairFace] {
            let mine = |i: usize| val[i].dataset == d;
            let (z, f): (Vec<f32>, Vec<bool>) = (0..val.len())
                .filter(|&i| mine(i))
                .map(|i| (logits[i], female[i]))
                .unzip();
            if z.is_empty() || z.len() == val.len() {
                continue;
            }
            let (sc, bi) = metrics::fit_platt(&z, &f);
            per_dataset.insert(
                dataset_name(d).to_string(),
                PlattFit {
                    scale: sc,
                    bias: bi,
                    faces: z.len(),
                    accuracy_own_fit: accuracy(&mine, sc, bi),
                    accuracy_joint_fit: accuracy(&mine, scale, bias),
                },
            );
        }
        let fitted = GenderCalibration {
            scale,
            bias,
            fitted_on: format!(
                "validation split{} (Platt scaling, folded into the gender head)",
                if per_dataset.is_empty() {
                    ""
                } else {
                    " of all datasets together"
                }
            ),
            val_accuracy_before: accuracy(&|_| true, 1.0, 0.0),
            val_accuracy_after: accuracy(&|_| true, scale, bias),
            per_dataset,
        };
        for (name, fit) in &fitted.per_dataset {
            eprintln!(
                "  {name}: own fit scale {:.3} bias {:.3} (accuracy {:.4}); joint fit accuracy {:.4}",
                fit.scale, fit.bias, fit.accuracy_own_fit, fit.accuracy_joint_fit
            );
        }
        eprintln!(
            "gender calibration on validation: scale {scale:.3}, bias {bias:.3}; accuracy {:.4} -> {:.4}",
            fitted.val_accuracy_before, fitted.val_accuracy_after
        );
        portable.calibrate_gender(scale, bias);
        Some(fitted)
    };

    // Golden pair: the framework's own outputs on synthetic crops.
    let variants = vec![0u32, 1, 2];
    let goldens: Vec<RgbImage> = variants
        .iter()
        .map(|&v| preprocess::golden_pattern(v, net.input_size))
        .collect();
    let (ref_ages, mut ref_genders) = train::predict_logits(&model, &goldens, &device);
    if let Some(c) = &gender_calibration {
        ref_genders
            .iter_mut()
            .for_each(|g| *g = c.scale * *g + c.bias);
    }
    let reference: Vec<(Vec<f32>, f32)> = ref_ages.into_iter().zip(ref_genders).collect();

    let doc = format!(
        "agegender age/gender classifier; {} epochs on {}",
        state.epochs_done, a.data_label
    );
    let f32_bytes = export::encode(&export::to_onnx(&portable, false, &doc));
    let f32_model = Classifier::from_bytes(&f32_bytes)?;
    let diff = max_logit_diff(&reference, &f32_model.logits(&goldens)?);
    // Written so that a NaN difference also refuses the export.
    if diff.is_nan() || diff > F32_TOLERANCE {
        bail!(
            "the exported model disagrees with the trained one in tract (max diff {diff}); nothing written"
        );
    }
    let int8_bytes = export::encode(&export::to_onnx(&portable, true, &doc));
    let int8_model = Classifier::from_bytes(&int8_bytes)?;
    let int8_diff = max_logit_diff(&reference, &int8_model.logits(&goldens)?);
    eprintln!("tract check: f32 max diff {diff:.2e}, int8 max diff {int8_diff:.3}");
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
    let use_int8 = a.allow_int8
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
        (Some(b), _) => b.calibration,
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
        let r = metrics::bin_report(&o, "agegender.onnx", &a.data_label, "val");
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
        let r = metrics::bin_report(&o, "agegender.onnx", &a.data_label, "test");
        if let Some(dir) = &a.report_dir {
            std::fs::create_dir_all(dir)?;
            write_atomic(
                &dir.join("fairface_test_metrics.json"),
                &serde_json::to_vec_pretty(&r)?,
            )?;
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
        let r = metrics::report(&outcomes, "agegender.onnx", &a.data_label, "test");
        if let Some(dir) = &a.report_dir {
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
        description: "outputs of the trained network in burn (f32, before export, gender logit after the card's gender_calibration) on agegender::preprocess::golden_pattern(variant)",
        variants,
        age_logits: reference.iter().map(|r| r.0.clone()).collect(),
        gender_logit: reference.iter().map(|r| r.1).collect(),
        estimates: golden_estimates,
        tolerance: serde_json::json!({
            "f32_logits": F32_TOLERANCE,
            "shipped_max_logit_diff": if use_int8 { int8_diff } else { diff },
        }),
    };
    let s = net.input_size;
    let card = Card {
        name: "agegender",
        file: "agegender.onnx",
        bytes: bytes.len(),
        input: serde_json::json!({
            "name": agegender::estimate::INPUT_NAME,
            "shape": ["N", 3, s, s],
            "layout": "NCHW, RGB",
            "normalisation": "x / 127.5 - 1",
            "crop": format!("similarity warp of the face onto UTKFace's aligned 200x200 frame (eyes at {:?} and {:?}), resampled to {s}x{s} by agegender::preprocess::warp", preprocess::TEMPLATE_LEFT_EYE, preprocess::TEMPLATE_RIGHT_EYE),
        }),
        outputs: serde_json::json!({
            agegender::estimate::AGE_OUTPUT: "[N, 101] logits over ages 0..=100 years; the estimate is the softmax expectation, the range expectation +- interval_k standard deviations",
            agegender::estimate::GENDER_OUTPUT: "[N, 1] logit of P(female)",
        }),
        calibration,
        gender_calibration,
        architecture: net.clone(),
        parameters: portable
            .convs
            .iter()
            .map(|c| c.weight.len() + c.bias.len())
            .sum::<usize>()
            + portable.age.weight.len()
            + portable.age.bias.len()
            + portable.gender.weight.len()
            + portable.gender.bias.len(),
        quantization: serde_json::json!({
            "shipped": if use_int8 { "int8 weights, per-output-channel symmetric scales, dequantised by Cast+Mul (folded by tract at load)" } else { "f32" },
            "f32": Variant { bytes: f32_bytes.len(), native_ms_per_face: f32_speed, val: f32_val.as_ref().map(|v| v.0.clone()) },
            "int8": Variant { bytes: int8_bytes.len(), native_ms_per_face: int8_speed, val: int8_val.as_ref().map(|v| v.0.clone()) },
        }),
        training: serde_json::json!({
            "data": a.data_label,
            "data_licence": if state.config.fairface_weight.is_some() {
                "UTKFace: non-commercial research use only; FairFace (Kärkkäinen and Joo, WACV 2021): CC BY 4.0"
            } else {
                "UTKFace: non-commercial research use only"
            },
            "split": "FNV-1a 64 of the file name mod 100: 0-79 train, 80-89 validation, 90-99 test",
            "epochs_run": state.epochs_done,
            "best_epoch": state.best_epoch,
            "best_val_mae_in_training": state.best_val_mae,
            // After a final refit (--fit-val) validation figures are on faces it trained on.
            "validation_held_out": !state.config.fit_val,
            "config": state.config,
            "command": train_command(a.run, &state.config, a.calibration_from),
        }),
        metrics: serde_json::json!({
            "test": test_report.as_ref().map(|r| &r.overall),
            "fairface_val": fairface_val.as_ref().map(|r| &r.overall),
            "fairface_test": fairface_test.as_ref().map(|r| &r.overall),
            "fairface_test_race_gender_gap_points": fairface_test.as_ref().map(|r| r.race_gender_gap_points),
        }),
    };
    std::fs::create_dir_all(a.out)?;
    write_atomic(&a.out.join("agegender.onnx"), bytes)?;
    write_atomic(
        &a.out.join("agegender.json"),
        &serde_json::to_vec_pretty(&card)?,
    )?;
    write_atomic(
        &a.out.join("agegender.golden.json"),
        &serde_json::to_vec_pretty(&golden)?,
    )?;
    eprintln!(
        "wrote {} ({} bytes, {}), f32 would be {} bytes",
        a.out.join("agegender.onnx").display(),
        bytes.len(),
        if use_int8 { "int8" } else { "f32" },
        f32_bytes.len()
    );
    if let Some(r) = &test_report {
        println!("{}", serde_json::to_string_pretty(&r.overall)?);
    }
    if let Some(r) = &fairface_test {
        println!("{}", serde_json::to_string_pretty(&r.overall)?);
    }
    Ok(())
}

/// The command recorded in the card beside an exported model (`model.onnx` -> `model.json`).
fn card_command(onnx: &Path) -> Option<String> {
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(onnx.with_extension("json")).ok()?).ok()?;
    card.get("training")?
        .get("command")?
        .as_str()
        .map(String::from)
}

/// The commands that reproduce an exported model, as written into its card.
fn train_command(
    run: &Path,
    cfg: &crate::train::TrainConfig,
    calibration_from: Option<&Path>,
) -> String {
    format!(
        "{} && cargo run --release -p trainer -- export --run {} --data <utkface>{} --out model{}",
        train_steps(run, cfg, 0),
        run.display(),
        if cfg.fairface_weight.is_some() {
            " --fairface <fairface>"
        } else {
            ""
        },
        calibration_from
            .map(|p| format!(" --calibration-from {}", p.display()))
            .unwrap_or_default()
    )
}

/// The `train` calls that made `run`: those of the run its `--init` weights came from (read
/// from that run's state, when it is still there, or from the card beside an exported ONNX
/// model), then its own.
fn train_steps(run: &Path, cfg: &crate::train::TrainConfig, depth: usize) -> String {
    let source = cfg.init.as_ref().and_then(|p| {
        if crate::train::is_exported_model(p) {
            return card_command(p).map(|c| c + " && ");
        }
        let (dir, state) = (p.parent()?, crate::train::source_state(p)?);
        // Guards against a run whose weights came, through a cycle, from itself.
        (depth < 8).then(|| train_steps(dir, &state.config, depth + 1) + " && ")
    });
    let init = cfg
        .init
        .as_ref()
        .map(|p| format!(" --init {}", p.display()))
        .unwrap_or_default();
    let widths = match cfg.net.widths() {
        Some(w) if cfg.net.layers != crate::model::NetConfig::standard().layers => {
            format!(" --widths {}", w.map(|v| v.to_string()).join(","))
        }
        _ => String::new(),
    };
    let mut teachers: String = cfg
        .teachers
        .iter()
        .map(|p| format!(" --teacher {}", p.display()))
        .collect();
    if !teachers.is_empty() {
        teachers += &format!(" --teacher-weight {}", cfg.teacher_weight);
    }
    let fit_val = if cfg.fit_val { " --fit-val" } else { "" };
    let fixes = cfg
        .label_fixes
        .as_ref()
        .map(|p| format!(" --label-fixes {}", p.display()))
        .unwrap_or_default();
    let fairface = cfg
        .fairface_weight
        .map(|w| format!(" --fairface <fairface> --fairface-weight {w}"))
        .unwrap_or_default();
    format!(
        "{}cargo run --release -p trainer -- train --data <utkface>{fairface} --out {run} --epochs {} --lr {} --warmup-epochs {} --gender-weight {} --input-size {}{widths}{init}{teachers}{fit_val}{fixes}",
        source.unwrap_or_default(),
        cfg.epochs,
        cfg.lr,
        cfg.warmup_epochs,
        cfg.gender_weight,
        cfg.net.input_size,
        run = run.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::tests::tiny_config;

    #[test]
    fn prediction_lines_feed_distillation() {
        let outcome = |name: &str, p_female: f32| Outcome {
            name: name.into(),
            label: crate::dataset::Label {
                age: 30,
                gender: 1,
                race: Some(2),
                age_bin: None,
            },
            estimate: Estimate {
                age: 31.0,
                age_std: 3.0,
                age_low: 27.0,
                age_high: 35.0,
                p_female,
                gender_reliable: true,
            },
        };
        let text = prediction_lines(&[outcome("a.jpg", 0.8), outcome("b.jpg", 0.1)]).unwrap();
        assert_eq!(text.lines().count(), 2);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["name"], "a.jpg");
        assert_eq!(first["race"], 2);
        let path =
            std::env::temp_dir().join(format!("agegender-preds-{}.jsonl", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let teachers = crate::distill::load_teachers(std::slice::from_ref(&path)).unwrap();
        assert!((teachers["a.jpg"] - 0.8).abs() < 1e-5);
        assert!((teachers["b.jpg"] - 0.1).abs() < 1e-5);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn a_joint_export_calibrates_on_both_sets_and_scores_each_apart() {
        let _serial = crate::train::tests::SERIAL
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let data = crate::train::tests::fake_utk("joint-export", 60);
        let (mut samples, _) = crate::dataset::load_utk_dir(&data, None).unwrap();
        samples.extend(crate::train::tests::fake_fairface(90));
        let cfg = crate::train::TrainConfig {
            fairface_weight: Some(1.0),
            ..tiny_config(1)
        };
        let run = data.join("run");
        let quiet = crate::train::Control {
            quiet: true,
            ..Default::default()
        };
        crate::train::train(&samples, &cfg, &RunDir(run.clone()), quiet).unwrap();
        let (out, report) = (data.join("model"), data.join("report"));
        export_run(ExportArgs {
            run: &run,
            out: &out,
            samples: Some(&samples),
            data_label: "utk + ff".into(),
            allow_int8: true,
            report_dir: Some(report.clone()),
            calibration_from: None,
        })
        .unwrap();
        let card: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("agegender.json")).unwrap()).unwrap();
        let g = &card["gender_calibration"];
        assert!(g["fitted_on"].as_str().unwrap().contains("all datasets"));
        let per = &g["per_dataset"];
        let val = |d| {
            samples
                .iter()
                .filter(|s| s.split == Split::Val && s.dataset == d)
                .count()
        };
        assert_eq!(per["utkface"]["faces"], val(Dataset::UtkFace));
        assert_eq!(per["fairface"]["faces"], val(Dataset::FairFace));
        // UTKFace keeps its exact-age report; FairFace is scored on bins, apart.
        let test = |d| {
            samples
                .iter()
                .filter(|s| s.split == Split::Test && s.dataset == d)
                .count()
        };
        assert_eq!(card["metrics"]["test"]["n"], test(Dataset::UtkFace));
        assert_eq!(
            card["metrics"]["fairface_test"]["n"],
            test(Dataset::FairFace)
        );
        assert!(card["metrics"]["fairface_test"]["age_bin_accuracy"].is_f64());
        assert!(
            card["training"]["data_licence"]
                .as_str()
                .unwrap()
                .contains("CC BY 4.0")
        );
        assert!(
            card["training"]["command"]
                .as_str()
                .unwrap()
                .contains("--fairface <fairface> --fairface-weight 1")
        );
        let md = std::fs::read_to_string(report.join("fairface_test_metrics.md")).unwrap();
        assert!(md.contains("## By race") && md.contains("| all |"), "{md}");
        std::fs::remove_dir_all(&data).ok();
    }

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
        std::fs::write(
            crate::train::RunDir(source.clone()).state(),
            serde_json::to_vec(&state).unwrap(),
        )
        .unwrap();
        let mut fine = tiny_config(15);
        fine.net.input_size = 80;
        fine.init = Some(source.join("best.bpk"));
        let cmd = train_command(&dir.join("fine"), &fine, None);
        let steps: Vec<&str> = cmd.split(" && ").collect();
        assert_eq!(steps.len(), 3, "{cmd}");
        assert!(steps[0].contains("--epochs 30") && steps[0].contains("--input-size 64"));
        assert!(!steps[0].contains("--init"), "{cmd}");
        assert!(steps[1].contains("--epochs 15") && steps[1].contains("--input-size 80"));
        assert!(steps[1].contains(&format!("--init {}", source.join("best.bpk").display())));
        assert!(steps[2].contains("export"));
        assert!(!cmd.contains("--teacher"), "{cmd}");
        fine.teachers = vec![dir.join("a.jsonl"), dir.join("b.jsonl")];
        fine.teacher_weight = 0.5;
        let cmd = train_command(&dir.join("fine"), &fine, None);
        assert!(cmd.contains(" --teacher-weight 0.5"), "{cmd}");
        assert_eq!(cmd.matches(" --teacher ").count(), 2, "{cmd}");
        assert!(!cmd.contains("--widths"), "{cmd}");
        fine.net = crate::model::NetConfig::standard();
        assert!(!train_command(&dir, &fine, None).contains("--widths"));
        fine.net = crate::model::NetConfig::standard_with_widths([32, 64, 128, 224, 320]);
        assert!(train_command(&dir, &fine, None).contains(" --widths 32,64,128,224,320"));
        // A source run that is gone leaves only this run's own step.
        fine.init = Some(dir.join("gone/best.bpk"));
        assert_eq!(train_command(&dir, &fine, None).split(" && ").count(), 2);
        // An exported model as --init: its card's command comes first.
        let onnx = dir.join("shipped.onnx");
        std::fs::write(
            onnx.with_extension("json"),
            r#"{"training": {"command": "train A && export A"}}"#,
        )
        .unwrap();
        fine.init = Some(onnx.clone());
        let cmd = train_command(&dir, &fine, None);
        assert!(cmd.starts_with("train A && export A && "), "{cmd}");
        assert!(cmd.contains(&format!("--init {}", onnx.display())), "{cmd}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
