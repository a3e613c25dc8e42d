//! `train --init`: the weights a run starts from, a run's `best.bpk` (embedded into a wider
//! net when its run was narrower) or an exported ONNX model.

use std::path::Path;

use agegender::preprocess;
use burn::module::Module;
use burn::tensor::Device;

use crate::dataset::Sample;
use crate::error::{Error, Result};
use crate::files;
use crate::model::{AgeGenderNet, NetConfig};
use crate::onnx::read::{read_portable, to_net};
use crate::training::checkpoint::{load_model, source_state};

/// Loads `--init` weights into `net`. When the run they came from used a narrower net of the
/// same layout, they are embedded into a fresh `net` ([`AgeGenderNet::widen_from`]): a wider
/// model starts from the trained one.
pub fn load_init(
    net: &NetConfig,
    path: &Path,
    train_set: &[&Sample],
    device: &Device,
) -> Result<AgeGenderNet> {
    load(net, path, train_set, device).map_err(|e| Error::Init {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

fn load(
    net: &NetConfig,
    path: &Path,
    train_set: &[&Sample],
    device: &Device,
) -> Result<AgeGenderNet> {
    if is_exported_model(path) {
        return import_onnx(net, path, train_set, device);
    }
    match source_state(path).map(|s| s.config.net) {
        Some(old) if old.layers != net.layers => {
            if !net.can_widen(&old) {
                return Err(Error::Refused(
                    "its net cannot be embedded in this one (different layers, or narrower)".into(),
                ));
            }
            let old_model = load_model(&old, path, device)?;
            let wide = net.init(device).widen_from(&old_model);
            // Through a record, as from a file, so the new tensors are tracked for autodiff.
            Ok(net.init(device).load_record(wide.into_record()))
        }
        _ => load_model(net, path, device),
    }
}

/// Whether `--init` names an exported ONNX model rather than a run's weights.
pub fn is_exported_model(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "onnx")
}

/// Crops that set the imported norms' statistics: enough for stable per-channel figures.
const IMPORT_CROPS: usize = 256;

/// `--init` from an exported ONNX model (see `onnx::read`): its batch norms are set from the
/// statistics of up to [`IMPORT_CROPS`] training crops, spread over the training set.
fn import_onnx(
    net: &NetConfig,
    path: &Path,
    train_set: &[&Sample],
    device: &Device,
) -> Result<AgeGenderNet> {
    let bytes = files::read(path)?;
    let portable = read_portable(&bytes, net)?;
    let step = train_set.len().div_ceil(IMPORT_CROPS).max(1);
    let crops: Vec<f32> = train_set
        .iter()
        .step_by(step)
        .flat_map(|s| preprocess::to_nchw(&s.input(net.input_size)))
        .collect();
    let model = to_net(&portable, net, crops, device)?;
    // Through a record, as from a file, so the new tensors are tracked for autodiff.
    Ok(net.init(device).load_record(model.into_record()))
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{QUIET, SERIAL, fake_samples, tiny_config};
    use crate::model::NetConfig;
    use crate::onnx::write::{encode, to_onnx};
    use crate::portable::fold;
    use crate::training::checkpoint::{RunDir, load_model};
    use crate::training::{TrainConfig, train};
    use burn::tensor::Device;

    #[test]
    fn init_starts_from_the_given_weights_with_a_fresh_optimiser() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (data, samples) = fake_samples("init");
        let quiet = QUIET;
        let source = RunDir(data.join("source"));
        let cfg = tiny_config(1);
        train(&samples, &cfg, &source, quiet).unwrap();
        // With a zero learning rate only batch-norm statistics move, so the head keeps the
        // source's weights exactly; a run without --init starts from a random head.
        let frozen = TrainConfig {
            lr: 0.0,
            seed: 99,
            init: Some(source.best_model()),
            ..cfg.clone()
        };
        let fine = RunDir(data.join("fine"));
        let state = train(&samples, &frozen, &fine, quiet).unwrap();
        assert_eq!(state.config.init, Some(source.best_model()));
        let fresh = RunDir(data.join("fresh"));
        let random = TrainConfig {
            init: None,
            ..frozen.clone()
        };
        train(&samples, &random, &fresh, quiet).unwrap();
        let dev = Device::flex();
        let head = |run: &RunDir| {
            let m = load_model(&cfg.net, &run.best_model(), &dev).unwrap();
            fold(&m, &cfg.net).age.weight
        };
        assert_eq!(head(&fine), head(&source));
        assert_ne!(head(&fresh), head(&source));
        // The trunk is convolutional with a global pool: weights trained on 64-pixel crops
        // load into a run on larger crops (a fine-tune at a higher resolution).
        let mut larger = frozen.clone();
        larger.net.input_size = 80;
        let resized = RunDir(data.join("resized"));
        train(&samples, &larger, &resized, quiet).unwrap();
        assert_eq!(head(&resized), head(&source));
        // A missing file is a clear error that names the flag.
        let missing = TrainConfig {
            init: Some(data.join("nope.bpk")),
            ..cfg.clone()
        };
        let err = train(&samples, &missing, &RunDir(data.join("missing")), quiet).unwrap_err();
        assert!(format!("{err:#}").contains("--init"), "{err:#}");
        // A wider net of the same layout starts from a narrower run's weights and trains.
        let narrow = TrainConfig {
            net: NetConfig::standard_with_widths([4, 4, 8, 8, 8]),
            ..cfg.clone()
        };
        let small = RunDir(data.join("narrow"));
        train(&samples, &narrow, &small, quiet).unwrap();
        let wide = TrainConfig {
            net: NetConfig::standard_with_widths([4, 4, 8, 12, 16]),
            init: Some(small.best_model()),
            ..cfg.clone()
        };
        let widened = train(&samples, &wide, &RunDir(data.join("wide")), quiet).unwrap();
        assert!(widened.history.iter().all(|h| h.train_loss.is_finite()));
        // ... but not the other way round.
        let back = TrainConfig {
            net: narrow.net.clone(),
            init: Some(RunDir(data.join("wide")).best_model()),
            ..cfg.clone()
        };
        let err = train(&samples, &back, &RunDir(data.join("back")), quiet).unwrap_err();
        assert!(format!("{err:#}").contains("cannot be embedded"), "{err:#}");
        std::fs::remove_dir_all(&data).ok();
    }

    #[test]
    fn init_from_an_exported_onnx_model_continues_from_it() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (data, samples) = fake_samples("onnx-init");
        let quiet = QUIET;
        let cfg = TrainConfig {
            augment: false,
            ..tiny_config(1)
        };
        let source = RunDir(data.join("source"));
        let trained = train(&samples, &cfg, &source, quiet).unwrap();
        let dev = Device::flex();
        let portable = fold(
            &load_model(&cfg.net, &source.best_model(), &dev).unwrap(),
            &cfg.net,
        );
        let onnx = data.join("source.onnx");
        std::fs::write(&onnx, encode(&to_onnx(&portable, None, "t"))).unwrap();
        // With a zero learning rate the imported net is the exported one: same head, and the
        // same validation error up to the norms' running statistics.
        let frozen = TrainConfig {
            lr: 0.0,
            init: Some(onnx.clone()),
            ..cfg.clone()
        };
        let run = RunDir(data.join("from-onnx"));
        let state = train(&samples, &frozen, &run, quiet).unwrap();
        let back = fold(
            &load_model(&cfg.net, &run.best_model(), &dev).unwrap(),
            &cfg.net,
        );
        assert_eq!(back.age.weight, portable.age.weight);
        assert_eq!(back.gender.bias, portable.gender.bias);
        let (a, b) = (trained.history[0].val_mae, state.history[0].val_mae);
        assert!((a - b).abs() < 0.05 * a.max(1.0), "{a} {b}");
        // An ONNX file of another architecture is a clear error.
        let other = TrainConfig {
            net: NetConfig::standard_with_widths([4, 4, 8, 8, 8]),
            ..frozen
        };
        let err = train(&samples, &other, &RunDir(data.join("other")), quiet).unwrap_err();
        assert!(format!("{err:#}").contains("shape"), "{err:#}");
        std::fs::remove_dir_all(&data).ok();
    }
}
