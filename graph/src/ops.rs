//! The ops a graph file holds: each a tract-core op with the options our models use. Adding an
//! op is one variant here and its two arms, in [`OpSpec::of`] and [`OpSpec::to_op`]; sources
//! and constants are nodes of their own (`file.rs`).

use serde::{Deserialize, Serialize};
use tract_core::internal::*;
use tract_core::ops::array::Slice;
use tract_core::ops::binary::TypedBinOp;
use tract_core::ops::change_axes::AxisOp;
use tract_core::ops::cnn::conv::KernelFormat;
use tract_core::ops::cnn::{Conv, MaxPool, PaddingSpec, PoolSpec};
use tract_core::ops::einsum::EinSum;
use tract_core::ops::element_wise::ElementWiseOp;
use tract_core::ops::nn::{DataFormat, NearestUpsample, Reduce, Reducer};

/// One op, with its options as plain values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OpSpec {
    Conv {
        pool: Pool,
        kernel_fmt: String,
        group: usize,
    },
    MaxPool {
        pool: Pool,
    },
    /// `axes` as tract writes an axes mapping (`NIHW,OI->NOHW`).
    EinSum {
        axes: String,
        dt: String,
    },
    /// An element-wise binary op by its tract name (`Add`, `Max`, ...).
    Binary {
        name: String,
    },
    /// An element-wise unary op by its tract name (`Sigmoid`).
    Unary {
        name: String,
    },
    AddAxis {
        axis: usize,
    },
    RmAxis {
        axis: usize,
    },
    MoveAxis {
        from: usize,
        to: usize,
    },
    /// Dimensions as expressions over the graph's symbols (`(H+1)/8`).
    Reshape {
        axis: usize,
        from: Vec<String>,
        to: Vec<String>,
    },
    Reduce {
        axes: Vec<usize>,
        reducer: String,
    },
    NearestUpsample {
        scales: Vec<usize>,
    },
    /// `start..end` along `axis`, as expressions.
    Slice {
        axis: usize,
        start: String,
        end: String,
    },
}

impl OpSpec {
    /// Whether the op treats the two spatial axes alike (square kernels, equal strides,
    /// dilations and padding on both, equal upsampling), so that a model made of such ops, run
    /// on a transposed image with its kernels transposed, computes the transposed outputs
    /// ([`crate::Graph::to_typed_transposed_with`]). A slice might cut one spatial axis only.
    pub fn is_symmetric_in_space(&self) -> bool {
        let same = |v: &[usize]| v.windows(2).all(|w| w[0] == w[1]);
        match self {
            OpSpec::Conv {
                pool, kernel_fmt, ..
            } => kernel_fmt == "OIHW" && pool.is_symmetric(),
            OpSpec::MaxPool { pool } => pool.is_symmetric(),
            OpSpec::NearestUpsample { scales } => {
                scales.len() >= 2 && same(&scales[scales.len() - 2..])
            }
            OpSpec::Slice { .. } => false,
            _ => true,
        }
    }

    /// For a convolution, which of its inputs is the kernel.
    pub(crate) fn kernel_input(&self) -> Option<usize> {
        matches!(self, OpSpec::Conv { .. }).then_some(1)
    }
}

/// tract's `PoolSpec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    data_format: String,
    kernel_shape: Vec<usize>,
    padding: Padding,
    dilations: Option<Vec<usize>>,
    strides: Option<Vec<usize>>,
    input_channels: usize,
    output_channels: usize,
}

/// tract's `PaddingSpec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Padding {
    Explicit {
        before: Vec<usize>,
        after: Vec<usize>,
    },
    ExplicitOnnxPool {
        before: Vec<usize>,
        after: Vec<usize>,
        count_include_pad: bool,
    },
    Valid,
    SameUpper,
    SameLower,
}

/// The binary ops by name: tract's mini ops carry no options, so the name is the op.
fn binary(name: &str) -> Option<TypedBinOp> {
    use tract_core::ops::math;
    Some(match name {
        "Add" => math::add(),
        "Sub" => math::sub(),
        "Mul" => math::mul(),
        "Div" => math::div(),
        "Max" => math::max(),
        "Min" => math::min(),
        _ => return None,
    })
}

/// The unary element-wise ops by name.
fn unary(name: &str) -> Option<ElementWiseOp> {
    use tract_core::ops::nn;
    Some(match name {
        "Sigmoid" => nn::sigmoid(),
        _ => return None,
    })
}

