//! Browser tests of the wasm API (`src/wasm.rs`), run in headless Chromium by
//! `wasm-pack test --headless --chrome` (see `./build.sh test`): the API contract, and parity with
//! the native build on the committed golden (`tests/golden/synthetic.json`, written by the native
//! test `tests/golden.rs`).
#![cfg(target_arch = "wasm32")]

mod common;

use agegender::wasm::{Analyzer, version};
use js_sys::Reflect;
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

thread_local! {
    // Loading the models is the slow part: one analyzer serves every test, as in the page.
    static ANALYZER: Analyzer = Analyzer::new().unwrap_or_else(|e| {
        panic!("Analyzer::new failed: {}", message(&JsValue::from(e)))
    });
}

fn message(err: &JsValue) -> String {
    err.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|| format!("not a JS Error: {err:?}"))
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).expect("a JS object")
}

fn scene(a: &Analyzer) -> Result<JsValue, JsValue> {
    a.analyze(
        &common::synthetic_scene_rgba(),
        common::SCENE_WIDTH,
        common::SCENE_HEIGHT,
        JsValue::UNDEFINED,
    )
    .map_err(JsValue::from)
}

#[wasm_bindgen_test]
fn constructs_and_reports_its_models() {
    assert!(!version().is_empty());
    ANALYZER.with(|a| {
        let info = a.model_info().map_err(JsValue::from).unwrap();
        assert_eq!(
            get(&info, "version").as_string().as_deref(),
            Some(version().as_str())
        );
        assert!(
            get(&info, "detector")
                .as_string()
                .unwrap()
                .contains("BlazeFace")
        );
        assert_eq!(get(&info, "detector_input").as_f64(), Some(256.0));
    });
}

#[wasm_bindgen_test]
fn analyzes_a_generated_image_into_plain_objects() {
    ANALYZER.with(|a| {
        let result = scene(a).unwrap_or_else(|e| panic!("{}", message(&e)));
        assert_eq!(
            get(&result, "width").as_f64(),
            Some(common::SCENE_WIDTH as f64)
        );
        assert_eq!(
            get(&result, "height").as_f64(),
            Some(common::SCENE_HEIGHT as f64)
        );
        let faces: js_sys::Array = get(&result, "faces").dyn_into().expect("faces is an Array");
        assert!(faces.length() >= 1, "the generated face is found");
        let face = faces.get(0);
        let box_px: js_sys::Array = get(&face, "box_px").dyn_into().expect("box_px is an Array");
        assert_eq!(box_px.length(), 4);
        // `estimate` is an object or null, never undefined.
        let estimate = get(&face, "estimate");
        assert!(estimate.is_null() || estimate.is_object());
        assert!(get(&face, "quality").is_object());
    });
}

#[wasm_bindgen_test]
fn bad_input_is_a_js_error_and_the_analyzer_keeps_working() {
    ANALYZER.with(|a| {
        let err = JsValue::from(a.analyze(&[0; 5], 2, 2, JsValue::NULL).unwrap_err());
        assert!(err.is_instance_of::<js_sys::Error>());
        assert!(
            message(&err).contains("RGBA buffer has 5 bytes"),
            "{}",
            message(&err)
        );

        let err = JsValue::from(a.analyze(&[], 0, 0, JsValue::NULL).unwrap_err());
        assert!(message(&err).contains("empty"), "{}", message(&err));

        let err = a
            .analyze(&[0; 16], 2, 2, JsValue::from_str("not options"))
            .map_err(JsValue::from)
            .unwrap_err();
        assert!(err.is_instance_of::<js_sys::Error>());

        // Still usable after the errors.
        assert!(scene(a).is_ok());
        let grey = vec![128u8; 64 * 64 * 4];
        let result = a
            .analyze(&grey, 64, 64, JsValue::UNDEFINED)
            .map_err(JsValue::from)
            .unwrap();
        assert_eq!(js_sys::Array::from(&get(&result, "faces")).length(), 0);
    });
}

#[wasm_bindgen_test]
fn options_from_js_are_applied() {
    ANALYZER.with(|a| {
        let options = js_sys::Object::new();
        Reflect::set(&options, &"max_faces".into(), &0.into()).unwrap();
        let rgba = common::synthetic_scene_rgba();
        let result = a
            .analyze(
                &rgba,
                common::SCENE_WIDTH,
                common::SCENE_HEIGHT,
                options.into(),
            )
            .map_err(JsValue::from)
            .unwrap();
        assert_eq!(js_sys::Array::from(&get(&result, "faces")).length(), 0);
    });
}

#[wasm_bindgen_test]
fn matches_the_native_golden() {
    let golden: Value = serde_json::from_str(common::GOLDEN).expect("golden JSON");
    ANALYZER.with(|a| {
        let result = scene(a).unwrap_or_else(|e| panic!("{}", message(&e)));
        let got: Value = serde_wasm_bindgen::from_value(result).expect("analysis as JSON");
        let diffs = common::differences(&got, &golden["analysis"]);
        assert!(
            diffs.is_empty(),
            "wasm differs from the native golden {}:\n{}",
            common::GOLDEN_PATH,
            diffs.join("\n")
        );
    });
}
