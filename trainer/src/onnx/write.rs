//! Writes the portable weights as ONNX: a `ModelProto` built with the public `tract_onnx::pb`
//! structs, optionally with int8 weights and per-channel scales (dequantised by `Cast` + `Mul`,
//! which tract folds into constants at load time).

use agegender::estimate::{AGE_OUTPUT, GENDER_OUTPUT, INPUT_NAME};
use prost::Message;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType, tensor_shape_proto::Dimension, tensor_shape_proto::dimension,
    type_proto,
};

use crate::portable::Portable;

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The grid the export stores, shared with quantisation-aware training (`model::fake_quant`)
/// and the graph files' requantisation.
pub use graph::grid_levels;

/// Symmetric quantisation to `bits` bits (2..=8), stored as int8, with one scale per output
/// channel; `channel_of` gives the channel of each flat index.
fn quantize(
    data: &[f32],
    channels: usize,
    channel_of: impl Fn(usize) -> usize,
    bits: u32,
) -> (Vec<i8>, Vec<f32>) {
    let levels = grid_levels(bits);
    let mut max = vec![0.0f32; channels];
    for (i, v) in data.iter().enumerate() {
        let c = channel_of(i);
        max[c] = max[c].max(v.abs());
    }
    let scales: Vec<f32> = max
        .iter()
        .map(|m| if *m > 0.0 { m / levels } else { 1.0 })
        .collect();
    let q = data
        .iter()
        .enumerate()
        .map(|(i, v)| (v / scales[channel_of(i)]).round().clamp(-levels, levels) as i8)
        .collect();
    (q, scales)
}

/// How to quantise a weight: bits, channel count, the scale tensor's dims, and the channel of
/// each flat index.
type Quant<'a> = (u32, usize, Vec<i64>, &'a dyn Fn(usize) -> usize);

/// Adds a weight initializer, either as f32 or as int8 + scales dequantised in the graph.
fn add_weight(
    g: &mut GraphProto,
    name: &str,
    dims: &[i64],
    data: &[f32],
    quant: Option<Quant<'_>>,
) {
    match quant {
        None => g.initializer.push(f32_tensor(name, dims, data)),
        Some((bits, channels, scale_dims, channel_of)) => {
            let (q, scales) = quantize(data, channels, channel_of, bits);
            let (qn, fname, sn) = (
                format!("{name}_q"),
                format!("{name}_f"),
                format!("{name}_scale"),
            );
            g.initializer.push(TensorProto {
                name: qn.clone(),
                dims: dims.to_vec(),
                data_type: DataType::Int8 as i32,
                raw_data: q.iter().map(|v| *v as u8).collect(),
                ..Default::default()
            });
            g.initializer.push(f32_tensor(&sn, &scale_dims, &scales));
            g.node.push(node(
                "Cast",
                &format!("{name}_cast"),
                &[&qn],
                &[&fname],
                vec![attr_int("to", DataType::Float as i64)],
            ));
            g.node.push(node(
                "Mul",
                &format!("{name}_dequant"),
                &[&fname, &sn],
                &[name],
                vec![],
            ));
        }
    }
}

/// Builds the ONNX model. With `bits`, weights are quantised to that many bits and stored as
/// int8 (about 4x smaller; fewer bits make the int8 values more compressible, so the gzipped
/// page smaller).
pub fn to_onnx(p: &Portable, bits: Option<u32>, doc: &str) -> ModelProto {
    let mut g = GraphProto {
        name: "agegender".into(),
        ..Default::default()
    };
    let s = p.input_size as i64;
    g.input
        .push(value_info(INPUT_NAME, &[None, Some(3), Some(s), Some(s)]));
    let mut x = INPUT_NAME.to_string();
    for (i, c) in p.convs.iter().enumerate() {
        let l = c.spec;
        let (w, b, y, r) = (
            format!("conv{i}_w"),
            format!("conv{i}_b"),
            format!("conv{i}"),
            format!("relu{i}"),
        );
        let dims = l.weight_shape().map(|d| d as i64);
        let per_out = c.weight.len() / l.cout.max(1);
        let of = move |i: usize| i / per_out;
        add_weight(
            &mut g,
            &w,
            &dims,
            &c.weight,
            bits.map(|bits| {
                (
                    bits,
                    l.cout,
                    vec![l.cout as i64, 1, 1, 1],
                    &of as &dyn Fn(usize) -> usize,
                )
            }),
        );
        g.initializer
            .push(f32_tensor(&b, &[l.cout as i64], &c.bias));
        let pad = (l.kernel / 2) as i64;
        g.node.push(node(
            "Conv",
            &y,
            &[&x, &w, &b],
            &[&y],
            vec![
                attr_ints("kernel_shape", &[l.kernel as i64, l.kernel as i64]),
                attr_ints("strides", &[l.stride as i64, l.stride as i64]),
                attr_ints("pads", &[pad, pad, pad, pad]),
                attr_ints("dilations", &[1, 1]),
                attr_int("group", l.groups as i64),
            ],
        ));
        g.node.push(node("Relu", &r, &[&y], &[&r], vec![]));
        x = r;
    }
    g.node.push(node(
        "GlobalAveragePool",
        "pool",
        &[&x],
        &["pooled"],
        vec![],
    ));
    g.node.push(node(
        "Flatten",
        "flatten",
        &["pooled"],
        &["features"],
        vec![attr_int("axis", 1)],
    ));
    for (d, out) in [(&p.age, AGE_OUTPUT), (&p.gender, GENDER_OUTPUT)] {
        let (w, b) = (format!("{out}_w"), format!("{out}_b"));
        let outputs = d.outputs;
        let of = move |i: usize| i % outputs;
        add_weight(
            &mut g,
            &w,
            &[d.inputs as i64, d.outputs as i64],
            &d.weight,
            bits.map(|bits| {
                (
                    bits,
                    d.outputs,
                    vec![1, d.outputs as i64],
                    &of as &dyn Fn(usize) -> usize,
                )
            }),
        );
        g.initializer
            .push(f32_tensor(&b, &[d.outputs as i64], &d.bias));
        g.node
            .push(node("Gemm", out, &["features", &w, &b], &[out], vec![]));
        g.output
            .push(value_info(out, &[None, Some(d.outputs as i64)]));
    }
    ModelProto {
        ir_version: 7,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "agegender-trainer".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: doc.into(),
        graph: Some(g),
        ..Default::default()
    }
}

