//! Evaluation metrics: age MAE, gender accuracy/precision/recall/F1, confusion matrix, age-group
//! accuracy (the reference projects' 4 groups and Adience's 8), interval coverage, and the same
//! broken down by age band, gender and ethnicity.

use std::collections::BTreeMap;

use agegender::estimate::Estimate;
use serde::{Deserialize, Serialize};

use crate::dataset::{Label, RACES};
use crate::fairface;

/// One evaluated face.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub name: String,
    pub label: Label,
    pub estimate: Estimate,
}

/// The reference projects' groups: 0-18, 19-30, 31-80, 80+.
pub fn group4(age: f32) -> usize {
    match age.round() as i64 {
        i64::MIN..=18 => 0,
        19..=30 => 1,
        31..=80 => 2,
        _ => 3,
    }
}

pub const GROUP4: [&str; 4] = ["0-18", "19-30", "31-80", "80+"];

/// Adience's 8 groups (0-2, 4-6, 8-13, 15-20, 25-32, 38-43, 48-53, 60+); ages in the gaps
/// between groups go to the nearer group.
pub fn adience8(age: f32) -> usize {
    const UPPER: [f32; 7] = [3.0, 7.0, 14.0, 22.5, 35.0, 45.5, 56.5];
    UPPER.iter().position(|&u| age < u).unwrap_or(7)
}

/// Age bands for the per-band breakdown.
pub const BANDS: [(&str, u32, u32); 5] = [
    ("0-12", 0, 12),
    ("13-19", 13, 19),
    ("20-39", 20, 39),
    ("40-59", 40, 59),
    ("60+", 60, 200),
];

fn band(age: u32) -> &'static str {
    BANDS
        .iter()
        .find(|(_, lo, hi)| (*lo..=*hi).contains(&age))
        .map(|b| b.0)
        .unwrap_or("60+")
}

/// Metrics over a set of faces. Female is the positive class for precision/recall/F1.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub n: usize,
    pub age_mae: f64,
    pub age_rmse: f64,
    /// Mean signed error (predicted - true): a bias check.
    pub age_bias: f64,
    pub gender_accuracy: f64,
    pub gender_precision: f64,
    pub gender_recall: f64,
    pub gender_f1: f64,
    /// Rows true male/female, columns predicted male/female.
    pub gender_confusion: [[usize; 2]; 2],
    /// Share of faces whose gender the pipeline marks unreliable (shown as "uncertain").
    pub gender_uncertain_share: f64,
    /// Accuracy on the faces whose gender is shown as reliable.
    pub gender_accuracy_when_shown: f64,
    pub group4_accuracy: f64,
    pub adience8_accuracy: f64,
    /// Share of true ages inside the reported range.
    pub interval_coverage: f64,
    pub mean_interval_width: f64,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

pub fn metrics(outcomes: &[&Outcome]) -> Metrics {
    let n = outcomes.len();
    let (mut abs, mut sq, mut signed, mut covered, mut width) = (0.0, 0.0, 0.0, 0usize, 0.0);
    let mut conf = [[0usize; 2]; 2];
    let (mut g4, mut a8, mut uncertain, mut shown_ok) = (0usize, 0usize, 0usize, 0usize);
    for o in outcomes {
        let e = &o.estimate;
        let t = o.label.age as f64;
        let d = e.age as f64 - t;
        abs += d.abs();
        sq += d * d;
        signed += d;
        covered += (e.age_low as f64 <= t && t <= e.age_high as f64) as usize;
        width += (e.age_high - e.age_low) as f64;
        let pred = (e.p_female >= 0.5) as usize;
        conf[o.label.gender.min(1) as usize][pred] += 1;
        g4 += (group4(e.age) == group4(o.label.age as f32)) as usize;
        a8 += (adience8(e.age) == adience8(o.label.age as f32)) as usize;
        if e.gender_reliable {
            shown_ok += (pred == o.label.gender as usize) as usize;
        } else {
            uncertain += 1;
        }
    }
    let (tp, fp, fneg) = (conf[1][1], conf[0][1], conf[1][0]);
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fneg);
    let nf = n.max(1) as f64;
    Metrics {
        n,
        age_mae: abs / nf,
        age_rmse: (sq / nf).sqrt(),
        age_bias: signed / nf,
        gender_accuracy: ratio(conf[0][0] + conf[1][1], n),
        gender_precision: precision,
        gender_recall: recall,
        gender_f1: if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        },
        gender_confusion: conf,
        gender_uncertain_share: ratio(uncertain, n),
        gender_accuracy_when_shown: ratio(shown_ok, n - uncertain),
        group4_accuracy: ratio(g4, n),
        adience8_accuracy: ratio(a8, n),
        interval_coverage: ratio(covered, n),
        mean_interval_width: width / nf,
    }
}

