//! Report tables: exact cell text, labelling, LaTeX rules, CSV and parquet round trips.
use gcl_repro::metrics::{EpochRecord, Evaluation, Provenance, RunResult};
use gcl_repro::report::*;
use polars::prelude::*;

fn result(final_top1: f64, best_top1: f64, many: f64) -> RunResult {
    let eval = |top1: f64| Evaluation {
        top1,
        top5: 99.0,
        many: Some(many),
        medium: Some(50.0),
        few: None,
        per_class: vec![top1; 3],
        confusion: vec![vec![1; 3]; 3],
    };
    RunResult {
        key: "k".into(),
        stage: 1,
        parent: None,
        final_eval: eval(final_top1),
        best_top1,
        best_epoch: 150,
        best_eval: eval(best_top1),
        selection_rule: "final".into(),
        shot_rule: "rule".into(),
        train_class_counts: vec![500, 50, 5],
        epochs: vec![EpochRecord {
            stage: 1,
            epoch: 1,
            lr: 0.1,
            train_loss: 2.0,
            train_acc: 20.0,
            test_top1: final_top1,
            test_top5: 90.0,
            many: None,
            medium: None,
            few: None,
            images_per_sec: 1000.0,
            seconds: 3.0,
        }],
        provenance: Provenance {
            crate_version: "0.1.0".into(),
            git_commit: "abcdef1234567890".into(),
            libtorch_version: "2.11.0".into(),
            cuda: Some("12.8".into()),
            device: "cuda:0".into(),
            device_name: "NVIDIA H100".into(),
            threads: 16,
            started: "2026-05-01T10:00:00Z".into(),
            finished: "2026-05-01T11:02:00Z".into(),
            wall_seconds: 3720.0,
            engine_version: 1,
            cpu_numerics: String::new(),
        },
    }
}

fn cell(row: &str, column: &str, published: Option<f64>, runs: &[(f64, f64)], expected: usize) -> CellInput {
    CellInput {
        manifest: "table1".into(),
        table_title: "Table 1: CIFAR-LT".into(),
        row: row.into(),
        row_label: row.to_uppercase(),
        quoted: false,
        column: column.into(),
        column_label: format!("CIFAR-10-LT γ={column}"),
        published,
        smoke: false,
        runs: runs
            .iter()
            .enumerate()
            .map(|(i, &(f, b))| RunInput {
                seed: i as u64,
                key: format!("{row}-{column}-s{i}"),
                result: result(f, b, 80.0 + i as f64),
            })
            .collect(),
        expected_seeds: expected,
        tolerance: 1.0,
        training: vec![],
    }
}

fn fixture() -> Vec<CellInput> {
    let mut quoted = cell("ldam", "100", Some(77.03), &[], 3);
    quoted.quoted = true;
    let mut smoke = cell("ce", "50", Some(80.0), &[(40.0, 41.0)], 1);
    smoke.smoke = true;
    vec![
        // 79.0, 79.3, 79.6: mean 79.30, sample std 0.30, 95 % half-width 4.303 · 0.30 / √3 =
        // 0.75; best 80.0 each. 3.38 below the paper: outside tolerance and interval.
        cell("gcl", "100", Some(82.68), &[(79.0, 80.0), (79.3, 80.0), (79.6, 80.0)], 3),
        cell("gcl", "50", Some(85.46), &[], 3),
        quoted,
        cell("ce", "100", Some(70.36), &[(71.5, 71.5)], 3),
        smoke,
    ]
}

