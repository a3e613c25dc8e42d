//! Dataset loaders (UTKFace folder, pixel CSV, manifest CSV; FairFace in `fairface`), the
//! deterministic split, and the skip-and-count report. Every sample is kept decoded in memory
//! with the map from classifier input pixels to its pixels.

use std::path::{Path, PathBuf};

use agegender::Detection;
use agegender::preprocess::{self, Similarity};
use image::{GrayImage, RgbImage};
use rayon::prelude::*;
use serde::Serialize;

/// Side of the pixel CSV format's grey images.
const PIXEL_CSV_SIDE: u32 = 48;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse CSV {path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("CSV {path} lacks column {column:?}")]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("no usable samples in {0}")]
    Empty(PathBuf),
    #[error("face detector: {0}")]
    Detector(String),
}

/// Which part of the data a sample belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

/// FNV-1a, 64 bit. Hand-written (five lines) because the split must never change with a
/// dependency's version, which `std`'s `DefaultHasher` does not promise.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The documented split: FNV-1a of the file name (no directories) modulo 100;
/// 0-79 train, 80-89 validation, 90-99 test. Stable across machines, runs and file order.
pub fn split_of(name: &str) -> Split {
    match fnv1a(name.as_bytes()) % 100 {
        0..=79 => Split::Train,
        80..=89 => Split::Val,
        _ => Split::Test,
    }
}

/// Labels of one face.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Label {
    /// Age in years; for a binned label (`age_bin`), the bin's lowest age, never scored as exact.
    pub age: u32,
    /// 0 male, 1 female (UTKFace convention).
    pub gender: u8,
    /// Ethnicity where known: UTKFace's 0-4 ([`RACES`]) or FairFace's 0-6
    /// (`fairface::RACES`), by [`Sample::dataset`].
    pub race: Option<u8>,
    /// FairFace's age bin (index into `fairface::AGE_BINS`) when only the bin is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_bin: Option<u8>,
}

pub const RACES: [&str; 5] = ["white", "black", "asian", "indian", "others"];

/// Why a UTKFace-style file name was rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("too few fields")]
    TooFewFields,
    #[error("age is not a number in 0..=120")]
    BadAge,
    #[error("gender is not 0 or 1")]
    BadGender,
    #[error("race is not 0..=4")]
    BadRace,
}

/// Parses `age_gender_race_datetime.jpg.chip.jpg`. Names that lack the race field
/// (`age_gender_datetime...`) keep their age and gender with the race unknown.
pub fn parse_utk_name(name: &str) -> Result<Label, NameError> {
    let fields: Vec<&str> = name.split('_').collect();
    if fields.len() < 3 {
        return Err(NameError::TooFewFields);
    }
    let age: u32 = fields[0].parse().map_err(|_| NameError::BadAge)?;
    if age > 120 {
        return Err(NameError::BadAge);
    }
    let gender = match fields[1] {
        "0" => 0,
        "1" => 1,
        _ => return Err(NameError::BadGender),
    };
    let race = if fields.len() >= 4 {
        match fields[2].parse::<u8>() {
            Ok(r) if r <= 4 => Some(r),
            _ => return Err(NameError::BadRace),
        }
    } else {
        None
    };
    Ok(Label {
        age,
        gender,
        race,
        age_bin: None,
    })
}

/// Where a sample comes from: sets are scored separately.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    /// UTKFace and the other aligned-crop formats (exact ages).
    #[default]
    UtkFace,
    /// FairFace: in-the-wild crops aligned by the detector, binned ages.
    FairFace,
}

/// One decoded face with its labels.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub label: Label,
    pub image: RgbImage,
    pub split: Split,
    pub dataset: Dataset,
    /// The detected face `image` is aligned by; `None` when the image is already an aligned
    /// UTKFace-style crop (its whole frame is the face).
    pub face: Option<Detection>,
}

