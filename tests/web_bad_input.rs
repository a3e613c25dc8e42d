//! Issue #6 bad inputs in the browser, through the page's own path: the bytes are decoded by the
//! page's own `www/js/decode.js` (`createImageBitmap` with EXIF orientation, longest side drawn
//! at most 4096 px on a white canvas, `getImageData`), then analysed by one wasm `Analyzer`, as
//! in the page's worker. Run by `./build.sh test` (`wasm-pack test --headless
//! --chrome -- --test web_bad_input`). The outcomes are the "page" column of docs/bad-inputs.md.
#![cfg(target_arch = "wasm32")]

mod bad_inputs;
mod common;

use common::js::{get, message};

use std::rc::Rc;

use agegender::wasm::Analyzer;
use bad_inputs::*;
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

// The page's own decode module, as `www/main.js` imports it.
#[wasm_bindgen(module = "/www/js/decode.js")]
extern "C" {
    #[wasm_bindgen(js_name = decodeImage)]
    fn decode_image(blob: &JsValue, canvas: &JsValue) -> js_sys::Promise;
}

#[wasm_bindgen(inline_js = r#"
export function blobOf(bytes, type) { return new Blob([bytes], { type }); }
export function offscreenCanvas() { return new OffscreenCanvas(1, 1); }
export function close(bitmap) { bitmap.close(); }
// A width x height JPEG made by the browser itself (fast, unlike encoding it in debug wasm):
// a gradient with the synthetic scene drawn large in the middle.
export async function bigJpeg(width, height, sceneRgba, sceneWidth, sceneHeight) {
  const scene = new OffscreenCanvas(sceneWidth, sceneHeight);
  scene.getContext('2d').putImageData(
    new ImageData(new Uint8ClampedArray(sceneRgba), sceneWidth, sceneHeight), 0, 0);
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(scene, 0, 0, width, height);
  const blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.9 });
  return new Uint8Array(await blob.arrayBuffer());
}
export function now() { return performance.now(); }
"#)]
extern "C" {
    #[wasm_bindgen(js_name = blobOf)]
    fn blob_of(bytes: &Uint8Array, mime: &str) -> JsValue;
    #[wasm_bindgen(js_name = offscreenCanvas)]
    fn offscreen_canvas() -> JsValue;
    fn close(bitmap: &JsValue);
    #[wasm_bindgen(js_name = bigJpeg)]
    fn big_jpeg(
        width: u32,
        height: u32,
        scene: &Uint8Array,
        scene_width: u32,
        scene_height: u32,
    ) -> js_sys::Promise;
    fn now() -> f64;
}

thread_local! {
    // One analyzer for every test, as the page's worker keeps one for every file.
    static ANALYZER: Rc<Analyzer> = Rc::new(Analyzer::new().unwrap_or_else(|e| {
        panic!("Analyzer::new failed: {}", message(&JsValue::from(e)))
    }));
}

fn analyzer() -> Rc<Analyzer> {
    ANALYZER.with(Rc::clone)
}

/// What the page does with a file: decode, then analyse. `Err` is the message the page shows.
struct Outcome {
    /// Size the page analysed, and the size the browser decoded.
    size: (u32, u32),
    source: (u32, u32),
    faces: Vec<JsValue>,
    rgba: Vec<u8>,
}

async fn page(bytes: &[u8], mime: &str) -> Result<Outcome, String> {
    let blob = blob_of(&Uint8Array::from(bytes), mime);
    let decoded = JsFuture::from(decode_image(&blob, &offscreen_canvas()))
        .await
        .map_err(|e| message(&e))?;
    close(&get(&decoded, "bitmap"));
    let rgba = Uint8Array::new(&get(&decoded, "rgba")).to_vec();
    let num = |k: &str| get(&decoded, k).as_f64().expect("a number") as u32;
    let (width, height) = (num("width"), num("height"));
    let source = js_sys::Array::from(&get(&decoded, "source"));
    let source = (
        source.get(0).as_f64().unwrap() as u32,
        source.get(1).as_f64().unwrap() as u32,
    );
    let result = analyzer()
        .analyze(&rgba, width, height, JsValue::UNDEFINED)
        .map_err(|e| message(&JsValue::from(e)))?;
    let faces = js_sys::Array::from(&get(&result, "faces")).to_vec();
    Ok(Outcome {
        size: (width, height),
        source,
        faces,
        rgba,
    })
}

