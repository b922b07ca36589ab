//! The Slurm scripts of `plan --emit slurm` on a REAL scheduler: both arrays run every task,
//! and stage 2 starts only after every stage-1 task has finished (afterok dependency).
//!
//! Needs a running Slurm (`scripts/slurm-local.sh start`, or `make slurm-up`, sets up a one-node
//! one as root). The test is named `needs_slurm_*` and is `#[ignore]`d, so a plain `cargo test`
//! reports it as ignored; `make test` starts a local Slurm when it can and then runs it (`cargo
//! test -- --ignored needs_slurm`), as it does when `sinfo` already shows a node up. Run explicitly
//! without a Slurm, it fails, saying why. `gcl-repro run` is replaced by a command that writes a
//! timestamped marker per key, through the `--slurm-command` template.
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn slurm_ready() -> Result<(), String> {
    let sinfo = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .map_err(|_| "sbatch/sinfo are not installed (apt-get install -y slurm-wlm munge)".to_string())?;
    let states = String::from_utf8_lossy(&sinfo.stdout).to_string();
    if !sinfo.status.success() || !states.lines().any(|s| matches!(s.trim(), "idle" | "mix" | "alloc")) {
        return Err(format!(
            "no Slurm node is up (sinfo: {:?}); start one with scripts/slurm-local.sh start",
            states.trim()
        ));
    }
    Ok(())
}

/// Marker files `s<stage>-<key>` holding the time (ns) the task wrote them.
fn markers(dir: &Path) -> HashMap<String, u128> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let t = std::fs::read_to_string(e.path()).unwrap().trim().parse::<u128>().unwrap();
            (e.file_name().to_string_lossy().to_string(), t)
        })
        .collect()
}

