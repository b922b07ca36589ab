//! `gcl-repro compare` through the real binary on tiny real runs: two caches with the same runs,
//! a cache against its `cache export` archive and against its manifest, two report directories,
//! a setting set aside with `--ignore`, the CSV, and the errors for bad inputs.
mod common;

use common::{gcl, ok, text};
use polars::prelude::*;
use std::collections::HashMap;
use std::path::Path;

const MANIFEST: &str = r#"
[manifest]
title = "compare"
seeds = [1, 2]

[defaults]
dataset = { name = "synthetic", classes = 4, max_per_class = 32, imbalance = 4, test_per_class = 8 }
model = { arch = "resnet_small", head = "normed" }
stage1 = { epochs = 1, batch_size = 32, warmup_epochs = 0, milestones = [] }
cpu = { isa = "avx2", threads = 1 }

[columns.synth]
label = "synthetic"

[rows.ce]
label = "CE"
model = { head = "linear" }

[rows.gcl_crt]
label = "GCL + cRT"
stage1 = { loss = { kind = "gcl" }, mixup = true }
stage2 = { epochs = 1, batch_size = 32 }
"#;

/// The rows of the Markdown table under `## {section}`, each as header -> value.
fn rows(markdown: &str, section: &str) -> Vec<HashMap<String, String>> {
    let body = markdown
        .lines()
        .skip_while(|l| !l.starts_with(&format!("## {section}")))
        .skip(1)
        .take_while(|l| !l.starts_with("## "));
    let table: Vec<&str> = body.filter(|l| l.starts_with('|')).collect();
    let split = |l: &str| l.trim_matches('|').split(" | ").map(|s| s.trim().to_string()).collect::<Vec<String>>();
    let Some((header, body)) = table.split_first() else { return vec![] };
    let header = split(header);
    // The line after the header is the |---| rule.
    body.iter().skip(1).map(|l| header.iter().cloned().zip(split(l)).collect()).collect()
}

/// `gcl-repro compare ARGS...` with `cache` as --cache-dir.
fn command(cache: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    let mut cmd = gcl(cache);
    cmd.arg("compare");
    for a in args {
        cmd.arg(a);
    }
    cmd.output().unwrap()
}

fn compare(cache: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    ok(command(cache, args))
}

fn fails(cache: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let out = command(cache, args);
    assert!(!out.status.success(), "compare should have failed: {}", text(&out));
    text(&out)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, dest).unwrap();
        }
    }
}

/// Every matched cell has difference 0, p 1 and identical weights (`weights` unless a side has none).
fn assert_same(markdown: &str, cells: usize, weights: &str) {
    let matched = rows(markdown, "Cells on both sides");
    assert_eq!(matched.len(), cells, "{markdown}");
    for row in &matched {
        assert_eq!(row["B − A"], "+0.00", "{markdown}");
        assert_eq!(row["p"], "1.000", "{markdown}");
        assert_eq!(row["weights"], weights, "{markdown}");
        assert_eq!(row["differs"], "", "{markdown}");
        assert_eq!((row["n A"].as_str(), row["n B"].as_str()), ("2", "2"));
    }
    assert!(!markdown.contains("one side only"), "{markdown}");
}

