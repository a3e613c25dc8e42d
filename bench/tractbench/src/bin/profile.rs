//! Where the time goes, natively: tract's optimised graph of each model, time per node (summed by
//! op), and the detector's stages per photo. Not part of `run.sh`; a tool for bench/ANALYSIS.md.
//!
//! profile [--classifier model/agegender.onnx] [--photos DIR] [--runs N] [--shapes HxW,HxW...]
//! (`--shapes`: the detector's canvas sizes to profile, height by width; default the benchmark's)

use std::collections::BTreeMap;
use std::time::Instant;

use agegender::decode::{WORK_SIDE, fit_within};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimpleState;

use tractbench::Plan;

fn err(e: impl std::fmt::Display) -> String {
    format!("{e:#}")
}

/// Per-op time (ms per run), summed over `runs` runs after a warm-up.
fn profile(name: &str, plan: &Plan, input: Tensor, runs: usize) -> Result<(), String> {
    let model = plan.model();
    println!(
        "== {name}: {} nodes after into_optimized",
        model.nodes().len()
    );
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for n in model.nodes() {
        *kinds.entry(n.op().name().to_string()).or_default() += 1;
    }
    println!("ops: {kinds:?}");
    let start = Instant::now();
    let (per_node, total) =
        tractbench::node_times(plan, &input, runs, || start.elapsed().as_secs_f64() * 1e3)?;
    let by_op = tractbench::by_op(plan, &per_node);
    let mut v: Vec<_> = by_op.into_iter().collect();
    v.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!("total {total:.2} ms per run");
    for (op, (ms, count)) in v.iter().take(12) {
        println!("  {ms:8.3} ms  {count:3}x {op}");
    }
    let mut nodes: Vec<_> = model.nodes().iter().collect();
    nodes.sort_by(|a, b| per_node[b.id].total_cmp(&per_node[a.id]));
    println!("slowest nodes:");
    for n in nodes.iter().take(10) {
        println!("  {:8.3} ms  {}", per_node[n.id], n);
    }
    Ok(())
}

fn main() -> Result<(), String> {
    let mut classifier = String::from("model/agegender.onnx");
    let mut photos = String::new();
    let mut runs = 20usize;
    let mut shapes = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--classifier" => classifier = v,
            "--photos" => photos = v,
            "--runs" => runs = v.parse().map_err(err)?,
            "--shapes" => {
                for hw in v.split(',') {
                    let (h, w) = hw.split_once('x').ok_or(format!("{hw}: not HxW"))?;
                    shapes.push([1, 3, h.parse().map_err(err)?, w.parse().map_err(err)?]);
                }
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if shapes.is_empty() {
        shapes.push(tractbench::RAW_DETECTOR_SHAPE);
    }
    let graph = agegender::detect::plans::load(tractbench::DETECTOR).map_err(err)?;
    let mut last = None;
    for shape in shapes {
        let det: Plan =
            agegender::detect::plans::plan_for(&graph, shape[2], shape[3]).map_err(err)?;
        let x =
            Tensor::from_shape(&shape, &tractbench::input(shape.iter().product())).map_err(err)?;
        profile(
            &format!("detector {}x{}", shape[2], shape[3]),
            &det,
            x.clone(),
            runs,
        )?;
        last = Some((det, x));
    }
    let (det, x) = last.ok_or("no shape")?;
    // Per-run overhead: a fresh state per run (SimplePlan::run) against one reused state.
    let t = Instant::now();
    for _ in 0..runs {
        det.run(tvec![x.clone().into()]).map_err(err)?;
    }
    let fresh = t.elapsed().as_secs_f64() * 1e3 / runs as f64;
    let mut state = SimpleState::new(&det).map_err(err)?;
    let t = Instant::now();
    for _ in 0..runs {
        state.run(tvec![x.clone().into()]).map_err(err)?;
    }
    let reused = t.elapsed().as_secs_f64() * 1e3 / runs as f64;
    println!("detector run: fresh state {fresh:.2} ms, reused state {reused:.2} ms");

    if let Ok(bytes) = std::fs::read(&classifier) {
        // The input size the model declares (80 for the shipped one).
        let side = agegender::Classifier::from_bytes(&bytes)
            .map_err(err)?
            .input_size() as usize;
        for n in [1usize, 8] {
            let plan = tractbench::load_classifier(&bytes, n, side)?;
            let x =
                Tensor::from_shape(&[n, 3, side, side], &tractbench::input(n * 3 * side * side))
                    .map_err(err)?;
            profile(&format!("classifier b{n}"), &plan, x, runs)?;
            if n == 1 {
                for node in plan.model().nodes() {
                    println!("  node {node}");
                }
            }
        }
    }

    if !photos.is_empty() {
        let detector = agegender::Detector::new().map_err(err)?;
        let opts = agegender::DetectOptions::default();
        let mut names: Vec<_> = std::fs::read_dir(&photos)
            .map_err(err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for p in names {
            let Ok(img) = agegender::decode::open(&p) else {
                continue;
            };
            let (work, _) = fit_within(&img, WORK_SIDE);
            // The stages of `Detector::detect`: scaling onto the canvas, the model, the rest.
            let canvas = detector.canvas(work.width(), work.height(), &opts);
            let (cw, ch) = canvas.size;
            let t = Instant::now();
            let input = canvas.input(&work).map_err(err)?;
            let canvas_ms = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            detector.run_with(input, canvas.transposed).map_err(err)?;
            let model_ms = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let faces = detector.detect(&work, &opts).map_err(err)?;
            println!(
                "{}: {}x{} on a {cw}x{ch} canvas, {} faces, detect {:.0} ms (canvas {canvas_ms:.1} ms, model {model_ms:.1} ms)",
                p.file_name().unwrap_or_default().to_string_lossy(),
                work.width(),
                work.height(),
                faces.len(),
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
