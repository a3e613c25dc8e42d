//! FairFace (Kärkkäinen and Joo, "FairFace", WACV 2021; CC BY 4.0): a folder with `labels.csv`
//! (`file,age,gender,race`, the age a bin) and the face crops it lists. Each face is found and
//! aligned by the same detector and alignment the page runs; the detections (not the crops) are
//! cached per file, keyed by the detector model and its options, so training warps the source
//! image with the augmentation jitter composed onto the face's own alignment.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};

use agegender::estimate::{AGE_BINS, MAX_AGE};
use agegender::{DetectOptions, Detection, Detector};
use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::{
    Dataset, DatasetError, Label, LoadReport, Sample, decode_file, fnv1a, for_each_row, split_of,
};

/// FairFace's age bins: name, lowest and highest age in years (70+ ends at the age head's last
/// bin).
pub const AGE_BINS_FF: [(&str, u32, u32); 9] = [
    ("0-2", 0, 2),
    ("3-9", 3, 9),
    ("10-19", 10, 19),
    ("20-29", 20, 29),
    ("30-39", 30, 39),
    ("40-49", 40, 49),
    ("50-59", 50, 59),
    ("60-69", 60, 69),
    ("70+", 70, MAX_AGE as u32),
];

/// FairFace's seven groups, in `Label::race` order for FairFace samples.
pub const RACES: [&str; 7] = [
    "East Asian",
    "Southeast Asian",
    "Indian",
    "Black",
    "White",
    "Middle Eastern",
    "Latino_Hispanic",
];

/// The bin an estimated age falls in, read as the page shows it (rounded to a whole year).
pub fn bin_of(age: f32) -> usize {
    let a = age.round().max(0.0) as u32;
    AGE_BINS_FF
        .iter()
        .position(|&(_, lo, hi)| (lo..=hi).contains(&a))
        .unwrap_or(AGE_BINS_FF.len() - 1)
}

fn parse_bin(s: &str) -> Option<u8> {
    let s = s.trim();
    // The CSV writes "more than 70" as "70+"; accept FairFace's own spelling too.
    let s = if s.eq_ignore_ascii_case("more than 70") {
        "70+"
    } else {
        s
    };
    AGE_BINS_FF.iter().position(|b| b.0 == s).map(|i| i as u8)
}

/// Age-head targets for the bins, one row of `AGE_BINS` per bin: uniform over the bin's ages,
/// except 70+, which takes `old_ages`' shape (the exact ages, 70 and over, of the training
/// set's other faces: the bin ends where the data says, not at the head's 100). Ages past the
/// head's range count as its last bin. With fewer than [`MIN_OLD_FACES`] such ages, 70+ falls
/// back to a linear decay from 70 to 100.
pub fn bin_targets(old_ages: &[u32]) -> Vec<f32> {
    let mut t = vec![0.0f32; AGE_BINS_FF.len() * AGE_BINS];
    for (i, &(_, lo, hi)) in AGE_BINS_FF.iter().enumerate() {
        let row = &mut t[i * AGE_BINS..(i + 1) * AGE_BINS];
        if i + 1 == AGE_BINS_FF.len() {
            let old: Vec<usize> = old_ages
                .iter()
                .filter(|&&a| a >= lo)
                .map(|&a| (a as usize).min(MAX_AGE))
                .collect();
            if old.len() >= MIN_OLD_FACES {
                old.iter().for_each(|&a| row[a] += 1.0);
            } else {
                (lo as usize..=MAX_AGE).for_each(|a| row[a] = (MAX_AGE + 1 - a) as f32);
            }
        } else {
            (lo as usize..=hi as usize).for_each(|a| row[a] = 1.0);
        }
        let s: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    t
}

/// Fewest exact ages of 70 and over that give the 70+ bin its shape.
pub const MIN_OLD_FACES: usize = 20;

/// One cached detection: enough to rebuild the [`Detection`] the alignment needs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct CachedFace {
    score: f32,
    bbox: [f32; 4],
    keypoints: Vec<[f32; 2]>,
}

