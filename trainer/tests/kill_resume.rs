//! A training run killed with SIGKILL resumes from its last checkpoint and ends with the same
//! model as an uninterrupted run with the same seed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use trainer::fixtures::write_fake_utk as fake_utk;

fn trainer(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.args([
        "train",
        "--tiny",
        "--quiet",
        "--epochs",
        "3",
        "--batch-size",
        "16",
    ])
    .arg("--data")
    .arg(data)
    .arg("--out")
    .arg(out)
    .args(extra);
    c
}

fn golden(run: &Path, out: &Path) -> serde_json::Value {
    let ok = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["export", "--run"])
        .arg(run)
        .arg("--out")
        .arg(out)
        .status()
        .unwrap();
    assert!(ok.success());
    let g: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("agegender.golden.json")).unwrap()).unwrap();
    serde_json::json!([g["age_logits"], g["gender_logit"]])
}

#[test]
fn sigkill_then_resume_matches_an_uninterrupted_run() {
    let root: PathBuf = std::env::temp_dir().join(format!("agegender-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    fake_utk(&data, 160);

    assert!(
        trainer(&data, &root.join("whole"), &[])
            .status()
            .unwrap()
            .success()
    );

    let cut = root.join("cut");
    let mut child = trainer(&data, &cut, &[]).spawn().unwrap();
    // Kill as soon as the first checkpoint is in place (mid-way through epoch 2).
    let start = Instant::now();
    while !cut.join("checkpoints/latest").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        trainer(&data, &cut, &["--resume"])
            .status()
            .unwrap()
            .success()
    );

    let state = |run: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(run.join("train_state.json")).unwrap()).unwrap()
    };
    assert_eq!(
        state(&root.join("whole"))["history"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let strip = |mut v: serde_json::Value| {
        for h in v["history"].as_array_mut().unwrap() {
            h.as_object_mut().unwrap().remove("seconds");
            h.as_object_mut().unwrap().remove("images_per_second");
        }
        v
    };
    assert_eq!(
        strip(state(&root.join("whole")))["history"],
        strip(state(&cut))["history"]
    );
    assert_eq!(
        golden(&root.join("whole"), &root.join("whole-model")),
        golden(&cut, &root.join("cut-model"))
    );
    std::fs::remove_dir_all(&root).ok();
}
