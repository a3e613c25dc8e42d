//! Reads an exported ONNX model back into a trainable net (`train --init model/agegender.onnx`),
//! so the shipped model can be fine-tuned when the run that made it is gone.
//!
//! Export folds each batch norm into its convolution, and training-mode batch norm normalises
//! by batch statistics, so the norm cannot simply be set to the identity. Instead each layer's
//! norm is set from the statistics of its convolution's output on real crops: with
//! `gamma = sqrt(var + eps)`, `beta = mean + bias`, running mean `mean` and variance `var`, the
//! net computes exactly the exported function in inference mode and nearly it in training mode.

use std::collections::HashMap;

use burn::module::{Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};
use prost::Message;
use tract_onnx::pb::{ModelProto, TensorProto, tensor_proto::DataType};

use crate::model::{AgeGenderNet, NetConfig, values};
use crate::portable::{Dense, FoldedConv, Portable};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not an ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the ONNX model has no graph")]
    NoGraph,
    #[error("weight {0} is missing (not a model this trainer exported?)")]
    Missing(String),
    #[error("weight {name} has shape {got:?}, this net needs {want:?}")]
    Shape {
        name: String,
        got: Vec<i64>,
        want: Vec<i64>,
    },
    #[error("weight {0} is stored in a form this importer does not read")]
    Storage(String),
    #[error("need at least one crop to set the batch norms")]
    NoCrops,
}

/// The initializers of a graph by name.
struct Weights<'a>(HashMap<&'a str, &'a TensorProto>);

impl Weights<'_> {
    fn f32s(&self, name: &str) -> Result<(Vec<f32>, Vec<i64>), ImportError> {
        let t = self
            .0
            .get(name)
            .ok_or_else(|| ImportError::Missing(name.into()))?;
        if t.data_type != DataType::Float as i32 {
            return Err(ImportError::Storage(name.into()));
        }
        let data = if !t.raw_data.is_empty() {
            t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        } else {
            t.float_data.clone()
        };
        Ok((data, t.dims.clone()))
    }

    /// A weight stored as f32, or as int8 with per-channel scales (`onnx::write::add_weight`),
    /// dequantised. `channel_of` maps a flat index to its scale.
    fn weight(
        &self,
        name: &str,
        want: &[i64],
        channel_of: impl Fn(usize) -> usize,
    ) -> Result<Vec<f32>, ImportError> {
        let (data, dims) = if self.0.contains_key(name) {
            self.f32s(name)?
        } else {
            let qn = format!("{name}_q");
            let q = self.0.get(qn.as_str()).ok_or(ImportError::Missing(qn))?;
            if q.data_type != DataType::Int8 as i32 {
                return Err(ImportError::Storage(name.into()));
            }
            let (scales, _) = self.f32s(&format!("{name}_scale"))?;
            let data = q
                .raw_data
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let s = scales.get(channel_of(i)).copied().unwrap_or(f32::NAN);
                    *b as i8 as f32 * s
                })
                .collect();
            (data, q.dims.clone())
        };
        let n: i64 = want.iter().product();
        if dims != want || data.len() as i64 != n || data.iter().any(|v| !v.is_finite()) {
            return Err(ImportError::Shape {
                name: name.into(),
                got: dims,
                want: want.to_vec(),
            });
        }
        Ok(data)
    }
}

/// The weights of an ONNX file written by `onnx::write::to_onnx` for `net`.
pub fn read_portable(bytes: &[u8], net: &NetConfig) -> Result<Portable, ImportError> {
    let model = ModelProto::decode(bytes)?;
    let graph = model.graph.as_ref().ok_or(ImportError::NoGraph)?;
    let w = Weights(
        graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect(),
    );
    let mut convs = Vec::with_capacity(net.layers.len());
    for (i, l) in net.layers.iter().enumerate() {
        let shape = l.weight_shape();
        let per_out = shape[1..].iter().product::<usize>().max(1);
        let dims = shape.map(|d| d as i64);
        let weight = w.weight(&format!("conv{i}_w"), &dims, |j| j / per_out)?;
        let bias = w.weight(&format!("conv{i}_b"), &[l.cout as i64], |j| j)?;
        convs.push(FoldedConv {
            spec: *l,
            weight,
            bias,
        });
    }
    let dense = |name: &str, outputs: usize| -> Result<Dense, ImportError> {
        let inputs = net.features();
        Ok(Dense {
            inputs,
            outputs,
            weight: w.weight(
                &format!("{name}_w"),
                &[inputs as i64, outputs as i64],
                |j| j % outputs,
            )?,
            bias: w.weight(&format!("{name}_b"), &[outputs as i64], |j| j)?,
        })
    };
    Ok(Portable {
        input_size: net.input_size,
        convs,
        age: dense(agegender::estimate::AGE_OUTPUT, net.age_bins)?,
        gender: dense(agegender::estimate::GENDER_OUTPUT, 1)?,
    })
}

fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// Builds a trainable `net` computing `p`. `crops` is a batch of classifier inputs
/// (`preprocess::to_nchw`, `n` crops of `net.input_size`) whose statistics set the norms.
pub fn to_net(
    p: &Portable,
    net: &NetConfig,
    crops: Vec<f32>,
    device: &Device,
) -> Result<AgeGenderNet, ImportError> {
    let s = net.input_size as usize;
    let n = crops.len() / (3 * s * s);
    if n == 0 {
        return Err(ImportError::NoCrops);
    }
    let mut model = net.init(device);
    let mut x = tensor(crops, [n, 3, s, s], device);
    for (layer, c) in model.trunk.iter_mut().zip(&p.convs) {
        let dims = layer.conv.weight.dims();
        let w = c.weight.clone();
        layer.conv.weight = Param::from_tensor(tensor(w, dims, device));
        let y = layer.conv.forward(x);
        let [_, ch, h, wd] = y.dims();
        let yv = values(y);
        let per = (n * h * wd) as f64;
        let (mut mean, mut var) = (vec![0.0f64; ch], vec![0.0f64; ch]);
        for (i, v) in yv.iter().enumerate() {
            mean[(i / (h * wd)) % ch] += *v as f64;
        }
        mean.iter_mut().for_each(|m| *m /= per);
        for (i, v) in yv.iter().enumerate() {
            let c = (i / (h * wd)) % ch;
            var[c] += (*v as f64 - mean[c]).powi(2);
        }
        var.iter_mut().for_each(|v| *v /= per);
        let eps = layer.bn.epsilon;
        let f = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<_>>();
        let gamma: Vec<f32> = var.iter().map(|v| (v + eps).sqrt() as f32).collect();
        let beta: Vec<f32> = mean
            .iter()
            .zip(&c.bias)
            .map(|(m, b)| *m as f32 + b)
            .collect();
        layer.bn.gamma = Param::from_tensor(tensor(gamma, [ch], device));
        layer.bn.beta = Param::from_tensor(tensor(beta, [ch], device));
        layer.bn.running_mean = RunningState::new(tensor(f(&mean), [ch], device));
        layer.bn.running_var = RunningState::new(tensor(f(&var), [ch], device));
        // The next layer's input, as inference mode computes it: relu(y + bias).
        let next: Vec<f32> = yv
            .iter()
            .enumerate()
            .map(|(i, v)| (v + c.bias[(i / (h * wd)) % ch]).max(0.0))
            .collect();
        x = tensor(next, [n, ch, h, wd], device);
    }
    let head = |d: &Dense| {
        (
            Param::from_tensor(tensor(d.weight.clone(), [d.inputs, d.outputs], device)),
            Some(Param::from_tensor(tensor(
                d.bias.clone(),
                [d.outputs],
                device,
            ))),
        )
    };
    (model.age.weight, model.age.bias) = head(&p.age);
    (model.gender.weight, model.gender.bias) = head(&p.gender);
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::assert_same_outputs;
    use crate::onnx::write::{encode, to_onnx};
    use crate::portable::fold;

    fn crops(n: usize, s: usize) -> Vec<f32> {
        (0..n * 3 * s * s)
            .map(|i| ((i * 7919 % 211) as f32 / 105.0) - 1.0)
            .collect()
    }

    #[test]
    fn an_exported_net_imports_to_the_same_function() {
        let dev = Device::flex();
        let net = NetConfig {
            input_size: 32,
            ..NetConfig::tiny()
        };
        // Non-trivial norms, so folding and unfolding are both exercised.
        let mut src = net.init(&dev);
        for l in src.trunk.iter_mut() {
            let c = l.bn.gamma.dims()[0];
            let v = |k: f32| (0..c).map(|i| k + i as f32 * 0.1).collect::<Vec<_>>();
            l.bn.gamma = Param::from_tensor(tensor(v(0.5), [c], &dev));
            l.bn.beta = Param::from_tensor(tensor(v(-0.2), [c], &dev));
            l.bn.running_mean = RunningState::new(tensor(v(0.05), [c], &dev));
            l.bn.running_var = RunningState::new(tensor(v(0.7), [c], &dev));
        }
        for bits in [None, Some(8), Some(6)] {
            let portable = fold(&src, &net);
            let bytes = encode(&to_onnx(&portable, bits, "test"));
            let back = read_portable(&bytes, &net).expect("reads its own export");
            // Half a step of the channel's grid (max / 127 or max / 31), and a little.
            let tol = match bits {
                None => 1e-6,
                Some(8) => 0.02,
                Some(_) => 0.05,
            };
            for (a, b) in portable.convs.iter().zip(&back.convs) {
                let max = a.weight.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (x, y) in a.weight.iter().zip(&b.weight) {
                    assert!((x - y).abs() <= tol * max.max(1e-3), "{x} {y}");
                }
                assert_eq!(a.bias, b.bias);
            }
            let model = to_net(&back, &net, crops(16, 32), &dev).expect("builds");
            // Inference mode: the imported net computes what the exported one does.
            let x = || tensor(crops(4, 32), [4, 3, 32, 32], &dev);
            assert_same_outputs(
                &src,
                &model,
                x,
                match bits {
                    None => 1e-3,
                    Some(8) => 0.1,
                    Some(_) => 0.3,
                },
            );
        }
    }

    #[test]
    fn a_foreign_or_mismatched_file_is_an_error() {
        let dev = Device::flex();
        let net = NetConfig::tiny();
        assert!(matches!(
            read_portable(b"\xff\xff\xff not onnx", &net),
            Err(ImportError::Decode(_))
        ));
        let bytes = encode(&to_onnx(&fold(&net.init(&dev), &net), Some(8), "t"));
        let other = NetConfig::standard();
        assert!(matches!(
            read_portable(&bytes, &other),
            Err(ImportError::Shape { .. })
        ));
        let p = read_portable(&bytes, &net).expect("reads");
        assert!(matches!(
            to_net(&p, &net, vec![], &dev),
            Err(ImportError::NoCrops)
        ));
    }
}
