//! Shared by the native tests and the browser tests (`tests/web.rs`): a generated test scene and
//! the golden analysis of it, so both builds can be checked against the same expected output.

#![allow(dead_code)] // each test binary uses a different part

use image::{Rgb, RgbImage};
use serde_json::Value;

/// The committed golden: the native analysis of [`synthetic_scene`] with default options.
pub const GOLDEN_PATH: &str = "tests/golden/synthetic.json";
pub const GOLDEN: &str = include_str!("../golden/synthetic.json");

pub const SCENE_WIDTH: u32 = 320;
pub const SCENE_HEIGHT: u32 = 240;

/// Centre of the scene's face, the point [`synthetic_scene_rolled`] turns the scene about.
const FACE_CENTRE: (f32, f32) = (150.0, 128.0);

/// Cosine and sine of 25 degrees, the turn of [`synthetic_scene_rolled`] (clockwise on screen;
/// the detector's first pass reads the eyes at 17.7 degrees, so its turned looks run), as
/// literals: `f32::cos` is the platform's libm natively and Rust's port of it in wasm, which
/// may differ in the last bit.
const ROLL_COS_SIN: (f32, f32) = (0.906_307_8, 0.422_618_26);

/// A deterministic 320x240 drawing of a face (skin oval, hair, brows, eyes, nose, mouth) on a
/// gradient, with soft edges. Pure integer/f32 arithmetic, identical on every target.
pub fn synthetic_scene() -> RgbImage {
    RgbImage::from_fn(SCENE_WIDTH, SCENE_HEIGHT, |x, y| {
        scene_pixel(x as f32 + 0.5, y as f32 + 0.5)
    })
}

/// [`synthetic_scene`] turned by 25 degrees about the face's centre: a rolled face, which
/// the detector's turned looks (`Detector::refine_tilted`) measure, so that the native-vs-wasm
/// parity check covers them too.
pub fn synthetic_scene_rolled() -> RgbImage {
    let ((cx, cy), (c, s)) = (FACE_CENTRE, ROLL_COS_SIN);
    RgbImage::from_fn(SCENE_WIDTH, SCENE_HEIGHT, |x, y| {
        // The unturned scene's point that lands on this pixel.
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        scene_pixel(cx + c * dx + s * dy, cy - s * dx + c * dy)
    })
}

/// The unturned scene's colour at `(px, py)` (pixel edge coordinates).
fn scene_pixel(px: f32, py: f32) -> Rgb<u8> {
    let (cx, cy) = FACE_CENTRE;
    // Background: a blue-grey vertical gradient.
    let t = py / SCENE_HEIGHT as f32;
    let mut c = [90.0 + 40.0 * t, 110.0 + 30.0 * t, 140.0 + 10.0 * t];
    // `cover` blends `col` in with coverage `a` in [0, 1].
    let mut cover = |col: [f32; 3], a: f32| {
        let a = a.clamp(0.0, 1.0);
        for i in 0..3 {
            c[i] = c[i] * (1.0 - a) + col[i] * a;
        }
    };
    // Soft-edged ellipse coverage: 1 inside, 0 outside, ~2 px transition.
    let ell = |ex: f32, ey: f32, rx: f32, ry: f32| {
        let d = (((px - ex) / rx).powi(2) + ((py - ey) / ry).powi(2)).sqrt();
        ((1.0 - d) * rx.min(ry) / 2.0 + 0.5).clamp(0.0, 1.0)
    };
    // Neck and shoulders.
    cover([200.0, 150.0, 125.0], ell(cx, cy + 95.0, 28.0, 40.0));
    cover([60.0, 70.0, 110.0], ell(cx, cy + 160.0, 110.0, 60.0));
    // Hair behind the head, then the face oval with a little shading to the right.
    cover([55.0, 38.0, 28.0], ell(cx, cy - 14.0, 64.0, 76.0));
    let shade = 1.0 - 0.12 * ((px - cx) / 60.0).clamp(-1.0, 1.0);
    cover(
        [225.0 * shade, 178.0 * shade, 150.0 * shade],
        ell(cx, cy + 4.0, 54.0, 70.0),
    );
    // Fringe.
    cover([55.0, 38.0, 28.0], ell(cx, cy - 62.0, 52.0, 22.0));
    // Ears.
    for s in [-1.0f32, 1.0] {
        cover(
            [210.0, 160.0, 135.0],
            ell(cx + s * 55.0, cy + 6.0, 9.0, 17.0),
        );
    }
    for s in [-1.0f32, 1.0] {
        let ex = cx + s * 22.0;
        // Brow, eye white, iris, pupil.
        cover([70.0, 48.0, 35.0], ell(ex, cy - 20.0, 15.0, 3.5));
        cover([245.0, 245.0, 240.0], ell(ex, cy - 6.0, 11.0, 6.0));
        cover([85.0, 60.0, 40.0], ell(ex, cy - 6.0, 5.5, 5.5));
        cover([15.0, 10.0, 10.0], ell(ex, cy - 6.0, 2.5, 2.5));
    }
    // Nose shadow and tip, mouth.
    cover([185.0, 135.0, 110.0], ell(cx + 3.0, cy + 12.0, 5.0, 14.0));
    cover([200.0, 145.0, 120.0], ell(cx, cy + 24.0, 9.0, 5.0));
    cover([170.0, 70.0, 75.0], ell(cx, cy + 44.0, 17.0, 5.5));
    cover([110.0, 35.0, 40.0], ell(cx, cy + 44.0, 14.0, 1.5));
    Rgb(c.map(|v| v.round().clamp(0.0, 255.0) as u8))
}

