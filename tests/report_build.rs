//! `build_report` end to end on a real cache: a tiny synthetic manifest is trained with the
//! runner (3 short runs on the CPU), then the report is built twice and its files checked
//! against the stored metrics. Set GCL_KEEP_REPORT=DIR to keep the output for a look.
mod common;

use gcl_repro::cache::Cache;
use gcl_repro::manifest;
use gcl_repro::pipeline::{runner, RunGraph};
use gcl_repro::report::build_report;
use gcl_repro::training::spec::Scale;
use polars::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const TINY: &str = r#"
[manifest]
name = "tiny"
title = "Tiny synthetic LT set"
seeds = [3]

[defaults]
dataset = { name = "synthetic", classes = 4, max_per_class = 48, imbalance = 4, test_per_class = 12 }
model = { arch = "resnet_small" }
stage1 = { epochs = 2, warmup_epochs = 1, milestones = [], batch_size = 32 }

[columns.syn]
label = "Synthetic γ=4"

[rows.ce]
label = "CE loss"
model = { head = "linear" }

[rows.gcl]
label = "GCL"
stage1 = { loss = { kind = "gcl" } }

[rows.gcl_crt]
label = "GCL + cRT"
stage1 = { loss = { kind = "gcl" } }
stage2 = { epochs = 1, batch_size = 32 }

# Never trained by this test: its cell says "not run" and its figure waits.
[rows.ce_long]
label = "CE, 3 epochs"
model = { head = "linear" }
stage1 = { epochs = 3 }

[figures.tsne]
kind = "tsne"
title = "t-SNE, CE vs GCL"
cells = ["ce.syn", "gcl.syn"]
splits = ["train", "test"]
max_points = 100

[figures.tsne_two]
kind = "tsne"
title = "t-SNE of classes 0 and 3"
cells = ["gcl_crt.syn"]
splits = ["test"]
classes = [0, 3]

[figures.curves]
kind = "curves"
title = "Curves of GCL + cRT"
cells = ["gcl_crt.syn"]
stage = 2

[figures.per_class]
kind = "per_class"
title = "Per-class accuracy"
cells = ["ce.syn", "gcl.syn"]

[figures.long]
kind = "curves"
title = "Curves of the long run"
cells = ["ce_long.syn"]
"#;

/// Another data set, never trained: every cell is "not run".
const EMPTY: &str = r#"
[manifest]
name = "empty"
title = "Nothing trained yet"

[defaults]
dataset = { name = "synthetic", classes = 4, max_per_class = 48, imbalance = 8, test_per_class = 12 }
model = { arch = "resnet_small" }
stage1 = { epochs = 2 }

[columns.syn8]
label = "Synthetic γ=8"

[rows.ce]
label = "CE loss"

[figures.per_class]
kind = "per_class"
cells = ["ce.syn8"]
"#;

/// The run graph of one manifest at full scale.
fn graph_of(path: &Path, data_root: &Path) -> RunGraph {
    RunGraph::build(&[path.to_path_buf()], Scale::Full, &Default::default(), data_root).unwrap()
}

fn non_blank_png(path: &Path) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert!(img.width() >= 600 && img.height() >= 400, "{} is {}x{}", path.display(), img.width(), img.height());
    let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(inked > (img.width() * img.height() / 200) as usize, "{} is almost blank", path.display());
}

