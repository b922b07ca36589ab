//! `--deadline MINUTES` of `run` and `reproduce` through the real binary: a deadline that has
//! passed starts nothing and exits 0 with its summary (and `reproduce` still writes its report);
//! a deadline that comes during a run winds it down after an epoch, and a later `run` without a
//! deadline resumes it and ends bit-identical to an uninterrupted run.
mod common;

use common::{gcl, ok};
use std::path::{Path, PathBuf};

const GCL_ROW: &str = r#"[rows.gcl]
label = "GCL"
stage1 = { loss = { kind = "gcl" }, mixup = true }
"#;

const CRT_ROW: &str = r#"
[rows.gcl_crt]
label = "GCL + cRT"
stage1 = { loss = { kind = "gcl" }, mixup = true }
stage2 = { epochs = 1 }
"#;

/// The GCL row and `rows`, trained for `epochs` epochs on one thread (two threads on a busy
/// two-core machine take 7x as long).
fn write_manifest(dir: &Path, name: &str, epochs: usize, rows: &str) -> PathBuf {
    let defaults = format!("cpu = {{ threads = 1 }}\nstage1 = {{ epochs = {epochs}, batch_size = 32, warmup_epochs = 1, milestones = [] }}");
    let p = dir.join(name);
    std::fs::write(&p, common::synthetic_manifest(5, 64, &defaults, &format!("{GCL_ROW}\n{rows}"))).unwrap();
    p
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    v.sort();
    v
}

/// The parent's line (workers print their own before it).
fn deadline_line(text: &str) -> &str {
    text.lines()
        .rfind(|l| l.starts_with("deadline reached: "))
        .unwrap_or_else(|| panic!("no deadline summary in:\n{text}"))
}

#[test]
fn a_deadline_that_has_passed_starts_nothing_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(dir.path(), "m.toml", 2, CRT_ROW);
    for jobs in ["1", "2"] {
        let cache = dir.path().join(format!("cache{jobs}"));
        let text = ok(gcl(&cache).arg("run").arg(&m).args(["--jobs", jobs, "--deadline", "0"]).output().unwrap());
        // gcl and gcl_crt share their stage-1 run: 1 stage-1 run + 1 stage-2 run.
        assert_eq!(
            deadline_line(&text),
            "deadline reached: 0 of 2 runs finished (0 trained now, 0 cached), 0 wound down (partial: they resume on the next `run`), 2 never started",
            "--jobs {jobs}: {text}"
        );
        assert!(
            entries(&cache.join("runs")).is_empty() && entries(&cache.join("partial")).is_empty(),
            "--jobs {jobs}: something ran"
        );
    }
    let bad = gcl(&dir.path().join("c")).arg("run").arg(&m).arg("--deadline=-1").output().unwrap();
    assert!(
        !bad.status.success() && common::text(&bad).contains("--deadline: -1 is not a number of minutes"),
        "{}",
        common::text(&bad)
    );
}

#[test]
fn reproduce_with_a_passed_deadline_still_writes_its_report() {
    // `reproduce` reads experiments/tableN.toml from the working directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("experiments")).unwrap();
    write_manifest(&dir.path().join("experiments"), "table3.toml", 2, "");
    let cache = dir.path().join("cache");
    let report = dir.path().join("report");
    let out = gcl(&cache)
        .current_dir(dir.path())
        .args(["reproduce", "--tables", "3", "--no-figures", "--scale", "smoke", "--deadline", "0", "--out"])
        .arg(&report)
        .output()
        .unwrap();
    let text = ok(out);
    assert!(
        deadline_line(&text).contains("0 of 1 runs finished") && deadline_line(&text).contains("1 never started"),
        "{text}"
    );
    assert!(report.join("REPORT.md").is_file(), "no report in {}: {text}", report.display());
}