#[test]
fn same_runs_match_in_caches_archives_manifests_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    std::fs::write(&m, MANIFEST).unwrap();
    let a = dir.path().join("a");
    ok(gcl(&a).arg("run").arg(&m).output().unwrap());
    let b = dir.path().join("b");
    copy_dir(&a, &b);

    // Two caches holding the same runs: stage 1 of CE, of GCL, and GCL's cRT stage 2.
    let md = compare(&a, &[&a, &b]);
    assert!(md.contains(&format!("- A: {} (cache, 6 runs)", a.display())), "{md}");
    assert!(md.contains("- set aside when matching cells: seed\n"), "{md}");
    assert_same(&md, 3, "identical");
    let labels: Vec<String> = rows(&md, "Cells on both sides").iter().map(|r| r["cell"].clone()).collect();
    assert!(
        labels.iter().any(|l| l.contains("stage=2")) && labels.iter().any(|l| l.contains("stage1.loss.kind=ce")),
        "{labels:?}"
    );

    // The cache against its export archive (read in place) and against its manifest.
    let archive = dir.path().join("a.tar.gz");
    ok(gcl(&a).args(["cache", "export"]).arg(&m).arg("--out").arg(&archive).output().unwrap());
    let md = compare(&a, &[&a, &archive]);
    assert!(md.contains("(export archive, 6 runs)"), "{md}");
    assert_same(&md, 3, "identical");
    assert_same(&compare(&a, &[&m, &archive]), 3, "identical");
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let bad = dir.path().join("bad.tar.gz");
    std::fs::write(&bad, bytes).unwrap();
    let err = fails(&a, &[&a, &bad]);
    assert!(err.contains("bad.tar.gz"), "{err}");
    let light = dir.path().join("light.tar.gz");
    ok(gcl(&a).args(["cache", "export", "--without-weights"]).arg(&m).arg("--out").arg(&light).output().unwrap());
    assert_same(&compare(&a, &[&archive, &light]), 3, "n/a");

    // CSV: to a file beside the Markdown, or alone on stdout.
    let csv = dir.path().join("cmp.csv");
    let md = compare(&a, &[&a, &b, &"--csv", &csv]);
    assert!(md.starts_with("# Comparison"), "{md}");
    let frame = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(csv.clone()))
        .unwrap()
        .finish()
        .unwrap();
    let names: Vec<&str> = frame.get_column_names().into_iter().map(|n| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "cell",
            "matched",
            "n_a",
            "mean_a",
            "std_a",
            "best_a",
            "n_b",
            "mean_b",
            "std_b",
            "best_b",
            "difference",
            "t",
            "df",
            "p",
            "weights",
            "differs"
        ]
    );
    assert_eq!(frame.height(), 3);
    assert!(frame.column("difference").unwrap().f64().unwrap().iter().all(|d| d == Some(0.0)));
    assert!(frame.column("matched").unwrap().str().unwrap().iter().all(|m| m == Some("both")));
    assert!(frame.column("weights").unwrap().str().unwrap().iter().all(|m| m == Some("identical")));
    let stdout = compare(&a, &[&a, &b, &"--csv", &"-"]);
    assert!(stdout.starts_with("cell,matched,n_a,"), "{stdout}");
    assert_eq!(stdout.lines().count(), 4, "{stdout}");

    // Two report directories: cells by manifest and row.column (CE stage 1, GCL + cRT stage 2).
    let report = dir.path().join("report");
    ok(gcl(&a).arg("report").arg(&m).arg("--out").arg(&report).output().unwrap());
    let md = compare(&a, &[&report, &report]);
    assert_same(&md, 2, "n/a");
    assert!(md.contains("cell=gcl_crt.synth"), "{md}");
    let err = fails(&a, &[&report, &a]);
    assert!(err.contains("compares only with another report directory"), "{err}");

    // Bad inputs: one line naming the path.
    let nothing = dir.path().join("nothing");
    let err = fails(&a, &[&nothing, &a]);
    assert!(err.contains(&format!("{}: no such file or directory", nothing.display())), "{err}");
    let err = fails(&a, &[&a, &csv]);
    assert!(err.contains("cmp.csv: this file is not a run cache"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = fails(&a, &[&empty, &a]);
    assert!(err.contains("empty: this directory is not a run cache"), "{err}");
    let victim = std::fs::read_dir(b.join("runs")).unwrap().next().unwrap().unwrap().path().join("metrics.json");
    std::fs::write(&victim, "{ not json").unwrap();
    let err = fails(&a, &[&a, &b]);
    assert!(err.contains(&format!("{}: not a readable result", victim.display())), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_setting_set_aside_with_ignore_matches_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let one_row = MANIFEST.split("[rows.gcl_crt]").next().unwrap().to_string();
    let m1 = dir.path().join("one.toml");
    std::fs::write(&m1, &one_row).unwrap();
    let m2 = dir.path().join("two.toml");
    std::fs::write(&m2, one_row.replace("threads = 1", "threads = 2")).unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(gcl(&a).arg("run").arg(&m1).output().unwrap());
    ok(gcl(&b).arg("run").arg(&m2).output().unwrap());

    // Not matched: each side's cell is alone, and the nearest cell names the difference.
    let md = compare(&a, &[&a, &b]);
    assert!(rows(&md, "Cells on both sides").is_empty(), "{md}");
    let alone = rows(&md, "Cells on one side only");
    assert_eq!(alone.len(), 2, "{md}");
    assert_eq!(alone[0]["differs"], "nearest in B: cpu.threads: 1 -> 2", "{md}");
    assert_eq!(alone[1]["differs"], "nearest in A: cpu.threads: 1 -> 2", "{md}");

    // Set aside: one matched cell, the setting named, the statistics computed.
    let md = compare(&a, &[&a, &b, &"--ignore", &"cpu"]);
    assert!(md.contains("- set aside when matching cells: seed, cpu (`--ignore`)"), "{md}");
    let matched = rows(&md, "Cells on both sides");
    assert_eq!(matched.len(), 1, "{md}");
    let row = &matched[0];
    assert_eq!(row["differs"], "cpu.threads: 1 -> 2", "{md}");
    assert_eq!((row["n A"].as_str(), row["n B"].as_str()), ("2", "2"));
    assert!(["identical", "differ (1 of 2)", "differ (2 of 2)"].contains(&row["weights"].as_str()), "{md}");
    assert!(!md.contains("one side only"), "{md}");

    let err = fails(&a, &[&a, &b, &"--ignore", &"cpus"]);
    assert!(err.contains("--ignore cpus") && err.contains("did you mean `cpu`"), "{err}");
}
