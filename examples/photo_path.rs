//! The shipped classifier on UTKFace's test split three ways: on the aligned crops as the trainer
//! scores it, on the same crops with one model run (`Mirror::Plain`, what a webcam frame gets),
//! and through the page's photo path (YuNet on the crop, alignment from its eyes,
//! classification), to check that detection and alignment lose nothing.
//!
//! `AGEGENDER_DATA=/work/shared/data cargo run --release --example photo_path [-- STEP]`
//! (every STEP-th test face, default 1).

use agegender::preprocess::aligned_crop_input;
use agegender::{Mirror, Options, embedded};

/// FNV-1a of the file name modulo 100, 90-99: the trainer's test split (`trainer::dataset`).
fn is_test(name: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h % 100 >= 90
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::var("AGEGENDER_DATA")?;
    let step: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let pipeline = embedded::pipeline()?;
    let classifier = pipeline.classifier().ok_or("no classifier embedded")?;
    let mut names: Vec<String> = std::fs::read_dir(std::path::Path::new(&root).join("utkface"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| is_test(n))
        .collect();
    names.sort();
    let (mut n, mut missed) = (0usize, 0usize);
    let (mut err_a, mut err_p, mut ok_a, mut ok_p) = (0.0f64, 0.0f64, 0usize, 0usize);
    // The aligned crop through one model run, without the mirror average.
    let (mut err_1, mut ok_1) = (0.0f64, 0usize);
    for name in names.iter().step_by(step.max(1)) {
        let mut fields = name.split('_');
        let (Some(Ok(age)), Some(Ok(gender))) = (
            fields.next().map(str::parse::<f32>),
            fields.next().map(str::parse::<u8>),
        ) else {
            continue;
        };
        let img = agegender::decode::open(std::path::Path::new(&root).join("utkface").join(name))?;
        let crop = aligned_crop_input(&img, classifier.input_size());
        let aligned = classifier.classify(std::slice::from_ref(&crop))?[0];
        let single = classifier.classify_with(&[crop], Mirror::Plain)?[0];
        let analysis = pipeline.analyze(&img, &Options::default())?;
        // The face nearest the crop's centre.
        let (w, h) = (img.width() as f32, img.height() as f32);
        let face = analysis.faces.iter().min_by(|a, b| {
            let d = |f: &agegender::Face| {
                (f.box_px[0] + f.box_px[2] / 2.0 - w / 2.0)
                    .hypot(f.box_px[1] + f.box_px[3] / 2.0 - h / 2.0)
            };
            d(a).total_cmp(&d(b))
        });
        let Some(photo) = face.and_then(|f| f.estimate) else {
            missed += 1;
            continue;
        };
        n += 1;
        err_a += (aligned.age - age).abs() as f64;
        err_p += (photo.age - age).abs() as f64;
        ok_a += usize::from((aligned.p_female >= 0.5) == (gender == 1));
        ok_p += usize::from((photo.p_female >= 0.5) == (gender == 1));
        err_1 += (single.age - age).abs() as f64;
        ok_1 += usize::from((single.p_female >= 0.5) == (gender == 1));
    }
    let nf = n.max(1) as f64;
    println!(
        "{n} test faces ({missed} without a face or estimate): aligned crops MAE {:.2}, gender {:.1}%; photo path MAE {:.2}, gender {:.1}%",
        err_a / nf,
        100.0 * ok_a as f64 / nf,
        err_p / nf,
        100.0 * ok_p as f64 / nf
    );
    println!(
        "aligned crops without the mirror run: MAE {:.2}, gender {:.1}%",
        err_1 / nf,
        100.0 * ok_1 as f64 / nf
    );
    Ok(())
}
