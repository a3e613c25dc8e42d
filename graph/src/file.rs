//! The graph file: a magic, a header (nodes, outputs, tensor descriptions; postcard, serde's
//! compact binary encoding) and the tensors' bytes.

use serde::{Deserialize, Serialize};
use tract_core::internal::*;
use tract_core::ops::konst::Const;
use tract_core::ops::source::TypedSource;

use crate::Weights;
use crate::error::{Error, Result};
use crate::ops::OpSpec;
use crate::tensor::{self, TensorInfo};

/// Version 2: enums externally tagged (`{"Conv": {...}}`), which loads without serde's buffered
/// `Content` deserialiser (58 KB of the page's module's serde code). Version 3: quantised
/// tensors' scales in the body, 4-bit values packed ([`crate::Encoding`]). Older files are
/// refused. Version 3's header is postcard: as JSON it needed serde_json's parser in the page's
/// module, and its text gzipped to more bytes.
const MAGIC: &[u8; 8] = b"AGGRAPH3";

/// A model: nodes in evaluation order, each wired to earlier ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub outputs: Vec<Output>,
    pub tensors: Vec<TensorInfo>,
    /// The tensors' bytes (the file's body).
    #[serde(skip)]
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub inputs: Vec<Wire>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeKind {
    /// A model input: datum type and shape (expressions over symbols such as `H`).
    Source {
        dt: String,
        shape: Vec<String>,
    },
    /// A constant: index into [`Graph::tensors`].
    Const {
        tensor: usize,
    },
    Op(OpSpec),
}

/// Output `slot` of node `node`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Wire {
    pub node: usize,
    pub slot: usize,
}

/// A model output and its name (the ONNX output's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub wire: Wire,
    pub label: Option<String>,
}

pub(crate) fn from_typed(model: &TypedModel, weights: Weights) -> Result<Graph> {
    let order = model.eval_order().map_err(Error::tract)?;
    let mut index = vec![usize::MAX; model.nodes.len()];
    let mut graph = Graph {
        nodes: vec![],
        outputs: vec![],
        tensors: vec![],
        body: vec![],
    };
    for id in order {
        let node = &model.nodes[id];
        let kind = if let Some(source) = node.op_as::<TypedSource>() {
            NodeKind::Source {
                dt: format!("{:?}", source.fact.datum_type),
                shape: source.fact.shape.iter().map(|d| d.to_string()).collect(),
            }
        } else if let Some(konst) = node.op_as::<Const>() {
            let info = tensor::write(konst.val(), weights, &mut graph.body)?;
            graph.tensors.push(info);
            NodeKind::Const {
                tensor: graph.tensors.len() - 1,
            }
        } else {
            NodeKind::Op(
                OpSpec::of(node.op.as_ref()).ok_or_else(|| Error::Unsupported {
                    node: node.name.clone(),
                    op: format!("{:?}", node.op),
                })?,
            )
        };
        let inputs = node
            .inputs
            .iter()
            .map(|i| Wire {
                node: index[i.node],
                slot: i.slot,
            })
            .collect();
        index[id] = graph.nodes.len();
        graph.nodes.push(Node {
            name: node.name.clone(),
            kind,
            inputs,
        });
    }
    for outlet in model.output_outlets().map_err(Error::tract)? {
        graph.outputs.push(Output {
            wire: Wire {
                node: index[outlet.node],
                slot: outlet.slot,
            },
            label: model.outlet_label(*outlet).map(str::to_owned),
        });
    }
    Ok(graph)
}

