//! Damaged or mismatched files on disk are one error naming the file and the way out, never a
//! panic: a run's checkpoint (wrong shape, truncated, garbage, an optimiser state missing a
//! buffer or holding a wrong one), a stage-1 run's weights under stage 2, a cached run's
//! metrics.json (for every command that reads it), and `cache import` of a truncated archive or
//! one with a bad member (which leaves nothing in the cache).
mod common;

use common::{gcl, ok, text};
use gcl_repro::losses::Ce;
use gcl_repro::losses::LossSpec;
use gcl_repro::models::spec::Head;
use gcl_repro::training::spec::{OptimSpec, RunSpec, Stage2Spec};
use gcl_repro::training::{self, RunEnv, Silent};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;
use tch::{Device, Tensor};

/// A shared, fixed place for what the tests below train once (cargo's scratch for tests).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("corrupt_files").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The output of a command that must fail without a panic.
fn fail(out: Output) -> String {
    let said = text(&out);
    assert!(!out.status.success(), "command should have failed: {said}");
    assert!(!said.contains("panicked"), "{said}");
    said
}

// ---- checkpoints (library calls) ------------------------------------------------------------

fn spec(epochs: usize) -> RunSpec {
    let mut s = common::synthetic_run(32, 4.0, 8);
    s.model.head = Head::Linear;
    s.stage1.loss = LossSpec::Ce(Ce::default());
    s.stage1.optim.epochs = epochs;
    s.stage1.optim.batch_size = 32;
    s.stage1.optim.warmup_epochs = 0;
    s.stage1.optim.milestones = vec![];
    s.cpu.threads = Some(1);
    s
}

fn data() -> gcl_repro::data::Data {
    gcl_repro::data::load(&spec(1).dataset, Path::new("/nonexistent")).unwrap().into()
}

/// A stage-1 run trained for one epoch: its directory holds `checkpoint.safetensors` (with
/// momentum buffers) and `model.safetensors`.
fn stage1_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("stage1");
        let stop = AtomicBool::new(false);
        training::run_stage1(
            &spec(1),
            &data(),
            "s1",
            &RunEnv { device: Device::Cpu, dir: dir.clone(), stop: &stop, observer: &Silent },
        )
        .unwrap();
        dir
    })
}

/// A run directory holding the trained checkpoint after `damage`; the error of resuming it.
fn resume_after(damage: impl FnOnce(&Path)) -> (PathBuf, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join(training::CHECKPOINT);
    std::fs::copy(stage1_dir().join(training::CHECKPOINT), &ck).unwrap();
    damage(&ck);
    let stop = AtomicBool::new(false);
    let env = RunEnv { device: Device::Cpu, dir: dir.path().to_path_buf(), stop: &stop, observer: &Silent };
    let err = training::run_stage1(&spec(2), &data(), "s1", &env).expect_err("a damaged checkpoint must not resume");
    (ck, format!("{err:#}"), dir)
}

/// Rewrite the safetensors file `path` with `edit` applied to its tensors.
fn edit_tensors(path: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let mut named = Tensor::read_safetensors(path).unwrap();
    edit(&mut named);
    Tensor::write_safetensors(&named, path).unwrap();
}

/// Give tensor `name` of the file at `path` another shape (one more row); what loading it
/// should then say.
fn reshape(path: &Path, name: &str) -> String {
    let mut said = String::new();
    edit_tensors(path, |named| {
        let slot = named.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no tensor {name}"));
        let old = slot.1.size();
        let mut new = old.clone();
        new[0] += 1;
        slot.1 = Tensor::zeros(new.as_slice(), (slot.1.kind(), Device::Cpu));
        said = format!("tensor `{name}` has shape {new:?}, the model expects {old:?}");
    });
    said
}

fn assert_names_checkpoint(ck: &Path, err: &str, problem: &str) {
    assert!(err.contains(&ck.display().to_string()), "the error does not name the file: {err}");
    assert!(err.contains(problem), "the error does not say `{problem}`: {err}");
    let fix = format!("delete the run's partial directory {} to restart it", ck.parent().unwrap().display());
    assert!(err.contains(&fix), "the error does not say how to start over: {err}");
}

#[test]
fn a_checkpoint_tensor_of_another_shape_is_an_error() {
    let mut problem = String::new();
    let (ck, err, _dir) = resume_after(|ck| problem = reshape(ck, "head.linear.weight"));
    assert_names_checkpoint(&ck, &err, &problem);
}

