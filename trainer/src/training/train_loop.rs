//! The training loop: epochs of augmented batches (a producer thread feeds the optimiser),
//! AdamW with warmup and cosine decay, validation after each epoch, early stopping, the best
//! model and a checkpoint per epoch, and `--resume`.

use std::sync::mpsc::sync_channel;

use agegender::estimate::{self, AGE_BINS, Calibration};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::dataset::{Dataset, Sample, Split};
use crate::error::{Error, Result};
use crate::files;
use crate::model::{AgeGenderNet, predict_logits};
use crate::training::batcher::{Batch, epoch_order, make_batch};
use crate::training::checkpoint::{RunDir, load_checkpoint, save_checkpoint};
use crate::training::config::{Control, EpochStats, TrainConfig, TrainState};
use crate::training::init::load_init;
use crate::training::loss::{AgeReadout, AgeTargets, age_interval, batch_loss, face_loss};
use crate::training::{distill, label_fixes};

/// Forward and backward for one batch: (gradients, loss, each face's expected age).
fn grad_step(
    model: &AgeGenderNet,
    b: Batch,
    device: &Device,
    ages: &Tensor<2>,
    cfg: &TrainConfig,
) -> (GradientsParams, f32, Vec<f32>) {
    let (x, targets) = b.into_tensors(cfg.net.input_size as usize, device);
    let (age_logits, gender_logit) = model.forward(x);
    let (loss, expected) = batch_loss(age_logits, gender_logit, targets, ages, cfg);
    let loss_v = loss
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f32::NAN);
    let expected: Vec<f32> = expected.into_data().try_to_vec().unwrap_or_default();
    let grads = GradientsParams::from_grads(loss.backward(), model);
    (grads, loss_v, expected)
}