/// The whole evaluation report printed by `eval`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub data: String,
    pub split: String,
    pub overall: Metrics,
    pub by_age_band: BTreeMap<String, Metrics>,
    pub by_gender: BTreeMap<String, Metrics>,
    pub by_ethnicity: BTreeMap<String, Metrics>,
    /// Rows true group, columns predicted group (0-18/19-30/31-80/80+).
    pub group4_confusion: [[usize; 4]; 4],
}

fn breakdown(
    outcomes: &[Outcome],
    key: impl Fn(&Outcome) -> Option<String>,
) -> BTreeMap<String, Metrics> {
    let mut groups: BTreeMap<String, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        if let Some(k) = key(o) {
            groups.entry(k).or_default().push(o);
        }
    }
    groups.into_iter().map(|(k, v)| (k, metrics(&v))).collect()
}

pub fn report(outcomes: &[Outcome], model: &str, data: &str, split: &str) -> Report {
    let all: Vec<&Outcome> = outcomes.iter().collect();
    let mut g4 = [[0usize; 4]; 4];
    for o in outcomes {
        g4[group4(o.label.age as f32)][group4(o.estimate.age)] += 1;
    }
    Report {
        model: model.into(),
        data: data.into(),
        split: split.into(),
        overall: metrics(&all),
        by_age_band: breakdown(outcomes, |o| Some(band(o.label.age).to_string())),
        by_gender: breakdown(outcomes, |o| {
            Some(
                if o.label.gender == 1 {
                    "female"
                } else {
                    "male"
                }
                .to_string(),
            )
        }),
        by_ethnicity: breakdown(outcomes, |o| {
            o.label
                .race
                .map(|r| RACES[r as usize % RACES.len()].to_string())
        }),
        group4_confusion: g4,
    }
}

/// Metrics over FairFace faces, whose ages are bins: gender as the page shows it and the
/// estimated age (rounded, as shown) read as a bin.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BinMetrics {
    pub n: usize,
    /// Always answering the more likely gender.
    pub gender_accuracy: f64,
    /// On the faces whose gender the page shows (the others are "uncertain").
    pub gender_accuracy_when_shown: f64,
    /// Share of faces whose gender the page withholds as uncertain.
    pub gender_withheld_share: f64,
    /// Estimated age in the true bin.
    pub age_bin_accuracy: f64,
    /// Estimated age in the true bin or a neighbour.
    pub age_within_one_bin: f64,
    /// Share whose shown age range overlaps the true bin (the range's promise, as far as a
    /// bin can check it).
    pub range_overlaps_bin: f64,
}

pub fn bin_metrics(outcomes: &[&Outcome]) -> BinMetrics {
    let n = outcomes.len();
    let (mut forced, mut withheld, mut shown_ok, mut hit, mut near, mut overlap) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    for o in outcomes {
        let e = &o.estimate;
        let right = (e.p_female >= 0.5) == (o.label.gender == 1);
        forced += right as usize;
        if e.gender_reliable {
            shown_ok += right as usize;
        } else {
            withheld += 1;
        }
        let truth = o.label.age_bin.map_or(0, |b| b as usize);
        let got = fairface::bin_of(e.age);
        hit += (got == truth) as usize;
        near += (got.abs_diff(truth) <= 1) as usize;
        let (_, lo, hi) = fairface::AGE_BINS_FF[truth.min(fairface::AGE_BINS_FF.len() - 1)];
        overlap += (e.age_low.round() <= hi as f32 && e.age_high.round() >= lo as f32) as usize;
    }
    BinMetrics {
        n,
        gender_accuracy: ratio(forced, n),
        gender_accuracy_when_shown: ratio(shown_ok, n - withheld),
        gender_withheld_share: ratio(withheld, n),
        age_bin_accuracy: ratio(hit, n),
        age_within_one_bin: ratio(near, n),
        range_overlaps_bin: ratio(overlap, n),
    }
}

