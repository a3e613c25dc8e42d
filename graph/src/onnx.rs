//! ONNX to graph, natively (tract-onnx): the build script for the embedded models, the trainer
//! and the tests for the models they make.

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

pub use tract_onnx::pb;

use crate::error::{Error, Result};
use crate::{Graph, Weights};

/// Parses an ONNX file.
pub fn parse(bytes: &[u8]) -> Result<pb::ModelProto> {
    tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .map_err(Error::tract)
}

/// The first input's dimensions as the file gives them: `None` where symbolic or unknown.
pub fn input_dims(proto: &pb::ModelProto) -> Result<Vec<Option<usize>>> {
    dims(&model(proto)?)
}

/// The graph of an ONNX model whose first input has `shape`: each entry an expression (`"1"`,
/// `"H"`), or `None` to keep the file's (concrete) dimension. Typed and decluttered by tract.
pub fn from_proto(
    proto: &pb::ModelProto,
    shape: &[Option<&str>],
    weights: Weights,
) -> Result<Graph> {
    let model = model(proto)?;
    let file_dims = dims(&model)?;
    if file_dims.len() != shape.len() {
        return Err(Error::format(format!(
            "the input has rank {}, not {}",
            file_dims.len(),
            shape.len()
        )));
    }
    let dims = shape
        .iter()
        .zip(&file_dims)
        .enumerate()
        .map(|(axis, (given, file))| match (given, file) {
            (Some(expr), _) => model.symbols.parse_tdim(expr).map_err(Error::tract),
            (None, Some(d)) => Ok(d.to_dim()),
            (None, None) => Err(Error::format(format!(
                "dimension {axis} of the input is open in the file: give it"
            ))),
        })
        .collect::<Result<TVec<TDim>>>()?;
    let typed = model
        .with_input_fact(0, f32::fact(dims).into())
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .map_err(Error::tract)?;
    crate::from_typed(&typed, weights)
}

/// [`from_proto`] on an ONNX file's bytes.
pub fn from_onnx(bytes: &[u8], shape: &[Option<&str>], weights: Weights) -> Result<Graph> {
    from_proto(&parse(bytes)?, shape, weights)
}

/// tract's model of the file. Its intermediate shapes (`value_info`) are dropped: some files
/// name their own symbols there (`unk__*`), which do not unify with the input fact we set.
fn model(proto: &pb::ModelProto) -> Result<InferenceModel> {
    // tract-onnx panics on an output no node, input or initializer gives: an error here instead.
    if let Some(graph) = &proto.graph {
        let given = |name: &str| {
            graph
                .node
                .iter()
                .any(|n| n.output.iter().any(|o| o == name))
                || graph.input.iter().any(|i| i.name == name)
                || graph.initializer.iter().any(|t| t.name == name)
        };
        if let Some(o) = graph.output.iter().find(|o| !given(&o.name)) {
            return Err(Error::format(format!(
                "output {:?} is not made by any node",
                o.name
            )));
        }
    }
    let mut proto = proto.clone();
    if let Some(graph) = proto.graph.as_mut() {
        graph.value_info.clear();
    }
    tract_onnx::onnx()
        .model_for_proto_model(&proto)
        .map_err(Error::tract)
}

fn dims(model: &InferenceModel) -> Result<Vec<Option<usize>>> {
    let fact = model.input_fact(0).map_err(Error::tract)?;
    let rank = fact
        .shape
        .rank()
        .concretize()
        .ok_or_else(|| Error::format("the input's rank is unknown"))?;
    Ok((0..rank.max(0) as usize)
        .map(|axis| {
            fact.shape
                .dim(axis)
                .and_then(|d| d.concretize())
                .and_then(|d| d.to_usize().ok())
        })
        .collect())
}