/// The learning rate at `step`: linear warmup, then a cosine decay to 2% of `cfg.lr`.
fn lr_at(cfg: &TrainConfig, step: usize, steps_per_epoch: usize) -> f64 {
    let total = (cfg.epochs * steps_per_epoch).max(1) as f64;
    let warm = (cfg.warmup_epochs * steps_per_epoch as f64).max(1.0);
    let s = step as f64;
    let warmup = (s / warm).min(1.0);
    let t = ((s - warm) / (total - warm).max(1.0)).clamp(0.0, 1.0);
    cfg.lr * warmup * (0.02 + 0.98 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// Validation figures, decoded exactly as the page decodes.
struct Validation {
    /// Age MAE and gender accuracy on the faces with exact ages.
    mae: f64,
    gender_acc: f64,
    /// FairFace's age-bin and gender accuracy, when it has validation faces.
    bin_acc: Option<f64>,
    fairface_gender_acc: Option<f64>,
    /// The training loss (no augmentation) over all validation faces.
    loss: f64,
}

fn validate(
    model: &AgeGenderNet,
    crops: &[RgbImage],
    samples: &[&Sample],
    table: &AgeTargets,
    cfg: &TrainConfig,
    device: &Device,
) -> Validation {
    let (ages, genders) = predict_logits(model, crops, device);
    let cal = Calibration::default();
    let mut readout = AgeReadout::default();
    let (mut correct, mut ff_correct, mut loss) = ([0usize; 2], 0usize, 0.0f64);
    for ((a, &g), s) in ages.iter().zip(&genders).zip(samples) {
        let e = estimate::decode(a, g, &cal);
        let (lo, hi) = age_interval(s);
        readout.add(e.age, lo, hi, s.label.age_bin);
        let right = ((e.p_female >= 0.5) == (s.label.gender == 1)) as usize;
        match s.label.age_bin {
            Some(_) => ff_correct += right,
            None => correct[0] += right,
        }
        correct[1] += 1;
        loss += face_loss(a, g, e.age, s, table, cfg);
    }
    let exact = readout.exact.max(1) as f64;
    Validation {
        mae: readout.mae(),
        gender_acc: correct[0] as f64 / exact,
        bin_acc: readout.bin_acc(),
        fairface_gender_acc: (readout.binned > 0)
            .then(|| ff_correct as f64 / readout.binned as f64),
        loss: loss / correct[1].max(1) as f64,
    }
}

/// Trains (or resumes) a run in `run`, returning the final state. The best model by
/// validation MAE (with `fit_val`, the last one) is kept in `best.bpk`.
pub fn train(
    samples: &[Sample],
    cfg: &TrainConfig,
    run: &RunDir,
    ctl: Control,
) -> Result<TrainState> {
    let Control {
        resume,
        quiet,
        stop_after,
    } = ctl;
    let device = Device::flex().autodiff();
    files::create_dir_all(&run.0)?;
    let mut train_set: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.split == Split::Train || (cfg.fit_val && s.split == Split::Val))
        .collect();
    let mut genders: Vec<u8> = train_set.iter().map(|s| s.label.gender).collect();
    if let Some(path) = &cfg.label_fixes {
        let fixes = label_fixes::read_fixes(path)?;
        let applied;
        (train_set, genders, applied) = label_fixes::apply(train_set, &fixes);
        eprintln!(
            "label fixes: {} of {} listed faces relabelled, {} dropped",
            applied.relabelled,
            fixes.len(),
            applied.dropped
        );
    }
    let val_set: Vec<&Sample> = samples.iter().filter(|s| s.split == Split::Val).collect();
    if train_set.is_empty() || val_set.is_empty() {
        return Err(Error::Refused(format!(
            "need training and validation samples (got {} and {})",
            train_set.len(),
            val_set.len()
        )));
    }
    let val_crops: Vec<RgbImage> = val_set
        .iter()
        .map(|s| s.input(cfg.net.input_size))
        .collect();
    // FairFace's 70+ takes the shape of the exact ages of 70 and over it trains beside.
    let old_ages: Vec<u32> = train_set
        .iter()
        .filter(|s| s.label.age_bin.is_none() && s.label.age >= 70)
        .map(|s| s.label.age)
        .collect();
    let table = AgeTargets::new(cfg.label_sigma, &old_ages);
    let fairface_weight = cfg.fairface_weight.unwrap_or(1.0);
    if !(fairface_weight.is_finite() && fairface_weight >= 0.0) {
        return Err(Error::Refused(
            "--fairface-weight must be a number >= 0".into(),
        ));
    }
    let joint = val_set.iter().any(|s| s.dataset == Dataset::FairFace);
    let ages = Tensor::<2>::from_data(
        TensorData::new(
            (0..AGE_BINS).map(|i| i as f32).collect::<Vec<_>>(),
            [AGE_BINS, 1],
        ),
        &device,
    );
    let (gender_targets, no_teacher) = if cfg.teachers.is_empty() {
        (genders.iter().map(|&g| g as f32).collect(), 0)
    } else {
        if !(0.0..=1.0).contains(&cfg.teacher_weight) {
            return Err(Error::Refused("--teacher-weight must be in [0, 1]".into()));
        }
        let teachers = distill::load_teachers(&cfg.teachers)?;
        distill::gender_targets(&train_set, &genders, &teachers, cfg.teacher_weight)
    };
    if no_teacher > 0 {
        eprintln!("{no_teacher} training faces have no teacher prediction: plain labels");
    }

    let (mut model, mut optim, mut state) = match load_checkpoint(run, &device)? {
        Some((m, o, s)) if resume => {
            if s.config != *cfg {
                return Err(Error::Refused(format!(
                    "--resume: the checkpoint in {} was made with a different configuration",
                    run.0.display()
                )));
            }
            eprintln!("resuming after epoch {}", s.epochs_done);
            (m, o, s)
        }
        Some(_) if !resume => {
            return Err(Error::Refused(format!(
                "{} already holds a run: pass --resume or choose another --out",
                run.0.display()
            )));
        }
        _ => {
            device.seed(cfg.seed);
            let state = TrainState {
                config: cfg.clone(),
                epochs_done: 0,
                best_val_mae: f64::INFINITY,
                best_epoch: 0,
                history: vec![],
                stopped_early: false,
                best_val_loss: None,
            };
            let model = match &cfg.init {
                Some(path) => load_init(&cfg.net, path, &train_set, &device)?,
                None => cfg.net.init(&device),
            };
            (model, cfg.optimizer(), state)
        }
    };
    model.qat_bits = cfg.qat_bits.unwrap_or(0);

    let n_fairface = train_set
        .iter()
        .filter(|s| s.dataset == Dataset::FairFace)
        .count();
    let whole = fairface_weight.floor();
    let epoch_len = train_set.len() - n_fairface
        + whole as usize * n_fairface
        + ((fairface_weight - whole) * n_fairface as f32).round() as usize;
    let steps_per_epoch = epoch_len.div_ceil(cfg.batch_size);
    let mut epochs_this_call = 0;
    while state.epochs_done < cfg.epochs && !state.stopped_early {
        if stop_after.is_some_and(|n| epochs_this_call >= n) {
            break;
        }
        epochs_this_call += 1;
        let epoch = state.epochs_done + 1;
        let started = std::time::Instant::now();
        // Every epoch's randomness derives from (seed, epoch): a resumed run replays it exactly.
        device.seed(cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
        let mut rng =
            StdRng::seed_from_u64(cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let order = epoch_order(&train_set, fairface_weight, &mut rng);
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(steps_per_epoch as u64)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} {bar:30} {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{epoch}/{}", cfg.epochs));
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        let mut readout = AgeReadout::default();
        let mut lr = cfg.lr;
        model = std::thread::scope(|scope| -> Result<AgeGenderNet> {
            let mut model = model;
            let (tx, rx) = sync_channel::<Batch>(4);
            let (train_set, table, order, targets) = (&train_set, &table, &order, &gender_targets);
            let (augment, size) = (cfg.augment, cfg.net.input_size);
            scope.spawn(move || {
                for chunk in order.chunks(cfg.batch_size) {
                    let picked: Vec<(&Sample, f32)> =
                        chunk.iter().map(|&i| (train_set[i], targets[i])).collect();
                    let batch = make_batch(&picked, table, size, augment.then_some(&mut rng));
                    if tx.send(batch).is_err() {
                        break;
                    }
                }
            });
            for (i, batch) in rx.iter().enumerate() {
                let n = batch.lo.len();
                let (lo, hi, bins) = (batch.lo.clone(), batch.hi.clone(), batch.bins.clone());
                let step = (epoch - 1) * steps_per_epoch + i;
                lr = lr_at(cfg, step, steps_per_epoch);
                // burn-flex runs these small convolutions on one core and serialises autodiff
                // across threads (measured: two threads on two halves gave no speed-up), so the
                // batch runs whole on this thread while the producer augments on the other core.
                let (grads, loss_v, expected) = grad_step(&model, batch, &device, &ages, cfg);
                if !loss_v.is_finite() {
                    return Err(Error::Diverged {
                        loss: loss_v,
                        epoch,
                        step: i,
                    });
                }
                model = optim.step(lr, model, grads);
                loss_sum += loss_v as f64 * n as f64;
                for (j, e) in expected.iter().enumerate() {
                    readout.add(*e, lo[j], hi[j], bins[j]);
                }
                seen += n;
                bar.inc(1);
                let bin_acc = readout
                    .bin_acc()
                    .map(|a| format!(" bins {a:.3}"))
                    .unwrap_or_default();
                bar.set_message(format!(
                    "loss {:.3} mae {:.2}{bin_acc} lr {lr:.2e}",
                    loss_sum / seen as f64,
                    readout.mae()
                ));
            }
            Ok(model)
        })?;
        bar.finish_and_clear();
        let v = validate(&model, &val_crops, &val_set, &table, cfg, &device);
        let (val_mae, val_acc) = (v.mae, v.gender_acc);
        let secs = started.elapsed().as_secs_f64();
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_mae: readout.mae(),
            val_mae,
            val_gender_acc: val_acc,
            lr,
            seconds: secs,
            images_per_second: seen as f64 / secs,
            train_bin_acc: readout.bin_acc(),
            val_bin_acc: v.bin_acc,
            val_fairface_gender_acc: v.fairface_gender_acc,
            val_loss: joint.then_some(v.loss),
        };
        let fairface = match (stats.train_bin_acc, v.bin_acc, v.fairface_gender_acc) {
            (t, Some(b), Some(g)) => format!(
                " | FairFace train bins {:.3}, val bins {b:.3} gender {g:.4}, val loss {:.3}",
                t.unwrap_or(f64::NAN),
                v.loss
            ),
            _ => String::new(),
        };
        eprintln!(
            "epoch {epoch}: train loss {:.3} mae {:.2} | val mae {:.3} gender acc {:.4}{fairface} | {:.0}s, {:.0} img/s",
            stats.train_loss, stats.train_mae, val_mae, val_acc, secs, stats.images_per_second
        );
        state.history.push(stats);
        state.epochs_done = epoch;
        let better = match (joint, state.best_val_loss) {
            (true, Some(best)) => v.loss < best,
            (true, None) => true,
            (false, _) => val_mae < state.best_val_mae,
        };
        if better || cfg.fit_val {
            state.best_val_mae = val_mae;
            state.best_val_loss = joint.then_some(v.loss);
            state.best_epoch = epoch;
            run.save_best(&model)?;
        } else if epoch - state.best_epoch >= cfg.patience {
            eprintln!(
                "early stop: no validation improvement for {} epochs",
                cfg.patience
            );
            state.stopped_early = true;
        }
        save_checkpoint(run, epoch, &model, &optim, &state)?;
        run.write_state(&state)?;
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::dataset::load_utk_dir;
    use crate::fixtures::{QUIET, SERIAL, fake_fairface, fake_samples, fake_utk, tiny_config};
    use crate::portable::fold;
    use crate::training::checkpoint::load_model;

    #[test]
    fn schedule_warms_up_then_decays() {
        let cfg = tiny_config(10);
        assert!(lr_at(&cfg, 0, 100) < cfg.lr * 0.05);
        assert!((lr_at(&cfg, 50, 100) - cfg.lr).abs() < cfg.lr * 0.01);
        assert!(lr_at(&cfg, 999, 100) < cfg.lr * 0.05);
    }

    #[test]
    fn a_joint_run_trains_reports_bins_and_resumes_to_the_same_model() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (data, mut samples) = fake_samples("joint");
        samples.extend(fake_fairface(90));
        let cfg = TrainConfig {
            fairface_weight: Some(0.5),
            ..tiny_config(2)
        };
        let whole = train(&samples, &cfg, &RunDir(data.join("whole")), QUIET).unwrap();
        assert_eq!(whole.epochs_done, 2);
        for h in &whole.history {
            assert!(h.train_loss.is_finite() && h.train_mae.is_finite() && h.val_mae.is_finite());
            assert!(h.train_bin_acc.is_some_and(|a| (0.0..=1.0).contains(&a)));
            assert!(h.val_bin_acc.is_some() && h.val_fairface_gender_acc.is_some());
            assert!(h.val_loss.is_some_and(f64::is_finite));
        }
        let best = &whole.history[whole.best_epoch - 1];
        assert_eq!(whole.best_val_loss, best.val_loss);
        // Cut after one epoch and resumed: the same run.
        let cut = RunDir(data.join("cut"));
        let once = Control {
            stop_after: Some(1),
            ..QUIET
        };
        train(&samples, &cfg, &cut, once).unwrap();
        let resume = Control {
            resume: true,
            ..QUIET
        };
        let resumed = train(&samples, &cfg, &cut, resume).unwrap();
        for (x, y) in whole.history.iter().zip(&resumed.history) {
            assert_eq!(x.train_loss, y.train_loss, "epoch {}", x.epoch);
            assert_eq!(x.val_loss, y.val_loss, "epoch {}", x.epoch);
            assert_eq!(x.train_bin_acc, y.train_bin_acc, "epoch {}", x.epoch);
        }
        // Another weight is another configuration: no resuming across it.
        let other = TrainConfig {
            fairface_weight: Some(1.0),
            ..cfg.clone()
        };
        assert!(train(&samples, &other, &cut, resume).is_err());
        std::fs::remove_dir_all(&data).ok();
    }

    #[test]
    fn smoke_run_trains_checkpoints_and_resumes_to_the_same_model() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let data = fake_utk("smoke", 120);
        let (samples, report) = load_utk_dir(&data, None).unwrap();
        assert_eq!(report.skipped(), 0);
        let run_a = RunDir(data.join("run-a"));
        let run_b = RunDir(data.join("run-b"));
        let cfg = tiny_config(2);
        let quiet = Control {
            quiet: true,
            ..Control::default()
        };
        let a = train(&samples, &cfg, &run_a, quiet).unwrap();
        assert_eq!(a.epochs_done, 2);
        assert!(
            a.history
                .iter()
                .all(|h| h.train_loss.is_finite() && h.val_mae.is_finite())
        );
        assert!(run_a.best_model().exists());
        // Refuses to overwrite a run without --resume.
        assert!(train(&samples, &cfg, &run_a, quiet).is_err());
        // One epoch, as if the run were cut off there, then a call that resumes it.
        let once = Control {
            quiet: true,
            stop_after: Some(1),
            ..Control::default()
        };
        assert_eq!(train(&samples, &cfg, &run_b, once).unwrap().epochs_done, 1);
        let b = train(
            &samples,
            &cfg,
            &run_b,
            Control {
                resume: true,
                quiet: true,
                ..Control::default()
            },
        )
        .unwrap();
        assert_eq!(b.epochs_done, 2);
        for (x, y) in a.history.iter().zip(&b.history) {
            assert_eq!(x.train_loss, y.train_loss, "epoch {}", x.epoch);
            assert_eq!(x.val_mae, y.val_mae, "epoch {}", x.epoch);
        }
        let dev = Device::flex();
        let wa = fold(
            &load_model(&cfg.net, &run_a.best_model(), &dev).unwrap(),
            &cfg.net,
        );
        let wb = fold(
            &load_model(&cfg.net, &run_b.best_model(), &dev).unwrap(),
            &cfg.net,
        );
        for (ca, cb) in wa.convs.iter().zip(&wb.convs) {
            assert_eq!(ca.weight, cb.weight);
            assert_eq!(ca.bias, cb.bias);
        }
        assert_eq!(wa.age.weight, wb.age.weight);
        std::fs::remove_dir_all(&data).ok();
    }

    #[test]
    fn label_fixes_change_only_the_training_targets() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (data, samples) = fake_samples("fixes");
        let quiet = QUIET;
        let fixes = |name: &str, rows: &mut dyn Iterator<Item = String>| {
            let path = data.join(name);
            let body: String = rows.map(|r| r + "\n").collect();
            std::fs::write(&path, format!("name,gender\n{body}")).unwrap();
            path
        };
        let train_faces = || samples.iter().filter(|s| s.split == Split::Train);
        let same = fixes(
            "same.csv",
            &mut train_faces()
                .map(|s| format!("{},{}", s.name, ["m", "f"][s.label.gender as usize])),
        );
        let flipped = fixes(
            "flipped.csv",
            &mut train_faces()
                .map(|s| format!("{},{}", s.name, ["f", "m"][s.label.gender as usize])),
        );
        // As in the distillation test: a zero learning rate and a heavy gender weight make the
        // training loss show which gender targets were used.
        let run = |label_fixes: Option<PathBuf>, dir: &str| {
            let cfg = TrainConfig {
                lr: 0.0,
                gender_weight: 100.0,
                label_fixes,
                ..tiny_config(1)
            };
            train(&samples, &cfg, &RunDir(data.join(dir)), quiet)
        };
        let plain = run(None, "plain").unwrap();
        let unchanged = run(Some(same), "same").unwrap();
        let fixed = run(Some(flipped.clone()), "flipped").unwrap();
        assert_eq!(fixed.config.label_fixes, Some(flipped));
        let loss = |s: &TrainState| s.history[0].train_loss;
        assert!((loss(&unchanged) - loss(&plain)).abs() < 1e-2);
        assert!((loss(&fixed) - loss(&plain)).abs() > 0.3);
        // Validation figures stay on the dataset's labels.
        assert_eq!(
            fixed.history[0].val_gender_acc,
            plain.history[0].val_gender_acc
        );
        let val = samples.iter().find(|s| s.split == Split::Val).unwrap();
        let bad = fixes("val.csv", &mut std::iter::once(format!("{},m", val.name)));
        let err = run(Some(bad), "val").unwrap_err();
        assert!(
            format!("{err:#}").contains("only training labels"),
            "{err:#}"
        );
        std::fs::remove_dir_all(&data).ok();
    }

    #[test]
    fn distillation_trains_from_teacher_predictions() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (data, samples) = fake_samples("distil");
        let quiet = QUIET;
        // Teachers in `eval --predictions` lines: one that agrees with every label, one that
        // contradicts every label.
        let teacher_file = |name: &str, flip: bool| {
            let lines: String = samples
                .iter()
                .map(|s| {
                    let p = if flip {
                        1 - s.label.gender
                    } else {
                        s.label.gender
                    };
                    format!(
                        "{{\"name\":\"{}\",\"estimate\":{{\"p_female\":{p}}}}}\n",
                        s.name
                    )
                })
                .collect();
            let path = data.join(name);
            std::fs::write(&path, lines).unwrap();
            path
        };
        let agree = teacher_file("agree.jsonl", false);
        let teacher = teacher_file("contrary.jsonl", true);
        // With a zero learning rate every run sees the same model on the same batches, so the
        // training loss shows which targets the gender loss used.
        let run = |teachers: Vec<PathBuf>, dir: &str| {
            let cfg = TrainConfig {
                lr: 0.0,
                // Logits start near 0, where targets matter little: weigh gender up.
                gender_weight: 100.0,
                teachers,
                teacher_weight: 1.0,
                ..tiny_config(1)
            };
            train(&samples, &cfg, &RunDir(data.join(dir)), quiet).unwrap()
        };
        let plain = run(vec![], "plain").history[0].train_loss;
        let same = run(vec![agree], "agree").history[0].train_loss;
        let kd = run(vec![teacher.clone()], "kd");
        assert_eq!(kd.config.teachers, vec![teacher.clone()]);
        let contrary = kd.history[0].train_loss;
        assert!(contrary.is_finite());
        assert!((same - plain).abs() < 1e-2, "{same} {plain}");
        assert!((contrary - plain).abs() > 0.3, "{contrary} {plain}");
        let cfg = TrainConfig {
            teachers: vec![teacher.clone()],
            teacher_weight: 0.5,
            ..tiny_config(1)
        };
        // A broken teacher file is a clear error, not a silent fallback to the labels.
        std::fs::write(&teacher, "not json\n").unwrap();
        let err = train(&samples, &cfg, &RunDir(data.join("broken")), quiet).unwrap_err();
        assert!(format!("{err:#}").contains("contrary.jsonl"), "{err:#}");
        std::fs::remove_dir_all(&data).ok();
    }
}