/// One group of a breakdown, in a fixed order.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    pub group: String,
    #[serde(flatten)]
    pub metrics: BinMetrics,
}

/// `eval`'s report on FairFace faces.
#[derive(Clone, Debug, Serialize)]
pub struct BinReport {
    pub model: String,
    pub data: String,
    pub split: String,
    pub overall: BinMetrics,
    pub by_race: Vec<Group>,
    pub by_age_bin: Vec<Group>,
    pub by_gender: Vec<Group>,
    /// Forced gender accuracy of the best group minus the worst's, in points.
    pub race_gender_gap_points: f64,
    /// Rows true bin, columns estimated bin (`fairface::AGE_BINS_FF` order).
    pub age_bin_confusion: Vec<Vec<usize>>,
}

fn groups(
    outcomes: &[Outcome],
    names: &[&str],
    key: impl Fn(&Outcome) -> Option<usize>,
) -> Vec<Group> {
    names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let members: Vec<&Outcome> = outcomes.iter().filter(|o| key(o) == Some(i)).collect();
            (!members.is_empty()).then(|| Group {
                group: name.to_string(),
                metrics: bin_metrics(&members),
            })
        })
        .collect()
}

pub fn bin_report(outcomes: &[Outcome], model: &str, data: &str, split: &str) -> BinReport {
    let bins: Vec<&str> = fairface::AGE_BINS_FF.iter().map(|b| b.0).collect();
    let by_race = groups(outcomes, &fairface::RACES, |o| {
        o.label.race.map(usize::from)
    });
    let accs = by_race.iter().map(|g| g.metrics.gender_accuracy);
    let gap = accs.clone().fold(f64::NEG_INFINITY, f64::max) - accs.fold(f64::INFINITY, f64::min);
    let mut confusion = vec![vec![0usize; bins.len()]; bins.len()];
    for o in outcomes {
        let truth = o.label.age_bin.map_or(0, usize::from).min(bins.len() - 1);
        confusion[truth][fairface::bin_of(o.estimate.age)] += 1;
    }
    BinReport {
        model: model.into(),
        data: data.into(),
        split: split.into(),
        overall: bin_metrics(&outcomes.iter().collect::<Vec<_>>()),
        by_age_bin: groups(outcomes, &bins, |o| o.label.age_bin.map(usize::from)),
        by_gender: groups(outcomes, &["male", "female"], |o| {
            Some(o.label.gender as usize)
        }),
        race_gender_gap_points: if by_race.is_empty() { 0.0 } else { 100.0 * gap },
        by_race,
        age_bin_confusion: confusion,
    }
}

/// The FairFace report as Markdown tables.
pub fn bin_report_md(r: &BinReport) -> String {
    let pct = |v: f64| format!("{:.1}", 100.0 * v);
    let row = |name: &str, m: &BinMetrics| {
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} |\n",
            m.n,
            pct(m.gender_accuracy),
            pct(m.gender_accuracy_when_shown),
            pct(m.gender_withheld_share),
            pct(m.age_bin_accuracy),
            pct(m.age_within_one_bin)
        )
    };
    let head = "| group | faces | gender % | gender shown % | withheld % | age bin % | bin +-1 % |\n|---|---:|---:|---:|---:|---:|---:|\n";
    let mut md = format!(
        "# FairFace {} split\n\nModel `{}`, data `{}`. Gender gap between the best and worst group: {:.1} points.\n\n{head}",
        r.split, r.model, r.data, r.race_gender_gap_points
    );
    md += &row("all", &r.overall);
    for (title, gs) in [
        ("Race", &r.by_race),
        ("Age bin", &r.by_age_bin),
        ("Gender", &r.by_gender),
    ] {
        md += &format!("\n## By {}\n\n{head}", title.to_lowercase());
        for g in gs {
            md += &row(&g.group, &g.metrics);
        }
    }
    md
}