fn mtimes(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn report_from_a_trained_cache() {
    let work = tempfile::tempdir().unwrap();
    let (cache_dir, data_root) = (work.path().join("cache"), work.path().join("no-data"));
    let keep = std::env::var_os("GCL_KEEP_REPORT").map(PathBuf::from);
    let out = keep.clone().unwrap_or_else(|| work.path().join("results"));
    let (tiny, empty) = (work.path().join("tiny.toml"), work.path().join("empty.toml"));
    std::fs::write(&tiny, TINY).unwrap();
    std::fs::write(&empty, EMPTY).unwrap();

    let graph = graph_of(&tiny, &data_root);
    let jobs: Vec<_> = graph.nodes.iter().filter(|n| n.uses.iter().all(|u| !u.cell.starts_with("ce_long."))).collect();
    assert_eq!(jobs.len(), 3, "ce and gcl stage 1 (shared by gcl_crt), gcl_crt stage 2");
    let opts = runner::Options {
        cache_dir: cache_dir.clone(),
        data_root: data_root.clone(),
        devices: vec![tch::Device::Cpu],
        jobs_per_device: 1,
        force: false,
        deadline: None,
        rank_devices: vec![],
    };
    let summary = runner::execute(&jobs, &opts, &Arc::new(AtomicBool::new(false)), &runner::Quiet).unwrap();
    assert!(summary.ok() && summary.trained.len() == 3, "{summary:?}");

    let manifests = vec![tiny.clone(), empty.clone()];
    let s = build_report(&manifests, Scale::Full, &Default::default(), &cache_dir, &data_root, &out).unwrap();
    // Cells: tiny has 4 trained cells (3 with results), empty has 1 (none).
    assert_eq!((s.cells_with_results, s.cells_total), (3, 5));
    assert_eq!(s.figures_made, 4, "{:?}", s.figures_skipped);
    assert_eq!(s.figures_skipped.len(), 2, "{:?}", s.figures_skipped);
    assert!(s.render().contains("3/5 cells have results; 4 figures made, 2 waiting for runs"));

    // The table shows the stored numbers of each row.
    let cache = Cache::open(&cache_dir).unwrap();
    let m = manifest::load(&tiny).unwrap();
    let cells = manifest::expand(&m, Scale::Full, &data_root).unwrap();
    let table = std::fs::read_to_string(out.join("tables/tiny.md")).unwrap();
    for (row, label) in [("ce", "CE loss"), ("gcl", "GCL"), ("gcl_crt", "GCL + cRT")] {
        let run = &cells.iter().find(|c| c.row == row).unwrap().runs[0];
        let result = cache.result(run.key().unwrap()).unwrap().unwrap();
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap_or_else(|| panic!("no row {label} in\n{table}"));
        assert!(line.starts_with(&format!("| {label} | {:.2}", result.final_eval.top1)), "{line}");
        assert_eq!(result.stage, if row == "gcl_crt" { 2 } else { 1 });
    }
    assert!(table.lines().any(|l| l.starts_with("| CE, 3 epochs | not run |")), "{table}");
    for ext in ["tex", "csv"] {
        assert!(out.join(format!("tables/tiny.{ext}")).is_file());
    }
    assert!(std::fs::read_to_string(out.join("tables/empty.md")).unwrap().contains("| CE loss | not run |"));

    // One row per stored run, in both run files.
    let csv = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    assert!(out.join("runs.parquet").metadata().unwrap().len() > 1000);

    // Figures exist, are drawn, and REPORT.md links them relative to itself.
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    for id in ["tsne", "tsne_two", "curves", "per_class"] {
        let png = out.join(format!("figures/tiny-{id}.png"));
        non_blank_png(&png);
        let svg = std::fs::read_to_string(out.join(format!("figures/tiny-{id}.svg"))).unwrap();
        assert!(
            svg.len() > 2000 && svg.contains("<text") && (svg.contains("<circle") || svg.contains("<polyline")),
            "tiny-{id}.svg is nearly empty"
        );
        assert!(report.contains(&format!("](figures/tiny-{id}.png)")), "REPORT.md does not link tiny-{id}.png");
    }
    let tsne_svg = std::fs::read_to_string(out.join("figures/tiny-tsne.svg")).unwrap();
    assert!(tsne_svg.contains("CE loss — train") && tsne_svg.contains("GCL — test"));
    let two_svg = std::fs::read_to_string(out.join("figures/tiny-tsne_two.svg")).unwrap();
    assert!(
        two_svg.contains("class 0 (48)") && two_svg.contains("class 3 (12)") && !two_svg.contains("class 1 ("),
        "classes = [0, 3]"
    );
    assert!(report.contains("figure `long` (Curves of the long run): waiting for runs of ce_long.syn"), "{report}");
    assert!(
        report.contains(&format!("- Nothing trained yet (`empty`): not run yet: `gcl-repro run {}`", empty.display())),
        "{report}"
    );
    assert!(!report.contains("## Nothing trained yet"), "a manifest without runs gets one line, not a section");
    // Provenance lists the key of every reported run (stage 2's for the stage-2 cell).
    for row in ["ce", "gcl", "gcl_crt"] {
        let key = cells.iter().find(|c| c.row == row).unwrap().runs[0].key().unwrap().to_string();
        assert!(report.contains(&format!("`{key}`")), "run key of {row} missing from the provenance");
    }

    // The t-SNE maps are cached: 2 runs x 2 splits + 1 map of classes [0, 3].
    let derived = cache_dir.join("derived");
    let before = mtimes(&derived);
    assert_eq!(before.len(), 5, "{before:?}");
    assert!(before.iter().all(|(p, _)| p.file_name().unwrap().to_string_lossy().starts_with("tsne-")));
    // A second report reuses them (nothing rewritten) and writes the same REPORT.md.
    build_report(&manifests, Scale::Full, &Default::default(), &cache_dir, &data_root, &out).unwrap();
    assert_eq!(mtimes(&derived), before);
    assert_eq!(std::fs::read_to_string(out.join("REPORT.md")).unwrap(), report);

    // The command line does the same and exits 0 although cells are missing.
    let cli_out = work.path().join("cli-results");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_gcl-repro"))
        .args(["report", tiny.to_str().unwrap(), empty.to_str().unwrap(), "--out", cli_out.to_str().unwrap()])
        .args(["--cache-dir", cache_dir.to_str().unwrap(), "--data-root", data_root.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains(&format!("wrote {}", cli_out.join("REPORT.md").display())), "{stdout}");
    assert_eq!(std::fs::read_to_string(cli_out.join("REPORT.md")).unwrap(), report);
    assert_eq!(mtimes(&derived), before);
}

#[test]
fn figure_classes_and_max_points_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let check = |figure: &str, expected: &str| {
        let path = dir.path().join("m.toml");
        std::fs::write(&path, format!("[columns.c]\n[rows.r]\n[figures.f]\n{figure}\n")).unwrap();
        let err = format!("{:#}", manifest::load(&path).expect_err("accepted a bad figure"));
        assert!(err.contains(expected), "{err}\nexpected: {expected}");
    };
    check(
        "kind = \"tsne\"\ncells = [\"r.c\"]\nclasses = [1, -2]",
        "`classes` in [figures.f] must list class indices (integers >= 0), found -2",
    );
    check("kind = \"tsne\"\ncells = [\"r.c\"]\nclasses = [1, 1]", "class 1 is listed twice");
    check("kind = \"curves\"\ncells = [\"r.c\"]\nclasses = [1]", "`classes` applies to t-SNE figures only");
    check(
        "kind = \"tsne\"\ncells = [\"r.c\"]\nmax_points = 0",
        "invalid value 0 for `max_points` in [figures.f]; expected an integer >= 2",
    );
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        "[columns.c]\n[rows.r]\n[figures.f]\nkind = \"tsne\"\ncells = [\"r.c\"]\nclasses = [4, 6]\nmax_points = 500\n",
    )
    .unwrap();
    let m = manifest::load(&path).unwrap();
    assert_eq!((m.figures[0].classes.clone(), m.figures[0].max_points), (Some(vec![4, 6]), 500));
}

