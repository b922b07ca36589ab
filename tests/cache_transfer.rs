//! Results travel: `cache export` / `cache import` round trip (with and without weights), a
//! corrupted archive and a conflicting key; plus the messages of `cache verify` and `plan`.
mod common;

use common::{gcl, ok, text};
use std::path::{Path, PathBuf};
use std::process::Output;

/// One GCL + cRT cell and a t-SNE figure, pinned to AVX2 kernels and one thread.
fn manifest() -> String {
    let defaults = r#"stage1 = { epochs = 1, batch_size = 32, warmup_epochs = 0, milestones = [], loss = { kind = "gcl" }, mixup = true }
cpu = { isa = "avx2", threads = 1 }"#;
    let rest = r#"[rows.gcl_crt]
label = "GCL + cRT"
stage2 = { epochs = 1, batch_size = 32 }

[figures.tsne]
kind = "tsne"
title = "t-SNE"
cells = ["gcl_crt.synth"]
splits = ["test"]
stage = 1
"#;
    common::synthetic_manifest(2, 32, defaults, rest)
}

fn fail(out: Output) -> String {
    assert!(!out.status.success(), "command should have failed: {}", text(&out));
    text(&out)
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn export_import_round_trip_corruption_conflict_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    std::fs::write(&m, manifest()).unwrap();
    let src = dir.path().join("src-cache");

    // Before any run: plan says it has no measurement on this device.
    let plan = ok(gcl(&src).arg("plan").arg(&m).output().unwrap());
    assert!(plan.contains("no time estimate: this cache has no finished run"), "{plan}");
    assert!(!plan.contains("GPU"), "{plan}");

    ok(gcl(&src).arg("run").arg(&m).output().unwrap());
    ok(gcl(&src).arg("report").arg(&m).arg("--out").arg(dir.path().join("report-src")).output().unwrap());
    // Now it estimates from the measured throughput of this CPU (nothing left to train, so force a new seed).
    let m2 = dir.path().join("m2.toml");
    std::fs::write(&m2, manifest().replace("seeds = [2]", "seeds = [2, 9]")).unwrap();
    let plan = ok(gcl(&src).arg("plan").arg(&m2).output().unwrap());
    assert!(plan.contains(&format!("on {}", gcl_repro::device::cpu_name())), "{plan}");
    assert!(plan.contains("images/s of this cache's finished runs"), "{plan}");

    // Round trip with weights: identical runs and derived t-SNE maps.
    let archive = dir.path().join("runs.tar.gz");
    let said = ok(gcl(&src).args(["cache", "export"]).arg(&m).arg("--out").arg(&archive).output().unwrap());
    assert!(said.contains("exported 2 run(s)"), "{said}");
    let dst = dir.path().join("dst-cache");
    let said = ok(gcl(&dst).args(["cache", "import"]).arg(&archive).output().unwrap());
    assert!(said.contains("imported 2 run(s), 0 already present"), "{said}");
    assert_eq!(tree(&src.join("runs")), tree(&dst.join("runs")));
    assert_eq!(tree(&src.join("derived")), tree(&dst.join("derived")));
    ok(gcl(&dst).args(["cache", "verify"]).output().unwrap());
    // A second import is a no-op.
    let said = ok(gcl(&dst).args(["cache", "import"]).arg(&archive).output().unwrap());
    assert!(said.contains("imported 0 run(s), 2 already present"), "{said}");

    // Without weights: no safetensors travel, verify still passes, the report rebuilds from
    // the cached t-SNE maps.
    let light = dir.path().join("light.tar.gz");
    ok(gcl(&src).args(["cache", "export", "--without-weights"]).arg(&m).arg("--out").arg(&light).output().unwrap());
    assert!(std::fs::metadata(&light).unwrap().len() < std::fs::metadata(&archive).unwrap().len());
    let thin = dir.path().join("thin-cache");
    ok(gcl(&thin).args(["cache", "import"]).arg(&light).output().unwrap());
    assert!(tree(&thin.join("runs")).iter().all(|(p, _)| p.extension().is_none_or(|e| e != "safetensors")));
    ok(gcl(&thin).args(["cache", "verify"]).output().unwrap());
    let report =
        ok(gcl(&thin).arg("report").arg(&m).arg("--out").arg(dir.path().join("report-thin")).output().unwrap());
    assert!(!report.contains("t-SNE of"), "the t-SNE was recomputed instead of read from the archive: {report}");
    assert!(dir.path().join("report-thin/REPORT.md").is_file());

    // A corrupted archive: one flipped byte, clear error, nothing imported, no scratch left.
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let bad = dir.path().join("bad.tar.gz");
    std::fs::write(&bad, bytes).unwrap();
    let fresh = dir.path().join("fresh-cache");
    let err = fail(gcl(&fresh).args(["cache", "import"]).arg(&bad).output().unwrap());
    assert!(err.contains("bad.tar.gz"), "{err}");
    assert!(std::fs::read_dir(fresh.join("runs")).unwrap().next().is_none(), "a corrupted archive imported something");
    let leftovers: Vec<_> = std::fs::read_dir(&fresh)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("import-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A conflicting key: the destination holds another result under one of the keys (its
    // metrics and record edited consistently, as a different machine would have made it).
    let run = std::fs::read_dir(dst.join("runs")).unwrap().next().unwrap().unwrap().path();
    let metrics = run.join("metrics.json");
    let edited = std::fs::read_to_string(&metrics).unwrap().replacen("\"best_top1\": ", "\"best_top1\": 1", 1);
    std::fs::write(&metrics, &edited).unwrap();
    let hashes: String = std::fs::read_to_string(run.join("files.sha256"))
        .unwrap()
        .lines()
        .map(|l| {
            let (_, name) = l.split_once("  ").unwrap();
            format!("{}  {name}\n", gcl_repro::cache::store::sha256_file(&run.join(name)).unwrap())
        })
        .collect();
    std::fs::write(run.join("files.sha256"), hashes).unwrap();
    let before = tree(&dst.join("runs"));
    let err = fail(gcl(&dst).args(["cache", "import"]).arg(&archive).output().unwrap());
    assert!(
        err.contains("differs from the run cached under the same key") && err.contains("nothing was imported"),
        "{err}"
    );
    assert_eq!(before, tree(&dst.join("runs")), "a refused import changed the cache");

    // cache verify names the changed file and says its SHA-256 differs.
    let model = std::fs::read_dir(src.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path().join("model.safetensors"))
        .find(|p| p.is_file())
        .unwrap();
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&model, bytes).unwrap();
    let out = gcl(&src).args(["cache", "verify"]).output().unwrap();
    let said = fail(out);
    assert!(said.contains("model.safetensors: its SHA-256 differs from the one recorded in files.sha256"), "{said}");
}