impl CachedFace {
    fn of(d: &Detection) -> Self {
        Self {
            score: d.score,
            bbox: d.bbox,
            keypoints: d.keypoints.to_vec(),
        }
    }

    fn detection(&self) -> Option<Detection> {
        Some(Detection {
            score: self.score,
            bbox: self.bbox,
            // Whatever number of keypoints the detector gives; a count that does not fit is a
            // cache from another detector, and is detected again.
            keypoints: self.keypoints.as_slice().try_into().ok()?,
        })
    }
}

/// The detection cache file: the face found in each file (`None`: none found), valid only for
/// the detector and options in `key`.
#[derive(Default, Serialize, Deserialize)]
struct AlignCache {
    key: String,
    faces: BTreeMap<String, Option<CachedFace>>,
}

/// Identifies the detector and options that made a cache: FNV-1a of the model bytes, the
/// detector's revision and the options.
fn detector_key(opts: &DetectOptions) -> String {
    let options = serde_json::to_string(opts).unwrap_or_default();
    format!(
        "{:016x} r{} {options}",
        fnv1a(agegender::detect::YUNET),
        agegender::detect::REVISION
    )
}

fn read_cache(path: &Path, key: &str) -> AlignCache {
    let cache: Option<AlignCache> = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match cache {
        Some(c) if c.key == key => c,
        Some(_) => {
            eprintln!(
                "{}: made by another detector or options; detecting again",
                path.display()
            );
            AlignCache {
                key: key.into(),
                ..Default::default()
            }
        }
        None => AlignCache {
            key: key.into(),
            ..Default::default()
        },
    }
}

/// The detection the page would align: of the faces found, the one nearest the image centre
/// (FairFace crops are centred on their face; a second face is a bystander).
pub fn central_face(img: &RgbImage, dets: &[Detection]) -> Option<Detection> {
    let (cx, cy) = (img.width() as f32 / 2.0, img.height() as f32 / 2.0);
    let dist = |d: &Detection| {
        let [x, y, w, h] = d.bbox;
        (x + w / 2.0 - cx).hypot(y + h / 2.0 - cy)
    };
    dets.iter()
        .copied()
        .min_by(|a, b| dist(a).total_cmp(&dist(b)))
}

/// Finds the faces in one image (the real detector, or a stand-in in tests).
pub type FindFaces<'a> = dyn Fn(&RgbImage) -> Result<Vec<Detection>, String> + Sync + 'a;

/// One listed face before detection.
struct Row {
    name: String,
    label: Label,
    image: RgbImage,
}

/// Loads a FairFace folder: parses `labels.csv`, decodes the images, finds each face with the
/// page's detector and options (cached in `cache`), and keeps those with a face. `limit` keeps
/// that many rows spread over the list. `working_size`, when given, replaces the page's canvas
/// side: images smaller than the canvas are never enlarged, so a small canvas shows the
/// detector the same face pixels with less black around them, for a fraction of the time.
pub fn load(
    dir: &Path,
    cache: &Path,
    limit: Option<usize>,
    working_size: Option<u32>,
) -> Result<(Vec<Sample>, LoadReport), DatasetError> {
    let detector = Detector::new().map_err(|e| DatasetError::Detector(e.to_string()))?;
    let mut opts = DetectOptions::default();
    if let Some(side) = working_size {
        opts.working_size = side;
        opts.validate()
            .map_err(|e| DatasetError::Detector(e.to_string()))?;
    }
    let find = |img: &RgbImage| detector.detect(img, &opts).map_err(|e| e.to_string());
    load_with(dir, cache, limit, &detector_key(&opts), &find)
}

