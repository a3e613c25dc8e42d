//! The detector on UTKFace's aligned 200x200 crops, faces that fill most of the frame: how often
//! it finds them with both eyes where the alignment template expects them, as they are and
//! rotated by 30 degrees either way; and (ignored, a measurement) where it puts the eyes, which
//! is where `preprocess::TEMPLATE_LEFT_EYE` / `TEMPLATE_RIGHT_EYE` must be for photo crops to
//! match training crops.
//!
//! `AGEGENDER_DATA=/work/shared/data cargo test --release --test utkface_crops -- --nocapture`
//! `... -- --ignored measure_template --nocapture` (`AGEGENDER_CALIB_N` crops, default 400).

// Native only: it reads files, and wasm-pack test builds every test for wasm32.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};

use agegender::align;
use agegender::detect::{DetectOptions, Detection, Detector, LEFT_EYE, RIGHT_EYE};
use agegender::pipeline::sharpness;
use agegender::preprocess::{
    FRAME_SIZE, INPUT_SIZE, Similarity, TEMPLATE_LEFT_EYE, TEMPLATE_RIGHT_EYE, aligned_crop_input,
};
use image::{RgbImage, imageops};

/// Every `step`-th file of `utkface/` by name, at most `n`.
fn sample(root: &Path, n: usize) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(root.join("utkface"))
        .expect("utkface dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let step = (files.len() / n.max(1)).max(1);
    files.into_iter().step_by(step).take(n).collect()
}

fn crop_200(path: &Path) -> RgbImage {
    let crop = agegender::decode::open(path).expect("decode");
    if crop.dimensions() == (200, 200) {
        crop
    } else {
        imageops::resize(&crop, 200, 200, imageops::FilterType::Triangle)
    }
}

/// What fills a rotated crop's corners, where the crop has no pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fill {
    /// Black, as OpenCV's `warpAffine` and PIL's `rotate` leave them by default.
    Black,
    /// The crop's edges replicated outwards (what `warp` does): streaks no photo has.
    Edges,
}

/// The crop rotated by `angle` radians about its centre, its corners filled as `fill` says, and
/// the map from the rotated image's pixel centres to the crop's.
fn rotated(crop: &RgbImage, angle: f32, fill: Fill) -> (RgbImage, Similarity) {
    let m = Similarity::whole_frame(200.0, 200).jitter(200, angle, 1.0, (0.0, 0.0));
    let mut img = agegender::preprocess::warp(crop, &m, 200);
    if fill == Fill::Black {
        let (w, h) = crop.dimensions();
        for (u, v, px) in img.enumerate_pixels_mut() {
            let (x, y) = m.apply(u as f32, v as f32);
            if x < -0.5 || y < -0.5 || x > w as f32 - 0.5 || y > h as f32 - 0.5 {
                *px = image::Rgb([0, 0, 0]);
            }
        }
    }
    (img, m)
}

/// Where a point of the crop (edge coordinates) lands in the rotated image.
fn inverse(m: &Similarity, p: [f32; 2]) -> [f32; 2] {
    let (x, y) = (p[0] - 0.5 - m.tx, p[1] - 0.5 - m.ty);
    let d = m.a * m.a + m.b * m.b;
    [
        (m.a * x + m.b * y) / d + 0.5,
        (-m.b * x + m.a * y) / d + 0.5,
    ]
}

/// The detection whose eyes are nearest the expected ones, if both are within `tolerance`.
/// How far a face's eyes are from `l` and `r`: the farther of the two, in pixels.
fn eye_error(d: &Detection, l: [f32; 2], r: [f32; 2]) -> f32 {
    let dist = |p: [f32; 2], q: [f32; 2]| (p[0] - q[0]).hypot(p[1] - q[1]);
    dist(d.keypoints[LEFT_EYE], l).max(dist(d.keypoints[RIGHT_EYE], r))
}

fn matching(dets: &[Detection], l: [f32; 2], r: [f32; 2], tolerance: f32) -> Option<&Detection> {
    dets.iter()
        .map(|d| (d, eye_error(d, l, r)))
        .filter(|(_, e)| *e <= tolerance)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(d, _)| d)
}

