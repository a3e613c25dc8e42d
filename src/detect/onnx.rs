//! Loading the BlazeFace ONNX file with tract.

use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::error::{Error, Result};

pub(crate) type Plan = Arc<TypedRunnableModel>;

/// Parses, patches and optimises an ONNX detector.
pub(crate) fn load(bytes: &[u8]) -> Result<Plan> {
    let onnx = tract_onnx::onnx();
    let mut proto = onnx
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| Error::model("detector", e))?;
    if let Some(graph) = proto.graph.as_mut() {
        patch_constant_of_shape(graph);
    }
    onnx.model_for_proto_model(&proto)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| Error::model("detector", e))
}

/// tract types a `ConstantOfShape` without a `value` attribute as f64 (the ONNX default is a
/// float32 zero), which breaks the f32 graph: give such nodes an explicit f32 zero.
pub fn patch_constant_of_shape(graph: &mut pb::GraphProto) {
    for node in graph.node.iter_mut() {
        if node.op_type == "ConstantOfShape" && !node.attribute.iter().any(|a| a.name == "value") {
            node.attribute.push(pb::AttributeProto {
                name: "value".into(),
                r#type: pb::attribute_proto::AttributeType::Tensor as i32,
                t: Some(pb::TensorProto {
                    dims: vec![1],
                    data_type: pb::tensor_proto::DataType::Float as i32,
                    float_data: vec![0.0],
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore]
    fn dump_model_io() {
        let bytes = include_bytes!("../../model/face_detection_back_256x256_barracuda.onnx");
        let onnx = tract_onnx::onnx();
        let mut proto = onnx.proto_model_for_read(&mut &bytes[..]).unwrap();
        patch_constant_of_shape(proto.graph.as_mut().unwrap());
        let m = onnx.model_for_proto_model(&proto).unwrap();
        for o in m.input_outlets().unwrap() {
            println!("in {} {:?}", m.node(o.node).name, m.outlet_fact(*o));
        }
        let t = m.into_typed().unwrap();
        for o in t.output_outlets().unwrap() {
            println!("out {} {:?}", t.node(o.node).name, t.outlet_fact(*o));
        }
    }
}
