//! Partial runs travel (issue #28): a 4-epoch run wound down after its first epochs by SIGUSR1,
//! exported with `cache export --partial`, imported into an empty cache in another directory and
//! finished there ends byte-identical to the run trained without a break. An archive's partial
//! run never moves a run backward: import refuses it behind a partial or finished run of the same
//! key, and refuses one whose files do not hash to its key.
mod common;

use common::{gcl, ok, text};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const EPOCHS: usize = 4;

/// One GCL cell, 4 epochs, pinned to AVX2 kernels and one thread (the campaign's pin, with one
/// thread so a busy two-core machine does not slow it several-fold).
fn manifest(dir: &Path) -> PathBuf {
    let defaults = format!(
        "cpu = {{ isa = \"avx2\", threads = 1 }}\nstage1 = {{ epochs = {EPOCHS}, batch_size = 32, warmup_epochs = 1, milestones = [], loss = {{ kind = \"gcl\" }}, mixup = true }}"
    );
    let p = dir.join("m.toml");
    std::fs::write(&p, common::synthetic_manifest(3, 160, &defaults, "[rows.gcl]\nlabel = \"GCL\"\n")).unwrap();
    p
}

fn only_entry(dir: &Path) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.map(|e| e.unwrap().path()).collect();
    v.sort();
    (v.len() == 1).then(|| v.remove(0))
}

fn logged_epochs(run_dir: &Path) -> usize {
    std::fs::read_to_string(run_dir.join("log.jsonl")).map(|t| t.lines().count()).unwrap_or(0)
}

/// `run m` in `cache`, sent SIGUSR1 once `after` more epochs are logged than when it started: it
/// winds down at the end of the epoch in progress. Returns whether it left a partial run (false:
/// it finished first).
fn run_and_wind_down(m: &Path, cache: &Path, after: usize) -> bool {
    let partial = cache.join("partial");
    let start = only_entry(&partial).map(|d| logged_epochs(&d)).unwrap_or(0);
    let mut child = gcl(cache)
        .arg("run")
        .arg(m)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if only_entry(&partial).is_some_and(|d| logged_epochs(&d) >= start + after) {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(600), "no epoch logged in 10 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    assert!(out.status.success(), "run failed: {said}");
    only_entry(&partial).is_some()
}

#[test]
fn a_partial_run_exported_and_imported_elsewhere_finishes_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path());
    let clean = dir.path().join("clean");
    ok(gcl(&clean).arg("run").arg(&m).output().unwrap());
    let clean_run = only_entry(&clean.join("runs")).unwrap();
    let key = clean_run.file_name().unwrap().to_string_lossy().into_owned();

    // Wound down after 1 or more of its 4 epochs (a try whose signal came too late finished).
    let here = (0..4)
        .map(|i| dir.path().join(format!("here-{i}")))
        .find(|cache| run_and_wind_down(&m, cache, 1))
        .expect("SIGUSR1 never came before the last epoch in 4 tries");
    let partial = here.join("partial").join(&key);
    let done = logged_epochs(&partial);
    assert!((1..EPOCHS).contains(&done), "{done} epochs before the wind-down");
    for f in ["checkpoint.safetensors", "spec.toml", "key.json"] {
        assert!(partial.join(f).is_file(), "a partial run carries {f}");
    }

    // The report shows the run in progress, at its checkpoint's epoch.
    let report = dir.path().join("report");
    ok(gcl(&here).arg("report").arg(&m).arg("--out").arg(&report).output().unwrap());
    let md = std::fs::read_to_string(report.join("REPORT.md")).unwrap();
    let row = md.lines().find(|l| l.starts_with("| GCL |")).unwrap_or_else(|| panic!("no GCL row in:\n{md}"));
    assert!(row.contains(&format!("training (seed 3: stage 1, epoch {done} of {EPOCHS})")), "{row}");

    // Export, import into an empty cache elsewhere, finish there.
    let archive = dir.path().join("partial.tar.gz");
    let said = ok(gcl(&here).args(["cache", "export", "--partial", "--out"]).arg(&archive).arg(&m).output().unwrap());
    assert!(said.contains("exported 0 run(s) and 1 partial run(s)"), "{said}");
    let without = fail(gcl(&here).args(["cache", "export", "--out"]).arg(dir.path().join("x.tar.gz")).arg(&m));
    assert!(without.contains("nothing to export: no finished run"), "{without}");
    let there = dir.path().join("elsewhere").join("cache");
    let said = ok(gcl(&there).args(["cache", "import"]).arg(&archive).output().unwrap());
    assert!(said.contains(&format!("partial runs: 1 placed ({} at epoch {done})", &key[..12])), "{said}");
    let plan = ok(gcl(&there).arg("plan").arg(&m).output().unwrap());
    assert!(plan.contains("1 partial") && plan.contains(&format!(" {done}/{EPOCHS} ")), "{plan}");
    let said = ok(gcl(&there).arg("run").arg(&m).output().unwrap());
    assert!(said.contains("resuming") && said.contains("runs: 1 trained, 0 cached"), "{said}");
    let finished = there.join("runs").join(&key);
    for file in ["model.safetensors", "best.safetensors"] {
        assert!(
            std::fs::read(finished.join(file)).unwrap() == std::fs::read(clean_run.join(file)).unwrap(),
            "{file} differs from the uninterrupted run's"
        );
    }
    let metrics = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("metrics.json")).unwrap()).unwrap()
    };
    assert_eq!(metrics(&finished)["final_eval"], metrics(&clean_run)["final_eval"]);
    assert_eq!(metrics(&finished)["epochs"].as_array().unwrap().len(), EPOCHS);

    // A run never moves backward: behind the finished run there, and behind `here` once it has
    // trained on (one more epoch at least, and it may finish).
    let behind = fail(gcl(&there).args(["cache", "import"]).arg(&archive));
    assert!(behind.contains(&format!("(epoch {done}) is behind the finished run here (epoch {EPOCHS})")), "{behind}");
    let again = ok(gcl(&here).args(["cache", "import"]).arg(&archive).output().unwrap());
    assert!(again.contains("partial runs: 0 placed, 1 already here"), "{again}");
    run_and_wind_down(&m, &here, 1);
    let behind = fail(gcl(&here).args(["cache", "import"]).arg(&archive));
    assert!(behind.contains(&format!("(epoch {done}) is behind the")), "{behind}");
}

#[test]
fn a_partial_run_whose_files_do_not_match_its_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path());
    let cache = dir.path().join("cache");
    let left = (0..4).any(|_| {
        let _ = std::fs::remove_dir_all(&cache);
        run_and_wind_down(&m, &cache, 1)
    });
    assert!(left, "SIGUSR1 never came before the last epoch in 4 tries");
    // The same files under another key: its key material no longer hashes to its name.
    let partial = only_entry(&cache.join("partial")).unwrap();
    let forged = "f".repeat(64);
    std::fs::rename(&partial, cache.join("partial").join(&forged)).unwrap();
    let archive = dir.path().join("forged.tar.gz");
    ok(gcl(&cache).args(["cache", "export", "--partial", "--out"]).arg(&archive).arg("ffffffff").output().unwrap());
    let elsewhere = dir.path().join("elsewhere");
    let refused = fail(gcl(&elsewhere).args(["cache", "import"]).arg(&archive));
    assert!(refused.contains("hashes to") && refused.contains("not to its key"), "{refused}");
    assert!(only_entry(&elsewhere.join("partial")).is_none(), "a refused import placed something");
}

fn fail(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "command should have failed: {}", text(&out));
    text(&out)
}
