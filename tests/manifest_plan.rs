//! `plan`: the run graph (stage-1 runs shared by their stage-2 variants), cache states, and the
//! Slurm scripts written by `--emit slurm` (file contents; the real scheduler is in slurm_local.rs).
use gcl_repro::cache::RunState;
use gcl_repro::pipeline::plan::{self, PlanOptions};
use gcl_repro::pipeline::{RunGraph, RunStage};
use gcl_repro::training::spec::Scale;
use std::path::{Path, PathBuf};
use std::process::Command;

fn good() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests/good.toml")
}

fn options(cache: &Path) -> PlanOptions {
    PlanOptions {
        scale: Scale::Full,
        cache_dir: cache.to_path_buf(),
        data_root: PathBuf::from("/data"),
        overrides: Default::default(),
        device_name: "test CPU (2 cores)".into(),
    }
}

#[test]
fn graph_dedups_stage1_and_reads_cache_states() {
    let cache = tempfile::tempdir().unwrap();
    let p = plan::build(&[good()], &options(cache.path())).unwrap();
    let nodes = &p.graph.nodes;
    assert_eq!(nodes.len(), 16);
    assert!(p.states.iter().all(|s| *s == RunState::Missing));
    // Every stage-2 node directly follows its parent or a sibling, and names its parent.
    for (i, n) in nodes.iter().enumerate() {
        if let RunStage::Two { parent } = &n.stage {
            let prev = &nodes[i - 1];
            assert!(&prev.key == parent || prev.parent() == Some(parent.as_str()));
        }
    }
    let shared = nodes.iter().find(|n| n.uses.len() == 3).expect("gcl.c10 shared by three cells");
    assert_eq!(p.cells(shared), ["gcl.c10@1", "gcl_crt.c10@1", "gcl_cb.c10@1"]);
    assert_eq!(nodes.iter().filter(|n| n.parent() == Some(shared.key.as_str())).count(), 2);

    // Mark one run cached and one partial, exactly as the cache store lays them out.
    let k_cached = nodes[0].key.clone();
    let k_partial = nodes.iter().find(|n| n.parent().is_some()).unwrap().key.clone();
    std::fs::create_dir_all(cache.path().join("runs").join(&k_cached)).unwrap();
    std::fs::write(cache.path().join("runs").join(&k_cached).join("metrics.json"), "{}").unwrap();
    std::fs::create_dir_all(cache.path().join("partial").join(&k_partial)).unwrap();
    let p = plan::build(&[good()], &options(cache.path())).unwrap();
    let state = |k: &str| p.nodes().find(|(n, _)| n.key == k).unwrap().1;
    assert_eq!(state(&k_cached), RunState::Cached);
    assert_eq!(state(&k_partial), RunState::Partial);
    let text = p.render();
    assert!(text.contains("16 runs (10 stage 1, 6 stage 2): 1 cached, 1 partial, 14 to run"), "{text}");
    let row = text.lines().find(|l| l.starts_with(&k_cached[..12])).unwrap();
    assert!(row.contains("cached") && row.contains("ce.c10@1"), "{row}");
    // ce.c10: synthetic 4 classes, gamma 10, 500 images max: 500+232+107+50 = 889 images x 200 epochs.
    assert!(row.contains(" 889 ") && row.contains("178K"), "{row}");
}

/// A cell whose data is not under the data root has no key: it is listed apart with the reason
/// (never hashed into a placeholder key), and the other cells are planned as usual.
#[test]
fn runs_without_their_data_are_listed_apart_not_keyed() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        "[manifest]\nname = \"m\"\n[columns.syn]\ndataset = { name = \"synthetic\", classes = 4, max_per_class = 40 }\n\
         [columns.c10]\ndataset = { name = \"cifar100\" }\n[rows.ce]\nstage1 = { loss = { kind = \"ce\" } }\n",
    )
    .unwrap();
    let empty = dir.path().join("no-data");
    let graph = RunGraph::build(
        std::slice::from_ref(&manifest),
        Scale::Full,
        &gcl_repro::manifest::Overrides::seeds(1),
        &empty,
    )
    .unwrap();
    assert_eq!(graph.nodes.len(), 1, "only the synthetic cell has a key");
    assert_eq!(graph.nodes[0].label(), "m:ce.syn/s123");
    assert_eq!(graph.unavailable.len(), 1);
    assert_eq!(graph.unavailable[0].label, "m:ce.c10/s123");
    assert!(
        graph.unavailable[0].reason.starts_with("data not available: ")
            && graph.unavailable[0].reason.contains("cifar-100"),
        "{:?}",
        graph.unavailable
    );
    let cells = &graph.manifests[0].cells;
    assert!(cells[1].runs[0].keys.is_none() && cells[0].runs[0].keys.is_some());
    let p = plan::build(
        &[manifest],
        &PlanOptions { overrides: gcl_repro::manifest::Overrides::seeds(1), ..options(dir.path()) },
    )
    .unwrap();
    let text = p.render();
    assert!(
        text.contains("1 runs (1 stage 1, 0 stage 2)")
            && text.contains("not planned (1 run(s) whose data is not under the data root"),
        "{text}"
    );
}

