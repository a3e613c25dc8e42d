//! Writes the embedded models as graph files (the `graph` crate) from the ONNX files in `model/`,
//! so the page's module loads them with tract-core alone: the YuNet detector always, with its
//! canvas height and width left as `H` and `W`; the age/gender classifier when the trainer has
//! shipped it. With `model/agegender.onnx` and its card `model/agegender.json` present, sets
//! `cfg(agegender_classifier)` and `src/embedded.rs` compiles them in; without them the build is
//! detector-only and the page says so (it never shows a made-up age or gender).

use std::path::{Path, PathBuf};

use graph::Weights;

fn translate(onnx: &Path, shape: &[Option<&str>], out: &Path) {
    let bytes = std::fs::read(onnx).unwrap_or_else(|e| panic!("reading {}: {e}", onnx.display()));
    let graph = graph::onnx::from_onnx(&bytes, shape, Weights::Exact)
        .unwrap_or_else(|e| panic!("translating {}: {e}", onnx.display()));
    let file = graph
        .to_bytes()
        .unwrap_or_else(|e| panic!("encoding {}: {e}", onnx.display()));
    std::fs::write(out, file).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(agegender_classifier)");
    // The files themselves: watching only the folder missed their arrival in one build.
    println!("cargo::rerun-if-changed=model");
    println!("cargo::rerun-if-changed=model/yunet_n.onnx");
    println!("cargo::rerun-if-changed=model/agegender.onnx");
    println!("cargo::rerun-if-changed=model/agegender.json");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("model");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    translate(
        &model.join("yunet_n.onnx"),
        &[Some("1"), Some("3"), Some("H"), Some("W")],
        &out.join("yunet_n.graph"),
    );
    if model.join("agegender.onnx").is_file() && model.join("agegender.json").is_file() {
        // One face per run (a symbolic batch plans slower); the crop size as exported.
        translate(
            &model.join("agegender.onnx"),
            &[Some("1"), None, None, None],
            &out.join("agegender.graph"),
        );
        println!("cargo::rustc-cfg=agegender_classifier");
    }
}