/// Each eye within this fraction of the template's eye distance (78 px of 200) of its place:
/// UTKFace's own alignment jitter is about 5 px (interquartile range), a swapped or misplaced eye
/// is 40 px or more away.
const EYE_TOLERANCE: f32 = 0.25;

#[test]
fn aligned_crops_are_found_with_eyes_in_place() {
    let Some(root) = std::env::var_os("AGEGENDER_DATA") else {
        println!("AGEGENDER_DATA is not set: skipping");
        return;
    };
    let n: usize = std::env::var("AGEGENDER_UTK_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let detector = Detector::new().expect("detector");
    let opts = DetectOptions::default();
    let k = 200.0 / FRAME_SIZE;
    let (tl, tr) = (
        TEMPLATE_LEFT_EYE.map(|v| v * k),
        TEMPLATE_RIGHT_EYE.map(|v| v * k),
    );
    let tolerance = EYE_TOLERANCE * (tr[0] - tl[0]).hypot(tr[1] - tl[1]);
    let files = sample(Path::new(&root), n);
    let mut report = Vec::new();
    let cases = [
        (0.0f32, Fill::Black),
        (30.0, Fill::Black),
        (-30.0, Fill::Black),
        (30.0, Fill::Edges),
        (-30.0, Fill::Edges),
    ];
    for (degrees, fill) in cases {
        let (mut found, mut in_place, mut missed, mut misplaced) = (0, 0, Vec::new(), Vec::new());
        for path in &files {
            let (img, m) = rotated(&crop_200(path), degrees.to_radians(), fill);
            let dets = detector.detect(&img, &opts).expect("detect");
            let (l, r) = (inverse(&m, tl), inverse(&m, tr));
            if matching(&dets, l, r, tolerance).is_some() {
                in_place += 1;
            } else {
                // How far the nearest face's eyes are, in template eye distances: a near miss
                // or a misread face.
                let off = dets
                    .iter()
                    .map(|d| eye_error(d, l, r))
                    .fold(f32::INFINITY, f32::min);
                misplaced.push(format!("{:.2}", off / (tolerance / EYE_TOLERANCE)));
            }
            // Found: the eyes on the right sides of the point between the template's eyes,
            // tilted the right way. (The crop's centre, used before, lies 20 px to one side of
            // that point at 30 degrees, so eyes read at the right tilt could fail it.)
            let c = [(l[0] + r[0]) / 2.0, (l[1] + r[1]) / 2.0];
            let expected_tilt = (r[1] - l[1]) / (r[0] - l[0]);
            if dets.iter().any(|d| {
                let (dl, dr) = (d.keypoints[LEFT_EYE], d.keypoints[RIGHT_EYE]);
                let tilt = (dr[1] - dl[1]) / (dr[0] - dl[0]).max(1.0);
                dl[0] < c[0] && c[0] < dr[0] && (degrees == 0.0 || tilt * expected_tilt > 0.01)
            }) {
                found += 1;
            } else {
                missed.push(path.file_name().map(|f| f.to_string_lossy().into_owned()));
            }
        }
        let n = files.len() as f32;
        println!(
            "rotated {degrees:+.0} degrees, corners {fill:?}: {found}/{} found ({:.1}%), {in_place} with both eyes within {tolerance:.0} px of the template ({:.1}%); missed {missed:?}; the others' eyes off by {misplaced:?} eye distances",
            files.len(),
            100.0 * found as f32 / n,
            100.0 * in_place as f32 / n,
        );
        report.push((degrees, fill, found as f32 / n, in_place as f32 / n));
    }
    for (degrees, fill, found, in_place) in report {
        // Upright, the target. Rolled 30 degrees, YuNet under-reads the roll by about
        // half and scores some faces below the threshold; the detector's turned looks at tilted
        // faces (up to three, each turned by the tilt read so far) bring +30 / -30 degrees
        // with the eyes in place to 98.5% / 99.5% with black corners and 97.5% / 98% with
        // replicated ones (200 crops, 2026-12-04; one look: 96% / 98% and 95% / 95%). Required
        // here at what holds today, so a regression shows.
        let (want_found, want_in_place) = match (degrees == 0.0, fill) {
            (true, _) => (0.995, 0.995),
            (false, Fill::Black) => (0.98, 0.98),
            (false, Fill::Edges) => (0.975, 0.97),
        };
        assert!(
            found >= want_found && in_place >= want_in_place,
            "rotated {degrees} degrees, corners {fill:?}: {:.1}% found, {:.1}% with eyes in place",
            100.0 * found,
            100.0 * in_place
        );
    }
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

fn quantile(v: &mut [f32], q: f32) -> f32 {
    v.sort_by(f32::total_cmp);
    v[((v.len() - 1) as f32 * q) as usize]
}

/// Measured 2026-12-02 with YuNet on 400 crops: see `preprocess::TEMPLATE_LEFT_EYE` and
/// `align::EYE_BOX_RATIO`.
#[test]
#[ignore]
fn measure_template() {
    let Ok(root) = std::env::var("AGEGENDER_DATA") else {
        println!("AGEGENDER_DATA not set: nothing measured");
        return;
    };
    let n: usize = std::env::var("AGEGENDER_CALIB_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let detector = Detector::new().expect("detector");
    let opts = DetectOptions::default();
    let mut eyes: [Vec<f32>; 4] = Default::default();
    let (mut ratio, mut eye_line, mut sharp, mut mads) = (vec![], vec![], vec![], vec![]);
    let mut missed = 0;
    for path in sample(Path::new(&root), n) {
        let crop = crop_200(&path);
        sharp.push(sharpness(&aligned_crop_input(&crop, INPUT_SIZE)));
        let dets = detector.detect(&crop, &opts).expect("detect");
        // The face is the detection nearest the centre.
        let Some(d) = dets.iter().find(|d| {
            let (x, y) = (d.bbox[0] + d.bbox[2] / 2.0, d.bbox[1] + d.bbox[3] / 2.0);
            (x - 100.0).abs() < 40.0 && (y - 100.0).abs() < 50.0
        }) else {
            missed += 1;
            continue;
        };
        let (l, r) = (d.keypoints[LEFT_EYE], d.keypoints[RIGHT_EYE]);
        let k = FRAME_SIZE / 200.0;
        eyes[0].push(l[0] * k);
        eyes[1].push(l[1] * k);
        eyes[2].push(r[0] * k);
        eyes[3].push(r[1] * k);
        ratio.push(d.eye_distance() / d.bbox[2]);
        eye_line.push(((l[1] + r[1]) / 2.0 - d.bbox[1]) / d.bbox[3]);
        // How far the photo path's crop is from the training crop of the same face.
        let (photo, train) = (
            align::crop(&crop, d, INPUT_SIZE),
            aligned_crop_input(&crop, INPUT_SIZE),
        );
        let diff: u64 = photo
            .as_raw()
            .iter()
            .zip(train.as_raw())
            .map(|(a, b)| a.abs_diff(*b) as u64)
            .sum();
        mads.push(diff as f32 / photo.as_raw().len() as f32);
    }
    let found = eyes[0].len();
    println!("detected {found}, missed {missed}");
    let [lx, ly, rx, ry] = eyes.each_mut().map(|v| median(v));
    println!("median left eye [{lx:.1}, {ly:.1}], right eye [{rx:.1}, {ry:.1}]");
    println!(
        "eye spread (25th-75th percentile): left x {:.1}-{:.1} y {:.1}-{:.1}",
        quantile(&mut eyes[0], 0.25),
        quantile(&mut eyes[0], 0.75),
        quantile(&mut eyes[1], 0.25),
        quantile(&mut eyes[1], 0.75),
    );
    println!(
        "eye distance / box width: median {:.3} (25th-75th {:.3}-{:.3}); eye line at {:.3} of the box height",
        median(&mut ratio),
        quantile(&mut ratio, 0.25),
        quantile(&mut ratio, 0.75),
        median(&mut eye_line)
    );
    println!(
        "crop MAD (photo path vs training crop, grey levels): median {:.1}",
        median(&mut mads)
    );
    println!(
        "sharpness of training crops: 2nd percentile {:.1}, median {:.1}",
        quantile(&mut sharp, 0.02),
        median(&mut sharp)
    );
    assert!(
        found * 4 > n * 3,
        "detector found only {found} of {n} faces"
    );
}