/// [`load`] with the face finder and the cache key it is known by.
pub fn load_with(
    dir: &Path,
    cache: &Path,
    limit: Option<usize>,
    key: &str,
    find: &FindFaces<'_>,
) -> Result<(Vec<Sample>, LoadReport), DatasetError> {
    let mut report = LoadReport {
        source: dir.display().to_string(),
        ..Default::default()
    };
    let mut listed: Vec<(String, PathBuf, Label)> = Vec::new();
    let mut names = HashSet::new();
    let columns = ["file", "age", "gender", "race"];
    let csv_path = dir.join("labels.csv");
    for_each_row(
        &csv_path,
        columns,
        &mut report,
        |row, [file, age, gender, race], report| {
            let file = Path::new(file);
            // Only plain relative paths inside the folder.
            let inside = !file.as_os_str().is_empty()
                && file.components().all(|c| matches!(c, Component::Normal(_)));
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|_| inside)
                .map(String::from);
            let bin = parse_bin(age);
            let gender = match gender.to_ascii_lowercase().as_str() {
                "m" | "male" => Some(0u8),
                "f" | "female" => Some(1u8),
                _ => None,
            };
            let (Some(name), Some(bin), Some(gender)) = (name, bin, gender) else {
                report
                    .bad_rows
                    .push(format!("row {row}: bad file, age bin or gender"));
                return;
            };
            // The split and the cache go by file name: two rows naming one would share both.
            if !names.insert(name.clone()) {
                report
                    .bad_rows
                    .push(format!("row {row}: duplicate file name {name}"));
                return;
            }
            let race = RACES
                .iter()
                .position(|r| r.eq_ignore_ascii_case(race))
                .map(|r| r as u8);
            report.missing_race += race.is_none() as usize;
            listed.push((
                name,
                dir.join(file),
                Label {
                    age: AGE_BINS_FF[bin as usize].1,
                    gender,
                    race,
                    age_bin: Some(bin),
                },
            ));
        },
    )?;
    if let Some(n) = limit {
        let step = (listed.len() / n.max(1)).max(1);
        listed = listed.into_iter().step_by(step).take(n).collect();
        report.seen = listed.len();
    }
    let decoded: Vec<(String, Label, Result<RgbImage, bool>)> = listed
        .into_par_iter()
        .map(|(name, path, label)| {
            let img = if path.is_file() {
                decode_file(&path).ok_or(true)
            } else {
                Err(false)
            };
            (name, label, img)
        })
        .collect();
    let mut rows = Vec::with_capacity(decoded.len());
    for (name, label, img) in decoded {
        match img {
            Ok(image) => rows.push(Row { name, label, image }),
            Err(true) => report.undecodable.push(name),
            Err(false) => report.missing_files.push(name),
        }
    }

    let mut cached = read_cache(cache, key);
    let todo: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            cached
                .faces
                .get(&r.name)
                .is_none_or(|f| f.as_ref().is_some_and(|f| f.detection().is_none()))
        })
        .collect();
    if !todo.is_empty() {
        eprintln!(
            "finding faces in {} FairFace images ({} cached)",
            todo.len(),
            rows.len() - todo.len()
        );
        let started = std::time::Instant::now();
        let found: Vec<(String, Option<CachedFace>)> = todo
            .par_iter()
            .map(|r| {
                let dets = find(&r.image)?;
                let face = central_face(&r.image, &dets).map(|d| CachedFace::of(&d));
                Ok((r.name.clone(), face))
            })
            .collect::<Result<_, String>>()
            .map_err(DatasetError::Detector)?;
        eprintln!("  done in {:.0}s", started.elapsed().as_secs_f64().max(0.0));
        cached.faces.extend(found);
        write_cache(cache, &cached)?;
    }

    let mut samples = Vec::with_capacity(rows.len());
    for r in rows {
        match cached
            .faces
            .get(&r.name)
            .and_then(|f| f.as_ref())
            .and_then(CachedFace::detection)
        {
            Some(det) => samples.push(Sample {
                split: split_of(&r.name),
                name: r.name,
                label: r.label,
                image: r.image,
                dataset: Dataset::FairFace,
                face: Some(det),
            }),
            None => report.no_face.push(r.name),
        }
    }
    report.loaded = samples.len();
    if samples.is_empty() {
        return Err(DatasetError::Empty(dir.to_path_buf()));
    }
    Ok((samples, report))
}