/// Run `m` with deadlines of 1, 2, 4, 8 s until one comes during the run (after it has started,
/// before its last epoch: a loaded machine starts slowly); the cache it left.
fn wind_down_once(m: &Path, base: &Path, jobs: &str) -> PathBuf {
    for (i, seconds) in [1.0f64, 2.0, 4.0, 8.0].into_iter().enumerate() {
        let cache = base.join(format!("cache-jobs{jobs}-{i}"));
        let minutes = format!("{}", seconds / 60.0);
        let text = ok(gcl(&cache).arg("run").arg(m).args(["--jobs", jobs, "--deadline", &minutes]).output().unwrap());
        if deadline_line(&text).contains("1 wound down") {
            assert!(deadline_line(&text).starts_with("deadline reached: 0 of 1 runs finished"), "{text}");
            return cache;
        }
        assert!(
            text.contains("1 never started"),
            "--jobs {jobs}: a {seconds} s deadline neither wound the run down nor kept it from starting:\n{text}"
        );
    }
    panic!("--jobs {jobs}: no deadline of 1-8 s came during the run");
}

/// The first epochs of a 20-epoch run, wound down by a deadline (in this process, and in a
/// worker process with `--jobs 2`), then resumed without one: the same epochs and the same
/// weights, byte for byte, as the run trained without a deadline.
#[test]
fn a_run_wound_down_by_its_deadline_resumes_and_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let epochs = 20;
    let m = write_manifest(dir.path(), "m.toml", epochs, "");
    let clean_cache = dir.path().join("clean");
    ok(gcl(&clean_cache).arg("run").arg(&m).output().unwrap());
    let clean_runs = entries(&clean_cache.join("runs"));
    assert_eq!(clean_runs.len(), 1);
    let clean = &clean_runs[0];
    let key = clean.file_name().unwrap().to_string_lossy().into_owned();
    let metrics = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("metrics.json")).unwrap()).unwrap()
    };

    for jobs in ["1", "2"] {
        let cache = wind_down_once(&m, dir.path(), jobs);
        assert!(entries(&cache.join("runs")).is_empty(), "a wound-down run must not be visible");
        let partial = cache.join("partial").join(&key);
        let logged = std::fs::read_to_string(partial.join("log.jsonl")).unwrap().lines().count();
        assert!((1..epochs).contains(&logged), "--jobs {jobs}: {logged} epochs logged");

        let text = ok(gcl(&cache).arg("run").arg(&m).output().unwrap());
        assert!(text.contains("resuming") && text.contains("runs: 1 trained, 0 cached"), "{text}");
        let resumed = cache.join("runs").join(&key);
        let (a, b) = (metrics(&resumed), metrics(clean));
        assert_eq!(a["final_eval"], b["final_eval"], "--jobs {jobs}");
        assert_eq!(a["epochs"].as_array().unwrap().len(), epochs);
        for (x, y) in a["epochs"].as_array().unwrap().iter().zip(b["epochs"].as_array().unwrap()) {
            assert_eq!(
                (&x["train_loss"], &x["test_top1"]),
                (&y["train_loss"], &y["test_top1"]),
                "--jobs {jobs}, epoch {}",
                x["epoch"]
            );
        }
        for file in ["model.safetensors", "best.safetensors"] {
            assert!(
                std::fs::read(resumed.join(file)).unwrap() == std::fs::read(clean.join(file)).unwrap(),
                "--jobs {jobs}: {file} differs"
            );
        }
    }
}

/// SIGUSR1 during a stage 1 that a stage 2 is built on: the stage 1 winds down at its epoch end,
/// the stage 2 is "never started" (not skipped as if its stage 1 had failed), and `run` exits 0.
#[test]
fn sigusr1_winds_stage_one_down_and_its_stage_two_never_starts() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(dir.path(), "m.toml", 20, CRT_ROW);
    for attempt in 0..4 {
        let cache = dir.path().join(format!("cache-{attempt}"));
        let mut child = gcl(&cache)
            .arg("run")
            .arg(&m)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let logged = || {
            entries(&cache.join("partial"))
                .iter()
                .any(|d| std::fs::read_to_string(d.join("log.jsonl")).map(|t| !t.is_empty()).unwrap_or(false))
        };
        while child.try_wait().unwrap().is_none() && !logged() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
        let text = ok(child.wait_with_output().unwrap());
        if deadline_line(&text).contains("1 wound down") {
            assert_eq!(
                deadline_line(&text),
                "deadline reached: 0 of 2 runs finished (0 trained now, 0 cached), 1 wound down (partial: they resume on the next `run`), 1 never started",
                "{text}"
            );
            return;
        }
    }
    panic!("SIGUSR1 never came during stage 1 in 4 tries");
}