#[test]
fn a_truncated_or_garbage_checkpoint_is_an_error() {
    let (ck, err, _dir) = resume_after(|ck| {
        let bytes = std::fs::read(ck).unwrap();
        std::fs::write(ck, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert_names_checkpoint(&ck, &err, "is not a readable safetensors file");
    let (ck, err, _dir) = resume_after(|ck| std::fs::write(ck, b"not a checkpoint at all").unwrap());
    assert_names_checkpoint(&ck, &err, "is not a readable safetensors file");
    let (ck, err, _dir) = resume_after(|ck| edit_tensors(ck, |named| named.retain(|(n, _)| n != "__state_json__")));
    assert_names_checkpoint(&ck, &err, "has no `__state_json__` record");
}

/// Every parameter has a momentum buffer after one epoch; `momentum.0` is the first's.
#[test]
fn an_optimiser_state_with_a_missing_or_wrong_buffer_is_an_error() {
    let (ck, err, _dir) = resume_after(|ck| edit_tensors(ck, |named| named.retain(|(n, _)| n != "momentum.0")));
    assert_names_checkpoint(&ck, &err, "it has no tensor `momentum.0`");
    let mut problem = String::new();
    let (ck, err, _dir) = resume_after(|ck| problem = reshape(ck, "momentum.0"));
    assert_names_checkpoint(&ck, &err, &problem);
    let (ck, err, _dir) = resume_after(|ck| {
        edit_tensors(ck, |named| {
            let m0 = named.iter().find(|(n, _)| n == "momentum.0").unwrap().1.copy();
            named.push(("momentum.9999".into(), m0));
        })
    });
    assert_names_checkpoint(&ck, &err, "tensor `momentum.9999` is not a momentum buffer its optimiser state lists");
}

/// Stage 2 loads its stage-1 run's `model.safetensors` from the cache: damaged or written for
/// another network, it is one error naming it and how to re-train that run.
#[test]
fn stage2_on_stage1_weights_that_do_not_fit_is_an_error() {
    let mut s2 = spec(1);
    s2.stage2 = Some(Stage2Spec {
        optim: OptimSpec { epochs: 1, batch_size: 32, ..Stage2Spec::default().optim },
        ..Stage2Spec::default()
    });
    // Each damages the weights and returns what the error should say.
    let damages: [fn(&Path) -> String; 2] = [
        |p| reshape(p, "head.linear.bias"),
        |p| {
            std::fs::write(p, b"{}").unwrap();
            "is not a readable safetensors file".into()
        },
    ];
    for damage in damages {
        let parent = tempfile::tempdir().unwrap();
        let weights = parent.path().join(training::FINAL_MODEL);
        std::fs::copy(stage1_dir().join(training::FINAL_MODEL), &weights).unwrap();
        let problem = damage(&weights);
        let (dir, stop) = (tempfile::tempdir().unwrap(), AtomicBool::new(false));
        let env = RunEnv { device: Device::Cpu, dir: dir.path().to_path_buf(), stop: &stop, observer: &Silent };
        let err =
            format!("{:#}", training::run_stage2(&s2, &data(), "s2", "parentkey", parent.path(), &env).unwrap_err());
        assert!(err.contains(&weights.display().to_string()) && err.contains(&problem), "{err}");
        assert!(err.contains("--force --only parentkey"), "{err}");
    }
}

// ---- the cache and archives (the binary) ----------------------------------------------------

/// One tiny run trained through the binary, and the archive `cache export` made of it.
struct Cached {
    manifest: PathBuf,
    cache: PathBuf,
    archive: PathBuf,
}

fn cached() -> &'static Cached {
    static CACHED: OnceLock<Cached> = OnceLock::new();
    CACHED.get_or_init(|| {
        let dir = scratch("cache");
        let manifest = dir.join("m.toml");
        let stage1 =
            "stage1 = { epochs = 1, batch_size = 32, warmup_epochs = 0, milestones = [] }\ncpu = { threads = 1 }";
        std::fs::write(
            &manifest,
            common::synthetic_manifest(4, 32, stage1, "[rows.ce]\nlabel = \"CE\"\nmodel = { head = \"linear\" }\n"),
        )
        .unwrap();
        let (cache, archive) = (dir.join("cache"), dir.join("runs.tar.gz"));
        ok(gcl(&cache).arg("run").arg(&manifest).output().unwrap());
        ok(gcl(&cache).args(["cache", "export"]).arg(&manifest).arg("--out").arg(&archive).output().unwrap());
        Cached { manifest, cache, archive }
    })
}

/// The one run directory of a cache.
fn the_run(cache: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(cache.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

/// `cache ls`, `cache show`, `cache export` and `report` all read metrics.json: each names it.
#[test]
fn a_corrupt_metrics_json_is_an_error_naming_it() {
    let c = cached();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let source = the_run(&c.cache);
    let run = cache.join("runs").join(source.file_name().unwrap());
    std::fs::create_dir_all(&run).unwrap();
    for e in std::fs::read_dir(&source).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, run.join(p.file_name().unwrap())).unwrap();
    }
    let metrics = run.join("metrics.json");
    std::fs::write(&metrics, "{\"key\": \"truncated").unwrap();
    let key = run.file_name().unwrap().to_string_lossy().into_owned();
    let commands: [Vec<std::ffi::OsString>; 4] = [
        vec!["cache".into(), "ls".into()],
        vec!["cache".into(), "show".into(), key[..12].into()],
        vec![
            "cache".into(),
            "export".into(),
            c.manifest.clone().into(),
            "--out".into(),
            dir.path().join("x.tar.gz").into(),
        ],
        vec!["report".into(), c.manifest.clone().into(), "--out".into(), dir.path().join("report").into()],
    ];
    for args in commands {
        let err = fail(gcl(&cache).args(&args).output().unwrap());
        assert!(err.contains(&format!("{} is not a valid result", metrics.display())), "{args:?}: {err}");
        assert!(
            err.contains("cache verify") && err.contains(&format!("--force --only {}", &key[..12])),
            "{args:?}: {err}"
        );
    }
}

/// `cache import` of `archive` into a fresh cache fails naming the archive, imports nothing and
/// leaves no scratch directory behind; the error.
fn import_fails(archive: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let err = fail(gcl(&cache).args(["cache", "import"]).arg(archive).output().unwrap());
    assert!(err.contains(&archive.display().to_string()) && err.contains("nothing was imported"), "{err}");
    let left: Vec<_> =
        std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(
        left.iter().all(|n| ["runs", "partial", "locks", "derived"].contains(&n.as_str())),
        "left behind: {left:?}"
    );
    assert_eq!(std::fs::read_dir(cache.join("runs")).unwrap().count(), 0, "something was imported");
    err
}

#[test]
fn a_truncated_archive_imports_nothing() {
    let bytes = std::fs::read(&cached().archive).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [("half.tar.gz", bytes.len() / 2), ("header.tar.gz", 20)] {
        let cut = dir.path().join(name);
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let err = import_fails(&cut);
        assert!(err.contains("is not a readable gcl-repro export (truncated or damaged?)"), "{err}");
    }
}

/// The archive's members, rewritten by `edit` (name, bytes) into a new archive at `out`.
fn rewrite_archive(from: &Path, out: &Path, edit: impl Fn(&str, Vec<u8>) -> (String, Vec<u8>)) {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(from).unwrap()));
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(out).unwrap(),
        flate2::Compression::fast(),
    ));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        let (name, bytes) = edit(&name, bytes);
        // Written by hand: tar's own setters refuse `..` (as an attacker's tool would not).
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, bytes.as_slice()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

