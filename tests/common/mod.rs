//! What several test files share.
#![allow(dead_code)]
use std::path::PathBuf;
use std::process::Command;

/// The first Python that imports torch and numpy (`GCL_PYTHON`, else `$VIRTUAL_ENV/bin/python`,
/// else `.venv/bin/python` in the crate root), or a message naming every one tried.
pub fn python() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("GCL_PYTHON") {
        candidates.push(p.into());
    }
    if let Ok(v) = std::env::var("VIRTUAL_ENV") {
        candidates.push(PathBuf::from(v).join("bin/python"));
    }
    candidates.push(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python")));
    let tried = candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    candidates
        .into_iter()
        .find(|p| {
            Command::new(p).args(["-c", "import torch, numpy"]).output().map(|o| o.status.success()).unwrap_or(false)
        })
        .ok_or_else(|| format!("none of {tried} imports torch and numpy"))
}

/// `python()`, or a panic saying how to get one (for tests run explicitly with `--ignored`).
pub fn python_or_panic() -> PathBuf {
    python().unwrap_or_else(|why| {
        panic!("needs a Python with torch and numpy: {why} (set GCL_PYTHON, or run `make setup`)")
    })
}

/// Run `python script args...`; panics with its stderr if it fails.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(python_or_panic()).arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `gcl-repro` binary on CPU with its cache in `cache` and no data root (synthetic data
/// needs none).
pub fn gcl(cache: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gcl-repro"));
    c.arg("--cache-dir").arg(cache).args(["--device", "cpu"]).env("GCL_DATA_ROOT", "/nonexistent-data-root");
    c
}

/// stdout and stderr of a command.
pub fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The output of a command that must succeed.
pub fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "command failed: {}", text(&out));
    text(&out)
}

/// A manifest on the built-in synthetic set (4 classes, imbalance 4, `max_per_class` training
/// images in the largest class and a quarter as many test images per class), ResNet-small with
/// a cosine head, one column `synth`, seed `seed`. `defaults` are further lines of [defaults]
/// (`stage1 = ...`, `cpu = ...`); `rest` follows the column (rows, figures).
pub fn synthetic_manifest(seed: u32, max_per_class: usize, defaults: &str, rest: &str) -> String {
    let test_per_class = max_per_class / 4;
    format!(
        r#"[manifest]
title = "synthetic test"
seeds = [{seed}]

[defaults]
dataset = {{ name = "synthetic", classes = 4, max_per_class = {max_per_class}, imbalance = 4, test_per_class = {test_per_class} }}
model = {{ arch = "resnet_small", head = "normed" }}
{defaults}

[columns.synth]
label = "synthetic"

{rest}"#
    )
}

/// A run on the built-in synthetic set (4 classes, the largest with `max_per_class` training
/// images, `imbalance` between the largest and the smallest, `test_per_class` test images
/// each) with the small CIFAR ResNet; every other setting at its default.
pub fn synthetic_run(
    max_per_class: usize,
    imbalance: f64,
    test_per_class: usize,
) -> gcl_repro::training::spec::RunSpec {
    use gcl_repro::data::spec::{DatasetName, DatasetSpec};
    use gcl_repro::models::spec::Arch;
    use gcl_repro::training::spec::RunSpec;
    let mut s = RunSpec {
        dataset: DatasetSpec {
            name: DatasetName::Synthetic,
            classes: 4,
            max_per_class,
            imbalance,
            test_per_class,
            ..DatasetSpec::default()
        },
        ..RunSpec::default()
    };
    s.model.arch = Arch::ResnetSmall;
    s
}
