//! Runs the face detector on image files, prints what it found and how long it took, and with
//! `--out DIR` writes each image as a PNG with boxes and keypoints drawn, and each face's 64x64
//! classifier crop (for eyeballing).
//!
//! `cargo run --release --example detect -- [--out DIR] IMAGE...`
//!
//! It also prints the time of one detector pass on a 640x480 frame.

use std::time::Instant;

use agegender::decode;
use agegender::detect::{DetectOptions, Detection, Detector};
use image::{Rgb, RgbImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let mut out_dir = None;
    let mut files = Vec::new();
    while let Some(a) = args.next() {
        if a == "--out" {
            out_dir = args.next();
        } else {
            files.push(a);
        }
    }
    let detector = Detector::new()?;
    let opts = DetectOptions::default();
    {
        // One pass over a 640x480 frame (a webcam's), for scale.
        let blank = RgbImage::new(640, 480);
        detector.detect(&blank, &opts)?;
        let t = Instant::now();
        for _ in 0..10 {
            detector.detect(&blank, &opts)?;
        }
        let ms = t.elapsed().as_secs_f32() * 100.0;
        println!("one detector pass on 640x480: {ms:.1} ms");
    }
    for file in files {
        let img = decode::open(&file)?;
        let (work, _) = decode::fit_within(&img, decode::WORK_SIDE);
        let t = Instant::now();
        let dets = detector.detect(&work, &opts)?;
        let ms = t.elapsed().as_secs_f32() * 1000.0;
        println!(
            "{file}: {}x{} {} faces in {ms:.0} ms",
            img.width(),
            img.height(),
            dets.len()
        );
        for d in &dets {
            println!(
                "  score {:.2} box [{:.0} {:.0} {:.0} {:.0}] eyes {:.0?} {:.0?} eye distance {:.1}",
                d.score,
                d.bbox[0],
                d.bbox[1],
                d.bbox[2],
                d.bbox[3],
                d.keypoints[0],
                d.keypoints[1],
                d.eye_distance()
            );
        }
        if let Some(dir) = &out_dir {
            let stem = std::path::Path::new(&file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into());
            // The classifier's view of each face (what `align::crop` feeds it), at the size
            // the embedded model takes.
            let size = agegender::embedded::CLASSIFIER
                .and_then(|b| agegender::Classifier::from_bytes(b).ok())
                .map_or(agegender::preprocess::INPUT_SIZE, |c| c.input_size());
            for (i, d) in dets.iter().enumerate() {
                let crop = agegender::align::crop(&work, d, size);
                crop.save(std::path::Path::new(dir).join(format!("{stem}-face{i}.png")))?;
            }
            let mut canvas = work.into_owned();
            for d in &dets {
                draw(&mut canvas, d);
            }
            canvas.save(std::path::Path::new(dir).join(format!("{stem}.png")))?;
        }
    }
    Ok(())
}

fn draw(img: &mut RgbImage, d: &Detection) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let thick = (img.width().max(img.height()) / 600).max(1) as i64;
    let mut put = |x: i64, y: i64, c: Rgb<u8>| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            img.put_pixel(x as u32, y as u32, c);
        }
    };
    let c = if d.score > 0.8 {
        Rgb([0, 255, 0])
    } else {
        Rgb([255, 200, 0])
    };
    let [x0, y0, bw, bh] = d.bbox.map(|v| v.round() as i64);
    for t in 0..thick {
        for x in x0..=x0 + bw {
            put(x, y0 + t, c);
            put(x, y0 + bh - t, c);
        }
        for y in y0..=y0 + bh {
            put(x0 + t, y, c);
            put(x0 + bw - t, y, c);
        }
    }
    let colours = [
        [255, 0, 0],
        [0, 0, 255],
        [255, 255, 255],
        [255, 0, 255],
        [0, 255, 255],
    ];
    for (p, col) in d.keypoints.iter().zip(colours) {
        let (px, py) = (p[0].round() as i64, p[1].round() as i64);
        for dy in -thick..=thick {
            for dx in -thick..=thick {
                put(px + dx, py + dy, Rgb(col));
            }
        }
    }
}