impl Sample {
    /// The map from a `size` x `size` classifier input to this sample's pixels: the page's
    /// alignment for a detected face, the whole frame for an aligned crop. Augmentation
    /// jitters this map, so both kinds go through one warp.
    pub fn similarity(&self, size: u32) -> Similarity {
        match &self.face {
            Some(det) => agegender::align::similarity(det, size),
            None => {
                let side = self.image.width().min(self.image.height()) as f32;
                Similarity::whole_frame(side, size)
            }
        }
    }

    /// The unaugmented `size` x `size` classifier input.
    pub fn input(&self, size: u32) -> RgbImage {
        preprocess::warp(&self.image, &self.similarity(size), size)
    }
}

/// What was skipped while loading, and why: reported, never fatal.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    pub source: String,
    pub seen: usize,
    pub loaded: usize,
    pub missing_race: usize,
    pub malformed_names: Vec<String>,
    pub undecodable: Vec<String>,
    pub bad_rows: Vec<String>,
    /// Listed files that are not there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_files: Vec<String>,
    /// Decoded images in which the detector found no face.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub no_face: Vec<String>,
}

impl LoadReport {
    pub fn skipped(&self) -> usize {
        self.malformed_names.len()
            + self.undecodable.len()
            + self.bad_rows.len()
            + self.missing_files.len()
            + self.no_face.len()
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        format!(
            "loaded {} of {} from {} ({} skipped: {} malformed names, {} undecodable, {} bad rows, {} missing, {} without a face; {} without race)",
            self.loaded,
            self.seen,
            self.source,
            self.skipped(),
            self.malformed_names.len(),
            self.undecodable.len(),
            self.bad_rows.len(),
            self.missing_files.len(),
            self.no_face.len(),
            self.missing_race
        )
    }
}

pub(crate) fn decode_file(path: &Path) -> Option<RgbImage> {
    // The library's decoder: the same size limits, EXIF orientation and alpha handling as
    // `predict` and the page, so a photo is read the same way in training and in use.
    agegender::decode::open(path).ok()
}

/// Loads every image in a UTKFace-style folder (labels in the file names).
pub fn load_utk_dir(
    dir: &Path,
    limit: Option<usize>,
) -> Result<(Vec<Sample>, LoadReport), DatasetError> {
    let io = |source| DatasetError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    if let Some(n) = limit {
        // Keep the subset spread over the whole folder, not just the lowest ages.
        let step = (names.len() / n.max(1)).max(1);
        names = names.into_iter().step_by(step).take(n).collect();
    }
    let mut report = LoadReport {
        source: dir.display().to_string(),
        seen: names.len(),
        ..Default::default()
    };
    let parsed: Vec<(String, Result<Label, NameError>)> = names
        .into_iter()
        .map(|n| (n.clone(), parse_utk_name(&n)))
        .collect();
    let decoded: Vec<(String, Result<Label, NameError>, Option<RgbImage>)> = parsed
        .into_par_iter()
        .map(|(n, l)| {
            let img = if l.is_ok() {
                decode_file(&dir.join(&n))
            } else {
                None
            };
            (n, l, img)
        })
        .collect();
    let mut samples = Vec::with_capacity(decoded.len());
    for (name, label, image) in decoded {
        match (label, image) {
            (Err(_), _) => report.malformed_names.push(name),
            (Ok(_), None) => report.undecodable.push(name),
            (Ok(label), Some(image)) => {
                report.missing_race += label.race.is_none() as usize;
                let split = split_of(&name);
                samples.push(Sample {
                    name,
                    label,
                    image,
                    split,
                    dataset: Dataset::UtkFace,
                    face: None,
                });
            }
        }
    }
    report.loaded = samples.len();
    if samples.is_empty() {
        return Err(DatasetError::Empty(dir.to_path_buf()));
    }
    Ok((samples, report))
}

fn column(
    headers: &csv::StringRecord,
    path: &Path,
    name: &'static str,
) -> Result<usize, DatasetError> {
    headers
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(name))
        .ok_or(DatasetError::MissingColumn {
            path: path.to_path_buf(),
            column: name,
        })
}

