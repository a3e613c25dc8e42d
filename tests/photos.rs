//! End-to-end detection checks. With `AGEGENDER_DATA` pointing at the data folder (see
//! /work/shared/data/README.md), every face in `photos/` must be found and nothing in
//! `nonface/`; without it those tests print a note and pass. The generated-image tests need no
//! data.
//!
//! `AGEGENDER_DATA=/work/shared/data cargo test --test photos -- --nocapture`

// Native only: it reads files, and wasm-pack test builds every test for wasm32.
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;
use std::time::Instant;

use agegender::detect::{DetectOptions, Detection, Detector};
use agegender::{Error, Options, Pipeline, decode};
use image::{Rgb, RgbImage, imageops};

/// Face centres (image pixels) of every face that must be found, checked by eye on annotated
/// output of `examples/detect.rs`. Tiny, occluded background faces (group-1 has two, eye
/// distance under 10 px) are optional: finding them is neither required nor an error.
const EXPECTED: &[(&str, &[[f32; 2]])] = &[
    (
        "group-1.jpg",
        &[
            [169.0, 480.0],
            [365.0, 505.0],
            [483.0, 522.0],
            [616.0, 415.0],
            [676.0, 526.0],
            [849.0, 450.0],
            [855.0, 547.0],
            [1040.0, 372.0],
            [1063.0, 545.0],
            [1185.0, 559.0],
            [1192.0, 419.0],
            [1295.0, 507.0],
            [1417.0, 518.0],
            [1490.0, 612.0],
        ],
    ),
    (
        "group-2.jpg",
        &[[294.0, 293.0], [512.0, 175.0], [710.0, 296.0]],
    ),
    (
        "group-3.jpg",
        &[
            [358.0, 653.0],
            [784.0, 494.0],
            [1268.0, 463.0],
            [1586.0, 433.0],
        ],
    ),
    ("person-vlado.jpg", &[[605.0, 200.0]]),
    (
        "stock-group-1.jpg",
        &[
            [154.0, 619.0],
            [199.0, 370.0],
            [263.0, 456.0],
            [302.0, 155.0],
            [307.0, 290.0],
            [315.0, 223.0],
            [335.0, 706.0],
            [404.0, 480.0],
            [409.0, 214.0],
            [441.0, 343.0],
            [474.0, 152.0],
            [496.0, 288.0],
            [500.0, 210.0],
            [500.0, 408.0],
            [611.0, 613.0],
        ],
    ),
    ("stock-teen-1.jpg", &[[447.0, 508.0]]),
];

/// Optional faces: found or not, they are not false positives.
const OPTIONAL: &[(&str, [f32; 2])] = &[
    ("group-1.jpg", [550.0, 445.0]),
    ("group-1.jpg", [427.0, 430.0]),
];

fn data_dir() -> Option<PathBuf> {
    match std::env::var_os("AGEGENDER_DATA") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            println!("AGEGENDER_DATA is not set: skipping the checks on real photos");
            None
        }
    }
}

fn contains(d: &Detection, p: [f32; 2]) -> bool {
    let [x, y, w, h] = d.bbox;
    p[0] >= x && p[0] <= x + w && p[1] >= y && p[1] <= y + h
}