fn reducer(name: &str) -> Option<Reducer> {
    Some(match name {
        "Sum" => Reducer::Sum,
        "Max" => Reducer::Max,
        "Min" => Reducer::Min,
        "Prod" => Reducer::Prod,
        _ => return None,
    })
}

fn data_format(name: &str) -> Option<DataFormat> {
    Some(match name {
        "NCHW" => DataFormat::NCHW,
        "NHWC" => DataFormat::NHWC,
        "CHW" => DataFormat::CHW,
        "HWC" => DataFormat::HWC,
        _ => return None,
    })
}

fn kernel_format(name: &str) -> Option<KernelFormat> {
    Some(match name {
        "OIHW" => KernelFormat::OIHW,
        "HWIO" => KernelFormat::HWIO,
        "OHWI" => KernelFormat::OHWI,
        _ => return None,
    })
}

impl Pool {
    fn is_symmetric(&self) -> bool {
        let same = |v: &[usize]| v.len() == 2 && v[0] == v[1];
        same(&self.kernel_shape)
            && self.dilations.as_deref().is_none_or(same)
            && self.strides.as_deref().is_none_or(same)
            && match &self.padding {
                Padding::Explicit { before, after }
                | Padding::ExplicitOnnxPool { before, after, .. } => same(before) && same(after),
                Padding::Valid | Padding::SameUpper | Padding::SameLower => true,
            }
    }

    fn of(p: &PoolSpec) -> Pool {
        Pool {
            data_format: format!("{:?}", p.data_format),
            kernel_shape: p.kernel_shape.to_vec(),
            padding: match &p.padding {
                PaddingSpec::Explicit(b, a) => Padding::Explicit {
                    before: b.to_vec(),
                    after: a.to_vec(),
                },
                PaddingSpec::ExplicitOnnxPool(b, a, c) => Padding::ExplicitOnnxPool {
                    before: b.to_vec(),
                    after: a.to_vec(),
                    count_include_pad: *c,
                },
                PaddingSpec::Valid => Padding::Valid,
                PaddingSpec::SameUpper => Padding::SameUpper,
                PaddingSpec::SameLower => Padding::SameLower,
            },
            dilations: p.dilations.as_ref().map(|d| d.to_vec()),
            strides: p.strides.as_ref().map(|s| s.to_vec()),
            input_channels: p.input_channels,
            output_channels: p.output_channels,
        }
    }

    fn to_spec(&self) -> Option<PoolSpec> {
        Some(PoolSpec {
            data_format: data_format(&self.data_format)?,
            kernel_shape: self.kernel_shape.iter().copied().collect(),
            padding: match &self.padding {
                Padding::Explicit { before, after } => PaddingSpec::Explicit(
                    before.iter().copied().collect(),
                    after.iter().copied().collect(),
                ),
                Padding::ExplicitOnnxPool {
                    before,
                    after,
                    count_include_pad,
                } => PaddingSpec::ExplicitOnnxPool(
                    before.iter().copied().collect(),
                    after.iter().copied().collect(),
                    *count_include_pad,
                ),
                Padding::Valid => PaddingSpec::Valid,
                Padding::SameUpper => PaddingSpec::SameUpper,
                Padding::SameLower => PaddingSpec::SameLower,
            },
            dilations: self.dilations.as_ref().map(|d| d.iter().copied().collect()),
            strides: self.strides.as_ref().map(|s| s.iter().copied().collect()),
            input_channels: self.input_channels,
            output_channels: self.output_channels,
        })
    }
}

