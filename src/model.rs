//! Model files to tract models. The embedded models are graph files (`build.rs` writes them from
//! `model/*.onnx`), loaded with tract-core's constructors: the page's module has no ONNX front
//! end. Natively, with the `onnx` feature, ONNX files load too, translated the same way.

use tract_core::prelude::*;

use crate::error::{Error, Result};

/// The model in `bytes`, a graph file or (feature `onnx`) an ONNX file. For an ONNX file,
/// `shape` gives its input's dimensions from those the file states (`None` where open): each an
/// expression (`"1"`, `"H"`) or `None` to keep the file's.
pub(crate) fn load(
    bytes: &[u8],
    model: &'static str,
    #[cfg_attr(not(feature = "onnx"), allow(unused_variables))] shape: impl FnOnce(
        &[Option<usize>],
    ) -> Result<
        Vec<Option<String>>,
    >,
) -> Result<TypedModel> {
    let err = |e| Error::model(model, e);
    let graph = if graph::Graph::is_graph_file(bytes) {
        graph::Graph::from_bytes(bytes).map_err(err)?
    } else {
        #[cfg(feature = "onnx")]
        {
            let proto = graph::onnx::parse(bytes).map_err(err)?;
            let dims = shape(&graph::onnx::input_dims(&proto).map_err(err)?)?;
            let dims: Vec<Option<&str>> = dims.iter().map(|d| d.as_deref()).collect();
            graph::onnx::from_proto(&proto, &dims, graph::Weights::Exact).map_err(err)?
        }
        #[cfg(not(feature = "onnx"))]
        return Err(Error::model(
            model,
            "not a graph file (ONNX files load natively, with the `onnx` feature)",
        ));
    };
    graph.to_typed().map_err(err)
}