#[test]
fn markdown_cells_show_mean_interval_n_verdict_best_and_delta() {
    let tables = paper_tables(&fixture()).unwrap();
    assert_eq!(tables.len(), 1);
    let t = &tables[0];
    // Rows and columns keep manifest order.
    assert_eq!(t.rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["gcl", "ldam", "ce"]);
    assert_eq!(t.columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["100", "50"]);
    let md = t.markdown(false);
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(
        lines[0],
        "| Method | CIFAR-10-LT γ=100 | CIFAR-10-LT γ=100 paper | CIFAR-10-LT γ=100 Δ | CIFAR-10-LT γ=50 | CIFAR-10-LT γ=50 paper | CIFAR-10-LT γ=50 Δ |"
    );
    assert_eq!(lines[2], "| GCL | 79.30 ± 0.75 (n=3) ↓ (best 80.00) | 82.68 | -3.38 | not run | 85.46 | – |");
    assert_eq!(lines[3], "| LDAM | quoted | 77.03 | – | – | – | – |");
    // One seed of three, best equal to final: no interval, no "(best ..)", n of the expected
    // seeds, the single-run mark. The smoke cell: labelled, no delta against the full-scale
    // published value and no verdict mark.
    assert_eq!(lines[4], "| CE | 71.50 (n=1 of 3) · | 70.36 | +1.14 | 40.00 (n=1) (best 41.00) (smoke) | 80.00 | – |");
    let s = t.cell("ce", "50").unwrap();
    assert!(s.smoke && s.delta.is_none() && s.verdict == Some(Verdict::NotComparable));
    let gcl = t.cell("gcl", "100").unwrap();
    assert_eq!(gcl.std.map(|x| (x * 1e6).round() / 1e6), Some(0.3));
    assert!((gcl.half_width.unwrap() - 4.302_653 * 0.3 / 3f64.sqrt()).abs() < 1e-5);
    assert_eq!(
        (gcl.verdict, t.cell("ce", "100").unwrap().verdict, t.cell("gcl", "50").unwrap().verdict),
        (Some(Verdict::Below), Some(Verdict::SingleRun), None)
    );
    assert_eq!(t.cell("ldam", "100").unwrap().verdict, Some(Verdict::Quoted));
}

#[test]
fn shot_columns_are_optional() {
    let t = &paper_tables(&fixture()).unwrap()[0];
    let md = t.markdown(true);
    let lines: Vec<&str> = md.lines().collect();
    assert!(lines[0].contains("CIFAR-10-LT γ=100 many / med / few"));
    // Seeds have many = 80, 81, 82 -> 81.00; medium 50; few missing (no few-shot class).
    assert!(
        lines[2].starts_with("| GCL | 79.30 ± 0.75 (n=3) ↓ (best 80.00) | 82.68 | -3.38 | 81.00 / 50.00 / – |"),
        "{}",
        lines[2]
    );
    assert!(!t.markdown(false).contains("many / med / few"));
}

#[test]
fn latex_uses_booktabs_and_escapes() {
    let t = &paper_tables(&fixture()).unwrap()[0];
    let tex = t.latex(false);
    for rule in ["\\toprule", "\\midrule", "\\bottomrule", "\\cmidrule(lr){2-4}", "\\cmidrule(lr){5-7}"] {
        assert!(tex.contains(rule), "missing {rule} in\n{tex}");
    }
    assert!(tex.contains("\\multicolumn{3}{c}{CIFAR-10-LT $\\gamma$=100}"));
    assert!(
        tex.contains(
            "GCL & 79.30 $\\pm$ 0.75 (n=3) $\\downarrow$ (best 80.00) & 82.68 & $-3.38$ & not run & 85.46 & -- \\\\"
        ),
        "{tex}"
    );
    assert!(tex.contains("CE & 71.50 (n=1 of 3) $\\cdot$ & 70.36"), "{tex}");
    assert!(tex.contains("LDAM & \\textit{quoted} & 77.03 & --"));
    assert!(tex.contains("\\begin{tabular}{l ccc ccc}"));
}

#[test]
fn duplicate_cells_are_rejected_by_name() {
    let mut cells = fixture();
    cells.push(cells[0].clone());
    let err = paper_tables(&cells).err().expect("duplicate accepted");
    let msg = format!("{err:#}");
    assert!(msg.contains("table1") && msg.contains("\"gcl\"") && msg.contains("\"100\""), "{msg}");
}

