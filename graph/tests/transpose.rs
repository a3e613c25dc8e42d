//! `Graph::to_typed_transposed_with`: a graph whose ops treat height and width alike, built with
//! its kernels transposed, computes on a transposed image the transposed outputs; a graph that
//! treats them differently is refused.

use graph::{Graph, Weights};
use tract_core::internal::*;
use tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
use tract_core::ops::nn::DataFormat;

/// One NCHW convolution of a `[1, 1, H, W]` image with a `kh` x `kw` kernel (distinct weights,
/// so that a kernel read the wrong way round shows), padded `pad` on each side of each axis.
fn conv_graph(kh: usize, kw: usize, pad: [usize; 2]) -> Graph {
    let mut model = TypedModel::default();
    let h = model.symbols.sym("H");
    let w = model.symbols.sym("W");
    let x = model
        .add_source(
            "input",
            f32::fact([1.to_dim(), 1.to_dim(), h.into(), w.into()]),
        )
        .unwrap();
    let weights: Vec<f32> = (0..kh * kw).map(|i| i as f32 + 1.0).collect();
    let kernel = model
        .add_const(
            "kernel",
            Tensor::from_shape(&[1, 1, kh, kw], &weights).unwrap(),
        )
        .unwrap();
    let bias = model.add_const("bias", tensor1(&[0.5f32])).unwrap();
    let conv = Conv {
        pool_spec: PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![kh, kw],
            padding: PaddingSpec::Explicit(pad.into_iter().collect(), pad.into_iter().collect()),
            dilations: None,
            strides: None,
            input_channels: 1,
            output_channels: 1,
        },
        kernel_fmt: KernelFormat::OIHW,
        group: 1,
        q_params: None,
    };
    let y = model.wire_node("conv", conv, &[x, kernel, bias]).unwrap();
    model.select_output_outlets(&y).unwrap();
    graph::from_typed(&model, Weights::Exact).unwrap()
}

fn run(model: TypedModel, input: Tensor) -> Tensor {
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    plan.run(tvec![input.into_tvalue()])
        .unwrap()
        .remove(0)
        .into_tensor()
}

#[test]
fn a_transposed_build_computes_the_transposed_outputs() {
    let graph = conv_graph(3, 3, [1, 1]);
    assert!(graph.can_transpose());
    let (h, w) = (5, 8);
    let values: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 11) as f32).collect();
    let image = Tensor::from_shape(&[1, 1, h, w], &values).unwrap();
    let plain = run(
        graph
            .to_typed_with(&[("H", h as i64), ("W", w as i64)])
            .unwrap(),
        image.clone(),
    );
    let transposed = run(
        graph
            .to_typed_transposed_with(&[("H", w as i64), ("W", h as i64)])
            .unwrap(),
        image.clone().permute_axes(&[0, 1, 3, 2]).unwrap(),
    );
    assert_eq!(transposed.shape(), &[1, 1, w, h]);
    let back = transposed.permute_axes(&[0, 1, 3, 2]).unwrap();
    let (a, b) = (
        plain.try_as_plain_ram().unwrap(),
        back.try_as_plain_ram().unwrap(),
    );
    let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
    for (p, q) in a.iter().zip(b) {
        assert!((p - q).abs() < 1e-4, "{p} vs {q}");
    }
    // The untransposed model on the transposed image is another function: the kernel is not
    // symmetric, so the test would catch a kernel left as it was.
    let wrong = run(
        graph
            .to_typed_with(&[("H", w as i64), ("W", h as i64)])
            .unwrap(),
        image.permute_axes(&[0, 1, 3, 2]).unwrap(),
    )
    .permute_axes(&[0, 1, 3, 2])
    .unwrap();
    let wrong = wrong.try_as_plain_ram().unwrap();
    let wrong = wrong.as_slice::<f32>().unwrap();
    assert!(a.iter().zip(wrong).any(|(p, q)| (p - q).abs() > 1.0));
}

#[test]
fn graphs_that_treat_height_and_width_differently_are_refused() {
    for graph in [conv_graph(3, 1, [1, 0]), conv_graph(3, 3, [1, 0])] {
        assert!(!graph.can_transpose());
        assert!(
            graph
                .to_typed_transposed_with(&[("H", 8), ("W", 8)])
                .is_err()
        );
        // Built the usual way, it still runs.
        assert!(graph.to_typed_with(&[("H", 8), ("W", 8)]).is_ok());
    }
}
