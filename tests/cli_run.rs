//! `gcl-repro run` end to end through the real binary: caching, verification, resume after
//! `kill -9`, and two runners sharing one cache.
mod common;

use common::{gcl, ok};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A CE row, a GCL row and GCL + cRT (which shares GCL's stage-1 run).
const ROWS: &str = r#"[rows.ce]
label = "CE"
model = { head = "linear" }

[rows.gcl]
label = "GCL"
stage1 = { loss = { kind = "gcl" }, mixup = true }

[rows.gcl_crt]
label = "GCL + cRT"
stage1 = { loss = { kind = "gcl" }, mixup = true }
stage2 = { epochs = 1 }
"#;

/// A CIFAR-100 manifest: its data is not under the tests' data root.
const NEEDS_CIFAR: &str = "[manifest]\ntitle = \"t\"\n[defaults]\ndataset = { name = \"cifar100\", imbalance = 100 }\n[columns.c]\nlabel = \"c\"\n[rows.ce]\nlabel = \"CE\"\n";

fn manifest(epochs: usize) -> String {
    let stage1 = format!("stage1 = {{ epochs = {epochs}, batch_size = 32, warmup_epochs = 1, milestones = [] }}");
    common::synthetic_manifest(5, 64, &stage1, ROWS)
}

fn write_manifest(dir: &Path, epochs: usize) -> PathBuf {
    let p = dir.join("m.toml");
    std::fs::write(&p, manifest(epochs)).unwrap();
    p
}

fn run_dirs(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn second_run_is_cached_and_verify_finds_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(dir.path(), 2);
    let cache = dir.path().join("cache");
    let text = ok(gcl(&cache).arg("run").arg(&m).output().unwrap());
    // 2 stage-1 runs (gcl and gcl_crt share one) + 1 stage-2 run.
    assert!(text.contains("runs: 3 trained, 0 cached"), "{text}");
    assert_eq!(run_dirs(&cache).len(), 3);

    let t = Instant::now();
    let text = ok(gcl(&cache).arg("run").arg(&m).output().unwrap());
    assert!(text.contains("runs: 0 trained, 3 cached"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(2), "a cached re-run took {:?}", t.elapsed());

    let ls = ok(gcl(&cache).args(["cache", "ls"]).output().unwrap());
    assert_eq!(ls.lines().filter(|l| l.contains("synthetic")).count(), 3, "{ls}");
    ok(gcl(&cache).args(["cache", "verify"]).output().unwrap());

    let victim = run_dirs(&cache)[0].join("metrics.json");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let out = gcl(&cache).args(["cache", "verify"]).output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("metrics.json: its SHA-256 differs from the one recorded in files.sha256 when the run finished"),
        "{text}"
    );

    // gc keeps what the manifest refers to.
    let gc = ok(gcl(&cache).args(["cache", "gc", "--dry-run"]).arg(&m).output().unwrap());
    assert!(gc.contains("0 run(s) would be removed"), "{gc}");
}

#[test]
fn kill_9_then_rerun_resumes_and_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(dir.path(), 6);
    let cache = dir.path().join("cache");
    // Killed and waited for below; a failed assert ends the test process and its child with it.
    #[allow(clippy::zombie_processes)]
    let mut child = gcl(&cache).arg("run").arg(&m).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Wait until some run has checkpointed at least one epoch, then kill -9.
    let partial = cache.join("partial");
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed_in = loop {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        let found = std::fs::read_dir(&partial).ok().and_then(|rd| {
            rd.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.join("checkpoint.safetensors").exists())
        });
        if let Some(p) = found {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            break p;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let key = killed_in.file_name().unwrap().to_string_lossy().to_string();
    assert!(!cache.join("runs").join(&key).exists(), "a killed run must not be visible");

    let text = ok(gcl(&cache).arg("run").arg(&m).output().unwrap());
    assert!(text.contains("resuming"), "{text}");
    let resumed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cache.join("runs").join(&key).join("metrics.json")).unwrap())
            .unwrap();

    let cache2 = dir.path().join("cache2");
    ok(gcl(&cache2).arg("run").arg(&m).output().unwrap());
    let clean: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cache2.join("runs").join(&key).join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(resumed["final_eval"], clean["final_eval"]);
    assert_eq!(resumed["epochs"].as_array().unwrap().len(), 6);
    for (a, b) in resumed["epochs"].as_array().unwrap().iter().zip(clean["epochs"].as_array().unwrap()) {
        assert_eq!(a["train_loss"], b["train_loss"]);
        assert_eq!(a["test_top1"], b["test_top1"]);
    }
}