/// The interval half-width factor (in predicted standard deviations) that makes `target` of
/// the faces' true ages fall inside the range; the smallest such factor on a 0.01 grid.
pub fn calibrate_interval(outcomes: &[Outcome], target: f32) -> (f32, f32) {
    let coverage = |k: f32| {
        let inside = outcomes
            .iter()
            .filter(|o| {
                (o.estimate.age - o.label.age as f32).abs() <= (k * o.estimate.age_std).max(1.0)
            })
            .count();
        inside as f32 / outcomes.len().max(1) as f32
    };
    let mut k = 0.5f32;
    while k < 6.0 && coverage(k) < target {
        k += 0.01;
    }
    (k, coverage(k))
}

/// Platt scaling of the gender logit, fitted on held-out faces: `(a, b)` such that
/// `sigmoid(a * logit + b)` is calibrated. Training with augmentation and class weights leaves a
/// constant offset (about 0.4 logit towards "male" on UTKFace validation) that this removes.
/// Hand-written Newton-Raphson on two parameters (with a tiny ridge for separable data) rather
/// than a logistic-regression crate for a 2x2 system.
pub fn fit_platt(logits: &[f32], female: &[bool]) -> (f32, f32) {
    let (mut a, mut b) = (1.0f64, 0.0f64);
    if logits.is_empty() || logits.len() != female.len() {
        return (1.0, 0.0);
    }
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-6, 0.0, 1e-6);
        for (&z, &y) in logits.iter().zip(female) {
            let z = z as f64;
            if !z.is_finite() {
                continue;
            }
            let p = 1.0 / (1.0 + (-(a * z + b)).exp());
            let r = p - y as u8 as f64;
            let w = p * (1.0 - p);
            ga += r * z;
            gb += r;
            haa += w * z * z;
            hab += w * z;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() + db.abs() < 1e-9 {
            break;
        }
    }
    if a.is_finite() && b.is_finite() && a > 0.0 {
        (a as f32, b as f32)
    } else {
        (1.0, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platt_recovers_a_known_offset_and_scale() {
        // Labels drawn (deterministically) from sigmoid(2 z - 0.8): the fit finds about (2, -0.8).
        let mut logits = Vec::new();
        let mut female = Vec::new();
        let mut state = 12345u64;
        for i in 0..20000 {
            let z = (i % 400) as f32 / 50.0 - 4.0;
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            let p = 1.0 / (1.0 + (-(2.0 * z as f64 - 0.8)).exp());
            logits.push(z);
            female.push(u < p);
        }
        let (a, b) = fit_platt(&logits, &female);
        assert!((a - 2.0).abs() < 0.1, "a = {a}");
        assert!((b + 0.8).abs() < 0.1, "b = {b}");
        // Degenerate input leaves the logit alone.
        assert_eq!(fit_platt(&[], &[]), (1.0, 0.0));
        assert_eq!(fit_platt(&[f32::NAN], &[true]), (1.0, 0.0));
    }

    fn outcome(age: u32, gender: u8, pred_age: f32, p_female: f32) -> Outcome {
        Outcome {
            name: String::new(),
            label: Label {
                age,
                gender,
                race: Some(0),
                age_bin: None,
            },
            estimate: Estimate {
                age: pred_age,
                age_std: 2.0,
                age_low: pred_age - 3.0,
                age_high: pred_age + 3.0,
                p_female,
                gender_reliable: pred_age >= 6.0,
            },
        }
    }

    #[test]
    fn groups_follow_their_definitions() {
        assert_eq!(
            [
                group4(0.0),
                group4(18.4),
                group4(19.0),
                group4(80.0),
                group4(81.0)
            ],
            [0, 0, 1, 2, 3]
        );
        assert_eq!(
            [
                adience8(1.0),
                adience8(5.0),
                adience8(14.5),
                adience8(30.0),
                adience8(70.0)
            ],
            [0, 1, 3, 4, 7]
        );
    }

    #[test]
    fn metrics_on_a_known_set() {
        let os = [
            outcome(20, 0, 22.0, 0.1),
            outcome(40, 1, 36.0, 0.9),
            outcome(3, 1, 4.0, 0.2),
            outcome(70, 0, 70.0, 0.7),
        ];
        let refs: Vec<&Outcome> = os.iter().collect();
        let m = metrics(&refs);
        assert_eq!(m.n, 4);
        assert!((m.age_mae - (2.0 + 4.0 + 1.0 + 0.0) / 4.0).abs() < 1e-9);
        assert_eq!(m.gender_confusion, [[1, 1], [1, 1]]);
        assert!((m.gender_accuracy - 0.5).abs() < 1e-9);
        assert!((m.gender_precision - 0.5).abs() < 1e-9 && (m.gender_recall - 0.5).abs() < 1e-9);
        assert!((m.gender_uncertain_share - 0.25).abs() < 1e-9);
        assert!((m.interval_coverage - 0.75).abs() < 1e-9);
        let r = report(&os, "m", "d", "test");
        assert_eq!(r.by_age_band["0-12"].n, 1);
        assert_eq!(r.by_gender["female"].n, 2);
        assert_eq!(r.group4_confusion[1][1], 1);
    }

    #[test]
    fn fairface_metrics_read_ages_as_bins_and_gender_as_shown() {
        // (bin, gender, race, estimated age, p_female)
        let faces = [
            (3u8, 0u8, 4u8, 25.0f32, 0.1f32), // right bin, right gender
            (3, 1, 4, 30.4, 0.9),             // 30 is the next bin; right gender
            (8, 1, 3, 75.0, 0.55),            // right bin; female but withheld (near 0.5)
            (1, 0, 3, 4.0, 0.8),              // right bin, wrong gender, shown
        ];
        let os: Vec<Outcome> = faces
            .iter()
            .map(|&(bin, gender, race, age, p)| {
                let mut o = outcome(fairface::AGE_BINS_FF[bin as usize].1, gender, age, p);
                o.label.age_bin = Some(bin);
                o.label.race = Some(race);
                o.estimate.gender_reliable = (p - 0.5).abs() >= agegender::estimate::GENDER_MARGIN;
                o
            })
            .collect();
        let r = bin_report(&os, "m", "d", "test");
        let m = &r.overall;
        assert_eq!(m.n, 4);
        assert!((m.age_bin_accuracy - 0.75).abs() < 1e-9);
        assert!((m.age_within_one_bin - 1.0).abs() < 1e-9);
        assert!((m.gender_accuracy - 0.75).abs() < 1e-9);
        assert!((m.gender_withheld_share - 0.25).abs() < 1e-9);
        assert!((m.gender_accuracy_when_shown - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.age_bin_confusion[3][3], 1);
        assert_eq!(r.age_bin_confusion[3][4], 1);
        let names: Vec<&str> = r.by_race.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["Black", "White"]);
        // White 2/2, Black 1/2 right: a 50-point gap.
        assert!((r.race_gender_gap_points - 50.0).abs() < 1e-9);
        assert_eq!(r.by_age_bin.len(), 3);
        assert!(bin_report_md(&r).contains("| Black | 2 | 50.0 |"));
    }

    #[test]
    fn calibration_reaches_the_target_coverage() {
        let os: Vec<Outcome> = (0..100)
            .map(|i| outcome(30, 0, 30.0 + (i as f32) / 10.0, 0.1))
            .collect();
        let (k, c) = calibrate_interval(&os, 0.8);
        assert!(c >= 0.8 && k > 3.0 && k < 4.5, "{k} {c}");
    }
}