/// Reads a CSV with a header row and calls `each` with every row's line number and the trimmed
/// values of `columns` (empty where a row is short). Each row counts as seen in `report`; an
/// unreadable one is counted as bad and skipped.
pub(crate) fn for_each_row<const N: usize>(
    path: &Path,
    columns: [&'static str; N],
    report: &mut LoadReport,
    mut each: impl FnMut(usize, [&str; N], &mut LoadReport),
) -> Result<(), DatasetError> {
    let csv_err = |source| DatasetError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(csv_err)?;
    let headers = rdr.headers().map_err(csv_err)?.clone();
    let mut at = [0usize; N];
    for (c, name) in at.iter_mut().zip(columns) {
        *c = column(&headers, path, name)?;
    }
    for (i, rec) in rdr.records().enumerate() {
        report.seen += 1;
        let row = i + 2;
        let Ok(rec) = rec else {
            report.bad_rows.push(format!("row {row}: unreadable"));
            continue;
        };
        each(
            row,
            at.map(|c| rec.get(c).map(str::trim).unwrap_or("")),
            report,
        );
    }
    Ok(())
}

/// Loads the pixel CSV format: columns `age, ethnicity, gender, img_name, pixels`, where
/// `pixels` holds 48x48 space-separated grey values. Bad rows are skipped and counted.
pub fn load_pixel_csv(path: &Path) -> Result<(Vec<Sample>, LoadReport), DatasetError> {
    let mut report = LoadReport {
        source: path.display().to_string(),
        ..Default::default()
    };
    let mut samples = Vec::new();
    let columns = ["age", "ethnicity", "gender", "img_name", "pixels"];
    for_each_row(
        path,
        columns,
        &mut report,
        |row, [age, race, gender, name, pixels], report| {
            let age = age.parse::<u32>().ok().filter(|&a| a <= 120);
            let gender = match gender {
                "0" => Some(0u8),
                "1" => Some(1u8),
                _ => None,
            };
            let race = race.parse::<u8>().ok().filter(|&r| r <= 4);
            let pixels: Option<Vec<u8>> = pixels
                .split_whitespace()
                .map(|p| p.parse::<u8>().ok())
                .collect();
            let (Some(age), Some(gender), Some(pixels)) = (age, gender, pixels) else {
                report
                    .bad_rows
                    .push(format!("row {row}: bad age, gender or pixel value"));
                return;
            };
            // The format is 48x48 grey; any other count is a damaged row.
            let side = PIXEL_CSV_SIDE;
            if pixels.len() != (side * side) as usize {
                report.bad_rows.push(format!(
                    "row {row}: {} pixels, expected {}",
                    pixels.len(),
                    side * side
                ));
                return;
            }
            let Some(grey) = GrayImage::from_raw(side, side, pixels) else {
                report.bad_rows.push(format!("row {row}: pixel buffer"));
                return;
            };
            let name = if name.is_empty() {
                format!("row{row}")
            } else {
                name.to_string()
            };
            samples.push(Sample {
                split: split_of(&name),
                name,
                label: Label {
                    age,
                    gender,
                    race,
                    age_bin: None,
                },
                image: image::DynamicImage::ImageLuma8(grey).to_rgb8(),
                dataset: Dataset::UtkFace,
                face: None,
            });
        },
    )?;
    report.loaded = samples.len();
    if samples.is_empty() {
        return Err(DatasetError::Empty(path.to_path_buf()));
    }
    Ok((samples, report))
}

/// Loads a manifest CSV `path,age,gender` (paths relative to the manifest's folder; gender
/// 0/1 or m/f). Images are taken as aligned face crops.
pub fn load_manifest(path: &Path) -> Result<(Vec<Sample>, LoadReport), DatasetError> {
    let rows = read_manifest(path)?;
    let mut report = LoadReport {
        source: path.display().to_string(),
        seen: rows.len(),
        ..Default::default()
    };
    let decoded: Vec<(ManifestRow, Option<RgbImage>)> = rows
        .into_par_iter()
        .map(|r| {
            let img = r.label.and_then(|_| decode_file(&r.path));
            (r, img)
        })
        .collect();
    let mut samples = Vec::new();
    for (row, img) in decoded {
        let name = row.path.display().to_string();
        match (row.label, img) {
            (None, _) => report.bad_rows.push(format!("{name}: bad age or gender")),
            (Some(_), None) => report.undecodable.push(name),
            (Some(label), Some(image)) => {
                let key = row
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| name.clone());
                samples.push(Sample {
                    split: split_of(&key),
                    name,
                    label,
                    image,
                    dataset: Dataset::UtkFace,
                    face: None,
                })
            }
        }
    }
    report.loaded = samples.len();
    if samples.is_empty() {
        return Err(DatasetError::Empty(path.to_path_buf()));
    }
    Ok((samples, report))
}