#[test]
fn emit_slurm_writes_arrays_chained_by_afterok() {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("jobs");
    let run = Command::new(env!("CARGO_BIN_EXE_gcl-repro"))
        .arg("plan")
        .arg(good())
        .args(["--scale", "smoke", "--cache-dir"])
        .arg(cache.path())
        .args(["--data-root", "/data", "--sbatch=--time=10", "--emit", "slurm"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    // At smoke scale gcl.c100's 300 epochs shrink to 2, so it shares gcl_crt.c100's stage 1.
    assert!(stdout.contains("14 runs (8 stage 1, 6 stage 2): 0 cached, 0 partial, 14 to run"), "{stdout}");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let keys1 = read("keys1.txt");
    let keys2 = read("keys2.txt");
    assert_eq!((keys1.lines().count(), keys2.lines().count()), (8, 6));
    for line in keys1.lines().chain(keys2.lines()) {
        let [key, job, manifest] = line.split('\t').collect::<Vec<_>>()[..] else { panic!("{line}") };
        assert_eq!(key.len(), 64);
        assert_eq!(Path::new(manifest), good().as_path());
        // The task's input: the resolved run, in its partial directory, under its key.
        assert_eq!(Path::new(job), cache.path().join("partial").join(key).join("worker.json"));
        let node: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(job).unwrap()).unwrap();
        assert_eq!(node["key"], key);
        assert!(stdout.contains(&key[..12]), "every emitted key is in the plan");
    }
    let s1 = read("stage1.sbatch");
    assert!(s1.contains("#SBATCH --array=0-7\n"), "{s1}");
    assert!(s1.contains("#SBATCH --time=10\n"), "{s1}");
    assert!(s1.contains(&format!("#SBATCH --output={}/logs/stage1-%A_%a.out", dir.display())), "{s1}");
    let exe = Path::new(env!("CARGO_BIN_EXE_gcl-repro"));
    let expected =
        format!("'{}' worker \"$JOB\" --cache-dir '{}' --data-root '/data'", exe.display(), cache.path().display());
    assert!(s1.lines().last() == Some(expected.as_str()), "{s1}");
    assert!(read("stage2.sbatch").contains("#SBATCH --array=0-5\n"));
    let submit = read("submit.sh");
    let i1 = submit.find("stage1.sbatch").unwrap();
    let i2 = submit.find("stage2.sbatch").unwrap();
    // Stage 2's array waits for every array of stage 1 (here one: afterok:<its job>).
    let dep = submit.find("DEP=(--dependency=$AFTER)").unwrap();
    assert!(i1 < dep && dep < i2 && submit.contains("AFTER=$AFTER:$JOB"), "{submit}");
    // The keys file is read by array index in a plain shell, exactly as a task does it.
    let task = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "SLURM_ARRAY_TASK_ID=3; LINE=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" '{}'); IFS=$'\\t' read -r KEY JOB MANIFEST <<< \"$LINE\"; echo \"$KEY|$JOB|$MANIFEST\"",
            dir.join("keys1.txt").display()
        ))
        .output()
        .unwrap();
    let line4 = keys1.lines().nth(3).unwrap().replace('\t', "|");
    assert_eq!(String::from_utf8_lossy(&task.stdout).trim(), line4);
}

#[test]
fn slurm_command_without_key_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_gcl-repro"))
        .arg("plan")
        .arg(good())
        .args(["--slurm-command", "echo hi", "--emit", "slurm"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("has no {key} or {job} placeholder"));
}

/// `plan --seeds N` plans N seeds per cell. Its default Slurm tasks read each run from its job
/// file; a custom task command that finds its run by key re-expands the manifest, so it must pass
/// the same `--seeds N` (`{seeds}`), and is refused without it.
#[test]
fn seeds_flag_is_planned_and_passed_to_slurm_tasks() {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let plan = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gcl-repro"))
            .arg("plan")
            .arg(good())
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["--data-root", "/data", "--seeds", "1", "--emit", "slurm"])
            .arg(out.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let task_line =
        || std::fs::read_to_string(out.path().join("stage1.sbatch")).unwrap().lines().last().unwrap().to_string();
    let run = plan(&[]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    // good.toml lists seeds [1, 2]; --seeds 1 keeps seed 1: half the 16 runs.
    assert!(
        stdout.contains("8 runs (5 stage 1, 3 stage 2)") && !stdout.contains("c10@") && !stdout.contains("c100@"),
        "{stdout}"
    );
    assert!(task_line().contains(" worker \"$JOB\" ") && !task_line().contains("--seeds"), "{}", task_line());
    let run = plan(&["--slurm-command", "{exe} run {manifest} --only {key} --scale {scale} {seeds}"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(task_line().ends_with("--only \"$KEY\" --scale full --seeds 1"), "{}", task_line());
    let run = plan(&["--slurm-command", "{exe} run {manifest} --only {key}"]);
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("has no {seeds} placeholder"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