#[test]
fn files_round_trip_through_polars() {
    let dir = tempfile::tempdir().unwrap();
    let cells = fixture();
    let files = write_tables(&cells, dir.path(), true).unwrap();
    assert_eq!(files.tables.len(), 1);
    let f = &files.tables[0];
    assert!(std::fs::read_to_string(&f.markdown).unwrap().starts_with("## Table 1: CIFAR-LT\n\n| Method |"));
    assert!(std::fs::read_to_string(&f.latex).unwrap().contains("\\bottomrule"));

    // The table CSV holds exactly the Markdown cell texts.
    let table = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0)) // everything as strings
        .try_into_reader_with_file_path(Some(f.csv.clone()))
        .unwrap()
        .finish()
        .unwrap();
    let expected = paper_tables(&cells).unwrap()[0].frame(true).unwrap();
    assert!(table.equals(&expected), "csv:\n{table}\nexpected:\n{expected}");
    assert_eq!(
        table.column("CIFAR-10-LT γ=100").unwrap().str().unwrap().get(0),
        Some("79.30 ± 0.75 (n=3) ↓ (best 80.00)")
    );

    // runs.parquet re-reads to the same frame: one row per run (3 + 1 + 1).
    let runs = runs_frame(&cells).unwrap();
    assert_eq!(runs.height(), 5);
    let back = ParquetReader::new(std::fs::File::open(&files.runs_parquet).unwrap()).finish().unwrap();
    assert!(back.equals_missing(&runs), "parquet:\n{back}\nexpected:\n{runs}");
    let delta = back.column("delta").unwrap().f64().unwrap();
    assert!((delta.get(0).unwrap() - (79.0 - 82.68)).abs() < 1e-9);
    assert_eq!(delta.get(4), None, "smoke run has a delta");
    let smoke = back.column("smoke").unwrap().bool().unwrap();
    assert_eq!(smoke.get(4), Some(true));
    assert_eq!(back.column("device_name").unwrap().str().unwrap().get(0), Some("NVIDIA H100"));

    // runs.csv re-reads with the same shape and keys.
    let csv = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(files.runs_csv.clone()))
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(csv.shape(), runs.shape());
    assert_eq!(csv.column("key").unwrap().str().unwrap().get(3), Some("ce-100-s0"));
    // Each run's row carries its cell's statistics and verdict (gcl.100 x3, ce.100, ce.50 smoke).
    let verdicts = csv.column("verdict").unwrap().str().unwrap().clone();
    let verdicts: Vec<Option<&str>> = (0..csv.height()).map(|i| verdicts.get(i)).collect();
    assert_eq!(verdicts, [Some("below"), Some("below"), Some("below"), Some("single run"), Some("not comparable")]);
    let n = csv.column("cell_n").unwrap().i64().unwrap();
    assert_eq!((n.get(0), n.get(3)), (Some(3), Some(1)));
    let (low, high) =
        (csv.column("cell_ci_low").unwrap().f64().unwrap(), csv.column("cell_ci_high").unwrap().f64().unwrap());
    let h = 4.302_653 * 0.3 / 3f64.sqrt();
    assert!((low.get(2).unwrap() - (79.3 - h)).abs() < 1e-5 && (high.get(2).unwrap() - (79.3 + h)).abs() < 1e-5);
    assert_eq!((low.get(3), high.get(3)), (None, None), "one seed: no interval");
    assert!((csv.column("cell_std").unwrap().f64().unwrap().get(1).unwrap() - 0.3).abs() < 1e-9);
    assert_eq!(csv.column("tolerance").unwrap().f64().unwrap().get(0), Some(1.0));
}

#[test]
fn report_lists_tables_figures_and_provenance() {
    let section = ReportSection {
        manifest: "table1".into(),
        title: "Table 1: CIFAR-LT".into(),
        description: "Top-1 on CIFAR-10-LT.".into(),
        cells: fixture(),
        shots: false,
        figures: vec![FigureRef {
            title: "Fig. 3: t-SNE".into(),
            path: "figures/fig3.png".into(),
            caption: "CE vs GCL.".into(),
        }],
        ..Default::default()
    };
    let md = report_markdown(&[section]);
    assert!(md.contains("## Table 1: CIFAR-LT (`table1`)"));
    assert!(md.contains("| GCL | 79.30 ± 0.75 (n=3) ↓ (best 80.00) | 82.68 | -3.38 |"));
    assert!(md.contains("![Fig. 3: t-SNE](figures/fig3.png)"));
    // Every run key appears with its provenance.
    for key in ["gcl-100-s0", "gcl-100-s1", "gcl-100-s2", "ce-100-s0", "ce-50-s0"] {
        let line = md.lines().find(|l| l.contains(&format!("`{key}`"))).unwrap_or_else(|| panic!("{key} missing"));
        assert!(line.contains("0.1.0 (abcdef1234)") && line.contains("2.11.0") && line.contains("12.8"), "{line}");
        assert!(
            line.contains("NVIDIA H100") && line.contains("1h 02m") && line.contains("2026-05-01T11:02:00Z"),
            "{line}"
        );
    }
    assert_eq!(gcl_repro::human::duration(12.34), "12.3 s");
    assert_eq!(gcl_repro::human::duration(245.0), "4m 05s");
}