/// One manifest line; `label` is `None` when age or gender did not parse.
#[derive(Clone, Debug)]
pub struct ManifestRow {
    pub path: PathBuf,
    pub label: Option<Label>,
}

/// Reads a manifest CSV `path,age,gender` (header optional; age/gender may be empty for
/// `predict`, which only needs paths).
pub fn read_manifest(path: &Path) -> Result<Vec<ManifestRow>, DatasetError> {
    let csv_err = |source| DatasetError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .map_err(csv_err)?;
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let Ok(rec) = rec else { continue };
        let p = rec.get(0).map(str::trim).unwrap_or("");
        if p.is_empty() || (i == 0 && p.eq_ignore_ascii_case("path")) {
            continue;
        }
        let age = rec
            .get(1)
            .and_then(|a| a.trim().parse::<u32>().ok())
            .filter(|&a| a <= 120);
        let gender = match rec.get(2).map(|g| g.trim().to_ascii_lowercase()).as_deref() {
            Some("0" | "m" | "male") => Some(0),
            Some("1" | "f" | "female") => Some(1),
            _ => None,
        };
        let full = if Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            base.join(p)
        };
        rows.push(ManifestRow {
            path: full,
            label: age.zip(gender).map(|(age, gender)| Label {
                age,
                gender,
                race: None,
                age_bin: None,
            }),
        });
    }
    Ok(rows)
}

