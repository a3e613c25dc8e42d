//! Browser tests of the wasm API (`src/wasm.rs`), run in headless Chromium by
//! `wasm-pack test --headless --chrome` (see `./build.sh test`): the API contract, and parity with
//! the native build on the committed golden (`tests/golden/synthetic.json`, written by the native
//! test `tests/golden.rs`).
#![cfg(target_arch = "wasm32")]

mod common;

use common::js::{get, message};

use agegender::wasm::{Analyzer, Tracker, age_gate, verify, version};
use js_sys::Reflect;
use serde::Serialize;
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
                .contains("YuNet")
        );
        assert_eq!(get(&info, "working_size").as_f64(), Some(512.0));
    });
}

#[wasm_bindgen_test]
fn the_webcam_working_size_is_prepared_and_used() {
    ANALYZER.with(|a| {
        let small = js_sys::JSON::parse(r#"{ "detect": { "working_size": 320 } }"#).expect("json");
        // The plans for the scene's size (as the webcam does), then every shape one at a time
        // (as the worker does while idle): a handful of calls, then nothing is missing.
        a.prepare(
            small.clone(),
            Some(common::SCENE_WIDTH),
            Some(common::SCENE_HEIGHT),
        )
        .map_err(JsValue::from)
        .unwrap_or_else(|e| panic!("{}", message(&e)));
        let mut calls = 1;
        while a
            .prepare_next(small.clone())
            .map_err(JsValue::from)
            .unwrap_or_else(|e| panic!("{}", message(&e)))
        {
            calls += 1;
            assert!(calls < 10, "prepareNext never finishes");
        }
        assert!(
            !a.prepare_next(small.clone())
                .map_err(JsValue::from)
                .expect("done")
        );
        let rgba = common::synthetic_scene_rgba();
        let result = a
            .analyze(&rgba, common::SCENE_WIDTH, common::SCENE_HEIGHT, small)
            .map_err(JsValue::from)
            .unwrap_or_else(|e| panic!("{}", message(&e)));
        let faces: js_sys::Array = get(&result, "faces").dyn_into().expect("faces");
        assert_eq!(faces.length(), 1, "the generated face, at 320 px too");
        let bad = js_sys::JSON::parse(r#"{ "detect": { "working_size": 8 } }"#).expect("json");
        let err = a
            .prepare(bad.clone(), None, None)
            .map_err(JsValue::from)
            .expect_err("too small");
        assert!(message(&err).contains("working_size"), "{}", message(&err));
        let err = a
            .prepare_next(bad)
            .map_err(JsValue::from)
            .expect_err("too small");
        assert!(message(&err).contains("working_size"), "{}", message(&err));
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

/// The page's two workers: `findFaces`, then `classifyCrops` on the crops split in two (one
/// part in each worker), put together as www/worker.js does, give `analyze`'s result.
#[wasm_bindgen_test]
fn faces_classified_in_parts_give_analyzes_result() {
    ANALYZER.with(|a| {
        let img = common::two_faces();
        let rgba = common::rgba(&img);
        let (w, h) = img.dimensions();
        let json = |v: &JsValue| String::from(js_sys::JSON::stringify(v).expect("JSON"));
        let whole = a.analyze(&rgba, w, h, JsValue::UNDEFINED).expect("analyze");
        let found = a
            .find_faces(&rgba, w, h, JsValue::UNDEFINED)
            .expect("findFaces");
        let classify: js_sys::Array = get(&found, "classify").dyn_into().expect("an Array");
        assert_eq!(classify.length(), 2, "two faces to classify");
        let crops = js_sys::Uint8Array::new(&get(&found, "crops")).to_vec();
        let half = crops.len() / 2;
        let estimates: Vec<JsValue> = [&crops[..half], &crops[half..]]
            .into_iter()
            .flat_map(|part| {
                let got = a
                    .classify_crops(part, JsValue::UNDEFINED)
                    .expect("classifyCrops");
                js_sys::Array::from(&got).to_vec()
            })
            .collect();
        let analysis = get(&found, "analysis");
        let faces = get(&analysis, "faces");
        for (i, estimate) in estimates.iter().enumerate() {
            let face = Reflect::get(&faces, &classify.get(i as u32)).expect("a face");
            Reflect::set(&face, &"estimate".into(), estimate).expect("set");
        }
        assert_eq!(json(&analysis), json(&whole));
        // Bytes that are not whole crops are a JS error.
        let err = a
            .classify_crops(&crops[1..half], JsValue::UNDEFINED)
            .map_err(JsValue::from)
            .expect_err("a short crop is rejected");
        assert!(message(&err).contains("whole number"), "{}", message(&err));
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

/// The scene's first face's estimate under `options` (JSON), or the error message.
fn first_estimate(a: &Analyzer, options: &str) -> Result<JsValue, String> {
    let result = a
        .analyze(
            &common::synthetic_scene_rgba(),
            common::SCENE_WIDTH,
            common::SCENE_HEIGHT,
            js_sys::JSON::parse(options).unwrap(),
        )
        .map_err(|e| message(&JsValue::from(e)))?;
    Ok(get(
        &js_sys::Array::from(&get(&result, "faces")).get(0),
        "estimate",
    ))
}

#[wasm_bindgen_test]
fn mirror_modes_are_chosen_from_js() {
    ANALYZER.with(|a| {
        let p = |options: &str| {
            let e = first_estimate(a, options).unwrap();
            get(&e, "p_female").as_f64().unwrap()
        };
        let (average, plain, mirrored) = (
            p("{}"),
            p(r#"{"mirror":"plain"}"#),
            p(r#"{"mirror":"mirrored"}"#),
        );
        // The default averages the two runs' gender logits: it lies between them.
        let (lo, hi) = (plain.min(mirrored), plain.max(mirrored));
        assert!(lo < hi, "{plain} {mirrored}");
        assert!(
            lo <= average && average <= hi,
            "{average} not in {lo}..{hi}"
        );
        assert_eq!(p(r#"{"mirror":"average"}"#), average);
        let err = first_estimate(a, r#"{"mirror":"sideways"}"#).unwrap_err();
        assert!(err.contains("sideways"), "{err}");
    });
}

#[wasm_bindgen_test]
fn matches_the_native_golden() {
    let golden: Value = serde_json::from_str(common::GOLDEN).expect("golden JSON");
    let rolled = common::synthetic_scene_rolled();
    ANALYZER.with(|a| {
        let analyses = [
            ("analysis", scene(a)),
            (
                "rolled",
                a.analyze(
                    &common::rgba(&rolled),
                    rolled.width(),
                    rolled.height(),
                    JsValue::UNDEFINED,
                )
                .map_err(JsValue::from),
            ),
        ];
        for (name, result) in analyses {
            let result = result.unwrap_or_else(|e| panic!("{name}: {}", message(&e)));
            let got: Value = serde_wasm_bindgen::from_value(result).expect("analysis as JSON");
            let diffs = common::differences(&got, &golden[name]);
            assert!(
                diffs.is_empty(),
                "wasm differs from the native golden {}'s `{name}`:\n{}",
                common::GOLDEN_PATH,
                diffs.join("\n")
            );
        }
    });
}

/// An analysis-shaped JS object with one face of the given estimate (`None`: no estimate).
fn one_face(estimate: Option<(f32, f32, f32)>, too_small: bool) -> JsValue {
    let estimate = match estimate {
        Some((age, half, p_female)) => serde_json::json!({
            "age": age, "age_std": half, "age_low": age - half, "age_high": age + half,
            "p_female": p_female,
            "gender_reliable": age >= 6.0 && (p_female - 0.5).abs() >= 0.2,
        }),
        None => Value::Null,
    };
    let analysis = serde_json::json!({
        "width": 640, "height": 480,
        "faces": [{
            "box_px": [100.0, 100.0, 120.0, 120.0], "box_norm": [0.15, 0.2, 0.19, 0.25],
            "score": 0.9, "keypoints": [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], "estimate": estimate,
            "quality": { "too_small": too_small, "blurry": false, "cut_off": false,
                         "eye_distance": 40.0, "sharpness": 300.0 },
        }],
    });
    analysis
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap()
}

fn claim(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap()
}

fn first(array: &JsValue, key: &str) -> Option<String> {
    get(&js_sys::Array::from(array).get(0), key).as_string()
}

#[wasm_bindgen_test]
fn verify_answers_per_face_with_reasons() {
    let adult = one_face(Some((35.0, 5.0, 0.95)), false);
    let checks = verify(
        adult.clone(),
        claim(r#"{"age": 34, "gender": "female"}"#),
        JsValue::UNDEFINED,
    )
    .map_err(JsValue::from)
    .unwrap();
    assert_eq!(js_sys::Array::from(&checks).length(), 1);
    assert_eq!(first(&checks, "verdict").as_deref(), Some("consistent"));
    let checks = verify(adult.clone(), claim(r#"{"age": 12}"#), JsValue::NULL)
        .map_err(JsValue::from)
        .unwrap();
    assert_eq!(first(&checks, "verdict").as_deref(), Some("inconsistent"));
    assert!(first(&checks, "reason").unwrap().contains("outside"));
    // The gender part is null when only an age is stated.
    assert!(get(&js_sys::Array::from(&checks).get(0), "gender").is_null());

    let child = one_face(Some((3.0, 1.5, 0.99)), false);
    let checks = verify(child, claim(r#"{"gender": "male"}"#), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    assert_eq!(first(&checks, "verdict").as_deref(), Some("cannot_tell"));

    // An empty claim and a bad gender are JS errors.
    let err = JsValue::from(verify(adult.clone(), claim("{}"), JsValue::UNDEFINED).unwrap_err());
    assert!(message(&err).contains("state an age"), "{}", message(&err));
    assert!(verify(adult, claim(r#"{"gender": "x"}"#), JsValue::UNDEFINED).is_err());
}

#[wasm_bindgen_test]
fn age_gate_answers_clearly_or_check_id() {
    let gate = |face: JsValue, t: f32| {
        first(
            &age_gate(face, t, JsValue::UNDEFINED)
                .map_err(JsValue::from)
                .unwrap(),
            "decision",
        )
        .unwrap()
    };
    assert_eq!(
        gate(one_face(Some((40.0, 5.0, 0.9)), false), 18.0),
        "clearly_over"
    );
    assert_eq!(
        gate(one_face(Some((5.0, 1.5, 0.5)), false), 18.0),
        "clearly_under"
    );
    assert_eq!(
        gate(one_face(Some((19.0, 3.0, 0.9)), false), 18.0),
        "check_id"
    );
    assert_eq!(gate(one_face(None, true), 18.0), "check_id");
    let err = JsValue::from(age_gate(one_face(None, true), 0.0, JsValue::UNDEFINED).unwrap_err());
    assert!(message(&err).contains("threshold"), "{}", message(&err));
    // Bad settings are errors even with no face to decide on.
    let no_faces = claim(r#"{"faces": []}"#);
    assert!(age_gate(no_faces.clone(), f32::NAN, JsValue::UNDEFINED).is_err());
    assert!(verify(no_faces, claim("{}"), JsValue::UNDEFINED).is_err());
}

#[wasm_bindgen_test]
fn verify_and_gate_take_a_real_analysis() {
    ANALYZER.with(|a| {
        let result = scene(a).unwrap_or_else(|e| panic!("{}", message(&e)));
        let n = js_sys::Array::from(&get(&result, "faces")).length();
        let checks = verify(result.clone(), claim(r#"{"age": 30}"#), JsValue::UNDEFINED)
            .map_err(JsValue::from)
            .unwrap();
        assert_eq!(js_sys::Array::from(&checks).length(), n);
        let gates = age_gate(result, 18.0, JsValue::UNDEFINED)
            .map_err(JsValue::from)
            .unwrap();
        assert_eq!(js_sys::Array::from(&gates).length(), n);
    });
}

#[wasm_bindgen_test]
fn tracker_keeps_ids_and_smooths() {
    let mut tracker = Tracker::new(JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    let f1 = tracker
        .update(one_face(Some((30.0, 4.0, 0.9)), false), 0.0)
        .map_err(JsValue::from)
        .unwrap();
    let f2 = tracker
        .update(one_face(Some((50.0, 4.0, 0.9)), false), 100.0)
        .map_err(JsValue::from)
        .unwrap();
    let face = |f: &JsValue| js_sys::Array::from(&get(f, "faces")).get(0);
    assert_eq!(get(&face(&f1), "id").as_f64(), Some(1.0));
    assert_eq!(get(&face(&f2), "id").as_f64(), Some(1.0));
    assert_eq!(get(&face(&f2), "frames").as_f64(), Some(2.0));
    let age = get(&get(&face(&f2), "estimate"), "age").as_f64().unwrap();
    assert!(age > 30.0 && age < 40.0, "smoothed, not jumped: {age}");
    assert!(get(&face(&f2), "box_px").is_object());
    assert_eq!(tracker.size(), 1);
    tracker.reset();
    assert_eq!(tracker.size(), 0);
    // Options are read; garbage is an error, not a trap.
    assert!(Tracker::new(claim(r#"{"max_missed": 0}"#)).is_ok());
    assert!(tracker.update(JsValue::from_str("frame"), 0.0).is_err());
}

#[wasm_bindgen_test]
fn webcam_frames_are_analysed_and_tracked_in_one_call() {
    ANALYZER.with(|a| {
        let mut tracker = Tracker::new(JsValue::UNDEFINED)
            .map_err(JsValue::from)
            .unwrap();
        let rgba = common::synthetic_scene_rgba();
        let (w, h) = (common::SCENE_WIDTH, common::SCENE_HEIGHT);
        let photo = scene(a).unwrap_or_else(|e| panic!("{}", message(&e)));
        let mut frames = Vec::new();
        for t in [0.0, 200.0, 400.0, 450.0] {
            let out = a
                .analyze_tracked(&rgba, w, h, JsValue::UNDEFINED, &mut tracker, t)
                .map_err(JsValue::from)
                .unwrap_or_else(|e| panic!("{}", message(&e)));
            frames.push((get(&out, "analysis"), get(&out, "frame")));
        }
        let face = |v: &JsValue| js_sys::Array::from(&get(v, "faces")).get(0);
        let age = |f: &JsValue| {
            let estimate = get(f, "estimate");
            (!estimate.is_null()).then(|| get(&estimate, "age").as_f64())?
        };
        // The first frame is the photo's analysis; the lone face is classified again once its
        // estimate is `refresh_ms` (150) old, not sooner, and keeps its id and estimate.
        assert_eq!(age(&face(&frames[0].0)), age(&face(&photo)));
        for (i, (analysis, frame)) in frames.iter().enumerate() {
            assert_eq!(age(&face(analysis)).is_some(), i < 3, "frame {i}");
            assert_eq!(get(&face(frame), "id").as_f64(), Some(1.0));
            assert!(age(&face(frame)).is_some());
        }
        assert_eq!(
            get(&face(&frames[3].1), "estimate_frames").as_f64(),
            Some(3.0)
        );
        assert_eq!(tracker.size(), 1);
        // Bad input is an error, and the tracker keeps working.
        assert!(
            a.analyze_tracked(&rgba[..7], w, h, JsValue::UNDEFINED, &mut tracker, 300.0)
                .is_err()
        );
        assert_eq!(tracker.size(), 1);
    });
}

/// The page's module runs tract with the lean patches (`tools/lean-tract/`), one of which gives
/// 2x2 max pools at stride 2 a SIMD path of its own: it must take the same maxima as a plain
/// walk, on maps whose sides are odd (the edge the SIMD interior leaves to tract) or not a
/// multiple of the 4 outputs it writes a step.
#[wasm_bindgen_test]
fn max_pools_at_stride_2_take_every_windows_maximum() {
    use tract_core::internal::*;
    use tract_core::ops::cnn::{MaxPool, PaddingSpec, PoolSpec};
    use tract_core::ops::nn::DataFormat;

    for (h, w) in [(8usize, 16usize), (7, 10), (5, 9), (2, 2), (26, 32)] {
        let c = 3;
        let shape = [1, c, h, w];
        let mut model = TypedModel::default();
        let input = model.add_source("x", f32::fact(shape)).unwrap();
        let pool = MaxPool {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![2, 2],
                padding: PaddingSpec::Valid,
                dilations: None,
                strides: Some(tvec![2, 2]),
                input_channels: c,
                output_channels: c,
            },
            with_index_outputs: None,
        };
        let out = model.wire_node("pool", pool, &[input]).unwrap();
        model.select_output_outlets(&out).unwrap();
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        // Values of both signs, no two windows alike.
        let x: Vec<f32> = (0..c * h * w)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.25)
            .collect();
        let got = plan
            .run(tvec![Tensor::from_shape(&shape, &x).unwrap().into()])
            .unwrap();
        let got = got[0].try_as_plain_ram().unwrap();
        let got = got.as_slice::<f32>().unwrap();
        let (oh, ow) = (h / 2, w / 2);
        assert_eq!(got.len(), c * oh * ow, "{h}x{w}");
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let at = |dy: usize, dx: usize| x_at(&x, ch, h, w, 2 * oy + dy, 2 * ox + dx);
                    let want = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
                    assert_eq!(
                        got[(ch * oh + oy) * ow + ox],
                        want,
                        "{h}x{w} c{ch} ({oy}, {ox})"
                    );
                }
            }
        }
    }

    fn x_at(x: &[f32], ch: usize, h: usize, w: usize, y: usize, col: usize) -> f32 {
        x[(ch * h + y) * w + col]
    }
}