#[test]
fn two_runners_train_each_run_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(dir.path(), 2);
    let cache = dir.path().join("cache");
    let a = gcl(&cache).arg("run").arg(&m).stderr(Stdio::piped()).spawn().unwrap();
    let b = gcl(&cache).arg("run").arg(&m).stderr(Stdio::piped()).spawn().unwrap();
    let (ta, tb) = (ok(a.wait_with_output().unwrap()), ok(b.wait_with_output().unwrap()));
    let trained = |t: &str| -> usize {
        let line = t.lines().find(|l| l.starts_with("runs: ")).unwrap_or_else(|| panic!("no summary in {t}"));
        line["runs: ".len()..].split(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(trained(&ta) + trained(&tb), 3, "A: {ta}\nB: {tb}");
    for d in run_dirs(&cache) {
        let log = std::fs::read_to_string(d.join("log.jsonl")).unwrap();
        assert!(log.lines().count() <= 2, "a run was trained twice: {log}");
    }
}

#[test]
fn misspelt_key_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("bad.toml");
    std::fs::write(&m, manifest(1).replace("stage2 = { epochs = 1 }", "stage2 = { epoch = 1 }")).unwrap();
    let out = gcl(&dir.path().join("c")).arg("run").arg(&m).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:") && err.contains("unknown key `epoch`") && err.contains("did you mean `epochs`"),
        "{err}"
    );
    assert!(!dir.path().join("c").join("runs").exists() || run_dirs(&dir.path().join("c")).is_empty());
}

#[test]
fn jobs_2_runs_workers_as_processes_and_caches_everything() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(dir.path(), 1);
    let cache = dir.path().join("cache");
    let text = ok(gcl(&cache).arg("run").arg(&m).args(["--jobs", "2"]).output().unwrap());
    assert!(text.contains("runs: 3 trained, 0 cached, 0 failed"), "{text}");
    assert_eq!(run_dirs(&cache).len(), 3);
    let text = ok(gcl(&cache).arg("run").arg(&m).args(["--jobs", "2"]).output().unwrap());
    assert!(text.contains("runs: 0 trained, 3 cached"), "{text}");
    // Two workers on one device wrote three runs side by side: every file is as recorded.
    let text = ok(gcl(&cache).args(["cache", "verify"]).output().unwrap());
    assert!(text.contains("3 run(s) checked, 0 with problems"), "{text}");
}

#[test]
fn missing_data_is_skipped_with_the_reason_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("c100.toml");
    std::fs::write(&m, NEEDS_CIFAR).unwrap();
    let out = gcl(&dir.path().join("cache")).arg("run").arg(&m).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skipped") && err.contains("data not available") && err.contains("cifar-100-binary"), "{err}");
}

#[test]
fn ctrl_c_stops_cleanly_and_keeps_the_partial_run() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(dir.path(), 50);
    let cache = dir.path().join("cache");
    let child = gcl(&cache).arg("run").arg(&m).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let partial = cache.join("partial");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_dir(&partial)
        .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.path().join("checkpoint.safetensors").exists()))
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(t.elapsed() < Duration::from_secs(10), "stopping took {:?}", t.elapsed());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interrupted: partial runs resume"), "{err}");
    assert!(std::fs::read_dir(&partial).unwrap().count() >= 1);
    assert!(run_dirs(&cache).is_empty());
}

#[test]
fn gc_refuses_when_a_manifest_needs_data_that_is_not_here() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("c100.toml");
    std::fs::write(&m, NEEDS_CIFAR).unwrap();
    let out = gcl(&dir.path().join("cache")).args(["cache", "gc"]).arg(&m).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot tell which runs") && err.contains("--data-root"), "{err}");
}