/// Loads whatever `path` is: a folder of UTKFace-style files, a pixel CSV or a manifest CSV.
pub fn load_any(
    path: &Path,
    limit: Option<usize>,
) -> Result<(Vec<Sample>, LoadReport), DatasetError> {
    if path.is_dir() {
        return load_utk_dir(path, limit);
    }
    let head = std::fs::read(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let first_line = String::from_utf8_lossy(first_line).to_ascii_lowercase();
    let (mut samples, report) = if first_line.contains("pixels") {
        load_pixel_csv(path)?
    } else {
        load_manifest(path)?
    };
    if let Some(n) = limit {
        samples.truncate(n);
    }
    Ok((samples, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_and_rejects_malformed_names() {
        assert_eq!(
            parse_utk_name("26_1_2_20170116174525125.jpg.chip.jpg"),
            Ok(Label {
                age: 26,
                gender: 1,
                race: Some(2),
                age_bin: None,
            })
        );
        assert_eq!(
            parse_utk_name("39_1_20170116174525125.jpg.chip.jpg"),
            Ok(Label {
                age: 39,
                gender: 1,
                race: None,
                age_bin: None,
            })
        );
        assert_eq!(
            parse_utk_name("61_3_20170109150557335.jpg.chip.jpg"),
            Err(NameError::BadGender)
        );
        assert_eq!(parse_utk_name("abc_0_1_2017.jpg"), Err(NameError::BadAge));
        assert_eq!(parse_utk_name("20_0_9_2017.jpg"), Err(NameError::BadRace));
        assert_eq!(parse_utk_name("README.txt"), Err(NameError::TooFewFields));
        assert_eq!(parse_utk_name("500_0_1_2017.jpg"), Err(NameError::BadAge));
        assert_eq!(parse_utk_name(""), Err(NameError::TooFewFields));
    }

    #[test]
    fn split_is_stable_and_roughly_80_10_10() {
        assert_eq!(
            split_of("1_0_0_20161219140623097.jpg.chip.jpg"),
            split_of("1_0_0_20161219140623097.jpg.chip.jpg")
        );
        let mut counts = [0usize; 3];
        for i in 0..10_000 {
            match split_of(&format!("{}_{}_0_2017{i:08}.jpg.chip.jpg", i % 90, i % 2)) {
                Split::Train => counts[0] += 1,
                Split::Val => counts[1] += 1,
                Split::Test => counts[2] += 1,
            }
        }
        assert!((7_700..8_300).contains(&counts[0]), "{counts:?}");
        assert!(
            (800..1_200).contains(&counts[1]) && (800..1_200).contains(&counts[2]),
            "{counts:?}"
        );
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("agegender-ds-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn utk_dir_skips_and_counts_bad_files() {
        let d = tempdir("utk");
        let img = RgbImage::from_pixel(40, 40, image::Rgb([120, 90, 60]));
        img.save(d.join("30_0_1_20170101000000000.jpg.chip.jpg"))
            .unwrap();
        img.save(d.join("31_1_20170101000000001.jpg.chip.jpg"))
            .unwrap();
        img.save(d.join("x_1_1_20170101000000002.jpg.chip.jpg"))
            .unwrap();
        // A corrupt JPEG: the header then garbage.
        std::fs::write(
            d.join("40_1_0_20170101000000003.jpg.chip.jpg"),
            [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3],
        )
        .unwrap();
        std::fs::write(d.join("41_1_0_20170101000000004.jpg.chip.jpg"), b"").unwrap();
        let (samples, report) = load_utk_dir(&d, None).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(report.seen, 5);
        assert_eq!(report.malformed_names.len(), 1);
        assert_eq!(report.undecodable.len(), 2);
        assert_eq!(report.missing_race, 1);
        assert_eq!(report.skipped(), 3);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn pixel_csv_skips_bad_rows() {
        let d = tempdir("csv");
        let good: Vec<String> = (0..48 * 48).map(|i| (i % 256).to_string()).collect();
        let short: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let csv = format!(
            "age,ethnicity,gender,img_name,pixels\n25,0,1,a.jpg,{}\n30,1,0,b.jpg,{}\nxx,1,0,c.jpg,{}\n40,2,0,d.jpg,1 2 300\n",
            good.join(" "),
            short.join(" "),
            good.join(" ")
        );
        let p = d.join("ages.csv");
        std::fs::write(&p, csv).unwrap();
        let (samples, report) = load_any(&p, None).unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].image.dimensions(), (48, 48));
        assert_eq!(
            samples[0].label,
            Label {
                age: 25,
                gender: 1,
                race: Some(0),
                age_bin: None,
            }
        );
        assert_eq!(report.bad_rows.len(), 3, "{:?}", report.bad_rows);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn manifest_loads_relative_paths_and_counts_failures() {
        let d = tempdir("manifest");
        RgbImage::from_pixel(32, 32, image::Rgb([1, 2, 3]))
            .save(d.join("a.png"))
            .unwrap();
        std::fs::write(d.join("broken.png"), b"not a png").unwrap();
        let p = d.join("m.csv");
        std::fs::write(
            &p,
            "path,age,gender\na.png,33,f\nbroken.png,20,m\nmissing.png,20,0\na.png,,m\n",
        )
        .unwrap();
        let (samples, report) = load_any(&p, None).unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].label.gender, 1);
        assert_eq!(report.undecodable.len(), 2);
        assert_eq!(report.bad_rows.len(), 1);
        std::fs::remove_dir_all(&d).ok();
    }
}
