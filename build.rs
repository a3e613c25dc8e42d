//! Sets `cfg(agegender_classifier)` when the trainer has shipped a classifier: with
//! `model/agegender.graph` and its card `model/agegender.json` present, `src/embedded.rs` compiles
//! them in; without them the build is detector-only and the page says so (it never shows a
//! made-up age or gender). The graph files are committed, not written here: translating ONNX at
//! build time compiled tract's ONNX front end for the host in every profile (CI's slowest part).

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(agegender_classifier)");
    // The files themselves: watching only the folder missed their arrival in one build.
    println!("cargo::rerun-if-changed=model");
    println!("cargo::rerun-if-changed=model/agegender.graph");
    println!("cargo::rerun-if-changed=model/agegender.json");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("model");
    if model.join("agegender.graph").is_file() && model.join("agegender.json").is_file() {
        println!("cargo::rustc-cfg=agegender_classifier");
    }
}
