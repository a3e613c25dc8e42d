//! Native timings of the same stages the page times in wasm (see `bench/run.mjs`). Prints JSON.
//!
//! tractbench [--classifier model/agegender.onnx] [--photos DIR] [--runs N] [--sizes 640x480,...]

use std::time::Instant;

use image::RgbImage;
use serde_json::{Value, json};
use tractbench::{Bench, crops, input};

fn time<T>(runs: usize, mut f: impl FnMut() -> Result<T, String>) -> Result<Vec<f64>, String> {
    f()?; // warm-up
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f()?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

fn main() -> Result<(), String> {
    let mut classifier = String::from("model/agegender.onnx");
    let mut photos = String::new();
    let mut runs = 20usize;
    let mut sizes = String::from("640x480,1280x720,1920x1080,4032x3024");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--classifier" => classifier = v,
            "--photos" => photos = v,
            "--runs" => runs = v.parse().map_err(|e| format!("--runs: {e}"))?,
            "--sizes" => sizes = v,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    let bytes = std::fs::read(&classifier).unwrap_or_default();
    let t = Instant::now();
    let bench = Bench::new(&bytes)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    let mut out = json!({ "load_ms": load_ms, "has_classifier": bench.has_classifier() });
    let det_in = input(tractbench::RAW_DETECTOR_SHAPE.iter().product());
    out["raw_detector"] = json!(time(runs, || bench.raw_detector(&det_in))?);
    if bench.has_classifier() {
        for n in [1usize, 8] {
            let side = bench.input_size() as usize;
            let x = input(n * 3 * side * side);
            out[format!("raw_classifier_{n}")] = json!(time(runs, || bench.raw_classifier(n, &x))?);
            let c = crops(n, bench.input_size());
            out[format!("classify_{n}")] = json!(time(runs, || bench.classify(&c))?);
        }
    }

    let mut images: Vec<(String, RgbImage)> = Vec::new();
    if !photos.is_empty() {
        let mut names: Vec<_> = std::fs::read_dir(&photos)
            .map_err(|e| format!("{photos}: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")
                })
            })
            .collect();
        names.sort();
        for p in names {
            let img = agegender::decode::open(&p).map_err(|e| e.to_string())?;
            images.push((p.file_name().unwrap().to_string_lossy().into_owned(), img));
        }
    }
    if let Some((_, first)) = images.first().cloned() {
        for s in sizes.split(',').filter(|s| !s.is_empty()) {
            let (w, h) = s.split_once('x').ok_or(format!("bad size {s}"))?;
            let (w, h): (u32, u32) = (
                w.parse().map_err(|_| "bad size")?,
                h.parse().map_err(|_| "bad size")?,
            );
            let img = image::imageops::resize(&first, w, h, image::imageops::FilterType::Triangle);
            images.push((format!("generated {s}"), img));
        }
    }
    let mut rows: Vec<Value> = Vec::new();
    for (name, img) in &images {
        let faces = bench.detect(img)?;
        rows.push(json!({
            "name": name,
            "width": img.width(),
            "height": img.height(),
            "faces": faces,
            "detect": time(runs, || bench.detect(img))?,
            "analyze": time(runs, || bench.analyze(img))?,
        }));
        eprintln!("native: {name} done");
    }
    out["images"] = json!(rows);
    println!(
        "{}",
        serde_json::to_string(&out).map_err(|e| e.to_string())?
    );
    Ok(())
}
