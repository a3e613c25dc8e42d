//! Native half of the native-vs-wasm parity check: the analysis of the generated scene
//! (`tests/common`) must match the committed golden, which `tests/web.rs` checks the wasm build
//! against in the browser. After a deliberate change (a new model, new options), regenerate it:
//!
//! ```sh
//! AGEGENDER_BLESS=1 cargo test --test golden
//! ```
#![cfg(not(target_arch = "wasm32"))]

mod common;

use agegender::{Options, embedded};
use serde_json::{Value, json};

#[test]
fn synthetic_scene_matches_the_golden() {
    // The same models as the page's `Analyzer` (src/wasm.rs).
    let pipeline = embedded::pipeline().expect("embedded models load");
    let analyze = |img: &image::RgbImage| {
        let analysis = pipeline
            .analyze(img, &Options::default())
            .expect("analysis");
        assert!(
            !analysis.faces.is_empty(),
            "the generated scene must contain a detectable face, or the parity check proves little"
        );
        serde_json::to_value(&analysis).unwrap()
    };
    let got = analyze(&common::synthetic_scene());
    let rolled = analyze(&common::synthetic_scene_rolled());

    if std::env::var_os("AGEGENDER_BLESS").is_some() {
        let doc = json!({
            "about": "Native analysis of tests/common::synthetic_scene() (`analysis`) and of \
                      synthetic_scene_rolled() (`rolled`) with default Options; tests/web.rs \
                      checks the wasm build against them. \
                      Regenerate: AGEGENDER_BLESS=1 cargo test --test golden",
            "classifier": embedded::classifier_name(),
            "analysis": got,
            "rolled": rolled,
        });
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(common::GOLDEN_PATH);
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }

    let golden: Value = serde_json::from_str(common::GOLDEN).expect("golden JSON");
    for (name, got) in [("analysis", &got), ("rolled", &rolled)] {
        let diffs = common::differences(got, &golden[name]);
        assert!(
            diffs.is_empty(),
            "the native analysis differs from {}'s `{name}` (regenerate with AGEGENDER_BLESS=1 \
             if the change is intended):\n{}",
            common::GOLDEN_PATH,
            diffs.join("\n")
        );
    }
}

/// The rolled scene's face (turned 25 degrees) is read more nearly at its roll with the
/// detector's turned looks than by its first pass alone, and `turned_looks: 0` turns them off.
#[test]
fn turned_looks_read_more_of_the_rolled_scenes_roll() {
    use agegender::detect::DetectOptions;
    let pipeline = embedded::pipeline().expect("embedded models load");
    let img = common::synthetic_scene_rolled();
    let tilt = |turned_looks| {
        let opts = DetectOptions {
            turned_looks,
            ..DetectOptions::default()
        };
        let faces = pipeline.detector().detect(&img, &opts).expect("detect");
        let [face] = faces[..] else {
            panic!("{} faces in the rolled scene", faces.len());
        };
        face.tilt().to_degrees()
    };
    let (none, one, three) = (tilt(0), tilt(1), tilt(3));
    println!("turned 25 degrees, read {none:.1} (no look), {one:.1} (one), {three:.1} (three)");
    assert!(
        one > none + 1.0 && three > none + 1.0 && three < 30.0,
        "read {none:.1}, {one:.1} and {three:.1} degrees"
    );
}

/// The page classifies a group photo's faces in two workers: `find`, the faces' crops packed
/// (`packed_crops`) and classified in two parts (`classify_packed`) give the estimates `analyze`
/// gives.
#[test]
fn faces_classified_in_parts_get_the_estimates_of_one_analysis() {
    let pipeline = embedded::pipeline().expect("embedded models load");
    let img = common::two_faces();
    let opts = Options::default();
    let whole = pipeline.analyze(&img, &opts).expect("analysis");
    let found = pipeline.find(&img, &opts).expect("find");
    let (classify, packed) = pipeline.packed_crops(&found);
    assert_eq!(classify.len(), 2, "two faces to classify");
    let half = packed.len() / 2;
    let mut estimates = pipeline
        .classify_packed(&packed[..half], opts.mirror)
        .expect("first part");
    estimates.extend(
        pipeline
            .classify_packed(&packed[half..], opts.mirror)
            .expect("second part"),
    );
    let mut parts = found.analysis.clone();
    for (&i, estimate) in classify.iter().zip(estimates) {
        parts.faces[i].estimate = Some(estimate);
    }
    assert_eq!(
        serde_json::to_value(&parts).unwrap(),
        serde_json::to_value(&whole).unwrap()
    );
    // Bytes that are not whole crops are an error, not a panic.
    let short = &packed[1..half];
    assert!(matches!(
        pipeline.classify_packed(short, opts.mirror),
        Err(agegender::Error::PackedCrops { .. })
    ));
}

#[test]
fn the_comparison_catches_differences() {
    let a = json!({"faces": [{"box_px": [10.0, 20.0, 30.0, 40.0], "score": 0.9, "ok": true}]});
    assert!(common::differences(&a, &a).is_empty());
    let near =
        json!({"faces": [{"box_px": [10.1, 20.0, 30.0, 40.0], "score": 0.9005, "ok": true}]});
    assert!(common::differences(&near, &a).is_empty());
    let far = json!({"faces": [{"box_px": [11.0, 20.0, 30.0, 40.0], "score": 0.8, "ok": false}]});
    assert_eq!(common::differences(&far, &a).len(), 3);
    assert_eq!(common::differences(&json!({"faces": []}), &a).len(), 1);
}