fn write_cache(path: &Path, cache: &AlignCache) -> Result<(), DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let bytes = serde_json::to_vec(cache).map_err(|e| io(std::io::Error::other(e)))?;
    // Through a rename, so an interrupted pass never leaves half a cache.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_read_as_the_page_rounds() {
        assert_eq!(bin_of(0.0), 0);
        assert_eq!(bin_of(2.4), 0);
        assert_eq!(bin_of(2.6), 1);
        assert_eq!(bin_of(29.4), 3);
        assert_eq!(bin_of(29.6), 4);
        assert_eq!(bin_of(69.4), 7);
        assert_eq!(bin_of(70.0), 8);
        assert_eq!(bin_of(104.0), 8);
        assert_eq!(bin_of(-3.0), 0);
        assert_eq!(parse_bin("70+"), Some(8));
        assert_eq!(parse_bin(" 3-9"), Some(1));
        assert_eq!(parse_bin("3-10"), None);
    }

    #[test]
    fn bin_targets_are_normalised_and_stay_in_their_bin() {
        // 30 faces aged 70 to 79, 5 at 100+, and younger ones that must not count.
        let old: Vec<u32> = (0..30)
            .map(|i| 70 + i % 10)
            .chain([100, 101, 110, 116, 100])
            .chain([5, 40, 69])
            .collect();
        let t = bin_targets(&old);
        for (i, &(name, lo, hi)) in AGE_BINS_FF.iter().enumerate() {
            let row = &t[i * AGE_BINS..(i + 1) * AGE_BINS];
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{name}");
            for (age, &p) in row.iter().enumerate() {
                let inside = (lo as usize..=hi as usize).contains(&age);
                assert!(inside || p == 0.0, "{name} puts {p} on {age}");
            }
        }
        // Uniform inside an ordinary bin.
        let b = &t[AGE_BINS..2 * AGE_BINS];
        assert!((3..=9).all(|a| (b[a] - 1.0 / 7.0).abs() < 1e-6));
        // 70+ follows the old faces: 3/35 at each of 70..79, 5/35 at the head's last age.
        let last = &t[8 * AGE_BINS..];
        assert!((last[70] - 3.0 / 35.0).abs() < 1e-6, "{}", last[70]);
        assert!((last[MAX_AGE] - 5.0 / 35.0).abs() < 1e-6);
        assert_eq!(last[85], 0.0);
        // Too few old faces: a decay from 70, highest there.
        let fallback = bin_targets(&[75, 80]);
        let last = &fallback[8 * AGE_BINS..];
        assert!((last.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(last[70] > last[85] && last[85] > last[MAX_AGE] && last[MAX_AGE] > 0.0);
    }

    #[test]
    fn the_central_face_is_kept() {
        let img = RgbImage::new(100, 100);
        let det = |x: f32, score: f32| Detection {
            score,
            bbox: [x, 30.0, 40.0, 40.0],
            keypoints: Default::default(),
        };
        let picked = central_face(&img, &[det(0.0, 0.99), det(28.0, 0.8), det(60.0, 0.9)]);
        assert_eq!(picked.map(|d| d.bbox[0]), Some(28.0));
        assert_eq!(central_face(&img, &[]), None);
    }

    #[test]
    fn cached_faces_round_trip() {
        let d = Detection {
            score: 0.9,
            bbox: [1.0, 2.0, 3.0, 4.0],
            keypoints: Default::default(),
        };
        assert_eq!(CachedFace::of(&d).detection(), Some(d));
        let wrong = CachedFace {
            keypoints: vec![[0.0; 2]; 1],
            ..CachedFace::of(&d)
        };
        assert_eq!(wrong.detection(), None);
    }

    /// A stand-in detector: a face (eyes 30 px apart, centred) in bright images, none in dark
    /// ones; counts its calls.
    fn stand_in(
        calls: &std::sync::atomic::AtomicUsize,
    ) -> impl Fn(&RgbImage) -> Result<Vec<Detection>, String> + Sync + '_ {
        move |img: &RgbImage| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if img.get_pixel(48, 48).0[0] < 50 {
                return Ok(vec![]);
            }
            let mut det = Detection {
                score: 0.9,
                bbox: [23.0, 25.0, 50.0, 60.0],
                keypoints: Default::default(),
            };
            det.keypoints[agegender::detect::LEFT_EYE] = [33.0, 40.0];
            det.keypoints[agegender::detect::RIGHT_EYE] = [63.0, 40.0];
            Ok(vec![det])
        }
    }

    #[test]
    fn loader_skips_and_counts_bad_rows_files_and_faceless_images() {
        let d = std::env::temp_dir().join(format!("agegender-ff-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("train")).unwrap();
        let bright = RgbImage::from_pixel(96, 96, image::Rgb([200, 150, 120]));
        for i in 1..=4 {
            bright.save(d.join(format!("train/{i}.jpg"))).unwrap();
        }
        RgbImage::new(96, 96).save(d.join("train/5.jpg")).unwrap();
        std::fs::write(d.join("train/6.jpg"), b"not a jpeg").unwrap();
        std::fs::write(
            d.join("labels.csv"),
            "file,age,gender,race\n\
             train/1.jpg,20-29,m,East Asian\n\
             train/2.jpg,70+,f,Black\n\
             train/3.jpg,3-9,f,Martian\n\
             train/4.jpg,twenty,m,White\n\
             train/5.jpg,30-39,m,White\n\
             train/6.jpg,30-39,x,White\n\
             train/6.jpg,30-39,f,White\n\
             ../1.jpg,30-39,f,White\n\
             train/1.jpg,30-39,f,White\n\
             train/7.jpg,0-2,m,Indian\n",
        )
        .unwrap();
        let cache = d.join("run/faces.json");
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let find = stand_in(&calls);
        let (samples, report) = load_with(&d, &cache, None, "k1", &find).unwrap();
        let names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["1.jpg", "2.jpg", "3.jpg"]);
        assert_eq!(report.seen, 10);
        assert_eq!(report.loaded, 3);
        // Bad bin, bad gender, a path out of the folder, a second row for 1.jpg.
        assert_eq!(report.bad_rows.len(), 4, "{:?}", report.bad_rows);
        assert_eq!(report.undecodable, ["6.jpg"]);
        assert_eq!(report.missing_files, ["7.jpg"]);
        assert_eq!(report.no_face, ["5.jpg"]);
        assert_eq!(report.missing_race, 1);
        assert_eq!(report.skipped(), 7);
        let s = &samples[1];
        assert_eq!(s.dataset, Dataset::FairFace);
        assert_eq!(s.split, split_of("2.jpg"));
        assert_eq!(
            s.label,
            Label {
                age: 70,
                gender: 1,
                race: Some(3),
                age_bin: Some(8)
            }
        );
        // The face's alignment puts its eyes on the template.
        let m = s.similarity(64);
        let k = 64.0 / agegender::preprocess::FRAME_SIZE;
        let t = agegender::preprocess::TEMPLATE_LEFT_EYE;
        let (x, y) = m.apply(t[0] * k - 0.5, t[1] * k - 0.5);
        assert!(
            (x - 32.5).abs() < 1e-3 && (y - 39.5).abs() < 1e-3,
            "{x} {y}"
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 4);

        // A second load reads the cache (faceless files included)...
        let (again, report2) = load_with(&d, &cache, None, "k1", &find).unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 4);
        assert_eq!(again.len(), 3);
        assert_eq!(again[0].face, samples[0].face);
        assert_eq!(report2.no_face, ["5.jpg"]);
        // ...unless another detector made it.
        load_with(&d, &cache, None, "k2", &find).unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 8);
        // Nothing usable is an error, not an empty training set.
        std::fs::write(
            d.join("labels.csv"),
            "file,age,gender,race\ntrain/5.jpg,30-39,m,White\n",
        )
        .unwrap();
        assert!(load_with(&d, &cache, None, "k2", &find).is_err());
        // A missing labels.csv is a clear error.
        assert!(load_with(&d.join("nope"), &cache, None, "k2", &find).is_err());
        std::fs::remove_dir_all(&d).ok();
    }
}