/// One line per table counts the verdicts, names the cells that missed with |ours − paper| ± the
/// interval's half-width, and opens the table's section of REPORT.md; the legend explains marks.
#[test]
fn verdict_lines_count_the_cells_and_lead_each_section() {
    let mut unpublished = cell("gcl", "10", None, &[(90.0, 90.0), (91.0, 91.0)], 2);
    unpublished.column_label = "CIFAR-10-LT γ=10".into();
    let mut quoted = cell("ldam", "100", Some(77.03), &[], 2);
    quoted.quoted = true;
    let cells = vec![
        // 81.0, 82.0: mean 81.5, within 1.0 of 82.2.
        cell("gcl", "100", Some(82.2), &[(81.0, 81.0), (82.0, 82.0)], 2),
        // 70.0, 71.0: mean 70.5, half-width 12.706 · 0.7071 / √2 = 6.35 holds 75.0, 4.5 away:
        // inconclusive; 3 seeds would decide it (4.303 · 0.7071 / √3 = 1.76 < 4.5).
        cell("ce", "100", Some(75.0), &[(70.0, 70.0), (71.0, 71.0)], 2),
        // 79.0, 79.0: no spread, 2.0 below 81.0; 60.0, 60.2 above 58.0 by 2.10 ± 0.64 (h = 12.706 · 0.1414 / √2 = 1.27).
        cell("ldam_drw", "100", Some(81.0), &[(79.0, 79.0), (79.0, 79.0)], 2),
        cell("focal", "100", Some(58.0), &[(60.0, 60.0), (60.2, 60.2)], 2),
        cell("cb", "100", Some(70.0), &[(70.0, 70.0)], 2),
        cell("bbn", "100", Some(79.8), &[], 2),
        unpublished,
        quoted,
    ];
    let t = &paper_tables(&cells).unwrap()[0];
    let marks: Vec<String> = ["gcl", "ce", "ldam_drw", "focal", "cb"]
        .iter()
        .map(|r| {
            t.markdown(false).lines().find(|l| l.starts_with(&format!("| {} |", r.to_uppercase()))).unwrap().to_string()
        })
        .collect();
    assert!(marks[0].starts_with("| GCL | 81.50 ± 6.35 (n=2) ✓ | 82.20 | -0.70 |"), "{}", marks[0]);
    assert!(marks[1].starts_with("| CE | 70.50 ± 6.35 (n=2) ? | 75.00 |"), "{}", marks[1]);
    assert!(marks[2].starts_with("| LDAM_DRW | 79.00 ± 0.00 (n=2) ↓ | 81.00 |"), "{}", marks[2]);
    assert!(marks[3].starts_with("| FOCAL | 60.10 ± 1.27 (n=2) ↑ | 58.00 |"), "{}", marks[3]);
    assert!(marks[4].starts_with("| CB | 70.00 (n=1 of 2) · | 70.00 |"), "{}", marks[4]);
    let line = t.verdict_line();
    assert_eq!(
        line,
        "1 of 6 cells reproduced (tolerance 1.0); 1 inconclusive, off by 4.50 ± 6.35 (`ce.100`, about 3 seeds would decide it at this spread); \
         1 below by 2.00 ± 0.00 (`ldam_drw.100`); 1 above by 2.10 ± 1.27 (`focal.100`); \
         1 single run (no interval); 1 not run; 1 without a published value"
    );

    let section = ReportSection {
        manifest: "table1".into(),
        title: "Table 1: CIFAR-LT".into(),
        description: "Top-1.".into(),
        cells,
        ..Default::default()
    };
    let md = report_markdown(&[section]);
    let verdict = md.find(&format!("**Verdict (table1):** {line}\n")).expect("verdict line in REPORT.md");
    assert!(
        md.find("## Table 1").unwrap() < verdict
            && verdict < md.find("Top-1.").unwrap()
            && verdict < md.find("| Method |").unwrap()
    );
    assert!(md.contains("✓ reproduced (the published value lies within the manifest's tolerance of our mean), ? inconclusive (a larger miss, but our 95 % interval still holds the published value: more seeds decide it), ↓ below it, ↑ above it (the interval excludes it), · a single run"), "{md}");

    // Smoke scale: nothing is compared, and the line says so.
    let mut smoke: Vec<CellInput> = fixture().into_iter().filter(|c| !c.quoted).collect();
    for c in &mut smoke {
        c.smoke = true;
    }
    assert_eq!(
        paper_tables(&smoke).unwrap()[0].verdict_line(),
        "smoke scale: numbers not comparable with the paper (3 of 4 cells have runs)"
    );
}
