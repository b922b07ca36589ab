//! Same key, same numbers: a pinned CPU run gives identical metrics whatever kernel level the
//! surrounding environment asks for, and a golden run guards the engine version.
//!
//! Both train a tiny run through the real binary (`gcl-repro run`), each in its own process, so
//! that libtorch's kernel level is chosen afresh every time.
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tiny run (synthetic set, ResNet-small, GCL + mixup stage 1 and a CBEN cRT stage 2) pinned
/// to AVX2 kernels and one thread.
const MANIFEST: &str = r#"
[manifest]
title = "numerics"
seeds = [3]

[defaults]
dataset = { name = "synthetic", classes = 4, max_per_class = 48, imbalance = 4, test_per_class = 12 }
model = { arch = "resnet_small", head = "normed" }
stage1 = { epochs = 2, batch_size = 32, warmup_epochs = 1, milestones = [], loss = { kind = "gcl" }, mixup = true }
stage2 = { epochs = 1, batch_size = 32 }
cpu = { isa = "avx2", threads = 1 }

[columns.synth]
label = "synthetic"

[rows.gcl]
label = "GCL + CBEN cRT"
"#;

/// The golden of `ENGINE_VERSION`: SHA-256 over the final weights (stage 1 and 2, raw little-
/// endian bytes by sorted variable name) and the per-epoch metrics of the run above. It changes
/// exactly when the engine's numerics change. One per CPU family it was recorded on: pinned to
/// AVX2, oneDNN still picks other kernels on Intel than on AMD (the run's bits differ there).
const GOLDEN: (u32, &[(&str, &str)]) = (
    6,
    &[
        ("AMD EPYC", "929f0fad6a514cd1a6073eb659335dcf4bfd2df0df108c91c591b5bab1222dc3"),
        ("Intel Xeon @ 2.80GHz", "865d754ec4b2b3c018768cb06c6a295a953d420a1e1b2b272545e3904263afeb"),
    ],
);

fn pinned_run(ambient: Option<&str>) -> (String, Vec<String>) {
    run_with(MANIFEST, ambient)
}

fn run_with(manifest_text: &str, ambient: Option<&str>) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.toml");
    std::fs::write(&manifest, manifest_text).unwrap();
    let cache = dir.path().join("cache");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gcl-repro"));
    cmd.arg("--cache-dir")
        .arg(&cache)
        .args(["--device", "cpu", "run"])
        .arg(&manifest)
        .env("GCL_DATA_ROOT", "/nonexistent");
    cmd.env_remove("ATEN_CPU_CAPABILITY").env_remove("DNNL_MAX_CPU_ISA");
    if let Some(level) = ambient {
        cmd.env("ATEN_CPU_CAPABILITY", level);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    fingerprint(&cache)
}

/// (SHA-256 of weights and metrics, the provenance lines of the runs' CPU path).
fn fingerprint(cache: &Path) -> (String, Vec<String>) {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(cache.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    runs.sort_by_key(|p| {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p.join("metrics.json")).unwrap()).unwrap();
        m["stage"].as_u64().unwrap()
    });
    assert_eq!(runs.len(), 2);
    let mut h = Sha256::new();
    let mut numerics = Vec::new();
    for run in &runs {
        let mut weights = tch::Tensor::read_safetensors(run.join("model.safetensors")).unwrap();
        weights.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in weights {
            h.update(name.as_bytes());
            let t = t.contiguous().view([-1]).to_kind(tch::Kind::Float);
            let v = Vec::<f32>::try_from(&t).unwrap();
            for x in v {
                h.update(x.to_le_bytes());
            }
        }
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
        for e in m["epochs"].as_array().unwrap() {
            h.update(format!("{} {} {} {}", e["epoch"], e["train_loss"], e["train_acc"], e["test_top1"]).as_bytes());
        }
        numerics.push(m["provenance"]["cpu_numerics"].as_str().unwrap().to_string());
    }
    (hex::encode(h.finalize()), numerics)
}

