//! Measures where the detector puts the eyes on UTKFace's aligned crops, which is where
//! `preprocess::TEMPLATE_LEFT_EYE` / `TEMPLATE_RIGHT_EYE` must be for photo crops to match
//! training crops; and the sharpness of training crops, for `pipeline::MIN_SHARPNESS`.
//!
//! `AGEGENDER_DATA=/work/shared/data cargo test --release --test calibrate_template -- --ignored --nocapture`
//!
//! Measured on 400 crops (every 59th file of utkface/ by name), 2026-11-23: all 400 detected;
//! median eyes [59.4, 61.0] and [137.2, 61.2] (now the template); training-crop sharpness 2nd
//! percentile 89.6, median 390. Rerun on 150 crops with that template: photo-path crops of the
//! padded faces differ from their training crops by a median 16.4 grey levels per pixel ("crop
//! MAD"; 40.3 with the guessed template [71, 88] / [129, 88] it replaced). What is left is mostly
//! UTKFace's own alignment jitter: the eyes' interquartile range is about 5 px of 200.
//! `AGEGENDER_CALIB_N` sets the number of crops (default 400).

// Native only: it reads files, and wasm-pack test builds every test for wasm32.
#![cfg(not(target_arch = "wasm32"))]

use agegender::align;
use agegender::detect::{DetectOptions, Detector, LEFT_EYE, RIGHT_EYE};
use agegender::pipeline::sharpness;
use agegender::preprocess::{FRAME_SIZE, INPUT_SIZE, Similarity, aligned_crop_input, warp};
use image::{Rgb, RgbImage, imageops};

/// The template before calibration (a guess), to show what measuring it changed.
const OLD_TEMPLATE: ([f32; 2], [f32; 2]) = ([71.0, 88.0], [129.0, 88.0]);

