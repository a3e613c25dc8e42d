//! Model files to tract models. The embedded models are graph files (`model/*.graph`, written
//! from `model/*.onnx` by [`crate::detect::plans::graph_file`] and
//! [`crate::classify::graph_file`]), loaded with tract-core's constructors: the page's module has
//! no ONNX front end. Natively, with the `onnx` feature, ONNX files load too, translated the same
//! way.

use tract_core::prelude::*;

use crate::error::{Error, Result};

/// The input dimensions for an ONNX file, from those it states (`None` where open): each an
/// expression (`"1"`, `"H"`) or `None` to keep the file's.
pub(crate) type Shape = fn(&[Option<usize>]) -> Result<Vec<Option<String>>>;

/// The model in `bytes`, a graph file or (feature `onnx`) an ONNX file whose input `shape`
/// gives.
pub(crate) fn load(bytes: &[u8], model: &'static str, shape: Shape) -> Result<TypedModel> {
    load_graph(bytes, model, shape)?
        .to_typed()
        .map_err(|e| Error::model(model, e))
}

/// The runnable plan of a model built from a graph file. Only tract's codegen passes run, not
/// its declutter passes (`into_optimized` runs both): every graph is written decluttered, and
/// declutter found nothing more in ours once their sizes are set (`graph/tests/onnx_parity.rs`
/// checks that the plans are the same), while it took about a quarter of each plan's
/// preparation in the page (35-50 ms of 200).
pub(crate) fn plan(mut model: TypedModel) -> TractResult<Arc<TypedRunnableModel>> {
    model.optimize()?;
    model.into_runnable()
}

/// The graph in `bytes`, as [`load`] reads it, not yet a tract model.
pub(crate) fn load_graph(
    bytes: &[u8],
    model: &'static str,
    #[cfg_attr(not(feature = "onnx"), allow(unused_variables))] shape: Shape,
) -> Result<graph::Graph> {
    let err = |e| Error::model(model, e);
    if graph::Graph::is_graph_file(bytes) {
        return graph::Graph::from_bytes(bytes).map_err(err);
    }
    #[cfg(feature = "onnx")]
    {
        let proto = graph::onnx::parse(bytes).map_err(err)?;
        from_proto(&proto, model, shape, graph::Weights::Exact)
    }
    #[cfg(not(feature = "onnx"))]
    Err(Error::model(
        model,
        "not a graph file (ONNX files load natively, with the `onnx` feature)",
    ))
}

/// A parsed ONNX model as a graph, its input dimensions set by `shape`, its weights stored as
/// `weights` says.
#[cfg(feature = "onnx")]
pub(crate) fn from_proto(
    proto: &graph::onnx::pb::ModelProto,
    model: &'static str,
    shape: Shape,
    weights: graph::Weights,
) -> Result<graph::Graph> {
    let err = |e| Error::model(model, e);
    let dims = shape(&graph::onnx::input_dims(proto).map_err(err)?)?;
    let dims: Vec<Option<&str>> = dims.iter().map(|d| d.as_deref()).collect();
    graph::onnx::from_proto(proto, &dims, weights).map_err(err)
}

/// The graph file for the ONNX file in `onnx`, its weights stored as `weights` says.
#[cfg(feature = "onnx")]
pub(crate) fn graph_file(
    onnx: &[u8],
    model: &'static str,
    shape: Shape,
    weights: graph::Weights,
) -> Result<Vec<u8>> {
    let err = |e| Error::model(model, e);
    let proto = graph::onnx::parse(onnx).map_err(err)?;
    from_proto(&proto, model, shape, weights)?
        .to_bytes()
        .map_err(err)
}
