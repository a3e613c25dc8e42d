//! The detector with f32 weights (`model/yunet_n.onnx` as it is) against the same graph with
//! int8 weights (what the page embeds, `detect::plans::EMBEDDED_WEIGHTS`): faces found on the
//! shared photos, the no-face photos and UTKFace's aligned crops (upright and rolled 30 degrees
//! either way), and how far the int8 model moves the boxes, eyes and scores of the faces both
//! find.
//!
//! `AGEGENDER_DATA=/work/shared/data cargo run --release --example detector_weights [-- N [BITS]]`
//! (N UTKFace crops, default 500; BITS of the quantised weights, default 8).

use std::path::{Path, PathBuf};

use agegender::decode;
use agegender::detect::{DetectOptions, Detection, Detector, LEFT_EYE, RIGHT_EYE, plans};
use agegender::preprocess::{Similarity, warp};
use image::RgbImage;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Differences between the faces both detectors found (matched by box centre).
#[derive(Default)]
struct Drift {
    matched: usize,
    unmatched: usize,
    box_px: Vec<f32>,
    eye_px: Vec<f32>,
    score: Vec<f32>,
}

impl Drift {
    fn add(&mut self, a: &[Detection], b: &[Detection]) {
        for d in a {
            let c = |d: &Detection| [d.bbox[0] + d.bbox[2] / 2.0, d.bbox[1] + d.bbox[3] / 2.0];
            let (ca, size) = (c(d), d.bbox[2].max(d.bbox[3]));
            let near = b.iter().find(|e| {
                let cb = c(e);
                (ca[0] - cb[0]).hypot(ca[1] - cb[1]) < 0.25 * size
            });
            let Some(e) = near else {
                self.unmatched += 1;
                continue;
            };
            self.matched += 1;
            let edge = (0..4).map(|i| (d.bbox[i] - e.bbox[i]).abs());
            self.box_px.push(edge.fold(0.0, f32::max) / size * 100.0);
            let eye = [LEFT_EYE, RIGHT_EYE].map(|k| {
                let (p, q) = (d.keypoints[k], e.keypoints[k]);
                (p[0] - q[0]).hypot(p[1] - q[1])
            });
            self.eye_px
                .push(eye[0].max(eye[1]) / d.eye_distance().max(1.0) * 100.0);
            self.score.push((d.score - e.score).abs());
        }
    }

    fn report(&mut self, what: &str) {
        let q = |v: &mut Vec<f32>, p: f32| {
            v.sort_by(f32::total_cmp);
            v.get(((v.len() as f32 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        println!(
            "{what}: {} faces matched, {} unmatched; box edge moved median {:.2}% / p99 {:.2}% / max {:.2}% of the box; eyes median {:.2}% / p99 {:.2}% / max {:.2}% of the eye distance; score median {:.4} / max {:.4}",
            self.matched,
            self.unmatched,
            q(&mut self.box_px, 0.5),
            q(&mut self.box_px, 0.99),
            q(&mut self.box_px, 1.0),
            q(&mut self.eye_px, 0.5),
            q(&mut self.eye_px, 0.99),
            q(&mut self.eye_px, 1.0),
            q(&mut self.score, 0.5),
            q(&mut self.score, 1.0),
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("AGEGENDER_DATA").map_err(|_| "set AGEGENDER_DATA")?);
    let n: usize = std::env::args().nth(1).map_or(Ok(500), |a| a.parse())?;
    let onnx = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/model/yunet_n.onnx"))?;
    let exact = Detector::from_bytes(&onnx)?;
    let bits: u32 = std::env::args().nth(2).map_or(Ok(8), |a| a.parse())?;
    // `Bits(8)` is `Int8`, the shipped detector's weights.
    let weights = graph::Weights::Bits(bits);
    println!("f32 against {bits}-bit weights ({weights:?}), reported as int8");
    let int8 = Detector::from_bytes(&plans::graph_file(&onnx, weights)?)?;
    let opts = DetectOptions::default();
    let run = |img: &RgbImage| -> Result<_, agegender::Error> {
        Ok((exact.detect(img, &opts)?, int8.detect(img, &opts)?))
    };

    for set in ["photos", "nonface"] {
        let mut drift = Drift::default();
        let (mut fa, mut fb) = (0, 0);
        for path in files(&root.join(set)) {
            let Ok(img) = decode::open(&path) else {
                continue;
            };
            let (img, _) = decode::fit_within(&img, decode::WORK_SIDE);
            let (a, b) = run(&img)?;
            if a.len() != b.len() {
                println!(
                    "{}: f32 {} faces, int8 {}",
                    path.display(),
                    a.len(),
                    b.len()
                );
            }
            (fa, fb) = (fa + a.len(), fb + b.len());
            drift.add(&a, &b);
        }
        println!("{set}: f32 found {fa} faces, int8 {fb}");
        drift.report(set);
    }

    let mut crops = files(&root.join("utkface"));
    let step = (crops.len() / n.max(1)).max(1);
    crops = crops.into_iter().step_by(step).take(n).collect();
    for degrees in [0.0f32, 30.0, -30.0] {
        let mut drift = Drift::default();
        let (mut fa, mut fb) = (0, 0);
        for path in &crops {
            let Ok(crop) = decode::open(path) else {
                continue;
            };
            let m = Similarity::whole_frame(crop.width() as f32, crop.width()).jitter(
                crop.width(),
                degrees.to_radians(),
                1.0,
                (0.0, 0.0),
            );
            let (a, b) = run(&warp(&crop, &m, crop.width()))?;
            fa += usize::from(!a.is_empty());
            fb += usize::from(!b.is_empty());
            drift.add(&a, &b);
        }
        println!(
            "UTKFace rolled {degrees:+.0}: a face in {fa}/{} crops with f32, {fb} with int8",
            crops.len()
        );
        drift.report(&format!("UTKFace {degrees:+.0}"));
    }
    Ok(())
}
