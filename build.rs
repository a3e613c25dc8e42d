//! Embeds the age/gender classifier when the trainer has shipped it: with `model/agegender.onnx`
//! and its card `model/agegender.json` present, sets `cfg(agegender_classifier)` and
//! `src/embedded.rs` compiles them in; without them the build is detector-only and the page says
//! so (it never shows a made-up age or gender).

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(agegender_classifier)");
    // The files themselves: watching only the folder missed their arrival in one build.
    println!("cargo::rerun-if-changed=model");
    println!("cargo::rerun-if-changed=model/agegender.onnx");
    println!("cargo::rerun-if-changed=model/agegender.json");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("model");
    if model.join("agegender.onnx").is_file() && model.join("agegender.json").is_file() {
        println!("cargo::rustc-cfg=agegender_classifier");
    }
}