#[test]
fn every_face_in_photos_is_found() {
    let Some(root) = data_dir() else { return };
    let detector = Detector::new().expect("detector");
    let opts = DetectOptions::default();
    let mut failures = Vec::new();
    for (name, faces) in EXPECTED {
        let img = decode::open(root.join("photos").join(name)).expect("photo");
        let t = Instant::now();
        let dets = detector.detect(&img, &opts).expect("detect");
        let ms = t.elapsed().as_millis();
        let found = faces
            .iter()
            .filter(|&&p| dets.iter().any(|d| contains(d, p)))
            .count();
        let false_pos: Vec<_> = dets
            .iter()
            .filter(|d| {
                !faces.iter().any(|&p| contains(d, p))
                    && !OPTIONAL.iter().any(|(n, p)| n == name && contains(d, *p))
            })
            .map(|d| d.bbox)
            .collect();
        println!(
            "{name}: recall {found}/{} ({:.0}%), {} false positives, {} detections, {ms} ms",
            faces.len(),
            100.0 * found as f32 / faces.len() as f32,
            false_pos.len(),
            dets.len()
        );
        if found < faces.len() || !false_pos.is_empty() {
            failures.push(format!(
                "{name}: found {found}/{}, false positives {false_pos:?}",
                faces.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn nothing_is_found_in_nonface() {
    let Some(root) = data_dir() else { return };
    let detector = Detector::new().expect("detector");
    let mut entries: Vec<_> = std::fs::read_dir(root.join("nonface"))
        .expect("nonface dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    assert!(!entries.is_empty());
    let mut total = 0;
    for path in entries {
        let img = decode::open(&path).expect("image");
        let dets = detector
            .detect(&img, &DetectOptions::default())
            .expect("detect");
        println!("{}: {} false positives", path.display(), dets.len());
        total += dets.len();
    }
    assert_eq!(total, 0);
}

#[test]
fn close_ups_that_fill_or_overflow_the_frame_are_found() {
    let Some(root) = data_dir() else { return };
    // person-vlado's face is about 170 px wide, centred near (605, 200): squares around it from
    // loose to so tight that the face is cut off on every side.
    let photo = decode::open(root.join("photos/person-vlado.jpg")).expect("photo");
    let detector = Detector::new().expect("detector");
    let centre = [605.0f32, 200.0];
    for side in [360u32, 240, 180, 140] {
        let x0 = (centre[0] - side as f32 / 2.0) as u32;
        let y0 = (centre[1] - side as f32 / 2.0).max(0.0) as u32;
        let crop = imageops::crop_imm(&photo, x0, y0, side, side).to_image();
        let dets = detector
            .detect(&crop, &DetectOptions::default())
            .expect("detect");
        let c = [centre[0] - x0 as f32, centre[1] - y0 as f32];
        println!("{side}x{side} close-up: {dets:?}");
        assert_eq!(dets.len(), 1, "{side}: {dets:?}");
        assert!(contains(&dets[0], c), "{side}: {dets:?}");
        // Both eyes above the centre and on either side of it.
        let (l, r) = (dets[0].keypoints[0], dets[0].keypoints[1]);
        assert!(
            l[0] < c[0] && c[0] < r[0] && l[1] < c[1] && r[1] < c[1],
            "{side}: {dets:?}"
        );
    }
}

/// Deterministic coloured noise (a small LCG: no extra dependency).
fn noise(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    RgbImage::from_fn(w, h, |_, _| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let v = s.to_be_bytes();
        Rgb([v[0], v[1], v[2]])
    })
}

#[test]
fn generated_images_without_faces_give_empty_analyses() {
    let pipeline = Pipeline::detector_only().expect("pipeline");
    let opts = Options::default();
    let images = [
        noise(640, 480, 1),
        RgbImage::from_fn(3000, 40, |x, y| Rgb([(x % 256) as u8, (y * 6) as u8, 128])),
        RgbImage::new(1, 1),
        RgbImage::from_pixel(7, 5000, Rgb([200, 180, 160])),
    ];
    for img in &images {
        let a = pipeline.analyze(img, &opts).expect("analyze");
        assert_eq!((a.width, a.height), img.dimensions());
        assert!(a.faces.is_empty(), "{:?}: {:?}", img.dimensions(), a.faces);
        // The wasm layer serialises this; it must always work.
        let json = serde_json::to_string(&a).expect("json");
        assert!(json.contains("\"faces\":[]"));
    }
}

#[test]
fn rgba_input_is_validated_before_any_work() {
    let pipeline = Pipeline::detector_only().expect("pipeline");
    let opts = Options::default();
    assert!(matches!(
        pipeline.analyze_rgba(&[0; 10], 2, 2, &opts),
        Err(Error::BufferLength { .. })
    ));
    assert!(matches!(
        pipeline.analyze_rgba(&[], 0, 0, &opts),
        Err(Error::EmptyImage { .. })
    ));
    assert!(matches!(
        pipeline.analyze_rgba(&[], 50_000, 50_000, &opts),
        Err(Error::ImageTooLarge { .. })
    ));
    let rgba = vec![90u8; 64 * 48 * 4];
    assert!(
        pipeline
            .analyze_rgba(&rgba, 64, 48, &opts)
            .expect("analyze")
            .faces
            .is_empty()
    );
}

/// With the trained classifier in `model/` (written by the trainer), every face in the photos
/// that is large enough gets a plausible estimate. The photos show teenagers and adults.
#[test]
fn real_classifier_estimates_every_large_face() {
    let Some(root) = data_dir() else { return };
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("model");
    let Ok(bytes) = std::fs::read(model.join("agegender.onnx")) else {
        println!("model/agegender.onnx is not there yet: skipping the classifier check");
        return;
    };
    let mut pipeline = Pipeline::new(&bytes).expect("pipeline");
    if let Ok(card) = std::fs::read_to_string(model.join("agegender.json")) {
        let cal = agegender::classify::calibration_from_card(&card).expect("model card");
        pipeline = pipeline.with_calibration(cal);
    }
    for (name, faces) in EXPECTED {
        let img = decode::open(root.join("photos").join(name)).expect("photo");
        let a = pipeline
            .analyze(&img, &Options::default())
            .expect("analyze");
        assert!(
            a.faces.len() >= faces.len(),
            "{name}: {} faces",
            a.faces.len()
        );
        for f in &a.faces {
            let q = f.quality;
            match (&f.estimate, q.too_small) {
                (Some(e), false) => {
                    println!(
                        "{name} [{:.0} {:.0}]: age {:.0} ({:.0}-{:.0}), {} {:.2}{}",
                        f.box_px[0],
                        f.box_px[1],
                        e.age,
                        e.age_low,
                        e.age_high,
                        e.gender(),
                        e.gender_confidence(),
                        if q.blurry { ", blurry" } else { "" }
                    );
                    assert!(e.age.is_finite() && (5.0..90.0).contains(&e.age), "{e:?}");
                    assert!(e.age_low <= e.age && e.age <= e.age_high);
                    assert!((0.0..=1.0).contains(&e.p_female));
                }
                (None, true) => {}
                other => panic!("{name}: estimate/too_small mismatch {other:?}"),
            }
        }
    }
}

/// The webcam path (`Tracker::analyze`) on a still photo: the first frame classifies every face
/// as a photo's analysis does (same estimates), later frames (200 ms apart, more than
/// `refresh_ms`) one face each, in turn, while every tracked face keeps an estimate.
#[test]
fn webcam_frames_classify_new_faces_then_one_face_each() {
    let Some(root) = data_dir() else { return };
    let pipeline = agegender::embedded::pipeline().expect("pipeline");
    let img = decode::open(root.join("photos/group-2.jpg")).expect("photo");
    let opts = Options::default();
    let photo = pipeline.analyze(&img, &opts).expect("analyze");
    let n = photo.faces.iter().filter(|f| f.estimate.is_some()).count();
    assert!(n >= 3, "{n} faces classified");
    let mut tracker = agegender::track::Tracker::default();
    let (first, frame) = tracker.analyze(&pipeline, &img, &opts, 0.0).expect("frame");
    assert_eq!(first, photo, "the first frame is the photo's analysis");
    assert!(frame.faces.iter().all(|f| f.estimate_frames == 1));
    for i in 1..=2 * n {
        let (a, frame) = tracker
            .analyze(&pipeline, &img, &opts, 200.0 * i as f64)
            .expect("frame");
        assert_eq!(a.faces.iter().filter(|f| f.estimate.is_some()).count(), 1);
        assert_eq!(frame.faces.len(), photo.faces.len());
        assert!(frame.faces.iter().all(|f| f.face.estimate.is_some()));
    }
    // Each face was classified again twice in 2n frames.
    let (_, frame) = tracker.analyze(&pipeline, &img, &opts, 1e4).expect("frame");
    let counts: Vec<u32> = frame.faces.iter().map(|f| f.estimate_frames).collect();
    assert!(counts.iter().all(|&c| (3..=4).contains(&c)), "{counts:?}");
}