fn report(what: &str, got: &Result<Outcome, String>) {
    match got {
        Ok(o) => console_log!(
            "{what}: decoded {}x{}, analysed {}x{}, {} face(s)",
            o.source.0,
            o.source.1,
            o.size.0,
            o.size.1,
            o.faces.len()
        ),
        Err(e) => console_log!("{what}: error: {e}"),
    }
}

/// The face's centre as fractions of the image.
fn centre(face: &JsValue) -> (f64, f64) {
    let b = js_sys::Array::from(&get(face, "box_norm"));
    let v = |i| b.get(i).as_f64().unwrap();
    (v(0) + v(2) / 2.0, v(1) + v(3) / 2.0)
}

fn scene_jpeg() -> Vec<u8> {
    jpeg(&common::synthetic_scene())
}

#[wasm_bindgen_test]
async fn files_that_are_not_images_are_refused() {
    let full = scene_jpeg();
    for (what, bytes, mime) in [
        ("empty", Vec::new(), "image/jpeg"),
        ("text as .jpg", TEXT.to_vec(), "image/jpeg"),
        ("PDF as .jpg", PDF.to_vec(), "image/jpeg"),
        ("SVG", SVG.to_vec(), "image/svg+xml"),
        ("JPEG header only", full[..4].to_vec(), "image/jpeg"),
    ] {
        let got = page(&bytes, mime).await;
        report(what, &got);
        let err = got.err().unwrap_or_else(|| panic!("{what}: decoded"));
        assert_eq!(err, "the browser cannot read it as an image", "{what}");
    }
}

#[wasm_bindgen_test]
async fn truncated_and_corrupt_files() {
    // Chromium, like our native decoder, shows the part of a cut JPEG it has (the rest grey);
    // a PNG cut short decodes to its rows so far or fails. Either way: a result or a message.
    let full = scene_jpeg();
    for (what, bytes, mime) in [
        ("JPEG cut at 50%", truncated(&full, 0.5), "image/jpeg"),
        (
            "PNG cut at 50%",
            truncated(&png(common::synthetic_scene()), 0.5),
            "image/png",
        ),
        ("corrupt JPEG", corrupted(&full), "image/jpeg"),
        (
            "corrupt PNG",
            corrupted(&png(common::synthetic_scene())),
            "image/png",
        ),
    ] {
        let got = page(&bytes, mime).await;
        report(what, &got);
        match got {
            Ok(o) => assert_eq!(
                o.size,
                (common::SCENE_WIDTH, common::SCENE_HEIGHT),
                "{what}"
            ),
            Err(e) => assert_eq!(e, "the browser cannot read it as an image", "{what}"),
        }
    }
}

/// The scene decoded from `bytes` by the page's path has its one face where it belongs.
async fn assert_scene(what: &str, bytes: &[u8], mime: &str) -> Outcome {
    let got = page(bytes, mime).await;
    report(what, &got);
    let o = got.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(o.faces.len(), 1, "{what}");
    let (x, y) = centre(&o.faces[0]);
    // The scene's face centre (tests/golden/synthetic.json), as fractions.
    assert!(
        (x - 0.47).abs() < 0.06 && (y - 0.62).abs() < 0.06,
        "{what}: ({x}, {y})"
    );
    o
}

