//! Sets `cfg(agegender_classifier)` when the trainer has shipped a classifier: with
//! `model/agegender.graph` and its card `model/agegender.json` present, `src/embedded.rs` compiles
//! them in; without them the build is detector-only and the page says so (it never shows a
//! made-up age or gender). The graph files are committed, not written here: translating ONNX at
//! build time compiled tract's ONNX front end for the host in every profile (CI's slowest part).
//!
//! What the library needs from the card (its name and calibration) is read here and written as
//! Rust constants (`$OUT_DIR/card.rs`), so the page's module links no JSON parser: serde_json was
//! there for the card alone (`bench/ANALYSIS.md`).

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(agegender_classifier)");
    // The files themselves: watching only the folder missed their arrival in one build.
    println!("cargo::rerun-if-changed=model");
    println!("cargo::rerun-if-changed=model/agegender.graph");
    println!("cargo::rerun-if-changed=model/agegender.json");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("model");
    let card = model.join("agegender.json");
    if model.join("agegender.graph").is_file() && card.is_file() {
        println!("cargo::rustc-cfg=agegender_classifier");
        let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("card.rs");
        std::fs::write(out, card_constants(&card)).expect("write card.rs");
    }
}

/// `NAME` and `CALIBRATION` of the card at `path`, as Rust. A card without them fails the build
/// (the trainer's `export` always writes both).
fn card_constants(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read model/agegender.json");
    let card: serde_json::Value =
        serde_json::from_str(&text).expect("model/agegender.json is JSON");
    let name = card["name"].as_str().expect("the card has a name");
    let number = |key: &str| {
        let v = card["calibration"][key]
            .as_f64()
            .unwrap_or_else(|| panic!("the card has calibration.{key}"));
        // f32's Debug prints the shortest text that reads back as the same f32.
        format!("{:?}f32", v as f32)
    };
    format!(
        "/// The card's `name`.\npub const NAME: &str = {name:?};\n\
         /// The card's `calibration`.\npub const CALIBRATION: crate::estimate::Calibration = \
         crate::estimate::Calibration {{ interval_k: {}, coverage: {} }};\n",
        number("interval_k"),
        number("coverage"),
    )
}