#[test]
fn an_archive_with_a_bad_member_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = &cached().archive;
    // A member whose bytes differ from what the archive's table of contents records.
    let altered = dir.path().join("altered.tar.gz");
    rewrite_archive(good, &altered, |name, mut bytes| {
        if name.ends_with("/log.jsonl") {
            bytes.extend_from_slice(b"{}\n");
        }
        (name.to_string(), bytes)
    });
    let err = import_fails(&altered);
    assert!(err.contains("log.jsonl: its SHA-256 differs from the one the archive records"), "{err}");
    // A member that would be written outside the cache.
    let escaping = dir.path().join("escaping.tar.gz");
    rewrite_archive(good, &escaping, |name, bytes| {
        (if name.ends_with("/log.jsonl") { "../escaped.txt".into() } else { name.to_string() }, bytes)
    });
    let err = import_fails(&escaping);
    assert!(err.contains("refusing entry `../escaped.txt`"), "{err}");
    // A table of contents that lists a run the archive does not hold.
    let phantom = dir.path().join("phantom.tar.gz");
    rewrite_archive(good, &phantom, |name, bytes| {
        if name != "gcl-export.json" {
            return (name.to_string(), bytes);
        }
        let mut toc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        toc["runs"].as_array_mut().unwrap().push("../../elsewhere".into());
        (name.to_string(), serde_json::to_vec(&toc).unwrap())
    });
    let err = import_fails(&phantom);
    assert!(err.contains("run `../../elsewhere` is listed in gcl-export.json but has no directory"), "{err}");
}