#[wasm_bindgen_test]
async fn formats_and_colour_layouts() {
    let scene = common::synthetic_scene();
    assert_scene("animated GIF", &animated_gif(&scene), "image/gif").await;
    assert_scene("16-bit PNG", &png16(&scene), "image/png").await;
    for (what, bytes) in grey_pngs(&scene) {
        assert_scene(what, &bytes, "image/png").await;
    }
    assert_scene("CMYK JPEG", &cmyk_jpeg(&scene), "image/jpeg").await;
    let o = page(&cmyk_jpeg(&quadrants(64, 48)), "image/jpeg")
        .await
        .unwrap();
    // Red top-left, white bottom-right: Chromium reads Adobe CMYK the same way as we do.
    let px = |x: usize, y: usize| &o.rgba[(y * 64 + x) * 4..(y * 64 + x) * 4 + 3];
    console_log!("CMYK quadrants: {:?} {:?}", px(16, 12), px(48, 36));
    assert!(
        px(16, 12)[0] > 200 && px(16, 12)[1] < 60,
        "{:?}",
        px(16, 12)
    );
    assert!(px(48, 36).iter().all(|&v| v > 200), "{:?}", px(48, 36));
    let o = page(&alpha_png(&scene), "image/png").await.unwrap();
    assert_eq!(
        &o.rgba[..4],
        &[255, 255, 255, 255],
        "transparent drawn white"
    );
}

#[wasm_bindgen_test]
async fn exif_orientations() {
    let scene = common::synthetic_scene();
    for o in 1..=8u8 {
        let bytes = jpeg_with_exif(&stored_for_orientation(&scene, o), Some(o));
        let out = assert_scene(&format!("EXIF orientation {o}"), &bytes, "image/jpeg").await;
        assert_eq!(out.size, (common::SCENE_WIDTH, common::SCENE_HEIGHT));
    }
}

#[wasm_bindgen_test]
async fn tiny_wide_and_huge_images() {
    let got = page(&png(image::RgbImage::new(1, 1)), "image/png").await;
    report("1x1", &got);
    assert_eq!(got.unwrap().faces.len(), 0);

    // 100000x10: Chromium decodes it; the page draws it 4096x1 (0.4 px rounds up to 1 row).
    let got = page(&stripes_png(100_000, 10), "image/png").await;
    report("100000x10", &got);
    if let Ok(o) = &got {
        assert_eq!(o.size.0, 4096);
        assert!(o.faces.is_empty());
    }

    // 50 MP, made by the browser: the page draws it at 4096 px, so the wasm side sees 45 MB.
    let t0 = now();
    let rgba = common::synthetic_scene_rgba();
    let bytes = JsFuture::from(big_jpeg(
        8660,
        5773,
        &Uint8Array::from(&rgba[..]),
        common::SCENE_WIDTH,
        common::SCENE_HEIGHT,
    ))
    .await
    .unwrap();
    let bytes = Uint8Array::from(bytes).to_vec();
    let t1 = now();
    let o = assert_scene("50 MP JPEG (8660x5773)", &bytes, "image/jpeg").await;
    console_log!(
        "50 MP: {} bytes, made in {:.0} ms, decoded and analysed in {:.0} ms",
        bytes.len(),
        t1 - t0,
        now() - t1
    );
    assert_eq!(o.source, (8660, 5773));
    // 5773 * 4096 / 8660 = 2730.4: 2730 or 2731 rows depending on where the browser rounds.
    assert!(
        o.size.0 == 4096 && (2730..=2731).contains(&o.size.1),
        "{:?}",
        o.size
    );
}

#[wasm_bindgen_test]
async fn nan_options_are_an_error_and_the_analyzer_keeps_working() {
    let a = analyzer();
    let rgba = common::synthetic_scene_rgba();
    let (w, h) = (common::SCENE_WIDTH, common::SCENE_HEIGHT);
    let options = js_sys::Object::new();
    Reflect::set(&options, &"min_sharpness".into(), &f64::NAN.into()).unwrap();
    let err = JsValue::from(a.analyze(&rgba, w, h, options.into()).unwrap_err());
    assert!(message(&err).contains("min_sharpness"), "{}", message(&err));
    // Wrong sizes, then the good image on the same analyzer.
    assert!(a.analyze(&rgba, 100_000, 10, JsValue::NULL).is_err());
    assert!(a.analyze(&rgba[..100], w, h, JsValue::NULL).is_err());
    assert!(page(TEXT, "image/jpeg").await.is_err());
    assert_scene("good image after errors", &scene_jpeg(), "image/jpeg").await;
}