/// Serialises the model with prost.
pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::load_utk_dir;
    use crate::evaluate::max_logit_diff;
    use crate::fixtures::{QUIET, SERIAL, fake_utk, tiny_config};
    use crate::model::predict_logits;
    use crate::portable::fold;
    use crate::training::checkpoint::{RunDir, load_model};
    use crate::training::train;
    use agegender::Classifier;
    use agegender::preprocess::golden_pattern;
    use burn::tensor::Device;

    #[test]
    fn exported_onnx_matches_the_trained_net_in_tract() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let data = fake_utk("export", 64);
        let (samples, _) = load_utk_dir(&data, None).unwrap();
        // Not the default input size: the size must reach the ONNX input and the classifier.
        let mut cfg = tiny_config(1);
        cfg.net.input_size = 48;
        let run = RunDir(data.join("run"));
        train(&samples, &cfg, &run, QUIET).unwrap();
        let dev = Device::flex();
        let model = load_model(&cfg.net, &run.best_model(), &dev).unwrap();
        let crops: Vec<_> = (0..3)
            .map(|v| golden_pattern(v, cfg.net.input_size))
            .collect();
        let (ages, genders) = predict_logits(&model, &crops, &dev);
        let reference: Vec<(Vec<f32>, f32)> = ages.into_iter().zip(genders).collect();
        let portable = fold(&model, &cfg.net);

        let f32_bytes = encode(&to_onnx(&portable, None, "test"));
        let classifier = Classifier::from_bytes(&f32_bytes).unwrap();
        assert_eq!(classifier.input_size(), 48);
        let got = classifier.logits(&crops).unwrap();
        assert!(max_logit_diff(&reference, &got) < 1e-4);

        let int8_bytes = encode(&to_onnx(&portable, Some(8), "test"));
        assert!(
            int8_bytes.len() < f32_bytes.len() / 2,
            "{} vs {}",
            int8_bytes.len(),
            f32_bytes.len()
        );
        let got = Classifier::from_bytes(&int8_bytes)
            .unwrap()
            .logits(&crops)
            .unwrap();
        assert!(max_logit_diff(&reference, &got) < 0.2);

        // A gender calibration folded into the head moves only the gender logit, affinely.
        let mut calibrated = portable.clone();
        calibrated.calibrate_gender(0.8, 0.45);
        let got = Classifier::from_bytes(&encode(&to_onnx(&calibrated, None, "test")))
            .unwrap()
            .logits(&crops)
            .unwrap();
        let expected: Vec<(Vec<f32>, f32)> = reference
            .iter()
            .map(|(a, g)| (a.clone(), 0.8 * g + 0.45))
            .collect();
        assert!(max_logit_diff(&expected, &got) < 1e-4);
        std::fs::remove_dir_all(&data).ok();
    }

    #[test]
    fn quantisation_is_per_channel_and_round_trips() {
        let data = [0.5f32, -1.0, 0.25, 100.0, -50.0, 0.0];
        let (q, scales) = quantize(&data, 2, |i| i / 3, 8);
        assert_eq!(q[1], -127);
        assert_eq!(q[3], 127);
        for (i, v) in data.iter().enumerate() {
            assert!((q[i] as f32 * scales[i / 3] - v).abs() <= scales[i / 3] / 2.0 + 1e-6);
        }
        // Six bits: the same channels on the grid -31..=31.
        let (q, scales) = quantize(&data, 2, |i| i / 3, 6);
        assert_eq!((q[1], q[3], q[4]), (-31, 31, -16));
        assert_eq!(scales, [1.0 / 31.0, 100.0 / 31.0]);
    }
}
