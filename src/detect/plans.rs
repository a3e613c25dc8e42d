//! The YuNet model as tract plans. Public so the benchmarks profile the very plans the detector
//! runs.

use tract_core::prelude::*;

use crate::error::{Error, Result};

pub type Plan = Arc<TypedRunnableModel>;

/// Loads a detector once (a graph file, or natively with the `onnx` feature an ONNX file), its
/// canvas height and width left open as the symbols `H` and `W`; plans for given canvas sizes
/// are then made by [`plan_for`].
pub fn load(bytes: &[u8]) -> Result<graph::Graph> {
    crate::model::load_graph(bytes, "detector", open_canvas)
}

/// How the embedded detector's weights are stored. Int8 with a scale per output channel: a
/// quarter of the f32 bytes in the page's download (`examples/detector_weights.rs` compares its
/// detections with the f32 model's).
#[cfg(feature = "onnx")]
pub const EMBEDDED_WEIGHTS: graph::Weights = graph::Weights::Int8;

/// The graph file for a YuNet ONNX file (`model/yunet_n.graph` with [`EMBEDDED_WEIGHTS`]).
#[cfg(feature = "onnx")]
pub fn graph_file(onnx: &[u8], weights: graph::Weights) -> Result<Vec<u8>> {
    crate::model::graph_file(onnx, "detector", open_canvas, weights)
}

/// One image, its height and width the symbols `H` and `W`, set per plan.
fn open_canvas(_: &[Option<usize>]) -> Result<Vec<Option<String>>> {
    Ok(["1", "3", "H", "W"].map(|d| Some(d.into())).to_vec())
}

/// An optimised plan for `[1, 3, height, width]` inputs. Concrete sizes only: a plan with
/// symbolic height and width ran 6-7x slower in tract 0.23 (measured natively at 256 to 640
/// pixels). The graph is built with the sizes set (`Graph::to_typed_with`), not built symbolic
/// and then `set_symbols`: that took about 200 ms more in the page.
pub fn plan_for(graph: &graph::Graph, height: usize, width: usize) -> Result<Plan> {
    plan_of(graph, height, width, false)
}

/// An optimised plan of the transposed model (`Graph::to_typed_transposed_with`) for
/// `[1, 3, height, width]` inputs: transposed canvases `width` high and `height` wide.
pub fn plan_transposed_for(graph: &graph::Graph, height: usize, width: usize) -> Result<Plan> {
    plan_of(graph, height, width, true)
}

fn plan_of(graph: &graph::Graph, height: usize, width: usize, transposed: bool) -> Result<Plan> {
    let size = |v: usize| i64::try_from(v).map_err(|e| Error::model("detector", e));
    let values = [("H", size(height)?), ("W", size(width)?)];
    let model = if transposed {
        graph.to_typed_transposed_with(&values)
    } else {
        graph.to_typed_with(&values)
    };
    let model = model.map_err(|e| Error::model("detector", e))?;
    crate::model::plan(model).map_err(|e| Error::model("detector", e))
}

/// The ONNX names of a graph's outputs, in output order.
pub fn graph_output_names(graph: &graph::Graph) -> Vec<String> {
    graph
        .outputs
        .iter()
        .map(|o| {
            o.label.clone().unwrap_or_else(|| {
                graph
                    .nodes
                    .get(o.wire.node)
                    .map(|n| n.name.clone())
                    .unwrap_or_default()
            })
        })
        .collect()
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
