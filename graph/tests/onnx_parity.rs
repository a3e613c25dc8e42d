//! A graph file runs exactly as the ONNX file it was written from: the same outputs, bit for
//! bit, from tract's plans of both, for the shipped detector (one graph for every canvas size)
//! and classifier.

use graph::{Graph, Weights};
use tract_onnx::prelude::*;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../model");

/// A deterministic input: a smooth pattern with some texture, in the models' range.
fn input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i as f32 * 0.013).sin() * 80.0 + (i % 7) as f32 * 9.0).clamp(-127.0, 255.0))
        .collect();
    Tensor::from_shape(shape, &values).unwrap()
}

fn run(plan: &Arc<TypedRunnableModel>, input: &Tensor) -> Vec<Tensor> {
    plan.run(tvec![input.clone().into_tvalue()])
        .unwrap()
        .into_iter()
        .map(|t| t.into_tensor())
        .collect()
}

fn onnx_plan(bytes: &[u8], shape: &[usize]) -> Arc<TypedRunnableModel> {
    let onnx = tract_onnx::onnx();
    let mut proto = onnx.proto_model_for_read(&mut &bytes[..]).unwrap();
    proto.graph.as_mut().unwrap().value_info.clear();
    onnx.model_for_proto_model(&proto)
        .unwrap()
        .with_input_fact(0, f32::fact(shape).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap()
}

/// As the detector makes its plans: the graph built with its symbols' values
/// (`Graph::to_typed_with`). The symbolic build then `set_symbols` must give the same plan.
fn graph_plan(graph: &Graph, symbols: &[(&str, i64)]) -> Arc<TypedRunnableModel> {
    let graph = Graph::from_bytes(&graph.to_bytes().unwrap()).unwrap();
    let symbolic = graph.to_typed().unwrap();
    let subs = symbols
        .iter()
        .map(|(name, v)| (symbolic.symbols.sym(name), v.to_dim()))
        .collect();
    let concrete = graph.to_typed_with(symbols).unwrap();
    assert_eq!(
        format!(
            "{}",
            symbolic
                .set_symbols(&subs)
                .unwrap()
                .into_optimized()
                .unwrap()
        ),
        format!("{}", concrete.clone().into_optimized().unwrap()),
        "the concrete build optimises to the same plan"
    );
    // agegender runs tract's codegen passes alone (`model::plan`): the graph is written
    // decluttered, and declutter must find nothing more once the sizes are set.
    let full = format!("{}", concrete.clone().into_optimized().unwrap());
    let mut plan = concrete;
    plan.optimize().unwrap();
    assert_eq!(format!("{plan}"), full, "codegen alone gives the same plan");
    plan.into_runnable().unwrap()
}

fn assert_same(a: &[Tensor], b: &[Tensor]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.shape(), y.shape());
        let (x, y) = (x.try_as_plain_ram().unwrap(), y.try_as_plain_ram().unwrap());
        let (x, y) = (x.as_slice::<f32>().unwrap(), y.as_slice::<f32>().unwrap());
        let worst = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(
            x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "outputs differ by up to {worst}"
        );
    }
}

#[test]
fn the_detector_graph_runs_as_its_onnx_at_every_canvas_size() {
    let bytes = std::fs::read(format!("{MODEL}/yunet_n.onnx")).unwrap();
    let graph = graph::onnx::from_onnx(
        &bytes,
        &[Some("1"), Some("3"), Some("H"), Some("W")],
        Weights::Exact,
    )
    .unwrap();
    for (h, w) in [(512, 512), (160, 160), (640, 480)] {
        let x = input(&[1, 3, h, w]);
        let want = run(&onnx_plan(&bytes, &[1, 3, h, w]), &x);
        let got = run(&graph_plan(&graph, &[("H", h as i64), ("W", w as i64)]), &x);
        assert_same(&got, &want);
    }
}

#[test]
fn the_classifier_graph_runs_as_its_onnx_and_keeps_its_int8_weights() {
    let bytes = std::fs::read(format!("{MODEL}/agegender.onnx")).unwrap();
    let dims = graph::onnx::input_dims(&graph::onnx::parse(&bytes).unwrap()).unwrap();
    let s = dims[2].unwrap();
    let graph =
        graph::onnx::from_onnx(&bytes, &[Some("1"), None, None, None], Weights::Exact).unwrap();
    let x = input(&[1, 3, s, s]);
    assert_same(
        &run(&graph_plan(&graph, &[]), &x),
        &run(&onnx_plan(&bytes, &[1, 3, s, s]), &x),
    );
    // Its weights stay int8: the file is no bigger than the ONNX one.
    let file = graph.to_bytes().unwrap();
    assert!(
        file.len() <= bytes.len() + bytes.len() / 10,
        "{} vs {}",
        file.len(),
        bytes.len()
    );
    let labels: Vec<_> = graph.outputs.iter().map(|o| o.label.clone()).collect();
    assert_eq!(
        labels,
        [
            Some("age_logits".to_string()),
            Some("gender_logit".to_string())
        ]
    );
}