#[test]
fn a_pinned_run_gives_the_same_numbers_under_every_ambient_kernel_level() {
    let levels = gcl_repro::numerics::supported();
    let mut results = Vec::new();
    for ambient in [None].into_iter().chain(levels.iter().map(|l| Some(gcl_repro::numerics::env_values(*l).0))) {
        let (hash, numerics) = pinned_run(ambient);
        for n in &numerics {
            assert!(
                n.starts_with("AVX2 kernels, oneDNN max ISA AVX2, 1 threads"),
                "ambient {ambient:?}: the pin did not take effect: {n}"
            );
        }
        eprintln!("ambient ATEN_CPU_CAPABILITY={ambient:?}: {hash}");
        results.push(hash);
    }
    assert!(results.len() >= 3, "this machine forces at least default and avx2");
    assert!(results.iter().all(|h| *h == results[0]), "{results:?}");

    // Without the pin the same run does depend on the level (so the check above can fail).
    let unpinned = MANIFEST.replace("cpu = { isa = \"avx2\", threads = 1 }", "cpu = { threads = 1 }");
    let (default, n1) = run_with(&unpinned, Some("default"));
    let (avx2, n2) = run_with(&unpinned, Some("avx2"));
    assert!(n1[0].starts_with("DEFAULT kernels") && n2[0].starts_with("AVX2 kernels"), "{n1:?} {n2:?}");
    assert_ne!(default, avx2, "unpinned runs at two kernel levels gave identical bits");

    // The golden: the engine's numerics are those of ENGINE_VERSION.
    let (version, goldens) = GOLDEN;
    let golden = goldens.iter().map(|(_, h)| *h).find(|h| *h == results[0]).unwrap_or(goldens[0].1);
    assert_eq!(
        (version, golden),
        (gcl_repro::ENGINE_VERSION, results[0].as_str()),
        "the training numerics changed: bump ENGINE_VERSION and update the golden in tests/numerics.rs \
         (GOLDEN = ({}, [(\"<this CPU>\", \"{}\")])), so that results cached by the old engine are never served as current",
        gcl_repro::ENGINE_VERSION + u32::from(version == gcl_repro::ENGINE_VERSION),
        results[0]
    );
}

#[test]
fn a_level_the_cpu_lacks_is_one_clear_error() {
    let levels = gcl_repro::numerics::supported();
    if levels.contains(&gcl_repro::numerics::CpuIsa::Avx512) {
        return; // nothing to refuse on this CPU; the check is the same code path as above
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.toml");
    std::fs::write(&manifest, MANIFEST.replace("isa = \"avx2\"", "isa = \"avx512\"")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gcl-repro"))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["--device", "cpu", "run"])
        .arg(&manifest)
        .env("GCL_DATA_ROOT", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("pins cpu.isa = avx512 but this CPU") && text.contains("lacks it"), "{text}");
    // Plain text in a pipe: no ANSI colour codes in the log lines.
    assert!(!text.contains('\u{1b}'), "colour codes in piped stderr: {text:?}");
}

#[test]
fn runs_pinned_to_different_levels_share_one_invocation() {
    // An unpinned row fixes this process's kernels first; the row pinned to `default` must then
    // train in a child process at its own level, not fail or silently run at the other level.
    let text = MANIFEST
        .replace("cpu = { isa = \"avx2\", threads = 1 }", "cpu = { threads = 1 }")
        .replace("stage2 = { epochs = 1, batch_size = 32 }\n", "")
        + "\n[rows.pinned]\nlabel = \"pinned to default\"\ncpu = { isa = \"default\", threads = 1 }\nstage1 = { loss = { kind = \"ce\" }, mixup = false }\n";
    let text = text.replace("[rows.gcl]", "[rows.gcl]\nstage1 = { epochs = 1 }");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.toml");
    std::fs::write(&manifest, text).unwrap();
    let cache = dir.path().join("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_gcl-repro"))
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--device", "cpu", "run"])
        .arg(&manifest)
        .env("GCL_DATA_ROOT", "/nonexistent")
        .env("ATEN_CPU_CAPABILITY", "avx2")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("runs: 2 trained"), "{said}");
    let mut seen: Vec<String> = std::fs::read_dir(cache.join("runs"))
        .unwrap()
        .map(|e| {
            let m: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(e.unwrap().path().join("metrics.json")).unwrap())
                    .unwrap();
            m["provenance"]["cpu_numerics"].as_str().unwrap().split(" kernels").next().unwrap().to_string()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, vec!["AVX2", "DEFAULT"]);
}
