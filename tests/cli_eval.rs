//! `eval --weights` and `model.init_from` through the real binary on the synthetic set: the
//! evaluation of a run's stored weights equals the run's own final evaluation; a run that starts
//! from those weights with `stage1.epochs = 0` reports the same numbers, trains a stage 2 on
//! them, and is keyed by the file's content, not its path.
mod common;

use common::{gcl, ok};
use std::path::{Path, PathBuf};

/// One GCL cell trained for one epoch.
fn manifest() -> String {
    let stage1 = r#"stage1 = { epochs = 1, batch_size = 32, warmup_epochs = 0, milestones = [], loss = { kind = "gcl" }, mixup = true }"#;
    common::synthetic_manifest(3, 48, stage1, "[rows.gcl]\nlabel = \"GCL\"\n")
}

const IMPORTED: &str = r#"
[rows.imported]
label = "GCL from imported weights, then cRT"
model = { init_from = "weights/w.safetensors" }
stage1 = { epochs = 0 }
stage2 = { epochs = 1 }
"#;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The stage-1 run directories and their metrics, by first use in `plan`'s order.
fn stage1_runs(cache: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut v: Vec<(PathBuf, serde_json::Value)> = std::fs::read_dir(cache.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), json(&p.join("metrics.json"))))
        .filter(|(_, m)| m["stage"] == 1)
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn eval_and_init_from_reproduce_a_runs_own_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let (m, cache) = (dir.path().join("m.toml"), dir.path().join("cache"));
    std::fs::write(&m, manifest()).unwrap();
    ok(gcl(&cache).arg("run").arg(&m).output().unwrap());
    let runs = stage1_runs(&cache);
    assert_eq!(runs.len(), 1);
    let (run_dir, metrics) = &runs[0];
    let weights = run_dir.join("model.safetensors");

    // eval of the run's weights = the run's own final evaluation.
    let out = dir.path().join("eval.json");
    let text = ok(gcl(&cache)
        .arg("eval")
        .arg(&m)
        .arg("gcl.synth")
        .arg("--weights")
        .arg(&weights)
        .arg("--json")
        .arg(&out)
        .output()
        .unwrap());
    let eval = &json(&out)["evaluation"];
    assert_eq!(eval["top1"], metrics["final_eval"]["top1"], "{text}");
    assert_eq!(eval["per_class"], metrics["final_eval"]["per_class"]);
    assert!(text.contains("top-1 ") && text.contains("many ") && text.contains("class    3:"), "{text}");

    // A run from those weights with no stage-1 epochs reports the same evaluation, and a stage
    // 2 trains on top of it.
    std::fs::create_dir_all(dir.path().join("weights")).unwrap();
    std::fs::copy(&weights, dir.path().join("weights/w.safetensors")).unwrap();
    std::fs::write(&m, format!("{}{IMPORTED}", manifest())).unwrap();
    let text = ok(gcl(&cache).arg("run").arg(&m).output().unwrap());
    assert!(text.contains("runs: 2 trained, 1 cached"), "{text}");
    let imported = stage1_runs(&cache).into_iter().find(|(p, _)| p != run_dir).unwrap();
    assert_eq!(imported.1["final_eval"]["top1"], metrics["final_eval"]["top1"]);
    let key = json(&imported.0.join("key.json"));
    let sha = key["model"]["init_sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    assert!(key["model"].get("init_from").is_none(), "the path is not hashed: {key}");

    // Moved, the same file keeps the key (cached); changed, it is a new run.
    std::fs::rename(dir.path().join("weights"), dir.path().join("moved")).unwrap();
    std::fs::write(&m, format!("{}{}", manifest(), IMPORTED.replace("weights/", "moved/"))).unwrap();
    let text = ok(gcl(&cache).arg("run").arg(&m).output().unwrap());
    assert!(text.contains("runs: 0 trained, 3 cached"), "{text}");

    // A missing file is one error naming it and where relative paths start.
    std::fs::write(&m, format!("{}{}", manifest(), IMPORTED.replace("weights/", "absent/"))).unwrap();
    let out = gcl(&cache).arg("plan").arg(&m).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        text.contains("absent/w.safetensors")
            && text.contains("relative to the manifest's folder")
            && text.contains("imported.synth"),
        "{text}"
    );
}