/// `Similarity::from_eyes` for an arbitrary template.
fn similarity_for(t: ([f32; 2], [f32; 2]), left: [f32; 2], right: [f32; 2]) -> Similarity {
    let k = INPUT_SIZE as f32 / FRAME_SIZE;
    let (tl, tr) = ([t.0[0] * k, t.0[1] * k], [t.1[0] * k, t.1[1] * k]);
    let (dx, dy) = (tr[0] - tl[0], tr[1] - tl[1]);
    let (sx, sy) = (right[0] - left[0], right[1] - left[1]);
    let den = dx * dx + dy * dy;
    let (a, b) = ((sx * dx + sy * dy) / den, (sy * dx - sx * dy) / den);
    let (mu, mv) = ((tl[0] + tr[0]) / 2.0 - 0.5, (tl[1] + tr[1]) / 2.0 - 0.5);
    let (mx, my) = ((left[0] + right[0]) / 2.0, (left[1] + right[1]) / 2.0);
    Similarity {
        a,
        b,
        tx: mx - (a * mu - b * mv),
        ty: my - (b * mu + a * mv),
    }
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore]
fn measure_template_eyes() {
    let Ok(root) = std::env::var("AGEGENDER_DATA") else {
        println!("AGEGENDER_DATA not set: nothing measured");
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(std::path::Path::new(&root).join("utkface"))
        .expect("utkface dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let n: usize = std::env::var("AGEGENDER_CALIB_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let step = (files.len() / n.max(1)).max(1);
    let detector = Detector::new().expect("detector");
    let opts = DetectOptions::default();
    let (canvas, off) = (600u32, 200u32);
    let mut eyes: [Vec<f32>; 4] = Default::default();
    let mut sharp = Vec::new();
    let mut missed = 0;
    let (mut mads, mut mads_old) = (Vec::new(), Vec::new());
    for path in files.iter().step_by(step).take(n) {
        let crop = agegender::decode::open(path).expect("decode");
        let crop = if crop.dimensions() == (200, 200) {
            crop
        } else {
            imageops::resize(&crop, 200, 200, imageops::FilterType::Triangle)
        };
        sharp.push(sharpness(&aligned_crop_input(&crop, INPUT_SIZE)));
        // Pad with the crop's mean colour so the face fills a photo-like fraction of the frame.
        let n = (crop.width() * crop.height()) as u64;
        let mean = [0, 1, 2].map(|c| (crop.pixels().map(|p| p.0[c] as u64).sum::<u64>() / n) as u8);
        let mut img = RgbImage::from_pixel(canvas, canvas, Rgb(mean));
        imageops::replace(&mut img, &crop, off as i64, off as i64);
        let dets = detector.detect(&img, &opts).expect("detect");
        // The face is the detection nearest the canvas centre.
        let c = canvas as f32 / 2.0;
        let Some(d) = dets.iter().find(|d| {
            let (x, y) = (d.bbox[0] + d.bbox[2] / 2.0, d.bbox[1] + d.bbox[3] / 2.0);
            (x - c).abs() < 60.0 && (y - c).abs() < 60.0
        }) else {
            missed += 1;
            continue;
        };
        // How far the photo path's crop is from the training crop of the same face.
        let (photo, train) = (
            align::crop(&img, d, INPUT_SIZE),
            aligned_crop_input(&crop, INPUT_SIZE),
        );
        let diff: u64 = photo
            .as_raw()
            .iter()
            .zip(train.as_raw())
            .map(|(a, b)| a.abs_diff(*b) as u64)
            .sum();
        mads.push(diff as f32 / photo.as_raw().len() as f32);
        // The same with the template that was there before measuring, for comparison.
        let centre = |p: [f32; 2]| [p[0] - 0.5, p[1] - 0.5];
        let m_old = similarity_for(
            OLD_TEMPLATE,
            centre(d.keypoints[LEFT_EYE]),
            centre(d.keypoints[RIGHT_EYE]),
        );
        let old = warp(&img, &m_old, INPUT_SIZE);
        let diff: u64 = old
            .as_raw()
            .iter()
            .zip(train.as_raw())
            .map(|(a, b)| a.abs_diff(*b) as u64)
            .sum();
        mads_old.push(diff as f32 / old.as_raw().len() as f32);
        let (l, r) = (d.keypoints[LEFT_EYE], d.keypoints[RIGHT_EYE]);
        let k = FRAME_SIZE / 200.0;
        eyes[0].push((l[0] - off as f32) * k);
        eyes[1].push((l[1] - off as f32) * k);
        eyes[2].push((r[0] - off as f32) * k);
        eyes[3].push((r[1] - off as f32) * k);
    }
    let found = eyes[0].len();
    let m = eyes.each_mut().map(|v| median(v));
    let p2 = {
        sharp.sort_by(f32::total_cmp);
        sharp[sharp.len() / 50]
    };
    println!("detected {found}, missed {missed}");
    println!(
        "crop MAD (photo path vs training crop, grey levels): median {:.1} (old template {:.1})",
        median(&mut mads),
        median(&mut mads_old)
    );
    let q = |v: &mut Vec<f32>, f: f32| {
        v.sort_by(f32::total_cmp);
        v[((v.len() - 1) as f32 * f) as usize]
    };
    println!(
        "eye spread (25th-75th percentile): left x {:.1}-{:.1} y {:.1}-{:.1}, right x {:.1}-{:.1}",
        q(&mut eyes[0], 0.25),
        q(&mut eyes[0], 0.75),
        q(&mut eyes[1], 0.25),
        q(&mut eyes[1], 0.75),
        q(&mut eyes[2], 0.25),
        q(&mut eyes[2], 0.75)
    );
    println!(
        "median left eye [{:.1}, {:.1}], right eye [{:.1}, {:.1}]",
        m[0], m[1], m[2], m[3]
    );
    println!(
        "sharpness of training crops: 2nd percentile {p2:.1}, median {:.1}",
        median(&mut sharp)
    );
    assert!(
        found * 4 > n * 3,
        "detector found only {found} of {n} faces"
    );
}