impl Graph {
    /// Whether `bytes` start as a graph file does (and not, say, as an ONNX file).
    pub fn is_graph_file(bytes: &[u8]) -> bool {
        bytes.starts_with(&MAGIC[..7])
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = postcard::to_allocvec(self).map_err(|e| Error::format(e.to_string()))?;
        let len = u32::try_from(header.len()).map_err(|_| Error::format("header over 4 GB"))?;
        let mut out = Vec::with_capacity(12 + header.len() + self.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    /// Reads a file written by [`Graph::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Graph> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
            if Self::is_graph_file(bytes) {
                Error::format("an older graph file version: write it again from its ONNX file")
            } else {
                Error::format("wrong magic")
            }
        })?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| Error::format("truncated header length"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(Error::format("truncated header"));
        }
        let (header, body) = rest.split_at(len);
        let mut graph: Graph =
            postcard::from_bytes(header).map_err(|e| Error::format(e.to_string()))?;
        graph.body = body.to_vec();
        Ok(graph)
    }

    /// The model, built with tract-core's constructors: decluttered as it was written, ready for
    /// `set_symbols` (if its shapes name any) and `into_optimized`.
    pub fn to_typed(&self) -> Result<TypedModel> {
        self.to_typed_with(&[])
    }

    /// The model with these symbols given values (`("H", 416)`): every dimension expression is
    /// evaluated as it is read, so the model is built concrete. Much cheaper than building it
    /// symbolic and then calling `set_symbols`: tract's symbolic shape inference took about
    /// 200 ms of the page's model preparation for the detector, and the same graph built
    /// concrete takes a few.
    pub fn to_typed_with(&self, values: &[(&str, i64)]) -> Result<TypedModel> {
        self.build(values, false)
    }

    /// Whether [`Graph::to_typed_transposed_with`] can build this graph: every op treats both
    /// spatial axes alike ([`OpSpec::is_symmetric_in_space`]), and the only constants of rank 3
    /// or more that vary along more than one axis are OIHW convolution kernels.
    pub fn can_transpose(&self) -> bool {
        let kernels = self.kernel_nodes();
        self.nodes
            .iter()
            .enumerate()
            .all(|(id, node)| match &node.kind {
                NodeKind::Op(spec) => spec.is_symmetric_in_space(),
                NodeKind::Const { tensor } => {
                    kernels.contains(&id)
                        || self.tensors.get(*tensor).is_some_and(|t| {
                            // Weights of a matrix product, or a vector along one axis of a map.
                            t.shape.len() < 3 || t.shape.iter().filter(|&&d| d > 1).count() <= 1
                        })
                }
                NodeKind::Source { .. } => true,
            })
    }

    /// The model for images transposed (height and width swapped), as [`Graph::to_typed_with`]
    /// builds it but with every convolution kernel transposed: its outputs are the model's on
    /// the untransposed image, transposed. tract 0.23.9 runs depthwise convolutions about 5x
    /// slower on a map higher than wide, so the detector runs portrait images this way. Only
    /// for graphs that [`Graph::can_transpose`].
    pub fn to_typed_transposed_with(&self, values: &[(&str, i64)]) -> Result<TypedModel> {
        if !self.can_transpose() {
            return Err(Error::format(
                "the graph treats height and width differently: it cannot be transposed",
            ));
        }
        self.build(values, true)
    }

    /// The const nodes that are convolution kernels.
    fn kernel_nodes(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Op(spec) => spec.kernel_input().and_then(|i| n.inputs.get(i)),
                _ => None,
            })
            .map(|w| w.node)
            .collect()
    }

    fn build(&self, values: &[(&str, i64)], transposed: bool) -> Result<TypedModel> {
        let kernels = if transposed {
            self.kernel_nodes()
        } else {
            vec![]
        };
        let mut model = TypedModel::default();
        let mut known = SymbolValues::default();
        for (name, value) in values {
            known.set(&model.symbols.sym(name), *value);
        }
        let symbols = model.symbols.clone();
        let parse = |d: &str| -> TractResult<TDim> { Ok(symbols.parse_tdim(d)?.eval(&known)) };
        let mut outlets: Vec<TVec<OutletId>> = Vec::with_capacity(self.nodes.len());
        for (id, node) in self.nodes.iter().enumerate() {
            let wire = |w: &Wire| {
                outlets
                    .get(w.node)
                    .and_then(|o| o.get(w.slot))
                    .copied()
                    .ok_or_else(|| {
                        Error::format(format!(
                            "node {id} reads {w:?}, not an earlier node's output"
                        ))
                    })
            };
            let inputs: TVec<OutletId> = node.inputs.iter().map(wire).collect::<Result<_>>()?;
            let at = |e: String| Error::format(format!("node {:?}: {e}", node.name));
            let wired = match &node.kind {
                NodeKind::Source { dt, shape } => {
                    let dt: DatumType = dt.parse().map_err(|e| at(format!("{e}")))?;
                    let shape: TVec<TDim> = shape
                        .iter()
                        .map(|d| parse(d))
                        .collect::<TractResult<_>>()
                        .map_err(|e| at(format!("{e}")))?;
                    tvec![
                        model
                            .add_source(&node.name, dt.fact(shape))
                            .map_err(Error::tract)?
                    ]
                }
                NodeKind::Const { tensor } => {
                    let info = self
                        .tensors
                        .get(*tensor)
                        .ok_or_else(|| at(format!("no tensor {tensor}")))?;
                    let mut t = tensor::read(info, &self.body)?;
                    if kernels.contains(&id) && t.rank() == 4 {
                        t = t.permute_axes(&[0, 1, 3, 2]).map_err(Error::tract)?;
                    }
                    model
                        .wire_node(
                            &node.name,
                            Const::new(t.into_arc_tensor()).map_err(Error::tract)?,
                            &[],
                        )
                        .map_err(Error::tract)?
                }
                NodeKind::Op(spec) => {
                    let op = spec.to_op(&parse).map_err(at)?;
                    model
                        .wire_node(&node.name, op, &inputs)
                        .map_err(Error::tract)?
                }
            };
            outlets.push(wired);
        }
        let mut outputs = vec![];
        for o in &self.outputs {
            let outlet = outlets
                .get(o.wire.node)
                .and_then(|n| n.get(o.wire.slot))
                .copied()
                .ok_or_else(|| Error::format(format!("output {o:?} is not a node's output")))?;
            if let Some(label) = &o.label {
                model
                    .set_outlet_label(outlet, label.clone())
                    .map_err(Error::tract)?;
            }
            outputs.push(outlet);
        }
        model
            .select_output_outlets(&outputs)
            .map_err(Error::tract)?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Graph {
        Graph {
            nodes: vec![Node {
                name: "input".into(),
                kind: NodeKind::Source {
                    dt: "F32".into(),
                    shape: vec!["1".into(), "3".into(), "H".into(), "W".into()],
                },
                inputs: vec![],
            }],
            outputs: vec![Output {
                wire: Wire { node: 0, slot: 0 },
                label: Some("input".into()),
            }],
            tensors: vec![],
            body: vec![1, 2, 3],
        }
    }

    #[test]
    fn a_graph_comes_back_equal() {
        let bytes = tiny().to_bytes().unwrap();
        assert!(Graph::is_graph_file(&bytes));
        assert_eq!(Graph::from_bytes(&bytes).unwrap(), tiny());
    }

    #[test]
    fn a_damaged_header_is_an_error() {
        let bytes = tiny().to_bytes().unwrap();
        // Cut inside the header (its length says more), and garbage of the right length.
        let mut cut = bytes[..20].to_vec();
        cut.extend_from_slice(&[0xff; 4]);
        assert!(matches!(Graph::from_bytes(&cut), Err(Error::Format(_))));
        let mut garbage = bytes.clone();
        garbage[12..bytes.len() - 3].fill(0xff);
        assert!(matches!(Graph::from_bytes(&garbage), Err(Error::Format(_))));
    }

    #[test]
    fn an_older_version_is_refused_by_name() {
        let mut bytes = tiny().to_bytes().unwrap();
        bytes[7] = b'1';
        assert!(Graph::is_graph_file(&bytes));
        let err = Graph::from_bytes(&bytes).unwrap_err().to_string();
        assert!(err.contains("older graph file version"), "{err}");
        assert!(!Graph::is_graph_file(b"\x08\x07onnx"));
    }
}
