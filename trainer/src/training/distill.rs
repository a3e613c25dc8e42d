//! Gender distillation: soft targets from earlier models' predictions (`eval --predictions`
//! JSON lines), averaged over teachers in logit space, then mixed with the file-name label.
//! UTKFace's gender labels are noisy and infants are ambiguous; an ensemble's probabilities
//! tell the student which faces are hard instead of asking for certainty on every one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::dataset::Sample;

/// A teacher's predictions file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} line {line}: {source}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{} line {line}: p_female is not finite", path.display())]
    NotFinite { path: PathBuf, line: usize },
}

#[derive(Deserialize)]
struct Line {
    name: String,
    estimate: Prob,
}

#[derive(Deserialize)]
struct Prob {
    p_female: f32,
}

/// Keeps teacher logits finite for probabilities of exactly 0 or 1.
const P_CLAMP: f32 = 1e-4;

fn logit(p: f32) -> f32 {
    let p = p.clamp(P_CLAMP, 1.0 - P_CLAMP);
    (p / (1.0 - p)).ln()
}

fn read_teacher(path: &Path) -> Result<HashMap<String, f32>, TeacherError> {
    let text = std::fs::read_to_string(path).map_err(|source| TeacherError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let l: Line = serde_json::from_str(line).map_err(|source| TeacherError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        if !l.estimate.p_female.is_finite() {
            return Err(TeacherError::NotFinite {
                path: path.to_path_buf(),
                line: i + 1,
            });
        }
        out.insert(l.name, logit(l.estimate.p_female));
    }
    Ok(out)
}

/// Teacher probability of "female" per file name: the sigmoid of the mean logit over the
/// teachers that have the name.
pub fn load_teachers(paths: &[PathBuf]) -> Result<HashMap<String, f32>, TeacherError> {
    let mut sums: HashMap<String, (f32, u32)> = HashMap::new();
    for path in paths {
        for (name, z) in read_teacher(path)? {
            let e = sums.entry(name).or_insert((0.0, 0));
            e.0 += z;
            e.1 += 1;
        }
    }
    Ok(sums
        .into_iter()
        .map(|(name, (sum, n))| (name, 1.0 / (1.0 + (-sum / n as f32).exp())))
        .collect())
}

/// Gender targets in [0, 1] for `samples` with gender labels `labels`:
/// `(1 - weight) * label + weight * teacher`, the plain label where no teacher has the face.
/// Returns the targets and how many had none.
pub fn gender_targets(
    samples: &[&Sample],
    labels: &[u8],
    teachers: &HashMap<String, f32>,
    weight: f32,
) -> (Vec<f32>, usize) {
    let mut missing = 0;
    let targets = samples
        .iter()
        .zip(labels)
        .map(|(s, &label)| {
            let hard = label as f32;
            match teachers.get(&s.name) {
                Some(&p) => (1.0 - weight) * hard + weight * p,
                None => {
                    missing += 1;
                    hard
                }
            }
        })
        .collect();
    (targets, missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::sample;

    #[test]
    fn teachers_average_in_logit_space_and_mix_with_labels() {
        let dir = std::env::temp_dir().join(format!("agegender-distill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.jsonl");
        let b = dir.join("b.jsonl");
        std::fs::write(
            &a,
            "{\"name\":\"x\",\"estimate\":{\"p_female\":0.9}}\n{\"name\":\"y\",\"estimate\":{\"p_female\":0.2}}\n",
        )
        .unwrap();
        std::fs::write(&b, "{\"name\":\"x\",\"estimate\":{\"p_female\":0.1}}\n").unwrap();
        let t = load_teachers(&[a, b.clone()]).unwrap();
        // logit(0.9) + logit(0.1) = 0: the teachers cancel out.
        assert!((t["x"] - 0.5).abs() < 1e-5);
        assert!((t["y"] - 0.2).abs() < 1e-5);
        let (x, y, z) = (sample("x", 1), sample("y", 0), sample("z", 1));
        let (targets, missing) = gender_targets(&[&x, &y, &z], &[1, 0, 1], &t, 0.5);
        assert_eq!(missing, 1);
        assert!((targets[0] - 0.75).abs() < 1e-5);
        assert!((targets[1] - 0.1).abs() < 1e-5);
        assert_eq!(targets[2], 1.0);
        std::fs::write(&b, "{\"name\":\"x\"}\n").unwrap();
        assert!(load_teachers(&[b]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