impl OpSpec {
    /// The spec of a tract op, or `None` if the format cannot hold it (an unknown op, or a
    /// quantised or typed-output variant of a known one).
    pub fn of(op: &dyn TypedOp) -> Option<OpSpec> {
        if let Some(c) = op.downcast_ref::<Conv>() {
            return c.q_params.is_none().then(|| OpSpec::Conv {
                pool: Pool::of(&c.pool_spec),
                kernel_fmt: format!("{:?}", c.kernel_fmt),
                group: c.group,
            });
        }
        if let Some(p) = op.downcast_ref::<MaxPool>() {
            return p.with_index_outputs.is_none().then(|| OpSpec::MaxPool {
                pool: Pool::of(&p.pool_spec),
            });
        }
        if let Some(e) = op.downcast_ref::<EinSum>() {
            return e.q_params.is_none().then(|| OpSpec::EinSum {
                axes: e.axes.to_string(),
                dt: format!("{:?}", e.operating_dt),
            });
        }
        if let Some(TypedBinOp(mini, None)) = op.downcast_ref::<TypedBinOp>() {
            let name = mini.name().to_string();
            return binary(&name).is_some().then_some(OpSpec::Binary { name });
        }
        if let Some(ElementWiseOp(mini, None)) = op.downcast_ref::<ElementWiseOp>() {
            let name = mini.name().to_string();
            return unary(&name).is_some().then_some(OpSpec::Unary { name });
        }
        if let Some(a) = op.downcast_ref::<AxisOp>() {
            return Some(match a {
                AxisOp::Add(axis) => OpSpec::AddAxis { axis: *axis },
                AxisOp::Rm(axis) => OpSpec::RmAxis { axis: *axis },
                AxisOp::Move(from, to) => OpSpec::MoveAxis {
                    from: *from,
                    to: *to,
                },
                AxisOp::Reshape(axis, from, to) => OpSpec::Reshape {
                    axis: *axis,
                    from: from.iter().map(|d| d.to_string()).collect(),
                    to: to.iter().map(|d| d.to_string()).collect(),
                },
            });
        }
        if let Some(r) = op.downcast_ref::<Reduce>() {
            let name = format!("{:?}", r.reducer);
            return reducer(&name).is_some().then(|| OpSpec::Reduce {
                axes: r.axes.to_vec(),
                reducer: name,
            });
        }
        if let Some(u) = op.downcast_ref::<NearestUpsample>() {
            return Some(OpSpec::NearestUpsample {
                scales: u.scales.to_vec(),
            });
        }
        if let Some(s) = op.downcast_ref::<Slice>() {
            return Some(OpSpec::Slice {
                axis: s.axis,
                start: s.start.to_string(),
                end: s.end.to_string(),
            });
        }
        None
    }

    /// The tract op, its dimension expressions parsed by `parse` (in the model's own scope).
    pub fn to_op(
        &self,
        parse: &dyn Fn(&str) -> TractResult<TDim>,
    ) -> Result<Box<dyn TypedOp>, String> {
        let unknown = |what: &str, name: &str| format!("unknown {what} {name:?}");
        let pool = |p: &Pool| {
            p.to_spec()
                .ok_or_else(|| format!("unknown data format {:?}", p.data_format))
        };
        let dims = |ds: &[String]| -> Result<TVec<TDim>, String> {
            ds.iter()
                .map(|d| parse(d).map_err(|e| format!("dimension {d:?}: {e}")))
                .collect()
        };
        Ok(match self {
            OpSpec::Conv {
                pool: p,
                kernel_fmt,
                group,
            } => Box::new(Conv {
                pool_spec: pool(p)?,
                kernel_fmt: kernel_format(kernel_fmt)
                    .ok_or_else(|| unknown("kernel format", kernel_fmt))?,
                group: *group,
                q_params: None,
            }),
            OpSpec::MaxPool { pool: p } => Box::new(MaxPool {
                pool_spec: pool(p)?,
                with_index_outputs: None,
            }),
            OpSpec::EinSum { axes, dt } => Box::new(EinSum {
                axes: axes.parse().map_err(|e| format!("axes {axes:?}: {e}"))?,
                operating_dt: dt.parse().map_err(|e| format!("datum type {dt:?}: {e}"))?,
                q_params: None,
            }),
            OpSpec::Binary { name } => {
                Box::new(binary(name).ok_or_else(|| unknown("binary op", name))?)
            }
            OpSpec::Unary { name } => {
                Box::new(unary(name).ok_or_else(|| unknown("unary op", name))?)
            }
            OpSpec::AddAxis { axis } => Box::new(AxisOp::Add(*axis)),
            OpSpec::RmAxis { axis } => Box::new(AxisOp::Rm(*axis)),
            OpSpec::MoveAxis { from, to } => Box::new(AxisOp::Move(*from, *to)),
            OpSpec::Reshape { axis, from, to } => {
                Box::new(AxisOp::Reshape(*axis, dims(from)?, dims(to)?))
            }
            OpSpec::Reduce { axes, reducer: r } => Box::new(Reduce {
                axes: axes.iter().copied().collect(),
                reducer: reducer(r).ok_or_else(|| unknown("reducer", r))?,
            }),
            OpSpec::NearestUpsample { scales } => Box::new(NearestUpsample {
                scales: scales.iter().copied().collect(),
            }),
            OpSpec::Slice { axis, start, end } => {
                let dim = |d: &String| parse(d).map_err(|e| format!("dimension {d:?}: {e}"));
                Box::new(Slice::new(*axis, dim(start)?, dim(end)?))
            }
        })
    }
}
