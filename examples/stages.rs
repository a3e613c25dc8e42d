//! Where a photo's time goes, natively, stage by stage, at several detector working sizes: the
//! canvas (resize and planes), the YuNet pass, the decode and NMS, the second look at tilted
//! faces, the crops and the classifier (with and without the mirror run). A tool for choosing the
//! working size and for bench/ANALYSIS.md; the page's own figures come from `bench/run.sh`.
//!
//! `AGEGENDER_DATA=/work/shared/data cargo run --release --example stages [-- RUNS SIZES]`
//! (SIZES comma-separated, default 640,576,512,480).

use std::time::Instant;

use agegender::detect::DetectOptions;
use agegender::{Options, align, embedded};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::var("AGEGENDER_DATA")?;
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let sizes: Vec<u32> = args
        .next()
        .unwrap_or_else(|| "640,576,512,480".into())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let pipeline = embedded::pipeline()?;
    let detector = pipeline.detector();
    let classifier = pipeline.classifier().ok_or("no classifier embedded")?;
    let mut paths: Vec<_> = std::fs::read_dir(std::path::Path::new(&root).join("photos"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    println!(
        "photo                     size       ws  faces  canvas   model  decode  detect(all)  crops  cls+mirror  cls  pipeline"
    );
    for path in paths {
        let img = agegender::decode::open(&path)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        for &ws in &sizes {
            let detect = DetectOptions {
                working_size: ws,
                ..DetectOptions::default()
            };
            detector.prepare(&detect)?;
            let opts = Options {
                detect,
                ..Options::default()
            };
            let mut t = [0f64; 8];
            let mut faces = 0;
            for _ in 0..runs {
                let canvas = detector.canvas(img.width(), img.height(), &detect);
                let s = Instant::now();
                let input = canvas.input(&img)?;
                t[0] += ms(s);
                let s = Instant::now();
                detector.run_with(input.clone(), canvas.transposed)?;
                t[1] += ms(s);
                let s = Instant::now();
                detector.detect_canvas(input, canvas.transposed, &detect)?;
                t[2] += ms(s);
                let s = Instant::now();
                let dets = detector.detect(&img, &detect)?;
                t[3] += ms(s);
                faces = dets.len();
                let s = Instant::now();
                let crops: Vec<_> = dets
                    .iter()
                    .map(|d| align::crop(&img, d, classifier.input_size()))
                    .collect();
                t[4] += ms(s);
                let s = Instant::now();
                classifier.classify(&crops)?;
                t[5] += ms(s);
                let s = Instant::now();
                classifier.logits(&crops)?;
                t[6] += ms(s);
                let s = Instant::now();
                pipeline.analyze(&img, &opts)?;
                t[7] += ms(s);
            }
            let r = runs as f64;
            // "decode" is detect_canvas minus the model run it contains.
            println!(
                "{name:25} {:4}x{:<5} {ws:4} {faces:5} {:7.1} {:7.1} {:7.1} {:12.1} {:6.1} {:11.1} {:4.1} {:9.1}",
                img.width(),
                img.height(),
                t[0] / r,
                t[1] / r,
                (t[2] - t[1]) / r,
                t[3] / r,
                t[4] / r,
                t[5] / r,
                t[6] / r,
                t[7] / r,
            );
        }
    }
    Ok(())
}
