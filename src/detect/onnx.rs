//! Loading the YuNet ONNX file with tract. Public so the benchmarks profile the very plans the
//! detector runs.

use tract_onnx::prelude::*;

use crate::error::{Error, Result};

pub type Plan = Arc<TypedRunnableModel>;

/// Parses a detector once; plans for given canvas sizes are then made by [`plan`].
pub fn parse(bytes: &[u8]) -> Result<InferenceModel> {
    let err = |e| Error::model("detector", e);
    let onnx = tract_onnx::onnx();
    let mut proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(err)?;
    // The file's intermediate shapes name their own symbols (`unk__*`), which do not unify with a
    // concrete input: tract infers them all again from the input fact.
    if let Some(graph) = proto.graph.as_mut() {
        graph.value_info.clear();
    }
    onnx.model_for_proto_model(&proto).map_err(err)
}

/// An optimised plan for `[1, 3, side, side]` inputs. Concrete sizes only: a plan with symbolic
/// height and width ran 6-7x slower in tract 0.23 (measured natively at 256 to 640 pixels).
pub fn plan(model: &InferenceModel, side: usize) -> Result<Plan> {
    plan_for(model, &[1, 3, side, side])
}

/// An optimised plan for inputs of exactly `shape`.
pub fn plan_for(model: &InferenceModel, shape: &[usize]) -> Result<Plan> {
    model
        .clone()
        .with_input_fact(0, f32::fact(shape).into())
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| Error::model("detector", e))
}

/// The ONNX names of the plan's outputs, in output order.
pub fn output_names(plan: &Plan) -> Result<Vec<String>> {
    let model = plan.model();
    model
        .output_outlets()
        .map_err(|e| Error::model("detector", e))?
        .iter()
        .map(|o| {
            Ok(model
                .outlet_label(*o)
                .unwrap_or(&model.node(o.node).name)
                .to_owned())
        })
        .collect()
}
