//! All stored runs of a report as one polars DataFrame (`runs.parquet`, `runs.csv`).
use super::{summarize, CellInput, CellSummary, RunInput};
use anyhow::Result;
use polars::prelude::*;

/// One row per stored run: where it sits in the paper, its numbers, its cell's statistics and
/// verdict (repeated on each run of the cell: `cell_n`, `cell_mean`, `cell_std`, `cell_ci_low`,
/// `cell_ci_high`, `tolerance`, `verdict`), and where it was made. Cells without runs (quoted,
/// not run) have no rows.
pub fn runs_frame(cells: &[CellInput]) -> Result<DataFrame> {
    let summaries: Vec<CellSummary> = cells.iter().map(summarize).collect();
    let runs: Vec<(&CellInput, &RunInput)> = cells.iter().flat_map(|c| c.runs.iter().map(move |r| (c, r))).collect();
    let cell_of: Vec<&CellSummary> =
        cells.iter().zip(&summaries).flat_map(|(c, s)| c.runs.iter().map(move |_| s)).collect();
    let n = runs.len();
    let cf = |f: &dyn Fn(&CellSummary) -> Option<f64>| cell_of.iter().map(|s| f(s)).collect::<Vec<Option<f64>>>();
    let interval = |side: f64| cf(&|s| s.mean.zip(s.half_width).map(|(m, h)| m + side * h));
    let s = |f: &dyn Fn(&CellInput, &RunInput) -> String| runs.iter().map(|(c, r)| f(c, r)).collect::<Vec<String>>();
    let f = |f: &dyn Fn(&CellInput, &RunInput) -> f64| runs.iter().map(|(c, r)| f(c, r)).collect::<Vec<f64>>();
    let of = |f: &dyn Fn(&CellInput, &RunInput) -> Option<f64>| {
        runs.iter().map(|(c, r)| f(c, r)).collect::<Vec<Option<f64>>>()
    };
    let b = |f: &dyn Fn(&CellInput) -> bool| runs.iter().map(|(c, _)| f(c)).collect::<Vec<bool>>();
    let u = |f: &dyn Fn(&RunInput) -> u64| runs.iter().map(|(_, r)| f(r)).collect::<Vec<u64>>();
    let columns = vec![
        Column::new("manifest".into(), s(&|c, _| c.manifest.clone())),
        Column::new("table_title".into(), s(&|c, _| c.table_title.clone())),
        Column::new("row".into(), s(&|c, _| c.row.clone())),
        Column::new("row_label".into(), s(&|c, _| c.row_label.clone())),
        Column::new("column".into(), s(&|c, _| c.column.clone())),
        Column::new("column_label".into(), s(&|c, _| c.column_label.clone())),
        Column::new("seed".into(), u(&|r| r.seed)),
        Column::new("key".into(), s(&|_, r| r.key.clone())),
        Column::new("stage".into(), u(&|r| r.result.stage as u64)),
        Column::new(
            "parent".into(),
            runs.iter().map(|(_, r)| r.result.parent.clone()).collect::<Vec<Option<String>>>(),
        ),
        Column::new("final_top1".into(), f(&|_, r| r.result.final_eval.top1)),
        Column::new("final_top5".into(), f(&|_, r| r.result.final_eval.top5)),
        Column::new("best_top1".into(), f(&|_, r| r.result.best_top1)),
        Column::new("best_epoch".into(), u(&|r| r.result.best_epoch as u64)),
        Column::new("epochs".into(), u(&|r| r.result.epochs.len() as u64)),
        Column::new("many".into(), of(&|_, r| r.result.final_eval.many)),
        Column::new("medium".into(), of(&|_, r| r.result.final_eval.medium)),
        Column::new("few".into(), of(&|_, r| r.result.final_eval.few)),
        Column::new("published".into(), of(&|c, _| c.published)),
        Column::new(
            "delta".into(),
            of(&|c, r| if c.smoke || c.quoted { None } else { c.published.map(|p| r.result.final_eval.top1 - p) }),
        ),
        Column::new("quoted".into(), b(&|c| c.quoted)),
        Column::new("smoke".into(), b(&|c| c.smoke)),
        Column::new("expected_seeds".into(), runs.iter().map(|(c, _)| c.expected_seeds as u64).collect::<Vec<u64>>()),
        Column::new("cell_n".into(), cell_of.iter().map(|s| s.seeds as u64).collect::<Vec<u64>>()),
        Column::new("cell_mean".into(), cf(&|s| s.mean)),
        Column::new("cell_std".into(), cf(&|s| s.std)),
        Column::new("cell_ci_low".into(), interval(-1.0)),
        Column::new("cell_ci_high".into(), interval(1.0)),
        Column::new("tolerance".into(), runs.iter().map(|(c, _)| c.tolerance).collect::<Vec<f64>>()),
        Column::new("verdict".into(), cell_of.iter().map(|s| s.verdict_text().to_string()).collect::<Vec<String>>()),
        Column::new("crate_version".into(), s(&|_, r| r.result.provenance.crate_version.clone())),
        Column::new("git_commit".into(), s(&|_, r| r.result.provenance.git_commit.clone())),
        Column::new("libtorch".into(), s(&|_, r| r.result.provenance.libtorch_version.clone())),
        Column::new(
            "cuda".into(),
            runs.iter().map(|(_, r)| r.result.provenance.cuda.clone()).collect::<Vec<Option<String>>>(),
        ),
        Column::new("device".into(), s(&|_, r| r.result.provenance.device.clone())),
        Column::new("device_name".into(), s(&|_, r| r.result.provenance.device_name.clone())),
        Column::new("cpu_numerics".into(), s(&|_, r| r.result.provenance.cpu_numerics.clone())),
        Column::new("wall_seconds".into(), f(&|_, r| r.result.provenance.wall_seconds)),
        Column::new("started".into(), s(&|_, r| r.result.provenance.started.clone())),
        Column::new("finished".into(), s(&|_, r| r.result.provenance.finished.clone())),
    ];
    Ok(DataFrame::new(n, columns)?)
}
