//! Gender label fixes for training faces (`train --label-fixes FILE`): a CSV `name,gender`
//! where gender is `m`, `f` or `drop`. UTKFace has faces with plainly wrong gender labels
//! (see `model/report/label_audit.md`); fixing them in training only keeps every validation
//! and test figure on the dataset's own labels, so a fixes file naming a validation or test
//! face is refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::dataset::{Sample, Split, split_of};

#[derive(Debug, thiserror::Error)]
pub enum FixError {
    #[error("cannot read {path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path} line {line}: expected `name,gender` with gender m, f or drop, got {got:?}")]
    Bad {
        path: PathBuf,
        line: usize,
        got: String,
    },
    #[error("{path} line {line}: {name} is a {split:?} face; only training labels may be fixed")]
    NotTraining {
        path: PathBuf,
        line: usize,
        name: String,
        split: Split,
    },
}

/// What to do with one face's label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fix {
    Gender(u8),
    Drop,
}

/// Reads a fixes file. Every name must belong to the training split (by [`split_of`]).
pub fn read_fixes(path: &Path) -> Result<HashMap<String, Fix>, FixError> {
    let csv_err = |source| FixError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .map_err(csv_err)?;
    let mut out = HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(csv_err)?;
        let line = i + 2;
        let name = rec.get(0).map(str::trim).unwrap_or_default();
        let fix = match rec.get(1).map(|g| g.trim().to_ascii_lowercase()).as_deref() {
            Some("m") => Fix::Gender(0),
            Some("f") => Fix::Gender(1),
            Some("drop") => Fix::Drop,
            _ => {
                return Err(FixError::Bad {
                    path: path.to_path_buf(),
                    line,
                    got: rec.iter().collect::<Vec<_>>().join(","),
                });
            }
        };
        if name.is_empty() {
            return Err(FixError::Bad {
                path: path.to_path_buf(),
                line,
                got: String::new(),
            });
        }
        let split = split_of(name);
        if split != Split::Train {
            return Err(FixError::NotTraining {
                path: path.to_path_buf(),
                line,
                name: name.into(),
                split,
            });
        }
        out.insert(name.to_string(), fix);
    }
    Ok(out)
}

/// What [`apply`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub relabelled: usize,
    pub dropped: usize,
}

/// Drops the faces marked `drop` from `train_set` and returns the gender label of each
/// remaining face, with fixes applied.
pub fn apply<'a>(
    train_set: Vec<&'a Sample>,
    fixes: &HashMap<String, Fix>,
) -> (Vec<&'a Sample>, Vec<u8>, Applied) {
    let mut applied = Applied::default();
    let mut kept = Vec::with_capacity(train_set.len());
    let mut genders = Vec::with_capacity(train_set.len());
    for s in train_set {
        match fixes.get(&s.name) {
            Some(Fix::Drop) => applied.dropped += 1,
            Some(Fix::Gender(g)) => {
                applied.relabelled += usize::from(*g != s.label.gender);
                kept.push(s);
                genders.push(*g);
            }
            None => {
                kept.push(s);
                genders.push(s.label.gender);
            }
        }
    }
    (kept, genders, applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::sample;

    fn train_name(tag: &str, want: Split) -> String {
        (0..)
            .map(|i| format!("30_0_0_{tag}{i}.jpg.chip.jpg"))
            .find(|n| split_of(n) == want)
            .unwrap_or_default()
    }

    fn write(tag: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("agegender-fixes-{tag}-{}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn fixes_relabel_and_drop_training_faces_only() {
        let (a, b, c, d) = (
            train_name("a", Split::Train),
            train_name("b", Split::Train),
            train_name("c", Split::Train),
            train_name("d", Split::Train),
        );
        let p = write("ok", &format!("name,gender\n{a},f\n{b},drop\n{c},M\n"));
        let fixes = read_fixes(&p).unwrap();
        assert_eq!(fixes.len(), 3);
        let (sa, sb, sc, sd) = (sample(&a, 0), sample(&b, 0), sample(&c, 0), sample(&d, 1));
        let (kept, genders, applied) = apply(vec![&sa, &sb, &sc, &sd], &fixes);
        let names: Vec<&str> = kept.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [a.as_str(), c.as_str(), d.as_str()]);
        assert_eq!(genders, [1, 0, 1]);
        // c was already male: only a counts as relabelled.
        assert_eq!(
            applied,
            Applied {
                relabelled: 1,
                dropped: 1
            }
        );

        let test = train_name("t", Split::Test);
        let p = write("test", &format!("name,gender\n{a},f\n{test},m\n"));
        let err = read_fixes(&p).unwrap_err();
        assert!(
            matches!(err, FixError::NotTraining { line: 3, .. }),
            "{err}"
        );
        let p = write("bad", &format!("name,gender\n{a},x\n"));
        assert!(matches!(read_fixes(&p), Err(FixError::Bad { line: 2, .. })));
        let p = write("short", &format!("name,gender\n{a}\n"));
        assert!(matches!(read_fixes(&p), Err(FixError::Bad { .. })));
    }
}
