//! The shipped models: the graph files the page embeds are their ONNX files translated (after a
//! new `model/*.onnx`: `AGEGENDER_BLESS=1 cargo test --test shipped_model`; the trainer's
//! `export` writes both); the classifier (`model/agegender.onnx`) has the architecture its card
//! describes, and tract reproduces the golden outputs the trainer recorded from the training
//! framework, from the ONNX file and from the graph file.
#![cfg(not(target_arch = "wasm32"))]

use agegender::detect::plans;
use agegender::embedded;
use agegender::estimate::{AGE_BINS, AGE_OUTPUT, GENDER_OUTPUT, INPUT_NAME};
use agegender::preprocess::golden_pattern;
use serde_json::Value;

/// The ONNX file, its card and golden outputs.
fn shipped() -> Option<(Vec<u8>, Value, Value)> {
    let Some(card) = embedded::CARD else {
        println!("no classifier is embedded in this build: nothing to check");
        return None;
    };
    let model = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/model/agegender.onnx"))
        .expect("the card ships with its model");
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/model/agegender.golden.json"
    ))
    .expect("model/agegender.golden.json ships with the model");
    Some((
        model,
        serde_json::from_str(card).unwrap(),
        serde_json::from_str(&golden).unwrap(),
    ))
}

/// `model/{name}.graph` is `translate(model/{name}.onnx)` byte for byte, or rewritten to be so
/// with `AGEGENDER_BLESS`.
fn check_graph_file(
    name: &str,
    embedded: Option<&[u8]>,
    translate: impl Fn(&[u8]) -> agegender::error::Result<Vec<u8>>,
) {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model");
    let onnx = std::fs::read(model.join(format!("{name}.onnx"))).unwrap();
    let want = translate(&onnx).unwrap();
    let path = model.join(format!("{name}.graph"));
    if std::env::var_os("AGEGENDER_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        want,
        "{} is not model/{name}.onnx translated; rewrite it: \
         AGEGENDER_BLESS=1 cargo test --test shipped_model",
        path.display()
    );
    // And the build embeds that file (cargo rebuilds when it changes).
    assert!(
        embedded == Some(want.as_slice()),
        "stale embedded {name}.graph"
    );
}

#[test]
fn the_graph_files_are_the_onnx_files_translated() {
    check_graph_file("yunet_n", Some(agegender::detect::YUNET), |onnx| {
        plans::graph_file(onnx, plans::EMBEDDED_WEIGHTS)
    });
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model");
    if model.join("agegender.onnx").is_file() && model.join("agegender.json").is_file() {
        check_graph_file(
            "agegender",
            embedded::CLASSIFIER,
            agegender::classify::graph_file,
        );
    }
}

#[test]
fn the_model_has_the_architecture_of_its_card() {
    let Some((model, card, _)) = shipped() else {
        return;
    };
    let proto = graph::onnx::parse(&model).unwrap();
    let graph = proto.graph.unwrap();
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name, INPUT_NAME);
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outputs, [AGE_OUTPUT, GENDER_OUTPUT]);
    let convs = graph.node.iter().filter(|n| n.op_type == "Conv").count();
    let layers = card["architecture"]["layers"].as_array().unwrap().len();
    assert_eq!(convs, layers);
    assert_eq!(
        card["architecture"]["age_bins"].as_u64(),
        Some(AGE_BINS as u64)
    );
    assert_eq!(card["bytes"].as_u64(), Some(model.len() as u64));
    // Ops limited to what tract runs well.
    for n in &graph.node {
        assert!(
            [
                "Conv",
                "Relu",
                "GlobalAveragePool",
                "Flatten",
                "Gemm",
                "Cast",
                "Mul"
            ]
            .contains(&n.op_type.as_str()),
            "unexpected op {}",
            n.op_type
        );
    }
}

#[test]
fn tract_reproduces_the_trainers_golden_outputs() {
    let Some((model, _, golden)) = shipped() else {
        return;
    };
    let embedded = embedded::CLASSIFIER.expect("embedded with its card");
    let onnx = agegender::Classifier::from_bytes(&model).unwrap();
    let page = agegender::Classifier::from_bytes(embedded).unwrap();
    for classifier in [onnx, page] {
        check_golden(&classifier, &golden);
    }
}

fn check_golden(classifier: &agegender::Classifier, golden: &Value) {
    let variants: Vec<u32> = golden["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let size = classifier.input_size();
    let crops: Vec<_> = variants.iter().map(|&v| golden_pattern(v, size)).collect();
    let got = classifier.logits(&crops).unwrap();
    // The recorded difference of the shipped (possibly int8) file, plus float noise.
    let tolerance = golden["tolerance"]["shipped_max_logit_diff"]
        .as_f64()
        .unwrap() as f32
        + 1e-3;
    for (i, (ages, gender)) in got.iter().enumerate() {
        let want_ages = golden["age_logits"][i].as_array().unwrap();
        assert_eq!(ages.len(), want_ages.len());
        for (a, w) in ages.iter().zip(want_ages) {
            assert!(
                (a - w.as_f64().unwrap() as f32).abs() <= tolerance,
                "variant {i}: {a} vs {w}"
            );
        }
        let wg = golden["gender_logit"][i].as_f64().unwrap() as f32;
        assert!(
            (gender - wg).abs() <= tolerance,
            "variant {i}: {gender} vs {wg}"
        );
    }
}