#[test]
#[ignore = "needs a running Slurm: sinfo shows a node idle, mix or alloc (as root: make slurm-up, or scripts/slurm-local.sh start)"]
fn needs_slurm_emitted_arrays_run_with_stage2_after_stage1() {
    if let Err(why) = slurm_ready() {
        panic!("needs a running Slurm: {why}");
    }
    // Under /tmp, not a tempdir of the test: the Slurm daemons (root) write the task logs there.
    let work = tempfile::Builder::new().prefix("gcl-slurm-test-").tempdir_in("/tmp").unwrap();
    let (jobs, marks, cache) = (work.path().join("jobs"), work.path().join("markers"), work.path().join("cache"));
    std::fs::create_dir_all(&marks).unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests/good.toml");
    // Stage-1 tasks sleep so that a missing dependency would let stage 2 overtake them.
    let command = format!("sleep $((3 - {{stage}})); date +%s%N > '{}'/s{{stage}}-{{key}}", marks.display());
    let plan = Command::new(env!("CARGO_BIN_EXE_gcl-repro"))
        .arg("plan")
        .arg(&manifest)
        .args(["--scale", "smoke", "--cache-dir"])
        .arg(&cache)
        .args(["--slurm-command", &command, "--emit", "slurm"])
        .arg(&jobs)
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
    let keys = |f: &str| -> Vec<String> {
        std::fs::read_to_string(jobs.join(f))
            .unwrap()
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    let (keys1, keys2) = (keys("keys1.txt"), keys("keys2.txt"));
    assert!(!keys1.is_empty() && !keys2.is_empty());

    let submit = Command::new("bash").arg(jobs.join("submit.sh")).output().unwrap();
    let said = String::from_utf8_lossy(&submit.stdout).to_string();
    assert!(submit.status.success(), "{said}\n{}", String::from_utf8_lossy(&submit.stderr));
    let ids: Vec<String> =
        said.lines().filter_map(|l| l.split("job ").nth(1)).map(|r| r.split(' ').next().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 2, "{said}");
    eprintln!("submitted: {said}");
    // The stage-2 array waits on the stage-1 array (checked while stage 1 is still running).
    let dep = Command::new("squeue").args(["-h", "-j", &ids[1], "-o", "%E"]).output().unwrap();
    let dep = String::from_utf8_lossy(&dep.stdout).to_string();
    assert!(
        dep.lines().all(|l| l.starts_with(&format!("afterok:{}", ids[0]))) && !dep.trim().is_empty(),
        "stage-2 dependency: {dep:?}"
    );

    // Wait for both arrays to leave the queue.
    let start = Instant::now();
    loop {
        let q = Command::new("squeue").args(["-h", "-j", &ids.join(","), "-o", "%i %T %r"]).output().unwrap();
        let text = String::from_utf8_lossy(&q.stdout).to_string();
        if text.trim().is_empty() {
            break;
        }
        assert!(!text.contains("DependencyNeverSatisfied"), "stage 2 will never run:\n{text}");
        assert!(start.elapsed() < Duration::from_secs(240), "Slurm jobs did not finish in 240 s:\n{text}");
        std::thread::sleep(Duration::from_millis(500));
    }

    let m = markers(&marks);
    for k in &keys1 {
        assert!(
            m.contains_key(&format!("s1-{k}")),
            "stage-1 task for {k} did not run; logs in {}",
            jobs.join("logs").display()
        );
    }
    for k in &keys2 {
        assert!(m.contains_key(&format!("s2-{k}")), "stage-2 task for {k} did not run");
    }
    assert_eq!(m.len(), keys1.len() + keys2.len());
    let last_stage1 = keys1.iter().map(|k| m[&format!("s1-{k}")]).max().unwrap();
    let first_stage2 = keys2.iter().map(|k| m[&format!("s2-{k}")]).min().unwrap();
    assert!(first_stage2 > last_stage1, "a stage-2 task finished before the last stage-1 task");
    let logs = std::fs::read_dir(jobs.join("logs")).unwrap().count();
    assert_eq!(logs, keys1.len() + keys2.len(), "one log per array task");
    eprintln!(
        "slurm: {} stage-1 and {} stage-2 tasks ran; stage 2 began {:.1} s after the last stage-1 task",
        keys1.len(),
        keys2.len(),
        (first_stage2 - last_stage1) as f64 / 1e9
    );
}

/// A data-parallel run (`data_parallel.ranks = 2`) planned for Slurm is one array task of two
/// Slurm tasks (`srun --ntasks=2`), each a `gcl-repro worker` that finds its rank in
/// SLURM_PROCID / SLURM_NTASKS: together they train the run and rank 0 writes it into the cache.
#[test]
#[ignore = "needs a running Slurm: sinfo shows a node idle, mix or alloc (as root: make slurm-up, or scripts/slurm-local.sh start)"]
fn needs_slurm_a_data_parallel_run_trains_as_two_tasks() {
    if let Err(why) = slurm_ready() {
        panic!("needs a running Slurm: {why}");
    }
    let work = tempfile::Builder::new().prefix("gcl-slurm-dp-").tempdir_in("/tmp").unwrap();
    let (jobs, cache, manifest) = (work.path().join("jobs"), work.path().join("cache"), work.path().join("dp.toml"));
    std::fs::write(
        &manifest,
        "[manifest]\ntitle = \"dp\"\nseeds = [1]\n[defaults]\n\
         dataset = { name = \"synthetic\", classes = 4, max_per_class = 40, imbalance = 4, test_per_class = 8 }\n\
         model = { arch = \"resnet_small\", head = \"normed\" }\n\
         stage1 = { epochs = 2, batch_size = 8, warmup_epochs = 0, milestones = [] }\n\
         cpu = { threads = 1 }\ndata_parallel = { ranks = 2 }\n[columns.c]\nlabel = \"c\"\n[rows.r]\nlabel = \"r\"\n",
    )
    .unwrap();
    let gcl = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gcl-repro"));
        c.arg("--cache-dir").arg(&cache).args(["--device", "cpu", "--data-root", "/nonexistent"]);
        c
    };
    let plan = gcl().arg("plan").arg(&manifest).args(["--emit", "slurm"]).arg(&jobs).output().unwrap();
    assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
    let script = std::fs::read_to_string(jobs.join("stage1-ranks2.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --ntasks=2") && script.contains("srun --ntasks=2"), "{script}");
    let key = std::fs::read_to_string(jobs.join("keys1-ranks2.txt")).unwrap().split('\t').next().unwrap().to_string();
    let submit = Command::new("bash").arg(jobs.join("submit.sh")).output().unwrap();
    let said = String::from_utf8_lossy(&submit.stdout).to_string();
    assert!(submit.status.success(), "{said}\n{}", String::from_utf8_lossy(&submit.stderr));
    let id = said.lines().find_map(|l| l.split("job ").nth(1)).unwrap().split(' ').next().unwrap().to_string();
    let start = Instant::now();
    loop {
        let q = Command::new("squeue").args(["-h", "-j", &id, "-o", "%i %T %r"]).output().unwrap();
        if String::from_utf8_lossy(&q.stdout).trim().is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(240), "the job did not finish in 240 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs: String = std::fs::read_dir(jobs.join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let run = cache.join("runs").join(&key);
    assert!(run.join("model.safetensors").is_file(), "the run is not in the cache; task log:\n{logs}");
    let spec = std::fs::read_to_string(run.join("spec.toml")).unwrap();
    assert!(spec.contains("ranks = 2"), "{spec}");
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2, "two epochs recorded once (rank 0 writes):\n{log}");
    assert_eq!(gcl().arg("cache").arg("verify").status().unwrap().code(), Some(0));
}