/// One CE cell with a published 50 % and no `seeds` key (the default count, 3); `tolerance =
/// 100` makes any mean reproduce it.
const TWO_SEEDS: &str = r#"
[manifest]
name = "two"
tolerance = 100
[defaults]
dataset = { name = "synthetic", classes = 4, max_per_class = 48, imbalance = 4, test_per_class = 12 }
model = { arch = "resnet_small", head = "linear" }
stage1 = { epochs = 1, warmup_epochs = 0, milestones = [], batch_size = 32 }
[columns.syn]
[rows.ce]
label = "CE"
published = { syn = 50.0 }
"#;

/// `--seeds N` reaches the run graph of `run` (`--jobs 2`: the seeds' runs trained side by side
/// in worker processes) and of `report`, which then shows n, the interval and the verdict per
/// cell. Without `--seeds` the same report expects the manifest's default 3 seeds, of which the
/// two trained are the first (their keys do not depend on the count).
#[test]
fn seeds_flag_reaches_the_workers_and_the_report() {
    let work = tempfile::tempdir().unwrap();
    let (cache, manifest, out) = (work.path().join("cache"), work.path().join("two.toml"), work.path().join("report"));
    std::fs::write(&manifest, TWO_SEEDS).unwrap();
    let text = common::ok(
        common::gcl(&cache).arg("run").arg(&manifest).args(["--seeds", "2", "--jobs", "2"]).output().unwrap(),
    );
    assert!(text.contains("runs: 2 trained, 0 cached"), "{text}");

    let report = |seeds: &[&str]| {
        common::ok(
            common::gcl(&cache).arg("report").arg(&manifest).args(seeds).arg("--out").arg(&out).output().unwrap(),
        )
    };
    let text = report(&["--seeds", "2"]);
    assert!(text.contains("two: 1 of 1 cells reproduced (tolerance 100.0)"), "{text}");
    let md = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(md.contains("**Verdict (two):** 1 of 1 cells reproduced (tolerance 100.0)\n"), "{md}");
    let row = md.lines().find(|l| l.starts_with("| CE |")).unwrap();
    assert!(row.contains(" ± ") && row.contains(" (n=2) ✓"), "{row}");
    let csv = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(out.join("runs.csv")))
        .unwrap()
        .finish()
        .unwrap();
    let (seed, verdict) = (csv.column("seed").unwrap().i64().unwrap(), csv.column("verdict").unwrap().str().unwrap());
    let rows: Vec<(Option<i64>, Option<&str>)> = (0..csv.height()).map(|i| (seed.get(i), verdict.get(i))).collect();
    assert_eq!(rows, [(Some(123), Some("reproduced")), (Some(124), Some("reproduced"))]);

    // The manifest's own count (3) finds the same two runs and waits for the third.
    report(&[]);
    let md = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(md.lines().any(|l| l.starts_with("| CE |") && l.contains(" (n=2 of 3) ✓")), "{md}");
}