/// Two copies of [`synthetic_scene`] side by side (640x240): two faces, so that classifying
/// them apart (the page's two workers) is tested without the data folder.
pub fn two_faces() -> RgbImage {
    let one = synthetic_scene();
    RgbImage::from_fn(2 * SCENE_WIDTH, SCENE_HEIGHT, |x, y| {
        *one.get_pixel(x % SCENE_WIDTH, y)
    })
}

/// The scene as RGBA, as the page sends it.
pub fn synthetic_scene_rgba() -> Vec<u8> {
    rgba(&synthetic_scene())
}

/// An image as RGBA, as the page sends it.
pub fn rgba(img: &RgbImage) -> Vec<u8> {
    img.pixels()
        .flat_map(|p| [p.0[0], p.0[1], p.0[2], 255])
        .collect()
}

/// Absolute tolerance for a number at `path` (a JSON pointer-like key path): pixel coordinates
/// may differ by a fraction of a pixel between x86 and wasm SIMD kernels, probabilities and ages
/// by rounding noise.
fn tolerance(path: &str, expected: f64) -> f64 {
    let rel = 1e-3 * expected.abs();
    if path.contains("box_px") || path.contains("keypoints") || path.contains("eye_distance") {
        0.25 + rel
    } else if path.contains("sharpness") {
        0.05 + 1e-2 * expected.abs()
    } else if path.contains("age") {
        0.05 + rel
    } else {
        2e-3 + rel
    }
}

/// Differences between `got` and `expected` (numbers within [`tolerance`]), as readable lines.
pub fn differences(got: &Value, expected: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(got, expected, "", &mut out);
    out
}

fn diff(got: &Value, expected: &Value, path: &str, out: &mut Vec<String>) {
    match (got, expected) {
        (Value::Number(g), Value::Number(e)) => {
            let (g, e) = (
                g.as_f64().unwrap_or(f64::NAN),
                e.as_f64().unwrap_or(f64::NAN),
            );
            let tol = tolerance(path, e);
            // Written so that NaN on either side counts as a difference.
            let close = (g - e).abs() <= tol;
            if !close {
                out.push(format!(
                    "{path}: got {g}, expected {e} (tolerance {tol:.4})"
                ));
            }
        }
        (Value::Array(g), Value::Array(e)) => {
            if g.len() != e.len() {
                out.push(format!(
                    "{path}: got {} items, expected {}",
                    g.len(),
                    e.len()
                ));
                return;
            }
            for (i, (g, e)) in g.iter().zip(e).enumerate() {
                diff(g, e, &format!("{path}/{i}"), out);
            }
        }
        (Value::Object(g), Value::Object(e)) => {
            for (k, ev) in e {
                match g.get(k) {
                    Some(gv) => diff(gv, ev, &format!("{path}/{k}"), out),
                    None => out.push(format!("{path}/{k}: missing")),
                }
            }
            for k in g.keys().filter(|k| !e.contains_key(*k)) {
                out.push(format!("{path}/{k}: not in the golden"));
            }
        }
        (g, e) if g == e => {}
        (g, e) => out.push(format!("{path}: got {g}, expected {e}")),
    }
}

/// Helpers for the browser tests (`tests/web.rs`, `tests/web_bad_input.rs`).
#[cfg(target_arch = "wasm32")]
pub mod js {
    use js_sys::Reflect;
    use wasm_bindgen::{JsCast, JsValue};

    /// The message of a JS `Error`, or a description of whatever else was thrown.
    pub fn message(err: &JsValue) -> String {
        err.dyn_ref::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .unwrap_or_else(|| format!("not a JS Error: {err:?}"))
    }

    pub fn get(obj: &JsValue, key: &str) -> JsValue {
        Reflect::get(obj, &JsValue::from_str(key)).expect("a JS object")
    }
}
