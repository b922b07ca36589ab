//! `scripts/bench_train_torch.py`, the PyTorch side of `gcl-repro bench train`, runs both of its
//! pipelines (the released torchvision DataLoader loop and the device-tensor loop) on synthetic
//! data and prints the one JSON line the Rust side reads: every key, positive finite timings,
//! the step count asked for.
//!
//! Needs a Python with torch and numpy (`GCL_PYTHON`, else `$VIRTUAL_ENV/bin/python`, else
//! `.venv/bin/python`), and torchvision + pillow for the released pipeline. The test is named
//! `*_needs_torch` and `#[ignore]`d; `cargo test -- --ignored needs_torch` runs it. Each run is
//! 1 + 3 steps and one evaluation of the 10,000 synthetic test images (tens of seconds on a CPU).
mod common;

use std::process::Command;

use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_train_torch.py");

fn run(pipeline: &str) -> Value {
    let out = Command::new(common::python_or_panic())
        .arg(SCRIPT)
        .args(["--pipeline", pipeline, "--synthetic", "--steps", "3", "--warmup", "1", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{pipeline}: {SCRIPT} failed:\n{}", common::text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{pipeline}: stdout must be exactly one JSON line, got:\n{stdout}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{pipeline}: not JSON ({e}): {}", lines[0]))
}

fn positive(v: &Value, key: &str) -> f64 {
    let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} missing or not a number in {v}"));
    assert!(x.is_finite() && x > 0.0, "{key} = {x} is not a positive finite number in {v}");
    x
}

#[test]
#[ignore = "needs_torch: a Python with torch + numpy ($GCL_PYTHON, $VIRTUAL_ENV or .venv) and torchvision + pillow"]
fn bench_train_script_runs_both_pipelines_needs_torch() {
    for pipeline in ["released", "tensor"] {
        let v = run(pipeline);
        assert_eq!(v["pipeline"], pipeline, "{v}");
        assert_eq!(v["steps"].as_u64(), Some(3), "{v}");
        assert_eq!(v["batch"].as_u64(), Some(64), "{v}");
        let train = positive(&v, "train_seconds");
        let eval = positive(&v, "eval_seconds");
        let ips = positive(&v, "images_per_sec");
        let train_ips = positive(&v, "train_images_per_sec");
        let eval_ips = positive(&v, "eval_images_per_sec");
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs();
        assert!(close(ips, 3.0 * 64.0 / (train + eval)), "images_per_sec inconsistent: {v}");
        assert!(close(train_ips, 3.0 * 64.0 / train), "train_images_per_sec inconsistent: {v}");
        assert!(close(eval_ips, 10_000.0 / eval), "eval_images_per_sec inconsistent: {v}");
        let top1 = v["test_top1"].as_f64().unwrap_or_else(|| panic!("test_top1 missing in {v}"));
        assert!(top1.is_finite() && (0.0..=100.0).contains(&top1), "test_top1 = {top1} in {v}");
        assert_eq!(v["device"], "cpu", "{v}");
        assert!(v["threads"].as_u64().is_some_and(|t| t >= 1), "threads in {v}");
        assert!(v["torch"].as_str().is_some_and(|s| !s.is_empty()), "torch in {v}");
        match pipeline {
            // The released default (`-j/--workers` 0 in cifar_train_backbone.py).
            "released" => assert_eq!(v["workers"].as_u64(), Some(0), "{v}"),
            _ => assert!(v.get("workers").is_none(), "workers is for the released pipeline only: {v}"),
        }
    }
}
